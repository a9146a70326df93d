"""dask_gmm: Gaussian mixture models fitted by EM on data larger than memory.

The public names are imported on first use (PEP 562), so that the ``dask-gmm``
command (:mod:`dask_gmm.__main__`) starts before numpy, dask, numba and
scikit-learn are loaded and can answer a Ctrl-C during their import.
"""

import hashlib as _hashlib
import importlib as _importlib
import os as _os

__version__ = "0.1.0"


_FOLDER = _os.path.dirname(_os.path.abspath(__file__))


def _module_files():
    """The names of the package's modules' source files (not an editor's lock link, ``.#cli.py``)."""
    return sorted(n for n in _os.listdir(_FOLDER) if n.endswith(".py") and not n.startswith(".")
                  and _os.path.isfile(_os.path.join(_FOLDER, n)))


def _source_build(names):
    """``VERSION+DIGEST``: the version and a digest of the source files ``names`` of the package's
    modules, read now (one removed from the folder since: a change); the version alone where there
    are none (compiled only); None where they cannot be read."""
    h = _hashlib.sha256()
    try:
        for name in names:
            try:
                with open(_os.path.join(_FOLDER, name), "rb") as f:
                    h.update(name.encode() + b"\0" + f.read() + b"\0")
            except FileNotFoundError:
                if not _os.path.isdir(_FOLDER):  # the folder gone (moved): nothing to compare
                    raise
                h.update(name.encode() + b"\1")  # a module removed since (a pull): a change
    except OSError:
        return None
    return f"{__version__}+{h.hexdigest()[:12]}" if names else __version__


try:
    _NAMES = _module_files()  # the modules there are as the package is imported (a later stray file is none)
except OSError:
    _NAMES = []
#: This build, taken as the package is first imported (about 1 ms), before any of its modules.
_BUILD = _source_build(_NAMES) or __version__


def _build():
    """This process's build (:func:`dask_gmm._cluster.build`, what a cluster's workers are asked):
    :data:`_BUILD`, or where its modules' files have changed since, ``"BUILD (its files now NOW)"``
    (about 1 ms to read them): it may run old and new modules together, those loaded before the
    change and those after. Files that cannot be read now, or a build of the version alone, are
    taken as unchanged (nothing to compare)."""
    now = _source_build(_NAMES)
    return _BUILD if now is None or now == _BUILD or "+" not in _BUILD else f"{_BUILD} (its files now {now})"

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
