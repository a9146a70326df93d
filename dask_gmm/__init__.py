"""dask_gmm: Gaussian mixture models fitted by EM on data larger than memory.

The public names are imported on first use (PEP 562), so that the ``dask-gmm``
command (:mod:`dask_gmm.__main__`) starts before numpy, dask, numba and
scikit-learn are loaded and can answer a Ctrl-C during their import.
"""

import hashlib as _hashlib
import importlib as _importlib
import os as _os

__version__ = "0.1.0"


def _source_build():
    """``VERSION+DIGEST``: the version and a digest of the package's modules' source, read from its
    files; the version alone where they cannot be read, or there are none (compiled only)."""
    folder = _os.path.dirname(_os.path.abspath(__file__))
    h = _hashlib.sha256()
    try:
        names = sorted(n for n in _os.listdir(folder) if n.endswith(".py") and not n.startswith(".")
                       and _os.path.isfile(_os.path.join(folder, n)))  # not an editor's lock link (.#cli.py)
        for name in names:
            with open(_os.path.join(folder, name), "rb") as f:
                h.update(name.encode() + b"\0" + f.read() + b"\0")
    except OSError:
        return __version__
    return f"{__version__}+{h.hexdigest()[:12]}" if names else __version__


#: This build, taken as the package is first imported (about 1 ms), before any of its modules.
_BUILD = _source_build()


def _build():
    """This process's build (:func:`dask_gmm._cluster.build`, what a cluster's workers are asked):
    :data:`_BUILD`, or where the package's files have changed since, that build and theirs now
    (about 1 ms to read them): it may run the old and the new modules together, those loaded
    before the change and those loaded after."""
    now = _source_build()
    return _BUILD if now == _BUILD else f"{_BUILD}, its files changed since to {now}"

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
