"""Model selection: many candidate mixtures fitted in lockstep, sharing every read of the data.

Every candidate (n_components × covariance_type × restart) is initialised and
iterated together: each pass reads each chunk once for all candidates still
running, and a candidate that has converged stops costing compute. One final
pass scores every candidate at its fitted parameters for BIC and AIC.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from numbers import Integral

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from . import _covariance as cov
from . import _kernels, io
from ._em import Blocks, Run, client_get, em
from ._init import as_seed_sequence, initial_parameters_many
from .mixture import TIE, GaussianMixture, best_run, check_n_samples, information_criteria

logger = logging.getLogger(__name__)

CRITERIA = ("bic", "aic")


@dataclass
class ModelSelection:
    """The outcome of :func:`select_model`.

    Attributes
    ----------
    best_ : GaussianMixture
        The fitted candidate with the lowest criterion (of those tied within 1e-12, relative,
        the first in ``results_``).
    results_ : list of dict
        One per candidate (best restart), by covariance type in the order given, each type's by
        n_components ascending (repeats dropped): n_components, covariance_type, bic,
        aic, score (the mean log-likelihood per row at the fitted parameters, which BIC and AIC
        use, as ``best_.score(X)``), lower_bound (scikit-learn's ``lower_bound_``: at the
        parameters entering the last iteration), n_iter, converged.
    criterion : {'bic', 'aic'}
    """

    best_: GaussianMixture
    results_: list = field(default_factory=list)
    criterion: str = "bic"


@io.rows_named(0)
def select_model(
    X,
    n_components=range(1, 9),
    covariance_types=("full",),
    criterion="bic",
    n_init=1,
    max_iter=100,
    tol=1e-3,
    random_state=None,
    sample_weight=None,
    *,
    init_params="kmeans",
    reg_covar=1e-6,
    split_every=8,
):
    """Fit a GaussianMixture for every (n_components, covariance_type) and keep the best.

    Parameters
    ----------
    X : array-like, dask.array.Array, zarr.Array or path, shape (n_samples, n_features)
    n_components : int or iterable of int
        A single int fits that number of components only.
    covariance_types : str or iterable of {'full', 'tied', 'diag', 'spherical'}
        A single string is one type, as ``("full",)``.
    criterion : {'bic', 'aic'}
    n_init, max_iter, tol, random_state, init_params, reg_covar, split_every : as GaussianMixture
        Every candidate starts as ``GaussianMixture(n_components, covariance_type=...,
        random_state=random_state, ...)`` would (the same seeds for each), so with an int or
        SeedSequence ``random_state`` (not None, a Generator or a RandomState, which give fresh
        seeds on every use) ``best_`` and any candidate refit alone give the same model.
    sample_weight : array-like or dask array of shape (n_samples,), optional
        Frequency weights, as in ``GaussianMixture.fit``: BIC and AIC count the total weight as the
        number of rows (``best_.bic(X, sample_weight)`` gives the same value), so integer weights
        select as the repeated rows would. Scaling the weights leaves the fits unchanged but not
        the criteria: weights that are not counts (normalised to sum to 1, say) make BIC and AIC
        meaningless; scale them to the number of rows they stand for.

    Returns
    -------
    ModelSelection
    """
    began_on = client_get()  # before X is opened: a Client closed meanwhile fails the selection
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}.")
    n_components, covariance_types = (v.item() if isinstance(v, np.ndarray) and v.ndim == 0 else v
                                      for v in (n_components, covariance_types))  # a 0-d array: its value
    if isinstance(n_components, (Integral, str)) or not isinstance(n_components, Iterable):  # one value, checked below
        n_components = [n_components]
    if isinstance(covariance_types, str) or not isinstance(covariance_types, Iterable):  # one type, not its letters
        covariance_types = [covariance_types]
    n_components, types = list(n_components), []
    for ct in covariance_types:  # in order, once each (a list, as a type may not be hashable)
        if ct not in types:
            types.append(ct)
    if not n_components or not types:
        raise ValueError("select_model needs at least one n_components value and one covariance type.")
    if any(isinstance(k, bool) or not isinstance(k, Integral) or k < 1 for k in n_components):
        raise ValueError(f"n_components values must be integers >= 1, got {n_components}.")
    ks = sorted({int(k) for k in n_components})
    for ct in types:  # the shared arguments, checked as GaussianMixture checks them
        GaussianMixture(ks[-1], covariance_type=ct, tol=tol, reg_covar=reg_covar, max_iter=max_iter, n_init=n_init,
                        init_params=init_params, split_every=split_every)._check_common()
    names = io.feature_names(X)
    X, rows = io.with_reader(X, min_samples=2)
    check_n_samples(ks[-1], X.shape[0])
    weights = io.as_weights(sample_weight, X)
    blocks = Blocks(X, weights, split_every, rows, began_on)
    specs = [(k, ct) for ct in types for k in ks for _ in range(n_init)]
    # every candidate's restarts from the seeds a GaussianMixture(random_state=random_state) fit
    # would draw (fresh copies: the initialisation spawns from them), so that best_, which keeps
    # random_state, refits to itself, as in a scikit-learn grid search
    restarts = as_seed_sequence(random_state).spawn(n_init)
    seeds = [as_seed_sequence(restarts[i % n_init]) for i in range(len(specs))]
    params = initial_parameters_many(blocks, X, specs, init_params, reg_covar, seeds)
    runs = [Run(ct, *p) for (_, ct), p in zip(specs, params)]
    logger.info("select_model: %d candidates x %d restarts in lockstep", len(specs) // n_init, n_init)
    em(blocks, runs, tol=tol, max_iter=max_iter, reg_covar=reg_covar)

    best_runs = [best_run(runs[i : i + n_init]) for i in range(0, len(runs), n_init)]
    scores = blocks.map_reduce(_kernels.many, _kernels.score_stats, [(r.model(),) for r in best_runs])
    results, fitted = [], []
    for run, (total, weight) in zip(best_runs, scores):
        k, d = run.means.shape
        gm = GaussianMixture(
            k, covariance_type=run.covariance_type, tol=tol, reg_covar=reg_covar, max_iter=max_iter,
            n_init=n_init, init_params=init_params, random_state=random_state, split_every=split_every,
        )
        gm._set_run(run, d)
        gm._set_feature_names(names)
        fitted.append(gm)
        score = _kernels.per_weight(total, weight)
        crit = information_criteria(score, weight, cov.n_parameters(run.covariance_type, k, d), weighted=weights is not None)
        results.append(
            dict(n_components=k, covariance_type=run.covariance_type, **crit, score=score,
                 lower_bound=run.lower_bound, n_iter=run.n_iter, converged=run.converged)
        )
    values = [r[criterion] for r in results]  # the first of those tied with the lowest (as restarts are)
    best = next(i for i, v in enumerate(values) if v - min(values) <= TIE * max(1.0, abs(min(values))))
    if not fitted[best].converged_ and max_iter > 0:
        io.warn_at_caller("The selected model did not converge; increase max_iter or tol.", ConvergenceWarning)
    fitted[best]._warn_of_empty_components()  # as its fit alone warns (a review)
    return ModelSelection(fitted[best], results, criterion)
