"""dask_gmm: Gaussian mixture models fitted by EM on data larger than memory.

The public names are imported on first use (PEP 562), so that the ``dask-gmm``
command (:mod:`dask_gmm.__main__`) starts before numpy, dask, numba and
scikit-learn are loaded and can answer a Ctrl-C during their import.
"""

import importlib as _importlib

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
    """A public name, or a module of the package (``dask_gmm.io``), imported on first use."""
    if name in _PUBLIC:
        value = getattr(_importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    else:
        try:
            value = _importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":  # a module of ours failed to import: a broken install
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_PUBLIC})
