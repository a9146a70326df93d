"""EM checkpoints: the whole state of every run, written atomically after each iteration.

A checkpoint is JSON (never pickle). Floats round-trip exactly through
``repr``, so a resumed fit ends bit-for-bit where an uninterrupted one does.
It records a fingerprint of the data and of the arguments that shape the fit,
and is refused when either differs.
"""

from __future__ import annotations

import json
import logging
import os
import reprlib
import uuid

import numpy as np

from . import _kernels
from ._em import Run

logger = logging.getLogger(__name__)

FORMAT = "dask_gmm.checkpoint/1"
_ARGS = (
    "n_components",
    "covariance_type",
    "tol",
    "reg_covar",
    "max_iter",
    "n_init",
    "init_params",
    "random_state",
    "weights_init",
    "means_init",
    "precisions_init",
    "split_every",
)


def check_folder(path):
    """Refuse a ``path`` to write that is a folder, or whose folder does not exist, naming ``path``
    (not a temporary file)."""
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if os.path.isdir(path):
        raise ValueError(f"Cannot write {os.fspath(path)!r}: it is a folder. Give the path of a file.")
    if not os.path.isdir(folder):
        raise ValueError(
            f"Cannot write {os.fspath(path)!r}: the folder {folder!r} does not exist. "
            "Create it first, or choose a path in an existing folder."
        )
    return folder


def temporary_file(folder, suffix):
    """``(fd, path)`` of a new file ``.tmp-*suffix`` in ``folder``, opened for writing, with the
    permissions the umask gives (``tempfile.mkstemp`` makes 0600, so a renamed result did too)."""
    while True:
        tmp = os.path.join(folder, f".tmp-{uuid.uuid4().hex[:12]}{suffix}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue


def write_atomic(path, write, suffix, mode="w"):
    """Fill ``path`` with ``write(f)`` through a temporary file in the same folder (which must
    exist), synced to disk, and a rename: a reader never sees half a file. Returns ``path``."""
    path = os.fspath(path)
    folder = check_folder(path)
    try:
        fd, tmp = temporary_file(folder, suffix)
    except OSError as exc:  # name the file asked for, not the temporary one
        raise type(exc)(exc.errno, exc.strerror, path) from None
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json_atomic(path, obj):
    """Write JSON to ``path`` atomically (:func:`write_atomic`)."""
    write_atomic(path, lambda f: json.dump(obj, f), ".json")


def _plain(v):
    if isinstance(v, (np.random.Generator, np.random.RandomState)):
        return "a Generator or RandomState"  # its repr holds a memory address; the saved runs carry the state
    if isinstance(v, np.random.SeedSequence):
        return {"entropy": v.entropy, "spawn_key": list(v.spawn_key)}
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return repr(v)


def _short(value):
    """An argument's value in a message: long lists cut (``means_init`` may hold K x d values)."""
    r = reprlib.Repr()
    r.maxlist, r.maxlevel = 4, 2
    return r.repr(value)


def fingerprint(estimator, X, blocks, weighted):
    """What must match for a checkpoint to apply: data shape, chunks, dtype, content, arguments.

    The content is :func:`dask_gmm._kernels.digest` over ``blocks`` (the fit's
    :class:`dask_gmm._em.Blocks` of X and its weights): one extra pass over the
    data, so that a checkpoint of other rows of the same shape is refused
    (the first and last rows alone let a finished checkpoint of other data
    return its model without a pass).
    """
    return {
        "shape": list(X.shape),
        "dtype": str(X.dtype),
        "row_chunks": list(X.chunks[0]),
        "data": f"{blocks.map_reduce(_kernels.digest) % 2**64:016x}",
        "weighted": weighted,
        "args": {k: _plain(getattr(estimator, k)) for k in _ARGS},
    }


def _run_to_dict(r):
    return {
        "covariance_type": r.covariance_type,
        "weights": r.weights.tolist(),
        "means": r.means.tolist(),
        "covariances": r.covariances.tolist(),
        "precisions_cholesky": r.precisions_cholesky.tolist(),
        "lower_bound": r.lower_bound,
        "lower_bounds": list(r.lower_bounds),
        "n_iter": r.n_iter,
        "converged": r.converged,
    }


def _run_from_dict(d):
    arrays = {k: np.asarray(d[k], np.float64) for k in ("weights", "means", "covariances", "precisions_cholesky")}
    return Run(
        d["covariance_type"],
        lower_bound=float(d["lower_bound"]),
        lower_bounds=[float(x) for x in d["lower_bounds"]],
        n_iter=int(d["n_iter"]),
        converged=bool(d["converged"]),
        **arrays,
    )


class Checkpoint:
    """The checkpoint file of one fit."""

    def __init__(self, path, fp):
        self.path = os.fspath(path)
        self.fp = fp

    @classmethod
    def for_fit(cls, estimator, X, blocks, weighted):
        check_folder(estimator.checkpoint)  # before any read of X, not at the first save
        return cls(estimator.checkpoint, fingerprint(estimator, X, blocks, weighted))

    def load(self):
        """The saved runs, or None when there is no checkpoint yet. Refuses a mismatched one."""
        if not os.path.exists(self.path):
            return None
        try:
            with open(self.path) as f:
                state = json.load(f)
        except OSError as exc:
            raise ValueError(f"The checkpoint {self.path!r} cannot be read ({exc}).") from None
        except ValueError as exc:
            state, why = None, str(exc)
        else:
            why = "JSON of another format"
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(
                f"{self.path!r} is not a dask_gmm checkpoint ({why}), and a fit replaces only its own "
                "checkpoints. Choose another checkpoint path."
            )
        try:
            saved = state["fingerprint"]
            runs = [_run_from_dict(d) for d in state["runs"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"The checkpoint {self.path!r} is damaged ({exc!r}). Delete it to start the fit afresh."
            ) from None
        if "data" not in saved:  # written before the data digest (the first and last rows then)
            raise ValueError(
                f"The checkpoint {self.path!r} was written by an older dask_gmm, which recognised the data "
                "otherwise. Delete it to start the fit afresh, or use another checkpoint path."
            )
        now = json.loads(json.dumps(self.fp))
        if saved != now:
            what = [k for k in now if saved.get(k) != now[k]]
            if "args" in what:  # name them
                then = saved.get("args") or {}
                what[what.index("args")] = "arguments " + ", ".join(
                    f"{k} ({_short(then.get(k))} then, {_short(now['args'].get(k))} now)"
                    for k in sorted(set(then) | set(now["args"])) if then.get(k) != now["args"].get(k)
                )
            blocks = ("; X is split into other blocks than when it was written: other chunks, or a "
                      "dask_gmm version that splits them otherwise") if "row_chunks" in what else ""
            raise ValueError(
                f"The checkpoint {self.path!r} belongs to a different fit (its {', '.join(what)} differ{blocks}). "
                "Use the same data and arguments, delete it to start the fit afresh, or use another checkpoint "
                "path (each fit needs its own: clones of an estimator, as in GridSearchCV, share theirs)."
            )
        logger.info("resuming from checkpoint %s at iteration %s", self.path, [r.n_iter for r in runs])
        return runs

    def save(self, runs):
        write_json_atomic(
            self.path, {"format": FORMAT, "fingerprint": self.fp, "runs": [_run_to_dict(r) for r in runs]}
        )
