"""BayesianGaussianMixture: scikit-learn equivalence, the one-pass lower bound, API behaviour."""

import logging
import warnings

import dask.array as da
import numpy as np
import pytest
import zarr
from scipy.special import xlogy
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.mixture import BayesianGaussianMixture as SKBayesianGaussianMixture
from threadpoolctl import threadpool_limits

import dask_gmm.bayesian as bayesian
from dask_gmm import BayesianGaussianMixture
from dask_gmm._compat import InvalidParameterError
from dask_gmm._covariance import precision_cholesky
from dask_gmm._kernels import Model, SuffStats, e_step_stats, hard_stats, log_prob_resp

from .conftest import make_blobs, seed_like_problem

TYPES = ("full", "tied", "diag", "spherical")
PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")
BLOB_MEANS_3D = ((0.0, 0.0, 0.0), (5.0, 0.0, 1.0), (0.0, 5.0, -1.0))
FITTED = (
    "weights_",
    "means_",
    "covariances_",
    "precisions_cholesky_",
    "precisions_",
    "mean_precision_",
    "degrees_of_freedom_",
    "mean_prior_",
    "covariance_prior_",
)


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Tiny arrays: BLAS and OpenMP threads only oversubscribe the shared cores (10x slower fits)."""
    with threadpool_limits(limits=1):
        yield


def _nearest(X, centres):
    return ((X[:, None, :] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)


@pytest.fixture
def order_init(monkeypatch):
    """Reorder the components of our initial statistics: ``order(X, ref)`` gives the permutation.

    The dirichlet_process prior depends on the order of the components, so two
    fits compare number for number only when they start from the same order.
    This changes no partition, only the components' labels.
    """

    def install(order):
        real = bayesian.initial_statistics_many

        def reordered(blocks, X, specs, init_params, seeds):
            out = []
            for (st, ref), (_, ct) in zip(real(blocks, X, specs, init_params, seeds), specs):
                p = order(ref)
                s2 = st.s2 if ct == "tied" else st.s2[p]  # tied: summed over components
                out.append((SuffStats(st.nk[p], st.s1c[p], s2, st.objective, st.weight, st.least), ref[p]))
            return out

        monkeypatch.setattr(bayesian, "initial_statistics_many", reordered)

    return install


@pytest.fixture
def sklearn_kmeans_order(order_init):
    """Order our k-means initialisation as scikit-learn's, checking that the partitions are identical."""

    def install(X, K, seed):
        # scikit-learn's _initialize_parameters: KMeans(n_init=1) drawing from check_random_state(seed)
        labels = KMeans(n_clusters=K, n_init=1, random_state=np.random.RandomState(seed)).fit(X).labels_
        centres = np.array([X[labels == j].mean(axis=0) for j in range(K)])

        def order(ref):
            p = _nearest(centres, ref)  # our component for each of scikit-learn's
            assert sorted(p) == list(range(K))
            np.testing.assert_array_equal(np.argsort(p)[_nearest(X, ref)], labels)  # same initial partition
            return p

        order_init(order)

    return install


@pytest.fixture
def sorted_init(order_init):
    """Order the initial components by their first coordinate."""
    order_init(lambda ref: np.argsort(ref[:, 0]))


# ------------------------------------------------------------------ the one-pass lower bound
@pytest.mark.parametrize("ct", TYPES)
def test_sum_resp_log_resp_from_statistics_equals_direct_sum(ct):
    rng = np.random.default_rng(1)
    X = make_blobs(n=700, means=BLOB_MEANS_3D, seed=2) + 100.0
    w = rng.uniform(0.0, 3.0, len(X))
    K, d = 3, X.shape[1]
    means = X[rng.choice(len(X), K, replace=False)]
    A = rng.standard_normal((K, d, d))
    covariances = {
        "full": np.einsum("kji,kjl->kil", A, A) + np.eye(d),
        "tied": A[0].T @ A[0] + np.eye(d),
        "diag": rng.uniform(0.5, 3.0, (K, d)),
        "spherical": rng.uniform(0.5, 3.0, K),
    }[ct]
    model = Model(ct, rng.normal(-1.0, 0.5, K), means, precision_cholesky(covariances, ct))
    (stats,) = e_step_stats(X, [model], sample_weight=w)
    lse, log_resp = log_prob_resp(X, model)
    direct = w @ xlogy(np.exp(log_resp), np.exp(log_resp)).sum(axis=1)  # 0 log 0 = 0 (-inf where below e^-600)
    assert bayesian.sum_resp_log_resp(stats, model) == pytest.approx(direct, rel=1e-10, abs=1e-8)
    # and unweighted, on a sub-block
    (stats,) = e_step_stats(X[:200], [model])
    lse, log_resp = log_prob_resp(X[:200], model)
    direct = xlogy(np.exp(log_resp), np.exp(log_resp)).sum()
    assert bayesian.sum_resp_log_resp(stats, model) == pytest.approx(direct, rel=1e-10, abs=1e-8)


# ------------------------------------------------------------------ scikit-learn equivalence
def _assert_fitted_equal(ours, sk, rtol=1e-8, same_n_iter=True):
    for name in FITTED:
        a, b = np.asarray(getattr(ours, name), float), np.asarray(getattr(sk, name), float)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-12 * max(1.0, np.abs(b).max()), err_msg=name)
    np.testing.assert_allclose(
        np.ravel(ours.weight_concentration_), np.ravel(sk.weight_concentration_), rtol=rtol, err_msg="weight_concentration_"
    )
    for name in ("weight_concentration_prior_", "mean_precision_prior_", "degrees_of_freedom_prior_"):
        assert getattr(ours, name) == pytest.approx(getattr(sk, name), rel=1e-12), name
    assert not same_n_iter or (ours.n_iter_ == sk.n_iter_ and ours.converged_ == sk.converged_)


@pytest.mark.parametrize("pt", PRIOR_TYPES)
@pytest.mark.parametrize("ct", TYPES)
def test_matches_sklearn_from_its_kmeans_partition(ct, pt, sklearn_kmeans_order):
    X = make_blobs(n=2400, means=BLOB_MEANS_3D)
    sklearn_kmeans_order(X, 3, seed=0)
    kw = dict(covariance_type=ct, weight_concentration_prior_type=pt, tol=1e-6, max_iter=300, random_state=0)
    sk = SKBayesianGaussianMixture(n_components=3, **kw).fit(X)
    ours = BayesianGaussianMixture(3, **kw).fit(X)
    assert ours.converged_ and sk.n_iter_ > 2
    _assert_fitted_equal(ours, sk)
    assert ours.lower_bound_ == pytest.approx(float(np.ravel(sk.lower_bound_)[0]), rel=1e-10)
    np.testing.assert_allclose(ours.lower_bounds_, np.ravel(sk.lower_bounds_), rtol=1e-10)
    np.testing.assert_allclose(ours.score_samples(X), sk.score_samples(X), rtol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), atol=1e-9)
    np.testing.assert_array_equal(ours.predict(X), sk.predict(X))
    assert ours.score(X) == pytest.approx(sk.score(X), rel=1e-10)


@pytest.mark.parametrize("pt", PRIOR_TYPES)
@pytest.mark.parametrize("ct", ("tied", "diag", "spherical"))
def test_matches_sklearn_over_many_iterations_from_a_shared_start(ct, pt, monkeypatch):
    """Overlapping clusters (30-120 iterations): both start from scikit-learn's own k-means partition.

    The k-means partitions of the two libraries differ by a point or so here,
    so ours is given scikit-learn's: the hard assignment to its cluster centres.
    """
    X = make_blobs(n=3000, means=((0.0, 0.0, 0.0), (2.5, 0.0, 1.0), (0.0, 2.5, -1.0)))
    centres = KMeans(n_clusters=3, n_init=1, random_state=np.random.RandomState(0)).fit(X).cluster_centers_

    def shared(blocks, Xd, specs, init_params, seeds):
        return [(hard_stats(X, centres, ct), centres) for _, ct in specs]

    monkeypatch.setattr(bayesian, "initial_statistics_many", shared)
    kw = dict(covariance_type=ct, weight_concentration_prior_type=pt, tol=1e-8, max_iter=1000, random_state=0)
    sk = SKBayesianGaussianMixture(n_components=3, **kw).fit(X)
    ours = BayesianGaussianMixture(3, **kw).fit(X)
    assert sk.n_iter_ > 30
    _assert_fitted_equal(ours, sk, rtol=1e-10)
    np.testing.assert_allclose(ours.lower_bounds_, np.ravel(sk.lower_bounds_), rtol=1e-12)


@pytest.mark.parametrize("ct", TYPES)
def test_initialisation_matches_sklearn(ct, sklearn_kmeans_order):
    X = make_blobs(n=1500, means=BLOB_MEANS_3D, seed=4)
    sklearn_kmeans_order(X, 3, seed=2)
    kw = dict(covariance_type=ct, max_iter=0, random_state=2, mean_precision_prior=0.5, degrees_of_freedom_prior=4.5)
    sk = SKBayesianGaussianMixture(n_components=3, **kw).fit(X)
    ours = BayesianGaussianMixture(3, **kw).fit(X)
    _assert_fitted_equal(ours, sk, rtol=1e-10)
    assert ours.lower_bound_ == -np.inf and ours.lower_bounds_ == [] and not ours.converged_


def test_user_priors_match_sklearn(sklearn_kmeans_order):
    X = make_blobs(n=1500, means=BLOB_MEANS_3D, seed=5)
    sklearn_kmeans_order(X, 3, seed=1)
    kw = dict(
        covariance_type="full",
        weight_concentration_prior=0.3,
        mean_precision_prior=2.0,
        mean_prior=np.array([1.0, -1.0, 0.5]),
        degrees_of_freedom_prior=5.0,
        covariance_prior=np.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.1], [0.0, 0.1, 0.5]]),
        tol=1e-6,
        random_state=1,
    )
    sk = SKBayesianGaussianMixture(n_components=3, **kw).fit(X)
    ours = BayesianGaussianMixture(3, **kw).fit(X)
    _assert_fitted_equal(ours, sk)
    assert ours.lower_bound_ == pytest.approx(sk.lower_bound_, rel=1e-10)


def test_dirichlet_process_switches_off_extra_components():
    X = make_blobs(n=2400)
    kw = dict(n_components=8, random_state=2, max_iter=500)
    sk = SKBayesianGaussianMixture(**kw).fit(X)
    ours = BayesianGaussianMixture(**kw).fit(X)
    for gm in (sk, ours):
        w = np.sort(gm.weights_)[::-1]
        assert np.all(w[:3] > 0.3) and np.all(w[3:] < 1e-3)
    np.testing.assert_allclose(np.sort(ours.means_[ours.weights_ > 0.3], axis=0),
                               np.sort(sk.means_[sk.weights_ > 0.3], axis=0), atol=1e-3)  # fmt: skip
    counts = np.sort(np.bincount(ours.predict(X), minlength=8))
    assert np.all(counts[:5] == 0) and np.all(counts[5:] > 780)


# ------------------------------------------------------------------ weights, chunks, inputs
@pytest.mark.parametrize("ct", TYPES)
def test_integer_sample_weight_equals_repeated_rows(ct, sorted_init):
    X = make_blobs(n=900)
    w = np.random.default_rng(0).integers(0, 4, len(X))
    kw = dict(covariance_type=ct, tol=1e-6, random_state=0)
    a = BayesianGaussianMixture(3, **kw).fit(X, sample_weight=w)
    b = BayesianGaussianMixture(3, **kw).fit(np.repeat(X, w, axis=0))
    c = BayesianGaussianMixture(3, **kw).fit(
        da.from_array(X, chunks=(300, 2)), sample_weight=da.from_array(w, chunks=450)
    )
    assert a.n_iter_ == b.n_iter_ == c.n_iter_
    _assert_fitted_equal(a, b, rtol=1e-9)
    _assert_fitted_equal(c, a, rtol=1e-9)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=1e-10)


@pytest.mark.parametrize("ct", TYPES)
def test_far_from_origin_covariances_unchanged(ct, sorted_init):
    X = make_blobs(n=3000)
    kw = dict(covariance_type=ct, max_iter=20, tol=0.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = BayesianGaussianMixture(3, **kw).fit(X)
        b = BayesianGaussianMixture(3, **kw).fit(X + 1e6)
    for name in ("covariances_", "covariance_prior_"):
        x, y = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        assert np.abs(y - x).max() / np.abs(x).max() < 1e-6, name
    np.testing.assert_allclose(b.means_ - 1e6, a.means_, atol=1e-6)
    np.testing.assert_allclose(b.weights_, a.weights_, atol=1e-9)


@pytest.mark.parametrize("max_iter, shift", [(2, 1e6), (0, 1e6), (2, 1e4)])
def test_a_warm_start_far_from_the_data_keeps_every_digit(max_iter, shift):
    """Data moved 1e6 away from a fitted model: the priors (the data's covariance) came from moments
    centred on the old means (3.3e-5 off), and so did the first covariances; both now match. With
    max_iter=0 the priors come from a pass of their own, centred again too (it was 2e-4 off). At 1e4
    (recentred, MAX_CENTRING_LOSS), the lower bounds are scikit-learn's too: their sum r log r comes
    from the moments centred on the model's own means (a mutation review); at 1e6 the first is 9e-5
    off (-21681.2 against -21683.2: a difference of two terms of about 3e15 loses its last digits)."""
    rng = np.random.default_rng(3)
    Z = np.concatenate([rng.normal(size=(2000, 2)) @ rng.normal(size=(2, 2)) * 0.5 + m
                        for m in ([0, 0], [8, 3.0], [-5, 6])])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        base = SKBayesianGaussianMixture(n_components=3, max_iter=2, random_state=0).fit(Z)
        fitted = {k: v for k, v in vars(base).items() if k.endswith("_") and not k.startswith("_")}
        sk = SKBayesianGaussianMixture(n_components=3, max_iter=max_iter, warm_start=True)
        ours = BayesianGaussianMixture(n_components=3, max_iter=max_iter, warm_start=True)
        for m in (sk, ours):
            for k, v in fitted.items():
                setattr(m, k, np.copy(v))
        sk.fit(Z + shift)
        ours.fit(Z + shift)
    np.testing.assert_allclose(ours.covariance_prior_, np.cov((Z + shift).T), rtol=1e-12)
    _assert_fitted_equal(ours, sk, rtol=1e-9)
    if shift < 1e5:
        np.testing.assert_allclose(ours.lower_bounds_, np.ravel(sk.lower_bounds_)[-2:], rtol=1e-7)


def test_results_do_not_depend_on_chunking():
    X = make_blobs(n=4000)
    fits = [
        BayesianGaussianMixture(3, random_state=7, tol=1e-6, init_params="random_from_data").fit(
            da.from_array(X, chunks=(chunks, 2))
        )
        for chunks in (500, 1333, 4000, 500)
    ]
    for f in fits[1:3]:
        _assert_fitted_equal(f, fits[0], rtol=1e-8)
        np.testing.assert_allclose(f.lower_bounds_, fits[0].lower_bounds_, rtol=1e-10)
    assert fits[3].means_.tobytes() == fits[0].means_.tobytes()  # same chunks and seed: same bytes


def test_dask_and_zarr_inputs_give_lazy_outputs(tmp_path):
    X = make_blobs(n=1200)
    z = zarr.create_array(tmp_path / "x.zarr", shape=X.shape, chunks=(300, 2), dtype="f8", compressors=None)
    z[:] = X
    dX = da.from_array(X, chunks=(400, 2))
    kw = dict(random_state=0, init_params="random_from_data")  # an initialisation independent of the chunks
    eager = BayesianGaussianMixture(3, **kw).fit(X)
    for data in (dX, z, str(tmp_path / "x.zarr")):
        gm = BayesianGaussianMixture(3, **kw).fit(data)
        np.testing.assert_allclose(gm.means_, eager.means_, rtol=1e-8)
        for method in ("predict", "predict_proba", "score_samples"):
            lazy = getattr(gm, method)(data)
            assert isinstance(lazy, da.Array)
            np.testing.assert_allclose(lazy.compute(), getattr(eager, method)(X), rtol=1e-8, atol=1e-12)
        assert isinstance(gm.score(data), float)
    assert isinstance(eager.predict(X), np.ndarray)


# ------------------------------------------------------------------ passes, restarts, warm start
class _ReadCounter:
    """Counts block reads of a dask array (threaded scheduler: one process)."""

    def __init__(self, X, chunks):
        self.reads = 0
        self.array = da.from_array(X, chunks=(chunks, X.shape[1])).map_blocks(self._read, dtype=X.dtype)

    def _read(self, block):
        self.reads += block.size > 0  # map_blocks also calls this once on an empty meta array
        return block


def test_one_pass_per_iteration_and_none_for_the_priors():
    X = make_blobs(n=2000)
    init_only, five = _ReadCounter(X, 500), _ReadCounter(X, 500)
    kw = dict(random_state=0, init_params="random_from_data", tol=0.0)
    BayesianGaussianMixture(3, max_iter=0, **kw).fit(init_only.array)
    with pytest.warns(ConvergenceWarning):
        gm = BayesianGaussianMixture(3, max_iter=5, **kw).fit(five.array)
    assert five.reads - init_only.reads == 5 * 4
    warm = _ReadCounter(X, 500)
    with pytest.warns(ConvergenceWarning):
        gm.set_params(warm_start=True, max_iter=3).fit(warm.array)  # priors from the first iteration's pass
    assert warm.reads == 3 * 4


def test_warm_start_continues():
    X = make_blobs(n=1500)
    kw = dict(random_state=0, tol=0.0)
    four = BayesianGaussianMixture(3, max_iter=4, **kw)
    warm = BayesianGaussianMixture(3, max_iter=2, warm_start=True, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        four.fit(X)
        warm.fit(X).fit(X)
    _assert_fitted_equal(warm, four, rtol=1e-10, same_n_iter=False)
    assert warm.n_iter_ == 2
    np.testing.assert_allclose(warm.lower_bounds_, four.lower_bounds_[2:], rtol=1e-12)


@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.parametrize("fitted, changed", [("dirichlet_distribution", "dirichlet_process"),
                                             ("dirichlet_process", "dirichlet_distribution")])
def test_changed_weight_prior_type_is_a_value_error(K, fitted, changed):
    """A warm start, or a prediction, after weight_concentration_prior_type changed read the fitted
    weight concentration as the other type's: numpy's errors, or at K=2 from a Dirichlet
    distribution to a process, its two concentrations silently taken for the process's (a, b)."""
    X = make_blobs(n=600)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = BayesianGaussianMixture(K, weight_concentration_prior_type=fitted, max_iter=5, random_state=0).fit(X)
    labels, means = gm.predict(X), gm.means_.copy()
    gm.set_params(warm_start=True, weight_concentration_prior_type=changed)
    with pytest.raises(ValueError, match=f"that of weight_concentration_prior_type='{fitted}'.*set warm_start=False"):
        gm.fit(X)
    np.testing.assert_array_equal(gm.means_, means)
    with pytest.raises(ValueError, match=f"but the estimator has '{changed}'. Set back .* or refit"):
        gm.predict(X)
    gm.set_params(weight_concentration_prior_type=fitted)
    np.testing.assert_array_equal(gm.predict(X), labels)


def test_restarts_convergence_warning_and_fit_predict(caplog):
    X = make_blobs(n=1500)
    with pytest.warns(ConvergenceWarning):
        BayesianGaussianMixture(3, max_iter=1, random_state=0).fit(X)
    # restarts are kept: on this problem the first random start is trapped and a later one is not
    # (on make_blobs every restart had reached one optimum, so a fit keeping only its first passed)
    Y, *_ = seed_like_problem(4, n_components=4, n_samples=2000)
    one = BayesianGaussianMixture(4, init_params="random", random_state=0).fit(Y)
    three = BayesianGaussianMixture(4, init_params="random", n_init=3, random_state=0).fit(Y)
    ref = SKBayesianGaussianMixture(n_components=4, random_state=0).fit(Y)  # scikit-learn's k-means start
    assert one.score(Y) < ref.score(Y) - 1.0
    assert three.score(Y) == pytest.approx(ref.score(Y), abs=1e-4) and three.lower_bound_ > one.lower_bound_
    with caplog.at_level(logging.INFO, logger="dask_gmm"):
        gm = BayesianGaussianMixture(3, random_state=3, verbose=1, verbose_interval=1)
        labels = gm.fit_predict(X)
    ours = [r for r in caplog.records if r.name == "dask_gmm.mixture" and "BayesianGaussianMixture" in r.getMessage()]
    assert [getattr(r, "event", "iteration") for r in ours] == ["start"] + ["iteration"] * gm.n_iter_ + ["end"]
    assert f"converged after {gm.n_iter_} iterations: lower bound {gm.lower_bound_:.6f}" in ours[-1].getMessage()
    np.testing.assert_array_equal(labels, clone(gm).fit(X).predict(X))
    S, y = gm.sample(30_000)  # each component's rows about its mean, as many as its weight says
    n = np.bincount(y, minlength=3)
    assert np.all(np.abs(n / len(y) - gm.weights_) < 5 * np.sqrt(gm.weights_ * (1 - gm.weights_) / len(y)))
    for k in range(3):
        se = np.sqrt(np.diag(gm.covariances_[k]) / n[k])
        assert np.all(np.abs(S[y == k].mean(0) - gm.means_[k]) < 5 * se)


# ------------------------------------------------------------------ API and errors
def test_sklearn_estimator_protocol():
    gm = BayesianGaussianMixture(3, covariance_type="diag", random_state=1)
    params = gm.get_params()
    assert params["weight_concentration_prior_type"] == "dirichlet_process" and params["split_every"] == 8
    assert params["weight_concentration_prior"] is None and params["tol"] == 1e-3 and params["max_iter"] == 100
    assert set(params) == set(SKBayesianGaussianMixture().get_params()) | {"split_every"}
    assert clone(gm).set_params(n_components=2).n_components == 2 and gm.n_components == 3
    with pytest.raises(NotFittedError):
        gm.predict(np.zeros((3, 2)))
    with pytest.raises(TypeError):
        BayesianGaussianMixture(3, "full")  # keyword-only after the first


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_components=0), "n_components"),
        (dict(covariance_type="blah"), "covariance_type"),
        (dict(tol=-1.0), "tol"),
        (dict(max_iter=-1), "max_iter"),
        (dict(n_init=0), "n_init"),
        (dict(init_params="nope"), "init_params"),
        (dict(weight_concentration_prior_type="nope"), "weight_concentration_prior_type"),
        (dict(weight_concentration_prior=0.0), "weight_concentration_prior"),
        (dict(weight_concentration_prior=np.inf), "'weight_concentration_prior' .* a finite number"),
        (dict(mean_precision_prior=np.inf), "'mean_precision_prior' .* a finite number"),
        (dict(degrees_of_freedom_prior=np.inf), "'degrees_of_freedom_prior' .* a finite number"),
        (dict(mean_precision_prior=-1.0), "mean_precision_prior"),
        (dict(degrees_of_freedom_prior=0.5), "greater than 1"),
        (dict(mean_prior=np.zeros(3)), "'mean_prior' should have the shape of \\(2,\\)"),
        (dict(covariance_prior=np.eye(3)), "shape"),
        (dict(covariance_prior=-np.eye(2)), "positive-definite"),
        (dict(covariance_type="diag", covariance_prior=np.array([1.0, -1.0])), "positive"),
        (dict(covariance_type="spherical", covariance_prior=-2.0), "positive"),
        (dict(covariance_type="spherical", covariance_prior=np.inf), "finite positive"),
        (dict(covariance_type="spherical", covariance_prior=[1.0, 2.0]), r"finite positive number, got \[1.0, 2.0\]"),
        (dict(covariance_type="spherical", covariance_prior=[True]), r"finite positive number, got \[True\]"),
        (dict(mean_prior=[np.nan, 0.0]), "'mean_prior' should hold finite real numbers"),
        # complex priors were cast to their real part (a ComplexWarning only), others gave NumPy's messages
        (dict(covariance_prior=np.eye(2) * (1 + 5j)), "'full covariance_prior' should hold finite real numbers"),
        (dict(covariance_type="diag", covariance_prior=[2 + 3j, 1]), "'diag covariance_prior' .* complex"),
        (dict(covariance_prior="eye"), "'full covariance_prior' should hold finite real numbers"),
        (dict(covariance_type="tied", covariance_prior={"a": 1}), "'tied covariance_prior' should hold finite"),
        (dict(covariance_prior=[[1.0, 0.0], [0.0]]), "'full covariance_prior' should be an array of finite"),
        (dict(covariance_prior=[[1.0, np.nan], [np.nan, 1.0]]), "'full covariance_prior' .* NaN"),
        (dict(mean_prior=[[0.0], [0.0, 1.0]]), "'mean_prior' should be an array of finite"),
        # huge priors: the message blamed the data only (and numpy warned of the overflow first)
        (dict(mean_prior=[1e308, 0.0]), "overflowed: .* mean_prior or mean_precision_prior"),
        (dict(mean_precision_prior=1e308), "overflowed: .* mean_prior or mean_precision_prior"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BayesianGaussianMixture(**(dict(n_components=2) | kwargs)).fit(make_blobs(n=300))


@pytest.mark.parametrize("kwargs, match", [
    (dict(tol=10**400), "'tol' parameter .* must be a finite number >= 0.0; got 10000000000000000000... \\(401 char"),
    (dict(reg_covar=-10**400), "'reg_covar' parameter"),
    (dict(n_init=10**400), r"'n_init' parameter .* must be an integer >= 1 and at most 2\*\*62; got 1000"),  # OverflowError
    (dict(n_components=10**400), r"'n_components' parameter .* at most 2\*\*62; got 10000000000000000000\.\.\. \(401"),
    (dict(mean_precision_prior=10**400), "'mean_precision_prior' parameter"),
    (dict(weight_concentration_prior=10**400), "'weight_concentration_prior' parameter"),
    (dict(degrees_of_freedom_prior=10**400), "'degrees_of_freedom_prior' parameter"),
    (dict(covariance_type="spherical", covariance_prior=10**400), "'spherical covariance_prior' should be a finite"),
    (dict(covariance_type="diag", covariance_prior=[10**400, 1]), "'diag covariance_prior' .* infinity"),
    (dict(mean_prior=[-10**400, 0]), "'mean_prior' .* infinity"),
])
def test_an_int_too_large_for_a_float_is_refused_by_name(kwargs, match):
    """A Python int beyond float64's range (or, for a count, beyond 2**62) had ended in a bare OverflowError naming
    no parameter (scikit-learn's too); it is a ValueError naming it, as infinity is (reviews)."""
    with pytest.raises(ValueError, match=match):
        BayesianGaussianMixture(**(dict(n_components=2) | kwargs)).fit(make_blobs(n=300))


@pytest.mark.parametrize("kwargs", [
    dict(weight_concentration_prior_type="nope"), dict(weight_concentration_prior=0.0),
    dict(weight_concentration_prior=np.inf), dict(mean_precision_prior=-1.0), dict(mean_precision_prior="1"),
    dict(degrees_of_freedom_prior=0.5),  # below n_features - 1: a plain ValueError in both
    # a number out of range, or where an array is wanted: were plain ValueErrors here (a statistician's review)
    dict(covariance_type="spherical", covariance_prior=0.0), dict(covariance_type="spherical", covariance_prior=-1.0),
    dict(covariance_type="spherical", covariance_prior=np.inf), dict(covariance_type="spherical", covariance_prior="1"),
    dict(mean_prior=5.0),
])
def test_bad_priors_raise_scikit_learns_class_of_error(kwargs):
    """scikit-learn's InvalidParameterError (a ValueError and a TypeError) where it raises it, else a ValueError."""
    X = make_blobs(n=300)
    with pytest.raises(ValueError) as theirs:
        SKBayesianGaussianMixture(**(dict(n_components=2) | kwargs)).fit(X)
    with pytest.raises(ValueError) as ours:
        BayesianGaussianMixture(**(dict(n_components=2) | kwargs)).fit(X)
    hyper = isinstance(theirs.value, InvalidParameterError)
    assert hyper is ("degrees_of_freedom_prior" not in kwargs)
    assert isinstance(ours.value, InvalidParameterError) is hyper


@pytest.mark.parametrize("scalar", [2.0, np.array(2.0), np.float32(2.0), True])
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag"])
def test_a_scalar_as_a_matrix_or_vector_prior_is_scikit_learns_type_error(covariance_type, scalar):
    """scikit-learn raises a TypeError (or its InvalidParameterError) for a scalar where its covariance
    or mean prior is an array; dask_gmm's InvalidParameterError is both, saying which shape is wanted."""
    X = make_blobs(n=300)
    with pytest.raises(TypeError):
        SKBayesianGaussianMixture(n_components=2, covariance_type=covariance_type, covariance_prior=scalar).fit(X)
    shape = r"\(2,\)" if covariance_type == "diag" else r"\(2, 2\)"
    with pytest.raises(InvalidParameterError, match=rf"'{covariance_type} covariance_prior' should be an array of "
                                                    rf"shape {shape}, got the scalar"):
        BayesianGaussianMixture(n_components=2, covariance_type=covariance_type, covariance_prior=scalar).fit(X)
    with pytest.raises(TypeError):
        SKBayesianGaussianMixture(n_components=2, mean_prior=scalar).fit(X)
    with pytest.raises(InvalidParameterError, match=r"'mean_prior' should be an array of shape \(2,\), got the scalar"):
        BayesianGaussianMixture(n_components=2, mean_prior=scalar).fit(X)


def test_priors_given_as_other_real_numbers_equal_floats():
    """A Fraction (or an int) prior is the float it stands for (a Fraction reached scipy's digamma)."""
    from fractions import Fraction

    X = make_blobs(n=300)
    kw = dict(n_components=2, random_state=0, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = BayesianGaussianMixture(**kw, weight_concentration_prior=Fraction(1, 2), mean_precision_prior=Fraction(1),
                                    degrees_of_freedom_prior=3).fit(X)
        b = BayesianGaussianMixture(**kw, weight_concentration_prior=0.5, mean_precision_prior=1.0,
                                    degrees_of_freedom_prior=3.0).fit(X)
    np.testing.assert_array_equal(a.weights_, b.weights_)
    np.testing.assert_array_equal(a.means_, b.means_)
    # a spherical prior as an array or list of one number, which scikit-learn accepts, is its number
    kw |= dict(covariance_type="spherical")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        b = BayesianGaussianMixture(**kw, covariance_prior=1.5).fit(X)
        for prior in (np.array(1.5), np.array([1.5]), np.array([[1.5]]), [1.5], (np.float32(1.5),)):
            a = BayesianGaussianMixture(**kw, covariance_prior=prior).fit(X)
            assert a.covariance_prior_ == b.covariance_prior_ == 1.5
            np.testing.assert_array_equal(a.covariances_, b.covariances_)


def test_bad_input_errors():
    X = make_blobs(n=300)
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        BayesianGaussianMixture(5).fit(X[:3])
    with pytest.raises(ValueError, match="non-negative"):
        BayesianGaussianMixture(2).fit(X, sample_weight=-np.ones(len(X)))
    with pytest.raises(ValueError, match="needs a total above 1"):
        BayesianGaussianMixture(2, init_params="random").fit(X, sample_weight=np.full(len(X), 1e-3))
    # weights normalised to sum to 1, whose sum rounds to just above 1 (2000 rows: 1 + 4e-16), are refused
    # alike: they made a default covariance prior of ~1e16
    Y = np.random.default_rng(0).normal(size=(2000, 2))
    for n in (7, 2000):
        w = np.full(n, 1 / n)
        with pytest.raises(ValueError, match="needs a total above 1"):
            BayesianGaussianMixture(3, random_state=0).fit(Y[:n], sample_weight=w)
    for init_params, prior in (("kmeans", None), ("random", None), ("random", np.eye(2))):
        with pytest.raises(ValueError, match="sample_weight sums to 0"):
            BayesianGaussianMixture(2, init_params=init_params, covariance_prior=prior, random_state=0).fit(
                X, sample_weight=np.zeros(len(X))
            )
    X[123, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        BayesianGaussianMixture(2).fit(X)


def test_an_empty_component_on_a_singular_prior_says_which_prior_helps():
    """Two distinct rows, three components: the start draws one mean twice, a component is left with
    no rows and its covariance is the default covariance_prior, the data's, singular here (scikit-learn,
    which starts each component on one row, fits). The error had advised only a larger reg_covar,
    which fails at 1e-2 too (a review); it names the component and the prior, and that prior helps."""
    from dask_gmm._covariance import empty_on_singular_prior

    X = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    kw = dict(n_components=3, init_params="random_from_data", random_state=0)
    for reg_covar in (1e-6, 1e-2):
        with pytest.raises(ValueError, match=r"increase reg_covar \(currently [0-9.e-]+\), or scale the input data\. Component 2 holds almost "
                                             r"no rows \(a weight of 0: .* covariance_prior, which is singular \(by "
                                             r"default the data's covariance.*Pass a positive definite covariance_prior"):
            BayesianGaussianMixture(reg_covar=reg_covar, **kw).fit(X)
    a = np.random.default_rng(0).normal(size=(2000, 1))  # collinear, reg_covar 0: components of ~1000 rows fail
    with pytest.raises(ValueError, match=r"increase reg_covar \(currently 0\.0\), or scale the input data\.$"):  # not blamed on the prior
        BayesianGaussianMixture(2, reg_covar=0.0, random_state=0).fit(np.c_[a, 2 * a])
    fitted = BayesianGaussianMixture(covariance_prior=np.cov(X.T) + 0.1 * np.eye(2), **kw).fit(X)
    assert fitted.converged_ and np.isfinite(fitted.lower_bound_) and fitted.weights_.sum() == pytest.approx(1.0)
    assert [empty_on_singular_prior(p, ct) for p, ct in ((np.cov(X.T), "full"), (np.cov(X.T), "tied"), (np.array([0.3, 0.0]), "diag"),
                                                (np.array([0.3, 0.2]), "diag"), (0.0, "spherical"))] == [
        True, False, True, False, True]
