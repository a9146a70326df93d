"""Initialisation strategies, a registry keyed on ``init_params``.

Every strategy reads the data through :class:`dask_gmm._em.Blocks` (never
into memory) and returns statistics plus the reference they are centred on;
:func:`initial_parameters` turns those into weights, means and covariances
with the ordinary M-step.

Passes over the data:

* ``kmeans``: k-means|| seeding (1 + ``KMEANS_ROUNDS`` + 1 passes), weighted
  k-means of the candidates in memory, then at most ``LLOYD_MAX_ITER`` Lloyd
  passes; the last one's hard assignments give the mixture's parameters.
* ``k-means++``: the same seeding reduced by weighted k-means++, then one pass.
* ``random_from_data``: ``n_components`` random rows as means, then one pass.
* ``random``: uniform random responsibilities, one pass.

Unlike scikit-learn, ``k-means++`` and ``random_from_data`` derive the
covariances from the hard assignment to the chosen means rather than setting
them to ``reg_covar`` from single points.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.cluster import KMeans, kmeans_plusplus

from . import _kernels
from ._covariance import m_step

logger = logging.getLogger(__name__)

KMEANS_ROUNDS = 3  # k-means|| rounds; Spark uses 2, Bahmani et al. found ~5 plenty
OVERSAMPLING = 2.0  # expected candidates per round, as a multiple of n_components
LLOYD_MAX_ITER = 10
LLOYD_TOL = 1e-4  # relative to the mean per-feature variance, as scikit-learn's KMeans


def as_seed_sequence(random_state):
    """``random_state`` (None, int, SeedSequence, Generator or RandomState) as a fresh SeedSequence.

    A SeedSequence passed in is copied, never advanced.
    """
    if isinstance(random_state, np.random.SeedSequence):
        return np.random.SeedSequence(random_state.entropy, spawn_key=random_state.spawn_key)
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return np.random.SeedSequence(None if random_state is None else int(random_state))
    if isinstance(random_state, np.random.RandomState):
        return np.random.SeedSequence(int(random_state.randint(2**31 - 1)))
    if isinstance(random_state, np.random.Generator):
        return np.random.SeedSequence(int(random_state.integers(2**63 - 1)))
    raise ValueError(f"random_state must be None, an int, a SeedSequence or a Generator, got {random_state!r}.")


def _sklearn_seed(ss):
    return int(ss.generate_state(1)[0] >> 1)


def gather_rows(X, n_rows, seed):
    """``n_rows`` distinct random rows of the dask array X, as float64 (reads only their blocks)."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(X.shape[0], size=n_rows, replace=False))
    return np.asarray(X[idx].compute(), np.float64)


def _kmeans_parallel(blocks, X, n_components, seed):
    """k-means|| candidates and their weights (Bahmani et al. 2012)."""
    s_first, s_rounds = seed.spawn(2)
    centres = gather_rows(X, 1, s_first)
    _, cost = blocks.map_reduce(
        _kernels.kmeans_parallel_sample, centres, 0.0, 1.0, None, combine=_kernels.concat_samples
    )
    for round_seed in s_rounds.spawn(KMEANS_ROUNDS):
        if cost <= 0.0:
            break
        rows, cost = blocks.map_reduce(
            _kernels.kmeans_parallel_sample,
            centres,
            OVERSAMPLING * n_components,
            cost,
            per_block=round_seed.spawn(len(blocks)),
            combine=_kernels.concat_samples,
        )
        centres = np.vstack([centres, rows])
    counts = blocks.map_reduce(_kernels.nearest_counts, centres)
    logger.debug("k-means|| gave %d candidates for %d components", len(centres), n_components)
    return centres, counts, cost


def _candidates(blocks, X, n_components, seed):
    s_par, s_pad = seed.spawn(2)
    centres, counts, cost = _kmeans_parallel(blocks, X, n_components, s_par)
    if len(np.unique(centres, axis=0)) < n_components:  # tiny or degenerate data: pad with random rows
        pad = gather_rows(X, n_components, s_pad)
        centres, counts = np.vstack([centres, pad]), np.concatenate([counts, np.zeros(n_components)])
    return centres, counts + 1e-12 * max(counts.max(), 1.0), cost


def _kmeans(blocks, X, n_components, covariance_type, seed):
    s_cand, s_local = seed.spawn(2)
    cand, counts, cost = _candidates(blocks, X, n_components, s_cand)
    centres = (
        KMeans(n_clusters=n_components, n_init=10, random_state=_sklearn_seed(s_local))
        .fit(cand, sample_weight=counts)
        .cluster_centers_
    )
    tol = None
    for it in range(LLOYD_MAX_ITER):
        stats = blocks.map_reduce(_kernels.hard_stats, centres, covariance_type)
        if tol is None:  # inertia / (n d) estimates the mean per-feature variance from above
            tol = LLOYD_TOL * stats.objective / (stats.weight * X.shape[1])
        shift = stats.s1c / np.maximum(stats.nk, np.finfo(float).tiny)[:, None]
        logger.debug("Lloyd iteration %d: inertia %.6g, centre shift %.3g", it + 1, stats.objective, (shift**2).sum())
        if (shift**2).sum() <= tol or it == LLOYD_MAX_ITER - 1:
            return stats, centres
        centres = centres + shift


def _kmeans_plusplus(blocks, X, n_components, covariance_type, seed):
    s_cand, s_local = seed.spawn(2)
    cand, counts, _ = _candidates(blocks, X, n_components, s_cand)
    centres, _ = kmeans_plusplus(cand, n_components, sample_weight=counts, random_state=_sklearn_seed(s_local))
    return blocks.map_reduce(_kernels.hard_stats, centres, covariance_type), centres


def _random_from_data(blocks, X, n_components, covariance_type, seed):
    centres = gather_rows(X, n_components, seed)
    return blocks.map_reduce(_kernels.hard_stats, centres, covariance_type), centres


def _random(blocks, X, n_components, covariance_type, seed):
    s_ref, s_blocks = seed.spawn(2)
    ref = gather_rows(X, 1, s_ref)
    stats = blocks.map_reduce(
        _kernels.random_resp_stats, n_components, ref, covariance_type, per_block=s_blocks.spawn(len(blocks))
    )
    return stats, np.repeat(ref, n_components, axis=0)


INITIALIZERS = {
    "kmeans": _kmeans,
    "k-means++": _kmeans_plusplus,
    "random": _random,
    "random_from_data": _random_from_data,
}


def initial_statistics(blocks, X, n_components, covariance_type, init_params, seed):
    """Statistics (SuffStats) of the initial responsibilities, and the reference (K, d) they are centred on.

    Parameters
    ----------
    blocks : dask_gmm._em.Blocks of X
    X : dask.array.Array of shape (n_samples, n_features)
    seed : numpy.random.SeedSequence of this restart
    """
    return INITIALIZERS[init_params](blocks, X, n_components, covariance_type, seed)


def initial_parameters(blocks, X, n_components, covariance_type, init_params, reg_covar, seed):
    """Weights (K,), means (K, d), covariances and precisions_cholesky from a strategy."""
    stats, ref = initial_statistics(blocks, X, n_components, covariance_type, init_params, seed)
    return m_step(stats.nk, stats.s1c, stats.s2, ref, reg_covar, covariance_type)
