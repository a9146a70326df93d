"""pandas and dask DataFrames as X: scikit-learn's feature-name checks, lazy dask DataFrames."""

import re
import warnings

import dask.array as da
import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SKGaussianMixture

from dask_gmm import BayesianGaussianMixture, GaussianMixture, load_model, save_model, select_model

from .conftest import make_blobs

pd = pytest.importorskip("pandas")
dd = pytest.importorskip("dask.dataframe")

KW = dict(random_state=0, init_params="random_from_data")


@pytest.fixture
def frame():
    X = make_blobs(n=600, means=((0.0, 10.0), (10.0, 0.0)))
    return X, pd.DataFrame(X, columns=["a", "b"])


@pytest.mark.parametrize("estimator", [GaussianMixture, BayesianGaussianMixture])
def test_feature_names_as_scikit_learn(frame, estimator):
    """Swapped columns were taken as they came: every label wrong, and no error."""
    X, df = frame
    gm = estimator(2, **KW).fit(df)
    sk = SKGaussianMixture(2).fit(df)
    np.testing.assert_array_equal(gm.feature_names_in_, sk.feature_names_in_)
    np.testing.assert_array_equal(gm.predict(df), GaussianMixture(2, **KW).fit(X).predict(X))
    methods = ("predict", "predict_proba", "score_samples", "score") + (("bic", "aic") if hasattr(sk, "bic") and
                                                                       hasattr(gm, "bic") else ())
    for method in methods:
        for other in (df[["b", "a"]], df.rename(columns={"a": "x"})):
            with pytest.raises(ValueError, match="The feature names should match those that were passed during fit"):
                getattr(gm, method)(other)
            with pytest.raises(ValueError, match="The feature names should match those that were passed during fit"):
                getattr(sk, method)(other)
        with pytest.warns(UserWarning, match="X does not have valid feature names"):
            getattr(gm, method)(X)
    plain = estimator(2, **KW).fit(X)
    assert not hasattr(plain, "feature_names_in_")
    with pytest.warns(UserWarning, match="X has feature names, but"):
        plain.predict(df)
    gm.fit(X)  # refitted without names: they go, as in scikit-learn
    assert not hasattr(gm, "feature_names_in_")


def test_select_model_keeps_the_names(frame):
    _, df = frame
    best = select_model(df, n_components=[1, 2], init_params="random_from_data", random_state=0).best_
    np.testing.assert_array_equal(best.feature_names_in_, ["a", "b"])
    with pytest.raises(ValueError, match="The feature names should match"):
        best.predict(df[["b", "a"]])


def test_nullable_dtypes_and_missing_values(frame):
    X, df = frame
    ref = GaussianMixture(2, **KW).fit(X)
    got = GaussianMixture(2, **KW).fit(df.astype("Float64"))  # columns: a Fortran-ordered array
    np.testing.assert_allclose(got.means_, ref.means_, rtol=1e-12)
    holed = df.astype("Float64")
    holed.iloc[7, 1] = pd.NA
    with pytest.raises(ValueError, match="first bad row: 7"):
        GaussianMixture(2, **KW).fit(holed)


def test_a_series_is_refused_as_1d():
    for X in (pd.Series(np.arange(10.0)), pd.Series(np.arange(10.0)).astype("Float64")):
        with pytest.raises(ValueError, match="Expected 2D array"):
            GaussianMixture(1).fit(X)


def test_dask_dataframe_stays_lazy(frame):
    """A dask DataFrame was read whole into memory, and its outputs were NumPy."""
    X, df = frame
    ddf = dd.from_pandas(df, npartitions=3)
    ref = GaussianMixture(2, **KW).fit(X)
    gm = GaussianMixture(2, **KW).fit(ddf)
    np.testing.assert_allclose(gm.means_, ref.means_, rtol=1e-12)
    labels = gm.predict(ddf)
    assert isinstance(labels, da.Array) and labels.numblocks == (3,)
    np.testing.assert_array_equal(labels.compute(), ref.predict(X))
    np.testing.assert_array_equal(gm.feature_names_in_, ["a", "b"])
    with pytest.raises(ValueError, match="The feature names should match"):
        gm.predict(ddf[["b", "a"]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gm.score(ddf) == pytest.approx(ref.score(X), rel=1e-12)


@pytest.mark.parametrize("estimator", [GaussianMixture, BayesianGaussianMixture])
def test_a_failed_fit_keeps_the_names(frame, estimator):
    """The names were reset before the fit's other checks, so a refused fit changed them alone."""
    X, df = frame
    gm = estimator(2, warm_start=True, **KW).fit(df)
    wide = pd.DataFrame(np.c_[X, X[:, :1]], columns=["p", "q", "r"])
    with pytest.raises(ValueError, match="has 3 features"):
        gm.fit(wide)
    gm.set_params(n_components=0)
    with pytest.raises(ValueError, match="n_components"):
        gm.fit(wide[["p", "q"]])
    np.testing.assert_array_equal(gm.feature_names_in_, ["a", "b"])
    gm.set_params(n_components=2)
    gm.predict(df)  # still the fit's names


def test_model_files_keep_the_names(frame, tmp_path):
    _, df = frame
    save_model(GaussianMixture(2, **KW).fit(df), tmp_path / "m.json")
    loaded = load_model(tmp_path / "m.json")
    np.testing.assert_array_equal(loaded.feature_names_in_, ["a", "b"])
    with pytest.raises(ValueError, match="The feature names should match"):
        loaded.predict(df[["b", "a"]])
    save_model(GaussianMixture(2, **KW).fit(df.to_numpy()), tmp_path / "plain.json")
    assert not hasattr(load_model(tmp_path / "plain.json"), "feature_names_in_")


def test_mixed_column_names_are_refused_before_any_pass(frame, monkeypatch):
    """As scikit-learn refuses them; select_model found out only after every candidate's EM."""
    from dask_gmm import mixture, selection

    def no_pass(*args, **kwargs):
        raise AssertionError("a pass over the data began")

    monkeypatch.setattr(selection, "initial_parameters_many", no_pass)
    monkeypatch.setattr(mixture, "initial_parameters_many", no_pass)
    X, _ = frame
    mixed = pd.DataFrame(X, columns=[0, "b"])
    for fit in (lambda: GaussianMixture(2, **KW).fit(mixed), lambda: select_model(mixed, n_components=[1, 2]),
                lambda: SKGaussianMixture(2).fit(mixed)):
        with pytest.raises(TypeError, match="Feature names are only supported if all input features have string names"):
            fit()


def test_sparse_and_nullable_dask_dataframes(frame):
    """A dask DataFrame of nullable, arrow or bool columns was refused as 'dtype object'; sparse
    DataFrames and dask arrays of sparse blocks were densified or failed obscurely."""
    import scipy.sparse

    X, df = frame
    ref = GaussianMixture(2, **KW).fit(df)
    for other in (df.astype("Float64"), df.assign(b=df.b > 0).astype({"a": "float32"})):
        got = GaussianMixture(2, **KW).fit(dd.from_pandas(other, npartitions=2))
        np.testing.assert_allclose(got.means_, GaussianMixture(2, **KW).fit(other).means_, rtol=1e-12)
    np.testing.assert_allclose(GaussianMixture(2, **KW).fit(dd.from_pandas(df.astype("Float64"), npartitions=2))
                               .means_, ref.means_, rtol=1e-12)
    sparse = df.astype({"a": pd.SparseDtype("float64", 0.0)})  # one column sparse: pandas' .sparse refuses it
    for bad, said in ((sparse, "X.astype('float64')"), (dd.from_pandas(sparse, npartitions=2), "X.astype('float64')"),
                      (da.from_array(scipy.sparse.csr_matrix(X), chunks=(300, 2), asarray=False), "X.toarray()")):
        with pytest.raises(ValueError, match="sparse|Sparse") as err:  # a DataFrame has no toarray
            GaussianMixture(2).fit(bad)
        assert said in str(err.value)
        if said.startswith("X.astype"):  # the advice works (X.sparse.to_dense() had, for no dask and no mixed frame)
            np.testing.assert_allclose(GaussianMixture(2, **KW).fit(bad.astype("float64")).means_, ref.means_,
                                       rtol=1e-12)


def test_plot_checks_the_names(frame, tmp_path):
    pytest.importorskip("matplotlib")
    from dask_gmm import plot

    _, df = frame
    gm = GaussianMixture(2, **KW).fit(df)
    with pytest.raises(ValueError, match="The feature names should match"):
        plot.plot_data_fit(gm, df[["b", "a"]], tmp_path / "fit.png")
    assert not (tmp_path / "fit.png").exists()
    plot.plot_data_fit(gm, df, tmp_path / "fit.png")


def test_model_files_with_bad_names_are_refused(frame, tmp_path):
    import json

    _, df = frame
    save_model(GaussianMixture(2, **KW).fit(df), tmp_path / "m.json")
    d = json.loads((tmp_path / "m.json").read_text())
    for names in (["a"], ["a", 1], ["a", "a"], "ab", None):
        (tmp_path / "bad.json").write_text(json.dumps({**d, "feature_names_in": names}))
        with pytest.raises(ValueError, match="'feature_names_in' must be a list of 2 distinct strings"):
            load_model(tmp_path / "bad.json")


def test_per_row_outputs_of_a_dask_dataframe_read_it_once(frame):
    """Its partitions' lengths were computed at the call (a pass), then again read at compute."""
    X, df = frame
    reads = []

    def counted(part):
        reads.append(len(part))
        return part

    ddf = dd.from_pandas(df, npartitions=3).map_partitions(counted, meta=df.iloc[:0])
    gm = GaussianMixture(2, **KW).fit(df)
    for method in ("predict", "predict_proba", "score_samples"):
        reads.clear()
        lazy = getattr(gm, method)(ddf)
        assert reads == [] and isinstance(lazy, da.Array)  # nothing read at the call
        np.testing.assert_allclose(lazy.compute(), getattr(gm, method)(df), rtol=1e-12)
        assert sorted(reads) == sorted(len(p) for p in np.array_split(X, 3))  # each partition once
    holed = df.copy()
    holed.iloc[450, 0] = np.nan  # in the last partition: named by its row in X
    with pytest.raises(ValueError, match="first bad row: 450"):
        gm.predict(dd.from_pandas(holed, npartitions=3)).compute()


@pytest.mark.parametrize("make, said", [(lambda p: p.astype(str), "object"),
                                        (lambda p: p.apply(lambda c: pd.to_datetime(c, unit="s")), r"datetime64\[ns\]")])
def test_per_row_outputs_check_each_partition_as_a_fit_does(frame, make, said):
    """A partition of other values than its frame declares is refused, as a fit refuses it: numeric
    strings had been converted and dates were a bare TypeError naming no row (a Dask user's review)."""
    X, df = frame
    gm = GaussianMixture(2, **KW).fit(df)
    ddf = dd.from_pandas(df, npartitions=3)
    bad = ddf.map_partitions(lambda p: make(p) if p.index[0] == 200 else p, meta=ddf._meta)
    rows = r"^The block of X holding rows 200-399 holds " + said + " values where its dask array declares numbers"
    with pytest.raises(ValueError, match=rows):
        gm.fit(bad)
    for method in ("predict", "predict_proba", "score_samples"):
        with pytest.raises(ValueError, match=rows):
            getattr(gm, method)(bad).compute()


def test_per_row_outputs_of_many_partitions(frame):
    """Blocks' first rows are added up in groups of ``START_GROUP`` (a chain of ``dask.delayed`` sums had
    taken 3 s to build for 1,000 partitions): rows beyond the first groups are still in their places."""
    from dask_gmm._em import START_GROUP

    X, df = frame
    ddf = dd.from_pandas(df, npartitions=2 * START_GROUP + 20)
    assert ddf.npartitions > 2 * START_GROUP
    gm = GaussianMixture(2, **KW).fit(df)
    for method in ("predict", "predict_proba", "score_samples"):
        np.testing.assert_allclose(getattr(gm, method)(ddf).compute(), getattr(gm, method)(df), rtol=1e-12)
    holed = df.copy()
    holed.iloc[590, 1] = np.nan  # in the third group
    with pytest.raises(ValueError, match="first bad row: 590"):
        gm.score_samples(dd.from_pandas(holed, npartitions=2 * START_GROUP + 20)).compute()


@pytest.mark.parametrize("column, shown", [
    (["x"] * 600, "str|string"),
    (pd.Categorical(["u"] * 600), "category"),
    (pd.to_datetime(["2020-01-01"] * 600), "datetime64"),
    (np.arange(600) * 1j, "complex128"),
])
@pytest.mark.parametrize("lazy", [False, True])
def test_a_column_of_no_numbers_is_named(frame, column, shown, lazy):
    """NumPy's 'could not convert string to float: 'x'' named no column (and for a dask DataFrame came
    from inside the graph); dates were 'dtype object'; a column of number objects still converts."""
    _, df = frame
    bad = df.assign(when=column)
    with pytest.raises(ValueError, match=rf"^X's column 'when' \(({shown})[^)]*\) does not hold real numbers"):
        GaussianMixture(2, **KW).fit(dd.from_pandas(bad, npartitions=2) if lazy else bad)
    objects = df.assign(b=df.b.astype(object))  # numbers as objects: converted, as scikit-learn does
    ref = GaussianMixture(2, **KW).fit(df).means_
    got = GaussianMixture(2, **KW).fit(dd.from_pandas(objects, npartitions=2) if lazy else objects).means_
    np.testing.assert_allclose(got, ref, rtol=1e-12)


@pytest.mark.parametrize("library", ["polars", "pyarrow"])
def test_a_column_of_no_numbers_in_another_librarys_frame_is_named(frame, library):
    """A polars or pyarrow frame with a text column was refused as 'dtype object', a dtype the frame
    does not have, naming no column (a review); its numbers fit as pandas' do."""
    lib = pytest.importorskip(library)
    X, df = frame
    make = lib.DataFrame if library == "polars" else lib.table
    good = make({name: df[name].to_numpy() for name in df.columns})
    np.testing.assert_allclose(GaussianMixture(2, **KW).fit(good).means_, GaussianMixture(2, **KW).fit(df).means_,
                               rtol=1e-12)
    bad = make({**{name: df[name].to_numpy() for name in df.columns}, "city": ["x"] * len(X)})
    with pytest.raises(ValueError, match=r"^X's column 'city' \((String|string)\) does not hold real numbers"):
        GaussianMixture(2, **KW).fit(bad)


@pytest.mark.parametrize("values", ["complex", "datetime", "timedelta"])
def test_objects_that_are_not_real_numbers_are_refused(frame, values):
    """np.complex128 objects fitted on their real part (a warning per value), np.datetime64 and
    np.timedelta64 objects as days or seconds since 1970: in object columns and object arrays."""
    X, df = frame
    n = len(X)
    objects = {"complex": list(X[:, 1] + 1j),  # np.complex128 values
               "datetime": [np.datetime64("2020-01-01") + np.timedelta64(i, "D") for i in range(n)],
               "timedelta": [np.timedelta64(i, "s") for i in range(n)]}[values]
    column = pd.Series(objects, dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning either
        with pytest.raises(ValueError, match=r"^X's column 'c' \(object\) does not hold real numbers"):
            GaussianMixture(2, **KW).fit(df.assign(c=column))
        array = np.empty((n, 2), object)
        array[:, 0], array[:, 1] = X[:, 0], objects
        with pytest.raises(ValueError, match="X must hold real numbers, got dtype object"):
            GaussianMixture(2, **KW).fit(array)
    # a dask array of objects is refused whatever it holds, and the message says why and what to do
    numbers = da.from_array(X.astype(object), chunks=(100, 2))
    with pytest.raises(ValueError, match=r"dask array of objects, whose values are unknown until computed.*"
                                         r"X\.astype\(float\)"):
        GaussianMixture(2, **KW).fit(numbers)
    np.testing.assert_allclose(GaussianMixture(2, **KW).fit(numbers.astype(float)).means_,
                               GaussianMixture(2, **KW).fit(X).means_, rtol=1e-12)


def test_a_dask_series_is_refused_as_1d():
    """An IndexError from inside the conversion before; a pandas Series got scikit-learn's words."""
    with pytest.raises(ValueError, match="Expected 2D array of shape .* got 1D array"):
        GaussianMixture(2).fit(dd.from_pandas(pd.Series(np.arange(100.0)), npartitions=2))


def test_per_row_outputs_of_an_empty_dask_dataframe_are_refused_as_for_other_inputs(frame):
    """A filter that keeps no row gave empty outputs, where every other input (and fit, score) says
    'Found array with 0 sample(s)'; a filter that keeps some gives theirs, row for row."""
    X, df = frame
    gm = GaussianMixture(2, **KW).fit(df)
    ddf = dd.from_pandas(df, npartitions=4)
    for method in ("predict", "predict_proba", "score_samples"):
        with pytest.raises(ValueError, match=r"Found array with 0 sample\(s\) \(shape=\(0, 2\)\)"):
            getattr(gm, method)(df.iloc[:0])
        with pytest.raises(ValueError, match=r"Found array with 0 sample\(s\) \(shape=\(0, 2\)\).*has no rows"):
            getattr(gm, method)(ddf[ddf.a > 1e6]).compute()
        kept = df[df.a > 5]
        np.testing.assert_array_equal(getattr(gm, method)(ddf[ddf.a > 5]).compute(), getattr(gm, method)(kept))


def test_a_bad_row_of_a_dataframe_is_named_by_its_index_label_too(frame):
    """Errors named a bad row by its position only. A Dask DataFrame's order is its own: from_pandas sorts
    a string index, so that the NaN of 's450' (position 450 in pandas) was "first bad row: 359", a row
    the user would look for in vain in the frame they made."""
    X, df = frame
    holed = df.set_axis([f"s{i}" for i in range(len(df))])
    holed.iloc[450, 1] = np.nan
    lazy = dd.from_pandas(holed, npartitions=3)
    order = list(lazy.index.compute())
    at = order.index("s450")
    assert at != 450  # the frame's own order differs from pandas'
    fitted = GaussianMixture(2, **KW).fit(df)
    calls = {
        "fit": lambda Z: GaussianMixture(2, **KW).fit(Z),
        "Bayesian fit": lambda Z: BayesianGaussianMixture(n_components=2, **KW).fit(Z),
        "select_model": lambda Z: select_model(Z, n_components=[1, 2], **KW),
        "score": fitted.score,
        "bic": fitted.bic,
    }
    for what, call in calls.items():
        for Z, row in ((holed, 450), (lazy, at)):
            with pytest.raises(ValueError, match=rf"first bad row: {row}\). .* Row {row} is the one of index label "
                                                 r"'s450'\.$") as info:
                call(Z)
            assert type(info.value) is ValueError, what
    for method in ("predict", "predict_proba", "score_samples"):  # eager for a pandas frame
        with pytest.raises(ValueError, match=r"Row 450 is the one of index label 's450'\.$"):
            getattr(fitted, method)(holed)
    numbered = holed.set_axis(np.arange(1000, 1000 + len(holed)))  # an integer index: not "np.int64(1450)"
    with pytest.raises(ValueError, match=r"Row 450 is the one of index label 1450\.$"):
        fitted.predict(numbered)
    with pytest.raises(ValueError, match=r"Row 450 is the one of index label 1450\.$"):
        fitted.predict(dd.from_pandas(numbered, npartitions=3)).compute()
    for method in ("predict", "predict_proba", "score_samples"):  # lazy: at compute, the partition names it
        with pytest.raises(ValueError, match=rf"first bad row: {at}\)\. .* Row {at} is the one of index label "
                                             r"'s450'\.$"):
            getattr(fitted, method)(lazy).compute()
    w = np.ones(len(df))
    w[300] = -1.0
    with pytest.raises(ValueError, match=r"row 300 has weight -1\.0\. Row 300 is the one of index label 's300'"):
        GaussianMixture(2, **KW).fit(df.set_axis([f"s{i}" for i in range(len(df))]), sample_weight=w)
    with pytest.raises(ValueError, match=r"first bad row: 450\)\. Remove or impute these rows; dask_gmm never "
                                         r"changes your data\.$"):  # an array has no labels to add
        GaussianMixture(2, **KW).fit(holed.to_numpy())
    far = df.set_axis([f"s{i}" for i in range(len(df))])
    far.iloc[123] = 1e200  # a row named by the overflow it makes
    with pytest.raises(ValueError, match=r"squared distance of row 123 .* Row 123 is the one of index label 's123'"):
        GaussianMixture(2, **KW).fit(far)


def test_a_bad_row_drawn_by_the_initialisation_is_named_by_its_index_label_too(frame):
    """The initialisation's own check of the rows it draws (before any pass) raised a plain ValueError,
    so a DataFrame's bad row was named by its position alone: for a Dask DataFrame, a position in an
    order (from_pandas sorts a string index) the user's frame does not have."""
    X, df = frame
    holed = df.set_axis([f"s{i}" for i in range(len(df))])
    holed.iloc[1:, 0] = np.nan  # every row but one: any draw of two rows holds a bad one
    lazy = dd.from_pandas(holed, npartitions=3)
    order = list(lazy.index.compute())
    for Z, labels in ((holed, list(holed.index)), (lazy, order)):
        with pytest.raises(ValueError, match=r"in row (\d+) \(drawn as a starting row of the initialisation\)\. .* "
                                             r"Row \1 is the one of index label 's(\d+)'\.$") as info:
            GaussianMixture(2, **KW).fit(Z)
        row, label = re.search(r"in row (\d+) .* label '(s\d+)'", str(info.value)).groups()
        assert labels[int(row)] == label != "s0"
