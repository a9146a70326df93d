"""Per-chunk kernels: one block of rows plus small parameters in, NumPy out.

Nothing here imports dask. Every kernel works on a block ``X`` of shape
(n, d) in any float dtype and accumulates in float64. ``row_offset`` is the
global index of the block's first row: bad rows are named by it in errors,
and :func:`digest` hashes it with the block.

The statistics of a block are a :class:`SuffStats`; :func:`combine` adds any
number of them (or lists of them, one per model run in lockstep; their least
weights, ``least``, it takes the least of). Because the
second moments are centred on a reference known to every block (the current
means), adding is exact and no pairwise moment merge is needed.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from typing import NamedTuple

import numpy as np

from ._covariance import RESP_MIN_LOG, centred_moments, log_gaussian_prob

from . import _numba  # the compiled kernels; the NumPy kernels below stay the reference

#: Whether the EM, per-row and k-means kernels dispatch to :mod:`dask_gmm._numba` (same
#: contracts; fits 12-17x faster, the initialisation's k-means passes 3-18x). On unless the
#: environment sets DASK_GMM_NUMBA=0 (or false, no, off: they had left it on, a review);
#: tests/test_numba.py switches it to compare both paths.
USE_NUMBA = os.environ.get("DASK_GMM_NUMBA", "1").strip().lower() not in ("0", "false", "no", "off")


#: Rows processed at a time inside a block: bounds temporaries to a few MiB whatever the chunk size.
SUB_BLOCK_ROWS = 65_536


class Model(NamedTuple):
    """The small parameters a kernel needs for one mixture."""

    covariance_type: str
    log_weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, d)
    precisions_cholesky: np.ndarray  # shape by covariance type
    #: (K, d): where the E-step centres its moments, when not on the means (:func:`dask_gmm._em.recentred`)
    centres: np.ndarray | None = None


class SuffStats(NamedTuple):
    """Sufficient statistics of a set of rows, all float64.

    nk : (K,) sum of weighted responsibilities
    s1c : (K, d) ``sum r (x - ref)``
    s2 : centred second moments, shape by covariance type
    objective : float, sum of weighted log-likelihoods (EM) or of squared
        distances to the nearest centre (k-means)
    weight : float, sum of sample weights (the number of rows if unweighted)
    least : float, the smallest positive sample weight (1.0 if unweighted, inf if none is
        positive): the unit of scikit-learn's floor on nk (see
        :func:`dask_gmm._covariance.gaussian_parameters`); :func:`combine` takes the least
    """

    nk: np.ndarray
    s1c: np.ndarray
    s2: np.ndarray
    objective: float
    weight: float
    least: float


class Samples(NamedTuple):
    """Rows sampled by a k-means|| round (m, d) and the cost ``sum w D^2`` of the rows seen."""

    rows: np.ndarray
    cost: float


def combine(*parts):
    """Merge per-block results: add SuffStats, tuples, arrays and floats; concatenate Samples' rows.

    A list (one entry per model or run evaluated in lockstep) is merged entry by entry.
    """
    with np.errstate(over="ignore"):  # an overflow gives inf, which the callers refuse by name
        return _combined(parts)  # (one errstate for all the sums: 3 us each, 5 a SuffStats)


def _combined(parts):
    first = parts[0]
    if isinstance(first, list):
        return [_combined(items) for items in zip(*parts)]
    if isinstance(first, Samples):
        return Samples(np.concatenate([p.rows for p in parts]), sum(p.cost for p in parts))
    if isinstance(first, SuffStats):
        return SuffStats(*(_combined(items) for items in zip(*(p[:-1] for p in parts))), min(p.least for p in parts))
    if isinstance(first, tuple):
        merged = (_combined(items) for items in zip(*parts))
        return type(first)(*merged) if hasattr(first, "_fields") else tuple(merged)
    return sum(parts[1:], parts[0])


def folded(values):
    """:func:`combine` of ``values`` in order, taken one at a time: the bytes of ``combine(*values)``
    (a left fold), holding only the running total and the value in hand, not every value at once
    (a block's pieces' statistics, K d^2 8 bytes each: 268 MiB at d=512, K=8)."""
    return functools.reduce(combine, values)


def total_weight(weight):
    """``weight``, a reduced total sample weight (:class:`SuffStats`' ``weight``, the second
    value of :func:`score_stats`), or a ValueError when it is 0.

    The blocks refuse negative weights, so it is 0 only when every weight is 0:
    a ValueError then, not a ZeroDivisionError or NaN parameters.
    """
    if weight == 0:
        raise ValueError(
            "sample_weight sums to 0: every row has weight zero, which leaves no data to fit or score. "
            "Give at least one row a positive weight."
        )
    if not np.isfinite(weight):
        raise ValueError("sample_weight sums to more than float64 can hold. Rescale the weights: only "
                         f"their ratios matter{_RATIOS}.")
    if weight < LEAST_TOTAL_WEIGHT:
        raise ValueError(f"sample_weight sums to {weight:.3g}: weights this small are subnormal floats, whose "
                         "products keep few digits (weights of 5e-324 moved a fit's covariances by 17 %). "
                         f"Multiply every weight by one factor: only their ratios matter{_RATIOS}.")
    return weight


_RATIOS = (" to a GaussianMixture (a BayesianGaussianMixture's priors weigh as much whatever the total, "
           "so a rescaled total changes its fit)")


#: The least total sample weight computed with: 2**-1000 (9.3e-302). Rows whose weighted terms are
#: subnormal then hold less than ``n_samples`` * 2.5e-324 / 9.3e-302, 3e-14 of the total at 1e9 rows.
LEAST_TOTAL_WEIGHT = 2.0**-1000


def finite_total(total):
    """``total``, a (weighted) sum over the rows (a number or an array), or a ValueError when it
    overflowed (each block's was finite, or inf quietly, and their sum is not): never inf or -inf."""
    if not np.all(np.isfinite(total)):
        raise ValueError("A weighted sum over the rows overflowed: the data or their sample weights are "
                         "too large in magnitude. Rescale them.")
    return total


def per_weight(total, weight):
    """``total / weight``: a sum over the rows per unit of sample weight (a mean for unit weights);
    ``weight`` as :func:`total_weight` takes it, ``total`` as :func:`finite_total`."""
    return finite_total(total) / total_weight(weight)


def many(X, kernel, arg_lists, sample_weight=None, row_offset=0):
    """``kernel`` applied to one read of the block for several runs (lockstep).

    ``arg_lists[j]`` are run j's arguments. Returns a list, one result per run.
    """
    return [kernel(X, *args, sample_weight=sample_weight, row_offset=row_offset) for args in arg_lists]


def is_additive(kernel, args=()):
    """Whether ``kernel(block, *args)`` over a block equals :func:`combine` over its pieces.

    True for the :func:`sub_blocked` kernels and :func:`e_step_stats`, and for
    :func:`many` of one of them.
    """
    if kernel is many:
        return is_additive(args[0])  # (kernel, arg_lists)
    return getattr(kernel, "additive", False)


def sub_blocked(kernel):
    """Run an additive kernel on slices of SUB_BLOCK_ROWS rows and combine the results.

    Bounds the (n, K) temporaries to a few MiB whatever the chunk size, and keeps
    them in cache. Only for kernels whose outputs add up (random ones draw by
    row index, :func:`row_uniforms`); marks them ``additive`` (see :func:`is_additive`).
    """

    @functools.wraps(kernel)
    def wrapper(X, *args, sample_weight=None, row_offset=0, **kwargs):
        n, step = X.shape[0], SUB_BLOCK_ROWS
        if n <= step:
            return kernel(X, *args, sample_weight=sample_weight, row_offset=row_offset, **kwargs)
        return folded(
            kernel(
                X[i : i + step],
                *args,
                sample_weight=None if sample_weight is None else sample_weight[i : i + step],
                row_offset=row_offset + i,
                **kwargs,
            )
            for i in range(0, n, step)
        )

    wrapper.additive = True
    return wrapper


# ------------------------------------------------------------------ validation
class RowError(ValueError):
    """A ValueError about one row of the input, ``row`` (0-based, in the order the rows are read),
    which an estimator given a DataFrame names by its index label too
    (:func:`dask_gmm.io.row_label`)."""

    def __init__(self, message, row):
        super().__init__(message)
        self.row = int(row)

    def __reduce__(self):  # whole through pickle: a distributed worker's error reaches the client
        return type(self), (self.args[0], self.row)

    def labelled(self, label):
        """This error as a ValueError that also names the row's index ``label`` (a NumPy scalar as
        its Python value: 1007, not ``np.int64(1007)``)."""
        label = label.item() if isinstance(label, np.generic) else label
        return ValueError(f"{self} Row {self.row} is the one of index label {label!r}.")


#: Added when a whole block is NaN: how a Zarr chunk that its reader cannot see looks (a dask
#: array of a store given to a cluster whose workers do not share its files, say).
_ALL_NAN = (" Every value of these rows is NaN, as a Zarr chunk missing from its store reads (its fill value): "
            "check that the chunk exists and that every worker reads the same files.")


def check_block(X, sample_weight, row_offset):
    """Raise a ValueError (:class:`RowError`) naming the rows if X or the weights are not usable."""
    bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
    if bad.size:
        raise RowError(
            f"Input X contains NaN or infinity in {bad.size} row(s) among "
            f"rows {row_offset}-{row_offset + X.shape[0] - 1} (first bad row: "
            f"{row_offset + bad[0]}). Remove or impute these rows; "
            "dask_gmm never changes your data." + (_ALL_NAN if np.isnan(X).all() else ""),
            row_offset + bad[0],
        )
    check_weights(sample_weight, row_offset)


def check_weights(sample_weight, row_offset):
    """Raise a ValueError (:class:`RowError`) naming the first row whose weight is negative, NaN or
    infinite."""
    w = sample_weight
    if w is not None and (not np.all(np.isfinite(w)) or (w.size and w.min() < 0)):
        bad = np.flatnonzero(~(w >= 0) | np.isinf(w))[0]
        raise RowError(f"sample_weight must be finite and non-negative; row {row_offset + bad} has weight "
                       f"{float(w[bad])!r}.", row_offset + bad)


def _after_the_fact(X, ok, row_offset, sample_weight=None, model=None):
    """Name the bad rows once a result turned out non-finite (no extra sweep otherwise): a NaN or
    infinite row, else the first row whose own log-likelihood under ``model`` overflowed, if one did
    (else only a weighted sum did)."""
    if not ok:
        check_block(X, None, row_offset)
        first = None if model is None else _first_overflowing_row(X, model)
        summed = "sum" if sample_weight is None else "weighted sum"
        which = (f" (each row's own is finite: their {summed} is not)" if first is None
                 else f" (first row whose own log-likelihood did: {row_offset + first})")
        what = "the data are" if sample_weight is None else "the data or their sample weights are"
        message = (
            f"The log-likelihood of rows {row_offset}-{row_offset + X.shape[0] - 1} "
            f"overflowed{which}: {what} too large in magnitude, or too far from the model's means for its "
            "precisions. Rescale them, or check the model's parameters."
        )
        raise ValueError(message) if first is None else RowError(message, row_offset + first)


def _first_overflowing_row(X, model):
    """Index of the first row of X whose log-likelihood under ``model`` is not finite, or None."""
    for start in range(0, X.shape[0], SUB_BLOCK_ROWS):
        with np.errstate(all="ignore"):
            lse = log_prob_resp(X[start : start + SUB_BLOCK_ROWS], model)[0]
        bad = np.flatnonzero(~np.isfinite(lse))
        if bad.size:
            return start + int(bad[0])
    return None


def _weigh(values, sample_weight):
    """Sum of values (n,) weighted by sample_weight, and the total weight (an overflow gives inf
    or NaN, quietly: the callers check and raise).

    The weighted sum is NumPy's sum of the products, in the order of the unweighted sum, so that
    unit weights give the bytes of no weights (einsum's loop had summed in another order: a review
    saw the reference kernels' ``lower_bound_`` differ in its last bit). Not BLAS's dot: OpenBLAS
    runs a dot of over 10,000 values on several threads where BLAS is not limited to one (an
    in-process cluster's workers, a user's pool), and sums it in another order there, so the last
    bit of a weighted ``score`` depended on where it ran (37 us a 65,536-row piece, as einsum's)."""
    with np.errstate(over="ignore", invalid="ignore"):  # "overflow encountered in reduce"; 0 * -inf
        if sample_weight is None:
            return float(values.sum()), float(values.shape[0])
        return float((sample_weight * values).sum()), float(sample_weight.sum())


def least_weight(sample_weight):
    """:class:`SuffStats`' ``least`` of a block: its smallest positive sample weight (1.0 for None,
    inf when none is positive)."""
    if sample_weight is None:
        return 1.0
    positive = sample_weight[sample_weight > 0]
    return float(positive.min()) if positive.size else math.inf


def _logsumexp_rows(a):
    """(lse (n,), a - lse (n, K)): the row-wise log-sum-exp of ``a`` (n, K), stable for large magnitudes,
    and ``a`` less it, taken as ``(a - max) - log(sum exp(a - max))``: where ``max + log(sum)`` rounds to
    ``max`` (beyond about 1e16), ``a - lse`` would make K responsibilities of 1 in a row of ties. An
    entry more than 600 below its row's largest counts as -inf (a responsibility of 0), as in the
    compiled kernels (:data:`dask_gmm._covariance.RESP_MIN_LOG`)."""
    m = a.max(axis=1)
    m_safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        shifted = a - m_safe[:, None]
        shifted[shifted < RESP_MIN_LOG] = -np.inf  # NaN stays NaN
        log_sum = np.log(np.exp(shifted).sum(axis=1))
        return m_safe + log_sum, shifted - log_sum[:, None]


# ------------------------------------------------------------------ EM
def weighted_log_prob(X, model):
    """log pi_k + log N(x | k), shape (n, K)."""
    return (
        log_gaussian_prob(X, model.means, model.precisions_cholesky, model.covariance_type)
        + model.log_weights
    )


def log_prob_resp(X, model):
    """Per-row log-likelihood (n,) and log-responsibilities (n, K).

    A row whose log-likelihood is not finite gets NaN responsibilities, quietly:
    the callers check the log-likelihood and raise. A log-responsibility below -600
    is -inf (:func:`_logsumexp_rows`).
    """
    return _logsumexp_rows(weighted_log_prob(X, model))


def e_step_stats(X, models, sample_weight=None, row_offset=0):
    """One E-step sweep of a block for every model in ``models``.

    The compiled kernel sweeps the whole block (it makes nothing per row); the
    NumPy reference goes in slices of SUB_BLOCK_ROWS (:func:`sub_blocked`).

    Parameters
    ----------
    X : ndarray of shape (n, d)
    models : list of Model, all evaluated on this one read of the block
    sample_weight : ndarray of shape (n,) or None
    row_offset : int, the block's first row in the whole data (to name a bad row)

    Returns
    -------
    list of SuffStats, centred on each model's ``centres`` where given, else on its means
    """
    if not USE_NUMBA:
        return _e_step_stats_numpy(X, models, sample_weight=sample_weight, row_offset=row_offset)
    check_weights(sample_weight, row_offset)
    weight = float(X.shape[0]) if sample_weight is None else float(sample_weight.sum())
    out = []
    for model in models:
        if not _numba.exact(model, X.shape[1]):
            out += _e_step_stats_numpy(X, [model], sample_weight=sample_weight, row_offset=row_offset)
            continue
        got = _numba.e_step(X, model, sample_weight)
        if got is None:  # a light component far from the tiles' centre holds rows
            out += _e_step_stats_numpy(X, [model], sample_weight=sample_weight, row_offset=row_offset)
            continue
        nk, s1c, s2, ll = got
        _after_the_fact(X, math.isfinite(ll), row_offset, sample_weight, model)
        out.append(SuffStats(nk, s1c, s2, ll, weight, least_weight(sample_weight)))
    return out


e_step_stats.additive = True  # its statistics add up over pieces of a block, as a sub_blocked kernel's


@sub_blocked
def _e_step_stats_numpy(X, models, sample_weight=None, row_offset=0):
    """:func:`e_step_stats` with the NumPy kernels (the reference)."""
    check_weights(sample_weight, row_offset)
    out = []
    for model in models:
        lse, log_resp = log_prob_resp(X, model)
        resp = np.exp(log_resp)
        if sample_weight is not None:
            resp *= sample_weight[:, None]
        ll, weight = _weigh(lse, sample_weight)
        _after_the_fact(X, np.isfinite(ll), row_offset, sample_weight, model)
        ref = model.means if model.centres is None else model.centres
        s1c, s2 = centred_moments(X, resp, ref, model.covariance_type)
        out.append(SuffStats(resp.sum(axis=0), s1c, s2, ll, weight, least_weight(sample_weight)))
    return out


@sub_blocked
def score_stats(X, model, sample_weight=None, row_offset=0):
    """(sum of weighted per-row log-likelihoods, total weight) of a block."""
    check_weights(sample_weight, row_offset)
    got = _compiled_rows(X, model, _numba.SCORE)
    lse = got[0] if got else log_prob_resp(X, model)[0]
    ll, weight = _weigh(lse, sample_weight)
    _after_the_fact(X, np.isfinite(ll), row_offset, sample_weight, model)
    return ll, weight


def digest(X, sample_weight=None, row_offset=0):
    """A 64-bit integer of the block's bytes, its weights' and its first row's index (blake2b).

    Summed over the blocks (:func:`combine`), it changes when any byte of X or
    of the weights does: a checkpoint's fingerprint of the data.
    """
    h = hashlib.blake2b(np.int64(row_offset).tobytes(), digest_size=8)
    h.update(np.ascontiguousarray(X))
    if sample_weight is not None:
        h.update(np.ascontiguousarray(sample_weight, dtype=np.float64))
    return int.from_bytes(h.digest(), "little")


def _compiled_rows(X, model, what, out=None):
    """:func:`dask_gmm._numba.per_row`'s (output, ok), or None where the reference kernels must
    compute X: switched off, a model the compiled kernels would compute less exactly
    (:func:`dask_gmm._numba.exact`), or one of whose light far components holds a row of X."""
    if USE_NUMBA and _numba.exact(model, X.shape[1]):
        return _numba.per_row(X, model, what, out)
    return None


# The per-row kernels return a new array, or fill ``out`` (C-contiguous, of the
# returned shape and dtype) and return it.
def score_samples(X, model, row_offset=0, out=None):
    """Per-row log-likelihood, shape (n,), float64."""
    return _per_row(X, model, _numba.SCORE, row_offset, out)


def predict(X, model, row_offset=0, out=None):
    """Most probable component of each row, shape (n,), int64.

    A row whose largest log-probability is not finite has no most probable
    component to give (all -inf: its distances overflowed, and argmax would
    say 0 whatever the model): a ValueError, as from :func:`predict_proba`.
    """
    return _per_row(X, model, _numba.LABEL, row_offset, out)


def predict_proba(X, model, row_offset=0, out=None):
    """Responsibilities, shape (n, K), float64."""
    return _per_row(X, model, _numba.PROBA, row_offset, out)


def _reference_score(X, model):
    lse = log_prob_resp(X, model)[0]
    return lse, np.isfinite(lse).all()


def _reference_label(X, model):
    wlp = weighted_log_prob(X, model)
    return wlp.argmax(axis=1), np.isfinite(wlp.max(axis=1)).all()


def _reference_proba(X, model):
    lse, log_resp = log_prob_resp(X, model)
    return np.exp(log_resp), np.isfinite(lse).all()


_REFERENCE_ROWS = {_numba.SCORE: _reference_score, _numba.LABEL: _reference_label, _numba.PROBA: _reference_proba}


def _per_row(X, model, what, row_offset, out):
    """One per-row output of X (``what``, as :func:`dask_gmm._numba.per_row` names them), compiled
    where it may be (:func:`_compiled_rows`), else by the reference kernels; a row without a finite
    log-likelihood is a ValueError (:func:`_after_the_fact`). The compiled kernels fill ``out`` as
    they go, so it may hold part of the output on that error; the reference kernels leave it untouched."""
    got = _compiled_rows(X, model, what, out)
    if got:
        values, ok = got
    else:
        with np.errstate(invalid="ignore"):  # a row of inf: NaN (inf * 0), refused below by name
            values, ok = _REFERENCE_ROWS[what](X, model)
    _after_the_fact(X, ok, row_offset, model=model)
    return values if got else _into(out, values)


def _into(out, values):
    if out is None:
        return values
    out[...] = values
    return out


# ------------------------------------------------------------------ k-means and initialisation
def sq_distances(X, centres):
    """Squared Euclidean distances (n, m), summed as ``sum (x - c)^2`` centre by centre: the
    reference, exact but not fast (an expansion ``|x|^2 - 2 x.c + |c|^2`` through one GEMM is
    faster at large d, but loses small distances between far-apart centres)."""
    d2 = np.empty((X.shape[0], centres.shape[0]))
    for j, c in enumerate(centres):
        diff = X - c
        d2[:, j] = np.einsum("ij,ij->i", diff, diff)
    return d2


def nearest_centre(X, centres):
    """Index (n,) and squared distance (n,) of each row's nearest centre (the first of equals).

    Compiled (:func:`dask_gmm._numba.nearest`) unless switched off; the NumPy
    reference works SUB_BLOCK_ROWS rows at a time, so the (rows, m) distance
    matrix stays small. A row with NaN or infinity gets a non-finite distance.
    """
    if USE_NUMBA:
        return _numba.nearest(X, centres)
    n = X.shape[0]
    labels, d2 = np.empty(n, np.intp), np.empty(n)
    for i in range(0, n, SUB_BLOCK_ROWS):
        d = sq_distances(X[i : i + SUB_BLOCK_ROWS], centres)
        labels[i : i + SUB_BLOCK_ROWS] = lab = d.argmin(axis=1)
        d2[i : i + SUB_BLOCK_ROWS] = d[np.arange(d.shape[0]), lab]
    return labels, d2


def _checked_nearest(X, centres, sample_weight, row_offset):
    """:func:`nearest_centre` of a block whose weights are checked first and whose rows are
    checked after the fact: a NaN or infinite row is named (no sweep of X when all is well)."""
    check_weights(sample_weight, row_offset)
    labels, d2 = nearest_centre(X, centres)
    if not np.isfinite(d2).all():
        check_block(X, None, row_offset)  # raises if a row is bad; else the distances overflowed
        row = row_offset + int(np.flatnonzero(~np.isfinite(d2))[0])
        raise RowError(
            f"The squared distance of row {row} to its nearest centre overflowed: the data are too large in "
            "magnitude (their squares exceed the float64 range). Rescale them.",
            row,
        )
    return labels, d2


@sub_blocked
def hard_stats(X, centres, covariance_type, sample_weight=None, row_offset=0):
    """Statistics of the hard assignment of each row to its nearest centre.

    One Lloyd step of k-means and the k-means initialisation of the mixture
    both use these: the new centres are ``centres + s1c / nk``.
    ``objective`` is the (weighted) inertia. Compiled (:func:`dask_gmm._numba.hard_moments`)
    unless switched off; the reference builds one-hot responsibilities for ``centred_moments``.
    """
    labels, d2 = _checked_nearest(X, centres, sample_weight, row_offset)
    inertia, weight = _weigh(d2, sample_weight)
    if USE_NUMBA:
        nk, s1c, s2 = _numba.hard_moments(X, centres, labels, covariance_type, sample_weight)
        return SuffStats(nk, s1c, s2, inertia, weight, least_weight(sample_weight))
    resp = np.zeros((X.shape[0], centres.shape[0]))
    resp[np.arange(X.shape[0]), labels] = 1.0 if sample_weight is None else sample_weight
    s1c, s2 = centred_moments(X, resp, centres, covariance_type)
    return SuffStats(resp.sum(axis=0), s1c, s2, inertia, weight, least_weight(sample_weight))


def row_uniforms(key, row_offset, n, m=1):
    """(n, m) uniforms on [0, 1) for rows ``row_offset .. row_offset + n - 1`` of the Philox stream
    ``key`` (two uint64): row i's m values are the stream's draws i*m .. i*m + m - 1, so every row
    gets the same values however the rows are cut into blocks or pieces."""
    first = int(row_offset) * int(m)  # Philox.advance refuses NumPy integers (n_components=np.int64(3))
    bits = np.random.Philox(key=key)
    bits.advance(first // 4)  # a step is four draws
    return np.random.Generator(bits).random(first % 4 + n * m)[first % 4 :].reshape(n, m)


@sub_blocked
def random_resp_stats(X, n_components, ref, covariance_type, key, sample_weight=None, row_offset=0):
    """Statistics of uniform random responsibilities (scikit-learn's ``random`` init), drawn per
    row from the Philox stream ``key`` (:func:`row_uniforms`), every component's moments centred on
    the one row ``ref`` (shape (1, d) or (d,))."""
    check_block(X, sample_weight, row_offset)
    resp = row_uniforms(key, row_offset, X.shape[0], n_components)
    resp /= resp.sum(axis=1, keepdims=True)
    if sample_weight is not None:
        resp *= sample_weight[:, None]
    if USE_NUMBA:  # its sums in one order, where BLAS's depend on its threads (the schedulers' fits differed)
        s1c, s2 = _numba.resp_moments(X, resp, np.asarray(ref, dtype=np.float64).reshape(-1), covariance_type)
    else:
        s1c, s2 = centred_moments(X, resp, np.broadcast_to(ref, (n_components, X.shape[1])), covariance_type)
    weight = _weigh(np.zeros(X.shape[0]), sample_weight)[1]
    return SuffStats(resp.sum(axis=0), s1c, s2, 0.0, weight, least_weight(sample_weight))


@sub_blocked
def kmeans_parallel_sample(X, centres, oversampling, cost, key, sample_weight=None, row_offset=0):
    """One k-means|| round on a block.

    Samples each row with probability ``min(1, l * w * D^2 / cost)``, where D is
    its distance to the nearest centre, against a uniform per row from the
    Philox stream ``key`` (:func:`row_uniforms`). Returns Samples(rows (m, d)
    float64 in row order, this block's cost ``sum w D^2``).
    """
    d2 = _checked_nearest(X, centres, sample_weight, row_offset)[1]
    w = 1.0 if sample_weight is None else sample_weight
    keep = row_uniforms(key, row_offset, X.shape[0])[:, 0] < oversampling * w * d2 / max(cost, np.finfo(float).tiny)
    with np.errstate(over="ignore"):  # inf, which the caller refuses (finite_total)
        return Samples(np.asarray(X[keep], np.float64), float(np.sum(w * d2)))


@sub_blocked
def nearest_cost(X, centres, sample_weight=None, row_offset=0):
    """The block's k-means cost ``sum w D^2``, D the distance of a row to its nearest centre."""
    d2 = _checked_nearest(X, centres, sample_weight, row_offset)[1]
    with np.errstate(over="ignore"):  # inf, which the caller refuses (finite_total)
        return float(np.sum(d2 if sample_weight is None else sample_weight * d2))


@sub_blocked
def nearest_counts(X, centres, sample_weight=None, row_offset=0):
    """Weighted number of rows nearest to each centre, shape (m,)."""
    labels = _checked_nearest(X, centres, sample_weight, row_offset)[0]
    return np.bincount(labels, weights=sample_weight, minlength=centres.shape[0]).astype(np.float64)
