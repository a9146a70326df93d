"""Figures: valid PNGs for 1, 2 and 3 features, the histogram against NumPy, the density against SciPy."""

import os
import warnings
import sys

import dask.array as da
import numpy as np
import pytest
from scipy.stats import multivariate_normal

pytest.importorskip("matplotlib")
from matplotlib.image import imread  # noqa: E402

from dask_gmm import GaussianMixture  # noqa: E402
from dask_gmm import plot  # noqa: E402
from dask_gmm.modelfile import fitted_model  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _blobs(n, d, seed=0):
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0, 0.0], [6.0, 1.0, -2.0], [1.0, 7.0, 3.0]])[:, :d]
    labels = rng.integers(0, 3, n)
    A = rng.standard_normal((3, d, d)) * 0.6
    X = means[labels] + np.einsum("nij,nj->ni", A[labels], rng.standard_normal((n, d)))
    return X


@pytest.fixture(scope="module", params=[1, 2, 3], ids=["d1", "d2", "d3"])
def fitted(request):
    X = _blobs(6000, request.param)
    gm = GaussianMixture(3, random_state=0).fit(da.from_array(X, chunks=(1500, request.param)))
    return gm, X


def assert_png(path, min_side=200):
    assert os.path.getsize(path) > 1000
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    img = imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert min(img.shape[:2]) >= min_side
    assert img[..., :3].std() > 0.01  # not a blank image


def test_figures_are_valid_pngs(fitted, tmp_path):
    gm, X = fitted
    d = X.shape[1]
    features = (0, 2) if d == 3 else (0, 1)
    true = fitted_model(gm.weights_, gm.means_ + 0.1, gm.covariances_, "full")
    paths = [
        plot.plot_data_fit(gm, da.from_array(X, chunks=(1000, d)), tmp_path / "fit.png", features,
                           bins=50, true_model=true),
        plot.plot_density(gm, tmp_path / "density.png", features),
        plot.plot_lower_bounds(gm, tmp_path / "loglik.png"),
    ]
    for p in paths:
        assert_png(p)
    assert sorted(os.listdir(tmp_path)) == ["density.png", "fit.png", "loglik.png"]  # no temporary files left


def test_a_figure_replaces_only_a_png_image_or_an_empty_file(fitted, tmp_path):
    """The command line checked its figures' paths before its work only: a file written there
    while it ran was replaced by the figure (a review). The check is now also made at the rename,
    in the library's writes, for every caller."""
    from dask_gmm._files import write_atomic

    gm, X = fitted
    notes, empty, png = tmp_path / "notes.png", tmp_path / "empty.png", tmp_path / "old.png"
    notes.write_text("mine")
    empty.touch()
    plot.plot_lower_bounds(gm, png)
    with pytest.raises(ValueError, match="notes.png' exists and is not a PNG image; figures replace only PNG"):
        plot.plot_lower_bounds(gm, notes)
    for p in (empty, png):
        assert_png(plot.plot_lower_bounds(gm, p))
    empty.write_text("\n")  # as ``echo > empty.png`` makes it: blank, as a checkpoint may be (it had been refused)
    assert_png(plot.plot_lower_bounds(gm, empty))

    def another_program_writes(f):  # what lands at the path while the figure is drawn
        f.write(b"\x89PNG\r\n\x1a\n")
        (tmp_path / "late.png").write_text("mine too")

    with pytest.raises(ValueError, match="late.png' exists and is not a PNG image"):
        write_atomic(tmp_path / "late.png", another_program_writes, "wb", plot._replaces_only_png)
    assert notes.read_text() == "mine" and (tmp_path / "late.png").read_text() == "mine too"
    assert sorted(os.listdir(tmp_path)) == ["empty.png", "late.png", "notes.png", "old.png"]  # no temporary file


@pytest.mark.parametrize("scale", [1e150, 1e-150])
def test_figures_of_data_at_any_scale(scale, tmp_path):
    """Data scaled by 1e150: the density figure's LogNorm had no valid range once the densities
    underflowed ('Invalid vmin or vmax', after fit.png was written), and loading the model file
    warned of an overflow in its consistency check."""
    from dask_gmm import load_model, save_model

    X = _blobs(3000, 2, seed=4) * scale
    save_model(GaussianMixture(3, random_state=0).fit(X), tmp_path / "m.json")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        gm = load_model(tmp_path / "m.json")
        written = plot.plot_all(gm, X, str(tmp_path / "out") + os.sep, bins=40)
    for p in written:
        assert_png(p)


@pytest.mark.parametrize("scale, constant", [(1.0, 1e20), (1e-150, None), (1.0, -1e14)])
def test_the_default_extent_covers_the_data_at_any_scale(scale, constant, tmp_path):
    """The span was floored at 1e-12: data at 1e-150 were plotted in a fixed window of +-5e-14 (one
    bin, no contours), and a constant feature at 1e14 or more got the range (c, c) (an empty figure)."""
    X = _blobs(3000, 2, seed=5) * scale
    if constant is not None:
        X[:, 1] = constant
    gm = GaussianMixture(2, random_state=0, reg_covar=0.0 if scale < 1 else 1e-6).fit(X)
    extent = plot.default_extent(gm)
    for (lo, hi), col in zip(extent, X.T):
        assert lo < hi and lo <= col.min() and col.max() <= hi  # every row inside, a range of some width
    counts, _ = plot.data_histogram(X, (0, 1), 40, extent)
    assert counts.sum() == len(X) and np.count_nonzero(counts) > 1 + (constant is None) * 10
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # 'invalid value encountered in divide' before
        for p in plot.plot_all(gm, X, str(tmp_path / "out") + os.sep, bins=40):
            assert_png(p)


def test_plot_all_from_a_zarr_store(tmp_path):
    from dask_gmm import generate_mixture

    store = tmp_path / "mix.zarr"
    true = generate_mixture(store, 4000, 2, 3, chunk_size=1000, random_state=3)
    gm = GaussianMixture(3, random_state=0).fit(store)
    written = plot.plot_all(gm, store, str(tmp_path / "out") + os.sep, bins=40, true_model=true)
    assert [os.path.basename(p) for p in written] == ["fit.png", "density.png", "loglik.png"]
    for p in written:
        assert_png(p)


@pytest.mark.parametrize("output, expected", [
    ("fig.png", ["fig.png", "fig-density.png", "fig-loglik.png"]),
    ("run1", ["run1-fit.png", "run1-density.png", "run1-loglik.png"]),
    ("folder" + os.sep, ["folder/fit.png", "folder/density.png", "folder/loglik.png"]),
])
def test_figure_paths(output, expected):
    assert list(plot.figure_paths(output).values()) == [os.path.normpath(p) for p in expected]


def test_figure_paths_existing_folder(tmp_path):
    assert plot.figure_paths(tmp_path)["fit"] == os.path.join(tmp_path, "fit.png")


@pytest.mark.parametrize("features, bins, range_", [
    ((0, 1), 37, [(-3.0, 9.0), (-2.0, 10.0)]),
    ((2, 0), 25, [(-1.0, 1.0), (0.0, 5.0)]),  # most rows outside the range: dropped as NumPy does
    ((0, 2), 16, None),  # default range: the data's min and max, as NumPy
])
def test_histogram_equals_numpy(features, bins, range_):
    X = _blobs(5003, 3, seed=1)
    counts, edges = plot.data_histogram(da.from_array(X, chunks=(700, 3)), features, bins, range_)
    ref, xe, ye = np.histogram2d(X[:, features[0]], X[:, features[1]], bins=bins, range=range_)
    np.testing.assert_array_equal(counts, ref)
    np.testing.assert_allclose(edges[0], xe, rtol=0, atol=1e-12)
    np.testing.assert_allclose(edges[1], ye, rtol=0, atol=1e-12)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_histogram_refuses_a_bad_row_as_a_fit_does(bad):
    """A histogram would drop the row without a word (counted as outside the range)."""
    X = _blobs(5003, 3, seed=1)
    X[4321, 2] = bad
    for range_ in (None, [(-3.0, 9.0), (-2.0, 10.0)]):
        with pytest.raises(ValueError, match="rows 4200-4899 .*first bad row: 4321"):
            plot.data_histogram(da.from_array(X, chunks=(700, 3)), (0, 1), 20, range_)


def test_histogram_1d_equals_numpy():
    X = _blobs(3001, 1, seed=2)
    counts, edges = plot.data_histogram(X, (0,), 30, [(-2.0, 8.0)])
    ref, e = np.histogram(X[:, 0], bins=30, range=(-2.0, 8.0))
    np.testing.assert_array_equal(counts, ref)
    np.testing.assert_allclose(edges[0], e)


@pytest.mark.parametrize("range_", [None, [(3.0, 3.0), (-2.0, 8.0)]])
def test_histogram_of_a_constant_feature_equals_numpy(range_):
    """A constant feature (or an empty range): NumPy widens it to +-0.5, where bins of width 0
    counted every row in the last bin at the edge."""
    X = _blobs(3001, 2, seed=2)
    X[:, 0] = 3.0
    counts, edges = plot.data_histogram(da.from_array(X, chunks=(700, 2)), (0, 1), 10, range_)
    ref, xe, ye = np.histogram2d(X[:, 0], X[:, 1], bins=10, range=range_)
    np.testing.assert_array_equal(counts, ref)
    np.testing.assert_allclose(edges[0], xe, rtol=0, atol=1e-12)
    counts, edges = plot.data_histogram(X[:, :1], (0,), 10, None if range_ is None else range_[:1])
    ref, e = np.histogram(X[:, 0], bins=10, range=None if range_ is None else range_[0])
    np.testing.assert_array_equal(counts, ref)
    np.testing.assert_allclose(edges[0], e, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="from low to high"):
        plot.data_histogram(X[:, :1], (0,), 10, [(4.0, 3.0)])
    for big in (1e17, 1e300):  # where 0.5 is lost: widened relative to the value, never bins of width 0
        counts, edges = plot.data_histogram(np.full((100, 1), big), (0,), 10)
        assert counts.sum() == 100 and np.all(np.diff(edges[0]) > 0) and np.all(np.isfinite(edges[0]))


def test_mixture_density_equals_scipy():
    rng = np.random.default_rng(0)
    w = np.array([0.2, 0.5, 0.3])
    m = rng.normal(size=(3, 2))
    A = rng.normal(size=(3, 2, 2))
    c = np.einsum("kji,kjl->kil", A, A) + 0.1 * np.eye(2)
    pts = rng.normal(size=(50, 2)) * 3
    ref = sum(w[k] * multivariate_normal(m[k], c[k]).pdf(pts) for k in range(3))
    np.testing.assert_allclose(np.exp(plot.mixture_log_density(w, m, c, pts)), ref, rtol=1e-12)


def test_marginal_of_a_3d_model_uses_the_sub_blocks():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(2, 3, 3))
    covs = np.einsum("kji,kjl->kil", A, A) + np.eye(3)
    gm = fitted_model([0.4, 0.6], rng.normal(size=(2, 3)), covs, "full")
    w, m, c = plot._marginal(gm, (2, 0))
    np.testing.assert_array_equal(m, gm.means_[:, [2, 0]])
    np.testing.assert_array_equal(c[1], covs[1][np.ix_([2, 0], [2, 0])])


@pytest.mark.parametrize("cov", [[[2.0, 1.0], [1.0, 2.0]], [[2.0, -1.0], [-1.0, 2.0]], [[1.0, 0.9], [0.9, 4.0]],
                                 [[9.0, -2.5], [-2.5, 1.0]]])
def test_ellipse_of_a_tilted_covariance_is_its_one_sigma_contour(cov):
    """The ellipse's boundary is where the Mahalanobis distance is 1: a mirrored angle (arctan2 of
    the major axis's -y) went unseen by the diagonal covariances alone (a review)."""
    cov = np.array(cov)
    w, h, angle = plot._ellipse_params(cov)
    t = np.radians(angle)
    u = np.linspace(0, 2 * np.pi, 50)
    local = np.column_stack([w / 2 * np.cos(u), h / 2 * np.sin(u)])  # as matplotlib's Ellipse draws it
    points = local @ np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    np.testing.assert_allclose(np.einsum("ni,ij,nj->n", points, np.linalg.inv(cov), points), 1.0, rtol=1e-12)


def test_ellipse_of_a_diagonal_covariance():
    w, h, angle = plot._ellipse_params(np.diag([4.0, 1.0]))
    assert (w, h) == (4.0, 2.0) and angle % 180 == pytest.approx(0.0)
    w, h, angle = plot._ellipse_params(np.diag([1.0, 9.0]))
    assert (w, h) == (6.0, 2.0) and angle % 180 == pytest.approx(90.0)


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
def test_every_covariance_type(covariance_type, tmp_path):
    X = _blobs(3000, 2, seed=4)
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    assert_png(plot.plot_data_fit(gm, X, tmp_path / "fit.png", bins=30))


def test_bins_are_bounded():
    """--bins 1e9 ran the machine out of memory (the kernel killed the process, no message)."""
    X = _blobs(2000, 2)
    for bins in (0, plot.MAX_BINS + 1, 10**9, 2.5, True):
        with pytest.raises(ValueError, match=f"bins must be a whole number from 1 to {plot.MAX_BINS}"):
            plot.data_histogram(X, bins=bins)
    assert plot.data_histogram(X, bins=plot.MAX_BINS)[0].shape == (plot.MAX_BINS, plot.MAX_BINS)


def test_errors(tmp_path):
    X = _blobs(2000, 3)
    gm = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="distinct indices"):
        plot.plot_density(gm, tmp_path / "x.png", features=(0, 3))
    with pytest.raises(ValueError, match="distinct indices"):
        plot.plot_density(gm, tmp_path / "x.png", features=(1, 1))
    # silently cut or rounded before: (0, 1, 2) and (0, 1.7) plotted (0, 1)
    with pytest.raises(ValueError, match=r"Pass 2 feature indices to plot, got \(0, 1, 2\)"):
        plot.plot_density(gm, tmp_path / "x.png", features=(0, 1, 2))
    with pytest.raises(ValueError, match=r"whole-number indices, got \(0\.0, 1\.7\)\. Pass the columns to plot, such as"):
        plot.plot_density(gm, tmp_path / "x.png", features=(0, 1.7))
    X1 = X[:, :1]
    gm1 = GaussianMixture(2, random_state=0).fit(X1)
    plot.plot_density(gm1, tmp_path / "one.png")  # the default (0, 1) is feature 0 of 1-D data
    with pytest.raises(ValueError, match=r"Pass 1 feature indices to plot, got \(0, 5\)"):
        plot.plot_density(gm1, tmp_path / "x.png", features=(0, 5))
    counts, _ = plot.data_histogram(X, bins=np.int64(5))  # a TypeError inside dask before
    assert counts.shape == (5, 5) and counts.sum() == len(X)
    with pytest.raises(ValueError, match=r"^X has 2 features, but the model has 3\. Pass the data the model was"):
        plot.plot_data_fit(gm, X[:, :2], tmp_path / "x.png")
    true = fitted_model(gm.weights_, gm.means_, gm.covariances_, "full")
    with pytest.raises(ValueError, match="no EM iterations"):
        plot.plot_lower_bounds(true, tmp_path / "x.png")
    assert len(plot.plot_all(true, X, tmp_path / "t", bins=20)) == 2  # no curve to draw: skipped
    assert not os.path.exists(tmp_path / "x.png")


def test_missing_matplotlib_says_how_to_install(monkeypatch, tmp_path):
    """Every plot function says how to install matplotlib, before any work. Some imported a
    matplotlib submodule first and failed with "No module named 'matplotlib.lines'"."""
    from dask_gmm import select_model

    X = np.random.default_rng(0).normal(size=(300, 2))
    gm = GaussianMixture(1, random_state=0).fit(X)
    sel = select_model(X, n_components=[1], random_state=0)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    for call in (lambda: plot.plot_density(gm, tmp_path / "x.png"), lambda: plot.plot_data_fit(gm, X, tmp_path / "x.png"),
                 lambda: plot.plot_lower_bounds(gm, tmp_path / "x.png"), lambda: plot.plot_criterion(sel, tmp_path / "x.png"),
                 lambda: plot.plot_all(gm, X, tmp_path / "x")):
        with pytest.raises(ImportError, match=r"^dask_gmm's figures need matplotlib: pip install 'dask_gmm\[plot\]'$"):
            call()
    assert os.listdir(tmp_path) == []


def test_criterion_plot(tmp_path):
    from dask_gmm import select_model

    X = np.random.default_rng(0).normal(size=(600, 2)) + np.repeat([[0, 0], [8, 0]], 300, axis=0)
    sel = select_model(X, n_components=[1, 2, 3], covariance_types=("full", "spherical"), random_state=0)
    path = plot.plot_criterion(sel, tmp_path / "crit.png")
    image = imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 500
    assert sel.best_.n_components == 2
    fig = plot.criterion_figure(sel)  # what it draws: each panel's criterion, a line per covariance type
    for ax, crit in zip(fig.axes, ("bic", "aic")):
        assert ax.get_title().startswith(crit.upper())
        for line in ax.get_lines()[:2]:
            want = sorted((r["n_components"], r[crit]) for r in sel.results_ if r["covariance_type"] == line.get_label())
            assert list(zip(line.get_xdata(), line.get_ydata())) == want
        assert len(ax.get_lines()) == (3 if crit == "bic" else 2)  # the selected one starred in the criterion's panel
    best = next(r for r in sel.results_ if r["n_components"] == 2 and r["covariance_type"] == sel.best_.covariance_type)
    assert list(fig.axes[0].get_lines()[2].get_ydata()) == [best["bic"]]
    # one count (select -k 2) had fractional ticks, 1.900 to 2.100: the candidates' counts are the ticks
    assert plot.criterion_ticks([2, 2, 2]) == [2] and plot.criterion_ticks([8, 1, 2, 4]) == [1, 2, 4, 8]
    assert plot.criterion_ticks(range(1, 40)) is None
    one = select_model(X, n_components=2, covariance_types=("full", "diag"), random_state=0)
    assert imread(plot.plot_criterion(one, tmp_path / "one.png")).shape[1] > 500


def test_a_bin_of_one_row_is_not_drawn_as_an_empty_one(tmp_path):
    """Greys' white end drew every bin of one row as empty: 519 of a probe's 599 rows were invisible."""
    colours = plot.count_colours(np.array([1.0, 10.0, 1000.0]))
    one, empty = colours["cmap"](colours["norm"](1.0)), (1.0, 1.0, 1.0, 1.0)
    assert max(one[:3]) < 0.85  # a grey that shows on white
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (500, 2)), rng.uniform(-40, 40, (40, 2))])  # sparse rows: bins of one
    gm = GaussianMixture(1, random_state=0).fit(X)
    pixels = imread(plot.plot_data_fit(gm, X, tmp_path / "fit.png", bins=80))[..., :3]
    assert np.sum(np.all(np.abs(pixels - np.array(one[:3])) < 0.02, axis=-1)) > 100  # those bins are drawn
    assert not np.allclose(one, empty)


def test_a_bayesian_curve_is_named_its_lower_bound_and_a_history_array_is_plotted(tmp_path):
    """A BayesianGaussianMixture's curve was titled and labelled the mean log-likelihood, where it is
    the variational lower bound, summed over the rows (-8550 against a score of -3.5); a history set
    as a NumPy array was 'truth value of an array is ambiguous' (a review)."""
    from PIL import Image

    from dask_gmm import BayesianGaussianMixture

    X = np.random.default_rng(0).normal(size=(600, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bgm = BayesianGaussianMixture(2, random_state=0, max_iter=5).fit(X)
    said = Image.open(plot.plot_lower_bounds(bgm, tmp_path / "b.png")).text["Description"]
    assert "lower bound (ELBO)" in said and "log-likelihood" not in said
    gm = GaussianMixture(2, random_state=0).fit(X)
    said = Image.open(plot.plot_lower_bounds(gm, tmp_path / "g.png")).text["Description"]
    assert "mean log-likelihood per row" in said and "ELBO" not in said
    gm.lower_bounds_ = np.asarray(gm.lower_bounds_)
    assert len(plot.plot_all(gm, X, tmp_path / "arr" / "")) == 3


def test_a_plot_that_fails_leaves_no_folders_it_made(tmp_path):
    """The figures' folders were made before the data were read: a NaN row's error left them, empty
    (a review). Folders that were there are kept."""
    X = np.random.default_rng(0).normal(size=(600, 2))
    gm = GaussianMixture(2, random_state=0).fit(X)
    X[5] = np.nan
    (tmp_path / "kept").mkdir()
    for output in (tmp_path / "a" / "b" / "c" / "fig.png", tmp_path / "kept" / "new" / "", tmp_path / "kept" / "f.png"):
        with pytest.raises(ValueError, match="NaN"):
            plot.plot_all(gm, X, output)
    assert os.listdir(tmp_path) == ["kept"] and os.listdir(tmp_path / "kept") == []


def test_contour_levels_hold_their_mass_with_a_component_narrower_than_a_grid_cell():
    """The levels were measured on the plot's even grid: beside a component of sd 100, one of sd
    0.01 fell between the grid's points, and the contours labelled 50/90/99 % held 75/95/99.5 % of
    the mass (a review). Checked against rows the model itself draws (scikit-learn's sampler)."""
    from sklearn.mixture import GaussianMixture as SKGaussianMixture

    weights, means = np.array([0.5, 0.5]), np.array([[0.0, 0.0], [37.3, 12.1]])
    covs = np.array([np.eye(2) * 100.0**2, np.eye(2) * 0.01**2])
    levels = plot._hdr_levels(weights, means, covs)
    sk = SKGaussianMixture(2, random_state=1).fit(np.random.default_rng(0).normal(size=(10, 2)))
    sk.weights_, sk.means_, sk.covariances_ = weights, means, covs
    rows, _ = sk.sample(200_000)
    density = np.exp(plot.mixture_log_density(weights, means, covs, rows))
    for level, mass in zip(levels, plot.HDR_MASSES):
        assert abs(np.mean(density >= level) - mass) < 0.01, (level, mass)


def test_data_titles_count_rows_in_words(tmp_path):
    """The titles count the rows, and those outside the range, in words: "1 row", not "1 rows"."""
    from PIL import Image

    X = np.vstack([np.random.default_rng(0).normal(size=(599, 2)), [[99.0, 99.0]]])
    gm = GaussianMixture(1, random_state=0).fit(X[:599])
    said = Image.open(plot.plot_data_fit(gm, X, tmp_path / "2d.png", extent=[(-50, 50)] * 2)).text["Description"]
    assert "Data: 600 rows in a 200x200 histogram; 1 row outside the plotted range" in said
    gm1 = GaussianMixture(1, random_state=0).fit(X[:599, :1])
    said = Image.open(plot.plot_data_fit(gm1, X[:1, :1], tmp_path / "1d.png", bins=4)).text["Description"]
    assert "Data: 1 row, 4 bins" in said


def test_labels_of_a_chain_of_near_means_take_distinct_heights():
    """Means 0-1 and 1-2 near, 0-2 not: counting the near earlier means had raised 1's and 2's labels
    alike, drawn over each other (a review). Each takes the lowest height its near earlier ones left."""
    means = np.array([[0.0, 0.0], [0.9, 0.0], [1.8, 0.0], [1.8, 0.0], [9.0, 9.0]])
    levels = plot._label_levels(means, near=1.0)
    assert levels == [0, 1, 0, 2, 0]  # 3 is near 1 and 2 both
    for k in range(len(means)):  # no two near means share a height
        for j in range(k):
            if np.hypot(*(means[j] - means[k])) < 1.0:
                assert levels[j] != levels[k]


def test_light_components_are_drawn_faint():
    """An unused component of a Bayesian mixture keeps its prior's broad covariance: its ellipses had
    spanned the figure as boldly as the used ones'."""
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    weights = np.array([0.6, 0.4 - 5e-5, 5e-5])
    covs = np.stack([np.eye(2), np.eye(2), 100 * np.eye(2)])
    plot._draw_ellipses(ax, np.zeros((3, 2)), covs, weights, plot._colours(3))
    alphas = [(p.get_alpha(), p.get_linewidth()) for p in ax.patches]  # 1 then 2 sigma, per component
    assert alphas[:4] == [(1.0, 2.0), (1.0, 1.4)] * 2
    assert alphas[4:] == [(0.35, 0.8)] * 2
    assert ax.patches[5].get_width() == pytest.approx(2 * 2 * 10.0)  # the 2 sigma ellipse of variance 100


def test_a_tol_0_curve_is_not_titled_did_not_converge(tmp_path):
    """tol=0 runs every iteration by choice (the demo's notebook fit): its curve had been titled 'did
    not converge' (a review); a fit stopped short of its tol still is."""
    from PIL import Image

    X = np.random.default_rng(0).normal(size=(600, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = {tol: GaussianMixture(2, random_state=0, max_iter=3, tol=tol).fit(X) for tol in (0.0, 1e-12)}
    said = {tol: Image.open(plot.plot_lower_bounds(gm, tmp_path / f"{tol}.png")).text["Description"]
            for tol, gm in runs.items()}
    assert "EM convergence: ran every iteration (tol 0), 3 iterations" in said[0.0]
    assert "EM convergence: did not converge, 3 iterations" in said[1e-12]
