"""The EM driver over dask: map a kernel over the row blocks, tree-reduce, M-step.

Each EM iteration is one graph, handed to the active dask scheduler (threads,
a distributed Client, ...) in one call: it reads every block once, evaluates
every active run on it (restarts advance in lockstep), and tree-reduces the
small statistics (an iteration whose means jump too far for its centred moments
makes one more pass, centred on the new means: :func:`recentred`). Only arrays of size about K·d² travel, and
the parameters are literals inside the graph, so a lost worker loses nothing
that cannot be recomputed. Blocks already in memory (or read directly from a
Zarr store) under dask's threaded scheduler skip the graph: as many threads of
this process as dask's pool has pull them from a queue (:func:`_pulled`), and
the same reduction tree combines them (the same bytes).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import queue
import re
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import dask
import dask.array as da
import dask.threaded
import numpy as np
from dask.base import get_scheduler
from dask.core import flatten, istask
from dask.blockwise import fuse_roots, optimize_blockwise
from dask.highlevelgraph import HighLevelGraph
from dask.system import CPU_COUNT

from . import _cluster, _kernels, io
from .io import declared
from ._covariance import MAX_CENTRING_LOSS, centring_loss, estimate, m_step

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def naming_candidate(n_components, covariance_type, several):
    """Name the candidate (``n_components``, ``covariance_type``) in a ValueError raised inside, when
    runs of ``several`` candidates advance together (``select_model``): the M-step's refusals say
    what to change, not of which candidate."""
    try:
        yield
    except ValueError as exc:
        if not several:
            raise
        raise ValueError(f"Candidate n_components={n_components}, covariance_type={covariance_type!r}: {exc} "
                         "Or leave this candidate out.") from exc


def _on_rows(rows, start, stop, sizes, kernel, *args, sample_weight=None, row_offset=0, **kwargs):
    """``kernel`` on rows [start, stop) of a :class:`dask_gmm._reader.ZarrRows`, whose chunk files
    are of ``sizes`` (:meth:`~dask_gmm._reader.ZarrRows.sizes`): a task's body.

    An additive kernel sees one Zarr chunk (or one group of small chunks) at a time,
    straight after its decode (still in cache), and the pieces are combined; any
    other kernel sees the rows read into one array. ``row_offset`` equals ``start``.
    """
    if not _kernels.is_additive(kernel, args):
        return kernel(rows.read(start, stop, sizes), *args, sample_weight=sample_weight, row_offset=row_offset, **kwargs)
    return _kernels.folded(call() for call in _piece_calls(rows, start, stop, sizes, kernel, args, sample_weight, kwargs))


def _piece_calls(rows, start, stop, sizes, kernel, args, sample_weight, kwargs):
    """One call of :func:`_on_piece` for each piece of rows [start, stop) of a block (its chunk files'
    ``sizes``, its weights ``sample_weight``), the first with the block's prefetch hint (the block
    and the next): a block's task runs them in turn (:func:`_on_rows`), a pulled pass hands them to
    its threads (:meth:`Blocks._pulled_pieces`)."""
    calls = []
    for p, (lo, hi, piece_sizes) in enumerate(rows.piece_ranges(start, stop, sizes)):
        w = None if sample_weight is None else sample_weight[lo - start : hi - start]
        ahead = (start, stop + (stop - start)) if p == 0 else None
        calls.append(functools.partial(_on_piece, rows, lo, hi, piece_sizes, ahead, kernel, args, w, kwargs))
    return calls


def _on_piece(rows, lo, hi, sizes, ahead, kernel, args, sample_weight, kwargs):
    """``kernel`` on rows [lo, hi) of a :class:`dask_gmm._reader.ZarrRows`, one piece of
    :meth:`~dask_gmm._reader.ZarrRows.piece_ranges` (its chunk files of ``sizes``), after a prefetch of
    rows ``ahead`` (``(start, stop)``, or None), as a block's task makes (:func:`_on_rows`)."""
    if ahead is not None:
        rows.prefetch(*ahead)
    ((first, x),) = rows.pieces(lo, hi, sizes, prefetch=False)
    return kernel(x, *args, sample_weight=sample_weight, row_offset=first, **kwargs)


def _block_task(kernel, args, kwargs, shape, w, *x):
    """``kernel(*x, *args, sample_weight=w, **kwargs)`` on the blocks ``x`` (rows) and ``w``
    (weights), checked against their ``shape`` (:func:`declared`). Bound with
    ``functools.partial``, the first element of a task whose graph inputs are the blocks: a
    partial keeps ``args`` opaque to dask, which would take a tuple starting with a callable
    for a task."""
    first = kwargs.get("row_offset", 0)
    x = [declared(b, shape, first) for b in x]
    w = None if w is None else declared(w, shape[:1], first, "sample_weight")
    if len(x) == 1 and _kernels.is_additive(kernel, args):  # the pieces a pulled pass makes, in turn
        return _kernels.folded(call() for call in _slice_calls(x[0], first, kernel, args, w, kwargs))
    return kernel(*x, *args, sample_weight=w, **kwargs)


#: An additive kernel sweeps an in-memory block in pieces of about this many bytes
#: (:func:`_piece_rows`), one call each: a pulled pass hands them to its threads one at a time.
PIECE_BYTES = 8 * 2**20


def _piece_rows(n, row_bytes):
    """``[(a, z)]``: the rows [a, z) of each piece of an in-memory block of ``n`` rows of ``row_bytes``
    bytes: whole multiples of ``_kernels.SUB_BLOCK_ROWS`` rows, about :data:`PIECE_BYTES`, the last
    fewer. Fixed by the block's shape and dtype alone, so every scheduler cuts a block alike and a
    pass gives the same bytes on each (:func:`_block_task`, :meth:`Blocks._pulled_pieces`).

    The floor of a sub-block's rows (65,536) is for a call's fixed work, which grows with d: about
    60 ms a call at d=768, K=8, where pieces of 8 MiB made fits 8-10 % slower. From d=32 (float64)
    a 16 MiB block is one piece."""
    unit = _kernels.SUB_BLOCK_ROWS
    step = unit * max(1, PIECE_BYTES // (unit * max(1, row_bytes)))
    return [(a, min(n, a + step)) for a in range(0, n, step)] or [(0, 0)]


def _slice_calls(x, first, kernel, args, sample_weight, kwargs):
    """One call of :func:`_on_slice` for each piece (:func:`_piece_rows`) of the in-memory block ``x``
    of rows ``first`` on and its weights ``sample_weight``: a block's task runs them in turn
    (:func:`_block_task`), a pulled pass hands them to its threads (:meth:`Blocks._pulled_pieces`)."""
    return [
        functools.partial(_on_slice, x[a:z], first + a, kernel, args, None if sample_weight is None else sample_weight[a:z], kwargs)
        for a, z in _pieces_of(x)
    ]


def _pieces_of(x):
    """:func:`_piece_rows` of the in-memory block ``x`` of shape (n, ...)."""
    return _piece_rows(x.shape[0], x.dtype.itemsize * math.prod(x.shape[1:]))


def _on_slice(x, first, kernel, args, sample_weight, kwargs):
    """``kernel`` on the rows ``x`` (views of a block), the first of which is row ``first``."""
    return kernel(x, *args, sample_weight=sample_weight, **dict(kwargs, row_offset=first))


def numpy_blocks(arr):
    """The blocks along the first axis of the dask array ``arr`` (one column block) when its graph
    holds them as NumPy arrays (in-memory data, :func:`dask_gmm.io.as_dask_array`), else None."""
    graph = arr.__dask_graph__()
    blocks = [graph.get(k) for k in flatten(arr.__dask_keys__())]
    return blocks if all(isinstance(b, np.ndarray) for b in blocks) else None


def _take_rows(x, r, shape, first):
    """Rows ``r`` of the block ``x`` of rows ``first`` on, checked as the passes check it (:func:`declared`)."""
    return np.asarray(declared(x, shape, first))[r]


def _blocks_of(*arrays):
    """(graph, [keys, ...]) of dask arrays' blocks along their first axis (one chunk across the
    others), each array's graph optimised once, the keys of each array's blocks.

    Arrays that share tasks (weights made from X, ``abs(X[:, 0])``, ``X.sum(axis=1)``) are optimised
    as one graph for all their keys, without dask's low-level fusion: optimised apart (and by
    ``dask.optimize``, which optimises each array alone), X's tasks were copied into the weights',
    and each of X's chunks was computed twice a pass (reviews); unoptimised, a chain of 8
    elementwise steps made a fit 1.5x slower (another). Blocks held in the graph as NumPy arrays
    (:func:`numpy_blocks`) are taken as they are: there is nothing to optimise, and optimising
    cost 0.25 ms a call."""
    keys = [list(flatten(arr.__dask_keys__())) for arr in arrays]
    raw = [arr.__dask_graph__() for arr in arrays]
    if len(arrays) > 1 and not set(raw[0].layers).isdisjoint(set().union(*(g.layers for g in raw[1:]))):
        every = [k for ks in keys for k in ks]  # one graph optimised for all the keys (dask.optimize
        graph = dict(_optimized_unfused(HighLevelGraph.merge(*raw), every))  # works array by array)
        if all(k in graph for k in every):
            return graph, keys
        return dict(HighLevelGraph.merge(*raw).cull(set(every))), keys  # persisted on a cluster
    graph = {}
    for arr, ks, g in zip(arrays, keys, raw):
        held = numpy_blocks(arr)
        if held is not None:
            graph.update(zip(ks, held))
            continue
        mine = dict(arr.to_delayed().ravel()[0].__dask_graph__())
        graph.update(mine if all(k in mine for k in ks) else g)  # persisted on a cluster: optimising dropped its futures
    return graph, keys


def _optimized_unfused(graph, keys):
    """The high-level ``graph`` optimised for ``keys`` as dask.array's ``optimize`` does it, less its
    low-level fusion (which copies X's tasks into the weights'): the steps it takes when the config
    ``optimization.fuse.active`` is False, without setting that config, which is the process's: a
    pass that set it in one thread while another did left it False for good (a review)."""
    graph = optimize_blockwise(graph, keys=keys)
    return fuse_roots(graph, keys=keys).cull(set(keys))


def scheduler():
    """The scheduler ``dask.compute`` would use now (config, a default Client, else threads)."""
    return get_scheduler() or dask.threaded.get


def client_get():
    """The ``get`` of the distributed Client that dask would compute on now, else None (no Client,
    or a configuration that asks for one where there is none: said where the fit first computes).
    Taken as a fit begins, for :class:`Blocks`' ``began_on``."""
    try:
        get = get_scheduler()
    except RuntimeError:  # "Requested dask.distributed scheduler but no Client active"
        return None
    return get if _cluster.is_client(getattr(get, "__self__", None)) else None


def _data_of(graph, keys):
    """{key: value} of a graph that holds only data (no task to run, like in-memory blocks), else None.

    Futures (an array persisted on a distributed cluster: its blocks are held by the workers) are
    not data here either: the scheduler that holds them passes them to the tasks."""
    if all(isinstance(v, np.ndarray) for v in graph.values()):  # no dask call (0.2 ms)
        return {k: graph[k] for k in keys}
    if any(istask(v) or _is_future(v) for v in graph.values()):
        return None
    return dict(zip(keys, dask.get(graph, list(keys)))) if keys else {}


def _is_future(v):
    distributed = sys.modules.get("distributed")  # not imported: no Client, so no futures
    return distributed is not None and isinstance(v, distributed.Future)


def local_threads(scheduler):
    """The threads that run kernels in this process at once under ``scheduler``: those of dask's
    threaded scheduler (``num_workers``, else the cores), else 1."""
    return (dask.config.get("num_workers", None) or CPU_COUNT) if scheduler is dask.threaded.get else 1


def _pull_threads(scheduler, data):
    """How many threads pull a pass's blocks (see :func:`_pulled`): the threads of dask's threaded
    scheduler when ``scheduler`` is that one with its own pool and ``data`` holds the blocks'
    inputs (:func:`_data_of`), else 0 (one graph task per block)."""
    if data is None or scheduler is not dask.threaded.get or dask.config.get("pool", None) is not None:
        return 0
    return local_threads(scheduler)


#: threadpoolctl's controller, made at the first pass (25 ms); whether a pass or fit holds the BLAS limit,
#: and that limit (an ExitStack) and the thread holding it (:func:`_one_blas_thread`).
_BLAS = {"controller": None, "busy": False, "limit": None, "holder": None}
_BLAS_LOCK = threading.Lock()
#: Held while scikit-learn's KMeans runs (:func:`kmeans_section`), and by a pass while it takes or
#: gives back the BLAS limit.
_KMEANS_LOCK = threading.Lock()


def threadpool_controller():
    """threadpoolctl's controller of this process's BLAS and OpenMP pools, made once (25 ms)."""
    if _BLAS["controller"] is None:
        import threadpoolctl

        _BLAS["controller"] = threadpoolctl.ThreadpoolController()
    return _BLAS["controller"]


@contextlib.contextmanager
def _one_blas_thread(threads):
    """BLAS limited to one thread while ``threads`` (> 1) threads of this process run kernels.

    From about 100 features the kernels' products are large enough for OpenBLAS to
    start its own threads, in every task: 4 threads on 2 cores. A fit of 10,000
    rows, d=100, K=16, 3 iterations took 1.21-1.51 s with OpenBLAS's default, 0.62-0.65
    s with one BLAS thread (best of 3, 2 cores). Distributed's workers already start
    with one BLAS thread. The limit costs 0.02-0.03 ms a pass. A fit holds it from its
    first EM pass to its last (:func:`lockstep`), M-steps and ``on_iteration`` included:
    OpenBLAS's threads, woken by an M-step's products, kept the cores from the next pass's
    kernels. (The start's passes take it one at a time.)

    OpenBLAS's limit is the process's. threadpoolctl (3.8 on) lets only one thread change it,
    the first to set one, until that thread leaves its last ``with`` of a limit: the limit is
    entered as one (a limit set and set back without it had left the main thread in control for
    good, and a fit in any other thread, a web server's, silently on two BLAS threads in each of
    its two: 0.75-1.12 s against 0.33-0.35 s, d=100 as above). So one fit or pass at a time holds it, and sets
    it back when it ends; a pass that overlaps it (a fit in another thread of the user's) changes
    nothing, and runs on without the limit once the holder has ended. (Each pass setting its
    own left BLAS on one thread for good, when overlapping passes ended in another order.)
    scikit-learn's KMeans sets a limit of its own and sets back what it found: the holder takes
    and gives back the limit only while no KMeans of this package runs (:func:`kmeans_section`),
    or that KMeans would set back the one thread it found after the holder had ended (a review:
    fits in two threads at once left BLAS on one thread for good, 1 to 9 rounds in).
    """
    mine, limit = False, contextlib.ExitStack()
    try:  # from before the flag is set: a Ctrl-C just after had left it set for good
        with _BLAS_LOCK:
            mine = threads > 1 and not _BLAS["busy"]
            _BLAS["busy"] |= mine
        if mine:
            with _KMEANS_LOCK:
                limit.enter_context(threadpool_controller().limit(limits=1, user_api="blas"))
                _BLAS.update(limit=limit, holder=threading.get_ident())  # for a child forked meanwhile
        yield
    finally:
        if mine:
            try:
                with _KMEANS_LOCK:
                    limit.close()
            finally:
                limit.close()  # a Ctrl-C while it waited for a KMeans: given back all the same (closed once)
                with _BLAS_LOCK:
                    _BLAS.update(busy=False, limit=None)


def kmeans_section():
    """Where scikit-learn's KMeans runs: one at a time in the process, and never while a pass takes
    or gives back the BLAS limit (:func:`_one_blas_thread`). Two at once had left OpenBLAS on one
    thread (each sets back the limit it found, which may be the other's), and the warnings filters
    changed (scikit-learn's ``check_array`` uses ``warnings.catch_warnings``, which is not
    thread-safe). A KMeans of the candidates takes milliseconds."""
    return _KMEANS_LOCK


def _pull(todo, calls, sink, failed):
    """``sink(i, calls[i]())`` for the indices taken from the queue ``todo`` until it is empty: the
    body of a pulling thread; returns the CPU seconds its calls took (``time.thread_time``: not the
    time waiting for the GIL). After an error the queue is emptied, so that the other pulling
    threads stop after their current block; an error of call ``i`` (an Exception) is kept as
    ``failed[i]``, any other (a Ctrl-C, between two blocks too) raised."""
    i, cpu = None, 0.0
    try:
        while True:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return cpu
            began = time.thread_time()
            value = calls[i]()
            cpu += time.thread_time() - began
            sink(i, value)
    except BaseException as exc:
        try:
            while True:
                todo.get_nowait()
        except queue.Empty:
            pass
        if not isinstance(exc, Exception):
            raise
        failed[i] = exc
        return cpu


def _start_helpers(threads, n, fn):
    """``n`` futures of ``fn()`` on the pool of at least ``threads`` threads that pull beside the
    calling thread (:func:`_pulled`): one pool for the process, replaced by a larger one when more
    threads are asked for (the smaller one's threads end once idle, and their buffers with them). A
    pool per number of threads had kept every one, and each thread's buffers (a review: 11 idle
    threads holding 100 MiB after fits with ``num_workers`` None, 4 and 8)."""
    with _HELPERS_LOCK:  # submitted under the lock: a pool replaced meanwhile takes no new work
        if _HELPERS.get("threads", 0) < threads:
            if "pool" in _HELPERS:
                _HELPERS["pool"].shutdown(wait=False)
            _HELPERS.update(pool=ThreadPoolExecutor(threads, thread_name_prefix="dask_gmm-pull"), threads=threads)
        return [_HELPERS["pool"].submit(fn) for _ in range(n)]


_HELPERS = {}
_HELPERS_LOCK = threading.Lock()


def _after_fork():
    """In a forked child: the parent's pools have no threads there (a pass waited on them forever),
    and a lock or BLAS limit its other threads held stays held: the BLAS limit of a fit in another
    thread is given back (a review: the child of a fork during a fit kept one BLAS thread for good).
    A fit in the forking thread itself goes on in the child, and gives its limit back as it ends."""
    global _HELPERS_LOCK, _BLAS_LOCK, _KMEANS_LOCK
    _HELPERS.clear()
    _HELPERS_LOCK, _BLAS_LOCK, _KMEANS_LOCK = threading.Lock(), threading.Lock(), threading.Lock()
    held = _BLAS["limit"] if _BLAS["busy"] and _BLAS["holder"] != threading.get_ident() else None
    _BLAS.update(busy=False, limit=None)
    if held is not None:
        held.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _pulled(calls, threads, sink):
    """``sink(i, calls[i]())`` for every call, on ``threads`` threads that each take the next call
    from a queue when they finish one: the calling thread and ``threads - 1`` helpers
    (:func:`_start_helpers`). ``sink`` runs in the thread that made the result, and must be thread-safe.
    Returns the CPU seconds the calls took in all (:func:`_pull`).

    For blocks already in memory on dask's threaded scheduler (``num_workers`` threads, else
    the cores: :func:`_pull_threads`). Dask hands a worker thread its next task through the
    scheduler's own thread, and with every core busy in kernels that hand-off waits for the
    OS: in a pass of 4 blocks on 2 threads (d=16) a thread sat 0.8-1.4 ms between its two
    blocks, against 0.12-0.17 ms pulled. Pulling first ran as one dask task per thread; with
    the calling thread pulling too and no dask call, a no-op pass took 0.37-0.41 against
    0.54-0.56 ms, and fits (10 iterations, in turns) ran 1.01-1.06x faster at d=2, K=3 in 4
    processes and 1.05-1.23x at d=16, K=8 in 6 of 7 (0.86x in the seventh). A helper not
    yet started when the calling thread has run out of calls is cancelled; an error stops
    the others after their current call, and is raised once every started helper has ended:
    the error of the first call that failed, every call before it having ended by then (the
    first to fail in time had been raised, so a NaN row was named at random among the bad
    blocks: a review).
    """
    todo, failed = queue.SimpleQueue(), {}
    for i in range(len(calls)):
        todo.put(i)
    pull = functools.partial(_pull, todo, calls, sink, failed)
    n = min(threads, len(calls))
    if n <= 1:  # no helper: no BLAS limit to take, nothing to wait for
        cpu = pull()
    else:
        with _one_blas_thread(n):
            helpers = _start_helpers(threads - 1, n - 1, pull)
            try:
                cpu = pull()
            finally:
                started = [f for f in helpers if not f.cancel()]  # a cancelled one ends only when a pool thread takes it
                wait(started)
            cpu += sum(f.result() for f in started)
    if failed:
        raise failed[min(failed)]
    return cpu


class _Tree:
    """:func:`_tree`'s reduction of ``n`` parts with ``combine(*group)``, fed the parts in any order
    and from any thread (:meth:`add`): a group is combined as soon as its last part arrives, in the
    thread that brought it, so only the parts of unfinished groups are held. The same groups in
    the same order as :func:`_tree`, so the same bytes. (The pulled passes held every block's
    statistics to the end of the pass: K d^2 8 bytes a block, 38 MB at d=768, K=8, more than its
    16 MiB of data, so a store larger than memory could not be fitted.)"""

    def __init__(self, n, split_every, combine):
        self.sizes = [n]  # parts at each level
        while self.sizes[-1] > 1:
            self.sizes.append(-(-self.sizes[-1] // split_every))
        self.split_every, self.combine = split_every, combine
        self.held = [{} for _ in self.sizes]
        self.lock = threading.Lock()
        self.root = None

    def add(self, j, value):
        """Part ``j`` of the first level; combines every group it completes, up to the root."""
        level = 0
        while level < len(self.sizes) - 1:
            g = j // self.split_every
            members = range(g * self.split_every, min((g + 1) * self.split_every, self.sizes[level]))
            with self.lock:
                held = self.held[level]
                held[j] = value
                if any(k not in held for k in members):
                    return
                group = [held.pop(k) for k in members]
            value = group[0] if len(group) == 1 else self.combine(*group)
            j, level = g, level + 1
        self.root = value


class _Folds:
    """Each block's pieces folded in order (:func:`dask_gmm._kernels.folded`'s bytes) as they arrive
    from any thread (:meth:`add`), by one thread at a time: a block holds its running total and the
    pieces that came before their turn. Its total goes to ``done(b, total)`` once its last piece is in.

    Parameters
    ----------
    counts : list of int, the pieces of each block
    done : callable(b, total), called once for each block, in the thread that folded its last piece
    """

    def __init__(self, counts, done):
        self.counts, self.done = counts, done
        self.next = [0] * len(counts)  # each block's next piece to fold
        self.total = [None] * len(counts)
        self.early = [{} for _ in counts]  # pieces in before their turn
        self.busy = [False] * len(counts)  # a thread folds this block's pieces
        self.lock = threading.Lock()

    def add(self, b, p, value):
        """Piece ``p`` of block ``b``; folds every piece now in turn, unless another thread is folding them."""
        with self.lock:
            self.early[b][p] = value
            if self.busy[b]:
                return
            self.busy[b] = True
        while True:
            with self.lock:
                run = []
                while self.next[b] in self.early[b]:
                    run.append(self.early[b].pop(self.next[b]))
                    self.next[b] += 1
                if not run:
                    self.busy[b] = False
                    return
                last = self.next[b] == self.counts[b]
            total = _kernels.folded(run if self.total[b] is None else [self.total[b], *run])
            self.total[b] = None if last else total
            if last:
                self.done(b, total)


def _bound(calls, data):
    """Each call ``(function, graph keys of its inputs)`` as one callable, the inputs taken from ``data``."""
    return [functools.partial(f, *(None if k is None else data[k] for k in keys)) for f, keys in calls]


def _block_tasks(dsk, calls, name):
    """Add one task per call ``(function, graph keys of its inputs)`` to ``dsk``, keyed
    ``{name}-chunk{i}`` (the chunk :meth:`Blocks._killed_message` names); returns the keys."""
    keys = [f"{name}-chunk{i}" for i in range(len(calls))]
    dsk.update({key: (f, *inputs) for key, (f, inputs) in zip(keys, calls)})
    return keys


def _tree(parts, split_every, join):
    """Reduce ``parts`` level by level in groups of ``split_every``, in order, with
    ``join(level, j, group)``; a group of one passes up as it is. Returns the root."""
    level = 0
    while len(parts) > 1:
        groups = [parts[i : i + split_every] for i in range(0, len(parts), split_every)]
        parts = [group[0] if len(group) == 1 else join(level, j, group) for j, group in enumerate(groups)]
        level += 1
    return parts[0]


#: Times a pass is run again after a worker holding the fit's scattered in-memory data was lost.
RESEND_ATTEMPTS = 3
#: In-memory passes whose calls took less CPU time than this in all run on one thread (:meth:`Blocks._threads_for`).
SMALL_PASS_SECONDS = 1e-3


class Blocks:
    """The row blocks of X (and of the sample weights) as graph keys, made once per fit.

    Each :meth:`map_reduce` adds its tasks to that graph as plain tuples (dask's
    low-level graph format) and hands it straight to the scheduler: a pass
    with a no-op kernel on 4 chunks took 0.7-0.8 ms, against 1.9-2.2 ms with
    delayed objects sent through ``dask.compute``. Blocks already in memory
    (NumPy input, or a Zarr store read by ``rows``, with in-memory weights) on
    dask's threaded scheduler are instead pulled by as many threads
    (:func:`_pulled`), combined by the same tree.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features), one chunk across features
    sample_weight : dask.array.Array of shape (n_samples,) with X's row chunks, or None
    split_every : int, the width of the tree that reduces a pass's statistics (at least 2)
    rows : dask_gmm._reader.ZarrRows or None
        A direct reader of the Zarr array behind X (see :func:`dask_gmm.io.zarr_rows`);
        when given, each task reads its block through it instead of through dask's
        graph of X. X's row chunks must then be whole Zarr chunks, as
        :func:`dask_gmm.io.as_dask_array` makes them.
    began_on : the get of the distributed Client the fit began on (:func:`client_get`), before it opened
        X, or None: the scheduler now.
        A distributed Client closed in a fit's first seconds (opening and checking X) had left it
        on dask's local threads without a word (a review).
    """

    def __init__(self, X, sample_weight=None, split_every=8, rows=None, began_on=None):
        self.shape = X.shape
        self.rows = rows
        self.sample_weight = sample_weight
        n = len(X.chunks[0])
        arrays = [a for a in (None if rows is not None else X, sample_weight) if a is not None]
        self.graph, keys = _blocks_of(*arrays) if arrays else ({}, [])
        self.x = keys.pop(0) if rows is None else [None] * n
        self.w = keys.pop(0) if sample_weight is not None else [None] * n
        self.data = _data_of(self.graph, [k for k in self.x + self.w if k is not None])
        self.offsets = io.row_starts(X.chunks[0])
        self.ends = self.offsets[1:] + [self.shape[0]]  # each block's first row after it
        self.split_every = max(2, int(split_every))
        self._sent = None  # the graph with its in-memory arrays scattered to a distributed cluster
        self._sent_keys = set()  # the keys of every send (a task of an earlier one may still ask for its data)
        self.files = _cluster.stored_files(X, sample_weight, rows)  # checked after every pass
        self.sizes = [None if rows is None else rows.sizes(a, b, self.files.state) for a, b in zip(self.offsets, self.ends)]
        self.workers_checked = set()  # a cluster's workers asked whether they see these files as here
        self.began_on = began_on or scheduler()  # a distributed Client's get: its close fails the fit (:meth:`_scheduler`)
        _cluster.refuse_other_files_on_workers(None, files=self.files, checked=self.workers_checked, wait=True)
        _cluster.refuse_unusable(getattr(self.began_on, "__self__", None), "before its first pass")
        self.checked_passes = 0  # passes whose kernels checked every row (all but a checkpoint's digest)
        self.pass_cpu = {}  # the CPU seconds of the last pulled pass of each (kernel, threads) (:meth:`_threads_for`)

    def _scheduler(self):
        """The scheduler of the next pass: dask's now. A RuntimeError where these blocks were made under
        a distributed Client that is closed since, or has lost its scheduler (:class:`_cluster.SchedulerLost`):
        dask then gives its local threads, and a fit whose Client was closed between two passes had gone
        on in this process without a word (a review)."""
        _cluster.refuse_unusable(getattr(self.began_on, "__self__", None), "between two of its passes")
        return scheduler()

    def _graph_for(self, scheduler):
        """The blocks' graph for ``scheduler``: for a distributed Client, with the arrays it holds in
        this process's memory (NumPy X, NumPy sample weights, the array under ``da.from_array``)
        scattered to the workers once, at the first pass, and named by their futures after. In
        each pass's graph they were sent through the scheduler again: a NumPy X of 2e7 rows and its
        weights made iterations 8x slower (923 against 111 ms), and the scheduler held a copy of
        them meanwhile. Scattered data has no lineage: a pass that fails after a worker holding
        some of it was lost sends it again and runs again (:data:`RESEND_ATTEMPTS` times)."""
        distributed = sys.modules.get("distributed")  # not imported: no Client
        client = getattr(scheduler, "__self__", None)
        if distributed is None or not isinstance(client, distributed.Client):
            return self.graph
        if self._sent is None or self._sent[0] is not client:
            held = [k for k, v in self.graph.items() if isinstance(v, np.ndarray)]
            if held and len(held) == len(self.graph):  # a graph of data only: under keys of this send's own
                self._rename_blocks()
                held = list(self.graph)
            self._sent = (client, None, [])  # a send under way: one that fails is tried again
            names = [f"dask_gmm.block-{uuid.uuid4().hex}" for _ in held]  # not "Aligned-...", in logs and the dashboard
            sent = client.scatter({n: io.Aligned(self.graph[k]) for n, k in zip(names, held)}, hash=False) if held else {}
            futures = [sent[n] for n in names]
            self._sent = (client, {**self.graph, **dict(zip(held, futures))}, futures)
            self._sent_keys.update(f.key for f in futures)
        return self._sent[1]

    def _rename_blocks(self):
        """New keys for the blocks held in memory (a graph of data only), before each send.

        The graph's keys alias the scattered data. Sent again under the same keys, after a worker
        holding some of them was lost, a fit hung (a review: 3 of about 95 fits with a worker killed
        0.2-0.35 s in): a surviving worker kept the old task of such a key, waiting on the lost
        data, and took the new one's for the same task. At the first send, the keys of a
        ``da.from_array`` are its content's, shared by two fits of one array at once (or a persisted
        twin): each aliased them to its own copy, and distributed's scheduler warned of a "different
        `run_spec`" for them, which "can cause failures and deadlocks" (a review)."""
        tag = uuid.uuid4().hex[:8]

        def fresh(key):
            if isinstance(key, tuple):
                return (f"{key[0].split('~')[0]}~{tag}", *key[1:])  # the block's index kept (KilledWorker names it)
            return f"{key.split('~')[0]}~{tag}"

        new = {k: fresh(k) for k in self.graph}
        self.graph = {new[k]: v for k, v in self.graph.items()}
        self.x = [None if k is None else new[k] for k in self.x]
        self.w = [None if k is None else new[k] for k in self.w]
        if self.data is not None:
            self.data = {new[k]: v for k, v in self.data.items()}

    def __len__(self):
        return len(self.x)

    def take(self, picks):
        """``[block b of X, rows r]`` for each ``(b, r)`` of ``picks`` (``r`` an integer array), computed
        from the graph the passes send (:meth:`_graph_for`); not for blocks read by ``rows``.

        ``X[idx].compute()`` optimised X's graph its own way: a distributed scheduler then got
        X's block keys with other tasks than the passes gave them, and warned ("Detected
        different run_spec for key") that this "can cause failures and deadlocks"."""

        def tasks(dsk, token):
            keys = []
            for b, r in picks:  # each block once, keyed by its index (a KilledWorker names the chunk)
                keys.append((f"dask_gmm.take-{token}", b))
                dsk[keys[-1]] = (_take_rows, self.x[b], r, (self.ends[b] - self.offsets[b], *self.shape[1:]), self.offsets[b])
            return keys

        return list(self._computed(self._scheduler(), tasks))

    def map_reduce(self, kernel, *args, **kwargs):
        """``combine`` over blocks of ``kernel(block, *args, sample_weight=w, row_offset=o)``.

        One scheduler call, one read of each block, a tree of ``combine`` calls
        ``split_every`` wide (never a linear chain). Returns the combined value,
        once the local stores' files read are found as they were when these
        blocks were made (:class:`dask_gmm._cluster.StoredFiles`), and as here by any
        cluster worker that joined since (:func:`dask_gmm._cluster.refuse_other_files_on_workers`),
        where the pass ran on a cluster (one on local threads read the files here).
        """
        get = self._scheduler()
        out = self._map_reduce(get, kernel, *args, **kwargs)
        self.files.check()
        if _cluster.is_client(getattr(get, "__self__", None)):  # any worker that joined
            _cluster.refuse_other_files_on_workers(None, files=self.files, checked=self.workers_checked)
        self.checked_passes += kernel is not _kernels.digest
        return out

    def _calls(self, kernel, args, kwargs):
        """(the block's function, the graph keys of its inputs) for each block: made for each send
        of the graph, whose keys a send again renames (:meth:`_rename_blocks`)."""
        calls = []
        for x, w, off, end, sizes in zip(self.x, self.w, self.offsets, self.ends, self.sizes):
            kw = dict(kwargs, row_offset=off)
            shape = (end - off, *self.shape[1:])
            if self.rows is None:
                calls.append((functools.partial(_block_task, kernel, args, kw, shape), (w, x)))
            else:
                on_rows = (self.rows, off, end, sizes, kernel, *args)
                calls.append((functools.partial(_block_task, _on_rows, on_rows, kw, shape), (w,)))
        return calls

    def _threads_for(self, threads, kernel):
        """How many threads pull a pass of ``kernel`` where ``threads`` may (:func:`_pull_threads`): one
        when the blocks are in memory and the last such pass's calls took less than
        :data:`SMALL_PASS_SECONDS` of CPU in all (``time.thread_time``, on however many threads that
        pass ran: taking turns for the GIL adds to it, so a pass near the limit stays as it was). The
        threads of so small a pass spend more than they save: waking a helper and taking turns with it
        for the GIL made each call of a block's E-step (1,000 rows in 4 blocks, d=2, K=3) 130-190 us
        against 50 us on one thread; a pass alone took 1.09-1.29 ms on two threads, 0.64-0.97 on one.
        A pass over a Zarr store keeps its threads (its reads wait for the disk, or a network, which
        the CPU time does not count). The first pass of each kernel has no time to go by: its threads."""
        if threads > 1 and self.rows is None and self.pass_cpu.get((kernel, threads), SMALL_PASS_SECONDS) < SMALL_PASS_SECONDS:
            return 1
        return threads

    def _map_reduce(self, get, kernel, *args, **kwargs):
        threads = _pull_threads(get, self.data)
        if threads:
            return self._pulled_pass(threads, kernel, args, kwargs)

        def tasks(dsk, token):
            def join(level, j, group):
                key = f"dask_gmm.combine-{token}-{level}-{j}"
                dsk[key] = (_kernels.combine, *group)
                return key

            calls = self._calls(kernel, args, kwargs)
            return _tree(_block_tasks(dsk, calls, f"dask_gmm.{kernel.__name__}-{token}"), self.split_every, join)

        return self._computed(get, tasks)

    def _pulled_pass(self, threads, kernel, args, kwargs):
        """The pass pulled by ``threads`` threads, or the calling thread alone (:meth:`_threads_for`);
        its calls' CPU seconds kept for the next."""
        pulling = self._threads_for(threads, kernel)
        if _kernels.is_additive(kernel, args):
            root, cpu = self._pulled_pieces(pulling, kernel, args, kwargs)
        else:
            calls = self._calls(kernel, args, kwargs)
            tree = _Tree(len(calls), self.split_every, _kernels.combine)
            cpu = _pulled(_bound(calls, self.data), pulling, tree.add)
            root = tree.root
        self.pass_cpu[kernel, threads] = cpu
        return root

    def _pulled_pieces(self, threads, kernel, args, kwargs):
        """An additive ``kernel``'s pass pulled a piece at a time, not a block at a time: for a Zarr
        store read by ``rows`` a Zarr chunk, or a group of small ones
        (:meth:`dask_gmm._reader.ZarrRows.piece_ranges`); in memory a block's :func:`_piece_rows`. Each
        block's pieces are folded in order as they arrive (:class:`_Folds`), as its task folds them
        (:func:`_on_rows`, :func:`_block_task`), then the blocks go into the same tree: the same bytes.

        A block is several pieces, and a thread that took the last block ran on alone: a fit of
        5e5 x 16 rows in 1 MiB chunks (Blosc-LZ4; 65 chunks, 8 blocks of 9, the last of 2) took
        52.4-52.7 ms an iteration on two threads, 46.1-49.1 ms pulled a chunk at a time; 1e7 x 2
        rows in 4 MiB chunks (10 blocks of 4) 80.1 against 76.3 ms. Where the chunks divide evenly
        (4e6 x 2 in 4 MiB chunks) it changes nothing. In memory, 5e6 x 2 (5 blocks of 2 pieces)
        26.7-26.9 against 24.5-24.7 ms, and 1-3 % slower where the blocks split evenly but are cut.
        Returns (the combined value, the CPU seconds of the calls)."""
        calls, owner, counts = [], [], []
        for b, (x, w, off, end, sizes) in enumerate(zip(self.x, self.w, self.offsets, self.ends, self.sizes)):
            w = None if w is None else declared(self.data[w], (end - off,), off, "sample_weight")
            if self.rows is None:
                block = declared(self.data[x], (end - off, *self.shape[1:]), off)
                pieces = _slice_calls(block, off, kernel, args, w, kwargs)
            else:
                pieces = _piece_calls(self.rows, off, end, sizes, kernel, args, w, kwargs)
            counts.append(len(pieces))
            calls += pieces
            owner += [(b, p) for p in range(len(pieces))]
        tree = _Tree(len(counts), self.split_every, _kernels.combine)
        folds = _Folds(counts, tree.add)
        cpu = _pulled(calls, threads, lambda i, value: folds.add(*owner[i], value))
        return tree.root, cpu

    def _computed(self, scheduler, tasks):
        """``scheduler`` run on the blocks' graph (:meth:`_graph_for`) with the tasks that
        ``tasks(dsk, token)`` adds to it, for the keys it returns; sent again and rerun when the
        data scattered to a cluster were lost (:meth:`_lost_sent`), up to :data:`RESEND_ATTEMPTS`
        times. A task that kept killing workers is named (:meth:`_killed_message`)."""
        for attempt in range(RESEND_ATTEMPTS + 1):
            try:
                dsk = dict(self._graph_for(scheduler))
                keys = tasks(dsk, uuid.uuid4().hex[:12])
                with _one_blas_thread(local_threads(scheduler)):
                    return scheduler(dsk, keys)
            except Exception as exc:
                if "scheduler-connection-lost" in str(exc):  # not lost data (a review: two resends, then 30 s)
                    raise _cluster.SchedulerLost.of(exc) from exc
                # lost, or closed: neither is lost data (a review: three resends, then an AttributeError)
                _cluster.refuse_unusable(getattr(scheduler, "__self__", None),
                                         f"during a pass ({type(exc).__name__}: {exc})", exc)
                if self._lost_sent(exc) and attempt < RESEND_ATTEMPTS:
                    logger.warning("A worker holding this fit's in-memory data was lost (%s): sending it again", exc)
                    self._sent = None
                    continue
                if type(exc).__name__ != "KilledWorker":
                    raise
                raise ValueError(self._killed_message(exc)) from exc

    def _lost_sent(self, exc):
        """Whether the pass that raised ``exc`` failed for the data scattered by :meth:`_graph_for`:
        their send cut off (a worker lost while they were sent: distributed's CommClosedError), some
        of them gone (their worker lost), or a key of any send missing on a worker: a KeyError
        raised there, by a block's task of the pass before a resend, whose key the scheduler kept
        with its old data's key (a review saw it in 7 of 15 fits whose worker was killed 0.2-0.4 s
        in; the blocks' keys are the same in every pass, until a resend renames them)."""
        if self._sent is None:
            return False
        _, graph, futures = self._sent
        if graph is None:
            return True
        missing = isinstance(exc, KeyError) and bool(exc.args) and exc.args[0] in self._sent_keys
        return missing or any(f.status != "finished" for f in futures)

    def _killed_message(self, exc):
        """Name the chunk whose task kept killing workers (distributed's KilledWorker)."""
        task = exc.task
        found = re.search(r"-chunk(\d+)$", str(task))
        if found:
            i = int(found.group(1))
        elif isinstance(task, tuple) and len(task) > 1 and isinstance(task[1], int):
            i = task[1]
        else:
            return f"Task {task!r} killed every worker that ran it ({exc}); check the worker logs."
        i = min(i, len(self.offsets) - 1)
        end = self.ends[i]
        deaths = exc.allowed_failures + 1
        died = "A worker died" if deaths == 1 else f"Workers died {deaths} times"
        return (
            f"{died} while processing chunk {i} (rows {self.offsets[i]}-{end - 1}) "
            f"(task {task!r}). The chunk may be corrupt, or need more memory than a worker has: "
            "check it and the worker logs, or use smaller chunks or bigger workers."
        )


def _fill_task(kernel, args, start, out, x):
    """``kernel(x, *args, row_offset=start, out=out)``: the body of a :func:`fill_rows` task."""
    return kernel(x, *args, row_offset=start, out=out)


def fill_rows(blocks, kernel, out, *args):
    """``kernel(block, *args, row_offset=o, out=out[rows of the block])`` for every block, on local threads.

    For in-memory data and outputs: each call writes its rows of ``out`` in
    place, so nothing is concatenated afterwards, and no dask graph is made
    (building one, for a dask array of the blocks, cost about 0.3 ms a call).
    A block is swept in the pieces of a pass (:func:`_piece_rows`); each row's
    output is its own, so pieces change no byte. The pieces are pulled
    (:func:`_pulled`) by dask's threaded scheduler's
    number of threads, by the calling thread alone under the synchronous
    scheduler, or run as tasks of the threaded scheduler where a pool is
    configured (``dask.config.set(pool=...)``).

    Parameters
    ----------
    blocks : list of ndarray, consecutive row blocks of shape (n_i, n_features)
    kernel : a per-row kernel of :mod:`dask_gmm._kernels` (block, *args, row_offset, out)
    out : ndarray with sum(n_i) rows, C-contiguous
    args : the kernel's parameters (the model)

    Returns
    -------
    out, filled
    """
    sync = dask.config.get("scheduler", None) in ("sync", "synchronous", "single-threaded")
    calls, start = [], 0
    for x in blocks:  # each block in pieces, so that the threads end together
        for a, z in _pieces_of(x):
            calls.append(functools.partial(_fill_task, kernel, args, start + a, out[start + a : start + z], x[a:z]))
        start += x.shape[0]
    threads = 1 if sync else _pull_threads(dask.threaded.get, {})  # {}: the blocks are data, not tasks
    if threads:
        _pulled(calls, threads, lambda i, none: None)  # each call has written its rows
    else:
        dsk = {}
        dask.threaded.get(dsk, _block_tasks(dsk, [(c, ()) for c in calls], f"dask_gmm.{kernel.__name__}-{uuid.uuid4().hex[:12]}"))
    return out


def _rows_task(rows, start, stop, sizes, kernel, args, out_shape, dtype):
    """``kernel(piece, *args, row_offset=o, out=...)`` for every Zarr chunk of rows [start, stop) of a
    :class:`dask_gmm._reader.ZarrRows`, whose files are of ``sizes``, into one new array of ``out_shape``:
    a task of :func:`rows_array`."""
    out = np.empty(out_shape, dtype)
    for lo, x in rows.pieces(start, stop, sizes):
        kernel(x, *args, row_offset=lo, out=out[lo - start : lo - start + x.shape[0]])
    return out


def _part_task(a, b, first, kernel, args, x):
    """``kernel(x[a:b], *args, row_offset=first + a)``: a block of :func:`rows_array` cut from the
    rows ``x`` of a chunk whose first row is ``first``."""
    return kernel(x[a:b], *args, row_offset=first + a)


def rows_array(rows, row_chunks, kernel, tail, dtype, *args):
    """A lazy dask array of a per-row kernel over a Zarr array read by ``rows`` (:class:`dask_gmm._reader.ZarrRows`).

    Each block reads its rows through ``rows``, one Zarr chunk at a time, and
    the kernel writes them into the block's output, as a fit's pass reads
    them; the same array through ``da.from_zarr`` and ``map_blocks`` went
    through zarr's own read path, and computing it took 1.6-2.5x longer
    (``scripts/bench.py --cases predict``, with the smaller tasks of the same
    change). Each task carries the sizes of its chunk files as they are when the
    array is made (:meth:`dask_gmm._reader.ZarrRows.sizes`): computed on a worker that
    sees another store at this path, or after the store was rewritten, it raises.

    A block that is a part of a Zarr chunk (:func:`dask_gmm.io.output_rows` cuts a chunk whose
    output is wide) takes its rows from a task that reads the chunk once for all its parts: each
    part's own read had decoded the chunk once a part (a review: 2.3x slower with K=64 and one
    chunk of 16 MiB).

    Parameters
    ----------
    rows : dask_gmm._reader.ZarrRows over an array of shape (n_samples, n_features)
    row_chunks : tuple of int, the rows of each block: whole Zarr chunks, or parts of one
        (:func:`dask_gmm.io.output_rows`), or any (a dask array's own chunks: a block across two
        Zarr chunks reads both)
    kernel : a per-row kernel of :mod:`dask_gmm._kernels` (block, *args, row_offset, out)
    tail : tuple, the output's shape after its first axis: () or (n_components,)
    dtype : the output's dtype
    args : the kernel's parameters (the model)

    Returns
    -------
    dask.array.Array of shape (n_samples, *tail) with ``row_chunks``
    """
    name = f"dask_gmm.{kernel.__name__}-{uuid.uuid4().hex}"
    starts = np.concatenate([[0], np.cumsum(row_chunks)]).astype(int).tolist()
    rest, unit, graph = (0,) * len(tail), rows.chunk_rows, {}
    for i, (a, b) in enumerate(zip(starts[:-1], starts[1:])):
        first = a // unit * unit  # the first row of the Zarr chunk holding row a
        end = min(first + unit, rows.shape[0])
        if b <= end and b - a < end - first:  # a part of one chunk, read once for all its parts (a task of its own)
            read = (f"{name}-read", first // unit)
            graph.setdefault(read, (_cluster.OnThisBuild(functools.partial(rows.read, first, end, rows.sizes(first, end))),))
            graph[(name, i, *rest)] = (functools.partial(_part_task, a - first, b - first, first, kernel, args), read)
        else:
            graph[(name, i, *rest)] = (functools.partial(_rows_task, rows, a, b, rows.sizes(a, b), kernel, args,
                                                         (b - a, *tail), dtype),)
    chunks = (tuple(row_chunks), *((k,) for k in tail))
    return da.Array(graph, name, chunks=chunks, dtype=dtype, meta=np.empty((0, *tail), dtype))


def _unsized_task(part, start, kernel, args, n_features, last):
    """``kernel`` on the block ``part`` (a block of a dask array, or a DataFrame's partition) whose
    first row is ``start``, checked as a block of known rows is (:func:`declared`): such blocks had
    been taken as NumPy made them, dates as numbers and masked values as the values under the mask."""
    x = part.to_numpy() if hasattr(part, "index") and hasattr(part, "to_numpy") else part  # a partition's values
    x = declared(x, (len(x) if getattr(x, "ndim", 0) else 0, n_features), int(start))
    if last and start + len(x) == 0:  # the rows of every block before it are counted in start
        raise ValueError(f"Found array with 0 sample(s) (shape=(0, {x.shape[1]})) while a minimum of 1 is "
                         f"required: the {'DataFrame' if hasattr(part, 'index') else 'array'} has no rows.")
    try:
        return kernel(x, *args, row_offset=int(start))
    except _kernels.RowError as exc:  # a partition's bad row, named by its index label too
        if not hasattr(part, "index"):
            raise
        raise exc.labelled(part.index[exc.row - int(start)]) from None


def _total(*lengths):
    return sum(lengths)


#: Blocks whose first rows one task of :func:`unsized_rows_array` adds up from their lengths.
START_GROUP = 64


def unsized_rows_array(parts, kernel, tail, dtype, n_features, *args):
    """A lazy dask array of a per-row kernel over blocks of unknown lengths (a dask DataFrame's
    partitions, each a pandas DataFrame: a bad row is named by its index label too; a dask array's
    blocks), in one pass: each block's first row is the sum of the lengths of the blocks before it,
    computed in the same graph from the blocks themselves (where asking dask for the chunk sizes
    first read every partition once more, at the call). Each block gives one output block: their
    lengths unknown, cutting each into pieces as known blocks are (:func:`dask_gmm.io.output_rows`)
    would cut small ones too (a review: 1,000 partitions of 1,000 rows, K=64, 16 pieces each, 8x slower).

    The sums are one graph layer of three kinds of task: each block's length, the first row of each
    group of :data:`START_GROUP` blocks (the previous group's, plus its blocks' lengths: a chain of
    P / 64 tasks), and each block's first row within its group. A block's kernel waits for the
    lengths of the blocks before it only, as a chain of sums would, and the graph grows linearly
    with the blocks (a chain of ``dask.delayed`` sums grew quadratically: 3 s to build for 1,000
    partitions, 8.8 s for 2,000, now 0.13 s and 0.4 s; on a LocalCluster, groups of 64 computed
    300 partitions in 6.2-6.7 s against 10.4-10.8 s for a chain, under load).

    Parameters
    ----------
    parts : list of dask.delayed.Delayed, blocks of rows (n_i, n_features), as ``DataFrame.to_delayed()``
    kernel : callable ``kernel(X, *args, row_offset=...)``, a block's rows to its output rows
    tail : tuple, the output's shape after its first axis: () or (n_components,)
    dtype : numpy.dtype, the output's
    n_features : int, the columns each block must have
    *args : passed to ``kernel`` after the block (the model's arrays)

    Returns
    -------
    dask.array.Array of shape (n_samples, *tail), row chunks unknown, one a block
    """
    token = uuid.uuid4().hex
    name = f"dask_gmm.{kernel.__name__}-{token}"
    length, group, start = (f"dask_gmm.{what}-{token}" for what in ("length", "group-start", "start"))
    blocks = [p.key for p in parts]
    task = functools.partial(_unsized_task, kernel=kernel, args=args, n_features=n_features)  # opaque to dask: the model's arrays stay as they are
    rest = (0,) * len(tail)
    graph = {}
    for i, b in enumerate(blocks):
        g, first = divmod(i, START_GROUP)
        if first == 0:
            earlier = [(length, j) for j in range(i - START_GROUP, i)] if g else []
            graph[(group, g)] = (_total, (group, g - 1), *earlier) if g else 0
        graph[(length, i)] = (len, b)
        graph[(start, i)] = (_total, (group, g), *[(length, j) for j in range(i - first, i)])
        graph[(name, i, *rest)] = (functools.partial(task, last=i == len(blocks) - 1), b, (start, i))
    layers = HighLevelGraph.from_collections(name, graph, dependencies=parts)
    chunks = ((np.nan,) * len(blocks), *((k,) for k in tail))
    return da.Array(layers, name, chunks=chunks, dtype=dtype, meta=np.empty((0, *tail), dtype))


@dataclass
class Run:
    """One EM run (a restart): its parameters and its history."""

    covariance_type: str
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray
    lower_bound: float = -np.inf
    lower_bounds: list = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False

    def model(self):
        with np.errstate(divide="ignore"):
            return _kernels.Model(self.covariance_type, np.log(self.weights), self.means, self.precisions_cholesky)


def record(run, lower_bound, tol):
    """Count one iteration of ``run`` with its lower bound; it has converged when the bound moved by less than tol."""
    change = lower_bound - run.lower_bound
    run.lower_bound = lower_bound
    run.lower_bounds.append(lower_bound)
    run.n_iter += 1
    run.converged = bool(abs(change) < tol)


#: The most passes :func:`recentred` adds to an iteration. Each gains about 16 digits of the means
#: (their error is 1e-16 of the distance from where the moments were centred), so 20 span float64's
#: range: a start 1e98 standard deviations from data near the origin needed 6.
MAX_RECENTRING_PASSES = 20
#: A further pass is made only while the last shrank the means' move from their centres this much
#: (a useful pass shrinks it about 1e16-fold; moves at rounding level wander within a few times).
MOVE_SHRINK = 1e-4


def recentred(blocks, models, stats, reg_covar, weight_units):
    """``(stats, refs, estimates)``: the E-step statistics of ``models``, the points their moments
    are centred on, and the M-step's parameters from them, unchecked (the M-step's to check).

    One pass centres each model's moments on its means, and the M-step's
    correction ``s2 / nk - delta delta^T`` keeps the covariances exact while
    the means move little. Where a mean moved far in its component's own
    standard deviations (a start far from the data, a component collapsing
    onto a few rows), that correction would round away digits of the
    covariance (:data:`dask_gmm._covariance.MAX_CENTRING_LOSS`): the
    statistics of those models are computed again, in one more pass, centred
    on their new means, and again while a model is still that far from where
    its moments were centred (the new means are exact to 1e-16 of the move, so
    a move of over 1e19 standard deviations takes more than one more pass), at
    most :data:`MAX_RECENTRING_PASSES` passes, and only while each pass brings
    it nearer: its move shrinks by :data:`MOVE_SHRINK` or more (a covariance
    not positive definite however the moments are centred fails the M-step
    then, not 20 passes later). The responsibilities, and so the
    lower bound, are the same in every pass.

    Parameters
    ----------
    blocks : Blocks
    models : list of dask_gmm._kernels.Model, the ones ``stats`` are of
    stats : list of dask_gmm._kernels.SuffStats, centred on each model's means
    reg_covar : float, added to the covariances' diagonals (the M-step's)
    weight_units : list of float, as :func:`dask_gmm._covariance.gaussian_parameters` takes them

    Returns
    -------
    stats : list of SuffStats
    refs : list of ndarray of shape (K, d)
    estimates : list of dask_gmm._covariance.Estimate, or None for one whose last pass was not checked
        (:data:`MAX_RECENTRING_PASSES` made)
    """
    stats, refs, estimates = list(stats), [m.means for m in models], [None] * len(models)
    todo, last = list(range(len(models))), {}
    for _ in range(MAX_RECENTRING_PASSES):
        far = []
        for i in todo:
            ct = models[i].covariance_type
            with np.errstate(all="ignore"):  # the M-step itself refuses what is not finite, by name
                estimates[i] = estimate(stats[i].nk, stats[i].s1c, stats[i].s2, refs[i], reg_covar, ct, weight_units[i])
            means = estimates[i].means
            loss = centring_loss(means, refs[i], estimates[i].covariances, ct, estimates[i].factors)
            # a useful pass leaves the means about 1e-16 of their move from its centres (a move within
            # a mean's own rounding is none: centring_loss): none is made when the last did not shrink
            # the move (a covariance not positive definite however its moments are centred, an
            # infinite loss, is then the M-step's error, not 19 passes later)
            move = float(np.max(np.abs(means - refs[i])))
            shrunk = i not in last or move < last[i] * MOVE_SHRINK
            last[i] = move
            if loss > MAX_CENTRING_LOSS and np.all(np.isfinite(means)) and shrunk:
                far.append((i, means, loss))
        if not far:
            break
        logger.debug("Means moved up to %.3g standard deviations in %d run(s): one more pass, centred on the new means",
                     max(np.sqrt(loss) for *_, loss in far), len(far))
        again = blocks.map_reduce(_kernels.e_step_stats, [models[i]._replace(centres=c) for i, c, _ in far])
        for (i, c, _), st in zip(far, again):
            stats[i], refs[i], estimates[i] = st, c, None
        todo = [i for i, *_ in far]
    return stats, refs, estimates


def em(blocks, runs, *, tol, max_iter, reg_covar, on_iteration=None):
    """Advance ``runs`` in lockstep until each has converged or done ``max_iter`` iterations.

    Follows scikit-learn exactly: iteration n computes the mean log-likelihood
    at the current parameters (the lower bound) and the statistics in the same
    pass, then the M-step; a run converges when the lower bound changes by less
    than ``tol``. ``on_iteration(runs, advanced)`` is called after every pass
    with all the runs and the ones that pass advanced.
    """
    several = len({(len(r.weights), r.covariance_type) for r in runs}) > 1  # select_model's candidates

    def step(active, models, stats):
        bounds = [_kernels.per_weight(st.objective, st.weight) for st in stats]  # first: it refuses a total weight of 0
        units = [st.least for st in stats]
        stats, refs, estimates = recentred(blocks, models, stats, reg_covar, units)
        for run, st, ref, unit, lower_bound, est in zip(active, stats, refs, units, bounds, estimates):
            with naming_candidate(len(run.weights), run.covariance_type, several):
                run.weights, run.means, run.covariances, run.precisions_cholesky = m_step(
                    st.nk, st.s1c, st.s2, ref, reg_covar, run.covariance_type, unit, est
                )
            record(run, lower_bound, tol)

    return lockstep(blocks, runs, lambda run: run.model(), step, max_iter=max_iter, on_iteration=on_iteration)


def lockstep(blocks, runs, model_of, step, *, max_iter, on_iteration=None):
    """The EM loop of both estimators: each pass evaluates the E-step statistics of every run
    that has neither converged nor done ``max_iter`` iterations, at ``model_of(run)``, then
    ``step(active, models, stats)`` makes their M-steps and records them, and
    ``on_iteration(runs, active)`` is called. Returns ``runs`` once none is active. BLAS runs on
    one thread all along where several threads run the kernels (:func:`_one_blas_thread`)."""
    with _one_blas_thread(local_threads(scheduler())):  # the M-steps' BLAS calls too
        while True:
            active = [r for r in runs if not r.converged and r.n_iter < max_iter]
            if not active:
                return runs
            models = [model_of(r) for r in active]
            step(active, models, blocks.map_reduce(_kernels.e_step_stats, models))
            if on_iteration is not None:
                on_iteration(runs, active)
