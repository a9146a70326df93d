"""Model files: a fitted GaussianMixture as JSON, never pickle.

Floats are written with ``repr`` and so round-trip exactly. The file is
strict JSON: a ``lower_bound`` that is not finite (-inf after ``max_iter=0``)
is written as the string ``"-Infinity"`` (or ``"Infinity"``, ``"NaN"``), where
Python's ``json`` writes a bare ``-Infinity`` that other JSON readers reject;
files with the bare tokens still load. Loading validates every field before it
builds anything, and turns whatever is wrong into one ValueError: a model file
is data, and loading one never runs code.

The file holds::

    {"format": "dask_gmm.model/1", "covariance_type": ..., "n_components": K,
     "n_features_in": d, "weights": [K], "means": [K][d],
     "covariances": (shape by type), "precisions_cholesky": (shape by type),
     "converged": bool, "n_iter": int, "lower_bound": float, "lower_bounds": [float],
     "feature_names_in": [d strings] (only for a model fitted on a DataFrame),
     "settings": {"tol": ..., "reg_covar": ..., ...} (optional: files before it load with the defaults)}

``settings`` are the estimator's constructor settings that are JSON scalars (:data:`SETTINGS`), so a
loaded model samples with the same ``random_state`` and refits with the same ``reg_covar`` and
``tol``. Not kept: the ``*_init`` arrays, a ``random_state`` that is not an int (a Generator,
RandomState or SeedSequence: loaded as None), and ``checkpoint`` (a path on the fitting machine).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import stat

import numpy as np
from sklearn.exceptions import NotFittedError

from . import _covariance as cov
from . import _files
from ._checkpoint import FORMAT as CHECKPOINT_FORMAT
from ._checkpoint import (damage, fitted_fields, fitted_to_dict, identity, json_float, json_int, json_number,
                          of_another_version, of_older_layout)
from ._files import check_folder, local_file_path, write_atomic
from .io import warn_at_caller
from .mixture import GaussianMixture, check_fitted

logger = logging.getLogger(__name__)

FORMAT = "dask_gmm.model/1"
MAX_SIZE = 10_000  # largest n_components or n_features a file may declare
MAX_FILE_BYTES = 2**30
_ARRAYS = ("weights", "means", "covariances", "precisions_cholesky")
_KEYS = ("format", "covariance_type", "n_components", "n_features_in", *_ARRAYS,
         "converged", "n_iter", "lower_bound", "lower_bounds")
#: The constructor settings a model file keeps, and the JSON type of each.
SETTINGS = {"tol": float, "reg_covar": float, "max_iter": int, "n_init": int, "init_params": str,
            "random_state": int, "warm_start": bool, "verbose": int, "verbose_interval": int, "split_every": int}


def fitted_model(weights, means, covariances, covariance_type, precisions_cholesky=None, *,
                 converged=True, n_iter=0, lower_bound=float("nan"), lower_bounds=()):
    """A fitted :class:`dask_gmm.GaussianMixture` from its parameters, ready to predict, score and sample.

    Parameters
    ----------
    weights : array-like of shape (n_components,)
    means : array-like of shape (n_components, n_features)
    covariances : array-like, shape by covariance type (see :mod:`dask_gmm._covariance`)
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    precisions_cholesky : array-like, optional
        Computed from ``covariances`` when not given.
    converged, n_iter, lower_bound, lower_bounds : the fit's history, as ``converged_``, ``n_iter_``,
        ``lower_bound_`` and ``lower_bounds_``

    Returns
    -------
    dask_gmm.GaussianMixture
    """
    means = np.asarray(means, np.float64)
    covariances = np.asarray(covariances, np.float64)
    pc = (cov.precision_cholesky(covariances, covariance_type) if precisions_cholesky is None
          else np.asarray(precisions_cholesky, np.float64))
    gm = GaussianMixture(means.shape[0], covariance_type=covariance_type)
    gm.weights_ = np.asarray(weights, np.float64)
    gm.means_ = means
    gm.covariances_ = covariances
    gm.precisions_cholesky_ = pc
    gm.precisions_ = cov.precisions_from_precision_cholesky(pc, covariance_type)
    gm.converged_ = bool(converged)
    gm.n_iter_ = int(n_iter)
    gm.lower_bound_ = float(lower_bound)
    gm.lower_bounds_ = [float(x) for x in lower_bounds]
    gm.n_features_in_ = means.shape[1]
    return gm


def model_to_dict(model):
    """The JSON-ready dict of a fitted model (see the module docstring for its keys)."""
    if "BayesianGaussianMixture" in type(model).__name__:
        raise ValueError(
            "save_model writes GaussianMixture models only; a BayesianGaussianMixture would reload as a "
            "different model."
        )
    try:
        check_fitted(model)
    except NotFittedError:
        raise NotFittedError("The model is not fitted yet; call fit before saving it.") from None
    return {
        "format": FORMAT,
        "covariance_type": str(model.covariance_type),
        "n_components": len(model.means_),  # the fitted K (n_components may have been set since)
        "n_features_in": int(model.n_features_in_),
        **fitted_to_dict(model.weights_, model.means_, model.covariances_, _precisions_cholesky(model),
                         model.converged_, model.n_iter_, model.lower_bound_, model.lower_bounds_),
        **({"feature_names_in": [str(v) for v in model.feature_names_in_]}
           if hasattr(model, "feature_names_in_") else {}),
        "settings": _settings_to_dict(model),
    }


def _precisions_cholesky(model):
    """The model's precision Cholesky factor in float64: recomputed from its covariances when they
    are not float64 (scikit-learn fitted on float32 data), whose float32 factor may not match them
    to the loader's tolerance."""
    covariances = np.asarray(model.covariances_)
    if covariances.dtype == np.float64:
        return np.asarray(model.precisions_cholesky_, np.float64)
    return cov.precision_cholesky(covariances.astype(np.float64), model.covariance_type)


def _settings_to_dict(model):
    """The model's :data:`SETTINGS` that are JSON scalars of their type (scikit-learn's model has no split_every)."""
    out = {}
    for key, kind in SETTINGS.items():
        v = getattr(model, key, None)
        v = v.item() if isinstance(v, np.generic) else v
        if kind is float and isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = json_float(v)
        elif isinstance(v, kind):  # an int setting given as a bool (verbose=True) as its int
            out[key] = int(v) if kind is int else v
    return out


def _settings(d):
    """The validated ``settings`` of a model dict, as keyword arguments of GaussianMixture."""
    settings = d.get("settings", {})
    if not isinstance(settings, dict):
        raise ValueError("'settings' must be a JSON object")
    out = {}
    for key, v in settings.items():
        kind = SETTINGS.get(key)
        if kind is None:  # a later version's setting: the model is whole without it
            warn_at_caller(f"Ignoring the setting {key!r} of the model file, unknown to this dask_gmm (a later "
                           "version's?): the model is loaded without it.")
            continue
        if kind is float:
            v = json_number(v, f"settings.{key}")
        elif not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
            raise ValueError(f"'settings.{key}' must be a JSON {kind.__name__}, got {v!r}")
        out[key] = v
    return out


def save_model(model, path):
    """Write a fitted GaussianMixture to ``path`` as JSON, atomically.

    Parameters
    ----------
    model : dask_gmm.GaussianMixture (or scikit-learn's), fitted
    path : str, bytes or os.PathLike (or a ``file://`` URL)
        The file is written to a temporary file in the same folder, then renamed. An existing
        file is replaced only when it is empty or a model file, checked before the write and again
        just before the rename; a path inside a Zarr store, or a URL other than ``file://``, is refused.
    """
    obj = model_to_dict(model)
    try:  # the checks load_model makes: never write a file that would not load
        model_from_dict(obj)
    except ValueError as exc:
        raise ValueError(f"The model cannot be saved: {exc}.") from None
    path = local_file_path(path, "The path to write")
    _check_model_path(path)
    checked = identity(path)

    def replaces(path):  # what is there is checked again only if it changed since (a model loads again)
        if identity(path) != checked:
            _replaces_only_model_files(path)

    logger.info("saved model to %s", write_atomic(path, lambda f: json.dump(obj, f, allow_nan=False), replaces=replaces))


def _replaces_only_model_files(path):
    """Checked again just before the rename: what was written at ``path`` meanwhile stays."""
    if not replaceable_model_file(path):
        raise ValueError(f"{path!r} exists and is not a dask_gmm model file; save_model replaces only model "
                         "files. Choose another path, or remove it yourself.")


def _check_model_path(path):
    """A ValueError unless a model file may be written at the local ``path``: not a URL, not inside a
    Zarr store, and nothing there but a blank file or a model file (what else is there stays)."""
    if "://" in path:
        raise ValueError(f"Cannot write the model to {path!r}: model files are local files. Give a local path "
                         "(or a file:// URL).")
    check_folder(path)  # a folder, a device or FIFO, a missing folder
    _files.refuse_output_inside(path, "the model")
    _replaces_only_model_files(path)


def replaceable_model_file(path):
    """Whether a model file may replace what is at ``path``: nothing, a blank file (as ``mktemp``
    makes: :func:`dask_gmm._files.blank`) or a model file that loads."""
    if not os.path.exists(path) or _files.blank(path):
        return True
    try:
        with open(path, "rb"):
            pass
    except PermissionError as exc:  # a model file, maybe: say so, not "not a model file"
        raise ValueError(f"{path!r} cannot be read ({exc.strerror}), so it cannot be told to be a model file. "
                         "Make it readable, or choose another path.") from None
    except OSError:
        return False
    try:
        load_model(path)
    except (ValueError, OSError):
        return False
    return True


def model_from_dict(d):
    """Validate a model dict (as :func:`model_to_dict` writes) and rebuild the fitted model.

    Raises
    ------
    ValueError
        Naming the first problem found: format tag, missing key, type, shape, value.
    """
    if not isinstance(d, dict):
        raise ValueError("the file does not hold a JSON object")
    if of_another_version(d.get("format"), FORMAT):
        raise ValueError(f"written by another version of dask_gmm: format tag {d.get('format')!r}, where this "
                         f"version reads {FORMAT!r}; load it with the version that wrote it")
    if d.get("format") == CHECKPOINT_FORMAT and damage(d) is not None:
        raise ValueError("it is a damaged checkpoint of a fit, not a model, and a fit refuses it: delete it to start "
                         "that fit afresh")
    if d.get("format") == CHECKPOINT_FORMAT and of_older_layout(d):
        raise ValueError("it is a checkpoint of a fit by an older dask_gmm, not a model, and this version does not "
                         "resume from it: finish that fit with the version that wrote it, or delete it")
    if d.get("format") == CHECKPOINT_FORMAT:
        raise ValueError("it is a checkpoint of a fit, not a model: a fit given it as its checkpoint resumes from "
                         "it, and writes its model file")
    if d.get("format") != FORMAT:
        raise ValueError(f"format tag is {d.get('format')!r}, expected {FORMAT!r}")
    missing = [k for k in _KEYS if k not in d]
    if missing:
        raise ValueError(f"missing keys {missing}")
    ct = d["covariance_type"]
    if ct not in cov.COVARIANCE_TYPES:
        raise ValueError(f"'covariance_type' must be one of {cov.COVARIANCE_TYPES}, got {ct!r}")
    K = json_int(d, "n_components", 1, MAX_SIZE)
    n_features = json_int(d, "n_features_in", 1, MAX_SIZE)
    params, history = fitted_fields(d, ct, K, n_features)
    model = fitted_model(*params[:3], ct, params[3], **history)
    model.set_params(**_settings(d))
    if isinstance(model.random_state, int) and model.random_state < 0:  # what a fit would refuse
        raise ValueError(f"'settings.random_state' must be a non-negative integer, got {model.random_state!r}")
    model._check_common()
    if "feature_names_in" in d:  # optional: a model fitted on a DataFrame
        names = d["feature_names_in"]
        if (not isinstance(names, list) or len(names) != n_features or not all(isinstance(v, str) for v in names)
                or len(set(names)) != n_features):
            raise ValueError(f"'feature_names_in' must be a list of {n_features} distinct strings")
        model.feature_names_in_ = np.asarray(names, dtype=object)
    extra = sorted(set(d) - {*_KEYS, "feature_names_in", "settings"})
    if extra:  # as an unknown setting is: the model is whole without them
        warn_at_caller(f"Ignoring the key{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra[:5]))}"
                       f"{', ...' if len(extra) > 5 else ''} of the model file, unknown to this dask_gmm (a later "
                       "version's, or an edit?): the model is loaded without them.")
    return model


def _opened(path):
    """``path`` opened to read text: a regular file, or a pipe (a shell's ``<(...)``, ``/dev/stdin``), opened
    without waiting for a writer (a FIFO nobody writes to reads as empty); a ValueError for anything else."""
    st = os.stat(path)
    if stat.S_ISFIFO(st.st_mode):
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        os.set_blocking(fd, True)
        return os.fdopen(fd, encoding="utf-8-sig")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError("not a regular file, nor a pipe: a folder or a device")
    if st.st_size > MAX_FILE_BYTES:
        raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
    return open(path, encoding="utf-8-sig")  # -sig: a byte-order mark, as Windows editors write, is skipped


def _read_at_most(f, most):
    """The text of ``f``, up to ``most`` characters and one more, read a MiB at a time: ``f.read(most + 1)``
    set aside room for ``most`` first, 1 GiB of address space to read a model of a few KB (a
    MemoryError traceback under ``ulimit -v``, as batch systems set it: a review)."""
    parts, size = [], 0
    while size <= most:
        part = f.read(2**20)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return "".join(parts)


def _unique_keys(pairs):
    """A JSON object as a dict, refusing a key given twice (json keeps the last, silently: an edit)."""
    counts = collections.Counter(k for k, _ in pairs)  # keys.count for each key took 43 s for 80,000 keys
    twice = sorted(k for k, n in counts.items() if n > 1)
    if twice:
        raise ValueError(f"the key(s) {', '.join(map(repr, twice))} appear more than once in an object")
    return dict(pairs)


def load_model(path):
    """Read a model file written by :func:`save_model`.

    Parameters
    ----------
    path : str, bytes or os.PathLike (or a ``file://`` URL)

    Returns
    -------
    dask_gmm.GaussianMixture
        Fitted (``weights_``, ``means_``, ``covariances_``, ``precisions_cholesky_``,
        ``precisions_``, ...): ``predict``, ``score`` and ``sample`` work.

    Raises
    ------
    ValueError
        If the file is missing, not JSON, or not a valid model file.
    """
    path = local_file_path(path, "The model file")
    if "://" in path:  # not read through fsspec: it would be "no model file" (a review)
        raise ValueError(f"Cannot read the model file {path!r}: model files are local files. Copy it here, and give "
                         "its local path (or a file:// URL).")
    try:
        with _opened(path) as f:
            text = _read_at_most(f, MAX_FILE_BYTES)
        if len(text) > MAX_FILE_BYTES:
            raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
        return model_from_dict(json.loads(text, object_pairs_hook=_unique_keys))
    except FileNotFoundError:
        raise ValueError(f"No model file at {path!r}. Check the path.") from None
    except PermissionError as exc:
        raise ValueError(f"The model file {path!r} cannot be read ({exc.strerror}).") from None
    except (OSError, ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError are ValueErrors
        why = ("not UTF-8 text, as JSON is" if isinstance(exc, UnicodeDecodeError) else
               f"not JSON: {exc}" if isinstance(exc, json.JSONDecodeError) else exc)
        raise ValueError(
            f"{path!r} is not a valid dask_gmm model file ({why}). Model files are written by "
            "dask_gmm.save_model and dask-gmm fit."
        ) from None
