"""Opening inputs as row-chunked dask arrays, with the checks that keep fits honest.

Accepted inputs: NumPy arrays (and array-likes), Dask arrays, ``zarr.Array``,
and paths or fsspec URLs of Zarr stores holding an array or a group with the
array ``X``. Every result has whole rows in each chunk (all features), and its
row chunks are multiples of the Zarr chunks (or shards).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import gzip
import hashlib
import itertools
import json
import logging
import lzma
import math
import os
import pathlib
import re
import shutil
import stat
import struct
import sys
import threading
import uuid
import warnings
import zipfile
import zlib

import dask
import dask.array as da
import fsspec
import google_crc32c  # zarr's own dependency, for its crc32c codec
import numpy as np
import scipy.sparse
import zarr
from dask.array.core import getter
from dask.base import get_scheduler
from dask.blockwise import Blockwise
from dask.highlevelgraph import MaterializedLayer
from fsspec.implementations.cached import CachingFileSystem
from fsspec.implementations.local import LocalFileSystem
# the synchronous codec and store protocols (SupportsSyncCodec, SupportsGetSync) are zarr >= 3.1.6's
from zarr.abc.codec import ArrayArrayCodec, ArrayBytesCodec, BytesBytesCodec, SupportsSyncCodec
from zarr.abc.store import RangeByteRequest, SuffixByteRequest, SupportsGetSync
from zarr.codecs import BytesCodec, Crc32cCodec, GzipCodec, ShardingCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync  # zarr 3 has no synchronous listing or lookup in its public API
from zarr.core import sync as zarr_sync  # its event loop, to wait for after an interrupt

from . import __version__, _codecs, _compat, _kernels, _numba
from ._kernels import total_weight


logger = logging.getLogger(__name__)

#: Target size of one in-memory chunk when dask_gmm picks the chunking itself.
TARGET_CHUNK_BYTES = 16 * 2**20
#: In-memory inputs are cut into at least this many chunks (when they have the rows), and
#: Zarr inputs into twice as many (when they have the Zarr chunks): whole Zarr chunks are
#: coarse, and more, shorter tasks keep a core from waiting on another's last one.
MIN_CHUNKS = 4
STATUS_ATTR = "dask_gmm"  # group attribute written by the generator


def _rows_for(n_samples, n_features, itemsize, base=1, min_chunks=MIN_CHUNKS):
    """Rows per chunk: a whole number of ``base`` rows (Zarr chunks), about
    TARGET_CHUNK_BYTES, and at most a ``min_chunks``-th of the array's ``base``
    units (rounded up).

    So a small array still makes ``min_chunks`` chunks where it has the units, and
    no core idles. It is a fixed number, not the machine's core count, because
    the random streams and the reduction tree follow the chunks.
    """
    units = -(-n_samples // base)
    per_chunk = min(TARGET_CHUNK_BYTES // max(1, n_features * itemsize * base), -(-units // min_chunks))
    return max(1, per_chunk) * base


def output_rows(row_chunks, unit, row_bytes):
    """The row blocks of a per-row output, of an input in blocks of ``row_chunks`` rows: each block
    cut into blocks of outputs of at most TARGET_CHUNK_BYTES (and one row at least), of whole
    units where one unit's output fits (a Zarr chunk decoded once), else each unit cut into parts
    of equal rows but the last. The input's blocks were the outputs' too: 64 components'
    probabilities of a block of 16 MiB of two features took 512 MiB, and killed a cluster's
    workers of 600 MB that fitted the same store (a review).

    Parameters
    ----------
    row_chunks : tuple of int, at least one: dask_gmm's, each a whole number of ``unit`` rows but the last,
        or a dask array's own, any
    unit : int, the rows of a Zarr chunk (1: blocks may be cut anywhere)
    row_bytes : int, the bytes of a row's output

    Returns
    -------
    tuple of int, the rows of each block, in order (``row_chunks`` itself where none is cut)
    """
    most = max(1, TARGET_CHUNK_BYTES // row_bytes)  # rows a block
    if max(row_chunks) <= most:
        return tuple(row_chunks)
    step = _output_step(max(row_chunks), unit, most) if most >= unit else None
    out = []
    for n in row_chunks:
        if n <= most:
            out.append(n)
        elif step is not None:  # whole units, in blocks of one size for every block cut (da.to_zarr's regular chunks)
            out += [step] * (n // step) + [n % step] * (n % step > 0)
        else:  # each unit in parts of equal rows but the last
            for start in range(0, n, unit):
                m = min(unit, n - start)
                step = -(-m // -(-m // most))
                out += [step] * (m // step) + [m % step] * (m % step > 0)
    return tuple(out)


def _output_step(n, unit, most):
    """The rows of each output block cut from input blocks of at most ``n`` rows: whole ``unit``s, at
    most ``most`` rows, as few blocks as may be, and where it costs at most twice as many, a number
    of units that divides ``n``'s, so that blocks of ``n`` rows are cut into blocks of one size (70,000
    rows had been cut into 23,334, 23,334 and 23,332, which ``da.to_zarr`` refused to write as they
    were, and rechunked with a warning: a Dask user's review)."""
    units = -(-n // unit)
    fewest = -(-units // (most // unit))  # blocks a block of n rows is cut into, at the fewest
    parts = next((k for k in range(fewest, min(2 * fewest, units) + 1) if units % k == 0), fewest)
    return -(-units // parts) * unit


def _check_shape_dtype(shape, dtype, min_samples=1):
    """X's shape and dtype refused in scikit-learn's words unless 2-D, real and of at least
    ``min_samples`` rows (2 for a fit, as scikit-learn's) and one feature."""
    if np.dtype(dtype).names:  # scikit-learn's advice to reshape would not help
        raise ValueError(f"X is a structured array (fields {', '.join(np.dtype(dtype).names)}), not data of shape "
                         "(n_samples, n_features). Give its fields as the columns of a 2-D array "
                         "(numpy.lib.recfunctions.structured_to_unstructured), or a pandas DataFrame.")
    if len(shape) != 2:  # scikit-learn's advice to reshape fits a 1-D X (and a scalar) only
        advice = ("Reshape your data with X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for a single "
                  "sample." if len(shape) < 2 else "Give one row per sample (X.reshape(len(X), -1) flattens the "
                  "other axes into features, where that is what they are).")
        raise ValueError(f"Expected 2D array of shape (n_samples, n_features), got {len(shape)}D array instead "
                         f"(shape {tuple(shape)}). {advice}")
    if np.dtype(dtype).kind not in "biuf":
        complex_ = "Complex data not supported: " if np.dtype(dtype).kind == "c" else ""
        raise ValueError(
            f"{complex_}X must hold real numbers, got dtype {np.dtype(dtype)}. Convert it to float32 or float64."
        )
    for axis, what, least in ((0, "sample", min_samples), (1, "feature", 1)):  # scikit-learn's words
        if shape[axis] < least:
            raise ValueError(f"Found array with {shape[axis]} {what}(s) (shape={tuple(shape)}) while a minimum of "
                             f"{least} is required. Pass data of at least {least} {what}{'s' if least > 1 else ''}.")


def _as_float(x):
    """Float32 and float64 stay as they are; other numeric dtypes become float64 lazily."""
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


#: Chunks (or shards) of an array at most: their keys are listed in memory to check that each is
#: stored. A 408-byte zarr.json declaring 2e7 chunks took 18 s and 3.9 GB (a review).
MAX_CHUNKS = 2**24


def missing_chunks(arr):
    """Names of the chunks of ``arr`` that zarr would read as fill values.

    zarr reads an absent chunk as its fill value without complaint, so a store
    that lost chunks would otherwise be fitted silently as if full of zeros.
    The names are the storage keys of the chunks (or shards) absent from the
    store and, in a sharded array, ``'KEY (inner chunk I.J: rows A-B)'`` for each
    inner chunk that a stored shard's index marks as never written (one small
    ranged read per stored shard; an unsharded array costs one listing only).

    Parameters
    ----------
    arr : zarr.Array of any shape

    Returns
    -------
    list of str: absent chunks (or shards) in grid order, then unwritten inner chunks

    Raises
    ------
    ValueError
        A stored shard whose index cannot be read (too short, a checksum
        mismatch), or a sharded layout whose index this check cannot verify.
    """
    unit = arr.shards or arr.chunks
    if any(u < 1 and n for n, u in zip(arr.shape, unit)):  # zarr opens it; counted in chunks of 1, all "missing"
        raise DamagedMetadata(f"The Zarr array {_store_name(arr)!r} declares chunks of shape {tuple(unit)}, with no "
                              "room for a value: its metadata is damaged. Restore or regenerate it.")
    grid = [-(-n // max(u, 1)) for n, u in zip(arr.shape, unit)]  # an empty dimension's chunks may be empty
    if math.prod(grid) > MAX_CHUNKS:
        what = "shards" if arr.shards else "chunks"
        raise ValueError(f"The Zarr array {_store_name(arr)!r} has {math.prod(grid):,} {what} (of shape {tuple(unit)} in "
                         f"{arr.shape}), more than the {MAX_CHUNKS:,} dask_gmm reads. Rechunk it into larger chunks.")
    coords = list(itertools.product(*map(range, grid)))
    keys = [arr.metadata.encode_chunk_key(c) for c in coords]
    stored = _stored_keys(arr, keys)
    gone = [k for k in keys if k not in stored]
    if arr.metadata.zarr_format == 2 or not any(isinstance(c, ShardingCodec) for c in arr.metadata.codecs):
        return gone
    present = [(c, k) for c, k in zip(coords, keys) if k in stored]
    return gone + _unwritten_inner_chunks(arr, present)


def _stored_keys(arr, keys):
    """The keys of the store of ``arr`` under its path, relative to it: for local files, from a scan
    of its folder (:func:`_scanned`; 20,000 chunks: 0.16 s, where the store's own listing took 0.48 s);
    else from the store's listing, or, where it cannot list (an HTTP server that lists no folders:
    a 403 had ended the fit with aiohttp's error), those of ``keys`` it says it holds, each asked."""
    folder = _local_folder(arr)
    if folder is not None:
        return {path[len(folder) + 1 :].replace(os.sep, "/") for path in _scanned([folder], arr.ndim)}
    store, prefix = arr.store_path.store, arr.store_path.path

    async def _list():
        return {k async for k in store.list_prefix(prefix)}

    async def _each():
        held = await asyncio.gather(*(store.exists("/".join(filter(None, [prefix, k]))) for k in keys))
        return {k for k, there in zip(keys, held) if there}

    try:
        return {k[len(prefix) :].lstrip("/") for k in sync(_list())}
    except Exception as exc:  # noqa: BLE001 - a listing refused (403), or not supported: ask for each chunk
        logger.debug("cannot list %s (%r): asking for each of its %d chunks", arr.store_path, exc, len(keys))
        return sync(_each())


def missing_chunk_count(arr):
    """How many chunks :func:`missing_chunks` names, in chunks: in a sharded array,
    an absent shard counts as the inner chunks it holds within the array.

    Parameters
    ----------
    arr : zarr.Array of any shape

    Returns
    -------
    int
    """
    names = missing_chunks(arr)
    if arr.shards is None or not names:
        return len(names)
    grid = itertools.product(*(range(-(-n // s)) for n, s in zip(arr.shape, arr.shards)))
    shards = {arr.metadata.encode_chunk_key(c): c for c in grid}

    def inner(coords):  # the inner chunks of the shard at coords that lie within the array
        return math.prod(-(-min(s, n - i * s) // c) for i, s, n, c in zip(coords, arr.shards, arr.shape, arr.chunks))

    return sum(inner(shards[name]) if name in shards else 1 for name in names)


#: The shard index's mark of an inner chunk never written: offset and nbytes both 2**64 - 1.
_ABSENT = np.uint64(2**64 - 1)


def _shard_index_format(arr):
    """How the shard index of the sharded ``arr`` is stored: ``(codec, nbytes, byteorder, checksummed)``.

    ``codec`` is the array's :class:`zarr.codecs.ShardingCodec`. Only the layouts
    this module can verify are accepted: sharding as the array's only codec, not
    sharded again within, and an index encoded by ``bytes`` (either byte order),
    optionally followed by ``crc32c`` (zarr's default, 4 bytes more). Anything
    else raises ValueError rather than be guessed at.
    """
    codecs = tuple(arr.metadata.codecs)
    codec = codecs[0] if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec) else None
    index = tuple(codec.index_codecs) if codec is not None else ()
    ok = (
        codec is not None
        and not any(isinstance(c, ShardingCodec) for c in codec.codecs)  # shards within shards: inner indexes unread
        and len(index) in (1, 2)
        and isinstance(index[0], BytesCodec)
        and index[0].endian is not None
        and all(isinstance(c, Crc32cCodec) for c in index[1:])
    )
    if not ok:
        raise ValueError(
            f"The Zarr array is sharded in a layout dask_gmm cannot check for unwritten chunks "
            f"(codecs {list(codecs)}); it checks shards whose codec is the sharding codec alone, "
            "not sharded again within, with an index encoded as bytes (+ crc32c). Rewrite the store with "
            "zarr.create_array(..., shards=...) and the default shard index, or without shards."
        )
    n_inner = math.prod(s // c for s, c in zip(arr.shards, codec.chunk_shape))
    byteorder = "<" if index[0].endian.value == "little" else ">"
    return codec, 16 * n_inner + 4 * (len(index) - 1), byteorder, len(index) == 2


def _decode_shard_index(raw, chunks_per_shard, byteorder="<", checksummed=True, size=None):
    """The (offset, nbytes) pairs of a shard's index read from its stored bytes ``raw``.

    Parameters
    ----------
    raw : bytes, the index as stored (16 bytes per inner chunk, then a crc32c if ``checksummed``)
    chunks_per_shard : tuple of int, the inner chunk grid of one shard
    byteorder : '<' or '>', that of the index's uint64 values
    size : int, optional, the shard's size in bytes: an inner chunk said to lie past it is an
        error (a shard cut short after its index was written, the index at its start: zarr read
        the last chunk's bytes short, and Blosc read on past them, without an error)

    Returns
    -------
    ndarray of shape (*chunks_per_shard, 2), uint64; both entries ``2**64 - 1`` where
    the inner chunk was never written

    Raises
    ------
    ValueError
        Saying why, when ``raw`` is too short, fails its checksum, marks an inner
        chunk half absent or places one past the shard's end.
    """
    n = 16 * math.prod(chunks_per_shard)
    want = n + (4 if checksummed else 0)
    if len(raw) < want:
        raise ValueError(f"it holds {len(raw)} bytes, fewer than the {want} of its index")
    body = raw[:n]
    if checksummed and np.frombuffer(raw[n:want], "<u4")[0] != google_crc32c.value(body):
        raise ValueError("its index fails its crc32c checksum")
    pairs = np.frombuffer(body, f"{byteorder}u8").astype(np.uint64).reshape(*chunks_per_shard, 2)
    if np.any((pairs[..., 0] == _ABSENT) != (pairs[..., 1] == _ABSENT)):
        raise ValueError("its index marks an inner chunk half absent")
    if size is not None:
        offset, nbytes, end = pairs[..., 0], pairs[..., 1], np.uint64(size)
        past = (offset != _ABSENT) & ((offset > end) | (nbytes > end - np.minimum(offset, end)))  # no overflow
        if past.any():
            i = tuple(int(v) for v in np.argwhere(past)[0])
            raise ValueError(f"its index places inner chunk {'.'.join(map(str, i))} at bytes {int(offset[i])}-"
                             f"{int(offset[i] + nbytes[i]) - 1}, past its end ({size} bytes): it was cut short")
    return pairs


def _read_ends(arr, keys, request):
    """The bytes ``request`` (a zarr byte range) selects from each stored object ``keys``
    of ``arr`` (None where one has gone): one ranged read per key.

    With a synchronous store (local files, memory) the reads run in this thread,
    0.02 ms each; others (fsspec) read concurrently through zarr's event loop.
    """
    store, prefix, proto = arr.store_path.store, arr.store_path.path, default_buffer_prototype()
    paths = [f"{prefix}/{key}" if prefix else key for key in keys]
    if isinstance(store, SupportsGetSync):
        bufs = [store.get_sync(p, prototype=proto, byte_range=request) for p in paths]
    else:
        bufs = _concurrently(lambda p: store.get(p, proto, byte_range=request), paths)
    return [None if b is None else b.to_bytes() for b in bufs]


def _concurrently(op, items):
    """``await op(item)`` for every item, through zarr's event loop, at most zarr's
    ``async.concurrency`` at a time; the results in the items' order."""
    async def _all():
        limit = asyncio.Semaphore(max(1, int(zarr.config.get("async.concurrency") or 10)))

        async def _one(item):
            async with limit:
                return await op(item)

        return await asyncio.gather(*(_one(item) for item in items))

    return sync(_all())


def _object_sizes(arr, keys):
    """The size in bytes of each stored object ``keys`` of ``arr`` (None where one has gone): a stat
    of each file for a local store, else the store's ``getsize``, concurrently."""
    folder = _local_folder(arr)
    if folder is not None:
        sizes = [_file_size(os.path.join(folder, *key.split("/"))) for key in keys]
        return [None if s < 0 else s for s in sizes]
    store, prefix = arr.store_path.store, arr.store_path.path

    async def size_or_none(key):
        try:
            return await store.getsize(f"{prefix}/{key}" if prefix else key)
        except FileNotFoundError:
            return None

    return _concurrently(size_or_none, keys)


def _unwritten_inner_chunks(arr, shards):
    """Names, as :func:`missing_chunks` gives them, of the inner chunks that ``shards``
    (``(shard coords, key)`` pairs of stored shards of ``arr``) mark as never written.

    Reads only each shard's index, with one ranged request per shard. Inner
    chunks wholly past the array's edge are never written and are not reported.
    A shard whose index cannot be read raises ValueError naming it.
    """
    codec, nbytes, byteorder, checksummed = _shard_index_format(arr)
    inner = codec.chunk_shape
    per_shard = tuple(s // c for s, c in zip(arr.shards, inner))
    at_start = codec.index_location.value == "start"
    request = RangeByteRequest(0, nbytes) if at_start else SuffixByteRequest(nbytes)
    raws = _read_ends(arr, [key for _, key in shards], request)
    sizes = _object_sizes(arr, [key for _, key in shards])
    absent, corrupt = [], []
    for (coords, key), raw, size in zip(shards, raws, sizes):
        if raw is None:  # removed since the listing
            absent.append(key)
            continue
        try:
            pairs = _decode_shard_index(raw, per_shard, byteorder, checksummed, size)
        except ValueError as exc:
            corrupt.append(f"{key} ({exc})")
            continue
        for local in zip(*np.nonzero(pairs[..., 0] == _ABSENT)):
            chunk = tuple(int(s * p + i) for s, p, i in zip(coords, per_shard, local))
            if all(g * c < n for g, c, n in zip(chunk, inner, arr.shape)):
                lo, hi = chunk[0] * inner[0], min((chunk[0] + 1) * inner[0], arr.shape[0])
                absent.append(f"{key} (inner chunk {'.'.join(map(str, chunk))}: rows {lo}-{hi - 1})")
    if corrupt:
        shown = first_few(corrupt, "; ")
        raise ValueError(
            f"{len(corrupt)} shard(s) of the Zarr array cannot be read, the store is corrupt: {shown}. "
            "zarr would read their chunks as fill values or fail mid-fit. Restore or regenerate the store."
        )
    logger.debug("read the index of %d shards: %d inner chunks absent", len(shards), len(absent))
    return absent


def data_path(path):
    """A local path made absolute (the workers of a cluster may run in another folder), a
    ``file://`` or ``local://`` URL as that local path (as fsspec reads it), any other URL as it is.

    A local path holding ``::`` is refused: zarr hands such a path to fsspec, which reads it as a
    chain of URLs (``a::b.zarr`` opened the store ``a``, and an overwrite of it deleted ``a``)."""
    resolved = _resolved(path)
    if "::" in resolved and "://" not in resolved:
        raise ValueError(f"The local path {os.fspath(path)!r} holds '::', which zarr and fsspec read as a chain "
                         "of URLs (naming another store). Rename it without '::'.")
    return resolved


def _resolved(path):
    """:func:`data_path` of any path, unchecked (a plain file's path may hold ``::``; so may a
    ``file://`` URL's, which is its path as written: fsspec would cut it at the ``::``)."""
    path = os.fspath(path)
    scheme, sep, rest = path.partition("://")
    if sep and scheme.lower() in ("file", "local"):
        path = rest if "::" in rest else fsspec.core.url_to_fs(f"{scheme.lower()}://{rest}")[1]
    return path if "://" in path else os.path.abspath(path)


def open_zarr(path):
    """Open a Zarr array, or the array ``X`` of a Zarr group, read-only.

    A local path is opened as an absolute one, so that the array reads the same
    files on a cluster's workers. Refuses stores that a generator marked incomplete.
    """
    path = data_path(path)
    node = open_node(path)
    _warn_if_cached(path)
    return group_data(node, path) if isinstance(node, zarr.Group) else checked_generated(node, path)


def _filesystem_class(protocol):
    """fsspec's class of ``protocol``, or ``object`` where its package is not installed."""
    try:
        return fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError):
        return object


def _warn_if_cached(path):
    """Warn when the URL ``path`` reads through one of fsspec's caching file systems
    (``simplecache::``, ``filecache::``, ``blockcache::``): fsspec keeps such a file system, and
    the chunks it has read, for the life of the process, so a store rewritten since was fitted as
    it had been, without a word (a review: on a cluster's workers too, and in one notebook)."""
    from fsspec.implementations.cached import CachingFileSystem

    if "::" not in path:
        return
    parts = path.split("::")
    protocols = _chain_protocols(path)
    caching = [bool(p) and issubclass(_filesystem_class(p), CachingFileSystem) for p in protocols]
    if any(caching[:-1]):
        own = "::".join(part for part, cached in zip(parts, caching) if not cached)  # zip://::file:///d.zip kept whole
        warnings.warn(f"{path!r} is read through fsspec's caching file system "
                      f"{protocols[caching.index(True)]!r}, which keeps the chunks it has read for the life of each "
                      "process (this one's, and each Dask worker's): a store changed since they were read is read "
                      f"as it was. Give the store's own URL ({own!r}) to read what it holds now.", UserWarning,
                      stacklevel=3)


def no_x(group, path):
    """The message for the Zarr ``group`` at ``path`` that has no array ``X``, naming the arrays it has."""
    arrays = sorted(readable_metadata(path, lambda: [(k, a.ndim == 2 and a.dtype.kind in "biuf")
                                                     for k, a in group.arrays()]))
    held = f"; it holds the array(s) {first_few([k for k, _ in arrays])}" if arrays else ", nor any other array"
    data = [k for k, two_d in arrays if two_d]  # an array of (rows, features) of numbers: not a coordinate
    example = f" ({path.rstrip('/')}/{data[0]})" if data else ""
    return f"The Zarr group {path!r} has no array 'X'{held}. Pass the array itself or its path{example}."


#: What finishes or mends a store that dask_gmm generated, for messages.
RERUN = "the same generate command (for the store of `dask-gmm demo`, the same demo command)"


def group_data(group, path):
    """The array ``X`` of the Zarr ``group`` (at ``path``, for messages), checked as
    :func:`checked_generated` checks it; a ValueError when there is none."""
    node = member(group, "X", path)
    record = generator_record(group, path) if node is None else {}
    if record and not record.get("complete", False):
        raise ValueError(_incomplete(path, _local_folder(group), "has no array 'X' yet"))
    if record:
        raise ValueError(lost_x(path))
    if node is None:
        raise ValueError(no_x(group, path))
    if isinstance(node, zarr.Group):
        raise ValueError(f"'X' in the Zarr group {path!r} is a group, not an array. Pass the path of "
                         "the data array itself.")
    return checked_generated(node, path, generator_record(group, path))


def _incomplete(path, folder, what):
    """What to say of the generated store at ``path`` (its local folder, or None) that ``what``
    ("is incomplete", ...): a run of generate is writing it now, or one was interrupted (which a
    store being written had been called too, a review)."""
    from ._files import being_written

    if folder is not None and being_written(folder):
        return (f"The store {path!r} {what}: a run of generate is writing it now. Wait for that run to finish, "
                "then try again.")
    return f"The store {path!r} {what}: its generation was interrupted. Rerun {RERUN} to finish it."


def lost_x(path):
    """What to say of a generated store at ``path`` (complete) that has lost its array X."""
    return f"The store {path!r} is damaged: it has lost its array 'X'. Restore it, or regenerate it (generate --overwrite)."


def checked_generated(X, path, status=None):
    """``X``, unless it is the array X of a store that :func:`dask_gmm.generate_mixture` left
    incomplete, or whose shape has changed since (a ValueError saying so). ``status`` is the
    generator's record of the group holding X, found from X itself when not given (whichever way X
    was opened: the group's path, the array's, or a ``zarr.Array`` or ``zarr.Group`` object)."""
    if status is None:
        status = holding_status(X)
    if status and not status.get("complete", False):
        folder = _local_folder(X)  # X's own; the lock is its group's
        raise ValueError(_incomplete(path, folder and os.path.dirname(folder), "is incomplete"))
    changed = reshaped(status, X)
    if changed:
        raise ValueError(f"The store {path!r} is damaged: {changed}. Restore it, or regenerate it.")
    _refuse_cf_encoded(X, path)
    return X


#: The attributes by which xarray (CF conventions) packs a variable's values into other numbers.
CF_PACKING = ("scale_factor", "add_offset")
#: The attributes by which it marks missing values with a number.
CF_MISSING = ("_FillValue", "missing_value")


def _cf_number(value):
    """A missing-value code as xarray records it: a number, or in Zarr v3 a float's little-endian
    bytes in base64 (``'AAAAAICHw8A='`` for -9999.0); None for anything else."""
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            return None
        return struct.unpack({8: "<d", 4: "<f"}[len(raw)], raw)[0] if len(raw) in (4, 8) else None
    return value


def _cf_resigned(dtype, attrs):
    """Whether a CF ``_Unsigned`` attribute in ``attrs`` makes xarray read integers of ``dtype`` with
    the other sign: ``"true"`` on signed integers (unsigned bytes kept as int8, as netCDF-3 keeps
    them), ``"false"`` on unsigned ones (xarray's own test, ``_convert_unsigned_fill_value``)."""
    unsigned = attrs.get("_Unsigned")
    return (dtype.kind, unsigned) in (("i", "true"), ("u", "false"))


def _refuse_cf_encoded(X, path):
    """A ValueError when the Zarr array ``X`` (at ``path``, for messages) holds CF-encoded values, as
    xarray writes a variable given an encoding: numbers packed by a ``scale_factor`` or
    ``add_offset``, integers whose sign an ``_Unsigned`` attribute changes, or a number (not NaN)
    that marks missing values (``_FillValue`` or ``missing_value``, an attribute in Zarr v3; in v2
    xarray's fill value, with its dimension names). Read raw, they were fitted in packed units (each
    byte of 128 or more of an ``_Unsigned`` int8 as that less 256), each missing value a row of that
    number."""
    attrs = X.attrs.asdict()
    said = [f"{k} {attrs[k]!r}" for k in CF_PACKING if k in attrs]
    if _cf_resigned(X.dtype, attrs):
        said.append(f"_Unsigned {attrs['_Unsigned']!r} on {X.dtype}")
    codes = [_cf_number(attrs[k]) for k in CF_MISSING if k in attrs]
    if X.metadata.zarr_format == 2 and "_ARRAY_DIMENSIONS" in attrs:
        codes.append(X.fill_value)
    codes = [c for c in codes if isinstance(c, (int, float, np.number)) and not isinstance(c, bool) and np.isfinite(c)]
    said += [f"{c!r} marks missing values" for c in dict.fromkeys(c.item() if isinstance(c, np.generic) else c
                                                                    for c in codes)]
    if said:
        raise ValueError(
            f"The Zarr array {path!r} holds CF-encoded values ({', '.join(said)}), as xarray writes them: its "
            "stored numbers are not the data's. Open it with xarray (xr.open_zarr(STORE)[NAME]), which decodes "
            "them, drop rows with missing values, and pass the result's .data (for the command line, write that to "
            "a Zarr store of its own)."
        )


def holding_group(X, member="X"):
    """The Zarr group that holds the Zarr array ``X`` under the name ``member``, or None."""
    store, key = X.store_path.store, X.store_path.path
    try:
        if key:
            parent, _, name = key.rpartition("/")
            group = open_read_only(store, parent, zarr.open_group) if name == member else None
        elif isinstance(store, zarr.storage.LocalStore):  # the array is its store's root: its folder's parent
            name, parent = store.root.name, store.root.absolute().parent
            if name != member or not any((parent / f).is_file() for f in ("zarr.json", ".zgroup")):
                return None  # no group there: two stat calls, where zarr's open_group took 1.1 ms to say so
            group = open_read_only(zarr.storage.LocalStore(parent, read_only=True), "", zarr.open_group)
        else:
            return None
    except (OSError, ValueError, KeyError, TypeError):  # no group there (zarr's errors are ValueErrors), or
        return None  # one it cannot read: nothing generated to check
    return group


def holding_status(X, member="X"):
    """The generator's record in the group that holds the Zarr array ``X`` under the name ``member``
    ("X", or "labels"), or {}."""
    group = holding_group(X, member)
    return {} if group is None else generator_record(group, str(X.store_path))


#: The generator's record (:data:`STATUS_ATTR`): the type of each of its keys. A record with a
#: ``format`` holds them all.
_RECORD = {"complete": (bool,), "n_samples": (int,), "n_features": (int,), "n_components": (int,),
           "chunk_size": (int,), "dtype": (str,), "seed": (int, list), "spawn_key": (list,)}


def generator_record(group, path, advice="Restore it, or regenerate it."):
    """The generator's record of the Zarr ``group`` at ``path`` (its attribute :data:`STATUS_ATTR`), a
    dict; {} when there is none. A ValueError calling the store damaged, with ``advice``, when it is
    not a record the generator writes (edited: a list, a string, a key missing or of another type)."""
    record = group.attrs.get(STATUS_ATTR)
    if record is None:
        return {}
    ok = isinstance(record, dict) and all(type(record[k]) in t for k, t in _RECORD.items() if k in record)
    if not ok or ("format" in record and not _RECORD.keys() <= record.keys()):
        raise ValueError(f"The store {path!r} is damaged: its attribute {STATUS_ATTR!r}, the generator's record, "
                         f"is {record!r:.160} (its metadata was edited). {advice}")
    return dict(record)


def reshaped(status, X, labels=None):
    """What differs between the array ``X`` (and ``labels``, when given) of a generated store and the
    shape, chunks and dtype its generator recorded in ``status`` (a sentence), or None (also for a
    store not generated)."""
    if not {"n_samples", "n_features", "chunk_size"} <= status.keys():
        return None
    want = ((status["n_samples"], status["n_features"]), status["chunk_size"])
    if (tuple(X.shape), X.chunks[0]) != want:
        return (f"its array X has shape {tuple(X.shape)} in chunks of {X.chunks[0]:,} rows, but was generated "
                f"with shape {want[0]} in chunks of {want[1]:,} rows (its metadata was edited or replaced)")
    if "dtype" in status and np.dtype(X.dtype).name != status["dtype"]:
        return (f"its array X holds {np.dtype(X.dtype).name}, but was generated as {status['dtype']} (its "
                "metadata was edited or replaced: its bytes would be read as other numbers)")
    if labels is not None and (tuple(labels.shape), labels.chunks[0]) != ((want[0][0],), want[1]):
        return (f"its array labels has shape {tuple(labels.shape)} in chunks of {labels.chunks[0]:,}, but was "
                f"generated with shape ({want[0][0]},) in chunks of {want[1]:,} (its metadata was edited or replaced)")
    return None


def member(group, name, path):
    """``group[name]``, or None when the group at ``path`` has no such member; its metadata unreadable,
    a ValueError (:func:`readable_metadata`). zarr says both with a KeyError: of the name, or of the
    metadata key it missed."""
    def get():
        try:
            return group[name]
        except KeyError as exc:
            if exc.args == (name,):
                return None
            raise

    return readable_metadata(path, get)


def _chain_protocols(path):
    """The protocol of each member of the URL ``path``'s ``::`` chain (a bare member, ``simplecache``,
    is its own protocol)."""
    return [fsspec.core.split_protocol(part)[0] if "://" in part else part for part in path.split("::")]


def _check_protocols(path):
    """A ValueError when the URL ``path`` (or a member of its ``::`` chain) names a protocol that
    fsspec does not know (zarr's ValueError read as damaged metadata); an ImportError naming
    ``path`` when the package of a protocol it knows is not installed (s3fs for ``s3://``)."""
    if "://" not in path:
        return
    known = set(fsspec.available_protocols())
    for protocol in _chain_protocols(path):
        if protocol and protocol not in known:
            raise ValueError(f"{path!r} is a URL of protocol {protocol!r}, which fsspec does not know. "
                             "Check the URL (a local path needs no protocol).")
        if protocol:
            try:
                fsspec.get_filesystem_class(protocol)
            except ImportError as exc:  # fsspec's advice, e.g. "Install s3fs to access S3"
                raise ImportError(f"Cannot open {path!r}: {exc}.") from exc


def open_node(path):
    """The Zarr array or group at the local path or URL ``path``, read-only; a ValueError when
    there is none, and a :class:`DamagedMetadata` when its metadata (``zarr.json``) cannot be
    read or is missing from a local folder that holds Zarr nodes and nothing else."""
    _check_protocols(path)
    try:
        return readable_metadata(path, lambda: open_read_only(path))
    except (FileNotFoundError, zarr.errors.NodeNotFoundError):
        members = member_nodes(path)
        if members and not foreign_files(path):  # a group's zarr.json deleted: still a store (an overwrite may replace it)
            raise DamagedMetadata(
                f"{path!r} has no Zarr metadata of its own (zarr.json) but holds the Zarr node(s) "
                f"{first_few(sorted(members))}: a store that lost its root metadata, or a folder of stores. "
                "Restore the store's metadata, or give the path of one of those nodes."
            ) from None
        refuse_zip_file(path)
        if isinstance(path, str) and os.path.isfile(path):  # a CSV, a model file: the path is right
            raise ValueError(f"{path!r} is a file, not a Zarr store (a folder of Zarr metadata and chunks). "
                             "Give the path of a Zarr store (convert the data to one first).") from None
        raise ValueError(f"No Zarr store found at {path!r}. Check the path.") from None


def refuse_zip_file(path):
    """A ValueError if ``path`` is a local zip file holding Zarr metadata: a Zarr store zipped whole
    is opened by a zip:: URL (a zip of something else, NumPy's ``.npz``, is just a file)."""
    if isinstance(path, str) and os.path.isfile(path) and zipfile.is_zipfile(path) and _zips_zarr(path):
        url = pathlib.Path(path).absolute().as_uri()
        raise ValueError(f"{path!r} is a zip file. A Zarr store zipped whole is read by its URL 'zip::{url}' "
                         f"('zip://FOLDER::{url}' for a store in a folder of the zip).")


def _zips_zarr(path):
    """Whether the zip file ``path`` holds Zarr metadata (a ``zarr.json``, ``.zarray`` or ``.zgroup``)."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(name.rpartition("/")[2] in ("zarr.json", ".zarray", ".zgroup") for name in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def open_read_only(store, path="", opener=zarr.open):
    """``opener(store, path=path)`` read-only (``zarr.open`` or ``zarr.open_group``): as a Zarr v3
    node first, else as whatever zarr finds there (v2).

    Asked for v3, zarr reads ``zarr.json`` alone, where it otherwise reads the v2
    metadata files alongside: 1.07-1.16 ms against 1.56-1.87 ms an open of a
    local array or group (medians of 300)."""
    try:
        return opener(store=store, path=path, mode="r", use_consolidated=False, zarr_format=3)
    except (FileNotFoundError, zarr.errors.NodeNotFoundError):
        return opener(store=store, path=path, mode="r", use_consolidated=False)


class DamagedMetadata(ValueError):
    """A Zarr store whose metadata (``zarr.json``) cannot be read: still a store, which an
    overwrite may replace."""


def readable_metadata(path, read):
    """``read()``, a zarr open or lookup under ``path``, with zarr's errors over metadata it cannot
    read (bad JSON, missing or mistyped keys, a JSON list: ValueError, KeyError, TypeError or
    AttributeError) said as one :class:`DamagedMetadata`, chained to zarr's; an absent node's
    error passes through."""
    try:
        return read()
    except (FileNotFoundError, zarr.errors.NodeNotFoundError):
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DamagedMetadata(
            f"The Zarr metadata in {path!r} cannot be read ({type(exc).__name__}: {exc}): the store is "
            "corrupt, or in a form this zarr does not read. Restore or regenerate it."
        ) from exc


def first_few(names, sep=", "):
    """The first five of ``names`` joined by ``sep``, and ``...`` when there are more: for messages."""
    return sep.join(names[:5]) + (f"{sep}..." if len(names) > 5 else "")


def refuse_unwritten(arrays, path, advice):
    """A ValueError when chunks just written to ``arrays`` (Zarr arrays of the store ``path``) are not
    in the store as this process sees it: a cluster's workers wrote them to a disk of their own.
    ``advice`` ends the message."""
    lost = [f"{a.path}/{key}" if a.path else key for a in arrays for key in missing_chunks(a)]
    if lost:
        raise ValueError(f"{len(lost)} chunks written for {path} are not in the store as this process sees it "
                         f"({first_few(lost)}); a cluster's workers may have written them to a disk of their "
                         f"own. {advice}")


def _store_name(arr):
    """The path or URL of the Zarr array ``arr``, for messages (an fsspec store's URL, not its repr)."""
    store = arr.store_path.store
    if not isinstance(store, zarr.storage.FsspecStore):
        return str(arr.store_path)
    fs = getattr(store.fs, "sync_fs", store.fs)
    cached = getattr(fs, "fs", None)  # simplecache::file://...: a caching layer over the target's paths
    if isinstance(fs, CachingFileSystem) and cached is not None:
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        return f"{protocol}::" + "/".join(p for p in (cached.unstrip_protocol(store.path), arr.store_path.path) if p)
    name = "/".join(p for p in (store.fs.unstrip_protocol(store.path), arr.store_path.path) if p)
    options = fs.storage_options  # a chained URL's target: zip://...::file://...
    target = options.get("fo")
    if isinstance(target, str):
        name += "::" + (target if "://" in target else f"{options.get('target_protocol') or 'file'}://{target}")
    return name


#: The dask config key that says what a chunk absent from a Zarr store is: ``"error"`` (the default:
#: the store is refused, as one that lost chunks) or ``"fill"`` (zarr's reading: its fill value,
#: for chunks absent when the read began; one removed after is still an error). Set it with
#: ``dask.config.set({"dask_gmm.absent-chunks": "fill"})``, or ``DASK_DASK_GMM__ABSENT_CHUNKS=fill``.
ABSENT_CHUNKS = "dask_gmm.absent-chunks"
ABSENT_CHUNKS_ENV = "DASK_DASK_GMM__ABSENT_CHUNKS"  # the same, in the environment (dask's naming)


def _absent_as_fill():
    """Whether chunks absent from a Zarr store are read as its fill value (:data:`ABSENT_CHUNKS`)."""
    how = dask.config.get(ABSENT_CHUNKS, "error")
    if how not in ("error", "fill"):
        raise ValueError(f"The dask config {ABSENT_CHUNKS!r} ({ABSENT_CHUNKS_ENV} in the environment) "
                         f"must be 'error' or 'fill', got {how!r}.")
    return how == "fill"


def _written_since(name):
    """The error for the chunk ``name``, absent when a read began (read as fill values: :data:`ABSENT_CHUNKS`)
    and holding data now."""
    return (f"{name} was absent from its store when the read began, and read as fill values ({ABSENT_CHUNKS!r} "
            "is 'fill'), but holds data now: the store was written during the read, and what was read mixes "
            "data from before and after. Rerun it once the store is no longer being written.")


def _fill_value(fill):
    """The value zarr reads for an absent chunk of an array whose ``fill_value`` is ``fill``."""
    return 0 if fill is None else fill


def _absent_chunks(arr):
    """A ValueError naming the chunks absent from the store of ``arr`` (:func:`missing_chunks`), unless
    :data:`ABSENT_CHUNKS` is ``"fill"``: then their names (a frozenset, logged; the keys of absent
    chunks or shards, and a sharded array's unwritten inner chunks), read as fill values."""
    fill = _absent_as_fill()
    gone = missing_chunks(arr)
    if gone and fill:
        logger.info("The Zarr array %r: %d chunks absent, read as fill values (%s is 'fill')",
                    _store_name(arr), len(gone), ABSENT_CHUNKS)
    elif gone:
        shown = first_few(gone)
        raise ValueError(
            f"The Zarr array {_store_name(arr)!r} is missing {len(gone)} of its chunks ({shown}); zarr would read them "
            f"as fill values. Restore the store; one that dask_gmm generated, rerun {RERUN} "
            "to write them again; write any other with config={'write_empty_chunks': True} (xarray: "
            "to_zarr(..., write_empty_chunks=True)) so that no chunk is left out (zarr leaves out a chunk that "
            "is all fill value, such as rows of zeros), or, if they were left out so, read them as fill "
            f"values: dask.config.set({{{ABSENT_CHUNKS!r}: 'fill'}}) ({ABSENT_CHUNKS_ENV}=fill)."
        )
    return frozenset(gone)


def settle_zarr(timeout=2.0):
    """Wait, up to ``timeout`` seconds, for the tasks on zarr's event-loop thread to end.

    A zarr call interrupted (Ctrl-C, SIGTERM) leaves its coroutine running there: a store's
    metadata being written, say. Removed before it ends, a temporary store came back (its
    ``zarr.json`` written after the removal), and the interpreter's exit printed asyncio's
    complaints of tasks cut short. Call it before cleaning up after an interrupt."""
    loop = zarr_sync.loop[0]
    if loop is None or not loop.is_running():
        return

    async def others():
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    try:
        asyncio.run_coroutine_threadsafe(others(), loop).result(timeout + 1.0)
    except Exception:  # a loop closing, a timeout: nothing more to wait for
        pass


def warn_at_caller(message, category=UserWarning):
    """A warning (UserWarning by default) that names the first line outside this package (the
    user's), however deep in it the warning is found (``fit``, ``predict`` and ``score`` reach
    here at other depths)."""
    frame, level = sys._getframe(0), 1
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] == __package__:
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def _from_zarr(arr, min_samples=1, direct=False):
    """``arr`` as a dask array of whole rows, checked; ``direct``: read by a :class:`ZarrRows` instead,
    which puts the rows together as it reads them (no warning of chunks across the features)."""
    _check_shape_dtype(arr.shape, arr.dtype, min_samples)
    absent = _absent_chunks(arr)
    unit = arr.shards or arr.chunks
    n, d = arr.shape
    if unit[1] < d and not direct:
        warn_at_caller(
            f"The Zarr array is chunked across features (chunks {arr.chunks}); it is rechunked "
            "to whole rows, which reads more. Store it with chunks=(rows, n_features)."
        )
    rows = _rows_for(n, d, arr.dtype.itemsize, base=unit[0], min_chunks=2 * MIN_CHUNKS)
    x = _zarr_blocks(arr, (unit[0], unit[1]), absent)
    return x.rechunk({0: rows, 1: d}) if (rows != unit[0] or unit[1] < d) else x


def _zarr_blocks(arr, chunks, absent=frozenset()):
    """``arr`` as a dask array read through zarr, ``da.from_zarr`` but for the errors; the chunks
    whose keys are in ``absent`` (:func:`_absent_chunks`) read as fill values.

    Each block (``chunks``, which lie within one chunk or shard each) is read by
    :func:`_zarr_block`, which names the chunk when zarr cannot decode it, through
    :func:`dask_gmm._codecs.bounded_reads` (a decode bomb is refused before it is decoded). The
    name is random, as _row_views gives: dask's own hashes the array (0.4 of
    the 0.8 ms a call takes); ``meta`` is given, where dask reads an empty
    selection through zarr to make it (0.25 ms). The array is inlined into
    each block's task: as a graph key of its own, two passes on a distributed
    cluster submitted a block once as an alias of it and once as a task, and
    the scheduler warned of a key conflict that "can cause failures and deadlocks".
    """
    getitem = functools.partial(_zarr_block, absent=absent) if absent else _zarr_block
    arr = _codecs.bounded_reads(arr)
    return da.from_array(arr, chunks=chunks, name=f"from-zarr-{uuid.uuid4().hex}", getitem=getitem,
                         inline_array=True, meta=np.empty((0, 0), arr.dtype))


#: What the codecs of zarr and numcodecs raise on stored bytes they cannot decode (seen with
#: chunks truncated, garbled or replaced, under Blosc, Zstd, LZ4, gzip, zlib, LZMA, crc32c and
#: no compressor). gzip's BadGzipFile is an OSError, the one such named here.
_DECODE_ERRORS = (RuntimeError, ValueError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile)


#: How to regenerate a corrupt store, in the library's words; the command line says it in its own.
REGENERATE = "(a store of generate_mixture: rerun it with overwrite=True, `dask-gmm generate --overwrite`)"


def _undecodable(name, exc):
    """The message for the chunk ``name`` that a codec could not decode (its error ``exc``): zarr's
    checksum mismatch said in words, not as the two checksums' raw bytes."""
    said = re.match(r"Stored and computed (\w+ )?checksum do not match", str(exc))  # zarr's crc32c; numcodecs names its own
    why = f"its {(said.group(1) or 'crc32c ')}checksum does not match its bytes" if said else str(exc)
    return f"{name} cannot be decoded ({why}); the store is corrupt. Restore or regenerate it {REGENERATE}."


def _is_decode_error(exc):
    """Whether ``exc``, raised while zarr read a block, says the stored bytes are bad.

    Only the codecs' errors (:data:`_DECODE_ERRORS`) do. Anything else passes
    through unchanged: an OSError is the read failing (a disk, the network, a
    permission), a MemoryError is not the data's fault, and neither are the
    errors of a remote store's own libraries (an HTTP server's 503 reaches
    here as aiohttp's ClientResponseError, which is none of these). Nor is a
    RuntimeError of the machine's resources: a thread that could not start
    (zarr decodes a shard's inner chunks on threads; under ``ulimit -v`` a
    review's fit was told its good store was corrupt, and to regenerate it).
    """
    if isinstance(exc, RuntimeError) and "can't start new thread" in str(exc):
        return False
    return isinstance(exc, _DECODE_ERRORS)


def _storage_key(arr, coords):
    """The key in its store of the chunk (or shard) of ``arr`` at grid coordinates ``coords``."""
    key = arr.metadata.encode_chunk_key(tuple(coords))
    path = arr.store_path.path
    return f"{path}/{key}" if path else key


def _chunk_coords(arr, index):
    """The grid coordinates of the chunk (or shard) of ``arr`` holding the block ``index`` (a tuple of slices)."""
    return tuple(s.start // u for s, u in zip(index, arr.shards or arr.chunks))


def _chunk_key(arr, index):
    """The storage key of the chunk (or shard) of ``arr`` holding the block ``index`` (a tuple of slices)."""
    return _storage_key(arr, _chunk_coords(arr, index))


def _chunk_name(arr, index):
    """``'KEY' of the Zarr array (rows A-B)``, for the block ``index`` of ``arr``."""
    what = "Shard" if arr.shards else "Chunk"
    last = min(index[0].stop, arr.shape[0]) - 1
    return f"{what} {_chunk_key(arr, index)!r} of the Zarr array (rows {index[0].start}-{last})"


def _all_fill(block, fill):
    """Whether every value of ``block`` is the fill value ``fill`` (NaN matching NaN); a few values
    are looked at first, so a block of data costs almost nothing."""
    flat = block.reshape(-1)
    fill = _fill_value(fill)
    same = (lambda x: np.isnan(x)) if np.isnan(np.asarray(fill, float)) else (lambda x: x == fill)
    return bool(same(flat[[0, flat.size // 2, -1]]).all() and same(flat).all())


def _zarr_block(arr, index, asarray=True, lock=None, absent=frozenset()):
    """dask's ``getter`` of the block ``index`` (a tuple of slices) of the Zarr array ``arr``.

    A block zarr cannot decode raises ValueError naming its chunk (or shard) and
    rows, as :meth:`ZarrRows.chunk` does, chained to zarr's error. So does a
    block whose chunk is no longer in the store (removed after the store was
    opened, or a server answering 404): zarr reads it as the fill
    value, so a block that is all fill value is looked up in the store. A chunk in ``absent``
    (absent when the read began, read as fill values: :data:`ABSENT_CHUNKS`) that holds data now
    is refused: the store was written during the read.
    """
    if (root := _local_root(arr)) is not None:  # the block's chunk file, before zarr reads it
        try:  # a FIFO had waited forever
            _check_regular(os.path.join(root, _chunk_key(arr, index)))
        except (FileNotFoundError, NotADirectoryError):  # absent: found below
            pass
    try:
        block = getter(arr, index, asarray=asarray, lock=lock)
    except Exception as exc:
        if not _is_decode_error(exc):
            raise
        raise ValueError(_undecodable(_chunk_name(arr, index), exc)) from exc
    filled = block.size and _all_fill(np.asarray(block), arr.fill_value)
    if absent and arr.metadata.encode_chunk_key(_chunk_coords(arr, index)) in absent:
        if block.size and not filled:  # written since: early passes read fill values, later ones data
            raise ValueError(_written_since(_chunk_name(arr, index)))
        return block  # absent when the read began, and read as fill values
    if filled:
        if not _stored(arr, _chunk_key(arr, index)):
            raise ValueError(
                f"{_chunk_name(arr, index)} is missing from its store (removed after the store was opened, "
                "a server that lists it did not serve it, or a cluster's worker that does not see the store: "
                "a memory:// store, or a path on this machine's disk only); zarr would read it as fill values. "
                "Restore the store, or give the workers a path or URL they share."
            )
    return block


#: Chunks found stored by :func:`_stored`, by store and key: a chunk whose values are all the fill
#: value (weights of 0) is looked up once per process, not once per pass. One removed later reads
#: as the same values. Cleared when it grows past 2**16 entries.
_STORED = set()


def _stored(arr, key):
    """Whether the chunk ``key`` is in the store of ``arr``."""
    found = (str(arr.store_path.store), key)
    if found in _STORED:
        return True
    if not sync(arr.store_path.store.exists(key)):
        return False
    if len(_STORED) >= 2**16:
        _STORED.clear()
    _STORED.add(found)
    return True


def _check_regular(path):
    """A ValueError unless the chunk file ``path`` is a regular file (an OSError where there is none):
    a link to /dev/zero in a store was read without end, one to a FIFO waited forever for a writer
    (a review). Asked by ``os.stat`` (1.4 us a file, timeit)."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise ValueError(f"The chunk file {path!r} is not a regular file (a device, a FIFO or a socket, or a link "
                         f"to one): the store is damaged. Restore or regenerate it {REGENERATE}.")


def _open_chunk_file(path):
    """The chunk file ``path`` opened to read (unbuffered), once found to be a regular file
    (:func:`_check_regular`), before the open: an ``O_NONBLOCK`` opener in Python left the file open
    when a Ctrl-C came as it returned."""
    _check_regular(path)
    return open(path, "rb", buffering=0)


def _read_file(path, room):
    """The bytes of the file ``path`` (uint8), in this thread's reused buffer ``"file"`` of at least
    ``room`` bytes (grown for a larger file), or None when there is no such file (as
    ``LocalStore.get_sync``). Read by ``os.readv`` into the buffer, not by the file object's
    ``read``: each call lets go of the GIL, and two threads reading 16 KB chunk files took 6.3 us a
    file that way (3.1 us alone), 2.0 us this way (1.4 us alone). Opened as a file object (its
    ``fstat`` 1.1-1.5 us more a file), which a Ctrl-C arriving as it is made closes: ``os.open``'s
    number was left open (a review: 45 of 300 interrupted passes over a store of small chunks)."""
    try:
        f = _open_chunk_file(path)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    with f:
        fd, buf, n = f.fileno(), _scratch("file", room), 0
        while True:  # a read returns at most 2 GiB, a network file system maybe less
            got = _read_into(fd, buf[n:])
            if not got:
                return buf[:n]
            n += got
            if n == buf.size:  # there may be more: room for all of it
                more = _scratch("file", max(2 * n, os.fstat(fd).st_size + 1))
                more[:n] = buf  # the same memory when the buffer was already large enough
                buf = more


def _in_page_cache(fd):
    """Whether the first and the last byte of the open file ``fd`` are in the page cache, asked
    without waiting for the disk (``preadv`` with ``RWF_NOWAIT``: 3 us a file); False where the
    system cannot tell (no ``RWF_NOWAIT``, a file system that refuses it, as tmpfs does). A file
    read in order has its first pages evicted first, and its last read in last; but asking is an
    access, which keeps those two pages longer than the others (a review saw a 4 MiB file with 66
    of its 1,024 pages cached, the first and the last 65, called cached): :meth:`ZarrRows.prefetch`
    asks only for stores far smaller than memory. Asking about a page not there starts its read,
    as a read that waits would."""
    try:
        size = os.fstat(fd).st_size
        if not size:
            return True
        return all(os.preadv(fd, [bytearray(1)], at, os.RWF_NOWAIT) == 1 for at in {0, size - 1})
    except (OSError, AttributeError):  # BlockingIOError: not in the page cache
        return False


def _memory_bytes():
    """This machine's physical memory in bytes (0 where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return 0


#: A store whose rows take at most this share of the machine's memory has its files asked
#: whether they are cached before they are hinted (:meth:`ZarrRows.prefetch`).
CACHED_SHARE = 0.25


def _readv_into(fd, view):
    """Read from the file ``fd`` into the uint8 array ``view``; the number of bytes read."""
    return os.readv(fd, [view])


def _copied_into(fd, view):
    """:func:`_readv_into` where there is no ``os.readv`` (Windows): a read, then a copy."""
    data = os.read(fd, view.size)
    view[: len(data)] = np.frombuffer(data, np.uint8)
    return len(data)


_read_into = _readv_into if hasattr(os, "readv") else _copied_into


def _file_size(path):
    """The size in bytes of the file ``path``, -1 when there is none."""
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


def _worker_address():
    """The address of the ``distributed`` worker this runs on, else None."""
    distributed = sys.modules.get("distributed")
    try:
        return distributed.get_worker().address
    except (AttributeError, ValueError):  # no distributed, or not in a worker
        return None


_SCRATCH = threading.local()  # this thread's buffers that ZarrRows.pieces reads and decodes chunks into
SCRATCH_BYTES = 16 * 2**20  # a larger chunk is read into new buffers (each thread keeps at most four of this, and a group)
#: Zarr chunks smaller than half of this are read in groups of this size, each one piece of
#: :meth:`ZarrRows.pieces`: a kernel's call costs 10-20 us, an E-step of 1,000 rows at d=2 5 us.
GROUP_BYTES = 2**20


def _scratch(name, nbytes):
    """This thread's reused buffer ``name``, at least ``nbytes`` long: a view of its first ``nbytes``
    (uint8). New for a chunk over :data:`SCRATCH_BYTES`, kept by no one."""
    if nbytes > SCRATCH_BYTES:
        return np.empty(nbytes, np.uint8)
    buf = getattr(_SCRATCH, name, None)
    if buf is None or buf.size < nbytes:
        buf = np.empty(min(nbytes + nbytes // 8, SCRATCH_BYTES), np.uint8)  # room for the next, larger chunk
        setattr(_SCRATCH, name, buf)
    return buf[:nbytes]


class ZarrRows:
    """Reads the row chunks of a Zarr v3 array in the calling thread, one Zarr chunk at a time.

    zarr's own read path hands every chunk to its event-loop thread and then to
    worker threads (store read, decode); when every core is busy in kernels, each
    hand-off waits for the OS scheduler, and a fit from disk ran at half its
    in-memory speed. Here a chunk is fetched with the store's ``get_sync`` and
    decoded with each codec's ``_decode_sync`` (zarr's synchronous protocols),
    and a fit can feed each decoded chunk to a kernel while it is still in cache.
    A chunk absent from the store raises instead of reading as the fill value, unless
    :data:`ABSENT_CHUNKS` is ``"fill"`` and it was absent when the reader was made.
    Make one with :func:`zarr_rows`.

    :meth:`pieces` reads a local store's chunk files, and decodes Blosc, into
    buffers each thread reuses (:func:`_scratch`), not into new ones per chunk:
    with glibc's allocation set as a ``distributed`` worker's nanny sets it
    (``MALLOC_TRIM_THRESHOLD_``), every new 4 MiB buffer was mapped afresh and
    faulted in page by page, and a chunk took 4.2 ms to read and decode where
    it took 0.9 ms in a plain process (1.2 ms in reused buffers).

    Parameters
    ----------
    arr : zarr.Array of shape (n_samples, n_features), float32 or float64

    A row's features may lie in several chunks (zarr's own default chunking, ``(rows, 1)``
    for few features): each of a band of rows is decoded and copied into its columns of one
    array of whole rows (this thread's reused buffer). Read through zarr and dask's rechunk
    instead, a fit of such a store ran 2.5 times as long as one of whole rows. From 2 features
    a chunk, or 8 chunks a band, the band's chunks are decoded into one more reused buffer and
    put together a tile of rows at a time (:func:`dask_gmm._numba.interleave`).
    """

    def __init__(self, arr):
        self.array = arr
        self.shape, self.dtype = arr.shape, np.dtype(arr.dtype).newbyteorder("=")
        self.chunk_rows, self.chunk_columns = arr.chunks
        self._columns = range(-(-self.shape[1] // self.chunk_columns))  # the chunks across a row's features
        md = arr.metadata
        codecs = md.codecs
        self._aa = [c for c in codecs if isinstance(c, ArrayArrayCodec)]
        (self._ab,) = [c for c in codecs if isinstance(c, ArrayBytesCodec)]
        self._bb = [c for c in codecs if isinstance(c, BytesBytesCodec)]
        # the chunk's spec before each array-to-array codec, then the one the bytes codecs see
        spec = md.get_chunk_spec((0, 0), arr.async_array.config, default_buffer_prototype())
        self._specs = [spec]
        for codec in self._aa:
            self._specs.append(codec.resolve_metadata(self._specs[-1]))
        self._bytes_spec = self._ab.resolve_metadata(self._specs[-1])
        endian = getattr(self._ab, "endian", None)  # the stored dtype, where the bytes codec is zarr's alone
        plain = not self._aa and type(self._ab) is BytesCodec
        self._stored = np.dtype(arr.dtype).newbyteorder("=" if endian is None else endian.value) if plain else None
        store = arr.store_path.store
        self._files = str(store.root) if isinstance(store, zarr.storage.LocalStore) else None  # the chunk files' folder
        self._root = self._files if hasattr(os, "posix_fadvise") else None  # where prefetch finds them
        into = [c for c in self._bb if type(c) in _codecs.DECODE_INTO]
        self._into = into[0] if len(into) == 1 else None  # decoded into a reused buffer
        self._chunk_bytes = math.prod(arr.chunks) * self.dtype.itemsize  # its output for a chunk
        self._file_bytes = self._chunk_bytes + self._chunk_bytes // 64 + 4096  # room for one stored as is
        self._most_decoded = self._file_bytes  # the most any codec's decode may make (_decode_bytes)
        self._token = uuid.uuid4().hex
        # the keys of the chunks absent when it was made, read as fill values (ABSENT_CHUNKS "fill")
        self._absent = frozenset(missing_chunks(arr)) if _absent_as_fill() else frozenset()

    def __dask_tokenize__(self):
        """This reader's token for dask: its own, which its pickled copies keep. A distributed
        Client tokenizes every pass's graph, and without it dask pickled this reader to hash it:
        0.7 ms for each task of each pass."""
        return ("ZarrRows", self._token)

    def _key(self, i, j=0):
        return _storage_key(self.array, (i, j))

    def _chunks(self, start, stop):
        """The indices of the Zarr chunks overlapping rows [start, stop)."""
        return range(start // self.chunk_rows, -(-min(stop, self.shape[0]) // self.chunk_rows))

    def sizes(self, start, stop, state=None):
        """The sizes in bytes of the files of the Zarr chunks of rows [start, stop) (-1: absent), one
        tuple for each band of rows (a size for each chunk across the features), as this process
        sees them now, for :meth:`pieces` to compare with the files it reads; None for a store not
        of local files. ``state``, a :class:`StoredFiles` scan, gives the sizes it holds (a stat of
        each of 20,000 chunk files took 0.1 s).

        A task carries the sizes of its own chunks: a cluster's worker that sees another store at
        this path (another disk's copy), or a store rewritten since, is then found at the chunk
        read, by any worker, whenever it joined; the checks of whole stores
        (:func:`refuse_other_files_on_workers`, :meth:`StoredFiles.check`) ask the workers known
        at the start and after each pass, and a worker that joined and left within a pass, or the
        outputs of a predict built before the cluster's Client, escaped them."""
        if self._files is None:
            return None
        folder = self._folder() + os.sep  # as a scan names the files under it
        encode = self.array.metadata.encode_chunk_key
        size = lambda p: state[p][0] if state is not None and p in state else _file_size(p)
        return tuple(tuple(size(folder + encode((i, j))) for j in self._columns) for i in self._chunks(start, stop))

    def _folder(self):
        """The array's folder in its store of local files."""
        return os.path.normpath(os.path.join(self._files, self.array.store_path.path))

    def prefetch(self, start, stop):
        """Ask the OS to start reading the chunks of rows [start, stop) from the disk, and return.

        For a store of local files on a system with ``posix_fadvise`` (Linux); a
        no-op elsewhere. The hint (POSIX_FADV_WILLNEED) queues each chunk file's
        reads at once, so that the disk works while the cores decode and compute,
        and later reads find the rows in the page cache. In a store whose rows take at
        most :data:`CACHED_SHARE` of the machine's memory, a file already there
        (:func:`_in_page_cache`) is not hinted: the hint went over its pages all the same,
        47 us for a 4 MB file, 1.5 ms an iteration of a 4e6 x 2 store on one thread. A
        larger store's files are always hinted: it cannot all stay cached, and asking
        would keep the pages it asks about cached longer than the rest. A file it cannot
        open is left to the read, which raises; a refused hint is ignored.
        """
        if self._root is None:
            return
        ask = math.prod(self.shape) * self.dtype.itemsize <= CACHED_SHARE * _memory_bytes()
        for i, j in itertools.product(self._chunks(start, stop), self._columns):
            try:
                f = _open_chunk_file(os.path.join(self._root, self._key(i, j)))
            except (OSError, ValueError):  # left to the read, which raises
                continue
            with f:
                try:
                    if not (ask and _in_page_cache(f.fileno())):
                        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_WILLNEED)
                except OSError:  # a file system without the hint reads as before
                    pass

    def _fetch(self, key, reuse):
        """The stored bytes of chunk ``key`` (uint8), or None when it is absent; with ``reuse``, a local
        store's file is read into this thread's reused buffer."""
        if reuse and self._files is not None:
            return _read_file(os.path.join(self._files, key), self._file_bytes)
        buf = self.array.store_path.store.get_sync(key, prototype=self._specs[0].prototype)
        return None if buf is None else buf.as_numpy_array()

    def _decode_bytes(self, codec, src, reuse, dest=None):
        """``codec``'s decode of the bytes ``src`` (uint8), as uint8. Blosc and Zstd decode into
        ``dest`` (uint8, a whole chunk's bytes) when given, else with ``reuse`` this thread's reused
        buffer, else a new one, where their bytes state a whole chunk's size (or Zstd, as the innermost
        codec, states none); else as zarr decodes.

        The output is bounded by a chunk stored as is (``_most_decoded``), whatever the bytes say: a
        size beyond it stated by Blosc's header or by all of Zstd's frames (:func:`dask_gmm._codecs._zstd_decoded_size`)
        is refused before any allocation, Zstd frames of which one states none are decoded into a
        chunk's bytes where Zstd is the innermost codec, and Gzip is read up to it (:func:`dask_gmm._codecs.gunzip`).
        A store of someone else's had decoded whole before its size was found wrong: 164 KB of Zstd
        to 5 GiB, a Blosc header to 2 GiB (a review). Not bounded: Zstd frames stating no size under
        another codec, which zarr decodes.
        """
        if isinstance(codec, _codecs.BLOSC):
            _codecs.check_blosc_length(src[:16].tobytes(), src.size)
        if type(codec) in _codecs.DECODE_INTO:
            size, decompress = _codecs.DECODE_INTO[type(codec)]
            stated = size(src)
            _codecs.check_decoded_size(stated, self._most_decoded, self._chunk_bytes)
            if stated == self._chunk_bytes or (stated is None and codec is self._bb[0]):
                if dest is not None:
                    out = dest
                elif reuse and codec is self._into:
                    out = _scratch("decoded", self._chunk_bytes)
                else:
                    out = np.empty(self._chunk_bytes, np.uint8)
                decompress(src, out)
                return out
        elif isinstance(codec, GzipCodec):
            return _codecs.gunzip(src, self._most_decoded, self._chunk_bytes)
        prototype = self._bytes_spec.prototype
        return codec._decode_sync(prototype.buffer.from_array_like(src), self._bytes_spec).as_numpy_array()

    def chunk(self, i, reuse=False, sizes=None, out=None):
        """The band of rows ``i`` (rows ``i * chunk_rows`` on: a Zarr chunk, or one chunk for each
        group of features), shape (chunk rows, n_features), written into ``out`` when given.

        With ``reuse``, it lies in this thread's reused buffers (:func:`_scratch`),
        valid until this thread reads the next chunk so. ``sizes``, the sizes of its files
        given by :meth:`sizes`: a file of another size is refused."""
        rows = min(self.chunk_rows, self.shape[0] - i * self.chunk_rows)
        sizes = sizes or (None,) * len(self._columns)
        if len(self._columns) == 1 and out is None:
            return self._part(i, 0, rows, reuse, sizes[0])
        d, width = self.shape[1], self.chunk_columns
        if out is None:
            nbytes = rows * d * self.dtype.itemsize
            out = (_scratch("rows", nbytes) if reuse else np.empty(nbytes, np.uint8)).view(self.dtype).reshape(rows, d)
        across = len(self._columns)  # chunks across a row (1: a group's whole rows, copied as they are)
        if _kernels.USE_NUMBA and across > 1 and (width > 1 or across >= 8):  # _numba.interleave's cases
            shape = (across, self.chunk_rows, width)
            nbytes = math.prod(shape) * self.dtype.itemsize
            parts = (_scratch("parts", nbytes) if reuse else np.empty(nbytes, np.uint8)).view(self.dtype).reshape(shape)
            for j, size in zip(self._columns, sizes):
                self._part(i, j, rows, reuse, size, into=parts[j])
            _numba.interleave(out, parts, d)
            return out
        for j, size in zip(self._columns, sizes):
            out[:, j * width : (j + 1) * width] = self._part(i, j, rows, reuse, size)
        return out

    def _part(self, i, j, rows, reuse, size, into=None):
        """The first ``rows`` rows of Zarr chunk ``(i, j)``, within the array's features, as :meth:`chunk`;
        with ``into`` (an array of a whole chunk's shape), the whole chunk written there, and ``into``."""
        key = self._key(i, j)
        first = i * self.chunk_rows
        name = f"Chunk {key!r} of the Zarr array (rows {first}-{first + rows - 1})"
        buf = self._fetch(key, reuse)
        absent = bool(self._absent) and size in (None, -1) and (
            self.array.metadata.encode_chunk_key((i, j)) in self._absent)  # when the reader was made
        if buf is not None and absent:  # written since (a store not of local files has no sizes to tell)
            raise ValueError(_written_since(name))
        if buf is None and absent:  # read as zarr reads it
            x = np.full(self._specs[0].shape, _fill_value(self.array.fill_value), self.dtype)
        elif buf is None:
            raise ValueError(
                f"{name} is missing from its store (removed after it was opened, or a cluster's worker "
                "that does not see the store: a memory:// store, or a path on this machine's disk only); "
                "zarr would read it as fill values. Restore the store, or give the workers a path or URL they share."
            )
        else:
            x = self._decoded(buf, name, reuse, size, i, j, into)
        if into is not None:
            if not np.may_share_memory(x, into):
                into[...] = x
            return into
        width = min(self.chunk_columns, self.shape[1] - j * self.chunk_columns)  # a chunk may be wider
        return np.asarray(x[:rows, :width], dtype=self.dtype)

    def _decoded(self, buf, name, reuse, size, i, j, into):
        """The chunk ``(i, j)`` (named ``name``) decoded from its stored bytes ``buf`` (uint8), as
        :meth:`_part` reads it, refused when ``size`` (:meth:`sizes`) is not ``buf``'s."""
        if size is not None and buf.size != size:
            raise ValueError(self._not_as_set_up(i, j, buf.size, size))
        # decoded straight into ``into`` where its bytes are the chunk's as stored, by the innermost codec
        plain = into is not None and self._stored is not None and self._stored == self.dtype  # (None == float64 dtype)
        dest = into.view(np.uint8).reshape(-1) if plain else None
        try:
            for codec in reversed(self._bb):
                buf = self._decode_bytes(codec, buf, reuse, dest if codec is self._bb[0] else None)
            if self._stored is not None:  # the bytes codec alone, as zarr's: a view of the bytes, 10 us sooner
                x = buf.view(self._stored).reshape(self._specs[0].shape)
            else:
                nd = self._ab._decode_sync(self._specs[-1].prototype.buffer.from_array_like(buf), self._specs[-1])
                for codec, spec in zip(reversed(self._aa), reversed(self._specs[:-1])):
                    nd = codec._decode_sync(nd, spec)
                x = nd.as_numpy_array()
        except _DECODE_ERRORS as exc:
            raise ValueError(_undecodable(name, exc)) from exc
        return x

    def _not_as_set_up(self, i, j, got, size):
        """The error for chunk ``(i, j)``, read as a file of ``got`` bytes where :meth:`sizes` saw ``size``
        (-1: none), in the words of :meth:`StoredFiles.check` and :func:`refuse_other_files_on_workers`."""
        folder = self._folder()
        name = self.array.metadata.encode_chunk_key((i, j))
        first = i * self.chunk_rows
        rows = f"rows {first}-{min(first + self.chunk_rows, self.shape[0]) - 1}"
        was = "there was none" if size < 0 else f"it held {size:,}"
        worker = _worker_address()
        if worker is None:
            return (f"The Zarr array {folder!r} changed while dask_gmm read it: its file {name!r} ({rows}) holds "
                    f"{got:,} bytes, where {was} when the fit began or the lazy output was made, so what was read "
                    "mixes data from before and after, and was discarded. Rerun it once the store is no longer "
                    "being written.")
        return (f"The Zarr array {folder!r} is not the same on the cluster's worker {worker}: its file {name!r} "
                f"({rows}) holds {got:,} bytes there, where {was} here when the fit began or the lazy output was "
                "made. That worker reads another store at this path (another disk's copy), or the store was "
                "rewritten since; what was read would mix the two, and was discarded. Give every worker the same "
                "store (a shared file system, or a URL they all read), and rerun once the store is no longer "
                "being written.")

    def _groups(self, start, stop, sizes=None):
        """``[(chunk indices, their sizes)]``: the Zarr chunks of rows [start, stop) in the pieces of
        :meth:`pieces`, one chunk each, or consecutive chunks of about :data:`GROUP_BYTES` when smaller."""
        chunks, group = self._chunks(start, stop), self._group()
        sizes = sizes or (None,) * len(chunks)
        return [(chunks[g : g + group], tuple(sizes[g : g + group])) for g in range(0, len(chunks), group)]

    def _group(self):
        """Chunks in a piece of :meth:`pieces`: as many as :data:`GROUP_BYTES` holds, at least one."""
        return max(1, GROUP_BYTES // (self.chunk_rows * self.shape[1] * self.dtype.itemsize))

    def piece_ranges(self, start, stop, sizes=None):
        """``[(lo, hi, sizes)]``: the rows [lo, hi) of each piece that :meth:`pieces` yields for rows
        [start, stop), with the :meth:`sizes` of its chunks (``sizes`` those of rows [start, stop)).
        :meth:`pieces` of one such range yields that one piece."""
        step = self.chunk_rows
        return [(max(start, ids[0] * step), min(stop, self.shape[0], (ids[-1] + 1) * step), s)
                for ids, s in self._groups(start, stop, sizes)]

    def pieces(self, start, stop, sizes=None, prefetch=True):
        """Yield ``(first row, rows)`` for every Zarr chunk overlapping rows [start, stop), or for
        every group of consecutive chunks of about :data:`GROUP_BYTES` when they are smaller.

        The rows lie in this thread's reused buffers (:meth:`chunk` with ``reuse``):
        use them before asking for the next piece. ``sizes``, :meth:`sizes` of these rows,
        refuses a chunk file of another size. An E-step pass over 1e6 x 2 rows in 1,000 chunks
        of 1,000 rows (Zstd) took 172 ms on two threads with a kernel call per chunk, 100 ms in
        groups (4.9 ms in memory).

        First, with ``prefetch``, it prefetches these rows and as many after them
        (a task's block and the next one, which a thread takes soon). Fits from a
        store read from the disk, not the page cache, ran 1.14-1.45x faster with
        it (d=2 and d=16, ``scripts/bench.py --cases cold``); a hint cost about 50 us
        per 4 MiB chunk already cached, which :meth:`prefetch` now skips in small stores.
        """
        if prefetch:
            self.prefetch(start, stop + (stop - start))
        step, row_bytes = self.chunk_rows, self.shape[1] * self.dtype.itemsize
        single = self._group() == 1
        for ids, sizes in self._groups(start, stop, sizes):
            first = ids[0] * step
            if single:
                x = self.chunk(ids[0], reuse=True, sizes=sizes[0])
            else:
                n = min((ids[-1] + 1) * step, self.shape[0]) - first
                x = _scratch("group", n * row_bytes).view(self.dtype).reshape(n, -1)
                for i, size in zip(ids, sizes):
                    self.chunk(i, reuse=True, sizes=size, out=x[i * step - first : (i + 1) * step - first])
            lo, hi = max(start, first), min(stop, first + x.shape[0])
            yield lo, x[lo - first : hi - first]

    def read(self, start, stop, sizes=None):
        """Rows [start, stop) as one array of shape (stop - start, n_features), ``stop`` at most the
        array's rows, as zarr's slice (``sizes``: as :meth:`pieces`)."""
        stop = min(stop, self.shape[0])
        out = np.empty((max(0, stop - start), self.shape[1]), self.dtype)
        for lo, x in self.pieces(start, stop, sizes):
            out[lo - start : lo - start + x.shape[0]] = x
        return out


def zarr_rows(X):
    """A :class:`ZarrRows` reader of X (a Zarr array, or a path or URL of one), or None when it
    cannot read it (:func:`_direct`)."""
    if isinstance(X, (str, os.PathLike)):
        X = open_zarr(os.fspath(X))
    return ZarrRows(X) if _direct(X) else None


def _direct(X):
    """Whether :class:`ZarrRows` reads X: a Zarr v3 array of float32 or float64, in a store with a
    synchronous ``get_sync`` (local files, memory), of codecs with a synchronous decode (not
    sharding). Anything else is read through dask and zarr's own path."""
    return (isinstance(X, zarr.Array) and X.metadata.zarr_format == 3
            and X.ndim == 2 and all(X.shape) and np.dtype(X.dtype).kind == "f" and np.dtype(X.dtype).itemsize in (4, 8)
            and isinstance(X.store_path.store, SupportsGetSync)
            and all(isinstance(c, SupportsSyncCodec) for c in X.metadata.codecs))


def with_reader(X, min_samples=1):
    """``(as_dask_array(X), zarr_rows(X))``, a path or URL opened once for both; fewer rows than
    ``min_samples`` (2 for a fit) refused."""
    X = open_zarr(X) if isinstance(X, (str, os.PathLike)) else as_zarr_input(X)
    rows = zarr_rows(X)
    return _as_dask_array(X, min_samples, direct=rows is not None), rows


def whole_zarr_array(X):
    """The ``zarr.Array`` that the dask array ``X`` reads whole and unchanged (``da.from_zarr(arr)``,
    ``da.from_array(arr)``, in any chunks), else None: a dask array computed from one (sliced,
    cast, scaled) reads it through zarr, as dask does, checked by :func:`_check_zarr_sources`."""
    layers = X.dask.layers
    top = layers.get(X.name)
    task = getattr(top, "task", None)  # dask's task spec (2025 on); older graphs are not unwrapped
    if not isinstance(top, Blockwise) or len(layers) > 2 or getattr(task, "func", None) is not getter:
        return None
    arrays = zarr_arrays_read_by(X, wrapped=False)  # in an ``original-`` layer, unless dask inlined it in the tasks
    if len(arrays) != 1 or arrays[0].shape != X.shape or arrays[0].dtype != X.dtype:
        return None
    return arrays[0]


def zarr_arrays_read_by(X, wrapped=True):
    """The Zarr arrays that the dask array ``X``'s graph reads (by ``da.from_zarr`` or
    ``da.from_array`` anywhere in it: the arrays themselves, or given to its tasks), once each;
    with ``wrapped``, also those under xarray's lazy array wrappers (:func:`_under_xarray`)."""
    found = {}
    for layer in X.dask.layers.values():
        if isinstance(layer, MaterializedLayer):
            values = layer.values()
        elif isinstance(layer, Blockwise):
            values = (arg for arg, index in layer.indices if index is None)
        else:
            continue
        arrays = (v if isinstance(v, zarr.Array) or not wrapped else _under_xarray(v) for v in values)
        found.update((id(a), a) for a in arrays if isinstance(a, zarr.Array))
    return list(found.values())


def _under_xarray(v):
    """The Zarr array under ``v``, one of xarray's lazy wrappers of a variable (indexing adapters,
    CF decoding, each holding the next as ``.array``, down to its Zarr backend's ``._array``), else
    None. ``xr.open_zarr(...)[NAME].data`` reads its chunks through them: a lost chunk was read as
    fill values and fitted as rows of zeros, where the array given itself is refused."""
    for _ in range(32):
        if isinstance(v, zarr.Array):
            return v
        if not type(v).__module__.startswith("xarray."):
            return None
        v = getattr(v, "array", None) if hasattr(v, "array") else getattr(v, "_array", None)
    return None


class StoredFiles:
    """The files of the Zarr arrays on this machine's file systems that a computation reads, as they
    stood when it began: each file's size, modification and status change times, in each array's
    folder and where its chunks may be under it (:func:`_scan_folder`; folders linked there too).

    :meth:`check`, after each pass, refuses a file rewritten, replaced or removed since: a pass
    reads each chunk once, so a chunk rewritten during a fit (valid bytes and checksum: no decode
    fails) had been read before the change in some iterations and after it in others, and the fit
    returned a model of neither data set, without a word; a chunk removed from a Zarr array
    under a sliced or scaled dask array read as fill values (zarr's own read). Files added are
    not a change. Stores of other file systems (``s3://``, ``http://``, a ``simplecache::``
    chain) are not watched. A file's inode is not compared: FUSE mounts (gcsfuse, sshfs) may
    number a file anew while it is unchanged; zarr writes a chunk as a new file, of a new
    modification time. Its status change time is: a file rewritten in place with its size and
    modification time kept (``rsync --inplace -t``, ``touch -r``) was not found (a change of its
    permissions meanwhile is then refused too). A scan stats every file: 0.07 ms for the 16
    chunks of a 4e6-row store of 4 MiB chunks, 4.8 ms for 1,000 chunks of 1,000 rows (a pass over
    those took about 150 ms).

    Parameters
    ----------
    arrays : iterable of zarr.Array
    """

    def __init__(self, arrays):
        arrays = list(arrays)
        self.folders = sorted({f for f in map(_local_folder, arrays) if f is not None})
        self.ndim = max((a.ndim for a in arrays), default=2)  # how deep their chunks lie (_scan_folder)
        self.state = self._scan()

    def _scan(self):
        return _scanned(self.folders, self.ndim)

    def named(self, path):
        """(the array's folder, the file's name in it) of the file ``path`` of :attr:`state`."""
        folder = _folder_of(path, self.folders)
        return folder, os.path.relpath(path, folder)

    def check(self):
        """Raise ValueError naming the first file that is not as it was when this was made."""
        if not self.state:
            return
        now = self._scan()
        for path, before in self.state.items():
            if now.get(path) != before:
                folder, name = self.named(path)
                what = "removed" if path not in now else "rewritten"
                raise ValueError(
                    f"The Zarr array {folder!r} changed while dask_gmm read it: its file "
                    f"{name!r} was {what} after the computation began, so what was read "
                    "mixes data from before and after, and was discarded. Rerun it once the store is no "
                    "longer being written."
                )


def chunk_file(arr, i):
    """The local file of the chunk of ``arr`` whose rows are the ``i``-th chunk's (its first chunk
    across the other axes), or None where its store is not local files."""
    root = _local_root(arr)
    return None if root is None else os.path.join(root, _storage_key(arr, (i,) + (0,) * (arr.ndim - 1)))


def chunk_disk_use(arrays, i):
    """The bytes of disk that the ``i``-th chunk of rows of each local Zarr array of ``arrays`` took,
    once written: the blocks of its file and, for an array of more than one axis, of its folder of
    that chunk (``c/i``, one a chunk); None where one of them cannot be seen here (not local files,
    or not there: a cluster's workers writing elsewhere)."""
    try:
        took = 0
        for arr in arrays:
            path = chunk_file(arr, i)
            took += sum(os.stat(f).st_blocks * 512 for f in (path, os.path.dirname(path))[: 1 + (arr.ndim > 1)])
        return took
    except (OSError, TypeError):  # not there, or not local files
        return None


def disk_shortfall(arrays, i, rows, more, path):
    """``(need, free, took)`` bytes where ``more`` rows of the local Zarr ``arrays`` would take more disk than
    the disk of ``path`` has free, at what the ``rows`` rows of their chunk ``i``, just written, took there
    (:func:`chunk_disk_use`); None where they fit, or where that chunk cannot be seen here."""
    took = chunk_disk_use(arrays, i)
    if took is None:
        return None
    need, free = took / rows * more, shutil.disk_usage(path).free
    return (need, free, took) if need > free else None


def disk_size(n):
    """``n`` bytes in words: ``'1,120.4 GB'``, ``'56.4 MB'``."""
    return f"{n / 1e9:,.1f} GB" if n >= 1e9 else f"{n / 1e6:,.1f} MB"


def _local_root(arr):
    """The folder of the store of the Zarr array ``arr`` when it is on this machine's file system (a
    LocalStore, or fsspec's local file system, as ``da.from_zarr`` opens a path), else None."""
    store = arr.store_path.store
    if isinstance(store, zarr.storage.LocalStore):
        return str(store.root)
    if isinstance(store, zarr.storage.FsspecStore) and isinstance(getattr(store.fs, "sync_fs", store.fs),
                                                                   LocalFileSystem):
        return store.path
    return None


def _local_folder(arr):
    """The folder of the Zarr array ``arr`` when its store is on this machine's file system
    (:func:`_local_root`), else None."""
    root = _local_root(arr)
    return None if root is None else os.path.normpath(os.path.join(root, arr.store_path.path))


def _folder_of(path, folders):
    """The one of ``folders`` that holds the file ``path``."""
    return next(f for f in folders if path.startswith(f + os.sep))


def _scanned(folders, ndim):
    """``path: (size, mtime_ns, ctime_ns)`` of the files of the Zarr arrays of ``ndim`` dimensions in
    ``folders`` (:func:`_scan_folder`)."""
    state = {}
    for folder in folders:
        _scan_folder(folder, state, ndim)
    return state


def _scan_folder(folder, state, levels, linked=None):
    """Add ``path: (size, mtime_ns, ctime_ns)`` of every file in ``folder`` to ``state``, and of those
    in the folders under it where a chunk may be, ``levels`` deep: folders named as a chunk key's
    parts, ``c`` (zarr v3's) or a number, so a key of ``levels + 1`` parts at most (``c/i/j`` for a 2-D
    array). Through links to folders too (a store's ``c/`` moved to another disk and linked back, as
    zarr reads it), each linked folder once (``linked``: their (device, inode)), so that a link to a
    folder above it ends. Every file under the folder had been: a link in a store to /usr made a
    5-iteration fit 10.6 s against 1.7, and 1,500 nested folders a RecursionError (a review)."""
    linked = set() if linked is None else linked
    try:
        entries = list(os.scandir(folder))
    except OSError:  # removed meanwhile: not there
        return
    for entry in entries:
        try:
            if entry.is_dir():
                if levels < 1 or not (entry.name == "c" or (entry.name.isascii() and entry.name.isdigit())):
                    continue
                if entry.is_symlink():
                    st = os.stat(entry.path)
                    if (st.st_dev, st.st_ino) in linked:
                        continue
                    linked.add((st.st_dev, st.st_ino))
                _scan_folder(entry.path, state, levels - 1, linked)
            else:
                st = entry.stat()
                state[entry.path] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        except OSError:
            continue


def stored_files(X, sample_weight=None, rows=None):
    """:class:`StoredFiles` of what a pass over the dask arrays X and ``sample_weight`` reads: the
    Zarr array of the direct reader ``rows``, else those X's graph reads, and the weights'."""
    arrays = [rows.array] if rows is not None else zarr_arrays_read_by(X)
    if sample_weight is not None:
        arrays += zarr_arrays_read_by(sample_weight)
    return StoredFiles(arrays)


#: How many chunk files, the first and as many last by path, :func:`_fingerprint` reads the heads of.
SAMPLED_CHUNKS = 4


def _head_digest(path, n=1 << 16):
    """A digest of the first ``n`` bytes of the file ``path``, or None where it cannot be read."""
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read(n)).hexdigest()
    except OSError:
        return None


def _fingerprint(state):
    """``{path: (size, head digest or None)}`` of a :class:`StoredFiles` state ({path: (size, mtime,
    ctime)}): the heads (:func:`_head_digest`) of the metadata files and of :data:`SAMPLED_CHUNKS`
    first and last chunk files are read, so that a copy whose files have the same sizes (an
    uncompressed store of another seed) is told apart too (a review: its rows had been fitted
    with this machine's)."""
    chunks = sorted(p for p in state if os.path.basename(p) not in _ZARR_METADATA)
    sampled = set(chunks[:SAMPLED_CHUNKS] + chunks[-SAMPLED_CHUNKS:])
    return {path: (size, _head_digest(path) if path in sampled or os.path.basename(path) in _ZARR_METADATA else None)
            for path, (size, *_) in state.items()}


def _digest(fingerprint):
    """A digest of a :func:`_fingerprint`."""
    return hashlib.sha256(repr(sorted(fingerprint.items())).encode()).hexdigest()


def _digest_here(folders, ndim):
    """:func:`_digest` of the files of the arrays of ``ndim`` dimensions in ``folders`` as this process
    sees them (:func:`_scanned`): run on each of a cluster's workers by :func:`refuse_other_files_on_workers`."""
    return _digest(_fingerprint(_scanned(folders, ndim)))


def _files_not_as(expected, folders):
    """The first of ``expected`` (a :func:`_fingerprint`, under ``folders``) that this process finds
    missing, of another size or with another head, as ``(path, size here or None, whether the folder
    holding it is here)``, or None."""
    for path, (size, head) in expected.items():
        here = _file_size(path)
        if here != size or (head is not None and _head_digest(path) != head):
            return path, None if here < 0 else here, os.path.isdir(_folder_of(path, folders))
    return None


def refuse_other_files_on_workers(X, rows=None, files=None, checked=None, wait=False):
    """On a cluster (the default Client), refuse a worker that cannot import dask_gmm
    (:func:`refuse_workers_without_dask_gmm`), then the Zarr arrays on this machine's file systems that
    a computation over X (or the fit's ``files``, weights included) reads when a worker finds one of their files
    missing or of another size at the same path: each worker reads the store it sees there, and a
    worker that saw another disk's copy (another seed, a stale copy) had its chunks fitted with
    this machine's, without a word. Every worker is asked once (``Client.run``) for a digest of
    the files' names and sizes under the arrays' folders (:class:`StoredFiles`, or ``files``
    when already made); a worker whose digest differs (it may only hold more files) is then
    asked which file is not as here. The files' sizes are compared, and the heads of the metadata
    files and of a few chunk files (:func:`_fingerprint`): a copy of the same sizes whose other
    chunks alone differ is not found (each chunk's size is checked again where it is read).

    ``wait``: when the scheduler has no workers yet, the first to join is asked
    (:func:`refuse_workers_without_dask_gmm`), as a fit's first pass would wait for it.

    ``checked``, a set of worker addresses: nothing is asked while the scheduler's workers are
    all in it (finding them costs a call to the scheduler, about 0.2 ms), else every worker is
    asked and added to it. Called after each pass with the same set (:class:`dask_gmm._em.Blocks`),
    a worker that joined during a fit and read other files fails it there. Every worker, not
    only the new ones: asked by address, a worker gone meanwhile took 30 s to time out, where
    the scheduler's own list has only those it holds; one that cannot answer is left out, to be
    asked later."""
    if not _on_a_cluster():
        return
    files = files if files is not None else stored_files(X, None, rows)
    if checked and not files.state:  # no files: the workers were asked at the start, not after every pass
        return
    client = get_scheduler().__self__
    if checked is not None and not set(_of_cluster(client.nthreads)) - checked and not (wait and not checked):
        return
    answered = refuse_workers_without_dask_gmm(client, wait=wait)  # before any function of ours goes to them
    if not files.state:
        if checked is not None:
            checked.update(answered)
        return
    expected = _fingerprint(files.state)
    digest = _digest(expected)
    answers = _of_cluster(client.run, _digest_here, files.folders, files.ndim, on_error="ignore")
    if checked is not None:
        checked.update(answers)
    others = sorted(w for w, d in answers.items() if d != digest)
    if not others:
        return
    for worker, wrong in sorted(_of_cluster(client.run, _files_not_as, dict(sorted(expected.items())), files.folders,
                                            workers=others, on_error="ignore").items()):
        if wrong is not None:
            path, there, seen = wrong
            folder, name = files.named(path)
            if not seen:
                raise ValueError(
                    f"The cluster's worker {worker} cannot see the Zarr array {folder!r}: there is no such folder "
                    "there. Give every worker the same store: a shared file system mounted at the same path, "
                    "or a URL they all read."
                )
            size = expected[path][0]
            how = ("is missing there" if there is None else f"holds {there:,} bytes there, {size:,} here" if there != size
                   else f"holds other bytes there than here (both {size:,} bytes)")
            raise ValueError(
                f"The Zarr array {folder!r} is not the same on the cluster's worker {worker}: its file "
                f"{name!r} {how}. That worker would read another store at this path (another disk's "
                "copy), and the result would mix the two. Give every worker the same store: a shared "
                "file system, or a URL they all read."
            )


#: What a worker is asked to evaluate: the modules whose functions the tasks carry (they import
#: numba, zarr, dask, scikit-learn), and the build (:func:`build`). ``import dask_gmm`` alone loads none of them.
_WORKER_IMPORTS = ("(__import__('dask_gmm.generate'), __import__('dask_gmm.mixture'), "
                   "__import__('dask_gmm.io', fromlist=['build']))[2].build()")


def build():
    """``VERSION+DIGEST``: dask_gmm's version and a digest of its modules' source as it was when this
    module was imported, so that workers running other code of the same version (a development
    checkout changed since they started, or another checkout) are told apart: only the version had
    been compared (a review). The version alone where the source cannot be read."""
    return _BUILD


def _source_build():
    """:func:`build`, read from the package's files."""
    folder = os.path.dirname(os.path.abspath(__file__))
    h = hashlib.sha256()
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".py") and not n.startswith(".")
                       and os.path.isfile(os.path.join(folder, n)))  # not an editor's lock link (.#cli.py)
        for name in names:
            with open(os.path.join(folder, name), "rb") as f:
                h.update(name.encode() + b"\0" + f.read() + b"\0")
    except OSError:
        return __version__
    return f"{__version__}+{h.hexdigest()[:12]}" if names else __version__  # compiled only: the version alone


_BUILD = _source_build()  # about 0.7 ms


def _of_cluster(call, *args, **kwargs):
    """``call(*args, **kwargs)``, a method of a distributed Client: :class:`SchedulerLost` where its
    scheduler cannot be reached (distributed's CommClosedError or another OSError: a review's scheduler
    killed as a command began was a bare traceback) or is lost, a RuntimeError where it is closed (a
    closed Client has no scheduler to call: an AttributeError)."""
    state = client_state(call.__self__)
    if state == "lost":
        raise SchedulerLost.of()
    if state == "closed":
        raise RuntimeError(CLIENT_CLOSED.format(when="while it ran"))
    try:
        return call(*args, **kwargs)
    except OSError as exc:
        raise SchedulerLost.of(exc) from exc


def client_state(client):
    """``"lost"`` where the distributed ``client`` lost its scheduler (it drops its connection to
    reconnect, then closes itself when that fails: a scheduler killed mid-fit had been called a Client
    closed by the user, a review), ``"closed"`` where it was closed, else None (or not a Client)."""
    status = getattr(client, "status", None)
    if status == "connecting" or (status in ("closing", "closed") and getattr(client, "scheduler_comm", 0) is None):
        return "lost"
    return "closed" if status in ("closing", "closed") else None


#: The error of a fit or score whose distributed Client was closed before it returned.
CLIENT_CLOSED = ("The distributed Client that this fit or score ran on was closed {when}. Keep the Client open "
                 "until the fit or score returns.")


class SchedulerLost(RuntimeError):
    """A cluster whose scheduler, or the connection to it, was lost as a fit, score or command ran on it."""

    @classmethod
    def of(cls, exc=None):
        """The error for ``exc`` (distributed's or an OSError; None: found between two passes) that says so."""
        why = "" if exc is None else f" ({type(exc).__name__}: {exc})"
        return cls(f"The Dask cluster's scheduler, or the connection to it, was lost{why}. Check the scheduler "
                   "and the workers' logs, then rerun (a fit with a checkpoint resumes from it).")


def refuse_workers_without_dask_gmm(client=None, where="the Dask cluster", wait=False):
    """A ValueError naming a worker of ``client`` (by default, the default Client's, if any) whose
    Python cannot import dask_gmm's modules (:data:`_WORKER_IMPORTS`), or runs another version of
    it; else the addresses of the workers that answered (one that could not be reached is not
    among them, to be asked again). Such a worker died on the first task of ours it unpickled,
    and a fit of a store waited for workers for ever (a fit of NumPy data failed after three
    warnings that a worker holding its data was lost). Asked of the workers there are now; with
    ``wait``, of the first to join when there are none yet (the computation that follows would
    wait for it too)."""
    if client is None:
        if not _on_a_cluster():
            return set()
        client = get_scheduler().__self__
    if wait and not _of_cluster(client.nthreads):
        _of_cluster(client.wait_for_workers, 1)
    answers = _of_cluster(client.run, eval, _WORKER_IMPORTS, on_error="return")  # eval: nothing of ours to unpickle
    for worker, answer in sorted(answers.items()):
        if isinstance(answer, ImportError):
            raise ValueError(f"The worker {worker} of {where} cannot import dask_gmm ({type(answer).__name__}: "
                             f"{answer}). Install dask-gmm {__version__} in the workers' Python environment, "
                             "then rerun.")
        if isinstance(answer, AttributeError):  # a version before build(): another version
            answer = "of another version"
        if isinstance(answer, str) and answer != build():
            version = answer.partition("+")[0]
            if version == __version__ and ("+" not in answer or "+" not in build()):
                continue  # a build whose source could not be read: its version alone is compared
            if version == __version__:
                raise ValueError(f"The worker {worker} of {where} runs dask-gmm {version} of other code than this "
                                 f"process (build {answer}, here {build()}): a checkout changed since the workers "
                                 "started, or another one. Restart the workers with this process's dask_gmm, then rerun.")
            raise ValueError(f"The worker {worker} of {where} runs dask-gmm {version}, this process {__version__}. "
                             f"Install dask-gmm {__version__} in the workers' Python environment, then rerun.")
    return {worker for worker, answer in answers.items() if isinstance(answer, str)}


def _on_a_cluster():
    """Whether dask would compute on a ``distributed`` cluster now (a default Client)."""
    distributed = sys.modules.get("distributed")  # not imported: no Client
    return distributed is not None and isinstance(getattr(get_scheduler(), "__self__", None), distributed.Client)


def _in_process_memory(store):
    """Whether the zarr ``store`` is fsspec's ``memory://``, which each process holds its own of
    (zarr's own MemoryStore is pickled with its contents)."""
    fs = getattr(store, "fs", None)
    protocol = getattr(getattr(fs, "sync_fs", fs), "protocol", ())
    return "memory" in ((protocol,) if isinstance(protocol, str) else protocol)


def _check_zarr_sources(X):
    """Refuse a dask array computed from a Zarr array that has lost chunks (zarr reads them as fill
    values; read so, and not checked after, where :data:`ABSENT_CHUNKS` is ``"fill"``), or, on a
    cluster, one opened by a relative path (the workers resolve it in their own folders), or, under
    dask's processes scheduler, one in a ``memory://`` store (the other processes' is empty: a fit
    of its zeros had ended with means of 0). A dask array reading a whole Zarr array unchanged is
    read as that array instead (:func:`whole_zarr_array`)."""
    arrays = zarr_arrays_read_by(X)
    for arr in arrays:
        _absent_chunks(arr)
        store = arr.store_path.store
        if _in_process_memory(store) and getattr(get_scheduler(), "__module__", "") == "dask.multiprocessing":
            raise ValueError(
                f"The dask array reads the Zarr array {_store_name(arr)!r} of a memory:// store, which the "
                "processes scheduler's other processes cannot see (they would read its chunks as fill values). "
                "Use the threads scheduler, or write the store to a path."
            )
        if isinstance(store, zarr.storage.LocalStore) and not store.root.is_absolute() and _on_a_cluster():
            raise ValueError(
                f"The dask array reads the Zarr array {str(arr.store_path)!r}, opened by a relative path: a "
                "cluster's workers would read whatever lies at that path in their own folders. Open it by "
                "its absolute path (os.path.abspath)."
            )
    if arrays and _on_a_cluster():
        _refuse_unseen_on_workers(arrays)


def _metadata_key(arr):
    """The store key of the Zarr array ``arr``'s own metadata document."""
    return "/".join(filter(None, [arr.store_path.path, "zarr.json" if arr.metadata.zarr_format == 3 else ".zarray"]))


def _unseen(stores):
    """Which of ``stores`` (pairs of a store and a key in it) this process cannot find the key in:
    run on each of a cluster's workers by :func:`_refuse_unseen_on_workers`."""
    return [i for i, (store, key) in enumerate(stores) if not sync(store.exists(key))]


def _refuse_unseen_on_workers(arrays):
    """Refuse Zarr arrays, read by a dask array's own tasks, whose store some worker of the default
    Client cannot see (their metadata is not there): dask's read of a chunk not found is its fill
    value, and a fit from a memory:// store, or a disk of this machine only, went on with zeros.
    Asks every worker once (``Client.run``); a worker that joins later is not asked. A worker
    seeing another store at the same path is :func:`refuse_other_files_on_workers`'s to find."""
    client = get_scheduler().__self__
    stores = [(arr.store_path.store, _metadata_key(arr)) for arr in arrays]
    unseen = {}
    for worker, missing in client.run(_unseen, stores).items():
        for i in missing:
            unseen.setdefault(i, []).append(worker)
    if unseen:
        i, workers = min(unseen.items())
        raise ValueError(
            f"The dask array reads the Zarr array {str(arrays[i].store_path)!r}, which the cluster's worker(s) "
            f"{first_few(workers)} cannot see (no {_metadata_key(arrays[i])!r} in the store there: a memory:// "
            "store, or a path on this machine's disk only); dask would read its chunks there as fill values. "
            "Give the workers a path or URL they share."
        )


def given_row_chunks(X):
    """The row chunks of X where it is a dask array (an xarray DataArray's data too), else None."""
    X = xarray_data(X)
    return X.chunks[0] if isinstance(X, da.Array) else None


def xarray_data(X):
    """The array under an xarray DataArray (a dask array where it is chunked, as ``xr.open_zarr``
    makes it), else X. Read as an array-like instead, a DataArray was loaded whole into memory,
    through xarray's reads, which take a lost chunk of a Zarr store as fill values."""
    if type(X).__module__.startswith("xarray.") and type(X).__name__ in ("DataArray", "Variable"):
        return X.data
    return X


def as_zarr_input(X):
    """A ``zarr.Array`` or ``zarr.Group`` opened again (:func:`_reopened`), the array ``X`` of a
    group, and the Zarr array a dask array reads whole (:func:`whole_zarr_array`); anything else
    as it is.

    A dask array made by ``da.from_zarr`` is read as its Zarr array is, so that its missing or
    corrupt chunks are refused by name, as they are when the array is given (zarr reads a missing
    chunk as fill values).
    """
    X = xarray_data(X)
    if isinstance(X, da.Array) and (whole := whole_zarr_array(X)) is not None:
        X = whole
    if isinstance(X, zarr.abc.store.Store):  # as zarr.open takes one: the node at its root
        X = readable_metadata(str(X), lambda: open_read_only(X))
    if isinstance(X, (zarr.Array, zarr.Group)):
        X = _reopened(X)
    if isinstance(X, zarr.Group):
        X = group_data(X, str(X.store_path))
    elif isinstance(X, zarr.Array):
        checked_generated(X, str(X.store_path))
    return X


def _reopened(node):
    """The Zarr array or group ``node`` opened again, read-only, from its own metadata: never from a
    group's consolidated copy, which goes stale when an array grows (rows appended since were left
    out), and a store of local files by its absolute path, as a LocalStore. A relative one is resolved
    in the folder of whoever reads it: a cluster's workers, started elsewhere, read another store at
    that path, or none (a string path is made absolute by :func:`data_path` for the same reason).
    fsspec's local files (``da.from_zarr(path)`` opens a path so) are read as a LocalStore, which the
    direct reader reads: through dask, stores of small chunks had been read about 10x slower (a review)."""
    store, root = node.store_path.store, _local_root(node)
    if root is not None and not (isinstance(store, zarr.storage.LocalStore) and store.root.is_absolute()):
        store = zarr.storage.LocalStore(os.path.abspath(root), read_only=True)  # fsspec's local files too
    opener = zarr.open_group if isinstance(node, zarr.Group) else zarr.open_array
    return readable_metadata(str(node.store_path), lambda: open_read_only(store, node.store_path.path, opener))


def as_dask_array(X):
    """Any accepted input as a float, row-chunked dask array, without reading the data (but for a
    dask DataFrame, whose partition lengths are learnt in one pass).

    Parameters
    ----------
    X : array-like, dask.array.Array, zarr.Array, str or os.PathLike
        Data of shape (n_samples, n_features).
    Returns
    -------
    dask.array.Array of shape (n_samples, n_features), float32 or float64
    """
    X = open_zarr(os.fspath(X)) if isinstance(X, (str, os.PathLike)) else as_zarr_input(X)
    return _as_dask_array(X)


def unsized_dask_array(X):
    """The dask array X (xarray's data too) as :func:`as_dask_array` makes it, when its row chunks
    are unknown (boolean indexing of rows makes them) and its feature chunks known, for per-row
    outputs of unknown length; else None."""
    X = xarray_data(X)
    if not isinstance(X, da.Array) or X.ndim != 2 or not any(np.isnan(c) for c in X.chunks[0]):
        return None
    return _as_dask_array(X, unsized=True)


def _as_dask_array(X, min_samples=1, direct=False, unsized=False):
    """:func:`as_dask_array` of X, a Zarr array already opened and checked (:func:`open_zarr`,
    :func:`as_zarr_input`) or any other accepted input, of at least ``min_samples`` rows; ``direct``:
    a Zarr array read by a :class:`ZarrRows` (:func:`_from_zarr`); ``unsized``: a dask array whose
    row chunks may be unknown (:func:`unsized_dask_array`)."""
    if isinstance(X, zarr.Array):
        return _as_float(_from_zarr(X, min_samples, direct))
    if is_dask_dataframe(X):  # lazy; one pass to learn each partition's length
        X = float_frame(X).to_dask_array().compute_chunk_sizes()
    if isinstance(X, da.Array):
        _refuse_sparse(X)
        _refuse_masked(X)
        _check_zarr_sources(X)
        if X.dtype == object:  # NumPy object arrays of numbers are converted; a dask array's values are not known
            raise ValueError("X is a dask array of objects, whose values are unknown until computed (a NumPy "
                             "object array of numbers is converted). Convert it with X.astype(float).")
        # unknown chunks of rows, or of features (X[:, mask]: it had failed in the first pass, blaming X's function)
        if any(np.isnan(c) for axis in X.chunks[1 if unsized else 0 :] for c in axis):
            raise ValueError("X has unknown chunk sizes; call X.compute_chunk_sizes() first.")
        _check_shape_dtype(X.shape, X.dtype, min_samples)
        if len(X.chunks[1]) > 1:
            warn_at_caller("X is chunked across features; it is rechunked to whole rows.")
            X = X.rechunk({1: -1})
        return _as_float(X)
    X = _in_memory(X)
    _check_shape_dtype(X.shape, X.dtype, min_samples)
    return _as_float(_row_views(X, _row_sizes(X)))


def row_starts(sizes):
    """The first row of each of a row chunking's blocks, from their sizes (a dask array's
    ``chunks[0]``): a list of ``len(sizes)`` ints, 0 first."""
    return np.concatenate([[0], np.cumsum(sizes[:-1])]).astype(int).tolist()


def _row_sizes(X):
    """The rows of each chunk of an in-memory X (n_samples, n_features): :func:`_rows_for` rows, the last fewer."""
    rows = _rows_for(*X.shape, X.dtype.itemsize)
    return [min(rows, X.shape[0] - a) for a in range(0, X.shape[0], rows)]


def row_blocks(X):
    """An in-memory X (not :func:`is_lazy`) as NumPy row blocks, the chunks of :func:`as_dask_array`,
    without a dask graph: views of X, never copied. Blocks of integers or booleans stay so; the
    kernels convert each to float64 as they take it (``_numba._as_block``), so that no float64
    copy of the whole of X is made at once.

    Returns
    -------
    list of ndarray of shape (n_i, n_features), the rows of X in order
    """
    X = _in_memory(X)
    _check_shape_dtype(X.shape, X.dtype)
    starts = np.cumsum([0] + _row_sizes(X)).tolist()
    return [X[a:b] for a, b in zip(starts[:-1], starts[1:])]


def is_dask_dataframe(X):
    return hasattr(X, "to_dask_array") and hasattr(X, "npartitions")


def row_label(X, row):
    """The index label of the row at position ``row`` (0-based, in X's own order) of a pandas or dask
    DataFrame ``X``; None for any other X, or where it cannot be had.

    For a dask DataFrame the partitions' lengths are computed a few at a time until the row's
    partition is found (a read of those partitions: an error path only), then that partition's
    index. Its row order is its own: ``dd.from_pandas`` sorts the index, so that a row's position
    there need not be its position in the pandas frame it came from.
    """
    if not hasattr(X, "columns") or not hasattr(X, "index"):
        return None
    try:
        if not is_dask_dataframe(X):
            return X.index[row]
        step = 2 * (os.cpu_count() or 1)
        first = 0
        for p in range(0, X.npartitions, step):
            parts = range(p, min(p + step, X.npartitions))
            lengths = dask.compute(*(X.partitions[i].map_partitions(len).sum() for i in parts))
            for i, n in zip(parts, lengths):
                if row < first + n:
                    return X.partitions[i].index.compute()[row - first]
                first += n
    except Exception:  # noqa: BLE001 - the message keeps the row's position, which is right
        logger.debug("no index label for row %d", row, exc_info=True)
    return None


def rows_named(position):
    """Decorate a method or function whose argument at ``position`` is X: a :class:`~dask_gmm._kernels.RowError` it
    raises for a DataFrame X also names the row's index label (:func:`row_label`)."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except _kernels.RowError as exc:
                X = args[position] if len(args) > position else kwargs.get("X")
                label = row_label(X, exc.row)
                if label is None:
                    raise
                raise exc.labelled(label) from None

        return wrapper

    return decorate


def float_frame(X):
    """The dask DataFrame X with columns of numbers, checked, without reading it: nullable, arrow and
    bool columns become float64, their missing values NaN (refused later, by row); sparse ones are
    refused, and so is a dask Series."""
    if X.ndim != 2:  # a dask Series: scikit-learn's words, as for a pandas one
        _check_shape_dtype(X.shape, np.float64)
    _refuse_sparse(X)
    if not _numeric_columns(X):
        X = X.map_partitions(_float_frame, meta=_float_frame(X._meta))
    _check_shape_dtype((1, X.shape[1]), X._meta.to_numpy().dtype)
    return X


def _feature_frame(X):
    """What scikit-learn's feature-name checks should see of X: X itself, or for a dask
    DataFrame (which they do not recognise) an empty pandas DataFrame of its columns."""
    if is_dask_dataframe(X):
        import pandas as pd  # a dask DataFrame comes with pandas

        return pd.DataFrame(columns=X.columns)
    return X


def feature_names(X):
    """X's feature names as scikit-learn takes them (a DataFrame's string column names), or None.

    Raises TypeError for column names that mix strings and other types, as scikit-learn does.
    """
    return _compat.get_feature_names(_feature_frame(X))


def check_feature_names(model, X):
    """Check X's feature names against the fitted ``model``'s, as scikit-learn does: other names or
    order a ValueError, names on one side only a warning."""
    _compat.check_feature_names(model, _feature_frame(X), reset=False)


def _column_dtypes(X):
    """A DataFrame's column dtypes (pandas or dask), or () for anything else (a Series has one dtype)."""
    return X.dtypes if getattr(X, "ndim", 0) == 2 and hasattr(X, "dtypes") else ()


class DenseDataRequired(TypeError, ValueError):
    """Sparse X: scikit-learn's estimators raise a TypeError for it, and so does this, which is a
    ValueError too, as every other bad X here."""


def _refuse_sparse(X):
    """Refuse scipy.sparse X, a dask array of sparse blocks, or a DataFrame with sparse columns."""
    if any(type(t).__name__ == "SparseDtype" for t in _column_dtypes(X)):
        raise DenseDataRequired(
            "A DataFrame with sparse columns was passed for X, but dense data is required: use "
            "X.astype('float64'), or write the data to a Zarr store if they do not fit in memory."
        )
    if scipy.sparse.issparse(X) or scipy.sparse.issparse(getattr(X, "_meta", None)):
        raise DenseDataRequired(
            "Sparse data was passed for X, but dense data is required: use X.toarray(), "
            "or write the data to a Zarr store if they do not fit in memory."
        )


def _refuse_masked(X, name="X"):
    """Refuse a masked array ``X`` (NumPy's, or a dask array of them; ``name`` for the message) whose
    mask may hide missing values: the values under the mask would be read as data."""
    if isinstance(getattr(X, "_meta", None), np.ma.MaskedArray):
        raise ValueError(f"{name} is a dask array of masked arrays: its masked entries are missing values, which "
                         "would be read as the values under the mask. Fill them as NaN "
                         f"({name}.map_blocks(np.ma.filled, np.nan)) to have their rows named, then remove them.")
    mask = np.ma.getmaskarray(X) if isinstance(X, np.ma.MaskedArray) else None
    if mask is not None and mask.any():
        rows = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1)) if mask.ndim else np.zeros(1, int)
        raise ValueError(f"{name} is a masked array with masked entries in {rows.size} row(s) (first: row "
                         f"{rows[0]}): they are missing values. Remove or impute these rows; dask_gmm never "
                         "changes your data.")


def _in_memory(X):
    """An in-memory X as a NumPy array: objects that are real numbers as float64, a pandas
    DataFrame of nullable dtypes with its missing values as NaN (refused later, by row)."""
    _refuse_sparse(X)
    _refuse_masked(X)
    kind = f"{type(X).__module__.partition('.')[0]}.{type(X).__name__}"
    if kind == "xarray.Dataset":  # its items are its variables, not columns
        raise ValueError(f"X is an xarray Dataset of the variables {first_few([str(k) for k in X.data_vars])}. "
                         "Pass one of them (ds[NAME]), or ds.to_dataarray(...) of several.")
    if hasattr(X, "items") and not _numeric_columns(X):  # pandas' nullable Float64, Int64, objects, ...
        return _frame_as_float(X)
    a = np.asarray(X)
    if a.ndim == 0 and a.dtype.kind not in "biufc":  # not a number: bytes, a lazy frame, another library's object
        raise ValueError(f"X ({kind}) is not data that dask_gmm reads: give a NumPy, pandas or Dask array or "
                         "DataFrame (a lazy frame collected first), a Zarr array or group, or a path (str or "
                         "os.PathLike) or URL of a Zarr store.")
    a = objects_as_float(a)
    if a.dtype.kind == "O":
        _refuse_column_of_frame(X)
    return a


def _not_numbers(name, dtype):
    """The ValueError for a frame's column ``name`` (of ``dtype``) that is not real numbers."""
    return ValueError(f"X's column {name!r} ({dtype}) does not hold real numbers. Drop it, or encode it as numbers "
                      "first.")


def _refuse_column_of_frame(X):
    """For another library's frame (polars, pyarrow: column names in ``columns`` or ``column_names``)
    that is not all real numbers, a ValueError naming the first column that is not, as for pandas
    (the message had named NumPy's dtype object, which the frame does not have)."""
    names = getattr(X, "column_names", None)
    names = getattr(X, "columns", None) if names is None else names
    if names is None or isinstance(X, np.ndarray):
        return
    for name in list(names):
        col = X[name]  # a polars Series, a pyarrow ChunkedArray
        if objects_as_float(np.asarray(col)).dtype.kind not in "biuf":
            dtype = getattr(col, "type", None) or getattr(col, "dtype", None)
            raise _not_numbers(name, dtype)


def _numeric_columns(X):
    """Whether every column of a DataFrame (pandas or dask) is of a NumPy int or float dtype (bools
    beside floats would make an array of objects)."""
    return all(isinstance(t, np.dtype) and t.kind in "iuf" for t in _column_dtypes(X))


def _frame_as_float(frame):
    """A pandas DataFrame as a float64 array (n, d), column by column, missing values NaN (refused
    later, by row); a column that is not real numbers (dates, complex, text that is not a number:
    numbers written as text are read, as NumPy reads them) is a ValueError naming it."""
    out = np.empty(frame.shape, np.float64)
    for j, (name, col) in enumerate(frame.items()):
        try:
            if getattr(col.dtype, "kind", "O") in "mMc":  # dates, durations, complex: pandas would cast them
                raise TypeError
            if col.dtype == object:
                values = _real_objects(col.to_numpy(dtype=object, na_value=np.nan))
                if values is None:
                    raise TypeError
                out[:, j] = values
            else:
                out[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            raise _not_numbers(name, col.dtype) from None
    return out


def _float_frame(frame):
    """:func:`_frame_as_float` as a pandas DataFrame of the same index and columns (a dask DataFrame's
    partitions)."""
    import pandas as pd  # a dask DataFrame comes with pandas

    return pd.DataFrame(_frame_as_float(frame), index=frame.index, columns=frame.columns)


def _row_views(a, sizes):
    """A dask array whose row chunks, ``sizes`` rows each, are views of the in-memory ``a``.

    ``da.from_array`` copies a NumPy array whole on every call (dask 2026.8) and
    hashes it unless given a name; the kernels never write to their blocks, so
    views serve, and fit and predict on in-memory data cost no copy of it. The
    name is random, as with ``from_array(name=False)``.
    """
    name = f"array-{uuid.uuid4().hex}"
    starts = row_starts(sizes)
    rest = (0,) * (a.ndim - 1)
    graph = {(name, i, *rest): a[s : s + m] for i, (s, m) in enumerate(zip(starts, sizes))}
    return da.Array(graph, name, chunks=(tuple(sizes), *((k,) for k in a.shape[1:])), dtype=a.dtype, meta=a[:0])


def as_weights(sample_weight, X):
    """sample_weight as a float64 dask array of shape (n_samples,) with the row chunks of X
    (a dask array of shape (n_samples, n_features)), or None.

    Accepts NumPy, Dask, ``zarr.Array`` or a path to a Zarr array. Values are
    checked (finite, non-negative) inside the same pass as the statistics.
    """
    if sample_weight is None:
        return None
    if isinstance(sample_weight, (str, os.PathLike)):
        try:
            sample_weight = zarr.open_array(data_path(sample_weight), mode="r")
        except (FileNotFoundError, zarr.errors.NodeNotFoundError):
            raise ValueError(f"No Zarr array of sample weights at {data_path(sample_weight)!r}. Check the path.") from None
        except zarr.errors.NodeTypeValidationError:
            raise ValueError(f"{data_path(sample_weight)!r} is a Zarr group, not an array of sample weights. "
                             "Give the path of the array inside it.") from None
    if isinstance(sample_weight, zarr.Group):
        raise ValueError("sample_weight is a Zarr group, not an array of sample weights. "
                         "Give the array inside it (group['name']).")
    if isinstance(sample_weight, (zarr.Array, da.Array)):  # a dask array of a whole Zarr array: that array
        sample_weight = as_zarr_input(sample_weight)
    if isinstance(sample_weight, zarr.Array):
        sample_weight = _zarr_blocks(sample_weight, sample_weight.chunks, _absent_chunks(sample_weight))
    elif isinstance(sample_weight, da.Array):
        _check_zarr_sources(sample_weight)
    _refuse_masked(sample_weight, "sample_weight")
    if not isinstance(sample_weight, da.Array):
        sample_weight = objects_as_float(np.asarray(sample_weight))
    if sample_weight.dtype.kind not in "biuf":  # before any cast: astype(float64) drops imaginary parts
        raise ValueError(
            f"sample_weight must hold real numbers, got dtype {sample_weight.dtype}. Convert it to float64."
        )
    if not isinstance(sample_weight, da.Array) and sample_weight.ndim == 0:
        sample_weight = np.full(X.shape[0], float(sample_weight))
    if sample_weight.ndim == 1 and math.isnan(sample_weight.shape[0]):
        raise ValueError("sample_weight is a dask array of unknown length (chunk sizes NaN). "
                         "Call its compute_chunk_sizes() first.")
    if sample_weight.ndim != 1 or sample_weight.shape[0] != X.shape[0]:
        raise ValueError(
            f"sample_weight.shape == {sample_weight.shape}, expected ({X.shape[0]},): "
            "one weight per row of X."
        )
    if not isinstance(sample_weight, da.Array):
        w = sample_weight.astype(np.float64, copy=False)
        if np.all(w >= 0) and np.all(np.isfinite(w)):  # else the passes name the bad rows
            with np.errstate(over="ignore"):
                total_weight(np.sum(w))  # all 0, or a sum that overflows: refused before any pass
        sample_weight = _row_views(sample_weight, X.chunks[0])
    return sample_weight.astype(np.float64).rechunk((X.chunks[0],))


def objects_as_float(a):
    """A NumPy array of objects that are real numbers (ints, Fractions, Decimals, numeric strings),
    or of numeric strings (``<U``, ``|S``: a list of lists of them), as float64, as scikit-learn
    converts them; any other array (complex objects among them, other strings) as it is."""
    if a.dtype.kind in "OUS":
        real = _real_objects(a)
        if real is not None:
            return real
    return a


def _real_objects(a):
    """An array of objects as float64, or None when one of them is not a real number: complex
    (NumPy's cast dropped the imaginary part, with a warning per value), a date or a duration
    (cast to days or seconds since 1970), or what does not convert. (Looked for value by value,
    not by turning NumPy's ComplexWarning into an error: ``warnings.catch_warnings`` changes the
    whole process's filters, and fits in two threads at once had left that one installed.)"""
    if a.dtype.kind == "O" and any(isinstance(v, _NOT_REAL) or (isinstance(v, np.ndarray) and v.dtype.kind in "cmM")
                                   for v in a.flat):
        return None
    try:
        return a.astype(np.float64)
    except (TypeError, ValueError):
        return None


_NOT_REAL = (complex, np.complexfloating, np.datetime64, np.timedelta64)


def is_lazy(X):
    """Whether per-sample outputs for X should be lazy dask arrays (Dask or Zarr input)."""
    return isinstance(xarray_data(X), (da.Array, zarr.Array, zarr.Group, zarr.abc.store.Store, str, os.PathLike))


# ------------------------------------------------------------------ outputs
def replaceable(path):
    """Whether an overwrite may replace what is at ``path`` (a local path or URL).

    Only nothing, an empty folder or a Zarr store (an array or a group) may be
    replaced: never another file or folder, which could hold anything.
    """
    try:
        open_node(path)
        return True
    except DamagedMetadata:
        return True
    except ValueError:
        fs, p = fsspec.core.url_to_fs(path)
        return not fs.exists(p) or (fs.isdir(p) and not fs.ls(p))


#: Zarr metadata files (v3, and v2's).
_ZARR_METADATA = frozenset({"zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"})
#: A part of a chunk key under an array node: v3's ``c``, or indices joined by dots (v2).
_CHUNK_KEY_PART = re.compile(r"c(\.\d+)*|\d+(\.\d+)*")


def foreign_files(path):
    """The files under the local folder ``path`` that belong to no node of its Zarr hierarchy:
    neither metadata nor a chunk key under an array (nor a write of one left by a killed process,
    ``KEY.UUID.partial``). Sorted paths relative to ``path``; [] for a URL or a missing folder.

    An overwrite deletes the whole folder, so these would be lost with it.
    """
    if "://" in path or not os.path.isdir(path):
        return []
    arrays, foreign = [], []
    for root, _, files in os.walk(path):
        if _zarr_node(root) in ("array", "damaged"):  # a damaged node's folder goes with its store
            arrays.append(root)
        under = max((a for a in arrays if root == a or root.startswith(a + os.sep)), key=len, default=None)
        for f in files:
            rel = os.path.relpath(os.path.join(root, f), under) if under else None
            key = rel[: -len(".partial")].rsplit(".", 1)[0] if rel and rel.endswith(".partial") else rel
            if f in _ZARR_METADATA or (key and all(_CHUNK_KEY_PART.fullmatch(p) for p in key.split(os.sep))):
                continue
            foreign.append(os.path.relpath(os.path.join(root, f), path))
    return sorted(foreign)


def refuse_unreplaceable(path, flag, own):
    """Raise ValueError unless an overwrite (named ``flag``, as the caller's user writes it) may
    replace what is at ``path``: only nothing, an empty folder or the command's own earlier output,
    a Zarr store holding nothing but its own files (:func:`foreign_files`), never other data.
    ``own`` = (test, layout, words): a store is the command's own when its node passes ``test``
    (the opened Zarr node) or, when its root metadata cannot be read, when its member nodes'
    names pass ``layout`` (a set of names: :func:`member_nodes`); ``words`` say what passes."""
    test, layout, words = own
    if not replaceable(path):
        raise ValueError(
            f"{path!r} exists and is not a Zarr store; {flag} replaces only {words} (and empty folders), "
            "never other files or folders. Choose another path, or remove it yourself."
        )
    try:
        node = open_node(path)
    except DamagedMetadata:
        members = member_nodes(path)
        if not layout(members):
            held = f"holds {first_few(sorted(members))}" if members else "cannot be looked into"
            raise ValueError(
                f"{path!r} is a Zarr store whose metadata cannot be read and which {held}: it may be "
                f"data, and {flag} replaces only {words}. Restore its metadata, or remove it yourself."
            ) from None
        node = None
    except ValueError:  # nothing there, or an empty folder
        node = None
    if node is not None and not test(node):
        raise ValueError(
            f"{path!r} is a Zarr store that is not {words}; {flag} replaces only {words}, never "
            "other data. Choose another path, or remove it yourself."
        )
    foreign = foreign_files(path)
    if foreign:
        shown = first_few(foreign)
        raise ValueError(
            f"{path!r} is a Zarr store that also holds {len(foreign)} file(s) of no Zarr array or group "
            f"({shown}), which {flag} would delete with it. Move them out, or choose another path."
        )


def children(group):
    """The names directly under the Zarr ``group`` in its store (member nodes, ``zarr.json``, any
    other entry), as a set: listed, not opened, so a member whose metadata is damaged is named too."""
    async def _list():
        return {name async for name in group.store_path.store.list_dir(group.store_path.path)}

    return sync(_list())


def member_nodes(path):
    """The names of the folders directly under the local folder ``path`` that hold Zarr metadata
    (arrays, groups, or metadata that cannot be read); an empty set for a URL."""
    if "://" in path or not os.path.isdir(path):
        return set()
    return {e.name for e in os.scandir(path) if e.is_dir() and _zarr_node(e.path)}


def chain_target(path):
    """The store an fsspec chain of wrappers reads (``simplecache::file:///data.zarr``: its last URL,
    every member before it a bare protocol such as a cache); any other path, URL or chain (whose
    first member names a path of its own, ``zip://x::file:///a.zip``) as it is."""
    path = os.fspath(path)
    if "::" not in path or "://" not in path:
        return path
    *wrappers, last = path.split("::")
    bare = all("://" not in w or not w.partition("://")[2].strip("/") for w in wrappers)
    return last if bare else path


def refuse_chain_output(path, what):
    """A ValueError when the output ``path`` (``what``, for the message) is an fsspec chain of URLs:
    a caching chain writes to its cache, while an overwrite deleted the store itself."""
    path = os.fspath(path)
    if "::" in path:
        target = chain_target(path)
        own = f" ({target!r})" if target != path else ""
        raise ValueError(f"Cannot write {what} {path!r} through a chain of URLs ('::'): a cache or "
                         f"container in the chain would take the writes. Give the store's own URL or path{own}.")


def overlapping(a, b):
    """Whether paths or URLs ``a`` and ``b`` are the same or one lies inside the other (local paths
    and ``file://`` URLs compared with their links resolved, other URLs as written)."""
    def norm(p):
        p = _resolved(chain_target(p))
        return p.rstrip("/") if "://" in p else os.path.realpath(p)

    a, b = norm(a), norm(b)
    sep = "/" if "://" in a else os.sep
    if a == b or a.startswith(b + sep) or b.startswith(a + sep):
        return True
    return "://" not in a + b and (_within(a, b) or _within(b, a))


def _within(a, b):
    """Whether the local path ``a`` (or its nearest folder that exists) is the folder ``b`` or lies
    inside it, by the folders' identity (device and inode): a bind mount of the input store's
    folder, or a second mount of its file system, names it by another path, and an output through
    one had been written into the input (a review)."""
    try:
        target = os.stat(b)
    except OSError:
        return False
    if not target.st_ino:  # no identity to compare (some FUSE, FAT and network file systems give 0)
        return False
    while True:
        try:
            here = os.stat(a)
        except OSError:
            here = None
        if here is not None and (here.st_dev, here.st_ino) == (target.st_dev, target.st_ino):
            return True
        parent = os.path.dirname(a)
        if parent == a:
            return False
        a = parent


def store_root(path):
    """What an output must keep out of, for the input at ``path``: the Zarr group directly holding
    it when ``path`` is an array inside one (so that ``data.zarr/labels`` beside the input
    ``data.zarr/X`` cannot change the store either), else ``path`` itself (links resolved). URLs
    are returned as they are."""
    path = data_path(chain_target(path))  # a local path unchanged by chain_target, checked and made absolute
    if "://" in path:
        return path
    path = os.path.realpath(path)
    parent = os.path.dirname(path)
    return parent if _zarr_node(path) == "array" and _zarr_node(parent) == "group" else path


def guarding_input(path, data):
    """What of the input ``data`` (a path or URL: :func:`store_root`) an output ``path`` is, holds
    or lies inside (:func:`overlapping`), or None when they are apart."""
    guarded = store_root(data)
    return guarded if overlapping(path, guarded) else None


def store_folder(path, arrays_only=False, follow_link=True):
    """The nearest folder above the local ``path`` that is a Zarr store (array or group; only an
    array with ``arrays_only``), else None (also for URLs): what is written there would be a stray
    entry of that store (a file anywhere in a store; a Zarr array inside another array's chunks).
    A link at ``path`` is followed, unless ``follow_link`` is false: a file written atomically
    replaces the link, and lands in the link's own folder."""
    if "://" in os.fspath(path):
        return None
    if follow_link:
        folder = os.path.dirname(os.path.realpath(path))
    else:
        folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    while True:
        kind = _zarr_node(folder)
        if kind is not None and (kind == "array" or not arrays_only):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent



def refuse_output_inside(path, what, data=None, arrays_only=False, follow_link=False):
    """A ValueError when the output ``path`` (``what``: 'the model') is, holds or lies inside the input
    ``data`` (a path or URL; None: not checked), or lies inside any Zarr store (:func:`store_folder`:
    with ``arrays_only``, inside a Zarr array, a group may hold it), where it would be a stray entry."""
    guarded = None if data is None else guarding_input(path, data)
    if guarded is not None:
        raise ValueError(f"Cannot write {what} to {path!r}: it is, holds or lies inside the input data "
                         f"{guarded!r}. Choose a path outside it.")
    store = store_folder(path, arrays_only=arrays_only, follow_link=follow_link)
    if store is not None:
        where = "Zarr array" if arrays_only else "Zarr store"
        raise ValueError(f"Cannot write {what} to {path!r}: it lies inside the {where} {store!r}, which it would "
                         f"damage. Choose a path outside it{' (a Zarr group may hold it)' if arrays_only else ''}.")

def _zarr_node(folder):
    """What the local ``folder`` holds, by its Zarr metadata (v3 or v2): 'array', 'group',
    'damaged' (a ``zarr.json`` that cannot be read, or names neither) or None (no metadata; not a folder)."""
    if not os.path.isdir(folder):  # a file's zarr.json is NotADirectoryError, not damaged metadata
        return None
    for name, kind in ((".zarray", "array"), (".zgroup", "group")):
        if os.path.exists(os.path.join(folder, name)):
            return kind
    try:
        with open(os.path.join(folder, "zarr.json")) as f:
            meta = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return "damaged"
    kind = meta.get("node_type") if isinstance(meta, dict) else None
    return kind if kind in ("array", "group") else "damaged"
