"""The estimator: scikit-learn's GaussianMixture API over Dask and Zarr data.

Thin by design: parameters and fitted attributes live here; reading the data
is :mod:`dask_gmm.io`, initialisation :mod:`dask_gmm._init`, the EM loop
:mod:`dask_gmm._em`, and every covariance-type formula :mod:`dask_gmm._covariance`.
"""

from __future__ import annotations

import functools
import logging
import math
import time
import uuid
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from . import _covariance as cov
from . import _cluster, _kernels, io
from ._checkpoint import Checkpoint, are_mixture_weights
from ._compat import InvalidParameterError
from ._em import Blocks, Run, client_get, em, fill_rows, rows_array, unsized_rows_array
from ._init import INITIALIZERS, as_seed_sequence, check_random_state, initial_parameters_many

logger = logging.getLogger(__name__)


def information_criteria(mean_log_likelihood, n_samples, n_parameters, weighted=False):
    """{'bic': ..., 'aic': ...} from the mean log-likelihood of n_samples rows (lower is better).

    Where ``weighted``, ``n_samples`` is the total of frequency weights, which counts as the rows; a
    total of at most 1 (within 1e-6, a normalised sum's rounding) is a ValueError: weights normalised
    to sum to 1 made BIC's penalty ``n_parameters * log(total)`` zero, and the largest model won (a
    review: 6 components chosen for 2).
    """
    if weighted and not n_samples > 1 + 1e-6:
        raise ValueError(
            f"sample_weight sums to {n_samples:.6g}, and the criteria count the total weight as the number of rows "
            "(frequency weights): at most one row's worth leaves them no meaning (BIC's penalty is zero or less, and "
            "the largest model always wins; AIC's outweighs the fit, and the smallest does). Give counts (a row "
            "counted once has weight 1), not weights normalised to sum to 1."
        )
    fit = -2 * mean_log_likelihood * n_samples
    return {"bic": float(fit + n_parameters * np.log(n_samples)), "aic": float(fit + 2 * n_parameters)}


#: The largest integer hyper-parameter (n_components, n_init, max_iter, ...) taken, as the CLI's counts.
MAX_INTEGER = 2**62


def is_finite_number(value):
    """``math.isfinite(value)``, False for an int too large for a float (10**400: an OverflowError)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_n_samples(n_components, n_samples):
    """scikit-learn's ValueError, with what to do, where there are fewer rows than components."""
    if n_samples < n_components:
        raise ValueError(f"Expected n_samples >= n_components but got n_components = {n_components}, n_samples = "
                         f"{n_samples}. Ask for at most {n_samples} components, or give more rows.")


def brief(value, width=40):
    """``repr(value)``, or its start and length where longer than ``width`` (an int of 400 digits)."""
    text = repr(value)
    return text if len(text) <= width else f"{text[:width // 2]}... ({len(text)} characters)"


def finite_parameter(name, value, otherwise):
    """``value`` as a float64 array, or a ValueError naming the parameter ``name`` if it holds
    anything but finite real numbers (NaN, infinity, complex); ``otherwise`` says what None does."""
    try:
        a = io.objects_as_float(np.asarray(value))
    except (TypeError, ValueError) as exc:  # a ragged list, say
        raise ValueError(f"The parameter '{name}' should be an array of finite real numbers ({exc}).") from exc
    if a.dtype.kind not in "biuf" or not np.all(np.isfinite(a)):
        what = "NaN or infinity" if a.dtype.kind in "biuf" else f"dtype {a.dtype}"
        raise ValueError(
            f"The parameter '{name}' should hold finite real numbers, but it holds {what}. "
            f"Pass finite values, or None {otherwise}."
        )
    return a.astype(np.float64)


#: The weight below which a fitted component holds no rows (:meth:`GaussianMixture._warn_of_empty_components`):
#: the 10·eps floor on N_k gives such a component 2.2e-15 of a total weight of 1, less of more.
EMPTY_WEIGHT = 1e3 * np.finfo(np.float64).eps


def check_fitted(model, fitted=("weights_", "means_", "precisions_cholesky_")):
    """scikit-learn's ``check_is_fitted``, then a ValueError when the fitted attributes changed since
    the fit: covariances not of the model's ``covariance_type`` (they would be read as another
    type's), shapes that do not agree, or NaN or infinity in any of ``fitted`` (which no fit
    leaves: ``predict`` had answered label 0 for every row of a model with a NaN weight, and
    ``score`` blamed the data's magnitude)."""
    if not hasattr(model, "fit"):  # scikit-learn's words said only that it is not an estimator
        raise TypeError(f"Expected a fitted GaussianMixture, got {type(model).__name__} {model!r:.60}.")
    check_is_fitted(model)
    cov.check_covariance_type(model.covariance_type)
    means, prec = np.asarray(model.means_), model.precisions_cholesky_
    K, d = means.shape if means.ndim == 2 else (0, 0)
    if not cov.is_of_type(prec, model.covariance_type, K, d) and any(
            cov.is_of_type(prec, t, K, d) for t in cov.COVARIANCE_TYPES):
        raise ValueError(
            f"The fitted covariances (shape {np.shape(model.covariances_)}) are not of "
            f"covariance_type={model.covariance_type!r}, which was set after the fit. Set back the "
            "covariance_type the model was fitted with, or refit it."
        )
    if not cov.is_of_type(prec, model.covariance_type, K, d) or np.shape(model.weights_) != (K,):
        raise ValueError(
            f"The fitted parameters do not agree (weights_ of shape {np.shape(model.weights_)}, means_ "
            f"{means.shape}, precisions_cholesky_ {np.shape(prec)}, covariance_type={model.covariance_type!r}): "
            "one was set after the fit. Set back the fitted values, or refit the model."
        )
    for name in fitted:
        value = getattr(model, name)
        if np.iscomplexobj(value):  # cast to float, their imaginary parts had been dropped with a ComplexWarning
            raise ValueError(f"model.{name} holds complex values, which no fit leaves: it was set after the fit. "
                             "Set back the fitted values, or refit the model.")
        if not np.all(np.isfinite(np.asarray(value, np.float64))):
            raise ValueError(f"model.{name} holds NaN or infinite values, which no fit leaves: it was set after "
                             "the fit. Set back the fitted values, or refit the model.")
    weights = np.asarray(model.weights_, np.float64)
    if not are_mixture_weights(weights):  # scored as they stood (a review), or all 0 an
        raise ValueError(  # overflow blamed on the data
            f"model.weights_ (summing to {weights.sum():.6g}, smallest {weights.min():.3g}) are not a mixture's "
            "weights, non-negative and summing to 1, as every fit leaves them: they were set after the fit. Set back "
            "the fitted values (normalised: weights_ / weights_.sum()), or refit the model.")


def best_run(runs, max_iter=None):
    """scikit-learn's choice among restarts: the first with the highest lower bound (the last if all are -inf),
    bounds within :data:`TIE` of each other counting as equal.

    With ``max_iter == 0``, the last restart's starting parameters with a lower bound of -inf, a warm
    start's too (its old bound would otherwise end the next warm fit an iteration early)."""
    if max_iter == 0:
        best = runs[-1]
        best.lower_bound, best.lower_bounds = -np.inf, []
        return best
    best = None
    for r in runs:
        if best is None or best.lower_bound == -np.inf or r.lower_bound - best.lower_bound > TIE * max(
                1.0, abs(best.lower_bound)):
            best = r
    return best


#: Restarts whose lower bounds differ by less than this (relative) are tied, and the first is kept:
#: two restarts at one optimum, components in another order, differ only in the last bits, which
#: change with the order of the sums, so the strictly larger would depend on the chunking. The same
#: holds for select_model's criteria (full and diag covariances are one model at one feature).
TIE = 1e-12


def _rows_of_block(kernel, model, offsets, x, block_info=None):
    """``kernel`` (a per-row kernel of :mod:`dask_gmm._kernels`) on the checked block ``x`` of a dask
    array whose blocks start at rows ``offsets``."""
    return kernel(x, model, row_offset=int(offsets[block_info[0]["chunk-location"][0]]))


class MixtureBase(DensityMixin, BaseEstimator):
    """What every mixture estimator here shares: argument checks and the per-sample methods.

    Subclasses provide ``fit`` and ``_model()`` (a :class:`dask_gmm._kernels.Model`
    of the fitted mixture) and the fitted ``weights_``, ``means_``, ``covariances_``.
    """

    def _progress(self, save=None):
        """The fit loops' per-pass callback ``on_iteration(runs, advanced)``.

        Calls ``save(runs)`` (a checkpoint), then, if ``verbose``, logs every
        ``verbose_interval``-th iteration of each run the pass advanced on this
        module's logger, with the numbers as record attributes (the CLI's
        progress line reads them).
        """
        clock, passes = [time.perf_counter()], [0]

        def on_iteration(runs, advanced):
            if save is not None:
                save(runs)
            now = time.perf_counter()
            seconds, clock[0] = now - clock[0], now
            passes[0] += 1
            advanced = {id(r) for r in advanced}
            for i, r in enumerate(runs):
                if not self.verbose or id(r) not in advanced or r.n_iter % self.verbose_interval:
                    continue
                prev = r.lower_bounds[-2] if len(r.lower_bounds) > 1 else -np.inf
                logger.info(
                    "%s init %d iteration %d: lower bound %.6f, change %.3g, %.3f s/iteration",
                    type(self).__name__, i + 1, r.n_iter, r.lower_bound, r.lower_bound - prev, seconds,
                    extra={"init": i + 1, "n_iter": r.n_iter, "lower_bound": r.lower_bound,
                           "change": r.lower_bound - prev, "seconds": seconds, "pass_number": passes[0],
                           "max_iter": self.max_iter, "converged": r.converged},
                )  # fmt: skip

        return on_iteration

    _WARM_WORDS = "continues the fitted model (warm_start)"  # a warm start's line, for :meth:`_log_starts`

    def _start_words(self, given, seconds):
        """How a fresh fit's runs start, in words, for :meth:`_log_starts`: ``given``, the initial
        parameters the user gave (a dict with some of "weights", "means", "precisions")."""
        if len(given) == 3:
            return "from the given weights, means and precisions"
        named = f", with the given {' and '.join(given)}," if given else ""
        return f"initialised by {self.init_params!r}{named} in {seconds:.3f} s"

    def _log_starts(self, runs, how):
        """If ``verbose``, log one line per run (restart): how its EM iterations start, ``how``
        in words ("initialised by 'kmeans' in 0.07 s", "continues the fitted model"), as
        scikit-learn prints "Initialization 0" per restart."""
        for i, r in enumerate(runs if self.verbose else ()):
            resumed = f"resumed from the checkpoint after iteration {r.n_iter}" if r.n_iter else how
            logger.info("%s init %d of %d: %s", type(self).__name__, i + 1, len(runs), resumed,
                        extra={"init": i + 1, "event": "start"})

    def _log_ends(self, runs, seconds):
        """If ``verbose``, log one line per run: whether it converged, after how many iterations, its
        lower bound, and the EM's time since :meth:`_log_starts` (``seconds``), as scikit-learn
        prints "Initialization converged." per restart."""
        for i, r in enumerate(runs if self.verbose else ()):
            how = "converged" if r.converged else "did not converge"
            logger.info("%s init %d of %d %s after %d iteration%s: lower bound %.6f (EM %.3f s)", type(self).__name__,
                        i + 1, len(runs), how, r.n_iter, "" if r.n_iter == 1 else "s", r.lower_bound, seconds,
                        extra={"init": i + 1, "event": "end", "converged": r.converged})

    def _is_warm(self, n_features):
        """Whether this fit continues the fitted model (``warm_start``); a ValueError when the model
        cannot continue on these data or under these settings (n_components, covariance_type)."""
        if not (self.warm_start and hasattr(self, "converged_")):
            return False
        K, d = self.means_.shape
        if d != n_features:
            raise ValueError(f"X has {n_features} features, but the fitted model has {d}.")
        if K != self.n_components or not cov.is_of_type(self.precisions_cholesky_, self.covariance_type, K, d):
            raise ValueError(
                f"warm_start=True continues the fitted model, but its parameters ({K} components, covariances "
                f"of shape {np.shape(self.covariances_)}) do not fit n_components={self.n_components} and "
                f"covariance_type={self.covariance_type!r}. Set back the settings it was fitted with, "
                "or set warm_start=False to fit afresh."
            )
        return True

    def _warn_if_not_converged(self):
        if not self.converged_ and self.max_iter > 0:
            io.warn_at_caller(  # at the user's line, as Python's filter shows a warning once per line
                "Best performing initialization did not converge. Try different init parameters, "
                "or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
            )

    def _check_number(self, name, value, kind, minimum, *, strict=False, allow_none=False, finite=False):
        if value is None and allow_none:
            return
        if (isinstance(value, bool) or not isinstance(value, kind)
                or not (value > minimum if strict else value >= minimum) or (finite and not is_finite_number(value))
                or (kind is Integral and value > MAX_INTEGER)):  # 10**400 had been a bare OverflowError
            bound = f"> {minimum}" if strict else f">= {minimum}"
            if kind is Integral and isinstance(value, Integral) and value > MAX_INTEGER:
                bound += " and at most 2**62"
            none = "None or " if allow_none else ""
            what = "an integer" if kind is Integral else f"a{' finite' if finite else ''} number"
            raise InvalidParameterError(
                f"The '{name}' parameter of {type(self).__name__} must be {none}{what} {bound}; got {brief(value)}."
            )

    def _check_common(self):
        """The arguments GaussianMixture and BayesianGaussianMixture share."""
        self._check_number("n_components", self.n_components, Integral, 1)
        self._check_number("tol", self.tol, Real, 0.0, finite=True)
        self._check_number("reg_covar", self.reg_covar, Real, 0.0, finite=True)
        self._check_number("max_iter", self.max_iter, Integral, 0)
        self._check_number("n_init", self.n_init, Integral, 1)
        self._check_number("verbose_interval", self.verbose_interval, Integral, 1)
        self._check_number("split_every", self.split_every, Integral, 2)
        if not isinstance(self.verbose, (Integral, np.bool_)) or self.verbose < 0:  # a bool is fine, as in scikit-learn
            self._check_number("verbose", self.verbose, Integral, 0)
        if not isinstance(self.warm_start, (bool, np.bool_)):
            raise InvalidParameterError(f"The 'warm_start' parameter of {type(self).__name__} must be True or "
                                        f"False; got {self.warm_start!r}.")
        cov.check_covariance_type(self.covariance_type)
        check_random_state(self.random_state)  # before any read of X, drawing nothing from it
        if self.init_params not in INITIALIZERS:
            raise InvalidParameterError(
                f"init_params must be one of {sorted(INITIALIZERS)}, got {self.init_params!r}."
            )

    def _check_n_samples(self, X):
        """X: the dask array of :func:`dask_gmm.io.with_reader` (``min_samples=2``, as scikit-learn's fit)."""
        self._check_number("n_components", self.n_components, Integral, 1)  # before it is compared
        check_n_samples(self.n_components, X.shape[0])

    def _set_feature_names(self, names):
        """``feature_names_in_`` from :func:`dask_gmm.io.feature_names`, set once a fit has succeeded
        (None: X had none, and names of an earlier fit go, as in scikit-learn)."""
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_

    def _check_features(self, X):
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input. Give it data of the {self.n_features_in_} features it "
                "was fitted on, or fit it again to these data."
            )

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the labels of X (equal to ``fit(X).predict(X)``).

        Parameters
        ----------
        X : array-like, dask array, Zarr array or group, or a path or URL of a Zarr store,
            of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional, as in :meth:`fit`

        Returns
        -------
        labels : ndarray of shape (n_samples,), int64 (a lazy dask array for Dask or Zarr input)
        """
        return self.fit(X, sample_weight=sample_weight).predict(X)

    def _per_sample(self, X, kernel, extra_axis):
        """Apply a per-row kernel: lazy dask array for Dask/Zarr input, NumPy otherwise."""
        model = self._model()
        io.check_feature_names(self, X)
        dtype = np.int64 if kernel is _kernels.predict else np.float64
        tail = (len(self.means_),) if extra_axis else ()  # the fitted K (n_components may have been set since)
        # a dask DataFrame, or a dask array of unknown rows (X[X[:, 0] > 0]): one pass, at compute, lengths learnt on the way
        frame = io.float_frame(X) if io.is_dask_dataframe(X) else io.unsized_dask_array(X)
        if frame is not None:
            self._check_features(frame)
            parts = frame.to_delayed()  # a list of partitions, or an array of blocks (n, 1)
            return unsized_rows_array(list(np.ravel(parts)), _cluster.OnThisBuild(kernel), tail, dtype,
                                      frame.shape[1], model)
        if not io.is_lazy(X):  # in memory: every block writes its rows of one output
            blocks = io.row_blocks(X)
            self._check_features(blocks[0])
            return fill_rows(blocks, kernel, np.empty((sum(map(len, blocks)), *tail), dtype), model)
        Xd, rows = io.with_reader(X)
        self._check_features(Xd)
        _cluster.refuse_other_files_on_workers(Xd, rows=rows)
        kernel = _cluster.OnThisBuild(kernel)  # and a worker that joins before the compute, where it runs
        row_bytes = np.dtype(dtype).itemsize * math.prod(tail)  # the output's blocks of at most 16 MiB
        if rows is not None:  # a Zarr array read by the direct reader, as a fit reads it, in a dask array's own
            given = io.given_row_chunks(X)  # row chunks where X is one (they had been dask_gmm's: map_blocks with X failed)
            base = Xd.chunks[0] if given is None else given
            return rows_array(rows, io.output_rows(base, rows.chunk_rows, row_bytes), kernel, tail, dtype, model)
        blocks = io.output_rows(Xd.chunks[0], 1, row_bytes)
        Xd = io.declared_blocks(Xd)  # before the blocks are cut (else fused into the kernel's tasks)
        Xd = Xd if blocks == Xd.chunks[0] else Xd.rechunk({0: blocks})  # each block cut, none joined
        offsets = io.row_starts(Xd.chunks[0])
        block = functools.partial(_rows_of_block, kernel, model, offsets)  # no closure: the graph pickles
        name = f"dask_gmm.{kernel.__name__}-{uuid.uuid4().hex}"  # the dashboard's group: dask_gmm.predict, ...
        if extra_axis:
            return Xd.map_blocks(block, chunks=(Xd.chunks[0], tail), dtype=dtype, name=name)
        return Xd.map_blocks(block, drop_axis=1, dtype=dtype, name=name)

    @io.rows_named(1)
    def predict(self, X):
        """Most probable component of each row.

        Parameters
        ----------
        X : array-like, dask array, Zarr array or group, or a path or URL of a Zarr store,
            of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,), int64 (a lazy dask array for Dask or Zarr input)
        """
        return self._per_sample(X, _kernels.predict, False)

    @io.rows_named(1)
    def predict_proba(self, X):
        """Posterior probability of each component for each row.

        Parameters
        ----------
        X : array-like, dask array, Zarr array or group, or a path or URL of a Zarr store,
            of shape (n_samples, n_features)

        Returns
        -------
        resp : ndarray of shape (n_samples, n_components), float64 (a lazy dask array for Dask or Zarr input)
        """
        return self._per_sample(X, _kernels.predict_proba, True)

    @io.rows_named(1)
    def score_samples(self, X):
        """Log-likelihood of each row under the mixture.

        Parameters
        ----------
        X : array-like, dask array, Zarr array or group, or a path or URL of a Zarr store,
            of shape (n_samples, n_features)

        Returns
        -------
        log_prob : ndarray of shape (n_samples,), float64 (a lazy dask array for Dask or Zarr input)
        """
        return self._per_sample(X, _kernels.score_samples, False)

    @io.rows_named(1)
    def score(self, X, y=None, sample_weight=None):
        """Mean (weighted) log-likelihood of X, in one pass (a dask DataFrame's partition lengths
        are learnt in one more).

        Parameters
        ----------
        X : array-like, dask array, Zarr array or group, or a path or URL of a Zarr store,
            of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional, as in :meth:`fit`

        Returns
        -------
        float
        """
        check_fitted(self)  # before X is opened, as in predict
        io.check_feature_names(self, X)
        return self._score(*io.with_reader(X), sample_weight)[0]

    def _score(self, Xd, rows, sample_weight=None):
        """(:meth:`score`, total sample weight) of X opened by :func:`dask_gmm.io.with_reader` as ``(Xd, rows)``."""
        model = self._model()
        self._check_features(Xd)
        blocks = Blocks(Xd, io.as_weights(sample_weight, Xd), self.split_every, rows)
        total, weight = blocks.map_reduce(_kernels.score_stats, model)
        return _kernels.per_weight(total, weight), float(weight)

    def sample(self, n_samples=1):
        """Draw ``n_samples`` rows from the fitted mixture, in memory.

        Parameters
        ----------
        n_samples : int, default=1
            The number of rows to draw, at least 1.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,), the component of each row
        """
        check_fitted(self)
        if isinstance(n_samples, bool) or not isinstance(n_samples, Integral):
            raise TypeError(f"n_samples must be an integer, got {type(n_samples).__name__} {n_samples!r}.")
        if n_samples < 1:
            raise ValueError(f"Invalid value for 'n_samples': {n_samples}. It must be at least one.")
        rng = np.random.default_rng(as_seed_sequence(self.random_state))
        weights = np.asarray(self.weights_, np.float64)
        counts = rng.multinomial(n_samples, weights / weights.sum())  # a model file's may sum to 1 +- 1e-6
        X = np.vstack(
            [
                cov.draw_component(rng, self.means_, self.covariances_, k, int(c), self.covariance_type)
                for k, c in enumerate(counts)
            ]
        )
        y = np.concatenate([np.full(c, k, dtype=int) for k, c in enumerate(counts)])
        return X, y


class GaussianMixture(MixtureBase):
    """Gaussian mixture fitted by EM, one pass over the data per iteration.

    Parameters are scikit-learn's ``GaussianMixture`` parameters with the same
    defaults, plus ``checkpoint`` and ``split_every``.

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
    tol : float, default=1e-3
        Convergence threshold on the change of the mean log-likelihood.
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance.
    max_iter : int, default=100
    n_init : int, default=1
        Restarts; they advance in lockstep, sharing each read of the data.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
    weights_init : array of shape (n_components,), optional
    means_init : array of shape (n_components, n_features), optional
    precisions_init : array, optional, of shape (n_components, n_features, n_features) for 'full',
        (n_features, n_features) for 'tied', (n_components, n_features) for 'diag',
        (n_components,) for 'spherical'
    random_state : None, int, numpy.random.SeedSequence, Generator or RandomState
    warm_start : bool, default=False
    verbose : int, default=0
        Log progress (``logging.INFO`` on the ``dask_gmm`` logger) when > 0: how each
        restart starts, every ``verbose_interval``-th iteration, and whether each converged.
    verbose_interval : int, default=10
    checkpoint : str, bytes or os.PathLike, optional
        File where the whole EM state is written atomically after every
        iteration; a rerun with the same data and arguments resumes from it, and one with a
        larger ``max_iter`` continues a fit that stopped at its limit.
    split_every : int, default=8
        Width of the tree reduction of per-chunk statistics.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_, precisions_, precisions_cholesky_ : ndarray, of shape (n_components, n_features,
        n_features) for 'full', (n_features, n_features) for 'tied', (n_components, n_features)
        for 'diag', (n_components,) for 'spherical'
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean log-likelihood at the start of the last iteration of the best run.
    lower_bounds_ : list of float
        Its value at every iteration of the best run.
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
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        checkpoint=None,
        split_every=8,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.checkpoint = checkpoint
        self.split_every = split_every

    # ------------------------------------------------------------------ validation
    def _check_parameters(self, n_features):
        self._check_common()
        K, d = self.n_components, n_features
        inits = {}
        chosen = "to let init_params choose them"
        if self.weights_init is not None:
            w = finite_parameter("weights_init", self.weights_init, chosen)
            if w.shape != (K,):
                raise ValueError(f"The parameter 'weights' should have the shape of ({K},), but got {w.shape}. "
                                 f"Pass weights_init of shape (n_components,) = ({K},), or None {chosen}.")
            if np.any(w < 0) or np.any(w > 1):
                raise ValueError(f"The parameter 'weights' should be in the range [0, 1], but weights_init holds "
                                 f"{w[(w < 0) | (w > 1)][0]:g}. Pass non-negative weights that sum to 1, or None "
                                 f"{chosen}.")
            atol = 1e-6 if np.asarray(self.weights_init).dtype == np.float32 else 1e-8  # scikit-learn's tolerance
            if not abs(1.0 - w.sum()) <= atol:  # a sum 1e-5 off had passed: max_iter=0 kept it, scores biased
                raise ValueError(f"The parameter 'weights' should be normalized, but got sum(weights) = "
                                 f"{w.sum():.10g}. Divide them by their sum.")
            inits["weights"] = w
        if self.means_init is not None:
            m = finite_parameter("means_init", self.means_init, chosen)
            if m.shape != (K, d):
                raise ValueError(f"The parameter 'means' should have the shape of ({K}, {d}), but got {m.shape}. Pass "
                                 f"means_init of shape (n_components, n_features) = ({K}, {d}), or None {chosen}.")
            inits["means"] = m
        if self.precisions_init is not None:
            precisions = finite_parameter("precisions_init", self.precisions_init, chosen)
            inits["precisions"] = cov.check_precisions(precisions, self.covariance_type, K, d)
        return inits

    # ------------------------------------------------------------------ fitting
    def _initial_runs(self, blocks, X, inits, seeds):
        """One Run per restart, initialised in lockstep; user-given inits override the strategy's."""
        ct = self.covariance_type
        if len(inits) == 3:  # everything given: no pass over the data
            params = [(inits["weights"], inits["means"], None, None)] * len(seeds)
        else:
            specs = [(self.n_components, ct)] * len(seeds)
            params = initial_parameters_many(blocks, X, specs, self.init_params, self.reg_covar, seeds)
        runs = []
        for weights, means, covariances, pc in params:
            if "precisions" in inits:
                pc = cov.precision_cholesky_from_precisions(inits["precisions"], ct)
                covariances = cov.covariances_from_precision_cholesky(pc, ct)
            runs.append(Run(ct, inits.get("weights", weights), inits.get("means", means), covariances, pc))
        return runs

    def _warm_run(self):
        return Run(
            self.covariance_type,
            self.weights_,
            self.means_,
            self.covariances_,
            self.precisions_cholesky_,
            lower_bound=self.lower_bound_,
        )

    @io.rows_named(1)
    def fit(self, X, y=None, sample_weight=None):
        """Estimate the parameters with EM, one pass over X per iteration.

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
        data = X
        X, rows = io.with_reader(X, min_samples=2)
        self._check_n_samples(X)
        inits = self._check_parameters(X.shape[1])
        warm = self._is_warm(X.shape[1])
        if self.checkpoint is not None:
            Checkpoint.check_path(self.checkpoint, data)  # before any read of X, not at the first save
        weights = io.as_weights(sample_weight, X)
        blocks = Blocks(X, weights, self.split_every, rows, began_on)

        start = self._warm_run() if warm else None
        ckpt = Checkpoint.for_fit(self, X, blocks, weights is not None, start) if self.checkpoint is not None else None
        runs = ckpt.load() if ckpt is not None else None
        clock = time.perf_counter()
        if runs is None and warm:
            runs, how = [start], self._WARM_WORDS
        elif runs is None:  # only now is a Generator or RandomState drawn from, as in scikit-learn
            runs = self._initial_runs(blocks, X, inits, as_seed_sequence(self.random_state).spawn(self.n_init))
            how = self._start_words(inits, time.perf_counter() - clock)
        else:
            how = "resumed from the checkpoint"
        self._log_starts(runs, how)

        clock = time.perf_counter()
        runs = em(
            blocks,
            runs,
            tol=self.tol,
            max_iter=self.max_iter,
            reg_covar=self.reg_covar,
            on_iteration=self._progress(None if ckpt is None else ckpt.save),
        )
        self._log_ends(runs, time.perf_counter() - clock)
        best = best_run(runs, self.max_iter)
        if self.max_iter == 0 and not blocks.checked_passes:  # from given parameters, or a warm start: the
            blocks.map_reduce(_kernels.score_stats, best.model())  # rows checked in a pass, as scikit-learn checks X
        self._set_run(best, X.shape[1])
        self._set_feature_names(names)
        self._warn_if_not_converged()
        self._warn_of_empty_components()
        return self

    def _warn_of_empty_components(self):
        """A ConvergenceWarning naming the components that ended holding no rows (weights_ of the
        10·eps floor on N_k, as scikit-learn's): a weighted fit of fewer rows of positive weight than
        components had returned one without a word, where unweighted data are refused or warned of (a
        review). A BayesianGaussianMixture's unused components are its answer, not warned of."""
        empty = np.flatnonzero(self.weights_ < EMPTY_WEIGHT)
        if empty.size:
            io.warn_at_caller(
                f"{empty.size} of the {len(self.weights_)} components {'holds' if empty.size == 1 else 'hold'} no rows "
                f"(component"
                f"{'s' if empty.size > 1 else ''} {', '.join(map(str, empty[:10]))}{', ...' if empty.size > 10 else ''}"
                f", weights_ below {EMPTY_WEIGHT:.1e}): X holds fewer distinct rows of positive weight than "
                "n_components, or they started where no row is. Use fewer components, or check X and sample_weight "
                "for duplicate rows and rows of weight 0.", ConvergenceWarning)

    def _set_run(self, run, n_features):
        ct = self.covariance_type
        self.weights_ = run.weights
        self.means_ = run.means
        self.covariances_ = run.covariances
        self.precisions_cholesky_ = run.precisions_cholesky
        self.precisions_ = cov.precisions_from_precision_cholesky(run.precisions_cholesky, ct)
        self.converged_ = run.converged
        self.n_iter_ = run.n_iter
        self.lower_bound_ = run.lower_bound
        self.lower_bounds_ = list(run.lower_bounds)
        self.n_features_in_ = n_features

    # ------------------------------------------------------------------ inference
    def _model(self):
        check_fitted(self)
        with np.errstate(divide="ignore"):
            return _kernels.Model(self.covariance_type, np.log(self.weights_), self.means_, self.precisions_cholesky_)

    def _n_parameters(self):
        return cov.n_parameters(self.covariance_type, *np.shape(self.means_))

    def _criteria(self, X, sample_weight):
        check_fitted(self)
        io.check_feature_names(self, X)
        mean, n = self._score(*io.with_reader(X), sample_weight)
        return information_criteria(mean, n, self._n_parameters(), weighted=sample_weight is not None)

    @io.rows_named(1)
    def bic(self, X, sample_weight=None):
        """Bayesian information criterion on X (lower is better).

        Parameters
        ----------
        X : array-like, dask array, Zarr array or group, or a path or URL of a Zarr store,
            of shape (n_samples, n_features)
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights, as in :meth:`fit`: the criterion counts the total weight as the
            number of rows, so integer weights give the criterion of the repeated rows.

        Returns
        -------
        bic : float
        """
        return self._criteria(X, sample_weight)["bic"]

    @io.rows_named(1)
    def aic(self, X, sample_weight=None):
        """Akaike information criterion on X (lower is better).

        Parameters
        ----------
        X : array-like, dask array, Zarr array or group, or a path or URL of a Zarr store,
            of shape (n_samples, n_features)
        sample_weight : array-like of shape (n_samples,), optional, as in :meth:`bic`

        Returns
        -------
        aic : float
        """
        return self._criteria(X, sample_weight)["aic"]
