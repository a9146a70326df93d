"""dask_gmm: Gaussian mixture models fitted by EM on data larger than memory."""

from .bayesian import BayesianGaussianMixture
from .generate import generate_mixture
from .mixture import GaussianMixture
from .modelfile import load_model, save_model
from .selection import ModelSelection, select_model

__all__ = [
    "BayesianGaussianMixture",
    "GaussianMixture",
    "generate_mixture",
    "load_model",
    "save_model",
    "select_model",
    "ModelSelection",
]
__version__ = "0.1.0"
