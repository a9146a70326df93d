"""The synthetic-mixture generator: layout, statistics, reproducibility on any scheduler, resume, guards."""

import copy
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings

import dask
import numpy as np
import pytest
import zarr
from distributed import Client, LocalCluster, get_task_stream
from scipy.spatial.distance import pdist
from sklearn.mixture import GaussianMixture as SKGaussianMixture

from dask_gmm import GaussianMixture, _files, generate_mixture, io, save_model
from dask_gmm.generate import _cannot_pack, compare_with_truth, draw_rows, label_dtype, read_true_model, store_info

from .conftest import make_blobs

SMALL = dict(n_samples=6_000, n_features=3, n_components=4, chunk_size=1_000, random_state=7)


def tree_digest(path):
    """Hash of every file name and content under ``path`` (metadata and chunks)."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for f in sorted(files):
            h.update(os.path.relpath(os.path.join(root, f), path).encode())
            with open(os.path.join(root, f), "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()


def chunk_files(path):
    return sorted(
        os.path.relpath(os.path.join(root, f), path)
        for root, _, files in os.walk(path)
        for f in files
        if f != "zarr.json"
    )


def test_layout_codecs_and_attributes(tmp_path):
    path = str(tmp_path / "s.zarr")
    gm = generate_mixture(path, **SMALL)
    g = zarr.open_group(path, mode="r")
    X, y = g["X"], g["labels"]
    assert (X.shape, X.chunks, X.dtype) == ((6_000, 3), (1_000, 3), np.float64)
    assert (y.shape, y.chunks, y.dtype) == ((6_000,), (1_000,), np.int8)
    for a in (X, y):
        assert [type(c).__name__ for c in a.compressors] == ["BloscCodec", "Crc32cCodec"]
        assert a.nchunks_initialized == a.nchunks == 6
    assert np.isnan(X.fill_value) and y.fill_value == -1  # a missing chunk cannot pass for data
    status = g.attrs["dask_gmm"]
    assert status["format"] == "dask_gmm.store/1" and status["complete"] is True
    assert (status["n_samples"], status["n_features"], status["n_components"]) == (6_000, 3, 4)
    assert (status["chunk_size"], status["dtype"], status["seed"], status["covariance_type"]) == (
        1_000, "float64", 7, "full")
    assert "true_model" not in g.attrs  # arrays, not JSON: at 768 features the attribute was 152 MB
    np.testing.assert_array_equal(g["true_means"][...], gm.means_)
    np.testing.assert_array_equal(g["true_covariances"][...], gm.covariances_)
    np.testing.assert_array_equal(g["true_weights"][...], gm.weights_)
    assert gm.covariance_type == "full" and gm.n_iter_ == 0 and gm.converged_ and gm.n_features_in_ == 3
    assert np.all(np.abs(gm.means_) <= 10.0) and np.isclose(gm.weights_.sum(), 1.0)
    assert all(np.all(np.linalg.eigvalsh(c) > 0) for c in gm.covariances_)
    assert set(np.unique(y[:])) <= set(range(4))
    rt = read_true_model(path)
    np.testing.assert_array_equal(rt.precisions_cholesky_, gm.precisions_cholesky_)
    info = store_info(path)
    assert (info["shape"], info["chunks"], info["complete"], info["seed"], info["missing_chunks"]) == (
        (6_000, 3), (1_000, 3), True, 7, 0)
    named = set(re.findall(r"``(\w+)``", store_info.__doc__))  # the keys its docstring explains (the README points there)
    assert set(info) <= named, sorted(set(info) - named)


def test_the_true_parameters_of_many_features_stay_out_of_the_metadata(tmp_path):
    """As JSON attributes they made the group's zarr.json 152 MB at 768 features and 8 components,
    which every opening of the store read whole (6 s)."""
    path = str(tmp_path / "wide.zarr")
    gm = generate_mixture(path, n_samples=50, n_features=300, n_components=4, random_state=0)
    assert os.path.getsize(os.path.join(path, "zarr.json")) < 4096
    np.testing.assert_array_equal(read_true_model(path).covariances_, gm.covariances_)
    assert store_info(path)["true_model"]["means"] == gm.means_.tolist()


def _as_written_before_the_arrays(path):
    """The store at ``path`` as generate wrote it before the true parameters became arrays."""
    g = zarr.open_group(path, mode="r+")
    true = {k: g[f"true_{k}"][...].tolist() for k in ("weights", "means", "covariances")}
    for k in ("weights", "means", "covariances"):
        del g[f"true_{k}"]
    g.update_attributes({"true_model": true})


def test_a_store_of_old_keeps_its_true_model_and_resumes(tmp_path):
    path = str(tmp_path / "s.zarr")
    gm = generate_mixture(path, **SMALL)
    _as_written_before_the_arrays(path)
    os.remove(os.path.join(path, "X", "c", "2", "0"))
    np.testing.assert_array_equal(read_true_model(path).means_, gm.means_)
    assert store_info(path)["true_model"]["covariances"] == gm.covariances_.tolist()
    again = generate_mixture(path, **SMALL)  # the lost chunk written back, the attribute compared
    np.testing.assert_array_equal(again.means_, gm.means_)
    assert store_info(path)["status"] == "complete"
    g = zarr.open_group(path, mode="r+")
    true = g.attrs["true_model"]
    true["means"][0][0] += 1.0
    g.update_attributes({"true_model": true})
    with pytest.raises(ValueError, match=r"generated with different arguments \(true model drawn from the "
                                         r"seed differs\)"):
        generate_mixture(path, **SMALL)


@pytest.mark.parametrize("damaged", [{"weights": [1.0]}, "x", [1, 2], {"weights": [1.0], "means": [[0.0]],
                                                                  "covariances": [[1.0]]}])
def test_a_store_of_old_whose_true_model_attribute_is_damaged_is_said_to_be(tmp_path, damaged):
    """A review: a store of old whose attribute ``true_model`` holds something else ended
    ``dask-gmm info``, ``generate`` and ``plot`` in a KeyError or TypeError traceback."""
    path = str(tmp_path / "s.zarr")
    generate_mixture(path, **SMALL)
    _as_written_before_the_arrays(path)
    zarr.open_group(path, mode="r+").attrs["true_model"] = damaged
    said = r"The store '.*s\.zarr' is damaged: its attribute 'true_model' is not a record of the true weights"
    for call in (read_true_model, store_info, lambda p: generate_mixture(p, **SMALL)):
        with pytest.raises(ValueError, match=said):
            call(path)
    assert generate_mixture(path, **SMALL, overwrite=True).means_.shape == (SMALL["n_components"], SMALL["n_features"])
    assert store_info(path)["status"] == "complete"


def test_true_parameters_a_killed_run_left_short_are_written_again_and_others_refused(tmp_path):
    path = str(tmp_path / "s.zarr")
    gm = generate_mixture(path, **SMALL)
    shutil.rmtree(os.path.join(path, "true_covariances", "c"))  # lost, or killed before they were written
    with pytest.raises(ValueError, match=r"lost the array\(s\) of its true parameters \(true_covariances\)"):
        read_true_model(path)  # the store said complete: damaged (it was None, as of a store that records none)
    assert store_info(path)["true_model"] is None and store_info(path)["status"] == "damaged"  # not NaN
    g = zarr.open_group(path, mode="r+")
    g.attrs[io.STATUS_ATTR] = {**g.attrs[io.STATUS_ATTR], "complete": False}  # as a killed run leaves it
    assert read_true_model(path) is None and store_info(path)["status"] == "incomplete"
    assert generate_mixture(path, **SMALL).covariances_.tolist() == gm.covariances_.tolist()
    np.testing.assert_array_equal(read_true_model(path).covariances_, gm.covariances_)
    g = zarr.open_group(path, mode="r+")
    g["true_means"][0, 0] = 99.0  # drawn otherwise (as by another NumPy's random streams)
    os.remove(os.path.join(path, "X", "c", "2", "0"))
    with pytest.raises(ValueError, match=r"generated with different arguments \(true model drawn from the seed "
                                         r"differs\)"):  # a complete store's, compared before any write
        generate_mixture(path, **SMALL)
    g.attrs[io.STATUS_ATTR] = {**g.attrs[io.STATUS_ATTR], "complete": False}  # an incomplete one's, as it resumes
    with pytest.raises(ValueError, match="true parameters recorded in .* \\(true_means\\) differ from the ones given now"):
        generate_mixture(path, **SMALL)


def test_label_dtype_grows_with_components():
    assert [label_dtype(k) for k in (1, 128, 129, 32_768, 40_000)] == [
        np.int8, np.int8, np.int16, np.int16, np.int32]


def test_empirical_statistics_match_the_true_model(tmp_path):
    n = 200_000
    path = str(tmp_path / "big.zarr")
    gm = generate_mixture(path, n, 2, 3, chunk_size=20_000, random_state=0, min_separation=3.0)
    g = zarr.open_group(path, mode="r")
    X, y = g["X"][:], g["labels"][:]
    freq = np.bincount(y, minlength=3) / n
    p = gm.weights_
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / n))
    for k in range(3):
        Xk = X[y == k]
        nk, S = len(Xk), gm.covariances_[k]
        se_mean = np.sqrt(np.diag(S) / nk)
        assert np.all(np.abs(Xk.mean(0) - gm.means_[k]) < 5 * se_mean)
        # Var of a sample covariance entry: (S_ii S_jj + S_ij^2) / n.
        se_cov = np.sqrt((np.outer(np.diag(S), np.diag(S)) + S**2) / nk)
        assert np.all(np.abs(np.cov(Xk.T) - S) < 5 * se_cov), k
    # The true model scores the data about as well as a model fitted to it.
    fitted = GaussianMixture(3, random_state=0).fit(path)
    true_score, fit_score = gm.score(path), fitted.score(path)
    assert fit_score - 0.01 < true_score <= fit_score + 1e-9
    np.testing.assert_allclose(np.sort(fitted.means_, 0), np.sort(gm.means_, 0), atol=0.05)


def test_box_and_covariance_scale_scale_the_true_parameters_and_the_rows(tmp_path):
    """The same seed in a box 10 times smaller, with covariances 4 times larger: means / 10 (within
    the box), covariances x 4, the same weights; the rows are drawn from those parameters."""
    default = generate_mixture(str(tmp_path / "a.zarr"), 20_000, 3, 4, random_state=5)
    small = generate_mixture(str(tmp_path / "b.zarr"), 20_000, 3, 4, random_state=5, box=1.0, covariance_scale=0.4)
    np.testing.assert_allclose(small.means_, default.means_ / 10, rtol=1e-12)
    np.testing.assert_allclose(small.covariances_, 4 * default.covariances_, rtol=1e-12)
    np.testing.assert_array_equal(small.weights_, default.weights_)
    assert np.all(np.abs(small.means_) <= 1.0) and np.abs(default.means_).max() > 1.0
    g = zarr.open_group(str(tmp_path / "b.zarr"), mode="r")
    X, y = g["X"][:], g["labels"][:]
    for k in range(4):
        Xk = X[y == k]
        np.testing.assert_allclose(np.cov(Xk.T), small.covariances_[k], atol=0.15 * np.abs(small.covariances_[k]).max())
        assert np.all(np.abs(Xk.mean(0) - small.means_[k]) < 5 * np.sqrt(np.diag(small.covariances_[k]) / len(Xk)))


def test_float32_store_is_the_float64_store_rounded(tmp_path):
    args = dict(SMALL, n_samples=2_500)
    generate_mixture(str(tmp_path / "64"), **args)
    generate_mixture(str(tmp_path / "32"), dtype="float32", **args)
    x64 = zarr.open_group(str(tmp_path / "64"), mode="r")["X"][:]
    x32 = zarr.open_group(str(tmp_path / "32"), mode="r")["X"][:]
    assert x32.dtype == np.float32 and io.as_dask_array(str(tmp_path / "32")).dtype == np.float32
    np.testing.assert_array_equal(x32, x64.astype(np.float32))


def test_same_bytes_on_every_scheduler(tmp_path):
    digests = {}
    for name in ("synchronous", "threads"):
        with dask.config.set(scheduler=name):
            generate_mixture(str(tmp_path / name), **SMALL)
        digests[name] = tree_digest(tmp_path / name)
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        with get_task_stream(client) as stream:
            generate_mixture(str(tmp_path / "cluster"), **SMALL)
    assert len({t["worker"] for t in stream.data}) == 2  # both worker processes wrote chunks
    digests["cluster"] = tree_digest(tmp_path / "cluster")
    assert len(set(digests.values())) == 1, digests
    # A different seed gives different data.
    generate_mixture(str(tmp_path / "other"), **dict(SMALL, random_state=8))
    assert tree_digest(tmp_path / "other") != digests["threads"]


def test_rows_do_not_depend_on_how_they_are_batched():
    L = np.linalg.cholesky(np.array([[[2.0, 0.5], [0.5, 1.0]], [[1.0, -0.3], [-0.3, 0.5]]]))
    args = (np.array([0.3, 0.7]), np.array([[0.0, 1.0], [5.0, -5.0]]), L)
    x, y = draw_rows(np.random.default_rng(1), 500, *args)
    # The reference: the obvious per-row formula with one shared stream of draws.
    rng = np.random.default_rng(1)
    u, z = rng.random(500), rng.standard_normal((500, 2))
    ref_y = np.searchsorted(np.cumsum(args[0]), u, side="right")
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_allclose(x, np.einsum("nij,nj->ni", L[ref_y], z) + args[1][ref_y], rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("d", [1, 2, 17, 200])
def test_compiled_rows_are_the_numpy_loops_bytes(monkeypatch, d):
    """The compiled map of draw_rows sums as its NumPy loop does: the same bytes, so stores made with
    or without numba (and before it was compiled) are one and the same."""
    from dask_gmm import _kernels
    from dask_gmm.generate import draw_parameters

    weights, means, covs = draw_parameters(np.random.SeedSequence(3), d, 4)
    args = (weights, means + 1e3, np.linalg.cholesky(covs))
    rows = {}
    for compiled in (False, True):
        monkeypatch.setattr(_kernels, "USE_NUMBA", compiled)
        rows[compiled] = draw_rows(np.random.default_rng(5), 700, *args)
    np.testing.assert_array_equal(rows[True][1], rows[False][1])
    assert rows[True][0].tobytes() == rows[False][0].tobytes()


def test_a_store_made_without_numba_is_the_same_bytes(tmp_path, monkeypatch):
    from dask_gmm import _kernels

    for compiled in (False, True):
        monkeypatch.setattr(_kernels, "USE_NUMBA", compiled)
        generate_mixture(str(tmp_path / str(compiled)), **dict(SMALL, n_features=9))
    assert tree_digest(tmp_path / "True") == tree_digest(tmp_path / "False")


def test_info_of_the_array_x_by_its_own_path_has_the_store_status(tmp_path, monkeypatch):
    """`info STORE/X` said "not written by dask-gmm generate" of a generated store's X; then it gave
    the store's seed but no true model (a review)."""
    path = str(tmp_path / "g.zarr")
    generate_mixture(path, n_samples=500, chunk_size=100, random_state=0)
    assert store_info(path + "/X")["status"] == "complete" and store_info(path + "/X")["seed"] == 0
    assert store_info(path + "/X")["true_model"] == store_info(path)["true_model"] is not None
    for same in (path + "/X/.", path + "/X/"):  # the group found from the array, not from the path's text
        assert store_info(same)["true_model"] == store_info(path)["true_model"]
    monkeypatch.chdir(path + "/X")
    assert store_info(".")["true_model"] == store_info(path)["true_model"]  # a traceback, by the path's text
    monkeypatch.chdir(tmp_path)
    os.remove(tmp_path / "g.zarr" / "X" / "c" / "2" / "0")
    info = store_info(path + "/X")
    assert info["status"] == "damaged" and info["missing_chunks_of"] == {"X": 1}


@pytest.mark.parametrize("shape", [[400, 2], [500, 3]])
def test_a_store_whose_shape_was_edited_is_damaged(tmp_path, shape):
    """X's metadata edited to fewer rows: fit fitted 400 of 500 rows silently, info said complete and
    a rerun of generate said it wrote the rows. Edited to another feature, store_info (and info)
    failed, blaming the true parameters' arrays for their shapes, those of the record (a review)."""
    path = str(tmp_path / "g.zarr")
    generate_mixture(path, n_samples=500, chunk_size=100, random_state=0)
    meta = tmp_path / "g.zarr" / "X" / "zarr.json"
    m = json.loads(meta.read_text())
    m["shape"] = shape
    meta.write_text(json.dumps(m))
    said = (rf"is damaged: its array X has shape \({shape[0]}, {shape[1]}\) in chunks of 100 rows, but was generated "
            r"with shape \(500, 2\)")
    with pytest.raises(ValueError, match=said + ".*Restore it, or regenerate it"):
        GaussianMixture(3).fit(path)
    # however X is given: the array's path, a zarr.Group, a zarr.Array (these were fitted silently)
    for X in (path + "/X", zarr.open_group(path, mode="r"), zarr.open_array(path + "/X", mode="r"),
              zarr.open_group(path, mode="r")["X"]):
        with pytest.raises(ValueError, match=said):
            GaussianMixture(3).fit(X)
    assert store_info(path)["status"] == "damaged"
    with pytest.raises(ValueError, match=said + ".*Pass overwrite=True to replace it"):
        generate_mixture(path, n_samples=500, chunk_size=100, random_state=0)
    generate_mixture(path, n_samples=500, chunk_size=100, random_state=0, overwrite=True)
    assert store_info(path)["status"] == "complete" and GaussianMixture(3).fit(path).n_features_in_ == 2


def test_resume_writes_only_the_missing_chunks(tmp_path):
    ref, path = str(tmp_path / "ref"), str(tmp_path / "s")
    generate_mixture(ref, **SMALL)
    generate_mixture(path, **SMALL)
    # Simulate a run killed part-way: chunks 2 and 4 of X, 4 and 5 of labels never written,
    # a temporary file of an interrupted write left behind, and the store not marked complete.
    for key in ("X/c/2/0", "X/c/4/0", "labels/c/4", "labels/c/5"):
        os.remove(os.path.join(path, key))
    open(os.path.join(path, "X/c/3/0.0123abcd.partial"), "wb").write(b"half a chunk")
    g = zarr.open_group(path, mode="r+")
    g.update_attributes({"dask_gmm": {**g.attrs["dask_gmm"], "complete": False}})
    assert store_info(path)["complete"] is False and store_info(path)["missing_chunks"] == 4
    assert store_info(path)["missing_chunks_of"] == {"X": 2, "labels": 2}
    assert store_info(path)["status"] == "incomplete" and store_info(ref)["status"] == "complete"
    with pytest.raises(ValueError, match="incomplete"):
        GaussianMixture(3).fit(path)

    before = {f: os.stat(os.path.join(path, f)) for f in chunk_files(path) if not f.endswith(".partial")}
    args = dict(SMALL, random_state=None)  # the same command without a seed reuses the recorded one
    generate_mixture(path, **args)
    assert tree_digest(path) == tree_digest(ref)
    after = {f: os.stat(os.path.join(path, f)) for f in chunk_files(path)}
    rewritten = {f for f in after if f not in before or after[f].st_ino != before[f].st_ino
                 or after[f].st_mtime_ns != before[f].st_mtime_ns}
    assert rewritten == {"X/c/2/0", "X/c/4/0", "X/c/5/0", "labels/c/2", "labels/c/4", "labels/c/5"}
    assert GaussianMixture(4, random_state=0, max_iter=2).fit(path).n_features_in_ == 3

    # Complete and same arguments: nothing is rewritten.
    generate_mixture(path, **SMALL)
    assert all(os.stat(os.path.join(path, f)).st_ino == after[f].st_ino for f in after)


def test_a_seed_drawn_for_a_store_survives_json_as_doubles(tmp_path):
    """A store made without a seed recorded one of 128 bits, which jq (and JavaScript) read as a double:
    a script's `info --json | jq .seed` gave 2.7784647248738906e+38, which --seed refuses (a review).
    Drawn seeds are now below 2**53, exact as doubles, and regenerate the store."""
    args = dict(SMALL, random_state=None)
    generate_mixture(str(tmp_path / "a.zarr"), **args)
    seed = store_info(str(tmp_path / "a.zarr"))["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2**53 and int(float(seed)) == seed
    generate_mixture(str(tmp_path / "b.zarr"), **dict(args, random_state=int(float(seed))))
    assert tree_digest(str(tmp_path / "a.zarr")) == tree_digest(str(tmp_path / "b.zarr"))


def test_a_store_larger_than_the_disk_is_refused_after_its_first_chunk(tmp_path):
    """Rows that would take twice the disk's free space (a typo's 1e9 rows of 100 features had filled
    the disk): one chunk is written, measured, and the rest refused before they are written; with
    room again (fewer rows, overwrite=True) the store is written whole."""
    path = str(tmp_path / "big.zarr")
    free = shutil.disk_usage(tmp_path).free
    rows = 2 * free // (40 * 8) + 1  # 40 features of float64 barely compress: at least 2x the free space
    chunk_size = max(2**24 // (40 * 8), -(-rows // 100_000))  # 16 MiB or more a chunk, at most 100,000 chunks
    if chunk_size * 40 * 8 > 2**28:  # a disk of more than 13 TB free: chunks too large to draw here
        pytest.skip("the disk is too large to be outgrown")
    from dask.callbacks import Callback

    class AtMostTwoChunks(Callback):  # were the check gone, the disk would fill: stop at a third chunk
        started = 0

        def _pretask(self, key, dsk, state):
            if str(key).startswith("generate-chunk-"):
                self.started += 1
                assert self.started <= 2, "the chunks went on being written"

    with AtMostTwoChunks(), pytest.raises(ValueError, match=r"generate_mixture: the store's other [\d,]+ chunks would "
                                          r"take about [\d,]+\.\d [GM]B of disk \(the first chunk this run wrote took "
                                          rf"[\d,]+ bytes for {chunk_size:,} rows\), and the disk holding '.*big.zarr' "
                                          r"has [\d,]+\.\d [GM]B free\. Free space and rerun"):
        generate_mixture(path, n_samples=rows, n_features=40, chunk_size=chunk_size, random_state=0)
    data_files = lambda: [f for f in chunk_files(path) if f.startswith(("X/", "labels/"))]  # noqa: E731
    assert data_files() == ["X/c/0/0", "labels/c/0"]
    assert store_info(path)["status"] == "incomplete"
    generate_mixture(path, n_samples=3 * chunk_size, n_features=40, chunk_size=chunk_size, random_state=0,
                     overwrite=True)
    assert store_info(path)["status"] == "complete" and len(data_files()) == 6


def test_a_new_store_of_millions_of_chunks_is_refused_for_the_disk_before_they_are_listed(tmp_path):
    """A typo's size in many chunks (2 million, twice the free space): refused after the first chunk,
    without the list of every chunk's key it had made first (a review: 15 million chunks, 57 s and
    3.9 GB before the refusal; here about 200 MB)."""
    import tracemalloc

    free = shutil.disk_usage(tmp_path).free
    rows = 2 * free // 16 + 1  # 2 features of float64: twice the free space
    chunk_size = -(-rows // 2_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"the store's other 1,99\d,\d{3} chunks would take about"):
            generate_mixture(str(tmp_path / "typo.zarr"), n_samples=rows, chunk_size=chunk_size, random_state=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, peak


def test_a_store_in_a_mount_point_is_written_there_and_never_half_deleted(mount_point):
    """An empty mount point (a dedicated disk, a container's volume) was removed to be made again:
    a traceback (EBUSY); overwrite=True, which renames a store aside before deleting it, deleted it
    in place on a mount point, then failed on the mount point itself: the store was lost (a review)."""
    path = str(mount_point)
    truth = generate_mixture(path, **SMALL)
    before = {f: open(os.path.join(path, f), "rb").read() for f in chunk_files(path)}
    assert store_info(path)["status"] == "complete" and any(f.startswith("X/c/") for f in before)
    with pytest.raises(ValueError, match=r"cannot be renamed aside \(Device or resource busy: a mount point, say\), "
                                         r"as overwrite=True renames a store before deleting it.*Empty it yourself"):
        generate_mixture(path, **{**SMALL, "random_state": 99}, overwrite=True)
    assert {f: open(os.path.join(path, f), "rb").read() for f in chunk_files(path)} == before  # untouched
    again = generate_mixture(path, **SMALL)  # complete: nothing to write
    np.testing.assert_array_equal(again.means_, truth.means_)


def test_chunks_that_never_reach_the_store_are_an_error(tmp_path):
    """As when workers write to a folder this process does not see: the store is not marked complete."""
    from dask.callbacks import Callback

    path = str(tmp_path / "s")

    class LoseChunk2(Callback):  # the task that wrote chunk 2 finishes, and its file is gone
        def _posttask(self, key, result, dsk, state, worker_id):
            if key.endswith("-2"):
                os.remove(os.path.join(path, "X", "c", "2", "0"))

    with LoseChunk2(), pytest.raises(ValueError, match=r"1 chunk written for .* is not in the store.*X/c/2/0"):
        generate_mixture(path, **SMALL)
    assert store_info(path)["complete"] is False and store_info(path)["missing_chunks"] == 1
    generate_mixture(path, **SMALL)  # rerun to finish
    assert store_info(path)["complete"] is True and store_info(path)["missing_chunks"] == 0


def test_resume_after_a_killed_process(tmp_path):
    args = dict(n_samples=80_000, n_features=3, n_components=4, chunk_size=1_000, random_state=11)
    path = str(tmp_path / "s")
    code = (f"import dask; dask.config.set(scheduler='synchronous'); import dask_gmm; "
            f"dask_gmm.generate_mixture({path!r}, **{args!r})")
    proc = subprocess.Popen([sys.executable, "-c", code])
    chunks, deadline = os.path.join(path, "X", "c"), time.monotonic() + 60
    try:
        while not (os.path.isdir(chunks) and len(os.listdir(chunks)) >= 5):  # killed a few chunks in
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert store_info(path)["complete"] is False and store_info(path)["missing_chunks"] > 0
    generate_mixture(path, **args)
    generate_mixture(str(tmp_path / "ref"), **args)
    assert tree_digest(path) == tree_digest(tmp_path / "ref")


def test_rerun_writes_back_the_chunks_a_complete_store_lost(tmp_path):
    """A complete store was a no-op to rerun, whatever it had lost since; now the same command
    writes the lost chunks again (the bytes depend only on the arguments)."""
    path = str(tmp_path / "s")
    generate_mixture(path, **SMALL)
    whole = tree_digest(path)
    os.remove(os.path.join(path, "X", "c", "2", "0"))
    os.remove(os.path.join(path, "labels", "c", "4"))
    generate_mixture(path, **SMALL)
    assert tree_digest(path) == whole


@pytest.mark.parametrize("compression", ["lz4", "none"])
@pytest.mark.parametrize("complete", [True, False])
def test_rerun_writes_back_the_chunks_a_power_loss_cut_short(tmp_path, caplog, compression, complete):
    """Chunks are not synced, so a power loss can leave one empty or cut short: a rerun called the
    store complete and a fit then refused it, advising an overwrite of every chunk (a review). A
    rerun writes those chunks again, as it writes lost ones, and says so."""
    path = str(tmp_path / "s")
    generate_mixture(path, **SMALL, compression=compression)
    whole = tree_digest(path)
    open(os.path.join(path, "X", "c", "2", "0"), "r+b").truncate(0)
    open(os.path.join(path, "X", "c", "5", "0"), "r+b").truncate(100)
    open(os.path.join(path, "labels", "c", "4"), "r+b").truncate(30)
    if not complete:  # a run killed after them, before its end
        group = zarr.open_group(path, mode="r+")
        group.attrs["dask_gmm"] = {**group.attrs["dask_gmm"], "complete": False}
    info = store_info(path)
    assert info["cut_short_chunks_of"] == {"X": 2, "labels": 1} and info["cut_short_chunks"] == 3
    assert store_info(path + "/labels")["cut_short_chunks_of"] == {"labels": 1}  # given by its own path
    assert info["status"] == ("damaged" if complete else "incomplete")
    with caplog.at_level(logging.INFO, logger="dask_gmm.generate"):
        generate_mixture(path, **SMALL, compression=compression)
    assert "3 chunks cut short (a power loss while they were written?) are written again" in caplog.text
    assert tree_digest(path) == whole
    assert store_info(path)["status"] == "complete"


def test_chunks_of_other_codecs_and_chunk_paths_that_are_no_files_are_not_judged_cut_short(tmp_path, capsys):
    """Stores generated with Zstd (before 1161f9a) were called damaged, every chunk "cut short", and
    rewritten by every rerun; a link loop or a folder in place of a chunk file was a traceback from
    info, where it had been a missing chunk (a review)."""
    from dask_gmm import cli

    path = str(tmp_path / "s")
    generate_mixture(path, **SMALL)
    group = zarr.open_group(path, mode="r+")
    for name in ("X", "labels"):  # the same rows, as the generator wrote them then
        old = group[name]
        data = old[...]
        group.create_array(name, shape=old.shape, chunks=old.chunks, dtype=old.dtype, fill_value=old.fill_value,
                           compressors=[zarr.codecs.ZstdCodec(level=3), zarr.codecs.Crc32cCodec()],
                           dimension_names=old.metadata.dimension_names, overwrite=True)[...] = data
    info = store_info(path)
    assert info["status"] == "complete" and info["cut_short_chunks"] == 0
    whole = tree_digest(path)
    assert cli.main(["generate", path, "-n", "6000", "-d", "3", "-k", "4", "--chunk-size", "1000", "--seed", "7"]) == 0
    assert "nothing written" in capsys.readouterr().out and tree_digest(path) == whole
    os.remove(os.path.join(path, "X", "c", "1", "0"))
    os.symlink("0", os.path.join(path, "X", "c", "1", "0"))  # a link to itself
    os.remove(os.path.join(path, "X", "c", "2", "0"))
    os.mkdir(os.path.join(path, "X", "c", "2", "0"))
    info = store_info(path)
    assert info["status"] == "damaged" and info["cut_short_chunks"] == 0 and info["missing_chunks_of"]["X"] >= 1


def test_a_corrupt_chunk_of_the_true_parameters_is_named_and_mended_as_advised(tmp_path):
    """zarr's own words, its two checksums' bytes, named neither the chunk nor the array (in
    read_true_model, info, and a rerun of generate); followed, the advice gives back the store."""
    from dask_gmm.generate import read_true_model

    path = str(tmp_path / "s")
    args = dict(SMALL, random_state=None)  # no seed given: the store records its own
    generate_mixture(path, **args)
    kept = tree_digest(path)
    chunk = os.path.join(path, "true_means", "c", "0", "0")
    data = bytearray(open(chunk, "rb").read())
    data[-1] ^= 0x01
    open(chunk, "wb").write(bytes(data))
    said = (r"Chunk 'true_means/c/0/0' of the Zarr array '[^']+' \(rows 0-3\) cannot be decoded \(its crc32c checksum does "
            r"not match its bytes\); the store is corrupt.* delete that chunk's file and repeat the same call")
    for call in (lambda: read_true_model(path), lambda: generate_mixture(path, **args)):
        with pytest.raises(ValueError, match=said):
            call()
    os.remove(chunk)
    generate_mixture(path, **args)
    assert tree_digest(path) == kept


def test_a_true_parameters_blosc_chunk_cut_short_is_refused(tmp_path):
    """Read through zarr's own path, C-Blosc read a chunk cut short past its end without an error
    (a review: an xarray rewrite of a store, no checksum, gave junk means of 1e-310)."""
    from zarr.codecs import BloscCodec

    from dask_gmm.generate import _read_true

    arr = zarr.create_array(str(tmp_path / "t.zarr"), shape=(4, 3), chunks=(4, 3), dtype="float64",
                            compressors=BloscCodec(cname="lz4", clevel=1, shuffle="noshuffle"))
    arr[...] = np.arange(12.0).reshape(4, 3) + 0.5
    np.testing.assert_array_equal(_read_true(arr), np.arange(12.0).reshape(4, 3) + 0.5)
    chunk = tmp_path / "t.zarr" / "c" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"Chunk 'c/0/0' of the Zarr array '[^']+' \(rows 0-3\).*cut short"):
        _read_true(zarr.open_array(str(tmp_path / "t.zarr"), mode="r"))


def test_corrupted_chunk_raises_on_read(tmp_path):
    path = str(tmp_path / "s")
    generate_mixture(path, **SMALL)
    chunk = os.path.join(path, "X", "c", "1", "0")
    data = bytearray(open(chunk, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(chunk, "wb").write(bytes(data))
    X = zarr.open_group(path, mode="r")["X"]
    X[:1_000]  # other chunks still read
    with pytest.raises(ValueError, match="checksum"):
        X[1_000:2_000]
    with pytest.raises(ValueError, match=r"Chunk 'X/c/1/0' .* \(its crc32c checksum does not match its bytes\); "
                       r"the store is corrupt.* delete that chunk's file and repeat the same call, without "
                       r"overwrite=True"):  # not zarr's two raw checksums
        GaussianMixture(4, random_state=0).fit(path)
    open(chunk, "wb").write(bytes(data[: len(data) // 2]))  # a truncated chunk fails too, named
    with pytest.raises(ValueError, match=r"Chunk 'X/c/1/0' .*the store is corrupt"):
        GaussianMixture(4, random_state=0).fit(path)
    generate_mixture(path, **SMALL, overwrite=True)  # as the message says: the store whole again
    generate_mixture(str(tmp_path / "fresh"), **SMALL)
    fresh = zarr.open_group(str(tmp_path / "fresh"), mode="r")["X"][:]
    np.testing.assert_array_equal(zarr.open_group(path, mode="r")["X"][:], fresh)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_default_chunks_hold_about_4_mib_of_rows(tmp_path, dtype):
    """Without chunk_size, a chunk of X is CHUNK_BYTES (4 MiB) of rows, capped at n_samples;
    the rows are recorded, so the same call resumes the store."""
    itemsize = np.dtype(dtype).itemsize
    path = str(tmp_path / "s.zarr")
    generate_mixture(path, 20_000, 64, 2, dtype=dtype, random_state=0)
    X = zarr.open_group(path, mode="r")["X"]
    rows = 4 * 2**20 // (64 * itemsize)
    assert X.chunks == (rows, 64) and X.nchunks == -(-20_000 // rows) > 1
    assert zarr.open_group(path, mode="r").attrs["dask_gmm"]["chunk_size"] == rows
    generate_mixture(path, 20_000, 64, 2, dtype=dtype, random_state=0)  # the same call: nothing to write
    small = str(tmp_path / "small.zarr")
    generate_mixture(small, 1_000, 64, 2, dtype=dtype, random_state=0)
    assert zarr.open_group(small, mode="r")["X"].chunks == (1_000, 64)


def test_resume_keeps_the_recorded_chunk_size(tmp_path):
    """A store begun with other chunks than today's default (the default was 10**6 rows before it
    was 4 MiB) is resumed by the same call without chunk_size, in its own chunks."""
    args = dict(n_samples=6_000, n_features=3, n_components=4, random_state=7)
    ref, path = str(tmp_path / "ref"), str(tmp_path / "s")
    generate_mixture(ref, **args, chunk_size=1_000)
    generate_mixture(path, **args, chunk_size=1_000)
    os.remove(os.path.join(path, "X/c/3/0"))
    g = zarr.open_group(path, mode="r+")
    g.update_attributes({"dask_gmm": {**g.attrs["dask_gmm"], "complete": False}})
    generate_mixture(path, **args)
    assert store_info(path)["complete"] is True
    assert zarr.open_group(path, mode="r")["X"].chunks == (1_000, 3)
    assert tree_digest(path) == tree_digest(ref)
    with pytest.raises(ValueError, match="chunk_size differ"):  # a chunk size given is still checked
        generate_mixture(path, **args, chunk_size=2_000)


def test_a_store_without_compression_holds_the_same_rows_and_resumes_as_recorded(tmp_path):
    lz4, none = str(tmp_path / "lz4.zarr"), str(tmp_path / "none.zarr")
    generate_mixture(lz4, **SMALL)
    generate_mixture(none, **SMALL, compression="none")
    a, b = zarr.open_group(lz4, mode="r"), zarr.open_group(none, mode="r")
    assert [type(c).__name__ for c in b["X"].compressors] == ["Crc32cCodec"]  # a corrupt chunk is still caught
    assert [type(c).__name__ for c in b["labels"].compressors] == ["Crc32cCodec"]
    assert (a.attrs["dask_gmm"]["compression"], b.attrs["dask_gmm"]["compression"]) == ("lz4", "none")
    assert store_info(none)["compressors"] == ["Crc32cCodec"]
    np.testing.assert_array_equal(b["X"][...], a["X"][...])
    np.testing.assert_array_equal(b["labels"][...], a["labels"][...])
    fits = [GaussianMixture(4, max_iter=3, random_state=0).fit(p) for p in (lz4, none)]
    assert fits[0].means_.tobytes() == fits[1].means_.tobytes()
    # resumed without saying it: the compression recorded, not the default
    ref = str(tmp_path / "ref.zarr")
    shutil.copytree(none, ref)
    os.remove(os.path.join(none, "X", "c", "3", "0"))
    generate_mixture(none, **SMALL)
    assert tree_digest(none) == tree_digest(ref)
    with pytest.raises(ValueError, match="compression differs"):
        generate_mixture(none, **SMALL, compression="lz4")
    # a store recorded before the option was Blosc-LZ4: resumed as such
    g = zarr.open_group(lz4, mode="r+")
    g.update_attributes({"dask_gmm": {k: v for k, v in g.attrs["dask_gmm"].items() if k != "compression"}})
    os.remove(os.path.join(lz4, "X", "c", "1", "0"))
    generate_mixture(lz4, **SMALL)
    assert store_info(lz4)["status"] == "complete" and store_info(lz4)["compressors"] == ["BloscCodec", "Crc32cCodec"]
    np.testing.assert_array_equal(zarr.open_group(lz4, mode="r")["X"][...], b["X"][...])
    with pytest.raises(ValueError, match="compression differs"):
        generate_mixture(lz4, **SMALL, compression="none")
    chunk = os.path.join(none, "X", "c", "2", "0")  # uncompressed, a flipped byte is still an error
    raw = bytearray(open(chunk, "rb").read())
    raw[100] ^= 0xFF
    open(chunk, "wb").write(bytes(raw))
    with pytest.raises(ValueError, match="cannot be decoded"):
        GaussianMixture(4, max_iter=3, random_state=0).fit(none)


def test_overwrite_replaces_only_zarr_stores(tmp_path):
    """overwrite=True never deletes a folder or file that is not a Zarr store, nor a Zarr store that
    generate_mixture did not write (it replaced any, the user's data too); an empty folder and a
    store of ours it replaces."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    afile = tmp_path / "notes.txt"
    afile.write_text("keep me too")
    for path in (folder, afile):
        for overwrite in (False, True):
            with pytest.raises(ValueError, match="not a Zarr store"):
                generate_mixture(str(path), **SMALL, overwrite=overwrite)
    assert (folder / "notes.txt").read_text() == "keep me" and afile.read_text() == "keep me too"
    empty = tmp_path / "empty"
    empty.mkdir()
    generate_mixture(str(empty), **SMALL)
    other = tmp_path / "other.zarr"
    zarr.create_array(str(other), shape=(10, 2), dtype="f8")[:] = 1.0
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="not a store of generate_mixture.*remove it yourself"):
            generate_mixture(str(other), **SMALL, overwrite=overwrite)
    assert np.all(zarr.open_array(str(other), mode="r")[:] == 1.0)
    generate_mixture(str(empty), **dict(SMALL, random_state=8), overwrite=True)
    assert store_info(str(empty))["complete"] is True
    with pytest.raises(ValueError, match="the path is empty"):  # was the current folder
        generate_mixture("", **SMALL)


def test_overwrite_keeps_zarr_nodes_it_did_not_write(tmp_path):
    """An array the user (or predict) wrote into a generated group was deleted by overwrite=True."""
    path = str(tmp_path / "s.zarr")
    generate_mixture(path, **SMALL)
    zarr.open_group(path, mode="a").create_array("my_annotations", shape=(10,), dtype="f8")[:] = 7.0
    with pytest.raises(ValueError, match=r"holds 1 Zarr node\(s\) it did not write \(my_annotations\), which "
                                         r"overwrite=True would delete with it"):
        generate_mixture(path, **dict(SMALL, random_state=8), overwrite=True)
    assert np.all(zarr.open_array(path + "/my_annotations", mode="r")[:] == 7.0)
    assert store_info(path)["complete"] is True
    shutil.rmtree(path + "/my_annotations")
    generate_mixture(path, **dict(SMALL, random_state=8), overwrite=True)  # its own nodes alone: replaced


def test_overwrite_replaces_a_link_not_what_it_points_to(tmp_path):
    """overwrite=True on a link to a store was an OSError from rmtree (zarr's mode='w')."""
    target, link = tmp_path / "real.zarr", tmp_path / "link.zarr"
    generate_mixture(str(target), **SMALL)
    before = {p: p.read_bytes() for p in target.rglob("*") if p.is_file()}
    link.symlink_to(target)
    generate_mixture(str(link), **dict(SMALL, random_state=8), overwrite=True)
    assert not link.is_symlink() and store_info(str(link))["complete"] is True
    assert store_info(str(link))["seed"] != store_info(str(target))["seed"]
    assert {p: p.read_bytes() for p in target.rglob("*") if p.is_file()} == before
    dangling = tmp_path / "dangling.zarr"
    dangling.symlink_to(tmp_path / "nothing.zarr")
    with pytest.raises(ValueError, match="is a link to .*nothing.zarr', which does not exist. Pass overwrite=True"):
        generate_mixture(str(dangling), **SMALL)  # was zarr's "File exists"
    generate_mixture(str(dangling), **SMALL, overwrite=True)
    assert not dangling.is_symlink() and not (tmp_path / "nothing.zarr").exists()


def test_existing_store_with_other_arguments_is_refused(tmp_path):
    path, base = str(tmp_path / "s"), dict(SMALL, n_samples=2_000)
    generate_mixture(path, **base)
    digest = tree_digest(path)
    for change in (dict(n_samples=3_000), dict(random_state=8), dict(chunk_size=500), dict(dtype="float32"),
                   dict(box=5.0), dict(n_components=3), dict(min_separation=0.5)):
        with pytest.raises(ValueError, match="different arguments"):
            generate_mixture(path, **{**base, **change})
    assert tree_digest(path) == digest
    gm = generate_mixture(path, **{**base, "random_state": 8}, overwrite=True)
    assert zarr.open_group(path, mode="r").attrs["dask_gmm"]["seed"] == 8
    np.testing.assert_array_equal(read_true_model(path).means_, gm.means_)


def test_generate_from_a_fitted_model_or_model_file(tmp_path):
    X = make_blobs(n=1_500, seed=3)
    fitted = GaussianMixture(3, covariance_type="diag", random_state=0).fit(X)
    save_model(fitted, tmp_path / "m.json")
    a = generate_mixture(str(tmp_path / "a"), 60_000, chunk_size=20_000, random_state=1, model=fitted)
    b = generate_mixture(str(tmp_path / "b"), 60_000, chunk_size=20_000, random_state=1,
                         model=str(tmp_path / "m.json"))
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    np.testing.assert_array_equal(b.means_, a.means_)
    assert a.covariance_type == "full" and a.n_features_in_ == 2
    np.testing.assert_allclose(a.means_, fitted.means_, rtol=1e-15)
    np.testing.assert_allclose(a.covariances_, [np.diag(c) for c in fitted.covariances_], rtol=1e-15)
    np.testing.assert_allclose(a.score(X), fitted.score(X), rtol=1e-12)
    # Fitting the generated data recovers the model it came from.
    refit = GaussianMixture(3, covariance_type="diag", random_state=0).fit(str(tmp_path / "a"))
    order = [np.argmin(np.linalg.norm(fitted.means_ - m, axis=1)) for m in refit.means_]
    np.testing.assert_allclose(refit.means_, fitted.means_[order], atol=0.05)
    np.testing.assert_allclose(refit.weights_, fitted.weights_[order], atol=0.01)
    # A rerun on the complete store with another model of the same shape returned that model as the
    # store's truth, where the rows were drawn from the first (and read_true_model still said so)
    other = GaussianMixture(3, covariance_type="diag", means_init=fitted.means_ + 100.0, max_iter=0).fit(X)
    with pytest.raises(ValueError, match=r"generated with different arguments \(model differs\)"):
        generate_mixture(str(tmp_path / "a"), 60_000, chunk_size=20_000, random_state=1, model=other)
    np.testing.assert_array_equal(read_true_model(tmp_path / "a").means_, a.means_)
    again = generate_mixture(str(tmp_path / "a"), 60_000, chunk_size=20_000, random_state=1, model=fitted)
    np.testing.assert_array_equal(again.means_, a.means_)  # the same model: complete, nothing written
    # A store that had lost the array of its true means took a model differing only in its means as
    # its truth, and wrote them there (a review): the record's digest of the model refuses it now
    moved = copy.deepcopy(fitted)
    moved.means_ = fitted.means_ + 100.0
    args = dict(n_samples=60_000, chunk_size=20_000, random_state=1)
    for name in ("true_means", "true_weights"):
        shutil.rmtree(tmp_path / "a" / name)
        with pytest.raises(ValueError, match=r"generated with different arguments \(model differs\)"):
            generate_mixture(str(tmp_path / "a"), model=moved, **args)
        generate_mixture(str(tmp_path / "a"), model=fitted, **args)  # the same model mends it
        np.testing.assert_array_equal(read_true_model(tmp_path / "a").means_, a.means_)
        assert store_info(str(tmp_path / "a"))["status"] == "complete"
    # A store recorded before the digest resumes with its model: its true arrays are compared
    group = zarr.open_group(str(tmp_path / "a"), mode="r+")
    group.attrs["dask_gmm"] = {k: v for k, v in group.attrs["dask_gmm"].items() if k != "model_digest"}
    generate_mixture(str(tmp_path / "a"), model=fitted, **args)
    with pytest.raises(ValueError, match=r"generated with different arguments \(model differs\)"):
        generate_mixture(str(tmp_path / "a"), model=moved, **args)


@pytest.mark.parametrize("spoil, said", [
    (lambda m: m.means_.__setitem__((0, 0), np.nan), r"model.means_ holds NaN or infinite values"),
    (lambda m: setattr(m, "weights_", np.array([0.5, 0.6, -0.1])), r"model.weights_ \(summing to 1, smallest -0.1\) "
                                                                   r"are not a mixture's weights"),  # check_fitted's
    (lambda m: m.covariances_.__setitem__(1, [[1.0, 2.0], [2.0, 1.0]]),
     "model.covariances_ of component 1 is not symmetric positive definite"),
    (lambda m: m.covariances_.__setitem__(2, [[1.0, 0.5], [0.0, 1.0]]),
     "model.covariances_ of component 2 is not symmetric positive definite"),
])
def test_a_model_that_is_not_a_mixture_is_refused_before_anything_is_written(tmp_path, spoil, said):
    """A fitted model's attributes set by hand were drawn from as they stood: a NaN mean gave a store
    marked complete with 989 NaN rows, a negative weight was recorded as the truth (its component
    never drawn), a covariance that is not positive definite was refused in a fit's words ("increase
    reg_covar (currently None)")."""
    model = SKGaussianMixture(3, random_state=0).fit(make_blobs(n=600, seed=3))
    spoil(model)
    with pytest.raises(ValueError, match=said):
        generate_mixture(str(tmp_path / "s"), 3_000, chunk_size=1_000, random_state=1, model=model)
    assert not os.path.exists(tmp_path / "s")


@pytest.mark.parametrize("edit, said", [
    (lambda g: g["true_weights"].__setitem__(slice(None), [np.nan, 0.5, 0.25, 0.25]),
     r"its array true_weights holds NaN or infinite values\."),
    (lambda g: g["true_weights"].__setitem__(slice(None), [-0.5, 1.0, 0.25, 0.25]),
     r"its array true_weights must be 4 non-negative numbers summing to 1 \(one per mean\), got \[-0\.5, 1\.0, 0\.25, "
     r"0\.25\]\."),
    (lambda g: g["true_covariances"].__setitem__((1,), [[1.0, 0.9, 0.0], [-0.9, 1.0, 0.0], [0.0, 0.0, 1.0]]),
     r"its array true_covariances of component 1 is not symmetric positive definite\."),
    (lambda g: g.create_array("true_covariances", data=np.ones((4, 50, 50)), overwrite=True),
     r"the arrays of its true parameters have shapes \(4,\), \(4, 3\) and \(4, 50, 50\), not those of 4 "
     r"components of 3 features\."),
])
def test_true_parameters_edited_into_no_mixture_are_refused_before_they_are_drawn(tmp_path, edit, said):
    """A review: NaN or negative true weights, an asymmetric true covariance loaded as the truth
    (plot drew them), and true covariances of (1, 20000, 20000) in a 98 KB chunk were read whole
    by info (9.2 GB). Each is the store's damage, said by every reader, mended by an overwrite."""
    path = str(tmp_path / "s.zarr")
    generate_mixture(path, **SMALL)
    edit(zarr.open_group(path, mode="r+"))
    for call in (read_true_model, store_info, lambda p: generate_mixture(p, **SMALL)):
        with pytest.raises(ValueError, match=r"^The store '.*s\.zarr' is damaged: " + said + " Pass overwrite=True"):
            call(path)
    generate_mixture(path, **SMALL, overwrite=True)
    assert read_true_model(path).means_.shape == (4, 3)


def test_a_link_planted_at_the_writers_lock_is_not_followed(tmp_path):
    """A review: a dangling link at the lock's name (.NAME.lock beside the store) made generate
    create an empty file at its target, anywhere the user may write. The store is written all the
    same, and nothing appears at the target."""
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere" / "made", tmp_path / ".s.zarr.lock")
    generate_mixture(str(tmp_path / "s.zarr"), **SMALL)
    assert os.listdir(tmp_path / "elsewhere") == [] and store_info(str(tmp_path / "s.zarr"))["status"] == "complete"


def test_the_drawn_parameters_arguments_are_refused_with_a_model_not_ignored(tmp_path):
    """``box``, ``covariance_scale`` and ``min_separation`` shape drawn parameters: given with a model,
    they were ignored without a word (a script asking min_separation=2 got none; a review), where
    the command line refuses them. Refused now before anything is written; their defaults pass."""
    model = SKGaussianMixture(3, random_state=0).fit(make_blobs(n=600, seed=3))
    for name, value in (("box", 3.0), ("covariance_scale", 7), ("min_separation", 2.0), ("min_separation", 0.0)):
        with pytest.raises(ValueError, match=rf"^generate_mixture: '{name}' shapes the drawn parameters, but with "
                                             rf"'model' the model's are sampled; got {name}={value!r}\."):
            generate_mixture(str(tmp_path / "s"), 3_000, model=model, random_state=1, **{name: value})
        assert not os.path.exists(tmp_path / "s")
    defaults = generate_mixture(str(tmp_path / "s"), 3_000, model=model, random_state=1, box=10, covariance_scale=0.1)
    np.testing.assert_array_equal(defaults.means_, model.means_)


def test_the_truth_helpers_name_what_to_pass_for_a_zarr_object_or_another_array_of_the_store(tmp_path):
    """A review: a zarr group or array got Python's "expected str, bytes or os.PathLike object", and the
    path of a generated store's labels (or of a true parameter's array) read as a store of no truth,
    and compare_with_truth said it "records no true parameters"."""
    path = str(tmp_path / "s.zarr")
    truth = generate_mixture(path, **SMALL)
    fitted = GaussianMixture(4, random_state=0).fit(path)
    calls = {"read_true_model": read_true_model, "store_info": store_info,
             "compare_with_truth": lambda p: compare_with_truth(fitted, p)}
    for name, call in calls.items():
        for node in (zarr.open_group(path, mode="r"), zarr.open_array(path + "/X", mode="r")):
            with pytest.raises(TypeError, match=rf"^{name} takes the path or URL of a Zarr store \(or of its array X\), "
                                                rf"not a zarr\.{type(node).__name__}: pass its path\.$"):
                call(node)
    for name, call in calls.items():
        if name == "store_info":  # describes the array, naming its store (labels_of, true_of)
            continue
        for member in ("labels", "true_means"):
            with pytest.raises(ValueError, match=rf"^'.*s\.zarr/{member}' is the array '{member}' of the generated "
                                                 r"store '.*s\.zarr': give the store's path \(or its array X's\)\.$"):
                call(f"{path}/{member}")
    np.testing.assert_array_equal(read_true_model(path + "/X").means_, truth.means_)


def test_a_model_that_is_no_estimator_is_refused_saying_what_to_pass(tmp_path):
    for other in (42, [0.5, 0.5]):  # was scikit-learn's "42 is not an estimator instance."
        with pytest.raises(TypeError, match=rf"^model must be a fitted GaussianMixture or the path of a model file, got "
                                            rf"\w+ {re.escape(repr(other))}\.$"):
            generate_mixture(str(tmp_path / "s"), 100, model=other)
    assert not os.path.exists(tmp_path / "s")


def test_a_model_fitted_on_float32_rows_is_drawn_from(tmp_path):
    """scikit-learn's covariances from float32 rows are symmetric to float32's rounding only (up to
    7e-8 of their largest entry): a first check of symmetry to 1e-8 refused them (a review)."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(300, 3)), rng.normal(size=(300, 3)) * 0.01 + 5, rng.normal(size=(300, 3)) * 100])
    model = SKGaussianMixture(3, random_state=0).fit(X.astype(np.float32))
    assert max(np.abs(c - c.T).max() / np.abs(c).max() for c in model.covariances_) > 1e-8
    save_model(model, tmp_path / "m.json")
    for source in (model, str(tmp_path / "m.json")):
        truth = generate_mixture(str(tmp_path / f"s{len(source) if isinstance(source, str) else 0}"), 3_000,
                                 chunk_size=1_000, random_state=1, model=source)
        np.testing.assert_allclose(truth.means_, model.means_, rtol=1e-6)


def test_min_separation(tmp_path):
    gm = generate_mixture(str(tmp_path / "s"), 100, 2, 5, chunk_size=100, random_state=0, min_separation=6.0)
    assert pdist(gm.means_).min() >= 6.0
    with pytest.raises(ValueError, match=r"5 means at least 100\.0 apart cannot fit in \[-1\.0, 1\.0\]\^2"):
        generate_mixture(str(tmp_path / "t"), 100, 2, 5, chunk_size=100, random_state=0, box=1.0,
                         min_separation=100.0)
    assert not os.path.exists(tmp_path / "t")
    # placeable (a grid spaced 10 holds 9), but rarely drawn: said so, not that it cannot be placed (a review)
    with pytest.raises(ValueError, match=r"None of 1000 random draws placed 8 means at least 6\.0 apart .* even "
                                         r"where a grid would meet it"):
        generate_mixture(str(tmp_path / "t"), 100, 2, 8, chunk_size=100, random_state=0, min_separation=6.0)
    # no placement at all, however many: refused at once, by the balls' volume (10,000 means had taken minutes)
    with pytest.raises(ValueError, match="cannot fit"):
        generate_mixture(str(tmp_path / "t"), 100, 2, 10_000, chunk_size=100, random_state=0, min_separation=1.0)
    assert not _cannot_pack(9, 2, 10.0, 10.0)  # the grid's 9: possible
    assert not any(_cannot_pack(K, 1, box, 2 * box / (K - 1)) for K in range(2, 40) for box in (0.5, 1.0, 10.0, 3.3))
    assert _cannot_pack(2, 1, 1.0, 100.0)


@pytest.mark.parametrize("bad", [dict(n_samples=0), dict(n_features=0), dict(chunk_size=0), dict(dtype="int32"), dict(dtype="banana"),
                                 dict(box=-1.0), dict(covariance_scale=0.0), dict(n_components=2.5),
                                 dict(min_separation=float("nan")),
                                 dict(n_samples=10**30),  # was a TypeError from np.isfinite
                                 dict(n_samples=10**13, chunk_size=None),  # a MemoryError, a store left behind
                         dict(n_samples=10**11, chunk_size=10**11),  # a chunk of 2.2 TiB: the same
                                 # a MemoryError traceback (224 GiB of true covariances), or minutes of
                                 # work for a store that fit refuses (over 10,000 features or components)
                                 dict(n_features=100_000), dict(n_features=10_001, n_components=1),
                                 dict(n_components=10_001), dict(n_features=10_000, n_components=2),
                                 dict(compression="zstd"), dict(compression=None, chunk_size=0)])
def test_bad_arguments(tmp_path, bad):
    with pytest.raises(ValueError, match="generate_mixture: "):
        generate_mixture(str(tmp_path / "s"), **{**dict(SMALL, n_samples=100), **bad})
    assert not os.path.exists(tmp_path / "s")


def test_fsspec_urls(tmp_path):
    local = generate_mixture(str(tmp_path / "local"), **SMALL)
    generate_mixture((tmp_path / "url").as_uri(), **SMALL)  # file:// is written through LocalStore
    assert tree_digest(tmp_path / "url") == tree_digest(tmp_path / "local")
    with dask.config.set(scheduler="synchronous"):  # the in-memory filesystem lives in this process only
        mem = generate_mixture(f"memory://{tmp_path.name}/s.zarr", **SMALL)
    np.testing.assert_array_equal(mem.means_, local.means_)
    np.testing.assert_array_equal(zarr.open_group(f"memory://{tmp_path.name}/s.zarr", mode="r")["X"][:],
                                  zarr.open_group(str(tmp_path / "local"), mode="r")["X"][:])
    assert store_info(f"memory://{tmp_path.name}/s.zarr")["complete"] is True


def test_a_local_path_with_a_double_colon_is_refused_and_nothing_else_is_touched(tmp_path, monkeypatch):
    """zarr hands a path holding '::' to fsspec as a chain of URLs: 'run::2.zarr' opened the store
    'run', fit and score read it silently, and an overwrite deleted it."""
    monkeypatch.chdir(tmp_path)
    generate_mixture("run", 1000, random_state=5)
    before = tree_digest(tmp_path / "run")
    said = "The local path .*'run::2.zarr' holds '::'.*Rename it"
    with pytest.raises(ValueError, match=said):
        generate_mixture("run::2.zarr", 1000, random_state=1, overwrite=True)
    with pytest.raises(ValueError, match=said):
        GaussianMixture(2, random_state=0).fit("run::2.zarr")
    gm = GaussianMixture(2, random_state=0).fit("run")
    for call in (gm.score, gm.predict):
        with pytest.raises(ValueError, match=said):
            call("run::2.zarr")
    assert os.listdir(tmp_path) == ["run"] and tree_digest(tmp_path / "run") == before


@pytest.mark.parametrize("attributes, said", [
    ({"run": np.int64(3)}, r"must hold only what JSON stores as it is .*not NumPy scalars\): "),
    ({"a": float("nan")}, r"must hold only what JSON stores as it is"),
    ("tag", r"must be a dict with string keys; got 'tag'\."), ({1: "a"}, r"must be a dict with string keys"),
    ({"dask_gmm": {}}, r"may not set \['dask_gmm'\]: the generator writes them\."),
    ({"true_model": 1}, r"may not set \['true_model'\]"),
])
def test_attributes_are_checked_before_an_overwrite_touches_the_store(tmp_path, attributes, said):
    """zarr refused them only after the overwrite had emptied the old store."""
    path = str(tmp_path / "keep.zarr")
    generate_mixture(path, 1000, random_state=0)
    before = tree_digest(path)
    with pytest.raises(ValueError, match="generate_mixture: 'attributes' " + said):
        generate_mixture(path, 1000, random_state=1, overwrite=True, attributes=attributes)
    assert tree_digest(path) == before
    with pytest.raises(ValueError, match="generate_mixture: 'attributes'"):
        generate_mixture(str(tmp_path / "new.zarr"), 1000, random_state=1, attributes=attributes)
    assert sorted(os.listdir(tmp_path)) == ["keep.zarr"]


def test_a_store_whose_dtype_was_edited_is_damaged(tmp_path):
    """X's data type edited from float64 to int64 (the same width): fit fitted the bytes read as
    integers, info said complete, and a rerun of generate said there was nothing to write."""
    path = str(tmp_path / "g.zarr")
    generate_mixture(path, n_samples=500, chunk_size=100, random_state=0)
    meta = tmp_path / "g.zarr" / "X" / "zarr.json"
    m = json.loads(meta.read_text())
    m["data_type"], m["fill_value"] = "int64", 0
    meta.write_text(json.dumps(m))
    said = "is damaged: its array X holds int64, but was generated as float64"
    with pytest.raises(ValueError, match=said + ".*Restore it, or regenerate it"):
        GaussianMixture(3).fit(path)
    assert store_info(path)["status"] == "damaged"
    with pytest.raises(ValueError, match=said + ".*Pass overwrite=True"):
        generate_mixture(path, n_samples=500, chunk_size=100, random_state=0)


@pytest.mark.parametrize("record", [[1, 2], 5, "x", {"complete": "no"},
                                    {"format": "dask_gmm.store/1", "complete": True}])
def test_a_store_whose_record_was_edited_is_damaged(tmp_path, record):
    """The generator's record edited into a list, a number, a string, a mistyped or a partial one:
    fit, info and generate raised TypeError or KeyError, or took 'no' as complete."""
    path = str(tmp_path / "g.zarr")
    generate_mixture(path, n_samples=500, chunk_size=100, random_state=0)
    zarr.open_group(path, mode="r+").attrs["dask_gmm"] = record
    said = "is damaged: its attribute 'dask_gmm', the generator's record, is"
    for call in (lambda: GaussianMixture(3).fit(path), lambda: GaussianMixture(3).fit(path + "/X"),
                 lambda: store_info(path)):
        with pytest.raises(ValueError, match=said + ".*Restore it, or regenerate it"):
            call()
    with pytest.raises(ValueError, match=said + ".*Pass overwrite=True"):
        generate_mixture(path, n_samples=500, chunk_size=100, random_state=0)


def test_a_store_whose_labels_became_a_group_is_damaged(tmp_path):
    """A group written over the store's labels: info and a rerun of generate raised AttributeError."""
    path = str(tmp_path / "s.zarr")
    generate_mixture(path, 1000, random_state=1)
    shutil.rmtree(path + "/labels")  # (overwrite=True no longer replaces an array generate did not write)
    generate_mixture(path + "/labels", 10, random_state=2)
    with pytest.raises(ValueError, match="'labels' in the Zarr group .* is a group, not an array"):
        store_info(path)
    with pytest.raises(ValueError, match="is damaged: its X or labels is a group, not an array. Pass overwrite=True"):
        generate_mixture(path, 1000, random_state=1)


def test_a_store_inside_an_array_is_refused(tmp_path):
    """Its files would be stray entries of the array (predict refused the same output already)."""
    path = str(tmp_path / "a.zarr")
    generate_mixture(path, 100, random_state=1)
    before = tree_digest(path)
    with pytest.raises(ValueError, match=r"lies inside the Zarr array .*a\.zarr/X', which it would damage. Choose a path outside it"):
        generate_mixture(path + "/X/g.zarr", 10, random_state=3)
    assert tree_digest(path) == before
    generate_mixture(path + "/more.zarr", 10, random_state=3)  # inside the group: allowed
    assert store_info(path + "/more.zarr")["status"] == "complete"


@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")
def test_a_store_in_a_group_that_would_not_list_it(tmp_path):
    """As predict's outputs: a new store in a Zarr v2 group, which lists only v2 nodes, is refused
    before anything is written (an empty folder too); one in a v3 group whose consolidated metadata
    would not list it is written, with a warning saying how to list it, and an overwrite of one listed
    there with a warning that the listing describes the old store. Both had been written without a
    word, missing from the group (a review); a rerun that finds the store complete says nothing."""
    v2, v3 = str(tmp_path / "v2.zarr"), str(tmp_path / "v3.zarr")
    zarr.open_group(v2, mode="w", zarr_format=2).create_array("a", shape=(3,), dtype="f8")[...] = 1.0
    zarr.open_group(v3, mode="w").create_array("a", shape=(3,), dtype="f8")[...] = 1.0
    zarr.consolidate_metadata(v3)
    before = tree_digest(v2)
    os.mkdir(v2 + "/empty")  # an empty folder is written into as a new store
    before = tree_digest(v2)
    for name in ("gen", "empty"):
        with pytest.raises(ValueError, match=f"would lie in the Zarr v2 group {re.escape(repr(v2))}, which lists "
                                             "only Zarr v2 arrays and groups, and generate_mixture writes a Zarr v3 "
                                             "group, which the group would not show. Write it outside that group."):
            generate_mixture(f"{v2}/{name}", 100, random_state=1)
    assert tree_digest(v2) == before
    with pytest.warns(UserWarning, match=f"the Zarr group {re.escape(repr(v3))} has consolidated metadata, from "
                                         "which zarr and xarray read its members, and which will not list the "
                                         rf"output: run zarr.consolidate_metadata\({re.escape(repr(v3))}\) once"):
        truth = generate_mixture(v3 + "/gen", 100, random_state=1)
    assert sorted(zarr.open_group(v3, mode="r").group_keys()) == []  # as the warning says
    zarr.consolidate_metadata(v3)
    assert sorted(zarr.open_group(v3, mode="r").group_keys()) == ["gen"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = generate_mixture(v3 + "/gen", 100, random_state=1)  # complete: nothing written, nothing said
    np.testing.assert_array_equal(again.means_, truth.means_)
    with pytest.warns(UserWarning, match=r"consolidated metadata, from which zarr and xarray read its members, and "
                                         r"which describes what was at this path before: run zarr.consolidate_"
                                         rf"metadata\({re.escape(repr(v3))}\) once it is written to update it"):
        generate_mixture(v3 + "/gen", 300, random_state=1, overwrite=True)  # the listing: 100 rows
    assert zarr.open_group(v3, mode="r")["gen/X"].shape == (100, 2)  # as the warning says, until consolidated
    root = str(tmp_path / "root.zarr")  # nested groups, each consolidated: each listing needs mending (a review)
    zarr.open_group(root, mode="w").create_group("sub").create_array("a", shape=(3,), dtype="i1")
    zarr.consolidate_metadata(root + "/sub")
    zarr.consolidate_metadata(root)
    with pytest.warns(UserWarning) as warned:
        generate_mixture(root + "/sub/gen", 100, random_state=1)
    said = [str(w.message) for w in warned if "consolidated metadata" in str(w.message)]
    assert [s.split("'")[1] for s in said] == [root + "/sub", root] and all("will not list the output" in s for s in said)
    for group in (root + "/sub", root):  # as they say
        zarr.consolidate_metadata(group)
    assert sorted(zarr.open_group(root, mode="r")["sub"].group_keys()) == ["gen"]


def test_whole_numbers_are_asked_for_as_integers(tmp_path):
    with pytest.raises(ValueError, match="'n_samples' must be an integer >= 1 .* got 100000.0"):
        generate_mixture(str(tmp_path / "g.zarr"), 1e5)
    assert os.listdir(tmp_path) == []


def test_overwrite_is_a_bool_and_the_path_a_path(tmp_path):
    """overwrite="False" (a string, truthy) had replaced the store; a bytes path, None or a zarr group
    had Python's own TypeErrors (a regular expression's for bytes) (a review)."""
    path = str(tmp_path / "g.zarr")
    generate_mixture(path, 100, random_state=1)
    before = zarr.open_group(path, mode="r")["X"][:]
    for value in ("False", 0, None):
        with pytest.raises(ValueError, match=rf"'overwrite' must be True or False; got {re.escape(repr(value))}"):
            generate_mixture(path, 200, random_state=2, overwrite=value)
    np.testing.assert_array_equal(zarr.open_group(path, mode="r")["X"][:], before)
    for value, kind, advice in ((os.fsencode(path), "bytes", r"pass os\.fsdecode\(path\)"),
                                (None, "NoneType", "pass its path"), (zarr.open_group(path), "zarr.Group", "pass its path")):
        with pytest.raises(TypeError, match=rf"^generate_mixture takes the path or URL of the Zarr store to write, "
                                            rf"not a {kind}: {advice}\.$"):
            generate_mixture(value, 200, random_state=2, overwrite=True)
    np.testing.assert_array_equal(zarr.open_group(path, mode="r")["X"][:], before)
    generate_mixture(path, 200, random_state=2, overwrite=np.bool_(True))
    assert zarr.open_group(path, mode="r")["X"].shape == (200, 2)


def test_the_same_chunk_size_gives_float64s_rows_as_float32(tmp_path):
    """As documented: the rows depend on the seed and the chunk size, whatever the dtype."""
    a, b = str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr")
    generate_mixture(a, 5000, chunk_size=1000, random_state=3)
    generate_mixture(b, 5000, chunk_size=1000, random_state=3, dtype="float32")
    x64, x32 = zarr.open_array(a + "/X")[:], zarr.open_array(b + "/X")[:]
    assert x32.dtype == np.float32 and np.array_equal(x64.astype(np.float32), x32)
    np.testing.assert_array_equal(zarr.open_array(a + "/labels")[:], zarr.open_array(b + "/labels")[:])


@pytest.mark.parametrize("seed", [np.random.SeedSequence([1, 2, 3]), np.random.SeedSequence(np.int64(7)),
                                  np.random.SeedSequence(2**70, spawn_key=(np.int64(3),))])
def test_any_seed_sequence_makes_a_store_that_reads_back_and_resumes(tmp_path, seed):
    """A SeedSequence of several ints is recorded as a list, which the record check first called
    damaged; one of NumPy ints made zarr refuse the record after an overwrite had emptied the store."""
    path = str(tmp_path / "g.zarr")
    generate_mixture(path, 1000, random_state=0)
    generate_mixture(path, 1000, chunk_size=250, random_state=seed, overwrite=True)
    info = store_info(path)
    assert info["status"] == "complete" and info["seed"] == (list(seed.entropy) if np.ndim(seed.entropy)
                                                             else int(seed.entropy))
    assert GaussianMixture(2, random_state=0).fit(path).n_features_in_ == 2
    os.remove(os.path.join(path, "X", "c", "1", "0"))
    generate_mixture(path, 1000)  # the recorded seed and chunk size: the lost chunk written again
    other = str(tmp_path / "h.zarr")
    generate_mixture(other, 1000, chunk_size=250, random_state=seed)
    assert tree_digest(os.path.join(path, "X")) == tree_digest(os.path.join(other, "X"))


def test_a_file_url_holding_a_double_colon_is_refused(tmp_path):
    """fsspec cut 'file:///.../run::2.zarr' at the '::': an overwrite replaced the store 'run'."""
    path = tmp_path / "run"
    generate_mixture(str(path), 1000, random_state=1)
    before = tree_digest(path)
    with pytest.raises(ValueError, match="holds '::'"):
        generate_mixture(f"file://{path}::2.zarr", 2000, random_state=2, overwrite=True)
    assert tree_digest(path) == before and os.listdir(tmp_path) == ["run"]


@pytest.mark.parametrize("url, target", [("simplecache::file:///d/x.zarr", "file:///d/x.zarr"),
                                         ("simplecache::filecache::s3://b/x", "s3://b/x"),
                                         ("s3://bucket/a::b", "s3://bucket/a::b"),
                                         ("zip://x::file:///a.zip", "zip://x::file:///a.zip"),
                                         ("/d/x.zarr", "/d/x.zarr")])
def test_the_store_a_chain_of_urls_reads(url, target):
    """Outputs are kept out of the store a chain of wrappers reads: its last URL (only then)."""
    assert _files.chain_target(url) == target


def test_a_store_killed_before_its_arrays_were_made_is_incomplete(tmp_path):
    """Killed within its first moments, a store holds its record and true parameters but no X nor
    labels: info and fit called it a group without X ("pass the array itself"), and info --json
    gave no status. It is incomplete, and the same generate call finishes it, byte for byte."""
    path, whole = str(tmp_path / "early.zarr"), str(tmp_path / "whole.zarr")
    generate_mixture(whole, **SMALL)
    generate_mixture(path, **SMALL)
    for name in ("X", "labels"):
        shutil.rmtree(os.path.join(path, name))
    group = zarr.open_group(path, mode="r+")
    group.attrs[io.STATUS_ATTR] = {**group.attrs[io.STATUS_ATTR], "complete": False}
    info = store_info(path)
    n, d, rows = SMALL["n_samples"], SMALL["n_features"], SMALL["chunk_size"]
    assert info["status"] == "incomplete" and info["shape"] == (n, d) and info["chunks"] == (rows, d)
    assert info["missing_chunks_of"] == {"X": -(-n // rows), "labels": -(-n // rows)}
    with pytest.raises(ValueError, match="has no array 'X' yet: its generation was interrupted.*Rerun the same generate"):
        GaussianMixture(2).fit(path)
    generate_mixture(path, **SMALL)
    assert store_info(path)["status"] == "complete" and tree_digest(path) == tree_digest(whole)
    # X lost from a complete store: damaged, and regenerated with overwrite=True, as the messages say
    shutil.rmtree(os.path.join(path, "X"))
    for call in (lambda: store_info(path), lambda: GaussianMixture(2).fit(path)):
        with pytest.raises(ValueError, match=r"is damaged: it has lost its array 'X'.*generate --overwrite"):
            call()
    with pytest.raises(ValueError, match="has lost its array X or labels. Pass overwrite=True"):
        generate_mixture(path, **SMALL)
    generate_mixture(path, **SMALL, overwrite=True)
    assert tree_digest(path) == tree_digest(whole)


def test_the_chunk_writes_are_one_graph(monkeypatch):
    """A dask.delayed call per chunk made a collection per chunk, which dask put together and culled
    one at a time: 96 s of graph work for 40,000 chunks (10.4 s for 10,000; 2.8 and 0.7 s now, no
    chunk written, measured once). Now one Delayed, its tasks the chunks' writes and their count."""
    from dask_gmm import generate

    args = ("X", "labels", 1, "w", "m", "c", {"run": 1})
    writes = generate._chunk_writes([0, 3, 7], "tok", *args)
    graph = dict(writes.__dask_graph__())
    assert writes.key == "generate-tok" and set(graph) == {"generate-tok"} | {f"generate-chunk-tok-{i}" for i in (0, 3, 7)}
    written = []
    monkeypatch.setattr(generate, "_write_chunk", lambda *args: written.append(args))  # (X, labels, i, ...)
    assert dask.compute(generate._chunk_writes([0, 3, 7], "tok", *args), scheduler="synchronous") == (3,)
    assert sorted(written) == [(*args[:2], i, *args[2:]) for i in (0, 3, 7)]


def test_an_overwrite_killed_while_deleting_the_old_store_leaves_nothing_half_deleted(tmp_path):
    """zarr's mode="w" deleted the old store file by file: a kill meanwhile left folders of chunks
    without the group's zarr.json, which neither a rerun nor --overwrite would touch. Now the old
    store is renamed aside in one step; the kill here comes while that sibling is being deleted."""
    path = str(tmp_path / "s.zarr")
    generate_mixture(path, 2000, chunk_size=100, random_state=1)
    code = (
        "import shutil, sys, time\n"
        "from dask_gmm import generate\n"
        "real = shutil.rmtree\n"
        "def slow(p, *a, **k):\n"
        "    if str(p).endswith('.gone'):\n"
        "        print('deleting', flush=True)\n"
        "        time.sleep(120)\n"
        "    return real(p, *a, **k)\n"
        "shutil.rmtree = slow\n"
        "generate.generate_mixture(sys.argv[1], 2000, chunk_size=100, random_state=1, overwrite=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, path], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "deleting"
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert not os.path.lexists(path)  # the old store is aside, whole, under a hidden name
    (leftover,) = [n for n in os.listdir(tmp_path) if n.endswith(".gone")]
    assert sorted(os.listdir(tmp_path / leftover)) == ["X", "labels", "true_covariances", "true_means", "true_weights",
                                                      "zarr.json"]
    done = subprocess.run([sys.executable, "-m", "dask_gmm", "generate", path, "-n", "2000", "--chunk-size", "100",
                           "--seed", "1", "-q"], capture_output=True, text=True, timeout=300)  # a rerun, as a user's
    assert done.returncode == 0, done.stderr
    assert store_info(path)["status"] == "complete"
    assert [n for n in os.listdir(tmp_path) if n != "s.zarr"] == []  # the dead writer's leftover swept


def test_a_rerun_with_other_attributes_warns_that_the_store_keeps_its_own(tmp_path):
    """Attributes are written at creation: a rerun given new ones kept the old without a word."""
    path = str(tmp_path / "s.zarr")
    generate_mixture(path, 1000, random_state=1, attributes={"run": 1, "tags": ("a", "b")})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        generate_mixture(path, 1000, random_state=1, attributes={"run": 1, "tags": ("a", "b")})  # the same: quiet
    with pytest.warns(UserWarning, match=r"attributes are written when it is created: this rerun keeps its own "
                                         r"\('run' not changed\)\. Pass overwrite=True"):
        generate_mixture(path, 1000, random_state=1, attributes={"run": 2})
    assert zarr.open_group(path, mode="r").attrs["run"] == 1
    generate_mixture(path, 1000, random_state=1, attributes={"run": 2}, overwrite=True)
    assert zarr.open_group(path, mode="r").attrs["run"] == 2


def test_a_second_writer_of_a_store_is_refused_while_the_first_writes(tmp_path):
    """Two overwrites of one path at once had interleaved their chunks: the store was recorded as
    complete, of one seed, and held a chunk of the other's. The second is now refused. Meanwhile a
    fit and `info` say that a run is writing the store (they had said its generation was interrupted,
    and to rerun it, which is refused), and a demo whose store it is says so too (it had called it an
    earlier demo's store of other arguments, and tried to replace it: a review)."""
    folder = tmp_path / "demo"
    folder.mkdir()
    path = str(folder / "data.zarr")  # the demo's store in that folder
    generate_mixture(path, 2000, chunk_size=100, random_state=1)
    code = (
        "import sys, threading\n"
        "from dask_gmm import generate\n"
        "real, first = generate._write_chunk, threading.Lock()\n"
        "def held(*a, **k):\n"
        "    if first.acquire(blocking=False):\n"
        "        print('writing', flush=True)\n"
        "        sys.stdin.readline()\n"
        "    return real(*a, **k)\n"
        "generate._write_chunk = held\n"
        "generate.generate_mixture(sys.argv[1], 2000, chunk_size=100, random_state=2, overwrite=True,\n"
        "                          attributes={'dask_gmm_demo': True})\n"  # as a demo's store
    )
    proc = subprocess.Popen([sys.executable, "-c", code, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        second = subprocess.run([sys.executable, "-m", "dask_gmm", "generate", path, "-n", "2000", "--chunk-size",
                                 "100", "--seed", "3", "--overwrite", "-q"], capture_output=True, text=True,
                                timeout=300)
        assert second.returncode == 2
        assert second.stderr.strip() == (f"dask-gmm: error: {path!r} is being written by another run now (another "
                                         "process, or thread). Wait for it to finish, or write another path.")
        with pytest.raises(ValueError, match="is being written by another run now"):
            generate_mixture(path, 2000, chunk_size=100, random_state=1)  # a rerun too
        for data in (path, f"{path}/X"):
            with pytest.raises(ValueError, match=r"is incomplete: a run of generate is writing it now\. Wait for"):
                GaussianMixture(2).fit(data)
        info = subprocess.run([sys.executable, "-m", "dask_gmm", "info", path], capture_output=True, text=True,
                              timeout=300)
        assert "INCOMPLETE (a run of generate is writing it now)" in info.stdout, info.stdout
        demo = subprocess.run([sys.executable, "-m", "dask_gmm", "demo", "--output-dir", str(folder), "-n", "2000",
                               ], capture_output=True, text=True, timeout=300)
        assert demo.returncode == 2 and "replacing" not in demo.stdout, demo.stdout
        assert demo.stderr.strip() == (f"dask-gmm: error: {path!r} is being written by another run now (another "
                                       "process, or thread). Wait for it to finish, or write another path.")
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=300) == 0
    finally:
        proc.kill()
        proc.wait(timeout=60)
    generate_mixture(str(tmp_path / "ref.zarr"), 2000, chunk_size=100, random_state=2)
    assert store_info(path)["status"] == "complete"
    np.testing.assert_array_equal(zarr.open_array(f"{path}/X", mode="r")[:],
                                  zarr.open_array(str(tmp_path / "ref.zarr" / "X"), mode="r")[:])
    assert sorted(os.listdir(tmp_path)) == ["demo", "ref.zarr"] and os.listdir(folder) == ["data.zarr"]  # no lock files


def test_asking_whether_a_store_is_being_written_never_refuses_a_writer(tmp_path):
    """``being_written`` (fit and info of an incomplete store) takes a shared lock for an instant: a
    writer starting in that instant was refused as busy, with no other writer (a review: 2,893 of
    20,000 starts, two threads asking in a loop)."""
    import threading

    from dask_gmm._files import Busy, being_written, one_writer

    path = str(tmp_path / "s.zarr")
    os.mkdir(path)
    stop = threading.Event()

    def ask():
        while not stop.is_set():
            being_written(path)

    askers = [threading.Thread(target=ask) for _ in range(2)]
    for t in askers:
        t.start()
    refused = 0
    try:
        for _ in range(1000):
            try:
                with one_writer(path, "busy"):
                    assert being_written(path)  # held: said so, from another open file of the lock
            except Busy:
                refused += 1
    finally:
        stop.set()
        for t in askers:
            t.join()
    assert refused == 0 and not being_written(path)


def test_the_lock_is_the_real_paths_and_none_where_flock_fails(tmp_path, monkeypatch):
    """A write through a link to a store and one to the store itself share one lock. A file system
    without flock (ENOLCK: NFS without its lock daemon, simulated) had every write refused as
    "being written by another run", with the lock file left behind: now it writes without one."""
    import errno
    import fcntl

    from dask_gmm._files import one_writer

    real = str(tmp_path / "s.zarr")
    generate_mixture(real, 1000, chunk_size=100, random_state=1)
    os.symlink(real, tmp_path / "link.zarr")
    with one_writer(real, "busy"):
        with pytest.raises(ValueError, match="is being written by another run now"):
            generate_mixture(str(tmp_path / "link.zarr"), 1000, chunk_size=100, random_state=1)

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    generate_mixture(str(tmp_path / "t.zarr"), 1000, chunk_size=100, random_state=1)
    assert store_info(str(tmp_path / "t.zarr"))["status"] == "complete"
    assert sorted(os.listdir(tmp_path)) == ["link.zarr", "s.zarr", "t.zarr"]


def test_a_run_through_a_link_it_replaces_holds_the_links_path_too(tmp_path):
    """generate --overwrite through a link replaces the link with its new store: it had held only the
    target's lock, and a second run on the link's path, finding a folder there, took another lock and
    removed the first's half-written store (a review). A folder reached through a link is one lock."""
    from dask_gmm._files import being_written, one_writer

    real = str(tmp_path / "t.zarr")
    generate_mixture(real, 1000, chunk_size=100, random_state=1)
    link = tmp_path / "l.zarr"
    link.symlink_to("t.zarr")
    with one_writer(str(link), "busy"):
        link.unlink()  # as the overwrite's rename does, its new store in the link's place
        os.mkdir(link)
        assert being_written(str(link)) and being_written(real)
        with pytest.raises(ValueError, match="is being written by another run now"):
            generate_mixture(str(link), 1000, chunk_size=100, random_state=2, overwrite=True)
    assert not being_written(str(link)) and os.listdir(link) == []
    (tmp_path / "folders").symlink_to(tmp_path, target_is_directory=True)
    through = str(tmp_path / "folders" / "t.zarr")
    with one_writer(through, "busy"):  # one lock file, reached by two names: not refused by itself
        assert being_written(real)
        with pytest.raises(ValueError, match="busy"), one_writer(real, "busy"):
            pass
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith(".lock")) == []


def test_a_chunk_task_left_running_does_not_write_into_the_store_that_replaced_its_own(tmp_path, monkeypatch):
    """An interrupted run's tasks run on in a cluster's workers, and its lock ends with it: a later
    overwrite of the path with another seed got the stale tasks' chunks, and was recorded complete
    (of its own seed) over the other seed's rows. A task now writes only into a store of its own record."""
    from dask_gmm import generate

    path, real = str(tmp_path / "s.zarr"), generate._write_chunk
    stale = []
    monkeypatch.setattr(generate, "_write_chunk", lambda *args: stale.append(args))  # made, not yet run
    with pytest.raises(ValueError, match="8 chunks written for .* are not in the store"):
        generate_mixture(path, 2000, chunk_size=500, random_state=5)
    monkeypatch.setattr(generate, "_write_chunk", real)
    assert len(stale) == 4
    generate_mixture(path, 2000, chunk_size=500, random_state=6, overwrite=True)
    generate_mixture(str(tmp_path / "six.zarr"), 2000, chunk_size=500, random_state=6)
    six = zarr.open_group(str(tmp_path / "six.zarr"), mode="r")
    for args in stale:  # the first run's tasks, run now on the replaced store
        real(*args)
    store = zarr.open_group(path, mode="r")
    np.testing.assert_array_equal(store["X"][:], six["X"][:])
    np.testing.assert_array_equal(store["labels"][:], six["labels"][:])
    generate_mixture(path, 2000, chunk_size=500, random_state=5, overwrite=True)  # its own store: the same rows
    first = zarr.open_group(path, mode="r")["X"][:]
    for args in stale:
        real(*args)
    np.testing.assert_array_equal(zarr.open_group(path, mode="r")["X"][:], first)


_FAILED_WRITE = """
import os, resource, signal, sys
import dask
from dask_gmm import generate_mixture
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))  # every chunk's write fails: File too large
with dask.config.set(num_workers=8):
    try:
        generate_mixture(sys.argv[1], n_samples=400_000, n_features=4, n_components=3, chunk_size=20_000, random_state=3)
    except OSError as exc:
        names = sorted(os.path.join(r, f) for r, _, fs in os.walk(sys.argv[1]) for f in fs)  # the moment it raised
        print(exc.strerror, sum(f.endswith(".partial") for f in names), sep=": ")
sys.stdout.flush()
os._exit(0)  # as the command line ends: threads still writing are cut short
"""


def test_a_failed_write_raises_once_the_writes_under_way_have_ended(tmp_path):
    """When one chunk's write fails, generate_mixture raises only once the other threads' writes
    have ended: no zarr ``.partial`` file is left at that moment, so a process that ends then (as
    the command line does) leaves none. Before, dask raised at once while they still wrote."""
    path = str(tmp_path / "s.zarr")
    for _ in range(3):
        shutil.rmtree(path, ignore_errors=True)
        done = subprocess.run([sys.executable, "-c", _FAILED_WRITE, path], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "File too large: 0\n", done.stdout
        assert not any(f.endswith(".partial") for _, _, fs in os.walk(path) for f in fs)


def test_a_generated_store_opens_in_xarray_with_its_true_parameters(tmp_path):
    """xarray needs each array's dimension names: ``xr.open_zarr`` of a generated store was a KeyError
    (an experiment-scripter review). The rows, labels and true parameters read through xarray are the
    store's, and a fit of xarray's X equals a fit of the path."""
    xr = pytest.importorskip("xarray")
    path = tmp_path / "m.zarr"
    truth = generate_mixture(path, n_samples=3000, n_features=2, n_components=3, chunk_size=1000, random_state=4)
    ds = xr.open_zarr(path, consolidated=False)
    assert dict(ds.sizes) == {"sample": 3000, "feature": 2, "component": 3, "feature_i": 2, "feature_j": 2}
    group = zarr.open_group(str(path), mode="r")
    np.testing.assert_array_equal(ds["X"].values, group["X"][:])
    np.testing.assert_array_equal(ds["labels"].values, group["labels"][:])
    for name, value in (("true_weights", truth.weights_), ("true_means", truth.means_),
                        ("true_covariances", truth.covariances_)):
        np.testing.assert_array_equal(ds[name].values, value)
    kwargs = dict(n_components=3, random_state=0, max_iter=5, tol=0)
    by_path, by_xarray = GaussianMixture(**kwargs).fit(path), GaussianMixture(**kwargs).fit(ds["X"])
    np.testing.assert_allclose(by_xarray.means_, by_path.means_, rtol=1e-12, atol=1e-12)


def test_a_store_replaced_between_compare_with_truths_passes_is_refused(tmp_path, monkeypatch):
    """Each pass checked only its own reads: a store replaced between the labels' pass and the true
    mixture's score (a link repointed) returned store A's truth and agreement beside B's likelihood."""
    for name, seed in (("A.zarr", 1), ("B.zarr", 9)):
        generate_mixture(str(tmp_path / name), 20_000, 2, 3, chunk_size=5_000, random_state=seed)
    link = tmp_path / "D.zarr"
    link.symlink_to("A.zarr")
    fitted = GaussianMixture(3, random_state=0).fit(str(link))
    whole = compare_with_truth(fitted, str(link))
    score = GaussianMixture.score

    def repointed(self, X, *args, **kwargs):  # the true mixture's pass, the second
        (tmp_path / "D.tmp").symlink_to("B.zarr")
        os.replace(tmp_path / "D.tmp", link)
        return score(self, X, *args, **kwargs)

    monkeypatch.setattr(GaussianMixture, "score", repointed)
    with pytest.raises(ValueError, match=r"The Zarr array '[^']*D\.zarr/X' changed while dask_gmm read it"):
        compare_with_truth(fitted, str(link))
    monkeypatch.setattr(GaussianMixture, "score", score)
    (tmp_path / "D.tmp").symlink_to("A.zarr")
    os.replace(tmp_path / "D.tmp", link)
    assert compare_with_truth(fitted, str(link)) == whole  # unchanged, as it was


def test_compare_with_truth_against_numpy_and_sklearn(tmp_path):
    """Every figure against its own one-liner: scipy's assignment, the true mixture scored by
    scikit-learn, the labels compared in memory."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    from dask_gmm.generate import compare_with_truth

    path = str(tmp_path / "g.zarr")
    true = generate_mixture(path, 30_000, 3, 4, chunk_size=7_000, random_state=5, covariance_scale=2.0)
    X, labels = (zarr.open_group(path)[k][:] for k in ("X", "labels"))
    for gm in (GaussianMixture(4, covariance_type="diag", random_state=0).fit(path),
               GaussianMixture(3, random_state=0).fit(path)):  # one true component left unmatched
        got = compare_with_truth(gm, path)
        rows, cols = linear_sum_assignment(cdist(true.means_, gm.means_))
        order = np.full(4, -1)
        order[rows] = cols
        assert got["matched"] == order.tolist()
        fitted_cov = gm.covariances_ if gm.covariance_type == "full" else np.stack([np.diag(v) for v in gm.covariances_])
        for k, j in enumerate(order):
            if j < 0:
                assert got["weight_error"][k] is got["mean_error"][k] is got["covariance_error"][k] is None
                continue
            assert got["weight_error"][k] == pytest.approx(abs(gm.weights_[j] - true.weights_[k]), rel=1e-12)
            assert got["mean_error"][k] == pytest.approx(np.sqrt(((gm.means_[j] - true.means_[k]) ** 2).sum()), rel=1e-12)
            rel = np.sqrt(((fitted_cov[j] - true.covariances_[k]) ** 2).sum() / (true.covariances_[k] ** 2).sum())
            assert got["covariance_error"][k] == pytest.approx(rel, rel=1e-12)
        predicted = gm.predict(X)
        assert got["label_agreement"] == np.mean([order[t] == p for t, p in zip(labels, predicted)])
        sk = SKGaussianMixture(4, covariance_type="full")
        sk.weights_, sk.means_, sk.covariances_ = true.weights_, true.means_, true.covariances_
        sk.precisions_cholesky_ = np.linalg.cholesky(np.linalg.inv(true.covariances_))
        assert got["true_mean_log_likelihood"] == pytest.approx(sk.score(X), rel=1e-10)
    assert 0.5 < compare_with_truth(gm, path)["label_agreement"] < 1  # a fit of 3 to 4: short of every row
    zarr.create_array(str(tmp_path / "plain.zarr"), shape=X.shape, chunks=(7000, 3), dtype=X.dtype)[:] = X
    with pytest.raises(ValueError, match="records no true parameters: compare_with_truth compares"):
        compare_with_truth(gm, str(tmp_path / "plain.zarr"))
    # the store by its array X, as info takes it (read as recording no truth, a review); scikit-learn's model
    assert compare_with_truth(gm, path + "/X") == compare_with_truth(gm, path)
    np.testing.assert_array_equal(read_true_model(path + "/X").means_, true.means_)
    sk = SKGaussianMixture(3, random_state=0).fit(X)
    from dask_gmm.modelfile import fitted_model

    assert compare_with_truth(sk, path) == compare_with_truth(
        fitted_model(sk.weights_, sk.means_, sk.covariances_, "full"), path)
    with pytest.raises(ValueError, match="the model has 2 features and the store .* 3: compare a model fitted"):
        compare_with_truth(GaussianMixture(2, random_state=0).fit(X[:, :2]), path)
    from sklearn.cluster import KMeans

    with pytest.raises(ValueError, match="compare_with_truth compares dask_gmm's GaussianMixture .* got KMeans"):
        compare_with_truth(KMeans(2, n_init=1).fit(X), path)
    labels_chunk = os.path.join(path, "labels", "c", "2")
    with open(labels_chunk, "r+b") as f:  # cut short, as a power loss leaves it (a bare checksum error had followed)
        f.truncate(20)
    with pytest.raises(ValueError, match="has lost chunks of its true labels \\(or cut them short"):
        compare_with_truth(gm, path)
    os.remove(labels_chunk)  # a lost chunk of labels reads as -1: never compared
    with pytest.raises(ValueError, match="has lost chunks of its true labels .* Rerun the same generate command"):
        compare_with_truth(gm, path)


@pytest.mark.parametrize("label", [99, -2])
def test_true_labels_outside_the_mixture_or_corrupt_are_named(tmp_path, label):
    """Labels rewritten through zarr (their checksum along) to values no component has: 99 on half the
    rows gave an agreement of 0.583, and -2 (NumPy's second from the end) 0.163, without a word (a
    review). They are read as X is, checked in the same pass; a flipped byte is named by its chunk."""
    from dask_gmm.generate import compare_with_truth

    path = str(tmp_path / "g.zarr")
    generate_mixture(path, 4_000, 2, 3, chunk_size=1_000, random_state=5)
    gm = GaussianMixture(3, random_state=0).fit(path)
    whole = compare_with_truth(gm, path)
    labels = zarr.open_array(path + "/labels", mode="r+")
    kept = labels[:]
    labels[:2000] = label
    with pytest.raises(ValueError, match=rf"The store '{re.escape(path)}' is damaged: 2,000 of its true labels are not "
                                         r"components of its true mixture \(0 to 2\)\. Pass overwrite=True"):
        compare_with_truth(gm, path)
    labels[:] = kept
    assert compare_with_truth(gm, path) == whole
    chunk = os.path.join(path, "labels", "c", "1")
    raw = bytearray(open(chunk, "rb").read())
    raw[len(raw) // 2] ^= 1
    open(chunk, "wb").write(bytes(raw))
    with pytest.raises(ValueError, match=r"Chunk 'labels/c/1' of the Zarr array '[^']+labels' \(rows 1000-1999\) cannot "
                                         r"be decoded \(its crc32c checksum does not match its bytes\)"):
        compare_with_truth(gm, path)


def test_match_components_pairs_each_true_component_with_its_fitted_one():
    """Against a brute force over every pairing: the one of least total distance between the means."""
    import itertools

    from dask_gmm.generate import match_components

    rng = np.random.default_rng(0)
    true = rng.normal(size=(5, 3)) * 10
    perm = rng.permutation(5)
    assert list(match_components(true, true[perm] + 0.01)) == list(np.argsort(perm))
    fitted = rng.normal(size=(4, 3)) * 10  # one fewer: a true component is left unmatched (-1)
    found = match_components(true, fitted)
    cost = lambda pairs: sum(np.linalg.norm(true[i] - fitted[j]) for i, j in pairs)
    best = min((list(zip(rows, cols)) for rows in itertools.permutations(range(5), 4) for cols in [range(4)]), key=cost)
    assert sorted(found.tolist()) == [-1, 0, 1, 2, 3]
    assert cost([(i, j) for i, j in enumerate(found) if j >= 0]) == pytest.approx(cost(best), rel=1e-12)
    # scipy's own words had said these (a review)
    for args, said in (((true, fitted[:, :2]), "true_means have 3 features and fitted_means 2"),
                       ((true, np.where(fitted > 0, np.nan, fitted)), r"fitted_means must be a 2-D array .* got shape "
                                                                      r"\(4, 3\), with NaN or infinity"),
                       ((true[0], fitted), r"true_means must be a 2-D array .* got shape \(3,\)\."),
                       ((true, [[1, 2], [3]]), "fitted_means must be an array of real numbers"),
                       ((true + 1j, fitted), r"true_means must be an array of real numbers \(it holds complex")):
        with pytest.raises(ValueError, match=f"^match_components: {said}"):
            match_components(*args)


def test_a_store_that_lost_its_true_covariances_refuses_a_model_of_other_covariances(tmp_path):
    X = make_blobs(n=1500, seed=3)
    fitted = GaussianMixture(3, covariance_type="diag", random_state=0).fit(X)
    args = dict(n_samples=6000, chunk_size=2000, random_state=1)
    a = generate_mixture(str(tmp_path / "a"), model=fitted, **args)
    wider = copy.deepcopy(fitted)
    wider.covariances_ = fitted.covariances_ * 4.0
    shutil.rmtree(tmp_path / "a" / "true_covariances")
    with pytest.raises(ValueError, match=r"generated with different arguments \(model differs\)"):
        generate_mixture(str(tmp_path / "a"), model=wider, **args)
    generate_mixture(str(tmp_path / "a"), model=fitted, **args)  # the same model mends it
    np.testing.assert_array_equal(read_true_model(tmp_path / "a").covariances_, a.covariances_)
