"""Decodes of a Zarr chunk's codecs bounded by the chunk's size: a chunk made to decode to far more
(a decode bomb: 1 GiB in 785 bytes of bz2) is refused before it is decoded whole.

:func:`bounded_reads` gives zarr's own read path an array whose codecs decode so;
:class:`dask_gmm._reader.ZarrRows` checks its chunks with the same helpers (:func:`check_blosc_length`,
``DECODE_INTO``, :func:`check_decoded_size`, :func:`gunzip`). Each raises a ValueError saying what
is wrong with the chunk, for the reader to name the chunk. :func:`checksummed` says whether an
array's codecs verify a checksum of each chunk (for ``dask-gmm info``).
"""

from __future__ import annotations

import asyncio
import bz2
import copy
import dataclasses
import functools
import gzip
import lzma
import math
import zlib
from io import BytesIO

import numcodecs
import numpy as np
import zarr
from numcodecs import blosc, zstd  # zarr's own dependency, behind its Blosc and Zstd codecs
from zarr.abc.codec import ArrayArrayCodec, ArrayBytesCodec, BytesBytesCodec
from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ShardingCodec, ZstdCodec
from zarr.codecs.numcodecs import Blosc as NumcodecsBlosc
from zarr.codecs._v2 import V2Codec  # zarr v2's compressor and filters as one codec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.codec_pipeline import BatchedCodecPipeline


def check_blosc_length(head, size):
    """A ValueError if a stored chunk of ``size`` bytes, beginning with ``head`` (its first 16
    bytes or fewer), is shorter than its Blosc header says.

    C-Blosc reads as many bytes as the header (bytes 12-15, little-endian) names,
    whatever the buffer's length. A chunk cut short was then decoded from
    whatever lay beyond it: from a thread's reused buffer, the bytes of a chunk
    read before (its rows, for an empty file); from zarr's buffer, past its end.
    Without a checksum nothing else would notice. Bytes beyond the stated length
    are not read, as zarr does not read them.
    """
    if size < 16:
        raise ValueError(f"it holds {size} bytes, fewer than a Blosc header's 16")
    stated = blosc_stored_size(head)
    if stated > size:
        raise ValueError(f"it holds {size:,} bytes where its Blosc header says {stated:,}: cut short")


#: Blosc as zarr v3's codec, zarr v2's compressor, and numcodecs' codec for zarr v3.
BLOSC = (BloscCodec, numcodecs.Blosc, NumcodecsBlosc)


def _zstd_content_size(head):
    """The decoded size a Zstandard frame's header states (RFC 8878, section 3.1.1.1), or None
    when ``head`` (the frame's first bytes, up to 18) is no frame or states no size."""
    if len(head) < 5 or head[:4] != b"\x28\xb5\x2f\xfd":  # the magic number, little-endian
        return None
    descriptor = head[4]
    fcs_flag, single_segment, dict_flag = descriptor >> 6, descriptor >> 5 & 1, descriptor & 3
    at = 5 + (not single_segment) + (0, 1, 2, 4)[dict_flag]  # after the window and dictionary fields
    width = (int(single_segment), 2, 4, 8)[fcs_flag]
    if not width or len(head) < at + width:
        return None
    return int.from_bytes(head[at : at + width], "little") + (256 if width == 2 else 0)


def _zstd_decoded_size(src):
    """The decoded size that all the Zstandard frames of ``src`` (uint8) state together, as numcodecs
    decodes them all, or None when one states none or ``src`` is not such frames (RFC 8878: skippable
    frames add nothing; each frame's blocks are stepped over by their 3-byte headers, not decoded).
    The first frame's size alone let a second frame of 256 MiB through to numcodecs (a review)."""
    mv, at, total = memoryview(src), 0, 0
    while at < len(mv):
        magic = int.from_bytes(mv[at : at + 4], "little")
        if magic & 0xFFFFFFF0 == 0x184D2A50:  # a skippable frame: its length, then its bytes
            at += 8 + int.from_bytes(mv[at + 4 : at + 8], "little")
            continue
        size = _zstd_content_size(mv[at : at + 18].tobytes())
        if size is None:
            return None
        fhd = mv[at + 4]
        single = fhd >> 5 & 1
        at += 5 + (not single) + (0, 1, 2, 4)[fhd & 3] + (single, 2, 4, 8)[fhd >> 6]
        last = False
        while not last:
            if at + 3 > len(mv):
                return None
            header = int.from_bytes(mv[at : at + 3], "little")
            last, kind = header & 1, header >> 1 & 3
            at += 3 + (1 if kind == 1 else header >> 3)  # an RLE block is one byte
        at += 4 * (fhd >> 2 & 1)  # the checksum
        total += size
    return total if at == len(mv) else None


def blosc_stored_size(head):
    """The length of the Blosc chunk that begins with ``head`` (its first 16 bytes at least), as its
    header states it: bytes 12-15, little-endian."""
    return int.from_bytes(bytes(head[12:16]), "little")


def _blosc_decoded_size(src):
    """The decoded size that the Blosc chunk ``src`` (its bytes, or their first 16 at least) states:
    its header's bytes 4-7, little-endian."""
    return int.from_bytes(bytes(src[4:8]), "little")


def check_decoded_size(stated, most, chunk):
    """A ValueError if a chunk's codec states (``stated`` bytes, None: not stated) that it decodes to
    more than ``most`` bytes, where a chunk holds ``chunk``: its decode would allocate them first."""
    if stated is not None and stated > most:
        raise ValueError(f"it says it decodes to {stated:,} bytes, where a chunk holds {chunk:,}")


#: The bytes-to-bytes codecs whose decoded size the direct reader reads from their bytes, to bound
#: it (:meth:`dask_gmm._reader.ZarrRows._decode_bytes`) and to decode into a buffer of its own, reused or given: for
#: each, that size, and the numcodecs function that decodes into a given buffer (zarr's own decode
#: makes a new one).
DECODE_INTO = {
    BloscCodec: (_blosc_decoded_size, blosc.decompress),
    ZstdCodec: (_zstd_decoded_size, zstd.decompress),
}


def _too_much(limit, chunk):
    """The error of a decode that made more than ``limit`` bytes, where a chunk holds ``chunk``."""
    return ValueError(f"it decodes to more than {limit:,} bytes, where a chunk holds {chunk:,}")


def gunzip(src, limit, chunk):
    """The Gzip data ``src`` (uint8) decoded, as uint8, as numcodecs' GZip decodes it (every member),
    read up to ``limit`` bytes: a ValueError if there is more (a chunk holds ``chunk``)."""
    with gzip.GzipFile(fileobj=BytesIO(src), mode="rb") as f:
        out = f.read(limit + 1)
    if len(out) > limit:
        raise _too_much(limit, chunk)
    return np.frombuffer(out, np.uint8)


def _bounded_stream(make, src, limit, chunk, truncated, what):
    """The concatenated streams of ``src`` decoded by the decompressors ``make()`` (bz2's, LZMA's), as
    ``bz2.decompress`` and ``lzma.decompress`` decode them (bytes after the first stream that are no
    stream are ignored), read up to ``limit`` bytes: a ValueError if there is more (a chunk holds
    ``chunk``), or if the data is not ``what`` (bz2 says so by an OSError, which is not a decode error)."""
    parts, total, data = [], 0, bytes(src)
    while data:
        d = make()
        try:
            part = d.decompress(data, limit + 1 - total)
        except (OSError, lzma.LZMAError) as exc:
            if parts:
                break
            raise ValueError(f"not {what} data ({exc})") from None
        parts.append(part)
        total += len(part)
        if total > limit:
            raise _too_much(limit, chunk)
        if not d.eof:
            raise ValueError(truncated)
        data = d.unused_data
    return np.frombuffer(b"".join(parts), np.uint8)


def _zlib_at_most(src, limit, chunk):
    """``zlib.decompress(src)`` (numcodecs' Zlib), read up to ``limit`` bytes: a ValueError if there is
    more (a chunk holds ``chunk``)."""
    d = zlib.decompressobj()
    out = d.decompress(bytes(src), limit + 1)
    if len(out) > limit:
        raise _too_much(limit, chunk)
    if not d.eof:
        raise zlib.error("Error -5 while decompressing data: incomplete or truncated stream")
    return np.frombuffer(out, np.uint8)


def numcodec(codec):
    """The numcodecs codec behind ``codec`` (zarr's codecs of numcodecs for zarr v3 wrap one), else ``codec``."""
    inner = getattr(codec, "_codec", None)
    return inner if isinstance(inner, numcodecs.abc.Codec) else codec


#: Codecs (zarr's, and numcodecs' for Zarr v2 or wrapped for v3) that check a checksum of each chunk.
CHECKSUM_CODECS = frozenset({"crc32ccodec", "crc32c", "crc32", "adler32", "fletcher32", "jenkinslookup3"})


def checksummed(codecs):
    """Whether one of ``codecs`` (an array's filters and compressors) verifies a chunk's bytes when
    it decodes them: a checksum codec in any position, or Zstd with its frame checksum on (zarr's,
    numcodecs', or numcodecs' wrapped for Zarr v3, whose setting is the codec it wraps)."""
    return any(type(c).__name__.lower() in CHECKSUM_CODECS or getattr(numcodec(c), "checksum", False) is True
               for c in codecs)


def _lz4_stated(src):
    """The decoded size that numcodecs' LZ4 chunk ``src`` states: its first 4 bytes, little-endian."""
    return int.from_bytes(bytes(src[:4]), "little") if len(src) >= 4 else None


def _decoded_at_most(codec, src, most, exact, chunk):
    """The bytes ``src`` (uint8) decoded by the bytes-to-bytes codec (or zarr v2 compressor) ``codec``
    with the decode bounded by ``most`` bytes, for zarr's own read (:func:`bounded_reads`) of chunks of
    ``chunk`` bytes: the decoded bytes (uint8), or None where the codec's own decode may follow, its
    size checked first.

    Blosc's header (its length, then its decoded size), LZ4's and Zstd's stated sizes are checked; Gzip,
    Zlib, bz2 and LZMA are read up to ``most`` bytes; Zstd frames of which one states no size are
    decoded into ``exact`` bytes (where the codec's output is a chunk's bytes), else left to the codec.
    Other codecs are left to their own decode (checksums make their input smaller)."""
    nc = numcodec(codec)
    if isinstance(codec, BLOSC):  # zarr's numcodecs Blosc among them
        check_blosc_length(src[:16].tobytes(), src.size)
        check_decoded_size(_blosc_decoded_size(src), most, chunk)
    elif isinstance(codec, ZstdCodec) or isinstance(nc, numcodecs.Zstd):
        stated = _zstd_decoded_size(src)
        check_decoded_size(stated, most, chunk)
        if stated is None and exact:
            out = np.empty(exact, np.uint8)
            zstd.decompress(src, out)
            return out
    elif isinstance(codec, GzipCodec) or isinstance(nc, numcodecs.GZip):
        return gunzip(src, most, chunk)
    elif isinstance(nc, numcodecs.Zlib):
        return _zlib_at_most(src, most, chunk)
    elif isinstance(nc, numcodecs.BZ2):
        return _bounded_stream(bz2.BZ2Decompressor, src, most, chunk, "bz2 data cut short", "bz2")
    elif isinstance(nc, numcodecs.LZMA):
        make = functools.partial(lzma.LZMADecompressor, nc.format, None, nc.filters)
        return _bounded_stream(make, src, most, chunk, "LZMA data cut short", "LZMA")
    elif isinstance(nc, numcodecs.LZ4):
        check_decoded_size(_lz4_stated(src), most, chunk)
    return None


@dataclasses.dataclass(frozen=True)
class _BoundedCodec(BytesBytesCodec):
    """A zarr v3 bytes-to-bytes ``codec`` whose decode is bounded (:func:`_decoded_at_most`) by ``most``
    bytes; ``exact``: its output's size where that is a chunk's bytes, else 0; ``chunk``: a chunk's
    bytes. Reads only."""

    codec: BytesBytesCodec
    most: int
    exact: int
    chunk: int

    def resolve_metadata(self, chunk_spec):
        return self.codec.resolve_metadata(chunk_spec)

    def compute_encoded_size(self, input_byte_length, chunk_spec):
        return self.codec.compute_encoded_size(input_byte_length, chunk_spec)

    def to_dict(self):
        return self.codec.to_dict()

    def _checked(self, chunk_bytes, chunk_spec):
        out = _decoded_at_most(self.codec, chunk_bytes.as_numpy_array(), self.most, self.exact, self.chunk)
        return None if out is None else chunk_spec.prototype.buffer.from_array_like(out)

    def _decode_sync(self, chunk_bytes, chunk_spec):
        out = self._checked(chunk_bytes, chunk_spec)
        return self.codec._decode_sync(chunk_bytes, chunk_spec) if out is None else out

    async def _decode_single(self, chunk_bytes, chunk_spec):
        if hasattr(self.codec, "_decode_sync"):  # zarr's own codecs: the check and the decode on one thread
            return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)
        out = await asyncio.to_thread(self._checked, chunk_bytes, chunk_spec)
        return await self.codec._decode_single(chunk_bytes, chunk_spec) if out is None else out

    async def _encode_single(self, chunk_bytes, chunk_spec):
        raise NotImplementedError("dask_gmm reads this array only")


class _BoundedCompressor(numcodecs.abc.Codec):
    """A zarr v2 ``compressor`` whose decode is bounded (:func:`_decoded_at_most`) by ``most`` bytes;
    ``exact``: its output's size where that is a chunk's bytes (no filters), else 0; ``chunk``: a chunk's
    bytes. Reads only."""

    codec_id = "dask_gmm-bounded"

    def __init__(self, compressor, most, exact, chunk):
        self.compressor, self.most, self.exact, self.chunk = compressor, most, exact, chunk

    def decode(self, buf, out=None):
        src = numcodecs.compat.ensure_contiguous_ndarray(buf).reshape(-1).view(np.uint8)
        got = _decoded_at_most(self.compressor, src, self.most, self.exact, self.chunk)
        return self.compressor.decode(buf, out) if got is None else numcodecs.compat.ndarray_copy(got, out)

    def encode(self, buf):
        raise NotImplementedError("dask_gmm reads this array only")


class _BoundedSharding(ShardingCodec):
    """A ShardingCodec whose inner codecs are bounded (:class:`_BoundedCodec`), pickled with them
    (ShardingCodec's own pickle makes its codecs anew from their JSON)."""

    def __reduce__(self):
        return _bounded_sharding, (self.chunk_shape, self.codecs, self.index_codecs, self.index_location)


def _bounded_sharding(chunk_shape, codecs, index_codecs, index_location):
    """A :class:`_BoundedSharding` of these settings (its arguments are keywords only)."""
    return _BoundedSharding(chunk_shape=chunk_shape, codecs=codecs, index_codecs=index_codecs,
                            index_location=index_location)


def _most_bytes(values, exact=0):
    """The most bytes a codec's decode may make for a chunk of ``values`` values whose bytes codec takes
    ``exact`` bytes (0: not known): 16 a value (room for a filter of zarr v2's that widens them, AsType:
    to 16 bytes), or ``exact`` if more, and 4 KiB."""
    return max(16 * values, exact) + 4096


def _bounded_codecs(codecs, spec):
    """zarr v3's ``codecs`` for chunks of ``spec`` (an ArraySpec) with their bytes-to-bytes codecs bounded
    (:class:`_BoundedCodec`), a sharding codec's inner ones too. The bytes codec's input is the chunk as
    the array-to-array codecs leave it (AsType, PackBits: another dtype or shape)."""
    for c in codecs:
        if isinstance(c, ArrayArrayCodec):
            spec = c.resolve_metadata(spec)
    ab = next(c for c in codecs if isinstance(c, ArrayBytesCodec))
    values = math.prod(spec.shape)
    chunk = values * spec.dtype.to_native_dtype().itemsize  # the bytes a chunk takes in the bytes codec
    exact = chunk if type(ab) is BytesCodec else 0
    most = _most_bytes(values, exact)
    if isinstance(ab, ShardingCodec):  # the codecs after it decode a shard: its index, each inner chunk's overhead
        most += (16 + 1024) * math.prod(-(-s // c) for s, c in zip(spec.shape, ab.chunk_shape)) + 4
    innermost = next((c for c in codecs if isinstance(c, BytesBytesCodec)), None)
    out = []
    for c in codecs:
        if isinstance(c, ShardingCodec):
            inner = dataclasses.replace(spec, shape=tuple(c.chunk_shape))
            c = _bounded_sharding(c.chunk_shape, _bounded_codecs(c.codecs, inner), c.index_codecs, c.index_location)
        elif isinstance(c, BytesBytesCodec):
            c = _BoundedCodec(c, most, exact if c is innermost else 0, chunk)
        out.append(c)
    return tuple(out)


#: zarr v2 filters whose output has a size that depends only on their input's (not compressors).
_FIXED_SIZE_FILTERS = tuple(getattr(numcodecs, name) for name in (  # CRC32C only with a crc32c library (numcodecs < 0.16.4)
    "Delta", "AsType", "FixedScaleOffset", "Quantize", "PackBits", "Shuffle", "BitRound", "Base64", "CRC32", "CRC32C",
    "Adler32", "Fletcher32", "JenkinsLookup3") if hasattr(numcodecs, name))


def _filtered_bytes(md):
    """``(the bytes that zarr v2's filters of the array `md` (its metadata) make of a chunk, the compressor's
    input, found by filtering a chunk of zeros; whether every filter's output has a size that depends on
    its input's only)``; ``(0, False)`` where a filter cannot run on zeros."""
    dtype = md.dtype.to_native_dtype()
    if not md.filters:
        return math.prod(md.chunks) * dtype.itemsize, True
    fixed = all(isinstance(f, _FIXED_SIZE_FILTERS) for f in md.filters)
    try:
        buf = np.zeros(md.chunks, dtype)
        for f in md.filters:
            buf = f.encode(buf)
        return numcodecs.compat.ensure_ndarray(buf).nbytes, fixed
    except Exception:  # noqa: BLE001 - a filter this cannot run on zeros: its size is not known
        return 0, False


def bounded_reads(arr):
    """The Zarr array ``arr``, read through zarr's own path with every codec's decode bounded by a
    chunk's bytes (:func:`_decoded_at_most`): a chunk made to decode to far more (a decode bomb: 1 GiB
    in 785 bytes of bz2) is refused before it is decoded whole, in any store, sharded or not, and a
    Blosc chunk cut short too (C-Blosc reads past its end, without an error). The same metadata and
    store; only its codec pipeline differs, pickled with it (a cluster's workers read it so too).
    ``arr`` itself where its pipeline is not zarr's batched one (one set in zarr's config)."""
    pipeline = arr.async_array.codec_pipeline
    if type(pipeline) is not BatchedCodecPipeline:
        return arr
    md = arr.metadata
    if md.zarr_format == 2:  # the compressor, then each filter (any codec may be one), bounded
        if md.compressor is None and not md.filters:
            return arr
        values, (filtered, fixed) = math.prod(md.chunks), _filtered_bytes(md)
        chunk, exact = values * np.dtype(arr.dtype).itemsize, filtered if fixed else 0
        bound = functools.partial(_BoundedCompressor, most=_most_bytes(values, filtered), chunk=chunk)
        filters = md.filters and tuple(bound(f, exact=chunk if i == 0 else 0)  # the first decodes to a
                                       for i, f in enumerate(md.filters))  # chunk's bytes exactly
        codecs = [V2Codec(filters=filters,
                          compressor=None if md.compressor is None else bound(md.compressor, exact=exact))]
    else:
        codecs = _bounded_codecs(md.codecs, md.get_chunk_spec((0,) * arr.ndim, arr.async_array.config,
                                                              default_buffer_prototype()))
    twin = copy.copy(arr.async_array)
    object.__setattr__(twin, "codec_pipeline", BatchedCodecPipeline.from_codecs(codecs, batch_size=pipeline.batch_size))
    return zarr.Array(twin)
