"""Inputs: NumPy, Dask, zarr.Array, paths, groups, sharded stores, fsspec URLs; guarded failures."""

import hashlib
import os

import dask.array as da
import numpy as np
import pytest
import zarr
from zarr.codecs import ZstdCodec

from dask_gmm import GaussianMixture, io

from .conftest import make_blobs


def write_store(path, X, chunks=(500, 2), shards=None, group=True):
    if group:
        g = zarr.open_group(str(path), mode="w")
        arr = g.create_array("X", shape=X.shape, chunks=chunks, shards=shards, dtype=X.dtype,
                             compressors=[ZstdCodec(level=3)])
    else:
        arr = zarr.create_array(str(path), shape=X.shape, chunks=chunks, shards=shards, dtype=X.dtype,
                                compressors=[ZstdCodec(level=3)])
    arr[:] = X
    return arr


def tree_digest(path):
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(path)):
        for f in sorted(files):
            h.update(f.encode())
            h.update(open(os.path.join(root, f), "rb").read())
    return h.hexdigest()


def fit(X, **kw):
    return GaussianMixture(3, random_state=0, init_params="random_from_data", **kw).fit(X)


def test_every_input_kind_gives_the_same_fit(tmp_path):
    X = make_blobs(n=3000)
    arr = write_store(tmp_path / "g.zarr", X)
    write_store(tmp_path / "a.zarr", X, group=False)
    ref = fit(da.from_array(X, chunks=(500, 2)))
    for inp in (arr, str(tmp_path / "g.zarr"), tmp_path / "g.zarr", str(tmp_path / "a.zarr"), X):
        np.testing.assert_allclose(fit(inp).means_, ref.means_, rtol=1e-8)
    gm = fit(str(tmp_path / "g.zarr"))
    labels = gm.predict(str(tmp_path / "g.zarr"))
    assert isinstance(labels, da.Array) and labels.chunks[0] == io.as_dask_array(arr).chunks[0]


def test_row_chunks_align_with_zarr_chunks_and_shards(tmp_path):
    X = make_blobs(n=3000)
    plain = write_store(tmp_path / "p.zarr", X, chunks=(300, 2))
    sharded = write_store(tmp_path / "s.zarr", X, chunks=(100, 2), shards=(600, 2))
    for arr, unit in ((plain, 300), (sharded, 600)):
        d = io.as_dask_array(arr)
        assert all(c % unit == 0 for c in d.chunks[0][:-1])
        assert d.chunks[1] == (2,)
    np.testing.assert_allclose(fit(sharded).means_, fit(plain).means_, rtol=1e-8)


def test_store_is_never_modified(tmp_path):
    X = make_blobs(n=3000)
    write_store(tmp_path / "g.zarr", X)
    before = tree_digest(tmp_path / "g.zarr")
    gm = fit(str(tmp_path / "g.zarr"))
    gm.score(str(tmp_path / "g.zarr"))
    gm.predict(str(tmp_path / "g.zarr")).compute()
    assert tree_digest(tmp_path / "g.zarr") == before


def test_missing_chunks_are_refused_by_name(tmp_path):
    X = make_blobs(n=3000)
    write_store(tmp_path / "g.zarr", X)
    os.remove(tmp_path / "g.zarr" / "X" / "c" / "2" / "0")
    with pytest.raises(ValueError, match=r"missing 1 of its chunks \(c/2/0\)"):
        fit(str(tmp_path / "g.zarr"))


def test_never_written_store_is_refused(tmp_path):
    zarr.create_array(str(tmp_path / "e.zarr"), shape=(100, 2), chunks=(50, 2), dtype="f8")
    with pytest.raises(ValueError, match="missing 2 of its chunks"):
        fit(str(tmp_path / "e.zarr"))


def test_incomplete_store_is_refused(tmp_path):
    X = make_blobs(n=300)
    write_store(tmp_path / "g.zarr", X)
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="r+")
    g.attrs[io.STATUS_ATTR] = {"complete": False}
    with pytest.raises(ValueError, match="incomplete"):
        fit(str(tmp_path / "g.zarr"))


def test_missing_path_and_group_without_x(tmp_path):
    with pytest.raises(ValueError, match="No Zarr store"):
        fit(str(tmp_path / "nothing.zarr"))
    zarr.open_group(str(tmp_path / "empty.zarr"), mode="w")
    with pytest.raises(ValueError, match="no array 'X'"):
        fit(str(tmp_path / "empty.zarr"))


def test_feature_chunked_store_is_rechunked_with_warning(tmp_path):
    X = make_blobs(n=3000)
    arr = write_store(tmp_path / "f.zarr", X, chunks=(500, 1))
    with pytest.warns(UserWarning, match="chunked across features"):
        d = io.as_dask_array(arr)
    assert d.chunks[1] == (2,)
    np.testing.assert_allclose(fit(d).means_, fit(X).means_, rtol=1e-8)


def test_integer_store_is_read_as_float(tmp_path):
    X = np.round(make_blobs(n=3000) * 10).astype(np.int32)
    arr = write_store(tmp_path / "i.zarr", X)
    assert io.as_dask_array(arr).dtype == np.float64
    np.testing.assert_allclose(fit(arr).means_, fit(X.astype(float)).means_, rtol=1e-8)


def test_fsspec_url(tmp_path):
    pytest.importorskip("fsspec")
    X = make_blobs(n=3000)
    write_store(tmp_path / "g.zarr", X)
    url = "file://" + str(tmp_path / "g.zarr")
    np.testing.assert_allclose(fit(url).means_, fit(str(tmp_path / "g.zarr")).means_, rtol=1e-12)
    mem = zarr.open_group("memory://gmm-test.zarr", mode="w")
    a = mem.create_array("X", shape=X.shape, chunks=(500, 2), dtype=X.dtype)
    a[:] = X
    np.testing.assert_allclose(fit("memory://gmm-test.zarr").means_, fit(X).means_, rtol=1e-8)


def test_sample_weight_from_a_zarr_array(tmp_path):
    X = make_blobs(n=3000)
    w = np.random.default_rng(0).integers(0, 3, len(X)).astype(float)
    warr = zarr.create_array(str(tmp_path / "w.zarr"), shape=w.shape, chunks=(700,), dtype="f8")
    warr[:] = w
    gm = GaussianMixture(3, random_state=0, init_params="random_from_data")
    ref = gm.fit(X, sample_weight=w).means_.copy()
    for weights in (warr, str(tmp_path / "w.zarr")):
        np.testing.assert_allclose(gm.fit(X, sample_weight=weights).means_, ref, rtol=1e-10)


def test_missing_chunks_of_zarr_weights_are_refused(tmp_path):
    X = make_blobs(n=3000)
    warr = zarr.create_array(str(tmp_path / "w.zarr"), shape=(3000,), chunks=(1000,), dtype="f8")
    warr[:] = 1.0
    os.remove(tmp_path / "w.zarr" / "c" / "1")
    with pytest.raises(ValueError, match=r"missing 1 of its chunks \(c/1\)"):
        GaussianMixture(3).fit(X, sample_weight=str(tmp_path / "w.zarr"))


def test_numpy_chunking_does_not_depend_on_the_machine(monkeypatch):
    X = make_blobs(n=3000)
    chunks = io.as_dask_array(X).chunks
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert io.as_dask_array(X).chunks == chunks
