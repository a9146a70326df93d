"""Per-chunk kernels against one-line NumPy/SciPy references."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from dask_gmm import _covariance as cov
from dask_gmm import _kernels as kern

from .conftest import random_model


def model_and_block(ct="full", n=500, d=3, K=2, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    model, weights, means, full = random_model(rng, ct, K, d)
    X = (rng.normal(size=(n, d)) * 3).astype(dtype)
    return model, X, weights, means, full


@pytest.mark.parametrize("ct", cov.COVARIANCE_TYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_e_step_stats_match_reference(ct, weighted):
    model, X, weights, means, full = model_and_block(ct)
    w = np.random.default_rng(1).uniform(0, 2, len(X)) if weighted else np.ones(len(X))
    logp = np.column_stack([np.log(weights[k]) + multivariate_normal(means[k], full[k]).logpdf(X) for k in range(2)])
    resp = np.exp(logp - logsumexp(logp, axis=1, keepdims=True)) * w[:, None]
    (st,) = kern.e_step_stats(X, [model], sample_weight=w if weighted else None)
    np.testing.assert_allclose(st.nk, resp.sum(0), rtol=1e-10)
    np.testing.assert_allclose(st.objective, w @ logsumexp(logp, axis=1), rtol=1e-10)
    assert st.weight == pytest.approx(w.sum())
    np.testing.assert_allclose(st.s1c, resp.T @ X - resp.sum(0)[:, None] * means, rtol=1e-9, atol=1e-9)
    outer = np.stack([((X - means[k]) * resp[:, [k]]).T @ (X - means[k]) for k in range(2)])
    expected = {"full": outer, "tied": outer.sum(0), "diag": outer[:, range(3), range(3)],
                "spherical": outer[:, range(3), range(3)]}[ct]
    np.testing.assert_allclose(st.s2, expected, rtol=1e-9)


@pytest.mark.parametrize("numba", [False, True])
@pytest.mark.parametrize("ct", cov.COVARIANCE_TYPES)
def test_e_step_moments_are_centred_on_the_given_centres(ct, numba, monkeypatch):
    """A model's ``centres`` (a recentring pass's) are where its moments are centred, by either kernel
    set: a mutant that centred the reference kernels' on the means passed every test (a review)."""
    monkeypatch.setattr(kern, "USE_NUMBA", numba)
    model, X, weights, means, full = model_and_block(ct)
    centres = means + 5.0
    w = np.random.default_rng(1).uniform(0, 2, len(X))
    (st,) = kern.e_step_stats(X, [model._replace(centres=centres)], sample_weight=w)
    logp = np.column_stack([np.log(weights[k]) + multivariate_normal(means[k], full[k]).logpdf(X) for k in range(2)])
    resp = np.exp(logp - logsumexp(logp, axis=1, keepdims=True)) * w[:, None]
    np.testing.assert_allclose(st.s1c, resp.T @ X - resp.sum(0)[:, None] * centres, rtol=1e-9, atol=1e-9)
    outer = np.stack([((X - centres[k]) * resp[:, [k]]).T @ (X - centres[k]) for k in range(2)])
    expected = {"full": outer, "tied": outer.sum(0), "diag": outer[:, range(3), range(3)],
                "spherical": outer[:, range(3), range(3)]}[ct]
    np.testing.assert_allclose(st.s2, expected, rtol=1e-9)


def test_a_weighted_score_does_not_depend_on_blas_threads():
    """OpenBLAS's dot of over 10,000 values, run on two threads, sums in another order than on one:
    a weighted score's last bit depended on whether the pass had limited BLAS to one thread (an
    in-process cluster's workers do not)."""
    import threadpoolctl

    model, X, *_ = model_and_block(n=65_536, d=2)
    w = np.random.default_rng(1).uniform(0, 2, len(X))
    got = {}
    for threads in (1, 2):
        with threadpoolctl.threadpool_limits(threads, user_api="blas"):
            got[threads] = kern.score_stats(X, model, sample_weight=w)
    assert got[1] == got[2]
    lse = kern.log_prob_resp(X, model)[0]
    assert got[1][0] == pytest.approx(float(np.sum(w * lse)), rel=1e-12)
    assert got[1][1] == float(w.sum())


def test_float32_block_gives_float64_statistics():
    model, X, *_ = model_and_block(dtype=np.float32)
    (st,) = kern.e_step_stats(X, [model])
    (st64,) = kern.e_step_stats(X.astype(np.float64), [model])
    assert st.s2.dtype == np.float64 and st.nk.dtype == np.float64
    np.testing.assert_allclose(st.s2, st64.s2, rtol=1e-12)


def test_combine_is_addition_and_splits_are_exact():
    model, X, *_ = model_and_block(n=900)
    whole = kern.e_step_stats(X, [model, model])
    parts = [kern.e_step_stats(X[i : i + 300], [model, model]) for i in range(0, 900, 300)]
    merged = kern.combine(*parts)
    for a, b in zip(whole, merged):
        np.testing.assert_allclose(a.s2, b.s2, rtol=1e-12)
        np.testing.assert_allclose(a.nk, b.nk, rtol=1e-12)
        assert a.objective == pytest.approx(b.objective, rel=1e-12)


def test_folded_is_combine_of_all_holding_one_value_at_a_time(monkeypatch):
    """kern.folded gives combine(*values)'s bytes, taking the values one at a time; a sub_blocked
    kernel folds its slices so (20 slices of 8 MB results: 160 MB held at once before)."""
    import tracemalloc

    rng = np.random.default_rng(4)
    values = [kern.SuffStats(*(rng.normal(size=s) * 1e6 for s in ((3,), (3, 2), (3, 2, 2))), rng.normal(), 1.0, 0.5)
              for _ in range(9)]
    folded, together = kern.folded(iter(values)), kern.combine(*values)
    assert [np.asarray(a).tobytes() for a in folded] == [np.asarray(a).tobytes() for a in together]

    @kern.sub_blocked
    def big(x, sample_weight=None, row_offset=0):
        return np.full(1_000_000, float(x.shape[0]))

    monkeypatch.setattr(kern, "SUB_BLOCK_ROWS", 50)
    tracemalloc.start()
    try:
        got = big(np.zeros((1000, 2)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got[0] == 1000.0 and peak < 6 * 8_000_000, peak / 2**20  # 4 results seen; all 20, 160 MB


@pytest.mark.parametrize("numba", [False, True])
def test_e_step_in_slices_equals_the_whole_block(monkeypatch, numba):
    """The NumPy E-step goes in slices of SUB_BLOCK_ROWS (its (n, K) temporaries), the compiled one
    sweeps the block whole; either way the statistics are those of the whole block."""
    monkeypatch.setattr(kern, "USE_NUMBA", numba)
    model, X, *_ = model_and_block(n=1000)
    w = np.random.default_rng(2).uniform(0, 2, len(X))
    (whole,) = kern.e_step_stats(X, [model], sample_weight=w)
    monkeypatch.setattr(kern, "SUB_BLOCK_ROWS", 64)
    sweeps = []
    if numba:  # count the compiled sweeps (the real kernel runs)
        compiled = kern._numba.e_step
        monkeypatch.setattr(kern._numba, "e_step", lambda x, *a: sweeps.append(len(x)) or compiled(x, *a))
    (sliced,) = kern.e_step_stats(X, [model], sample_weight=w)
    for a, b in zip(whole, sliced):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert sweeps == ([1000] if numba else [])
    assert kern.is_additive(kern.e_step_stats)


def test_nan_row_is_named():
    model, X, *_ = model_and_block()
    X = X.copy()
    X[17, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinity.*rows 1000-1499.*first bad row: 1017"):
        kern.e_step_stats(X, [model], row_offset=1000)
    X[17, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        kern.predict(X, model)


def test_negative_weight_is_refused():
    model, X, *_ = model_and_block()
    w = np.ones(len(X))
    w[3] = -1
    with pytest.raises(ValueError, match="non-negative"):
        kern.e_step_stats(X, [model], sample_weight=w)


def test_per_row_kernels():
    model, X, weights, means, full = model_and_block("diag")
    logp = np.column_stack([np.log(weights[k]) + multivariate_normal(means[k], full[k]).logpdf(X) for k in range(2)])
    np.testing.assert_allclose(kern.score_samples(X, model), logsumexp(logp, axis=1), rtol=1e-12)
    np.testing.assert_array_equal(kern.predict(X, model), logp.argmax(1))
    np.testing.assert_allclose(kern.predict_proba(X, model), np.exp(logp - logsumexp(logp, 1, keepdims=True)), rtol=1e-10)


def test_log_space_survives_where_densities_underflow():
    """Points 60 sigma from every component: direct densities are 0/0, ours are finite."""
    d = 2
    model = kern.Model("spherical", np.log([0.5, 0.5]), np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([1.0, 1.0]))
    X = np.array([[60.0, 60.0], [-60.0, 3.0]])
    direct = np.column_stack([multivariate_normal([0, 0], np.eye(d)).pdf(X), multivariate_normal([1, 0], np.eye(d)).pdf(X)])
    assert np.all(direct == 0.0)  # the seed notebook's E-step would divide 0 by 0 here
    proba = kern.predict_proba(X, model)
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(1), 1.0)
    assert proba[0, 1] > 0.99 and proba[1, 0] > 0.99  # the nearer component wins
    assert np.all(np.isfinite(kern.score_samples(X, model)))


@pytest.mark.parametrize("numba", [False, True])
def test_responsibilities_of_a_row_of_ties_far_out_sum_to_one(monkeypatch, numba):
    """A row so far out that its K log-probabilities round to one value (tied covariances, about
    -1e300): the NumPy kernels took exp(a - lse) with lse = max + log K rounded to max, K responsibilities
    of 1 (scikit-learn's too); the compiled ones gave 1/K. Both give 1/K now, and the E-step's nk
    counts that row once."""
    monkeypatch.setattr(kern, "USE_NUMBA", numba)
    means = np.array([[0.0, 0.0], [1.0, 1.0], [-1.0, -1.0]])
    model = kern.Model("tied", np.log([0.2, 0.3, 0.5]), means, np.eye(2))
    X = np.random.default_rng(1).normal(size=(10, 2))
    X[3] = 1e150
    proba = kern.predict_proba(X, model)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(proba[3], 1 / 3, rtol=1e-15)  # the ties: nothing tells them apart
    (stats,) = kern.e_step_stats(X, [model])
    assert stats.nk.sum() == pytest.approx(10.0, rel=1e-15)


def test_sq_distances_and_hard_stats():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3)) + 1e4
    C = X[:4] + 0.1
    np.testing.assert_allclose(kern.sq_distances(X, C), cdist(X, C, "sqeuclidean"), rtol=1e-6, atol=1e-6)
    st = kern.hard_stats(X, C, "full")
    labels = cdist(X, C).argmin(1)
    np.testing.assert_array_equal(st.nk, np.bincount(labels, minlength=4))
    np.testing.assert_allclose(st.s1c + st.nk[:, None] * C, np.stack([X[labels == k].sum(0) for k in range(4)]), rtol=1e-12)
    np.testing.assert_allclose(st.objective, (cdist(X, C).min(1) ** 2).sum(), rtol=1e-6)
    counts = kern.nearest_counts(X, C)
    np.testing.assert_array_equal(counts, np.bincount(labels, minlength=4))
    w = rng.uniform(0.0, 3.0, len(X))  # k-means||'s candidate weights count the sample weights (a mutant ignored them)
    np.testing.assert_allclose(kern.nearest_counts(X, C, sample_weight=w), np.bincount(labels, weights=w, minlength=4),
                               rtol=1e-12)
    st = kern.random_resp_stats(X, 4, X.mean(0), "full", np.array([1, 2], np.uint64))
    assert st.nk.sum() == pytest.approx(len(X), rel=1e-12)  # each row's responsibilities sum to 1


@pytest.mark.parametrize("numba", [False, True])
def test_hard_stats_weigh_each_row(numba, monkeypatch):
    """k-means' weighted Lloyd step: a mutant whose reference kernel counted every row as 1 passed
    every test (a review)."""
    monkeypatch.setattr(kern, "USE_NUMBA", numba)
    rng = np.random.default_rng(0)
    X, C, w = rng.normal(size=(400, 3)), rng.normal(size=(3, 3)), rng.uniform(0, 2, 400)
    labels = cdist(X, C).argmin(1)
    st = kern.hard_stats(X, C, "full", sample_weight=w)
    np.testing.assert_allclose(st.nk, np.bincount(labels, w, 3), rtol=1e-12)
    np.testing.assert_allclose(st.s1c, [w[labels == k] @ (X[labels == k] - C[k]) for k in range(3)], rtol=1e-10,
                               atol=1e-10)
    np.testing.assert_allclose(st.objective, w @ cdist(X, C).min(1) ** 2, rtol=1e-10)


def test_the_digest_depends_on_where_each_block_lies():
    """A checkpoint's data digest: the same blocks in another order are other data."""
    X = np.random.default_rng(0).normal(size=(10, 2))
    a = kern.digest(X[:5], row_offset=0) + kern.digest(X[5:], row_offset=5)
    b = kern.digest(X[5:], row_offset=0) + kern.digest(X[:5], row_offset=5)
    assert a % 2**64 != b % 2**64
    assert kern.digest(X, np.ones(10)) != kern.digest(X) != kern.digest(X, row_offset=1)


def test_nearest_centre_in_slices_equals_cdist(monkeypatch):
    """The NumPy reference, slice by slice."""
    monkeypatch.setattr(kern, "USE_NUMBA", False)
    monkeypatch.setattr(kern, "SUB_BLOCK_ROWS", 7)
    rng = np.random.default_rng(1)
    X, C = rng.normal(size=(50, 3)), rng.normal(size=(5, 3))
    labels, d2 = kern.nearest_centre(X, C)
    np.testing.assert_array_equal(labels, cdist(X, C).argmin(1))
    np.testing.assert_allclose(d2, cdist(X, C, "sqeuclidean").min(1), rtol=1e-10, atol=1e-12)


def test_nearest_cost_is_the_weighted_k_means_cost(monkeypatch):
    """The first k-means|| pass: sum of w * (squared distance to the nearest centre), in slices too."""
    rng = np.random.default_rng(3)
    X, centres, w = rng.normal(size=(1000, 3)), rng.normal(size=(4, 3)), rng.uniform(0, 2, 1000)
    d2 = ((X[:, None, :] - centres[None]) ** 2).sum(axis=2).min(axis=1)
    monkeypatch.setattr(kern, "SUB_BLOCK_ROWS", 128)
    assert kern.nearest_cost(X, centres) == pytest.approx(d2.sum(), rel=1e-12)
    assert kern.nearest_cost(X, centres, sample_weight=w) == pytest.approx((w * d2).sum(), rel=1e-12)


@pytest.mark.parametrize("compiled", [True, False])
def test_nearest_centre_keeps_small_distances_between_far_centres(compiled, monkeypatch):
    """Centres 1e6 apart, rows 4e-4 from one of them: the NumPy reference's expansion of |x - c|^2
    around the centres' mean gave the wrong centre and distances of 0."""
    monkeypatch.setattr(kern, "USE_NUMBA", compiled)
    C = np.array([[0.0, 0.0], [1e6, 0.0], [1e6 + 1e-3, 0.0]])
    X = np.array([[1e6 + 4e-4, 0.0], [1e6 + 6e-4, 0.0]])
    labels, d2 = kern.nearest_centre(X, C)
    np.testing.assert_array_equal(labels, [1, 2])
    np.testing.assert_allclose(d2, [1.6e-7, 1.6e-7], rtol=1e-6)
    st = kern.hard_stats(X, C, "full")
    np.testing.assert_array_equal(st.nk, [0.0, 1.0, 1.0])


@pytest.mark.parametrize("numba", [True, False])
def test_random_responsibilities_of_a_block_longer_than_a_sub_block_are_the_streams(monkeypatch, numba):
    """Each sub-block must draw its own rows of the Philox stream (row_offset + i)."""
    monkeypatch.setattr(kern, "USE_NUMBA", numba)
    monkeypatch.setattr(kern, "SUB_BLOCK_ROWS", 100)
    rng = np.random.default_rng(0)
    X, w = rng.normal(size=(1000, 3)), rng.uniform(0.5, 2.0, 1000)
    key = np.array([1, 2], np.uint64)
    st = kern.random_resp_stats(X, 4, X.mean(0), "full", key, sample_weight=w, row_offset=300)
    u = np.random.Generator(np.random.Philox(key=key)).random((1300, 4))[300:]  # the stream, one draw per value
    resp = u / u.sum(1, keepdims=True) * w[:, None]
    np.testing.assert_allclose(st.nk, resp.sum(0), rtol=1e-12)
    np.testing.assert_allclose(st.s1c, resp.T @ (X - X.mean(0)), rtol=1e-10, atol=1e-10)


def test_a_bad_row_past_the_first_sub_block_is_named_by_its_own_index(monkeypatch):
    """The NumPy E-step names a NaN row by its global index, whichever sub-block holds it."""
    monkeypatch.setattr(kern, "USE_NUMBA", False)
    monkeypatch.setattr(kern, "SUB_BLOCK_ROWS", 100)
    X = np.random.default_rng(0).normal(size=(1000, 2))
    X[457] = np.nan
    model = kern.Model("diag", np.log([0.5, 0.5]), np.zeros((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="first bad row: 1457") as e:
        kern.e_step_stats(X, [model], row_offset=1000)
    assert e.value.row == 1457
