"""Everything that depends on ``covariance_type``, in pure NumPy.

Each quantity has one function per covariance type, picked from a dict keyed
on the type, as scikit-learn's ``_gaussian_mixture.py`` does. Elsewhere only
the compiled kernels (``_numba``: full-like or diagonal-like sweeps, by the
family :data:`KERNEL_FAMILY` gives each type) branch on it; the Bayesian
mixture's Wishart posteriors and priors are here too.

Shapes, with K components and d features:

=========== ================== ================== ==================
type        covariances        precisions_chol    second moments s2
=========== ================== ================== ==================
full        (K, d, d)          (K, d, d)          (K, d, d)
tied        (d, d)             (d, d)             (d, d)
diag        (K, d)             (K, d)             (K, d)
spherical   (K,)               (K,)               (K, d)
=========== ================== ================== ==================

``s2`` is the responsibility-weighted second moment *centred on a reference*
``c`` (K, d) known to every chunk, normally the current means:
``s2_k = sum_n r_nk (x_n - c_k)(x_n - c_k)^T`` (or its diagonal; summed over k
for ``tied``). Centring keeps the covariances exact for data far from the
origin, where the raw ``sum r x x^T - N mu mu^T`` loses every digit; where the
means move far in one iteration, the statistics are centred on the new ones
instead (:data:`MAX_CENTRING_LOSS`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import linalg
from scipy.linalg import lapack


COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
LOG_2PI = np.log(2 * np.pi)
#: A component whose weighted density in a row is below e^-600 (2.7e-261) times the largest
#: one's gets a responsibility of exactly 0 there (the compiled kernels' ``_softmax``, and the
#: NumPy reference's :func:`dask_gmm._kernels._logsumexp_rows`, alike), where the exact value is a
#: tiny or subnormal number. Arithmetic on subnormal numbers is a microcode assist of about 100
#: cycles on Intel cores (not on AMD's): exponentials in (e^-746, e^-708), and the products of
#: the responsibilities they gave, made the E-step at d=2, K=3 3.1x slower on an Intel Xeon (one
#: core, 250,000 rows: 7.46 ms against 2.41 with this floor; the same as with the CPU flushing
#: subnormals to zero, 2.37 ms), and d=16, K=8 1.09x. What the floor drops is below what the
#: fit's results hold: the log-sum-exp's sum is at least 1, so it loses < K e^-600 (the
#: log-likelihoods and scores are unchanged), and the statistics lose < K e^-600 times the total
#: sample weight, where the M-step adds 10 eps (2.2e-15) to every weight. Per-row
#: probabilities (``predict_proba``) are 0 there, where scikit-learn gives values down to 5e-324.
#: e^-600 rather than e^-708 leaves the moments' products r (x - c) (x - c) normal numbers for
#: |x - c| down to about 1e-23.
RESP_MIN_LOG = -600.0

_SINGULAR = (
    "Fitting the mixture model failed because some components have ill-defined "
    "empirical covariance (for instance caused by singleton or collapsed samples). "
    "Try to decrease the number of components, increase reg_covar "
    "(currently {reg}), or scale the input data."
)
_OVERFLOW = (
    "The covariances overflowed: the data (or their sample weights, or reg_covar, or a "
    "BayesianGaussianMixture's mean_prior or mean_precision_prior) are too large in magnitude "
    "(their weighted squares, with reg_covar added, exceed the float64 range). Rescale them."
)


def _check_finite(cov):
    if not np.all(np.isfinite(cov)):
        raise ValueError(_OVERFLOW)


def check_covariance_type(covariance_type):
    if covariance_type not in COVARIANCE_TYPES:
        from ._compat import InvalidParameterError  # scikit-learn's, imported where raised (info stays fast)

        raise InvalidParameterError(
            f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}."
        )


# --------------------------------------------------------------------------- shapes
def cov_shape(covariance_type, n_components, n_features):
    return {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]


def is_of_type(precisions_cholesky, covariance_type, n_components, n_features):
    """Whether a fitted ``precisions_cholesky`` can be of ``covariance_type``: by its shape and,
    where the tied (d, d) and diag (K, d) shapes coincide (K = d), by its form (a tied factor is
    upper triangular, a diag one positive everywhere)."""
    pc = np.asarray(precisions_cholesky)
    if pc.shape != cov_shape(covariance_type, n_components, n_features):
        return False
    if covariance_type == "tied":
        return not np.any(np.tril(pc, -1))
    return covariance_type != "diag" or bool(np.all(pc > 0))


def s2_shape(covariance_type, n_components, n_features):
    """Shape of the centred second-moment statistic for one chunk."""
    return {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components, n_features),
    }[covariance_type]


def n_parameters(covariance_type, n_components, n_features):
    """Number of free parameters of the mixture (for BIC and AIC)."""
    d = n_features
    cov = {
        "full": n_components * d * (d + 1) / 2.0,
        "tied": d * (d + 1) / 2.0,
        "diag": n_components * d,
        "spherical": n_components,
    }[covariance_type]
    return int(cov + n_components * d + n_components - 1)


# ------------------------------------------------------------ precision Cholesky
def _factors_full(cov):
    """``(pc, definite)``: the precision's Cholesky factor of each covariance of ``cov`` (K, d, d),
    upper triangular (K, d, d), NaN where that covariance is not positive definite (nor one that is
    not finite), and which are (K,) bool. Raises nothing."""
    # LAPACK potrf factors and trtri inverts the triangular factor, called directly: scipy's
    # cholesky checks its input again (10-12 us a component at d <= 16, where potrf takes 1-4), and
    # its solve_triangular, even on 2 x 2, wakes OpenBLAS's threads, which then spin ~100 ms and
    # take a core from the next E-step.
    out = np.empty_like(cov)
    definite = np.isfinite(cov).all(axis=(1, 2))  # potrf takes an infinite variance, its factor 0
    for k in range(cov.shape[0]):
        chol, info = lapack.dpotrf(cov[k], lower=1, clean=1) if definite[k] else (None, -1)
        if info != 0:  # > 0: not positive definite
            out[k], definite[k] = np.nan, False
        else:
            out[k] = lapack.dtrtri(chol, lower=1)[0].T
    return out, definite


#: ``factors(covariances)`` of the types whose precision Cholesky factors are matrices: see :func:`_factors_full`.
_FACTORS = {"full": _factors_full, "tied": lambda cov: _factors_full(cov[None])}


def _pc_full(cov, reg, factors=None):
    _check_finite(cov)
    pc, definite = _factors_full(cov) if factors is None else factors
    if not definite.all():
        raise ValueError(_SINGULAR.format(reg=reg))
    return pc


def _pc_tied(cov, reg, factors=None):
    return _pc_full(cov[None], reg, factors)[0]


def _pc_diag(cov, reg, factors=None):
    _check_finite(cov)
    if np.any(cov <= 0.0):
        raise ValueError(_SINGULAR.format(reg=reg))
    return 1.0 / np.sqrt(cov)


_PRECISION_CHOLESKY = {"full": _pc_full, "tied": _pc_tied, "diag": _pc_diag, "spherical": _pc_diag}


def precision_cholesky(covariances, covariance_type, reg_covar=None, factors=None):
    """Cholesky factor of the precision from the covariances, never via ``inv``.

    Raises ValueError (advising a larger reg_covar) where a covariance is not
    positive definite. ``factors``: :attr:`Estimate.factors` of these covariances, where made
    already.
    """
    return _PRECISION_CHOLESKY[covariance_type](np.asarray(covariances, np.float64), reg_covar, factors)


def _flip(a):
    return a[::-1, ::-1]


def _pc_from_prec_full(prec):
    # The upper-triangular U with precision = U U^T (scikit-learn's convention): a flipped Cholesky.
    return np.stack([_flip(linalg.cholesky(_flip(p), lower=True)) for p in prec])


_FROM_PRECISIONS = {
    "full": _pc_from_prec_full,
    "tied": lambda p: _pc_from_prec_full(p[None])[0],
    "diag": np.sqrt,
    "spherical": np.sqrt,
}


def precision_cholesky_from_precisions(precisions, covariance_type):
    return _FROM_PRECISIONS[covariance_type](np.asarray(precisions, np.float64))


def _full_from_pc(pc, fn):
    return np.stack([fn(p) for p in pc])


def _cov_from_pc_full(pc):
    # P is upper triangular with precision P P^T, so Sigma = P^-T P^-1 (a triangular solve).
    def one(p):
        inv = lapack.dtrtri(p, lower=0)[0]  # P^-1
        return inv.T @ inv

    return _full_from_pc(pc, one)


_COV_FROM_PC = {
    "full": _cov_from_pc_full,
    "tied": lambda pc: _cov_from_pc_full(pc[None])[0],
    "diag": lambda pc: 1.0 / pc**2,
    "spherical": lambda pc: 1.0 / pc**2,
}
_PREC_FROM_PC = {
    "full": lambda pc: pc @ np.swapaxes(pc, -1, -2),
    "tied": lambda pc: pc @ pc.T,
    "diag": lambda pc: pc**2,
    "spherical": lambda pc: pc**2,
}


def covariances_from_precision_cholesky(pc, covariance_type):
    return _COV_FROM_PC[covariance_type](np.asarray(pc, np.float64))


def precisions_from_precision_cholesky(pc, covariance_type):
    return _PREC_FROM_PC[covariance_type](np.asarray(pc, np.float64))


# ------------------------------------------------------------ log determinant
_LOG_DET = {
    "full": lambda pc, d: np.log(np.diagonal(pc, axis1=1, axis2=2)).sum(axis=1),
    "tied": lambda pc, d: np.log(np.diag(pc)).sum(),
    "diag": lambda pc, d: np.log(pc).sum(axis=1),
    "spherical": lambda pc, d: d * np.log(pc),
}


def log_det_cholesky(pc, covariance_type, n_features):
    """log det of the precision Cholesky factor, shape (K,) or scalar for tied."""
    return _LOG_DET[covariance_type](pc, n_features)


# ------------------------------------------------------------ log densities
def _mahalanobis_full(X, means, pc):
    n, K = X.shape[0], means.shape[0]
    out = np.empty((n, K))
    for k in range(K):
        y = (X - means[k]) @ pc[k]
        np.einsum("ij,ij->i", y, y, out=out[:, k])
    return out


def _mahalanobis_tied(X, means, pc):
    return _mahalanobis_full(X, means, np.broadcast_to(pc, (means.shape[0],) + pc.shape))


def _mahalanobis_diag(X, means, pc):
    n, K = X.shape[0], means.shape[0]
    out = np.empty((n, K))
    for k in range(K):
        y = (X - means[k]) * pc[k]
        np.einsum("ij,ij->i", y, y, out=out[:, k])
    return out


def _mahalanobis_spherical(X, means, pc):
    return _mahalanobis_diag(X, means, np.repeat(pc[:, None], X.shape[1], axis=1))


_MAHALANOBIS = {
    "full": _mahalanobis_full,
    "tied": _mahalanobis_tied,
    "diag": _mahalanobis_diag,
    "spherical": _mahalanobis_spherical,
}


def log_gaussian_prob(X, means, pc, covariance_type):
    """log N(x | mu_k, Sigma_k) for every row and component.

    Parameters
    ----------
    X : ndarray of shape (n, d), any float dtype (computed in float64)
    means : ndarray of shape (K, d)
    pc : precision Cholesky factors, shape by covariance type
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    ndarray of shape (n, K), float64
    """
    d = X.shape[1]
    maha = _MAHALANOBIS[covariance_type](X, means, pc)
    log_det = log_det_cholesky(pc, covariance_type, d)
    return -0.5 * (d * LOG_2PI + maha) + log_det


# ------------------------------------------------------------ sufficient statistics
def _s2_full(Xc_k, r_k, out_k):
    out_k += (Xc_k * r_k[:, None]).T @ Xc_k


def _s2_diag(Xc_k, r_k, out_k):
    out_k += r_k @ (Xc_k * Xc_k)


_S2_ONE = {"full": _s2_full, "tied": _s2_full, "diag": _s2_diag, "spherical": _s2_diag}
#: Whether a type's second moments are one per component (tied: the components' sum).
S2_PER_COMPONENT = {"full": True, "tied": False, "diag": True, "spherical": True}
#: The compiled kernels' family of each type (:mod:`dask_gmm._numba`): ``full`` (tied with its
#: factor repeated per component) or ``diag`` (spherical with its factor repeated over the features).
KERNEL_FAMILY = {"full": "full", "tied": "full", "diag": "diag", "spherical": "diag"}


def centred_moments(X, resp, ref, covariance_type):
    """Weighted first and second moments of a block, centred on ``ref``.

    Parameters
    ----------
    X : ndarray of shape (n, d)
    resp : ndarray of shape (n, K), float64, responsibilities already multiplied
        by any sample weights
    ref : ndarray of shape (K, d), the centring reference (current means)
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    s1c : ndarray of shape (K, d), ``sum_n r_nk (x_n - ref_k)``
    s2 : ndarray, shape ``s2_shape(...)``
    """
    K, d = ref.shape
    s1c = np.empty((K, d))
    s2 = np.zeros(s2_shape(covariance_type, K, d))
    one = _S2_ONE[covariance_type]
    per_k = S2_PER_COMPONENT[covariance_type]
    with np.errstate(over="ignore"):  # inf, which the M-step refuses by name (_check_finite)
        for k in range(K):
            Xc = X - ref[k]
            r = resp[:, k]
            s1c[k] = r @ Xc
            one(Xc, r, s2[k] if per_k else s2)
    return s1c, s2


# ------------------------------------------------------------ M-step
# Each component's scatter about its new mean m = ref + delta, from moments centred on ref:
# sum r (x - m)(x - m)^T = s2 - C with C = (nk + f) delta delta^T + f (ref delta^T + delta ref^T),
# where nk = nk_raw + f is the floored count and f the floor (0 for an emptied component).
def _correction_full(nk, floor, delta, ref):
    # C = ((nk + f) delta + f ref) delta^T + (f delta) ref^T: one product of (K, d, 2) by (K, 2, d), the one
    # (K, d, d) array (its terms one at a time made five: 1.3 GB at K=128, d=500)
    u = np.stack([(nk + floor)[:, None] * delta + floor[:, None] * ref, floor[:, None] * delta], axis=2)
    return np.matmul(u, np.stack([delta, ref], axis=1))


def _cov_full(nk, floor, delta, ref, s2, reg, n_total):
    d = delta.shape[1]
    cov = _correction_full(nk, floor, delta, ref)
    np.subtract(s2, cov, out=cov)
    cov /= nk[:, None, None]
    cov[:, np.arange(d), np.arange(d)] += reg
    return cov


def _correction_tied(nk, floor, delta, ref):
    # _correction_full summed over the components, as products of (K, d) arrays: d x d of memory and
    # K d^2 multiply-adds in BLAS, not K d^2 of memory (1.5 GB at K=128, d=500, with its temporaries)
    c = ((nk + floor)[:, None] * delta).T @ delta
    g = (floor[:, None] * ref).T @ delta
    return c + g + g.T


def _cov_tied(nk, floor, delta, ref, s2, reg, n_total):
    d = delta.shape[1]
    cov = (s2 - _correction_tied(nk, floor, delta, ref)) / n_total
    cov.flat[:: d + 1] += reg
    return cov


def _cov_diag(nk, floor, delta, ref, s2, reg, n_total):
    c = (nk + floor)[:, None] * delta**2 + 2 * floor[:, None] * ref * delta
    return (s2 - c) / nk[:, None] + reg


_COVARIANCES = {
    "full": _cov_full,
    "tied": _cov_tied,
    "diag": _cov_diag,
    "spherical": lambda *a: _cov_diag(*a).mean(axis=1),
}


def gaussian_parameters(nk_raw, s1c, s2, ref, reg_covar, covariance_type, weight_unit=1.0):
    """nk (floored), means and covariances from reduced statistics (scikit-learn's
    ``_estimate_gaussian_parameters``).

    Parameters
    ----------
    nk_raw : ndarray of shape (K,), sum of (weighted) responsibilities
    s1c, s2 : centred moments from :func:`centred_moments`, summed over chunks
    ref : ndarray of shape (K, d), the reference the moments are centred on
    reg_covar : float, added to the covariances' diagonals
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    weight_unit : float, the smallest positive sample weight (1.0 without weights).
        scikit-learn's floor of 10 eps on each nk is taken in these units, so that
        scaling every weight alike changes nothing (with weights of 1e-16 an
        absolute floor moved the means by 3e-3, with 1e-300 it decided the fit),
        and integer weights with a 1 among them are repeated rows, floor
        included. It is never more than 10 eps of a row's own weight: in units
        of the mean weight, a component holding only the light rows of weights
        spanning 1e6 moved by 1e-3 of its width toward the origin.

    Returns
    -------
    nk (K,), means (K, d), covariances (shape by type, reg_covar added)

    Notes
    -----
    The means are scikit-learn's ``sum r x / nk``, the floor included (a nearly
    empty component's mean is pulled toward the origin by it), and the
    covariances each component's scatter about its new mean over ``nk`` (for
    ``diag``, ``tied`` and ``spherical`` scikit-learn subtracts uncentred
    moments instead, and loses digits far from the origin; tested against
    NumPy's two-pass covariances). For ``diag`` and ``spherical``, its formula,
    with nk floored, also adds 10 eps mean^2 / nk, which shows for a nearly
    empty component far from the origin; the scatter alone is kept here (README,
    "How it works"). An emptied component (every responsibility
    0, so ``nk_raw``, ``s1c`` and its ``s2`` are 0; a responsibility below
    e^-600 of its row's largest counts as 0, :data:`RESP_MIN_LOG`) keeps its mean
    ``ref``, deliberately. scikit-learn's becomes ``sum r x / (0 + 10 eps) = 0``:
    the origin, which depends on where the data happen to sit and can lie
    among them, where the dead component (covariance ``reg_covar``) may catch a
    single row and turn into a singleton spike. Keeping the mean keeps a fit of
    shifted data the same fit, shifted. Its weight and covariance, and every
    other component, match scikit-learn's GaussianMixture; in its Bayesian
    mixture the covariance differs by about 10 eps mean_prior^2 / dof, through
    the Wishart posterior's (mean - mean_prior) term (docs/how-it-works.md).
    """
    # scikit-learn's floor: empty components stay finite (never 0: a least weight under 2e-309 made it so)
    tiny = max(10 * np.finfo(np.float64).eps * weight_unit, np.finfo(np.float64).smallest_subnormal)
    nk = nk_raw + tiny
    floor = np.where(nk_raw > 0, tiny, 0.0)  # an emptied component keeps its mean (see Notes)
    delta = (s1c - floor[:, None] * ref) / nk[:, None]  # (s1c + nk_raw ref) / nk - ref
    with np.errstate(over="ignore", invalid="ignore"):  # inf or NaN, which the M-step refuses by name
        covariances = _COVARIANCES[covariance_type](nk, floor, delta, ref, s2, reg_covar, nk.sum())
    return nk, ref + delta, covariances


#: The centring correction of :func:`gaussian_parameters` (``s2 / nk`` less the outer product of
#: the mean's move ``delta``) leaves the covariance the rounding of ``s2`` times about
#: ``|delta|**2 / lambda_min`` (the move in the component's own standard deviations along its
#: narrowest axis, squared). Past this factor (about 1e-10 of the covariance rounded away) the
#: statistics are computed again, centred on the new means (:func:`dask_gmm._em.recentred`):
#: scikit-learn's two-pass covariances keep every digit. (At 1e4 and 1e5, 14 and 11 of the 66
#: iterations of 20 default fits of integer grids made the extra pass, where components
#: collapsing onto grid points move 1e3 of their narrow widths and lose about 2e-10; at 1e6 none.)
MAX_CENTRING_LOSS = 1e6
#: A mean's move from where its moments were centred that is within this many times its own
#: value is its rounding (a few ulps), which no further centring can remove: it counts as none.
ROUNDING = 4 * np.finfo(np.float64).eps


def _loss_full(move2, factors):
    """max_k move2[k] / lambda_min(cov_k), bounded above through the covariance's precision Cholesky
    factor (``||L^-1||_F^2 >= 1 / lambda_min``; ``factors`` as :func:`_factors_full` gives them); inf
    where a component that moved has a covariance that is not positive definite (one that did not
    move counts 0, whatever its covariance)."""
    pc, definite = factors
    moved = move2 > 0.0
    if not moved.any():
        return 0.0
    if not definite[moved].all():
        return np.inf
    return float((move2[moved] * np.einsum("kij,kij->k", pc, pc)[moved]).max())


def _loss_scaled(move2, variances):
    """max move2 / variance over the entries that moved (inf where a variance is 0 and the mean moved)."""
    return np.max(np.where(move2 == 0.0, 0.0, move2 / np.abs(variances)))


_LOSSES = {
    "full": lambda move, cov, factors: _loss_full(np.sum(move**2, axis=1), factors),
    "tied": lambda move, cov, factors: _loss_full(np.sum(move**2, axis=1).max(keepdims=True), factors),  # the largest move
    "diag": lambda move, cov, factors: _loss_scaled(move**2, cov),
    "spherical": lambda move, cov, factors: _loss_scaled(np.sum(move**2, axis=1), cov),
}


def centring_loss(means, ref, covariances, covariance_type, factors=None):
    """How many times the rounding of ``s2`` the centring correction of :func:`gaussian_parameters`
    leaves in its covariances, about (``|means - ref|**2 / lambda_min``; inf where a variance is 0
    or a covariance not positive definite, or for full and tied not finite, and that component's
    mean moved: one more pass, centred on the new means, before the M-step names an overflow; a
    move within the mean's rounding, :data:`ROUNDING`, is none; NaN ignored): see
    :data:`MAX_CENTRING_LOSS`.

    Parameters
    ----------
    means, ref : ndarray of shape (K, d), the new means and the points the moments were centred on
    covariances : ndarray, shape by type, from :func:`gaussian_parameters`
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    factors : :attr:`Estimate.factors` of ``covariances``, where made already (full and tied)

    Returns
    -------
    float, 0.0 where the means did not move
    """
    move = means - ref
    move = np.where(np.abs(move) > ROUNDING * np.abs(means), move, 0.0)  # within a mean's own rounding: none
    if not move.any():
        return 0.0
    if factors is None and covariance_type in _FACTORS:
        factors = _FACTORS[covariance_type](covariances)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        loss = float(_LOSSES[covariance_type](move, covariances, factors))
    return 0.0 if np.isnan(loss) else loss


#: Variances (K, d) by type, and the rounding of the means' squares (K, d) brought to their shape.
_VARIANCES = {
    "full": lambda cov, noise, nk: (np.diagonal(cov, axis1=1, axis2=2), noise),
    "tied": lambda cov, noise, nk: (np.diagonal(cov), nk / max(nk.sum(), np.finfo(np.float64).tiny) @ noise),
    "diag": lambda cov, noise, nk: (cov, noise),
    "spherical": lambda cov, noise, nk: (cov, noise.mean(axis=1)),
}


#: Cholesky pivots of a full or tied covariance, each feature's variance given the features before
#: it, as a share of its variance (``1 - R**2``), at or below this times ``n_features`` are
#: rounding: one feature an exact linear combination of others (X2 = 2 X0 - 0.37 X1) left 1.7e-16 to
#: 1.5e-15 from 200 to 1e6 rows; off it by 1e-7 of its spread (a share of 1e-14), 0.75-1.1e-14.
_RESOLVED_PIVOT = 4 * np.finfo(np.float64).eps

#: A variance below the least normal float64 keeps few digits (1e-320: 3-5), and its precision overflows.
_LEAST_VARIANCE = np.finfo(np.float64).tiny


def _pivots_unresolved(covariances, pc, held):
    """Whether a held component's full (K, d, d) covariance, with its precision Cholesky factor ``pc``
    (upper triangular, diagonal 1 / the covariance's Cholesky pivots), is singular to rounding."""
    d = covariances.shape[-1]
    with np.errstate(over="ignore", invalid="ignore"):
        share = 1.0 / (np.diagonal(pc, axis1=1, axis2=2) ** 2 * np.diagonal(covariances, axis1=1, axis2=2))
    return bool(np.any((share <= _RESOLVED_PIVOT * d)[held]))


_PIVOTS_UNRESOLVED = {
    "full": lambda cov, pc, nk: _pivots_unresolved(cov, pc, nk > 0),
    "tied": lambda cov, pc, nk: _pivots_unresolved(cov[None], pc[None], np.ones(1, bool)),
    "diag": lambda cov, pc, nk: False,
    "spherical": lambda cov, pc, nk: False,
}


def _check_resolved(nk_raw, nk, means, covariances, covariance_type, reg_covar, pc):
    """Refuse a variance below the least normal float64 (:data:`_LEAST_VARIANCE`; data at 1e-160
    gave covariances of 3-5 digits, their precisions inf). Without ``reg_covar``, refuse too a
    variance no larger than the rounding of its mean and the floor's pull on it,
    ``((2 eps + (nk - nk_raw) / nk) |mean|)**2`` (2 ulp, and the share of the mean that the floor of
    :func:`gaussian_parameters` takes toward the origin), and a full or tied covariance singular to
    rounding (:data:`_RESOLVED_PIVOT`): a feature that is a linear combination of others was
    fitted, or refused, as rounding fell, its log-likelihood rounding's.

    Rows that coincide (a component collapsed on one point) have a variance of
    exactly 0, which scikit-learn refuses; computed about their rounded mean,
    which the floor pulls off them by ``10 eps |mean| / m`` for ``m`` rows, it
    comes out as about ``(eps |mean|)**2`` to ``(10 eps |mean|)**2`` instead
    (1e-32 at 5.3), a positive definite spike of no meaning. Refused as
    scikit-learn refuses the 0 (before the pull was counted, 1 to 4 coinciding
    rows were fitted with such a spike, 5 or more refused). So are rows a few
    ulps apart, whose spread the pull matches (3 rows 13 ulp apart at 1e8; 40 ulp
    apart they fit). With
    ``reg_covar > 0`` the covariance is regularised, as in scikit-learn, however
    far the data lie (a constant feature at 1e20 gets ``reg_covar``). An emptied
    component (``nk_raw`` 0) is left out: its kept mean, which may lie anywhere,
    says nothing of rows (its variance of 0 is refused before, by
    :func:`precision_cholesky`; in ``tied`` it has no weight).
    """
    held = (nk_raw > 0)[:, None]
    pull = ((nk - nk_raw) / nk)[:, None]  # the floor's share: below 1, so a nearly empty component is not refused by it
    with np.errstate(over="ignore", invalid="ignore"):
        noise = np.where(held, ((2 * np.finfo(np.float64).eps + pull) * means) ** 2, 0.0)
        variances, noise = _VARIANCES[covariance_type](covariances, noise, nk_raw)
        if np.any(variances < _LEAST_VARIANCE):
            raise ValueError(_SINGULAR.format(reg=reg_covar) + " Variances below "
                             f"{_LEAST_VARIANCE:.3g} keep few digits.")
        if reg_covar == 0 and np.any(variances <= noise):
            raise ValueError(_SINGULAR.format(reg=reg_covar) + _unresolved_variance(variances, noise, covariance_type))
        if reg_covar == 0 and _PIVOTS_UNRESOLVED[covariance_type](covariances, pc, nk_raw):
            raise ValueError(_SINGULAR.format(reg=reg_covar) + " A feature is a linear combination of others on a "
                             "component's rows, to rounding: drop it, or set reg_covar > 0.")


def _unresolved_variance(variances, noise, covariance_type):
    """The first variance no larger than rounding, named in words (for :func:`_check_resolved`'s
    error). ``variances`` and ``noise`` as :data:`_VARIANCES` gives them: (K, d) for full and diag,
    (d,) for tied, (K,) for spherical."""
    first = tuple(np.argwhere(variances <= noise)[0])
    if covariance_type == "spherical":
        return (f" Component {first[0]}'s variance is {variances[first]:.3g}, no more than rounding: its rows "
                "coincide. Set reg_covar > 0.")
    where = (f"The tied covariance's variance along feature {first[0]}" if covariance_type == "tied"
             else f"Component {first[0]}'s variance along feature {first[1]}")
    return (f" {where} is {variances[first]:.3g}, no more than rounding: its rows hold one value there (a constant "
            "feature, or rows that coincide). Drop such a feature, or set reg_covar > 0.")


class Estimate(NamedTuple):
    """An M-step's parameters before they are checked (:func:`estimate`)."""

    nk: np.ndarray  # (K,), floored
    means: np.ndarray  # (K, d)
    covariances: np.ndarray  # shape by type, reg_covar added
    factors: tuple | None  # full and tied: (precisions_cholesky (K or 1, d, d), NaN where not positive
    # definite, and which are (K or 1,)), :func:`_factors_full`'s; None for diag and spherical


def estimate(nk_raw, s1c, s2, ref, reg_covar, covariance_type, weight_unit=1.0):
    """:func:`gaussian_parameters` and, for full and tied, the precisions' Cholesky factors, checking
    nothing: the centring check's (:func:`centring_loss`) and then :func:`m_step`'s, made once."""
    nk, means, covariances = gaussian_parameters(nk_raw, s1c, s2, ref, reg_covar, covariance_type, weight_unit)
    factor = _FACTORS.get(covariance_type)
    return Estimate(nk, means, covariances, None if factor is None else factor(covariances))


def m_step(nk_raw, s1c, s2, ref, reg_covar, covariance_type, weight_unit=1.0, estimated=None):
    """Global parameter update from reduced statistics (``weight_unit``: see :func:`gaussian_parameters`;
    ``estimated``: their :func:`estimate`, where made already).

    Returns
    -------
    weights (K,), means (K, d), covariances (shape by type), precisions_cholesky
    """
    if estimated is None:
        estimated = estimate(nk_raw, s1c, s2, ref, reg_covar, covariance_type, weight_unit)
    nk, means, covariances, factors = estimated
    weights = nk / nk.sum()
    pc = precision_cholesky(covariances, covariance_type, reg_covar, factors)
    _check_resolved(nk_raw, nk, means, covariances, covariance_type, reg_covar, pc)
    return weights, means, covariances, pc


# sum_n r_nk ||(x_n - mu_k) P_k||^2 over n and k, from second moments centred on the means mu
_MAHALANOBIS_SUM = {
    # (s2 P) . P: a GEMM of d^3 per component; einsum's "kia,kij,kja->" made one unoptimised loop
    # over all four indices (4.5 s against 0.24 at K=4, d=1000; 7.5 s of a 9.7 s Bayesian fit at K=2: a review)
    "full": lambda s2, pc: float(np.sum(np.matmul(s2, pc) * pc)),
    "tied": lambda s2, pc: float(np.sum((s2 @ pc) * pc)),
    "diag": lambda s2, pc: float(np.sum(pc**2 * s2)),
    "spherical": lambda s2, pc: float(np.sum(pc[:, None] ** 2 * s2)),
}


def mahalanobis_sum(s2, pc, covariance_type):
    """``sum_nk r_nk ||(x_n - mu_k) P_k||^2`` from ``s2`` centred on the means ``mu``, a float."""
    return _MAHALANOBIS_SUM[covariance_type](s2, pc)


# total second moment about the overall mean, from per-component centred moments plus a correction
_TOTAL_SCATTER = {
    "full": lambda s2, corr: s2.sum(axis=0) + corr,
    "tied": lambda s2, corr: s2 + corr,
    "diag": lambda s2, corr: s2.sum(axis=0) + np.diag(corr),
    "spherical": lambda s2, corr: s2.sum(axis=0) + np.diag(corr),
}


def total_scatter(s2, correction, covariance_type):
    """Scatter of all rows about their mean: (d, d) for full/tied, its diagonal (d,) otherwise.

    ``correction`` (d, d) moves the per-component references to the overall mean.
    """
    return _TOTAL_SCATTER[covariance_type](s2, correction)


# ------------------------------------------------------------ validation of user inits
def check_precisions(precisions, covariance_type, n_components, n_features):
    """Validate ``precisions_init`` like scikit-learn: shape, symmetry, positivity."""
    precisions = np.asarray(precisions, dtype=np.float64)
    shape = cov_shape(covariance_type, n_components, n_features)
    none = "or None to let init_params choose them"
    if precisions.shape != shape:
        names = str(cov_shape(covariance_type, "n_components", "n_features")).replace("'", "")  # (n_components,)
        raise ValueError(
            f"The parameter '{covariance_type} precision' should have the shape of {shape}, but got "
            f"{precisions.shape}. Pass precisions_init of shape {names} = {shape} for {covariance_type} covariances, "
            f"{none}."
        )
    mats = {"full": precisions, "tied": precisions[None]}.get(covariance_type)
    if mats is None:
        if np.any(precisions <= 0.0):
            where = np.argwhere(precisions <= 0.0)[0]
            raise ValueError(f"'{covariance_type} precision' should be positive, but precisions_init holds "
                             f"{precisions[tuple(where)]:g} at index {tuple(map(int, where))}. Pass positive precisions "
                             f"(inverse variances), {none}.")
        return precisions
    for k, m in enumerate(mats):
        if not (np.allclose(m, m.T) and np.all(linalg.eigvalsh(m) > 0.0)):
            which = "precisions_init" if covariance_type == "tied" else f"component {k} of precisions_init"
            raise ValueError(f"'{covariance_type} precision' should be symmetric, positive-definite, but {which} "
                             f"is not. Pass precision matrices (inverses of covariance matrices), {none}.")
    return precisions


# Stored covariances and precision Cholesky factors (model files, checkpoints) must agree to this
# relative (Frobenius) tolerance (the factor recomputed from the covariances, that plus the rounding
# its condition number brings: check_consistent), tight enough to refuse a file whose two
# parameterisations were edited apart.
CONSISTENCY_RTOL = 1e-4


def check_consistent(covariances, precisions_cholesky, covariance_type):
    """A ValueError unless the covariances are positive definite and the precision Cholesky factor
    matches them.

    Both are compared in their stored shapes (never expanded to (K, d, d)) and
    in units of each component's own standard deviations (every variance scaled
    to 1, the factor's rows to match), one component at a time: the factor
    recomputed from the covariances must match the stored one (so it is upper
    triangular with a positive diagonal), and the covariances rebuilt from the
    stored factor (symmetric by construction) must match the stored ones. (In
    the stored units, one norm over the whole array let a feature or component
    of small scale be edited 100-fold.) The recomputed factor differs from a fit's own
    by up to about 0.4 eps times the scaled covariance's condition number for dask_gmm's
    fits, 4.3 for scikit-learn's tied ones (fits of two features equal to 1e-8 of their
    scale, condition 4e12 to 6e14 at the default ``reg_covar``, could not be saved nor
    their checkpoints resumed: a review), so that comparison allows each component
    ``CONSISTENCY_RTOL + 10 * eps * cond``: an edit of the factor along a component's
    thinnest direction within that cannot be told from rounding. The covariances rebuilt
    from the factor kept within 2e-11 of a fit's own at those conditions (scikit-learn's
    fits too): their comparison, which an edit of the covariances or of the factor in any
    other direction fails, stays strict.
    """
    def close(a, b, rtol=CONSISTENCY_RTOL):  # relative Frobenius norms, component by component
        a, b = a.reshape(len(b), -1), b.reshape(len(b), -1)
        return np.all(np.linalg.norm(a - b, axis=1) <= rtol * np.linalg.norm(b, axis=1))

    not_pd = ValueError("'covariances' are not positive definite")
    try:  # in the stored units, as a fit computes it: scaled first, a fit's covariances of condition 1e17
        pc_ref = precision_cholesky(np.asarray(covariances, np.float64), covariance_type)  # had lost definiteness
    except ValueError:  # in the rounding, and could not be saved (a review)
        raise not_pd from None
    scaled = _unit_scaled(covariances, precisions_cholesky, covariance_type)
    if scaled is None:
        raise not_pd
    pc_ref = _unit_scaled(covariances, pc_ref, covariance_type)[1]
    covariances, pc, kind = scaled
    with np.errstate(divide="ignore", invalid="ignore"):  # singular in the rounding: inf
        cond = np.linalg.cond(covariances) if kind == "full" else 1.0  # diag: scaled to ones
    rtol = CONSISTENCY_RTOL + 10 * np.finfo(np.float64).eps * cond
    if not close(pc, pc_ref, rtol) or not close(covariances_from_precision_cholesky(pc, kind), covariances):
        raise ValueError(
            "'covariances' and 'precisions_cholesky' do not describe the same symmetric positive "
            "definite model"
        )


def _unit_scaled(covariances, precisions_cholesky, covariance_type):
    """(covariances, precision Cholesky factors, the type they now have: full or diag) of the same
    model in units of each component's standard deviations, with a leading axis of components
    (tied: one). Where ``Sigma' = S^-1 Sigma S^-1`` (S the standard deviations), the precision is
    ``S P S``, so the factor's rows scale by S. None when a variance is not positive."""
    c, pc = np.asarray(covariances, np.float64), np.asarray(precisions_cholesky, np.float64)
    if covariance_type in ("diag", "spherical"):
        if not np.all(c > 0):
            return None
        return np.ones_like(c).reshape(len(c), -1), (pc * np.sqrt(c)).reshape(len(c), -1), "diag"
    c, pc = (c[None], pc[None]) if covariance_type == "tied" else (c, pc)
    variances = np.diagonal(c, axis1=1, axis2=2)
    if not np.all(variances > 0):
        return None
    s = np.sqrt(variances)
    return c / (s[:, :, None] * s[:, None, :]), pc * s[:, :, None], "full"


# ------------------------------------------------------------ Bayesian mixtures: Wishart posteriors and priors
def _wishart_full(nk, xk, sk, p, mean_precision):
    dof = p.degrees_of_freedom + nk
    diff = xk - p.mean
    scale = nk * p.mean_precision / mean_precision
    covariances = (
        p.covariance + nk[:, None, None] * sk + scale[:, None, None] * (diff[:, :, None] * diff[:, None, :])
    )
    return dof, covariances / dof[:, None, None]


def _wishart_tied(nk, xk, sk, p, mean_precision):
    K = nk.shape[0]
    dof = p.degrees_of_freedom + nk.sum() / K
    diff = xk - p.mean
    covariances = p.covariance + sk * nk.sum() / K + p.mean_precision / K * np.dot((nk / mean_precision) * diff.T, diff)
    return dof, covariances / dof


def _wishart_diag(nk, xk, sk, p, mean_precision):
    dof = p.degrees_of_freedom + nk
    diff = xk - p.mean
    covariances = p.covariance + nk[:, None] * (sk + (p.mean_precision / mean_precision)[:, None] * np.square(diff))
    return dof, covariances / dof[:, None]


def _wishart_spherical(nk, xk, sk, p, mean_precision):
    dof = p.degrees_of_freedom + nk
    diff = xk - p.mean
    covariances = p.covariance + nk * (sk + p.mean_precision / mean_precision * np.mean(np.square(diff), 1))
    return dof, covariances / dof


_WISHART = {"full": _wishart_full, "tied": _wishart_tied, "diag": _wishart_diag, "spherical": _wishart_spherical}

# sum over components of the Wishart log-normalisers (tied: one matrix counted for each of the K components)
_SUM_LOG_WISHART = {
    "full": lambda v, K: float(np.sum(v)),
    "tied": lambda v, K: K * float(np.sum(v)),
    "diag": lambda v, K: float(np.sum(v)),
    "spherical": lambda v, K: float(np.sum(v)),
}


_DEFAULT_COVARIANCE_PRIOR = {
    "full": lambda c: np.atleast_2d(c),
    "tied": lambda c: np.atleast_2d(c),
    "diag": lambda c: c,
    "spherical": lambda c: float(c.mean()),
}


def wishart_posterior(nk, xk, sk, priors, mean_precision, covariance_type):
    """The Wishart posterior of the variational M-step (scikit-learn's ``_estimate_wishart_*``).

    Parameters
    ----------
    nk : ndarray of shape (K,), the components' (weighted) counts
    xk : ndarray of shape (K, d), their means
    sk : ndarray, the type's covariances (reg_covar in them)
    priors : with ``degrees_of_freedom`` (float), ``covariance`` (:func:`prior_shape`), ``mean`` (d,)
        and ``mean_precision`` (float)
    mean_precision : ndarray of shape (K,), the posterior mean precisions
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    (degrees_of_freedom (K,), a float for tied; covariances of the type's shape)
    """
    return _WISHART[covariance_type](nk, xk, sk, priors, mean_precision)


def sum_log_wishart(log_norms, n_components, covariance_type):
    """The sum over components of the Wishart log-normalisers ``log_norms`` ((K,), tied (1,)): tied's
    one matrix counts for each of the ``n_components``."""
    return _SUM_LOG_WISHART[covariance_type](log_norms, n_components)


def prior_shape(covariance_type, n_features):
    """The shape of a Bayesian mixture's ``covariance_prior``: (d, d) full and tied, (d,) diag, () spherical."""
    return {"full": (n_features,) * 2, "tied": (n_features,) * 2, "diag": (n_features,), "spherical": ()}[covariance_type]


def default_covariance_prior(covariance, covariance_type):
    """The default ``covariance_prior`` of the type (:func:`prior_shape`) from the data's covariance:
    (d, d) for full and tied, its diagonal (d,) for diag and spherical (:func:`total_scatter`)."""
    return _DEFAULT_COVARIANCE_PRIOR[covariance_type](covariance)


def _lacks_digits(variances):
    """Whether the least of ``variances`` (eigenvalues, or a diagonal) is at most rounding's share of
    the largest (10 d eps), or not positive."""
    return bool(variances.min() <= 10 * variances.size * np.finfo(np.float64).eps * max(variances.max(), 0.0))


_EMPTY_ON_SINGULAR_PRIOR = {
    "full": lambda prior: _lacks_digits(np.linalg.eigvalsh(prior)),
    "tied": lambda prior: False,  # its one covariance pools every row: never an empty component's prior alone
    "diag": _lacks_digits,
    "spherical": lambda prior: bool(prior <= 0.0),
}


def empty_on_singular_prior(covariance_prior, covariance_type):
    """Whether the covariance of a Bayesian mixture's component that holds (almost) no rows is
    about its ``covariance_prior`` (:func:`prior_shape`), and that prior is singular, to rounding:
    never for tied, whose covariance pools every component's rows."""
    return _EMPTY_ON_SINGULAR_PRIOR[covariance_type](np.asarray(covariance_prior, np.float64))


# ------------------------------------------------------------ sampling
_DRAW = {
    "full": lambda rng, means, cov, k, n: rng.multivariate_normal(means[k], cov[k], n),
    "tied": lambda rng, means, cov, k, n: rng.multivariate_normal(means[k], cov, n),
    "diag": lambda rng, means, cov, k, n: means[k] + rng.standard_normal((n, means.shape[1])) * np.sqrt(cov[k]),
    "spherical": lambda rng, means, cov, k, n: means[k]
    + rng.standard_normal((n, means.shape[1])) * np.sqrt(cov[k]),
}


def draw_component(rng, means, covariances, k, n, covariance_type):
    """Draw ``n`` samples, shape (n, d), from component ``k``."""
    return _DRAW[covariance_type](rng, means, covariances, k, n)


def as_full_covariances(covariances, covariance_type, n_components, n_features):
    """Covariances expanded to shape (K, d, d), for plots and model comparison."""
    cov = np.asarray(covariances, np.float64)
    return {
        "full": lambda: cov,
        "tied": lambda: np.broadcast_to(cov, (n_components, n_features, n_features)).copy(),
        "diag": lambda: np.stack([np.diag(c) for c in cov]),
        "spherical": lambda: cov[:, None, None] * np.eye(n_features),
    }[covariance_type]()
