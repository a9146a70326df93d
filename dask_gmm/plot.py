"""Figures of a fitted mixture and its data, computed out of core (optional extra: matplotlib).

The data are only ever read through a lazy histogram (one pass over the
chunks, a ``bins x bins`` array back), so the figures work on stores much
larger than memory. Densities are the mixture's marginal on the chosen pair of
features: weights, the means' two coordinates and the 2 x 2 sub-blocks of the
covariances (exact for Gaussian mixtures).

Figures are drawn on a bare :class:`matplotlib.figure.Figure` rendered by Agg:
pyplot and the user's backend are never touched, so the functions are safe in
scripts, servers and threads. Each PNG is written to a temporary file and then
renamed, so a reader never sees half an image.

Functions
---------
plot_data_fit(model, X, path)      data histogram + fitted density contours + component ellipses
plot_density(model, path)          fitted density as an image
plot_lower_bounds(model, path)     log-likelihood against EM iteration
plot_all(model, X, output)         the three, returns their paths
plot_criterion(selection, path)    BIC/AIC of select_model's candidates
figure_paths(output)               the paths plot_all writes for ``output``
data_histogram(X, ...)             the (lazy-computed) histogram used by plot_data_fit
default_extent(*models)            a plot range covering every component
mixture_log_density(...)           log density of a mixture at given points
"""

from __future__ import annotations

import contextlib
import numbers
import os
import shutil

import numpy as np
from scipy.special import logsumexp
from sklearn.utils.validation import check_is_fitted

from . import io
from ._files import holds_other_than_png, is_png, replaced_mode, sync_folder, temporary_sibling, write_atomic
from ._covariance import as_full_covariances, log_gaussian_prob, precision_cholesky
from ._kernels import check_block
from .mixture import check_fitted

__all__ = ["plot_data_fit", "plot_density", "plot_lower_bounds", "plot_all", "plot_criterion", "figure_paths",
           "data_histogram", "default_extent", "mixture_log_density"]

DENSITY_DECADES = 4  # dynamic range of the density image
_INSTALL_ADVICE = "dask_gmm's figures need matplotlib: pip install 'dask_gmm[plot]'"
#: Probability mass enclosed by the density contours (highest-density regions).
HDR_MASSES = (0.5, 0.9, 0.99)
DPI = 120
#: Histogram bins per axis at most: about what a figure has pixels. dask makes one histogram per
#: chunk and sums them in a tree, so a few are alive per thread: at 1024, 8 MiB each (at 4096,
#: 128 MiB each, and 64 chunks peaked at 2.2-3.4 GB; --bins 1e9 ran the machine out of memory).
MAX_BINS = 1024
_CONTOUR_COLOUR = "tab:purple"
# tab10 without purple (the density contours) and red (the true means)
_COMPONENT_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:brown", "tab:pink", "tab:olive",
                      "tab:cyan", "tab:gray")


# ------------------------------------------------------------------ helpers
def require_matplotlib():
    """Import matplotlib, or raise ImportError saying how to install it: first thing in every plot function."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(_INSTALL_ADVICE) from exc


def _figure(figsize):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=DPI, layout="constrained")


def description(fig):
    """``fig`` in words, as its PNG's ``Description`` holds it (the text a reader or a search can
    use for the image): each panel's title, axis labels and legend entries, panels apart by ``|``."""
    panels = []
    for ax in fig.axes:
        legend = ax.get_legend()
        words = [ax.get_title(), ax.get_xlabel() and f"x: {ax.get_xlabel()}", ax.get_ylabel() and f"y: {ax.get_ylabel()}",
                 legend and "legend: " + ", ".join(t.get_text() for t in legend.get_texts())]
        panels.append("; ".join(" ".join(w.replace("\n", ". ").split()) for w in words if w))
    return " | ".join(p for p in panels if p)


def _save(fig, path):
    """Write ``fig`` as PNG to ``path`` atomically (temporary file in the same folder, then rename),
    replacing only a PNG image or a blank file there (checked at the rename: the command line checks
    its figures' paths before its work too, but a file written there since was replaced). The PNG's
    ``Description`` is :func:`description` of the figure."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    metadata = {"Description": description(fig)}
    return write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=DPI, metadata=metadata), "wb",
                        _replaces_only_png)


def _replaces_only_png(path):
    if holds_other_than_png(path):  # as the command line checks first
        raise ValueError(f"{os.fspath(path)!r} exists and is not a PNG image; figures replace only PNG files. "
                         "Choose another path, or remove it yourself.")


def _check_model(model):
    check_fitted(model)
    return model.means_.shape  # (K, d)


def _marginal(model, features):
    """Weights (K,), means (K, f) and full covariances (K, f, f) of the mixture on ``features``."""
    K, d = _check_model(model)
    f = list(features)
    covs = as_full_covariances(model.covariances_, model.covariance_type, K, d)
    return (np.asarray(model.weights_, np.float64), np.asarray(model.means_, np.float64)[:, f],
            covs[:, f][:, :, f])


def _check_features(features, n_features):
    given = tuple(np.atleast_1d(features).tolist())
    if any(isinstance(f, bool) or not isinstance(f, numbers.Integral) for f in given):
        raise ValueError(f"features must be whole-number indices, got {given}. Pass the columns to plot, "
                         f"such as (0, 1).")
    want = min(2, n_features)
    features = (0,) if n_features == 1 and given == (0, 1) else given  # the default pair, for 1-D data
    if len(features) != want:
        raise ValueError(f"Pass {want} feature indices to plot, got {given}.")
    if len(set(features)) != len(features) or any(not 0 <= f < n_features for f in features):
        raise ValueError(
            f"features must be {want} distinct indices in [0, {n_features - 1}], got {features}."
        )
    return features


def _axis_label(f):
    return f"feature {f}  (X[:, {f}])"


def mixture_log_density(weights, means, covariances, points):
    """log of sum_k w_k N(points | means_k, covariances_k).

    Parameters
    ----------
    weights : ndarray of shape (K,)
    means : ndarray of shape (K, f)
    covariances : ndarray of shape (K, f, f)
    points : ndarray of shape (n, f)

    Returns
    -------
    ndarray of shape (n,)
    """
    pc = precision_cholesky(covariances, "full")
    with np.errstate(divide="ignore"):
        wlp = log_gaussian_prob(np.asarray(points, np.float64), means, pc, "full") + np.log(weights)
    return logsumexp(wlp, axis=1)


def default_extent(*models, features=(0, 1), n_sigma=4.0, pad=0.05):
    """Plot range covering every component of every model to ``n_sigma`` standard deviations.

    Parameters
    ----------
    *models : fitted GaussianMixture or None (skipped)
    features : (int, int), the two features plotted
    n_sigma : float, standard deviations of each component's marginal covered
    pad : float, the range widened on each side by this share of it

    Returns
    -------
    list of (low, high), one per feature
    """
    lows, highs = [], []
    for m in models:
        if m is None:
            continue
        _, means, covs = _marginal(m, features)
        sd = np.sqrt(np.diagonal(covs, axis1=1, axis2=2))
        lows.append((means - n_sigma * sd).min(axis=0))
        highs.append((means + n_sigma * sd).max(axis=0))
    low, high = np.min(lows, axis=0), np.max(highs, axis=0)
    # a span that the floats there can resolve (a constant feature at 1e20 spans nothing), at any scale
    span = np.maximum(high - low, np.maximum(np.abs(low), np.abs(high)) * 2.0**-40)
    span = np.where(span > 0, span, 1.0)
    return [(float(lo - pad * s), float(hi + pad * s)) for lo, hi, s in zip(low, high, span)]


def data_histogram(X, features=(0, 1), bins=200, range=None):
    """Histogram of the data on one or two features, over the chunks in one pass.

    Parameters
    ----------
    X : array-like, dask array, zarr.Array or path of shape (n_samples, n_features)
    features : tuple of 1 or 2 ints
    bins : int
    range : sequence of (low, high) per feature, optional
        Defaults to the data's min and max (which costs a first pass); rows
        outside the range are not counted.

    Returns
    -------
    counts : ndarray of shape (bins,) or (bins, bins), float64
        ``counts[i, j]`` counts rows with feature 0 in x bin i and feature 1 in
        y bin j, exactly as :func:`numpy.histogram2d`.
    edges : list of ndarray of shape (bins + 1,), one per feature
    """
    import dask
    import dask.array as da

    if isinstance(bins, bool) or not isinstance(bins, numbers.Integral) or not 1 <= bins <= MAX_BINS:
        raise ValueError(f"bins must be a whole number from 1 to {MAX_BINS} (bins per axis: a figure has "
                         f"fewer pixels), got {bins!r}.")
    bins = int(bins)  # a NumPy integer is not one to dask's histogramdd
    X = _finite_rows(io.as_dask_array(X))
    features = _check_features(features, X.shape[1])
    cols = [X[:, f] for f in features]
    if range is None:
        extremes = dask.compute(*[(c.min(), c.max()) for c in cols])
        range = [(float(lo), float(hi)) for lo, hi in extremes]
    range = [_outer_edges(*map(float, r)) for r in range]
    if len(cols) == 1:
        counts, edges = da.histogram(cols[0], bins=bins, range=range[0])
        return counts.compute().astype(np.float64), [np.asarray(edges)]
    counts, xe, ye = da.histogram2d(cols[0], cols[1], bins=bins, range=range)
    return counts.compute().astype(np.float64), [np.asarray(xe), np.asarray(ye)]


def _outer_edges(lo, hi):
    """A histogram's range as NumPy's histogram takes it: a constant feature (lo == hi) gets
    (lo - 0.5, hi + 0.5), not bins of width 0 (at |lo| > 2**51, where 0.5 is lost, +-|lo| 2**-40);
    a backwards range is a ValueError."""
    if not lo <= hi:
        raise ValueError(f"A histogram range must run from low to high, got ({lo}, {hi}).")
    half = max(0.5, abs(lo) * 2.0**-40)
    return (lo - half, hi + half) if lo == hi else (lo, hi)


def _finite_rows(X):
    """The dask array ``X`` (n, d), each block checked as it is read: a NaN or infinite value is a
    ValueError naming its row, as in a fit (a histogram would drop it without a word)."""
    offsets = io.row_starts(X.chunks[0])

    def checked(x, block_info=None):
        check_block(x, None, int(offsets[block_info[0]["chunk-location"][0]]))
        return x

    return X.map_blocks(checked, dtype=X.dtype)


def _hdr_levels(weights, means, covs, n=20_000):
    """Density values whose super-level sets enclose :data:`HDR_MASSES` of the mixture's probability:
    the quantiles of the density at ``n`` rows drawn from it (seeded: the same figure each time;
    about 0.5 % in mass). Measured on the plot's even grid, a component narrower than a grid
    cell was all but missed, and the contours said 50 % where they held 75 % (a review). All 0
    where the densities underflow or overflow float64 (data of scale 1e150 or 1e-150)."""
    rng = np.random.default_rng(0)
    counts = rng.multinomial(n, weights / weights.sum())
    parts = []
    for k in np.flatnonzero(counts):
        vals, vecs = np.linalg.eigh(covs[k])  # a square root of any positive semi-definite one
        root = vecs * np.sqrt(np.clip(vals, 0, None))
        parts.append(means[k] + rng.standard_normal((counts[k], len(means[k]))) @ root.T)
    log_density = mixture_log_density(weights, means, covs, np.concatenate(parts))
    with np.errstate(under="ignore", over="ignore"):
        levels = [float(np.exp(np.quantile(log_density, 1.0 - m))) for m in HDR_MASSES]
    return levels if all(0 < v < np.inf for v in levels) else [0.0] * len(HDR_MASSES)  # decreasing with the mass


def _grid(extent, n=300):
    xs = np.linspace(*extent[0], n)
    ys = np.linspace(*extent[1], n)
    gx, gy = np.meshgrid(xs, ys, indexing="xy")  # gx[j, i] = xs[i]: rows are y, as images want
    return xs, ys, gx, gy


#: Where on matplotlib's Greys the histograms' colours start: a bin of one row is this grey
#: (about 80 % white), not the white of an empty bin (Greys' own start drew such bins as empty).
HIST_LIGHTEST = 0.3


def count_colours(counts):
    """``cmap`` and ``norm`` for a histogram of ``counts`` (rows per bin; empty bins are drawn
    as NaN, the background): log-scaled greys from one row (:data:`HIST_LIGHTEST`) to the most."""
    import matplotlib
    from matplotlib.colors import ListedColormap, LogNorm

    greys = ListedColormap(matplotlib.colormaps["Greys"](np.linspace(HIST_LIGHTEST, 1.0, 256)))
    return dict(cmap=greys, norm=LogNorm(vmin=1, vmax=max(2.0, np.nanmax(counts, initial=1.0))))


def _colours(K):
    import matplotlib

    if K <= len(_COMPONENT_COLOURS):
        return [matplotlib.colors.to_rgba(c) for c in _COMPONENT_COLOURS[:K]]
    cmap = matplotlib.colormaps["tab20"]
    return [cmap(k % cmap.N) for k in range(K)]


def _ellipse_params(cov2):
    """Width and height of the 1-sigma ellipse and its angle in degrees, from a 2 x 2 covariance."""
    vals, vecs = np.linalg.eigh(cov2)  # ascending
    vals = np.clip(vals, 0.0, None)
    major = vecs[:, 1]
    angle = np.degrees(np.arctan2(major[1], major[0]))
    return 2 * np.sqrt(vals[1]), 2 * np.sqrt(vals[0]), angle


def _equal_aspect_ratio(extent):
    """Height/width of the data ranges when equal scales suit them (true ellipse shapes), else None."""
    (x0, x1), (y0, y1) = extent
    ratio = (y1 - y0) / (x1 - x0)
    return ratio if 2 / 3 <= ratio <= 1.5 else None


def _figsize_2d(extent):
    """Figure size whose plot area roughly matches the axes box (so that the colour bar fits)."""
    ratio = _equal_aspect_ratio(extent) or 0.75
    return 8.0, float(np.clip(5.6 * ratio + 1.4, 3.5, 12.6))


def _maybe_equal_aspect(ax, extent):
    if _equal_aspect_ratio(extent) is not None:
        ax.set_aspect("equal", adjustable="box")


def _rows(n):
    """``"1 row"``, ``"1,234 rows"``."""
    return f"{n:,} row{'s' if n != 1 else ''}"


def _title_model(model):
    K = model.means_.shape[0]
    return f"{K} component{'s' if K != 1 else ''}, {model.covariance_type} covariance"


#: Components lighter than this are drawn faint: an unused component of a Bayesian mixture keeps its
#: prior's broad covariance, and its ellipses had spanned the figure over the used ones' (a review).
FAINT_WEIGHT = 1e-3


def _label_levels(means, near):
    """How many label heights each mean's label (k: weight) is raised by: the lowest that no earlier
    mean within ``near`` has taken (counting the near ones had given two labels of a chain of near
    means one height, drawn over each other, a review)."""
    levels = []
    for k in range(len(means)):
        taken = {levels[j] for j in range(k) if np.hypot(*(means[j] - means[k])) < near}
        levels.append(min(set(range(k + 1)) - taken))
    return levels


def _draw_ellipses(ax, means, covs, weights, colours):
    """Each component's 1 and 2 sigma ellipses (2-D ``means``, ``covs`` (K, 2, 2)); faint for a weight
    below :data:`FAINT_WEIGHT`."""
    from matplotlib.patches import Ellipse

    for k in range(len(means)):
        w, h, angle = _ellipse_params(covs[k])
        faint = weights[k] < FAINT_WEIGHT
        for n_sigma, style in ((1, "solid"), (2, "dashed")):
            ax.add_patch(Ellipse(means[k], n_sigma * w, n_sigma * h, angle=angle, fill=False,
                                 edgecolor=colours[k], linewidth=0.8 if faint else 2.0 if n_sigma == 1 else 1.4,
                                 linestyle=style, alpha=0.35 if faint else 1.0, zorder=4))


def _mark_means(ax, means, colours, weights, extent, label="fitted means"):
    ax.scatter(means[:, 0], means[:, 1], marker="X", s=90, c=colours, edgecolors="black",
               linewidths=0.8, zorder=5, label=label)
    # labels of means closer than 4% of the plot's diagonal are stacked, not drawn over each other
    (x0, x1), (y0, y1) = extent
    near = 0.04 * np.hypot(x1 - x0, y1 - y0)
    for k, ((x, y), level) in enumerate(zip(means, _label_levels(means, near))):
        ax.annotate(f"{k}: w={weights[k]:.2g}", (x, y), xytext=(7, 7 + 16 * level), textcoords="offset points",
                    fontsize=11, fontweight="bold", color="black", zorder=6,
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec=colours[k], alpha=0.85))


# ------------------------------------------------------------------ figures
def plot_data_fit(model, X, path, features=(0, 1), bins=200, *, extent=None, true_model=None, title=None):
    """The data as a 2-D histogram with the fitted density and each component's ellipses.

    One pass over ``X`` (a lazy dask histogram); nothing else reads the data.
    For one-feature data, a histogram with the fitted density curve and its
    weighted components.

    Parameters
    ----------
    model : fitted GaussianMixture
    X : array-like, dask array, zarr.Array or path of shape (n_samples, n_features)
    path : str or os.PathLike
        PNG file to write.
    features : pair of int, default (0, 1)
        The two features to show when the data have more than two.
    bins : int, default 200
        Histogram bins per axis.
    extent : sequence of (low, high) per feature, optional
        Default: every component (of the model and of ``true_model``) to 4 sigma.
        Rows outside are not drawn; their number is given in the title.
    true_model : fitted GaussianMixture, optional
        Its means are marked for comparison (the generator's truth, say).
    title : str, optional
        Names the model in the title (default: its size and covariance type).

    Returns
    -------
    str, the path written
    """
    require_matplotlib()
    K, d = _check_model(model)
    io.check_feature_names(model, X)  # as predict: other columns, other axes
    Xd = io.as_dask_array(X)
    if Xd.shape[1] != d:
        raise ValueError(f"X has {Xd.shape[1]} features, but the model has {d}. Pass the data the model was fitted "
                         "to (or data of its features).")
    features = _check_features(features, d)
    if true_model is not None and true_model.means_.shape[1] != d:
        true_model = None
    extent = default_extent(model, true_model, features=features) if extent is None else extent
    counts, edges = data_histogram(Xd, features, bins, extent)
    n = Xd.shape[0]
    outside = n - int(round(counts.sum()))
    if len(features) == 1:
        return _plot_data_fit_1d(model, counts, edges[0], n, outside, features[0], path, true_model, title)

    import matplotlib.lines as mlines

    weights, means, covs = _marginal(model, features)
    colours = _colours(K)
    fig = _figure(_figsize_2d(extent))
    ax = fig.add_subplot()
    shown = np.where(counts > 0, counts, np.nan)
    mesh = ax.pcolormesh(edges[0], edges[1], shown.T, **count_colours(counts), rasterized=True)
    fig.colorbar(mesh, ax=ax, label="rows per bin (log scale)")

    _, _, gx, gy = _grid(extent)
    dens = np.exp(mixture_log_density(weights, means, covs, np.column_stack([gx.ravel(), gy.ravel()])))
    dens = dens.reshape(gx.shape)
    levels = _hdr_levels(weights, means, covs)
    levels_up = sorted(set(levels))
    if len(levels_up) == len(levels) and levels_up[-1] > 0:
        cs = ax.contour(gx, gy, dens, levels=levels_up, colors=_CONTOUR_COLOUR, linewidths=1.1,
                        linestyles=["dotted", "dashed", "solid"][: len(levels_up)], zorder=3)
        fmt = {lev: f"{int(round(100 * m))}%" for lev, m in zip(levels, HDR_MASSES)}
        ax.clabel(cs, levels_up, fmt=fmt, fontsize=8, inline=True)

    _draw_ellipses(ax, means, covs, weights, colours)
    _mark_means(ax, means, colours, weights, extent)
    handles = [
        mlines.Line2D([], [], color=_CONTOUR_COLOUR, lw=1.1, label="fitted density: 50/90/99% regions"),
        mlines.Line2D([], [], color="dimgray", lw=2.0, label="component 1σ ellipse"),
        mlines.Line2D([], [], color="dimgray", lw=1.4, ls="--", label="component 2σ ellipse"),
        mlines.Line2D([], [], color="none", marker="X", markerfacecolor="lightgray",
                      markeredgecolor="black", markersize=9, label="fitted means (k: weight)"),
    ]
    if np.any(weights < FAINT_WEIGHT):
        handles.insert(3, mlines.Line2D([], [], color="dimgray", lw=0.8, alpha=0.35,
                                        label=f"ellipses of weight < {FAINT_WEIGHT:g}"))
    if true_model is not None:
        _, tmeans, _ = _marginal(true_model, features)
        ax.scatter(tmeans[:, 0], tmeans[:, 1], marker="o", s=110, facecolors="none",
                   edgecolors="red", linewidths=1.8, zorder=6)
        handles.append(mlines.Line2D([], [], color="none", marker="o", markerfacecolor="none",
                                     markeredgecolor="red", markersize=10, mew=1.8, label="true means"))
    ax.legend(handles=handles, loc="best", fontsize=8, framealpha=0.9)
    ax.set_xlim(extent[0])
    ax.set_ylim(extent[1])
    _maybe_equal_aspect(ax, extent)
    ax.set_xlabel(_axis_label(features[0]))
    ax.set_ylabel(_axis_label(features[1]))
    note = f"; {_rows(outside)} outside the plotted range" if outside else ""
    pair = f" (features {features[0]}, {features[1]} of {d})" if d > 2 else ""
    ax.set_title(f"Data: {_rows(n)} in a {bins}x{bins} histogram{note}\n"
                 f"{title or 'Fitted mixture: ' + _title_model(model)}{pair}", fontsize=11)
    return _save(fig, path)


def _plot_data_fit_1d(model, counts, edges, n, outside, feature, path, true_model, title):
    weights, means, covs = _marginal(model, (feature,))
    K = len(weights)
    colours = _colours(K)
    width = np.diff(edges)
    fig = _figure((8.0, 5.0))
    ax = fig.add_subplot()
    ax.stairs(counts / (n * width), edges, fill=True, color="lightgray", label="data (density-normalised)")
    xs = np.linspace(edges[0], edges[-1], 600)
    total = np.exp(mixture_log_density(weights, means, covs, xs[:, None]))
    ax.plot(xs, total, color="black", lw=2, label="fitted mixture density")  # not component 0's colour
    for k in range(K):
        comp = np.exp(mixture_log_density(weights[k:k + 1], means[k:k + 1], covs[k:k + 1], xs[:, None]))
        ax.plot(xs, comp, color=colours[k], lw=1.2, ls="--", label=f"component {k} (weight {weights[k]:.3f})")
        ax.axvline(means[k, 0], color=colours[k], lw=0.8, alpha=0.7)
    if true_model is not None:
        _, tmeans, _ = _marginal(true_model, (feature,))
        for j, m in enumerate(tmeans[:, 0]):
            ax.axvline(m, color="red", lw=1.0, ls=":", label="true means" if j == 0 else None)
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel(_axis_label(feature))
    ax.set_ylabel("probability density")
    note = f"; {_rows(outside)} outside the plotted range" if outside else ""
    ax.set_title(f"Data: {_rows(n)}, {len(counts)} bins{note}\n{title or 'Fitted mixture: ' + _title_model(model)}",
                 fontsize=11)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_density(model, path, features=(0, 1), extent=None):
    """The fitted mixture density (its marginal on ``features``) as an image.

    Parameters
    ----------
    model : fitted GaussianMixture
    path : str or os.PathLike, PNG file to write
    features : pair of int, default (0, 1)
    extent : sequence of (low, high) per feature, optional
        Default: every component to 4 sigma.

    Returns
    -------
    str, the path written
    """
    require_matplotlib()
    K, d = _check_model(model)
    features = _check_features(features, d)
    extent = default_extent(model, features=features) if extent is None else extent
    weights, means, covs = _marginal(model, features)
    colours = _colours(K)
    if len(features) == 1:
        fig = _figure((8.0, 5.0))
        ax = fig.add_subplot()
        xs = np.linspace(*extent[0], 800)
        ax.plot(xs, np.exp(mixture_log_density(weights, means, covs, xs[:, None])), color="black", lw=2)
        for k in range(K):
            ax.axvline(means[k, 0], color=colours[k], lw=1, ls="--", label=f"mean of component {k}")
        ax.set_xlabel(_axis_label(features[0]))
        ax.set_ylabel("probability density")
        ax.set_xlim(extent[0])
        ax.legend(fontsize=8)
        ax.set_title(f"Fitted mixture density\n{_title_model(model)}", fontsize=11)
        return _save(fig, path)

    import matplotlib

    xs, ys, gx, gy = _grid(extent, 400)
    # log10 of the density, shown on a linear scale: any data scale works (densities of data
    # scaled by 1e150 underflow, and a LogNorm of them had no valid range)
    log10 = mixture_log_density(weights, means, covs, np.column_stack([gx.ravel(), gy.ravel()])) / np.log(10.0)
    log10 = log10.reshape(gx.shape)
    top = float(log10.max())
    log10 = np.maximum(log10, top - DENSITY_DECADES - 2)  # no -inf (far from every mean)
    cmap = matplotlib.colormaps["viridis"].with_extremes(under=matplotlib.colormaps["viridis"](0.0))
    fig = _figure(_figsize_2d(extent))
    ax = fig.add_subplot()
    im = ax.imshow(log10, origin="lower", aspect="auto", cmap=cmap, vmin=top - DENSITY_DECADES, vmax=top,
                   extent=[xs[0], xs[-1], ys[0], ys[-1]], interpolation="bilinear")
    fig.colorbar(im, ax=ax, label=f"log10 of the probability density ({DENSITY_DECADES} decades)",
                 extend="min")
    _mark_means(ax, means, colours, weights, extent, label="component means (k: weight)")
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    ax.set_xlim(extent[0])
    ax.set_ylim(extent[1])
    _maybe_equal_aspect(ax, extent)
    ax.set_xlabel(_axis_label(features[0]))
    ax.set_ylabel(_axis_label(features[1]))
    pair = f" on features {features[0]}, {features[1]} of {d}" if d > 2 else ""
    ax.set_title(f"Fitted mixture density{pair}\n{_title_model(model)}", fontsize=11)
    return _save(fig, path)


def plot_lower_bounds(model, path, *, tol=None):
    """Mean log-likelihood against EM iteration (``model.lower_bounds_``), and its change.

    The top panel shows the log-likelihood; when the starting value is far
    below the rest it is left off the scale (and its value written) so that
    the later iterations stay readable. The bottom panel shows the size of
    each iteration's change on a log scale, floored at the float64 resolution
    of the values.

    Parameters
    ----------
    model : fitted GaussianMixture
    path : str or os.PathLike, PNG file to write
    tol : float, optional
        Convergence threshold to draw (a model file does not record the one used).

    Returns
    -------
    str, the path written

    Raises
    ------
    ValueError
        When the model records no iterations (not fitted by EM).
    """
    require_matplotlib()
    from matplotlib.ticker import MaxNLocator

    check_is_fitted(model)
    lb = np.asarray(getattr(model, "lower_bounds_", []), np.float64)
    lb = lb[np.isfinite(lb)]
    if lb.size == 0:
        raise ValueError("The model records no EM iterations (lower_bounds_ is empty); nothing to plot.")
    it = np.arange(1, lb.size + 1)
    fig = _figure((8.0, 6.0))
    ax, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    ax.plot(it, lb, marker="o", ms=3, color="tab:blue")
    rest = lb[1:]
    if rest.size >= 2 and (rest.min() - lb[0]) > 5 * max(rest.max() - rest.min(), 1e-12):
        span = max(rest.max() - rest.min(), 1e-9 * max(1.0, abs(rest.max())))
        ax.set_ylim(rest.min() - 0.08 * span, rest.max() + 0.08 * span)
        ax.annotate(f"iteration 1: {lb[0]:.6g} (off the scale)", xy=(1, rest.min() - 0.08 * span),
                    xytext=(40, 30), textcoords="offset points", fontsize=9, color="tab:blue",
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="tab:blue", alpha=0.9),
                    arrowprops=dict(arrowstyle="->", color="tab:blue"))
    # a BayesianGaussianMixture's lower bound is its variational one, not a mean log-likelihood (a review)
    what = "lower bound (ELBO)" if hasattr(model, "weight_concentration_prior_type") else "mean log-likelihood"
    ax.set_ylabel(what if what.startswith("lower") else f"{what} per row")
    converged = ("converged" if getattr(model, "converged_", False)
                 else "ran every iteration (tol 0)" if getattr(model, "tol", None) == 0 else "did not converge")
    ax.set_title(f"EM convergence: {converged}, {model.n_iter_} iterations\n"
                 f"final {what} {lb[-1]:.6f}", fontsize=11)
    ax.grid(alpha=0.3)
    floor = 8 * np.finfo(np.float64).eps * max(1.0, float(np.abs(lb).max()))
    if lb.size > 1:
        change = np.diff(lb)
        size = np.maximum(np.abs(change), floor)
        up, down, noise = change > floor, change < -floor, np.abs(change) <= floor
        ax2.plot(it[1:], size, color="tab:green", lw=0.8, alpha=0.6)
        if up.any():
            ax2.plot(it[1:][up], size[up], "o", ms=3, color="tab:green", label="increase")
        if down.any():
            ax2.plot(it[1:][down], size[down], "v", ms=5, color="tab:red", label="decrease")
        if noise.any():
            ax2.plot(it[1:][noise], size[noise], "s", ms=3, color="gray", label="no change (float64 resolution)")
        if tol:
            ax2.axhline(tol, color="black", ls="--", lw=1, label=f"tol = {tol:g}")
        ax2.set_yscale("log")
        ax2.set_ylim(floor / 3, 10 * max(size.max(), tol or 0.0))
        ax2.legend(fontsize=8, loc="best")
    ax2.set_ylabel("|change| (log scale)")
    ax2.set_xlabel("EM iteration")
    ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.grid(alpha=0.3, which="major")
    return _save(fig, path)


def plot_criterion(selection, path):
    """BIC and AIC against the number of components, one line per covariance type.

    Parameters
    ----------
    selection : dask_gmm.ModelSelection (from :func:`dask_gmm.select_model`)
    path : str or os.PathLike, PNG file to write

    Returns
    -------
    str, the path written
    """
    require_matplotlib()
    return _save(criterion_figure(selection), path)


def criterion_figure(selection):
    """The figure of :func:`plot_criterion`, a matplotlib Figure: its two panels (BIC, AIC) hold a line
    per covariance type, of the candidates' criterion against their number of components."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure((8.0, 5.0))
    axes = fig.subplots(1, 2, sharex=True)
    types = list(dict.fromkeys(r["covariance_type"] for r in selection.results_))
    best = selection.best_
    for ax, crit in zip(axes, ("bic", "aic")):
        for i, ct in enumerate(types):
            rows = sorted((r["n_components"], r[crit]) for r in selection.results_ if r["covariance_type"] == ct)
            ks, values = zip(*rows)
            ax.plot(ks, values, marker="o", ms=4, color=_COMPONENT_COLOURS[i % len(_COMPONENT_COLOURS)], label=ct)
        if crit == selection.criterion:
            chosen = next(r for r in selection.results_ if r["n_components"] == best.n_components
                          and r["covariance_type"] == best.covariance_type)
            ax.plot([chosen["n_components"]], [chosen[crit]], marker="*", ms=16, color="tab:red", ls="none",
                    label=f"selected: K={best.n_components}, {best.covariance_type}")
        ax.set_title(crit.upper() + (" (criterion used)" if crit == selection.criterion else ""), fontsize=11)
        ax.set_xlabel("number of components K")
        ticks = criterion_ticks([r["n_components"] for r in selection.results_])
        if ticks is None:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        else:
            ax.set_xticks(ticks)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("criterion (lower is better)")
    return fig


def criterion_ticks(ks, most=12):
    """The K axis's ticks: the candidates' component counts when there are at most ``most`` of them,
    else None (matplotlib's whole-number ticks). Those gave 1.900, 1.925, ... for one count."""
    ks = sorted(set(int(k) for k in ks))
    return ks if len(ks) <= most else None


#: File names written by :func:`plot_all` into a folder.
FIGURES = {"fit": "fit.png", "density": "density.png", "loglik": "loglik.png"}


def figure_paths(output):
    """Paths :func:`plot_all` writes for ``output``.

    - a folder (existing, or ending with a separator): ``fit.png``, ``density.png``, ``loglik.png`` inside;
    - a file name ending in ``.png``: the data figure there, ``<stem>-density.png`` and
      ``<stem>-loglik.png`` beside it;
    - any other prefix ``P``: ``P-fit.png``, ``P-density.png``, ``P-loglik.png``.

    A device, FIFO or socket (``/dev/null``) is none of these: a ValueError, as for model files.
    """
    output = os.fspath(output)
    if os.path.exists(output) and not (os.path.isdir(output) or os.path.isfile(output)):
        raise ValueError(f"The figures' output {output!r} is a device, FIFO or socket, not a folder, a .png file "
                         "or a prefix of file names. Choose another output.")
    if os.path.isdir(output) or output.endswith((os.sep, "/")):
        return {k: os.path.join(output, v) for k, v in FIGURES.items()}
    if output.lower().endswith(".png"):
        stem = output[:-4]
        return {"fit": output, "density": f"{stem}-density.png", "loglik": f"{stem}-loglik.png"}
    return {k: f"{output}-{k}.png" for k in FIGURES}


def plot_all(model, X, output, *, features=(0, 1), bins=200, true_model=None, tol=None):
    """Write the data-and-fit figure, the density and (if recorded) the log-likelihood curve.

    Parameters
    ----------
    model : fitted GaussianMixture
    X : data as for :func:`plot_data_fit`
    output : str or os.PathLike
        A folder, a ``.png`` file name or a prefix (see :func:`figure_paths`).
    features, bins, true_model
        As for :func:`plot_data_fit`.
    tol : float, optional
        Convergence threshold drawn on the log-likelihood figure.

    Returns
    -------
    list of str, the paths written

    A model with no curve (``max_iter=0``) writes none, and removes a PNG image that an
    earlier plot left at the curve's path, so that the figures there are all this model's.
    The figures are drawn into a hidden folder beside them, then renamed into place
    together: a run interrupted while drawing leaves the earlier set whole (it left some
    figures of each model).
    """
    require_matplotlib()
    paths = figure_paths(output)
    history = getattr(model, "lower_bounds_", None)
    curve = history is not None and len(history) > 0  # (an array set by hand too)
    folder = os.path.dirname(os.path.abspath(paths["fit"]))
    made = _missing_folders(folder)  # removed again if the figures fail (a review found them left)
    os.makedirs(folder, exist_ok=True)
    staging = temporary_sibling(paths["fit"])  # swept by a later write there if a kill leaves it
    os.mkdir(staging)
    written = False
    try:
        staged = {key: os.path.join(staging, FIGURES[key]) for key in paths}
        plot_data_fit(model, X, staged["fit"], features, bins, true_model=true_model)
        plot_density(model, staged["density"], features)
        if curve:
            plot_lower_bounds(model, staged["loglik"], tol=tol)
        keys = [key for key in paths if key != "loglik" or curve]
        for key in keys:  # all checked before any is renamed; a replaced figure keeps its permissions
            _replaces_only_png(paths[key])
            kept = replaced_mode(paths[key])
            if kept is not None:
                os.chmod(staged[key], kept)
        for key in keys:
            os.replace(staged[key], paths[key])
        if not curve and is_png(paths["loglik"]):
            os.remove(paths["loglik"])
        sync_folder(folder)
        written = True
        return [paths[key] for key in keys]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for made_folder in made if not written else ():  # deepest first, each only if still empty
            with contextlib.suppress(OSError):
                os.rmdir(made_folder)


def _missing_folders(folder):
    """The folders that ``os.makedirs(folder)`` would make, deepest first."""
    missing = []
    while folder and not os.path.exists(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        folder = parent if parent != folder else ""
    return missing
