"""dask_gmm: Gaussian mixture models fitted by EM on data larger than memory.

The public names are imported on first use (PEP 562), so that the ``dask-gmm``
command (:mod:`dask_gmm.__main__`) starts before numpy, dask, numba and
scikit-learn are loaded and can answer a Ctrl-C during their import.
"""

import importlib

__version__ = "0.1.0"

#: Each public name and the module that defines it.
_PUBLIC = {
    "BayesianGaussianMixture": "bayesian",
    "GaussianMixture": "mixture",
    "generate_mixture": "generate",
    "load_model": "modelfile",
    "save_model": "modelfile",
    "select_model": "selection",
    "ModelSelection": "selection",
}
__all__ = list(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_PUBLIC})
