"""The EM driver's passes: in-memory blocks pulled by threads give the bytes of one task per block."""

import os
import sys
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import dask
import dask.array as da
import numpy as np
import pytest
from dask.callbacks import Callback
from dask.system import CPU_COUNT

from dask_gmm import GaussianMixture, _kernels, _reader, io
from dask_gmm import _em
from dask_gmm._em import Blocks, _blocks_of, _data_of, _Folds, _piece_rows, _Tree, _tree, fill_rows

from .conftest import make_blobs, random_model


class TaskNames(Callback):
    """The keys of the tasks dask runs inside the ``with`` block."""

    def __init__(self):
        super().__init__()
        self.keys = []

    def _pretask(self, key, dsk, state):
        self.keys.append(str(key))


def pass_stats(blocks, models):
    """A pass's statistics, the keys of the tasks dask ran for it, and the names of the threads that ran its kernel."""
    threads = set()

    def kernel(X, models, sample_weight=None, row_offset=0):
        threads.add(threading.current_thread().name)
        return _kernels.e_step_stats(X, models, sample_weight=sample_weight, row_offset=row_offset)

    kernel.additive = True
    with TaskNames() as seen:
        stats = blocks.map_reduce(kernel, models)
    return stats, seen.keys, threads


def was_pulled(keys, threads, most=CPU_COUNT):
    """Whether a pass ran as pulled: no dask task, the calling thread and at most ``most - 1`` helpers.
    The calling thread may find every piece taken on a loaded machine (a helper ran all 21 pieces
    of 1,000 rows once while review scripts ran): that it pulls too is tested with slow pieces."""
    me = threading.current_thread().name
    return not keys and len(threads) <= most and all(t == me or t.startswith("dask_gmm-pull") for t in threads)


def as_bytes(stats):
    return [(s.nk.tobytes(), s.s1c.tobytes(), s.s2.tobytes(), float(s.objective), float(s.weight)) for s in stats]


def piece_probe(second):
    """(kernel, seen, ran): an E-step kernel that records ``(row_offset, rows)`` of each piece in
    ``seen``, and there too whether, while it ran the piece at row 0, another thread ran the piece
    at row ``second`` (``ran``): pulled a block at a time, the same thread would run it after."""
    seen, ran = [], threading.Event()

    def kernel(x, models, sample_weight=None, row_offset=0):
        seen.append((row_offset, len(x)))
        if row_offset == second:
            ran.set()
        elif row_offset == 0:
            seen.append(("second piece ran meanwhile", ran.wait(10)))
        return _kernels.e_step_stats(x, models, sample_weight=sample_weight, row_offset=row_offset)

    kernel.additive = True
    return kernel, seen, ran


def pieces_seen(seen):
    return sorted(p for p in seen if isinstance(p[0], int))


def pulled_then_per_block(blocks, models, want, n_blocks):
    """A pass's statistics pulled on 2 threads, then with one task per block (synchronous), checked
    to run the pieces ``want`` (``(row_offset, rows)``) each way, the block's second piece on the
    other thread while its first ran when pulled."""
    kernel, seen, second = piece_probe(want[1][0])
    with dask.config.set(num_workers=2), TaskNames() as tasks:
        pulled = blocks.map_reduce(kernel, models)
    assert ("second piece ran meanwhile", True) in seen
    assert not tasks.keys and pieces_seen(seen) == want
    seen.clear(), second.set()
    with dask.config.set(scheduler="synchronous"), TaskNames() as tasks:
        per_block = blocks.map_reduce(kernel, models)
    assert len([k for k in tasks.keys if "-chunk" in k]) == n_blocks and pieces_seen(seen) == want
    return pulled, per_block, kernel


@pytest.mark.parametrize("weighted", [False, True])
def test_pulled_pass_equals_one_task_per_block(weighted):
    X = make_blobs(n=21_000)
    rng = np.random.default_rng(3)
    models = [random_model(rng, ct, 3, 2)[0] for ct in ("full", "diag")]
    w = rng.uniform(0, 2, len(X)) if weighted else None
    Xd = da.from_array(X, chunks=(1000, 2))  # 21 blocks: more than threads, a tree of two levels
    blocks = Blocks(Xd, io.as_weights(w, Xd), split_every=4)

    pulled, keys, threads = pass_stats(blocks, models)
    assert was_pulled(keys, threads)
    with dask.config.set(scheduler="synchronous"):
        per_block, keys, _ = pass_stats(blocks, models)
    assert len([k for k in keys if "-chunk" in k]) == 21
    with ThreadPoolExecutor(2) as pool, dask.config.set(pool=pool):  # a pool of the user's: one task per block
        in_pool, keys, threads = pass_stats(blocks, models)
    assert len([k for k in keys if "-chunk" in k]) == 21 and not any(t.startswith("dask_gmm-pull") for t in threads)
    assert as_bytes(pulled) == as_bytes(per_block) == as_bytes(in_pool)
    # and the sum is right: the statistics of the whole array in one block
    (whole,) = _kernels.e_step_stats(X, models[:1], sample_weight=w)
    np.testing.assert_allclose(pulled[0].nk, whole.nk, rtol=1e-12)
    np.testing.assert_allclose(pulled[0].s2, whole.s2, rtol=1e-10)


@pytest.mark.parametrize("weighted, group", [(False, 1), (True, 1), (True, 2)])
def test_a_pass_over_a_store_is_pulled_a_chunk_at_a_time_with_the_bytes_of_one_task_per_block(
    tmp_path, monkeypatch, weighted, group
):
    """A pass over a Zarr store read directly is pulled a piece (a Zarr chunk, or a group of small
    ones) at a time, not a block (several chunks) at a time, so the threads end together; each
    block's pieces are combined in order, as its task combines them: the same bytes as one task
    per block."""
    import zarr

    monkeypatch.setattr(_reader, "GROUP_BYTES", group * 500 * 2 * 8)  # pieces of ``group`` chunks of 500 rows

    X = make_blobs(n=21_000)
    zarr.create_array(store=str(tmp_path / "x.zarr"), shape=X.shape, chunks=(500, 2), dtype=X.dtype)[:] = X
    Xd, rows = io.with_reader(str(tmp_path / "x.zarr"))
    rng = np.random.default_rng(3)
    w = rng.uniform(0, 2, len(X)) if weighted else None
    blocks = Blocks(Xd, io.as_weights(w, Xd), split_every=3, rows=rows)
    assert len(Xd.chunks[0]) >= 4 and max(Xd.chunks[0]) > 500  # blocks of several chunks
    models = [random_model(rng, ct, 3, 2)[0] for ct in ("full", "diag")]
    step, ends = 500 * group, np.cumsum(Xd.chunks[0])
    want = [(a, min(step, end - a)) for end, n in zip(ends, Xd.chunks[0]) for a in range(end - n, end, step)]
    assert len(want) > len(Xd.chunks[0])
    pulled, per_block, _ = pulled_then_per_block(blocks, models, want, len(Xd.chunks[0]))
    assert as_bytes(pulled) == as_bytes(per_block)
    (whole,) = _kernels.e_step_stats(X, models[:1], sample_weight=w)
    np.testing.assert_allclose(pulled[0].nk, whole.nk, rtol=1e-12)
    np.testing.assert_allclose(pulled[0].s2, whole.s2, rtol=1e-10)


@pytest.mark.parametrize("weighted", [False, True])
def test_in_memory_blocks_are_pulled_a_piece_at_a_time_with_the_bytes_of_one_task_per_block(monkeypatch, weighted):
    """An in-memory block is swept in pieces of whole sub-blocks (here 1000 rows), pulled one at a
    time, so a block's second piece runs on the other thread while its first runs; a block's task
    (synchronous, a user's pool) runs the same pieces in turn: the same bytes."""
    monkeypatch.setattr(_kernels, "SUB_BLOCK_ROWS", 500)
    monkeypatch.setattr(_em, "PIECE_BYTES", 1000 * 2 * 8)  # two sub-blocks of (500, 2) float64
    X = make_blobs(n=21_000)
    rng = np.random.default_rng(3)
    models = [random_model(rng, ct, 3, 2)[0] for ct in ("full", "diag")]
    w = rng.uniform(0, 2, len(X)) if weighted else None
    Xd = da.from_array(X, chunks=(4500, 2))  # 5 blocks (the last of 3000 rows), each 5 pieces (the last of 500 rows) or 3
    blocks = Blocks(Xd, io.as_weights(w, Xd), split_every=3)
    want = [(a, min(1000, end - a)) for end, n in zip(np.cumsum(Xd.chunks[0]), Xd.chunks[0]) for a in range(end - n, end, 1000)]
    assert len(want) == 23 and (4000, 500) in want and want[1][0] == 1000
    pulled, per_block, kernel = pulled_then_per_block(blocks, models, want, 5)
    with ThreadPoolExecutor(2) as pool, dask.config.set(pool=pool):
        in_pool = blocks.map_reduce(kernel, models)
    assert as_bytes(pulled) == as_bytes(per_block) == as_bytes(in_pool)
    (whole,) = _kernels.e_step_stats(X, models[:1], sample_weight=w)
    np.testing.assert_allclose(pulled[0].nk, whole.nk, rtol=1e-12)
    np.testing.assert_allclose(pulled[0].s2, whole.s2, rtol=1e-10)


def test_a_blocks_pieces_are_whole_sub_blocks_of_about_piece_bytes():
    unit = _kernels.SUB_BLOCK_ROWS
    for n, row_bytes in ((1, 16), (unit, 16), (2**20, 16), (2**20 + 7, 16), (10**6, 8), (131_072, 128), (32_768, 512),
                         (10**6, 10**6)):
        pieces = _piece_rows(n, row_bytes)
        assert [a for a, _ in pieces] == [0] + [z for _, z in pieces[:-1]] and pieces[-1][1] == n  # the block, in order
        sizes = [z - a for a, z in pieces]
        assert all(s % unit == 0 for s in sizes[:-1]) and 0 < sizes[-1] <= sizes[0]
        # about PIECE_BYTES, never under a sub-block: a call's fixed work grows with d
        assert sizes[0] == min(n, max(unit, _em.PIECE_BYTES // (unit * row_bytes) * unit))
    assert _piece_rows(0, 16) == [(0, 0)]
    assert len(_piece_rows(2**20, 16)) == 2 and len(_piece_rows(131_072, 128)) == 2  # 16 MiB blocks at d=2, d=16
    assert _piece_rows(32_768, 512) == [(0, 32_768)]  # d=64: whole


def test_folds_fold_each_blocks_pieces_in_order_whatever_order_and_thread_they_come_from():
    """_Folds gives each block the left fold of its pieces in order (combine's own bytes), whichever
    thread brings which piece when, and holds only the pieces that came before their turn."""
    rng = np.random.default_rng(5)
    counts = [1, 4, 7, 2]
    parts = [[rng.normal(size=3) * 10.0 ** rng.integers(-8, 8) for _ in range(c)] for c in counts]
    want = [_kernels.combine(*p).tobytes() for p in parts]
    items = [(b, p) for b, c in enumerate(counts) for p in range(c)]
    for order in (items, items[::-1], [items[i] for i in rng.permutation(len(items))]):
        done = {}
        folds = _Folds(counts, lambda b, total: done.setdefault(b, total))
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda bp: folds.add(*bp, parts[bp[0]][bp[1]]), order))
        assert {b: t.tobytes() for b, t in done.items()} == dict(enumerate(want))
        assert not any(folds.early) and folds.total == [None] * 4
    folds, most = _Folds([50], lambda b, total: None), 0
    for p in [1, 0] + list(range(2, 50)):  # the second piece before the first: held until the first is in
        folds.add(0, p, np.ones(1))
        most = max(most, len(folds.early[0]))
    assert most == 1 and folds.next == [50]


@pytest.mark.parametrize("scheduler", ["threads", "synchronous"])
def test_a_blocks_pieces_are_folded_as_they_come(monkeypatch, scheduler):
    """A block's pieces' statistics (K d^2 8 bytes each) are folded one at a time, pulled or in a
    block's task, not all held until its last: one block of 4000 rows in 40 pieces, d=120, K=2
    (230 KB each), held 11 MiB at the peak. Pulled by the calling thread alone (``num_workers=1``),
    so that the pieces come in order: two threads under load take them out of order, and the
    early ones wait for theirs (7.9 MiB once, with review scripts running); _Folds' holding of
    early pieces is tested above."""
    monkeypatch.setattr(_kernels, "SUB_BLOCK_ROWS", 100)
    monkeypatch.setattr(_em, "PIECE_BYTES", 100 * 120 * 8)
    X = np.random.default_rng(0).normal(size=(4000, 120))
    model = random_model(np.random.default_rng(1), "full", 2, 120)[0]
    blocks = Blocks(da.from_array(X, chunks=(4000, 120)))
    calls = []

    def kernel(x, models, sample_weight=None, row_offset=0):
        calls.append(row_offset)
        return _kernels.e_step_stats(x, models, sample_weight=sample_weight, row_offset=row_offset)

    kernel.additive = True
    with dask.config.set(scheduler=scheduler, num_workers=1):
        blocks.map_reduce(kernel, [model])  # kernels loaded
        calls.clear()
        tracemalloc.start()
        try:
            (stats,) = blocks.map_reduce(kernel, [model])
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert sorted(calls) == list(range(0, 4000, 100))  # the block in its 40 pieces
    # 4.4 MiB: 2.2-2.5 MiB seen in order; all held, 11 MiB
    assert peak < 20 * 2 * 120 * 120 * 8, peak / 2**20
    (whole,) = _kernels.e_step_stats(X, [model])
    np.testing.assert_allclose(stats.s2, whole.s2, rtol=1e-10)


@pytest.mark.parametrize("n, split_every", [(1, 2), (2, 2), (9, 8), (21, 4), (100, 3)])
def test_tree_fed_in_any_order_from_threads_makes_the_tree_of_a_pass(n, split_every):
    """_Tree combines each group as its last part arrives: the groups and order of _tree (the same
    bytes), whatever order the parts come in, and holding few parts at a time."""
    rng = np.random.default_rng(n)
    parts = [rng.normal(size=3) for _ in range(n)]
    combine = lambda *group: tuple(group)  # noqa: E731 (the shape of the tree, as nested tuples)
    want = _tree(parts, split_every, lambda level, j, group: combine(*group))
    for order in (range(n), range(n)[::-1], rng.permutation(n)):
        tree = _Tree(n, split_every, combine)
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda i: tree.add(i, parts[i]), order))
        assert repr(tree.root) == repr(want)
    tree, most = _Tree(n, split_every, combine), 0
    for i in range(n):  # in order, as pulled: a group's parts are let go when it is complete
        tree.add(i, parts[i])
        most = max(most, sum(len(h) for h in tree.held))
    assert most <= (split_every - 1) * len(tree.sizes)


def test_a_pulled_pass_holds_few_blocks_statistics():
    """Every block's statistics were held to the end of a pulled pass: K d^2 8 bytes each (more than
    a 16 MiB block of data at d=768, K=8), so memory grew with the data (a probe: 400 blocks of
    (10, 200), K=2, a fit held 283 MiB, against 16-20 MiB now at 50-400 blocks)."""
    X = np.random.default_rng(0).normal(size=(4000, 120))
    model = random_model(np.random.default_rng(1), "full", 2, 120)[0]
    blocks = Blocks(da.from_array(X, chunks=(10, 120)))  # 400 blocks, 230 KB of statistics each: 92 MB
    blocks.map_reduce(_kernels.e_step_stats, [model])  # kernels loaded
    tracemalloc.start()
    try:
        with dask.config.set(num_workers=2):  # each pulling thread holds a part of its own
            pulled, keys, threads = pass_stats(blocks, [model])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert was_pulled(keys, threads, most=2)
    assert peak < 64 * 2 * 120 * 120 * 8, peak / 2**20  # 6.4 MiB; holding all 400 parts, 102 MiB
    (whole,) = _kernels.e_step_stats(X, [model])
    np.testing.assert_allclose(pulled[0].s2, whole.s2, rtol=1e-10)


def _blas_threads(x, sample_weight=None, row_offset=0):
    """A kernel: the most threads a BLAS library of this process may start now, as an array of one."""
    import threadpoolctl

    return np.array([max(i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas")])


def test_blas_runs_on_one_thread_in_each_task_of_a_pass():
    """From about 100 features OpenBLAS started threads of its own in every task: 4 threads on 2
    cores, fits 1.6-2x slower than with one BLAS thread (d=100, K=16). Pulled or one task per
    block, on 2 threads, each block sees 1; after the pass, the default is back."""
    import threadpoolctl

    before = _blas_threads(None)[0]
    X = make_blobs(n=4000)
    blocks = Blocks(da.from_array(X, chunks=(1000, 2)))
    with dask.config.set(num_workers=2):
        assert blocks.map_reduce(_blas_threads)[0] == 4  # pulled: 4 blocks, 1 thread each
        with ThreadPoolExecutor(2) as pool, dask.config.set(pool=pool):  # one task per block
            assert blocks.map_reduce(_blas_threads)[0] == 4
        assert Blocks(da.from_array(X, chunks=(1000, 2)) * 1.0).map_reduce(_blas_threads)[0] == 4  # tasks behind
    with dask.config.set(scheduler="synchronous"):  # one thread: BLAS keeps its threads
        assert blocks.map_reduce(_blas_threads)[0] == 4 * before
    assert _blas_threads(None)[0] == before
    with threadpoolctl.threadpool_limits(1, user_api="blas"):  # and the user's limit stays
        with dask.config.set(num_workers=2):
            blocks.map_reduce(_blas_threads)
        assert _blas_threads(None)[0] == 1
    # passes overlapping in several threads of the user's, ending in either order: the default is back
    # after them (a limit counted across passes, set back by the last, left BLAS on one thread for good:
    # threadpoolctl lets only one thread change OpenBLAS's threads)
    def waiting(x, inside, release, sample_weight=None, row_offset=0):
        if row_offset == 0:
            inside.set()
            release.wait(timeout=30)
        return _blas_threads(x)

    slow = Blocks(da.from_array(X, chunks=(2000, 2)))  # two blocks: each pass waits inside its first
    for ends in ((0, 1), (1, 0)):
        events = [(threading.Event(), threading.Event()) for _ in range(2)]
        with dask.config.set(num_workers=2), ThreadPoolExecutor(2) as users:
            passes = []
            for inside, release in events:
                passes.append(users.submit(slow.map_reduce, waiting, inside, release))
                assert inside.wait(timeout=30)
            for i in ends:
                events[i][1].set()
                assert 2 <= passes[i].result()[0] <= 2 * before
        assert _blas_threads(None)[0] == before
    with dask.config.set(num_workers=2):  # and the main thread's passes are limited still
        assert blocks.map_reduce(_blas_threads)[0] == 4


def test_a_pass_in_another_thread_after_the_main_threads_passes_runs_on_one_blas_thread():
    """threadpoolctl 3.8 lets only the first thread that sets OpenBLAS's limit change it, until it
    leaves its last ``with`` of a limit. The passes set it and set it back without one, so the main
    thread kept control for good, and a fit in any other thread ran two BLAS threads in each of its
    two (d=100, K=16: 0.75-1.12 s a fit against 0.33-0.35 s)."""
    before = _blas_threads(None)[0]
    blocks = Blocks(da.from_array(make_blobs(n=4000), chunks=(1000, 2)))
    with dask.config.set(num_workers=2):
        assert blocks.map_reduce(_blas_threads)[0] == 4  # the main thread's pass first
        with ThreadPoolExecutor(1) as user:
            assert user.submit(blocks.map_reduce, _blas_threads).result()[0] == 4
    assert _blas_threads(None)[0] == before


def test_a_fits_m_steps_run_on_one_blas_thread():
    """A fit holds the limit from its first EM pass to its last: OpenBLAS's threads, woken by an M-step's
    products, kept the cores from the next pass (d=100, K=16: 0.39-0.44 s a fit against 0.33-0.35)."""
    from dask_gmm._em import lockstep

    before, seen = _blas_threads(None)[0], []
    blocks = Blocks(da.from_array(make_blobs(n=4000), chunks=(1000, 2)))
    model = random_model(np.random.default_rng(0), "full", 3, 2)[0]

    class Run:
        converged, n_iter = False, 0

    def step(active, models, stats):
        seen.append(_blas_threads(None)[0])
        for run in active:
            run.n_iter += 1

    with dask.config.set(num_workers=2):
        lockstep(blocks, [Run()], lambda run: model, step, max_iter=3)
    with dask.config.set(scheduler="synchronous"):  # one thread runs the kernels: BLAS keeps its threads
        lockstep(blocks, [Run()], lambda run: model, step, max_iter=1)
    assert seen == [1, 1, 1, before]
    assert _blas_threads(None)[0] == before


def _busy(seconds):
    """An additive kernel that takes ``seconds`` of CPU a block, and counts its rows."""

    def kernel(x, sample_weight=None, row_offset=0):
        began = time.thread_time()
        while time.thread_time() - began < seconds:
            pass
        return np.array([float(len(x))])

    kernel.additive = True
    return kernel


def _spy_threads(monkeypatch):
    """The number of threads that pull each pass, as a list that grows."""
    threads, pulled = [], _em._pulled
    monkeypatch.setattr(_em, "_pulled", lambda calls, n, sink: threads.append(n) or pulled(calls, n, sink))
    return threads


def test_a_small_pass_in_memory_runs_on_the_calling_thread_alone_after_its_first(monkeypatch):
    """Waking a helper and taking turns with it for the GIL cost more than it saved in passes of
    little work (a fit of 1,000 rows, d=2, K=3: 1.2-1.4 ms an iteration on two threads, 1.0 on one):
    a pass in memory whose calls took under SMALL_PASS_SECONDS of CPU the last time runs on the
    calling thread alone; one that took more keeps its threads."""
    X = make_blobs(n=8000)
    blocks = Blocks(da.from_array(X, chunks=(1000, 2)))  # 8 blocks
    threads = _spy_threads(monkeypatch)
    light, heavy = _busy(0.0), _busy(2 * _em.SMALL_PASS_SECONDS / 8)  # twice the limit over 8 blocks
    with dask.config.set(num_workers=2):
        for _ in range(3):
            assert blocks.map_reduce(light)[0] == blocks.map_reduce(heavy)[0] == len(X)
    assert blocks.pass_cpu[light, 2] < _em.SMALL_PASS_SECONDS <= blocks.pass_cpu[heavy, 2]
    assert threads == [2, 2] + [1, 2] * 2  # no CPU time seen at first


@pytest.mark.parametrize("store", [False, True])
def test_a_small_pass_on_one_thread_has_the_bytes_of_threads_but_not_from_a_store(tmp_path, monkeypatch, store):
    """A small pass in memory on the calling thread alone gives the bytes of threads and of one
    task per block; a pass over a Zarr store keeps its threads however small (its reads may wait on
    a disk or a network, which its CPU time does not count)."""
    X = make_blobs(n=8000)
    if store:
        import zarr

        zarr.create_array(store=str(tmp_path / "x.zarr"), shape=X.shape, chunks=(1000, 2), dtype=X.dtype)[:] = X
        Xd, rows = io.with_reader(str(tmp_path / "x.zarr"))
        blocks = Blocks(Xd, rows=rows)
    else:
        blocks = Blocks(da.from_array(X, chunks=(1000, 2)))  # 8 blocks
    threads = _spy_threads(monkeypatch)
    monkeypatch.setattr(_em, "SMALL_PASS_SECONDS", 60.0)  # every pass small
    models = [random_model(np.random.default_rng(0), ct, 3, 2)[0] for ct in ("full", "diag")]
    with dask.config.set(num_workers=2):
        passes = [as_bytes(blocks.map_reduce(_kernels.e_step_stats, models)) for _ in range(3)]
    with dask.config.set(scheduler="synchronous"):
        passes.append(as_bytes(blocks.map_reduce(_kernels.e_step_stats, models)))
    assert threads == ([2, 2, 2] if store else [2, 1, 1])
    assert passes[1:] == passes[:-1]


def test_blocks_with_tasks_behind_them_are_not_pulled():
    """A dask array computed from tasks keeps one task per block (pulling would hold every block in memory)."""
    X = make_blobs(n=4000)
    model = random_model(np.random.default_rng(0), "full", 3, 2)[0]
    blocks = Blocks(da.from_array(X, chunks=(1000, 2)) * 1.0)
    stats, keys, threads = pass_stats(blocks, [model])
    assert not was_pulled(keys, threads) and len([k for k in keys if "-chunk" in k]) == 4
    (whole,) = _kernels.e_step_stats(X, [model])
    np.testing.assert_allclose(stats[0].s2, whole.s2, rtol=1e-10)


def test_error_in_one_pulled_block_is_raised():
    X = make_blobs(n=8000)
    X[5123, 0] = np.nan
    model = random_model(np.random.default_rng(0), "full", 3, 2)[0]
    blocks = Blocks(da.from_array(X, chunks=(1000, 2)))
    with pytest.raises(ValueError, match="rows 5000-5999.*first bad row: 5123"):
        blocks.map_reduce(_kernels.e_step_stats, [model])


@pytest.mark.parametrize("where", ["calling thread", "helper"])
def test_an_error_in_either_pulling_thread_is_raised_once_the_other_has_stopped(where):
    """The calling thread pulls beside dask_gmm's helper threads: an error in a block of either stops
    the other after its current block, and is raised only then (no kernel still running)."""
    X = make_blobs(n=8000)
    blocks = Blocks(da.from_array(X, chunks=(500, 2)))  # 16 blocks
    me, lock, running, ran = threading.current_thread().name, threading.Lock(), [0], []
    helping = threading.Event()  # the helper has taken a block

    def kernel(x, sample_weight=None, row_offset=0):
        mine = threading.current_thread().name == me
        if not mine:
            helping.set()
        elif where == "helper":
            helping.wait(10)  # so that the helper gets a block to fail on
        with lock:
            running[0] += 1
        try:
            time.sleep(0.01)
            ran.append(row_offset)
            if mine == (where == "calling thread"):
                raise ValueError(f"bad block at row {row_offset}")
            return np.ones(1)
        finally:
            with lock:
                running[0] -= 1

    with dask.config.set(num_workers=2), pytest.raises(ValueError, match="bad block at row"):
        blocks.map_reduce(kernel)
    assert running[0] == 0 and len(ran) < 16  # the other thread stopped early, and has ended


def test_pulled_passes_from_several_threads_at_once_give_their_own_bytes():
    """Passes started from several threads at once share the helper threads (a helper that has not
    started when its pass is done is cancelled): each gets the bytes it gets alone."""
    X = make_blobs(n=20_000)
    blocks = Blocks(da.from_array(X, chunks=(1000, 2)))
    models = [random_model(np.random.default_rng(i), "full", 3, 2)[0] for i in range(4)]
    alone = [as_bytes(blocks.map_reduce(_kernels.e_step_stats, [m])) for m in models]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda m: as_bytes(blocks.map_reduce(_kernels.e_step_stats, [m])), models * 3))
    assert together == alone * 3


def test_fill_rows_pulled_equals_synchronous_and_pool_tasks(monkeypatch):
    """Per-row outputs of in-memory blocks, swept in the pieces of a pass (here 400 rows) and written
    in place: the bytes of the kernel over the whole array, pulled, synchronous or as tasks."""
    monkeypatch.setattr(_kernels, "SUB_BLOCK_ROWS", 400)
    monkeypatch.setattr(_em, "PIECE_BYTES", 400 * 2 * 8)
    X = make_blobs(n=9000)
    model = random_model(np.random.default_rng(1), "full", 3, 2)[0]
    blocks = [X[a : a + 1000] for a in range(0, len(X), 1000)]  # 9 blocks, each 3 pieces: 400, 400, 200
    threads, seen = set(), []

    def proba(x, model, row_offset=0, out=None):
        threads.add(threading.current_thread().name)
        seen.append((row_offset, len(x)))
        return _kernels.predict_proba(x, model, row_offset=row_offset, out=out)

    want = sorted((a + p, min(400, 1000 - p)) for a in range(0, 9000, 1000) for p in (0, 400, 800))
    with TaskNames() as tasks:
        pulled = fill_rows(blocks, proba, np.empty((len(X), 3)), model)
    assert was_pulled(tasks.keys, threads) and sorted(seen) == want
    threads.clear()
    with dask.config.set(scheduler="synchronous"), TaskNames() as tasks:
        sync = fill_rows(blocks, proba, np.empty((len(X), 3)), model)
    assert not tasks.keys and threads == {threading.current_thread().name}
    with ThreadPoolExecutor(2) as pool, dask.config.set(pool=pool), TaskNames() as tasks:  # a pool of the user's
        in_pool = fill_rows(blocks, _kernels.predict_proba, np.empty((len(X), 3)), model)
    assert len(tasks.keys) == len(want)
    monkeypatch.undo()
    assert pulled.tobytes() == sync.tobytes() == in_pool.tobytes() == _kernels.predict_proba(X, model).tobytes()


def test_a_misaligned_block_is_taken_as_an_aligned_copy():
    """distributed can hand a worker its scattered data at an odd address; NumPy's sum of such an
    array can differ in the last bit, so a pass takes an aligned copy (an aligned block as it is)."""
    w = np.random.default_rng(0).uniform(0, 2, 300_000)
    raw = np.empty(w.nbytes + 8, np.uint8)
    odd = np.ndarray(w.shape, w.dtype, buffer=raw, offset=1)
    odd[:] = w
    assert not odd.flags.aligned
    got = io.declared(odd, w.shape, 0, "sample_weight")
    assert got.flags.aligned and got.tobytes() == w.tobytes()
    assert float(got.sum()).hex() == float(w.sum()).hex()
    assert io.declared(w, w.shape, 0) is w


def test_a_block_scattered_to_a_cluster_arrives_aligned():
    """distributed pickles a scattered array with its bytes out of band, and a worker's frames may
    lie at any address: wrapped in io.Aligned, it unpickles as an aligned array, copied once on
    arrival rather than in every pass; sent in-process without pickling, the pass unwraps it."""
    import pickle

    w = np.random.default_rng(0).uniform(0, 2, 100_000)

    def through_misaligned_frames(obj):
        frames = []
        head = pickle.dumps(obj, protocol=5, buffer_callback=frames.append)
        moved = []
        for f in frames:
            raw = np.empty(f.raw().nbytes + 8, np.uint8)
            raw[1 : 1 + f.raw().nbytes] = np.frombuffer(f.raw(), np.uint8)
            moved.append(raw[1 : 1 + f.raw().nbytes].data)
        return pickle.loads(head, buffers=moved)

    assert not through_misaligned_frames(w).flags.aligned  # the premise: a bare array arrives misaligned
    got = through_misaligned_frames(io.Aligned(w))
    assert isinstance(got, np.ndarray) and got.flags.aligned and got.tobytes() == w.tobytes()
    assert io.declared(io.Aligned(w), w.shape, 0) is w
    assert sys.getsizeof(io.Aligned(w)) > w.nbytes  # an in-process cluster's workers hold it as it is


def test_blocks_of_in_memory_data_are_views_in_order_as_dask_makes_them():
    """In-memory blocks are taken from the graph as they are (no dask call), and are the same
    rows, in the same order, as those of the graph dask optimises (a dask array of tasks)."""
    X = make_blobs(n=10_000)
    for Xd in (io.as_dask_array(X), io.as_weights(X[:, 0].copy(), io.as_dask_array(X))):
        graph, (keys,) = _blocks_of(Xd)
        data = _data_of(graph, keys)
        assert len(keys) == Xd.numblocks[0] > 1
        assert all(isinstance(data[k], np.ndarray) for k in keys)
        whole = np.concatenate([data[k] for k in keys])
        np.testing.assert_array_equal(whole, Xd.compute())
    graph, (keys,) = _blocks_of(io.as_dask_array(X))
    data = _data_of(graph, keys)
    assert all(np.shares_memory(b, X) for b in data.values())  # views, not copies
    tasks = da.from_array(X, chunks=(3000, 2)) + 0.0  # blocks that are tasks: optimised, run by dask
    graph, (keys,) = _blocks_of(tasks)
    assert _data_of(graph, keys) is None and len(keys) == 4
    np.testing.assert_array_equal(np.concatenate(dask.get(graph, keys)), X)


def _fit_in_child(X, queue):
    from dask_gmm import GaussianMixture

    queue.put(GaussianMixture(3, random_state=0).fit(X).means_)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_fits_after_its_parent_did():
    """A helper cancelled before it started counts as done only when a pool thread takes it off the
    queue: a pass waited for that, and in a child forked after a fit (multiprocessing's fork start
    method), whose copy of the pool has no threads, it waited forever. Nor does a pass wait on a
    helper pool busy with other work. (scikit-learn's KMeans, in the k-means start, hung there
    too, in GNU OpenMP: it now runs on one OpenMP thread.)"""
    import multiprocessing

    X = make_blobs(n=20_000)
    expected = GaussianMixture(3, random_state=0).fit(X).means_  # the parent's pool is made
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=_fit_in_child, args=(X, results))
    child.start()
    child.join(120)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0, "the child's fit did not end"
    np.testing.assert_array_equal(results.get(timeout=10), expected)
    from dask_gmm._em import _pulled, _start_helpers

    release = threading.Event()
    (busy,) = _start_helpers(1, 1, lambda: release.wait(60))  # the one helper thread is held by other work
    ran = []
    _pulled([lambda: 1] * 4, 2, lambda i, v: ran.append(i))  # the calling thread runs them all, and returns
    assert sorted(ran) == [0, 1, 2, 3] and not busy.done()
    release.set()
    busy.result()


def _blas_threads_in_child(queue):
    queue.put(int(_blas_threads(None)[0]))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_child_forked_while_a_fit_in_another_thread_holds_the_blas_limit_has_its_own():
    """A process forked (multiprocessing's fork start method) while a fit in another thread held the
    one-BLAS-thread limit kept that limit for good: no fit runs in the child to give it back (a review)."""
    import multiprocessing

    before, inside, release = _blas_threads(None)[0], threading.Event(), threading.Event()

    def fit_holding_the_limit():
        with _em._one_blas_thread(2):
            inside.set()
            release.wait(60)

    holder = threading.Thread(target=fit_holding_the_limit)
    holder.start()
    try:
        assert inside.wait(30) and _blas_threads(None)[0] == 1
        ctx = multiprocessing.get_context("fork")
        results = ctx.Queue()
        child = ctx.Process(target=_blas_threads_in_child, args=(results,))
        child.start()
        child.join(60)
        assert child.exitcode == 0 and results.get(timeout=10) == before
    finally:
        release.set()
        holder.join(60)
    assert _blas_threads(None)[0] == before


def test_one_pool_of_pulling_threads_whatever_the_numbers_of_threads_asked():
    """A pool was made and kept for each number of threads a pass asked for: after passes on 2, 4, 8
    and 3 threads, 1 + 3 + 7 + 2 idle threads, each with its reused buffers (a review: 100 MiB). One
    pool now, replaced by a larger one when more are asked for: at most 7 left."""
    X = make_blobs(n=8000)
    blocks = Blocks(da.from_array(X, chunks=(1000, 2)))
    for n in (2, 4, 8, 3):
        with dask.config.set(num_workers=n):
            assert blocks.map_reduce(_blas_threads).shape == (1,)
    pulling = lambda: [t for t in threading.enumerate() if t.name.startswith("dask_gmm-pull")]  # noqa: E731
    for _ in range(100):  # the replaced pools' threads end once idle
        if len(pulling()) <= 7:
            break
        time.sleep(0.05)
    assert 1 <= len(pulling()) <= 7, [t.name for t in pulling()]


def test_a_ctrl_c_while_a_pass_waits_to_give_back_the_blas_limit_gives_it_back(ctrl_c_delivered):
    """A pass gives back its BLAS limit only while no KMeans runs; a Ctrl-C while it waited for one
    had left BLAS on one thread, and the flag that a pass holds it set, for good (a review)."""
    import _thread

    before = _blas_threads(None)[0]
    inside = threading.Event()

    def kmeans():  # another fit's KMeans, still running when the pass ends
        with _em.kmeans_section():
            inside.set()
            time.sleep(1.0)

    other = threading.Thread(target=kmeans)
    with pytest.raises(KeyboardInterrupt):
        with _em._one_blas_thread(2):
            assert _blas_threads(None)[0] == 1
            other.start()
            assert inside.wait(timeout=30)
            threading.Timer(0.3, _thread.interrupt_main).start()  # as the pass waits to give it back
        time.sleep(5)  # not reached: the interrupt lands in the wait
    other.join()
    assert _blas_threads(None)[0] == before and not _em._BLAS["busy"]
    with _em._one_blas_thread(2):  # and the next pass takes it again
        assert _blas_threads(None)[0] == 1 and _em._BLAS["busy"]
    assert _blas_threads(None)[0] == before
