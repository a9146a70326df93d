"""Initialisation strategies, a registry keyed on ``init_params``.

Every strategy reads the data through :class:`dask_gmm._em.Blocks` (never
into memory) and returns statistics plus the reference they are centred on;
:func:`initial_parameters_many` turns those into weights, means and covariances
with the ordinary M-step.

Passes over the data:

All strategies advance every run (restarts, model-selection candidates) in
lockstep: each pass reads each block once for all of them. Only the random
starting rows are gathered per run (reading just their blocks).

* ``kmeans``: k-means|| seeding (1 + ``KMEANS_ROUNDS`` + 1 passes), weighted
  k-means of the candidates in memory, then at most ``LLOYD_MAX_ITER`` Lloyd
  passes; the last one's hard assignments give the mixture's parameters.
* ``k-means++``: the same seeding reduced by weighted k-means++, then one pass.
* ``random_from_data``: ``n_components`` random rows as means, then one pass.
* ``random``: uniform random responsibilities, one pass.

Unlike scikit-learn, ``k-means++`` and ``random_from_data`` derive the
covariances from the hard assignment to the chosen means rather than setting
them to ``reg_covar`` from single points (for a BayesianGaussianMixture, the
whole first posterior: each component starts on its assigned rows, not one).

scikit-learn (its KMeans, its exception classes) is imported where used: the generator seeds its
stores with :func:`as_seed_sequence`, and ``dask-gmm generate`` imports no scikit-learn.
"""

from __future__ import annotations

import logging

import dask
import numpy as np
from . import _kernels, io
from ._covariance import m_step
from ._em import kmeans_section, naming_candidate, numpy_blocks, threadpool_controller

logger = logging.getLogger(__name__)

KMEANS_ROUNDS = 5  # k-means|| rounds (Bahmani et al.); 3 reached the optimum less often (scripts/init_quality.py)
OVERSAMPLING = 2.0  # expected candidates per round, as a multiple of n_components
LLOYD_MAX_ITER = 10
LLOYD_TOL = 1e-4  # relative to the mean per-feature variance, as scikit-learn's KMeans


def check_random_state(random_state):
    """An InvalidParameterError (a ValueError) for what :func:`as_seed_sequence` cannot take, drawing
    nothing from it."""
    kinds = (type(None), int, np.integer, np.random.SeedSequence, np.random.RandomState, np.random.Generator)
    if not isinstance(random_state, kinds) or (isinstance(random_state, (int, np.integer)) and random_state < 0):
        from ._compat import InvalidParameterError

        raise InvalidParameterError("random_state must be None, a non-negative int, a SeedSequence, a Generator "
                                    f"or a RandomState, got {random_state!r}.")


def as_seed_sequence(random_state):
    """``random_state`` (None, int, SeedSequence, Generator or RandomState) as a fresh SeedSequence.

    A SeedSequence passed in is copied, never advanced; a Generator or RandomState gives one draw,
    and None one draw from NumPy's global RandomState, as scikit-learn takes None: after
    ``np.random.seed(0)`` a script fits the same (it had drawn fresh entropy, a review).
    """
    check_random_state(random_state)
    if isinstance(random_state, np.random.SeedSequence):  # its pool size too: another pool is another state
        return np.random.SeedSequence(random_state.entropy, spawn_key=random_state.spawn_key,
                                      pool_size=random_state.pool_size)
    if random_state is None:  # one draw of NumPy's global RandomState (its public functions), as a RandomState's
        return np.random.SeedSequence(int(np.random.randint(2**31 - 1)))
    if isinstance(random_state, (int, np.integer)):
        return np.random.SeedSequence(int(random_state))
    if isinstance(random_state, np.random.RandomState):
        return np.random.SeedSequence(int(random_state.randint(2**31 - 1)))
    return np.random.SeedSequence(int(random_state.integers(2**63 - 1)))


def _sklearn_seed(ss):
    return int(ss.generate_state(1)[0] >> 1)


def gather_rows(X, sizes, seeds, sample_weight=None, blocks=None):
    """For each run j, ``sizes[j]`` distinct random rows of the dask array X drawn from
    ``seeds[j]``, as float64, the rows of all the runs fetched together (:func:`_rows_at`). A
    drawn row with NaN or infinity is refused, by its index.

    With ``sample_weight`` (a dask array, X's row chunks) the rows are drawn with
    probability proportional to their weight, without replacement among distinct
    rows (Efraimidis-Spirakis keys: the first as from X with each row repeated as
    often as its weight says, later ones never a row already drawn, which the
    repeated rows could give again): rows of weight 0 only when fewer rows than
    asked weigh anything. One pass over the weights (not
    X) for all the runs: :func:`_weighted_rows`. Weights that are all the same positive number
    draw the rows that no weights draw: unit weights had given another start than none, and
    another fit (a review).
    """
    if not sizes:  # nothing to draw: no pass over the weights
        return []
    if sample_weight is not None:
        picks, equal = _weighted_rows(sample_weight, [(n, _key(s)) for n, s in zip(sizes, seeds)])
    if sample_weight is None or equal:
        picks = [np.random.default_rng(s).choice(X.shape[0], size=n, replace=False) for n, s in zip(sizes, seeds)]
    picks = [np.sort(idx) for idx in picks]
    every = np.unique(np.concatenate(picks))  # each row once, whichever runs drew it
    fetched = np.asarray(_rows_at(X, every, blocks), np.float64)
    out = []
    for idx in picks:
        rows = fetched[np.searchsorted(every, idx)]
        bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
        if bad.size:  # else every clean chunk's distances to it are NaN, and the first to run is blamed
            raise _kernels.RowError(
                f"Input X contains NaN or infinity in row {idx[bad[0]]} (drawn as a starting row of the "
                "initialisation). Remove or impute such rows; dask_gmm never changes your data.",
                idx[bad[0]],
            )
        out.append(rows)
    return out


def _rows_at(X, idx, blocks=None):
    """``X[idx]`` for sorted row indices ``idx``: taken from the blocks here when the dask array X
    holds NumPy blocks (in-memory data, :func:`dask_gmm.io.as_dask_array`), else read from the Zarr
    chunks that hold them by the direct reader of ``blocks`` (X's :class:`dask_gmm._em.Blocks`),
    in this process, else computed from the blocks of the passes' graph that hold them
    (:meth:`dask_gmm._em.Blocks.take`), else by dask.

    Through the graph, each row read its fit task's whole block (up to 16 MiB, 4 chunks): 30
    chunk reads for a ``random_from_data`` start of 3 rows in a review, now 3. Under a
    distributed Client, dask's ``X[idx]`` sent its graph to the scheduler with every block in
    it: all of X, before the fit's one scatter of it."""
    held = numpy_blocks(X)  # X: whole rows in each block
    starts = np.cumsum((0,) + X.chunks[0])
    which = np.searchsorted(starts, idx, side="right") - 1
    picks = [(int(b), idx[which == b] - starts[b]) for b in np.unique(which)]
    if held is not None:
        parts = [held[b][r] for b, r in picks]
    elif blocks is not None and blocks.rows is not None:
        parts = _chunk_rows(blocks, idx)
    elif blocks is not None:
        parts = blocks.take(picks)
    else:
        return X[idx].compute()
    return np.concatenate([np.empty((0, X.shape[1]), X.dtype)] + parts)  # idx sorted: each block's rows in turn


def _chunk_rows(blocks, idx):
    """The rows ``idx`` (sorted) of the Zarr array that ``blocks`` reads directly, one read of each
    chunk holding some of them, its files' sizes checked as the passes check them."""
    rows, step = blocks.rows, blocks.rows.chunk_rows
    parts = []
    for c in np.unique(idx // step):
        lo, hi = int(c) * step, min((int(c) + 1) * step, rows.shape[0])
        chunk = rows.read(lo, hi, rows.sizes(lo, hi, blocks.files.state))
        parts.append(chunk[idx[(idx >= lo) & (idx < hi)] - lo])
    return parts


def _weighted_rows(sample_weight, requests):
    """For each request ``(n, key)``, the indices of n rows drawn with probability proportional
    to ``sample_weight`` (n_samples,), without replacement: the rows of the n smallest keys
    ``-log(u) / w`` (Efraimidis and Spirakis 2006; compared as their logarithms), u uniform
    per row from the Philox stream ``key`` at the row's index, so the draw does not depend on
    the chunking. Ties (weight 0, key inf) go to the lowest index. One pass over the weights
    for all requests; for weights held in memory, in this thread (in a graph, a distributed
    Client sent them all through its scheduler first). Returns (those indices for each request,
    whether every weight is the same positive number)."""
    starts = io.row_starts(sample_weight.chunks[0])
    held = numpy_blocks(sample_weight)
    if held is not None:
        per_block = [_keys_and_range(w, start, requests) for w, start in zip(held, starts)]
    else:
        per_block = dask.compute(*[dask.delayed(_keys_and_range)(w, start, requests)
                                   for w, start in zip(sample_weight.to_delayed().ravel(), starts)])
    out = []
    for j, (n, _) in enumerate(requests):
        keys, rows = (np.concatenate(a) for a in zip(*(block[j] for block, _ in per_block)))
        out.append(rows[np.lexsort((rows, keys))[:n]])
    low, high = min(r[0] for _, r in per_block), max(r[1] for _, r in per_block)
    return out, bool(low == high > 0)


def _keys_and_range(w, start, requests):
    """(:func:`_smallest_keys` of the block of weights ``w``, (its least weight, its largest))."""
    w = np.asarray(w, np.float64)
    return _smallest_keys(w, start, requests), (w.min(), w.max()) if len(w) else (np.inf, -np.inf)


def _smallest_keys(w, start, requests):
    """For each request ``(n, key)`` of :func:`_weighted_rows`, the n smallest keys among the
    rows ``start, start + 1, ...`` of the weights ``w``, and those rows."""
    w = np.asarray(w, np.float64)
    _kernels.check_weights(w, start)  # as the passes would: a NaN or negative weight named
    out = []
    for n, key in requests:
        u = _kernels.row_uniforms(key, start, len(w))[:, 0]
        with np.errstate(divide="ignore"):
            # log(-log(u) / w), in the same order, without overflow for subnormal weights (every key
            # inf: rows 0, 1, ... whatever the seed). -0.0 + 0.0 is 0.0: inf, as for any weight of 0
            keys = np.log(-np.log(u)) - np.log(w + 0.0)
        if len(keys) > n:
            kth = np.partition(keys, n - 1)[n - 1]
            below = np.flatnonzero(keys < kth)
            at = np.flatnonzero(keys == kth)[: n - len(below)]  # ties at the boundary: the lowest rows
            top = np.concatenate([below, at])
        else:
            top = np.arange(len(keys))
        out.append((keys[top], top + start))
    return out


def _lockstep(blocks, kernel, arg_lists):
    """One pass of ``kernel`` for every run, with run j's arguments ``arg_lists[j]``."""
    return blocks.map_reduce(_kernels.many, kernel, arg_lists)


def _key(seed):
    """The Philox key (two uint64) of a SeedSequence: a stream that the kernels draw from by row
    index (:func:`dask_gmm._kernels.row_uniforms`), so a draw does not depend on the chunking."""
    return seed.generate_state(2, np.uint64)


def _kmeans_parallel(blocks, X, specs, seeds):
    """k-means|| candidates and their weights (Bahmani et al. 2012) for every run, sharing each pass.

    A round samples each row with the cost that the round before measured in
    the same pass (against the centres before that round's samples were added),
    not with a pass of its own: one pass a round instead of two. That cost is
    larger than the paper's, so a round draws fewer than ``OVERSAMPLING *
    n_components`` candidates in expectation: 12-26 candidates for K=3 and
    100-132 for K=20 on 1e6 rows (d=2; the paper's expectation 31 and 201).

    Returns
    -------
    centres : list of ndarray of shape (m_j, d), the candidates of each run
    counts : list of ndarray of shape (m_j,), the weight of the rows nearest each candidate
    """
    firsts, rounds = zip(*(s.spawn(2) for s in seeds))
    centres = gather_rows(X, [1] * len(firsts), firsts, blocks.sample_weight, blocks=blocks)
    costs = [_kernels.finite_total(c) for c in _lockstep(blocks, _kernels.nearest_cost, [(c,) for c in centres])]
    round_seeds = [r.spawn(KMEANS_ROUNDS) for r in rounds]
    for r in range(KMEANS_ROUNDS):
        live = [j for j, c in enumerate(costs) if c > 0.0]
        if not live:
            break
        args = [(centres[j], OVERSAMPLING * specs[j][0], costs[j], _key(round_seeds[j][r])) for j in live]
        for j, sampled in zip(live, _lockstep(blocks, _kernels.kmeans_parallel_sample, args)):
            centres[j] = np.vstack([centres[j], sampled.rows])
            costs[j] = _kernels.finite_total(sampled.cost)
    counts = _lockstep(blocks, _kernels.nearest_counts, [(c,) for c in centres])
    logger.debug("k-means|| gave %s candidates", [len(c) for c in centres])
    return centres, counts


def _candidates(blocks, X, specs, seeds):
    par, pad = zip(*(s.spawn(2) for s in seeds))
    cands, counts = _kmeans_parallel(blocks, X, specs, par)
    short = [j for j, ((K, _), c) in enumerate(zip(specs, cands)) if len(np.unique(c, axis=0)) < K]
    # tiny or degenerate data: pad with random rows (one draw for every run that needs it)
    for j, rows in zip(short, gather_rows(X, [specs[j][0] for j in short], [pad[j] for j in short],
                                          blocks.sample_weight, blocks=blocks)):
        cands[j] = np.vstack([cands[j], rows])
        counts[j] = np.concatenate([counts[j], np.zeros(specs[j][0])])
    out = []
    for cand, c in zip(cands, counts):
        _kernels.total_weight(c.sum())  # weights all 0, or overflowing: refused here, by name
        # relative to the largest, so that scaling every sample weight alike changes nothing
        out.append((cand, c / c.max() + 1e-12))
    return out


def _hard_assignment(blocks, specs, centres):
    stats = _lockstep(blocks, _kernels.hard_stats, [(c, ct) for c, (_, ct) in zip(centres, specs)])
    return list(zip(stats, centres))


def _one_openmp_thread():
    """scikit-learn's KMeans on one OpenMP thread: it clusters a few hundred candidates, and a
    process whose GNU OpenMP had started threads hangs in its children forked after
    (multiprocessing's fork start method) at their first OpenMP call. Entered in a
    :func:`dask_gmm._em.kmeans_section` only: threadpoolctl sets back every pool's limit it found,
    BLAS's too, and one entered outside had set back a pass's one BLAS thread found on entry."""
    return threadpool_controller().limit(limits=1, user_api="openmp")


def _fit_kmeans(km, cand, w):
    """``km.fit(cand, sample_weight=w)``, scikit-learn's KMeans on the candidates (m, n_features)
    on one OpenMP thread, in a :func:`dask_gmm._em.kmeans_section`. Where it found fewer distinct
    clusters than asked, a warning in this package's words follows scikit-learn's (which names
    ``n_clusters``, a setting a mixture's user does not make). scikit-learn's is no longer caught
    and reworded: ``warnings.catch_warnings`` sets the process's filters, not this thread's, and
    scikit-learn's ``check_array`` in another thread at that moment had left every later warning of
    the process recorded into a list no one read (a review)."""
    from sklearn.exceptions import ConvergenceWarning

    with kmeans_section(), _one_openmp_thread():
        km.fit(cand, sample_weight=w)
    found = len(np.unique(km.labels_))
    if found < km.n_clusters:
        io.warn_at_caller(
            f"The k-means start found only {found} distinct points among its candidate rows for "
            f"n_components={km.n_clusters}: X may hold fewer distinct rows than that (duplicates), and some "
            "components start at the same point. Use fewer components, or check X for duplicate rows.",
            ConvergenceWarning)
    return km


def _kmeans(blocks, X, specs, seeds):
    """k-means|| candidates clustered by scikit-learn's KMeans, then Lloyd passes over the data.

    The first run of each spec keeps the best of 10 k-means starts on its candidates; a further
    run of the same spec (a restart, ``n_init`` > 1) takes one, as scikit-learn's k-means start
    does. The best of 10 found the same centres from every seed, so restarts did not differ:
    on a 4-component store (d=3, 1e5 rows) ``n_init=4`` stayed in the optimum of one seed
    (mean log-likelihood -2.5997), where single starts reached -1.9497 from 2 seeds of 8.
    """
    from sklearn.cluster import KMeans

    s_cand, s_local = zip(*(s.spawn(2) for s in seeds))
    centres = []
    for j, (spec, (cand, w), s) in enumerate(zip(specs, _candidates(blocks, X, specs, s_cand), s_local)):
        starts = 1 if spec in specs[:j] else 10
        km = _fit_kmeans(KMeans(n_clusters=spec[0], n_init=starts, random_state=_sklearn_seed(s)), cand, w)
        centres.append(km.cluster_centers_)
    done, tol = {}, {}
    for it in range(LLOYD_MAX_ITER):  # Lloyd passes, all runs in lockstep until each settles
        live = [j for j in range(len(specs)) if j not in done]
        if not live:
            break
        for j, (stats, ref) in zip(live, _hard_assignment(blocks, [specs[j] for j in live], [centres[j] for j in live])):
            # inertia / (n d) is at most the mean per-feature variance (scikit-learn's tol scale): no looser a tol
            tol.setdefault(j, LLOYD_TOL * _kernels.per_weight(stats.objective, stats.weight) / X.shape[1])
            shift = stats.s1c / np.maximum(stats.nk, np.finfo(float).tiny)[:, None]
            if (shift**2).sum() <= tol[j] or it == LLOYD_MAX_ITER - 1:
                done[j] = (stats, ref)
            centres[j] = ref + shift
    return [done[j] for j in range(len(specs))]


def _kmeans_plusplus(blocks, X, specs, seeds):
    from sklearn.cluster import kmeans_plusplus

    s_cand, s_local = zip(*(s.spawn(2) for s in seeds))
    centres = []
    for (K, _), (cand, w), s in zip(specs, _candidates(blocks, X, specs, s_cand), s_local):
        # on the candidates centred (KMeans centres them itself): its distances |x|^2 - 2x.c + |c|^2 of
        # rows near 1e10 rounded by about 1e4, and half the seeds began with an empty component (a review)
        shift = np.average(cand, axis=0, weights=w)
        with kmeans_section():  # its check_array changes the warnings filters for a moment, as KMeans's
            picked = kmeans_plusplus(cand - shift, K, sample_weight=w, random_state=_sklearn_seed(s))[1]
        centres.append(cand[picked])
    return _hard_assignment(blocks, specs, centres)


def _random_from_data(blocks, X, specs, seeds):
    rows = gather_rows(X, [K for K, _ in specs], seeds, blocks.sample_weight, blocks=blocks)
    return _hard_assignment(blocks, specs, rows)


def _random(blocks, X, specs, seeds):
    s_ref, s_blocks = zip(*(s.spawn(2) for s in seeds))
    refs = gather_rows(X, [1] * len(s_ref), s_ref, blocks.sample_weight, blocks=blocks)
    args = [(K, ref, ct, _key(s)) for (K, ct), ref, s in zip(specs, refs, s_blocks)]
    stats = _lockstep(blocks, _kernels.random_resp_stats, args)
    return [(st, np.repeat(ref, K, axis=0)) for st, ref, (K, _) in zip(stats, refs, specs)]


INITIALIZERS = {
    "kmeans": _kmeans,
    "k-means++": _kmeans_plusplus,
    "random": _random,
    "random_from_data": _random_from_data,
}


def initial_statistics_many(blocks, X, specs, init_params, seeds):
    """Initial statistics of several runs, sharing every pass over the data.

    Parameters
    ----------
    blocks : dask_gmm._em.Blocks of X
    X : dask.array.Array of shape (n_samples, n_features)
    specs : list of (n_components, covariance_type), one per run
    init_params : str, a key of :data:`INITIALIZERS`
    seeds : list of numpy.random.SeedSequence, one per run

    Returns
    -------
    list of (SuffStats, reference (K, d) the statistics are centred on)
    """
    return INITIALIZERS[init_params](blocks, X, list(specs), list(seeds))


def initial_parameters_many(blocks, X, specs, init_params, reg_covar, seeds):
    """(weights (K,), means (K, d), covariances, precisions_cholesky) for every run, sharing passes."""
    out, several = [], len(set(specs)) > 1
    for (st, ref), (k, ct) in zip(initial_statistics_many(blocks, X, specs, init_params, seeds), specs):
        _kernels.total_weight(st.weight)  # refuses weights summing to 0, by name
        with naming_candidate(k, ct, several):
            out.append(m_step(st.nk, st.s1c, st.s2, ref, reg_covar, ct, st.least))
    return out
