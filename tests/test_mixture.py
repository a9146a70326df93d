"""GaussianMixture: scikit-learn equivalence, numerics, API behaviour."""

import json
import logging
import os
import pickle
import re
import threading
import warnings

import dask
import dask.array as da
import dask.dataframe as dd
from fractions import Fraction

import numpy as np
import pandas as pd
import scipy.sparse
import pytest
import zarr
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.mixture import BayesianGaussianMixture as SKBayesianGaussianMixture
from sklearn.mixture import GaussianMixture as SKGaussianMixture

from dask_gmm import BayesianGaussianMixture, GaussianMixture, _reader, io, select_model
from dask_gmm._compat import InvalidParameterError

from .conftest import make_blobs, seed_like_problem

TYPES = ("full", "tied", "diag", "spherical")


def sk_init(X, ct, K=3, seed=0):
    """A rough starting point (2 EM iterations of scikit-learn) shared by both libraries."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = SKGaussianMixture(K, covariance_type=ct, max_iter=2, random_state=seed).fit(X)
    return dict(weights_init=sk.weights_, means_init=sk.means_, precisions_init=sk.precisions_)


@pytest.mark.parametrize("ct", TYPES)
def test_matches_sklearn_from_same_init(ct):
    X = make_blobs(n=3000, means=((0, 0, 0), (4, 0, 1), (0, 4, -1)))
    init = sk_init(X, ct)
    sk = SKGaussianMixture(3, covariance_type=ct, tol=1e-8, max_iter=200, **init).fit(X)
    ours = GaussianMixture(3, covariance_type=ct, tol=1e-8, max_iter=200, **init).fit(X)
    assert ours.n_iter_ == sk.n_iter_ and ours.converged_ and sk.converged_
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(sk, name), rtol=1e-8, atol=1e-10, err_msg=name)
    assert ours.lower_bound_ == pytest.approx(sk.lower_bound_, rel=1e-10)
    np.testing.assert_allclose(ours.lower_bounds_, sk.lower_bounds_, rtol=1e-10)
    np.testing.assert_allclose(ours.score_samples(X), sk.score_samples(X), rtol=1e-8)
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), atol=1e-8)
    np.testing.assert_array_equal(ours.predict(X), sk.predict(X))
    assert ours.bic(X) == pytest.approx(sk.bic(X), rel=1e-10)
    assert ours.aic(X) == pytest.approx(sk.aic(X), rel=1e-10)
    assert ours.score(X) == pytest.approx(sk.score(X), rel=1e-10)


@pytest.mark.parametrize("compiled", [True, False])
def test_a_tied_fit_of_many_features_matches_sklearn_from_same_init(compiled, monkeypatch):
    """From _numba.TIED_MIN_FEATURES features a tied model takes the tied kernels (one product of its
    factor a tile, pooled second moments), and the M-step sums the components' corrections as one
    product: the fit is scikit-learn's, as at 3 features."""
    from dask_gmm import _kernels as kern

    monkeypatch.setattr(kern, "USE_NUMBA", compiled and kern.USE_NUMBA)
    means = np.random.default_rng(4).uniform(-4, 4, (5, 12))
    X = make_blobs(n=4000, means=means, seed=4, scale=1.3)
    init = sk_init(X, "tied", K=5)
    sk = SKGaussianMixture(5, covariance_type="tied", tol=1e-8, max_iter=200, **init).fit(X)
    ours = GaussianMixture(5, covariance_type="tied", tol=1e-8, max_iter=200, **init).fit(X)
    assert ours.n_iter_ == sk.n_iter_ > 2 and ours.converged_
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(sk, name), rtol=1e-8, atol=1e-10, err_msg=name)
    np.testing.assert_allclose(ours.lower_bounds_, sk.lower_bounds_, rtol=1e-10)
    np.testing.assert_allclose(ours.score_samples(X), sk.score_samples(X), rtol=1e-8)
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), atol=1e-8)


@pytest.mark.parametrize("ct", TYPES)
def test_far_from_origin_covariances_unchanged(ct):
    X = make_blobs(n=3000)
    init = sk_init(X, ct)
    a = GaussianMixture(3, covariance_type=ct, max_iter=20, tol=0, **init)
    b = clone(a).set_params(means_init=init["means_init"] + 1e6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a.fit(X)
        b.fit(X + 1e6)
    rel = np.abs(b.covariances_ - a.covariances_).max() / np.abs(a.covariances_).max()
    assert rel < 1e-6
    np.testing.assert_allclose(b.means_ - 1e6, a.means_, atol=1e-6)


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_a_start_far_from_the_data_keeps_every_digit_of_the_covariances(ct, monkeypatch):
    """The means move 1e6 standard deviations in the first M-step: the centring correction of moments
    centred on the old means would round away 4 digits (7e-4 relative), so that iteration makes one
    more pass, centred on the new means. The covariances of a one-component fit are then the data's,
    which NumPy computes directly; later iterations take one pass each."""
    from dask_gmm._em import Blocks
    X = 1e6 + np.random.default_rng(0).normal(size=(2000, 2)) * [1.0, 3.0]
    exact = np.cov(X.T, bias=True) + 1e-6 * np.eye(2)
    want = {"full": exact[None], "tied": exact, "diag": np.diag(exact)[None], "spherical": np.diag(exact).mean()[None]}[ct]
    passes = []
    real = Blocks.map_reduce
    monkeypatch.setattr(Blocks, "map_reduce", lambda self, *a, **k: passes.append(1) or real(self, *a, **k))
    counts = {}
    for max_iter in (0, 1, 3):
        passes.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gm = GaussianMixture(1, covariance_type=ct, means_init=[[0.0, 0.0]], tol=0, max_iter=max_iter,
                                 random_state=0).fit(X)  # the same initialisation passes each time
        counts[max_iter] = len(passes)
        if max_iter:
            np.testing.assert_allclose(gm.covariances_, want, rtol=1e-12)
            np.testing.assert_allclose(gm.means_, X.mean(axis=0, keepdims=True), rtol=1e-14)
    assert counts[1] - counts[0] == 2 and counts[3] - counts[0] == 4  # the initialisation's, then the EM's


def test_a_move_far_along_a_narrow_axis_keeps_every_digit():
    """Correlated features, the start 90 standard deviations off on each: under the threshold
    feature by feature, but 1e7 along the narrow axis, which lost 5e-7 of the precisions."""
    rng = np.random.default_rng(1)
    x1 = rng.normal(size=20_000)
    X = np.c_[x1, x1 + 1e-3 * rng.normal(size=20_000)]
    kw = dict(n_components=1, means_init=X.mean(0)[None] + 90.0, precisions_init=np.eye(2)[None],
              weights_init=[1.0], reg_covar=1e-10, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours, sk = GaussianMixture(**kw).fit(X), SKGaussianMixture(**kw).fit(X)
    pc = sk.precisions_cholesky_
    np.testing.assert_allclose(ours.precisions_cholesky_, pc, rtol=1e-8, atol=1e-8 * np.abs(pc).max())


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_a_start_far_beyond_one_more_pass_fits_as_scikit_learn(ct, compiled, monkeypatch):
    """Data of size 1e-100 near the origin, the start 1e-2 away (1e98 of the data's standard
    deviations): one more pass, centred on means exact to 1e-16 of that move, still left them 1e-18
    off, and the compiled kernels' tiles were centred among the old means, 1e-2 away, which rounded
    the data away: a singular covariance, where scikit-learn fits. The iteration now makes passes
    until the means are near where the moments are centred (1 to 6 more here)."""
    from dask_gmm import _kernels
    from dask_gmm._em import Blocks

    monkeypatch.setattr(_kernels, "USE_NUMBA", compiled and _kernels.USE_NUMBA)
    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(0, 1, (200, 2)), rng.normal(5, 1, (200, 2))]) * 1e-100
    precisions = {"full": np.stack([np.eye(2) * 1e6] * 2), "tied": np.eye(2) * 1e6,
                  "diag": np.full((2, 2), 1e6), "spherical": np.full(2, 1e6)}[ct]
    kw = dict(n_components=2, covariance_type=ct, tol=1e-6, reg_covar=1e-206, weights_init=[0.5, 0.5],
              means_init=[[0.0064, 0.001], [-0.0054, 0.0036]], precisions_init=precisions)
    passes = []
    real = Blocks.map_reduce
    monkeypatch.setattr(Blocks, "map_reduce", lambda self, *a, **k: passes.append(1) or real(self, *a, **k))
    ours, sk = GaussianMixture(**kw).fit(X), SKGaussianMixture(**kw).fit(X)
    assert ours.n_iter_ == sk.n_iter_ and ours.lower_bound_ == pytest.approx(sk.lower_bound_, rel=1e-12)
    for name in ("weights_", "means_", "covariances_"):
        want = getattr(sk, name)
        np.testing.assert_allclose(getattr(ours, name), want, rtol=0, atol=1e-12 * np.abs(want).max(), err_msg=name)
    extra = len(passes) - ours.n_iter_ - 1  # the initialisation: one pass
    assert extra >= 1, extra


def test_a_nearly_empty_component_matches_sklearn():
    """A component of 6e-4 of a row: its mean was pulled toward its previous mean by the 10 eps floor,
    scikit-learn's toward the origin; 3.6e-12 apart, which grew to 3e-6 in the covariances and 7e-6
    in the weights over 8 iterations. The means are now scikit-learn's. A row of weight 0 is no unit
    for the floor: with one more, the fit is still scikit-learn's without it (a mutation review)."""
    rng = np.random.default_rng(2)
    mu = rng.normal(scale=6, size=(2, 2))
    X = np.concatenate([rng.normal(size=(2000, 2)) @ rng.normal(size=(2, 2)) * 0.5 + m for m in mu]) + 1e6
    means = mu + 1e6 + rng.normal(size=mu.shape)
    means[0] = 0
    kw = dict(n_components=2, means_init=means, weights_init=[0.5, 0.5], tol=1e-12, max_iter=8,
              precisions_init=np.stack([np.eye(2) / 1e12, np.eye(2) / 9]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours, sk = GaussianMixture(**kw).fit(X), SKGaussianMixture(**kw).fit(X)
        first = GaussianMixture(**(kw | dict(max_iter=1))).fit(X)
        zero = GaussianMixture(**kw).fit(np.vstack([X, X[:1]]), sample_weight=np.r_[np.ones(len(X)), 0.0])
    assert first.weights_[0] * len(X) < 1e-3  # nearly empty after the first iteration
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bounds_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(sk, name), rtol=1e-8, err_msg=name)
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(zero, name), getattr(sk, name), rtol=1e-8, err_msg=name)


@pytest.mark.parametrize("ct", ["diag", "spherical"])
def test_a_nearly_empty_components_variance_is_its_scatter_where_sklearns_adds_the_floor_term(ct):
    """scikit-learn's diag and spherical variances, sum r x^2 / nk - mean^2 with nk = sum r + 10 eps,
    are in exact arithmetic the scatter about the mean over nk plus 10 eps mean^2 / nk: a term that
    depends on where the origin is, and shows where nk is tiny (here 1e-3 of a row, 28 from the
    origin: 1.8e-5). dask_gmm's are the scatter alone (README, "How it works"); the other
    components, and every weight and mean, match scikit-learn's to 1e-8."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(1000, 2)), 20 + 0.01 * rng.normal(size=(10, 2))])
    start = dict(weights_init=[0.99, 1e-6, 0.01 - 1e-6], means_init=[[0.0, 0.0], [20.0, 20.0], [20.0, 20.0]])
    prec = np.array([[1.0, 1.0], [1e4, 1e4], [1e4, 1e4]])
    kw = dict(n_components=3, covariance_type=ct, tol=0, max_iter=1, **start,
              precisions_init=prec if ct == "diag" else prec[:, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours, sk = GaussianMixture(**kw).fit(X), SKGaussianMixture(**kw).fit(X)
    at_start = GaussianMixture(**kw | dict(max_iter=0)).fit(X)  # the start, to weigh X with (NumPy below)
    r = at_start.predict_proba(X)[:, 1]
    nk = r.sum() + 10 * np.finfo(float).eps
    mean = r @ X / nk
    scatter, floor = r @ (X - mean) ** 2 / nk + 1e-6, 10 * np.finfo(float).eps * mean**2 / nk
    if ct == "spherical":
        scatter, floor = scatter.mean(), floor.mean()
    assert nk < 2e-3
    np.testing.assert_allclose(ours.covariances_[1], scatter, rtol=1e-10)
    np.testing.assert_allclose(sk.covariances_[1], scatter + floor, rtol=1e-7)
    assert np.max(np.abs(ours.covariances_[1] / sk.covariances_[1] - 1)) > 1e-6  # the term, well above 1e-8
    np.testing.assert_allclose(ours.covariances_[[0, 2]], sk.covariances_[[0, 2]], rtol=1e-8)
    for name in ("weights_", "means_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(sk, name), rtol=1e-8, err_msg=name)


def test_results_do_not_depend_on_chunking_and_are_bitwise_reproducible():
    X = make_blobs(n=4000)
    fits = []
    for chunks in (500, 1333, 4000, 500):
        fits.append(GaussianMixture(3, random_state=7, tol=1e-6, init_params="random_from_data").fit(da.from_array(X, chunks=(chunks, 2))))
    for f in fits[1:]:
        np.testing.assert_allclose(f.means_, fits[0].means_, rtol=1e-8)
        np.testing.assert_allclose(f.covariances_, fits[0].covariances_, rtol=1e-8)
        assert f.n_iter_ == fits[0].n_iter_
    # same chunking, same seed: identical bytes, whatever the scheduler
    with dask.config.set(scheduler="synchronous"):
        sync = GaussianMixture(3, random_state=7, tol=1e-6, init_params="random_from_data").fit(da.from_array(X, chunks=(500, 2)))
    for f in (fits[3], sync):
        assert f.means_.tobytes() == fits[0].means_.tobytes()
        assert f.covariances_.tobytes() == fits[0].covariances_.tobytes()


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_every_initialisation_gives_the_same_bytes_on_every_scheduler(init_params, covariance_type):
    """The same chunking and seed give the same bytes on threads, synchronously and in a process
    pool, at 40 features: ``random``'s start took its moments from a BLAS product, whose sums
    OpenBLAS orders by its threads (one in the threads' passes, all in the others': 1e-15 apart
    after its start, 3e-9 after 5 iterations at 80 features, a review)."""
    X = da.from_array(np.random.default_rng(0).normal(size=(6000, 40)), chunks=(2000, 40))
    fit = lambda: GaussianMixture(3, covariance_type=covariance_type, init_params=init_params, random_state=1,
                                  max_iter=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        threads = fit()
        # a process pool starts for each of k-means's passes (seconds each): one-pass starts only
        for scheduler in ("synchronous", "processes") if init_params.startswith("random") else ("synchronous",):
            with dask.config.set(scheduler=scheduler, num_workers=2):
                other = fit()
            for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
                assert getattr(other, name).tobytes() == getattr(threads, name).tobytes(), (scheduler, name)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
@pytest.mark.parametrize("weighted", [False, True])
def test_every_initialisation_is_the_same_whatever_the_chunking(init_params, weighted, tmp_path):
    """The same data and seed give the same fit from NumPy, from dask arrays chunked three ways and
    from a Zarr store (probe: k-means||'s sampling and ``random``'s responsibilities drew from a
    stream per block, so the fits differed by up to 1.5 in a mean). They now draw by row index."""
    import zarr

    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(600, 2)), rng.normal(size=(600, 2)) * 0.5 + 3])
    w = rng.uniform(0.5, 2.0, len(X)) if weighted else None
    store = zarr.create_array(str(tmp_path / "x.zarr"), shape=X.shape, chunks=(37, 2), dtype=X.dtype)
    store[:] = X
    fits = []
    for data in (X, da.from_array(X, chunks=(101, 2)), da.from_array(X, chunks=(600, 2)),
                 da.from_array(X, chunks=((1, 599, 300, 300), (2,))), store):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits.append(GaussianMixture(4, init_params=init_params, n_init=2, max_iter=3, random_state=3)
                        .fit(data, sample_weight=w))
    for f in fits[1:]:
        np.testing.assert_allclose(f.means_, fits[0].means_, rtol=1e-9)
        np.testing.assert_allclose(f.covariances_, fits[0].covariances_, rtol=1e-9)
        np.testing.assert_allclose(f.lower_bound_, fits[0].lower_bound_, rtol=1e-12)


def test_float32_data_stay_float32_and_fit_like_float64():
    X = make_blobs(n=3000)
    X32 = X.astype(np.float32)
    d32 = da.from_array(X32, chunks=(1000, 2))
    init = sk_init(X, "full")
    a = GaussianMixture(3, **init).fit(d32)
    b = GaussianMixture(3, **init).fit(X32.astype(np.float64))
    assert d32.dtype == np.float32  # the user's array and chunks are untouched
    for source in (d32, X32):  # and the arrays the passes read are float32, not copies in float64 (a review's
        assert io.as_dask_array(source).dtype == np.float32  # mutant upcast them, and this test passed)
    assert all(block.dtype == np.float32 for block in io.row_blocks(X32))
    assert a.means_.dtype == np.float64
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-10)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-10)
    assert a.n_iter_ == b.n_iter_  # the bound in float64 too: rounded to float32, it moved by 8e-8
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-12)


def test_empty_component_stays_finite():
    X = make_blobs(n=1500)
    means = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0], [500.0, 500.0]])  # the last owns no point
    gm = GaussianMixture(4, means_init=means, max_iter=5, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.all(np.isfinite(getattr(gm, name))), name
    assert gm.weights_[3] < 1e-10
    assert np.all(np.isfinite(gm.score_samples(X)))


def test_emptied_component_keeps_its_mean_where_sklearn_moves_it_to_the_origin():
    """Documented difference (README, _covariance.gaussian_parameters): a component whose
    responsibilities are all 0 keeps its mean; scikit-learn's becomes 0 / (10 eps) = the
    origin. Everything else matches scikit-learn, and the fit moves with the data."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(-2, 1, (300, 3)), rng.normal(2, 1, (300, 3))])
    init = dict(weights_init=[0.4, 0.4, 0.2], means_init=np.array([[-2.0] * 3, [2.0] * 3, [50.0] * 3]),
                precisions_init=np.stack([np.eye(3)] * 3), max_iter=3, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = SKGaussianMixture(3, **init).fit(X)
        ours = GaussianMixture(3, **init).fit(X)
        shifted = GaussianMixture(3, **(init | dict(means_init=init["means_init"] + 1000.0))).fit(X + 1000.0)
    np.testing.assert_array_equal(sk.means_[2], 0.0)
    np.testing.assert_array_equal(ours.means_[2], 50.0)
    np.testing.assert_allclose(ours.means_[:2], sk.means_[:2], rtol=1e-12)
    for name in ("weights_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(sk, name), rtol=1e-12, atol=1e-15, err_msg=name)
    np.testing.assert_allclose(ours.weights_[2], sk.weights_[2], rtol=1e-12, atol=0)  # 10 eps / n, not 0
    np.testing.assert_allclose(ours.lower_bounds_, sk.lower_bounds_, rtol=1e-12)
    np.testing.assert_allclose(shifted.means_ - 1000.0, ours.means_, atol=1e-9)


def test_collapsed_component_needs_reg_covar():
    X = np.repeat(np.array([[1.0, 2.0], [3.0, 1.0]]), 50, axis=0)  # two points, each repeated
    GaussianMixture(2, reg_covar=1e-6, random_state=0).fit(X)  # reg_covar keeps them positive definite
    with pytest.raises(ValueError, match="reg_covar"):
        GaussianMixture(2, reg_covar=0.0, random_state=0).fit(X)


@pytest.mark.parametrize("ct", TYPES)
def test_integer_sample_weight_equals_repeated_rows(ct):
    X = make_blobs(n=900)
    w = np.random.default_rng(0).integers(0, 4, len(X))
    init = sk_init(X, ct)
    a = GaussianMixture(3, covariance_type=ct, tol=1e-6, **init).fit(X, sample_weight=w)
    b = GaussianMixture(3, covariance_type=ct, tol=1e-6, **init).fit(np.repeat(X, w, axis=0))
    assert a.n_iter_ == b.n_iter_
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-9)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-9)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-10)
    # the same with weights as a dask array aligned with dask rows
    c = GaussianMixture(3, covariance_type=ct, tol=1e-6, **init).fit(
        da.from_array(X, chunks=(300, 2)), sample_weight=da.from_array(w, chunks=450)
    )
    np.testing.assert_allclose(c.means_, a.means_, rtol=1e-9)


@pytest.mark.parametrize("ct", TYPES)
def test_light_rows_among_heavy_ones_are_repeated_rows_too(ct):
    """A far component holding only rows of weight 1 among rows of weight 1e4. With scikit-learn's floor
    in units of the mean weight (952), its mean was pulled 2e-7 toward the origin (1e-3 of its
    width at weights of 1e6); in units of the least weight it is scikit-learn's on the repeated rows."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (20, 2)), [1e4, -1e4] + rng.normal(0, 1e-3, (2, 2))])
    w = np.r_[np.full(20, 10_000), 1, 1]
    init = dict(weights_init=[0.5, 0.5], means_init=[[0, 0], [1e4, -1e4]],
                precisions_init=np.array([np.eye(2)] * 2) if ct == "full" else None)
    init = {k: v for k, v in init.items() if v is not None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = SKGaussianMixture(2, covariance_type=ct, max_iter=5, tol=0, **init).fit(np.repeat(X, w, axis=0))
        got = GaussianMixture(2, covariance_type=ct, max_iter=5, tol=0, **init).fit(X, sample_weight=w)
        chunked = GaussianMixture(2, covariance_type=ct, max_iter=5, tol=0, **init).fit(  # the least of the chunks'
            da.from_array(X, chunks=(11, 2)), sample_weight=da.from_array(w, chunks=11))
    np.testing.assert_allclose(chunked.means_, got.means_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got.means_, sk.means_, rtol=0, atol=1e-10)  # the light one's width: 7e-4
    np.testing.assert_allclose(got.weights_, sk.weights_, rtol=1e-12)
    if ct in ("full", "tied"):
        np.testing.assert_allclose(got.covariances_, sk.covariances_, rtol=1e-8)
    else:  # scikit-learn's uncentred moments lose 5-10 % of the light one's at 1e4: NumPy's two-pass variance
        np.testing.assert_allclose(got.covariances_[0], sk.covariances_[0], rtol=1e-8)
        var = X[20:].var(axis=0) + 1e-6
        np.testing.assert_allclose(got.covariances_[1], var if ct == "diag" else var.mean(), rtol=1e-8)


def test_a_subnormal_least_weight_still_floors_the_weights():
    """With the floor in units of the least weight, a weight of 1e-310 made it 0, and an emptied
    component 0/0 (said as overflowing covariances; a review): it is never under the least float."""
    X = np.random.default_rng(0).normal(size=(200, 2))
    w = np.ones(200)
    w[0] = 1e-310
    kw = dict(means_init=[[0, 0], [1e3, 1e3]], max_iter=3, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        got = GaussianMixture(2, **kw).fit(X, sample_weight=w)
        ref = GaussianMixture(2, **kw).fit(X[1:])  # the row of weight 1e-310 changes nothing visible
    np.testing.assert_allclose(got.means_, ref.means_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.weights_, ref.weights_, rtol=0, atol=1e-12)


def test_sample_weight_with_default_init_and_errors():
    X = make_blobs(n=900)
    w = np.ones(len(X))
    w[::3] = 0.0
    gm = GaussianMixture(3, random_state=0).fit(X, sample_weight=w)
    assert gm.converged_
    with pytest.raises(ValueError, match="non-negative"):
        GaussianMixture(3).fit(X, sample_weight=-w)
    with pytest.raises(ValueError, match="one weight per row"):
        GaussianMixture(3).fit(X, sample_weight=w[:-1])


def test_all_zero_sample_weight_is_a_value_error():
    X = make_blobs(n=900)
    zero = np.zeros(len(X))
    given = sk_init(X, "full")  # every initial parameter given: the EM pass is the first to see the weights
    for gm in (GaussianMixture(3, random_state=0), GaussianMixture(3, init_params="random", random_state=0),
               GaussianMixture(3, **given)):
        with pytest.raises(ValueError, match="sample_weight sums to 0"):
            gm.fit(X, sample_weight=zero)
    with pytest.raises(ValueError, match="sample_weight sums to 0"):
        GaussianMixture(3, random_state=0).fit(da.from_array(X, chunks=(300, 2)), sample_weight=da.zeros(len(X), chunks=300))
    gm = GaussianMixture(3, random_state=0).fit(X)
    with pytest.raises(ValueError, match="sample_weight sums to 0"):
        gm.score(X, sample_weight=zero)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_rows_of_weight_zero_are_not_drawn_as_starting_points(init_params):
    """Weight 0 means the row is absent: random_from_data drew its means uniformly over the rows,
    and 8 fits in 10 kept a component of weight ~0 inside the rows of weight 0."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (500, 2)), rng.normal(100, 1, (500, 2))])
    w = np.r_[np.ones(500), np.zeros(500)]
    for seed in range(10):
        gm = GaussianMixture(2, init_params=init_params, random_state=seed).fit(X, sample_weight=w)
        assert gm.weights_.min() > 0.05 and np.abs(gm.means_).max() < 10


def test_weighted_rows_are_drawn_in_proportion_to_their_weight():
    """The starting rows drawn under sample weights: as from the rows repeated as often as their
    weights say (frequencies within 5 standard errors over 20000 draws), rows of weight 0 only
    once nothing else is left (the lowest first), and the same rows whatever the chunking."""
    from dask_gmm._init import _smallest_keys, gather_rows

    w = np.r_[np.zeros(10), np.arange(1.0, 6.0)]
    counts = np.zeros(15)
    for s in range(20000):
        ((keys, rows),) = _smallest_keys(w, 0, [(1, np.random.SeedSequence(s).generate_state(2, np.uint64))])
        counts[rows[0]] += 1
    p = w / w.sum()
    assert np.all(np.abs(counts / 20000 - p) <= 5 * np.sqrt(p * (1 - p) / 20000))
    signed = np.r_[-0.0, 1.0, 1.0]  # -0.0 passes the weight checks; its key was -inf, always drawn first
    for s in range(20):
        ((_, rows),) = _smallest_keys(signed, 0, [(1, np.random.SeedSequence(s).generate_state(2, np.uint64))])
        assert rows[0] != 0
    X = da.from_array(np.arange(15.0)[:, None], chunks=4)
    for s in range(10):
        for n, expected in ((3, None), (7, np.r_[0.0, 1.0, np.arange(10.0, 15.0)])):  # five weigh, then 0, 1
            drawn = [gather_rows(X, [n], [np.random.SeedSequence(s)], da.from_array(w, chunks=c))[0][:, 0]
                     for c in (4, 7, 15)]
            assert set(drawn[0]) <= set(range(10, 15)) if expected is None else np.array_equal(drawn[0], expected)
            np.testing.assert_array_equal(drawn[1], drawn[0])
            np.testing.assert_array_equal(drawn[2], drawn[0])


@pytest.mark.parametrize("compiled", [True, False])
def test_rows_of_weight_zero_leave_an_emptied_components_floor_as_scikit_learns(compiled, monkeypatch):
    """scikit-learn's floor of 10 eps on each N_k is in units of the least positive weight: rows of
    weight 0 are no unit (a mutant that took them as one floored an emptied component at the least
    subnormal, and passed every test: a review). The fit of the rows with rows of weight 0 added is
    scikit-learn's fit of the rows, the emptied component's weight included."""
    from dask_gmm import _kernels

    monkeypatch.setattr(_kernels, "USE_NUMBA", compiled and _kernels.USE_NUMBA)
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(-2, 1, (300, 3)), rng.normal(2, 1, (300, 3))])
    extra, w = rng.normal(0, 1, (50, 3)), np.r_[np.ones(600), np.zeros(50)]
    init = dict(weights_init=[0.4, 0.4, 0.2], means_init=np.array([[-2.0] * 3, [2.0] * 3, [50.0] * 3]),
                precisions_init=np.stack([np.eye(3)] * 3), max_iter=3, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = SKGaussianMixture(3, **init).fit(X)
        ours = GaussianMixture(3, **init).fit(np.vstack([X, extra]), sample_weight=w)
    assert 0 < sk.weights_[2] < 1e-12  # emptied: the floor alone
    np.testing.assert_allclose(ours.weights_, sk.weights_, rtol=1e-12, atol=0)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_unit_weights_fit_as_no_weights(init_params, compiled, monkeypatch):
    """Unit weights drew other starting rows than no weights (the weighted draw's keys), so the
    k-means, k-means++ and random_from_data starts, and the fits, differed: means by up to 1.0
    (a review). Every weight the same draws the rows that no weights draw. The reference kernels'
    weighted sums had summed in another order than their unweighted ones (the last bit of
    ``lower_bound_``, a review)."""
    from dask_gmm import _kernels

    monkeypatch.setattr(_kernels, "USE_NUMBA", compiled and _kernels.USE_NUMBA)
    X = make_blobs(n=400, seed=5)
    kw = dict(init_params=init_params, random_state=0, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for Model in (GaussianMixture, BayesianGaussianMixture):
            plain = Model(6, **kw).fit(X)
            for w in (np.ones(len(X)), da.ones(len(X), chunks=70)):
                weighted = Model(6, **kw).fit(X, sample_weight=w)
                np.testing.assert_array_equal(weighted.means_, plain.means_)
                assert weighted.lower_bound_ == plain.lower_bound_
        uneven = np.ones(len(X))  # one row of weight 2: the weighted draw
        uneven[7] = 2.0
        moved = GaussianMixture(6, **kw).fit(X, sample_weight=uneven)
        assert not np.array_equal(moved.means_, GaussianMixture(6, **kw).fit(X).means_)


def test_subnormal_weights_draw_the_rows_that_their_scaled_copies_draw():
    """Weights of 1e-320 made every key -log(u)/w overflow to inf (with a RuntimeWarning): every seed
    then drew rows 0, 1, 2 for its start. (A fit with such weights is refused: see below.)"""
    from dask_gmm._init import gather_rows

    X = da.from_array(np.arange(1000.0)[:, None], chunks=300)
    blobs = make_blobs(n=600)
    for s in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            tiny = gather_rows(X, [3], [np.random.SeedSequence(s)], da.full(1000, 1e-320, chunks=300))[0]
            with pytest.raises(ValueError, match="weights this small are subnormal"):  # a fit: too few digits
                GaussianMixture(3, max_iter=0, random_state=s).fit(blobs, sample_weight=np.full(len(blobs), 1e-320))
        ones = gather_rows(X, [3], [np.random.SeedSequence(s)], da.ones(1000, chunks=300))[0]
        np.testing.assert_array_equal(tiny, ones)
        assert not np.array_equal(tiny[:, 0], [0.0, 1.0, 2.0])


@pytest.mark.parametrize("c", [1e-300, 1e-18, 1e10])
def test_scaling_every_weight_alike_changes_nothing(c):
    """The floor of 10 eps on each component's weight is taken in units of the smallest weight: an
    absolute one moved the means by 1e-4 with weights of 1e-18 and decided the fit with 1e-300."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (3000, 2)), rng.normal(4, 0.5, (3000, 2))])
    w = np.full(len(X), c)
    given = dict(weights_init=[0.5, 0.5], means_init=[[1, 0], [3, 4]], precisions_init=np.array([np.eye(2)] * 2))
    for kw in (given, dict(random_state=0)):  # from given parameters, and through the k-means start
        ref = GaussianMixture(2, tol=1e-10, **kw).fit(X)
        got = GaussianMixture(2, tol=1e-10, **kw).fit(X, sample_weight=w)
        assert got.n_iter_ == ref.n_iter_
        np.testing.assert_allclose(got.means_, ref.means_, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got.lower_bound_, ref.lower_bound_, rtol=1e-12)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++"])
@pytest.mark.parametrize("c", [1e-300, 1e-18, 1e10])
def test_scaled_weights_give_the_same_k_means_start(init_params, c):
    """The k-means|| candidates' weights floor relative to the largest: an absolute floor of 1e-12
    outweighed counts of tiny weights and moved the means by 2.4 (four overlapping blobs)."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(m, 1.0, (1500, 2)) for m in ((0, 0), (2.5, 0), (0, 2.5), (2.5, 2.5))])
    w = rng.uniform(0.5, 2.0, len(X))
    kw = dict(init_params=init_params, random_state=0, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = GaussianMixture(4, **kw).fit(X, sample_weight=w)
        got = GaussianMixture(4, **kw).fit(X, sample_weight=w * c)
    np.testing.assert_allclose(got.means_, ref.means_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.weights_, ref.weights_, rtol=0, atol=1e-12)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_weights_whose_sum_overflows_are_refused_by_name_in_fit(init_params):
    """The k-means start turned them into NaN weights for scikit-learn's KMeans, which said
    'Input sample_weight contains NaN'."""
    X = make_blobs(n=1000)
    with pytest.raises(ValueError, match="sums to more than float64 can hold|sample weights are too large"):
        GaussianMixture(2, init_params=init_params, random_state=0).fit(X, sample_weight=np.full(len(X), 1e306))


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_weights_whose_weighted_sums_overflow_are_named_without_numpy_warnings(init_params):
    """Weights summing within float64 whose weighted squares around one point do not: the
    k-means cost went inf with a NumPy overflow warning, and k-means|| then sampled no candidate,
    quietly; the random start's moments warned too, and blamed the data alone. Each start now
    names the weights, without warnings, or (the weighted squares around its own start fitting
    in float64) fits as without the weights."""
    rng = np.random.default_rng(16)
    X = np.vstack([rng.normal(0, 1, (300, 2)), rng.normal(4, 0.5, (300, 2))])
    named = r"overflowed: the data (or|\(or) their sample weights"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if init_params != "random_from_data":
            with pytest.raises(ValueError, match=named):
                GaussianMixture(2, init_params=init_params, random_state=0).fit(X, sample_weight=np.full(len(X), 1e305))
            return
        outcomes = set()  # its start, a few rows, keeps the weighted squares in range or not, by the rows drawn
        for seed in range(8):
            kw = dict(init_params=init_params, random_state=seed)
            try:
                got = GaussianMixture(2, **kw).fit(X, sample_weight=np.full(len(X), 1e305))
            except ValueError as exc:
                assert re.search(named, str(exc)), exc
                outcomes.add("named")
                continue
            ref = GaussianMixture(2, **kw).fit(X, sample_weight=np.ones(len(X)))
            np.testing.assert_allclose(got.means_, ref.means_, rtol=1e-12)
            outcomes.add("fitted")
        assert outcomes == {"named", "fitted"}


@pytest.mark.parametrize("compiled", [True, False])
def test_weights_so_large_that_the_sums_overflow_are_named(compiled, monkeypatch):
    from dask_gmm import _kernels

    monkeypatch.setattr(_kernels, "USE_NUMBA", compiled and _kernels.USE_NUMBA)
    X = make_blobs(n=3000)
    gm = GaussianMixture(2, random_state=0).fit(X)
    big = np.full(len(X), 1e307)
    with pytest.raises(ValueError, match="sample_weight sums to more than float64 can hold"):
        gm.score(X, sample_weight=big)  # in memory: their sum, before any pass
    with pytest.raises(ValueError, match=r"overflowed \(each row's own is finite: their weighted sum is not\): the "
                                         "data or their sample weights are too large"):
        gm.score(X, sample_weight=da.from_array(big, chunks=1500))  # lazy: within a block
    X = np.random.default_rng(0).normal(size=(600, 2))  # four blocks of 150 rows (log-likelihoods near -2.8):
    gm = GaussianMixture(2, random_state=0).fit(X)  # each block's weighted sum finite, their total not
    with pytest.raises(ValueError, match="weighted sum over the rows overflowed: the data or their sample weights"):
        gm.score(X, sample_weight=da.from_array(np.full(len(X), 3e305), chunks=150))  # was -inf, silently


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("shift", [1e200, 1e308])
def test_a_model_far_from_the_data_is_named_without_numpy_warnings(compiled, shift, monkeypatch):
    """A loaded model whose means are near the float64 limit: every per-row output raises, naming the
    model as well as the data (it named the data alone), and the layout of the means warned of an
    overflow first."""
    from dask_gmm import _kernels

    monkeypatch.setattr(_kernels, "USE_NUMBA", compiled and _kernels.USE_NUMBA)
    X = make_blobs(n=600)
    gm = GaussianMixture(2, random_state=0).fit(X)
    gm.means_ = gm.means_ + shift
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in (gm.predict, gm.predict_proba, gm.score_samples, gm.score):
            with pytest.raises(ValueError, match=r"overflowed \(first row whose own log-likelihood did: \d+\): the "
                                                 "data are too large in magnitude, or too far from the model's "
                                                 "means for its precisions"):
                method(X)


@pytest.mark.parametrize("compiled", [False, True])
def test_a_row_whose_log_likelihood_overflows_is_named(compiled, monkeypatch):
    """A finite row at 1e200 overflowed the E-step and every per-row output naming only its chunk, and the
    initialisation ('a weighted sum over the rows overflowed') naming nothing."""
    from dask_gmm import _kernels

    monkeypatch.setattr(_kernels, "USE_NUMBA", compiled and _kernels.USE_NUMBA)
    X = np.random.default_rng(0).normal(size=(3000, 2))
    X[1234, 0] = 1e200
    Xd = da.from_array(X, chunks=1000)
    with pytest.raises(ValueError, match="squared distance of row 1234 to its nearest centre overflowed"):
        GaussianMixture(3, random_state=0).fit(Xd)
    start = dict(means_init=[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]], weights_init=[0.3, 0.3, 0.4],
                 precisions_init=np.stack([np.eye(2)] * 3))
    named = r"rows 1000-1999 overflowed \(first row whose own log-likelihood did: 1234\)"
    with pytest.raises(ValueError, match=named):
        GaussianMixture(3, **start).fit(Xd)
    gm = GaussianMixture(3, **start, max_iter=0).fit(X[:1000])
    for method in (gm.predict, gm.predict_proba, gm.score_samples):
        with pytest.raises(ValueError, match=named):
            method(Xd).compute()  # lazy for dask input
    with pytest.raises(ValueError, match=named):
        gm.score(Xd)


def test_a_sum_of_finite_log_likelihoods_that_overflows_says_so():
    """Every row's log-likelihood finite (-1.44e306), their sum not: the message said the rows'
    log-likelihood overflowed, and NumPy's 'overflow encountered in reduce' warning came first
    (a numerics review)."""
    start = dict(max_iter=0, weights_init=[1.0], means_init=[[0.0, 0.0]], precisions_init=[np.eye(2)])
    gm = GaussianMixture(1, **start).fit(np.random.default_rng(0).normal(size=(400, 2)))
    Y = np.full((1000, 2), 1.2e153)
    assert np.isfinite(gm.score_samples(Y)).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"rows 0-\d+ overflowed \(each row's own is finite: their sum is not\)"):
            gm.score(Y)
        with pytest.raises(ValueError, match="A weighted sum over the rows overflowed"):
            gm.score(da.from_array(Y, chunks=100))


def test_a_far_wide_start_with_many_features_keeps_the_means_digits(monkeypatch):
    """A start 3000 standard deviations away with precisions 1e-8 times the data's, d=12: the iterations
    recomputed on their new means (_em.recentred) took the first moments as sum r (x - c) less
    (sum r)(cm - c), c far from the data, where the compiled kernels pack rows (d >= 10): the means
    ended 8e-9 from the NumPy kernels' after 10 iterations (3e-11 now: the packed GEMM gives them)."""
    from dask_gmm import _kernels

    rng = np.random.default_rng(1)
    d, K = 12, 3
    centres = rng.uniform(-6, 6, size=(K, d))
    labels = rng.integers(0, K, 3000)
    A = rng.normal(size=(K, d, d)) * 0.5 + np.eye(d)
    X = centres[labels] + np.einsum("nij,nj->ni", A[labels], rng.normal(size=(3000, d)))
    rng = np.random.default_rng(2)
    means = X[rng.choice(3000, K, replace=False)] + 0.01 * X.std(0) * rng.normal(size=(K, d))
    weights = rng.uniform(0.5, 1.5, K)
    C = np.cov(X.T) * 0.5 + 1e-12 * np.eye(d)
    precisions = np.stack([np.linalg.inv(C * rng.uniform(0.5, 1.5)) for _ in range(K)])
    start = dict(means_init=means + 3000.0 * X.std(), weights_init=weights / weights.sum(),
                 precisions_init=precisions * 1e-8)
    fits, numba = {}, _kernels.USE_NUMBA
    for compiled in (False, True):
        monkeypatch.setattr(_kernels, "USE_NUMBA", compiled and numba)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits[compiled] = GaussianMixture(K, tol=0, max_iter=10, **start).fit(X).means_
    np.testing.assert_allclose(fits[True], fits[False], rtol=0, atol=1e-9 * np.abs(fits[False]).max())


def test_a_collapsing_component_fails_after_one_more_pass_not_twenty(monkeypatch):
    """A component collapsing onto two rows with reg_covar=0: its covariance is not positive
    definite however its moments are centred, and the statistics were computed 20 more times
    (MAX_RECENTRING_PASSES) before the M-step's error. After one more pass its mean (50) moves
    within its own rounding (ROUNDING), which counts as no move: MOVE_SHRINK's stop is the next
    test's."""
    from dask_gmm import _em

    passes = []
    real = _em.Blocks.map_reduce
    monkeypatch.setattr(_em.Blocks, "map_reduce", lambda self, *a, **k: passes.append(a[0]) or real(self, *a, **k))
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(300, 3)), [[50, 50, 50], [50.5, 50, 50]]])
    start = dict(means_init=[[0.0, 0, 0], [50.2, 50, 50]], weights_init=[0.99, 0.01],
                 precisions_init=np.stack([np.eye(3)] * 2))
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        GaussianMixture(2, reg_covar=0, max_iter=5, **start).fit(X)
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        SKGaussianMixture(2, reg_covar=0, max_iter=5, **start).fit(X)
    assert [k.__name__ for k in passes] == ["e_step_stats"] * 2


def test_a_singular_component_at_the_origin_stops_recentring_when_its_mean_stops_moving(monkeypatch):
    """Rows on a line through the origin, reg_covar=0: the covariance is singular however its moments
    are centred, and the mean, 0 but for rounding, moves by the rounding of the rows' sum (1e-17, no
    longer within its own rounding) in every pass. Without MOVE_SHRINK's stop the statistics were
    computed 20 more times before the M-step's error; it now stops once a pass no longer shrinks
    the move."""
    from dask_gmm import _em

    passes = []
    real = _em.Blocks.map_reduce
    monkeypatch.setattr(_em.Blocks, "map_reduce", lambda self, *a, **k: passes.append(a[0]) or real(self, *a, **k))
    t = np.random.default_rng(0).uniform(-1, 1, size=(1000, 1))
    X = np.vstack([np.hstack([t, t]), -np.hstack([t, t])])
    start = dict(means_init=[[0.3, 0.3]], weights_init=[1.0], precisions_init=[np.eye(2)])
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        GaussianMixture(1, reg_covar=0, max_iter=5, **start).fit(X)
    assert [k.__name__ for k in passes] == ["e_step_stats"] * 3
    try:  # scikit-learn's covariance is singular too; whether its Cholesky fails depends on its LAPACK's
        ref = SKGaussianMixture(1, reg_covar=0, max_iter=5, **start).fit(X)  # rounding (OpenBLAS's SkylakeX
    except ValueError as exc:  # kernels on an Intel Xeon factor it)
        assert "ill-defined empirical covariance" in str(exc)
    else:
        assert np.linalg.eigvalsh(ref.covariances_[0])[0] <= 1e-15


@pytest.mark.parametrize("ct", ["full", "tied"])
@pytest.mark.parametrize("n, seed", [(200, 0), (200, 1), (10_000, 0), (100_000, 1)])
def test_a_feature_that_is_a_linear_combination_of_others_is_refused_without_reg_covar(ct, n, seed):
    """X2 = 2 X0 - 0.37 X1, reg_covar=0: the covariance is singular, and was refused or fitted as
    rounding fell (a review: eigenvalues [6e-16, 0.99, 6.2], a lower bound of rounding's), as
    scikit-learn's is. Refused always now; the same feature off the combination by 1e-5 of its
    spread (its variance given the others 1e-10 of its own) is fitted as scikit-learn fits it."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)) * [1, 100, 1e-3] + [5, -3e3, 1e4]
    X[:, 2] = 2 * X[:, 0] - 0.37 * X[:, 1]
    prec = np.eye(3) / X.var(axis=0)
    start = dict(weights_init=[1.0], means_init=X.mean(axis=0, keepdims=True),
                 precisions_init=prec[None] if ct == "full" else prec)
    kw = dict(covariance_type=ct, reg_covar=0.0, max_iter=2, tol=0, **start)
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        GaussianMixture(1, **kw).fit(X)
    X[:, 2] += 1e-5 * X[:, 2].std() * rng.normal(size=n)
    X -= X.mean(axis=0)  # scikit-learn's raw moments would lose the 1e-14 at the offset above
    kw.update(means_init=np.zeros((1, 3)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours, ref = GaussianMixture(1, **kw).fit(X), SKGaussianMixture(1, **kw).fit(X)
    np.testing.assert_allclose(ours.lower_bound_, ref.lower_bound_, rtol=1e-6)
    np.testing.assert_allclose(ours.covariances_, ref.covariances_, rtol=1e-9)


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_variances_below_the_least_normal_float_are_refused(ct):
    """Rows at 1e-160, reg_covar=0: their variances (1e-320) are subnormal floats of 3-5 digits and
    their precisions inf, and the fit was said to have converged (a review). At 1e-150 it fits as
    the unscaled rows do."""
    X = make_blobs(n=600)
    with pytest.raises(ValueError, match=r"ill-defined empirical covariance.*or scale the input data\. Variances below"):
        GaussianMixture(3, covariance_type=ct, reg_covar=0.0, random_state=0).fit(X * 1e-160)
    small = GaussianMixture(3, covariance_type=ct, reg_covar=0.0, random_state=0).fit(X * 1e-150)
    np.testing.assert_allclose(small.means_ * 1e150, GaussianMixture(3, covariance_type=ct, reg_covar=0.0,
                                                                     random_state=0).fit(X).means_, rtol=1e-9)


@pytest.mark.parametrize("scale, start", [(1e-12, 1e-4), (1e-13, 2e-4)])
def test_a_narrow_component_beside_a_far_one_is_recentred_on_its_own_scale(scale, start):
    """A component 1e-12 wide at 0 beside one at 1e12: the rounding of the means was judged by the
    largest, so the narrow one's move was taken for rounding, and no further pass was made: its
    covariance was refused (scale 1e-12), or 2.7e-23 for 9.9e-27 (1e-13). Each mean is now judged
    by its own value."""
    rng = np.random.default_rng(0)
    X = np.vstack([1e12 + rng.normal(size=(2000, 1)), scale * rng.normal(size=(2000, 1))])
    kw = dict(means_init=[[X[:2000].mean()], [start]], weights_init=[0.5, 0.5], reg_covar=0, max_iter=1, tol=0,
              precisions_init=np.array([[[1.0]], [[1 / (10 * scale) ** 2]]]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours, ref = GaussianMixture(2, **kw).fit(X), SKGaussianMixture(2, **kw).fit(X)
    np.testing.assert_allclose(ours.covariances_[1], ref.covariances_[1], rtol=1e-8)
    np.testing.assert_allclose(ours.covariances_[1, 0, 0], X[2000:].var(), rtol=1e-8)


@pytest.mark.parametrize("far", [1e8, 1e20, 1e100])
def test_a_start_with_a_far_mean_fits_as_scikit_learn(far):
    """A start with one mean far from the data and half the weight (probe: the compiled kernels
    centred the tiles on the mean of the means, 5e19 from the data at 1e20, collapsed the live
    covariance along feature 0 with a lower bound of +4.56, and refused the data at 1e100)."""
    X = np.random.default_rng(0).normal(size=(200, 2))
    kw = dict(n_components=2, means_init=[[far, 0.0], [0.0, 0.0]], weights_init=[0.5, 0.5],
              precisions_init=np.array([np.eye(2)] * 2), max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours, ref = GaussianMixture(**kw).fit(X), SKGaussianMixture(**kw).fit(X)
    assert ours.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(ours.lower_bound_, ref.lower_bound_, rtol=1e-10)
    np.testing.assert_allclose(ours.weights_, ref.weights_, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(ours.means_[1], ref.means_[1], rtol=1e-10)
    np.testing.assert_allclose(ours.covariances_[1], ref.covariances_[1], rtol=1e-10)


def test_complex_sample_weight_is_refused():
    """Not cast to float64, which drops the imaginary part; NumPy, scalar and dask weights alike."""
    X = make_blobs(n=300)
    for w in (np.full(len(X), 1 + 50j), 1 + 0j, da.from_array(np.full(len(X), 2j)), np.array(["a"] * len(X))):
        with pytest.raises(ValueError, match="sample_weight must hold real numbers"):
            GaussianMixture(2, random_state=0).fit(X, sample_weight=w)
    ints = GaussianMixture(2, random_state=0).fit(X, sample_weight=np.full(len(X), 2)).means_
    ints = ints[np.argsort(ints[:, 0])]  # weighted, the k-means start draws its rows otherwise: the same fit, in another order
    plain = GaussianMixture(2, random_state=0).fit(X).means_
    np.testing.assert_allclose(ints, plain[np.argsort(plain[:, 0])], rtol=1e-10)
    # Real numbers held as objects convert, as scikit-learn converts them; complex ones do not.
    for w in (np.full(len(X), 2, dtype=object), [Fraction(2)] * len(X), np.array(["2"] * len(X))):  # as scikit-learn's
        got = GaussianMixture(2, random_state=0).fit(X, sample_weight=w).means_
        np.testing.assert_allclose(got[np.argsort(got[:, 0])], ints, rtol=1e-12)
    with pytest.raises(ValueError, match="sample_weight must hold real numbers"):
        GaussianMixture(2, random_state=0).fit(X, sample_weight=np.full(len(X), 1 + 1j, dtype=object))
    a = GaussianMixture(2, random_state=0, weights_init=[Fraction(1, 2)] * 2).fit(X).means_
    np.testing.assert_array_equal(a, GaussianMixture(2, random_state=0, weights_init=[0.5, 0.5]).fit(X).means_)


def test_sklearn_estimator_protocol():
    gm = GaussianMixture(3, covariance_type="diag", random_state=1)
    params = gm.get_params()
    assert params["n_components"] == 3 and params["tol"] == 1e-3 and params["reg_covar"] == 1e-6
    assert params["max_iter"] == 100 and params["init_params"] == "kmeans" and params["n_init"] == 1
    c = clone(gm).set_params(n_components=2)
    assert c.n_components == 2 and gm.n_components == 3
    with pytest.raises(NotFittedError):
        gm.predict(np.zeros((3, 2)))
    for method in ("predict", "predict_proba", "score_samples", "score", "bic", "aic"):
        with pytest.raises(NotFittedError):  # said before the data are opened, whatever they are
            getattr(gm, method)("no-such-store.zarr")
    with pytest.raises(TypeError):
        GaussianMixture(3, "full")  # keyword-only after the first


def test_fit_predict_equals_fit_then_predict_and_sample():
    X = make_blobs(n=1500)
    gm = GaussianMixture(3, random_state=3)
    labels = gm.fit_predict(X)
    np.testing.assert_array_equal(labels, clone(gm).fit(X).predict(X))
    S, y = gm.sample(30_000)
    assert S.shape == (30_000, 2) and np.bincount(y, minlength=3).sum() == 30_000
    np.testing.assert_allclose(np.bincount(y) / 30_000, gm.weights_, atol=0.02)
    for k in range(3):
        np.testing.assert_allclose(S[y == k].mean(0), gm.means_[k], atol=0.1)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_samples_have_the_fitted_covariances(covariance_type):
    """Each component's sampled rows have its fitted mean and covariance (as a full matrix), and the
    components their weights' shares of the rows, to sampling error (np.cov alone passed rows drawn
    about another component's mean: a review)."""
    X, *_ = seed_like_problem(2, n_components=3, n_samples=3000)
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    full = {"full": lambda c, k: c[k], "tied": lambda c, k: c, "diag": lambda c, k: np.diag(c[k]),
            "spherical": lambda c, k: c[k] * np.eye(2)}[covariance_type]
    S, y = gm.sample(200_000)
    n = np.bincount(y, minlength=3)
    p = gm.weights_
    assert np.all(np.abs(n / len(y) - p) < 5 * np.sqrt(p * (1 - p) / len(y)))
    for k in range(3):
        want = full(gm.covariances_, k)
        np.testing.assert_allclose(np.cov(S[y == k].T), want, atol=0.05 * np.abs(want).max())
        assert np.all(np.abs(S[y == k].mean(0) - gm.means_[k]) < 5 * np.sqrt(np.diag(want) / n[k]))


def test_convergence_warning_n_init_and_max_iter_zero():
    X, *_ = seed_like_problem(0, n_components=4)
    with pytest.warns(ConvergenceWarning) as warned:
        GaussianMixture(4, max_iter=1, random_state=0).fit(X)
    assert warned[0].filename == __file__  # the user's line (it was mixture.py's: shown once a process)
    one = GaussianMixture(4, init_params="random", random_state=0).fit(X)
    five = GaussianMixture(4, init_params="random", n_init=5, random_state=0).fit(X)
    assert five.lower_bound_ >= one.lower_bound_  # restart 0 of five is the run of one
    init = sk_init(X, "full", K=4)
    zero = GaussianMixture(4, max_iter=0, **init).fit(X)
    np.testing.assert_array_equal(zero.means_, init["means_init"])
    np.testing.assert_allclose(zero.precisions_, init["precisions_init"], rtol=1e-12)
    assert zero.n_iter_ == 0 and zero.lower_bound_ == -np.inf


def test_warm_start_continues():
    X = make_blobs(n=1500)
    init = sk_init(X, "full")
    four = GaussianMixture(3, max_iter=4, tol=0, **init)
    warm = GaussianMixture(3, max_iter=2, tol=0, warm_start=True, **init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        four.fit(X)
        warm.fit(X).fit(X)
    np.testing.assert_array_equal(warm.means_, four.means_)
    np.testing.assert_array_equal(warm.covariances_, four.covariances_)
    assert warm.lower_bounds_ == four.lower_bounds_[2:]


def test_warm_start_with_max_iter_zero_then_more_matches_sklearn():
    """max_iter=0 leaves lower_bound_ at -inf, warm or not, as in scikit-learn: the old bound kept
    stopped the next warm fit an iteration early (means 0.016 apart)."""
    X = make_blobs(n=1500)
    init = sk_init(X, "full")
    ours, theirs = GaussianMixture(3, **init), SKGaussianMixture(3, **init)
    for m in (ours, theirs):
        m.fit(X).set_params(warm_start=True, max_iter=0).fit(X)
    assert ours.lower_bound_ == theirs.lower_bound_ == -np.inf and ours.n_iter_ == theirs.n_iter_ == 0
    for m in (ours, theirs):
        m.set_params(max_iter=100).fit(X)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.means_, theirs.means_, rtol=1e-8)
    assert ours.lower_bound_ == pytest.approx(theirs.lower_bound_, rel=1e-10)


def test_max_iter_zero_from_given_parameters_still_checks_the_rows():
    """With every *_init given, or a warm start, max_iter=0 made no pass: a NaN row was accepted,
    where scikit-learn refuses it (it checks X first), and surfaced only at the next score."""
    X = make_blobs(n=600)
    init = sk_init(X, "full")
    holed = X.copy()
    holed[417, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        SKGaussianMixture(3, max_iter=0, **init).fit(holed)  # the reference refuses it too
    for data in (holed, da.from_array(holed, chunks=(100, 2))):
        with pytest.raises(ValueError, match=r"first bad row: 417\)"):
            GaussianMixture(3, max_iter=0, **init).fit(data)
        warm = GaussianMixture(3, warm_start=True, **init).fit(X)
        with pytest.raises(ValueError, match=r"first bad row: 417\)"):
            warm.set_params(max_iter=0).fit(data)
    zero = GaussianMixture(3, max_iter=0, **init).fit(X)  # what it fits is unchanged: the start
    np.testing.assert_array_equal(zero.means_, init["means_init"])
    assert zero.lower_bound_ == -np.inf and zero.n_iter_ == 0


@pytest.mark.parametrize("estimator", ["GaussianMixture", "BayesianGaussianMixture"])
def test_settings_changed_after_the_fit(estimator, tmp_path):
    """The fitted parameters are what predict and the rest use, as in scikit-learn. A changed
    n_components made predict_proba's output (N, the new K): its extra columns uninitialised memory
    in memory, a dask array declaring columns its blocks lacked. A changed covariance_type was
    NumPy's error in predict, and sample() drew from misread covariances silently."""
    import dask_gmm

    X = make_blobs(n=600)
    gm = getattr(dask_gmm, estimator)(n_components=3, random_state=0).fit(X)
    proba = gm.predict_proba(X)
    gm.set_params(n_components=5)
    np.testing.assert_array_equal(gm.predict_proba(X), proba)
    lazy = gm.predict_proba(da.from_array(X, chunks=(250, 2)))
    assert lazy.shape == proba.shape and lazy.chunks[1] == (3,)
    np.testing.assert_array_equal(lazy.compute(), proba)
    if estimator == "GaussianMixture":
        bic = gm.bic(X)
        assert bic == gm.set_params(n_components=3).bic(X)
        dask_gmm.save_model(gm.set_params(n_components=5), tmp_path / "m.json")
        assert dask_gmm.load_model(tmp_path / "m.json").n_components == 3
    gm.set_params(n_components=3, covariance_type="diag")
    for call in (lambda: gm.predict(X), lambda: gm.predict_proba(X), lambda: gm.score_samples(X),
                 lambda: gm.score(X), lambda: gm.sample(5)):
        with pytest.raises(ValueError, match="not of covariance_type='diag', which was set after the fit"):
            call()
    if estimator == "GaussianMixture":
        with pytest.raises(ValueError, match="which was set after the fit"):
            gm.bic(X)
        with pytest.raises(ValueError, match="which was set after the fit"):
            dask_gmm.save_model(gm, tmp_path / "m2.json")
        assert not (tmp_path / "m2.json").exists()
    with pytest.raises(ValueError, match="which was set after the fit"):  # a generator of the model's data too
        dask_gmm.generate_mixture(tmp_path / "g.zarr", 100, model=gm)
    with pytest.raises(ValueError, match="covariance_type must be one of"):  # was a KeyError
        gm.set_params(covariance_type="foo").predict(X)
    np.testing.assert_array_equal(gm.set_params(covariance_type="full").predict_proba(X), proba)


@pytest.mark.parametrize("estimator", ["GaussianMixture", "BayesianGaussianMixture"])
def test_fitted_attributes_set_by_hand_to_what_no_fit_leaves_are_refused(estimator):
    """A review: with a NaN weight set by hand, predict answered label 0 for every row, and
    predict_proba and score blamed the data's magnitude; means of 3 features beside 2-feature
    covariances were said to be covariances of another covariance_type."""
    import dask_gmm

    X = make_blobs(n=600)
    gm = getattr(dask_gmm, estimator)(n_components=3, random_state=0).fit(X)
    labels = gm.predict(X)
    calls = (lambda: gm.predict(X), lambda: gm.predict_proba(X), lambda: gm.score(X), lambda: gm.sample(5))
    spoils = [("weights_", lambda w: np.where(np.arange(3) == 1, np.nan, w)), ("means_", lambda m: m + np.inf)]
    if estimator == "BayesianGaussianMixture":  # what the outputs use (sample draws from weights_)
        spoils.append(("weight_concentration_", lambda c: tuple(np.full_like(a, np.nan) for a in c)))
    for name, spoil in spoils:
        kept = getattr(gm, name)
        setattr(gm, name, spoil(kept))
        for call in calls[:3] if name == "weight_concentration_" else calls:
            with pytest.raises(ValueError, match=rf"model\.{name} holds NaN or infinite values, which no fit leaves"):
                call()
        setattr(gm, name, kept)
    for name, spoil, said in (
            ("means_", lambda m: m + 1j, r"model\.means_ holds complex values, which no fit leaves"),  # had been cast
            ("weights_", lambda w: w * 1.8, r"model\.weights_ \(summing to 1\.8, smallest [\d.e-]+\) are not a "
                                            r"mixture's weights, non-negative and summing to 1"),  # scored as they were
            ("weights_", np.zeros_like, r"summing to 0, smallest 0\)"),  # an overflow blamed on the data
            ("weights_", lambda w: np.array([w[0] + w[1] + 0.1, -0.1, w[2]]), r"summing to 1, smallest -0\.1\)")):
        kept = getattr(gm, name)
        setattr(gm, name, spoil(kept))
        saved = [lambda: dask_gmm.save_model(gm, os.devnull)] if estimator == "GaussianMixture" else []
        for call in (*calls, *saved):
            with pytest.raises(ValueError, match=said):
                call()
        setattr(gm, name, kept)
    kept = gm.means_
    gm.means_ = np.zeros((3, 3))
    with pytest.raises(ValueError, match=r"The fitted parameters do not agree \(weights_ of shape \(3,\), means_ "
                                         r"\(3, 3\), precisions_cholesky_ \(3, 2, 2\), covariance_type='full'\)"):
        gm.predict(np.zeros((4, 3)))
    gm.means_ = kept
    np.testing.assert_array_equal(gm.predict(X), labels)


@pytest.mark.parametrize("fitted, change", [
    ({}, dict(n_components=2)),
    ({}, dict(covariance_type="diag")),
    (dict(n_components=2, covariance_type="diag"), dict(covariance_type="tied")),  # K = d: same shapes
    (dict(n_components=2, covariance_type="tied"), dict(covariance_type="diag")),
])
@pytest.mark.parametrize("estimator", ["GaussianMixture", "BayesianGaussianMixture"])
def test_warm_start_under_other_settings_is_a_value_error(fitted, change, estimator):
    """A changed n_components kept the old components silently (Bayesian); a changed type was numpy's
    error, or, between diag and tied with as many components as features, silently misread."""
    import dask_gmm

    X = make_blobs(n=600)
    gm = getattr(dask_gmm, estimator)(**({"n_components": 3} | fitted), random_state=0).fit(X)
    means = gm.means_.copy()
    with pytest.raises(ValueError, match="warm_start=True continues the fitted model.*set warm_start=False"):
        gm.set_params(warm_start=True, **change).fit(X)
    np.testing.assert_array_equal(gm.means_, means)
    gm.set_params(warm_start=False).fit(X)  # afresh
    assert gm.means_.shape[0] == gm.n_components


def test_restarts_tied_at_one_optimum_keep_the_first_whatever_the_chunking():
    """Two restarts at one optimum, components in another order, have bounds that differ in the last
    bits; the strictly larger one, and so the order of means_ and the labels, changed with the chunks."""
    X = np.random.default_rng(0).integers(0, 4, (2000, 2)).astype(float)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "X is chunked across features")
        fits = [GaussianMixture(3, random_state=2, n_init=2, reg_covar=1e-3).fit(Xd)
                for Xd in (X, da.from_array(X, chunks=(7, 2)), da.from_array(X, chunks=(1000, 1)))]
    for gm in fits[1:]:
        np.testing.assert_allclose(gm.means_, fits[0].means_, rtol=1e-10)
        np.testing.assert_array_equal(gm.predict(X), fits[0].predict(X))
    first = GaussianMixture(3, random_state=2, n_init=1, reg_covar=1e-3).fit(X)  # the first restart alone
    np.testing.assert_array_equal(fits[0].means_, first.means_)  # kept among the tied, not the second


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random_from_data", "random"])
def test_init_strategies_and_seed_sequences(init_params):
    X = make_blobs(n=3000)
    a = GaussianMixture(3, init_params=init_params, random_state=5, max_iter=300).fit(X)
    b = GaussianMixture(3, init_params=init_params, random_state=np.random.SeedSequence(5), max_iter=300).fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)  # an int and its SeedSequence are the same stream
    if init_params in ("kmeans", "k-means++"):  # the seeded strategies find all three clusters
        truth = np.array([[0, 0], [6, 0], [0, 6]])
        dist = np.linalg.norm(a.means_[:, None] - truth[None], axis=2)
        assert np.all(dist.min(axis=0) < 0.2)
    ss = np.random.SeedSequence(5)
    GaussianMixture(3, init_params=init_params, random_state=ss).fit(X)
    assert ss.n_children_spawned == 0  # a SeedSequence passed in is never advanced
    pooled = GaussianMixture(3, init_params=init_params, random_state=np.random.SeedSequence(5, pool_size=8),
                             max_iter=0).fit(X)  # another pool size is another state: it fitted as the default's
    assert not np.array_equal(pooled.means_, GaussianMixture(3, init_params=init_params, random_state=5,
                                                             max_iter=0).fit(X).means_)  # (a review)
    for estimator in (GaussianMixture, BayesianGaussianMixture):  # NumPy integers, as a grid of np.arange gives
        as_numpy = estimator(np.int64(3), init_params=init_params, random_state=np.int64(5), max_iter=np.int32(300),
                             n_init=np.int64(1)).fit(da.from_array(X, chunks=1000))  # 'random': an OverflowError
        np.testing.assert_allclose(as_numpy.means_, estimator(3, init_params=init_params, random_state=5,
                                                              max_iter=300).fit(X).means_, rtol=1e-12)


def test_k_means_plus_plus_starts_alike_wherever_the_data_sit():
    """scikit-learn's kmeans_plusplus was given the candidates as they are: at an offset of 1e10 its
    distances |x|^2 - 2x.c + |c|^2 rounded by about 1e4, half the seeds started with an empty component
    (weight 7e-19) and ended in poorer optima (mean log-likelihood -5.30 against -4.14), one said to
    increase reg_covar (a review). The candidates are centred first, as KMeans centres them."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (1000, 3)), rng.normal(4, 1, (1000, 3)), rng.normal(-4, 0.3, (1000, 3))])
    for estimator in (GaussianMixture, BayesianGaussianMixture):
        for seed in range(6):
            starts = [estimator(3, init_params="k-means++", random_state=seed, max_iter=0).fit(X + offset)
                      for offset in (0.0, 1e10)]
            np.testing.assert_allclose(starts[1].weights_, starts[0].weights_, atol=1e-3)
            np.testing.assert_allclose(starts[1].means_ - 1e10, starts[0].means_, atol=1e-3)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_random_state_none_draws_from_numpys_global_generator_as_in_sklearn():
    """scikit-learn takes random_state=None as NumPy's global RandomState: a script that calls
    np.random.seed(0) fits and samples the same every run. dask_gmm had drawn fresh entropy (a review)."""
    X = make_blobs(n=600)
    for estimator in (GaussianMixture, BayesianGaussianMixture, SKGaussianMixture):
        runs = []
        for seed in (0, 0, 1):
            np.random.seed(seed)
            gm = estimator(3, init_params="random", max_iter=2).fit(X)
            runs.append((gm.means_, gm.sample(5)[0]))
        for a, b in zip(runs[0], runs[1]):
            np.testing.assert_array_equal(a, b)
        assert not np.array_equal(runs[0][0], runs[2][0])
    np.random.seed(3)
    picked = select_model(X, n_components=[2, 3], max_iter=2, init_params="random").best_.means_
    np.random.seed(3)
    np.testing.assert_array_equal(select_model(X, n_components=[2, 3], max_iter=2, init_params="random").best_.means_,
                                  picked)


def _global_optimum_reached(X, fitted, weights, means, covs):
    truth = GaussianMixture(len(weights), weights_init=weights, means_init=means,
                            precisions_init=np.linalg.inv(covs), tol=1e-6).fit(X)
    return fitted.lower_bound_ >= truth.lower_bound_ - 1e-3 * abs(truth.lower_bound_) - 1e-3


def test_default_init_beats_plain_em_from_random_means():
    """The seed notebook's failure: EM from random means in the box merges clusters. Ours should not."""
    ours = plain = 0
    trials = 12
    for seed in range(trials):
        X, weights, means, covs = seed_like_problem(seed, n_components=3, n_samples=2000)
        rng = np.random.default_rng(100 + seed)
        notebook_init = dict(  # as the notebook: means uniform in the box, identity covariances, random weights
            means_init=rng.uniform(-10, 10, size=(3, 2)),
            precisions_init=np.stack([np.eye(2)] * 3),
            weights_init=(w := rng.random(3)) / w.sum(),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            default = GaussianMixture(3, random_state=seed).fit(X)
            naive = GaussianMixture(3, max_iter=300, **notebook_init).fit(X)
        ours += _global_optimum_reached(X, default, weights, means, covs)
        plain += _global_optimum_reached(X, naive, weights, means, covs)
    assert ours >= trials - 1
    assert ours > plain


# ------------------------------------------------------------------ bad input
def test_bad_input_errors(tmp_path):
    X = make_blobs(n=300)
    with pytest.raises(ValueError, match="Expected 2D"):
        GaussianMixture(2).fit(X[:, 0])
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        GaussianMixture(5).fit(X[:3])
    with pytest.raises(ValueError, match="real numbers"):
        GaussianMixture(2).fit(np.array([["a", "b"]] * 10))
    with pytest.raises(ValueError, match="real numbers"):
        GaussianMixture(2).fit(X.astype(complex))
    gm = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="expecting 2 features"):
        gm.predict(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="expecting 2 features"):
        gm.score(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="minimum of 2 is required"):  # as scikit-learn
        GaussianMixture(1).fit(X[:1])
    # scikit-learn's words, which its check_estimator looks for
    with pytest.raises(ValueError, match=r"^Found array with 0 feature\(s\) \(shape=\(12, 0\)\) while a minimum of 1 is required"
                                         r"\. Pass data of at least 1 feature\.$"):
        GaussianMixture(1).fit(np.empty((12, 0)))
    records = np.zeros(20, dtype=[("a", "f8"), ("b", "f8")])  # was advised to reshape
    with pytest.raises(ValueError, match=r"^X is a structured array \(fields a, b\), not data of shape \(n_samples, "
                                         r"n_features\)\. Give its fields as the columns of a 2-D array"):
        GaussianMixture(1).fit(records)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr: a structured dtype has no Zarr V3 specification
        zarr.create_array(str(tmp_path / "records.zarr"), shape=(20,), dtype=records.dtype)  # was advised to reshape
    with pytest.raises(ValueError, match=r"^X is a structured array \(fields a, b\)"):
        GaussianMixture(1).fit(str(tmp_path / "records.zarr"))
    with pytest.raises(ValueError, match=r"got 1D array instead \(shape \(20,\)\)\. Reshape your data with X\.reshape\(-1, 1\)"):
        GaussianMixture(1).fit(np.zeros(20))
    one = zarr.create_array(str(tmp_path / "one.zarr"), shape=(20,), dtype="f8")  # a path cannot be reshaped
    for store in (one, str(tmp_path / "one.zarr")):
        with pytest.raises(ValueError, match=r"got 1D array instead: the Zarr array 'file://.*one.zarr', of shape \(20,\)\. "
                                             r"Store the data in that shape \(a single feature as \(n_samples, 1\)\), "
                                             r"or pass dask.array.from_zarr\(\.\.\.\) reshaped to it"):
            GaussianMixture(1).fit(store)
    for nd in (np.zeros((3, 2, 2)), da.zeros((3, 2, 2), chunks=1)):  # was advised X.reshape(-1, 1), as a 1-D X
        with pytest.raises(ValueError, match=r"got 3D array instead \(shape \(3, 2, 2\)\)\. Give one row per sample "
                                             r"\(X\.reshape\(len\(X\), -1\) flattens"):
            GaussianMixture(1).fit(nd)
    with pytest.raises(TypeError, match=r"^n_samples must be an integer, got str '3'\.$"):  # was "'<' not supported"
        gm.sample("3")
    with pytest.raises(ValueError, match=r"^Invalid value for 'n_samples': 0\. It must be at least one\.$"):
        gm.sample(0)  # scikit-learn's words
    for empty in (np.empty((0, 2)), da.zeros((0, 2), chunks=(1, 2))):  # the fit's minimum, not predict's
        with pytest.raises(ValueError, match=r"^Found array with 0 sample\(s\) \(shape=\(0, 2\)\) while a minimum of 2"):
            GaussianMixture(1).fit(empty)
        with pytest.raises(ValueError, match=r"^Found array with 0 sample\(s\) \(shape=\(0, 2\)\) while a minimum of 2"):
            BayesianGaussianMixture(1).fit(empty)
    with pytest.raises(ValueError, match=r"^Found array with 0 sample\(s\) \(shape=\(0, 2\)\) while a minimum of 1 is"):
        gm.predict(np.empty((0, 2)))
    with pytest.raises(ValueError, match="^Complex data not supported: X must hold real numbers"):
        GaussianMixture(2).fit(X.astype(complex))
    with pytest.raises(ValueError, match="sample_weight sums to 0: every row has weight zero"):
        GaussianMixture(2).fit(X, sample_weight=np.zeros(len(X)))


def test_sparse_input_is_refused_by_name():
    import scipy.sparse

    X = make_blobs(n=300)
    gm = GaussianMixture(2, random_state=0).fit(X)
    for sparse in (scipy.sparse.csr_matrix(X), scipy.sparse.csr_array(X)):
        with pytest.raises(ValueError, match=r"^Sparse data was passed for X, but dense data is required: use X.toarray"):
            GaussianMixture(2).fit(sparse)
        with pytest.raises(ValueError, match="Sparse data"):
            gm.predict(sparse)
        for estimator in (GaussianMixture(2), SKGaussianMixture(2)):  # scikit-learn raises a TypeError: so do we
            with pytest.raises(TypeError, match="[Ss]parse data"):
                estimator.fit(sparse)


def test_object_arrays_of_numbers_are_converted_as_scikit_learn_does():
    X = make_blobs(n=300)
    kw = dict(random_state=0, init_params="random_from_data")
    ref = GaussianMixture(2, **kw).fit(X)
    got = GaussianMixture(2, **kw).fit(X.astype(object))
    np.testing.assert_array_equal(got.means_, ref.means_)
    np.testing.assert_array_equal(got.predict(X.astype(object)), ref.predict(X))
    text = X.astype(str).astype(object)  # numeric strings: scikit-learn converts them too (the README said not)
    exact = text.astype(np.float64)
    np.testing.assert_array_equal(GaussianMixture(2, **kw).fit(text).means_, GaussianMixture(2, **kw).fit(exact).means_)
    assert SKGaussianMixture(2, **kw).fit(text).means_.shape == (2, 2)  # and scikit-learn fits them
    for strings in (X.astype(str), X.astype(bytes), X.astype(str).tolist()):  # were refused as dtype <U32
        np.testing.assert_array_equal(GaussianMixture(2, **kw).fit(strings).means_, GaussianMixture(2, **kw).fit(exact).means_)
        np.testing.assert_array_equal(ref.predict(strings), ref.predict(exact))
    with pytest.raises(ValueError, match="X must hold real numbers, got dtype <U1"):  # not numbers: named
        GaussianMixture(2).fit(np.array([["a", "b"], ["c", "d"]]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_components=0), "n_components"),
        (dict(covariance_type="blah"), "covariance_type"),
        (dict(tol=-1.0), "tol"),
        (dict(reg_covar=-1.0), "reg_covar"),
        (dict(reg_covar=float("inf")), "'reg_covar' parameter of GaussianMixture must be a finite number"),
        (dict(max_iter=-1), "max_iter"),
        (dict(n_init=0), "n_init"),
        (dict(init_params="nope"), "init_params"),
        (dict(weights_init=[0.5, 0.6]), "normalized"),
        (dict(weights_init=[1.0]), "shape"),
        (dict(means_init=np.zeros((3, 2))), "shape"),
        (dict(precisions_init=-np.stack([np.eye(2)] * 2)), "positive"),
        (dict(n_components=None), "'n_components' parameter of GaussianMixture must be an integer >= 1; got None"),
        (dict(n_components="3"), "'n_components' .* must be an integer >= 1; got '3'"),
        (dict(n_components=2.5), "'n_components' .* must be an integer >= 1; got 2.5"),
        (dict(max_iter=3.0), "'max_iter' .* must be an integer >= 0"),
        (dict(tol=float("inf")), "'tol' .* must be a finite number >= 0"),
        (dict(warm_start="yes"), "'warm_start' .* must be True or False; got 'yes'"),
        (dict(warm_start=None), "'warm_start' .* must be True or False; got None"),
        (dict(verbose=-1), "'verbose' .* must be an integer >= 0; got -1"),
        (dict(verbose="hi"), "'verbose' .* must be an integer >= 0"),
        (dict(random_state=-1), "random_state must be None, a non-negative int"),
    ],
)
def test_bad_parameters(kwargs, match):
    """As scikit-learn refuses them, each naming the parameter, with scikit-learn's class of error: its
    InvalidParameterError (both a ValueError and a TypeError) for a bad hyper-parameter, a plain
    ValueError for bad initial parameters."""
    params = dict(n_components=2) | kwargs
    X = make_blobs(n=300)
    pairs = [(GaussianMixture, SKGaussianMixture, match)]
    if not kwargs.keys() & {"weights_init", "means_init", "precisions_init"}:  # the Bayesian mixture shares the rest
        pairs.append((BayesianGaussianMixture, SKBayesianGaussianMixture,
                      match.replace("GaussianMixture", "BayesianGaussianMixture")))
    for ours, theirs, pattern in pairs:
        with pytest.raises(ValueError) as their_error:
            theirs(**params).fit(X)
        with pytest.raises(ValueError, match=pattern) as our_error:
            ours(**params).fit(X)
        hyper = isinstance(their_error.value, InvalidParameterError)
        assert isinstance(our_error.value, InvalidParameterError) is hyper
        assert isinstance(our_error.value, TypeError) is hyper  # caught where code catches scikit-learn's TypeError
    assert hyper is not bool(kwargs.keys() & {"weights_init", "means_init", "precisions_init"})


def test_ints_too_large_for_a_float_in_data_weights_or_initial_parameters_are_refused_by_name():
    """They had raised a bare OverflowError ("int too large to convert to float"); as floats they are
    infinite, refused as infinity is (a review)."""
    X = make_blobs(n=300)
    rows = X.tolist()
    rows[3][0] = 10**400
    with pytest.raises(ValueError, match="NaN or infinity in 1 row.*first bad row: 3"):
        GaussianMixture(2).fit(rows)
    with pytest.raises(ValueError, match="sample_weight must be finite and non-negative; row 0 has weight inf"):
        GaussianMixture(2).fit(X, sample_weight=[10**400] + [1] * 299)
    with pytest.raises(ValueError, match="sample_weight must be finite and non-negative, got inf"):
        GaussianMixture(2).fit(X, sample_weight=10**400)
    with pytest.raises(ValueError, match="'means_init' should hold finite real numbers, but it holds NaN or infinity"):
        GaussianMixture(2, means_init=[[Fraction(-10**400), 0], [0, 0]]).fit(X)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_verbose_may_be_a_bool_as_in_sklearn():
    for verbose in (True, np.bool_(False)):
        GaussianMixture(2, verbose=verbose, max_iter=1, random_state=0).fit(make_blobs(n=300))


def test_verbose_logs_every_verbose_interval_iterations_as_sklearn_prints_them(caplog, capsys):
    X = make_blobs(n=300)
    kw = dict(verbose=1, verbose_interval=3, max_iter=7, tol=0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with caplog.at_level(logging.INFO, logger="dask_gmm"):
            GaussianMixture(2, **kw).fit(X)
        SKGaussianMixture(2, **kw).fit(X)
    ours = [r.n_iter for r in caplog.records if hasattr(r, "n_iter")]
    theirs = [int(m) for m in re.findall(r"Iteration (\d+)", capsys.readouterr().out)]
    assert ours == theirs == [3, 6]


@pytest.mark.parametrize("kw", [dict(max_iter=4, tol=0), dict(n_init=2, tol=1e-2)])
def test_verbose_logs_each_restart_start_and_end_as_sklearn_prints_them(caplog, capsys, kw):
    """scikit-learn's verbose=1 prints "Initialization k" and "Initialization converged." (or "did
    not converge.") per restart; the log has a line for each, the end's ``converged`` as the fit's."""
    X = make_blobs(n=600)
    kw = dict(verbose=1, verbose_interval=50, random_state=0, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with caplog.at_level(logging.INFO, logger="dask_gmm"):
            gm = GaussianMixture(3, **kw).fit(X)
        sk = SKGaussianMixture(3, **kw).fit(X)
    out = capsys.readouterr().out
    starts = [r for r in caplog.records if getattr(r, "event", None) == "start"]
    ends = [r for r in caplog.records if getattr(r, "event", None) == "end"]
    assert len(starts) == len(ends) == len(re.findall(r"^Initialization \d+$", out, re.M)) == kw.get("n_init", 1)
    assert [r.init for r in starts] == [r.init for r in ends] == list(range(1, len(starts) + 1))
    assert all("initialised by 'kmeans' in" in r.getMessage() for r in starts)
    theirs = re.findall(r"^Initialization (converged|did not converge)\.$", out, re.M)
    assert [r.converged for r in ends] == [t == "converged" for t in theirs] == [sk.converged_] * len(ends)
    assert any(r.converged == gm.converged_ and f"lower bound {gm.lower_bound_:.6f}" in r.getMessage() for r in ends)


def test_verbose_says_how_each_fit_starts(caplog, tmp_path):
    """Given parameters, a warm start and a checkpoint's resume are named in the start line."""
    X = make_blobs(n=600)
    given = GaussianMixture(3, random_state=0).fit(X)
    kw = dict(verbose=1, random_state=0)

    def starts(**more):
        caplog.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            with caplog.at_level(logging.INFO, logger="dask_gmm"):
                gm = GaussianMixture(3, **{**kw, **more}).fit(X)
        return gm, [r.getMessage() for r in caplog.records if getattr(r, "event", None) == "start"]

    inits = dict(weights_init=given.weights_, means_init=given.means_, precisions_init=given.precisions_)
    assert starts(**inits)[1] == ["GaussianMixture init 1 of 1: from the given weights, means and precisions"]
    assert re.fullmatch(r"GaussianMixture init 1 of 1: initialised by 'random', with the given means, in [\d.]+ s",
                        starts(init_params="random", means_init=given.means_)[1][0])
    gm, _ = starts(warm_start=True)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dask_gmm"):
        gm.fit(X)
    assert [r.getMessage() for r in caplog.records if getattr(r, "event", None) == "start"] == [
        "GaussianMixture init 1 of 1: continues the fitted model (warm_start)"]
    path = tmp_path / "fit.ckpt"
    _, first = starts(max_iter=2, tol=0, checkpoint=path)
    _, again = starts(max_iter=5, tol=0, checkpoint=path)
    assert "initialised by 'kmeans'" in first[0]
    assert again == ["GaussianMixture init 1 of 1: resumed from the checkpoint after iteration 2"]


def test_verbose_0_logs_no_checkpoint_resume_at_info(caplog, tmp_path):
    """verbose controls the fit's lines (README): a resume at verbose=0 logged the checkpoint's own
    INFO line, and at verbose=1 that line and the estimator's (a review). It is now DEBUG."""
    X, path = make_blobs(n=600), tmp_path / "fit.ckpt"
    GaussianMixture(3, random_state=0, max_iter=2, tol=0, checkpoint=path).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with caplog.at_level(logging.INFO, logger="dask_gmm"):
            GaussianMixture(3, random_state=0, max_iter=4, tol=0, checkpoint=path).fit(X)
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO and "heckpoint" in r.getMessage()]
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="dask_gmm._checkpoint"):
        GaussianMixture(3, random_state=0, max_iter=6, tol=0, checkpoint=path).fit(X)
    assert f"resuming from checkpoint {path} after iteration 4" in caplog.messages


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(weights_init=[np.nan, 1.0]), "weights_init"),
        (dict(means_init=[[np.nan, 0.0], [1.0, 1.0]]), "means_init"),
        (dict(means_init=[[np.inf, 0.0], [1.0, 1.0]]), "means_init"),
        (dict(means_init=np.array([[1 + 1j, 0.0], [1.0, 1.0]])), "means_init"),
        (dict(precisions_init=np.array([[[np.nan, 0.0], [0.0, 1.0]], np.eye(2)])), "precisions_init"),
        (dict(covariance_type="diag", precisions_init=[[np.inf, 1.0], [1.0, 1.0]]), "precisions_init"),
    ],
)
def test_non_finite_initial_parameters_are_named(kwargs, name):
    with pytest.raises(ValueError, match=rf"The parameter '{name}' should hold finite real numbers"):
        GaussianMixture(2, **kwargs).fit(make_blobs(n=300))


def test_checkpoint_in_a_missing_folder_is_refused_before_any_read(tmp_path):
    X = make_blobs(n=1000)
    counter = _ReadCounter(X, 500)
    path = tmp_path / "no" / "such" / "ckpt.json"
    with pytest.raises(ValueError, match=r"ckpt\.json.*the folder .* does not exist"):
        GaussianMixture(3, random_state=0, checkpoint=path).fit(counter.array)
    assert counter.reads == 0


def test_checkpoint_paths_that_name_no_regular_file_are_refused_before_any_read(tmp_path):
    """A FIFO as the checkpoint waited forever in its read; 'ck.json/' failed at the first save, after
    the initialisation and an iteration, naming a temporary file."""
    X = make_blobs(n=1000)
    counter = _ReadCounter(X, 500)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, said in ((fifo, "it is not a regular file"), (f"{tmp_path / 'ck.json'}/", "a path ending in '/'")):
        with pytest.raises(ValueError, match=said):
            GaussianMixture(3, random_state=0, checkpoint=path).fit(counter.array)
    assert counter.reads == 0
    assert os.listdir(tmp_path) == ["fifo"]


def test_a_checkpoint_of_another_fit_or_none_at_all_is_refused_before_any_read(tmp_path):
    """Each was refused only after the data's digest, a whole pass (found by a probe); the data's
    content is still compared, after the arguments, and a checkpoint of other rows is refused."""
    X = make_blobs(n=1000)
    counter = _ReadCounter(X, 500)
    path = tmp_path / "ck.json"
    with pytest.warns(ConvergenceWarning):
        GaussianMixture(4, random_state=0, max_iter=2, checkpoint=path).fit(counter.array)
    saved = json.loads(path.read_text())
    notes = tmp_path / "notes.json"
    notes.write_text('{"my": "notes"}')
    edited = tmp_path / "edited.json"
    saved["runs"][0]["means"][0][0] += 1.0
    edited.write_text(json.dumps(saved))
    counter.reads = 0
    for ckpt, said in ((path, r"belongs to a different fit \(its arguments n_components \(4 then, 3 now\) differ"),
                       (notes, "is not a dask_gmm checkpoint"), (edited, "is damaged")):
        with pytest.raises(ValueError, match=said):
            GaussianMixture(4 if ckpt == edited else 3, random_state=0, max_iter=2, checkpoint=ckpt).fit(counter.array)
    assert counter.reads == 0
    with pytest.raises(ValueError, match=r"belongs to a different fit \(its data differ"):
        GaussianMixture(4, random_state=0, max_iter=2, checkpoint=path).fit(da.from_array(X + 1e-9, chunks=(500, 2)))
    with pytest.raises(ValueError, match=r"belongs to a different fit \(its dtype differs\)"):  # had said "differ"
        GaussianMixture(4, random_state=0, max_iter=2, checkpoint=path).fit(da.from_array(X.astype(np.float32), chunks=(500, 2)))


def test_a_file_written_at_the_checkpoint_path_during_the_fit_is_kept(tmp_path):
    """A checkpoint replaces only a checkpoint: what another program writes at its path during the
    fit stays, and the fit fails naming it (the next save had replaced it: a review)."""
    X = make_blobs(n=1000)
    path = tmp_path / "ck.json"
    passes = []

    def read(block):  # the third pass: a checkpoint is there, and another program writes over it
        passes.append(block.size > 0)
        if sum(passes) == 5:
            assert json.loads(path.read_text())["format"] == "dask_gmm.checkpoint/1"
            path.write_text("id,value\n1,precious\n")
        return block

    data = da.from_array(X, chunks=(500, 2)).map_blocks(read, dtype=X.dtype)
    with pytest.raises(ValueError, match=f"{re.escape(repr(str(path)))} was written or replaced during the fit by "
                                         r"something else than the fit, and is kept; a fit replaces only its own"):
        GaussianMixture(3, max_iter=10, tol=0, checkpoint=path, **sk_init(X, "full")).fit(data)
    assert path.read_text() == "id,value\n1,precious\n" and os.listdir(tmp_path) == ["ck.json"]


def test_a_checkpoint_whose_metadata_alone_changed_during_the_fit_is_still_the_fit_s(tmp_path):
    """chmod, touch or a hard link (a snapshot) changed the checkpoint's status times, and the fit
    ended at its next save as if something else had written there (a review: ``chmod 600`` ended
    a fit at its 25th iteration). What the file holds is compared too: the same bytes are the fit's."""
    X = make_blobs(n=1000)
    path = tmp_path / "ck.json"
    passes = []

    def read(block):  # the fifth pass: a checkpoint is there, and its metadata change
        passes.append(block.size > 0)
        if sum(passes) == 5:
            path.chmod(0o600)
            os.utime(path, ns=(1, 1))
            os.link(path, tmp_path / "snapshot.json")
        return block

    kw = dict(n_components=3, max_iter=10, tol=0, **sk_init(X, "full"))
    fitted = GaussianMixture(checkpoint=path, **kw).fit(da.from_array(X, chunks=(500, 2)).map_blocks(read, dtype=X.dtype))
    assert sum(passes) > 5 and fitted.n_iter_ == 10
    np.testing.assert_array_equal(fitted.means_, GaussianMixture(**kw).fit(da.from_array(X, chunks=(500, 2))).means_)
    assert json.loads(path.read_text())["format"] == "dask_gmm.checkpoint/1"
    for same_bytes in (False, True):  # a link put at the path during the fit: to other bytes before the first
        # save (none was there at the start: no bytes to compare, and it had been replaced), then to the fit's own
        target, link = tmp_path / f"elsewhere{same_bytes}.json", tmp_path / f"link{same_bytes}.json"
        passes.clear()

        def put_a_link(block, link=link, target=target, same_bytes=same_bytes):
            passes.append(block.size > 0)
            if sum(passes) == (5 if same_bytes else 1):
                target.write_bytes(link.read_bytes() if same_bytes else b'{"precious": 1}')
                link.unlink(missing_ok=True)
                link.symlink_to(target)
            return block

        with pytest.raises(ValueError, match="was written or replaced during the fit by something else than the fit"):
            GaussianMixture(checkpoint=link, **kw).fit(da.from_array(X, chunks=(500, 2)).map_blocks(put_a_link, dtype=X.dtype))
        assert link.is_symlink() and (same_bytes or target.read_bytes() == b'{"precious": 1}')


def test_a_checkpoint_rewritten_by_a_json_tool_or_a_dangling_link_is_replaced(tmp_path):
    """The save replaces what the fit found at the path: a checkpoint re-serialised with sorted keys
    (as ``jq -S`` writes it) resumes and is replaced, and so is a link to nowhere (both were refused
    at the first save by a check of the file's first bytes: a review)."""
    X = make_blobs(n=1000)
    path = tmp_path / "ck.json"
    with pytest.warns(ConvergenceWarning):
        GaussianMixture(3, random_state=0, max_iter=2, tol=0, checkpoint=path).fit(X)
    path.write_text(json.dumps(json.loads(path.read_text()), sort_keys=True, separators=(",", ":")))
    with pytest.warns(ConvergenceWarning):
        resumed = GaussianMixture(3, random_state=0, max_iter=5, tol=0, checkpoint=path).fit(X)
    with pytest.warns(ConvergenceWarning):
        whole = GaussianMixture(3, random_state=0, max_iter=5, tol=0).fit(X)
    np.testing.assert_array_equal(resumed.means_, whole.means_)
    assert json.loads(path.read_text())["format"] == "dask_gmm.checkpoint/1"
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "nowhere.json")
    GaussianMixture(3, random_state=0, checkpoint=link).fit(X)
    assert not link.is_symlink() and json.loads(link.read_text())["format"] == "dask_gmm.checkpoint/1"
    assert not (tmp_path / "nowhere.json").exists()


def test_checkpoint_as_a_file_url_and_other_files_refused_unread(tmp_path):
    """A file:// URL names its local file, as for model files and the command line (it was taken
    for a relative folder 'file:'); another URL is refused; a file that is not a JSON object (a
    data file given by mistake) is refused from its first bytes, not read whole into memory."""
    X = make_blobs(n=1000)
    url = (tmp_path / "ck.json").as_uri()
    fitted = GaussianMixture(3, random_state=0, checkpoint=url).fit(X)
    assert json.loads((tmp_path / "ck.json").read_text())["format"] == "dask_gmm.checkpoint/1"
    np.testing.assert_array_equal(fitted.means_, GaussianMixture(3, random_state=0).fit(X).means_)
    with pytest.raises(ValueError, match="checkpoints are local files"):
        GaussianMixture(3, random_state=0, checkpoint="s3://bucket/ck.json").fit(X)
    csv = tmp_path / "data.csv"
    csv.write_text("1.0,2.0\n" * 1000)
    with pytest.raises(ValueError, match=r"is not a dask_gmm checkpoint \(not a JSON object\)"):
        GaussianMixture(3, random_state=0, checkpoint=csv).fit(X)
    assert csv.read_text() == "1.0,2.0\n" * 1000


def test_checkpoint_files_as_mktemp_and_other_versions_make_them(tmp_path):
    """An empty checkpoint (as mktemp makes) was "damaged (cut short)": it is no checkpoint yet. One of
    another format version was "not a dask_gmm checkpoint"; a read-only one was replaced silently."""
    X = make_blobs(n=1000)
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    fitted = GaussianMixture(3, random_state=0, checkpoint=empty).fit(X)
    assert json.loads(empty.read_text())["format"] == "dask_gmm.checkpoint/1"
    plain = GaussianMixture(3, random_state=0).fit(X)
    np.testing.assert_array_equal(fitted.means_, plain.means_)
    later = tmp_path / "later.json"
    later.write_text(json.dumps({**json.loads(empty.read_text()), "format": "dask_gmm.checkpoint/2"}))
    with pytest.raises(ValueError, match=r"was written by another version of dask_gmm \(format "
                                         r"'dask_gmm.checkpoint/2'; this version writes 'dask_gmm.checkpoint/1'\)"):
        GaussianMixture(3, random_state=0, checkpoint=later).fit(X)
    kept = empty.read_bytes()
    empty.chmod(0o444)
    with pytest.raises(ValueError, match=r"empty.json': it is read-only \(mode 0444\)"):
        GaussianMixture(3, random_state=0, max_iter=50, checkpoint=empty).fit(X)
    assert empty.read_bytes() == kept


def test_checkpoint_in_a_folder_that_cannot_be_written_is_refused_before_any_read(tmp_path):
    """It failed at the first save (after the initialisation, an iteration and the data's digest) with
    a bare PermissionError. Run without the root's override of permissions where the tests run as root."""
    import shutil
    import subprocess
    import sys

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    drop = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root, without setpriv to give up the override of permissions")
        caps = "-dac_override,-dac_read_search"
        drop = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]
    code = (
        "import numpy as np, dask.array as da, dask_gmm\n"
        "from dask_gmm import _em\n"
        "passes = []\n"
        "orig = _em.Blocks.map_reduce\n"
        "_em.Blocks.map_reduce = lambda self, *a, **k: passes.append(1) or orig(self, *a, **k)\n"
        "X = da.from_array(np.random.default_rng(0).normal(size=(500, 2)), chunks=(250, 2))\n"
        "import os, sys\n"
        f"if os.access({str(folder)!r}, os.W_OK):\n"  # root kept its override (no CAP_SETPCAP to drop it)
        "    print('SKIP'); sys.exit()\n"
        "try:\n"
        f"    dask_gmm.GaussianMixture(2, random_state=0, checkpoint={str(folder / 'ck.json')!r}).fit(X)\n"
        "except ValueError as exc:\n"
        "    print(len(passes), exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    out = subprocess.run([*drop, sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    if out.stdout.strip() == "SKIP":
        pytest.skip("this process may write in a read-only folder (root, and setpriv could not drop that)")
    assert out.stdout.startswith("0 Cannot write") and "no permission to write in the folder" in out.stdout, out
    assert os.listdir(folder) == []


def test_a_checkpoint_nested_too_deeply_is_damaged_or_not_ours(tmp_path):
    """Arrays nested too deeply to parse were a RecursionError (a traceback in the CLI)."""
    X = make_blobs(n=1000)
    ours, other = tmp_path / "ours.json", tmp_path / "other.json"
    ours.write_text('{"format": "dask_gmm.checkpoint/1", "fingerprint": ' + "[" * 100_000 + "]" * 100_000 + "}")
    other.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ValueError, match=r"ours.json' is damaged \(arrays nested too deeply to read\)"):
        GaussianMixture(3, random_state=0, checkpoint=ours).fit(X)
    with pytest.raises(ValueError, match=r"other.json' is not a dask_gmm checkpoint \(arrays nested too deeply"):
        GaussianMixture(3, random_state=0, checkpoint=other).fit(X)


def test_checkpoint_with_an_empty_path_or_inside_the_input_is_refused_before_any_read(tmp_path):
    """checkpoint="" failed at the first save, after a pass, having written a temporary file one folder
    up; a checkpoint inside the input store was written there (the CLI refused both)."""
    import zarr

    X = make_blobs(n=1000)
    counter = _ReadCounter(X, 500)
    with pytest.raises(ValueError, match="empty path"):
        GaussianMixture(3, random_state=0, checkpoint="").fit(counter.array)
    assert counter.reads == 0
    store = tmp_path / "data.zarr"
    zarr.open_group(str(store), mode="w").create_array("X", data=X, chunks=(500, 2))
    before = sorted(p.relative_to(store) for p in store.rglob("*"))
    for path, data in ((store / "ck.json", store), (store / "ck.json", store / "X"), (store / "X" / "ck.json", store)):
        with pytest.raises(ValueError, match="lies inside the input data"):
            GaussianMixture(3, random_state=0, checkpoint=path).fit(str(data))
    assert sorted(p.relative_to(store) for p in store.rglob("*")) == before


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rows_are_named_and_data_untouched(bad):
    X = make_blobs(n=3000)
    X[2345, 0] = bad
    before = X.copy()
    with pytest.raises(ValueError, match=r"NaN or infinity.*rows 2000-2999.*first bad row: 2345") as err:
        GaussianMixture(3, random_state=0).fit(da.from_array(X, chunks=(1000, 2)))
    assert "missing from its store" not in str(err.value)  # one bad row: no hint of a missing chunk
    np.testing.assert_array_equal(X, before)


def test_of_several_bad_blocks_the_first_is_named_every_time():
    """Blocks run on two threads: the error raised had been the first to fail in time, so predict
    named the last bad block's row, 399,990, and fit and score now that, now 100,000 (a review).
    The first failed block's error is raised: the row a user fixes first."""
    X = np.random.default_rng(1).normal(size=(400_000, 2))
    gm = GaussianMixture(2, random_state=0, max_iter=2, tol=0.0).fit(X)
    X[100_000, 0], X[399_990, 1] = np.nan, np.inf
    calls = (gm.predict, gm.predict_proba, gm.score_samples, gm.score, GaussianMixture(2, random_state=0).fit)
    for _ in range(3):
        for call in calls:
            with pytest.raises(ValueError, match=r"NaN or infinity in 1 row\(s\) among rows 100000-.*first bad row: 100000\)"):
                call(X)


def test_a_block_all_nan_is_named_as_a_missing_zarr_chunk_may_be():
    """A block whose every value is NaN, as a Zarr chunk that its reader cannot see reads (a cluster
    whose workers do not share the store's files), is named with that hint, by fit and the outputs."""
    X = make_blobs(n=3000)
    X[1000:2000] = np.nan
    gm = GaussianMixture(3, random_state=0).fit(make_blobs(n=3000))
    for call in (lambda x: GaussianMixture(3, random_state=0).fit(x), lambda x: gm.predict(x).compute(), gm.score):
        with pytest.raises(ValueError, match=r"1000 row\(s\) among rows 1000-1999.*"
                                             r"Every value of these rows is NaN, as a Zarr chunk missing"):
            call(da.from_array(X, chunks=(1000, 2)))


def test_input_never_modified():
    """In-memory input reaches the kernels as views (no copy), so nothing may write to it."""
    X = make_blobs(n=1200)
    before = X.copy()
    w = np.ones(len(X))
    gm = GaussianMixture(3, random_state=0).fit(X, sample_weight=w)
    gm.predict(X), gm.score(X), gm.predict_proba(X), gm.score_samples(X)
    BayesianGaussianMixture(n_components=3, max_iter=5, random_state=0).fit(X, sample_weight=w)
    select_model(X, n_components=[2, 3], max_iter=5, random_state=0, sample_weight=w)
    np.testing.assert_array_equal(X, before)
    np.testing.assert_array_equal(w, 1.0)


def test_outputs_lazy_for_dask_numpy_for_numpy():
    X = make_blobs(n=1200)
    dX = da.from_array(X, chunks=(400, 2))
    gm = GaussianMixture(3, random_state=0).fit(dX)
    for method in (gm.predict, gm.predict_proba, gm.score_samples):
        lazy, eager = method(dX), method(X)
        assert isinstance(lazy, da.Array) and isinstance(eager, np.ndarray)
        assert lazy.chunks[0] == dX.chunks[0]
        np.testing.assert_array_equal(lazy.compute(), eager)
    assert isinstance(gm.score(dX), float)


def test_feature_chunked_dask_array_is_rechunked_with_warning(tmp_path):
    """The warning names the user's line, from fit, predict and score alike (it named one of
    dask_gmm's own, each at another depth), and for a Zarr store so chunked too (zarr v2: the
    direct reader reads a v3 one in whole rows, with no warning)."""
    X = make_blobs(n=600, means=((0, 0, 0), (5, 5, 5)))
    with pytest.warns(UserWarning, match="chunked across features") as fitted:
        gm = GaussianMixture(2, random_state=0).fit(da.from_array(X, chunks=(200, 1)))
    caught = list(fitted)
    ref = GaussianMixture(2, random_state=0).fit(da.from_array(X, chunks=(200, 3)))
    np.testing.assert_array_equal(gm.means_, ref.means_)
    zarr.create_array(str(tmp_path / "f.zarr"), shape=X.shape, chunks=(200, 1), dtype="f8", zarr_format=2)[:] = X
    for call in (lambda: gm.predict(da.from_array(X, chunks=(200, 1))), lambda: gm.score(tmp_path / "f.zarr"),
                 lambda: GaussianMixture(2, random_state=0).fit(tmp_path / "f.zarr")):
        with pytest.warns(UserWarning, match="chunked across features") as more:
            call()
        caught += list(more)
    assert {(w.filename, w.category) for w in caught} == {(__file__, UserWarning)}


class _ReadCounter:
    """Counts block reads of a dask array (threaded scheduler: one process)."""

    def __init__(self, X, chunks):
        self.reads = 0
        self.array = da.from_array(X, chunks=(chunks, X.shape[1])).map_blocks(self._read, dtype=X.dtype)

    def _read(self, block):
        self.reads += block.size > 0  # map_blocks also calls this once on an empty meta array
        return block


def test_exactly_one_pass_per_iteration():
    X = make_blobs(n=4000)
    counter = _ReadCounter(X, 500)
    init = sk_init(X, "full")
    with pytest.warns(ConvergenceWarning):
        GaussianMixture(3, max_iter=5, tol=0, n_init=1, **init).fit(counter.array)
    assert counter.reads == 5 * 8


def test_exactly_one_pass_per_iteration_with_weights_made_from_x():
    """Weights computed from X itself: X's graph and the weights' were optimised apart, and dask fused
    X's reads into the weights' tasks, two reads of each chunk a pass (a review)."""
    X = make_blobs(n=4000)
    init = sk_init(X, "full")
    for weights in (lambda Z: abs(Z[:, 0]) + 1.0, lambda Z: abs(Z).sum(axis=1) + 1.0):  # the sum: X's tasks had been
        counter = _ReadCounter(X, 500)  # copied into its first step by dask.optimize, which optimises each array alone
        with pytest.warns(ConvergenceWarning):
            got = GaussianMixture(3, max_iter=5, tol=0, n_init=1, **init).fit(counter.array,
                                                                              sample_weight=weights(counter.array))
            ref = GaussianMixture(3, max_iter=5, tol=0, n_init=1, **init).fit(X, sample_weight=weights(np.abs(X)))
        assert counter.reads == 5 * 8
        np.testing.assert_allclose(got.means_, ref.means_, rtol=1e-12)


def test_passes_in_threads_with_weights_made_from_x_leave_dasks_config_as_it_was():
    """Such a pass's optimisation had set dask's config ``optimization.fuse.active`` False for its
    time: the config is the process's, and of two threads' passes overlapping, the last to end put
    back the other's False, for good (every later dask array computed unfused: a review)."""
    from concurrent.futures import ThreadPoolExecutor

    X = da.from_array(make_blobs(n=40_000), chunks=(100, 2))  # 400 blocks: an optimisation of ms, for threads to overlap
    gm = GaussianMixture(3, random_state=0, max_iter=2, tol=0).fit(X[:2000])
    seen = dask.config.get("optimization.fuse.active", None)
    with ThreadPoolExecutor(4) as pool:
        scores = list(pool.map(lambda _: gm.score(X, sample_weight=abs(X[:, 0]) + 1), range(12)))
    assert dask.config.get("optimization.fuse.active", None) == seen
    assert len(set(scores)) == 1
    np.testing.assert_allclose(scores[0], gm.score(X.compute(), sample_weight=np.abs(X[:, 0].compute()) + 1), rtol=1e-12)


def test_restarts_share_every_pass():
    X = make_blobs(n=4000)
    one, four = _ReadCounter(X, 500), _ReadCounter(X, 500)
    a = GaussianMixture(3, random_state=0, n_init=1).fit(one.array)
    b = GaussianMixture(3, random_state=0, n_init=4).fit(four.array)
    # four restarts read the data no more often than the slowest one alone would
    assert four.reads <= one.reads + 8 * (abs(b.n_iter_ - a.n_iter_) + 10)
    assert four.reads < 2 * one.reads


@pytest.mark.parametrize("init_params", ["kmeans", "random_from_data", "random"])
def test_restarts_draw_their_weighted_starting_rows_in_one_pass_over_the_weights(init_params, monkeypatch):
    """The weighted draw reads the weights (not X: only the blocks holding the drawn rows are
    read, per restart); restarts share that read as they share the passes. Every pass reads the
    weights too (Lloyd's passes number as the slowest restart needs), so the reads are counted
    against the passes."""
    from dask_gmm._em import Blocks

    X = make_blobs(n=4000)
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(X))
    passes = []
    real = Blocks.map_reduce
    monkeypatch.setattr(Blocks, "map_reduce", lambda self, *a, **k: passes.append(1) or real(self, *a, **k))
    for n_init in (1, 4):
        weights = _ReadCounter(w[:, None], 500)
        data = _ReadCounter(X, 500)
        passes.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            GaussianMixture(3, init_params=init_params, n_init=n_init, max_iter=1, tol=0, random_state=0).fit(
                data.array, sample_weight=weights.array[:, 0])
        assert weights.reads == 8 * (len(passes) + 1), n_init  # the passes, and one draw for every restart


def test_padding_candidates_of_all_restarts_share_one_pass_over_the_weights(monkeypatch):
    """Data with fewer distinct rows than components: k-means|| pads its candidates with random
    rows, which read the weights once per restart (the draws counted; Lloyd's passes, which read
    them too, vary with the restarts)."""
    from dask_gmm import _init

    X = np.repeat([[0.0, 0.0], [5.0, 5.0]], 500, axis=0)
    draws = []
    real = _init._weighted_rows
    monkeypatch.setattr(_init, "_weighted_rows", lambda w, requests: draws.append(len(requests)) or real(w, requests))
    counted = {}
    for n_init in (1, 4):
        draws.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            GaussianMixture(3, n_init=n_init, max_iter=1, tol=0, random_state=0).fit(X, sample_weight=np.ones(len(X)))
        counted[n_init] = list(draws)
    assert counted[1] == [1, 1] and counted[4] == [4, 4]  # the first centres, then the padding: one draw each


def test_fewer_distinct_rows_than_components_is_warned_in_the_mixtures_words():
    """scikit-learn's KMeans warns of "n_clusters", which a mixture's user never set, at a line of
    scikit-learn's; a warning follows that names n_components and the distinct points, at the caller's
    line (scikit-learn's is not caught: see the test of another thread's scikit-learn below)."""
    X = np.repeat([[0.0, 0.0], [5.0, 5.0]], 500, axis=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        GaussianMixture(3, random_state=0).fit(X)
    ours = [w for w in caught if "k-means start" in str(w.message)]
    assert len(ours) == 1 and ours[0].category is ConvergenceWarning and ours[0].filename == __file__
    assert "only 2 distinct points" in str(ours[0].message) and "n_components=3" in str(ours[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GaussianMixture(2, random_state=0).fit(X)  # as many distinct rows as components: no warning


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_a_component_collapsed_on_one_point_without_reg_covar_is_refused_as_scikit_learn_refuses_it(ct):
    """50 equal rows and reg_covar=0: their variance is 0, which scikit-learn refuses; about their
    rounded mean it came out 1e-32 here, and full and diag fits returned that spike (tied pools it
    with the other component's spread, and fits in both)."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(200, 2)), np.tile([[5.3, 7.1]], (50, 1))])
    kw = dict(n_components=2, covariance_type=ct, reg_covar=0.0, max_iter=5, tol=0.0,
              means_init=[[0.0, 0.0], [5.3, 7.1]], weights_init=[0.8, 0.2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if ct == "tied":
            ours, ref = GaussianMixture(**kw).fit(X), SKGaussianMixture(**kw).fit(X)
            np.testing.assert_allclose(ours.covariances_, ref.covariances_, rtol=1e-10)
            return
        for estimator in (SKGaussianMixture, GaussianMixture):
            with pytest.raises(ValueError, match="ill-defined empirical covariance.*increase reg_covar"):
                estimator(**kw).fit(X)


@pytest.mark.parametrize("ct", ["full", "diag", "spherical"])
@pytest.mark.parametrize("m", [1, 2, 3, 4, 6])
def test_a_few_coinciding_rows_without_reg_covar_are_refused_too(ct, m):
    """A component on m equal rows: scikit-learn's floor (10 eps) pulls its mean off them by
    10 eps |x| / m, so their variance about it is about (10 eps |x| / m)**2, above the rounding of
    the mean ((2 eps |mean|)**2) for m < 5: diag and spherical fits of 1 to 4 rows returned a
    variance of 1e-29 (a numerics review; scikit-learn's uncentred moments give 1e-14 or refuse)."""
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(size=(40, 2)) * 0.1 + [1.3, 0.7], np.repeat([[-3.0, 2.0]], m, axis=0)]
    precisions = {"full": np.stack([np.eye(2)] * 2), "diag": np.ones((2, 2)), "spherical": np.ones(2)}[ct]
    kw = dict(n_components=2, covariance_type=ct, reg_covar=0.0, max_iter=5, tol=0.0,
              means_init=[[1.3, 0.7], [-3.0, 2.0]], weights_init=[0.9, 0.1], precisions_init=precisions)
    with pytest.raises(ValueError, match="ill-defined empirical covariance.*increase reg_covar"):
        GaussianMixture(**kw).fit(X)
    fitted = GaussianMixture(**{**kw, "reg_covar": 1e-6}).fit(X)  # regularised, as in scikit-learn
    ref = SKGaussianMixture(**{**kw, "reg_covar": 1e-6}).fit(X)  # whose uncentred moments add up to 2e-14
    np.testing.assert_allclose(fitted.covariances_, ref.covariances_, rtol=1e-8, atol=1e-13)


def test_lazy_outputs_pickle(tmp_path):
    """The lazy per-row outputs of a dask array (as of a Zarr store) pickle with plain pickle, as
    dask graphs do: one made its blocks through a closure, which pickle cannot take."""
    X = make_blobs(n=3000, means=((0, 0, 0), (5, 5, 5)))
    gm = GaussianMixture(2, random_state=0).fit(X)
    zarr.create_array(str(tmp_path / "x.zarr"), shape=X.shape, chunks=(1000, 3), dtype="f8")[:] = X
    for source in (da.from_array(X, chunks=(700, 3)), str(tmp_path / "x.zarr")):
        for method in (gm.predict, gm.predict_proba, gm.score_samples):
            back = pickle.loads(pickle.dumps(method(source)))
            np.testing.assert_array_equal(back.compute(), method(X))


def test_in_memory_outputs_of_any_layout_and_dtype_equal_scikit_learns_and_leave_x_unchanged():
    """In-memory per-row outputs are computed on row blocks of X without a dask graph: views of a
    float X, whatever its layout (Fortran order, a strided view); an integer or boolean X's blocks
    are converted to float64 one at a time."""
    rng = np.random.default_rng(5)
    X = np.round(make_blobs(n=60_000) * 4)  # integers, so that an int32 copy holds the same values
    ours = GaussianMixture(3, random_state=0).fit(X)
    theirs = SKGaussianMixture(3, covariance_type="full")
    theirs.weights_, theirs.means_, theirs.covariances_ = ours.weights_, ours.means_, ours.covariances_
    theirs.precisions_cholesky_ = ours.precisions_cholesky_
    rows = rng.permutation(len(X))[: len(X) // 2]
    for Z in (X.astype(np.int32), X > 0, np.asfortranarray(X), X[::2], X[rows]):
        before, F = Z.copy(), Z.astype(np.float64)  # scikit-learn's own outputs of integers differ, by 1e-5
        np.testing.assert_array_equal(ours.predict(Z), theirs.predict(F))
        np.testing.assert_allclose(ours.predict_proba(Z), theirs.predict_proba(F), atol=1e-10)
        np.testing.assert_allclose(ours.score_samples(Z), theirs.score_samples(F), rtol=1e-10)
        assert Z.dtype == before.dtype and Z.tobytes() == before.tobytes()


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_a_non_finite_row_drawn_by_the_initialisation_is_named_not_a_clean_row(init_params):
    """A bad row drawn as a starting centre made every clean chunk's distances non-finite, and the
    first chunk to fail was blamed for overflowing (seeds 16 and 18 of these 20 with k-means). The
    error must name a bad row whichever chunk runs first."""
    X = np.random.default_rng(0).normal(size=(10_000, 2))
    X[9000:, 1] = np.nan
    before = X.copy()
    for seed in range(20):
        for data in (X, da.from_array(X, chunks=(1000, 2))):
            with pytest.raises(ValueError, match="NaN or infinity") as err:
                GaussianMixture(3, init_params=init_params, random_state=seed).fit(data)
            assert int(re.search(r"(?:first bad row: |row )(\d+)", str(err.value)).group(1)) >= 9000
    np.testing.assert_array_equal(X, before)


def test_kmeans_restarts_start_apart_and_the_best_is_kept(tmp_path):
    """Each restart's k-means on its k-means|| candidates kept the best of 10 starts, which found the
    same centres from every seed: on this store n_init=4 stayed where one run ends (a merged pair of
    components, mean log-likelihood -2.5997), where scikit-learn's restarts find the optimum of a fit
    started at the true parameters (-1.9497). A restart now takes one k-means start, as
    scikit-learn's does; the first run of a fit is the n_init=1 fit's, so restarts only add."""
    from dask_gmm.generate import generate_mixture

    path = str(tmp_path / "g.zarr")
    generate_mixture(path, 100_000, 3, 4, random_state=5, chunk_size=10_000, dtype="float32", compression="none")
    X = zarr.open_group(path, mode="r")["X"][:].astype(np.float64)
    true = zarr.open_group(path, mode="r")
    truth = SKGaussianMixture(4, weights_init=true["true_weights"][:], means_init=true["true_means"][:],
                              precisions_init=np.linalg.inv(true["true_covariances"][:])).fit(X)
    one = GaussianMixture(4, random_state=0).fit(path)
    four = GaussianMixture(4, n_init=4, random_state=0).fit(path)
    assert one.score(X) < truth.score(X) - 0.5  # the trap: one run's optimum
    assert four.score(X) == pytest.approx(truth.score(X), abs=1e-6)
    assert four.lower_bound_ >= one.lower_bound_


def test_bad_and_subnormal_weights_are_refused_by_row():
    """A NaN or negative weight was named by a range of rows; weights summing to a subnormal total
    (every one 5e-324) moved the covariances by 17 % with no error."""
    X = make_blobs(n=900)
    Xd = da.from_array(X, chunks=(300, 2))
    for bad, said in ((np.nan, "row 700 has weight nan"), (-2.0, "row 700 has weight -2.0")):
        w = np.ones(len(X))
        w[[700, 800]] = bad
        for data, weights in ((X, w), (Xd, da.from_array(w, chunks=250))):
            with pytest.raises(ValueError, match=re.escape(said)):
                GaussianMixture(3, random_state=0).fit(data, sample_weight=weights)
    for tiny in (1e-320, 5e-324):
        w = np.full(len(X), tiny)
        for data, weights in ((X, w), (Xd, da.from_array(w, chunks=250))):
            with pytest.raises(ValueError, match=r"sample_weight sums to .*: weights this small are subnormal floats"):
                GaussianMixture(3, random_state=0).fit(data, sample_weight=weights)
    w = np.ones(len(X))
    w[::2] = 0.0  # zeros are weights too
    w[1] = 1e-320  # one subnormal weight among normal ones: nothing visible (see the test above)
    small = GaussianMixture(3, random_state=0).fit(X, sample_weight=w * 2.0**-990)
    np.testing.assert_allclose(small.means_, GaussianMixture(3, random_state=0).fit(X, sample_weight=w).means_,
                               rtol=1e-12)


def test_masked_arrays_with_masked_entries_are_refused():
    """The values under the mask were fitted as data, silently (as scikit-learn does)."""
    X = make_blobs(n=600)
    masked = np.ma.masked_array(X, mask=np.zeros(X.shape, bool))
    np.testing.assert_allclose(GaussianMixture(3, random_state=0).fit(masked).means_,  # nothing masked: its data
                               GaussianMixture(3, random_state=0).fit(X).means_, rtol=1e-12)
    masked.mask[[40, 90], 1] = True
    gm = GaussianMixture(3, random_state=0).fit(X)
    for call in (lambda: GaussianMixture(3).fit(masked), lambda: gm.predict(masked), lambda: gm.score(masked)):
        with pytest.raises(ValueError, match=r"X is a masked array with masked entries in 2 row\(s\) \(first: row 40\)"):
            call()
    w = np.ma.masked_array(np.ones(600), mask=np.arange(600) == 7)
    with pytest.raises(ValueError, match=r"sample_weight is a masked array .* \(first: row 7\)"):
        GaussianMixture(3).fit(X, sample_weight=w)
    lazy = da.ma.masked_greater(da.from_array(X, chunks=(200, 2)), 1e9)  # masks nothing here, but may: unknown
    with pytest.raises(ValueError, match=r"X is a dask array of masked arrays.*map_blocks\(np.ma.filled, np.nan\)"):
        GaussianMixture(3).fit(lazy)


def test_a_generator_is_drawn_from_only_when_the_fit_initialises(tmp_path):
    """scikit-learn draws from its random_state only to initialise; the seeds were spawned from a
    Generator before the fit knew it would warm-start or resume a checkpoint, advancing it for
    nothing. A bad random_state is still refused, on a warm start too."""
    X = make_blobs(n=2000)
    rng = np.random.default_rng(5)
    gm = GaussianMixture(3, random_state=rng, warm_start=True, max_iter=2, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X)
        after_first = rng.bit_generator.state
        gm.fit(X)  # warm: no initialisation
        assert rng.bit_generator.state == after_first
        ckpt = str(tmp_path / "fit.ckpt")
        GaussianMixture(3, random_state=rng, max_iter=2, tol=0, checkpoint=ckpt).fit(X)
        drawn = rng.bit_generator.state
        assert drawn != after_first
        GaussianMixture(3, random_state=rng, max_iter=2, tol=0, checkpoint=ckpt).fit(X)  # resumed
        assert rng.bit_generator.state == drawn
    gm.set_params(random_state="seed")
    with pytest.raises(ValueError, match="random_state must be None, a non-negative int"):
        gm.fit(X)


def test_masked_blocks_with_nothing_masked_are_read_as_their_data():
    """A dask array of masked blocks without masked entries (and a block of 0 rows: boolean filters
    make them) fits, scores and predicts as its data; a first check of the masks refused the empty
    block with NumPy's reshape error (a review)."""
    X = make_blobs(n=600)
    Xd = da.from_array(X, chunks=((300, 0, 300), (2,)))
    masked = Xd.map_blocks(lambda b: np.ma.masked_array(b, mask=False), dtype=float, meta=np.empty((0, 0)))
    w = da.ones(600, chunks=(300, 0, 300)).map_blocks(lambda b: np.ma.masked_array(b, mask=False), dtype=float,
                                                        meta=np.empty(0))
    ref = GaussianMixture(3, random_state=0).fit(Xd, sample_weight=da.ones(600, chunks=(300, 0, 300)))
    got = GaussianMixture(3, random_state=0).fit(masked, sample_weight=w)
    np.testing.assert_array_equal(got.means_, ref.means_)
    np.testing.assert_array_equal(ref.predict(masked).compute(), ref.predict(X))
    np.testing.assert_allclose(ref.score(masked), ref.score(X), rtol=1e-13)


def _truncated_file(X):
    """X as 4 delayed 'files' of 250 declared rows, the third of which holds only 100."""

    @dask.delayed
    def load(i):
        part = X[i * 250 : (i + 1) * 250]
        return part[:100] if i == 2 else part

    return da.concatenate([da.from_delayed(load(i), shape=(250, 2), dtype=float) for i in range(4)])


def _block_3(make):
    return lambda b, block_info=None: make(b) if block_info[0]["chunk-location"][0] == 3 else b


@pytest.mark.parametrize("bad, said", [
    (_truncated_file, r"The block of X holding rows 500-749 has shape \(100, 2\) where its dask array declares \(250, 2\)"),
    (lambda X: da.from_array(X, chunks=(100, 2)).map_blocks(_block_3(lambda b: np.r_[b, b]), dtype=float),
     r"rows 300-399 has shape \(200, 2\) where its dask array declares \(100, 2\)"),
    (lambda X: da.from_array(X, chunks=(100, 2)).map_blocks(_block_3(lambda b: np.c_[b, b]), dtype=float),
     r"rows 300-399 has shape \(100, 4\) where its dask array declares \(100, 2\)"),
    (lambda X: da.from_array(X, chunks=(100, 2)).map_blocks(_block_3(lambda b: b.tolist()), dtype=float),
     "The block of X holding rows 300-399 is a list, not an array"),
    (lambda X: da.from_array(X, chunks=(100, 2)).map_blocks(_block_3(lambda b: b + 1j), dtype=float),
     r"rows 300-399 holds complex numbers \(complex128\)"),
    # netCDF's variables with a _FillValue come as masked arrays: the values under the mask were fitted
    (lambda X: da.from_array(X, chunks=(100, 2)).map_blocks(_block_3(lambda b: np.ma.masked_greater(b, b[20, 0])),
                                                            dtype=float),
     r"rows 300-399 is a masked array with masked entries in \d+ row\(s\) \(first: row 3\d\d\)"),
    (lambda X: da.from_array(X, chunks=(100, 2)).map_blocks(_block_3(scipy.sparse.csr_matrix), dtype=float),
     "rows 300-399 is a csr_matrix, not a NumPy array"),
    (lambda X: da.from_array(X, chunks=(100, 2)).map_blocks(_block_3(pd.DataFrame), dtype=float),
     "rows 300-399 is a DataFrame, not an array"),  # predict took it as its values
    (lambda X: da.from_array(X, chunks=(100, 2)).map_blocks(_block_3(lambda b: b.astype("M8[s]")), dtype=float),
     r"rows 300-399 holds datetime64\[s\] values where its dask array declares numbers"),  # scored as seconds
])
def test_a_dask_block_unlike_its_declaration_is_refused_by_its_rows(bad, said):
    """A block that a dask array's function returns with other rows than its chunks declare was fitted,
    scored and predicted without a word: 150 of 1,000 declared rows never seen, predict 850 labels.
    The random start's rows are taken from blocks checked the same way."""
    X = make_blobs(n=1002)[:1000]
    gm = GaussianMixture(2, random_state=0, init_params="random_from_data").fit(X)
    Xd = bad(X)
    calls = [lambda: GaussianMixture(2, random_state=0, init_params="random_from_data").fit(Xd),
             lambda: gm.score(Xd), lambda: gm.predict_proba(Xd).compute(),
             # 20 starting rows, one of them (row 637) beyond what the truncated block holds: its
             # start read an IndexError from NumPy before the passes could name the block
             lambda: GaussianMixture(20, random_state=0, init_params="random_from_data").fit(Xd),
             lambda: gm.predict(Xd).compute()]  # its blocks checked before dask joins them (drop_axis)
    for call in calls:
        with pytest.raises(ValueError, match=said):
            call()
    w = da.ones(1000, chunks=250).map_blocks(lambda b, block_info=None: b[:10] if block_info[0]["chunk-location"][0] == 1 else b,
                                             dtype=float)
    with pytest.raises(ValueError, match=r"The block of sample_weight holding rows 250-499 has shape \(10,\)"):
        gm.score(X, sample_weight=w)


def test_a_dask_block_unlike_its_declaration_is_refused_before_dask_gmm_rechunks_it():
    """dask_gmm's own rechunks (a block cut for the outputs' 16 MiB, weights chunked unlike X, X's
    feature chunks joined) ran before the check of each block: a block one row too long lost that
    row from predict_proba without a word, weights of a too-long block were fitted and scored, and a
    short feature block failed in NumPy's concatenation (a review)."""
    X = make_blobs(n=300_003)[:300_001]
    gm = GaussianMixture(8, max_iter=2, random_state=0).fit(X[:2000])
    long = da.map_blocks(lambda: X, dtype=float, chunks=((300_000,), (2,)))  # 300,000 x 8 probabilities: cut
    for call in (gm.predict_proba, gm.score_samples, gm.predict):
        with pytest.raises(ValueError, match=r"rows 0-299999 has shape \(300001, 2\) where its dask array declares"):
            call(long).compute()
    Xd = da.from_array(X[:4000], chunks=500)
    w = da.map_blocks(lambda: np.ones(1001), dtype=float, chunks=((1000,) * 4,))  # joined, then cut to X's blocks
    said = r"The block of sample_weight holding rows \d+-\d+ has shape \(1001,\) where its dask array declares \(1000,\)"
    for call in (lambda: GaussianMixture(2, max_iter=3, random_state=0).fit(Xd, sample_weight=w),
                 lambda: gm.score(Xd, sample_weight=w)):
        with pytest.raises(ValueError, match=said):
            call()
    columns = da.concatenate([da.from_delayed(dask.delayed(lambda: X[:1000, :1])(), shape=(1000, 1), dtype=float),
                              da.from_delayed(dask.delayed(lambda: X[:999, 1:])(), shape=(1000, 1), dtype=float)], axis=1)
    said = r"The block of X holding rows 0-999 has shape \(999, 1\) where its dask array declares \(1000, 1\)"
    with pytest.warns(UserWarning, match="chunked across features"):
        with pytest.raises(ValueError, match=said):
            GaussianMixture(2, random_state=0).fit(columns)
    with pytest.warns(UserWarning, match="chunked across features"):
        with pytest.raises(ValueError, match=said):
            gm.predict(columns).compute()


def _cut_block_1_1(b, block_info=None):
    return b[:-3] if block_info[0]["chunk-location"] == (1, 1) else b


def test_a_filtered_array_chunked_across_features_is_fitted_and_predicted_as_its_rows():
    """Rows of unknown number (a filter's) in feature blocks: the outputs are the rows' own, and a fit
    of the feature blocks is the NumPy fit's, bitwise (a check of each block before the blocks were
    joined had refused every block of unknown rows, a review)."""
    X = make_blobs(n=2001, means=((0.0, 0.0, 0.0, 0.0), (5.0, 5.0, 0.0, 0.0)))
    gm = GaussianMixture(2, random_state=0).fit(X)
    Xd = da.from_array(X, chunks=(500, 2))
    kept = Xd[Xd[:, 0] > 1.0]
    masked = Xd.map_blocks(lambda b: np.ma.masked_greater(b, 6.0), dtype=float, meta=np.empty((0, 0)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no RuntimeWarning of NaN row starts cast to integers (a review)
        warnings.filterwarnings("ignore", "X is chunked across features")
        for call in (gm.predict, gm.predict_proba, gm.score_samples):
            np.testing.assert_array_equal(call(kept).compute(), call(X[X[:, 0] > 1.0]))
            with pytest.raises(ValueError, match=r"holding rows not yet counted \(chunks of unknown size, such as a "
                                                 r"filter's\) is a masked array .* \(first: row \d+ of the block\)"):
                call(masked[masked[:, 0] > 1.0]).compute()  # the values under the mask had been scored
            with pytest.raises(ValueError, match=r"The feature blocks of X's row chunk 1 hold \[\d+, \d+\] rows"):
                call(kept.map_blocks(_cut_block_1_1, dtype=float)).compute()
        fitted = GaussianMixture(2, random_state=0).fit(Xd)
    assert fitted.means_.tobytes() == gm.means_.tobytes()
    assert fitted.covariances_.tobytes() == gm.covariances_.tobytes()


def test_weights_init_outside_0_1_is_refused_as_scikit_learn_refuses_it_with_the_value():
    X = make_blobs(n=300)
    for w, value in (([1.5, -0.5], "1.5"), ([0.5, 0.6, -0.1], "-0.1")):
        with pytest.raises(ValueError, match=re.escape("The parameter 'weights' should be in the range [0, 1]")):
            SKGaussianMixture(len(w), weights_init=w).fit(X)
        with pytest.raises(ValueError, match=re.escape(f"should be in the range [0, 1], but weights_init holds {value}. "
                                                       "Pass non-negative weights that sum to 1, or None to let")):
            GaussianMixture(len(w), weights_init=w).fit(X)


@pytest.mark.parametrize("dtype, off", [(np.float64, 9e-6), (np.float64, 2e-8), (np.float32, 4e-6)])
def test_weights_init_normalised_as_scikit_learn_demands(dtype, off):
    """weights_init summing to 1 +- more than scikit-learn's tolerance (1e-8, 1e-6 for float32) is
    refused as scikit-learn refuses it; within it, both accept. A sum 9e-6 off was accepted, and
    with max_iter=0 kept as the model's weights (its scores off by log(sum), save_model refused it)."""
    X = make_blobs(n=300)
    start = dict(means_init=[[0.0, 0.0], [5.0, 5.0]], precisions_init=[np.eye(2)] * 2)
    atol = 1e-6 if dtype == np.float32 else 1e-8
    for w, refused in ((np.array([0.5, 0.5], dtype) * dtype(1 - off), True),
                       (np.array([0.5, 0.5], dtype) * dtype(1 - atol / 2), False)):
        ours = GaussianMixture(2, weights_init=w, max_iter=0, **start)
        theirs = SKGaussianMixture(2, weights_init=w, max_iter=1, **start)
        if refused:
            with pytest.raises(ValueError, match="should be normalized"):
                theirs.fit(X)
            with pytest.raises(ValueError, match=r"should be normalized.*Divide them by their sum"):
                ours.fit(X)
        else:
            theirs.fit(X)
            assert abs(ours.fit(X).weights_.sum() - 1.0) <= atol


@pytest.mark.parametrize("init_params", ["random_from_data", "kmeans", "random"])
def test_starting_rows_read_only_the_chunks_that_hold_them(tmp_path, monkeypatch, init_params):
    """The random starting rows of a store read directly were read a fit task's whole block
    each (up to 16 MiB, 4 chunks), per restart: a review counted 80 + 80 chunk reads for
    random_from_data with n_init=3 and max_iter=0 on a store of 80 chunks, where the README
    said just the chunks holding the rows are read."""
    X = make_blobs(n=40_000)
    path = str(tmp_path / "x.zarr")
    zarr.create_array(path, shape=X.shape, chunks=(500, 2), dtype="f8")[:] = X
    reads = []  # chunk keys read, by the direct reader or by zarr
    real, zarr_get = _reader.ZarrRows._fetch, zarr.storage.LocalStore.get
    monkeypatch.setattr(_reader.ZarrRows, "_fetch", lambda self, key, reuse: reads.append(key) or real(self, key, reuse))

    async def get(self, key, *args, **kwargs):
        reads.extend([key] if key.startswith("c/") else [])
        return await zarr_get(self, key, *args, **kwargs)

    monkeypatch.setattr(zarr.storage.LocalStore, "get", get)
    gm = GaussianMixture(3, init_params=init_params, n_init=3, max_iter=0, random_state=0).fit(path)
    passes = {"random_from_data": 1, "kmeans": 9, "random": 1}[init_params]  # its passes (README's table)
    drawn = {"random_from_data": 9, "kmeans": 3, "random": 3}[init_params]  # rows drawn by the 3 restarts
    assert 80 * passes < len(reads) <= 80 * passes + drawn
    ref = GaussianMixture(3, init_params=init_params, n_init=3, max_iter=0, random_state=0).fit(X)
    np.testing.assert_allclose(gm.means_, ref.means_, rtol=1e-12)  # the same rows, however read


def test_random_from_data_starts_its_components_on_distinct_rows():
    """Drawn with replacement, two components could start on one row, one of them then emptied:
    20 of 30 seeds on 8 rows with K=6 (a mutation review)."""
    X = np.random.default_rng(0).normal(size=(8, 2))
    for seed in range(30):
        gm = GaussianMixture(6, init_params="random_from_data", max_iter=0, reg_covar=1e-3, random_state=seed).fit(X)
        assert len(np.unique(gm.means_, axis=0)) == 6, seed


def test_kmeans_start_takes_ten_k_means_starts_then_one_per_further_restart(monkeypatch):
    """The first restart keeps the best of 10 starts of scikit-learn's KMeans on its candidates,
    each further one a single start (README); a mutant of one start for all went unseen."""
    import sklearn.cluster
    from sklearn.cluster import KMeans

    n_inits, seeds = [], []

    class Spy(KMeans):
        def fit(self, *args, **kwargs):
            n_inits.append(self.n_init)
            seeds.append(self.random_state)
            return super().fit(*args, **kwargs)

    monkeypatch.setattr(sklearn.cluster, "KMeans", Spy)  # dask_gmm._init imports it where it starts k-means
    GaussianMixture(3, n_init=3, random_state=0).fit(make_blobs(n=3000))
    assert n_inits == [10, 1, 1]
    assert len(set(seeds)) == 3  # each restart a stream of its own


def test_kmeans_start_ends_at_a_fixed_point_of_lloyds_step():
    """Its Lloyd passes run until the assignments settle: each initial mean is the centroid of the
    rows nearest to it (a mutant of one Lloyd pass was caught only by accident)."""
    X = make_blobs(n=3000)
    gm = GaussianMixture(3, max_iter=0, random_state=0).fit(X)
    nearest = np.linalg.norm(X[:, None] - gm.means_[None], axis=2).argmin(axis=1)
    np.testing.assert_allclose(gm.means_, [X[nearest == k].mean(axis=0) for k in range(3)], rtol=1e-12, atol=1e-12)


def test_convergence_is_a_change_below_tol_in_either_direction():
    """scikit-learn's test, |change| < tol: with tol=0 a fit at an exact fixed point still runs to
    max_iter, and a lower bound that falls (reg_covar larger than the spread) by more than tol is no
    convergence; mutants of '<=' and of a dropped abs went unseen."""
    X = make_blobs(n=600)
    with pytest.warns(ConvergenceWarning):
        gm = GaussianMixture(3, tol=0, max_iter=60, random_state=0).fit(X)
    assert (gm.n_iter_, gm.converged_) == (60, False)
    # a fixed point, passed: changes of exactly 0 before the last iteration (at the last one too with
    # OpenBLAS's AVX2 kernels; with its AVX-512 ones the bound moves by 1 ulp at times, 0 in between)
    assert any(a == b for a, b in zip(gm.lower_bounds_[:-2], gm.lower_bounds_[1:-1]))
    assert np.abs(np.diff(gm.lower_bounds_[-10:])).max() <= 4 * np.spacing(abs(gm.lower_bounds_[-1]))  # and stays
    tight = np.random.default_rng(1).normal(0, 0.1, (500, 2)) + np.repeat([[0, 0], [3, 0]], 250, axis=0)
    init = sk_init(tight, "full", K=2)
    ours = GaussianMixture(2, reg_covar=10.0, **init).fit(tight)
    sk = SKGaussianMixture(2, reg_covar=10.0, **init).fit(tight)
    assert min(np.diff(ours.lower_bounds_)) < -1e-3  # the bound falls first
    assert ours.n_iter_ == sk.n_iter_ and ours.converged_
    np.testing.assert_allclose(ours.means_, sk.means_, rtol=1e-8)


# ------------------------------------------------------------------ fits in several threads at once
def _blas_threads():
    import threadpoolctl

    return sorted({i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"})


def test_fits_in_threads_at_once_leave_the_process_as_it_was():
    """A review's fits in two threads at once (a threading GridSearchCV, a web server) changed the
    whole process for good, 1 to 9 rounds in: ``warnings.catch_warnings`` around every k-means start,
    and around the conversion of object arrays, is not thread-safe, and one fit's exit put back the
    other's state, leaving every later warning recorded into a list no one read (or complex casts an
    error); and scikit-learn's KMeans in one fit's start set back the one BLAS thread it found, after
    the other fit's pass, which had set it, had set back the default; so did the k-means start's
    OpenMP limit, entered before the lock of the KMeans: threadpoolctl sets back every pool it
    found, BLAS too. Each fit's result is the same as alone."""
    import sys
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(0)
    Xs = [rng.normal(size=(2000, 2)), rng.normal(size=(2000, 30)), rng.normal(size=(500, 3)).astype(object)]
    fit = lambda i: GaussianMixture(3, random_state=i, max_iter=3, tol=0).fit(Xs[i % 3]).means_  # noqa: E731
    alone = [fit(i) for i in range(6)]
    filters, show, blas = list(warnings.filters), warnings.showwarning, _blas_threads()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # the threads switch often: the races come sooner
    try:
        for _ in range(12):
            with ThreadPoolExecutor(2) as pool:  # and the main thread fits: threadpoolctl 3.8+ lets one
                others = pool.map(fit, range(2, 6))  # thread at a time change OpenBLAS's limit
                together = [fit(0), fit(1), *others]
            assert warnings.filters == filters and warnings.showwarning is show
            assert _blas_threads() == blas
            for a, b in zip(together, alone):
                np.testing.assert_array_equal(a, b)
    finally:
        sys.setswitchinterval(interval)
    with pytest.warns(UserWarning, match="still seen"):
        warnings.warn("still seen")


def test_k_means_starts_in_threads_at_once_leave_blas_and_the_warnings_filters_as_they_were():
    """Two of scikit-learn's KMeans at once: each sets BLAS to one thread and sets back what it found,
    which may be the other's one thread, and its check_array changes the warnings filters for a
    moment; the whole fits above overlap there rarely (a review: 5 overlaps in 80 starts), the
    starts alone at once left BLAS on one thread in the first round. They run one at a time."""
    import sys

    from sklearn.cluster import KMeans

    from dask_gmm._init import _fit_kmeans

    rng = np.random.default_rng(0)
    cand, w = rng.normal(size=(300, 5)), np.ones(300)
    filters, blas, interval = list(warnings.filters), _blas_threads(), sys.getswitchinterval()

    def starts(seed):
        for i in range(15):
            _fit_kmeans(KMeans(3, n_init=2, random_state=seed + i), cand, w)

    sys.setswitchinterval(1e-5)
    try:
        for _ in range(4):
            threads = [threading.Thread(target=starts, args=(j * 100,)) for j in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert _blas_threads() == blas and warnings.filters == filters
    finally:
        sys.setswitchinterval(interval)


@pytest.mark.parametrize("apart", [0.0, 1e-9])
def test_the_k_means_start_on_too_few_distinct_rows_warns_in_words_of_its_own(apart):
    """Fewer distinct candidate rows than components: a ConvergenceWarning naming both counts, after
    scikit-learn's (which names ``n_clusters``); the filters are as before after. Rows 1e-9 apart
    count as one, as KMeans's labels see them."""
    X = np.r_[np.repeat([[0.0, 0.0], [5.0, 5.0]], 200, axis=0), [[apart, 0.0]] * 200]
    filters = list(warnings.filters)
    with pytest.warns(ConvergenceWarning) as caught:
        GaussianMixture(3, random_state=0, max_iter=2).fit(X)
    said = [str(w.message) for w in caught]
    assert any("found only 2 distinct points among its candidate rows for n_components=3" in m for m in said), said
    assert warnings.filters == filters


def test_k_means_starts_leave_the_warnings_of_a_process_where_another_thread_uses_sklearn():
    """The k-means start caught scikit-learn's warnings to reword one (warnings.catch_warnings(record=True)):
    with scikit-learn's check_array, which catches warnings too, running in another thread, the two
    restores interleaved and left every later warning of the process appended to a list no one read,
    within 5 fits in each of 3 runs (a review). Nothing of this package catches warnings in a fit now."""
    from sklearn.utils import check_array

    X = make_blobs(n=20_000)
    Y = np.random.default_rng(1).normal(size=(300_000, 3)).astype(np.float32)
    GaussianMixture(3, random_state=0, max_iter=2).fit(X)  # lazy imports add their filters first
    shown = warnings._showwarnmsg_impl
    stop = threading.Event()

    def other():
        while not stop.is_set():
            check_array(Y, dtype=np.float64)

    thread = threading.Thread(target=other)
    thread.start()
    try:
        for seed in range(5):
            GaussianMixture(3, random_state=seed, max_iter=2).fit(X)
    finally:
        stop.set()
        thread.join()
    assert warnings._showwarnmsg_impl is shown
    with pytest.warns(UserWarning, match="still shown"):
        warnings.warn("still shown", UserWarning)


@pytest.mark.parametrize("ct, where", [("full", "Component 0's variance along feature 1"),
                                       ("tied", "The tied covariance's variance along feature 1"),
                                       ("diag", "Component 0's variance along feature 1"),
                                       ("spherical", None)])
def test_a_constant_feature_without_reg_covar_is_named(ct, where):
    """With reg_covar=0 a constant feature is refused (scikit-learn fits rounding's variance there,
    7e-30 to 5e-14), in scikit-learn's words, which advise fewer components, no help at K=1 (a
    review): the component and the feature are named, with what helps. Spherical averages the
    features, and fits. A feature that is a sum of others is named too."""
    X = np.c_[np.random.default_rng(0).normal(size=100), np.full(100, 3.7)]
    gm = GaussianMixture(1, covariance_type=ct, reg_covar=0.0, random_state=0)
    if where is None:
        assert gm.fit(X).covariances_[0] > 0.4
    else:
        with pytest.raises(ValueError, match=rf"^Fitting the mixture model failed .*\(currently 0\.0\), or scale the input data\. {where} is "
                                             r"[0-9.e-]+, no more than rounding: its rows hold one value there .*"
                                             r"Drop such a feature, or set reg_covar > 0\.$"):
            gm.fit(X)
    if ct in ("full", "tied"):
        a = np.random.default_rng(2).normal(size=(200, 2))
        with pytest.raises(ValueError, match="A feature is a linear combination of others on a component's rows"):
            GaussianMixture(1, covariance_type=ct, reg_covar=0.0, random_state=0).fit(np.c_[a, a @ [1.0, 3.0]])


def _in_blocks(X, source, dask_rows, zarr_rows, tmp_path):
    """X as a dask array of blocks of ``dask_rows`` (``source`` "dask"), else the path of a Zarr store
    ("zarr v2" or "zarr v3") of chunks of ``zarr_rows``."""
    if source == "dask":
        return da.from_array(X, chunks=(dask_rows, X.shape[1]))
    path = str(tmp_path / "x.zarr")
    zarr.create_array(path, shape=X.shape, chunks=(zarr_rows, X.shape[1]), dtype=X.dtype,
                      zarr_format=2 if "v2" in source else 3)[:] = X
    return path


def test_the_read_shared_by_a_chunk_s_parts_checks_the_build_too(tmp_path, monkeypatch):
    """A lazy output's tasks check where they run that the process runs the build the output was
    made with (a worker joined since from other code): the task that reads a chunk once for all its
    parts (an output too wide for one block) had not, so such a worker read rows for the others (a
    review). Here the build is made to differ in this process once the output is made."""
    import dask_gmm

    X = np.random.default_rng(0).standard_normal((100_000, 2))
    gm = GaussianMixture(64, max_iter=1, random_state=0, init_params="random_from_data").fit(X[:5000])
    P = gm.predict_proba(_in_blocks(X, "zarr v3", None, 65_536, tmp_path))
    reads = [key for key in P.dask if isinstance(key, tuple) and key[0].endswith("-read")]
    assert len(reads) == 2  # the two chunks, each cut in parts
    monkeypatch.setattr(dask_gmm, "_BUILD", dask_gmm._BUILD + " (another)")
    for key in reads:
        with pytest.raises(ValueError, match=r"runs dask_gmm build .* \(another\), and this output was made by build"):
            dask.get(P.dask, key)


@pytest.mark.parametrize("source", ["dask", "zarr v3", "zarr v2"])
def test_wide_outputs_of_equal_blocks_come_in_equal_blocks(tmp_path, source):
    """Blocks of 70,000 rows had been cut into 23,334, 23,334 and 23,332 rows of 64 probabilities, which
    ``da.to_zarr`` rechunked, with a warning, to write them (a Dask user's review; a store's chunks of
    70,000 rows too, a later review): a number of parts that divides the block's rows is taken where
    there is one, so the output's blocks are equal."""
    X = np.random.default_rng(0).standard_normal((215_000, 2))
    gm = GaussianMixture(64, max_iter=1, random_state=0, init_params="random_from_data").fit(X[:5000])
    src = _in_blocks(X, source, 70_000, 70_000, tmp_path)
    P = gm.predict_proba(src)
    assert P.chunks[0] == (17_500,) * 12 + (5_000,)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither rechunked nor refused
        P.to_zarr(str(tmp_path / "p.zarr"))
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "p.zarr"), mode="r")[:], gm.predict_proba(X))


@pytest.mark.parametrize("source", ["zarr v3", "zarr v2", "dask"])
def test_wide_outputs_come_in_blocks_of_at_most_16_mib(tmp_path, source, monkeypatch):
    """64 components' probabilities are 32 times the bytes of their rows of 2 features: an input's
    blocks (16 MiB of rows, or Zarr chunks of 1 MiB here) had been the output's, 512 MiB each, and
    killed a cluster's workers that fitted the same store (a review). Each block is cut (a store's
    chunk into equal parts, read by the direct reader or through zarr; a dask array's blocks
    anywhere) into outputs of at most io.TARGET_CHUNK_BYTES; the values are those of the rows in
    memory, and the memory a reduction of them takes halves (tracemalloc: 64.6 and 98.3 MiB before).
    A chunk cut in parts is decoded once (a review: once a part, 2.3x slower)."""
    import tracemalloc

    X = np.random.default_rng(0).standard_normal((200_000, 2))
    src = _in_blocks(X, source, 100_000, 65_536, tmp_path)
    gm = GaussianMixture(64, max_iter=1, random_state=0, init_params="random_from_data").fit(X[:5000])
    P = gm.predict_proba(src)
    assert max(P.chunks[0]) * 64 * 8 <= io.TARGET_CHUNK_BYTES
    assert P.chunks[0][:4] == ((25_000,) * 4 if source == "dask" else (32_768,) * 4)  # equal parts
    decoded, chunk = [], _reader.ZarrRows.chunk
    monkeypatch.setattr(_reader.ZarrRows, "chunk", lambda self, i, **kw: decoded.append(i) or chunk(self, i, **kw))
    np.testing.assert_array_equal(P.compute(), gm.predict_proba(X))
    assert sorted(decoded) == ([0, 1, 2, 3] if source == "zarr v3" else [])  # the direct reader's: once a chunk
    np.testing.assert_array_equal(gm.score_samples(src).compute(), gm.score_samples(X))  # 8 bytes a row: not cut
    assert gm.score_samples(src).chunks[0] == ((100_000, 100_000) if source == "dask" else (65_536,) * 3 + (3_392,))
    tracemalloc.start()
    try:
        gm.predict_proba(src).sum(axis=0).compute()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    from dask_gmm import _kernels

    assert peak < (48 if _kernels.USE_NUMBA else 128) * 2**20, peak  # the reference's five (n, K) temporaries


def test_a_checkpoint_beside_the_input_whose_name_begins_with_the_inputs_is_not_inside_it(tmp_path):
    X = make_blobs(n=600)
    store = tmp_path / "data.zarr"
    zarr.create_array(str(store), data=X, chunks=(300, 2))
    fitted = GaussianMixture(3, random_state=0, max_iter=3, checkpoint=tmp_path / "data.zarr.ckpt").fit(str(store))
    assert fitted.n_iter_ >= 1 and (tmp_path / "data.zarr.ckpt").exists()


def test_a_checkpoint_of_an_unweighted_fit_is_refused_for_a_weighted_one(tmp_path):
    X = make_blobs(n=1000)
    kw = dict(n_components=3, random_state=0, max_iter=2, tol=0, checkpoint=tmp_path / "ck.json")
    with pytest.warns(ConvergenceWarning):
        GaussianMixture(**kw).fit(X)
    with pytest.raises(ValueError, match=r"belongs to a different fit \(its sample weights \(given or not\) differ"):
        GaussianMixture(**{**kw, "max_iter": 4}).fit(X, sample_weight=np.ones(len(X)))


def test_a_checkpoint_replaced_during_the_fit_by_other_bytes_of_its_size_is_kept(tmp_path):
    X = make_blobs(n=1000)
    path = tmp_path / "ck.json"
    passes, planted, lock = [], [], threading.Lock()

    def read(block):
        passes.append(block.size > 0)
        with lock:
            if path.exists() and not planted:  # after the first save: other bytes of its size
                other = b'{"precious": 1}'.ljust(path.stat().st_size)
                path.write_bytes(other)
                planted.append(other)
        return block

    data = da.from_array(X, chunks=(500, 2)).map_blocks(read, dtype=X.dtype)
    with pytest.raises(ValueError, match="was written or replaced during the fit by something else than the fit"):
        GaussianMixture(3, random_state=0, max_iter=10, tol=0, checkpoint=path).fit(data)
    assert path.read_bytes() == planted[0]


def test_a_resumed_checkpoint_whose_metadata_alone_changed_is_still_the_fits(tmp_path):
    """chmod/touch of the checkpoint a fit resumed from: the same bytes are the fit's, and it goes on."""
    X = make_blobs(n=1000)
    path = tmp_path / "ck.json"
    kw = dict(n_components=3, random_state=0, tol=0, checkpoint=path)
    with pytest.warns(ConvergenceWarning):
        GaussianMixture(max_iter=2, **kw).fit(da.from_array(X, chunks=(500, 2)))
    touched, blocks = [], []

    def read(block):
        blocks.append(block.size > 0)
        if sum(blocks) >= 3 and not touched:  # after the resume's load (its digest: a pass of two blocks)
            touched.append(True)
            path.chmod(0o600)
            os.utime(path, ns=(1, 1))
        return block

    with pytest.warns(ConvergenceWarning):
        resumed = GaussianMixture(max_iter=4, **kw).fit(da.from_array(X, chunks=(500, 2)).map_blocks(read, dtype=X.dtype))
    assert touched and resumed.n_iter_ == 4


def test_kmeans_start_makes_lloyd_max_iter_passes_when_lloyd_does_not_settle(monkeypatch):
    """At most LLOYD_MAX_ITER Lloyd passes (module docstring), and all of them when the moves
    never fall below the tolerance; the start is then the hard assignment of the last pass."""
    from dask_gmm import _em, _init
    from dask_gmm import _kernels as kern

    kernels = []
    real = _em.Blocks.map_reduce

    def spy(self, *a, **k):
        if a[0] is kern.many:
            kernels.append(a[1].__name__)
        return real(self, *a, **k)

    monkeypatch.setattr(_em.Blocks, "map_reduce", spy)
    monkeypatch.setattr(_init, "LLOYD_TOL", -1.0)  # never settles
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 2))  # one blob: Lloyd's centres keep moving
    GaussianMixture(3, max_iter=0, random_state=0).fit(X)
    assert kernels.count("hard_stats") == _init.LLOYD_MAX_ITER


def _fitted_sk(X):
    return SKGaussianMixture(2, random_state=0).fit(X)


@pytest.mark.parametrize("ours, theirs, remedy", [
    (lambda X: GaussianMixture(5).fit(X[:3]), lambda X: SKGaussianMixture(5).fit(X[:3]),
     "Ask for at most 3 components, or give more rows."),
    (lambda X: select_model(X[:3], n_components=[1, 5]), lambda X: SKGaussianMixture(5).fit(X[:3]),
     "Ask for at most 3 components, or give more rows."),
    (lambda X: GaussianMixture(2, means_init=np.zeros((3, 2))).fit(X),
     lambda X: SKGaussianMixture(2, means_init=np.zeros((3, 2))).fit(X),
     "Pass means_init of shape (n_components, n_features) = (2, 2), or None to let init_params choose them."),
    (lambda X: GaussianMixture(2, weights_init=[1.0]).fit(X), lambda X: SKGaussianMixture(2, weights_init=[1.0]).fit(X),
     "Pass weights_init of shape (n_components,) = (2,), or None to let init_params choose them."),
    (lambda X: GaussianMixture(2, covariance_type="tied", precisions_init=np.eye(3)).fit(X),
     lambda X: SKGaussianMixture(2, covariance_type="tied", precisions_init=np.eye(3)).fit(X),
     "Pass precisions_init of shape (n_features, n_features) = (2, 2) for tied covariances, or None to let "
     "init_params choose them."),
    (lambda X: GaussianMixture(2, covariance_type="spherical", precisions_init=np.ones(3)).fit(X),
     lambda X: SKGaussianMixture(2, covariance_type="spherical", precisions_init=np.ones(3)).fit(X),
     "Pass precisions_init of shape (n_components,) = (2,) for spherical covariances, or None to let "
     "init_params choose them."),
    (lambda X: BayesianGaussianMixture(n_components=2, mean_prior=np.zeros(3)).fit(X), None,  # scikit-learn: 'means'
     "The parameter 'mean_prior' should have the shape of (2,), but got (3,). Pass mean_prior of shape "
     "(n_features,) = (2,), or None for the mean of X."),
    (lambda X: GaussianMixture(2, random_state=0).fit(X).predict(np.ones((4, 3))),
     lambda X: _fitted_sk(X).predict(np.ones((4, 3))),
     "Give it data of the 2 features it was fitted on, or fit it again to these data."),
])
def test_scikit_learns_refusals_say_also_what_to_do(ours, theirs, remedy):
    """scikit-learn's words, then what to do: they had said only what was wrong, and named 'means'
    for means_init (a review)."""
    X = make_blobs(n=300)
    said = ""
    if theirs is not None:
        with pytest.raises(ValueError) as sk:
            theirs(X)
        said = str(sk.value).rstrip(".") + ". "
    with pytest.raises(ValueError) as got:
        ours(X)
    assert str(got.value) == said + remedy


@pytest.mark.parametrize("X, said", [
    ([[1.0, 2.0], [3.0]], "X's rows are of different lengths"),  # NumPy's "setting an array element with a sequence"
    (pd.DataFrame(np.ones((5, 3)), columns=["a", "a", "b"]), r"X's columns are not named uniquely \('a' more than once\)"),
    (pd.DataFrame(np.ones((5, 2)), columns=[0, 0]), r"X's columns are not named uniquely \(0 more than once\)"),
])
def test_ragged_rows_and_duplicate_columns_are_said_with_what_to_do(X, said):
    """NumPy's and narwhals' own words (the latter on two lines) had said nothing of what to do (a review)."""
    gm = GaussianMixture(1).fit(np.random.default_rng(0).normal(size=(20, len(X[0]) if isinstance(X, list) else X.shape[1])))
    calls = [lambda: GaussianMixture(1).fit(X), lambda: gm.predict(X), lambda: gm.score(X)]
    if isinstance(X, pd.DataFrame):
        calls.append(lambda: GaussianMixture(1).fit(dd.from_pandas(X, npartitions=2)))
    for call in calls:
        with pytest.raises(ValueError, match=said):
            call()


def test_a_component_left_holding_no_rows_is_warned_of():
    """A weighted fit of fewer rows of positive weight than components returned a component of
    weight 2.2e-15 (the 10·eps floor), on a row of weight 0, without a word (a review)."""
    X = make_blobs(n=400)
    w = np.zeros(len(X))
    w[7] = 1.0
    for init in ("kmeans", "k-means++", "random_from_data"):
        with pytest.warns(ConvergenceWarning, match=r"^1 of the 2 components holds no rows \(component \d, weights_ "
                                                    r"below 2\.2e-13\): X holds fewer distinct rows of positive weight "
                                                    r"than n_components") as caught:
            gm = GaussianMixture(2, random_state=0, init_params=init).fit(X, sample_weight=w)
        assert caught[-1].filename == __file__
        assert sorted(gm.weights_)[0] < 1e-14 and np.allclose(gm.means_[np.argmax(gm.weights_)], X[7])
    with pytest.warns(ConvergenceWarning, match=r"^1 of the 2 components holds no rows") as caught:  # as alone
        select_model(X, n_components=[2], sample_weight=5 * w, random_state=0)  # a count of 5 (1 is refused)
    assert caught[-1].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fit of every component holding rows: no word
        GaussianMixture(3, random_state=0).fit(X)
        select_model(X, n_components=[1, 2, 3], random_state=0)
        BayesianGaussianMixture(n_components=8, random_state=0).fit(X)  # its unused ones are its answer
