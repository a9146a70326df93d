"""Inputs: NumPy, Dask, zarr.Array, paths, groups, sharded stores, fsspec URLs; guarded failures."""

import hashlib
import itertools
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
import warnings
import zipfile

import dask
import dask.array as da
import numcodecs
import numpy as np
import pytest
import zarr
from zarr.codecs import ZstdCodec

from dask_gmm import GaussianMixture, _cluster, _codecs, _kernels, _numba, _reader, _store, generate_mixture, io

from .conftest import make_blobs, shard_with_inner_chunk


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


@pytest.mark.parametrize("n", [1, 7, 10_001])
def test_numpy_input_is_viewed_not_copied(n):
    """The blocks of an in-memory array are views of it (dask's from_array copies it whole)."""
    import dask

    X = np.random.default_rng(0).normal(size=(n, 3))
    Xd = io.as_dask_array(X)
    blocks = Xd.to_delayed().ravel()
    shared = dask.compute(*[dask.delayed(np.shares_memory)(b, X) for b in blocks], scheduler="sync")
    assert len(shared) == len(Xd.chunks[0]) and all(shared)
    assert sum(Xd.chunks[0]) == n
    np.testing.assert_array_equal(Xd.compute(), X)


def test_row_chunks_align_with_zarr_chunks_and_shards(tmp_path):
    X = make_blobs(n=3000)
    plain = write_store(tmp_path / "p.zarr", X, chunks=(300, 2))
    sharded = write_store(tmp_path / "s.zarr", X, chunks=(100, 2), shards=(600, 2))
    # whole Zarr chunks (or shards), at most an eighth of them each (2 * io.MIN_CHUNKS), so that no core idles
    for arr, unit, blocks in ((plain, 300, (600,) * 5), (sharded, 600, (600,) * 5)):
        d = io.as_dask_array(arr)
        assert all(c % unit == 0 for c in d.chunks[0][:-1])
        assert d.chunks == (blocks, (2,))
    np.testing.assert_allclose(fit(sharded).means_, fit(plain).means_, rtol=1e-8)


def test_store_is_never_modified(tmp_path):
    X = make_blobs(n=3000)
    write_store(tmp_path / "g.zarr", X)
    before = tree_digest(tmp_path / "g.zarr")
    gm = fit(str(tmp_path / "g.zarr"))
    gm.score(str(tmp_path / "g.zarr"))
    gm.predict(str(tmp_path / "g.zarr")).compute()
    assert tree_digest(tmp_path / "g.zarr") == before


@pytest.mark.filterwarnings("ignore:.*caching file system:UserWarning")
def test_missing_chunks_are_refused_by_name(tmp_path):
    X = make_blobs(n=3000)
    write_store(tmp_path / "g.zarr", X)
    os.remove(tmp_path / "g.zarr" / "X" / "c" / "2" / "0")
    with pytest.raises(ValueError, match=r"missing 1 of its chunks \(c/2/0\)"):
        fit(str(tmp_path / "g.zarr"))
    zipped = shutil.make_archive(str(tmp_path / "g"), "zip", tmp_path / "g.zarr" / "X")
    url = f"zip://::file://{zipped}"  # a chained URL is named whole, not as 'zip://'
    with pytest.raises(ValueError, match=f"The Zarr array '{url}' is missing 1 of its chunks"):
        fit(url)
    for cache in ("simplecache", "filecache", "blockcache"):  # were named 'simplecache:///...'
        url = f"{cache}::file://{tmp_path / 'g.zarr'}"
        with pytest.raises(ValueError, match=f"The Zarr array '{url}/X' is missing 1 of its chunks"):
            fit(url)


def test_a_store_replaced_after_its_open_is_called_changed_not_missing_chunks(tmp_path):
    """Chunks listed after another run replaced the store (two demos in one folder, a review) are the
    new store's: called a change, not chunks missing from the array that was opened."""
    write_store(tmp_path / "g.zarr", make_blobs(n=3000))  # 6 chunks
    X = zarr.open_group(tmp_path / "g.zarr", mode="r")["X"]
    shutil.rmtree(tmp_path / "g.zarr")
    write_store(tmp_path / "g.zarr", make_blobs(n=1500))
    with pytest.raises(ValueError, match=r"'.*g\.zarr/X' changed while dask_gmm read it: it was opened as an array of "
                                         r"shape \(3000, 2\) in chunks \(500, 2\), and holds an array of shape "
                                         r"\(1500, 2\) in chunks \(500, 2\) now \(another run replaced it\)"):
        _store._absent_chunks(X)
    shutil.rmtree(tmp_path / "g.zarr")
    with pytest.raises(ValueError, match=r"changed while dask_gmm read it: .* and holds no array now"):
        _store._absent_chunks(X)
    for other in (dict(chunk_key_encoding={"name": "v2", "separator": "."}), dict(zarr_format=2)):
        # the same shape and chunks, its chunk files named otherwise: every chunk had been called missing
        zarr.create_array(tmp_path / "g.zarr" / "X", shape=(3000, 2), chunks=(500, 2), dtype="f8",
                          overwrite=True, **other)[:] = 1.0
        with pytest.raises(ValueError, match=r"changed while dask_gmm read it: it was opened as an array of shape "
                                             r"\(3000, 2\) in chunks \(500, 2\), and holds an array of shape "
                                             r"\(3000, 2\) in chunks \(500, 2\) of another layout \(Zarr format, "
                                             r"shards, dtype or chunk key encoding\) now"):
            _store._absent_chunks(X)


def test_chunks_written_elsewhere_are_named_after_a_write(tmp_path):
    """What the generator and predict's outputs check after their writes: chunks that a cluster's
    workers wrote to a disk of their own are not in the store as this process sees it."""
    write_store(tmp_path / "g.zarr", make_blobs(n=3000))
    group = zarr.open_group(tmp_path / "g.zarr", mode="r")
    X = group["X"]
    assert _store.refuse_unwritten([X], "g.zarr", "Share it.") is None  # all there
    os.remove(tmp_path / "g.zarr" / "X" / "c" / "1" / "0")
    with pytest.raises(ValueError, match=r"^1 chunk written for g\.zarr is not in the store as this process sees it "
                                         r"\(X/c/1/0\); a cluster's workers may have written it to a disk of their "
                                         r"own\. Share it\.$"):
        _store.refuse_unwritten([X], "g.zarr", "Share it.")
    os.remove(tmp_path / "g.zarr" / "X" / "c" / "2" / "0")
    with pytest.raises(ValueError, match=r"^2 chunks written for g\.zarr are not in the store as this process sees it "
                                         r"\(X/c/1/0, X/c/2/0\)"):
        _store.refuse_unwritten([X], "g.zarr", "Share it.")


@pytest.mark.parametrize("cache", ["simplecache", "filecache", "blockcache"])
def test_a_caching_chain_warns_that_it_reads_a_store_as_it_was(tmp_path, cache):
    """fsspec keeps a caching file system, and the chunks it read, for the life of the process: a
    store rewritten since was fitted as it had been, without a word (a distributed-systems review).
    Opening one now says so, naming the store's own URL, which reads what it holds now."""
    path = tmp_path / "g.zarr"
    url = f"{cache}::file://{path}"
    write_store(path, make_blobs(n=3000, seed=0))
    with pytest.warns(UserWarning, match=rf"read through fsspec's caching file system '{cache}'.* Give the store's "
                                         rf"own URL \('file://{path}'\)") as warned:
        io.open_zarr(url)
        io.as_dask_array(url)  # deeper in the package: the same line of the user's
    ours = [w for w in warned if "fsspec's caching file system" in str(w.message)]
    assert [w.filename for w in ours] == [__file__] * 2  # the user's lines (it was io.py's, from a fit)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the store's own URL and path: no warning
        io.open_zarr(f"file://{path}"), io.open_zarr(str(path))
    if cache == "simplecache":  # (fsspec's blockcache cannot read through zip)
        zipped = shutil.make_archive(str(tmp_path / "z"), "zip", path)  # the chain's other members kept
        with pytest.warns(UserWarning, match=rf"own URL \('zip://::file://{zipped}'\)"):
            io.open_zarr(f"{cache}::zip://::file://{zipped}")


def test_folders_linked_into_a_store_are_read_as_zarr_reads_them(tmp_path):
    """A store whose chunk folder ``c/`` was moved to another disk and linked back: zarr reads every
    chunk, but the listing did not follow the link, and the fit said all 4 chunks were missing (a
    review). A link to a folder above it ends too."""
    X = make_blobs(n=3000)
    write_store(tmp_path / "g.zarr", X, chunks=(750, 2))
    shutil.move(tmp_path / "g.zarr" / "X" / "c", tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", tmp_path / "g.zarr" / "X" / "c")
    os.symlink(tmp_path / "g.zarr", tmp_path / "elsewhere" / "loop")  # a link back up: the walk still ends
    assert _store.missing_chunks(zarr.open_array(str(tmp_path / "g.zarr" / "X"), mode="r")) == []
    np.testing.assert_array_equal(fit(str(tmp_path / "g.zarr")).means_, fit(X).means_)
    os.remove(tmp_path / "elsewhere" / "2" / "0")
    with pytest.raises(ValueError, match=r"missing 1 of its chunks \(c/2/0\)"):
        fit(str(tmp_path / "g.zarr"))


def test_a_stores_scan_reads_only_where_chunks_may_be(tmp_path):
    """The scan of a store's folder (its listing, and the watch for files changed during a fit) walked
    every file under it: a link in a store to /usr made a 5-iteration fit 10.6 s against 1.7, and
    1,500 nested folders a RecursionError (a review; here 300 under a recursion limit of 200). It
    reads the array's folder and the folders named as a chunk key's parts, ``c`` and numbers, as
    deep as its keys go."""
    X = make_blobs(n=3000)
    write_store(tmp_path / "g.zarr", X, chunks=(750, 2))
    folder = tmp_path / "g.zarr" / "X"
    files = {str(folder / "zarr.json")} | {str(folder / "c" / str(i) / "0") for i in range(4)}
    big = tmp_path / "big"
    for i in range(20):
        (big / f"lib{i}").mkdir(parents=True)
        for j in range(50):
            (big / f"lib{i}" / f"{j}").write_bytes(b"")
    os.symlink(big, folder / "c" / "usr")  # a link to a large folder, beside the chunks
    os.makedirs(os.path.join(folder, "c", "9", *["9"] * 300))  # deep, under numbers too
    (folder / "c" / "9" / "9" / "9" / "far").write_bytes(b"")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        watched = set(_cluster.StoredFiles([zarr.open_array(str(folder), mode="r")]).state)
        missing = _store.missing_chunks(zarr.open_array(str(folder), mode="r"))
    finally:
        sys.setrecursionlimit(limit)
    assert watched == files and missing == []
    np.testing.assert_array_equal(fit(str(tmp_path / "g.zarr")).means_, fit(X).means_)


def test_the_files_of_a_3d_array_read_through_dask_are_watched(tmp_path):
    """A 3-D Zarr array (an image's pixels, reshaped to rows) has its chunks three folders deep: the
    scan goes as deep as the arrays read (a review: it had watched only zarr.json, and a chunk
    rewritten during the fit went unseen)."""
    path = str(tmp_path / "cube.zarr")
    zarr.create_array(path, data=np.random.default_rng(0).random((40, 40, 3)), chunks=(20, 20, 3))
    watched = _cluster.stored_files(da.from_zarr(path).reshape(-1, 3))
    assert len(watched.state) == 5  # zarr.json and c/i/j/0
    zarr.open_array(path, mode="r+")[0:20, 0:20] = 0.5
    with pytest.raises(ValueError, match=r"its file 'c/0/0/0' was rewritten"):
        watched.check()


@pytest.mark.parametrize("layout", ["v3", "v3 '.' keys", "v2", "v3 sharded"])
def test_the_stored_keys_of_local_files_are_the_stores_own_listing(tmp_path, layout):
    """A store of local files is listed by a walk of its folder (4x faster than zarr's listing
    for 20,000 chunks); the keys are those zarr lists, and a chunk removed is missing from both."""
    from zarr.core.sync import sync

    X = make_blobs(n=3000)
    kw = {"v3 '.' keys": dict(chunk_key_encoding={"name": "default", "separator": "."}),
          "v2": dict(zarr_format=2), "v3 sharded": dict(shards=(1000, 2))}.get(layout, {})
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=kw.pop("zarr_format", 3))
    arr = group.create_array("X", shape=X.shape, chunks=(250, 2), dtype=X.dtype, **kw)
    arr[:] = X
    removed = {"v3": "c/2/0", "v3 '.' keys": "c.2.0", "v2": "2.0", "v3 sharded": "c/2/0"}[layout]
    os.remove(tmp_path / "g.zarr" / "X" / removed)

    async def listed(a):
        return {k[len("X/") :] async for k in a.store_path.store.list_prefix("X")}

    for a in (io.open_zarr(str(tmp_path / "g.zarr")), da.from_zarr(str(tmp_path / "g.zarr"), component="X")):
        a = a if isinstance(a, zarr.Array) else _reader.zarr_arrays_read_by(a)[0]  # fsspec's local files
        assert _store._local_folder(a) is not None
        assert _store._stored_keys(a, []) == sync(listed(a)) and removed not in _store._stored_keys(a, [])
        assert _store.missing_chunks(a) == [removed]
    if layout == "v3":  # links: a folder's to itself (not followed: it loops), a chunk's to a chunk, a broken one
        os.symlink(".", tmp_path / "g.zarr" / "X" / "c" / "loop")
        os.rename(tmp_path / "g.zarr" / "X" / "c" / "3" / "0", tmp_path / "elsewhere")
        os.symlink(tmp_path / "elsewhere", tmp_path / "g.zarr" / "X" / "c" / "3" / "0")
        os.remove(tmp_path / "g.zarr" / "X" / "c" / "5" / "0")
        os.symlink(tmp_path / "nothing", tmp_path / "g.zarr" / "X" / "c" / "5" / "0")
        arr = io.open_zarr(str(tmp_path / "g.zarr"))
        assert _store.missing_chunks(arr) == [removed, "c/5/0"]


def test_chunks_of_no_rows_in_the_metadata_are_damage_not_missing_chunks(tmp_path):
    """zarr.json edited to chunks of shape (0, 2): zarr opens it; it had been counted in chunks of one
    row, "missing 1996 of its chunks", with the advice to rerun generate (a review)."""
    X = make_blobs(n=2000)
    zarr.create_array(str(tmp_path / "z.zarr"), shape=X.shape, chunks=(500, 2), dtype=X.dtype)[:] = X
    meta = json.loads((tmp_path / "z.zarr" / "zarr.json").read_text())
    meta["chunk_grid"]["configuration"]["chunk_shape"] = [0, 2]
    (tmp_path / "z.zarr" / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(_store.DamagedMetadata, match=r"declares chunks of shape \(0, 2\), with no room for a value: its "
                                                 r"metadata is damaged"):
        fit(str(tmp_path / "z.zarr"))


@pytest.mark.parametrize("compressor", [None, "blosc"])
def test_chunks_declared_larger_than_any_file_are_corrupt_not_out_of_memory(tmp_path, compressor):
    """A zarr.json edited to chunks of 1e12 rows over a 20,000-row chunk file: the reader sized its
    buffer from the declared chunk, asked for 22 TiB, and the fit said "out of memory" (a review).
    A buffer is never larger than its file now, and the chunk is named as corrupt."""
    X = make_blobs(n=3000)
    codec = zarr.codecs.BloscCodec(cname="lz4") if compressor else None
    zarr.create_array(str(tmp_path / "h.zarr"), shape=X.shape, chunks=X.shape, dtype=X.dtype, compressors=codec)[:] = X
    meta = json.loads((tmp_path / "h.zarr" / "zarr.json").read_text())
    meta["chunk_grid"]["configuration"]["chunk_shape"] = [10**12, 2]
    (tmp_path / "h.zarr" / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"Chunk 'c/0/0' of the Zarr array '[^']+' \(rows 0-2999\) cannot be decoded .*the "
                                         "store is corrupt"):
        fit(str(tmp_path / "h.zarr"))


def test_a_blosc_chunk_cut_short_in_a_zip_store_is_refused(tmp_path):
    """A Blosc chunk one byte short in a zip store (read by zarr, not from a chunk file): C-Blosc read
    past its end and the fit went on with other numbers (a review); its header is checked in zarr's
    own read of any store now."""
    X = make_blobs(n=3000)
    zarr.create_array(str(tmp_path / "b.zarr"), shape=X.shape, chunks=(1000, 2), dtype=X.dtype,
                      compressors=zarr.codecs.BloscCodec(cname="lz4"))[:] = X
    chunk = tmp_path / "b.zarr" / "c" / "1" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-1])
    shutil.make_archive(str(tmp_path / "b"), "zip", tmp_path / "b.zarr")
    with pytest.raises(ValueError, match=r"Chunk 'c/1/0' of the Zarr array '[^']+' \(rows 1000-1999\) cannot be decoded \(it "
                                         r"holds [\d,]+ bytes where its Blosc header says [\d,]+: cut short\)"):
        fit(f"zip::{(tmp_path / 'b.zip').as_uri()}")


@pytest.mark.parametrize("folder", ["", "inner/mix.zarr"])
def test_a_zip_bomb_in_a_zip_store_is_refused_unread(tmp_path, folder):
    """A zip store's member deflated from 256 MiB of zeros in place of a 12 KB chunk: fsspec's zip
    file system (and zarr's ZipStore) undid the zip's own compression whole, before any codec's bound
    (a review: 1.37 GB for a 868 KB zip). The zip's stated sizes are checked first; the same store
    zipped as it is fits as before, by URL and by ZipStore, in a folder of the zip or at its root."""
    import tracemalloc

    X = make_blobs(n=3000)
    zarr.create_array(str(tmp_path / "z.zarr"), shape=X.shape, chunks=(1000, 2), dtype=X.dtype,
                      compressors=None)[:] = X
    expected = fit(X)
    for name, bomb in (("good", False), ("bomb", True)):
        with zipfile.ZipFile(tmp_path / f"{name}.zip", "w", compression=zipfile.ZIP_DEFLATED) as z:
            for member in ("zarr.json", "c/0/0", "c/1/0", "c/2/0"):
                target = f"{folder}/{member}" if folder else member
                if bomb and member == "c/1/0":
                    z.writestr(target, bytes(256 * 2**20))
                else:
                    z.write(tmp_path / "z.zarr" / member, target)
        assert (tmp_path / f"{name}.zip").stat().st_size < 2**20
        url = f"zip://{folder}::{(tmp_path / f'{name}.zip').as_uri()}" if folder else f"zip::{(tmp_path / f'{name}.zip').as_uri()}"
        sources = [url] + ([] if folder else [zarr.storage.ZipStore(tmp_path / f"{name}.zip", mode="r")])
        for source in sources:
            if not bomb:
                np.testing.assert_allclose(fit(source).means_, expected.means_, rtol=1e-12)
                continue
            tracemalloc.start()
            try:
                with pytest.raises(ValueError, match=rf"The file '{folder + '/' if folder else ''}c/1/0' of the zip store "
                                                     r"'[^']+' decompresses to 268,435,456 bytes, the zip says, more than a "
                                                     r"stored chunk of this array takes \([\d,]+ at most\): the zip is "
                                                     "damaged, or made to exhaust memory. It is not read"):
                    fit(source)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert peak < 32 * 2**20, peak


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_chunk_garbled_in_a_zip_store_is_named(tmp_path, compression):
    """A byte flipped in a chunk of a zip store, uncompressed, fails the zip file's own CRC-32:
    zipfile's BadZipFile reached the user raw, not the ValueError naming the chunk and its rows
    that a checksum mismatch gets (a review)."""
    X = make_blobs(n=3000)
    zarr.create_array(str(tmp_path / "z.zarr"), shape=X.shape, chunks=(1000, 2), dtype=X.dtype,
                      compressors=None)[:] = X
    with zipfile.ZipFile(tmp_path / "z.zip", "w", compression=compression) as z:
        for name in ("zarr.json", "c/0/0", "c/1/0", "c/2/0"):
            z.write(tmp_path / "z.zarr" / name, name)
    info = zipfile.ZipFile(tmp_path / "z.zip").getinfo("c/1/0")
    raw = bytearray((tmp_path / "z.zip").read_bytes())
    raw[info.header_offset + 30 + len(info.filename) + len(info.extra) + 10] ^= 1  # in the member's data
    (tmp_path / "z.zip").write_bytes(bytes(raw))
    url = f"zip::{(tmp_path / 'z.zip').as_uri()}"
    for source in (url, zarr.storage.ZipStore(tmp_path / "z.zip", mode="r")):
        with pytest.raises(ValueError, match=r"Chunk 'c/1/0' of the Zarr array '[^']+' \(rows 1000-1999\) cannot be decoded "
                                             r"\((Bad CRC-32|Error -3 while decompressing).*the store is corrupt"):
            fit(source)


def test_a_zip_store_by_path_names_its_url_and_a_store_object_is_read(tmp_path):
    """A zip file given by path was 'No Zarr store found' (to the CLI's info, 'not a valid model
    file'); a zarr Store object, as zarr.open takes, fell to NumPy and was a 0-D array."""
    from dask_gmm import cli

    X = make_blobs(n=3000)
    store = zarr.storage.ZipStore(tmp_path / "d.zip", mode="w")
    zarr.open_group(store, mode="w").create_array("X", shape=X.shape, chunks=(1000, 2), dtype=X.dtype)[:] = X
    store.close()
    url = f"zip::{(tmp_path / 'd.zip').as_uri()}"
    for path in (str(tmp_path / "d.zip"), tmp_path / "d.zip"):
        with pytest.raises(ValueError, match=f"is a zip file. A Zarr store zipped whole is read by its URL '{url}'"):
            fit(path)
    assert cli.main(["info", str(tmp_path / "d.zip")]) == 2
    expected = fit(X)
    for source in (url, zarr.storage.ZipStore(tmp_path / "d.zip", mode="r")):
        gm = fit(source)
        np.testing.assert_allclose(gm.means_, expected.means_, rtol=1e-12)
        predicted = gm.predict(source)
        assert isinstance(predicted, da.Array)
        np.testing.assert_array_equal(predicted.compute(), expected.predict(X))


def test_a_dask_array_of_a_zarr_array_is_read_as_the_zarr_array(tmp_path):
    """``da.from_zarr`` skipped the checks of a Zarr array given as it is: a deleted chunk (fill value
    0) was fitted as 500 rows at the origin, and a corrupt one was zarr's bare decoding error."""
    X = make_blobs(n=3000)
    arr = write_store(tmp_path / "g.zarr", X, group=False)
    zarr.create_array(str(tmp_path / "w.zarr"), shape=(3000,), chunks=(500,), dtype="f8")[:] = 1.0
    w = zarr.open_array(str(tmp_path / "w.zarr"), mode="r")
    wrapped = (da.from_zarr(arr), da.from_zarr(str(tmp_path / "g.zarr")), da.from_zarr(arr, inline_array=True),
               da.from_array(arr, chunks=(700, 1)))
    for Xd in wrapped:
        assert _reader.whole_zarr_array(Xd) is not None
        np.testing.assert_allclose(fit(Xd, max_iter=5).means_, fit(X, max_iter=5).means_, rtol=1e-10)
        # read by the direct reader, as the path is: a path given to da.from_zarr (fsspec's local files) had been
        # read through dask, every Zarr chunk a task each pass (about 10x slower with small chunks, a review)
        assert io.zarr_rows(io.as_zarr_input(Xd)) is not None
    derived = (wrapped[0][:2000], wrapped[2].astype("f4"), 2 * wrapped[3])  # read through zarr, as dask does
    for Xd in derived:
        assert _reader.whole_zarr_array(Xd) is None and len(_reader.zarr_arrays_read_by(Xd)) == 1
    chunk = tmp_path / "g.zarr" / "c" / "2" / "0"
    chunk.write_bytes(chunk.read_bytes()[:100])  # cut short
    with pytest.raises(ValueError, match=r"'c/2/0' of the Zarr array .*rows 1000-1499.* cannot be decoded"):
        fit(da.from_zarr(arr))
    chunk.unlink()
    for Xd in wrapped + derived:  # derived: zarr's fill values were fitted
        with pytest.raises(ValueError, match=r"'file://.*g.zarr' is missing 1 of its chunks \(c/2/0\)"):
            fit(Xd)
    (tmp_path / "w.zarr" / "c" / "1").unlink()
    for wd in (da.from_zarr(w), 2 * da.from_zarr(w)):
        with pytest.raises(ValueError, match=r"missing 1 of its chunks \(c/1\)"):
            GaussianMixture(3, random_state=0).fit(X, sample_weight=wd)


def test_never_written_store_is_refused(tmp_path):
    zarr.create_array(str(tmp_path / "e.zarr"), shape=(100, 2), chunks=(50, 2), dtype="f8")
    with pytest.raises(ValueError, match="missing 2 of its chunks"):
        fit(str(tmp_path / "e.zarr"))


@pytest.mark.parametrize("layout", ["v3", "v2", "dask array", "sample weights"])
def test_chunks_zarr_left_out_read_as_fill_values_when_asked(tmp_path, layout):
    """zarr leaves out a chunk that is all fill value (``write_empty_chunks`` False, its default): such
    a store (rows of zeros, an image's black border) was refused, with no way to read it but to write
    it again. The dask config 'dask_gmm.absent-chunks' set to 'fill' reads the chunks absent when the
    read began as zarr does; the default refuses them, and names the setting."""
    X = make_blobs(n=4000)
    X[1000:2000] = 0.0
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(X))
    w[2000:3000] = 0.0
    path = str(tmp_path / "s.zarr")
    data = w if layout == "sample weights" else X
    zarr.create_array(path, data=data, chunks=(1000,) + data.shape[1:], zarr_format=2 if layout == "v2" else 3)
    gone = {"v2": "1.0", "sample weights": "c/2"}.get(layout, "c/1/0")
    assert not os.path.exists(os.path.join(path, gone))  # left out by zarr
    source = da.from_zarr(path) * 1.0 if layout == "dask array" else path

    def ours(X=X, source=source):
        gm = GaussianMixture(3, random_state=0, init_params="random_from_data", max_iter=5)
        return gm.fit(X, sample_weight=source) if layout == "sample weights" else gm.fit(source)

    with pytest.raises(ValueError, match=rf"missing 1 of its chunks \({gone}\).*'dask_gmm\.absent-chunks': 'fill'"):
        ours()
    with dask.config.set({"dask_gmm.absent-chunks": "fill"}):
        gm = ours()
    ref = ours(X, w) if layout == "sample weights" else ours(X, X)
    np.testing.assert_allclose(gm.means_, ref.means_, rtol=1e-10)
    if layout == "v3":
        with dask.config.set({"dask_gmm.absent-chunks": "fill"}):
            np.testing.assert_array_equal(ref.predict(path), ref.predict(X))
            rows = io.zarr_rows(path)
        os.remove(os.path.join(path, "c", "2", "0"))  # removed after the read began: still an error
        with pytest.raises(ValueError, match=r"Chunk 'c/2/0' of the Zarr array '[^']+' \(rows 2000-2999\) is missing"):
            rows.read(0, 4000)
        np.testing.assert_array_equal(rows.read(1000, 2000), 0.0)


@pytest.mark.parametrize("store", ["local", "memory"])
def test_chunks_read_as_fill_values_are_refused_once_written_and_others_once_removed_on_zarrs_path(tmp_path, store):
    """On zarr's path (a v2 array here), in fill mode: a chunk absent when the read began that holds
    data later had been read as fill values in early passes and as data in later ones; a chunk
    present then and removed before the read reads as fill values. Both are errors (a review)."""
    X = make_blobs(n=4000)
    X[1000:2000] = 0.0
    target = str(tmp_path / "s.zarr") if store == "local" else zarr.storage.MemoryStore()
    arr = zarr.create_array(target, data=X, chunks=(1000, 2), zarr_format=2)
    ref = fit(X, max_iter=3)
    with dask.config.set({"dask_gmm.absent-chunks": "fill"}):
        labels = ref.predict(arr)  # lazy: made now, computed below
    np.testing.assert_array_equal(labels.compute(), ref.predict(X))
    arr[1000:2000] = X[2000:3000]  # the absent chunk written
    with pytest.raises(ValueError, match=r"Chunk '1\.0' of the Zarr array '[^']+' \(rows 1000-1999\) was absent from its "
                                         r"store when the read began.*holds data now"):
        labels.compute()
    arr[1000:2000] = 0.0  # zarr leaves it out again
    arr.store_path.store._store_dict.pop("2.0") if store == "memory" else os.remove(tmp_path / "s.zarr" / "2.0")
    with pytest.raises(ValueError, match=r"Chunk '2\.0' of the Zarr array '[^']+' \(rows 2000-2999\) is missing"):
        labels.compute()


def test_a_chunk_absent_when_the_direct_reader_was_made_is_refused_once_written_in_memory_too():
    """A store not of local files has no chunk sizes to compare: the direct reader refuses a chunk
    absent when it was made that holds data later by its key (a review: read as data, silently)."""
    X = make_blobs(n=4000)
    X[1000:2000] = 0.0
    arr = zarr.create_array(zarr.storage.MemoryStore(), data=X, chunks=(1000, 2))
    with dask.config.set({"dask_gmm.absent-chunks": "fill"}):
        rows = io.zarr_rows(arr)
    np.testing.assert_array_equal(rows.read(0, len(X)), X)
    arr[1000:2000] = 5.0
    with pytest.raises(ValueError, match=r"Chunk 'c/1/0' of the Zarr array '[^']+' \(rows 1000-1999\) was absent from its "
                                         r"store when the read began.*holds data now"):
        rows.read(0, len(X))


def test_the_absent_chunks_setting_is_checked_and_read_from_the_environment(tmp_path):
    X = make_blobs(n=2000)
    X[:1000] = 0.0
    path = str(tmp_path / "s.zarr")
    zarr.create_array(path, data=X, chunks=(1000, 2))
    with dask.config.set({"dask_gmm.absent-chunks": "zeros"}), pytest.raises(
            ValueError, match=r"^The dask config 'dask_gmm\.absent-chunks' \(DASK_DASK_GMM__ABSENT_CHUNKS in the "
                                r"environment\) must be 'error' or 'fill', got 'zeros'\.$"):
        fit(path)
    code = f"import dask_gmm; print(dask_gmm.GaussianMixture(2, random_state=0).fit({path!r}).n_iter_ > 0)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DASK_DASK_GMM__ABSENT_CHUNKS": "fill"})
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr


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


@pytest.mark.parametrize("n_features, chunks, dtype", [(2, (500, 1), "<f8"), (3, (700, 2), ">f4"), (16, (400, 2), "<f8")])
def test_a_store_chunked_across_features_is_read_in_whole_rows(tmp_path, monkeypatch, n_features, chunks, dtype):
    """zarr's own default chunking splits few features across chunks ((rows, 1) for d=2). The
    direct reader puts each band of rows together from its chunks as it reads them, without a
    word (a fit of such a store, read through zarr and dask's rechunk, ran 2.5 times as long);
    a store it does not read (zarr v2 here) is rechunked to whole rows, with a warning."""
    X = make_blobs(n=3000, means=np.arange(3 * n_features).reshape(3, n_features) * 4.0)
    path = tmp_path / "f.zarr"
    arr = zarr.create_array(str(path), shape=X.shape, chunks=chunks, dtype=dtype)
    arr[:] = X
    X = X.astype(dtype)
    rows = io.zarr_rows(arr)
    assert rows is not None
    np.testing.assert_array_equal(rows.read(0, 3000), X)
    np.testing.assert_array_equal(rows.read(650, 2111), X[650:2111])
    step = chunks[0]
    for group in (1, 2, 100):  # chunks read into one piece
        monkeypatch.setattr(_reader, "GROUP_BYTES", group * step * X.itemsize * n_features)
        pieces = [(lo, x.copy()) for lo, x in rows.pieces(650, 2111)]  # each valid until the next
        assert [lo for lo, _ in pieces] == [650] + list(range((650 // step + group) * step, 2111, group * step))
        np.testing.assert_array_equal(np.concatenate([x for _, x in pieces]), X[650:2111])
    assert rows.sizes(0, 1000) == tuple(tuple(os.path.getsize(path / "c" / str(i) / str(j)) for j in rows._columns)
                                        for i in range(-(-1000 // chunks[0])))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted = fit(str(path))
    assert_same_fit = lambda a, b: [np.testing.assert_allclose(getattr(a, k), getattr(b, k), rtol=1e-10)
                                    for k in ("weights_", "means_", "covariances_")]
    assert_same_fit(fitted, fit(X))
    np.testing.assert_array_equal(fitted.predict(str(path)).compute(), fitted.predict(X))
    with pytest.warns(UserWarning, match="chunked across features"):  # dask's read, the rechunk: warned
        assert io.as_dask_array(arr).chunks[1] == (n_features,)
    (path / "c" / "1" / "1").unlink()
    with pytest.raises(ValueError, match=rf"Chunk 'c/1/1' of the Zarr array '[^']+' \(rows {chunks[0]}-{2 * chunks[0] - 1}\) "
                                         "is missing"):
        rows.read(0, 3000)
    v2 = zarr.create_array(str(tmp_path / "v2.zarr"), shape=X.shape, chunks=chunks, dtype=dtype, zarr_format=2)
    v2[:] = X
    assert io.zarr_rows(v2) is None
    with pytest.warns(UserWarning, match="chunked across features"):
        d = io.as_dask_array(v2)
    assert d.chunks[1] == (n_features,)
    assert_same_fit(fit(d), fit(X))
    sharded = zarr.create_array(str(tmp_path / "s.zarr"), shape=X.shape, chunks=(chunks[0], 1),
                                shards=(2 * chunks[0], 1), dtype=dtype)
    sharded[:] = X  # the warning named the inner chunks and advised chunks=, where the shards are read (a review)
    with pytest.warns(UserWarning, match=re.escape(f"across features (shards {(2 * chunks[0], 1)}); it is rechunked to "
                                                   "whole rows, which reads more. Store it with shards=(rows, n_")):
        np.testing.assert_array_equal(io.as_dask_array(sharded).compute(), X)


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


@pytest.fixture
def http_server(tmp_path):
    """tmp_path served over HTTP on 127.0.0.1 (the standard library's server, directory listings
    on); yields ``(base URL, failing)``: a request for a path ending in a key of the dict
    ``failing`` is answered with its value, an HTTP error status."""
    import functools
    import http.server
    import threading

    failing = {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send_head(self):
            status = next((v for k, v in failing.items() if self.path.endswith(k)), None)
            if status is not None:
                self.send_error(status)
                return None
            return super().send_head()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", failing
    server.shutdown()
    server.server_close()


def test_store_over_http_and_its_errors(tmp_path, http_server):
    """A store read over HTTP (fsspec, aiohttp) fits as the same files on disk; a chunk the server
    cannot serve passes the server's error through (where it was called a corrupt store, whose
    advice, regenerate it, would have been wrong); a corrupt chunk is still named corrupt."""
    aiohttp = pytest.importorskip("aiohttp")
    base, failing = http_server
    X = make_blobs(n=6000)
    write_store(tmp_path / "g.zarr", X, chunks=(1000, 2))
    url = f"{base}/g.zarr"
    local = fit(str(tmp_path / "g.zarr"))
    remote = fit(url)
    np.testing.assert_allclose(remote.means_, local.means_, rtol=1e-12)
    np.testing.assert_array_equal(remote.predict(url).compute(), local.predict(X))
    failing["X/c/3/0"] = 503
    for call in (lambda: fit(url), lambda: local.predict(url).compute()):
        with pytest.raises(aiohttp.ClientResponseError, match="503") as caught:
            call()
        assert "corrupt" not in str(caught.value)
    failing.clear()
    chunk = tmp_path / "g.zarr" / "X" / "c" / "3" / "0"
    chunk.write_bytes(chunk.read_bytes()[:20])
    with pytest.raises(ValueError, match=r"Chunk 'X/c/3/0' of the Zarr array '[^']+' \(rows 3000-3999\) cannot be decoded"
                       r" \(.+\); the store is corrupt"):
        fit(url)


@pytest.mark.filterwarnings("ignore:.*caching file system:UserWarning")
@pytest.mark.parametrize("index_location", ["end", "start"])
def test_a_sharded_store_over_http_and_through_caching_chains(tmp_path, http_server, index_location):
    """The shards' indexes were read with a suffix request: Python's http.server answers it with the
    whole shard, whose start was taken for the index ("fails its crc32c checksum"), and fsspec's
    simplecache:: and filecache:: chains failed on it with an AttributeError (a review). They are read as a range from
    each shard's size, and an answer longer than asked for is cut to the index."""
    pytest.importorskip("aiohttp")
    base, _ = http_server
    X = make_blobs(n=3000)
    serializer = zarr.codecs.ShardingCodec(chunk_shape=(250, 2), index_location=index_location, codecs=[
        zarr.codecs.BytesCodec(), ZstdCodec(level=3)])
    for name in ("s.zarr", "t.zarr"):
        arr = zarr.open_group(str(tmp_path / name), mode="w").create_array(
            "X", shape=X.shape, dtype=X.dtype, chunks=(1000, 2), serializer=serializer, compressors=None)
        arr[:] = X
    arr[250:500] = arr.fill_value  # t.zarr: an inner chunk of fill values, not written, so marked absent in its index
    local = fit(str(tmp_path / "s.zarr"))
    # filecache:: failed now and then, read at once: fsspec's WholeFileCacheFileSystem._open raced (a TypeError)
    for where in (base, f"simplecache::file://{tmp_path}", f"filecache::file://{tmp_path}"):
        np.testing.assert_allclose(fit(f"{where}/s.zarr").means_, local.means_, rtol=1e-12)
        with pytest.raises(ValueError, match=r"missing 1 of its chunks \(c/0/0 \(inner chunk 1\.0: rows 250-499\)\)"):
            fit(f"{where}/t.zarr")


@pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")  # xarray needs it from such a server
def test_a_store_whose_server_lists_no_folders_has_each_chunk_asked_for(tmp_path, http_server):
    """A server that refuses folder listings (static hosting) ended the fit with aiohttp's 403 at
    the missing-chunk check; the chunks are now asked for one by one (HEAD), and a lost one is
    still refused before the fit, as an xarray variable read from it is (a review)."""
    pytest.importorskip("aiohttp")
    xr = pytest.importorskip("xarray")
    base, failing = http_server
    X = make_blobs(n=6000)
    write_store(tmp_path / "g.zarr", X, chunks=(1000, 2))
    xr.Dataset({"obs": (("row", "feature"), X)}).chunk({"row": 1000}).to_zarr(
        str(tmp_path / "x.zarr"), mode="w", consolidated=True)
    failing["/"] = 403  # every folder listing
    local = fit(X)
    np.testing.assert_allclose(fit(f"{base}/g.zarr").means_, local.means_, rtol=1e-12)
    remote = xr.open_zarr(f"{base}/x.zarr", consolidated=True)["obs"]
    np.testing.assert_allclose(fit(remote).means_, local.means_, rtol=1e-12)
    (tmp_path / "g.zarr" / "X" / "c" / "2" / "0").unlink()
    (tmp_path / "x.zarr" / "obs" / "c" / "2" / "0").unlink()
    for source in (f"{base}/g.zarr", xr.open_zarr(f"{base}/x.zarr", consolidated=True)["obs"]):
        with pytest.raises(ValueError, match=r"is missing 1 of its chunks \(c/2/0\)"):
            fit(source)


def test_chunk_gone_after_the_check_is_refused_on_the_dask_path(tmp_path, http_server):
    """zarr reads a chunk absent at read time as its fill value: a chunk removed after the upfront
    check (Zarr v2 on disk), or listed by an HTTP server that then answers 404, is a ValueError
    naming it, whatever the fill value; a stored chunk holding only the fill value reads as data."""
    base, failing = http_server
    X = make_blobs(n=3000)
    X[1000:1500] = 0.0  # a whole chunk of zeros, the fill value, stored
    v2 = zarr.create_array(str(tmp_path / "v2.zarr"), shape=X.shape, chunks=(500, 2), dtype=X.dtype, zarr_format=2,
                           config={"write_empty_chunks": True})
    v2[:] = X
    Xd = io.as_dask_array(str(tmp_path / "v2.zarr"))
    np.testing.assert_array_equal(Xd.compute(), X)
    (tmp_path / "v2.zarr" / "4.0").unlink()
    with pytest.raises(ValueError, match=r"Chunk '4\.0' of the Zarr array '[^']+' \(rows 2000-2499\) is missing from its store"):
        Xd.compute()
    pytest.importorskip("aiohttp")
    write_store(tmp_path / "g.zarr", make_blobs(n=3000), chunks=(500, 2))  # fill value 0
    generate_mixture(str(tmp_path / "gen.zarr"), n_samples=3000, n_features=2, n_components=3, chunk_size=500,
                     random_state=0)  # fill value NaN
    failing.update({"g.zarr/X/c/4/0": 404, "gen.zarr/X/c/4/0": 404})  # listed, but not found
    for store in ("g.zarr", "gen.zarr"):
        with pytest.raises(ValueError, match=r"Chunk 'X/c/4/0' of the Zarr array '[^']+' \(rows 2000-2499\) is missing"):
            fit(f"{base}/{store}")


def test_a_stored_chunk_of_fill_values_is_looked_up_once(tmp_path, monkeypatch):
    """Zarr weights whose chunks of weight 0 read as the fill value: each was looked up in the store
    on every pass (one network round trip each on a remote store); now once per process."""
    X = make_blobs(n=3000)
    w = np.ones(len(X))
    w[1000:2000] = 0.0  # two whole chunks of the fill value, stored
    zw = zarr.create_array(str(tmp_path / "w.zarr"), shape=w.shape, chunks=(500,), dtype="f8",
                           config={"write_empty_chunks": True})
    zw[:] = w
    looked_up = []
    real = zarr.storage.LocalStore.exists

    async def exists(self, key):
        looked_up.append(key)
        return await real(self, key)

    monkeypatch.setattr(zarr.storage.LocalStore, "exists", exists)
    monkeypatch.setattr(_reader, "_STORED", set())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixture(3, random_state=0, max_iter=5, tol=0).fit(X, sample_weight=str(tmp_path / "w.zarr"))
        ref = GaussianMixture(3, random_state=0, max_iter=5, tol=0).fit(X, sample_weight=w)
    assert sorted(set(looked_up)) == ["c/2", "c/3"] and len(looked_up) == 2
    np.testing.assert_allclose(gm.means_, ref.means_, rtol=1e-10)


def test_sample_weight_from_a_zarr_array(tmp_path):
    X = make_blobs(n=3000)
    w = np.random.default_rng(0).integers(0, 3, len(X)).astype(float)
    warr = zarr.create_array(str(tmp_path / "w.zarr"), shape=w.shape, chunks=(700,), dtype="f8")
    warr[:] = w
    gm = GaussianMixture(3, random_state=0, init_params="random_from_data")
    ref = gm.fit(X, sample_weight=w).means_.copy()
    for weights in (warr, str(tmp_path / "w.zarr")):
        np.testing.assert_allclose(gm.fit(X, sample_weight=weights).means_, ref, rtol=1e-10)


def test_a_group_gives_lazy_outputs_as_its_path_does(tmp_path):
    """A zarr.Group's predict, predict_proba, score_samples and fit_predict were NumPy, the whole
    output computed at once, where its path's and its array's are lazy dask arrays."""
    X = make_blobs(n=1000)
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    g.create_array("X", data=X, chunks=(300, 2))
    gm = GaussianMixture(3, random_state=0).fit(g)
    for method in ("predict", "predict_proba", "score_samples"):
        out = getattr(gm, method)(g)
        assert isinstance(out, da.Array), method
        assert out.chunks[0] == (300, 300, 300, len(X) - 900)
        np.testing.assert_array_equal(out.compute(), getattr(gm, method)(X))
    labels = GaussianMixture(3, random_state=0).fit_predict(g)
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), gm.predict(X))


def test_a_group_where_x_should_be_is_named(tmp_path):
    """A group X inside the group was read as a 1-D array by the API and an AttributeError in the CLI."""
    zarr.open_group(str(tmp_path / "g.zarr"), mode="w").create_group("X")
    with pytest.raises(ValueError, match="'X' in the Zarr group .*g.zarr' is a group, not an array"):
        GaussianMixture(2).fit(str(tmp_path / "g.zarr"))


def test_a_missing_weights_store_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="No Zarr array of sample weights at .*nope.zarr"):
        GaussianMixture(2).fit(make_blobs(n=300), sample_weight=str(tmp_path / "nope.zarr"))
    zarr.open_group(str(tmp_path / "g.zarr"), mode="w").create_array("w", data=np.ones(300), chunks=(100,))
    with pytest.raises(ValueError, match="g.zarr' is a Zarr group, not an array of sample weights"):  # zarr's error
        GaussianMixture(2).fit(make_blobs(n=300), sample_weight=str(tmp_path / "g.zarr"))
    with pytest.raises(ValueError, match=r"sample_weight is a Zarr group, .*\(group\['name'\]"):  # was "dtype <U1"
        GaussianMixture(2).fit(make_blobs(n=300), sample_weight=zarr.open_group(str(tmp_path / "g.zarr")))
    ones = da.ones(300, chunks=100)
    with pytest.raises(ValueError, match=r"unknown length .* compute_chunk_sizes\(\)"):
        GaussianMixture(2).fit(make_blobs(n=300), sample_weight=ones[ones > 0])


def test_unknown_chunk_sizes_of_x_are_refused_before_any_pass():
    """Unknown row chunks (boolean indexing of rows) were refused up front, but unknown feature chunks
    (``X[:, mask]``) went into the first pass of a fit and failed there, blaming the function that
    made X's blocks, and predict said "X has nan features" (a review). Per-row outputs of unknown
    rows are lazy, of unknown row chunks, in one pass at compute (as of a Dask DataFrame)."""
    X = da.from_array(make_blobs(n=1400), chunks=(700, 2))
    fitted = GaussianMixture(2, random_state=0).fit(X)
    rows, features = X[X[:, 0] > -100], X[:, da.from_array(np.array([True, True]), chunks=2)]
    calls = {"fit": GaussianMixture(2).fit, "score": fitted.score, "predict": fitted.predict}
    for unknown, refused in ((rows, ("fit", "score")), (features, ("fit", "score", "predict"))):
        assert np.isnan(unknown.shape).any()
        for name in refused:
            with pytest.raises(ValueError, match=r"^X has unknown chunk sizes; call X\.compute_chunk_sizes\(\) first\.$"):
                calls[name](unknown)
        np.testing.assert_array_equal(fitted.predict(unknown.compute_chunk_sizes()).compute(), fitted.predict(X).compute())


def test_per_row_outputs_of_unknown_rows_are_lazy_in_one_pass():
    """They were refused ("call X.compute_chunk_sizes() first": one pass more) where a Dask DataFrame's
    are lazy: now each block is read once, at compute, and a bad row named by its place in X."""
    data = make_blobs(n=3000)
    reads = []

    def counted(block):
        reads.append(len(block))
        return block

    X = da.from_array(data, chunks=(500, 2)).map_blocks(counted, dtype=float)
    fitted = GaussianMixture(3, random_state=0).fit(data)
    kept = data[:, 0] > 1
    for method in ("predict", "predict_proba", "score_samples"):
        reads.clear()
        lazy = getattr(fitted, method)(X[X[:, 0] > 1])
        assert reads == [] and np.isnan(lazy.chunks[0]).all()  # nothing read at the call
        np.testing.assert_array_equal(lazy.compute(), getattr(fitted, method)(data[kept]))
        assert sorted(reads) == [500] * 6  # each block once (X[:, 0] > 1 and X[...] share their reads)
    holed = data.copy()
    holed[2100, 1] = np.nan
    H = da.from_array(holed, chunks=(500, 2))
    with pytest.raises(ValueError, match=r"first bad row: 2100\)"):  # all rows kept: its row in X
        fitted.predict(H[H[:, 0] < 100]).compute()
    with pytest.raises(ValueError, match=r"Found array with 0 sample\(s\) .*: the array has no rows\.$"):
        fitted.predict(X[X[:, 0] > 1e9]).compute()


@pytest.mark.parametrize("make, said", [
    (lambda b: np.full(b.shape, np.datetime64("2020-01-01")), r"holds datetime64\[D\] values where its dask array declares numbers"),
    (lambda b: b + 1j, r"holds complex numbers \(complex128\) where its dask array declares real ones"),
    (lambda b: np.ma.masked_array(np.full(b.shape, -9999.0), mask=True), r"is a masked array with masked entries in 500 row"),
    (lambda b: np.c_[b, b[:, :1]], r"has shape \(500, 3\) where its dask array declares \(500, 2\)"),
])
def test_per_row_outputs_of_unknown_rows_check_each_block(make, said):
    """A block of unknown rows is checked as one of known rows is: dates had been scored as numbers
    (-5e8 a row), complex numbers lost their imaginary parts, values under a mask were scored (-1e8)
    and an extra column was NumPy's broadcasting error (a Dask user's review)."""
    data = make_blobs(n=3000)
    fitted = GaussianMixture(3, random_state=0).fit(data)
    A = da.from_array(data, chunks=(500, 2))
    B = A.map_blocks(lambda b: make(b) if b[0, 0] == data[1000, 0] else b, dtype=float)
    for method in ("predict", "predict_proba", "score_samples"):
        with pytest.raises(ValueError, match=r"^The block of X holding rows 1000-1499 " + said):
            getattr(fitted, method)(B[A[:, 0] > -1e9]).compute()


@pytest.mark.parametrize("rows", [3000, 1500, 600, 250])
def test_per_row_outputs_of_a_zarr_backed_dask_array_keep_its_chunks(tmp_path, rows):
    """The outputs of ``da.from_zarr(path, chunks=...)``, read by the direct reader, came in dask_gmm's
    chunks (4000 rows where the array had 3000), so that ``map_blocks`` of the array with its labels
    failed (a Dask user's review); they now come in the array's own, whole Zarr chunks or not (a block
    smaller than a chunk across two of them had read the first chunk's rows only: a diff review)."""
    data = make_blobs(n=30_000)
    path = str(tmp_path / "x.zarr")
    zarr.create_array(path, shape=data.shape, chunks=(1000, 2), dtype=data.dtype)[:] = data
    A = da.from_zarr(path, chunks=(rows, 2))
    fitted = GaussianMixture(3, random_state=0).fit(data)
    for method in ("predict", "predict_proba", "score_samples"):
        lazy = getattr(fitted, method)(A)
        assert lazy.chunks[0] == A.chunks[0]
        np.testing.assert_array_equal(lazy.compute(), getattr(fitted, method)(data))
    labels = fitted.predict(A)
    joined = da.map_blocks(lambda a, b: np.c_[a, b], A, labels[:, None], dtype=float, chunks=(A.chunks[0], (3,)))
    np.testing.assert_array_equal(joined.compute(), np.c_[data, fitted.predict(data)])


def test_a_dask_array_of_a_memory_store_is_refused_under_the_processes_scheduler():
    """The processes scheduler's other processes each have an empty memory://: a fit of
    ``da.from_zarr("memory://...") * 1.0`` read zeros there and ended with means of 0 (a Dask user's
    review). zarr's own MemoryStore, pickled with its contents, is read there as here."""
    data = make_blobs(n=3000) + 5.0
    url = f"memory://{uuid.uuid4().hex}.zarr"
    zarr.create_array(url, shape=data.shape, chunks=(500, 2), dtype=data.dtype)[:] = data
    held = zarr.create_array(zarr.storage.MemoryStore(), shape=data.shape, chunks=(500, 2), dtype=data.dtype)
    held[:] = data
    kwargs = dict(n_components=3, random_state=0, max_iter=1, tol=0, init_params="random_from_data")
    expected = GaussianMixture(**kwargs).fit(data).means_
    with dask.config.set(scheduler="processes", num_workers=2):
        with pytest.raises(ValueError, match=r"^The dask array reads the Zarr array 'memory://.* of a memory:// store, "
                                             r"which the processes scheduler's other processes cannot see"):
            GaussianMixture(**kwargs).fit(da.from_zarr(url) * 1.0)
        np.testing.assert_allclose(GaussianMixture(**kwargs).fit(da.from_zarr(held) * 1.0).means_, expected, rtol=1e-10)
    np.testing.assert_allclose(GaussianMixture(**kwargs).fit(da.from_zarr(url) * 1.0).means_, expected, rtol=1e-10)


def test_a_scalar_weight_and_xarray_weights_stay_lazy(tmp_path):
    """A scalar sample_weight was made an array of N weights in memory (1.2 GiB for a store of 1.5e8
    rows), and a chunked xarray DataArray of weights was loaded whole, where as X it is read lazily
    (a review). Both fit as their arrays do."""
    xr = pytest.importorskip("xarray")
    from dask_gmm._em import numpy_blocks

    X = make_blobs(n=3000)
    Xd = io.as_dask_array(X)
    weights = np.where(np.arange(3000) % 3 == 0, 2.0, 1.0)
    stored = zarr.create_array(str(tmp_path / "w.zarr"), shape=(3000,), chunks=(500,), dtype="f8")
    stored[:] = weights
    source = da.from_zarr(str(tmp_path / "w.zarr"))
    lazy = io.as_weights(xr.DataArray(source, dims=["row"]), Xd)
    assert isinstance(lazy, da.Array) and numpy_blocks(lazy) is None  # read from the store at each pass
    assert any(name.startswith("from-zarr") for name in lazy.dask.layers)
    scalar = io.as_weights(2.0, Xd)
    assert isinstance(scalar, da.Array) and numpy_blocks(scalar) is None and scalar.chunks == (Xd.chunks[0],)
    np.testing.assert_array_equal(scalar.compute(), np.full(3000, 2.0))
    def fitted(w=None):
        return GaussianMixture(3, random_state=0, max_iter=5).fit(X, sample_weight=w)

    np.testing.assert_array_equal(fitted(xr.DataArray(source, dims=["row"])).means_, fitted(weights).means_)
    np.testing.assert_array_equal(fitted(2.0).means_, fitted().means_)
    for bad, shown in ((-1.0, "-1.0"), (np.nan, "nan"), (np.inf, "inf"), (np.array(None), "None")):  # as given
        with pytest.raises(ValueError, match=rf"sample_weight must be finite and non-negative, got {shown}\.$"):
            fitted(bad)


def test_missing_chunks_of_zarr_weights_are_refused(tmp_path):
    X = make_blobs(n=3000)
    warr = zarr.create_array(str(tmp_path / "w.zarr"), shape=(3000,), chunks=(1000,), dtype="f8")
    warr[:] = 1.0
    os.remove(tmp_path / "w.zarr" / "c" / "1")
    with pytest.raises(ValueError, match=r"missing 1 of its chunks \(c/1\)"):
        GaussianMixture(3).fit(X, sample_weight=str(tmp_path / "w.zarr"))


def test_a_corrupt_chunk_of_zarr_weights_is_named_with_the_weights_store(tmp_path):
    """The message had said "of the Zarr array", not which: X's or the weights' (a review)."""
    X = make_blobs(n=3000)
    write_store(tmp_path / "x.zarr", X)
    zarr.create_array(str(tmp_path / "w.zarr"), shape=(3000,), chunks=(1000,), dtype="f8")[:] = 1.0
    chunk = tmp_path / "w.zarr" / "c" / "1"
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    for source in (X, str(tmp_path / "x.zarr")):
        with pytest.raises(ValueError, match=rf"^Chunk 'c/1' of the Zarr array 'file://{re.escape(str(tmp_path))}/w\.zarr' \(rows "
                                             r"1000-1999\) cannot be decoded"):
            GaussianMixture(3).fit(source, sample_weight=str(tmp_path / "w.zarr"))


# ------------------------------------------------------------------ sharded stores, and chunks zarr cannot decode
BLOBS3 = ((0.0, 0.0, 0.0), (6.0, 0.0, 0.0), (0.0, 6.0, 0.0))
SHARD_LAYOUTS = {  # sharding codec keyword arguments: zarr's default index, and the other index encodings read
    "default": {},
    "index at start": dict(index_location="start"),
    "index without crc32c": dict(index_codecs=[zarr.codecs.BytesCodec()]),
    "big-endian index": dict(index_codecs=[zarr.codecs.BytesCodec(endian="big"), zarr.codecs.Crc32cCodec()]),
}


def sharded_store(path, X, written=None, layout="default"):
    """X in shards of 6000 rows holding inner chunks of 3000, with only the row ranges ``written`` written."""
    d = X.shape[1]
    codec = zarr.codecs.ShardingCodec(chunk_shape=(3000, d), codecs=[zarr.codecs.BytesCodec(), ZstdCodec(level=3)],
                                      **SHARD_LAYOUTS[layout])
    arr = zarr.create_array(str(path), shape=X.shape, chunks=(6000, d), dtype=X.dtype, serializer=codec,
                            compressors=None)
    assert arr.shards == (6000, d) and arr.chunks == (3000, d)
    for lo, hi in written or [(0, len(X))]:
        arr[lo:hi] = X[lo:hi]
    return arr


@pytest.mark.parametrize("layout", sorted(SHARD_LAYOUTS))
def test_inner_chunk_never_written_in_a_shard_is_refused_by_name(tmp_path, layout):
    """The shard file exists, but its index marks rows 3000-5999 absent: zarr would read zeros there."""
    X = make_blobs(n=20000, means=BLOBS3)  # 19998 rows: the last shard's second inner chunk is past the edge
    path = tmp_path / "s.zarr"
    arr = sharded_store(path, X, written=[(0, 3000), (6000, len(X))], layout=layout)
    assert sorted(os.listdir(path / "c")) == ["0", "1", "2", "3"]  # every shard file is there
    assert _store.missing_chunks(arr) == ["c/0/0 (inner chunk 1.0: rows 3000-5999)"]
    named = r"missing 1 of its chunks \(c/0/0 \(inner chunk 1\.0: rows 3000-5999\)\).*Restore the store"
    with pytest.raises(ValueError, match=named):
        GaussianMixture(3, random_state=0).fit(arr)
    gm = GaussianMixture(3, random_state=0).fit(X)
    with pytest.raises(ValueError, match=named):
        gm.predict(str(path))
    arr[3000:6000] = X[3000:6000]
    assert _store.missing_chunks(arr) == []
    gm.predict(str(path)).compute()


def test_an_inner_chunk_removed_after_a_lazy_output_was_made_is_refused(tmp_path):
    """Rows of a sharded store rewritten as zeros after a lazy output was made: zarr drops their
    inner chunk, and the output read them as rows of fill values, where a whole shard removed is
    refused (a review). Rows that are data, and inner chunks absent (read as fill values) from the
    start under the 'fill' setting, pass."""
    X = make_blobs(n=20000, means=BLOBS3)
    path = tmp_path / "s.zarr"
    arr = sharded_store(path, X)
    gm = GaussianMixture(3, random_state=0).fit(X)
    lazy = gm.score_samples(str(path))
    np.testing.assert_allclose(lazy.compute(), gm.score_samples(X), rtol=1e-12)
    arr[3000:6000] = 0.0  # the fill value: zarr leaves the inner chunk out
    assert _store.missing_chunks(arr) == ["c/0/0 (inner chunk 1.0: rows 3000-5999)"]
    with pytest.raises(ValueError, match=r"Shard 'c/0/0' of the Zarr array '[^']+' \(rows 0-5999\) has lost 1 of its inner "
                                         r"chunks since the store was opened \(c/0/0 \(inner chunk 1\.0: rows "
                                         r"3000-5999\)\)"):
        lazy.compute()
    with dask.config.set({_store.ABSENT_CHUNKS: "fill"}):  # absent from the start, and read as fill values
        filled = gm.score_samples(str(path)).compute()
    want = gm.score_samples(np.concatenate([X[:3000], np.zeros((3000, 3)), X[6000:]]))
    np.testing.assert_allclose(filled, want, rtol=1e-12)


def test_inner_chunk_check_through_an_fsspec_store(tmp_path):
    """A store read through fsspec (concurrent ranged reads on zarr's event loop), the array inside a group."""
    pytest.importorskip("fsspec")
    X = make_blobs(n=20000, means=BLOBS3)
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    a = g.create_array("X", shape=X.shape, chunks=(3000, 3), shards=(6000, 3), dtype=X.dtype,
                       compressors=[ZstdCodec(level=3)])
    a[:12000] = X[:12000]
    a[15000:] = X[15000:]
    store = zarr.storage.FsspecStore.from_url("file://" + str(tmp_path / "g.zarr"), read_only=True)
    url = zarr.open_group(store, mode="r")["X"]  # (a file:// URL given by path is opened as the local path)
    assert type(url.store_path.store).__name__ == "FsspecStore"
    with pytest.raises(ValueError, match=r"missing 1 of its chunks \(c/2/0 \(inner chunk 4\.0: rows 12000-14999\)\)"):
        GaussianMixture(3).fit(url)
    (tmp_path / "g.zarr" / "X" / "c" / "1" / "0").write_bytes(b"")
    with pytest.raises(ValueError, match=r"c/1/0 \(it holds 0 bytes, fewer than the 36 of its index\)"):
        GaussianMixture(3).fit(url)


@pytest.mark.parametrize("init_params", ["kmeans", "random_from_data"])
def test_chunks_wider_than_the_array_are_read_as_its_columns(tmp_path, init_params):
    """zarr pads a chunk past the array's last column; the direct reader returned the padding too (a
    heap corruption in the compiled k-means kernels, numpy broadcast errors elsewhere)."""
    X = make_blobs(n=20000, means=((0.0, 0.0), (5.0, 5.0), (0.0, 5.0)))
    arr = zarr.create_array(str(tmp_path / "wide.zarr"), shape=X.shape, chunks=(5000, 4), dtype=X.dtype)
    arr[:] = X
    assert io.zarr_rows(arr) is not None and io.zarr_rows(arr).chunk(0).shape == (5000, 2)
    kw = dict(n_components=3, init_params=init_params, random_state=0)
    ours, ref = GaussianMixture(**kw).fit(str(tmp_path / "wide.zarr")), GaussianMixture(**kw).fit(X)
    np.testing.assert_array_equal(ours.means_, ref.means_)
    np.testing.assert_array_equal(ours.predict_proba(str(tmp_path / "wide.zarr")).compute(), ref.predict_proba(X))
    assert ours.score(str(tmp_path / "wide.zarr")) == ref.score(X)


def test_kernels_refuse_a_block_of_other_columns():
    from dask_gmm import _numba
    X = make_blobs(n=100, means=((0.0, 0.0), (5.0, 5.0)))
    gm = GaussianMixture(2, random_state=0).fit(X)
    wide = np.hstack([X, X])
    for call in (lambda: _numba.e_step(wide, gm._model()), lambda: _numba.per_row(wide, gm._model(), _numba.PROBA),
                 lambda: _numba.nearest(wide, gm.means_), lambda: _numba.hard_moments(wide, gm.means_, np.zeros(100, np.int64), "full")):
        with pytest.raises(ValueError, match=r"block of shape \(100, 4\) reached a kernel for 2 features"):
            call()


def test_missing_chunks_of_a_sharded_store_are_counted_in_chunks(tmp_path):
    """An absent shard counts as the inner chunks it held (fewer at the array's edge), an unwritten
    inner chunk as one: the count that `info` reports beside the inner chunk shape."""
    from dask_gmm.generate import store_info
    arr = zarr.create_array(str(tmp_path / "a.zarr"), shape=(100, 3), chunks=(10, 3), shards=(40, 3), dtype="f8")
    arr[:15] = 1.0  # shard 0: inner chunks 0 and 1 written, 2 and 3 not; shards 1 and 2 absent
    assert len(_store.missing_chunks(arr)) == 4
    assert _store.missing_chunk_count(arr) == 2 + 4 + 2  # two inner chunks, shard 1 (rows 40-79), shard 2 (rows 80-99)
    assert store_info(str(tmp_path / "a.zarr"))["missing_chunks"] == 8
    arr[:] = 1.0
    assert _store.missing_chunk_count(arr) == 0


@pytest.mark.parametrize("location", ["end", "start"])
@pytest.mark.parametrize("kept", ["nothing", "half", "all but a byte"])
def test_truncated_shard_is_refused(tmp_path, location, kept):
    X = make_blobs(n=20000, means=BLOBS3)
    layout = "default" if location == "end" else "index at start"
    arr = sharded_store(tmp_path / "s.zarr", X, layout=layout)
    shard = tmp_path / "s.zarr" / "c" / "1" / "0"
    size = len(shard.read_bytes())
    shard.write_bytes(shard.read_bytes()[: {"nothing": 0, "half": size // 2, "all but a byte": size - 1}[kept]])
    if kept == "nothing":  # zarr would read all 6000 rows as zeros
        said = r"1 shard\(s\) of the Zarr array cannot be read, the store is corrupt: c/1/0 \(it holds 0 bytes"
    elif location == "end":  # what is left ends in chunk bytes, not the index
        said = r"the store is corrupt: c/1/0 \(its index fails its crc32c checksum\)"
    else:  # the index is whole; the chunks it points to are cut (was found only as zarr failed to decode them)
        said = (r"the store is corrupt: c/1/0 \(its index places inner chunk [01]\.0 at bytes \d+-\d+, past its end "
                rf"\({shard.stat().st_size} bytes\): it was cut short\)")
    with pytest.raises(ValueError, match=said + ".*[Rr]estore or regenerate"):
        GaussianMixture(3, random_state=0).fit(arr)


def test_a_shard_cut_by_a_byte_under_blosc_is_refused_not_fitted(tmp_path):
    """Index at the shard's start, Blosc inner chunks: a shard one byte short was fitted (Blosc read
    on past the end of the last chunk's bytes; a review saw a row of 3.6e-308), 100 bytes short said
    the data overflowed."""
    X = make_blobs(n=12000, means=BLOBS3)
    codec = zarr.codecs.ShardingCodec(chunk_shape=(1000, 3), index_location="start", codecs=[
        zarr.codecs.BytesCodec(), zarr.codecs.BloscCodec(cname="lz4", shuffle="noshuffle")])
    arr = zarr.create_array(str(tmp_path / "s.zarr"), shape=X.shape, chunks=(6000, 3), dtype=X.dtype,
                            serializer=codec, compressors=None)
    arr[:] = X
    shard = tmp_path / "s.zarr" / "c" / "0" / "0"
    for cut in (1, 8, 100):
        shard.write_bytes(shard.read_bytes()[:-1] if cut == 1 else shard.read_bytes()[: -(cut - 1)])
        with pytest.raises(ValueError, match=r"c/0/0 \(its index places inner chunk 5\.0 at bytes .* past its end"):
            GaussianMixture(3, random_state=0).fit(str(tmp_path / "s.zarr"))
    # a store of other than local files: the shard's size asked of the store
    from zarr.core.buffer import cpu

    memory = zarr.storage.MemoryStore()
    arr = zarr.create_array(memory, shape=X.shape, chunks=(6000, 3), dtype=X.dtype, serializer=codec, compressors=None)
    arr[:] = X
    memory._store_dict["c/0/0"] = cpu.Buffer.from_bytes(memory._store_dict["c/0/0"].to_bytes()[:-1])
    with pytest.raises(ValueError, match=r"c/0/0 \(its index places inner chunk 5\.0 at bytes .* past its end"):
        GaussianMixture(3, random_state=0).fit(arr)


def test_shards_within_shards_are_refused(tmp_path):
    """A sharding codec inside another: the inner shards' indexes were not read, so an inner chunk
    never written (zarr's default for one of fill values) was fitted as rows of zeros."""
    X = make_blobs(n=12000, means=BLOBS3)
    inner = zarr.codecs.ShardingCodec(chunk_shape=(500, 3), index_codecs=[zarr.codecs.BytesCodec()])
    codec = zarr.codecs.ShardingCodec(chunk_shape=(3000, 3), codecs=[inner])
    arr = zarr.create_array(str(tmp_path / "s.zarr"), shape=X.shape, chunks=(6000, 3), dtype=X.dtype,
                            serializer=codec, compressors=None)
    arr[:] = X
    with pytest.raises(ValueError, match="sharded in a layout dask_gmm cannot check .* not sharded again within"):
        GaussianMixture(3).fit(str(tmp_path / "s.zarr"))


def test_info_describes_a_layout_it_cannot_check(tmp_path, capsys):
    """``dask-gmm info`` had refused shards within shards with fit's error: it now describes the
    store, its missing chunks unchecked, in fit's words."""
    from dask_gmm import cli

    X = make_blobs(n=12000, means=BLOBS3)
    inner = zarr.codecs.ShardingCodec(chunk_shape=(500, 3), index_codecs=[zarr.codecs.BytesCodec()])
    codec = zarr.codecs.ShardingCodec(chunk_shape=(3000, 3), codecs=[inner])
    zarr.create_array(str(tmp_path / "s.zarr"), shape=X.shape, chunks=(6000, 3), dtype=X.dtype,
                      serializer=codec, compressors=None)[:] = X
    assert cli.main(["info", str(tmp_path / "s.zarr")]) == 0
    out = capsys.readouterr().out
    assert "12,000 rows x 3 features, float64" in out
    assert re.search(r"missing +not checked: The Zarr array is sharded in a layout dask_gmm cannot check .*"
                     r"ShardingCodec\(codecs: ShardingCodec\(codecs: BytesCodec; index: BytesCodec\)", out)
    assert cli.main(["info", str(tmp_path / "s.zarr"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["missing_chunks"] is None and info["missing_chunks_of"] is None
    assert info["unchecked"].startswith("The Zarr array is sharded in a layout dask_gmm cannot check")
    zarr.create_array(str(tmp_path / "plain.zarr"), shape=X.shape, chunks=(6000, 3), dtype=X.dtype)[:] = X
    assert cli.main(["info", str(tmp_path / "plain.zarr"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unchecked"] is None
    # a generated store's X rewritten so, half written, in the recorded chunks: not "complete" (a review), but
    # damaged, and so is an incomplete one (a rerun cannot finish it)
    for complete in (True, False):
        generate_mixture(tmp_path / "g.zarr", 20000, 2, chunk_size=5000, random_state=0, overwrite=True)
        if not complete:
            group = zarr.open_group(str(tmp_path / "g.zarr"))
            group.attrs[io.STATUS_ATTR] = {**group.attrs[io.STATUS_ATTR], "complete": False}
        shutil.rmtree(tmp_path / "g.zarr" / "X")
        inner = zarr.codecs.ShardingCodec(chunk_shape=(1000, 2), index_codecs=[zarr.codecs.BytesCodec()])
        arr = zarr.create_array(str(tmp_path / "g.zarr" / "X"), shape=(20000, 2), chunks=(10000, 2), dtype="f8",
                                compressors=None, serializer=zarr.codecs.ShardingCodec(chunk_shape=(5000, 2),
                                                                                        codecs=[inner]))
        arr[:10000] = 1.0
        assert arr.chunks == (5000, 2)  # as recorded: only the layout makes it damaged
        assert cli.main(["info", str(tmp_path / "g.zarr"), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["status"] == "damaged" and info["unchecked"] and info["missing_chunks"] is None
        assert cli.main(["info", str(tmp_path / "g.zarr")]) == 0
        out = capsys.readouterr().out
        assert "status       DAMAGED: an array of it has been rewritten in a layout whose chunks cannot be checked" in out
        assert "generated with" not in out and "generated complete" not in out


def test_shard_index_decoding(tmp_path):
    X = make_blobs(n=12000, means=BLOBS3)
    sharded_store(tmp_path / "s.zarr", X)
    raw = (tmp_path / "s.zarr" / "c" / "0" / "0").read_bytes()
    pairs = _store._decode_shard_index(raw[-36:], (2, 1))
    assert pairs.shape == (2, 1, 2) and pairs.dtype == np.uint64
    starts, sizes = pairs[:, 0, 0], pairs[:, 0, 1]
    assert starts[0] == 0 and starts[1] == sizes[0] and sizes.sum() == len(raw) - 36  # the two chunks, then the index
    flipped = bytearray(raw[-36:])
    flipped[3] ^= 1
    with pytest.raises(ValueError, match="fails its crc32c checksum"):
        _store._decode_shard_index(bytes(flipped), (2, 1))
    with pytest.raises(ValueError, match="it holds 35 bytes, fewer than the 36 of its index"):
        _store._decode_shard_index(raw[-35:], (2, 1))
    absent = 2**64 - 1
    big = np.array([[0, 10], [absent, absent]], ">u8").tobytes()
    np.testing.assert_array_equal(_store._decode_shard_index(big, (2,), ">", checksummed=False), [[0, 10], [absent, absent]])
    with pytest.raises(ValueError, match="half absent"):
        _store._decode_shard_index(np.array([[0, absent]], "<u8").tobytes(), (1,), checksummed=False)


@pytest.mark.filterwarnings("ignore:Combining a `sharding_indexed` codec")
def test_sharded_layout_that_cannot_be_checked_is_refused(tmp_path):
    """A compressor around whole shards (zarr adds its default one when given only a sharding serializer)."""
    X = make_blobs(n=12000, means=BLOBS3)
    codec = zarr.codecs.ShardingCodec(chunk_shape=(3000, 3))
    arr = zarr.create_array(str(tmp_path / "s.zarr"), shape=X.shape, chunks=(6000, 3), dtype=X.dtype, serializer=codec)
    arr[:] = X
    assert arr.shards is None and len(arr.metadata.codecs) == 2
    with pytest.raises(ValueError, match="sharded in a layout dask_gmm cannot check for unwritten chunks"):
        GaussianMixture(3).fit(arr)


def test_chunk_zarr_cannot_decode_is_named(tmp_path):
    """Zarr v2 (read through dask and zarr, not the direct reader): a truncated chunk names itself and its rows."""
    numcodecs = pytest.importorskip("numcodecs")
    X = make_blobs(n=20000, means=BLOBS3)
    g = zarr.open_group(str(tmp_path / "v2.zarr"), mode="w", zarr_format=2)
    a = g.create_array("X", shape=X.shape, chunks=(1000, 3), dtype=X.dtype, compressors=numcodecs.Zstd(level=3))
    a[:] = X
    chunk = tmp_path / "v2.zarr" / "X" / "6.0"
    chunk.write_bytes(chunk.read_bytes()[: len(chunk.read_bytes()) // 2])
    said = (r"Chunk 'X/6\.0' of the Zarr array '[^']+' \(rows 6000-6999\) cannot be decoded \(.+\); "
            r"the store is corrupt\. Restore or regenerate it \(a store of generate_mixture")
    with pytest.raises(ValueError, match=said) as caught:
        GaussianMixture(3, random_state=0).fit(str(tmp_path / "v2.zarr"))
    assert isinstance(caught.value.__cause__, RuntimeError)  # numcodecs' own error, chained
    gm = GaussianMixture(3, random_state=0).fit(X)
    with pytest.raises(ValueError, match=said):
        gm.predict(str(tmp_path / "v2.zarr")).compute()
    w = zarr.create_array(str(tmp_path / "w.zarr"), shape=(len(X),), chunks=(1000,), dtype="f8", zarr_format=2,
                          compressors=numcodecs.Zstd(level=3))
    w[:] = 1.0
    (tmp_path / "w.zarr" / "2").write_bytes(b"\x28\xb5\x2f\xfd")  # a Zstd frame's magic number, then nothing
    with pytest.raises(ValueError, match=r"Chunk '2' of the Zarr array '[^']+' \(rows 2000-2999\) cannot be decoded"):
        GaussianMixture(3).fit(X, sample_weight=str(tmp_path / "w.zarr"))


def test_only_errors_of_the_data_are_reworded():
    import gzip
    import lzma
    import zlib

    for exc in (RuntimeError("Zstd decompression error"), ValueError("checksum"), zlib.error(), EOFError(),
                gzip.BadGzipFile(), lzma.LZMAError("Corrupt input data")):
        assert _reader._is_decode_error(exc)
    for exc in (OSError(5, "Input/output error"), PermissionError(), TimeoutError(), MemoryError(),
                KeyError("X/c/0/0"), Exception("a remote store's client failed"),
                RuntimeError("can't start new thread")):  # Thread.start's, under ulimit -v: not the store's fault
        assert not _reader._is_decode_error(exc)


def test_healthy_sharded_and_v2_stores_fit_as_in_memory(tmp_path):
    numcodecs = pytest.importorskip("numcodecs")
    X = make_blobs(n=20000, means=BLOBS3)
    v2 = zarr.create_array(str(tmp_path / "v2.zarr"), shape=X.shape, chunks=(1000, 3), dtype=X.dtype, zarr_format=2,
                           compressors=numcodecs.Zstd(level=3))
    v2[:] = X
    for arr in (sharded_store(tmp_path / "s.zarr", X), v2):
        assert _store.missing_chunks(arr) == [] and io.zarr_rows(arr) is None  # read through dask and zarr
        blocks = io.as_dask_array(arr).chunks
        for kw in (dict(init_params="random_from_data"), dict(init_params="kmeans", n_init=2)):
            ref = GaussianMixture(3, random_state=0, **kw).fit(da.from_array(X, chunks=blocks))
            got = GaussianMixture(3, random_state=0, **kw).fit(arr)
            assert got.n_iter_ == ref.n_iter_
            np.testing.assert_allclose(got.means_, ref.means_, rtol=1e-12, atol=0)


def test_numpy_chunking_does_not_depend_on_the_machine(monkeypatch):
    X = make_blobs(n=3000)
    chunks = io.as_dask_array(X).chunks
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert io.as_dask_array(X).chunks == chunks


# ------------------------------------------------------------------ the direct (synchronous) Zarr reader
CODEC_CHAINS = {
    "zstd": dict(compressors=[ZstdCodec(level=3)]),
    "none": dict(compressors=None),
    "blosc+crc32c": dict(compressors=[zarr.codecs.BloscCodec(cname="lz4", shuffle="shuffle"), zarr.codecs.Crc32cCodec()]),
    # Blosc outermost: its output is a chunk and a checksum, not a chunk, so it is not decoded into
    # the reused buffer of a chunk's size (which it would overflow)
    "crc32c+blosc": dict(compressors=[zarr.codecs.Crc32cCodec(), zarr.codecs.BloscCodec(cname="lz4")]),
    "gzip, big-endian": dict(compressors=[zarr.codecs.GzipCodec()], serializer=zarr.codecs.BytesCodec(endian="big")),
    "transpose": dict(filters=[zarr.codecs.TransposeCodec(order=(1, 0))], compressors=[ZstdCodec(level=1)]),
}


@pytest.mark.parametrize("chain", list(CODEC_CHAINS))
@pytest.mark.parametrize("n_features, chunks, dtype, compiled", [
    (2, (300, 1), "<f8", False), (4, (300, 1), "<f4", False),  # few chunks of one feature: NumPy's copies
    (8, (300, 1), "<f8", True), (5, (300, 2), "<f8", True), (17, (256, 4), "<f8", True), (7, (300, 3), "<f4", True),
])
def test_a_band_across_features_is_put_together_by_the_compiled_interleave(tmp_path, monkeypatch, chain, n_features,
                                                                        chunks, dtype, compiled):
    """A band of chunks across the features is decoded whole into one buffer (straight from Blosc
    or Zstd where its bytes are as stored), then put into whole rows a tile of rows at a time
    (_numba.interleave): NumPy's copy of one chunk at a time into its columns went over every row
    once a chunk (1 MiB chunks of 2 of 16 features: a fit 1.09x faster). The same rows, in their
    dtype, whichever puts them together, under every codec chain; the last chunk across may be
    wider than the array."""
    compiled = compiled and _kernels.USE_NUMBA  # DASK_GMM_NUMBA=0: NumPy's copies throughout
    X = np.random.default_rng(n_features).standard_normal((1037, n_features)).astype(dtype)
    zarr.create_array(str(tmp_path / "a.zarr"), shape=X.shape, chunks=chunks, dtype=X.dtype, **CODEC_CHAINS[chain])[:] = X
    rows = io.zarr_rows(str(tmp_path / "a.zarr"))
    calls = []
    interleave = _numba.interleave
    monkeypatch.setattr(_numba, "interleave", lambda *a: calls.append(a[1].shape) or interleave(*a))
    monkeypatch.setattr(_reader, "GROUP_BYTES", 1)  # one band a piece
    got = [(lo, x.copy()) for lo, x in rows.pieces(0, 1037)]
    assert [lo for lo, _ in got] == list(range(0, 1037, chunks[0]))
    assert all(x.dtype == np.dtype(dtype).newbyteorder("=") for _, x in got)
    np.testing.assert_array_equal(np.concatenate([x for _, x in got]), X)
    np.testing.assert_array_equal(rows.read(123, 1000), X[123:1000])
    np.testing.assert_array_equal(rows.chunk(3), X[3 * chunks[0] : 4 * chunks[0]])  # an array of its own
    bands_read = len(got) + len(range(123 // chunks[0], -(-1000 // chunks[0]))) + 1  # pieces, read, chunk
    assert len(calls) == bands_read * compiled and all(c == (len(rows._columns), *chunks) for c in calls)
    if chain in ("zstd", "blosc+crc32c"):  # decoded straight into the band's buffer: no chunk-sized buffer
        made = []
        thread = threading.Thread(target=lambda: (rows.read(0, 1037), made.extend(vars(_reader._SCRATCH))))
        thread.start(), thread.join()
        assert ("parts" in made) == compiled and ("decoded" in made) == (not compiled)
    monkeypatch.setattr(_kernels, "USE_NUMBA", False)  # NumPy's copies: the same rows
    calls.clear()
    np.testing.assert_array_equal(rows.read(0, 1037), X)
    assert not calls
    monkeypatch.setattr(_kernels, "USE_NUMBA", True)  # a store of whole rows, read in groups: copied as they are
    zarr.create_array(str(tmp_path / "w.zarr"), shape=X.shape, chunks=(100, n_features), dtype=X.dtype,
                      **CODEC_CHAINS[chain])[:] = X
    monkeypatch.setattr(_reader, "GROUP_BYTES", 2**20)
    np.testing.assert_array_equal(io.zarr_rows(str(tmp_path / "w.zarr")).read(0, 1037), X)
    assert not calls


@pytest.mark.parametrize("chain", sorted(CODEC_CHAINS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_zarr_rows_reads_what_zarr_reads(tmp_path, monkeypatch, chain, dtype):
    X = np.random.default_rng(0).standard_normal((1037, 3)).astype(dtype)
    arr = zarr.create_array(str(tmp_path / "a.zarr"), shape=X.shape, chunks=(100, 3), dtype=dtype, **CODEC_CHAINS[chain])
    arr[:] = X
    rows = io.zarr_rows(str(tmp_path / "a.zarr"))
    assert rows is not None
    np.testing.assert_array_equal(rows.read(1000, 1100), X[1000:1100])  # past the end: as zarr's slice, 37 rows
    for start, stop in ((0, 1037), (0, 100), (37, 963), (1000, 1037), (250, 251)):
        got = rows.read(start, stop)
        assert got.dtype == np.dtype(dtype) and got.dtype.isnative
        np.testing.assert_array_equal(got, X[start:stop])
        pieces = [(lo, x.copy()) for lo, x in rows.pieces(start, stop)]  # each valid until the next
        assert [lo for lo, _ in pieces] == [start]  # small chunks: one group
        np.testing.assert_array_equal(pieces[0][1], X[start:stop])
    monkeypatch.setattr(_reader, "GROUP_BYTES", 1)  # a piece for each chunk
    for start, stop in ((0, 1037), (37, 963), (250, 251)):
        pieces = [(lo, x.copy()) for lo, x in rows.pieces(start, stop)]
        assert [lo for lo, _ in pieces] == [start] + list(range((start // 100 + 1) * 100, stop, 100))
        np.testing.assert_array_equal(np.concatenate([x for _, x in pieces]), X[start:stop])


@pytest.mark.parametrize("chain", ["blosc+crc32c", "zstd", "none"])
@pytest.mark.parametrize("group", [1, 3])
def test_zarr_rows_pieces_reuse_their_buffers(tmp_path, monkeypatch, chain, group):
    """pieces() reads a local chunk file and decodes Blosc or Zstd (zarr's default) into buffers
    each thread reuses: under a distributed worker's MALLOC_TRIM_THRESHOLD_, every new 4 MiB buffer
    was faulted in page by page (a chunk's read and decode took 4.2 ms, not 0.9; a Zstd store's fit
    ran 1.15x faster when its chunks were decoded so). So are groups of small chunks. chunk()
    still gives arrays of their own."""
    X = np.random.default_rng(0).standard_normal((1000, 3))
    zarr.create_array(str(tmp_path / "a.zarr"), shape=X.shape, chunks=(100, 3), dtype=X.dtype,
                      **CODEC_CHAINS[chain])[:] = X
    rows = io.zarr_rows(str(tmp_path / "a.zarr"))
    monkeypatch.setattr(_reader, "GROUP_BYTES", group * 100 * 3 * 8)
    seen = []
    for lo, x in rows.pieces(0, 1000):
        np.testing.assert_array_equal(x, X[lo : lo + 100 * group])
        seen.append(x)
    assert len(seen) == -(-10 // group)
    assert all(np.shares_memory(seen[0], x) for x in seen[1:])
    elsewhere = []
    thread = threading.Thread(target=lambda: elsewhere.extend(x for _, x in rows.pieces(0, 100)))
    thread.start()
    thread.join()
    assert not np.shares_memory(elsewhere[0], seen[0])  # another thread, other buffers
    a, b = rows.chunk(0), rows.chunk(1)
    assert not np.shares_memory(a, b) and not np.shares_memory(a, seen[0])
    np.testing.assert_array_equal(a, X[:100])


@pytest.mark.parametrize("read_into", ["_readv_into", "_copied_into"])
def test_zarr_rows_reads_chunk_files_without_readv_too(tmp_path, monkeypatch, read_into):
    """Where the OS has no ``readv`` (Windows) a chunk file is read and copied; either way a file
    larger than the buffer's room grows it."""
    X = np.random.default_rng(0).standard_normal((1000, 3))
    zarr.create_array(str(tmp_path / "a.zarr"), shape=X.shape, chunks=(100, 3), dtype=X.dtype,
                      **CODEC_CHAINS["blosc+crc32c"])[:] = X
    monkeypatch.setattr(_reader, "_read_into", getattr(_reader, read_into))
    monkeypatch.setattr(_reader, "_SCRATCH", threading.local())
    rows = io.zarr_rows(str(tmp_path / "a.zarr"))
    for room in (16, 100_000):
        rows._file_bytes = room
        np.testing.assert_array_equal(rows.read(0, 1000), X)


@pytest.mark.parametrize("chain", ["blosc+crc32c", "none"])
@pytest.mark.parametrize("room", [16, 100_000])
def test_zarr_rows_reads_a_chunk_file_that_comes_in_short_reads(tmp_path, monkeypatch, chain, room):
    """The reused-buffer read loops until the file's end, in reads of at most 1,000 bytes (as a
    read of over 2 GiB, or one from a network file system, may give), into a buffer grown when
    the file is larger (``room``); a file that ends early is refused by its checksum, not decoded
    from what came."""
    X = np.random.default_rng(0).standard_normal((1000, 3))
    zarr.create_array(str(tmp_path / "a.zarr"), shape=X.shape, chunks=(100, 3), dtype=X.dtype,
                      **CODEC_CHAINS[chain])[:] = X
    rows = io.zarr_rows(str(tmp_path / "a.zarr"))
    rows._file_bytes = room
    monkeypatch.setattr(_reader, "_SCRATCH", threading.local())  # no buffer of another test's size
    real, reads, stop = os.readv, [], {}

    def short_readv(fd, buffers):
        at = os.lseek(fd, 0, os.SEEK_CUR)
        reads.append(at)
        return real(fd, [memoryview(buffers[0])[: max(0, min(1000, stop.get("at", 1 << 40) - at))]])

    monkeypatch.setattr(os, "readv", short_readv)
    np.testing.assert_array_equal(np.concatenate([x.copy() for _, x in rows.pieces(0, 1000)]), X)
    assert reads.count(0) == 10 and len(reads) > 20  # each file in several reads
    stop["at"] = os.path.getsize(tmp_path / "a.zarr" / "c" / "4" / "0") - 8
    with pytest.raises(ValueError, match=r"'c/0/0' of the Zarr array '[^']+' \(rows 0-99\) cannot be decoded"):
        next(rows.pieces(0, 100))


class _AtIteration(logging.Handler):
    """Runs ``change`` when the fit logs its iteration ``n`` (verbose=2): between two passes, in the
    fit's own thread."""

    def __init__(self, n, change):
        super().__init__()
        self.n, self.change = n, change

    def emit(self, record):
        if re.search(rf"iteration {self.n}\b", record.getMessage()):
            self.change()


@pytest.mark.parametrize("how", ["path, rewritten", "sliced dask array, removed", "dask array of a path, removed",
                                 "dask array of a path, rewritten", "weights, rewritten"])
def test_a_store_changed_during_a_fit_is_refused(tmp_path, how):
    """A chunk rewritten mid-fit (valid bytes, valid checksum) was read before the change in some
    iterations and after it in others: the fit returned a model of neither data set, without a
    word. A chunk removed under a sliced dask array of the Zarr array read as rows of fill values
    (zarr's own read, not dask_gmm's), and the fit put a component at the origin."""
    X = make_blobs(n=3000, means=((0.0, 10.0), (10.0, 0.0), (-10.0, 0.0)))
    arr = write_store(tmp_path / "s.zarr", X, chunks=(500, 2))
    folder = tmp_path / "s.zarr" / "X" / "c"
    weights = None
    if how.startswith("weights"):
        w = zarr.create_array(str(tmp_path / "w.zarr"), shape=(3000,), chunks=(500,), dtype="f8")
        w[:] = np.linspace(0.5, 1.5, 3000)  # each chunk its own weights
        weights, folder = w, tmp_path / "w.zarr" / "c"
        data = str(tmp_path / "s.zarr")
    elif how.startswith("sliced"):
        data = da.from_zarr(arr)[:, :2] * 1.0
    elif how.startswith("dask array of a path"):  # dask opens a path through fsspec's local file system
        data = da.from_zarr(str(tmp_path / "s.zarr"), component="X")[:, :2] * 1.0
    else:
        data = str(tmp_path / "s.zarr")

    def change():
        if how.endswith("removed"):
            os.remove(folder / "3" / "0")
        else:  # another chunk's bytes, written as a writer does (a new file renamed over the old)
            other = folder / ("1" if weights is None else "5")
            shutil.copyfile(other / "0" if weights is None else other, tmp_path / "new")
            os.replace(tmp_path / "new", folder / "0" / "0" if weights is None else folder / "0")

    logger = logging.getLogger("dask_gmm")
    handler, level = _AtIteration(2, change), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        # the direct reader's task finds the chunk of another size as it reads it; the others, after the pass
        found = (r"\(rows 0-499\) holds [\d,]+ bytes, where it held [\d,]+ when the fit began or the lazy output "
                 r"was made" if how == "path, rewritten" else r"was (rewritten|removed) after the computation began")
        with pytest.raises(ValueError, match=r"'[^']*(s.zarr/X|w.zarr)' changed while dask_gmm read it: its file "
                                             r"'c/(0/0|0|3/0)' " + found + ".*Rerun it once"):
            GaussianMixture(3, random_state=0, init_params="random_from_data", tol=0, max_iter=5, verbose=2,
                            verbose_interval=1).fit(data, sample_weight=weights)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_a_chunk_rewritten_in_place_with_its_size_and_time_kept_is_found(tmp_path):
    """An uncompressed chunk rewritten in place, its size and modification time kept (``rsync
    --inplace -t``, ``touch -r``), was fitted as a mix of both data sets (a review): the files'
    status change times are compared too."""
    X = make_blobs(n=3000, means=((0.0, 10.0), (10.0, 0.0), (-10.0, 0.0)))
    arr = zarr.create_array(str(tmp_path / "s.zarr"), shape=X.shape, chunks=(500, 2), dtype=X.dtype, compressors=None)
    arr[:] = X
    chunk = tmp_path / "s.zarr" / "c" / "1" / "0"

    def change():
        time.sleep(0.05)  # a status change time other than the file's first, whatever the clock's grain
        st = os.stat(chunk)
        with open(chunk, "r+b") as f:
            f.write((X[500:1000] * 2.0 + 3.0).tobytes())
        os.utime(chunk, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert (os.stat(chunk).st_size, os.stat(chunk).st_mtime_ns) == (st.st_size, st.st_mtime_ns)

    logger = logging.getLogger("dask_gmm")
    handler, level = _AtIteration(2, change), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with pytest.raises(ValueError, match=r"'[^']*s\.zarr' changed while dask_gmm read it: its file 'c/1/0' "
                                             r"was rewritten after the computation began"):
            GaussianMixture(3, random_state=0, tol=0, max_iter=5, verbose=2, verbose_interval=1).fit(
                str(tmp_path / "s.zarr"))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_files_added_to_a_store_during_a_fit_are_not_a_change(tmp_path):
    X = make_blobs(n=2000, means=((0.0, 10.0), (10.0, 0.0), (-10.0, 0.0)))
    write_store(tmp_path / "s.zarr", X, chunks=(500, 2))
    logger = logging.getLogger("dask_gmm")
    handler, level = _AtIteration(1, lambda: (tmp_path / "s.zarr" / "X" / "c" / "notes.txt").write_text("x")), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        ours = fit(str(tmp_path / "s.zarr"), tol=0, max_iter=3, verbose=2, verbose_interval=1)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert (tmp_path / "s.zarr" / "X" / "c" / "notes.txt").exists()
    np.testing.assert_allclose(ours.means_, fit(X, tol=0, max_iter=3).means_, rtol=1e-12)


def test_zstd_content_size_reads_the_frame_header():
    """The decoded size a Zstandard frame states (RFC 8878), for the reused-buffer decode: every
    header layout, and None where there is no frame or no size."""
    magic = b"\x28\xb5\x2f\xfd"
    assert _codecs._zstd_content_size(magic + bytes([0b00100000, 200]) + bytes(12)) == 200  # single segment, 1 byte
    assert _codecs._zstd_content_size(magic + bytes([0b01000000, 9]) + (1000 - 256).to_bytes(2, "little")) == 1000
    header = magic + bytes([0b10000011, 9]) + (7).to_bytes(4, "little") + (2**20).to_bytes(4, "little")  # a dictionary id
    assert _codecs._zstd_content_size(header) == 2**20
    assert _codecs._zstd_content_size(magic + bytes([0b11100001, 7]) + (2**33).to_bytes(8, "little")) == 2**33
    assert _codecs._zstd_content_size(magic + bytes([0b00000000, 9]) + bytes(12)) is None  # no size stated
    assert _codecs._zstd_content_size(header[:-1]) is None  # cut short
    assert _codecs._zstd_content_size(b"\x50\x2a\x4d\x18" + bytes(14)) is None  # a skippable frame
    for n in (1, 255, 256, 65791, 65792, 70_000):
        frame = numcodecs.Zstd(level=3).encode(np.arange(n, dtype=np.uint8))
        assert _codecs._zstd_content_size(frame[:18]) == n


@pytest.mark.parametrize("group", [1, 5])
def test_a_zstd_chunk_of_another_size_is_refused_not_read_from_the_reused_buffer(tmp_path, monkeypatch, group):
    """A valid Zstd frame of half a chunk in a chunk's file: the reused buffer, which holds the
    chunk read before it, must not fill the rest (in a piece of its own, or of a group)."""
    monkeypatch.setattr(_reader, "GROUP_BYTES", group * 100 * 3 * 8)
    X = np.random.default_rng(0).standard_normal((1000, 3))
    zarr.create_array(str(tmp_path / "a.zarr"), shape=X.shape, chunks=(100, 3), dtype=X.dtype,
                      compressors=[ZstdCodec(level=3)])[:] = X
    (tmp_path / "a.zarr" / "c" / "3" / "0").write_bytes(numcodecs.Zstd(level=3).encode(X[300:350].tobytes()))
    rows = io.zarr_rows(str(tmp_path / "a.zarr"))
    pieces = rows.pieces(200, 400)
    if group == 1:
        np.testing.assert_array_equal(next(pieces)[1], X[200:300])
    with pytest.raises(ValueError, match=r"'c/3/0' of the Zarr array '[^']+' \(rows 300-399\) cannot be decoded"):
        next(pieces)


def test_a_blosc_chunk_whose_header_gives_another_size_is_refused(tmp_path):
    """A Blosc header claiming 2 GiB, with no checksum to catch it first: a clear error, not an
    allocation of that size (the reused decode reads the size from the header; one that does not
    give a whole chunk's goes to zarr's decode)."""
    X = np.random.default_rng(0).standard_normal((1000, 3))
    zarr.create_array(str(tmp_path / "a.zarr"), shape=X.shape, chunks=(100, 3), dtype=X.dtype,
                      compressors=[zarr.codecs.BloscCodec(cname="lz4", shuffle="shuffle")])[:] = X
    chunk = tmp_path / "a.zarr" / "c" / "3" / "0"
    data = bytearray(chunk.read_bytes())
    data[4:8] = (2**31 - 1).to_bytes(4, "little")  # a decoded size of 2 GiB
    chunk.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"'c/3/0' of the Zarr array '[^']+' \(rows 300-399\) cannot be decoded"):
        fit(str(tmp_path / "a.zarr"))


def _unstated(frame):
    """numcodecs' Zstandard ``frame`` (no dictionary) made into one that states no decoded size, as a
    streaming encoder writes: the same blocks, behind a window descriptor in place of the size."""
    fhd, n = frame[4], _codecs._zstd_content_size(frame[:18])
    single = fhd >> 5 & 1
    width = (single, 2, 4, 8)[fhd >> 6]
    window = bytes([max(0, (n - 1).bit_length() - 10) << 3]) if single else frame[5:6]
    return frame[:4] + bytes([fhd & 0b111]) + window + frame[5 + (not single) + width :]


def test_a_zstd_chunk_that_states_no_size_is_read_as_it_is_and_refused_at_another_size(tmp_path):
    """A Zstd frame written by a streaming encoder states no decoded size: it is decoded into a buffer
    of a whole chunk's bytes (the innermost codec's output), reused or new, so it is read as zarr
    reads it; one of half a chunk is refused, not filled from the reused buffer."""
    X = np.random.default_rng(0).standard_normal((1000, 3))
    path = tmp_path / "a.zarr"
    zarr.create_array(str(path), shape=X.shape, chunks=(100, 3), dtype=X.dtype, compressors=[ZstdCodec(level=3)])[:] = X
    for i in range(10):
        chunk = path / "c" / str(i) / "0"
        chunk.write_bytes(_unstated(chunk.read_bytes()))
        assert _codecs._zstd_content_size(chunk.read_bytes()[:18]) is None
    np.testing.assert_array_equal(zarr.open_array(str(path))[:], X)  # zarr reads them
    rows = io.zarr_rows(str(path))
    np.testing.assert_array_equal(rows.read(0, 1000), X)
    alone = rows.chunk(3)  # a new buffer, not the reused one
    rows.read(0, 1000)
    np.testing.assert_array_equal(alone, X[300:400])
    (path / "c" / "3" / "0").write_bytes(_unstated(numcodecs.Zstd(level=3).encode(X[300:350].tobytes())))
    with pytest.raises(ValueError, match=r"'c/3/0' of the Zarr array '[^']+' \(rows 300-399\) cannot be decoded"):
        rows.read(0, 1000)


def test_zstd_decoded_size_adds_every_frames_size():
    """numcodecs decodes every Zstd frame of a chunk: the bound adds their stated sizes, steps over
    skippable frames, and gives None where one states none or the bytes are no frames."""
    z, zc = numcodecs.Zstd(level=3), numcodecs.Zstd(level=3, checksum=True)
    noise = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    parts = [z.encode(b"x" * 100), zc.encode(noise), z.encode(bytes(70_000)), z.encode(b"")]  # RLE, raw, empty
    size = lambda b: _codecs._zstd_decoded_size(np.frombuffer(bytes(b), np.uint8))  # noqa: E731
    assert [size(p) for p in parts] == [100, 300_000, 70_000, 0]
    both = b"".join(map(bytes, parts))
    assert size(both) == 370_100 == len(numcodecs.Zstd().decode(both))
    skip = (0x184D2A5A).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"abcde"
    assert size(skip + both) == 370_100
    assert size(bytes(parts[0]) + _unstated(parts[2])) is None
    assert size(both + b"\x00") is None and size(both[:-1]) is None and size(b"not zstd at all") is None


def test_a_zstd_chunk_of_several_frames_is_read_as_zarr_reads_it(tmp_path):
    """A valid chunk of two Zstd frames, each half of its bytes, stated or not."""
    X = np.random.default_rng(0).standard_normal((1000, 3))
    path = tmp_path / "a.zarr"
    zarr.create_array(str(path), shape=X.shape, chunks=(100, 3), dtype=X.dtype, compressors=[ZstdCodec(level=3)])[:] = X
    z = numcodecs.Zstd(level=3)
    for i in range(10):
        half = [X[100 * i : 100 * i + 50].tobytes(), X[100 * i + 50 : 100 * (i + 1)].tobytes()]
        frames = [bytes(z.encode(h)) for h in half]
        (path / "c" / str(i) / "0").write_bytes(frames[0] + (_unstated(frames[1]) if i % 2 else frames[1]))
    np.testing.assert_array_equal(zarr.open_array(str(path))[:], X)
    np.testing.assert_array_equal(io.zarr_rows(str(path)).read(0, 1000), X)


@pytest.mark.parametrize("codec", ["zstd", "zstd, no size stated", "zstd, a second frame", "gzip", "blosc",
                                   "blosc, zarr v2", "zstd, zarr v2", "zstd, a second frame, zarr v2",
                                   "zstd, int32", "blosc, int32"])
def test_a_chunk_that_decodes_to_far_more_than_a_chunk_is_refused_before_it_is_decoded(tmp_path, codec):
    """A decode bomb: 64 MiB of zeros in a few KB, in place of a 24 KB chunk. It had been decoded
    whole before its size was found wrong (a review: 164 KB of Zstd to 5 GiB, 785 bytes of bz2 to
    1 GiB). Blosc's and Zstd's stated sizes are checked first, a frame that states none is decoded into
    a chunk's bytes, Gzip is read up to a chunk's bytes; the Blosc and Zstd chunks that zarr reads
    itself (zarr v2's, an integer array's) are checked before zarr reads them."""
    import tracemalloc

    dtype = np.int32 if "int32" in codec else np.float64
    X = np.random.default_rng(0).integers(-9, 9, (20_000, 3)).astype(dtype)
    path = tmp_path / "a.zarr"
    zeros = bytes(64 * 2**20)
    v2 = "v2" in codec
    if codec.startswith("zstd"):
        compressor, bomb = numcodecs.Zstd(level=3) if v2 else ZstdCodec(level=3), numcodecs.Zstd(level=3).encode(zeros)
        bomb = _unstated(bomb) if "no size" in codec else bomb
        bomb = bytes(numcodecs.Zstd(level=3).encode(b"x" * 100)) + bomb if "second" in codec else bomb
    elif codec == "gzip":
        compressor, bomb = zarr.codecs.GzipCodec(level=1), numcodecs.GZip(level=1).encode(zeros)
    else:
        compressor = numcodecs.Blosc(cname="lz4") if v2 else zarr.codecs.BloscCodec(cname="lz4")
        bomb = numcodecs.Blosc(cname="lz4").encode(zeros)
    zarr.create_array(str(path), shape=X.shape, chunks=(1000, 3), dtype=X.dtype, compressors=compressor,
                      zarr_format=2 if v2 else 3)[:] = X
    name = "1.0" if v2 else "c/1/0"
    (path / name).write_bytes(bomb)
    assert len(bomb) < 2**19  # Blosc's, the largest: 266 KiB
    zarrs_path = v2 or dtype != np.float64  # read by zarr, not by the direct reader
    tracemalloc.start()
    try:
        why = {"zstd, no size stated": r"Zstd decompression error: b'Destination buffer is too small'",
               "gzip": r"it decodes to more than 28,\d+ bytes"}.get(codec, r"it says it decodes to 67,108,\d+ bytes")
        with pytest.raises(ValueError, match=rf"'{re.escape(name)}' of the Zarr array '[^']+' \(rows 1000-1999\) cannot be "
                                             rf"decoded \({why}"):
            if zarrs_path:  # one task at a time: no decode left running when tracemalloc stops
                io.as_dask_array(str(path)).compute(scheduler="synchronous")
            else:
                io.zarr_rows(str(path)).read(0, 20_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, peak


@pytest.mark.parametrize("case", ["gzip, zarr v2", "bz2, zarr v2", "lzma, zarr v2", "zlib, zarr v2",
                                  "zstd no size, zarr v2", "lz4, zarr v2", "bz2, int64", "lzma, int64",
                                  "gzip, int64", "zstd no size, int64", "blosc then crc32c, int64",
                                  "zstd then crc32c, int64", "gzip in shards", "zstd no size in shards",
                                  "blosc in shards", "gzip, int64, a memory store"])
def test_zarrs_own_read_bounds_every_codecs_decode(tmp_path, case):
    """A decode bomb (64 MiB of zeros in at most a few hundred KB) in place of a 12 KB chunk, in the
    stores that zarr decodes itself (zarr v2's, integer arrays', sharded ones, any store): zarr's
    decode is bounded by a chunk's bytes (_codecs.bounded_reads), so it is refused before it is decoded
    whole. A review saw each of these decoded whole (2.4 GB of memory for a 1 GiB bomb; the Blosc and
    Zstd ones under a crc32c codec too, whose check had looked at the last codec only)."""
    import tracemalloc

    import google_crc32c
    from zarr.codecs.numcodecs import BZ2, LZMA

    zeros = bytes(64 * 2**20)
    kind = case.split(",")[0].split(" in ")[0]
    v2, sharded, memory = "v2" in case, "shards" in case, "memory" in case
    dtype = np.int64 if "int64" in case else np.float64
    X = np.random.default_rng(0).integers(-9, 9, (6000, 3)).astype(dtype)
    plain = {"gzip": numcodecs.GZip(1), "bz2": numcodecs.BZ2(1), "lzma": numcodecs.LZMA(), "zlib": numcodecs.Zlib(1),
             "zstd no size": numcodecs.Zstd(3), "lz4": numcodecs.LZ4(), "blosc then crc32c": numcodecs.Blosc("lz4"),
             "zstd then crc32c": numcodecs.Zstd(3), "blosc": numcodecs.Blosc("lz4")}[kind]
    bomb = bytes(plain.encode(zeros))
    bomb = _unstated(bomb) if "no size" in kind else bomb
    if v2:
        compressors = plain
    else:
        compressors = {"gzip": zarr.codecs.GzipCodec(level=1), "bz2": BZ2(level=1), "lzma": LZMA(),
                       "zstd no size": ZstdCodec(level=3), "blosc": zarr.codecs.BloscCodec(cname="lz4"),
                       "blosc then crc32c": [zarr.codecs.BloscCodec(cname="lz4"), zarr.codecs.Crc32cCodec()],
                       "zstd then crc32c": [ZstdCodec(level=3), zarr.codecs.Crc32cCodec()]}[kind]
    if "crc32c" in kind:
        bomb += google_crc32c.value(bomb).to_bytes(4, "little")
    store = zarr.storage.MemoryStore() if memory else str(tmp_path / "a.zarr")
    arr = zarr.create_array(store, shape=X.shape, dtype=X.dtype, zarr_format=2 if v2 else 3, compressors=compressors,
                            chunks=(100, 3) if sharded else (500, 3), shards=(500, 3) if sharded else None)
    arr[:] = X
    assert io.zarr_rows(arr) is None  # zarr's own read, not the direct reader's
    key = "1.0" if v2 else "c/1/0"
    if sharded:
        shard_with_inner_chunk(tmp_path / "a.zarr" / "c" / "1" / "0", 5, bomb)
    elif memory:
        store._store_dict[key] = zarr.core.buffer.cpu.Buffer.from_bytes(bomb)
    else:
        (tmp_path / "a.zarr" / key).write_bytes(bomb)
    assert len(bomb) < 2**19
    said = (rf"(Chunk|Shard) '{re.escape(key)}' of the Zarr array '[^']+' \(rows 500-999\) cannot be decoded \((it decodes to "
            r"more than [\d,]+ bytes|it says it decodes to 67,108,\d+ bytes|Zstd decompression error: b'Destination)")
    if sharded:  # a shard's inner chunks are decoded on zarr's threads, still running when the error comes
        with pytest.raises(ValueError, match=said):
            io.as_dask_array(arr).compute()
    else:  # one chunk a task, one task at a time: no decode left running when tracemalloc stops
        tracemalloc.start()  # (its stop crashed the process when zlib allocated on another thread)
        try:
            with pytest.raises(ValueError, match=said):
                io.as_dask_array(arr).compute(scheduler="synchronous")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 32 * 2**20, peak  # half the bomb's bytes: LZMA's decoder takes 8 MiB of its own
    arr[500:1000] = X[500:1000]  # the same store, its chunk written again: read as zarr reads it
    np.testing.assert_array_equal(io.as_dask_array(arr).compute(), X.astype(np.float64))


@pytest.mark.parametrize("case", ["a Zlib filter, no compressor", "a bz2 filter under Blosc",
                                  "Zstd stating no size, under a Delta filter",
                                  "Zstd stating no size, the only filter"])
def test_zarr_v2_filters_are_bounded_too(tmp_path, case):
    """zarr v2 takes any codec as a filter, and a compressor's output size changes under filters: a
    bomb (64 MiB of zeros) in a filter, or in Zstd frames stating no size under a filter, had been
    decoded whole (a review: 518 MiB for a 333-byte chunk). The first filter's decode makes a chunk's
    bytes exactly: Zstd stating no size as the only filter had been decoded whole too (a review: 791 MiB
    for a 256 MiB bomb)."""
    import tracemalloc

    X = np.random.default_rng(0).integers(-9, 9, (2000, 3)).astype(np.float64)
    zeros = bytes(64 * 2**20)
    if case.endswith("the only filter"):
        compressor, filters = None, [numcodecs.Zstd(3)]
        bomb = _unstated(bytes(filters[0].encode(zeros)))
    elif case.startswith("Zstd"):
        compressor, filters = numcodecs.Zstd(3), [numcodecs.Delta("f8")]
        bomb = _unstated(bytes(compressor.encode(zeros)))
    else:
        compressor = numcodecs.Blosc("lz4") if "Blosc" in case else None
        filters = [numcodecs.BZ2(1) if "bz2" in case else numcodecs.Zlib(1)]
        inner = bytes(filters[0].encode(zeros))
        bomb = bytes(compressor.encode(inner)) if compressor else inner
    path = str(tmp_path / "f.zarr")
    zarr.create_array(path, shape=X.shape, dtype=X.dtype, chunks=(500, 3), zarr_format=2, compressors=compressor,
                      filters=filters)[:] = X
    (tmp_path / "f.zarr" / "1.0").write_bytes(bomb)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"Chunk '1\.0' of the Zarr array '[^']+' \(rows 500-999\) cannot be decoded \((it "
                                             r"decodes to more than [\d,]+ bytes, where a chunk holds 12,000|Zstd "
                                             r"decompression error: b'Destination buffer is too small')"):
            io.as_dask_array(path).compute(scheduler="synchronous")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20, peak


def _item_size_changing_filters(case):
    """``(zarr_format, the array's dtype, its filters)`` of a case of the test below."""
    import zarr.codecs.numcodecs as znc

    return {"v3 AsType f8 as f4": (3, "f8", [znc.AsType(encode_dtype="f4", decode_dtype="f8")]),
            "v3 FixedScaleOffset f8 as i4": (3, "f8", [znc.FixedScaleOffset(offset=0, scale=1000, dtype="<f8",
                                                                             astype="<i4")]),
            "v3 AsType f4 as f8": (3, "f4", [znc.AsType(encode_dtype="f8", decode_dtype="f4")]),
            "v2 AsType f4 as f8": (2, "f4", [numcodecs.AsType(encode_dtype="f8", decode_dtype="f4")]),
            "v2 Delta f8 as i2": (2, "f8", [numcodecs.Delta("f8", astype="i2")]),
            "v2 AsType i1 as c32": (2, "i1", [numcodecs.AsType(encode_dtype="c32", decode_dtype="i1")])}[case]


@pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")
@pytest.mark.parametrize("case", ["v3 AsType f8 as f4", "v3 FixedScaleOffset f8 as i4", "v3 AsType f4 as f8",
                                  "v2 AsType f4 as f8", "v2 Delta f8 as i2", "v2 AsType i1 as c32"])
def test_zstd_stating_no_size_under_filters_that_change_the_item_size_is_read(tmp_path, case):
    """Zstd frames that state no size (as streaming encoders write them) are decoded into the bytes the
    filters make of a chunk, not the array's dtype's (a review: valid v3 stores whose AsType or
    FixedScaleOffset change the item size were called corrupt); a v2 filter that widens values
    beyond 16 bytes (to c32's 32) leaves room for that."""
    zarr_format, dtype, filters = _item_size_changing_filters(case)
    X = (np.random.default_rng(0).normal(size=(2000, 2)) * 3).astype(dtype)
    path = str(tmp_path / "a.zarr")
    zarr.create_array(path, shape=X.shape, dtype=dtype, chunks=(500, 2), zarr_format=zarr_format, filters=filters,
                      compressors=ZstdCodec(level=3) if zarr_format == 3 else numcodecs.Zstd(3))[:] = X
    chunks = sorted((tmp_path / "a.zarr" / "c").glob("*/*") if zarr_format == 3 else (tmp_path / "a.zarr").glob("*.0"))
    assert len(chunks) == 4
    for chunk in chunks:
        chunk.write_bytes(_unstated(chunk.read_bytes()))
    np.testing.assert_array_equal(io.as_dask_array(path).compute(), zarr.open_array(path, mode="r")[:].astype(np.float64))


def test_a_v2_filter_stack_that_widens_values_past_16_bytes_is_read(tmp_path):
    """Three Base64 filters make 19 bytes of each float64: a review's valid store was refused as
    corrupt (the compressor's output held to 16 bytes a value); the bound is what the filters make of
    a chunk of zeros where that is more."""
    X = make_blobs(n=2000)
    path = str(tmp_path / "b.zarr")
    zarr.create_array(path, shape=X.shape, dtype=X.dtype, chunks=(1000, 2), zarr_format=2,
                      filters=[numcodecs.Base64()] * 3, compressors=numcodecs.Zlib(1))[:] = X
    np.testing.assert_array_equal(io.as_dask_array(path).compute(), X)


def test_io_imports_with_a_numcodecs_without_crc32c():
    """numcodecs before 0.16.4 has CRC32C only with the crc32c package, which nothing here requires (zarr
    3.1.6 takes numcodecs 0.14 on): io had named it, and failed to import (a review); its codecs are now in _codecs."""
    code = "import numcodecs; del numcodecs.CRC32C; import dask_gmm.io; from dask_gmm import _codecs; print(len(_codecs._FIXED_SIZE_FILTERS))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "12", done.stderr


def test_a_corrupt_bz2_chunk_is_a_decode_error_naming_it(tmp_path):
    """bz2 says its data is bad by an OSError ("Invalid data stream"), which is not a decode error (the
    read failing is): a review's fit ended in that bare OSError, the CLI's in a traceback."""
    X = make_blobs(n=2000)
    zarr.create_array(str(tmp_path / "b.zarr"), shape=X.shape, chunks=(500, 2), dtype=X.dtype, zarr_format=2,
                      compressors=numcodecs.BZ2())[:] = X
    (tmp_path / "b.zarr" / "2.0").write_bytes(b"BZh9" + bytes(range(200)))
    with pytest.raises(ValueError, match=r"Chunk '2\.0' of the Zarr array '[^']+' \(rows 1000-1499\) cannot be decoded "
                                         r"\(not bz2 data \(Invalid data stream\)\); the store is corrupt"):
        GaussianMixture(2, random_state=0, max_iter=2).fit(str(tmp_path / "b.zarr"))


@pytest.mark.parametrize("codec", ["CRC32", "Adler32", "CRC32C"])
def test_a_chunk_failing_a_numcodecs_checksum_is_named_by_that_checksum(tmp_path, codec):
    """Every checksum mismatch had been called crc32c's, an Adler32's too (a diff review)."""
    X = make_blobs(n=2000)
    path = tmp_path / "c.zarr"
    zarr.create_array(str(path), shape=X.shape, chunks=(500, 2), dtype=X.dtype, zarr_format=2,
                      compressors=getattr(numcodecs, codec)())[:] = X
    raw = bytearray((path / "1.0").read_bytes())
    raw[100] ^= 1
    (path / "1.0").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=rf"Chunk '1\.0' of the Zarr array '[^']+' \(rows 500-999\) cannot be decoded "
                                         rf"\(its {codec.lower()} checksum does not match its bytes\); the store is corrupt"):
        GaussianMixture(2, random_state=0, max_iter=2).fit(str(path))


def test_zarrs_own_read_of_a_zstd_store_is_unchanged_by_its_check(tmp_path):
    """The Zstd chunks that zarr reads itself (zarr v2's, an integer array's) are read whole once more,
    for their stated sizes; valid ones, of one frame or of several (one stating no size: left to zarr),
    read as zarr reads them."""
    X = np.random.default_rng(1).integers(-1000, 1000, (1000, 3)).astype(np.int32)
    path = tmp_path / "z.zarr"
    zarr.create_array(str(path), shape=X.shape, chunks=(100, 3), dtype=X.dtype, compressors=ZstdCodec(level=3))[:] = X
    z = numcodecs.Zstd(level=3)
    for i in (3, 4):
        half = [X[100 * i : 100 * i + 50].tobytes(), X[100 * i + 50 : 100 * (i + 1)].tobytes()]
        frames = [bytes(z.encode(h)) for h in half]
        (path / "c" / str(i) / "0").write_bytes(frames[0] + (_unstated(frames[1]) if i == 4 else frames[1]))
    np.testing.assert_array_equal(io.as_dask_array(str(path)).compute(), X.astype(np.float64))


@pytest.mark.parametrize("stored", ["u1", "f2", "f4"])
def test_a_v2_blosc_store_whose_filter_widens_its_values_is_read(tmp_path, stored):
    """zarr v2's AsType filter stores values wider than the array's (u1 as f8: Blosc's header states 8x
    a chunk's bytes); the decode bound leaves room for that (a review: 2x had refused such stores)."""
    X = np.random.default_rng(0).integers(0, 100, (2000, 3)).astype(stored)
    path = str(tmp_path / "w.zarr")
    zarr.create_array(path, shape=X.shape, chunks=(1000, 3), dtype=stored, zarr_format=2, compressors=numcodecs.Blosc(),
                      filters=[numcodecs.AsType(encode_dtype="f8", decode_dtype=stored)])[:] = X
    np.testing.assert_array_equal(io.as_dask_array(path).compute(), X.astype(np.float64))


def test_zarr_rows_only_where_it_can_read(tmp_path):
    X = make_blobs(n=600)
    assert io.zarr_rows(X) is None and io.zarr_rows(da.from_array(X)) is None
    assert io.zarr_rows(write_store(tmp_path / "g.zarr", X)) is not None
    assert io.zarr_rows(str(tmp_path / "g.zarr")) is not None  # a group's X, by path
    assert io.zarr_rows(write_store(tmp_path / "s.zarr", X, chunks=(100, 2), shards=(200, 2))) is None
    assert io.zarr_rows(write_store(tmp_path / "f.zarr", X, chunks=(100, 1))) is not None  # chunked across features
    ints = zarr.create_array(str(tmp_path / "i.zarr"), shape=(600, 2), chunks=(100, 2), dtype="i4")
    assert io.zarr_rows(ints) is None
    v2 = zarr.create_array(str(tmp_path / "v2.zarr"), shape=X.shape, chunks=(100, 2), dtype=X.dtype, zarr_format=2)
    assert io.zarr_rows(v2) is None


def test_fit_through_the_direct_reader_equals_the_dask_path(tmp_path):
    """Same fit whether blocks are read by ZarrRows (Zarr chunk by chunk) or through dask's graph."""
    X = make_blobs(n=5000)
    arr = write_store(tmp_path / "g.zarr", X, chunks=(300, 2))
    w = np.random.default_rng(1).uniform(0.5, 2.0, X.shape[0])
    warr = zarr.create_array(str(tmp_path / "w.zarr"), shape=w.shape, chunks=(300,), dtype=w.dtype)
    warr[:] = w
    for init in ("kmeans", "random", "random_from_data"):  # k-means|| and random draw per-block streams
        for weights in (None, str(tmp_path / "w.zarr")):
            kw = dict(init_params=init, random_state=0, n_init=2, tol=1e-6)
            direct = GaussianMixture(3, **kw).fit(str(tmp_path / "g.zarr"), sample_weight=weights)
            via_dask = GaussianMixture(3, **kw).fit(io.as_dask_array(arr), sample_weight=weights)
            assert direct.n_iter_ == via_dask.n_iter_
            np.testing.assert_allclose(direct.means_, via_dask.means_, rtol=1e-10)
            np.testing.assert_allclose(direct.covariances_, via_dask.covariances_, rtol=1e-10)
            assert direct.score(str(tmp_path / "g.zarr"), sample_weight=weights) == pytest.approx(
                via_dask.score(io.as_dask_array(arr), sample_weight=weights), rel=1e-12)


def test_per_row_outputs_through_the_direct_reader_equal_the_in_memory_ones(tmp_path):
    """predict, predict_proba and score_samples of a Zarr store read it as a fit does, block by block."""
    X = make_blobs(n=5000)
    path = str(tmp_path / "g.zarr")
    write_store(path, X, chunks=(300, 2))
    gm = GaussianMixture(3, random_state=0).fit(X)
    for method in (gm.predict, gm.predict_proba, gm.score_samples):
        lazy, eager = method(path), method(X)
        # blocks of 3 Zarr chunks (an eighth of the 17, rounded up), the last one short
        assert lazy.chunks[0] == (900,) * 5 + (X.shape[0] - 4500,) and lazy.dtype == eager.dtype
        np.testing.assert_array_equal(lazy.compute(), eager)
    labels = gm.predict(path)
    (tmp_path / "g.zarr" / "X" / "c" / "5" / "0").unlink()  # lost after the lazy array was made
    with pytest.raises(ValueError, match=r"Chunk 'X/c/5/0' of the Zarr array '[^']+' \(rows \d+-\d+\) is missing"):
        labels.compute()
    X[2345, 0] = np.nan
    write_store(path, X, chunks=(300, 2))
    with pytest.raises(ValueError, match=r"NaN or infinity.*rows 1800-2699.*first bad row: 2345"):  # a task's rows
        gm.predict(path).compute()


def test_direct_reader_refuses_a_chunk_lost_or_corrupted_mid_fit(tmp_path):
    X = make_blobs(n=3000)
    arr = write_store(tmp_path / "g.zarr", X, chunks=(500, 2))
    rows = io.zarr_rows(arr)
    chunk = tmp_path / "g.zarr" / "X" / "c" / "2" / "0"
    good = chunk.read_bytes()
    chunk.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match=r"Chunk 'X/c/2/0' of the Zarr array '[^']+' \(rows 1000-1499\) cannot be decoded"):
        rows.read(0, 3000)
    chunk.unlink()
    with pytest.raises(ValueError, match=r"Chunk 'X/c/2/0' of the Zarr array '[^']+' \(rows 1000-1499\) is missing"):
        rows.read(900, 1100)
    rows.read(0, 1000)  # the other chunks still read


def test_a_lazy_output_refuses_chunk_files_of_other_sizes_than_when_it_was_made(tmp_path):
    """Each task of the direct reader carries the sizes of its chunk files as they were when its
    graph was made (``ZarrRows.sizes``). A lazy ``predict`` of a store rewritten before it was
    computed gave the new rows' labels under the old graph, and, on a cluster, a worker that
    sees another store at the path read that store's rows (see test_distributed). Now the read
    of a chunk file of another size raises, naming it; an output made after the change reads it."""
    X = make_blobs(n=3000)
    path = str(tmp_path / "g.zarr")
    arr = write_store(path, X, chunks=(500, 2))
    rows = io.zarr_rows(path)
    files = [tmp_path / "g.zarr" / "X" / "c" / str(i) / "0" for i in range(6)]
    sizes = rows.sizes(900, 1600)  # a tuple for each band of rows: here one chunk across the features
    assert sizes == tuple((os.path.getsize(f),) for f in files[1:4])
    assert rows.sizes(0, 3000, {os.path.normpath(files[2]): (7, 0)})[1:4] == (sizes[0], (7,), sizes[2])  # a scan's
    gm = GaussianMixture(3, random_state=0).fit(X)
    lazy = {method: method(path) for method in (gm.predict, gm.predict_proba, gm.score_samples)}
    Y = X.copy()
    Y[1000:1500] = np.round(Y[1000:1500], 1)  # compresses to fewer bytes
    arr[1000:1500] = Y[1000:1500]
    assert os.path.getsize(files[2]) < sizes[1][0]
    said = (r"The Zarr array '[^']*g\.zarr/X' changed while dask_gmm read it: its file 'c/2/0' \(rows 1000-1499\) "
            r"holds [\d,]+ bytes, where it held [\d,]+ when the fit began or the lazy output was made")
    with pytest.raises(ValueError, match=said):
        rows.read(900, 1600, sizes)
    with pytest.raises(ValueError, match=said):
        rows.chunk(2, sizes=sizes[1])
    np.testing.assert_array_equal(rows.read(900, 1600), Y[900:1600])  # no sizes given: read as it is now
    for method, out in lazy.items():
        with pytest.raises(ValueError, match=said):
            out.compute()
        np.testing.assert_array_equal(method(path).compute(), method(Y))  # made after the change
    with pytest.raises(ValueError, match=r"its file 'c/2/0' \(rows 1000-1499\) holds [\d,]+ bytes, where there was none"):
        rows.chunk(2, sizes=(-1,))


@pytest.mark.filterwarnings("ignore:The Zarr array is chunked across features")
@pytest.mark.parametrize("layout", ["v3, direct reader", "v3 across features, direct reader", "v2, zarr's read",
                                    "v3, numcodecs' Blosc, zarr's read"])
@pytest.mark.parametrize("cut", ["empty", "one byte short", "half"])
def test_a_blosc_chunk_cut_short_is_refused_without_a_checksum(tmp_path, layout, cut):
    """Blosc reads the length its header states, whatever the stored bytes' length. A chunk cut
    short and no crc32c: the direct reader decoded it from the bytes of the chunk its thread had
    read before (an empty file read as that chunk's rows), zarr's own read (v2 stores, say) from
    past its end, one byte short without an error from either; the fit's numbers changed. So did
    a review's: numcodecs' Blosc codec for zarr v3, and ``da.from_zarr(path)`` (fsspec's local
    files, not a LocalStore) of any of them."""
    from zarr.codecs.numcodecs import Blosc as NumcodecsBlosc

    X = make_blobs(n=4000)
    v2 = layout.startswith("v2")
    compressors = {"v2": numcodecs.Blosc(cname="lz4"), "numcodecs": [NumcodecsBlosc(cname="lz4")]}.get(
        "v2" if v2 else "numcodecs" if "numcodecs" in layout else None, [zarr.codecs.BloscCodec(cname="lz4")])
    arr = zarr.create_array(str(tmp_path / "b.zarr"), shape=X.shape, chunks=(500, 1 if "across" in layout else 2),
                            dtype=X.dtype, zarr_format=2 if v2 else 3, compressors=compressors)
    arr[:] = X
    assert (io.zarr_rows(arr) is not None) == ("direct reader" in layout)
    chunk = tmp_path / "b.zarr" / ("5.0" if v2 else "c/5/0")
    good = chunk.read_bytes()
    chunk.write_bytes({"empty": b"", "one byte short": good[:-1], "half": good[: len(good) // 2]}[cut])
    said = r"Chunk '(5\.0|c/5/0)' of the Zarr array '[^']+' \(rows 2500-2999\) cannot be decoded .*the store is corrupt"
    if cut == "one byte short":  # neither zarr nor Blosc says anything of it
        said = said.replace(".*", r"\(it holds [0-9,]+ bytes where its Blosc header says [0-9,]+: cut short\).*")
    if "direct reader" in layout:  # a thread's buffers hold the chunk read before
        rows = io.zarr_rows(arr)
        np.testing.assert_array_equal(rows.chunk(4, reuse=True), X[2000:2500])
        with pytest.raises(ValueError, match=said):
            rows.chunk(5, reuse=True)
    with pytest.raises(ValueError, match=said):
        GaussianMixture(2, random_state=0, max_iter=2).fit(str(tmp_path / "b.zarr"))
    with pytest.raises(ValueError, match=said):  # dask's own read, of fsspec's local files
        GaussianMixture(2, random_state=0, max_iter=2).fit(da.from_zarr(str(tmp_path / "b.zarr")))
    chunk.write_bytes(good + b"after")  # bytes beyond the header's length are not read, as zarr reads it
    gm = GaussianMixture(2, random_state=0, max_iter=2).fit(str(tmp_path / "b.zarr"))
    assert gm.score(str(tmp_path / "b.zarr")) == pytest.approx(GaussianMixture(2, random_state=0, max_iter=2).fit(X).score(X),
                                                               rel=1e-12)


def cached(path):
    """:func:`dask_gmm._reader._in_page_cache` of the file ``path`` (asking starts the read of its first
    page when it is not cached, but not of its last one: these files are larger than the first read)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return _reader._in_page_cache(fd)
    finally:
        os.close(fd)


def drop_from_page_cache(files, tries=50):
    """Make the OS let go of the cached pages of ``files``: each read whole first (a read-ahead
    still in flight would keep its pages), written back, dropped (DONTNEED), and dropped again
    while it still says cached (the OS keeps a page it holds for a moment longer, now and then).
    Asked of the last byte only: asking of the first starts the read of it and of the read-ahead
    after it, which on a disk of a large read-ahead reached the last page too before the hint was
    chosen (a loaded run's first file came back cached, and was not hinted). Either page missing
    is enough for :func:`dask_gmm._reader._in_page_cache`."""
    def last_cached(f):
        fd = os.open(f, os.O_RDONLY)
        try:
            return os.preadv(fd, [bytearray(1)], os.fstat(fd).st_size - 1, os.RWF_NOWAIT) == 1
        except BlockingIOError:
            return False
        finally:
            os.close(fd)

    for f in files:
        for _ in range(tries):
            fd = os.open(f, os.O_RDONLY)
            try:
                while os.read(fd, 1 << 20):
                    pass
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
            if not last_cached(f):
                break
        else:
            pytest.skip(f"the OS keeps {f} in memory: the hints' choice cannot be seen")


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="the read-ahead hint is posix_fadvise (Linux)")
def test_direct_reader_prefetches_its_block_and_the_next(tmp_path, monkeypatch):
    """Reading a block hints the OS to read its chunk files and the next block's (WILLNEED), never
    others, nor, in a store far smaller than memory, those already in the page cache."""
    X = np.random.default_rng(0).standard_normal((200_000, 2))
    write_store(tmp_path / "g.zarr", X, chunks=(20_000, 2))  # files of about 300 KB
    rows = io.zarr_rows(str(tmp_path / "g.zarr"))
    files = [tmp_path / "g.zarr" / "X" / "c" / str(i) / "0" for i in range(10)]
    inode = {os.stat(f).st_ino: i for i, f in enumerate(files)}
    hinted = []
    real = os.posix_fadvise

    def watched(fd, offset, length, advice):
        hinted.append((inode.get(os.fstat(fd).st_ino), advice))
        return real(fd, offset, length, advice)

    rows.read(0, len(X))  # every file in the page cache
    if not cached(files[0]):
        pytest.skip("this file system does not say which pages are cached (tmpfs refuses RWF_NOWAIT)")
    monkeypatch.setattr(os, "posix_fadvise", watched)
    np.testing.assert_array_equal(rows.read(40_000, 80_000), X[40_000:80_000])
    assert hinted == []  # nothing to hint
    monkeypatch.setattr(_reader, "CACHED_SHARE", 0.0)  # a store not far smaller than memory: hinted all the same
    np.testing.assert_array_equal(rows.read(40_000, 80_000), X[40_000:80_000])
    assert hinted == [(i, os.POSIX_FADV_WILLNEED) for i in [2, 3, 4, 5]]
    monkeypatch.undo()
    seen = {}  # the reader's answers, by file: a file cached again by the time of its hint (seen in a
    # loaded full run, now and then) is retried, not failed
    asked = _reader._in_page_cache

    def answered(fd):
        seen[inode.get(os.fstat(fd).st_ino)] = answer = asked(fd)
        return answer

    for (start, stop), chunks in (((40_000, 80_000), [2, 3, 4, 5]), ((50_000, 84_000), [2, 3, 4, 5]),
                                  ((160_000, 200_000), [8, 9])):
        for _ in range(5):
            drop_from_page_cache(files)
            monkeypatch.setattr(os, "posix_fadvise", watched)
            monkeypatch.setattr(_reader, "_in_page_cache", answered)
            hinted.clear()
            seen.clear()
            got = np.concatenate([x.copy() for _, x in rows.pieces(start, stop)])  # each valid until the next
            monkeypatch.undo()
            np.testing.assert_array_equal(got, X[start:stop])
            assert sorted(seen) == chunks  # asked of these files only
            assert hinted == [(i, os.POSIX_FADV_WILLNEED) for i in chunks if not seen[i]]
            if not any(seen.values()):
                break
        else:
            pytest.skip(f"the OS kept files {sorted(i for i in seen if seen[i])} cached after each drop")


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="the read-ahead hint is posix_fadvise (Linux)")
def test_a_file_the_hint_cannot_open_is_left_to_the_read_and_other_stores_get_no_hint(tmp_path, monkeypatch):
    X = np.random.default_rng(0).standard_normal((1000, 2))
    write_store(tmp_path / "g.zarr", X, chunks=(100, 2))
    rows = io.zarr_rows(str(tmp_path / "g.zarr"))
    (tmp_path / "g.zarr" / "X" / "c" / "9" / "0").unlink()  # a file the hint cannot open: the read raises
    with pytest.raises(ValueError, match=r"Chunk 'X/c/9/0' of the Zarr array '[^']+' \(rows \d+-\d+\) is missing"):
        rows.read(800, 1000)
    hinted = []
    monkeypatch.setattr(os, "posix_fadvise", lambda *args: hinted.append(args))
    memory = zarr.create_array(zarr.storage.MemoryStore(), shape=X.shape, chunks=(100, 2), dtype=X.dtype)
    memory[:] = X
    np.testing.assert_array_equal(io.zarr_rows(memory).read(0, 1000), X)  # not local files: no hints
    assert hinted == []


def test_the_package_loads_its_names_and_modules_on_first_use():
    """``import dask_gmm`` loads none of the heavy libraries (the command line answers Ctrl-C during
    their import); the public names and the modules (``dask_gmm.io.TARGET_CHUNK_BYTES``, which the
    README tells users to set) load when first used, in any order."""
    code = ("import sys, dask_gmm\n"
            "assert not {'numpy', 'dask', 'numba', 'sklearn'} & set(sys.modules), sorted(sys.modules)\n"
            "print(dask_gmm.io.TARGET_CHUNK_BYTES, dask_gmm.GaussianMixture.__module__, dask_gmm._kernels.__name__)\n"
            "try:\n"
            "    dask_gmm.no_such_name\n"
            "except AttributeError as exc:\n"
            "    print(exc)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [f"{io.TARGET_CHUNK_BYTES} dask_gmm.mixture dask_gmm._kernels",
                                       "module 'dask_gmm' has no attribute 'no_such_name'"]


@pytest.mark.parametrize("made_from", ["path", "object"])
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_dask_array_of_a_zarr_array_written_to_since_is_read_as_the_dask_array(tmp_path, zarr_format, made_from):
    """A ``da.from_zarr`` array made before rows were appended to its store: fit, score and bic read
    the store's rows now (all 9,000), where predict and X.compute() have the dask array's 6,000 (a
    review: the means of the appended rows' pull, a BIC 450 times too large). They read the dask
    array's rows; a store cut or changed since is refused, not read as fill values (through the
    object the dask array was made from, resized too, the refusal had blamed "the function that
    makes" a block)."""
    X = np.random.default_rng(0).normal(size=(6000, 2))
    path = str(tmp_path / "grows.zarr")
    arr = zarr.create_array(path, shape=X.shape, chunks=(1000, 2), dtype="f8", zarr_format=zarr_format)
    arr[...] = X
    lazy = da.from_zarr(path if made_from == "path" else arr)
    arr.append(np.full((3000, 2), 50.0))
    kw = dict(means_init=[[0.0, 0.0]], max_iter=3, tol=0.0)
    fitted, want = GaussianMixture(1, **kw).fit(lazy), GaussianMixture(1, **kw).fit(X)
    np.testing.assert_allclose(fitted.means_, want.means_, rtol=1e-12)
    np.testing.assert_allclose([fitted.score(lazy), fitted.bic(lazy)], [want.score(X), want.bic(X)], rtol=1e-12)
    assert fitted.predict(lazy).compute().shape == (6000,)
    arr.resize((3000, 2))
    for call in (GaussianMixture(1).fit, fitted.score, fitted.predict):
        with pytest.raises(ValueError, match=re.escape(
                f"reads the Zarr array 'file://{path}' as it was when the dask array was made, of shape (6000, 2) "
                "and dtype float64; it is of shape (3000, 2) and dtype float64 now (written to since)")):
            call(lazy)


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")
def test_a_groups_stale_consolidated_metadata_is_not_read(tmp_path, zarr_format):
    """Rows appended to X after its group's metadata was consolidated (as xarray writes stores):
    a fit of the group's path read the old shape from the consolidated copy and left the new rows
    out silently, where a fit of STORE/X read them all; a consolidated group without X was called
    corrupt. Each array's own metadata is read."""
    X = np.random.default_rng(0).normal(size=(3000, 2))
    X[2000:] += 8.0  # the appended rows are a cluster of their own
    path = str(tmp_path / "c.zarr")
    group = zarr.open_group(path, mode="w", zarr_format=zarr_format)
    group.create_array("X", shape=(2000, 2), chunks=(500, 2), dtype="f8")[...] = X[:2000]
    zarr.consolidate_metadata(path)
    grown = zarr.open_array(path + "/X", mode="a")
    grown.resize((3000, 2))
    grown[2000:] = X[2000:]
    kw = dict(means_init=[[0.0, 0.0], [8.0, 8.0]], max_iter=3, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = GaussianMixture(2, **kw).fit(path)
        want = GaussianMixture(2, **kw).fit(X)
        opened = (zarr.open_group(path, mode="r"), zarr.open(path, mode="r"),  # the objects too (read the copy)
                  zarr.open_consolidated(path, mode="r", zarr_format=zarr_format)["X"])
        assert [(o["X"] if isinstance(o, zarr.Group) else o).shape[0] for o in opened] == [2000] * 3  # zarr's stale view
        for o in opened:
            np.testing.assert_allclose(GaussianMixture(2, **kw).fit(o).means_, want.means_, rtol=1e-12)
            assert fitted.score_samples(o).shape == (3000,)
    np.testing.assert_allclose(fitted.means_, want.means_, rtol=1e-12)
    assert fitted.score_samples(path).shape == (3000,)
    other = str(tmp_path / "y.zarr")
    zarr.open_group(other, mode="w", zarr_format=zarr_format).create_array("Y", shape=(10, 2), dtype="f8")[...] = 1.0
    zarr.consolidate_metadata(other)
    with pytest.raises(ValueError, match=r"has no array 'X'; it holds the array\(s\) Y. Pass the array itself or its "
                                         rf"path \({re.escape(other)}/Y\)"):
        GaussianMixture(2).fit(other)
    from dask_gmm.generate import store_info  # what info says of it
    with pytest.raises(ValueError, match=r"has no array 'X'; it holds the array\(s\) Y\."):
        store_info(other)


def test_a_group_of_a_variable_per_feature_is_told_to_stack_them(tmp_path):
    """xarray writes a variable per feature (x, y, z), each of shape (rows,): the advice to pass one
    of them led to the refusal of 1-D data (a review). The message now says to stack them, and
    doing what it says fits the rows."""
    X = make_blobs(n=600)
    path = str(tmp_path / "cols.zarr")
    group = zarr.open_group(path, mode="w")
    for j, name in enumerate(["x", "y"]):
        group.create_array(name, shape=(600,), chunks=(200,), dtype="f8")[:] = X[:, j]
    group.create_array("time", shape=(3,), dtype="f8")  # another length: not a feature, and named
    with pytest.raises(ValueError, match=r"^The Zarr group '.*cols\.zarr' has no array 'X'; it holds the array\(s\) "
                                         r"time, x, y\. Pass the array itself"):
        fit(path)
    del group["time"]
    with pytest.raises(ValueError, match=r"^The Zarr group '.*cols\.zarr' has no array 'X'; it holds the array\(s\) x, "
                                         r"y: a feature each\. Stack them into one array of shape \(rows, features\) "
                                         r"and pass that \(dask\.array\.stack of each one's dask\.array\.from_zarr, "
                                         r"axis=1\)\.$"):
        fit(path)
    index = group.create_array("index", shape=(600,), dtype="i8", dimension_names=["index"])  # a coordinate, as
    index[:] = np.arange(600)  # a DataFrame's to_xarray().to_zarr writes it: not a feature
    with pytest.raises(ValueError, match=r"it holds the array\(s\) index, x, y, of which x, y hold a feature each\. "
                                         r"Stack them"):
        fit(path)
    stacked = da.stack([da.from_zarr(group[n]) for n in ("x", "y")], axis=1)
    with pytest.warns(UserWarning, match="chunked across features"):
        np.testing.assert_allclose(fit(stacked).means_, fit(X).means_, rtol=1e-10)


def test_settle_zarr_waits_for_what_an_interrupted_zarr_call_left_running(tmp_path):
    """An interrupted zarr call leaves its coroutine on zarr's event-loop thread: predict's clean-up
    removed a temporary store whose zarr.json that coroutine then wrote (2 of 6 SIGTERMs left one),
    and the exit printed asyncio's complaints. The clean-up now waits for those tasks first."""
    import asyncio

    from zarr.core.sync import _get_loop

    marker = tmp_path / "written"

    async def late_write():
        await asyncio.sleep(0.3)
        marker.write_text("late")

    future = asyncio.run_coroutine_threadsafe(late_write(), _get_loop())  # as a call cut short leaves it
    assert not marker.exists()
    io.settle_zarr()
    assert future.done() and marker.read_text() == "late"
    io.settle_zarr()  # nothing pending: returns


def test_xarray_variables_of_a_zarr_store_are_checked_as_the_store(tmp_path):
    """``xr.open_zarr(...)[NAME]`` (and its ``.data``) read a lost chunk as fill values, through
    xarray's wrappers, where the array given by path was refused: a fit gained a component of 25 %
    weight at 0 (a review). The DataArray itself was also loaded whole into memory."""
    xr = pytest.importorskip("xarray")
    X = make_blobs(n=3000)
    path = str(tmp_path / "x.zarr")
    xr.Dataset({"obs": (("row", "feature"), X)}).chunk({"row": 500}).to_zarr(path, mode="w", consolidated=False)
    want = fit(f"{path}/obs")
    np.testing.assert_allclose(want.means_, fit(X).means_, rtol=1e-10)
    for source in (xr.open_zarr(path, consolidated=False)["obs"], xr.open_zarr(path, consolidated=False)["obs"].data):
        gm = fit(source)
        np.testing.assert_allclose(gm.means_, want.means_, rtol=1e-10)
        labels = gm.predict(source)
        assert isinstance(labels, da.Array)  # lazy, as for the store itself
        np.testing.assert_array_equal(labels.compute(), want.predict(X))
    os.remove(os.path.join(path, "obs", "c", "1", "0"))
    for source in (xr.open_zarr(path, consolidated=False)["obs"], xr.open_zarr(path, consolidated=False)["obs"].data,
                   xr.open_zarr(path, mask_and_scale=False, consolidated=False)["obs"].data):
        with pytest.raises(ValueError, match=r"is missing 1 of its chunks \(c/1/0\)"):
            fit(source)
    with pytest.raises(ValueError, match=r"X is an xarray Dataset of the variables obs\. Pass one of them"):
        fit(xr.open_zarr(path, consolidated=False))


def test_a_zarr_array_inside_fused_tasks_is_checked_as_the_store(tmp_path):
    """``dask.optimize`` and a Dask DataFrame's ``to_dask_array`` put ``da.from_zarr``'s array inside
    fused tasks, where the check of its chunks did not look: a lost chunk read as fill values and was
    fitted, weights 0.28, 0.44, 0.28 for three equal blobs (a review). Found there now."""
    dd = pytest.importorskip("dask.dataframe")
    X = make_blobs(n=3000)
    path = str(tmp_path / "f.zarr")
    zarr.create_array(path, shape=X.shape, dtype="f8", chunks=(500, X.shape[1]), fill_value=0.0)[:] = X
    columns = [f"x{j}" for j in range(X.shape[1])]
    sources = {"optimised": lambda: dask.optimize(da.from_zarr(path) * 1.0)[0],
               "frame": lambda: dd.from_dask_array(da.from_zarr(path), columns=columns),
               "frame's array": lambda: dd.from_dask_array(da.from_zarr(path), columns=columns).to_dask_array(True)}
    want = fit(X)
    for name, source in sources.items():
        np.testing.assert_allclose(fit(source()).means_, want.means_, rtol=1e-10, err_msg=name)
        assert [a.shape for a in _reader.zarr_arrays_read_by(io.as_dask_array(source()))] == [X.shape], name
    os.remove(os.path.join(path, "c", "2", "0"))
    for name, source in sources.items():
        with pytest.raises(ValueError, match=r"is missing 1 of its chunks \(c/2/0\)"):
            fit(source())


def test_a_zarr_array_given_to_map_blocks_is_checked_as_the_store(tmp_path):
    """A Zarr array passed to ``map_blocks`` as a keyword argument lies in its layer's task, where only
    ``dask.optimize``'s fused graph had it looked for: unoptimised, its lost chunk read as fill values
    and was fitted (a shift of 100 read as 0; a review)."""
    X = make_blobs(n=400)
    shift = zarr.create_array(str(tmp_path / "shift.zarr"), shape=(4, 2), chunks=(2, 2), dtype="f8", fill_value=0.0)
    shift[:] = 100.0

    def shifted():
        return da.from_array(X, chunks=(100, 2)).map_blocks(lambda b, s=None: b + s[0], s=shift, dtype="f8")

    for source in (shifted(), dask.optimize(shifted())[0]):
        np.testing.assert_allclose(fit(source).means_, fit(X + 100.0).means_, rtol=1e-10)
    os.remove(tmp_path / "shift.zarr" / "c" / "0" / "0")
    for source in (shifted(), dask.optimize(shifted())[0]):
        with pytest.raises(ValueError, match=r"shift\.zarr' is missing 1 of its chunks \(c/0/0\)"):
            fit(source)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_an_unchunked_xarray_variable_of_a_zarr_store_is_checked_before_it_loads(tmp_path, zarr_format):
    """xarray's default ``chunks=None`` loads a variable whole through its own reads, which take a
    lost chunk as fill values: a store written by zarr (fill value 0) had its lost rows fitted,
    scored and labelled as rows of zeros (a review). Whole, it is read as the store is."""
    xr = pytest.importorskip("xarray")
    X = make_blobs(n=600)
    path = str(tmp_path / "x.zarr")
    names = {"dimension_names": ["row", "feature"]} if zarr_format == 3 else {}
    arr = zarr.open_group(path, mode="w", zarr_format=zarr_format).create_array(
        "v", shape=X.shape, chunks=(100, 2), dtype="f8", fill_value=0.0, **names)
    if zarr_format == 2:
        arr.attrs["_ARRAY_DIMENSIONS"] = ["row", "feature"]  # xarray's names in v2
    arr[:] = X
    opened = [xr.open_dataset(path, engine="zarr", consolidated=False)["v"],
              xr.open_zarr(path, chunks=None, consolidated=False)["v"],
              xr.open_dataset(path, engine="zarr", consolidated=False, mask_and_scale=False)["v"].variable]
    gm = fit(X)
    for v in opened:  # whole, an unchunked variable is its rows in memory
        np.testing.assert_allclose(fit(v).means_, gm.means_, rtol=1e-10)
    os.remove(os.path.join(path, "v", *(("c", "1", "0") if zarr_format == 3 else ("1.0",))))
    gone = "c/1/0" if zarr_format == 3 else "1.0"
    for open_ in (lambda: xr.open_dataset(path, engine="zarr", consolidated=False)["v"],
                  lambda: xr.open_zarr(path, chunks=None, consolidated=False)["v"],
                  lambda: xr.open_dataset(path, engine="zarr", consolidated=False, mask_and_scale=False)["v"].variable):
        for call in (fit, gm.score, gm.predict):
            with pytest.raises(ValueError, match=rf"is missing 1 of its chunks \({re.escape(gone)}\)"):
                call(open_())


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_cf_encoded_zarr_arrays_are_refused_and_read_decoded_through_xarray(tmp_path, zarr_format):
    """A variable that xarray packed (int16, scale_factor 0.01, _FillValue -32767) was fitted by path
    in packed units, its missing value a component of its own at -32767 (a review)."""
    xr = pytest.importorskip("xarray")
    from sklearn.mixture import GaussianMixture as SkGM

    X = np.round(make_blobs(n=3000), 2)
    X[7, 1] = np.nan
    path = str(tmp_path / "t.zarr")
    encoding = {"t": {"dtype": "int16", "scale_factor": 0.01, "_FillValue": -32767}}
    xr.Dataset({"t": (("row", "feature"), X)}).to_zarr(path, mode="w", zarr_format=zarr_format, encoding=encoding,
                                                            consolidated=False)
    before = tree_digest(path)
    with pytest.raises(ValueError, match=r"holds CF-encoded values \(scale_factor 0\.01, -32767 marks missing values\), "
                                         "as xarray writes them"):
        fit(f"{path}/t")
    from dask_gmm.generate import store_info  # what info says of it (it had said "int16" alone: a review)
    assert store_info(f"{path}/t")["cf_encoding"] == ["scale_factor 0.01", "-32767 marks missing values"]
    write_store(tmp_path / "plain.zarr", np.zeros((8, 2)))
    assert store_info(str(tmp_path / "plain.zarr"))["cf_encoding"] == []
    zarr.open_array(f"{path}/t", mode="r+").attrs.update({"scale_factor": 1.0})  # and packing alone
    if zarr_format == 3:
        attrs = zarr.open_array(f"{path}/t", mode="r+").attrs
        del attrs["_FillValue"]
        with pytest.raises(ValueError, match=r"holds CF-encoded values \(scale_factor 1\.0\)"):
            fit(f"{path}/t")
        attrs["_FillValue"] = -32767
    zarr.open_array(f"{path}/t", mode="r+").attrs.update({"scale_factor": 0.01})
    decoded = xr.open_zarr(path, consolidated=False)["t"].dropna("row")
    kw = dict(weights_init=[0.3, 0.3, 0.4], means_init=[[0, 0], [6, 0], [0, 6]], precisions_init=[np.eye(2)] * 3)
    gm = GaussianMixture(3, **kw).fit(decoded.data)
    ref = SkGM(3, **kw).fit(np.delete(X, 7, axis=0))
    np.testing.assert_allclose(gm.means_, ref.means_, rtol=1e-8)
    assert tree_digest(path) == before  # read only


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_integers_whose_sign_a_cf_unsigned_attribute_changes_are_refused(tmp_path, zarr_format):
    """Unsigned bytes kept as int8 with _Unsigned "true" (as netCDF-3 keeps them, and xarray
    decodes them to uint8) were fitted as signed: each byte of 128 or more as that less 256, a
    component at 200 fitted at -56.7, by path and in the CLI alike (an adversarial review)."""
    xr = pytest.importorskip("xarray")
    rng = np.random.default_rng(0)
    U = np.clip(np.r_[rng.normal(60, 10, (1000, 2)), rng.normal(200, 10, (1000, 2))], 0, 255).astype("u1")
    path = str(tmp_path / "u.zarr")
    xr.Dataset({"X": (("sample", "feature"), U.view("i1"), {"_Unsigned": "true"})}).to_zarr(
        path, mode="w", zarr_format=zarr_format, consolidated=False)
    assert xr.open_zarr(path, consolidated=False)["X"].dtype == np.uint8  # xarray reads other numbers
    before = tree_digest(path)
    for X in (path, zarr.open_group(path, mode="r")):
        with pytest.raises(ValueError, match=r"holds CF-encoded values \(_Unsigned 'true' on int8"):
            GaussianMixture(2, random_state=0).fit(X)
    signed = str(tmp_path / "s.zarr")  # and "false" on unsigned integers: read as signed
    zarr.create_array(signed, data=U, chunks=(500, 2), zarr_format=zarr_format, attributes={"_Unsigned": "false"})
    with pytest.raises(ValueError, match=r"_Unsigned 'false' on uint8"):
        GaussianMixture(2, random_state=0).fit(signed)
    same = str(tmp_path / "same.zarr")  # an _Unsigned that changes nothing is no encoding
    zarr.create_array(same, data=U, chunks=(500, 2), zarr_format=zarr_format, attributes={"_Unsigned": "true"})
    ref = GaussianMixture(2, random_state=0).fit(U)
    np.testing.assert_array_equal(GaussianMixture(2, random_state=0).fit(same).means_, ref.means_)
    np.testing.assert_allclose(np.sort(ref.means_[:, 0]), [60, 200], atol=2)  # the bytes as xarray reads them
    assert tree_digest(path) == before  # read only


def test_a_float_missing_value_code_in_base64_is_refused(tmp_path):
    """xarray records a v3 float's _FillValue as base64 of its bytes ('AAAAAICHw8A=' for -9999.0):
    it was not seen, and the NaN rows were fitted as a component at -9999 (a diff review)."""
    xr = pytest.importorskip("xarray")
    X = make_blobs(n=3000)
    X[5] = np.nan
    for dtype in ("float64", "float32"):
        path = str(tmp_path / f"{dtype}.zarr")
        encoding = {"x": {"_FillValue": -9999.0, "dtype": dtype}}
        xr.Dataset({"x": (("row", "feature"), X)}).to_zarr(path, mode="w", zarr_format=3, encoding=encoding,
                                                           consolidated=False)
        assert isinstance(zarr.open_array(f"{path}/x", mode="r").attrs["_FillValue"], str)
        with pytest.raises(ValueError, match=r"holds CF-encoded values \(-9999\.0 marks missing values\)"):
            fit(f"{path}/x")


def test_odd_zarr_inputs_are_refused_in_plain_words(tmp_path, capsys):
    """A Zarr array of 0 features was a ZeroDivisionError (in info too); a group without X suggested
    its string coordinate; a .npz file was advised a zip:: URL; bytes and other objects were
    'got 0D array' (a review)."""
    from dask_gmm import cli

    zarr.create_array(str(tmp_path / "z0.zarr"), shape=(10, 0), dtype="f8", chunks=(5, 0))
    with pytest.raises(ValueError, match=r"Found array with 0 feature\(s\) \(shape=\(10, 0\)\)"):
        fit(str(tmp_path / "z0.zarr"))
    assert _store.missing_chunks(zarr.open_array(str(tmp_path / "z0.zarr"), mode="r")) == []
    assert cli.main(["info", str(tmp_path / "z0.zarr"), "-q"]) == 0
    assert cli.main(["fit", str(tmp_path / "z0.zarr"), "-k", "1", "-o", str(tmp_path / "m.json"), "-q"]) == 2
    assert capsys.readouterr().err == (f"dask-gmm: error: {str(tmp_path / 'z0.zarr')!r} holds no features (an array of "
                                       "shape (10, 0)). Pass a store of data.\n")
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("a_names", shape=(2,), dtype=str)[:] = ["u", "v"]
    group.create_array("obs", shape=(10, 2), dtype="f8")[:] = 1.0
    with pytest.raises(ValueError, match=r"it holds the array\(s\) a_names, obs\. Pass the array itself or its "
                                         rf"path \({re.escape(str(tmp_path / 'g.zarr'))}/obs\)"):
        fit(str(tmp_path / "g.zarr"))
    np.savez(tmp_path / "d.npz", X=make_blobs(n=30))
    with pytest.raises(ValueError, match=r"d\.npz' is a file, not a Zarr store"):
        fit(str(tmp_path / "d.npz"))
    # nested groups, and a metadata file given for its store: the advice was "no array", "convert the data" (a review)
    nested = zarr.open_group(str(tmp_path / "n.zarr"), mode="w").create_group("a").create_group("b")
    nested.create_array("X", shape=(30, 2), dtype="f8")[:] = make_blobs(n=30)
    with pytest.raises(ValueError, match=r"no array 'X', nor any other array \(it holds the group\(s\) a\)\."):
        fit(str(tmp_path / "n.zarr"))
    for meta in ("n.zarr/zarr.json", "n.zarr/a/b/X/zarr.json"):
        folder = str(tmp_path / os.path.dirname(meta))
        with pytest.raises(ValueError, match=rf"is a Zarr metadata file: give the path of its folder, "
                                             rf"{re.escape(repr(folder))}\.$"):
            fit(str(tmp_path / meta))
    for other, kind in ((os.fsencode(str(tmp_path / "g.zarr")), "builtins.bytes"), (object(), "builtins.object")):
        with pytest.raises(ValueError, match=rf"X \({kind}\) is not data that dask_gmm reads: give a NumPy"):
            fit(other)


def _fit_in_a_capped_child(path):
    """A fit of the store at ``path`` in a child process of 4 GiB of address space, for 120 s at most."""
    code = ("import resource, dask_gmm\n"
            "resource.setrlimit(resource.RLIMIT_AS, (2**32, resource.getrlimit(resource.RLIMIT_AS)[1]))\n"
            f"dask_gmm.GaussianMixture(2).fit({str(path)!r})\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_a_chunk_file_that_links_to_a_device_or_a_fifo_is_refused_not_read(tmp_path):
    """A review: a store's chunk file linked to /dev/zero was read without end (5.5 GB, then out of
    memory), one linked to a FIFO no one writes made the fit wait forever. Each is refused by
    name, in a child process capped in time and memory, as the reads it replaced had no end."""
    X = np.random.default_rng(0).normal(size=(40_000, 2))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for (name, target), fmt in itertools.product((("zero", "/dev/zero"), ("fifo", str(fifo))), ("v3", "v2", "v2 blosc")):
        path = tmp_path / f"{name}-{fmt}.zarr"  # v2: read by zarr
        zarr.create_array(str(path), data=X, chunks=(1000, 2), zarr_format=3 if fmt == "v3" else 2,
                          compressors=numcodecs.Blosc(cname="lz4") if "blosc" in fmt else None)
        chunk = path / ("c/3/0" if fmt == "v3" else "3.0")
        os.remove(chunk)
        os.symlink(target, chunk)
        done = _fit_in_a_capped_child(path)
        assert done.returncode == 1 and done.stderr.strip().splitlines()[-1] == (
            f"ValueError: The chunk file {str(chunk)!r} is not a regular file (a device, a FIFO "
            f"or a socket, or a link to one): the store is damaged. Restore or regenerate it {_store.REGENERATE}."), done.stderr


def test_a_metadata_file_that_links_to_a_device_or_a_fifo_is_refused_not_read(tmp_path):
    """A review: a store whose zarr.json was a FIFO made ``fit`` and ``info`` wait forever; linked to
    /dev/zero, it was read until memory ran out. Refused by name, a store's own and its X's, in a
    child process capped in time and memory, as the reads it replaced had no end."""
    X = np.random.default_rng(0).normal(size=(400, 2))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for (name, target), where in itertools.product((("zero", "/dev/zero"), ("fifo", str(fifo))), ("array", "group")):
        path = tmp_path / f"{name}-{where}.zarr"
        if where == "array":
            zarr.create_array(str(path), data=X, chunks=(100, 2))
            meta = path / "zarr.json"
        else:
            write_store(path, X)
            meta = path / "X" / "zarr.json"
        os.remove(meta)
        os.symlink(target, meta)
        done = _fit_in_a_capped_child(path)
        assert done.returncode == 1 and done.stderr.strip().splitlines()[-1] == (
            f"ValueError: The Zarr metadata file {str(meta)!r} is not a regular file (a device, a FIFO or a socket, "
            "or a link to one): the store is damaged. Restore its metadata."), done.stderr


def test_a_store_of_more_chunks_than_are_listed_is_refused_before_the_list(tmp_path, monkeypatch):
    """A review: a 408-byte zarr.json declaring 2e7 chunks took 18 s and 3.9 GB before anything was
    read (every chunk's key listed to check it is stored). The limit, lowered here to a store's
    size, is checked before the list."""
    path = tmp_path / "many.zarr"
    zarr.create_array(str(path), data=np.zeros((101, 2)), chunks=(1, 2), config={"write_empty_chunks": True})
    assert _store.missing_chunks(zarr.open_array(str(path), mode="r")) == []
    monkeypatch.setattr(_store, "MAX_CHUNKS", 100)
    with pytest.raises(ValueError, match=r"^The Zarr array '.*many\.zarr' has 101 chunks \(of shape \(1, 2\) in "
                                         r"\(101, 2\)\), more than the 100 dask_gmm reads\. Rechunk it into larger"):
        fit(str(path))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_a_ctrl_c_in_a_pass_leaves_no_chunk_file_open(tmp_path, ctrl_c_delivered):
    """A chunk file was opened by ``os.open``, whose number a Ctrl-C arriving as it returned left open
    for good (a review: 45 of 300 interrupted passes over a store of small chunks). Interrupted at
    random points of passes, none is left open."""
    import _thread
    import random

    path = str(tmp_path / "small.zarr")
    generate_mixture(path, 100_000, 2, 3, random_state=3, chunk_size=250)
    gm = GaussianMixture(3, random_state=0, max_iter=2).fit(path)
    opened = lambda: [os.readlink(f"/proc/self/fd/{f}") for f in os.listdir("/proc/self/fd")  # noqa: E731
                      if os.path.exists(f"/proc/self/fd/{f}")]
    gm.score(path)  # compiles score's kernels where no cache holds them: not timed
    start = time.perf_counter()
    gm.score(path)
    one, rng, in_pass, tries = time.perf_counter() - start, random.Random(0), 0, 0
    while in_pass < 100 and tries < 1000:  # interrupts within a pass counted; those after it are not
        tries += 1
        timer = threading.Timer(rng.uniform(0, one), _thread.interrupt_main)
        stage = "start"
        try:  # a short timer, on a loaded machine, can fire before its start() returns
            timer.start()
            stage, started = "pass", time.perf_counter()
            gm.score(path)
            stage, one = "after", time.perf_counter() - started  # the timers follow the passes' speed
            timer.join()
            time.sleep(0.02)  # an interrupt after the pass lands here
        except KeyboardInterrupt:
            in_pass += stage == "pass"
    time.sleep(0.2)
    assert in_pass == 100, (in_pass, tries)  # (115 of 150 interrupts landed within a pass in a review's run)
    assert [p for p in opened() if "small.zarr" in p] == []


def test_an_unwritten_inner_chunk_cut_by_the_arrays_edge_is_refused(tmp_path):
    """10,000 rows in shards of 6,000 (inner chunks of 3,000): the last inner chunk that holds rows
    (9000-9999) lies partly past the edge; left unwritten in a stored shard, zarr reads zeros there."""
    X = make_blobs(n=10002)[:10000]
    codec = zarr.codecs.ShardingCodec(chunk_shape=(3000, 2), codecs=[zarr.codecs.BytesCodec(), ZstdCodec(level=3)])
    path = tmp_path / "s.zarr"
    arr = zarr.create_array(str(path), shape=X.shape, chunks=(6000, 2), dtype=X.dtype, serializer=codec,
                            compressors=None)
    arr[:9000] = X[:9000]  # the second shard's file holds its first inner chunk only
    assert sorted(os.listdir(path / "c")) == ["0", "1"]
    assert _store.missing_chunks(arr) == ["c/1/0 (inner chunk 3.0: rows 9000-9999)"]
    with pytest.raises(ValueError, match=r"missing 1 of its chunks \(c/1/0 \(inner chunk 3\.0: rows 9000-9999\)\)"):
        GaussianMixture(2, random_state=0).fit(str(path))


def test_an_overwrite_replaces_a_store_holding_a_write_a_killed_process_left(tmp_path):
    """zarr writes a chunk through KEY.UUID.partial: one left by a killed process is the store's own."""
    path = str(tmp_path / "g.zarr")
    generate_mixture(path, 3000, chunk_size=1000, random_state=0)
    (tmp_path / "g.zarr" / "X" / "c" / "0" / "0.1a2b3c4d5e6f.partial").write_bytes(b"half a chunk")
    assert _store.foreign_files(path) == []
    generate_mixture(path, 3000, chunk_size=1000, random_state=1, overwrite=True)
    assert not (tmp_path / "g.zarr" / "X" / "c" / "0" / "0.1a2b3c4d5e6f.partial").exists()


def test_temporary_siblings_of_long_names_fit_every_host(tmp_path, monkeypatch, capsys):
    """Names of 146-150 bytes carried whole into ``.NAME.tmp@WRITER@HEX.gone``: a host name of 63
    bytes made it longer than the 255 a name may have, and ``predict --overwrite`` failed at its
    rename, after all its work (a review)."""
    from dask_gmm import _files, cli

    monkeypatch.setattr(_files.socket, "gethostname", lambda: "h" * 64)  # the longest a host's name may be
    writer = _files.writer_id().split("@")[0]
    for n in range(1, 256):
        folder, prefix = _files._sibling_name(tmp_path / ("m" * n))
        longest = f"{prefix}{writer.ljust(64 + 1 + 10 + 1 + 8, 'x')}@{9_999_999}@{'f' * 8}.gone"
        assert len(os.fsencode(longest)) <= 255, n
    X = make_blobs(n=4000, means=BLOBS3)
    zarr.create_array(str(tmp_path / "d.zarr"), shape=X.shape, chunks=(1000, 3), dtype=X.dtype)[:] = X
    model = str(tmp_path / "m.json")
    assert cli.main(["fit", str(tmp_path / "d.zarr"), "-k", "3", "-o", model, "-q", "--seed", "0"]) == 0
    for n in (143, 146, 150, 200):
        out = tmp_path / ("o" * (n - len(".zarr")) + ".zarr")
        for _ in range(2):  # new, then replaced: the old one moved aside to the longest name
            assert cli.main(["predict", model, str(tmp_path / "d.zarr"), "-o", str(out), "--overwrite", "-q"]) == 0
        assert zarr.open_array(str(out)).shape == (len(X),)
    capsys.readouterr()


def test_an_input_of_many_tiny_chunks_or_blocks_is_warned_of_and_the_advice_works(tmp_path):
    """A store of 1-row chunks took 4.3 s a pass where 100-row chunks took 0.07 s, without a word (a
    review's 20,000 rows took 43 s to fit). Many chunks of a fair size, or few tiny ones, are not warned of."""
    X = make_blobs(2_400, [[0, 0], [6, 6]], seed=3)
    tiny = write_store(tmp_path / "tiny.zarr", X, chunks=(2, 2), group=False)  # 1,200 chunk files of 32 bytes
    with pytest.warns(UserWarning, match=r"The Zarr array '[^']*tiny.zarr' is stored in 1,200 chunks of 32 bytes "
                                         r"each: every pass reads each one") as caught:
        io.as_dask_array(str(tmp_path / "tiny.zarr"))
    assert caught[0].filename == __file__  # the caller's line
    advice = re.search(r"such as (dask\.array\.from_zarr\(PATH\)\.rechunk\(\((\d+), 2\)\)\.to_zarr\(NEW_PATH\))",
                       str(caught[0].message))
    assert advice and int(advice.group(2)) == 16 * 2**20 // 16
    da.from_zarr(tiny).rechunk((int(advice.group(2)), 2)).to_zarr(str(tmp_path / "new.zarr"))
    sharded = zarr.create_array(str(tmp_path / "sharded.zarr"), shape=X.shape, chunks=(2, 2), shards=(4_000, 2),
                                dtype=X.dtype)
    sharded[:] = X  # the shards are the files read
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(io.as_dask_array(str(tmp_path / "new.zarr")).compute(), X)
        write_store(tmp_path / "few.zarr", X[:1_000], chunks=(1, 2), group=False)  # 1,000 files: not more
        for name in ("few.zarr", "sharded.zarr"):
            io.as_dask_array(str(tmp_path / name))
        io.as_dask_array(da.zeros((5_000 * 4_096, 2), chunks=(4_096, 2)))  # 5,000 blocks of 64 KiB
    blocks = da.from_array(X, chunks=(2, 2))
    with pytest.warns(UserWarning, match=r"X is a dask array of 1,200 blocks of 32 bytes each: every pass reads each "
                                         r"one, at about 0\.2 ms apiece, so their number, not the data, sets the time\. "
                                         r"Rechunk it, such as X\.rechunk\(\{0: 1048576\}\), of about 16 MiB\."):
        fitted = GaussianMixture(2, random_state=0).fit(blocks)
    np.testing.assert_allclose(fitted.means_, GaussianMixture(2, random_state=0).fit(X).means_, rtol=1e-10)
    generate_mixture(str(tmp_path / "gen.zarr"), 2_400, chunk_size=2, random_state=1)  # its labels with it: again
    with pytest.warns(UserWarning, match=r"is stored in 1,200 chunks of 32 bytes each: .* Generate it again in chunks "
                                         r"of 1,048,576 rows \(generate_mixture's chunk_size, dask-gmm generate "
                                         r"--chunk-size\), of about 16 MiB\.$"):
        io.as_dask_array(str(tmp_path / "gen.zarr"))


def test_a_chunk_read_while_it_is_rewritten_in_place_is_called_changed_not_corrupt(tmp_path):
    """A chunk file rewritten in place during a fit (``dd conv=notrunc``) was read half-written, and
    called corrupt with the advice to restore the store, though it was whole once written (a
    review). Changed since the reader was made and, read again, holding other bytes that decode:
    the store changed. A chunk as corrupt when read again is still called corrupt, and so is one
    read short but not changed (test_zarr_rows_reads_a_chunk_file_that_comes_in_short_reads)."""
    X = make_blobs(n=3000)
    arr = write_store(tmp_path / "g.zarr", X, chunks=(500, 2))
    rows = io.zarr_rows(arr)
    chunk = tmp_path / "g.zarr" / "X" / "c" / "2" / "0"
    whole = chunk.read_bytes()
    half = whole[: len(whole) // 2] + bytes(len(whole) - len(whole) // 2)  # the first half copied in so far
    fetch = rows._fetch

    def mid_copy(key, reuse):  # the file as a reader finds it in the middle of the copy, then after it
        if key == "X/c/2/0" and mid_copy.first:
            mid_copy.first = False
            return np.frombuffer(half, np.uint8)
        return fetch(key, reuse)

    mid_copy.first = True
    rows._fetch = mid_copy
    time.sleep(0.05)  # past the file system's clock's step
    chunk.write_bytes(whole)  # rewritten in place since the reader was made (its status change time)
    with pytest.raises(ValueError, match=r"The Zarr array '[^']*g\.zarr/X' changed while dask_gmm read it: its chunk "
                                         r"'c/2/0' \(rows 1000-1499\) was read while it was being rewritten"):
        rows.read(0, 3000)
    assert not mid_copy.first
    rows._fetch = fetch
    np.testing.assert_array_equal(rows.read(0, 3000), X)  # whole once written
    chunk.write_bytes(half)  # as read, and read again: corrupt
    with pytest.raises(ValueError, match=r"Chunk 'X/c/2/0' of the Zarr array '[^']+' \(rows 1000-1499\) cannot be "
                                         r"decoded \(.+\); the store is corrupt"):
        rows.read(0, 3000)
