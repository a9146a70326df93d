"""Covariance-type formulas against NumPy/SciPy one-liners."""

import re

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from dask_gmm import _covariance as cov

TYPES = cov.COVARIANCE_TYPES


def random_params(ct, K=3, d=4, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((K, d, d))
    full = np.einsum("kji,kjl->kil", A, A) + 0.5 * np.eye(d)
    covs = {
        "full": full,
        "tied": full[0],
        "diag": np.stack([np.diag(c) for c in full]),
        "spherical": np.array([np.trace(c) / d for c in full]),
    }[ct]
    return rng.normal(size=(K, d)), covs


@pytest.mark.parametrize("ct", TYPES)
def test_log_prob_matches_scipy(ct):
    means, covs = random_params(ct)
    X = np.random.default_rng(1).normal(size=(50, 4)) * 3
    pc = cov.precision_cholesky(covs, ct)
    full = cov.as_full_covariances(covs, ct, 3, 4)
    expected = np.column_stack([multivariate_normal(means[k], full[k]).logpdf(X) for k in range(3)])
    np.testing.assert_allclose(cov.log_gaussian_prob(X, means, pc, ct), expected, rtol=1e-10)


@pytest.mark.parametrize("ct", TYPES)
def test_precision_cholesky_is_cholesky_of_inverse(ct):
    _, covs = random_params(ct)
    pc = cov.precision_cholesky(covs, ct)
    full_pc = cov.as_full_covariances(cov.precisions_from_precision_cholesky(pc, ct), ct, 3, 4)
    full = cov.as_full_covariances(covs, ct, 3, 4)
    np.testing.assert_allclose(full_pc, np.linalg.inv(full), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cov.covariances_from_precision_cholesky(pc, ct), covs, rtol=1e-9)
    np.testing.assert_allclose(
        cov.precision_cholesky_from_precisions(cov.precisions_from_precision_cholesky(pc, ct), ct), pc, rtol=1e-9
    )


@pytest.mark.parametrize("ct", TYPES)
def test_mahalanobis_sum_is_the_sum_over_rows(ct):
    """sum_nk r_nk ||(x_n - mu_k) P_k||^2 from the centred second moments (the Bayesian lower bound's
    term), against that sum taken row by row."""
    K, d = 3, 4
    means, covs = random_params(ct, K, d)
    pc = cov.precision_cholesky(covs, ct)
    rng = np.random.default_rng(3)
    X, r = rng.normal(size=(40, d)) * 2, rng.dirichlet(np.ones(K), size=40)
    full_pc = pc if ct == "full" else cov.as_full_covariances(pc, ct, K, d)  # diagonal factors as matrices
    direct = sum(r[n, k] * np.sum(((X[n] - means[k]) @ full_pc[k]) ** 2)
                 for n in range(40) for k in range(K))
    outer = np.stack([(r[:, k, None] * (X - means[k])).T @ (X - means[k]) for k in range(K)])  # (K, d, d)
    s2 = {"full": outer, "tied": outer.sum(axis=0)}.get(ct, np.stack([np.diag(o) for o in outer]))
    np.testing.assert_allclose(cov.mahalanobis_sum(s2, pc, ct), direct, rtol=1e-12)


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_singular_covariance_advises_reg_covar(ct):
    _, covs = random_params(ct)
    covs = covs * 0.0
    with pytest.raises(ValueError, match="reg_covar"):
        cov.precision_cholesky(covs, ct, reg_covar=0.0)


@pytest.mark.parametrize("ct", TYPES)
def test_m_step_from_centred_moments_equals_direct_formula(ct):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 3)) + 1e6  # far from the origin
    resp = rng.dirichlet(np.ones(2), size=400)
    ref = np.array([[1e6, 1e6, 1e6], [1e6 + 1, 1e6, 1e6 - 1]])  # any reference near the data
    s1c, s2 = cov.centred_moments(X, resp, ref, ct)
    w, m, c, _ = cov.m_step(resp.sum(0), s1c, s2, ref, 0.0, ct)
    nk = resp.sum(0)
    means = (resp.T @ (X - 1e6)) / nk[:, None] + 1e6
    full = np.stack([((X - means[k]) * resp[:, [k]]).T @ (X - means[k]) / nk[k] for k in range(2)])
    expected = {
        "full": full,
        "tied": np.einsum("k,kij->ij", nk, full) / nk.sum(),
        "diag": np.stack([np.diag(f) for f in full]),
        "spherical": np.array([np.trace(f) / 3 for f in full]),
    }[ct]
    np.testing.assert_allclose(m, means, rtol=1e-14)
    np.testing.assert_allclose(c, expected, rtol=1e-9)
    np.testing.assert_allclose(w, nk / nk.sum(), rtol=1e-12)


def test_tied_correction_is_the_components_corrections_summed():
    """The tied M-step's correction of moments centred elsewhere, one product of (K, d) arrays, is
    the full one's per component summed, floors of emptied components (far from the origin) included."""
    rng = np.random.default_rng(6)
    K, d = 7, 5
    nk, delta, ref = rng.uniform(0.5, 50, K), rng.normal(size=(K, d)), rng.normal(size=(K, d)) + 1e3
    floor = np.where(np.arange(K) % 3 == 0, 10 * np.finfo(float).eps, 0.0)
    want = sum((nk[k] + floor[k]) * np.outer(delta[k], delta[k])
               + floor[k] * (np.outer(ref[k], delta[k]) + np.outer(delta[k], ref[k])) for k in range(K))
    np.testing.assert_allclose(cov._correction_tied(nk, floor, delta, ref), want, rtol=1e-13, atol=1e-13 * np.abs(want).max())


def test_full_correction_is_each_components_outer_products():
    """The full M-step's correction, one product of (K, d, 2) by (K, 2, d) arrays, against its terms
    as NumPy outer products, per component."""
    rng = np.random.default_rng(7)
    K, d = 6, 5
    nk, delta, ref = rng.uniform(0.5, 50, K), rng.normal(size=(K, d)), rng.normal(size=(K, d)) + 1e3
    floor = np.where(np.arange(K) % 2 == 0, 0.25, 0.0)  # a floor far above 10 eps: its terms show
    want = np.stack([(nk[k] + floor[k]) * np.outer(delta[k], delta[k])
                     + floor[k] * (np.outer(ref[k], delta[k]) + np.outer(delta[k], ref[k])) for k in range(K)])
    np.testing.assert_allclose(cov._correction_full(nk, floor, delta, ref), want, rtol=1e-13, atol=1e-13 * np.abs(want).max())


@pytest.mark.parametrize("ct", TYPES)
def test_centring_loss_is_the_move_over_the_narrowest_variance_bound(ct):
    """|move|^2 times trace(Sigma^-1) (>= 1 / lambda_min; full and tied), or over each variance (diag,
    spherical), the largest over the components that moved; inf where one that moved has a covariance
    that is not positive definite, while one that did not move counts 0 whatever its covariance."""
    means, covs = random_params(ct, K=4, d=3, seed=3)
    ref = means.copy()
    ref[1] += [0.5, -1.0, 2.0]
    ref[2] += [1e-3, 0.0, 0.0]
    move2 = ((means - ref) ** 2).sum(axis=1)
    want = {
        "full": lambda: max(move2[k] * np.trace(np.linalg.inv(covs[k])) for k in (1, 2)),
        "tied": lambda: move2.max() * np.trace(np.linalg.inv(covs)),
        "diag": lambda: max(((means[k] - ref[k]) ** 2 / covs[k]).max() for k in (1, 2)),
        "spherical": lambda: max(move2[k] / covs[k] for k in (1, 2)),
    }[ct]()
    np.testing.assert_allclose(cov.centring_loss(means, ref, covs, ct), want, rtol=1e-12)
    assert cov.centring_loss(means, means, covs, ct) == 0.0
    if ct == "full":
        bad = covs.copy()
        bad[0] = -np.eye(3)  # did not move: counts 0
        np.testing.assert_allclose(cov.centring_loss(means, ref, bad, ct), want, rtol=1e-12)
        bad[1] = -np.eye(3)  # moved
        assert cov.centring_loss(means, ref, bad, ct) == np.inf
        bad[1] = np.eye(3)
        bad[1, 0, 0] = np.inf  # not finite (LAPACK's Cholesky takes it, its factor's column 0)
        assert cov.centring_loss(means, ref, bad, ct) == np.inf


def _statistics(ct, X, resp, ref):
    """nk, s1c and s2 of rows ``X`` with responsibilities ``resp``, centred on ``ref``: NumPy one-liners."""
    diff = X[None] - ref[:, None]  # (K, n, d)
    full = np.einsum("nk,kni,knj->kij", resp, diff, diff)
    s2 = {"full": full, "tied": full.sum(0), "diag": np.einsum("kii->ki", full), "spherical": np.einsum("kii->ki", full)}
    return resp.sum(0), np.einsum("nk,kni->ki", resp, diff), s2[ct]


@pytest.mark.parametrize("ct", TYPES)
def test_an_m_step_from_the_centring_checks_estimate_is_the_m_step_alone(ct):
    """The centring check's estimate (covariances and, full and tied, their precisions' Cholesky
    factors, each made twice an iteration before: 2.4 -> 1.2 s of an iteration's M-step at K=128,
    d=500) handed to the M-step gives what the M-step gives from the statistics alone, bit for bit,
    and its errors: a covariance not positive definite, or not finite, is refused by name."""
    rng = np.random.default_rng(8)
    K, d = 3, 4
    X, resp, ref = rng.normal(size=(60, d)) * 2 + 5, rng.dirichlet(np.ones(K), size=60), rng.normal(size=(K, d)) + 5
    stats = _statistics(ct, X, resp, ref)
    est = cov.estimate(*stats, ref, 1e-6, ct, 1.0)
    alone = cov.m_step(*stats, ref, 1e-6, ct, 1.0)
    for got, want in zip(cov.m_step(*stats, ref, 1e-6, ct, 1.0, est), alone):
        np.testing.assert_array_equal(got, want)
    assert cov.centring_loss(est.means, ref, est.covariances, ct, est.factors) == cov.centring_loss(
        est.means, ref, est.covariances, ct) > 0
    if ct in ("full", "tied"):  # the factors the M-step returns, and for full a NumPy one-liner's
        np.testing.assert_array_equal(est.factors[0].reshape(alone[3].shape), alone[3])
        full = est.covariances.reshape(-1, d, d)
        want = np.linalg.inv(np.linalg.cholesky(full)).transpose(0, 2, 1)
        np.testing.assert_allclose(est.factors[0], want, rtol=1e-12, atol=1e-14)
    nk, s1c, s2 = stats
    for bad, message in ((-1e3, "ill-defined empirical covariance"), (np.inf, "overflowed")):
        s2_bad = s2.copy()
        s2_bad.reshape(-1)[0] = bad  # component 0's first variance
        est = cov.estimate(nk, s1c, s2_bad, ref, 1e-6, ct, 1.0)
        for estimated in (None, est):
            with pytest.raises(ValueError, match=message):
                cov.m_step(nk, s1c, s2_bad, ref, 1e-6, ct, 1.0, estimated)
        if ct in ("full", "tied"):
            assert not est.factors[1][0] and np.isnan(est.factors[0][0]).all() and est.factors[1][1:].all()


def test_raw_moments_would_fail_far_from_origin():
    """The reason for centring: the raw formula loses every digit at 1e6 offset (it must, else our test is moot)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(10_000, 2)) + 1e6
    raw = X.T @ X / len(X) - np.outer(X.mean(0), X.mean(0))
    true = np.cov(X.T, bias=True)
    assert np.abs(raw - true).max() / np.abs(true).max() > 1e-6


def test_n_parameters_matches_sklearn_bic_count():
    from sklearn.mixture import GaussianMixture

    X = np.random.default_rng(0).normal(size=(200, 3))
    for ct in TYPES:
        sk = GaussianMixture(2, covariance_type=ct, random_state=0).fit(X)
        n_params = (sk.bic(X) + 2 * sk.score(X) * len(X)) / np.log(len(X))
        assert cov.n_parameters(ct, 2, 3) == round(n_params)


@pytest.mark.parametrize("ct", TYPES)
def test_check_precisions_rejects_bad_shapes_and_non_pd(ct):
    _, covs = random_params(ct)
    prec = cov.precisions_from_precision_cholesky(cov.precision_cholesky(covs, ct), ct)
    cov.check_precisions(prec, ct, 3, 4)
    with pytest.raises(ValueError, match="shape"):
        cov.check_precisions(prec[..., :-1] if prec.ndim > 1 else prec[:-1], ct, 3, 4)
    with pytest.raises(ValueError, match="positive"):
        cov.check_precisions(-prec, ct, 3, 4)
    bad = prec.copy()  # one entry of the last component (of the one matrix when tied) made wrong
    bad[(-1, 0, 1) if ct == "full" else (0, 1) if ct == "tied" else (-1, -1) if ct == "diag" else -1] = -2.0
    said = {"full": "'full precision' should be symmetric, positive-definite, but component 2 of precisions_init is "
                    "not. Pass precision matrices (inverses of covariance matrices), or None to let init_params",
            "tied": "'tied precision' should be symmetric, positive-definite, but precisions_init is not. Pass",
            "diag": "'diag precision' should be positive, but precisions_init holds -2 at index (2, 3). Pass positive "
                    "precisions (inverse variances), or None to let init_params choose them.",
            "spherical": "'spherical precision' should be positive, but precisions_init holds -2 at index (2,)."}[ct]
    with pytest.raises(ValueError, match=re.escape(said)):
        cov.check_precisions(bad, ct, 3, 4)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the k-means start's distances overflow first
@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("init_params", ["kmeans", "random"])
def test_a_row_whose_squares_overflow_is_named_as_such(ct, init_params):
    """Not scipy's 'array must not contain infs or NaNs', nor advice to raise reg_covar."""
    from dask_gmm import GaussianMixture

    X = np.random.default_rng(0).normal(size=(3000, 2))
    X[5] = 1e160
    with pytest.raises(ValueError, match="overflowed: the data .*too large in magnitude.*Rescale"):
        GaussianMixture(2, covariance_type=ct, init_params=init_params, random_state=0).fit(X)
