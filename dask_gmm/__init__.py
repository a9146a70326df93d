"""dask_gmm: Gaussian mixture models fitted by EM on data larger than memory."""

from .mixture import GaussianMixture

__all__ = ["GaussianMixture"]
__version__ = "0.1.0"
