"""predict's Zarr outputs, for the command line: what ``--overwrite`` may replace, and a lazy dask
array written chunk by chunk beside its final path, synced, then renamed into place.

Errors are ValueErrors in the command line's words (``--overwrite``, ``--output``): this module
serves ``dask-gmm predict`` only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time

import zarr

from . import _cluster, _files, _store, io
from ._files import remove_replaced, sync_folder, sync_tree, temporary_sibling


class _WhileThere:
    """A Zarr array that writes only while the file ``marker`` (its temporary store's metadata)
    exists: what a cluster's worker gets of :class:`_Writes`, so that tasks still running when the
    command has ended (and removed its temporary store) do not make it again."""

    def __init__(self, arr, marker):
        self.arr, self.marker = arr, marker

    def __setitem__(self, key, value):
        if self.marker is None or os.path.exists(self.marker):
            self.arr[key] = value


class _Writes:
    """A Zarr array (``arr``) whose writes can be stopped, waiting for those under way.

    When a task of ``da.store`` fails, dask raises at once while the other
    threads' tasks still run and write their chunks; a temporary output removed
    then was written to again and left behind. Pickled (for a distributed
    cluster) it is a :class:`_WhileThere` of the array: other processes' writes
    are not counted, but stop once ``marker`` is removed.
    """

    def __init__(self, arr, marker=None):
        self.arr, self.marker, self.stopped, self.busy = arr, marker, False, 0
        self.lock = threading.Lock()

    def __setitem__(self, key, value):
        with self.lock:
            if self.stopped:
                return
            self.busy += 1
        try:
            self.arr[key] = value
        finally:
            with self.lock:
                self.busy -= 1

    def __reduce__(self):
        return _WhileThere, (self.arr, self.marker)

    def stop(self, timeout=60.0):
        """Refuse further writes and wait (up to ``timeout`` seconds) for those under way."""
        with self.lock:
            self.stopped = True
        deadline = time.monotonic() + timeout
        while self.busy and time.monotonic() < deadline:
            time.sleep(0.005)


#: The attribute of predict's outputs: what ``predict --overwrite`` may replace.
PREDICT_ATTR = "dask_gmm_predict"


def predicted(node):
    """Whether the Zarr node is an array that ``predict`` wrote: its attribute :data:`PREDICT_ATTR`
    is the record (a dict). An array of someone else's with another value there is not one (a
    string there had ended the commands in a traceback)."""
    return isinstance(node, zarr.Array) and isinstance(node.attrs.get(PREDICT_ATTR), dict)


def predict_record(path):
    """The record (kind, model, data, n_components) of the array at ``path`` that ``predict`` wrote, else None."""
    node = io.open_node(io.data_path(path))
    return dict(node.attrs[PREDICT_ATTR]) if predicted(node) else None


def refuse_unless_predicted(output):
    """A ValueError when something at ``output`` is not what ``predict --overwrite`` may replace: an
    earlier output of predict, or an empty folder."""
    _files.refuse_unreplaceable(output, "--overwrite", (predicted, lambda members: not members,
                                                        "an output of dask-gmm predict"))


def check_still_free(output, overwrite):
    """What :func:`dask_gmm.cli._check_store_output` checked before the work, checked again just before the new
    output is renamed in: something written at ``output`` since (another program, or another run
    to the same output) was replaced whatever it was. A ValueError now, unless ``overwrite`` and it
    is an earlier output of predict."""
    if not os.path.lexists(output):
        return
    if not overwrite:
        raise ValueError(f"{output!r} appeared while this command ran (another program or run wrote it); it is left "
                         "as it is, and this run's output was not kept. Choose another path, or pass --overwrite to "
                         "replace an output of dask-gmm predict.")
    refuse_unless_predicted(output)


def store_atomically(result, output, overwrite, attrs, check=None, *, dimension_names):
    """Write a lazy dask array chunk by chunk to a Zarr array at ``output``, checked first by
    :func:`dask_gmm.cli._check_store_output` (before the scheduler is reached), named its axes
    ``dimension_names`` (which xarray needs to open a group holding it); ``check()``, when given, runs
    after the writes and before the output is put in place (its error leaves none).

    Local outputs are written in a temporary sibling folder, synced to disk, then renamed, so
    that neither an interrupted run nor a crash of the machine leaves a half-written result under
    the final name. The array is written one level down in that folder, which holds no Zarr
    metadata of its own: an output in a Zarr group (``-o GROUP/NAME``) had been written as an array
    of the group, which zarr and xarray listed and read (a killed run's too: rows never written read
    as fill values, a review).
    """
    import dask.array as da
    from zarr.codecs import Crc32cCodec, ZstdCodec

    local = "://" not in output
    hidden = temporary_sibling(output) if local else None
    target = os.path.join(hidden, "array") if local else output
    rows = result.chunks[0][0]
    chunks = (rows,) + tuple(result.shape[1:])
    writes = old = None
    try:
        if local:
            os.mkdir(hidden)
        arr = zarr.create_array(target, shape=result.shape, chunks=chunks, dtype=result.dtype,
                                compressors=[ZstdCodec(level=3), Crc32cCodec()],  # a corrupt chunk is an error
                                overwrite=not local and overwrite,
                                attributes=attrs, config={"write_empty_chunks": True},
                                dimension_names=dimension_names)
        writes = _Writes(arr, os.path.join(target, "zarr.json") if local else None)
        # dask chunks equal the zarr chunks (all rows of each but the last), so every write is one whole chunk
        result, n = result.rechunk({0: rows}), result.shape[0]
        if local and n > rows and not surely_fits(result, target):  # its first chunk alone, to learn
            da.store(result[:rows], writes, lock=False, regions=(slice(0, rows),))
            check_room(arr, rows, n - rows, target, output)
            da.store(result[rows:], writes, lock=False, regions=(slice(rows, n),))
        else:
            da.store(result, writes, lock=False)
        _store.refuse_unwritten([arr], output, "Write to a path or URL that this process and every worker share.")
        if check is not None:
            check()
        if local:
            sync_tree(target)  # its chunks on disk before the rename that makes it the output
            check_still_free(output, overwrite)  # the window left is this check's microseconds, not the run's
            if os.path.lexists(output):
                old = f"{hidden}.old"
                os.replace(output, old)
            os.replace(target, output)
            sync_folder(os.path.dirname(os.path.abspath(output)))
            if old is not None:  # renamed first: a run killed while removing it leaves a .gone, swept later
                gone = f"{hidden}.gone"  # (by _files.temporary_sibling), and no .old to put back
                os.replace(old, gone)
                old = None
                remove_replaced(gone, output)
            shutil.rmtree(hidden, ignore_errors=True)  # empty (a killed run's: swept later)
    except BaseException as exc:
        name = getattr(exc, "filename", None)
        if isinstance(exc, OSError) and local and isinstance(name, str) and name.startswith(hidden):
            # the output's own path, not its hidden temporary one
            exc.filename = output + name[len(target):] if name.startswith(target) else output
        if writes is not None:
            writes.stop()
        io.settle_zarr()  # an interrupted zarr call still writing would make the temporary store again
        if old is not None and os.path.lexists(old) and not os.path.lexists(output):
            os.replace(old, output)  # interrupted between the two renames: the old output goes back
        if local and os.path.exists(hidden):
            with contextlib.suppress(OSError):  # first the mark the workers' writes look for (_WhileThere)
                os.unlink(os.path.join(target, "zarr.json"))
            shutil.rmtree(hidden, ignore_errors=True)
            removed_again(hidden)
        raise


def surely_fits(result, target):
    """Whether the output ``result`` (a dask array) takes at most half the free space of the disk of
    ``target`` uncompressed, with 1 MiB for each chunk file and its folder (file systems that give a
    file at least 64 KiB or more, as ext4's bigalloc and GPFS's sub-blocks do, whose ``statvfs`` may
    say 1 KiB: a review filled one that 4 KiB a chunk had called roomy): then :func:`check_room` is
    not needed, and its chunk written alone is not paid for (13-20 % of a 4e6-row `--proba` run here)."""
    return result.nbytes * 1.01 + 2**20 * result.numblocks[0] < shutil.disk_usage(target).free / 2


def check_room(arr, first, rest, target, output):
    """A ValueError if ``rest`` more rows of the output ``arr`` (local files at ``target``) would take
    more than its disk has free, at what its first chunk of ``first`` rows, just written, took there
    (:func:`_store.chunk_disk_use`): 64 components' probabilities of 1e9 rows, 512 GB, would have filled
    the disk before failing. Nothing is said where that chunk cannot be seen here."""
    short = _store.disk_shortfall([arr], 0, first, rest, target)
    if short:
        need, free, took = short
        raise ValueError(f"the output's other {rest:,} rows would take about {_store.disk_size(need)} of disk (its first "
                         f"{first:,} took {took:,} bytes), and the disk holding {output!r} has {_store.disk_size(free)} "
                         "free. Free space, or write the output to another disk (--output).")


def removed_again(target):
    """Remove ``target`` again whenever it reappears within 2 s, when a distributed Client
    ran the writes: a worker's write under way when it was removed makes its folders again."""
    if _cluster.default_client() is None:
        return
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if os.path.exists(target):
            shutil.rmtree(target, ignore_errors=True)
