"""Real clusters on 127.0.0.1: LocalCluster processes, the dask CLI, worker loss, checkpoints."""

import contextlib
import copy
import json
import logging
import os
import re
import shutil
import shlex
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import dask
import dask.array as da
import numcodecs
import numpy as np
import pytest
import zarr
from distributed import Client, LocalCluster
from sklearn.exceptions import ConvergenceWarning
from zarr.codecs import ZstdCodec

from dask_gmm import (BayesianGaussianMixture, GaussianMixture, _cluster, _kernels, _store, generate_mixture, io, load_model,
                      save_model)
from dask_gmm._em import Blocks

from .conftest import console_script, make_blobs, shard_with_inner_chunk

CLUSTER = dict(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)


def write_store(path, X, rows, compressors="zstd"):
    g = zarr.open_group(str(path), mode="w")
    compressors = [ZstdCodec(level=1)] if compressors == "zstd" else compressors
    a = g.create_array("X", shape=X.shape, chunks=(rows, X.shape[1]), dtype=X.dtype, compressors=compressors)
    a[:] = X
    return str(path)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    X = make_blobs(n=300_000, seed=1)
    return write_store(tmp_path_factory.mktemp("d") / "blobs.zarr", X, rows=15_000)


def assert_same_fit(a, b, rtol=1e-10):
    assert a.n_iter_ == b.n_iter_
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, err_msg=name)


def test_local_cluster_of_processes_equals_threads(store):
    ref = GaussianMixture(3, n_init=2, random_state=0, tol=1e-6).fit(store)
    with LocalCluster(**CLUSTER) as cluster, Client(cluster):
        gm = GaussianMixture(3, n_init=2, random_state=0, tol=1e-6).fit(store)
        labels = gm.predict(store).compute()
    # Same chunking, same reduction tree; only BLAS threading (workers run BLAS single-threaded) differs.
    assert_same_fit(gm, ref, rtol=1e-10)
    np.testing.assert_array_equal(labels, ref.predict(store).compute())


def test_chunks_zarr_left_out_read_as_fill_values_on_a_cluster_when_asked(tmp_path):
    """The setting 'dask_gmm.absent-chunks' is read where the fit is made, not on the workers (whose
    config may not have it): the chunks absent then travel with the tasks, by the direct reader
    (v3) and by zarr (v2)."""
    X = make_blobs(n=40_000, seed=2)
    X[10_000:20_000] = 0.0
    paths = [str(tmp_path / f"{f}.zarr") for f in ("v3", "v2")]
    for path, fmt in zip(paths, (3, 2)):
        zarr.create_array(path, data=X, chunks=(5_000, 2), zarr_format=fmt)  # zarr leaves out the zeros
    ref = GaussianMixture(3, random_state=0, max_iter=5, tol=0).fit(X)
    with LocalCluster(**CLUSTER) as cluster, Client(cluster):
        for path in paths:
            with dask.config.set({"dask_gmm.absent-chunks": "fill"}):
                gm = GaussianMixture(3, random_state=0, max_iter=5, tol=0).fit(path)
            assert_same_fit(gm, ref, rtol=1e-9)


def test_a_zarr_array_opened_by_a_relative_path_is_read_by_the_workers_where_it_was_opened(tmp_path, monkeypatch):
    """Workers started in another folder read the store at that relative path there: another store's
    data were fitted silently (here a, where the workers run), or a chunk was called missing."""
    for name, seed in (("a", 1), ("b", 2)):
        (tmp_path / name).mkdir()
        write_store(tmp_path / name / "mix.zarr", make_blobs(n=20_000, seed=seed) + 10 * seed, rows=5_000)
    n = zarr.open_array(str(tmp_path / "b" / "mix.zarr" / "X")).shape[0]
    weights = np.random.default_rng(0).uniform(0.5, 2.0, n)
    zarr.create_array(str(tmp_path / "b" / "w.zarr"), shape=weights.shape, chunks=(5_000,), dtype="f8")[:] = weights
    monkeypatch.chdir(tmp_path / "a")
    with LocalCluster(**CLUSTER) as cluster, Client(cluster):
        monkeypatch.chdir(tmp_path / "b")  # the workers stay in a
        X, w = zarr.open_array("mix.zarr/X", mode="r"), zarr.open_array("w.zarr", mode="r")
        group = zarr.open_group("mix.zarr", mode="r")
        gm = GaussianMixture(3, random_state=0).fit(X, sample_weight=w)
        labels = gm.predict(X).compute()
        score = gm.score(group)
        Xd, wd = da.from_zarr(X), da.from_zarr(w, inline_array=True)  # dask arrays of them: the same
        gm_dask = GaussianMixture(3, random_state=0).fit(Xd, sample_weight=wd)
        labels_dask = gm_dask.predict(Xd).compute()
        with pytest.raises(ValueError, match=r"reads the Zarr array 'file://mix.zarr/X', opened by a relative path: "
                                             r"a cluster's workers would read"):
            GaussianMixture(3, random_state=0).fit(Xd[:10_000])  # derived from it: not read as the array
    ref = GaussianMixture(3, random_state=0).fit(X[:], sample_weight=weights)
    for fitted, predicted in ((gm, labels), (gm_dask, labels_dask)):
        assert_same_fit(fitted, ref)
        np.testing.assert_array_equal(predicted, ref.predict(X[:]))
    assert score == pytest.approx(ref.score(X[:]), rel=1e-12)


def test_a_store_the_workers_cannot_see_is_said_so():
    """A memory:// store lives in this process only: the workers' reads found no chunk, and the error
    blamed a store changed after it was opened."""
    X = make_blobs(n=20_000)
    zarr.create_array("memory://dask-gmm-test/x.zarr", shape=X.shape, chunks=(5_000, 2), dtype="f8")[:] = X
    with LocalCluster(**CLUSTER) as cluster, Client(cluster):
        with pytest.raises(ValueError, match="or a cluster's worker that does not see the store: a memory:// store"):
            GaussianMixture(3, random_state=0).fit("memory://dask-gmm-test/x.zarr")


def test_a_dask_array_of_a_store_the_workers_cannot_see_is_said_so():
    """Sliced or scaled, a dask array of a memory:// store is read by dask's own tasks: a worker that
    does not see the store read its chunks as fill values (zeros), and the fit put every mean at
    the origin without a word (a review's report). Whole, it is read as the store is (above)."""
    X = make_blobs(n=20_000)
    url = "memory://dask-gmm-test/sliced.zarr"
    zarr.create_array(url, shape=X.shape, chunks=(5_000, 2), dtype="f8")[:] = X
    with LocalCluster(**CLUSTER) as cluster, Client(cluster):
        for data in (da.from_zarr(url)[:15_000], da.from_zarr(url) * 1.0):
            with pytest.raises(ValueError, match=r"reads the Zarr array .*sliced\.zarr.*, which the cluster's "
                                                 r"worker\(s\) tcp://127\.0\.0\.1:\d+, tcp://127\.0\.0\.1:\d+ "
                                                 r"cannot see \(no 'zarr\.json' in the store there"):
                GaussianMixture(3, random_state=0).fit(data)
        fitted = GaussianMixture(3, random_state=0, max_iter=3).fit(X)
        with pytest.raises(ValueError, match="cannot see"):
            fitted.score(da.from_zarr(url) * 1.0)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_the_initial_rows_are_read_through_the_passes_graph_not_another(tmp_path):
    """The k-means start's random rows of a sliced dask array of a store were computed as
    ``X[idx]``, which dask optimised its own way: the scheduler got X's block keys with other tasks
    than the passes gave them and warned, for such keys, "Detected different `run_spec`" (it
    "can cause failures and deadlocks"). Now they come from the passes' own graph: no warning, and
    the fit is the threads' one."""
    path = write_store(tmp_path / "s.zarr", make_blobs(n=300_000, seed=2), rows=100_000)
    data = lambda n: da.from_zarr(path, component="X")[:n]
    records = _Records()
    scheduler_log = logging.getLogger("distributed.scheduler")
    scheduler_log.addHandler(records)
    try:
        with LocalCluster(**CLUSTER) as cluster, Client(cluster), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fitted = [GaussianMixture(3, random_state=0, max_iter=5, tol=0).fit(data(n)) for n in (290_000, 150_000)]
    finally:
        scheduler_log.removeHandler(records)
    assert not [m for m in records.messages if "run_spec" in m]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for got, n in zip(fitted, (290_000, 150_000)):
            assert_same_fit(got, GaussianMixture(3, random_state=0, max_iter=5, tol=0).fit(data(n)))


#: The ``unshare`` command that makes a mount namespace here, found by :func:`_can_bind_mount`.
_UNSHARE = []


def _can_bind_mount(tmp_path):
    """Whether this process may run a command in a mount namespace of its own with a bind mount:
    ``unshare -m`` as root, ``unshare -r -m`` (in a user namespace of its own) as a user where the
    system lets users make them (the probe had tried only the first: the tests using it skipped
    for any user but root, a review)."""
    (tmp_path / "probe-a").mkdir()
    (tmp_path / "probe-b").mkdir()
    for unshare in (["unshare", "-m"], ["unshare", "-r", "-m"]):
        try:
            done = subprocess.run(unshare + ["--propagation", "private", "sh", "-c",
                                             f"mount --bind {tmp_path / 'probe-b'} {tmp_path / 'probe-a'}"],
                                  capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return False
        if done.returncode == 0:
            _UNSHARE[:] = unshare
            return True
    return False


def _worker_seeing(folder, at, address, env):
    """Start a ``dask worker`` (1 thread) in a mount namespace of its own, where ``folder`` is
    bind-mounted at ``at``: it sees ``folder``'s files at ``at``'s paths."""
    return subprocess.Popen(_UNSHARE + ["--propagation", "private", "sh", "-c",
                             f"mount --bind {folder} {at} && exec {shlex.quote(console_script('dask'))} worker {address} "
                             "--nthreads 1 --host 127.0.0.1 --no-dashboard"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def _two_stores(tmp_path, rows, compressors="zstd"):
    """Two stores of 40,000 rows in chunks of ``rows``, the same shape, other rows (5 apart):
    tmp_path/here/mix.zarr, whose path is returned, and tmp_path/there/mix.zarr. Skips the test
    where no worker can be made to see the second at the first's path (:func:`_can_bind_mount`)."""
    if not _can_bind_mount(tmp_path):
        pytest.skip("no mount namespace with a bind mount here (unshare -m needs root, unshare -r -m user namespaces)")
    for name, shift in (("here", 0.0), ("there", 5.0)):
        (tmp_path / name).mkdir()
        write_store(tmp_path / name / "mix.zarr", make_blobs(n=40_000, seed=3) + shift, rows=rows,
                    compressors=compressors)
    return str(tmp_path / "here" / "mix.zarr")


def test_a_worker_that_sees_another_store_at_the_same_path_is_refused(tmp_path):
    """A ``dask worker`` whose mount namespace shows another store (other rows, the same shape and
    chunks) at the path the client fits: its chunks were fitted with the client's store's, and
    the fit's means were the other store's, without a word. Now the fit, a dask array read from
    it and the outputs are refused, naming the worker and a file."""
    path = _two_stores(tmp_path, rows=10_000)
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    procs = []
    try:
        address = _start_scheduler(tmp_path, env, procs)
        procs.append(_worker_seeing(tmp_path / "there", tmp_path / "here", address, env))
        fitted = GaussianMixture(3, random_state=0, max_iter=3).fit(path)  # here, with threads
        with Client(address) as client:
            client.wait_for_workers(1, timeout=60)
            first = os.path.join(path, "X", "c", "0", "0")
            assert list(client.run(os.path.getsize, first).values()) != [os.path.getsize(first)]  # another store there
            refused = (r"The Zarr array '.*here/mix\.zarr/X' is not the same on the cluster's worker "
                       r"tcp://127\.0\.0\.1:\d+: its file 'c/0/0' holds [\d,]+ bytes there, [\d,]+ here\. That worker "
                       r"would read another store at this path")
            for data in (path, da.from_zarr(path, component="X")[:30_000]):
                with pytest.raises(ValueError, match=refused):
                    GaussianMixture(3, random_state=0, max_iter=3).fit(data)
                with pytest.raises(ValueError, match=refused):
                    fitted.predict_proba(data)
                with pytest.raises(ValueError, match=refused):
                    fitted.score(data)
            # a copy of this store with one more file there: the same store, fitted as here
            gone = set(client.scheduler_info()["workers"])
            _stop(procs.pop())
            shutil.copytree(tmp_path / "here", tmp_path / "copy")
            (tmp_path / "copy" / "mix.zarr" / "X" / "notes.txt").write_text("more")
            procs.append(_worker_seeing(tmp_path / "copy", tmp_path / "here", address, env))
            _wait_for_new_workers(client, gone)  # the new worker only, so that the check asks it
            assert_same_fit(GaussianMixture(3, random_state=0, max_iter=3).fit(path), fitted)
    finally:
        for p in reversed(procs):
            _stop(p)


def test_a_worker_that_sees_another_uncompressed_store_of_the_same_sizes_is_refused(tmp_path):
    """Uncompressed, the other store's files have the same sizes as this one's: the check of the
    files' names and sizes passed, and a fit mixed the two stores without a word (a distributed-systems
    review). The heads of a few chunk files are compared too."""
    path = _two_stores(tmp_path, rows=10_000, compressors=None)
    assert _digest_tree_sizes(tmp_path / "here") == _digest_tree_sizes(tmp_path / "there")
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    procs = []
    try:
        address = _start_scheduler(tmp_path, env, procs)
        procs.append(_worker_seeing(tmp_path / "there", tmp_path / "here", address, env))
        with Client(address) as client:
            client.wait_for_workers(1, timeout=60)
            with pytest.raises(ValueError, match=r"The Zarr array '.*here/mix\.zarr/X' is not the same on the "
                                                 r"cluster's worker tcp://127\.0\.0\.1:\d+: its file 'c/0/0' holds "
                                                 r"other bytes there than here \(both 160,000 bytes\)"):
                GaussianMixture(3, random_state=0, max_iter=3).fit(path)
    finally:
        for p in reversed(procs):
            _stop(p)


def _digest_tree_sizes(folder):
    """The relative paths and sizes of the files under ``folder``."""
    return sorted((os.path.relpath(os.path.join(d, f), folder), os.path.getsize(os.path.join(d, f)))
                  for d, _, files in os.walk(folder) for f in files)


def _wait_for_new_workers(client, gone):
    """Wait until the scheduler has workers, none of them among ``gone``; return them."""
    for _ in range(300):
        workers = set(client.scheduler_info()["workers"])
        if workers and not workers & gone:
            return workers
        time.sleep(0.2)
    raise AssertionError(f"no new worker joined; the scheduler has {workers}")


def test_outputs_made_before_the_client_and_the_cli_predict_check_each_worker(tmp_path):
    """A lazy ``predict`` made before the Client was checked when made only: computed on a worker
    that sees another store at the path, 18,674 of 39,999 labels came from that store, without a
    word; ``dask-gmm predict --scheduler`` made its output before connecting, and wrote 14,703
    such labels. Now each chunk's read compares its file's size with the one seen when the output
    was made, naming the worker, and the command makes its output under the Client. A worker that
    sees no store at the path is told so, not that it sees another."""
    path = _two_stores(tmp_path, rows=10_000)
    fitted = GaussianMixture(3, random_state=0, max_iter=3).fit(path)  # here, with threads
    labels = fitted.predict(path)  # made with no Client
    model, out = tmp_path / "m.json", tmp_path / "labels.zarr"
    save_model(fitted, model)
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    procs = []
    try:
        address = _start_scheduler(tmp_path, env, procs)
        procs.append(_worker_seeing(tmp_path / "there", tmp_path / "here", address, env))
        with Client(address) as client:
            client.wait_for_workers(1, timeout=60)
            with pytest.raises(ValueError, match=r"The Zarr array '.*here/mix\.zarr/X' is not the same on the "
                                                 r"cluster's worker tcp://127\.0\.0\.1:\d+: its file 'c/\d/0' "
                                                 r"\(rows \d+-\d+\) holds [\d,]+ bytes there, where it held [\d,]+ "
                                                 r"here when the fit began or the lazy output was made\. That "
                                                 r"worker reads another store"):
                labels.compute()
            done = subprocess.run([console_script("dask-gmm"), "predict", str(model), path, "--scheduler", address, "--output",
                                   str(out), "--quiet"], capture_output=True, text=True, timeout=300)
            assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
            assert re.match(r"dask-gmm: error: The Zarr array '.*here/mix\.zarr/X' is not the same on the cluster's "
                            r"worker tcp://127\.0\.0\.1:\d+: its file 'c/0/0' holds [\d,]+ bytes there", done.stderr)
            assert not out.exists()
            # a worker that sees no store at the path
            gone = set(client.scheduler_info()["workers"])
            _stop(procs.pop())
            (tmp_path / "empty").mkdir()
            procs.append(_worker_seeing(tmp_path / "empty", tmp_path / "here", address, env))
            _wait_for_new_workers(client, gone)
            with pytest.raises(ValueError, match=r"The cluster's worker tcp://127\.0\.0\.1:\d+ cannot see the Zarr "
                                                 r"array '.*here/mix\.zarr/X': there is no such folder there"):
                fitted.score(path)
    finally:
        for p in reversed(procs):
            _stop(p)


def test_a_worker_that_joins_a_fit_and_sees_another_store_fails_it(tmp_path):
    """A worker that joins during a fit, seeing another store at the path fitted, fails the fit at
    its first chunk read, or at the check after the pass it joined in, naming it (its chunks would
    have been mixed in)."""
    path = _two_stores(tmp_path, rows=2_000)
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    procs = []
    try:
        address = _start_scheduler(tmp_path, env, procs)
        procs.append(_start_worker(address, env))
        with Client(address) as client:
            client.wait_for_workers(1, timeout=60)
            outcome, iterated = {}, threading.Event()
            progress = logging.getLogger("dask_gmm.mixture")
            progress.setLevel(logging.INFO)
            handler = logging.Handler()
            handler.emit = lambda record: iterated.set() if hasattr(record, "n_iter") else None
            progress.addHandler(handler)

            def fit():
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", ConvergenceWarning)
                        outcome["model"] = GaussianMixture(3, random_state=0, max_iter=5_000, tol=0,
                                                           verbose=1, verbose_interval=1).fit(path)
                except ValueError as exc:
                    outcome["error"] = str(exc)

            fitting = threading.Thread(target=fit)
            try:
                fitting.start()
                assert iterated.wait(timeout=120)  # an EM iteration done: the fit's start checked the one worker
                procs.append(_worker_seeing(tmp_path / "there", tmp_path / "here", address, env))
                fitting.join(timeout=240)
            finally:
                progress.removeHandler(handler)
                progress.setLevel(logging.NOTSET)
            assert not fitting.is_alive()
        assert "model" not in outcome
        # found by its first chunk read (a task of the pass it joined in), else by the check after that pass
        assert re.fullmatch(r"The Zarr array '.*here/mix\.zarr/X' is not the same on the cluster's worker "
                            r"tcp://127\.0\.0\.1:\d+: its file 'c/\d+/0' (\(rows \d+-\d+\) holds [\d,]+ bytes there, "
                            r"where it held [\d,]+ here when the fit began or the lazy output was made\. That worker "
                            r"reads|holds [\d,]+ bytes there, [\d,]+ here\. That worker would read) another store .*",
                            outcome["error"])
    finally:
        for p in reversed(procs):
            _stop(p)


def test_a_worker_restarted_at_its_address_from_other_code_fails_the_fit(store, tmp_path):
    """A worker under a nanny at a fixed port (--worker-port), killed between two passes after its
    checkout changed: the nanny starts it again at the same address, from the changed code. The
    workers were kept as checked by address, so it was never asked again, and a review's fit returned
    means 12 off without a word. A worker is now known by its address and its process's own folder."""
    import socket

    import dask_gmm

    for name in ("same", "changed"):
        shutil.copytree(os.path.dirname(dask_gmm.__file__), tmp_path / name / "dask_gmm",
                        ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "changed" / "dask_gmm" / "_kernels.py", "a") as f:
        f.write("# changed during the fit\n")
    current = tmp_path / "current"
    os.symlink(tmp_path / "same", current)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    procs = []
    try:
        address = _start_scheduler(tmp_path, env, procs)
        worker_env = dict(env, PYTHONPATH=os.pathsep.join([str(current), env.get("PYTHONPATH", "")]))
        procs.append(subprocess.Popen([console_script("dask"), "worker", address, "--nthreads", "1", "--host",
                                       "127.0.0.1", "--no-dashboard", "--nanny", "--worker-port", str(port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=worker_env,
                                      start_new_session=True))
        with Client(address) as client:
            client.wait_for_workers(1, timeout=60)
            (worker,) = client.nthreads()
            assert worker == f"tcp://127.0.0.1:{port}"

            def folder():
                return client.scheduler_info()["workers"].get(worker, {}).get("local_directory")

            def restart_from_changed_code():
                before = folder()
                os.unlink(current)
                os.symlink(tmp_path / "changed", current)
                os.kill(client.run(os.getpid)[worker], signal.SIGKILL)
                for _ in range(600):  # the nanny starts it again, at the same address
                    if folder() not in (None, before):
                        return
                    time.sleep(0.1)
                raise AssertionError("the nanny did not restart the worker in 60 s")

            handler = logging.Handler()
            handler.emit = lambda record: restart_from_changed_code() if getattr(record, "n_iter", 0) == 2 else None
            with _fit_logging_to(handler):
                with pytest.raises(ValueError, match=rf"^The worker {worker} of .* runs dask-gmm \S+ of other code "
                                                     r"than this process"):
                    GaussianMixture(3, random_state=0, max_iter=6, tol=0, verbose=1, verbose_interval=1).fit(store)
    finally:
        for p in reversed(procs):
            _stop(p)


def test_arrays_persisted_on_the_cluster_fit_as_in_memory_ones():
    """A persisted array's graph holds the workers' futures, which the fit took for in-memory data
    (a KeyError, or the kernel given a key for a block), for X and for sample_weight alike."""
    X = make_blobs(n=20_000, seed=3)
    w = np.random.default_rng(0).integers(0, 3, len(X)).astype(float)
    ref = GaussianMixture(3, random_state=0, tol=1e-6).fit(X, sample_weight=w)
    with LocalCluster(**CLUSTER) as cluster, Client(cluster):
        Xp = da.from_array(X, chunks=(5_000, 2)).persist()
        wp = da.from_array(w, chunks=3_000).persist()
        gm = GaussianMixture(3, random_state=0, tol=1e-6).fit(Xp, sample_weight=wp)
        score = gm.score(Xp, sample_weight=wp)
    assert_same_fit(gm, ref, rtol=1e-10)
    assert score == pytest.approx(ref.score(X, sample_weight=w), rel=1e-12)


def test_a_weighted_in_memory_fit_on_a_cluster_has_the_bytes_of_threads():
    """The workers got the scattered blocks at misaligned addresses (odd ones seen), where NumPy sums
    the weights in another order: the total weight, so lower_bound_, differed in its last bit."""
    X = make_blobs(n=200_000, seed=3)
    w = np.random.default_rng(0).uniform(0, 2, len(X))
    fit = lambda: GaussianMixture(3, random_state=0, tol=0, max_iter=3).fit(X, sample_weight=w)  # noqa: E731
    ref = fit()
    with LocalCluster(**CLUSTER) as cluster, Client(cluster) as client:
        gm = fit()
        score = gm.score(X, sample_weight=w)
        Xd = io.as_dask_array(X)  # and the blocks a pass scatters are held by the workers as aligned arrays
        blocks = Blocks(Xd, io.as_weights(w, Xd))
        blocks.map_reduce(_kernels.e_step_stats, [gm._model()])
        keys = {f.key for f in blocks._sent[2]}
        assert len(keys) == 2 * len(blocks) and all(k.startswith("dask_gmm.block-") for k in keys)
        held = client.run(lambda dask_worker: [(type(v).__name__, v.flags.aligned) for k, v in dask_worker.data.items()
                                               if k in keys])
    held = [h for on_worker in held.values() for h in on_worker]
    assert len(held) == len(keys) and set(held) == {("ndarray", True)}
    for name in ("weights_", "means_", "covariances_", "lower_bound_"):
        assert np.asarray(getattr(gm, name)).tobytes() == np.asarray(getattr(ref, name)).tobytes(), name
    assert score == ref.score(X, sample_weight=w)


def test_a_weighted_score_on_an_in_process_cluster_has_the_bytes_of_threads():
    """An in-process cluster's workers run BLAS on as many threads as it likes: the weighted sum of
    the rows' log-likelihoods, taken by OpenBLAS's dot, differed from threads' in its last bit."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300_000, 8))
    w = rng.uniform(0, 2, len(X))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(3, random_state=0, max_iter=2).fit(X[:20_000])
    ref = gm.score(X, sample_weight=w), gm.score(da.from_array(X, chunks=50_000), sample_weight=w)
    with LocalCluster(**dict(CLUSTER, processes=False, protocol="tcp")) as cluster, Client(cluster):
        got = gm.score(X, sample_weight=w), gm.score(da.from_array(X, chunks=50_000), sample_weight=w)
    assert got == ref


def test_a_bad_row_of_a_dask_dataframe_is_named_by_its_label_on_a_cluster():
    """The worker's error reaches the client whole (the row it names, pickled), and the row's index
    label is found on the cluster."""
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    X = make_blobs(n=3_000, seed=4)
    frame = pd.DataFrame(X, columns=["a", "b"], index=[f"r{i}" for i in range(len(X))])
    frame.iloc[2_000, 0] = np.nan
    lazy = dd.from_pandas(frame, npartitions=4)
    at = list(lazy.index.compute()).index("r2000")
    fitted = GaussianMixture(2, random_state=0).fit(X[:1_000])
    with LocalCluster(**CLUSTER) as cluster, Client(cluster):
        with pytest.raises(ValueError, match=rf"first bad row: {at}\). .* Row {at} is the one of index label 'r2000'"):
            GaussianMixture(2, random_state=0).fit(lazy)
        with pytest.raises(ValueError, match=rf"first bad row: {at}\). .* Row {at} is the one of index label 'r2000'"):
            fitted.predict_proba(lazy).compute()  # a lazy output: named in the worker's task
        clean = lazy.fillna(0.0)
        np.testing.assert_array_equal(fitted.predict(clean).compute(), fitted.predict(clean.compute()))  # its order


def test_in_memory_data_is_sent_to_the_cluster_once_per_fit_not_in_every_pass(store, monkeypatch):
    """A NumPy X, NumPy sample weights and the array under a da.from_array were held in every pass's
    graph, sent through the scheduler again each iteration (a NumPy X of 2e7 rows: 923 ms an
    iteration on 2 workers, 111 ms once scattered). Now they are scattered once per fit: no pass's
    graph holds an array, and the fits equal the threaded ones."""
    X = make_blobs(n=20_000, seed=3)
    w = np.random.default_rng(0).integers(1, 3, len(X)).astype(float)
    stored_w = np.random.default_rng(1).uniform(0.5, 1.5, 300_000)
    inputs = {"NumPy X and weights": (X, w), "dask from_array": (da.from_array(X, chunks=(5_000, 2)), w),
              "a store with NumPy weights": (store, stored_w)}
    refs = {name: GaussianMixture(3, random_state=0, tol=1e-6).fit(x, sample_weight=sw)
            for name, (x, sw) in inputs.items()}
    graphs = []
    real = Client.get

    def get(self, dsk, keys, **kw):  # a pass hands the client a dict graph (dask's own calls, expressions)
        if isinstance(dsk, dict):
            graphs.append(dsk)
        return real(self, dsk, keys, **kw)

    monkeypatch.setattr(Client, "get", get)
    # Nor is X sent in a graph of dask's own: the initialisation's random starting rows, computed as
    # X[idx], sent all of X through the scheduler (320 kB here; distributed warns from 10 MB).
    with LocalCluster(**CLUSTER) as cluster, Client(cluster), warnings.catch_warnings(record=True) as caught, \
            dask.config.set({"distributed.admin.large-graph-warning-threshold": "100kB"}):
        warnings.simplefilter("always")
        for name, (x, sw) in inputs.items():
            for init in ("kmeans", "k-means++", "random_from_data"):
                gm = GaussianMixture(3, random_state=0, tol=1e-6, init_params=init).fit(x, sample_weight=sw)
                if init == "kmeans":
                    assert_same_fit(gm, refs[name], rtol=1e-10)
    assert [str(w.message) for w in caught if "large graph" in str(w.message)] == []
    assert len(graphs) > 3 * 5
    held = [type(v).__name__ for g in graphs for v in g.values() if isinstance(v, np.ndarray)]
    assert held == []
    from dask.utils import key_split  # the dashboard's task groups: all were "dask_gmm"

    assert {"dask_gmm.e_step_stats", "dask_gmm.combine"} <= {key_split(k) for g in graphs for k in g}


def test_two_fits_of_one_in_memory_dask_array_at_once_share_no_keys(caplog):
    """Two fits of one ``da.from_array`` at once (threads of one client), beside a persisted twin of
    the same keys: each fit aliased the array's own keys to its scattered copy, and the scheduler
    warned of a "different `run_spec`" for them ("can cause failures and deadlocks", a review).
    Each send is under keys of its own now; the fits equal the threaded one."""
    X = make_blobs(n=40_000, seed=5)
    ref = GaussianMixture(3, random_state=0, max_iter=5, tol=0).fit(X)
    fitted, failed = {}, []

    def fit(i, data):
        try:
            fitted[i] = GaussianMixture(3, random_state=0, max_iter=5, tol=0).fit(data)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            failed.append(exc)

    with caplog.at_level(logging.WARNING, logger="distributed.scheduler"):
        with LocalCluster(**CLUSTER) as cluster, Client(cluster), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            A = da.from_array(X, chunks=(5_000, 2))
            twin = da.from_array(X, chunks=(5_000, 2)).persist()  # the same keys, held by the user
            assert twin.name == A.name
            threads = [threading.Thread(target=fit, args=(i, A)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(300)
            fit(2, twin)
    assert not failed, failed
    for gm in fitted.values():
        assert_same_fit(gm, ref)
    assert len(fitted) == 3
    assert not [r for r in caplog.records if "run_spec" in r.getMessage()]


def test_sharded_store_on_a_cluster_equals_threads_without_key_conflicts(tmp_path, caplog):
    """A store read through zarr's own path (sharded) on processes: the same fit, and no
    'different run_spec' warning from the scheduler (the array was a separate graph key that two
    passes submitted differently; it is inlined into each block's task now)."""
    X = make_blobs(n=40_000, seed=2)
    a = zarr.create_array(str(tmp_path / "sh.zarr"), shape=X.shape, chunks=(5_000, 2), shards=(10_000, 2),
                          dtype=X.dtype)
    a[:] = X
    path = str(tmp_path / "sh.zarr")
    ref = GaussianMixture(3, random_state=0, max_iter=5, tol=1e-3).fit(path)
    with caplog.at_level(logging.WARNING, logger="distributed.scheduler"):
        with LocalCluster(**CLUSTER) as cluster, Client(cluster):
            gm = GaussianMixture(3, random_state=0, max_iter=5, tol=1e-3).fit(path)
            # the workers' zarr decodes within a chunk's bytes too (the bounded codecs pickled with the
            # array): an inner chunk stating 64 MiB is refused unread, not decoded whole and then found
            # of the wrong shape
            shard_with_inner_chunk(tmp_path / "sh.zarr" / "c" / "3" / "0", 2, bytes(numcodecs.Zstd(1).encode(bytes(2**26))))
            with pytest.raises(ValueError, match=r"Shard 'c/3/0' of the Zarr array '[^']+' \(rows 30000-3999\d\) cannot be "
                                                 r"decoded \(it says it decodes to 67,108,864 bytes"):
                gm.score(path)
    assert_same_fit(gm, ref)
    assert not [r for r in caplog.records if "run_spec" in r.getMessage()]


def test_bayesian_mixture_on_a_cluster_of_processes_equals_threads(store):
    kw = dict(n_components=4, weight_concentration_prior_type="dirichlet_process", random_state=0,
              tol=0, max_iter=20)
    with pytest.warns(ConvergenceWarning):  # tol=0: a fixed number of iterations
        ref = BayesianGaussianMixture(**kw).fit(store)
    with LocalCluster(**CLUSTER) as cluster, Client(cluster):
        with pytest.warns(ConvergenceWarning):
            bgm = BayesianGaussianMixture(**kw).fit(store)
        labels = bgm.predict(store).compute()
    assert_same_fit(bgm, ref, rtol=1e-10)
    np.testing.assert_allclose(bgm.weight_concentration_, ref.weight_concentration_, rtol=1e-10)
    np.testing.assert_array_equal(labels, ref.predict(store).compute())


class _KillOnIteration(logging.Handler):
    """Kills one worker process when the fit logs ``iteration``, and holds the fit there until the
    scheduler has lost that worker, so that the next pass runs without it. (A kill 0.1 s later,
    meant to land mid-pass, missed fits whose remaining iterations took less.)"""

    def __init__(self, client, iteration):
        super().__init__()
        (self.address, self.pid), *_ = client.run(os.getpid).items()
        self.client, self.iteration, self.killed = client, iteration, False

    def emit(self, record):
        if not self.killed and getattr(record, "n_iter", 0) == self.iteration:
            self.killed = True
            os.kill(self.pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while self.address in self.client.scheduler_info()["workers"] and time.monotonic() < deadline:
                time.sleep(0.02)


@pytest.mark.parametrize("in_memory", [False, True])
def test_worker_killed_mid_fit_changes_nothing(store, in_memory, caplog):
    """In memory, X is scattered to the workers once per fit, so the killed worker takes some of it
    with it (scattered data has no lineage): the next pass fails, and is run again with X sent again."""
    X = zarr.open_group(store, mode="r")["X"][:] if in_memory else store
    with pytest.warns(Warning):
        ref = GaussianMixture(3, random_state=0, max_iter=8, tol=0).fit(X)
    with LocalCluster(**CLUSTER) as cluster, Client(cluster) as client:
        handler = _KillOnIteration(client, 3)
        pid = handler.pid
        logger = logging.getLogger("dask_gmm.mixture")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            with pytest.warns(Warning):  # ConvergenceWarning: tol=0 never converges
                gm = GaussianMixture(3, random_state=0, max_iter=8, tol=0, verbose=1, verbose_interval=1).fit(X)
        finally:
            logger.removeHandler(handler)
        assert handler.killed
        time.sleep(0.5)
        assert pid not in client.run(os.getpid).values()  # the worker really died and was replaced
    assert_same_fit(gm, ref, rtol=1e-10)
    resent = [r for r in caplog.records if "in-memory data was lost" in r.getMessage()]
    assert len(resent) == (1 if in_memory else 0)


class _CloseOnIteration(logging.Handler):
    """Closes the client 0.05 s after the fit logs ``iteration`` (mid-pass, or between passes), or
    ``at_once``: as it logs it, between two passes."""

    def __init__(self, client, iteration, at_once=False):
        super().__init__()
        self.client, self.iteration, self.timer = client, iteration, None
        self.delay = 0 if at_once else 0.05

    def emit(self, record):
        if self.timer is None and getattr(record, "n_iter", 0) == self.iteration:
            self.timer = threading.Timer(self.delay, self.client.close)
            self.timer.start()
            if not self.delay:
                self.timer.join()


@pytest.mark.parametrize("in_memory", [False, True])
def test_a_client_closed_during_a_fit_is_said_so(store, in_memory, caplog):
    """In memory, a pass cancelled by the client's close was taken for scattered data lost with a
    worker: sent again three times ("A worker holding this fit's in-memory data was lost"), then an
    AttributeError of the closed client's scatter (a review)."""
    X = zarr.open_group(store, mode="r")["X"][:] if in_memory else store
    with LocalCluster(**CLUSTER) as cluster, Client(cluster) as client:
        handler = _CloseOnIteration(client, 2)
        logger = logging.getLogger("dask_gmm.mixture")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            with pytest.raises(RuntimeError, match=r"^The distributed Client that this fit or score ran on was closed "
                                                   r"(during a pass \(.*\)|between two of its passes|before or while it ran)\. Keep the "
                                                   r"Client open until the fit or score returns\.$"):
                GaussianMixture(3, random_state=0, max_iter=100_000, tol=0, verbose=1, verbose_interval=1).fit(X)
        finally:
            logger.removeHandler(handler)
            handler.timer.join()
    assert not [r for r in caplog.records if "in-memory data was lost" in r.getMessage()]


@contextlib.contextmanager
def _fit_logging_to(handler):
    """The fits' log records (``verbose=1``: one an iteration) go to ``handler`` within the block."""
    logger = logging.getLogger("dask_gmm.mixture")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)


@contextlib.contextmanager
def _scheduler_with_a_worker(tmp_path):
    """``(the scheduler's process, a Client of it)``: a ``dask scheduler`` and a ``dask worker`` on
    127.0.0.1, the Client giving up on a lost scheduler after 3 s (distributed's default: 30)."""
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    procs = []
    try:
        address = _start_scheduler(tmp_path, env, procs)
        procs.append(_start_worker(address, env))
        with dask.config.set({"distributed.comm.timeouts.connect": "3s"}), Client(address) as client:
            client.wait_for_workers(1)
            yield procs[0], client
    finally:
        for p in procs:
            p.kill()
            p.wait()


@pytest.mark.parametrize("in_memory", [False, True])
def test_a_client_closed_between_two_passes_fails_the_fit(store, in_memory):
    """A Client closed between two passes: dask then gives its local threads, and the fit had gone on
    in this process without a word, a cluster's work on the client's machine (a review)."""
    X = zarr.open_group(store, mode="r")["X"][:] if in_memory else store
    with LocalCluster(**CLUSTER) as cluster, Client(cluster) as client:
        with _fit_logging_to(_CloseOnIteration(client, 2, at_once=True)):
            with pytest.raises(RuntimeError, match=r"^The distributed Client that this fit or score ran on was closed "
                                                   r"between two of its passes\. Keep the Client open"):
                GaussianMixture(3, random_state=0, max_iter=20, tol=0, verbose=1, verbose_interval=1).fit(X)
        assert client.status == "closed"


def test_a_scheduler_that_cannot_be_reached_is_said_so_not_a_traceback(tmp_path):
    """The workers are asked whether they run dask_gmm as a command or fit begins (seconds, on fresh
    workers): a scheduler gone then was distributed's CommClosedError, a traceback from the command
    line (a review). It is a RuntimeError naming the cause, which the command line says in one line."""
    from dask_gmm import cli

    with _scheduler_with_a_worker(tmp_path) as (scheduler, client):
        scheduler.kill()
        scheduler.wait()
        with pytest.raises(_cluster.SchedulerLost, match=r"^The Dask cluster's scheduler, or the connection to it, was "
                                                         r"lost( \(.*\))?\. Check the scheduler") as raised:
            _cluster.refuse_workers_without_dask_gmm(client)  # (the cause in brackets, where the call found it)
        with pytest.raises(_cluster.SchedulerLost):  # the check after each pass: it asks for the workers first
            _cluster.refuse_other_files_on_workers(None, files=_cluster.stored_files(da.from_array(make_blobs(n=10))), checked=set())
        said = cli._cluster_failure(raised.value, "tcp://127.0.0.1:1")
    assert re.fullmatch(r"the Dask cluster at tcp://127\.0\.0\.1:1 failed( \(.*\))?: its scheduler or the connection "
                        r"to it is gone\. Check the scheduler and the workers' logs, then rerun\.", said), said
    assert cli._cluster_failure(_cluster.SchedulerLost.of(), "tcp://127.0.0.1:1") == (  # found between two passes
        "the Dask cluster at tcp://127.0.0.1:1 failed: its scheduler or the connection to it is gone. Check the "
        "scheduler and the workers' logs, then rerun.")


def test_a_closed_client_given_as_the_scheduler_is_said_so(store):
    """A Client closed, then given as dask's scheduler (``dask.config.set(scheduler=client)``): the
    start-up check of its workers asked its scheduler, which a closed Client has not (an AttributeError
    of None, a review)."""
    with LocalCluster(**CLUSTER) as cluster:
        client = Client(cluster, set_as_default=False)
        client.close()
        with dask.config.set(scheduler=client):
            with pytest.raises(RuntimeError, match=r"^The distributed Client that this fit or score ran on was closed "
                                                   r"before or while it ran\."):
                GaussianMixture(2, random_state=0, max_iter=2).fit(store)
            try:  # a fit in the caller's ``except``: what it handles stays in the traceback (``from None`` hid it)
                raise KeyError("the caller's")
            except KeyError:
                with pytest.raises(RuntimeError, match="was closed before or while it ran") as raised:
                    GaussianMixture(2, random_state=0, max_iter=2).fit(store)
            assert isinstance(raised.value.__context__, KeyError) and not raised.value.__suppress_context__


@pytest.mark.parametrize("fit", ["GaussianMixture", "BayesianGaussianMixture", "select_model"])
def test_a_client_closed_as_a_fit_opens_its_data_fails_it(store, monkeypatch, fit):
    """A Client closed in a fit's first seconds, as it opened and checked X, before its first pass:
    the fit took dask's local threads then, and ran on the client's machine without a word (a review)."""
    import dask_gmm

    real = io.with_reader
    with LocalCluster(**CLUSTER) as cluster:
        client = Client(cluster)  # the default Client, closed from another thread (a Timer's, in the review)

        def closing(*args, **kwargs):
            closer = threading.Thread(target=client.close)
            closer.start()
            closer.join()
            return real(*args, **kwargs)

        monkeypatch.setattr(io, "with_reader", closing)
        run = (lambda: dask_gmm.select_model(store, n_components=[2], max_iter=2)) if fit == "select_model" else (
            lambda: getattr(dask_gmm, fit)(n_components=2, random_state=0, max_iter=2).fit(store))
        try:
            with pytest.raises(RuntimeError, match=r"^The distributed Client that this fit or score ran on was "
                                                   r"closed (before its first pass|before or while it ran)\."):
                run()
        finally:  # closed from another thread, the Client leaves dask's configuration asking for it
            dask.config.set(scheduler=None)


def test_a_client_closed_by_its_user_while_a_call_fails_is_not_called_a_lost_scheduler():
    """The workers' check (client.run) that failed because the user closed the Client from another
    thread was called a lost scheduler ("Check the scheduler and the workers' logs") (a review)."""
    import types

    with LocalCluster(**CLUSTER) as cluster, Client(cluster, set_as_default=False) as client:
        def closed_meanwhile(self):
            self.close()
            raise OSError("the connection closed")  # as distributed's CommClosedError is

        with pytest.raises(RuntimeError, match=r"^The distributed Client that this fit or score ran on was closed "
                                               r"while it ran\.") as raised:
            _cluster._of_cluster(types.MethodType(closed_meanwhile, client))
        assert isinstance(raised.value.__cause__, OSError)


class _KillProcessOnIteration(logging.Handler):
    """Kills the process ``proc`` (a scheduler) as the fit logs ``iteration``, between two passes."""

    def __init__(self, proc, iteration):
        super().__init__()
        self.proc, self.iteration = proc, iteration

    def emit(self, record):
        if getattr(record, "n_iter", 0) == self.iteration and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_a_scheduler_lost_during_a_fit_of_numpy_data_is_said_so(tmp_path, caplog):
    """Its passes' futures cancelled for "scheduler-connection-lost" were taken for scattered data lost
    with a worker: sent again twice (a wait of 30 s), then "Keep the Client open", of a Client the
    user had not closed (a review)."""
    X = make_blobs(n=20_000, seed=4)
    with _scheduler_with_a_worker(tmp_path) as (scheduler, client), _fit_logging_to(_KillProcessOnIteration(scheduler, 2)):
        with pytest.raises(_cluster.SchedulerLost, match=r"^The Dask cluster's scheduler, or the connection to it, was lost"):
            GaussianMixture(3, random_state=0, max_iter=20, tol=0, verbose=1, verbose_interval=1).fit(X)
    assert not [r for r in caplog.records if "in-memory data was lost" in r.getMessage()]


def test_a_pass_whose_scattered_data_went_missing_is_sent_again():
    """What counts as the in-memory data lost (a review: a worker killed while the data were sent
    failed the fit with distributed's CommClosedError, and one killed 0.2-0.4 s in, before the
    client knew, with a worker's KeyError of a key of the send before): a send cut off, and a
    KeyError of a key of any send, as well as sent data whose worker is gone."""
    from dask_gmm._em import Blocks

    X = make_blobs(n=20_000)
    blocks = Blocks(io.as_dask_array(X))
    with LocalCluster(**CLUSTER) as cluster, Client(cluster) as client:
        blocks._graph_for(client.get)
        first, first_keys = blocks._sent[2][0].key, set(blocks._sent[1])
        blocks._sent = None
        blocks._graph_for(client.get)  # sent again: the scheduler may keep a block's task asking for the first
        futures = blocks._sent[2]
        assert futures and all(f.status == "finished" for f in futures) and first not in {f.key for f in futures}
        # and under new graph keys: a surviving worker kept the old task of a key, waiting on the lost
        # data, and a fit hung (a review, 3 of about 95 fits with a worker killed 0.2-0.35 s in)
        assert not set(blocks._sent[1]) & first_keys and set(blocks._sent[1]) == set(blocks.x)
        assert [k[1:] for k in blocks.x] == [k[1:] for k in sorted(first_keys)]  # each block's index kept
        np.testing.assert_array_equal(blocks.take([(1, np.arange(5))])[0], np.asarray(blocks.graph[blocks.x[1]])[:5])
        assert blocks._lost_sent(KeyError(futures[0].key))  # a worker's lookup of a sent key failed
        assert blocks._lost_sent(KeyError(first))
        assert not blocks._lost_sent(KeyError("another key")) and not blocks._lost_sent(ValueError("no"))
        with Client(cluster) as other:
            other.close()
            with pytest.raises(Exception) as cut:  # the send fails: its client is gone
                blocks._graph_for(other.get)
        assert blocks._lost_sent(cut.value)
        blocks._sent = None
        gm = GaussianMixture(3, random_state=0, max_iter=3, tol=0).fit(X)  # sent again, whole
    np.testing.assert_allclose(gm.means_, GaussianMixture(3, random_state=0, max_iter=3, tol=0).fit(X).means_,
                               rtol=1e-10)


def _poison(block, block_info=None):
    if block_info[0]["chunk-location"][0] == 2:
        os._exit(1)  # as a segfault in a corrupt chunk's decoder would
    return block


def test_chunk_that_keeps_killing_workers_is_named():
    X = da.from_array(make_blobs(n=4000), chunks=(1000, 2)).map_blocks(_poison, dtype=float)
    init = dict(weights_init=[0.3, 0.3, 0.4], means_init=[[0, 0], [6, 0], [0, 6]], precisions_init=[np.eye(2)] * 3)
    # Distributed blames every task a dying worker holds; one task per worker thread at a time
    # (worker-saturation 1) leaves the poisoned chunk as the only task it can blame twice.
    config = {"distributed.scheduler.allowed-failures": 1, "distributed.scheduler.worker-saturation": 1.0}
    with dask.config.set(config):
        with LocalCluster(**CLUSTER) as cluster, Client(cluster):
            with pytest.raises(ValueError, match=r"Workers died 2 times while processing chunk 2 \(rows 2000-2999\)"):
                GaussianMixture(3, **init).fit(X)


def _start_scheduler(tmp_path, env, procs):
    """Start ``dask scheduler`` on 127.0.0.1 (appended to ``procs``) and return its address."""
    sched_file = tmp_path / "scheduler.json"
    procs.append(subprocess.Popen([console_script("dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                   "--scheduler-file", str(sched_file)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
    for _ in range(100):
        if sched_file.exists() and sched_file.stat().st_size:
            break
        time.sleep(0.2)
    address = json.loads(sched_file.read_text())["address"]
    assert address.startswith("tcp://127.0.0.1:")
    return address


def _start_worker(address, env, **popen):
    """A ``dask worker`` of one thread on 127.0.0.1 for the scheduler at ``address``, its output dropped."""
    return subprocess.Popen([console_script("dask"), "worker", address, "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, **popen)


def test_dask_scheduler_and_worker_command_lines(store, tmp_path, monkeypatch):
    """Workers started from the command line, in another folder: a store given by a relative path still reads."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    procs = []
    try:
        address = _start_scheduler(tmp_path, env, procs)
        procs.append(subprocess.Popen([console_script("dask"), "worker", address, "--nworkers", "2", "--nthreads", "1",
                                       "--host", "127.0.0.1", "--no-dashboard"], cwd=elsewhere,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
        monkeypatch.chdir(os.path.dirname(store))
        relative = os.path.basename(store)
        with Client(address) as client:
            client.wait_for_workers(2, timeout=60)
            gm = GaussianMixture(3, random_state=0, tol=1e-6).fit(relative)
            labels = gm.predict(relative).compute()
            generate_mixture("generated.zarr", n_samples=20_000, chunk_size=5_000, random_state=0)  # on the workers
        generated = io.open_zarr(os.path.join(os.path.dirname(store), "generated.zarr"))
        assert generated.shape == (20_000, 2) and _store.missing_chunks(generated) == []
        assert os.listdir(elsewhere) == []  # nothing written where the workers run
        ref = GaussianMixture(3, random_state=0, tol=1e-6).fit(store)
        assert_same_fit(gm, ref, rtol=1e-10)
        np.testing.assert_array_equal(labels, ref.predict(store).compute())
        # and through the command line
        out = tmp_path / "model.json"
        done = subprocess.run([console_script("dask-gmm"), "fit", store, "--n-components", "3", "--seed", "0", "--tol", "1e-6",
                               "--scheduler", address, "--output", str(out), "--quiet"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert_same_fit(load_model(out), ref, rtol=1e-10)
        # and examples/workflow.py, whose docstring says to create a Client first (its labels went to
        # the workers' folder, and 22.5 % agreed with the true ones)
        example = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "workflow.py")
        script = ("import runpy, sys; from distributed import Client; client = Client(sys.argv[1]); "
                  "sys.argv = sys.argv[2:]; runpy.run_path(sys.argv[0], run_name='__main__')")
        done = subprocess.run([sys.executable, "-c", script, address, example, "w"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "agreement with the true labels: 100.0000%" in done.stdout
        assert os.listdir(elsewhere) == []
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def _stop(proc):
    """Terminate ``proc`` and wait for it; past 30 s (a nanny restarting the worker it lost did not
    end in a CI run), SIGKILL it, with its whole session when it leads one (the nanny's worker too)."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait(timeout=30)


@contextlib.contextmanager
def _a_worker_importing_from(tmp_path, folder):
    """A Client of ``dask scheduler`` and one ``dask worker`` on 127.0.0.1 whose Python imports from
    ``folder`` first (a stand-in dask_gmm there), both stopped after."""
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    procs = []
    try:
        address = _start_scheduler(tmp_path, env, procs)
        procs.append(_start_worker(address, dict(env, PYTHONPATH=str(folder)), start_new_session=True))
        with Client(address) as client:
            client.wait_for_workers(1, timeout=60)
            yield client
    finally:
        for p in reversed(procs):
            _stop(p)


@contextlib.contextmanager
def _cli_fit_on_a_cluster(store, tmp_path, **config):
    """A ``dask scheduler`` (dask ``config`` as DASK_* variables), one ``dask worker`` and a long
    ``dask-gmm fit`` on them: yields (scheduler process, fit process, the fit's model path); stops
    whatever still runs."""
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False", **config)
    procs = []
    try:
        address = _start_scheduler(tmp_path, env, procs)
        procs.append(_start_worker(address, env, start_new_session=True))
        out = tmp_path / "model.json"
        procs.append(subprocess.Popen([console_script("dask-gmm"), "fit", store, "-k", "3", "--tol", "0", "--max-iter", "100000",
                                       "--scheduler", address, "--output", str(out)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        with Client(address) as client:
            yield client, procs[0], procs[-1], out
    finally:
        for p in reversed(procs):  # the fit, the worker while the scheduler still answers, the scheduler
            _stop(p)


def test_cli_says_in_one_line_that_the_scheduler_is_gone(store, tmp_path):
    """The scheduler killed mid-fit: a 60-line CommClosedError traceback and exit 1; no model file."""
    with _cli_fit_on_a_cluster(store, tmp_path) as (client, sched, fit, out):
        client.wait_for_workers(1, timeout=60)
        for _ in range(600):  # until the fit's tasks reach the scheduler
            if client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) > 0:
                break
            time.sleep(0.1)
        sched.kill()
        _, err = fit.communicate(timeout=120)
    assert fit.returncode == 2, err
    assert err.count("\n") == 1 and err.startswith("dask-gmm: error: the Dask cluster at tcp://127.0.0.1:"), err
    assert "Check the scheduler and the workers' logs" in err
    assert not out.exists()


def test_cli_names_the_chunk_whose_task_killed_the_workers(store, tmp_path):
    """A worker killed (SIGKILL) while it holds a fit task, on a scheduler that allows no failure:
    distributed's KilledWorker, said in one line that names the chunk; no model file."""
    def held(dask_scheduler):  # tasks on a block (EM, k-means), not the initialisation's dask arrays'
        return sum("-chunk" in str(ts.key) for ws in dask_scheduler.workers.values() for ts in ws.processing)

    with _cli_fit_on_a_cluster(store, tmp_path, DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0") as (
            client, _, fit, out):
        for _ in range(10):  # a kill between two passes holds no task: the nanny restarts the worker
            client.wait_for_workers(1, timeout=60)
            pids = client.run(os.getpid)
            for _ in range(3000):
                if fit.poll() is not None or client.run_on_scheduler(held):
                    break
                time.sleep(0.01)
            if fit.poll() is not None:
                break
            for pid in pids.values():
                os.kill(pid, signal.SIGKILL)
            try:
                fit.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                pass
        _, err = fit.communicate(timeout=120)
    assert fit.returncode == 2, err
    assert err.count("\n") == 1 and err.startswith("dask-gmm: error: A worker died while processing chunk "), err
    assert "The chunk may be corrupt, or need more memory than a worker has" in err
    assert not out.exists()


def test_cli_refuses_scheduler_addresses_it_cannot_use(store, tmp_path, capsys):
    """Each was a traceback (tls://, ucx://), distributed's words (int() of '8786x') or a 30 s timeout."""
    from dask_gmm import cli, save_model
    model = tmp_path / "m.json"
    save_model(GaussianMixture(3, random_state=0).fit(make_blobs(n=300)), model)
    for address in ("tls://127.0.0.1:8786", "ucx://127.0.0.1:8786", "tcp://127.0.0.1:8786x", "inproc://x",
                    "tcp://127.0.0.1:99999", "tcp//127.0.0.1:8786", "http://127.0.0.1:8786"):
        rc = cli.main(["score", str(model), store, "--scheduler", address])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and "is not a scheduler address dask-gmm can use" in err, err


@pytest.mark.parametrize("banner", [b"SSH-2.0-OpenSSH_9.6 Ubuntu\r\n", b"HTTP/1.1 400 Bad Request\r\n\r\n"])
def test_cli_names_a_port_whose_program_speaks_first_as_no_scheduler(store, tmp_path, capsys, banner):
    """A program that sends its own greeting first (an SSH server, a proxy answering 400): distributed
    read its bytes as a frame of about 3 EiB, and the command said it was out of memory and advised
    rechunking the store (a new user's review)."""
    import socketserver

    class Greeter(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.sendall(banner * 4)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Greeter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    from dask_gmm import cli
    model = tmp_path / "m.json"
    save_model(GaussianMixture(3, random_state=0).fit(make_blobs(n=300)), model)
    try:
        rc = cli.main(["score", str(model), store, "--scheduler", f"tcp://127.0.0.1:{server.server_address[1]}"])
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert "what answered is not a Dask scheduler" in err and "another program's port" in err, err
    assert "out of memory" not in err


def test_cli_gives_up_on_a_port_where_no_scheduler_answers(store, tmp_path):
    """An HTTP server (as on the dashboard's port) accepted the connection and then waited for a
    request, as distributed waited for its handshake: the command hung for ever."""
    import http.server

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    model = tmp_path / "m.json"
    save_model(GaussianMixture(3, random_state=0).fit(make_blobs(n=300)), model)
    env = dict(os.environ, DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="2s")
    try:
        proc = subprocess.run([console_script("dask-gmm"), "score", str(model), store, "--scheduler",
                               f"tcp://127.0.0.1:{server.server_port}"], capture_output=True, text=True,
                              env=env, timeout=120)
    finally:
        server.shutdown()
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "no Dask scheduler answered within 4 s; is this the dashboard's port" in proc.stderr, proc.stderr
    # Ctrl-C while it waits for the handshake: interrupted, not held until the bound (an executor's
    # shutdown waited for its thread)
    reached = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def setup(self):
            reached.set()
            super().setup()

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        proc = subprocess.Popen([console_script("dask-gmm"), "score", str(model), store, "--scheduler",
                                 f"tcp://127.0.0.1:{server.server_port}"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env=dict(env, DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="60s"),
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        assert reached.wait(60)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=100)
    finally:
        server.shutdown()
    assert proc.returncode == -signal.SIGINT and err.strip() == "dask-gmm: error: interrupted", err
    # where nothing listens, distributed's own words (the bound on the handshake had cut them short)
    for _ in range(3):
        proc = subprocess.run([console_script("dask-gmm"), "score", str(model), store, "--scheduler", "tcp://127.0.0.1:1"],
                              capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 2 and "Timed out trying to connect to tcp://127.0.0.1:1 after 2 s" in proc.stderr
        assert "dashboard" not in proc.stderr, proc.stderr


def test_cli_main_runs_on_a_cluster_from_within_a_running_event_loop(store, tmp_path, capsys):
    """As from a notebook's cell: the check that a scheduler answers ran asyncio.run, which refuses to
    run inside a running loop."""
    import asyncio

    from dask_gmm import cli

    model = tmp_path / "m.json"
    save_model(GaussianMixture(3, random_state=0).fit(make_blobs(n=300)), model)
    with LocalCluster(**CLUSTER) as cluster:
        async def cell():
            return cli.main(["score", str(model), store, "--json", "--scheduler", cluster.scheduler_address])

        assert asyncio.run(cell()) == 0
    assert json.loads(capsys.readouterr().out)["n_samples"] == 300_000


def test_predict_interrupted_on_a_cluster_leaves_no_temporary_store(tmp_path):
    """Ctrl-C: the command removed its temporary store, then tasks still running on the workers wrote
    their chunks and made it again (left behind in 2 of 4 interrupts)."""
    path = str(tmp_path / "big.zarr")
    generate_mixture(path, n_samples=3_000_000, chunk_size=20_000, random_state=0)
    model = tmp_path / "m.json"
    save_model(GaussianMixture(3, random_state=0).fit(io.open_zarr(path)[:50_000]), model)
    out = tmp_path / "out"
    out.mkdir()
    with LocalCluster(**CLUSTER) as cluster, Client(cluster) as client:
        for attempt in range(3):
            proc = subprocess.Popen([console_script("dask-gmm"), "predict", str(model), path, "--proba", "-o", str(out / f"p{attempt}.zarr"),
                                     "--scheduler", cluster.scheduler_address],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
            for _ in range(600):  # until its writes run on the workers (its temporary store made before them)
                if any(client.processing().values()):
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the predict's tasks never reached the workers: nothing was interrupted")
            time.sleep(0.05 * attempt)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == -signal.SIGINT and err.strip() == "dask-gmm: error: interrupted", err
            for _ in range(1200):  # until the tasks the workers were running have ended (released by the
                # scheduler, a task already running runs on in its thread: not in processing() then)
                running = client.run(lambda dask_worker: len(dask_worker.state.executing))
                if not any(client.processing().values()) and not any(running.values()):
                    break
                time.sleep(0.05)
            else:
                pytest.fail(f"the workers still run tasks a minute after the interrupt: {running}")
            assert [n for n in os.listdir(out) if n.startswith(".")] == [], attempt  # (the output, if it was done)


def _readline(stream, timeout):
    """The next line of ``stream`` (a pipe), or "" after ``timeout`` seconds."""
    got = []
    reader = threading.Thread(target=lambda: got.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return got[0] if got else ""


def test_cli_on_a_scheduler_without_workers_says_so_and_waits_then_stops_cleanly(store, tmp_path):
    """No workers yet: a warning names the wait and how to end it, and the fit runs once one joins.
    Stopped mid-fit with SIGTERM: one error line, no asyncio traceback from the closed client."""
    ref = GaussianMixture(3, random_state=0, tol=1e-6).fit(store)
    out = tmp_path / "model.json"
    cluster = dict(CLUSTER, n_workers=0)
    with LocalCluster(**cluster) as cluster, Client(cluster):
        fit = [console_script("dask-gmm"), "fit", store, "--n-components", "3", "--seed", "0", "--scheduler", cluster.scheduler_address]
        proc = subprocess.Popen(fit + ["--tol", "1e-6", "--output", str(out)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = _readline(proc.stderr, timeout=60)
            assert "has no workers yet; waiting for one to join" in line, line
            assert f"dask worker {cluster.scheduler_address}" in line
            assert proc.poll() is None
            cluster.scale(2)
            _, err = proc.communicate(timeout=300)
        finally:
            proc.kill()
        assert proc.returncode == 0, err
        assert_same_fit(load_model(out), ref, rtol=1e-10)

        proc = subprocess.Popen(fit + ["--tol", "0", "--max-iter", "100000", "--output", str(tmp_path / "m2.json")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for _ in range(600):  # until the workers are busy with its iterations
                if len(cluster.scheduler.tasks) > 0 and proc.poll() is None:
                    break
                time.sleep(0.1)
            time.sleep(1.0)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
        assert proc.returncode == 143, err
        assert err.strip().splitlines() == ["dask-gmm: error: terminated"], err
        assert not (tmp_path / "m2.json").exists()


def test_cli_says_in_one_line_that_the_scheduler_it_waited_on_is_gone(store, tmp_path):
    """A scheduler killed while the command waited for its first worker: a traceback of 60 lines
    and status 1 once the client gave up reconnecting (30 s); now one line and status 2."""
    procs = []
    try:
        address = _start_scheduler(tmp_path, dict(os.environ), procs)
        proc = subprocess.Popen([console_script("dask-gmm"), "fit", store, "-k", "3", "--seed", "0", "--scheduler", address,
                                 "--output", str(tmp_path / "m.json")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        assert "has no workers yet; waiting for one to join" in _readline(proc.stderr, timeout=60)
        procs[0].kill()
        procs[0].wait(timeout=30)
        err = proc.communicate(timeout=120)[1]
        assert proc.returncode == 2, err
        assert err.strip().splitlines() == [err.strip()] and err.startswith("dask-gmm: error: lost the Dask "
                                                                            "scheduler at"), err
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=30)
    assert not (tmp_path / "m.json").exists()


def _endless_cli_fit(cluster, store, tmp_path):
    """A ``dask-gmm fit`` of ``store`` on the LocalCluster ``cluster`` that iterates until stopped, as a
    process (its output piped), once the cluster's worker runs its iterations."""
    proc = subprocess.Popen([console_script("dask-gmm"), "fit", store, "-k", "3", "--tol", "0", "--max-iter", "100000",
                             "--scheduler", cluster.scheduler_address, "--output", str(tmp_path / "m.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(600):
        if len(cluster.scheduler.tasks) > 0:
            break
        time.sleep(0.1)
    return proc


def test_cli_says_when_every_worker_has_gone_and_carries_on_when_one_joins(store, tmp_path):
    """With every worker gone mid-fit, the command waited for one to join and said nothing."""
    with LocalCluster(**dict(CLUSTER, n_workers=1)) as cluster, Client(cluster):
        address = cluster.scheduler_address
        proc = _endless_cli_fit(cluster, store, tmp_path)
        try:
            cluster.scale(0)
            line = _readline(proc.stderr, timeout=60)
            assert line.startswith(f"dask-gmm: warning: every worker of the Dask scheduler at {address} has gone; "
                                   f"waiting for one to join (start one with 'dask worker {address}'"), line
            assert proc.poll() is None
            cluster.scale(1)
            for _ in range(600):  # until the new worker runs its iterations
                if any(w.processing for w in cluster.scheduler.workers.values()):
                    break
                time.sleep(0.1)
            else:
                pytest.fail("the fit did not carry on on the new worker")
            assert proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
        assert proc.returncode == 143 and err.strip().splitlines() == ["dask-gmm: error: terminated"], err


def _set_status(status):
    """A function for ``client.run``: the worker's status set to distributed's ``status`` ("paused",
    "running"), as its memory monitor sets it, and sent to the scheduler; the monitor stopped, which
    would set it back at once (the worker's memory is far below its limit)."""
    def run(dask_worker):
        from distributed.core import Status

        dask_worker.periodic_callbacks["memory_monitor"].stop()
        dask_worker.status = Status[status]
    return run


def test_cli_says_when_every_worker_is_paused_and_carries_on_when_one_runs(store, tmp_path):
    """Workers paused by their memory limit (a review's of 200 MB, paused once they had loaded
    dask_gmm) left the command waiting without a word until it was killed."""
    with LocalCluster(**dict(CLUSTER, n_workers=1)) as cluster, Client(cluster) as client:
        address = cluster.scheduler_address
        proc = _endless_cli_fit(cluster, store, tmp_path)
        try:
            client.run(_set_status("paused"))
            line = _readline(proc.stderr, timeout=60)
            assert line.startswith(f"dask-gmm: warning: every worker of the Dask scheduler at {address} is paused: "
                                   "its memory is past distributed's pause threshold"), line
            assert proc.poll() is None
            client.run(_set_status("running"))
            done = len(cluster.scheduler.tasks)
            for _ in range(600):  # the fit carries on
                if any(w.processing for w in cluster.scheduler.workers.values()):
                    break
                time.sleep(0.1)
            else:
                pytest.fail(f"the fit did not carry on ({done} tasks)")
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
        assert proc.returncode == 143 and err.strip().splitlines() == ["dask-gmm: error: terminated"], err


# ------------------------------------------------------------------ checkpoints
_SCRIPT = textwrap.dedent(
    """
    import json, logging, os, sys, warnings
    from dask_gmm import GaussianMixture, load_model
    store, ckpt, die_at, n_init, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]

    class Die(logging.Handler):
        def emit(self, record):  # the checkpoint of this iteration is already on disk
            if die_at and getattr(record, "n_iter", None) == die_at and record.init == n_init:
                os._exit(3)

    log = logging.getLogger("dask_gmm.mixture")
    log.addHandler(Die()); log.setLevel(logging.INFO)
    warnings.simplefilter("ignore")
    gm = GaussianMixture(3, n_init=n_init, random_state=1, init_params="random", tol=1e-9, max_iter=12,
                         checkpoint=ckpt, verbose=1, verbose_interval=1).fit(store)
    json.dump({"means": gm.means_.tolist(), "cov": gm.covariances_.tolist(), "n_iter": gm.n_iter_,
               "lb": gm.lower_bounds_}, open(out, "w"))
    """
)


def _run(store, ckpt, die_at, n_init, out):
    return subprocess.run([sys.executable, "-c", _SCRIPT, store, str(ckpt), str(die_at), str(n_init), str(out)],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("n_init", [1, 2])
def test_killed_fit_resumes_from_checkpoint(tmp_path, n_init):
    store = write_store(tmp_path / "s.zarr", make_blobs(n=20_000, seed=3), rows=5_000)
    killed = _run(store, tmp_path / "ck.json", 4, n_init, tmp_path / "never.json")
    assert killed.returncode == 3, killed.stderr
    saved = json.loads((tmp_path / "ck.json").read_text())
    assert [r["n_iter"] for r in saved["runs"]] == [4] * n_init
    resumed = _run(store, tmp_path / "ck.json", 0, n_init, tmp_path / "resumed.json")
    assert resumed.returncode == 0, resumed.stderr
    whole = _run(store, tmp_path / "fresh.json", 0, n_init, tmp_path / "whole.json")
    assert whole.returncode == 0, whole.stderr
    a, b = json.loads((tmp_path / "resumed.json").read_text()), json.loads((tmp_path / "whole.json").read_text())
    assert a == b  # exactly the same numbers
    assert a["n_iter"] > 4
    assert not [f for f in os.listdir(tmp_path) if ".tmp@" in f]  # atomic writes leave nothing behind


@pytest.mark.parametrize("n_init", [1, 2])
def test_a_larger_max_iter_continues_a_checkpointed_fit(tmp_path, n_init):
    """A fit that stopped at max_iter continues from its checkpoint when max_iter is raised (it was
    refused as another fit): the same model as one fit with the larger max_iter from the start. A
    max_iter below the iterations made is refused, saying what to pass."""
    X = make_blobs(n=3000)
    kw = dict(init_params="random", random_state=1, tol=0, n_init=n_init)
    ckpt = tmp_path / "c.json"
    with pytest.warns(ConvergenceWarning):
        GaussianMixture(3, max_iter=4, checkpoint=ckpt, **kw).fit(X)
    with pytest.warns(ConvergenceWarning):
        continued = GaussianMixture(3, max_iter=9, checkpoint=ckpt, **kw).fit(X)
    with pytest.warns(ConvergenceWarning):
        whole = GaussianMixture(3, max_iter=9, **kw).fit(X)
    assert continued.n_iter_ == whole.n_iter_ == 9
    assert continued.lower_bounds_ == whole.lower_bounds_
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_array_equal(getattr(continued, name), getattr(whole, name))
    with pytest.raises(ValueError, match=r"holds 9 iterations, more than max_iter \(5\) allows\. Pass max_iter=9 or more"):
        GaussianMixture(3, max_iter=5, checkpoint=ckpt, **kw).fit(X)
    old = json.loads(ckpt.read_text())  # written when max_iter was part of the fit: continued alike
    old["fingerprint"]["args"]["max_iter"] = 9
    ckpt.write_text(json.dumps(old))
    with pytest.warns(ConvergenceWarning):
        assert GaussianMixture(3, max_iter=12, checkpoint=ckpt, **kw).fit(X).n_iter_ == 12


def test_mismatched_checkpoint_is_refused(tmp_path):
    X = make_blobs(n=3000)
    ckpt = tmp_path / "ck.json"
    GaussianMixture(3, random_state=0, checkpoint=ckpt).fit(X)
    with pytest.raises(ValueError, match=r"different fit \(its arguments n_components \(3 then, 2 now\) differ\)"):
        GaussianMixture(2, random_state=0, checkpoint=ckpt).fit(X)
    with pytest.raises(ValueError, match=r"its arguments tol \(0.001 then, 0.5 now\) differ"):  # max_iter may
        GaussianMixture(3, random_state=0, checkpoint=ckpt, max_iter=7, tol=0.5).fit(X)
    with pytest.raises(ValueError, match=r"its arguments means_init \(None then, \[\[0.0, 0.0\], \[1.0, 1.0\], \[2.0, 2.0\]\] now\)"):
        GaussianMixture(3, random_state=0, checkpoint=ckpt, means_init=np.arange(6.0).reshape(3, 2) // 2).fit(X)
    wide = np.c_[X, np.zeros((len(X), 48))]  # a long argument is cut short in the message
    ckpt2 = tmp_path / "ck2.json"
    GaussianMixture(3, random_state=0, checkpoint=ckpt2).fit(wide)
    with pytest.raises(ValueError, match=r"means_init \(None then, \[\[0.0, 0.0, 0.0, 0.0, \.\.\.\], .*\] now\)") as e:
        GaussianMixture(3, random_state=0, checkpoint=ckpt2, means_init=np.zeros((3, 50))).fit(wide)
    assert len(str(e.value)) < 600
    with pytest.raises(ValueError, match="different fit.*its data differ"):
        GaussianMixture(3, random_state=0, checkpoint=ckpt).fit(X + 1.0)
    changed = X.copy()  # one row in the middle: the finished checkpoint must not hand back its model
    changed[1234, 1] += 1e-9
    with pytest.raises(ValueError, match="different fit.*its data differ"):
        GaussianMixture(3, random_state=0, checkpoint=ckpt).fit(changed)
    w = np.ones(len(X))
    GaussianMixture(3, random_state=0, checkpoint=tmp_path / "w.json").fit(X, sample_weight=w)
    w[1500] = 2.0
    with pytest.raises(ValueError, match="different fit.*its data differ"):
        GaussianMixture(3, random_state=0, checkpoint=tmp_path / "w.json").fit(X, sample_weight=w)
    same = GaussianMixture(3, random_state=0, checkpoint=ckpt).fit(X.copy())  # equal rows: resumed, no EM
    np.testing.assert_array_equal(same.means_, GaussianMixture(3, random_state=0).fit(X).means_)
    with pytest.raises(ValueError, match=r"different fit \(its row chunks differ; X is split into other blocks"):
        GaussianMixture(3, random_state=0, checkpoint=ckpt).fit(da.from_array(X, chunks=(500, 2)))
    with pytest.raises(ValueError, match=r"different fit \(its shape, row chunks differ\)\. Use the same data") as e:
        GaussianMixture(3, random_state=0, checkpoint=ckpt).fit(X[:2000])  # other rows: no word of other blocks
    assert "blocks" not in str(e.value)
    old = json.loads(ckpt.read_text())  # written before the data digest: said so
    del old["fingerprint"]["data"]
    ckpt.write_text(json.dumps(old))
    with pytest.raises(ValueError, match="written by an older dask_gmm.*Finish that fit with the version that wrote "
                                         "it, or delete the checkpoint to start the fit afresh"):
        GaussianMixture(3, random_state=0, checkpoint=ckpt).fit(X)
    with pytest.raises(ValueError, match=r"\(it is a checkpoint of a fit by an older dask_gmm, not a model, and this "
                                         "version does not resume from it"):  # it had said a fit resumes from it
        load_model(ckpt)
    older = json.loads(json.dumps(old))  # written before the warm start was fingerprinted: said so
    older["fingerprint"]["data"] = "0"
    del older["fingerprint"]["warm_start_from"]
    ckpt.write_text(json.dumps(older))
    with pytest.raises(ValueError, match="written by an older dask_gmm.*Finish that fit"):
        GaussianMixture(3, random_state=0, checkpoint=ckpt).fit(X)
    no_digest = json.loads(json.dumps(old))  # its fingerprint whole, but no runs' digest (before 339f3fe)
    no_digest["fingerprint"]["data"] = "0"
    del no_digest["runs_digest"]
    ckpt.write_text(json.dumps(no_digest))
    with pytest.raises(ValueError, match="written by an older dask_gmm.*Finish that fit"):
        GaussianMixture(3, random_state=0, checkpoint=ckpt).fit(X)
    with pytest.raises(ValueError, match="checkpoint of a fit by an older dask_gmm, not a model"):
        load_model(ckpt)
    no_runs = json.loads(json.dumps(old))
    del no_runs["runs"]
    ckpt.write_text(json.dumps(no_runs))
    with pytest.raises(ValueError, match=r"The checkpoint .* is damaged \(KeyError\('runs'\)\)\. Delete it"):
        GaussianMixture(3, random_state=0, checkpoint=ckpt).fit(X)
    with pytest.raises(ValueError, match=r"\(it is a damaged checkpoint of a fit, not a model, and a fit refuses it"):
        load_model(ckpt)  # it had said a fit resumes from it
    # Not a checkpoint (a user's notes, a model file, a JSON list): not called damaged, and kept
    for text in ("precious notes", json.dumps({"format": "dask_gmm.model/1"}), "[1, 2]", "null"):
        ckpt.write_text(text)
        with pytest.raises(ValueError, match=r"is not a dask_gmm checkpoint .*Choose another checkpoint path"):
            GaussianMixture(3, random_state=0, checkpoint=ckpt).fit(X)
        assert ckpt.read_text() == text


@pytest.mark.parametrize("edit", [
    lambda st: st["runs"][0].update(weights=[float("nan")] * 3),
    lambda st: st["runs"][0].update(weights=[5.0, 5.0, 5.0]),
    lambda st: st["runs"][0].update(means=st["runs"][0]["means"][:2]),
    lambda st: st["runs"][0].update(covariance_type="bogus"),
    lambda st: st["runs"][0].update(covariances=[[[1.0, 0.0], [0.0, 1.0]]] * 3),  # no longer its factor's
    lambda st: st["runs"][0].update(n_iter=-5),
    lambda st: st["runs"][0].update(n_iter=1000),
    lambda st: st["runs"][0].update(lower_bounds=st["runs"][0]["lower_bounds"][:-1]),
    lambda st: st["runs"][0]["lower_bounds"].__setitem__(1, float("nan")),  # resumed, and written to the model
    lambda st: st["runs"][0].update(lower_bound=float("nan")),
    lambda st: st["runs"].append(st["runs"][0]),
    lambda st: st.update(runs=[]),
    lambda st: st.update(fingerprint="x"),
    # still a valid model: handed back as the fit's (with the old lower bound) before the runs' digest
    lambda st: st["runs"][0]["means"][0].__setitem__(0, 5.0),
    lambda st: st["runs"][0].update(weights=st["runs"][0]["weights"][::-1]),
    lambda st: st.pop("runs_digest"),
], ids=["nan-weights", "weights-sum", "means-shape", "type", "covariances", "n_iter-negative",
        "n_iter-over-max_iter", "history", "nan-in-history", "nan-bound", "two-runs", "no-runs", "fingerprint",
        "a-mean", "weights-reversed", "no-digest"])
def test_an_edited_checkpoint_is_damaged_not_a_model(tmp_path, edit):
    """An edited checkpoint gave a model with NaN weights or 3 means for 4 weights (predict's
    IndexError later), an AttributeError for no runs, or 'an older dask_gmm' for a bad fingerprint."""
    X = make_blobs(n=3000)
    ckpt = tmp_path / "ck.json"
    GaussianMixture(3, random_state=0, checkpoint=ckpt).fit(X)
    state = json.loads(ckpt.read_text())
    edit(state)
    ckpt.write_text(json.dumps(state))
    said = r"written by an older dask_gmm" if "runs_digest" not in state else r"is damaged \(.*\)\. Delete it to start"
    with pytest.raises(ValueError, match=r"The checkpoint .* " + said):
        GaussianMixture(3, random_state=0, checkpoint=ckpt).fit(X)


def test_a_cut_short_checkpoint_is_damaged_and_other_files_are_not(tmp_path):
    X = make_blobs(n=3000)
    ckpt = tmp_path / "ck.json"
    GaussianMixture(3, random_state=0, checkpoint=ckpt).fit(X)
    text = ckpt.read_text()
    cut = text[: len(text) // 2]
    ckpt.write_text(cut)
    with pytest.raises(ValueError, match=r"is damaged \(cut short or corrupted: .*\)\. Delete it"):
        GaussianMixture(3, random_state=0, checkpoint=ckpt).fit(X)
    assert ckpt.read_text() == cut
    ckpt.write_text("")  # empty, as mktemp makes it (never by a fit's atomic writes): no checkpoint yet
    GaussianMixture(3, random_state=0, checkpoint=ckpt).fit(X)
    assert ckpt.read_text() == text


def test_initial_parameters_are_compared_by_value_not_by_repr(tmp_path):
    """A list of arrays was compared by its repr (8 digits): a start 1e-9 away resumed another fit's
    checkpoint silently, and the same values as an array and as a list were refused."""
    X = make_blobs(n=3000)
    ckpt = tmp_path / "ck.json"
    means = [np.array([0.0, 0.0]), np.array([6.0, 0.0]), np.array([0.0, 6.0])]
    a = GaussianMixture(3, means_init=np.array(means), checkpoint=ckpt).fit(X)
    b = GaussianMixture(3, means_init=[m.tolist() for m in means], checkpoint=ckpt).fit(X)  # the same: resumed
    np.testing.assert_array_equal(a.means_, b.means_)
    means[2] = means[2] + 1e-9
    with pytest.raises(ValueError, match=r"different fit \(its arguments means_init .* differ\)"):
        GaussianMixture(3, means_init=means, checkpoint=ckpt).fit(X)


def test_a_warm_start_resumes_only_its_own_checkpoint(tmp_path):
    """warm_start was not in the fingerprint: a warm fit handed back a cold fit's finished checkpoint."""
    X = make_blobs(n=3000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        first = GaussianMixture(3, init_params="random", random_state=1, max_iter=3, tol=0).fit(X)
        twin = copy.deepcopy(first)
        cold = GaussianMixture(3, init_params="random", random_state=1, max_iter=3, tol=0, checkpoint=tmp_path / "c.json")
        cold.fit(X)
        with pytest.raises(ValueError, match=r"different fit \(its warm start \(the fitted model it continues\) differs"):
            copy.deepcopy(first).set_params(warm_start=True, checkpoint=tmp_path / "c.json").fit(X)
        warm = first.set_params(warm_start=True, checkpoint=tmp_path / "w.json").fit(X)
        again = twin.set_params(warm_start=True, checkpoint=tmp_path / "w.json").fit(X)  # the same start: resumed
    np.testing.assert_array_equal(again.means_, warm.means_)
    assert warm.lower_bound_ > cold.lower_bound_  # it continued: 6 iterations, not the cold fit's 3


def test_checkpoint_with_a_generator_random_state_resumes(tmp_path):
    X = make_blobs(n=3000)
    ckpt = tmp_path / "ck.json"
    a = GaussianMixture(3, random_state=np.random.default_rng(0), checkpoint=ckpt).fit(X)
    b = GaussianMixture(3, random_state=np.random.default_rng(1), checkpoint=ckpt).fit(X)  # resumes: same state
    np.testing.assert_array_equal(a.means_, b.means_)


def test_a_worker_that_cannot_import_dask_gmm_is_named_before_any_work(store, tmp_path):
    """Workers whose Python cannot import dask_gmm died on the first task they unpickled: the
    command waited for workers for ever, saying they had gone (a review: killed by a timeout), and
    so did the library's fit of a store and its generate_mixture; a fit of NumPy data failed after
    three warnings that a worker holding its data was lost."""
    stand_in = tmp_path / "path" / "dask_gmm"
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'dask_gmm'\")\n")
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    procs = []
    said = r"The worker tcp://127\.0\.0\.1:\d+ of the Dask cluster cannot import dask_gmm \(ModuleNotFoundError: "
    try:
        address = _start_scheduler(tmp_path, env, procs)
        procs.append(_start_worker(address, dict(env, PYTHONPATH=str(stand_in.parent)), start_new_session=True))
        with Client(address) as client:
            client.wait_for_workers(1, timeout=60)
            for X in (store, make_blobs(n=3000)):
                with pytest.raises(ValueError, match=said):
                    GaussianMixture(3, random_state=0).fit(X)
            with pytest.raises(ValueError, match=said):
                GaussianMixture(3, random_state=0).fit(make_blobs(n=3000)).predict(store)
            with pytest.raises(ValueError, match=said):
                generate_mixture(str(tmp_path / "g.zarr"), n_samples=1000, random_state=0)
            assert not (tmp_path / "g.zarr").exists()
        out = tmp_path / "model.json"
        done = subprocess.run([console_script("dask-gmm"), "fit", store, "-k", "3", "--scheduler", address, "--output", str(out)],
                              capture_output=True, text=True, timeout=120)
    finally:
        for p in reversed(procs):
            _stop(p)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("dask-gmm: error: The worker tcp://127.0.0.1:"), \
        done.stderr
    assert (" of the Dask scheduler at tcp://127.0.0.1:" in done.stderr and "cannot import dask_gmm "
            "(ModuleNotFoundError: No module named 'dask_gmm'). Install dask-gmm" in done.stderr)
    assert not out.exists()


def test_a_worker_running_other_code_of_the_same_version_is_named(store, tmp_path):
    """Only the version was compared: workers importing another checkout of the same version (one
    changed since they started) ran their own kernels and generator without a word (a
    distributed-systems review). A digest of the modules' source is compared too."""
    import dask_gmm

    copy = tmp_path / "path" / "dask_gmm"
    shutil.copytree(os.path.dirname(dask_gmm.__file__), copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "_kernels.py", "a") as f:
        f.write("# changed since the workers started\n")
    with _a_worker_importing_from(tmp_path, copy.parent) as client:
        (worker_build,) = client.run(lambda: __import__("dask_gmm._cluster", fromlist=["build"]).build()).values()
        assert worker_build.partition("+")[0] == dask_gmm.__version__ and worker_build != _cluster.build()
        with pytest.raises(ValueError, match=rf"The worker tcp://127\.0\.0\.1:\d+ of the Dask cluster runs dask-gmm "
                                             rf"{re.escape(dask_gmm.__version__)} of other code than this process "
                                             r"\(build .+\): a checkout changed since the workers started"):
            GaussianMixture(3, random_state=0).fit(store)


def test_a_lazy_output_computed_by_a_worker_running_other_code_is_refused_there(store, tmp_path):
    """The workers are checked when a lazy output is made; one restarted or joined before its compute
    from a changed checkout computed its blocks with its own kernels, without a word (a review:
    379,590 of 2e6 labels, after a nanny restarted a worker). Each task checks the build where it
    runs: outputs made with no cluster, then computed on one whose worker runs other code."""
    import dask.dataframe as dd
    import dask_gmm

    copy = tmp_path / "path" / "dask_gmm"
    shutil.copytree(os.path.dirname(dask_gmm.__file__), copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "_kernels.py", "a") as f:
        f.write("# changed since the output was made\n")
    gm = GaussianMixture(3, random_state=0, max_iter=2).fit(store)
    X = zarr.open_array(store + "/X", mode="r")[:]
    outputs = (gm.predict(store), gm.predict_proba(da.from_array(X, chunks=5000)),
               gm.score_samples(dd.from_array(X, chunksize=5000)))  # the direct reader, map_blocks, unknown rows
    with _a_worker_importing_from(tmp_path, copy.parent):
        for lazy in outputs:
            with pytest.raises(ValueError, match=r"^The worker tcp://127\.0\.0\.1:\d+ runs dask_gmm build 0\.1\.0\+\w+, and "
                                                 rf"this output was made by build {re.escape(dask_gmm._BUILD)}: it "
                                                 r"started since from other code .* Restart this Python process and "
                                                 r"the workers, so that all run the same dask_gmm, then make the output "
                                                 r"again\.$"):
                lazy.compute()
    np.testing.assert_array_equal(outputs[0].compute(), gm.predict(X))  # on local threads: the same build


def test_a_worker_running_other_code_that_joins_during_generate_writes_nothing(tmp_path, monkeypatch):
    """generate_mixture asks the workers before it writes; one that joined after, from other code,
    drew its chunks with its own generator. Each chunk's task checks the build where it runs. (The
    worker is there from the start here, and the first check is skipped: the moment it stands for,
    a worker joining just after it, cannot be timed.)"""
    import dask_gmm
    from dask_gmm.generate import store_info

    copy = tmp_path / "path" / "dask_gmm"
    shutil.copytree(os.path.dirname(dask_gmm.__file__), copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "generate.py", "a") as f:
        f.write("# another generator\n")
    monkeypatch.setattr(_cluster, "refuse_workers_without_dask_gmm", lambda *args, **kwargs: set())
    path = str(tmp_path / "g.zarr")
    with _a_worker_importing_from(tmp_path, copy.parent):
        with pytest.raises(ValueError, match=r"^The worker tcp://127\.0\.0\.1:\d+ runs dask_gmm build 0\.1\.0\+\w+, and "
                                             rf"this store was made by build {re.escape(dask_gmm._BUILD)}: .* Restart "
                                             r"this Python process and the workers, so that all run the same "
                                             r"dask_gmm, then rerun\.$"):
            generate_mixture(path, n_samples=4000, chunk_size=1000, random_state=0)
    info = store_info(path)
    assert info["status"] == "incomplete" and info["missing_chunks_of"] == {"X": 4, "labels": 4}  # none written


def test_a_worker_of_a_build_from_before_the_package_held_its_build_is_named(store, tmp_path):
    """build() was dask_gmm.io's until the package took its build as it is first imported: a worker
    of such a build answers with it, and is named as running other code, not as a Python that
    cannot import dask_gmm (``dask_gmm._cluster`` had been asked for, which it lacks)."""
    import dask_gmm

    stand_in = tmp_path / "path" / "dask_gmm"  # the modules a worker is asked to import, as they were
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text(f"__version__ = {dask_gmm.__version__!r}\n")
    (stand_in / "generate.py").write_text("")
    (stand_in / "mixture.py").write_text("")
    (stand_in / "io.py").write_text(f"def build():\n    return {dask_gmm.__version__ + '+000000000000'!r}\n")
    with _a_worker_importing_from(tmp_path, stand_in.parent):
        with pytest.raises(ValueError, match=rf"The worker tcp://127\.0\.0\.1:\d+ of the Dask cluster runs dask-gmm "
                                             rf"{re.escape(dask_gmm.__version__)} of other code than this process "
                                             r"\(build 0\.1\.0\+000000000000, here "):
            GaussianMixture(3, random_state=0).fit(store)


def test_a_worker_that_loaded_modules_before_its_checkout_changed_is_named(store, tmp_path):
    """The build was taken when dask_gmm._cluster was first imported: a worker that had loaded other
    modules (a fit's kernels) from a checkout since changed to this process's took its build from
    the new files, and ran its old kernels unnamed (a review). The package takes it as it is first
    imported, before any of its modules."""
    import dask_gmm

    here = os.path.dirname(dask_gmm.__file__)
    copy = tmp_path / "path" / "dask_gmm"
    shutil.copytree(here, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "_kernels.py", "a") as f:
        f.write("# the workers' checkout, before it changed\n")
    with _a_worker_importing_from(tmp_path, copy.parent) as client:
        client.run(lambda: __import__("dask_gmm._kernels") and None)  # the kernels loaded, not dask_gmm._cluster
        shutil.copyfile(os.path.join(here, "_kernels.py"), copy / "_kernels.py")  # the checkout changed: as here
        with pytest.raises(ValueError, match=r"The worker tcp://127\.0\.0\.1:\d+ of the Dask cluster runs dask-gmm "
                                             r".+ of other code than this process"):
            GaussianMixture(3, random_state=0).fit(store)


def test_a_build_whose_files_cannot_be_read_now_is_taken_as_unchanged(monkeypatch, tmp_path):
    """Files that could not be read at a check (a network file system's error, a folder moved) made
    the build "changed", and refused the process and its workers (a review): there is nothing to
    compare, and the build taken at import stands. One whose files can be read and differ is changed."""
    import dask_gmm

    taken = dask_gmm._BUILD
    assert _cluster.build() == taken
    monkeypatch.setattr(dask_gmm, "_FOLDER", str(tmp_path / "gone"))  # as if moved away since the import
    assert _cluster.build() == taken
    here = os.path.dirname(dask_gmm.__file__)
    shutil.copytree(here, tmp_path / "gone", ignore=shutil.ignore_patterns("__pycache__"))
    assert _cluster.build() == taken  # the same files elsewhere
    os.remove(tmp_path / "gone" / "_compat.py")  # a module removed by a pull: a change (it had been "unreadable")
    changed = rf"{re.escape(taken)} \(its files now 0\.1\.0\+[0-9a-f]{{12}}\)"
    assert re.fullmatch(changed, _cluster.build())
    shutil.copyfile(os.path.join(here, "_compat.py"), tmp_path / "gone" / "_compat.py")
    with open(tmp_path / "gone" / "_em.py", "a") as f:
        f.write("# another\n")
    assert re.fullmatch(changed, _cluster.build())


def test_a_worker_whose_files_changed_after_it_loaded_dask_gmm_is_named(store, tmp_path):
    """A worker's build was what it had imported: one whose checkout changed after it loaded the
    same code as this process matched it, though any module it loads from then on is the new one
    (a review). Its files now are compared with those it imported; a stray file there is not one of
    its modules."""
    import dask_gmm

    here = os.path.dirname(dask_gmm.__file__)
    copy = tmp_path / "path" / "dask_gmm"
    shutil.copytree(here, copy, ignore=shutil.ignore_patterns("__pycache__"))  # this process's code
    with _a_worker_importing_from(tmp_path, copy.parent) as client:
        client.run(lambda: __import__("dask_gmm.mixture") and None)
        (copy / "cli_BACKUP_4242.py").write_text("# a merge tool's copy: no module of the package\n")
        GaussianMixture(3, random_state=0, max_iter=2).fit(store)  # the same build
        with open(copy / "_kernels.py", "a") as f:
            f.write("# the workers' checkout, changed since they loaded it\n")
        with pytest.raises(ValueError, match=r"The worker tcp://127\.0\.0\.1:\d+ of the Dask cluster runs dask-gmm "
                                             r"0\.1\.0 of other code than this process \(build 0\.1\.0\+[0-9a-f]{12} "
                                             r"\(its files now 0\.1\.0\+[0-9a-f]{12}\), here "):
            GaussianMixture(3, random_state=0).fit(store)


def test_a_process_whose_checkout_changed_after_it_imported_dask_gmm_is_refused_on_a_cluster(store, tmp_path):
    """The build was taken as the package is first imported: a notebook that imported dask_gmm, then
    pulled, then fitted on workers that had loaded the old code matched them, and ran new code beside
    their old (a review). A process whose files changed since it imported them is refused on a cluster,
    (:func:`_cluster.build` compares the files now with those imported); alone, it fits."""
    import dask_gmm

    copy = tmp_path / "path" / "dask_gmm"
    shutil.copytree(os.path.dirname(dask_gmm.__file__), copy, ignore=shutil.ignore_patterns("__pycache__"))
    script = textwrap.dedent(f"""
        import os, sys
        import dask_gmm  # the build taken here
        with open({str(copy / "_kernels.py")!r}, "a") as f:
            f.write("# pulled since\\n")
        from distributed import Client, LocalCluster
        from dask_gmm import GaussianMixture
        GaussianMixture(3, random_state=0, max_iter=2).fit({store!r})  # no cluster: nothing to compare
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster):
            try:
                GaussianMixture(3, random_state=0).fit({store!r})
            except ValueError as exc:
                print(exc)
    """)
    env = dict(os.environ, PYTHONPATH=str(copy.parent), DASK_DISTRIBUTED__WORKER__DAEMON="False")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.fullmatch(rf"dask_gmm's files in {re.escape(str(copy))} changed since this process imported them \(build "
                        r"0\.1\.0\+[0-9a-f]{12} \(its files now 0\.1\.0\+[0-9a-f]{12}\)\): it may run old and new code "
                        r"together, and workers that start later may run the new\. Restart this Python process and the "
                        r"workers, then rerun\.\n", done.stdout), done.stdout


def test_a_worker_that_cannot_import_what_the_tasks_need_is_named_and_so_is_the_first_to_join(store, tmp_path):
    """``import dask_gmm`` alone loads none of its modules: a worker whose numba could not import
    passed the check and died on its first task, and a fit waited for ever; so did a fit started
    before any worker had joined, the first to join being one without dask_gmm (a diff review)."""
    stand_in = tmp_path / "path" / "numba"
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text("raise ImportError('numba is broken here')\n")
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    procs, outcome = [], {}
    try:
        address = _start_scheduler(tmp_path, env, procs)
        with Client(address):
            def fit():
                try:
                    GaussianMixture(3, random_state=0).fit(store)
                except ValueError as exc:
                    outcome["error"] = str(exc)

            fitting = threading.Thread(target=fit, daemon=True)
            fitting.start()  # no worker yet: the fit waits for one, and asks it
            time.sleep(1.0)
            procs.append(_start_worker(address, dict(env, PYTHONPATH=str(stand_in.parent)), start_new_session=True))
            fitting.join(timeout=90)
            assert not fitting.is_alive()
    finally:
        for p in reversed(procs):
            _stop(p)
    assert re.fullmatch(r"The worker tcp://127\.0\.0\.1:\d+ of the Dask cluster cannot import dask_gmm \(ImportError: "
                        r"numba is broken here\)\. Install dask-gmm .+ in the workers' Python environment, then rerun\.",
                        outcome["error"]), outcome
