"""Variational Bayesian Gaussian mixture: scikit-learn's BayesianGaussianMixture over Dask and Zarr data.

The variational E-step is the Gaussian E-step with per-component additive
constants, so each iteration is one pass of :func:`dask_gmm._kernels.e_step_stats`
(every restart evaluated on the same read of each block) tree-reduced by
:class:`dask_gmm._em.Blocks`. Everything after the reduction works on arrays of
size about K·d²:

* the Bayesian M-step: :func:`dask_gmm._covariance.gaussian_parameters` gives scikit-learn's
  ``nk, xk, sk`` and the Dirichlet(-process), Gaussian and Wishart posteriors
  are updated from them (:func:`bayesian_m_step`);
* the lower bound: scikit-learn's needs ``sum_n sum_k r_nk log r_nk``, which
  follows from the reduced statistics without a second pass
  (:func:`sum_resp_log_resp`);
* the data-dependent priors (``mean_prior_``, ``covariance_prior_``) are the
  moments of X, which the statistics of any pass already hold: they come from
  the initialisation's statistics (:func:`data_moments`), or, on a warm start,
  from the first iteration's.

Shapes, with K components and d features: ``degrees_of_freedom`` is (K,), a
scalar for ``tied``; ``weight_concentration`` is a pair of (K,) arrays for the
``dirichlet_process`` prior and one (K,) array for ``dirichlet_distribution``;
covariances and precision Cholesky factors as in :mod:`dask_gmm._covariance`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from numbers import Real
from typing import NamedTuple

import numpy as np
from scipy import linalg
from scipy.special import betaln, digamma, gammaln

from . import _covariance as cov
from . import _kernels, io
from ._compat import InvalidParameterError
from ._em import Blocks, client_get, lockstep, record, recentred
from ._init import as_seed_sequence, initial_statistics_many
from .mixture import MixtureBase, best_run, brief, check_fitted, finite_parameter, is_finite_number


PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")


class Priors(NamedTuple):
    """The resolved priors (scikit-learn's ``*_prior_`` attributes)."""

    weight_concentration: float
    mean_precision: float
    mean: np.ndarray  # (d,)
    degrees_of_freedom: float
    covariance: np.ndarray  # (d, d) full/tied, (d,) diag, float spherical


class Params(NamedTuple):
    """The variational parameters of one run (scikit-learn's ``_get_parameters`` order)."""

    weight_concentration: object  # (K,) array, or a pair of (K,) arrays for the dirichlet process
    mean_precision: np.ndarray  # (K,)
    means: np.ndarray  # (K, d)
    degrees_of_freedom: object  # (K,), float for tied
    covariances: np.ndarray  # shape by covariance type
    precisions_cholesky: np.ndarray  # shape by covariance type


# ------------------------------------------------------------------ weights, by prior type
def _weights_dp(nk, alpha0):
    return (1.0 + nk, alpha0 + np.hstack((np.cumsum(nk[::-1])[-2::-1], 0)))


def _log_weights_dp(wc):
    a, b = wc
    digamma_sum = digamma(a + b)
    return digamma(a) - digamma_sum + np.hstack((0, np.cumsum(digamma(b) - digamma_sum)[:-1]))


def _mixing_weights_dp(wc):
    a, b = wc
    total = a + b
    w = a / total * np.hstack((1, np.cumprod((b / total)[:-1])))
    return w / w.sum()


_WEIGHT_CONCENTRATION = {"dirichlet_process": _weights_dp, "dirichlet_distribution": lambda nk, alpha0: alpha0 + nk}
_EXPECTED_LOG_WEIGHTS = {
    "dirichlet_process": _log_weights_dp,
    "dirichlet_distribution": lambda wc: digamma(wc) - digamma(np.sum(wc)),
}
_MIXING_WEIGHTS = {"dirichlet_process": _mixing_weights_dp, "dirichlet_distribution": lambda wc: wc / np.sum(wc)}
_LOG_NORM_WEIGHT = {
    "dirichlet_process": lambda wc: -np.sum(betaln(wc[0], wc[1])),
    "dirichlet_distribution": lambda wc: gammaln(np.sum(wc)) - np.sum(gammaln(wc)),
}


def mixing_weights(weight_concentration, prior_type):
    """Expected mixing weights (K,) from the weight concentration (scikit-learn's ``weights_``)."""
    return _MIXING_WEIGHTS[prior_type](weight_concentration)


def _check_matrix_prior(prior, covariance_type, n_features):
    prior = _as_prior_array(prior, (n_features, n_features), covariance_type)
    if not (np.allclose(prior, prior.T) and np.all(linalg.eigvalsh(prior) > 0.0)):
        raise ValueError(f"The parameter '{covariance_type} covariance_prior' should be symmetric, positive-definite.")
    return prior


def _check_diag_prior(prior, covariance_type, n_features):
    prior = _as_prior_array(prior, (n_features,), covariance_type)
    if np.any(prior <= 0.0):
        raise ValueError(f"The parameter '{covariance_type} covariance_prior' should be positive.")
    return prior


def _check_spherical_prior(prior, covariance_type, n_features):
    value = prior
    if isinstance(prior, (list, tuple, np.ndarray)) and np.size(prior) == 1:  # [2.0], array(2.0): as scikit-learn
        value = np.ravel(prior)[0]  # takes them, and fits the same as with the number (a bool still refused)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real) or not (0.0 < value and is_finite_number(value)):
        # scikit-learn's parameter checks refuse a number out of range, or not a number, as dask_gmm does
        error = InvalidParameterError if _is_number(prior) or isinstance(prior, str) else ValueError
        raise error(f"The parameter 'spherical covariance_prior' should be a finite positive number, got {brief(prior)}.")
    return float(value)


def _is_number(value):
    """Whether ``value`` is a real number, a bool excepted."""
    return isinstance(value, Real) and not isinstance(value, (bool, np.bool_))


def _is_scalar(value):
    """Whether ``value`` is one number: a real number, a bool, a NumPy scalar or 0-d array."""
    return isinstance(value, (Real, np.generic, np.ndarray)) and np.ndim(value) == 0


def _as_prior_array(prior, shape, covariance_type):
    if _is_scalar(prior):  # scikit-learn's TypeError; InvalidParameterError is one, and a ValueError
        raise InvalidParameterError(f"The parameter '{covariance_type} covariance_prior' should be an array of "
                                    f"shape {shape}, got the scalar {prior!r}.")
    prior = finite_parameter(f"{covariance_type} covariance_prior", prior, "for the covariance of X")
    if prior.shape != shape:
        raise ValueError(
            f"The parameter '{covariance_type} covariance_prior' should have the shape of {shape}, "
            f"but got {prior.shape}"
        )
    return prior


# by the number of dimensions of the type's prior (:func:`dask_gmm._covariance.prior_shape`)
_CHECK_COVARIANCE_PRIOR = {2: _check_matrix_prior, 1: _check_diag_prior, 0: _check_spherical_prior}


# ------------------------------------------------------------------ small-array formulas
def _log_wishart_norm(degrees_of_freedom, log_det_precisions_chol, n_features):
    """log normaliser of the Wishart distribution, one value per component (tied: shape (1,))."""
    dof = degrees_of_freedom
    return -(
        dof * log_det_precisions_chol
        + dof * n_features * 0.5 * math.log(2.0)
        + np.sum(gammaln(0.5 * (dof - np.arange(n_features)[:, None])), 0)
    )


def log_prob_constants(degrees_of_freedom, mean_precision, n_features):
    """Per-component constants the variational E-step adds to the Gaussian log-density.

    ``-d/2 log(nu_k) + 1/2 (log_lambda_k - d / beta_k)`` with
    ``log_lambda_k = d log 2 + sum_j digamma((nu_k - j) / 2)``: scikit-learn's
    ``_estimate_log_prob`` minus its Gaussian log-density at ``precisions_cholesky_``.

    Parameters
    ----------
    degrees_of_freedom : ndarray of shape (K,), or float (tied)
    mean_precision : ndarray of shape (K,)
    n_features : int
    Returns
    -------
    ndarray of shape (K,)
    """
    d = n_features
    dof = np.asarray(degrees_of_freedom, np.float64)
    log_lambda = d * np.log(2.0) + np.sum(digamma(0.5 * (dof - np.arange(d)[:, None])), 0)
    return -0.5 * d * np.log(dof) + 0.5 * (log_lambda - d / mean_precision)


def variational_model(params, covariance_type, prior_type):
    """The :class:`~dask_gmm._kernels.Model` whose Gaussian E-step is the variational E-step.

    Its ``log_weights`` (K,) are ``E[log pi_k]`` plus :func:`log_prob_constants`,
    so ``_kernels.weighted_log_prob`` equals scikit-learn's
    ``_estimate_weighted_log_prob``.

    Parameters
    ----------
    params : Params, a run's variational parameters
    covariance_type : str
    prior_type : str, one of :data:`PRIOR_TYPES`

    Returns
    -------
    dask_gmm._kernels.Model
    """
    d = params.means.shape[1]
    log_weights = _EXPECTED_LOG_WEIGHTS[prior_type](params.weight_concentration) + log_prob_constants(
        params.degrees_of_freedom, params.mean_precision, d
    )
    return _kernels.Model(covariance_type, log_weights, params.means, params.precisions_cholesky)


def bayesian_m_step(stats, ref, priors, *, reg_covar, covariance_type, prior_type, estimated=None):
    """Variational M-step from reduced statistics (scikit-learn's ``_m_step`` / ``_initialize``).

    Parameters
    ----------
    stats : dask_gmm._kernels.SuffStats
        Reduced statistics of the (weighted) responsibilities, centred on ``ref``.
    ref : ndarray of shape (K, d)
    priors : Priors
    reg_covar : float, added to the covariances' diagonals
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    prior_type : {'dirichlet_process', 'dirichlet_distribution'}, the weight concentration prior's
    estimated : dask_gmm._covariance.Estimate or None
        :func:`dask_gmm._covariance.estimate` of ``stats`` (weight unit 1), where made already.

    Returns
    -------
    Params
    """
    ct = covariance_type
    # xk, sk as scikit-learn's _estimate_gaussian_parameters (sk includes reg_covar)
    if estimated is None:
        nk, xk, sk = cov.gaussian_parameters(stats.nk, stats.s1c, stats.s2, ref, reg_covar, ct)
    else:
        nk, xk, sk, _ = estimated
    weight_concentration = _WEIGHT_CONCENTRATION[prior_type](nk, priors.weight_concentration)
    with np.errstate(over="ignore", invalid="ignore"):  # huge priors: inf, refused by name below, no warning
        mean_precision = priors.mean_precision + nk
        means = (priors.mean_precision * priors.mean + nk[:, None] * xk) / mean_precision[:, None]
        dof, covariances = cov.wishart_posterior(nk, xk, sk, priors, mean_precision, ct)
    try:
        pc = cov.precision_cholesky(covariances, ct, reg_covar)
    except ValueError as exc:
        k = int(np.argmin(stats.nk))
        if stats.nk[k] > 1e-8 * stats.nk.sum() or not cov.empty_on_singular_prior(priors.covariance, ct):
            raise  # (a component of many rows: not the prior's doing)
        raise ValueError(
            f"{exc} Component {k} holds almost no rows (a weight of {stats.nk[k]:.3g}: where the data hold fewer "
            "distinct rows than components, starts draw one mean twice), so its covariance is about the "
            "covariance_prior, which is singular (by default the data's covariance: singular where a feature is "
            "constant or a linear combination of others). Pass a positive definite covariance_prior (such as "
            "np.eye(n_features) times the data's variance), or fewer components."
        ) from None
    return Params(weight_concentration, mean_precision, means, dof, covariances, pc)


def sum_resp_log_resp(stats, model):
    """``sum_n w_n sum_k r_nk log r_nk`` from the reduced statistics of an E-step, no second pass.

    With ``log r_nk = wlp_nk - lse_n`` and ``sum_k r_nk = 1``, the sum is
    ``sum_k sum_n w r_nk wlp_nk - sum_n w lse_n``, where
    ``wlp_nk = log_weights_k + log det P_k - d/2 log 2 pi - 1/2 ||(x_n - mu_k) P_k||^2``
    and ``sum_n w r_nk ||(x_n - mu_k) P_k||^2 = tr(P_k^T S2_k P_k)`` because
    ``e_step_stats`` centres S2 on the model's means.

    Parameters
    ----------
    stats : dask_gmm._kernels.SuffStats
        ``e_step_stats`` of ``model`` (``objective`` is ``sum_n w lse_n``).
    model : dask_gmm._kernels.Model
    Returns
    -------
    float
    """
    ct, pc = model.covariance_type, model.precisions_cholesky
    d = stats.s1c.shape[1]
    log_det = cov.log_det_cholesky(pc, ct, d)
    linear = float(stats.nk @ (model.log_weights + log_det - 0.5 * d * cov.LOG_2PI))
    return linear - 0.5 * cov.mahalanobis_sum(stats.s2, pc, ct) - stats.objective


def lower_bound(sum_rlogr, params, covariance_type, prior_type):
    """scikit-learn's ``_compute_lower_bound``: the E-step's ``sum r log r`` with the M-step's parameters.

    Parameters
    ----------
    sum_rlogr : float, :func:`sum_resp_log_resp` of the E-step
    params : Params, the M-step's variational parameters (means (K, d))
    covariance_type : str
    prior_type : str, one of :data:`PRIOR_TYPES`

    Returns
    -------
    float
    """
    K, d = params.means.shape
    dof = params.degrees_of_freedom
    log_det = cov.log_det_cholesky(params.precisions_cholesky, covariance_type, d) - 0.5 * d * np.log(dof)
    log_wishart = cov.sum_log_wishart(_log_wishart_norm(dof, log_det, d), K, covariance_type)
    log_norm_weight = _LOG_NORM_WEIGHT[prior_type](params.weight_concentration)
    return float(-sum_rlogr - log_wishart - log_norm_weight - 0.5 * d * np.sum(np.log(params.mean_precision)))


def data_moments(stats, ref, covariance_type):
    """Total weight, mean and scatter of the rows behind ``stats``, whose responsibilities sum to one per row.

    Any E-step or initialisation statistics qualify: summed over components,
    they are the (weighted) moments of the data.

    Parameters
    ----------
    stats : dask_gmm._kernels.SuffStats, centred on ``ref``
    ref : ndarray of shape (K, d)
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    n : float, the total weight
    mean : ndarray of shape (d,)
    scatter : ``sum_n w_n (x_n - mean)(x_n - mean)^T``, shape (d, d) for full and
        tied, its diagonal (d,) for diag and spherical
    """
    nk, s1c = stats.nk, stats.s1c
    n = float(nk.sum())
    mean = _kernels.per_weight(nk @ ref + s1c.sum(axis=0), n)
    delta = ref - mean
    corr = s1c.T @ delta + delta.T @ s1c + (nk[:, None] * delta).T @ delta
    return n, mean, cov.total_scatter(stats.s2, corr, covariance_type)


# ------------------------------------------------------------------ the driver
@dataclass
class VariationalRun:
    """One variational run (a restart): its parameters and its history."""

    params: Params
    lower_bound: float = -np.inf
    lower_bounds: list = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False


def variational_em(
    blocks, runs, priors, *, make_priors, covariance_type, prior_type, tol, max_iter, reg_covar, on_iteration=None
):
    """Advance ``runs`` in lockstep until each has converged or done ``max_iter`` iterations.

    One pass per iteration evaluates every active run. As scikit-learn's
    ``fit_predict``: E-step, M-step, then the lower bound from the E-step's
    responsibilities and the M-step's parameters; a run converges when the
    lower bound changes by less than ``tol``. ``on_iteration(runs, advanced)``
    is called after every pass with all runs and those the pass advanced.

    Parameters
    ----------
    blocks : dask_gmm._em.Blocks
    runs : list of VariationalRun
    priors : Priors or None
        None (warm start): ``make_priors(data_moments(...))`` of the first pass.
    make_priors : callable, the tuple ``(n, mean, scatter)`` of :func:`data_moments` to Priors
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    prior_type : {'dirichlet_process', 'dirichlet_distribution'}
    tol : float, the lower bound's change below which a run has converged
    max_iter : int, the most iterations of a run
    reg_covar : float, added to the covariances' diagonals
    on_iteration : callable or None, ``on_iteration(runs, advanced)`` after every pass

    Returns
    -------
    runs, priors
    """
    ct, pt = covariance_type, prior_type

    def step(active, models, stats):
        nonlocal priors
        moved, refs, estimates = recentred(blocks, models, stats, reg_covar, [1.0] * len(models))
        if priors is None:  # the data's moments, from moments centred near them (a warm start far away)
            priors = make_priors(data_moments(moved[0], refs[0], ct))
        for run, st, model, st_m, ref, est in zip(active, stats, models, moved, refs, estimates):
            rlogr = sum_resp_log_resp(st, model)  # of moments centred on the model's means
            run.params = bayesian_m_step(st_m, ref, priors, reg_covar=reg_covar, covariance_type=ct, prior_type=pt,
                                         estimated=est)
            record(run, lower_bound(rlogr, run.params, ct, pt), tol)

    def model_of(run):
        return variational_model(run.params, ct, pt)

    return lockstep(blocks, runs, model_of, step, max_iter=max_iter, on_iteration=on_iteration), priors


# ------------------------------------------------------------------ the estimator
class BayesianGaussianMixture(MixtureBase):
    """Variational Bayesian Gaussian mixture, one pass over the data per iteration.

    scikit-learn's ``BayesianGaussianMixture`` (same parameters, defaults,
    fitted attributes and numbers) over NumPy, Dask and Zarr data, plus
    ``split_every``. Dask or Zarr input gives lazy per-sample outputs.

    Parameters
    ----------
    n_components : int, default=1
        Upper bound on the number of components; the prior can leave some empty.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
    tol : float, default=1e-3
        Convergence threshold on the change of the lower bound.
    reg_covar : float, default=1e-6
    max_iter : int, default=100
    n_init : int, default=1
        Restarts; they advance in lockstep, sharing each read of the data.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
    weight_concentration_prior_type : {'dirichlet_process', 'dirichlet_distribution'}, default='dirichlet_process'
    weight_concentration_prior : float > 0, optional
        Default ``1 / n_components``.
    mean_precision_prior : float > 0, optional
        Default 1.
    mean_prior : array of shape (n_features,), optional
        Default: the (weighted) mean of X.
    degrees_of_freedom_prior : float > n_features - 1, optional
        Default ``n_features``.
    covariance_prior : float or array, optional
        Shape (n_features, n_features) for full and tied, (n_features,) for
        diag, a float for spherical. Default: the (weighted) covariance of X.
    random_state : None, int, numpy.random.SeedSequence, Generator or RandomState
    warm_start : bool, default=False
    verbose : int, default=0
        Log progress (``logging.INFO`` on the ``dask_gmm`` logger) when > 0: how each
        restart starts, every ``verbose_interval``-th iteration, and whether each converged.
    verbose_interval : int, default=10
    split_every : int, default=8
        Width of the tree reduction of per-chunk statistics.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_, precisions_, precisions_cholesky_ : ndarray, of shape (n_components, n_features,
        n_features) for 'full', (n_features, n_features) for 'tied', (n_components, n_features)
        for 'diag', (n_components,) for 'spherical'
    weight_concentration_ : ndarray of shape (n_components,), or a pair of them (dirichlet_process)
    mean_precision_ : ndarray of shape (n_components,)
    degrees_of_freedom_ : ndarray of shape (n_components,), float for tied
    weight_concentration_prior_, mean_precision_prior_, degrees_of_freedom_prior_ : float
    mean_prior_ : ndarray of shape (n_features,)
    covariance_prior_ : ndarray of shape (n_features, n_features) for full and tied, (n_features,)
        for diag; a float for spherical
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Variational lower bound (a sum over samples) of the best run's last iteration.
    lower_bounds_ : list of float
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        The column names of a DataFrame X whose names are all strings (absent otherwise).
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=None,
        mean_precision_prior=None,
        mean_prior=None,
        degrees_of_freedom_prior=None,
        covariance_prior=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        split_every=8,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.split_every = split_every

    # Per-sample inference (predict, score, ...) is MixtureBase's, driven by this class's _model().

    # ------------------------------------------------------------------ validation
    def _check_parameters(self, n_features):
        """Validate the arguments; return the user-given priors that do not depend on the data."""
        self._check_common()
        if self.weight_concentration_prior_type not in PRIOR_TYPES:
            raise InvalidParameterError(
                f"weight_concentration_prior_type must be one of {PRIOR_TYPES}, "
                f"got {self.weight_concentration_prior_type!r}."
            )
        for name in ("weight_concentration_prior", "mean_precision_prior", "degrees_of_freedom_prior"):
            self._check_number(name, getattr(self, name), Real, 0.0, strict=True, allow_none=True, finite=True)
        d = n_features
        dof = self.degrees_of_freedom_prior
        if dof is not None and not dof > d - 1.0:
            raise ValueError(
                f"The parameter 'degrees_of_freedom_prior' should be greater than {d - 1}, but got {dof:.3f}."
            )
        mean = None
        if self.mean_prior is not None:
            if _is_scalar(self.mean_prior):  # as scikit-learn refuses it (its parameter checks, or a TypeError)
                raise InvalidParameterError(f"The parameter 'mean_prior' should be an array of shape ({d},), got "
                                            f"the scalar {self.mean_prior!r}.")
            mean = finite_parameter("mean_prior", self.mean_prior, "for the mean of X")
            if mean.shape != (d,):
                raise ValueError(f"The parameter 'mean_prior' should have the shape of ({d},), but got {mean.shape}. "
                                 f"Pass mean_prior of shape (n_features,) = ({d},), or None for the mean of X.")
        covariance = None
        if self.covariance_prior is not None:
            check = _CHECK_COVARIANCE_PRIOR[len(cov.prior_shape(self.covariance_type, d))]
            covariance = check(self.covariance_prior, self.covariance_type, d)
        return dict(mean=mean, covariance=covariance)

    def _priors(self, user, moments):
        """Priors from the arguments, with the data's moments (n, mean, scatter) for the defaults."""
        n, mean, scatter = moments
        covariance = user["covariance"]
        if covariance is None:
            if not n - 1.0 > 1e-6 * n:  # weights normalised to sum to 1 sum to 1 + 4e-16, in float32 1 + 5e-8
                raise ValueError(
                    f"The default covariance_prior is the covariance of X, which divides by the total sample "
                    f"weight less 1 and so needs a total above 1 (got {n!r}, not above 1 beyond rounding); "
                    "pass covariance_prior or rescale sample_weight."
                )
            covariance = cov.default_covariance_prior(scatter / (n - 1.0), self.covariance_type)
        return Priors(  # numbers as floats (a Fraction, say, would reach scipy's digamma as an object)
            weight_concentration=float(
                1.0 / self.n_components if self.weight_concentration_prior is None else self.weight_concentration_prior
            ),
            mean_precision=float(1.0 if self.mean_precision_prior is None else self.mean_precision_prior),
            mean=mean if user["mean"] is None else user["mean"],
            degrees_of_freedom=float(
                mean.shape[0] if self.degrees_of_freedom_prior is None else self.degrees_of_freedom_prior
            ),
            covariance=covariance,
        )

    # ------------------------------------------------------------------ fitting
    @io.rows_named(1)
    def fit(self, X, y=None, sample_weight=None):
        """Estimate the variational posterior, one pass over X per iteration.

        Parameters
        ----------
        X : array-like, pandas or Dask DataFrame, dask.array.Array, zarr.Array, zarr.Group holding
            ``X``, or a path or fsspec URL of either, of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like (a pandas Series by position), dask array, zarr.Array or xarray
            DataArray of shape (n_samples,), or a number (every row that weight), optional
            Non-negative weights; integer weights equal repeating rows.

        Returns
        -------
        self
        """
        began_on = client_get()  # before X is opened: a Client closed meanwhile fails the fit
        names = io.feature_names(X)
        X, rows = io.with_reader(X, min_samples=2)
        self._check_n_samples(X)
        n_features = X.shape[1]
        user = self._check_parameters(n_features)
        warm = self._is_warm(n_features)
        blocks = Blocks(X, io.as_weights(sample_weight, X), self.split_every, rows, began_on)
        ct, pt = self.covariance_type, self.weight_concentration_prior_type
        step = dict(reg_covar=self.reg_covar, covariance_type=ct, prior_type=pt)

        def make_priors(moments):
            return self._priors(user, moments)

        clock = time.perf_counter()
        if warm:  # priors from the first pass, as scikit-learn recomputes them from X
            runs, priors = [VariationalRun(self._get_parameters(), lower_bound=self.lower_bound_)], None
            how = self._WARM_WORDS
        else:
            seeds = as_seed_sequence(self.random_state).spawn(self.n_init)
            specs = [(self.n_components, ct)] * self.n_init
            inits = initial_statistics_many(blocks, X, specs, self.init_params, seeds)
            priors = make_priors(data_moments(*inits[0], ct))
            runs = [VariationalRun(bayesian_m_step(st, ref, priors, **step)) for st, ref in inits]
            how = self._start_words({}, time.perf_counter() - clock)
        self._log_starts(runs, how)

        clock = time.perf_counter()
        runs, priors = variational_em(
            blocks,
            runs,
            priors,
            make_priors=make_priors,
            covariance_type=ct,
            prior_type=pt,
            tol=self.tol,
            max_iter=self.max_iter,
            reg_covar=self.reg_covar,
            on_iteration=self._progress(),
        )
        self._log_ends(runs, time.perf_counter() - clock)
        if priors is None:  # warm start with max_iter=0: one pass for the data's moments
            model = variational_model(runs[0].params, ct, pt)
            stats = blocks.map_reduce(_kernels.e_step_stats, [model])
            moved, refs, _ = recentred(blocks, [model], stats, self.reg_covar, [1.0])  # as variational_em's step
            priors = make_priors(data_moments(moved[0], refs[0], ct))

        self._set_fitted(best_run(runs, self.max_iter), priors, n_features)
        self._set_feature_names(names)
        self._warn_if_not_converged()
        return self

    def _get_parameters(self):
        return Params(
            self.weight_concentration_,
            self.mean_precision_,
            self.means_,
            self.degrees_of_freedom_,
            self.covariances_,
            self.precisions_cholesky_,
        )

    def _set_fitted(self, run, priors, n_features):
        p, ct = run.params, self.covariance_type
        self.weight_concentration_prior_ = priors.weight_concentration
        self.mean_precision_prior_ = priors.mean_precision
        self.mean_prior_ = priors.mean
        self.degrees_of_freedom_prior_ = priors.degrees_of_freedom
        self.covariance_prior_ = priors.covariance
        self.weight_concentration_ = p.weight_concentration
        self.mean_precision_ = p.mean_precision
        self.means_ = p.means
        self.degrees_of_freedom_ = p.degrees_of_freedom
        self.covariances_ = p.covariances
        self.precisions_cholesky_ = p.precisions_cholesky
        self.precisions_ = cov.precisions_from_precision_cholesky(p.precisions_cholesky, ct)
        self.weights_ = mixing_weights(p.weight_concentration, self.weight_concentration_prior_type)
        self.converged_ = run.converged
        self.n_iter_ = run.n_iter
        self.lower_bound_ = run.lower_bound
        self.lower_bounds_ = list(run.lower_bounds)
        self.n_features_in_ = n_features

    def _is_warm(self, n_features):
        warm = super()._is_warm(n_features)
        if warm:
            self._check_prior_type("set warm_start=False to fit afresh")
        return warm

    def _check_prior_type(self, otherwise):
        """A ValueError unless ``weight_concentration_`` has the form of weight_concentration_prior_type's:
        shape (2, K) for a Dirichlet process (a pair of arrays, as scikit-learn's), (K,) for a Dirichlet
        distribution (read as the other, a fit or a prediction goes wrong, silently at K=2)."""
        K = self.means_.shape[0]
        try:
            shape = np.shape(self.weight_concentration_)
        except ValueError:  # ragged
            shape = None
        fitted = {(2, K): "dirichlet_process", (K,): "dirichlet_distribution"}.get(shape)
        if fitted is None:
            raise ValueError(f"weight_concentration_ should have the shape (2, {K}) or ({K},), got {shape}. "
                             "Refit the model.")
        if fitted != self.weight_concentration_prior_type:
            raise ValueError(
                f"The fitted weight_concentration_ is that of weight_concentration_prior_type={fitted!r}, "
                f"but the estimator has {self.weight_concentration_prior_type!r}. Set back the setting it "
                f"was fitted with, or {otherwise}."
            )

    # ------------------------------------------------------------------ inference
    def _model(self):
        """The fitted variational model (scikit-learn's ``_estimate_weighted_log_prob``)."""
        check_fitted(self, ("weights_", "means_", "precisions_cholesky_", "weight_concentration_", "mean_precision_",
                            "degrees_of_freedom_"))
        self._check_prior_type("refit")
        return variational_model(self._get_parameters(), self.covariance_type, self.weight_concentration_prior_type)
