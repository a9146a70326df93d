"""EM checkpoints: the whole state of every run, written atomically after each iteration.

A checkpoint is JSON (never pickle). Floats round-trip exactly through
``repr``, so a resumed fit ends bit-for-bit where an uninterrupted one does
(on the same kind of CPU: the compiled kernels' sums follow its instruction set).
It records a fingerprint of the data and of the arguments that shape the fit,
and is refused when either differs, and a digest of its runs, so that an
edited one is called damaged even where its numbers still make a model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import reprlib
import stat

import numpy as np

from . import _covariance as cov
from . import _files, _kernels
from ._em import Run
from ._files import blank, check_folder, local_file_path, write_atomic

logger = logging.getLogger(__name__)

FORMAT = "dask_gmm.checkpoint/1"
_ARGS = (
    "n_components",
    "covariance_type",
    "tol",
    "reg_covar",
    "n_init",
    "init_params",
    "random_state",
    "weights_init",
    "means_init",
    "precisions_init",
    "split_every",
)


#: Why a fit needs a checkpoint of its own, in the library's words (the command line says less).
OWN_CHECKPOINT = " (each fit needs its own: clones of an estimator, as in GridSearchCV, share theirs)"


#: How far from 1 a mixture's weights may sum (a normalised sum's rounding; scikit-learn's float32
#: fits are off by up to 1.7e-7): model files, a generator's model and record, fitted attributes.
WEIGHTS_SUM_TOLERANCE = 1e-6


def are_mixture_weights(weights):
    """Whether ``weights`` (a float array) are a mixture's: non-negative, summing to 1 within
    :data:`WEIGHTS_SUM_TOLERANCE`."""
    return not np.any(weights < 0) and abs(weights.sum() - 1.0) <= WEIGHTS_SUM_TOLERANCE


def _plain(v):
    """An argument as JSON: numbers, strings and None as they are, a SeedSequence as its entropy
    and spawn key, array-likes (the ``*_init`` arguments: lists of arrays, DataFrames) as their
    float64 values, never a ``repr`` that rounds them. A Generator or RandomState is not compared,
    as None is not: what it will draw is not known before the fit (the saved runs carry its draws)."""
    if isinstance(v, (np.random.Generator, np.random.RandomState)):
        return "a Generator or RandomState"
    if isinstance(v, np.random.SeedSequence):  # its pool size where it is not NumPy's default (as before it counted)
        pool = {} if v.pool_size == np.random.SeedSequence().pool_size else {"pool_size": v.pool_size}
        return {"entropy": v.entropy, "spawn_key": list(v.spawn_key), **pool}
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    try:
        return np.asarray(v, np.float64).tolist()
    except (TypeError, ValueError):
        return repr(v)


#: The fingerprint's keys as a message names them.
_FINGERPRINT_WORDS = {"row_chunks": "row chunks", "weighted": "sample weights (given or not)",
                      "warm_start_from": "warm start (the fitted model it continues)"}


def _short(value):
    """An argument's value in a message: long lists cut (``means_init`` may hold K x d values)."""
    r = reprlib.Repr()
    r.maxlist, r.maxlevel = 4, 2
    return r.repr(value)


def data_digest(blocks):
    """The ``data`` of a fingerprint: :func:`dask_gmm._kernels.digest` over ``blocks`` (the fit's
    :class:`dask_gmm._em.Blocks` of X and its weights). One extra pass over the data, so that a
    checkpoint of other rows of the same shape is refused (the first and last rows alone let a
    finished checkpoint of other data return its model without a pass)."""
    return f"{blocks.map_reduce(_kernels.digest) % 2**64:016x}"


def fingerprint(estimator, X, weighted, start):
    """What must match for a checkpoint to apply, but the data's content (:func:`data_digest`):
    data shape, chunks, dtype, arguments, start. ``start`` is the fitted model a warm start
    continues (a Run), or None."""
    return {
        "shape": list(X.shape),
        "dtype": str(X.dtype),
        "row_chunks": list(X.chunks[0]),
        "weighted": weighted,
        "args": {k: _plain(getattr(estimator, k)) for k in _ARGS},
        "warm_start_from": None if start is None else {
            k: _plain(getattr(start, k)) for k in ("weights", "means", "precisions_cholesky")},
    }


def runs_digest(runs):
    """blake2b digest of the runs as a checkpoint holds them (JSON): an edit that leaves them valid
    (a mean changed, weights reordered) no longer matches the digest written with them."""
    return hashlib.blake2b(json.dumps(runs, sort_keys=True).encode(), digest_size=16).hexdigest()


def _run_to_dict(r):
    return {"covariance_type": r.covariance_type,
            **fitted_to_dict(r.weights, r.means, r.covariances, r.precisions_cholesky, r.converged, r.n_iter,
                             r.lower_bound, r.lower_bounds)}


def fitted_to_dict(weights, means, covariances, precisions_cholesky, converged, n_iter, lower_bound, lower_bounds):
    """The fitted parameters and history as JSON-ready values (float64 lists; a float that is not
    finite as its string of :data:`NONFINITE`): what :func:`fitted_fields` reads back, for a model
    file and a checkpoint's run alike. Shapes as :func:`fitted_fields` returns them."""
    return {
        "weights": np.asarray(weights, np.float64).tolist(),
        "means": np.asarray(means, np.float64).tolist(),
        "covariances": np.asarray(covariances, np.float64).tolist(),
        "precisions_cholesky": np.asarray(precisions_cholesky, np.float64).tolist(),
        "converged": bool(converged),
        "n_iter": int(n_iter),
        "lower_bound": json_float(lower_bound),
        "lower_bounds": [json_float(x) for x in lower_bounds],
    }


def json_array(d, key, shape):
    """``d[key]`` (nested JSON lists) as a float64 array of ``shape`` and finite values, or a
    ValueError naming ``key``: the check of model files and checkpoints."""
    try:
        a = np.asarray(d[key])
    except ValueError:  # ragged nesting
        raise ValueError(f"'{key}' is not a rectangular array of numbers") from None
    if a.dtype.kind not in "iuf" or _holds_bool(d[key]):  # [true, 5.4] is a float array: true read as 1.0
        raise ValueError(f"'{key}' must hold numbers only")
    if a.shape != shape:
        raise ValueError(f"'{key}' has shape {a.shape}, expected {shape}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"'{key}' holds non-finite values")
    return a


def of_another_version(tag, current):
    """Whether the format ``tag`` of a file is one of another version of ``current``'s
    ("dask_gmm.model/2" for "dask_gmm.model/1")."""
    return str(tag).startswith(current.rpartition("/")[0] + "/") and tag != current


def _holds_bool(v):
    """Whether the nested JSON lists ``v`` (rectangular) hold a boolean anywhere."""
    if not isinstance(v, list):
        return isinstance(v, bool)
    if v and not isinstance(v[0], list):  # a row of numbers: its types, at C speed
        return bool in set(map(type, v))
    return any(_holds_bool(x) for x in v)


def check_history(n_iter, lower_bound, lower_bounds):
    """A ValueError unless the history is one a fit writes: ``n_iter`` finite lower bounds, the last of
    them ``lower_bound``; without iterations, a ``lower_bound`` that is not +inf (-inf after
    ``max_iter=0``, NaN for a model not fitted by EM, as a generator's true model)."""
    if len(lower_bounds) != n_iter:
        raise ValueError(f"'lower_bounds' holds {len(lower_bounds)} values, but 'n_iter' is {n_iter}")
    if not all(np.isfinite(lower_bounds)):
        raise ValueError("'lower_bounds' holds values that are not finite")
    if n_iter and not lower_bound == lower_bounds[-1]:
        raise ValueError(f"'lower_bound' is {lower_bound!r}, not the last of 'lower_bounds' ({lower_bounds[-1]!r})")
    if lower_bound == np.inf:
        raise ValueError("'lower_bound' is +Infinity")


def _run_from_dict(d, covariance_type, n_components, n_features):
    """A saved run, checked as a model file is (a ValueError on anything a fit cannot have written)."""
    if d["covariance_type"] != covariance_type:
        raise ValueError(f"a run of covariance_type {d['covariance_type']!r}")
    params, history = fitted_fields(d, covariance_type, n_components, n_features)
    return Run(covariance_type, *params, **history)


#: The strings that stand for the floats JSON has no number for (lower bounds, in model files and checkpoints).
NONFINITE = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def json_float(x):
    """``x`` as a strict JSON value: the float, or its string of :data:`NONFINITE` (where
    ``json.dumps`` would write the ``-Infinity`` that strict parsers refuse)."""
    x = float(x)
    if np.isfinite(x):
        return x
    return "NaN" if np.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def json_int(d, key, low, high):
    """``d[key]``, or a ValueError naming ``key`` unless it is an integer in [low, high]."""
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        raise ValueError(f"'{key}' must be an integer in [{low}, {high}], got {v!r}")
    return v


def json_number(v, key):
    """The float of the JSON value ``v`` (a number, or a string of :data:`NONFINITE`), else a
    ValueError naming ``key``."""
    if isinstance(v, str) and v in NONFINITE:
        return NONFINITE[v]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"'{key}' must be a number, got {v!r}")
    return float(v)


def fitted_fields(d, covariance_type, n_components, n_features):
    """The fitted parameters and history that ``d`` holds (a model file's object, or a
    checkpoint's run), checked: a ValueError naming the first key that a fit cannot have written.

    Returns
    -------
    params : (weights (K,), means (K, d), covariances, precisions_cholesky), the last two of
        :func:`dask_gmm._covariance.cov_shape`
    history : dict of converged, n_iter, lower_bound, lower_bounds (keyword arguments of
        :class:`dask_gmm._em.Run` and :func:`dask_gmm.modelfile.fitted_model`)
    """
    K, shape = n_components, cov.cov_shape(covariance_type, n_components, n_features)
    n_iter = json_int(d, "n_iter", 0, 2**63 - 1)
    weights = json_array(d, "weights", (K,))
    means = json_array(d, "means", (K, n_features))
    covariances, pc = json_array(d, "covariances", shape), json_array(d, "precisions_cholesky", shape)
    if np.any(weights < 0):
        raise ValueError(f"'weights' must be non-negative and sum to 1, got {float(weights.min())!r}")
    if abs(weights.sum() - 1.0) > WEIGHTS_SUM_TOLERANCE:
        raise ValueError(f"'weights' must be non-negative and sum to 1, got sum {float(weights.sum())!r}")
    cov.check_consistent(covariances, pc, covariance_type)
    with np.errstate(over="ignore"):
        precisions = cov.precisions_from_precision_cholesky(pc, covariance_type)
    if not np.all(np.isfinite(precisions)):
        raise ValueError("'covariances' are too small for float64: the precisions, their inverses, overflow "
                         "(variances near 1e-308); fit the data in larger units")
    if not isinstance(d["converged"], bool):
        raise ValueError(f"'converged' must be true or false, got {d['converged']!r}")
    if not isinstance(d["lower_bounds"], list):
        raise ValueError("'lower_bounds' must be a list of numbers")
    lower_bounds = [json_number(v, "lower_bounds") for v in d["lower_bounds"]]
    lower_bound = json_number(d["lower_bound"], "lower_bound")
    check_history(n_iter, lower_bound, lower_bounds)
    return (weights, means, covariances, pc), dict(converged=d["converged"], n_iter=n_iter, lower_bound=lower_bound,
                                                    lower_bounds=lower_bounds)


def damage(state):
    """Why the checkpoint dict ``state`` (of this format tag) is damaged, its fingerprint or runs missing or
    of the wrong kind (``"KeyError('runs')"``), else None."""
    try:
        saved = state["fingerprint"]
        if not isinstance(saved, dict) or not isinstance(saved.get("args"), dict) or not isinstance(state["runs"], list):
            raise ValueError("a fingerprint or runs of the wrong kind")
    except (ValueError, KeyError) as exc:
        return repr(exc)
    return None


def of_older_layout(state):
    """Whether the checkpoint dict ``state`` (of this format tag) was written by a dask_gmm before 339f3fe
    (2026-12-01), which recorded its data, warm start and runs otherwise (no ``runs_digest``): not
    resumed (its fit cannot be told to be the one asking)."""
    saved = state.get("fingerprint")
    return isinstance(saved, dict) and not ("data" in saved and "warm_start_from" in saved and "runs_digest" in state)


class Checkpoint:
    """The checkpoint file of one fit."""

    def __init__(self, path, fp, expected, digest):
        self.path = local_file_path(path, "checkpoint")
        self._fp = fp  # the fingerprint but for the data's content, which digest() makes (a pass)
        self._digest = digest
        self.expected = expected  # (n_runs, covariance_type, n_components, n_features, max_iter)
        self._there = None  # what :meth:`load` found at the path, then what :meth:`save` put there
        self._bytes = None  # the SHA-256 of that file's bytes (:func:`content_digest`)

    @property
    def fp(self):
        """The whole fingerprint, the data's digest made at the first call."""
        if "data" not in self._fp:
            self._fp = {**self._fp, "data": self._digest()}
        return self._fp

    @staticmethod
    def check_path(path, data):
        """Refuse, before any work, a checkpoint ``path`` that cannot be written or that is, holds
        or lies inside the input ``data`` when that is a path or URL (a fit never writes there)."""
        path = local_file_path(path, "checkpoint")
        if "://" in path:
            raise ValueError(f"Cannot write the checkpoint to {path!r}: checkpoints are local files. Give a local "
                             "path (or a file:// URL).")
        check_folder(path)
        _files.refuse_output_inside(path, "the checkpoint", data if isinstance(data, (str, os.PathLike)) else None)

    @classmethod
    def for_fit(cls, estimator, X, blocks, weighted, start):
        """The checkpoint of ``estimator``'s fit of X (``start``: the Run a warm start continues, or None)."""
        expected = (1 if start is not None else estimator.n_init, estimator.covariance_type,
                    estimator.n_components, X.shape[1], estimator.max_iter)
        return cls(estimator.checkpoint, fingerprint(estimator, X, weighted, start), expected,
                   lambda: data_digest(blocks))

    def load(self):
        """The saved runs, or None when there is no checkpoint yet (no file, or an empty one, as
        ``mktemp`` makes, or one of blanks). Refuses a mismatched one."""
        self._there, self._bytes = identity(self.path), None
        if not os.path.exists(self.path) or blank(self.path):
            self._bytes = content_digest(self.path)
            return None
        damaged = f"The checkpoint {self.path!r} is damaged ({{}}). Delete it to start the fit afresh."
        try:
            raw, state = _read_object(self.path)
        except OSError as exc:
            raise ValueError(f"The checkpoint {self.path!r} cannot be read ({exc}).") from None
        except RecursionError:
            state, why, cut = None, "arrays nested too deeply to read", ""
        except ValueError as exc:
            state, why, cut = None, str(exc), "cut short or corrupted: "
        else:
            why = "JSON of another format" if state != () else "not a JSON object"
        if state is None and _begins_as_checkpoint(self.path):
            raise ValueError(damaged.format(cut + why))
        if isinstance(state, dict) and of_another_version(state.get("format"), FORMAT):
            raise ValueError(
                f"The checkpoint {self.path!r} was written by another version of dask_gmm (format "
                f"{state.get('format')!r}; this version writes {FORMAT!r}). Delete it to start the fit afresh, "
                "or use another checkpoint path."
            )
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(
                f"{self.path!r} is not a dask_gmm checkpoint ({why}), and a fit replaces only its own "
                "checkpoints. Choose another checkpoint path."
            )
        why = damage(state)
        if why is not None:
            raise ValueError(damaged.format(why))
        saved = state["fingerprint"]
        if of_older_layout(state):
            raise ValueError(
                f"The checkpoint {self.path!r} was written by an older dask_gmm, which recorded the fit it belongs "
                "to otherwise, so this version cannot tell it is this fit's. Finish that fit with the version that "
                "wrote it, or delete the checkpoint to start the fit afresh, or use another checkpoint path."
            )
        # max_iter is no part of the fit: a larger one continues it (it was, in checkpoints written before)
        saved = {**saved, "args": {k: v for k, v in saved["args"].items() if k != "max_iter"}}
        self._refuse_other_fit(saved, self._fp, skip="data")  # arguments first: the data's digest is a pass
        n_runs, *shape, max_iter = self.expected
        try:
            if len(state["runs"]) != n_runs:
                raise ValueError(f"{len(state['runs'])} runs where the fit has {n_runs}")
            runs = [_run_from_dict(d, *shape) for d in state["runs"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(damaged.format(repr(exc))) from None
        if state["runs_digest"] != runs_digest(state["runs"]):
            raise ValueError(damaged.format("its runs are not those written with it: edited, or corrupted"))
        self._refuse_other_fit(saved, self.fp)
        made = max(r.n_iter for r in runs)
        if made > max_iter:
            raise ValueError(
                f"The checkpoint {self.path!r} holds {made} iterations, more than max_iter ({max_iter}) allows. "
                f"Pass max_iter={made} or more to continue it, or delete it to start the fit afresh."
            )
        # DEBUG: the estimator's own line says so where its verbose asks (verbose=0 had logged this at INFO)
        logger.debug("resuming from checkpoint %s after iteration %s", self.path, ", ".join(str(r.n_iter) for r in runs))
        self._bytes = hashlib.sha256(raw).hexdigest()
        return runs

    def _refuse_other_fit(self, saved, fp, skip=None):
        """A ValueError naming what differs between the ``saved`` fingerprint and ``fp``, but the key ``skip``."""
        now = json.loads(json.dumps(fp))
        saved = {k: v for k, v in saved.items() if k != skip}
        if saved != now:
            what = [k for k in {**now, **saved} if saved.get(k) != now.get(k)]
            if "args" in what:  # name them
                then = saved.get("args") or {}
                what[what.index("args")] = "arguments " + ", ".join(
                    f"{k} ({_short(then.get(k))} then, {_short(now['args'].get(k))} now)"
                    for k in sorted(set(then) | set(now["args"])) if then.get(k) != now["args"].get(k)
                )
            blocks = ("; X is split into other blocks than when it was written: other chunks, or a "
                      "dask_gmm version that splits them otherwise") if "row_chunks" in what and "shape" not in what else ""
            singular = len(what) == 1 and what[0] in ("shape", "dtype", "warm_start_from")
            what = [_FINGERPRINT_WORDS.get(k, k) for k in what]
            raise ValueError(
                f"The checkpoint {self.path!r} belongs to a different fit (its {', '.join(what)} "
                f"{'differs' if singular else 'differ'}{blocks}). "
                "Use the same data and arguments, delete it to start the fit afresh, or use another checkpoint "
                f"path{OWN_CHECKPOINT}."
            )

    def save(self, runs):
        """Write the checkpoint of ``runs`` over what :meth:`load` found at the path (checked then), or
        over this fit's last checkpoint: what else was put there during the fit stays, and the fit
        fails naming it."""
        runs = [_run_to_dict(r) for r in runs]
        state = {"format": FORMAT, "fingerprint": self.fp, "runs": runs, "runs_digest": runs_digest(runs)}
        text = json.dumps(state)
        write_atomic(self.path, lambda f: f.write(text), replaces=self._replaces_only_its_own)
        self._there, self._bytes = identity(self.path), hashlib.sha256(text.encode()).hexdigest()

    def _replaces_only_its_own(self, path):
        """Checked just before the rename (:func:`write_atomic`): a file of other bytes than the fit
        last found or wrote there. Its metadata alone changed (``chmod``, ``touch``, a hard link, a
        sync client's extended attributes) is no change: a review's ``chmod 600`` had ended a fit
        at its 25th iteration."""
        if not os.path.lexists(path):
            return
        now = identity(path)
        if now == self._there:
            return
        if (self._bytes is None or now is None or self._there is None or now[2] != self._there[2]
                or content_digest(path) != self._bytes):  # a link, or a file unread, is no file of the fit's
            raise ValueError(f"{path!r} was written or replaced during the fit by something else than the fit, and "
                             "is kept; a fit replaces only its own checkpoints (another fit given the same checkpoint "
                             "writes it too: each fit needs its own). Choose another checkpoint path, or remove it "
                             "yourself, and rerun.")


def _read_object(path):
    """``(the bytes of the file at path, what JSON makes of them)``, the latter ``()`` where the file
    does not begin as a JSON object (a data file: only its first 4 KiB are read). OSError, and
    ValueError or RecursionError from the JSON, propagate."""
    with open(path, "rb") as f:
        raw = f.read(4096)
        if raw.lstrip()[:1] != b"{":
            return raw, ()
        raw += f.read()
    return raw, json.loads(raw)


def _begins_as_checkpoint(path):
    """Whether the (unparsable) file at ``path`` begins as a checkpoint does."""
    with open(path, "rb") as f:
        head = f.read(200)
    return f'"format": "{FORMAT}"'.encode() in head


def recorded_seed(path):
    """``(True, random_state)`` recorded in the checkpoint at ``path`` when it is a readable checkpoint
    of this format recording an int or None, else ``(False, None)`` (its load says what is wrong)."""
    try:
        state = _read_object(local_file_path(path, "checkpoint"))[1]
    except (OSError, ValueError, RecursionError):
        return False, None
    fingerprint = state.get("fingerprint") if isinstance(state, dict) and state.get("format") == FORMAT else None
    args = fingerprint.get("args") if isinstance(fingerprint, dict) else None
    seed = args.get("random_state", "absent") if isinstance(args, dict) else "absent"
    if seed is None or (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0):
        return True, seed
    return False, None


def summary(path):
    """What the checkpoint at ``path`` records, for ``dask-gmm info``, or None where the file is no
    JSON object of this format tag (a model file, say: its own reader says what it is).

    Returns
    -------
    dict or None
        ``shape``, ``dtype``, ``row_chunks`` (their number), ``weighted`` and ``warm_start`` of the fit
        it belongs to; ``args``, its arguments as recorded (``random_state`` an int, None or a
        description); ``runs``, each run's ``n_iter``, ``lower_bound`` and ``converged``.

    Raises
    ------
    ValueError
        A checkpoint a fit refuses as damaged, or one of an older layout (:func:`of_older_layout`).
    """
    damaged = "it is a damaged checkpoint of a fit ({}), and a fit refuses it: delete it to start that fit afresh"
    path = local_file_path(path, "checkpoint")
    try:
        state = _read_object(path)[1]
    except (OSError, ValueError, RecursionError) as exc:  # else its reader as a model file says what is wrong
        if isinstance(exc, ValueError) and _begins_as_checkpoint(path):
            raise ValueError(damaged.format(f"cut short or corrupted: {exc}")) from None
        return None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        return None
    why = damage(state)
    if why is not None:
        raise ValueError(damaged.format(why))
    if of_older_layout(state):
        raise ValueError("it is a checkpoint of a fit by an older dask_gmm, which this version does not resume: "
                         "finish that fit with the version that wrote it, or delete it")
    fp, args = state["fingerprint"], state["fingerprint"]["args"]
    try:
        K = json_int(args, "n_components", 1, 2**63 - 1)
        runs = [_run_from_dict(d, args["covariance_type"], K, fp["shape"][1]) for d in state["runs"]]
        if not runs or state["runs_digest"] != runs_digest(state["runs"]):
            raise ValueError("its runs are not those written with it: edited, or corrupted")
        return {"shape": [int(n) for n in fp["shape"]], "dtype": str(fp["dtype"]), "row_chunks": len(fp["row_chunks"]),
                "weighted": bool(fp["weighted"]), "warm_start": fp["warm_start_from"] is not None, "args": args,
                "runs": [{"n_iter": r.n_iter, "lower_bound": r.lower_bound, "converged": r.converged} for r in runs]}
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ValueError(damaged.format(exc if type(exc) is ValueError else repr(exc))) from None


def content_digest(path):
    """The SHA-256 (hex) of the bytes of the regular file at ``path``, not through a link; None where
    there is none, or it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        return hashlib.file_digest(f, "sha256").hexdigest()


def identity(path):
    """What tells the file (or link) at ``path`` from another written there since: None if none."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns
