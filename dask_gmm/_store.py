"""A Zarr store's files: where each chunk's file is and what it takes on disk, which chunks are
written (the inner chunks of shards too), what else a store's folders hold, and what a missing
chunk means (an error, or the fill value where asked); the errors and advice for a store that
lost chunks or whose metadata cannot be read (:class:`DamagedMetadata`, :data:`REGENERATE`).

Plain functions of a ``zarr.Array`` or a folder, without dask arrays (dask's config says what a
missing chunk means): used by the readers (:mod:`dask_gmm._reader`), the checks of a pass
(:mod:`dask_gmm._cluster`), the opening of inputs (:mod:`dask_gmm.io`), the output rules
(:mod:`dask_gmm._files`, :mod:`dask_gmm._outputs`), the generator and the command line.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import os
import re
import shutil
import zipfile

import dask
import google_crc32c  # zarr's own dependency, for its crc32c codec
import numpy as np
import zarr
from fsspec.implementations.cached import CachingFileSystem
from fsspec.implementations.local import LocalFileSystem
# the synchronous store protocol (SupportsGetSync) is zarr >= 3.1.6's
from zarr.abc.store import RangeByteRequest, SupportsGetSync
from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync  # zarr 3 has no synchronous listing or lookup in its public API


logger = logging.getLogger(__name__)


#: Chunks (or shards) of an array at most: their keys are listed in memory to check that each is
#: stored. A 408-byte zarr.json declaring 2e7 chunks took 18 s and 3.9 GB (a review).
MAX_CHUNKS = 2**24


def _refuse_zip_bombs(arr):
    """A ValueError naming the first file of the Zarr array ``arr`` in a zip store (a ``zip::`` URL) that
    the zip says decompresses to more than a stored chunk (or shard) of it can take: the zip's own
    deflate is undone whole by fsspec before any codec's bound (:mod:`dask_gmm._codecs`) sees the bytes
    (a review: 868 KB of zip to 512 MiB for one chunk). Python's zipfile stops at the stated size, so
    the stated sizes bound the reads. Other stores, nothing."""
    store = arr.store_path.store
    if isinstance(store, zarr.storage.ZipStore):  # its zipfile.ZipFile, once opened (zarr has no public name for it)
        zf, root = getattr(store, "_zf", None), ""
    elif isinstance(store, zarr.storage.FsspecStore):  # fsspec's ZipFileSystem, under zarr's async wrapper
        zf, root = getattr(getattr(store.fs, "sync_fs", store.fs), "zip", None), store.path
    else:
        return
    if not isinstance(zf, zipfile.ZipFile):
        return
    unit = arr.shards or arr.chunks
    inner = math.prod(-(-u // c) for u, c in zip(unit, arr.chunks))
    most = 2 * (max(16, np.dtype(arr.dtype).itemsize) * math.prod(unit) + 4096) + 1040 * inner  # any codec's overhead
    prefix = "/".join(p.strip("/") for p in (root, arr.store_path.path) if p.strip("/"))
    prefix += "/" if prefix else ""
    for info in zf.infolist():
        if (info.file_size > most and info.filename.startswith(prefix)
                and info.filename.rpartition("/")[2] not in ZARR_METADATA):
            raise ValueError(f"The file {info.filename!r} of the zip store {_store_name(arr)!r} decompresses to "
                             f"{info.file_size:,} bytes, the zip says, more than a stored chunk of this array takes "
                             f"({most:,} at most): the zip is damaged, or made to exhaust memory. It is not read; "
                             "zip the store again from its original.")


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
    _refuse_zip_bombs(arr)
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
        raise UncheckableLayout(
            f"The Zarr array is sharded in a layout dask_gmm cannot check for unwritten chunks "
            f"(codecs {_codec_names(codecs)}); it checks shards whose codec is the sharding codec alone, "
            "not sharded again within, with an index encoded as bytes (+ crc32c). Rewrite the store with "
            "zarr.create_array(..., shards=...) and the default shard index, or without shards."
        )
    n_inner = math.prod(s // c for s, c in zip(arr.shards, codec.chunk_shape))
    byteorder = "<" if index[0].endian.value == "little" else ">"
    return codec, 16 * n_inner + 4 * (len(index) - 1), byteorder, len(index) == 2


def _codec_names(codecs):
    """``codecs`` by class name, a sharding codec's own codecs and index codecs within: for messages."""
    def name(c):
        if not isinstance(c, ShardingCodec):
            return type(c).__name__
        return f"ShardingCodec(codecs: {_codec_names(c.codecs)}; index: {_codec_names(c.index_codecs)})"

    return ", ".join(map(name, codecs))


def _decode_shard_index(raw, chunks_per_shard, byteorder="<", checksummed=True, size=None):
    """The (offset, nbytes) pairs of a shard's index read from its stored bytes ``raw``.

    Parameters
    ----------
    raw : bytes, the index as stored (16 bytes per inner chunk, then a crc32c if ``checksummed``)
    chunks_per_shard : tuple of int, the inner chunk grid of one shard
    byteorder : '<' or '>', that of the index's uint64 values
    checksummed : bool, whether a crc32c follows the index (checked)
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


def _read_ends(arr, keys, requests):
    """The bytes each of ``requests`` (zarr byte ranges, None for all) selects from the stored
    object of the same place in ``keys`` of ``arr`` (None where one has gone): one read per key.

    With a synchronous store (local files, memory) the reads run in this thread,
    0.02 ms each; others (fsspec) read concurrently through zarr's event loop, but one at a time
    through fsspec's caching file systems: ``filecache::`` failed reads at once, now and then, in its
    own ``_open`` (a TypeError), where it adds a file to its cache as another read adds another (a review).
    """
    store, prefix, proto = arr.store_path.store, arr.store_path.path, default_buffer_prototype()
    reads = [(f"{prefix}/{key}" if prefix else key, request) for key, request in zip(keys, requests)]
    if isinstance(store, SupportsGetSync):
        bufs = [store.get_sync(p, prototype=proto, byte_range=r) for p, r in reads]
    else:
        fs = getattr(store, "fs", None)
        caching = isinstance(fs, CachingFileSystem) or isinstance(getattr(fs, "sync_fs", None), CachingFileSystem)
        bufs = _concurrently(lambda read: store.get(read[0], proto, byte_range=read[1]), reads,
                             limit=1 if caching else None)
    return [None if b is None else b.to_bytes() for b in bufs]


def _concurrently(op, items, limit=None):
    """``await op(item)`` for every item, through zarr's event loop, at most ``limit`` (else zarr's
    ``async.concurrency``) at a time; the results in the items' order."""
    async def _all():
        limit_ = asyncio.Semaphore(limit or max(1, int(zarr.config.get("async.concurrency") or 10)))

        async def _one(item):
            async with limit_:
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
    keys = [key for _, key in shards]
    sizes = _object_sizes(arr, keys)
    # an index at the end as a range from the shard's size, not a suffix: fsspec's caching chains
    # failed on a suffix (a negative start), and an HTTP server may answer any range with the whole
    # object, whose end is then sliced off (Python's http.server does: the index read was its start)
    requests = [RangeByteRequest(0, nbytes) if at_start else
                None if size is None or size < nbytes else RangeByteRequest(size - nbytes, size) for size in sizes]
    raws = _read_ends(arr, keys, requests)
    absent, corrupt = [], []
    for (coords, key), raw, size in zip(shards, raws, sizes):
        if raw is None:  # removed since the listing
            absent.append(key)
            continue
        if len(raw) > nbytes:
            raw = raw[:nbytes] if at_start else raw[-nbytes:]
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


#: What finishes or mends a store that dask_gmm generated, for messages.
RERUN = "the same generate command (for the store of `dask-gmm demo`, the same demo command)"


class UncheckableLayout(ValueError):
    """A sharded layout whose shard index this module cannot read (:func:`_shard_index_format`), so
    whose unwritten chunks it cannot find: refused by a fit, reported by ``dask-gmm info``."""


class DamagedMetadata(ValueError):
    """A Zarr store whose metadata (``zarr.json``) cannot be read: still a store, which an
    overwrite may replace."""


def first_few(names, sep=", "):
    """The first five of ``names`` joined by ``sep``, and ``...`` when there are more: for messages."""
    return sep.join(names[:5]) + (f"{sep}..." if len(names) > 5 else "")


def refuse_unwritten(arrays, path, advice):
    """A ValueError when chunks just written to ``arrays`` (Zarr arrays of the store ``path``) are not
    in the store as this process sees it: a cluster's workers wrote them to a disk of their own.
    ``advice`` ends the message."""
    lost = [f"{a.path}/{key}" if a.path else key for a in arrays for key in missing_chunks(a)]
    if lost:
        chunks, are, them = ("1 chunk", "is", "it") if len(lost) == 1 else (f"{len(lost)} chunks", "are", "them")
        raise ValueError(f"{chunks} written for {path} {are} not in the store as this process sees it "
                         f"({first_few(lost)}); a cluster's workers may have written {them} to a disk of their "
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
        _refuse_replaced(arr)
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


def _chunk_layout(arr):
    """What names and shapes the chunk files of ``arr``: its format, shape, chunks, shards, dtype and
    chunk key encoding (v3; v2: its dimension separator)."""
    meta = arr.metadata
    keys = getattr(meta, "chunk_key_encoding", None) or getattr(meta, "dimension_separator", None)
    return meta.zarr_format, arr.shape, arr.chunks, arr.shards, arr.dtype, keys


def _refuse_replaced(arr):
    """A ValueError when the store of ``arr`` holds another array now (:func:`_chunk_layout`) or none:
    replaced since ``arr`` was opened, so its chunks listed now are not its own (two demos in one
    folder: the second's store had been called the first's, missing chunks, a review)."""
    try:
        now = zarr.open_array(arr.store_path, mode="r")
        same = _chunk_layout(now) == _chunk_layout(arr)
    except (OSError, ValueError):  # gone, or its metadata half written
        now, same = None, False
    if not same:
        held = "no array" if now is None else f"an array of shape {now.shape} in chunks {now.chunks}"
        if now is not None and (now.shape, now.chunks) == (arr.shape, arr.chunks):
            held += " of another layout (Zarr format, shards, dtype or chunk key encoding)"
        raise ValueError(
            f"The Zarr array {_store_name(arr)!r} changed while dask_gmm read it: it was opened as an array of "
            f"shape {arr.shape} in chunks {arr.chunks}, and holds {held} now (another run replaced it). Rerun "
            "it once the store is no longer being written.")


#: How to regenerate a corrupt chunk of a generated store, in the library's words; the command line says
#: it in its own. Not ``overwrite``: without a seed given, that draws another and rewrites every chunk
#: with other rows (a review: the advice had swapped the intact chunks for other data).
REGENERATE = ("(a store of generate_mixture: delete that chunk's file and repeat the same call, without "
              "overwrite=True: it writes the chunk again from the seed the store records)")


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
    """``Chunk 'KEY' of the Zarr array 'NAME' (rows A-B)``, for the block ``index`` of ``arr``: named, as
    X and the weights may be two stores (a corrupt chunk of the weights' had been "of the Zarr array")."""
    what = "Shard" if arr.shards else "Chunk"
    last = min(index[0].stop, arr.shape[0]) - 1
    return f"{what} {_chunk_key(arr, index)!r} of the Zarr array {_store_name(arr)!r} (rows {index[0].start}-{last})"


def _file_size(path):
    """The size in bytes of the file ``path``, -1 when there is none."""
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


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


#: Zarr metadata files (v3, and v2's).
ZARR_METADATA = frozenset({"zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"})


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
            if f in ZARR_METADATA or (key and all(_CHUNK_KEY_PART.fullmatch(p) for p in key.split(os.sep))):
                continue
            foreign.append(os.path.relpath(os.path.join(root, f), path))
    return sorted(foreign)


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
