"""The compiled (numba) kernels against the NumPy reference kernels they replace."""

import gc
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import numba
import numpy as np
import pytest

from dask_gmm import _covariance as cov
from dask_gmm import _kernels as kern

from .conftest import WITHOUT_OVERRIDES, random_model

nb = pytest.importorskip("dask_gmm._numba")

TYPES = cov.COVARIANCE_TYPES
RTOL = 1e-10


def problem(ct, n=777, d=3, K=4, seed=0, dtype=np.float64, shift=0.0):
    """A model and a block of rows drawn around its means, ``shift`` away from the origin."""
    rng = np.random.default_rng(seed)
    model, _, means, _ = random_model(rng, ct, K, d, shift)
    X = means[rng.integers(0, K, n)] + rng.normal(size=(n, d)) * 2
    return model, X.astype(dtype)


def reference(X, model, w=None):
    """The NumPy E-step (the reference kernels, whatever the dispatch switch says)."""
    lse, log_resp = kern.log_prob_resp(X, model)
    resp = np.exp(log_resp)
    if w is not None:
        resp *= w[:, None]
    ll = float(lse.sum() if w is None else w @ lse)
    s1c, s2 = cov.centred_moments(X, resp, model.means, model.covariance_type)
    return resp.sum(0), s1c, s2, ll


def close(actual, expected, rtol=RTOL):
    """Relative agreement, with an absolute floor at rtol times the largest entry (sums that cancel)."""
    expected = np.asarray(expected)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * max(np.abs(expected).max(), 1e-300))


@pytest.fixture
def numpy_kernels(monkeypatch):
    monkeypatch.setattr(kern, "USE_NUMBA", False)


@pytest.fixture
def numba_kernels(monkeypatch):
    monkeypatch.setattr(kern, "USE_NUMBA", True)


@pytest.mark.parametrize("ct", TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shift", [0.0, 1e6])
def test_e_step_equals_reference(ct, dtype, weighted, shift):
    model, X = problem(ct, dtype=dtype, shift=shift)
    w = np.random.default_rng(1).uniform(0, 2, len(X)) if weighted else None
    nk, s1c, s2, ll = nb.e_step(X, model, w)
    ref = reference(X, model, w)  # on the same (float32) block
    assert s2.shape == ref[2].shape == cov.s2_shape(ct, *model.means.shape)
    for got, want in zip((nk, s1c, s2, ll), ref):
        assert np.asarray(got).dtype == np.float64
        close(got, want)


@pytest.mark.parametrize("ct", TYPES)
@pytest.mark.parametrize("d", [1, 2, nb.PACK_MIN_FEATURES - 1, nb.PACK_MIN_FEATURES, nb.SMALL_MAX_FEATURES + 1])
@pytest.mark.parametrize("weighted", [False, True])
def test_e_step_on_either_side_of_the_small_kernels_equals_reference(ct, d, weighted):
    """Below PACK_MIN_FEATURES the moments are sums along the tile (no BLAS call); from there,
    compiled dot products (of packed rows where responsibilities are 0); the Mahalanobis sums are
    straight-line code at every d here. Both give the reference statistics and log-likelihoods,
    also for a last tile of a few rows (777 rows) and away from the origin."""
    model, X = problem(ct, d=d, shift=1e4)
    w = np.random.default_rng(1).uniform(0.0, 3.0, X.shape[0]) if weighted else None
    for got, want in zip(nb.e_step(X, model, sample_weight=w), reference(X, model, w)):
        close(got, want)
    for what, want in ((nb.SCORE, kern.log_prob_resp(X, model)[0]), (nb.PROBA, np.exp(kern.log_prob_resp(X, model)[1]))):
        close(nb.per_row(X, model, what)[0], want)


@pytest.mark.parametrize("d", [2, nb.PACK_MIN_FEATURES - 1])
def test_small_e_step_of_a_factor_that_is_not_triangular_equals_reference(d):
    """Below PACK_MIN_FEATURES a factor that is not triangular (precision = L L^T, not this
    package's convention) takes the looped sums along the tile, not the code generated for d
    features; the statistics are the reference's."""
    model, X = problem("full", n=900, d=d, K=4, seed=d, shift=1e3)
    prec = cov.precisions_from_precision_cholesky(model.precisions_cholesky, "full")
    model = model._replace(precisions_cholesky=np.linalg.cholesky(prec))
    assert nb.Prepared(model, d).unrolled == ()
    for got, want in zip(nb.e_step(X, model), reference(X, model)):
        close(got, want)


@pytest.mark.parametrize("items", [None, 1])
def test_one_factor_that_is_not_triangular_among_triangular_ones_is_seen(monkeypatch, items):
    """The layout's triangular check gathers the factors of a few components at a time
    (``_TRIANGLE_CHECK_ITEMS`` entries; 1: one component at a time): the last component's factor,
    not triangular (precision = L L^T), is seen, in its own group or with the others, and the
    statistics are the reference's."""
    if items is not None:
        monkeypatch.setattr(nb, "_TRIANGLE_CHECK_ITEMS", items)
    model, X = problem("full", n=900, d=3, K=5, seed=4, shift=1e3)
    assert nb.Prepared(model, 3).unrolled == (0, 0, 0)  # this package's factors: triangular
    pc = model.precisions_cholesky.copy()
    pc[-1] = np.linalg.cholesky(cov.precisions_from_precision_cholesky(pc, "full")[-1])
    model = model._replace(precisions_cholesky=pc)
    assert nb.Prepared(model, 3).unrolled == ()
    for got, want in zip(nb.e_step(X, model), reference(X, model)):
        close(got, want)


@pytest.mark.parametrize("ct", ["full", "diag"])
def test_many_components_with_few_features_equal_reference(ct):
    """Many components (K=150) with few features (d=2): the reference statistics."""
    model, X = problem(ct, d=2, K=150, n=2000)
    for got, want in zip(nb.e_step(X, model), reference(X, model)):
        close(got, want)


@pytest.mark.parametrize("ct", TYPES)
@pytest.mark.parametrize("d", [3, 12])
def test_e_step_centred_elsewhere_equals_reference(ct, d):
    """Moments centred on given points (``Model.centres``), the responsibilities still the model's."""
    model, X = problem(ct, d=d, shift=1e3)
    centres = model.means + np.random.default_rng(2).normal(size=model.means.shape) * 5
    moved = model._replace(centres=centres)
    nk, s1c, s2, ll = nb.e_step(X, moved)
    lse, log_resp = kern.log_prob_resp(X, model)
    resp = np.exp(log_resp)
    want = (resp.sum(0), *cov.centred_moments(X, resp, centres, ct), float(lse.sum()))
    for got, w in zip((nk, s1c, s2, ll), want):
        close(got, w)
    assert not np.allclose(s1c, nb.e_step(X, model)[1])  # centred elsewhere than on the means


@pytest.mark.parametrize("d", [nb.TIED_MIN_FEATURES, 20, nb.GRAM_MAX_FEATURES + 6])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("centred", ["means", "elsewhere"])
def test_tied_kernels_equal_reference(d, weighted, centred):
    """From TIED_MIN_FEATURES features a tied model takes the tied kernels: one product of its one
    factor a tile, and second moments pooled about the tiles' centre then corrected per component
    (dot products up to GRAM_MAX_FEATURES features, GEMMs past them). The reference statistics and
    per-row outputs, away from the origin, with the moments centred on the means or elsewhere."""
    model, X = problem("tied", n=1500, d=d, K=5, seed=d, shift=1e4)
    if centred == "elsewhere":
        model = model._replace(centres=model.means + np.random.default_rng(2).normal(size=model.means.shape) * 5)
    layout = nb.Prepared(model, d)
    assert layout.shared and layout.pooled and layout.pc.shape == (d, d)
    w = np.random.default_rng(1).uniform(0.0, 3.0, X.shape[0]) if weighted else None
    lse, log_resp = kern.log_prob_resp(X, model)
    resp = np.exp(log_resp) * (1.0 if w is None else w[:, None])
    centres = model.means if model.centres is None else model.centres
    want = (resp.sum(0), *cov.centred_moments(X, resp, centres, "tied"), float(lse @ (np.ones(len(X)) if w is None else w)))
    got = nb.e_step(X, model, w)
    assert got[2].shape == (d, d)
    for g, h in zip(got, want):
        close(g, h)
    close(nb.per_row(X, model, nb.SCORE)[0], lse)
    close(nb.per_row(X, model, nb.PROBA)[0], np.exp(log_resp))
    np.testing.assert_array_equal(nb.per_row(X, model, nb.LABEL)[0], log_resp.argmax(1))


@pytest.mark.parametrize("where", ["means", "centres"])
@pytest.mark.parametrize("distance", [nb.MAX_POOLED_DISTANCE * 0.9, nb.MAX_POOLED_DISTANCE * 64])
def test_tied_pooled_moments_only_near_the_centre(where, distance):
    """Pooled second moments cancel as the means, or the points the moments are centred on (a far
    start's recomputed pass, _em.recentred), lie farther from the tiles' centre, by about eps times
    the distance squared: within MAX_POOLED_DISTANCE (in the tied covariance's units) they are
    pooled and lose at most ~2**20 eps, beyond it the tied E-step is a product per component
    (pooled there: 1e-6 off). Either side, the reference statistics."""
    d, n = nb.TIED_MIN_FEATURES + 2, 4000
    rng = np.random.default_rng(0)
    e1 = np.eye(d)[0]
    far = np.array([-e1, e1]) * distance  # two clusters of unit spread; the tiles' centre is 0, halfway
    X = far[rng.integers(0, 2, n)] + rng.normal(size=(n, d))
    model = kern.Model("tied", np.log([0.5, 0.5]), far, np.eye(d))
    if where == "centres":  # the moments centred on the clusters, the means near the tiles' centre
        model = model._replace(means=np.array([-e1, e1]), centres=far)
    pooled = distance <= nb.MAX_POOLED_DISTANCE
    assert nb.Prepared(model, d).pooled == pooled
    lse, log_resp = kern.log_prob_resp(X, model)
    resp = np.exp(log_resp)
    centres = model.means if model.centres is None else model.centres
    want = (resp.sum(0), *cov.centred_moments(X, resp, centres, "tied"), float(lse.sum()))
    for got, h in zip(nb.e_step(X, model), want):
        close(got, h, rtol=2**20 * np.finfo(float).eps if pooled else RTOL)


@pytest.mark.parametrize("ct", ["full", "tied"])
@pytest.mark.parametrize("spread", [40.0, 1.0])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("d", [nb.PACK_MIN_FEATURES, 16, nb.GRAM_MAX_FEATURES + 1])
def test_e_step_packing_rows_of_zero_responsibility_equals_reference(ct, spread, weighted, d):
    """d >= PACK_MIN_FEATURES: separated components (most responsibilities exactly 0, rows packed
    and gathered over tiles, more than one product's worth per component) and overlapping ones (no
    packing) give the reference statistics; the second moments are _gram_upper's dot products up
    to GRAM_MAX_FEATURES (the packed rows then stored feature-major) and GEMMs beyond."""
    K = 8
    rng = np.random.default_rng(3)
    model, _, means, _ = random_model(rng, ct, K, d)
    model = model._replace(means=means * spread)
    X = model.means[rng.integers(0, K, 9000)] + rng.normal(size=(9000, d))
    w = rng.uniform(0, 2, len(X)) * (rng.random(len(X)) > 0.1) if weighted else None
    ref = reference(X, model, w)
    resp = np.exp(kern.log_prob_resp(X, model)[1])
    zeros = (resp == 0).mean()
    assert zeros > 0.8 if spread > 1 else zeros < 0.2
    if spread > 1:  # some component has more packed rows than one GEMM takes (two tiles)
        assert (resp > 0).sum(axis=0).max() > 2 * nb.tile_rows(K, d)
    for got, want in zip(nb.e_step(X, model, w), ref):
        close(got, want)


@pytest.mark.parametrize("gram", [nb._gram_upper_2x4, nb._gram_upper_4x4], ids=["2x4", "4x4"])
@pytest.mark.parametrize("e", [1, 2, 3, 4, 5, 6, 7, 17])
@pytest.mark.parametrize("c", [0, 1, 7, 300])
def test_gram_upper_is_the_upper_triangle_of_the_product(gram, e, c):
    """Both block shapes of _gram_upper's dot products (reassociated) give A[:, :c] @ B[:, :c].T
    above and on the diagonal, for sizes that fill their blocks or not, and keep NaN (no
    fast-math flag drops it)."""
    rng = np.random.default_rng(e * 1000 + c)
    A, B = rng.normal(size=(e, 301)), rng.normal(size=(e, 301))
    S = np.full((e, e), 7.0)
    gram(A, B, c, S)
    up = np.triu_indices(e)
    np.testing.assert_allclose(S[up], (A[:, :c] @ B[:, :c].T)[up], rtol=1e-13, atol=1e-13 * max(c, 1))
    if c:
        A[e - 1, c - 1] = np.nan
        gram(A, B, c, S)
        assert np.isnan(S[e - 1, e - 1]) and (e == 1 or np.isfinite(S[0, 0]))


@pytest.mark.parametrize("ct", TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_per_row_kernels_equal_reference(ct, dtype):
    model, X = problem(ct, n=300, dtype=dtype, shift=1e6)
    lse, log_resp = kern.log_prob_resp(X, model)
    out, ok = nb.per_row(X, model, nb.SCORE)
    assert ok and out.dtype == np.float64
    close(out, lse)
    out, ok = nb.per_row(X, model, nb.PROBA)
    assert ok
    np.testing.assert_allclose(out, np.exp(log_resp), rtol=RTOL, atol=1e-14)
    np.testing.assert_allclose(out.sum(1), 1.0, rtol=1e-14)
    out, ok = nb.per_row(X, model, nb.LABEL)
    assert ok and out.dtype == np.int64
    np.testing.assert_array_equal(out, kern.weighted_log_prob(X, model).argmax(axis=1))


@pytest.mark.parametrize("ct", TYPES)
@pytest.mark.parametrize("K", [2, 3, 4, 6])
def test_labels_of_tied_components_go_to_the_first(ct, K):
    """Each component repeated (the same parameters, so bitwise-equal log-probabilities): every row's
    label is the first of its two copies, as NumPy's argmax; the responsibilities of copies are equal."""
    model, X = problem(ct, n=1000, K=K, shift=1e3)
    twice = model._replace(
        log_weights=np.tile(model.log_weights - np.log(2), 2), means=np.tile(model.means, (2, 1)),
        precisions_cholesky=model.precisions_cholesky if ct == "tied"
        else np.tile(model.precisions_cholesky, (2,) + (1,) * (model.precisions_cholesky.ndim - 1)))
    labels, ok = nb.per_row(X, twice, nb.LABEL)
    assert ok
    np.testing.assert_array_equal(labels, kern.weighted_log_prob(X, twice).argmax(axis=1))
    np.testing.assert_array_equal(labels, nb.per_row(X, model, nb.LABEL)[0])  # never the second copy
    proba, ok = nb.per_row(X, twice, nb.PROBA)
    assert ok
    np.testing.assert_array_equal(proba[:, :K], proba[:, K:])
    np.testing.assert_allclose(2 * proba[:, :K], nb.per_row(X, model, nb.PROBA)[0], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("ct", ["full", "diag"])
def test_dispatch_keeps_the_kernel_contracts(ct, monkeypatch):
    """_kernels with numba on equals _kernels with numba off, for every public kernel."""
    model, X = problem(ct, n=1000, shift=1e6)
    other = model._replace(means=model.means + 0.5)
    w = np.random.default_rng(2).uniform(0, 2, len(X))
    results = {}
    for on in (False, True):
        monkeypatch.setattr(kern, "USE_NUMBA", on)
        results[on] = (
            kern.e_step_stats(X, [model, other], sample_weight=w, row_offset=10),
            kern.e_step_stats(X, [model]),
            kern.score_stats(X, model, sample_weight=w),
            kern.score_samples(X, model),
            kern.predict_proba(X, model),
            kern.predict(X, model),
        )
    (stats_w, stats, score, samples, proba, labels), numpy_out = results[True], results[False]
    for got, want in zip(stats_w + stats, numpy_out[0] + numpy_out[1]):
        for a, b in zip(got, want):
            close(a, b)
    close(score, numpy_out[2])
    close(samples, numpy_out[3])
    np.testing.assert_allclose(proba, numpy_out[4], atol=1e-14)
    np.testing.assert_array_equal(labels, numpy_out[5])


@pytest.mark.parametrize("n", [1, 63, 256, 257, 1500])
def test_any_block_length(n):
    """Tiles are padded: lengths around the tile size give the reference's statistics."""
    model, X = problem("full", n=n, d=2, K=3)
    for got, want in zip(nb.e_step(X, model), reference(X, model)):
        close(got, want)
    close(nb.per_row(X, model, nb.SCORE)[0], kern.log_prob_resp(X, model)[0])


def test_empty_block():
    model, X = problem("full", n=0)
    nk, s1c, s2, ll = nb.e_step(X, model)
    assert ll == 0.0 and not nk.any() and not s1c.any() and not s2.any()


@pytest.mark.parametrize("d", [1, 9, 16])
def test_many_and_few_features(d):
    model, X = problem("full", n=700, d=d, K=8, seed=d)
    for got, want in zip(nb.e_step(X, model), reference(X, model)):
        close(got, want)


@pytest.mark.parametrize("d, K, route", [(9, 5, "blocked"), (16, 5, "blocked"), (16, 20, "blocked"),
                                          (16, 5, "straight"), (20, 5, "blocked"), (20, 20, "blocked")])
@pytest.mark.parametrize("factor", ["upper", "lower"])
def test_blocked_mahalanobis_and_centring_equal_reference(d, K, route, factor):
    """Tiles centred once and the Mahalanobis GEMMs in triangular row blocks (d=9: blocks of
    4, 4 and 1 rows; K=20: a block's components in two GEMMs), far from the origin, where the
    straight-line code for d features (the default up to UNROLL_MAX_FEATURES, which it is
    compared with too) is turned off; a lower-triangular factor of the same precisions
    (precision = L L^T, not this package's convention) takes one whole GEMM per component
    and agrees too."""
    model, X = problem("full", n=900, d=d, K=K, seed=d, shift=1e6)
    p = nb.Prepared(model, d)
    assert p.hs == nb.feature_block(d) < d
    assert p.unrolled == ((0,) * d if d <= nb.UNROLL_MAX_FEATURES else ())
    if factor == "lower":
        prec = cov.precisions_from_precision_cholesky(model.precisions_cholesky, "full")
        model = model._replace(precisions_cholesky=np.linalg.cholesky(prec))
        p = nb.Prepared(model, d)
        assert p.hs == d and p.unrolled == ()
    if route == "blocked":
        nb.prepared(model, d).unrolled = ()  # the layout the kernels take for this model
    for got, want in zip(nb.e_step(X, model), reference(X, model)):
        close(got, want)
    lse, log_resp = kern.log_prob_resp(X, model)
    close(nb.per_row(X, model, nb.SCORE)[0], lse)
    np.testing.assert_allclose(nb.per_row(X, model, nb.PROBA)[0], np.exp(log_resp), rtol=RTOL, atol=1e-14)


def test_empty_component_and_outlier_rows():
    """A zero-weight component (log weight -inf) and rows far from every component stay finite."""
    model, X = problem("full", n=500)
    weights = np.exp(model.log_weights)
    weights[1] = 0.0
    with np.errstate(divide="ignore"):
        model = model._replace(log_weights=np.log(weights / weights.sum()))
    X[:3] += 400.0  # a few hundred standard deviations away
    got = nb.e_step(X, model)
    assert np.isfinite(got[3]) and got[0][1] == 0.0
    for a, b in zip(got, reference(X, model)):
        close(a, b)
    close(nb.per_row(X, model, nb.SCORE)[0], kern.log_prob_resp(X, model)[0])


@pytest.mark.parametrize("ct", TYPES)
@pytest.mark.parametrize("far", [1e8, 1e12, 1e20, 1e100])
def test_a_far_mean_of_real_weight_is_as_exact_as_the_reference(ct, far, numba_kernels):
    """One mean far from the others, with a real weight: the tiles' centre (then the mean of the
    means) lay far from the data, whose digits the centring lost: the fit drifted from the
    reference at 1e8 (weights by 1.8e-8), collapsed a live covariance at 1e20 and refused the data
    at 1e100, silently but for the last. The dispatch now gives such a model to the reference."""
    model, X = problem(ct, n=600, K=3)
    model = model._replace(means=model.means + np.array([[far, 0.0, 0.0], [0, 0, 0], [0, 0, 0]]))
    assert not nb.exact(model, X.shape[1])
    for got, want in zip(kern.e_step_stats(X, [model])[0][:4], reference(X, model)):
        close(got, want, rtol=1e-13)
    for kernel in (kern.score_samples, kern.predict_proba, kern.predict):
        with np.errstate(under="ignore"):
            want = {kern.score_samples: lambda: kern.log_prob_resp(X, model)[0],
                    kern.predict_proba: lambda: np.exp(kern.log_prob_resp(X, model)[1]),
                    kern.predict: lambda: kern.weighted_log_prob(X, model).argmax(1)}[kernel]()
        close(kernel(X, model), want, rtol=1e-13)


@pytest.mark.parametrize("ct", ["full", "tied"])
def test_an_elongated_component_pointing_at_a_far_centre_is_as_exact_as_scikit_learn(ct, numba_kernels):
    """Components of widths 1 and 1e-6 whose long axis points at a mean 1e5 away: the tiles' centre
    lies about 3e4 along that axis, 3e4 of its widths but 3e10 of its narrow ones, and a row near
    it lost eps times 3e4 of each coordinate to the centring, up to 3e-2 of its narrow width. The
    dispatch measured the centre's Mahalanobis distance (3e4: compiled), and score_samples was
    6e-6 off scikit-learn's, a fit's lower bound 6e-8 (a review). It now weighs each coordinate's
    offset by the precision along it, and the reference kernels take such a model."""
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    from dask_gmm import GaussianMixture

    narrow = 1e-6
    u, v = np.array([1.0, 1.0]) / np.sqrt(2), np.array([1.0, -1.0]) / np.sqrt(2)
    elongated = np.outer(u, u) + narrow**2 * np.outer(v, v)
    third = np.eye(2) if ct == "full" else elongated
    means = np.vstack([np.zeros(2), 2 * narrow * v, 1e5 * u])
    rng = np.random.default_rng(0)  # rows of the two near components (rows at 1e5 hold 2e-11 / 1e-6 of the narrow width)
    X = rng.multivariate_normal(np.zeros(2), elongated, 1000) + narrow * v * rng.uniform(0, 2, (1000, 1))
    precisions = np.linalg.inv(np.array([elongated, elongated, third]) if ct == "full" else elongated)
    settings = dict(covariance_type=ct, tol=0.0, reg_covar=1e-12, weights_init=np.full(3, 1 / 3), means_init=means,
                    precisions_init=precisions)
    start = GaussianMixture(3, max_iter=0, **settings).fit(X)
    assert not nb.exact(start._model(), 2)
    same = SkGaussianMixture(3, covariance_type=ct)  # scikit-learn's outputs of the same parameters
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        setattr(same, name, getattr(start, name))
    np.testing.assert_allclose(start.score_samples(X), same.score_samples(X), rtol=0, atol=1e-8)
    np.testing.assert_allclose(start.predict_proba(X), same.predict_proba(X), rtol=0, atol=1e-8)
    got, want = GaussianMixture(3, max_iter=1, **settings).fit(X), SkGaussianMixture(3, max_iter=1, **settings).fit(X)
    assert abs(got.lower_bound_ - want.lower_bound_) < 1e-10


def test_a_feature_the_sum_of_two_others_keeps_the_compiled_kernels_far_from_the_origin():
    """A feature that is the sum of two others gives each component an axis of reg_covar's width
    alone, along which no row spreads: the rows' bound on what the centring costs there (the
    reach) is loose, and at its first limit (2**20) such fits of clusters 1e3 to 1e4 apart went to the
    reference kernels, about 9 times slower, though the compiled ones were 2e-12 off them (a review).
    Its own limit keeps them compiled, as exact as that."""
    from dask_gmm import GaussianMixture

    rng = np.random.default_rng(0)
    A = np.vstack([rng.normal(size=(4000, 2)) * 3 + m for m in ([0, 0], [1e4, 1e4], [2e4, 0])])
    X = np.column_stack([A, A.sum(axis=1)])
    model = GaussianMixture(3, random_state=0, max_iter=3, tol=0).fit(X)._model()
    layout = nb.prepared(model, 3)
    rows = np.sqrt(np.einsum("kij,kij->kj", layout.pc, layout.pc))
    assert np.sum(np.abs(layout.means) * rows, axis=1).max() > 4 * nb.MAX_CENTRE_DISTANCE  # past the first limit
    assert nb.exact(model, 3)
    with np.errstate(under="ignore"):
        close(nb.per_row(X, model, nb.SCORE)[0], kern.log_prob_resp(X, model)[0], rtol=1e-13 if kern.USE_NUMBA else 5e-13)  # a model the reference kernels fitted: 1.2e-13


@pytest.mark.parametrize("ct", TYPES)
def test_an_emptied_far_component_leaves_the_compiled_kernels_exact(ct):
    """The tiles' centre is the weighted mean of the means, so an emptied component (weight about
    1e-17) far away moves it nowhere: the compiled kernels keep the model, and agree with the
    reference to RTOL, as with any model whose means lie among the data."""
    model, X = problem(ct, n=600, K=3)
    assert nb.exact(model, X.shape[1])
    weights = np.exp(model.log_weights)
    weights = np.array([1e-17, weights[1], weights[2]]) / (weights[1] + weights[2])
    model = model._replace(log_weights=np.log(weights),
                           means=model.means + np.array([[1e12, 0, 0], [0, 0, 0], [0, 0, 0]]))
    assert nb.exact(model, X.shape[1])
    for got, want in zip(nb.e_step(X, model), reference(X, model)):
        close(got, want)
    close(nb.per_row(X, model, nb.SCORE)[0], kern.log_prob_resp(X, model)[0])


def _light_far_problem():
    """2000 rows of weight 1e12 near the origin and 20 of weight 1 at 2^30 (of unit spread): a
    component of weight 1e-14, 2^30 of its standard deviations from the tiles' centre, holds them."""
    rng = np.random.default_rng(0)
    bulk, far = rng.normal(size=(2000, 2)), 2.0**30 + rng.normal(size=(20, 2))
    return bulk, far, np.vstack([bulk, far]), np.r_[np.full(2000, 1e12), np.ones(20)]


@pytest.mark.parametrize("ct", TYPES)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_light_far_component_that_holds_rows_is_as_exact_as_the_reference(ct, monkeypatch):
    """A light component (weight 1e-14, not live) does not decide the kernels, yet it can hold rows:
    far from the tiles' centre the compiled kernels lost its digits (covariance 5.6e-8 off, scores
    of its rows 6e-7). Its rows now send the block to the reference kernels, and an emptied far
    component (test above) still leaves the compiled ones the model."""
    from dask_gmm import GaussianMixture

    bulk, far, X, w = _light_far_problem()
    precisions = {"full": np.stack([np.eye(2)] * 2), "tied": np.eye(2), "diag": np.ones((2, 2)),
                  "spherical": np.ones(2)}[ct]
    settings = dict(covariance_type=ct, means_init=[bulk.mean(0), far.mean(0) + 0.3], tol=0.0,
                    weights_init=[1 - 1e-14, 1e-14], precisions_init=precisions, max_iter=5)
    fits = {}
    for compiled in (True, False):
        monkeypatch.setattr(kern, "USE_NUMBA", compiled)
        fits[compiled] = GaussianMixture(2, **settings).fit(X, sample_weight=w)
    got, want = fits[True], fits[False]
    model = got._model()
    assert nb.exact(model, 2) and nb.prepared(model, 2).far_light.tolist() == [1]
    assert nb.e_step(X, model, w) is None and nb.per_row(far, model, nb.SCORE) is None
    for a, b in [(got.weights_, want.weights_), (got.means_, want.means_), (got.covariances_, want.covariances_)]:
        close(a, b, rtol=1e-13)
    if ct == "full":  # the far rows' own weighted covariance (their responsibilities are 1)
        c = far - far.mean(0)
        close(got.covariances_[1], c.T @ c / len(far) + 1e-6 * np.eye(2), rtol=1e-12)
    monkeypatch.setattr(kern, "USE_NUMBA", True)
    with np.errstate(under="ignore"):
        lse, log_resp = kern.log_prob_resp(X, model)
        close(kern.score_samples(X, model), lse, rtol=1e-13)
        close(kern.predict_proba(X, model), np.exp(log_resp), rtol=1e-13)
        np.testing.assert_array_equal(kern.predict(X, model), kern.weighted_log_prob(X, model).argmax(1))
    assert nb.per_row(bulk, model, nb.LABEL) is not None  # the far component holds none of these rows


def test_responsibilities_below_e_minus_600_are_zero_not_subnormal(monkeypatch):
    """A component whose density in a row is below e^-600 times the largest one's has responsibility
    0 there, in the compiled kernels and the NumPy reference alike. Exponentials in (e^-746, e^-708)
    were subnormal numbers, and arithmetic on them is a microcode assist on Intel cores: the E-step at
    d=2, K=3 ran 3.1x slower on an Intel Xeon than with the floor (scripts/bench.py measures it). What
    is dropped is below anything the results hold: checked against the exact values here."""
    from scipy.special import logsumexp

    from dask_gmm import GaussianMixture

    D = 60.0  # unit covariances, means (0, 0) and (D, 0): a row (a, y) has log-density gap -(D^2 - 2 a D) / 2
    gap = np.linspace(-800.0, -400.0, 4001)
    rng = np.random.default_rng(0)
    X = np.column_stack([(D * D + 2 * gap) / (2 * D), rng.normal(size=gap.size)])
    model = GaussianMixture(2, weights_init=[0.5, 0.5], means_init=[[0, 0], [D, 0]], precisions_init=np.eye(2)[None]
                            .repeat(2, 0), max_iter=0).fit(X)._model()
    assert nb.exact(model, 2) and not nb.prepared(model, 2).far_light.any()
    wlp = kern.weighted_log_prob(X, model)
    with np.errstate(under="ignore"):
        exact = np.exp(wlp - logsumexp(wlp, axis=1, keepdims=True))
    kept, dropped = gap > -599.99, gap < -600.01
    assert np.all(exact[dropped & (gap > -745), 1] > 0)
    probas = {}
    for compiled in (True, False):
        monkeypatch.setattr(kern, "USE_NUMBA", compiled)
        proba = probas[compiled] = kern.predict_proba(X, model)
        assert np.all((proba == 0) | (proba >= np.finfo(np.float64).tiny))  # no subnormal number
        np.testing.assert_allclose(proba[kept], exact[kept], rtol=1e-10, atol=0)  # e^-600 ... 1, each to 1e-10
        assert np.all(proba[dropped, 1] == 0)
        np.testing.assert_array_equal(proba[:, 0], 1.0)
        (st,) = kern.e_step_stats(X, [model])
        bound = X.shape[0] * 2 * np.exp(-600.0)  # what the floor may drop from a sum of responsibilities
        s1c, s2 = cov.centred_moments(X, exact, model.means, "full")
        close(st.nk[0], exact[:, 0].sum(), rtol=1e-13)
        close(st.objective, logsumexp(wlp, axis=1).sum(), rtol=1e-13)
        close(st.s1c[0], s1c[0], rtol=1e-12)
        close(st.s2[0], s2[0], rtol=1e-12)
        spread = np.abs(X - [D, 0]).max()
        for got, want, scale in ((st.nk[1], exact[:, 1].sum(), 1.0), (st.s1c[1], s1c[1], spread),
                                 (st.s2[1], s2[1], spread**2)):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=bound * scale)  # the far component's: tiny sums
    np.testing.assert_array_equal(probas[True] == 0, probas[False] == 0)


def _tiles_by(load):
    """Every tile of X as ``load(X, i0, b, centre, XT, unrolled)`` loads it, compiled, shape (tiles, d, B)."""
    import numba

    @numba.njit
    def tiles(X, centre, B, unrolled):
        n, d = X.shape
        out = np.full((-(-n // B), d, B), np.nan)
        for i0 in range(0, n, B):
            load(X, i0, min(B, n - i0), centre, out[i0 // B], unrolled)
        return out

    return tiles


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [1, 2, 5, nb.LOAD_UNROLL_MAX_FEATURES, nb.LOAD_UNROLL_MAX_FEATURES + 1])
@pytest.mark.parametrize("code", ["straight", "loop", "chosen"])
def test_tiles_load_as_numpy_centres_and_transposes_them(d, dtype, code):
    """The straight-line loads (:func:`_load_source`, compiled for each d here, whichever the kernels
    choose), the loop, and what ``_load_tile`` chooses for the full kernels' ``unrolled``, against
    NumPy: each tile is its rows less the centre, transposed, in float64, padded with zeros. Tiles
    of 64 rows, then 37 and a last of 3 (fewer than the 8 rows the straight-line code takes a time)."""
    import numba

    load = {"straight": numba.njit(nb._generated(nb._load_source, d)),
            "loop": numba.njit(lambda X, i0, b, centre, XT, unrolled: nb._load_looped(X, i0, b, centre, XT)),
            "chosen": nb._load_tile}[code]
    rng = np.random.default_rng(d)
    B = 64
    for n in (3 * B + 37, 3):
        X = rng.normal(5.0, 3.0, (n, d)).astype(dtype)
        centre = rng.normal(5.0, 1.0, d)
        got = _tiles_by(load)(X, centre, B, (0,) * d)
        padded = np.zeros((got.shape[0] * B, d))
        padded[:n] = X.astype(np.float64) - centre
        np.testing.assert_array_equal(got, padded.reshape(-1, B, d).transpose(0, 2, 1))


@numba.njit
def _exp_inplace(x):
    """x[:] = exp(x) with the kernels' vectorised exp (for x <= 0)."""
    for t in range(x.shape[0]):
        x[t] = nb._exp1(x[t])


@numba.njit
def _log_inplace(x):
    """x[:] = log(x) with the kernels' vectorised log (for normal x > 0, 0, inf, NaN)."""
    bits = np.empty((2, x.shape[0]), dtype=np.int64)
    nb._log_tile(x.copy(), x, bits)


def test_exp_matches_libm():
    x = np.concatenate([-np.logspace(-12, np.log10(740.0), 20_000), [0.0, -0.0, -745.0, -746.0, -800.0]])
    got = x.copy()
    _exp_inplace(got)
    np.testing.assert_allclose(got, np.exp(x), rtol=4.5e-16, atol=5e-324)
    special = np.array([-np.inf, np.nan, np.inf, -1e308, 0.0, 0.0, 0.0, 0.0])
    _exp_inplace(special)
    assert special[0] == 0.0 and np.isnan(special[1]) and special[2] == np.inf and special[3] == 0.0


def test_log_matches_libm():
    x = np.concatenate([np.random.default_rng(0).uniform(1, 1e4, 20_000), np.logspace(-300, 300, 2_000),
                        [1.0, 2.0, 0.5, np.sqrt(2), 1 - 1e-16, 1 + 2e-16]])
    got = x.copy()
    _log_inplace(got)
    np.testing.assert_allclose(got, np.log(x), rtol=4.5e-16, atol=5e-16)
    special = np.array([0.0, np.inf, np.nan, 1.0])
    _log_inplace(special)
    assert special[0] == -np.inf and special[1] == np.inf and np.isnan(special[2]) and special[3] == 0.0


@pytest.mark.parametrize("ct", ["full", "diag"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_bad_rows_are_named(ct, bad, numba_kernels):
    model, X = problem(ct, n=600)
    X[417, 1] = bad
    named = r"NaN or infinity.*rows 1000-1599.*first bad row: 1417"
    with pytest.raises(ValueError, match=named):
        kern.e_step_stats(X, [model], row_offset=1000)
    with pytest.raises(ValueError, match=named):
        kern.e_step_stats(X, [model], sample_weight=np.ones(len(X)), row_offset=1000)
    with pytest.raises(ValueError, match=named):
        kern.score_stats(X, model, row_offset=1000)
    for per_row in (kern.score_samples, kern.predict_proba, kern.predict):
        with pytest.raises(ValueError, match=named):
            per_row(X, model, row_offset=1000)


@pytest.mark.parametrize("ct", ["full", "diag"])
def test_overflow_is_reported(ct, monkeypatch):
    """Finite rows whose log-likelihood overflows: the same error as the NumPy path, for labels
    too (every log-probability is -inf, so argmax would give the first component, whatever the
    model, where scikit-learn does); rows short of the overflow keep their labels."""
    model, X = problem(ct, n=64)
    X[5] = 1e200
    for on in (True, False):
        monkeypatch.setattr(kern, "USE_NUMBA", on)
        for call in (kern.e_step_stats, kern.score_samples, kern.predict_proba, kern.predict):
            with pytest.raises(ValueError, match=r"rows 10-73 overflowed"):
                call(X, [model], row_offset=10) if call is kern.e_step_stats else call(X, model, row_offset=10)
        np.testing.assert_array_equal(kern.predict(X[6:], model), kern.weighted_log_prob(X[6:], model).argmax(1))


def test_labels_far_out_follow_the_precisions_until_they_overflow():
    """Along a direction where component 1's precision is the smaller, far rows belong to it, up to
    the distance where the squares overflow: then a ValueError, never the first component."""
    from dask_gmm import GaussianMixture

    rng = np.random.default_rng(17)
    X = np.vstack([rng.normal(0, 1, (300, 2)), rng.normal(4, 0.5, (300, 2))])
    gm = GaussianMixture(2, random_state=0).fit(X)
    e = np.array([1.0, 0.0])
    far = int(np.argmin([e @ P @ e for P in gm.precisions_]))
    for t in (1e5, 1e100, 1e150):
        assert gm.predict(np.array([[t, 0.0]]))[0] == far
    for t in (1e160, 1e200):
        with pytest.raises(ValueError, match="overflowed"):
            gm.predict(np.array([[t, 0.0]]))


def test_float32_block_is_not_copied(monkeypatch):
    model, X = problem("full", dtype=np.float32)
    seen = []
    real = nb.estep_full

    def spy(Xb, *args):
        seen.append(Xb)
        return real(Xb, *args)

    monkeypatch.setattr(nb, "estep_full", spy)
    nb.e_step(X, model)
    assert seen[0] is X and seen[0].dtype == np.float32


def test_compiled_code_is_cached_on_disk():
    """cache=True: the machine code is written beside the module (or to NUMBA_CACHE_DIR)."""
    model, X = problem("full", n=10)
    nb.e_step(X, model)
    cache = nb.estep_full._cache
    assert cache is not None and type(cache).__name__ == "FunctionCache"
    path = cache._cache_path
    expected = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(os.path.dirname(nb.__file__), "__pycache__")
    assert os.path.abspath(path).startswith(os.path.abspath(expected))
    assert any(f.startswith("_numba.estep_full") and f.endswith(".nbi") for f in os.listdir(path))


def test_a_read_only_install_without_a_writable_home_imports_and_fits(tmp_path):
    """numba refused ``cache=True`` at the decoration where it could write neither beside the module
    nor in the user's cache folder, and ``import dask_gmm`` failed (a review: a wheel installed
    read-only, run by a user whose home is not writable). The kernels are then compiled uncached,
    said once; the fit is the same."""
    if os.geteuid() == 0 and (shutil.which("setpriv") is None
                              or subprocess.run(WITHOUT_OVERRIDES + ["true"], capture_output=True).returncode):
        pytest.skip("root, and no setpriv to drop the capabilities that ignore file modes")
    site, home = tmp_path / "site", tmp_path / "home"
    shutil.copytree(os.path.dirname(nb.__file__), site / "dask_gmm", ignore=shutil.ignore_patterns("__pycache__"))
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), PYTHONPATH=str(site), DASK_GMM_NUMBA="0")
    subprocess.run(["chmod", "-R", "a-w", str(site), str(home)], check=True)
    try:
        proc = subprocess.run((WITHOUT_OVERRIDES if os.geteuid() == 0 else []) + [sys.executable, "-c", _FIT_AND_SAY_WHICH_KERNELS
                              + "print(_numba.__file__, len(_numba._UNCACHED))"],
                              env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300)
        command = subprocess.run((WITHOUT_OVERRIDES if os.geteuid() == 0 else []) + [
            sys.executable, "-m", "dask_gmm", "generate", str(tmp_path / "s.zarr"), "-n", "2000", "--seed", "1", "-q"],
            env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(site), str(home)], check=True)
    assert proc.returncode == 0, proc.stderr
    # the command line says it as its own warning (it had printed the bare message, logged at import)
    assert command.returncode == 0 and len(command.stderr.splitlines()) == 1 and command.stderr.startswith(
        "dask-gmm: warning: dask_gmm's compiled kernels are not cached on disk ("), command.stderr
    said, where = proc.stdout.strip().splitlines()[-2:]
    assert where.split()[0] == str(site / "dask_gmm" / "_numba.py") and int(where.split()[1]) > 10
    assert proc.stderr.count("compiled kernels are not cached on disk") == 1, proc.stderr
    alone = subprocess.run([sys.executable, "-c", _FIT_AND_SAY_WHICH_KERNELS], capture_output=True, text=True,
                           env={**os.environ, "DASK_GMM_NUMBA": "0"}, check=True).stdout.strip().splitlines()[-1]
    assert json.loads(said) == json.loads(alone)


_FIT_AND_SAY_WHICH_KERNELS = """
import json, numpy as np
from dask_gmm import GaussianMixture, _numba
X = np.random.default_rng(0).normal(size=(2000, 2)) * [1.0, 3.0]
gm = GaussianMixture(2, random_state=0, tol=0, max_iter=5).fit(X)
print(json.dumps({"compiled": len(_numba.estep_full.signatures), "means": gm.means_.tolist()}))
"""


def test_the_environment_switches_the_compiled_kernels_off():
    """DASK_GMM_NUMBA=0 fits with the NumPy kernels (the compiled E-step is never called), by default
    the compiled ones are used; the same fit either way."""
    said = {}
    for flag in ("0", "1"):
        env = {k: v for k, v in os.environ.items() if k != "DASK_GMM_NUMBA"}
        if flag == "0":
            env["DASK_GMM_NUMBA"] = "0"
        out = subprocess.run([sys.executable, "-c", _FIT_AND_SAY_WHICH_KERNELS], env=env, capture_output=True,
                             text=True, check=True).stdout
        said[flag] = json.loads(out.strip().splitlines()[-1])
    assert said["0"]["compiled"] == 0 and said["1"]["compiled"] > 0
    np.testing.assert_allclose(said["0"]["means"], said["1"]["means"], rtol=1e-10)
    which = "from dask_gmm import _kernels; print(_kernels.USE_NUMBA)"  # false, no, off had left it on
    for flag, on in (("False", False), (" off", False), ("NO", False), ("yes", True), ("", True)):
        out = subprocess.run([sys.executable, "-c", which], env={**os.environ, "DASK_GMM_NUMBA": flag},
                             capture_output=True, text=True, check=True).stdout
        assert out.strip() == str(on), flag


def test_layout_made_once_per_model_object():
    """Every block of a pass shares one Model object, laid out once; another Model object, even
    one of equal parameters, gets its own layout, and results follow the model passed."""
    model, X = problem("full", n=600, d=5, K=3)
    p = nb.prepared(model, 5)
    assert nb.prepared(model, 5) is p
    moved = model._replace(means=model.means + 3.0)
    assert nb.prepared(moved, 5) is not p
    np.testing.assert_allclose(nb.prepared(moved, 5).centre, p.centre + 3.0)
    for m in (model, moved, model):
        for got, want in zip(nb.e_step(X, m), reference(X, m)):
            close(got, want)
    for _ in range(40):  # many models: still each its own layout
        m = model._replace(means=model.means.copy())
        assert nb.prepared(m, 5) is nb.prepared(m, 5) is not p


def test_threads_starting_on_one_model_share_its_layout(monkeypatch):
    """A pass's threads all start on the same new model: one makes its layout, the others wait for it
    (each had made its own). The layout is made slowly here, so that the threads surely overlap."""
    model, X = problem("full", n=600, d=5, K=3)
    made = []
    real = nb.Prepared

    def slow(*args):
        made.append(args)
        time.sleep(0.05)
        return real(*args)

    monkeypatch.setattr(nb, "Prepared", slow)
    layouts = [None] * 4

    def run(i):
        layouts[i] = nb.prepared(model, 5)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1 and all(p is layouts[0] for p in layouts)


def _layout_in_child(model, X, queue):
    queue.put(nb.e_step(X, model)[3])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_child_forked_while_a_layout_is_made_makes_its_own():
    """A process forked while another thread of its parent held the lock of a layout being made kept
    that lock held: the child's first new model waited for it forever."""
    import multiprocessing

    model, X = problem("full", n=600, d=5, K=3)
    inside, release = threading.Event(), threading.Event()

    def making():
        with nb._PREPARING:
            inside.set()
            release.wait(60)

    holder = threading.Thread(target=making)
    holder.start()
    try:
        assert inside.wait(30)
        ctx = multiprocessing.get_context("fork")
        results = ctx.Queue()
        child = ctx.Process(target=_layout_in_child, args=(model, X, results))
        child.start()
        child.join(60)
        if child.is_alive():
            child.kill()
        assert child.exitcode == 0, "the child waited for its parent's lock"
        close(results.get(timeout=10), reference(X, model)[3])
    finally:
        release.set()
        holder.join(60)


def test_layout_goes_with_its_model():
    """A layout is not kept once its model is gone (a dropped model's parameters could be large)."""
    model, X = problem("full", n=600, d=5, K=3)
    kept = model._replace(log_weights=model.log_weights.copy())
    layouts = []
    for _ in range(5):
        m = model._replace(log_weights=model.log_weights.copy())
        nb.e_step(X, m)
        layouts.append(nb.prepared(m, 5))
    del m
    gc.collect()
    held = [entry[1] for entry in nb._PREPARED.values()]
    assert not any(any(p is q for q in held) for p in layouts)
    p = nb.prepared(kept, 5)  # a model still held keeps its layout
    gc.collect()
    assert nb.prepared(kept, 5) is p


# ------------------------------------------------------------------ k-means kernels (initialisation)
def _kmeans_problem(n, d, m, dtype, shift, seed=5):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, d)) * 3 + shift).astype(dtype)
    centres = np.asarray(X[rng.choice(n, m, replace=False)], np.float64) + 0.1
    return X, centres


@pytest.mark.parametrize("n, d, m", [(1, 1, 1), (257, 2, 31), (1500, 16, 9), (600, 5, 81)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shift", [0.0, 1e4])
def test_nearest_centre_equals_the_direct_distances(n, d, m, dtype, shift, monkeypatch):
    """The compiled nearest centre against NumPy's broadcast distances (and the reference kernel)."""
    X, centres = _kmeans_problem(n, d, m, dtype, shift)
    direct = ((X.astype(np.float64)[:, None, :] - centres[None]) ** 2).sum(axis=2)
    monkeypatch.setattr(kern, "USE_NUMBA", True)
    labels, d2 = kern.nearest_centre(X, centres)
    np.testing.assert_array_equal(labels, direct.argmin(axis=1))
    close(d2, direct.min(axis=1), rtol=1e-12)
    monkeypatch.setattr(kern, "USE_NUMBA", False)
    ref_labels, ref_d2 = kern.nearest_centre(X, centres)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(d2, ref_d2, rtol=1e-6, atol=1e-9 * (1 + shift**2))


def test_nearest_centre_ties_go_to_the_first_centre(numba_kernels):
    X = np.array([[0.0, 0.0], [1.0, 1.0]])
    centres = np.array([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0]])  # row 0 at distance 2 from all three
    labels, d2 = kern.nearest_centre(X, centres)
    np.testing.assert_array_equal(labels, [0, 0])
    np.testing.assert_array_equal(d2, [4.0, 2.0])


@pytest.mark.parametrize("ct", TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("d", [2, 16, 40])
def test_hard_stats_equal_reference(ct, dtype, weighted, d, monkeypatch):
    """Row by row (d=2, 16) and gathered by component (full from GROUPED_MIN_FEATURES: d=40), against the
    reference's one-hot products and a NumPy one-liner."""
    assert (d >= nb.GROUPED_MIN_FEATURES) == (d == 40)  # the two kernels each tested
    X, centres = _kmeans_problem(3000, d, 4, dtype, 1e4)
    centres[3] += 1e3  # a centre no row is nearest
    w = np.random.default_rng(2).uniform(0, 3, len(X)) if weighted else None
    monkeypatch.setattr(kern, "SUB_BLOCK_ROWS", 1024)  # pieces of the block, combined
    out = {}
    for on in (True, False):
        monkeypatch.setattr(kern, "USE_NUMBA", on)
        out[on] = kern.hard_stats(X, centres, ct, sample_weight=w, row_offset=7)
    for a, b in zip(out[True], out[False]):
        close(a, b, rtol=1e-9)
    assert np.shape(out[True].s2) == cov.s2_shape(ct, 4, d)
    # and against a NumPy one-liner: every row's own centre, its weight, the centred outer products
    labels = ((X.astype(np.float64)[:, None, :] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)
    wt = np.ones(len(X)) if w is None else w
    np.testing.assert_allclose(out[True].nk, np.bincount(labels, wt, minlength=4), rtol=1e-12)
    assert out[True].nk[3] == 0.0 and (out[True].nk[:3] > 0).all()
    V = X.astype(np.float64) - centres[labels]
    close(out[True].s1c, np.stack([wt[labels == k] @ V[labels == k] for k in range(4)]), rtol=1e-9)
    if ct == "full":
        for k in range(4):
            s = labels == k
            close(out[True].s2[k], (wt[s, None] * V[s]).T @ V[s], rtol=1e-9)
        assert np.array_equal(out[True].s2, out[True].s2.transpose(0, 2, 1))


@pytest.mark.parametrize("ct", TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("d", [2, 40])
def test_random_resp_stats_equal_reference(ct, dtype, weighted, d, monkeypatch):
    """The ``random`` start's moments, compiled (row by row, one order of sums), against the NumPy
    reference's BLAS products and a NumPy one-liner of the same responsibilities."""
    rng = np.random.default_rng(4)
    X = (rng.normal(size=(3000, d)) * 3 + 100).astype(dtype)
    ref = X[:1].astype(np.float64)  # one row, as the start gives it
    w = rng.uniform(0, 3, len(X)) if weighted else None
    key = np.array([5, 6], np.uint64)
    monkeypatch.setattr(kern, "SUB_BLOCK_ROWS", 1024)  # pieces of the block, combined
    out = {}
    for on in (True, False):
        monkeypatch.setattr(kern, "USE_NUMBA", on)
        out[on] = kern.random_resp_stats(X, 4, ref, ct, key, sample_weight=w, row_offset=7)
    for a, b in zip(out[True], out[False]):
        close(a, b, rtol=1e-9)
    assert np.shape(out[True].s2) == cov.s2_shape(ct, 4, d)
    r = kern.row_uniforms(key, 7, len(X), 4)
    r = r / r.sum(axis=1, keepdims=True) * (1.0 if w is None else w[:, None])
    V = X.astype(np.float64) - ref
    close(out[True].s1c, r.T @ V, rtol=1e-9)
    if ct == "full":
        close(out[True].s2, np.einsum("nk,ni,nj->kij", r, V, V), rtol=1e-9)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("compiled", [True, False])
def test_kmeans_kernels_name_bad_rows(bad, compiled, monkeypatch):
    monkeypatch.setattr(kern, "USE_NUMBA", compiled)
    X, centres = _kmeans_problem(600, 3, 5, np.float64, 0.0)
    X[417, 1] = bad
    named = r"NaN or infinity.*rows 1000-1599.*first bad row: 1417"
    key = np.array([1, 2], np.uint64)
    for call in (lambda **kw: kern.hard_stats(X, centres, "full", **kw),
                 lambda **kw: kern.nearest_cost(X, centres, **kw),
                 lambda **kw: kern.nearest_counts(X, centres, **kw),
                 lambda **kw: kern.kmeans_parallel_sample(X, centres, 4.0, 1.0, key, **kw)):
        with pytest.raises(ValueError, match=named):
            call(row_offset=1000)
        with pytest.raises(ValueError, match=named):
            call(sample_weight=np.ones(len(X)), row_offset=1000)


def test_kernels_run_as_python_with_numba_disabled():
    """NUMBA_DISABLE_JIT=1, numba's debugging mode, runs the kernels as plain Python (slowly),
    the generated straight-line Mahalanobis code included, to the reference's results."""
    code = (
        "import numpy as np\n"
        "from dask_gmm import _numba as nb, _kernels as kern\n"
        "rng = np.random.default_rng(0)\n"
        "d, K = 5, 3\n"
        "X = rng.standard_normal((300, d))\n"
        "pc = np.stack([np.triu(np.eye(d) + 0.1 * rng.standard_normal((d, d)))] * K)\n"
        "m = kern.Model('full', np.log(np.full(K, 1 / K)), rng.standard_normal((K, d)), pc)\n"
        "assert nb.prepared(m, d).unrolled == (0,) * d\n"
        "lse, log_resp = kern.log_prob_resp(X, m)\n"
        "np.testing.assert_allclose(nb.e_step(X, m)[3], lse.sum(), rtol=1e-12)\n"
        "np.testing.assert_allclose(nb.per_row(X, m, nb.SCORE)[0], lse, rtol=1e-12)\n"
    )
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]


@pytest.mark.parametrize("ct", ["full", "tied"])
@pytest.mark.parametrize("held", [1, 2, 3])
def test_the_last_few_packed_rows_of_a_component_are_counted(ct, held):
    """From PACK_MIN_FEATURES features the compiled full E-step packs a component's rows of
    nonzero responsibility and multiplies them at the end of the block; a component left holding
    one packed row (here a component owning `held` rows of 600) must have them in s1c and s2."""
    from dask_gmm import _numba as nb

    d, rng = nb.PACK_MIN_FEATURES, np.random.default_rng(0)
    means = np.array([np.zeros(d), np.full(d, 60.0)])
    pc = np.eye(d) if ct == "tied" else np.stack([np.eye(d)] * 2)
    model = kern.Model(ct, np.log([0.5, 0.5]), means, pc)
    X = rng.normal(size=(600, d))
    X[rng.choice(600, held, replace=False)] += 60.0  # the far component's only rows
    lse, log_resp = kern.log_prob_resp(X, model)
    resp = np.exp(log_resp)
    want = (resp.sum(0), *cov.centred_moments(X, resp, means, ct), float(lse.sum()))
    for got, w in zip(nb.e_step(X, model), want):
        np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-9)
