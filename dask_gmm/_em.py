"""The EM driver over dask: map a kernel over the row blocks, tree-reduce, M-step.

Each EM iteration is one ``dask.compute`` of a graph that reads every block
once, evaluates every active run on it (restarts advance in lockstep), and
tree-reduces the small statistics. Only arrays of size about K·d² travel, and
the parameters are literals inside the graph, so a lost worker loses nothing
that cannot be recomputed.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, field

import dask
import numpy as np

from . import _kernels
from ._covariance import m_step

logger = logging.getLogger(__name__)


def _on_rows(rows, start, stop, kernel, *args, sample_weight=None, row_offset=0, **kwargs):
    """``kernel`` on rows [start, stop) of a :class:`dask_gmm.io.ZarrRows`: a task's body.

    An additive kernel sees one Zarr chunk at a time, straight after its decode
    (still in cache), and the pieces are combined; any other kernel sees the rows
    read into one array. ``row_offset`` equals ``start``.
    """
    if not _kernels.is_additive(kernel, args):
        return kernel(rows.read(start, stop), *args, sample_weight=sample_weight, row_offset=row_offset, **kwargs)
    parts = []
    for lo, x in rows.pieces(start, stop):
        w = None if sample_weight is None else sample_weight[lo - start : lo - start + x.shape[0]]
        parts.append(kernel(x, *args, sample_weight=w, row_offset=lo, **kwargs))
    return _kernels.combine(*parts)


class Blocks:
    """The row blocks of X (and of the sample weights) as delayed objects, made once per fit.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features), one chunk across features
    sample_weight : dask.array.Array of shape (n_samples,) with X's row chunks, or None
    rows : dask_gmm.io.ZarrRows or None
        A direct reader of the Zarr array behind X (see :func:`dask_gmm.io.zarr_rows`);
        when given, each task reads its block through it instead of through dask's
        graph of X. X's row chunks must then be whole Zarr chunks, as
        :func:`dask_gmm.io.as_dask_array` makes them.
    """

    def __init__(self, X, sample_weight=None, split_every=8, rows=None):
        self.shape = X.shape
        self.rows = rows
        self.x = list(X.to_delayed().ravel()) if rows is None else [None] * len(X.chunks[0])
        self.w = [None] * len(self.x) if sample_weight is None else list(sample_weight.to_delayed().ravel())
        self.offsets = np.concatenate([[0], np.cumsum(X.chunks[0][:-1])]).astype(int).tolist()
        self.split_every = max(2, int(split_every))

    def __len__(self):
        return len(self.x)

    def map_reduce(self, kernel, *args, per_block=None, **kwargs):
        """``combine`` over blocks of ``kernel(block, *args, [per_block[i]], sample_weight=w, row_offset=o)``.

        One compute, one read of each block, a tree of ``combine`` calls
        ``split_every`` wide (never a linear chain). Returns the combined value.
        """
        token = uuid.uuid4().hex[:12]
        parts = []
        ends = self.offsets[1:] + [self.shape[0]]
        for i, (x, w, off, end) in enumerate(zip(self.x, self.w, self.offsets, ends)):
            extra = () if per_block is None else (per_block[i],)
            key = f"dask_gmm-{kernel.__name__}-{token}-chunk{i}"
            if self.rows is None:
                task = dask.delayed(kernel, pure=False)(x, *args, *extra, sample_weight=w, row_offset=off, dask_key_name=key, **kwargs)
            else:
                task = dask.delayed(_on_rows, pure=False)(
                    self.rows, off, end, kernel, *args, *extra, sample_weight=w, row_offset=off, dask_key_name=key, **kwargs
                )
            parts.append(task)
        while len(parts) > 1:
            step = self.split_every
            parts = [
                dask.delayed(_kernels.combine, pure=False)(*parts[i : i + step]) if len(parts[i : i + step]) > 1 else parts[i]
                for i in range(0, len(parts), step)
            ]
        try:
            (result,) = dask.compute(parts[0])
        except Exception as exc:
            if type(exc).__name__ != "KilledWorker":
                raise
            raise ValueError(self._killed_message(exc)) from exc
        return result

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
        end = self.offsets[i + 1] if i + 1 < len(self.offsets) else self.shape[0]
        return (
            f"Workers died {exc.allowed_failures + 1} times while processing chunk {i} (rows {self.offsets[i]}-{end - 1}) "
            f"(task {task!r}). The chunk may be corrupt, or need more memory than a worker has: "
            "check it and the worker logs, or use smaller chunks or bigger workers."
        )


def fill_rows(X, kernel, out, *args):
    """``kernel(block, *args, row_offset=o, out=out[rows of the block])`` for every block of X, on local threads.

    For in-memory data and outputs: each task writes its rows of ``out`` in
    place, so nothing is concatenated afterwards. Always a local scheduler (the
    synchronous one if configured, threads otherwise), because the tasks write
    into this process's memory.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features) backed by local memory
    out : ndarray with n_samples rows, C-contiguous
    """
    sync = dask.config.get("scheduler", None) in ("sync", "synchronous", "single-threaded")
    starts = np.concatenate([[0], np.cumsum(X.chunks[0])]).astype(int)
    tasks = [
        dask.delayed(kernel, pure=False)(x, *args, row_offset=int(a), out=out[a:b])
        for x, a, b in zip(X.to_delayed().ravel(), starts[:-1], starts[1:])
    ]
    dask.compute(*tasks, scheduler="sync" if sync else "threads")
    return out


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


def em(blocks, runs, *, tol, max_iter, reg_covar, on_iteration=None):
    """Advance ``runs`` in lockstep until each has converged or done ``max_iter`` iterations.

    Follows scikit-learn exactly: iteration n computes the mean log-likelihood
    at the current parameters (the lower bound) and the statistics in the same
    pass, then the M-step; a run converges when the lower bound changes by less
    than ``tol``. ``on_iteration(runs, advanced)`` is called after every pass
    with the runs that pass advanced.
    """
    while True:
        active = [r for r in runs if not r.converged and r.n_iter < max_iter]
        if not active:
            return runs
        stats = blocks.map_reduce(_kernels.e_step_stats, [r.model() for r in active])
        for run, st in zip(active, stats):
            run.weights, run.means, run.covariances, run.precisions_cholesky = m_step(
                st.nk, st.s1c, st.s2, run.means, reg_covar, run.covariance_type
            )
            record(run, st.objective / st.weight, tol)
        if on_iteration is not None:
            on_iteration(runs, active)
