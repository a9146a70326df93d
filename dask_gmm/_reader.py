"""Reading a Zarr array's chunks: :class:`ZarrRows`, the direct synchronous reader of a float
array's chunk files (read into buffers each thread reuses, decoded, put together in whole rows,
each file's size checked against the one seen when a fit began), and zarr's own read path with a
chunk that cannot be decoded named (:func:`_zarr_blocks`); and which Zarr arrays a dask array's
graph reads (:func:`zarr_arrays_read_by`).
"""

from __future__ import annotations

import functools
import gzip
import itertools
import lzma
import math
import os
import re
import stat
import sys
import threading
import time
import uuid
import zipfile
import zlib

import dask.array as da
import numpy as np
import zarr
from dask._task_spec import DataNode, Task  # the task spec (dask 2025 on) that graphs are made of
from dask.array.core import getter
from dask.blockwise import Blockwise
# the synchronous codec and store protocols (SupportsSyncCodec, SupportsGetSync) are zarr >= 3.1.6's
from zarr.abc.codec import ArrayArrayCodec, ArrayBytesCodec, BytesBytesCodec, SupportsSyncCodec
from zarr.abc.store import SupportsGetSync
from zarr.codecs import BytesCodec, GzipCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync  # zarr 3 has no synchronous listing or lookup in its public API

from . import _codecs, _kernels, _numba
from ._store import (REGENERATE, _absent_as_fill, _chunk_coords, _chunk_key, _chunk_name, _file_size, _fill_value,
                     _local_root, _storage_key, _store_name, _unwritten_inner_chunks, _written_since, first_few,
                     missing_chunks)


def _zarr_blocks(arr, chunks, absent=frozenset()):
    """``arr`` as a dask array read through zarr, ``da.from_zarr`` but for the errors; the chunks
    whose keys are in ``absent`` (:func:`~dask_gmm._store._absent_chunks`) read as fill values.

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
#: no compressor). gzip's BadGzipFile is an OSError, the one such named here. A zip store's
#: member whose bytes fail the zip file's own CRC-32 is zipfile's BadZipFile.
_DECODE_ERRORS = (RuntimeError, ValueError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile, zipfile.BadZipFile)


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
    (absent when the read began, read as fill values: :data:`~dask_gmm._store.ABSENT_CHUNKS`) that holds data now
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
    elif arr.shards and block.size and _inner_fill(np.asarray(block), arr):
        gone = set(_unwritten_inner_chunks(arr, [(_chunk_coords(arr, index), _chunk_key(arr, index))])) - absent
        if gone:  # an inner chunk removed since the store was opened (a rewrite of rows of zeros, say)
            raise ValueError(
                f"{_chunk_name(arr, index)} has lost {len(gone)} of its inner chunks since the store was opened "
                f"({first_few(sorted(gone))}); zarr would read them as fill values. Restore the store, or compute "
                "the output again from the store as it is now."
            )
    return block


def _inner_fill(block, arr):
    """Whether some inner chunk's part of ``block``, a shard of the 2-D sharded array ``arr``, is all
    fill value: a lazy output had read an inner chunk removed after it was made as rows of fill
    values, where a whole shard removed is refused (a review). A few values a part, for data."""
    rows, cols = arr.chunks[0], arr.chunks[1] if block.ndim > 1 else None
    for r in range(0, block.shape[0], rows):
        for c in range(0, block.shape[1], cols) if cols else (None,):
            part = block[r : r + rows] if c is None else block[r : r + rows, c : c + cols]
            if part.size and _all_fill(part, arr.fill_value):
                return True
    return False


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
        if room > 2**26:  # no larger than the file: chunks declared of 1e12 rows had asked for 22 TiB (a review)
            room = min(room, os.fstat(f.fileno()).st_size + 1)
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
    :data:`~dask_gmm._store.ABSENT_CHUNKS` is ``"fill"`` and it was absent when the reader was made.
    Make one with :func:`dask_gmm.io.zarr_rows`.

    :meth:`pieces` reads a local store's chunk files, and decodes Blosc, into
    buffers each thread reuses (:func:`_scratch`), not into new ones per chunk:
    with glibc's allocation set as a ``distributed`` worker's nanny sets it
    (``MALLOC_TRIM_THRESHOLD_``), every new 4 MiB buffer was mapped afresh and
    faulted in page by page, and a chunk took 4.2 ms to read and decode where
    it took 0.9 ms in a plain process (1.2 ms in reused buffers).

    A row's features may lie in several chunks (zarr's own default chunking, ``(rows, 1)``
    for few features): each of a band of rows is decoded and copied into its columns of one
    array of whole rows (this thread's reused buffer). Read through zarr and dask's rechunk
    instead, a fit of such a store ran 2.5 times as long as one of whole rows. From 2 features
    a chunk, or 8 chunks a band, the band's chunks are decoded into one more reused buffer and
    put together a tile of rows at a time (:func:`dask_gmm._numba.interleave`).

    Parameters
    ----------
    arr : zarr.Array of shape (n_samples, n_features), float32 or float64
    """

    def __init__(self, arr):
        self.array = arr
        self.name = _store_name(arr)  # for messages
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
        self._made = time.time_ns()  # a chunk file changed since, that cannot be decoded, may be read half-written
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
        of local files. ``state``, a :class:`~dask_gmm._cluster.StoredFiles` scan, gives the sizes it holds (a stat of
        each of 20,000 chunk files took 0.1 s).

        A task carries the sizes of its own chunks: a cluster's worker that sees another store at
        this path (another disk's copy), or a store rewritten since, is then found at the chunk
        read, by any worker, whenever it joined; the checks of whole stores
        (:func:`~dask_gmm._cluster.refuse_other_files_on_workers`, :meth:`~dask_gmm._cluster.StoredFiles.check`) ask the workers known
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
        name = f"Chunk {key!r} of the Zarr array {self.name!r} (rows {first}-{first + rows - 1})"
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
        try:
            return self._decode(buf, reuse, into)
        except _DECODE_ERRORS as exc:
            raise ValueError(self._rewritten(i, j, buf) or _undecodable(name, exc)) from exc

    def _decode(self, buf, reuse, into):
        """The chunk decoded from its stored bytes ``buf`` (uint8), as :meth:`_decoded`; the codecs' own errors."""
        # decoded straight into ``into`` where its bytes are the chunk's as stored, by the innermost codec
        plain = into is not None and self._stored is not None and self._stored == self.dtype  # (None == float64 dtype)
        dest = into.view(np.uint8).reshape(-1) if plain else None
        for codec in reversed(self._bb):
            buf = self._decode_bytes(codec, buf, reuse, dest if codec is self._bb[0] else None)
        if self._stored is not None:  # the bytes codec alone, as zarr's: a view of the bytes, 10 us sooner
            return buf.view(self._stored).reshape(self._specs[0].shape)
        nd = self._ab._decode_sync(self._specs[-1].prototype.buffer.from_array_like(buf), self._specs[-1])
        for codec, spec in zip(reversed(self._aa), reversed(self._specs[:-1])):
            nd = codec._decode_sync(nd, spec)
        return nd.as_numpy_array()

    def _rewritten(self, i, j, stored):
        """The error for chunk ``(i, j)``, whose bytes ``stored`` could not be decoded, where they were read
        while the file was rewritten: a local file whose status changed since this reader was made
        (``st_ctime_ns``), and, read again, holds other bytes, which decode. It had been called
        corrupt, with the advice to restore the store, when a chunk rewritten in place was read
        half-written (a review). None where the file is as read, or still cannot be decoded."""
        if self._files is not None:  # a local file: changed since this reader was made (a file that came in
            try:  # short, as a network file system's may, is no change: it is refused as it came)
                if os.stat(os.path.join(self._files, self._key(i, j))).st_ctime_ns <= self._made:
                    return None
            except OSError:
                return None
        again = self._fetch(self._key(i, j), False)
        if again is None or np.array_equal(again, stored):
            return None
        try:
            self._decode(again, False, None)
        except _DECODE_ERRORS:
            return None
        name, rows = self._named(i, j)
        where = self._folder() if self._files else self.name
        return (f"The Zarr array {where!r} changed while dask_gmm read it: its chunk {name!r} ({rows}) was read "
                "while it was being rewritten, so what was read mixes data from before and after, and was "
                "discarded. Rerun it once the store is no longer being written.")

    def _named(self, i, j):
        """(the key of chunk ``(i, j)`` in the array's folder, "rows A-B"), for messages."""
        first = i * self.chunk_rows
        last = min(first + self.chunk_rows, self.shape[0]) - 1
        return self.array.metadata.encode_chunk_key((i, j)), f"rows {first}-{last}"

    def _not_as_set_up(self, i, j, got, size):
        """The error for chunk ``(i, j)``, read as a file of ``got`` bytes where :meth:`sizes` saw ``size``
        (-1: none), in the words of :meth:`~dask_gmm._cluster.StoredFiles.check` and :func:`~dask_gmm._cluster.refuse_other_files_on_workers`."""
        folder = self._folder()
        name, rows = self._named(i, j)
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


def _direct(X):
    """Whether :class:`ZarrRows` reads X: a Zarr v3 array of float32 or float64, in a store with a
    synchronous ``get_sync`` (local files, memory), of codecs with a synchronous decode (not
    sharding). Anything else is read through dask and zarr's own path."""
    return (isinstance(X, zarr.Array) and X.metadata.zarr_format == 3
            and X.ndim == 2 and all(X.shape) and np.dtype(X.dtype).kind == "f" and np.dtype(X.dtype).itemsize in (4, 8)
            and isinstance(X.store_path.store, SupportsGetSync)
            and all(isinstance(c, SupportsSyncCodec) for c in X.metadata.codecs))


def whole_zarr_array(X):
    """The ``zarr.Array`` that the dask array ``X`` reads whole and unchanged (``da.from_zarr(arr)``,
    ``da.from_array(arr)``, in any chunks), else None: a dask array computed from one (sliced,
    cast, scaled) reads it through zarr, as dask does, checked by :func:`~dask_gmm._cluster._check_zarr_sources`.
    Its shape and dtype are those it had when ``X`` was made, or it was written to since (resized
    through this object): the caller compares them with ``X``'s."""
    layers = X.dask.layers
    top = layers.get(X.name)
    task = getattr(top, "task", None)  # dask's task spec (2025 on); older graphs are not unwrapped
    if not isinstance(top, Blockwise) or len(layers) > 2 or getattr(task, "func", None) is not getter:
        return None
    arrays = zarr_arrays_read_by(X, wrapped=False)  # in an ``original-`` layer, unless dask inlined it in the tasks
    return arrays[0] if len(arrays) == 1 and arrays[0].ndim == X.ndim else None


def zarr_arrays_read_by(X, wrapped=True):
    """The Zarr arrays that the dask array ``X``'s graph reads (by ``da.from_zarr`` or
    ``da.from_array`` anywhere in it: the arrays themselves, or given to its tasks, fused ones
    too), once each; with ``wrapped``, also those under xarray's lazy array wrappers
    (:func:`_under_xarray`)."""
    found = {}
    for layer in X.dask.layers.values():
        if isinstance(layer, Blockwise):  # its constants, and its task (map_blocks' keyword arguments)
            values = [arg for arg, index in layer.indices if index is None] + [getattr(layer, "task", None)]
        else:  # a MaterializedLayer, or another kind of layer, materialised
            values = layer.values()
        arrays = (v if isinstance(v, zarr.Array) or not wrapped else _under_xarray(v) for v in _task_values(values))
        found.update((id(a), a) for a in arrays if isinstance(a, zarr.Array))
    return list(found.values())


def _task_values(values):
    """``values`` (a graph's tasks and constants) and everything their tasks hold: a task's arguments
    and keyword arguments, a data node's value, the items of tuples, lists and dicts, each once.
    ``dask.optimize`` and a Dask DataFrame's ``to_dask_array`` put ``da.from_zarr``'s array inside
    fused tasks (a subgraph in a task's arguments), where a lost chunk had read as fill values and
    been fitted (a review)."""
    stack, seen = list(values), set()
    while stack:
        v = stack.pop()
        if v is None or isinstance(v, (str, bytes, int, float, np.ndarray)) or id(v) in seen:
            continue
        seen.add(id(v))
        yield v
        if isinstance(v, Task):  # its nested containers (List, Dict) too
            stack.extend(v.args)
            stack.extend(v.kwargs.values())
        elif isinstance(v, DataNode):
            stack.append(v.value)
        elif isinstance(v, (tuple, list)):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.values())


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
