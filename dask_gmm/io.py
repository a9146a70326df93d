"""Opening inputs as row-chunked dask arrays, with the checks that keep fits honest.

Accepted inputs: NumPy arrays (and array-likes), Dask arrays, ``zarr.Array``,
and paths or fsspec URLs of Zarr stores holding an array or a group with the
array ``X``. Every result has whole rows in each chunk (all features), and its
row chunks are multiples of the Zarr chunks (or shards). Every block a pass or an output
takes is checked to be what its dask array declares (:func:`declared`).

A Zarr array's chunks are read by :mod:`dask_gmm._reader`; which of them are written, and where
their files are, is :mod:`dask_gmm._store`'s; the checks of a pass's sources and of a cluster's
workers are :mod:`dask_gmm._cluster`'s.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import math
import os
import pathlib
import re
import stat
import struct
import sys
import uuid
import warnings
import zipfile

import dask
import dask.array as da
import fsspec
import numpy as np
import scipy.sparse
import zarr
from dask.highlevelgraph import HighLevelGraph
from zarr.core import sync as zarr_sync  # its event loop, to wait for after an interrupt

from . import _cluster, _kernels
from ._kernels import total_weight
from ._reader import ZarrRows, _direct, _under_xarray, _zarr_blocks, whole_zarr_array
from ._store import (RERUN, ZARR_METADATA, DamagedMetadata, _absent_chunks, _local_folder, _local_root, _store_name,
                     first_few, foreign_files, member_nodes)


logger = logging.getLogger(__name__)

#: What a fit, score or command raises when its cluster's scheduler, or the connection to it, is lost:
#: catch ``dask_gmm.io.SchedulerLost`` (it is raised by :mod:`dask_gmm._cluster` and :mod:`dask_gmm._em`).
SchedulerLost = _cluster.SchedulerLost

#: Target size of one in-memory chunk when dask_gmm picks the chunking itself.
TARGET_CHUNK_BYTES = 16 * 2**20
#: In-memory inputs are cut into at least this many chunks (when they have the rows), and
#: Zarr inputs into twice as many (when they have the Zarr chunks): whole Zarr chunks are
#: coarse, and more, shorter tasks keep a core from waiting on another's last one.
MIN_CHUNKS = 4
#: An input read in more than MANY_BLOCKS chunk files (a Zarr array's) or blocks (a dask array's),
#: each of under SMALL_BLOCK_BYTES, is warned of: each costs about 0.2 ms a pass to read or to
#: schedule (measured on the development machine), more than its data does (a Zarr array in 20,000
#: chunks of one row took 4.3 s a pass, against 0.07 s in chunks of 100 rows or more).
MANY_BLOCKS = 1000
SMALL_BLOCK_BYTES = 64 * 2**10
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
    of one size (the unit's last part shorter where none divides it). The input's blocks were the outputs' too: 64 components'
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
        else:  # each unit in parts of one size (dividing the unit where it may), the unit's last part shorter
            part = _output_step(unit, 1, most)
            for start in range(0, n, unit):
                m = min(unit, n - start)
                out += [part] * (m // part) + [m % part] * (m % part > 0)
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
    # RFC 8089's local host, in a chain too, which fsspec reads as a relative folder "localhost" (a model
    # was written under ./localhost: a review)
    path = re.sub(r"(?i)(?<![\w+.-])(file|local)://localhost/", r"\1:///", os.fspath(path))
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
        warn_at_caller(f"{path!r} is read through fsspec's caching file system "
                      f"{protocols[caching.index(True)]!r}, which keeps the chunks it has read for the life of each "
                      "process (this one's, and each Dask worker's): a store changed since they were read is read "
                      f"as it was. Give the store's own URL ({own!r}) to read what it holds now.")


def no_x(group, path):
    """The message for the Zarr ``group`` at ``path`` that has no array ``X``, naming the arrays it has."""
    arrays = sorted(readable_metadata(path, lambda: [(k, a.ndim, a.shape[0] if a.ndim else None, a.dtype.kind in "biuf"
                                                      and not _coordinate(k, a)) for k, a in group.arrays()]))
    held = f"; it holds the array(s) {first_few([k for k, *_ in arrays])}" if arrays else ", nor any other array"
    if not arrays:  # nested groups (a/b/X): name them, not just "no array"
        groups = sorted(readable_metadata(path, lambda: [k for k, _ in group.groups()]))
        held += f" (it holds the group(s) {first_few(groups)})" if groups else ""
    data = [k for k, ndim, _, number in arrays if ndim == 2 and number]  # (rows, features) of numbers: not a coordinate
    columns = [(k, rows) for k, ndim, rows, number in arrays if ndim == 1 and number]
    if not data and len(columns) > 1 and len({rows for _, rows in columns}) == 1:  # a variable per feature (xarray's)
        which = ": a feature each" if len(columns) == len(arrays) else (
            f", of which {first_few([k for k, _ in columns])} hold a feature each")  # not its coordinates
        return (f"The Zarr group {path!r} has no array 'X'{held}{which}. Stack them into one array of shape "
                "(rows, features) and pass that (dask.array.stack of each one's dask.array.from_zarr, axis=1).")
    example = f" ({path.rstrip('/')}/{data[0]})" if data else ""
    return f"The Zarr group {path!r} has no array 'X'{held}. Pass the array itself or its path{example}."


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
    """A ValueError when the Zarr array ``X`` (at ``path``, for messages) holds CF-encoded values
    (:func:`cf_encoding`). Read raw, they were fitted in packed units (each byte of 128 or more of an
    ``_Unsigned`` int8 as that less 256), each missing value a row of that number."""
    said = cf_encoding(X)
    if said:
        raise ValueError(
            f"The Zarr array {path!r} holds CF-encoded values ({', '.join(said)}), as xarray writes them: its "
            "stored numbers are not the data's. Open it with xarray (xr.open_zarr(STORE)[NAME]), which decodes "
            "them, drop rows with missing values, and pass the result's .data (for the command line, write that to "
            "a Zarr store of its own)."
        )


def cf_encoding(X):
    """How the Zarr array ``X`` holds CF-encoded values, as xarray writes a variable given an
    encoding, in words (``["scale_factor 0.01", "-32767 marks missing values"]``), [] when it does
    not: numbers packed by a ``scale_factor`` or ``add_offset``, integers whose sign an
    ``_Unsigned`` attribute changes, or a number (not NaN) that marks missing values
    (``_FillValue`` or ``missing_value``, an attribute in Zarr v3; in v2 xarray's fill value, with
    its dimension names)."""
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
    return said


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

    refuse_special_metadata(f"{path.rstrip('/')}/{name}" if isinstance(path, str) else path)
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
    there is none, and a :class:`~dask_gmm._store.DamagedMetadata` when its metadata (``zarr.json``) cannot be
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
        refuse_metadata_file(path)
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


def refuse_metadata_file(path, given=None):
    """A ValueError if ``path`` is a local Zarr metadata file (``zarr.json``, ``.zarray``, ...): its
    store is its folder. ``given``: the path as the user gave it (a file:// URL), for the message."""
    if isinstance(path, str) and os.path.isfile(path) and os.path.basename(path) in ZARR_METADATA:
        raise ValueError(f"{given or path!r} is a Zarr metadata file: give the path of its folder, "
                         f"{os.path.dirname(path) or '.'!r}.")


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


def readable_metadata(path, read):
    """``read()``, a zarr open or lookup under ``path``, with zarr's errors over metadata it cannot
    read (bad JSON, missing or mistyped keys, a JSON list: ValueError, KeyError, TypeError or
    AttributeError) said as one :class:`~dask_gmm._store.DamagedMetadata`, chained to zarr's; an absent node's
    error passes through."""
    refuse_special_metadata(path)
    try:
        return read()
    except (FileNotFoundError, zarr.errors.NodeNotFoundError):
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DamagedMetadata(
            f"The Zarr metadata in {path!r} cannot be read ({type(exc).__name__}: {exc}): the store is "
            "corrupt, or in a form this zarr does not read. Restore or regenerate it."
        ) from exc


def _coordinate(name, arr):
    """Whether the Zarr array ``arr``, named ``name``, is an xarray coordinate: one dimension, named
    as itself (a DataFrame's ``index``, written by ``to_xarray().to_zarr``), not a feature."""
    names = (getattr(arr.metadata, "dimension_names", None) if arr.metadata.zarr_format == 3
             else arr.attrs.get("_ARRAY_DIMENSIONS"))
    return arr.ndim == 1 and list(names or ()) == [name]


def refuse_special_metadata(path):
    """A ValueError where a Zarr metadata file (``zarr.json``, ``.zarray``, ...) in the local folder
    or ``file://`` URL ``path`` is not a regular file: zarr reads a FIFO there for ever (waiting for
    a writer) and a link to ``/dev/zero`` until memory runs out (a review's ``info`` and ``fit``),
    as :func:`~dask_gmm._reader._check_regular` refuses of chunk files. Five ``os.stat`` calls."""
    if not isinstance(path, str):
        return
    scheme, sep, rest = path.partition("://")
    if sep and (scheme != "file" or "::" in rest):
        return
    for name in ZARR_METADATA:
        file = os.path.join(rest if sep else path, name)
        try:
            special = not stat.S_ISREG(os.stat(file).st_mode)
        except OSError:  # none there (or a folder it cannot look in: zarr's read says so)
            continue
        if special:
            raise ValueError(f"The Zarr metadata file {file!r} is not a regular file (a device, a FIFO or a socket, "
                             "or a link to one): the store is damaged. Restore its metadata.")


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
    """``arr`` as a dask array of whole rows, checked; ``direct``: read by a :class:`~dask_gmm._reader.ZarrRows` instead,
    which puts the rows together as it reads them (no warning of chunks across the features)."""
    if arr.ndim != 2 and not arr.dtype.names:  # a store given by its path cannot be reshaped as scikit-learn
        raise ValueError(  # advises (a structured one: its own advice, from _check_shape_dtype)
            f"Expected 2D array of shape (n_samples, n_features), got {arr.ndim}D array instead: the Zarr array "
            f"{str(arr.store_path)!r}, of shape {arr.shape}. Store the data in that shape (a single feature as "
            "(n_samples, 1)), or pass dask.array.from_zarr(...) reshaped to it (.reshape(-1, 1) for a single feature)."
        )
    _check_shape_dtype(arr.shape, arr.dtype, min_samples)
    absent = _absent_chunks(arr)
    unit = arr.shards or arr.chunks
    n, d = arr.shape
    if unit[1] < d and not direct:
        what = "shards" if arr.shards else "chunks"  # a shard is what is read: its chunks may hold part-rows
        warn_at_caller(
            f"The Zarr array is chunked across features ({what} {unit}); it is rechunked "
            f"to whole rows, which reads more. Store it with {what}=(rows, n_features)."
        )
    files = math.prod(-(-size // u) for size, u in zip(arr.shape, unit))
    _warn_small_blocks(files, math.prod(unit) * arr.dtype.itemsize, d, arr.dtype.itemsize,
                       f"The Zarr array {_store_name(arr)!r} is stored in {files:,} {'shards' if arr.shards else 'chunks'}",
                       lambda rows: (f"Generate it again in chunks of {rows:,} rows (generate_mixture's chunk_size, "
                                     "dask-gmm generate --chunk-size)" if holding_status(arr) else  # its labels too
                                     "Rewrite it in chunks of whole rows, such as dask.array.from_zarr(PATH)"
                                     f".rechunk(({rows}, {d})).to_zarr(NEW_PATH)"))
    rows = _rows_for(n, d, arr.dtype.itemsize, base=unit[0], min_chunks=2 * MIN_CHUNKS)
    x = _zarr_blocks(arr, (unit[0], unit[1]), absent)
    return x.rechunk({0: rows, 1: d}) if (rows != unit[0] or unit[1] < d) else x


def _warn_small_blocks(count, size, n_features, itemsize, what, advice):
    """A UserWarning where the input's ``count`` chunk files or blocks, of ``size`` bytes each, are more
    than :data:`MANY_BLOCKS` and smaller than :data:`SMALL_BLOCK_BYTES`: their number, not the data, sets
    a pass's time. ``what`` begins the message, ``advice(rows)`` ends it, ``rows`` those of a block of
    about TARGET_CHUNK_BYTES."""
    if count > MANY_BLOCKS and size < SMALL_BLOCK_BYTES:
        rows = max(1, TARGET_CHUNK_BYTES // (n_features * itemsize))
        warn_at_caller(f"{what} of {size:,} bytes each: every pass reads each one, at about 0.2 ms apiece, so their "
                       f"number, not the data, sets the time. {advice(rows)}, of about 16 MiB.")


def zarr_rows(X):
    """A :class:`~dask_gmm._reader.ZarrRows` reader of X (a Zarr array, or a path or URL of one), or None when it
    cannot read it (:func:`~dask_gmm._reader._direct`)."""
    if isinstance(X, (str, os.PathLike)):
        X = open_zarr(os.fspath(X))
    return ZarrRows(X) if _direct(X) else None


def with_reader(X, min_samples=1):
    """``(as_dask_array(X), zarr_rows(X))``, a path or URL opened once for both; fewer rows than
    ``min_samples`` (2 for a fit) refused."""
    X = open_zarr(X) if isinstance(X, (str, os.PathLike)) else as_zarr_input(X)
    rows = zarr_rows(X)
    return _as_dask_array(X, min_samples, direct=rows is not None), rows


def given_row_chunks(X):
    """The row chunks of X where it is a dask array (an xarray DataArray's data too), else None."""
    X = xarray_data(X)
    return X.chunks[0] if isinstance(X, da.Array) else None


def xarray_data(X):
    """The array under an xarray DataArray (a dask array where it is chunked, as ``xr.open_zarr``
    makes it), else X. Read as an array-like instead, a DataArray was loaded whole into memory,
    through xarray's reads, which take a lost chunk of a Zarr store as fill values.

    An unchunked variable of a Zarr store (``xr.open_dataset(path, engine="zarr")``, ``chunks=None``)
    is loaded here, as ``.data`` loads it, once its Zarr array is checked for lost chunks: they had
    been fitted as rows of fill values (a review)."""
    if type(X).__module__.startswith("xarray.") and type(X).__name__ in ("DataArray", "Variable"):
        if (arr := _under_xarray(getattr(X, "variable", X)._data)) is not None:  # not loaded yet
            _absent_chunks(arr)
        return X.data
    return X


def as_zarr_input(X):
    """A ``zarr.Array`` or ``zarr.Group`` opened again (:func:`_reopened`), the array ``X`` of a
    group, and the Zarr array a dask array reads whole (:func:`~dask_gmm._reader.whole_zarr_array`); anything else
    as it is.

    A dask array made by ``da.from_zarr`` is read as its Zarr array is, so that its missing or
    corrupt chunks are refused by name, as they are when the array is given (zarr reads a missing
    chunk as fill values); where rows were appended to the array since the dask array was made,
    the dask array's own rows are read through dask (all the rows had been fitted while ``predict``
    labelled the dask array's: a review), and where it was changed otherwise, it is refused.
    """
    X = xarray_data(X)
    if isinstance(X, zarr.abc.store.Store):  # as zarr.open takes one: the node at its root
        X = readable_metadata(str(X), lambda: open_read_only(X))
    if isinstance(X, (zarr.Array, zarr.Group)):
        X = _reopened(X)
    elif isinstance(X, da.Array) and (whole := whole_zarr_array(X)) is not None:
        again = _reopened(whole)
        if (again.shape, again.dtype) == (X.shape, X.dtype):
            X = again
        elif again.shape[1:] != X.shape[1:] or again.dtype != X.dtype or again.shape[0] < X.shape[0]:
            raise ValueError(
                f"The dask array reads the Zarr array {str(again.store_path)!r} as it was when the dask array was "
                f"made, of shape {X.shape} and dtype {X.dtype}; it is of shape {again.shape} and dtype "
                f"{again.dtype} now (written to since), and what X holds no longer lies there. Make the dask "
                "array again (da.from_zarr), or pass the store's path."
            )
        # else rows appended since X was made: X's own rows are read, as dask reads them (X.compute())
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
    a Zarr array read by a :class:`~dask_gmm._reader.ZarrRows` (:func:`_from_zarr`); ``unsized``: a dask array whose
    row chunks may be unknown (:func:`unsized_dask_array`)."""
    if isinstance(X, zarr.Array):
        return _as_float(_from_zarr(X, min_samples, direct))
    if is_dask_dataframe(X):  # lazy; one pass to learn each partition's length
        X = float_frame(X).to_dask_array().compute_chunk_sizes()
    if isinstance(X, da.Array):
        _refuse_sparse(X)
        _refuse_masked(X)
        _cluster._check_zarr_sources(X)
        if X.dtype == object:  # NumPy object arrays of numbers are converted; a dask array's values are not known
            raise ValueError("X is a dask array of objects, whose values are unknown until computed (a NumPy "
                             "object array of numbers is converted). Convert it with X.astype(float).")
        # unknown chunks of rows, or of features (X[:, mask]: it had failed in the first pass, blaming X's function)
        if any(np.isnan(c) for axis in X.chunks[1 if unsized else 0 :] for c in axis):
            raise ValueError("X has unknown chunk sizes; call X.compute_chunk_sizes() first.")
        _check_shape_dtype(X.shape, X.dtype, min_samples)
        if len(X.chunks[1]) > 1:
            warn_at_caller("X is chunked across features; it is rechunked to whole rows.")
            X = _whole_rows(X)
        _warn_small_blocks(X.numblocks[0], X.nbytes // max(1, X.numblocks[0]), X.shape[1], X.dtype.itemsize,
                           f"X is a dask array of {X.numblocks[0]:,} blocks",
                           lambda rows: f"Rechunk it, such as X.rechunk({{0: {rows}}})")
        return _as_float(X)
    X = _in_memory(X)
    _check_shape_dtype(X.shape, X.dtype, min_samples)
    return _as_float(_row_views(X, _row_sizes(X)))


def declared(block, shape, first, name="X"):
    """``block``, the block of rows ``first`` on (None: not yet counted) of a dask array, checked to
    be what the array declares: an array of ``shape`` (NaN: a size not yet known) of real numbers.
    A function that makes blocks
    (``da.from_delayed``, ``map_blocks``) and returns other rows was fitted without a word (150
    declared rows of 1,000 never seen), and a complex block lost its imaginary parts."""
    block = aligned(block)
    if type(block) is np.ndarray and block.dtype.kind in "biuf" and block.shape == tuple(shape):
        return block  # what every check below would find (2-3 us, against 8-10 for them)
    rows = ("rows not yet counted (chunks of unknown size, such as a filter's)" if first is None
            else f"rows {first}-{first + shape[0] - 1}")
    if not (hasattr(block, "shape") and hasattr(block, "dtype")):
        raise ValueError(f"The block of {name} holding {rows} is a {type(block).__name__}, not an array: the "
                         "function that makes it (da.from_delayed, map_blocks, ...) must return a NumPy array.")
    if len(block.shape) != len(shape) or any(b != s for b, s in zip(block.shape, shape) if not math.isnan(s)):
        raise ValueError(f"The block of {name} holding {rows} has shape {tuple(block.shape)} where its dask array "
                         f"declares {tuple(shape)}: the function that makes it (da.from_delayed, map_blocks, ...) "
                         "returned another shape than its chunks say. Fix it, or give the array its true chunks.")
    if np.dtype(block.dtype).kind == "c":
        raise ValueError(f"The block of {name} holding {rows} holds complex numbers ({block.dtype}) where its dask "
                         f"array declares real ones: {name} must hold real numbers.")
    if np.dtype(block.dtype).kind not in "biuf":
        raise ValueError(f"The block of {name} holding {rows} holds {block.dtype} values where its dask array "
                         f"declares numbers: {name} must hold real numbers. Convert them in the function that "
                         "makes the blocks.")
    if isinstance(block, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(block)
        masked = np.flatnonzero(mask.any(axis=tuple(range(1, mask.ndim))))  # rows (none in a block of 0)
        if masked.size:
            at = f"row {masked[0]} of the block" if first is None else f"row {first + masked[0]}"
            raise ValueError(f"The block of {name} holding {rows} is a masked array with masked entries in "
                             f"{masked.size} row(s) (first: {at}): they are missing values, "
                             "which would be read as the values under the mask. Fill them as NaN "
                             f"({name}.map_blocks(np.ma.filled, np.nan)) to have their rows named, then remove them.")
        return np.ma.getdata(block)
    if not isinstance(block, np.ndarray):
        raise ValueError(f"The block of {name} holding {rows} is a {type(block).__name__}, "
                         "not a NumPy array: the function that makes it (da.from_delayed, map_blocks, ...) must "
                         "return NumPy arrays (a sparse matrix's .toarray()).")
    return block


def aligned(block):
    """``block``, or an aligned copy of it where it is a misaligned NumPy array.

    distributed hands a worker the data scattered to it, or sent from another worker, at any
    address (odd ones seen), and NumPy sums a misaligned array in another order: a weighted fit's
    total weight on a cluster differed from the threads' in its last bit. Scattered blocks are
    copied as they arrive (:class:`Aligned`), a pass's block here only when moved since: copying
    every misaligned block in every pass made a fit on 2 workers 6-10 % slower."""
    block = block.array if isinstance(block, Aligned) else block  # sent unpickled (an in-process cluster)
    if isinstance(block, np.ndarray) and not block.flags.aligned:
        return block.copy()
    return block


class Aligned:
    """An array to scatter that unpickles as itself, aligned (:func:`aligned`): a worker gets
    it at any address, and would copy it in every pass."""

    def __init__(self, array):
        self.array = array

    def __reduce__(self):
        return aligned, (self.array,)

    def __sizeof__(self):  # held as it is by an in-process cluster's workers: their memory counts its bytes
        return object.__sizeof__(self) + self.array.nbytes


def declared_blocks(arr, name="X"):
    """The dask array ``arr`` with each of its blocks checked to be what it declares
    (:func:`declared`), to be applied before a rechunk: a rechunk cuts and joins blocks, and a block
    of other rows than declared had lost its extra rows without a word, or failed in NumPy's
    concatenation, before any check saw it (a review)."""
    return arr.map_blocks(functools.partial(_declared_block, name), dtype=arr.dtype)


def _declared_block(name, block, block_info=None):
    where = block_info[0]["array-location"]
    return declared(block, tuple(b - a for a, b in where), where[0][0], name)


def _whole_rows(X):
    """X (a dask array chunked across features) with the feature blocks of each row chunk joined,
    one task per row chunk, each block checked (:func:`declared`) as it is joined: a block of
    other rows than declared had failed in NumPy's concatenation (a review), and a layer of checks
    before dask's rechunk made a fit's passes 2x slower."""
    name = f"dask_gmm.whole-rows-{dask.base.tokenize(X)}"
    starts = np.concatenate([[0], np.cumsum(X.chunks[0][:-1])])  # NaN from a chunk of unknown rows on
    graph = {(name, i, 0): (functools.partial(_joined, i, None if math.isnan(first + rows) else int(first), rows,
                                              X.chunks[1]),
                            *((X.name, i, j) for j in range(len(X.chunks[1]))))
             for i, (first, rows) in enumerate(zip(starts, X.chunks[0]))}
    layers = HighLevelGraph.from_collections(name, graph, dependencies=[X])
    return da.Array(layers, name, chunks=(X.chunks[0], (X.shape[1],)), dtype=X.dtype, meta=X._meta)


def _joined(chunk, first, rows, widths, *blocks):
    """The feature ``blocks`` of row chunk ``chunk`` (``rows`` rows from row ``first`` on; NaN and
    None where not yet counted: chunks of unknown size, such as a filter's) side by side, each
    checked to be of its declared ``widths`` (:func:`declared`); uncounted rows must be as many in
    every block."""
    blocks = [declared(b, (rows, w), first) for b, w in zip(blocks, widths)]
    if math.isnan(rows):
        lengths = [len(b) for b in blocks]
        if len(set(lengths)) > 1:
            raise ValueError(f"The feature blocks of X's row chunk {chunk} hold {lengths} rows: the function that "
                             "makes them (da.from_delayed, map_blocks, ...) returned other rows than its chunks "
                             "say. Fix it, or give the array its true chunks.")
    return np.concatenate(blocks, axis=1)


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
    DataFrame (which they do not recognise) an empty pandas DataFrame of its columns. A ValueError
    where a pandas or Dask DataFrame names two columns alike (narwhals' error, in two lines, said
    nothing of what to do)."""
    columns = getattr(X, "columns", None)
    if hasattr(columns, "duplicated") and columns.duplicated().any():  # a pandas Index
        twice = first_few([repr(c) for c in columns[columns.duplicated()].unique()])
        raise ValueError(f"X's columns are not named uniquely ({twice} more than once). Rename them, one name a "
                         "column (df.columns = [...]), or pass its values as an array.")
    if is_dask_dataframe(X):
        import pandas as pd  # a dask DataFrame comes with pandas

        return pd.DataFrame(columns=X.columns)
    return X


def feature_names(X):
    """X's feature names as scikit-learn takes them (a DataFrame's string column names), or None.

    Raises TypeError for column names that mix strings and other types, as scikit-learn does.
    """
    from . import _compat  # scikit-learn, imported when a fit or prediction needs it

    return _compat.get_feature_names(_feature_frame(X))


def check_feature_names(model, X):
    """Check X's feature names against the fitted ``model``'s, as scikit-learn does: other names or
    order a ValueError, names on one side only a warning."""
    from . import _compat

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
    try:
        a = np.asarray(X)
    except ValueError as exc:  # NumPy's "setting an array element with a sequence", naming no row
        if "inhomogeneous" not in str(exc):
            raise
        raise ValueError("X's rows are of different lengths (or hold sequences of them): NumPy makes no array of "
                         "them. Give X as a rectangular array of shape (n_samples, n_features), one number a feature "
                         "in every row.") from None
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
    sample_weight = xarray_data(sample_weight)  # a chunked DataArray lazily, as X (it had been loaded whole)
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
    made = isinstance(sample_weight, da.Array)  # by a function of the user's: its blocks are checked
    if isinstance(sample_weight, zarr.Array):
        sample_weight = _zarr_blocks(sample_weight, sample_weight.chunks, _absent_chunks(sample_weight))
    elif made:
        _cluster._check_zarr_sources(sample_weight)
    _refuse_masked(sample_weight, "sample_weight")
    if not isinstance(sample_weight, da.Array):
        given = np.asarray(sample_weight)
        sample_weight = objects_as_float(given)
    if sample_weight.dtype.kind not in "biuf":  # before any cast: astype(float64) drops imaginary parts
        raise ValueError(
            f"sample_weight must hold real numbers, got dtype {sample_weight.dtype}. Convert it to float64."
        )
    if not isinstance(sample_weight, da.Array) and sample_weight.ndim == 0:  # lazily: np.full had held 8 bytes a row
        if not (math.isfinite(w := float(sample_weight)) and w >= 0):
            shown = "None" if given.dtype == object and given.item() is None else repr(w)  # not the nan NumPy makes
            raise ValueError(f"sample_weight must be finite and non-negative, got {shown}.")
        sample_weight = da.full(X.shape[0], w, chunks=(X.chunks[0],), dtype=np.float64)
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
    if made and sample_weight.chunks[0] != X.chunks[0]:  # before X's chunks cut or join them (Zarr's are right)
        sample_weight = declared_blocks(sample_weight, "sample_weight")
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
    except OverflowError:  # an int beyond float64's range (10**400): infinite, which every caller refuses by name
        return np.array([_float_or_inf(v) for v in a.flat], np.float64).reshape(a.shape)
    except (TypeError, ValueError):
        return None


def _float_or_inf(v):
    try:
        return float(v)
    except OverflowError:
        return math.inf if v > 0 else -math.inf


_NOT_REAL = (complex, np.complexfloating, np.datetime64, np.timedelta64)


def is_lazy(X):
    """Whether per-sample outputs for X should be lazy dask arrays (Dask or Zarr input)."""
    return isinstance(xarray_data(X), (da.Array, zarr.Array, zarr.Group, zarr.abc.store.Store, str, os.PathLike))


