"""Synthetic Gaussian mixtures written to Zarr chunk by chunk, in parallel, reproducibly.

Layout of a generated store (a Zarr v3 group)::

    X        float32/float64, shape (n_samples, n_features), chunks (chunk_size, n_features)
    labels   int8/16/32,      shape (n_samples,),            chunks (chunk_size,)
    true_weights, true_means, true_covariances   float64, the true parameters (full covariances)
    attrs["dask_gmm"]    {"format": "dask_gmm.store/1", "complete": bool, "n_samples", ...}

Stores written before the true parameters became arrays hold them in
``attrs["true_model"]`` ({"weights", "means", "covariances"} as lists), which
readers still take: as JSON they made the group's metadata 152 MB at 768
features and 8 components, read whole at every opening of the store (6 s).

``chunk_size`` is about 4 MiB of ``X`` unless given (:data:`CHUNK_BYTES`).

Every chunk is compressed with Blosc-LZ4 (byte shuffle) and followed by a crc32c checksum, so a
corrupted chunk raises on read instead of feeding garbage to a fit. Missing
chunks read as NaN in ``X`` and -1 in ``labels`` (the fill values), and
:func:`dask_gmm.io.open_zarr` refuses the store until ``complete`` is true.

Reproducibility: chunk ``i`` draws from ``SeedSequence(seed, spawn_key=(..., 1, i))``
and the true parameters from ``spawn_key=(..., 0)``, so the bytes depend only on
the seed and the arguments, never on the scheduler, the workers or the order in
which chunks are written. The chunk size is one of those arguments: another
``chunk_size`` draws other rows (from the same true parameters), and so does
float32 with its default chunks, which hold twice the rows of float64's; give
the same ``chunk_size`` to get float64's rows rounded to float32.

Resuming: with zarr's ``LocalStore`` each chunk is written to a temporary
``<key>.<uuid>.partial`` file that is then renamed over the key (zarr 3.1,
``zarr/storage/_local.py``), so a process killed mid-write leaves either no
chunk or a whole one, plus perhaps a stray ``.partial`` file, which is removed
on resume. There is no fsync: after a power loss a chunk may be truncated, and
the crc32c check then makes reading it fail rather than return wrong numbers.
Object stores (S3, GCS) write each object atomically too. A rerun with the same
arguments writes only the chunks that are absent, or (local files) not the
length their Blosc header, or their rows, says (:func:`_cut_short`).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import math
import os
import secrets
import stat
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral, Real

import dask
import dask.local
import dask.threaded
import numpy as np
import zarr
from dask.base import tokenize
from dask.delayed import Delayed
from scipy.spatial.distance import cdist, pdist
from zarr.codecs import BloscCodec, Crc32cCodec

from . import _cluster, _em, _files, _kernels, _numba, _reader, _store, io
from ._checkpoint import are_mixture_weights
from ._codecs import blosc_stored_size, checksummed
from ._files import one_writer, remove_replaced, temporary_sibling
from ._covariance import as_full_covariances, precision_cholesky
from ._init import as_seed_sequence

# scikit-learn (behind dask_gmm's estimators and model files) is imported where a model is made or
# read, not with this module: ``dask-gmm generate`` and ``info`` of a store need none of it (0.5 s).
MAX_INTEGER = 2**62  # as dask_gmm.mixture.MAX_INTEGER
MAX_SIZE = 10_000  # as dask_gmm.modelfile.MAX_SIZE: a drawn mixture is one a model file holds

logger = logging.getLogger(__name__)

FORMAT = "dask_gmm.store/1"
_OVERWRITE = "Pass overwrite=True to replace it."
MAX_SEPARATION_ATTEMPTS = 1000
WRITE_CONFIG = {"write_empty_chunks": True}  # a chunk equal to the fill value is written all the same
_LABEL_DTYPES = (np.int8, np.int16, np.int32)
#: Bytes of X per Zarr chunk when ``chunk_size`` is not given. A fit decodes one chunk at a time
#: and runs the kernel on it at once, so a chunk this size is still in the shared cache then
#: (2 cores, 32 MiB L3). Fits from Blosc-LZ4 stores of 4e6 x 2 and 5e5 x 16 float64, in turns
#: with the same rows in memory: 16 MiB chunks ran at 67 % and 69 % of in-memory speed, 8 MiB
#: at 70 % (d=2), 4 MiB at 72-74 % and 77 %, 2 MiB at 73 % and 78 %, 1 MiB at 73 % (d=2).
CHUNK_BYTES = 4 * 2**20


#: The ``compression`` choices of :func:`generate_mixture`.
COMPRESSIONS = ("lz4", "none")


def _compressors(compression="lz4"):
    """The codecs after the bytes of the generator's arrays: Blosc-LZ4 with byte shuffle ("lz4"),
    or none ("none"); a crc32c checksum either way, so that a corrupt chunk is an error.

    LZ4 decodes fastest: fitting a 4e6 x 2 store ran at 60 % of in-memory speed, against 46 % with
    zstd(3), and it was 3 % smaller on disk. Random doubles barely compress: 0.93 of their size,
    and a fit from the same rows stored without compression ran at 64-70 % of in-memory speed against
    53-57 % (d=2), 70-76 % against 60-63 % (d=16) (docs/performance.md, twenty-sixth session).
    """
    blosc = [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")] if compression == "lz4" else []
    return [*blosc, Crc32cCodec()]


def default_chunk_size(n_features, dtype):
    """Rows per Zarr chunk when none is given: about :data:`CHUNK_BYTES` of X (262,144 rows at
    2 float64 features)."""
    return max(1, CHUNK_BYTES // (int(n_features) * np.dtype(dtype).itemsize))


#: Chunks per array at most, as the reading of any store (:data:`dask_gmm._store.MAX_CHUNKS`): 1e13 rows
#: in the default chunks ran a 4 GB process out of memory before the first write.
MAX_CHUNKS = _store.MAX_CHUNKS
MAX_CHUNK_BYTES = 2**30  # a chunk is drawn in memory, then compressed by Blosc (at most 2 GiB)
#: The true covariances (K x d x d float64) are drawn in memory, with as much again: at most this much.
MAX_TRUE_BYTES = 2**30


def _check_number(name, value, kind, minimum, strict=False, maximum=MAX_INTEGER):
    if (isinstance(value, bool) or not isinstance(value, kind) or not -maximum <= value <= maximum
            or not np.isfinite(value) or value < minimum or (strict and value == minimum)):
        bound = f"> {minimum}" if strict else f">= {minimum}"
        what = "an integer" if kind is Integral else "a finite number"
        most = f"{maximum:,}" if maximum < 1e15 else f"{maximum:.3g}"
        raise ValueError(f"generate_mixture: '{name}' must be {what} {bound} and at most {most}; got {value!r}.")


def _check_attributes(attributes):
    """A ValueError unless ``attributes`` is None or a dict with string keys that JSON holds (finite
    numbers; nested dicts' keys become strings, as JSON's do) and that leaves the generator's own keys
    alone: checked before anything is written (an overwrite had deleted the old store before zarr
    refused the attributes)."""
    if attributes is None:
        return
    if not isinstance(attributes, dict) or not all(isinstance(k, str) for k in attributes):
        raise ValueError(f"generate_mixture: 'attributes' must be a dict with string keys; got {attributes!r:.200}.")
    reserved = sorted({io.STATUS_ATTR, "true_model"} & attributes.keys())
    if reserved:
        raise ValueError(f"generate_mixture: 'attributes' may not set {reserved}: the generator writes them.")
    try:
        json.dumps(attributes, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"generate_mixture: 'attributes' must hold only what JSON stores as it is (str, int, "
                         f"finite float, bool, None, lists and dicts of them; not NumPy scalars): {exc}.") from None


def label_dtype(n_components):
    """Smallest signed integer dtype holding labels 0 .. n_components - 1 and the fill value -1."""
    return next(np.dtype(t) for t in _LABEL_DTYPES if n_components - 1 <= np.iinfo(t).max)


# ------------------------------------------------------------------ true parameters
def _cannot_pack(K, d, box, separation):
    """Whether ``K`` points at least ``separation`` apart cannot lie in ``[-box, box]^d``: the balls of
    radius ``separation / 2`` around them, disjoint, would hold more volume than the box widened by
    that radius (in logs: no overflow at any d)."""
    r = separation / 2
    log_balls = math.log(K) + d / 2 * math.log(math.pi) + d * math.log(r) - math.lgamma(d / 2 + 1)
    return log_balls > d * math.log(2 * box + separation) + 1e-9  # a margin: at d=1 the bound is exact, and
    # rounding had refused evenly spaced means from -box to box (a review)


def draw_parameters(seed, n_features, n_components, box=10.0, covariance_scale=0.1, min_separation=None):
    """True parameters as in the seed notebook.

    Means uniform in ``[-box, box]^d`` (all redrawn, at most
    :data:`MAX_SEPARATION_ATTEMPTS` times, until every pair is at least
    ``min_separation`` apart; a separation no placement can meet is refused at
    once), covariances ``covariance_scale * A^T A`` with ``A``
    a d x d standard Gaussian matrix, weights uniform then normalised.

    Parameters
    ----------
    seed : numpy.random.SeedSequence
    n_features, n_components : int, d and K
    box : float, the half-width of the means' cube
    covariance_scale : float, the covariances' scale
    min_separation : float or None, the least distance between two means (None: any)

    Returns
    -------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray of shape (n_components, n_features, n_features)
    """
    K, d = n_components, n_features
    if min_separation and K > 1 and _cannot_pack(K, d, box, min_separation):
        raise ValueError(f"{K} means at least {min_separation} apart cannot fit in [-{box}, {box}]^{d}: balls of "
                         f"radius {min_separation / 2:g} around them would fill more than that cube widened by as "
                         "much. Lower min_separation or raise box.")
    s_means, s_covs, s_weights = seed.spawn(3)  # separate streams: redrawing means leaves the rest alone
    rng = np.random.default_rng(s_means)
    for _ in range(MAX_SEPARATION_ATTEMPTS):
        means = rng.uniform(-box, box, size=(K, d))
        if not min_separation or K < 2 or pdist(means).min() >= min_separation:
            break
    else:
        raise ValueError(
            f"None of {MAX_SEPARATION_ATTEMPTS} random draws placed {K} means at least {min_separation} apart in "
            f"[-{box}, {box}]^{d} (all the means are drawn afresh each time, so a separation that uniform draws "
            "rarely give is refused even where a grid would meet it). Lower min_separation or raise box."
        )
    A = np.random.default_rng(s_covs).standard_normal((K, d, d))
    covariances = covariance_scale * np.einsum("kji,kjl->kil", A, A)
    covariances = (covariances + np.swapaxes(covariances, 1, 2)) / 2  # exactly symmetric
    for k in range(K):
        try:
            np.linalg.cholesky(covariances[k])
        except np.linalg.LinAlgError:  # A singular: probability zero, but keep it positive definite
            covariances[k] += 1e-6 * np.eye(d)
    weights = np.random.default_rng(s_weights).random(K)
    return weights / weights.sum(), means, covariances


def notebook_initialisation(seed, n_components, n_features, box=10.0):
    """The seed notebook's EM start, for the demo and ``examples/seed_notebook.py``: means uniform
    in ``[-box, box]^n_features``, identity covariances, random weights, drawn from ``seed`` (an int).

    Returns
    -------
    dict of GaussianMixture arguments: weights_init, means_init, precisions_init
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7,)))
    means = rng.uniform(-box, box, size=(n_components, n_features))
    weights = rng.random(n_components)
    return {"weights_init": weights / weights.sum(), "means_init": means,
            "precisions_init": np.stack([np.eye(n_features)] * n_components)}


def _model_parameters(model):
    """(weights (K,), means (K, d), covariances (K, d, d)) of a fitted model or model file, checked to
    be a mixture to draw from. A model file is checked as it loads; a fitted object's attributes may
    have been set by hand (a NaN mean was drawn as NaN rows into a store marked complete, a negative
    weight recorded as the truth)."""
    from .mixture import check_fitted
    from .modelfile import load_model

    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    if not hasattr(model, "fit"):
        raise TypeError(f"model must be a fitted GaussianMixture or the path of a model file, got "
                        f"{type(model).__name__} {model!r:.60}.")
    check_fitted(model)
    means = np.asarray(model.means_, np.float64)
    K, d = means.shape
    weights = np.asarray(model.weights_, np.float64)
    covs = np.array(as_full_covariances(model.covariances_, model.covariance_type, K, d), np.float64)
    problem = _not_a_mixture(weights, means, covs, ("model.weights_", "model.means_", "model.covariances_"))
    if problem:
        raise ValueError(f"{problem}: the model is not a mixture to draw from.")
    return weights / weights.sum(), means, covs


def _not_a_mixture(weights, means, covs, names):
    """What makes (weights (K,), means (K, d), full covariances (K, d, d)) no mixture, in words that
    call them ``names``, or None: NaN or infinity, weights that are negative or do not sum to 1
    (within 1e-6), a covariance that is not symmetric positive definite."""
    K = len(means)
    for name, value in zip(names, (weights, means, covs)):
        if not np.all(np.isfinite(value)):
            return f"{name} holds NaN or infinite values"
    if weights.shape != (K,) or not are_mixture_weights(weights):
        return f"{names[0]} must be {K} non-negative numbers summing to 1 (one per mean), got {weights.tolist()}"
    for k, c in enumerate(covs):
        try:  # symmetric as scikit-learn's np.allclose(m, m.T) takes it, relative to the largest entry:
            if np.abs(c - c.T).max() > 1e-5 * np.abs(c).max():  # its float32 fits' are off by up to 7e-8
                raise np.linalg.LinAlgError
            np.linalg.cholesky(c)
        except np.linalg.LinAlgError:
            return f"{names[2]} of component {k} is not symmetric positive definite"
    return None


# ------------------------------------------------------------------ one chunk
def draw_rows(rng, n, weights, means, cholesky):
    """``n`` rows of the mixture and their labels, in float64.

    Labels come from one uniform draw per row against the cumulative weights;
    then one standard normal row per row, mapped through the Cholesky factor of
    its component. The result depends on ``rng`` alone, row by row. The map
    ``z L^T`` is summed column by column with NumPy's elementwise operations,
    not BLAS, whose result can change in the last bit with the CPU's kernel or
    its thread count: so the bytes are the same on every worker. The compiled
    :func:`dask_gmm._numba.mixture_rows` sums it in the same order, to the same
    bytes, faster (d=768: 7.6 s -> 0.8 s for 2,000 rows); this loop is its
    reference, and runs when DASK_GMM_NUMBA=0.

    Parameters
    ----------
    rng : numpy.random.Generator
    n : int, the rows to draw
    weights : ndarray of shape (K,)
    means : ndarray of shape (K, d)
    cholesky : ndarray of shape (K, d, d), lower Cholesky factors of the covariances

    Returns
    -------
    X : ndarray of shape (n, d)
    labels : ndarray of shape (n,), int64
    """
    K, d = means.shape
    cdf = np.cumsum(weights)
    labels = np.minimum(np.searchsorted(cdf / cdf[-1], rng.random(n), side="right"), K - 1).astype(np.int64, copy=False)
    z = rng.standard_normal((n, d))
    if _kernels.USE_NUMBA:
        return _numba.mixture_rows(z, labels, np.ascontiguousarray(cholesky, np.float64),
                                   np.ascontiguousarray(means, np.float64)), labels
    X = np.empty((n, d))
    for k in range(K):
        rows = labels == k
        zk, xk = z[rows], np.zeros((rows.sum(), d))
        for j in range(d):
            xk += zk[:, j, None] * cholesky[k, :, j]
        X[rows] = xk + means[k]
    return X, labels


def _chunk_seed(seed, i):
    return np.random.SeedSequence(seed["entropy"], spawn_key=(*seed["spawn_key"], 1, i))


def _write_chunk(X, labels, i, seed, weights, means, cholesky, recorded):
    """Draw chunk ``i`` and write it to both arrays (a task: only small arguments, returns None),
    unless the store no longer holds ``recorded``, its record when the run that made the task began.

    A run interrupted on a cluster leaves its running tasks to finish on the workers, and its
    lock ends with it: a later overwrite of the same path (another seed, say) got their chunks,
    and recorded itself complete over another store's rows. A task now writes only into a store
    of its own record (whose chunks it draws alike). Only a task held between that check and its
    write, a moment, can still write."""
    i0, i1 = _chunk_rows(X, i)
    x, y = draw_rows(np.random.default_rng(_chunk_seed(seed, i)), i1 - i0, weights, means, cholesky)
    if not _records(X, recorded):
        logger.info("chunk %d not written: the store at its path is not the one this task was made for", i)
        return
    X[i0:i1] = x.astype(X.dtype)
    labels[i0:i1] = y.astype(labels.dtype)


def _chunk_writes(todo, token, *args):
    """One ``Delayed`` writing the chunks ``todo`` (each a task ``_write_chunk(X, labels, i, *rest)``,
    ``args`` being ``X, labels, *rest``), ending in a task that counts them: one graph for them all.
    A ``dask.delayed`` call per chunk made a collection per chunk, which dask put together and culled
    one at a time, in steps growing as the square of their number: 10,000 chunks took 10.4 s of
    graph work and 40,000 took 96 s before any was written (0.7 and 2.8 s now), and a store of
    100,000 chunks about 10 minutes of a core (a review)."""
    X, labels, *rest = args
    write = _cluster.OnThisBuild(_write_chunk, "store")  # no chunk drawn by a worker of other code joined since
    graph = {f"generate-chunk-{token}-{i}": (functools.partial(write, X, labels, i, *rest),) for i in todo}
    graph[f"generate-{token}"] = (_count, *graph)
    return Delayed(f"generate-{token}", graph)


def _chunk_rows(X, i):
    """The first and the end row of the chunk ``i`` of ``X``."""
    rows = X.chunks[0]
    return i * rows, min(X.shape[0], (i + 1) * rows)


def _rows_in(X, chunks):
    """How many rows the chunks ``chunks`` (indices: a list, or a range of step 1, counted without a
    loop) of ``X`` hold."""
    if isinstance(chunks, range):
        return max(0, min(X.shape[0], chunks.stop * X.chunks[0]) - chunks.start * X.chunks[0])
    return sum(end - start for start, end in (_chunk_rows(X, i) for i in chunks))


def _check_room(path, X, labels, first, rest):
    """A ValueError if the chunks ``rest`` (indices, or a range) of the local arrays ``X`` and ``labels`` would
    take more than their disk has free, at what a row of the chunk ``first``, just written, took
    there (:func:`_store.chunk_disk_use`: its files, compressed as the rest will be, and X's folder of
    it). A run of 1e9 rows of 100 features (800 GB, a typo's size) had filled the disk before
    failing (a review). Nothing is said where the chunk's files cannot be seen here (a cluster's
    workers writing elsewhere: :func:`_store.refuse_unwritten` says that)."""
    rows = _rows_in(X, [first])
    short = _store.disk_shortfall((X, labels), first, rows, _rows_in(X, rest), path)
    if short:
        need, free, took = short
        raise ValueError(
            f"generate_mixture: the store's other {len(rest):,} chunks would take about {_store.disk_size(need)} of disk "
            f"(the first chunk this run wrote took {took:,} bytes for {rows:,} rows), and the disk "
            f"holding {path!r} has {_store.disk_size(free)} free. Free space and rerun to finish the store, or remove it, "
            "or ask for fewer rows (with overwrite=True, or at another path)."
        )


def _count(*written):
    return len(written)


def _compute_all(tasks):
    """``dask.compute(tasks)``; on dask's threads, a failure is raised only once the writes under
    way have ended, so that nothing more is written after :func:`generate_mixture` has raised.

    dask's threads raise a task's error at once while the other threads' tasks still run; the
    command line then ended the process mid-write, and zarr's temporary ``.partial`` file stayed
    behind (a file-size limit, 4 runs in 15). A pool of this call's own is shut down waiting for
    them (dask submits no more tasks than it has threads). Workers of a cluster finish their own.
    """
    if _em.scheduler() is not dask.threaded.get or dask.config.get("pool", None) is not None:
        return dask.compute(tasks)
    with ThreadPoolExecutor(_em.local_threads(dask.threaded.get)) as pool:
        return dask.compute(tasks, scheduler="threads", pool=pool)


def _records(X, recorded):
    """Whether the group holding the array ``X`` (of a generated store) holds the record ``recorded``
    now, but for being complete (read afresh from its store)."""
    group_path = X.store_path.path.rpartition("/")[0]
    try:
        now = io.open_read_only(X.store_path.store, group_path, zarr.open_group).attrs.get(io.STATUS_ATTR)
    except (FileNotFoundError, zarr.errors.NodeNotFoundError, ValueError, KeyError, TypeError):
        return False  # gone, or being replaced
    return isinstance(now, dict) and {**now, "complete": None} == {**recorded, "complete": None}


# ------------------------------------------------------------------ the store
def _read_status(path):
    """(status, true_model) attributes of an existing store, or None where nothing is stored."""
    try:
        node = io.open_node(path)
    except _store.DamagedMetadata as exc:  # said so, and how to mend it where an overwrite may
        mend = (_OVERWRITE if _generated_layout(_store.member_nodes(path))
                else "generate_mixture never replaces what it did not write: choose another path.")
        raise ValueError(f"{exc} {mend}") from exc.__cause__
    except ValueError:
        # nothing (or an empty folder), or something that is not a Zarr store: never overwritten silently
        return None if _files.replaceable(path) else ({}, None)
    if not isinstance(node, zarr.Group):
        return {}, None
    record = io.generator_record(node, path, _OVERWRITE)
    true = _true_attribute(node, path)  # (stores of old)
    if true is None and record.get("complete"):  # a complete store returns them unread by _true_arrays: compared here
        arrays = recorded_true(node, path)
        true = None if arrays is None else {k: a.tolist() for k, a in zip(_TRUE_KEYS, arrays)}
    return record, true


def _whole(path):
    """Whether the store at ``path``, recorded complete, still holds both arrays and those of its
    true parameters, with all their chunks. Lost chunks are written again by the caller; unreadable
    array metadata is a ValueError, which an overwrite mends."""
    group = io.open_node(path)
    try:
        arrays = [io.member(group, k, path) for k in ("X", "labels")]
    except _store.DamagedMetadata as exc:
        raise ValueError(f"{exc} {_OVERWRITE}") from exc.__cause__
    if any(a is None for a in arrays):
        raise ValueError(f"The store {path!r} has lost its array X or labels. {_OVERWRITE}")
    if any(isinstance(a, zarr.Group) for a in arrays):
        raise ValueError(f"The store {path!r} is damaged: its X or labels is a group, not an array. {_OVERWRITE}")
    changed = io.reshaped(io.generator_record(group, path, _OVERWRITE), *arrays)
    if changed:
        raise ValueError(f"The store {path!r} is damaged: {changed}. {_OVERWRITE}")
    if not _true_attribute(group, path) and _true_members(group) is None:  # (a store of old: its attribute)
        return False
    return not any(_store.missing_chunks(a) or _cut_short(a) for a in arrays)


def _cut_short(arr):
    """Indices of the chunks of rows of ``arr`` (an array of a generated store, on local disk)
    whose file is not the length its own Blosc header states (or, uncompressed, its rows), plus
    the crc32c's 4 bytes: what a power loss can leave of a chunk, which is not synced (a rerun had
    called such a store complete, and a fit then refused it). One 16-byte read a chunk (a store of 20,000
    chunks: ``store_info`` 0.8 s against 0.39 s without, from the page cache). Codecs the generator does not write
    now (Zstd, before 1161f9a: all its chunks had been called cut short) and files that cannot be
    opened (a link loop, a folder: the read names them) are not judged."""
    kinds = [type(c) for c in arr.compressors]
    if arr.filters or kinds not in ([BloscCodec, Crc32cCodec], [Crc32cCodec]) or _store.chunk_file(arr, 0) is None:
        return []
    blosc, bad = kinds[0] is BloscCodec, []
    whole = arr.chunks[0] * arr.dtype.itemsize * math.prod(arr.chunks[1:]) + 4  # an edge chunk too: stored whole
    for i in range(arr.cdata_shape[0]):
        try:  # non-blocking: a FIFO in place of a chunk is not waited on
            fd = os.open(_store.chunk_file(arr, i), os.O_RDONLY | os.O_NONBLOCK)
        except OSError:  # absent (missing_chunks lists it), a link loop, ...
            continue
        try:
            st = os.fstat(fd)
            head = os.pread(fd, 16, 0) if blosc and stat.S_ISREG(st.st_mode) else b""
        except OSError:
            continue
        finally:
            os.close(fd)
        if not stat.S_ISREG(st.st_mode):
            continue
        want = (blosc_stored_size(head) + 4 if len(head) == 16 else -1) if blosc else whole
        if st.st_size != want:
            bad.append(i)
    return bad


#: The argument of generate_mixture that sets each key of its record that is not named after one.
_ARGUMENT = {"seed": "random_state", "spawn_key": "random_state", "source": "model", "model_digest": "model"}


def _digest(*arrays):
    """The SHA-256 (hex) of float64 ``arrays``' shapes and bytes: a store drawn from a model records
    its model's, so that a rerun with another model is refused even where the arrays of the true
    parameters that would show it are lost (a rerun had written the new model's there: a review)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a, np.float64)
        h.update(repr(a.shape).encode() + a.tobytes())
    return h.hexdigest()


def _check_same(path, old, new):
    (old_status, old_true), (new_status, new_true) = old, new  # true: lists, of a store of old (or None)
    if old_status.get("format") == FORMAT:  # recorded before the option: Blosc-LZ4
        old_status = {"compression": "lz4", **old_status}
    if "model_digest" not in old_status:  # recorded before the digest: the true arrays alone compared
        new_status = {k: v for k, v in new_status.items() if k != "model_digest"}
    if old_status.get("format") != FORMAT:
        if not _files.replaceable(path):
            raise ValueError(f"{path!r} already exists and is not a Zarr store. Choose another path.")
        if old_status:  # a record of another format: an earlier version's store
            raise ValueError(f"{path!r} was generated by another version of dask_gmm. "
                             "Pass overwrite=True to replace it, or choose another path.")
        raise ValueError(
            f"{path!r} already exists and is not a store of generate_mixture, which overwrite=True "
            "never replaces (it may be data). Choose another path, or remove it yourself."
        )
    differ = sorted(k for k in set(old_status) | set(new_status)
                    if k != "complete" and old_status.get(k) != new_status.get(k))
    capped = any(st.get("chunk_size") == st.get("n_samples") for st in (old_status, new_status))
    if {"n_samples", "chunk_size"} <= set(differ) and capped:
        differ.remove("chunk_size")  # a chunk capped at n_samples follows it: not a difference of its own
    if "source" in differ:  # drawn against a model's: the drawn mixture's arguments follow (none with a model)
        differ = [k for k in differ if k not in ("box", "covariance_scale", "min_separation", "model_digest")]
    differ = sorted({_ARGUMENT.get(k, k) for k in differ})  # by the arguments' names
    if not differ and old_true is not None and old_true != {k: v.tolist() for k, v in zip(_TRUE_KEYS, new_true)}:
        differ.append("model" if new_status.get("source") == "model" else "true model drawn from the seed")
    if differ:
        raise ValueError(
            f"The store {path!r} was generated with different arguments ({', '.join(differ)} "
            f"{'differ' if len(differ) > 1 else 'differs'}). "
            "Rerun with the same arguments to resume it, pass overwrite=True to replace it, or choose another path."
        )


def _arrays(group, n_samples, n_features, rows, dtype, n_components, compression):
    """The arrays X and labels of ``group``, created when absent, with the write config."""
    specs = {
        "X": dict(shape=(n_samples, n_features), chunks=(rows, n_features), dtype=dtype, fill_value=np.nan,
                  dimension_names=DIMENSIONS["X"]),
        "labels": dict(shape=(n_samples,), chunks=(rows,), dtype=label_dtype(n_components), fill_value=-1,
                       dimension_names=DIMENSIONS["labels"]),
    }
    out = []
    for name, spec in specs.items():
        if name not in group:
            arr = group.create_array(name, compressors=_compressors(compression), config=WRITE_CONFIG, **spec)
        else:
            arr = group[name].with_config(WRITE_CONFIG)
            if (arr.shape, arr.chunks, arr.dtype) != (spec["shape"], spec["chunks"], np.dtype(spec["dtype"])):
                raise ValueError(
                    f"The array {name!r} of {group.store_path} does not match its recorded arguments. "
                    "Pass overwrite=True to regenerate the store."
                )
        out.append(arr)
    return out


#: The arrays of a generated group that hold its true parameters, and their names in a model.
TRUE_ARRAYS = ("true_weights", "true_means", "true_covariances")
_TRUE_KEYS = ("weights", "means", "covariances")
#: The names of each array's axes (Zarr's ``dimension_names``), which xarray needs to open the group
#: (``xarray.open_zarr``); a store made before they were written has none.
DIMENSIONS = {"X": ("sample", "feature"), "labels": ("sample",), "true_weights": ("component",),
              "true_means": ("component", "feature"), "true_covariances": ("component", "feature_i", "feature_j")}


def _true_arrays(group, true):
    """Record the true parameters ``true`` (weights (K,), means (K, d), covariances (K, d, d)) as the
    arrays :data:`TRUE_ARRAYS` of ``group``: made where absent or short of chunks (a run killed
    while writing them), else checked to hold them (another NumPy's random streams could draw other
    parameters from the same seed: a ValueError, not a store of two mixtures)."""
    for name, value in zip(TRUE_ARRAYS, true):
        arr = group.get(name)
        if isinstance(arr, zarr.Array) and arr.shape == value.shape and not _store.missing_chunks(arr):
            if not np.array_equal(_read_true(arr), value):
                raise ValueError(f"The true parameters recorded in {group.store_path} ({name}) differ from the ones "
                                 f"given now (the model, or drawn from the seed). {_OVERWRITE}")
            continue
        arr = group.create_array(name, shape=value.shape, dtype="float64", fill_value=np.nan,
                                 compressors=_compressors(), overwrite=True, dimension_names=DIMENSIONS[name])
        arr[...] = value


def recorded_true(group, path=None):
    """The true parameters a generated ``group`` records, (weights, means, covariances) as float64
    arrays (full covariances), or None (none, or not all written): from its arrays
    :data:`TRUE_ARRAYS`, or from the attribute ``true_model`` of a store written before them.
    ``path`` names the store in errors (default: the group's store path)."""
    path = str(group.store_path) if path is None else path
    true = _true_attribute(group, path)
    if true:
        true = tuple(np.asarray(true[k], np.float64) for k in _TRUE_KEYS)
    else:
        arrays = _true_members(group)
        if arrays is None:
            return None
        _check_true_shapes(group, path, *arrays)  # before they are read: a review's 98 KB chunk held 3.2 GB
        true = tuple(_read_true(a) for a in arrays)
    problem = _not_a_mixture(*true, tuple(f"array {name}" for name in TRUE_ARRAYS))
    if problem:  # a review: NaN or negative weights, an asymmetric covariance, loaded and drawn by plot
        raise ValueError(f"The store {path!r} is damaged: its {problem}. {_OVERWRITE}")
    return true


def _read_true(arr):
    """A true parameters' array ``arr`` as float64, read as a fit reads X's blocks
    (:func:`dask_gmm._reader._zarr_blocks`: a chunk or shard at a time, each decode bounded by its
    bytes), in this thread: a chunk zarr cannot decode is named, with what to do (zarr's words, its
    two checksums' bytes, named neither the chunk nor the array, and a Blosc chunk cut short was read
    past its end: reviews)."""
    blocks = _reader._zarr_blocks(arr, arr.shards or arr.chunks)
    # dask's synchronous scheduler given as itself: by name, dask imports distributed to look for a Client (0.3 s)
    return np.asarray(blocks.compute(scheduler=dask.local.get_sync), np.float64)


def _check_true_shapes(group, path, weights, means, covs):
    """A ValueError saying the store is damaged unless the arrays of its true parameters have the
    shapes (K,), (K, d) and (K, d, d) of its record's n_components and n_features (and of X's
    features, where the record gives none: X of other features than the record's is damage that
    :func:`dask_gmm.io.reshaped` names, which this had blamed on the true parameters' arrays, and
    ``info`` failed on it: a review), and the covariances at most :data:`MAX_TRUE_BYTES`, as the
    generator draws them."""
    record = io.generator_record(group, path)
    K, d = record.get("n_components"), record.get("n_features")
    recorded_d = d is not None
    try:
        x = io.member(group, "X", path)
    except _store.DamagedMetadata:  # said by the reader of X, with the overwrite that mends it
        x = None
    if means.ndim == 2:
        K, d = (means.shape[0] if K is None else K), (means.shape[1] if d is None else d)
    ok = (means.shape == (K, d) and weights.shape == (K,) and covs.shape == (K, d, d)
          and (recorded_d or not isinstance(x, zarr.Array) or x.shape[1:] == (d,))
          and 8 * math.prod(covs.shape) <= MAX_TRUE_BYTES)
    if not ok:
        raise ValueError(f"The store {path!r} is damaged: the arrays of its true parameters have shapes {weights.shape}, "
                         f"{means.shape} and {covs.shape}, not those of {K} components of {d} features. {_OVERWRITE}")


def _true_attribute(group, path):
    """The attribute ``true_model`` of a store of old, where its true parameters were ({"weights",
    "means", "covariances"} as lists), or None (or empty) where it has none; a ValueError saying
    the store is damaged where it holds anything else (a review: a KeyError or TypeError traceback
    from ``dask-gmm info``, ``generate`` and ``plot``)."""
    true = group.attrs.get("true_model")
    if not true:
        return true
    try:
        w, m, c = (np.asarray(true[k], np.float64) for k in _TRUE_KEYS)
        ok = w.ndim == 1 and m.ndim == 2 and len(m) == len(w) and c.shape == (len(w), m.shape[1], m.shape[1])
    except (TypeError, KeyError, IndexError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"The store {path!r} is damaged: its attribute 'true_model' is not a record of the true "
                         f"weights, means and covariances. {_OVERWRITE}")
    return true


def _true_members(group):
    """The arrays :data:`TRUE_ARRAYS` of ``group``, or None unless all are there with all their chunks
    (a run killed at its start may not have written them: rerunning writes them)."""
    arrays = [group.get(name) for name in TRUE_ARRAYS]
    if not all(isinstance(a, zarr.Array) for a in arrays) or any(_store.missing_chunks(a) for a in arrays):
        return None
    return arrays


def _warn_if_kept(path, group, attributes):
    """Warn when a rerun is given ``attributes`` that the store at ``path`` does not hold: they are
    written when a store is created, and a rerun that resumed or found it complete kept its own."""
    changed = sorted(k for k, v in (attributes or {}).items() if group.attrs.get(k) != json.loads(json.dumps(v)))
    if changed:
        io.warn_at_caller(f"generate_mixture: {path!r} exists, and its attributes are written when it is created: "
                          f"this rerun keeps its own ({', '.join(map(repr, changed))} not changed). "
                          "Pass overwrite=True to replace the store with new attributes.")


def _remove_aside(path, overwrite):
    """Remove the local store at ``path`` that ``overwrite`` (True) replaces: renamed aside first, in
    one step, then deleted. zarr's ``mode="w"`` deleted it file by file, and a run killed meanwhile
    left a half-deleted store that nothing could tell for one of generate_mixture (neither a rerun
    nor an overwrite would touch it); now it leaves a hidden ``.gone`` sibling, which the next store
    begun at ``path`` sweeps (:func:`dask_gmm._files.temporary_sibling`), overwrite or not."""
    gone = f"{temporary_sibling(path)}.gone"
    if not (overwrite and os.path.isdir(path)):
        return
    try:
        os.replace(path, gone)
    except OSError as exc:  # a mount point, say: zarr's mode="w" emptied it, then failed to remove it (a review)
        if os.listdir(path):
            raise ValueError(
                f"generate_mixture: {path!r} cannot be renamed aside ({exc.strerror}: a mount point, say), as "
                "overwrite=True renames a store before deleting it, so that no run leaves half of one. Empty it "
                "yourself, or write the store at another path (a folder inside it)."
            ) from None
        return
    remove_replaced(gone, path)


def _remove_partial_files(path):
    """Delete temporary files left by writes that a killed process interrupted (LocalStore only)."""
    if not os.path.isdir(path):
        return
    for root, _, files in os.walk(path):
        for f in files:
            if f.endswith(".partial"):
                os.unlink(os.path.join(root, f))
                logger.info("removed interrupted write %s", os.path.join(root, f))


def _chunk_index(key):
    return int(key.split("/")[1])  # 'c/3/0' (X) or 'c/3' (labels)


def _generated(node):
    """Whether the Zarr node is a group that :func:`generate_mixture` wrote (its record, complete
    or not): what ``overwrite=True`` may replace."""
    return isinstance(node, zarr.Group) and io.STATUS_ATTR in node.attrs


#: The member nodes of a store of :func:`generate_mixture`.
_MEMBERS = frozenset({"X", "labels", *(f"true_{k}" for k in _TRUE_KEYS)})


def _generated_layout(members):
    """Whether the names of a store's member nodes are those :func:`generate_mixture` writes, its
    true parameters' arrays among them: a store of it whose own metadata cannot be read."""
    return {f"true_{k}" for k in _TRUE_KEYS} <= members <= _MEMBERS


def foreign_members(path):
    """The names of the entries (Zarr nodes, files) directly in the store of generate_mixture at
    ``path`` that it did not write (a ``predict`` output, the user's arrays or notes), sorted; [] for
    nothing there, or a store whose metadata cannot be read (its layout is checked elsewhere). The
    temporary output of a killed ``predict -o STORE/NAME`` is none (its next run would sweep it; an
    overwrite had been refused for it, a review)."""
    try:
        node = io.open_node(path)
    except ValueError:
        return []
    if not isinstance(node, zarr.Group):
        return []
    killed = set(_files.killed_temporaries(path)) if "://" not in os.fspath(path) else set()
    return sorted(_store.children(node) - _MEMBERS - {"zarr.json"} - killed)


def _refuse_foreign_members(path):
    """A ValueError when the store of generate_mixture at ``path`` also holds Zarr nodes it did not
    write (:func:`foreign_members`): ``overwrite=True`` deletes the whole group."""
    extra = foreign_members(path)
    if extra:
        raise ValueError(
            f"generate_mixture: {path!r} is a store of generate_mixture that also holds {len(extra)} Zarr "
            f"node(s) it did not write ({_store.first_few(extra)}), which overwrite=True would delete with it. "
            "Move them out, or choose another path."
        )


def _check_arguments(n_samples, chunk_size, dtype, attributes, compression, model, n_features, n_components,
                     box, covariance_scale, min_separation, overwrite):
    """A ValueError naming the first of :func:`generate_mixture`'s arguments that is not allowed
    (those of the drawn parameters only when no ``model`` is given; with one, any but their defaults)."""
    if not isinstance(overwrite, (bool, np.bool_)):  # overwrite="False" had replaced the store (a review)
        raise ValueError(f"generate_mixture: 'overwrite' must be True or False; got {overwrite!r}.")
    _check_number("n_samples", n_samples, Integral, 1)
    if chunk_size is not None:
        _check_number("chunk_size", chunk_size, Integral, 1)
    try:
        ok = np.dtype(dtype) in (np.float32, np.float64)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"generate_mixture: dtype must be 'float32' or 'float64', got {dtype!r}.")
    _check_attributes(attributes)
    if compression is not None and compression not in COMPRESSIONS:
        raise ValueError(f"generate_mixture: compression must be one of {', '.join(map(repr, COMPRESSIONS))}, "
                         f"got {compression!r}.")
    if model is None:
        _check_number("n_features", n_features, Integral, 1, maximum=MAX_SIZE)
        _check_number("n_components", n_components, Integral, 1, maximum=MAX_SIZE)
        if n_components * n_features**2 * 8 > MAX_TRUE_BYTES:
            raise ValueError(
                f"generate_mixture: the true covariances of {n_components:,} components of {n_features:,} features "
                f"would take {n_components * n_features**2 * 8 / 2**30:.3g} GiB, drawn in memory; at most "
                f"{MAX_TRUE_BYTES / 2**30:g} GiB. Ask for fewer features or components.")
        _check_number("box", box, Real, 0.0, strict=True)
        _check_number("covariance_scale", covariance_scale, Real, 0.0, strict=True)
        if min_separation is not None:
            _check_number("min_separation", min_separation, Real, 0.0)
        return
    defaults = inspect.signature(generate_mixture).parameters
    for name, value in (("box", box), ("covariance_scale", covariance_scale), ("min_separation", min_separation)):
        default = defaults[name].default  # refused, not ignored, as the command line's --box with --model
        if value is not default and not (isinstance(value, Real) and default is not None and value == default):
            raise ValueError(f"generate_mixture: '{name}' shapes the drawn parameters, but with 'model' the model's "
                             f"are sampled; got {name}={value!r}. Leave it out, or leave out 'model'.")


def _root_seed(random_state, recorded, path):
    """The root SeedSequence of a run and its record ``{"entropy", "spawn_key"}`` (JSON's ints): of
    ``random_state``, else of the seed ``recorded`` in the store at ``path`` (a rerun resumes it), else fresh."""
    if random_state is None and recorded:
        random_state = np.random.SeedSequence(recorded["seed"], spawn_key=tuple(recorded["spawn_key"]))
        logger.info("reusing the seed recorded in %s", path)
    # a fresh seed below 2**53, which JSON tools that read numbers as doubles (jq, JavaScript) keep exact:
    root = as_seed_sequence(secrets.randbits(53) if random_state is None else random_state)  # 128 bits were not
    entropy = root.entropy  # an int or ints (a SeedSequence's), NumPy's or Python's: recorded as JSON's
    return root, {"entropy": [int(e) for e in entropy] if np.ndim(entropy) else int(entropy),
                  "spawn_key": [int(k) for k in root.spawn_key]}


def _check_chunking(n_samples, rows, n_features, dtype, resumed):
    """A ValueError when chunks of ``rows`` rows would be too large (unless ``resumed``: a store begun
    before the cap resumes) or too many."""
    if rows * n_features * np.dtype(dtype).itemsize > MAX_CHUNK_BYTES and not resumed:
        raise ValueError(
            f"generate_mixture: chunks of {rows:,} rows x {n_features} features would hold "
            f"{rows * n_features * np.dtype(dtype).itemsize:,} bytes each, more than the "
            f"{MAX_CHUNK_BYTES:,} (1 GiB) a chunk may hold (each is made in memory, and Blosc takes at "
            "most 2 GiB). "
            "Pass a smaller chunk_size."
        )
    if -(-n_samples // rows) > MAX_CHUNKS:
        raise ValueError(
            f"generate_mixture: {n_samples:,} rows in chunks of {rows:,} make {-(-n_samples // rows):,} chunks, "
            f"more than the {MAX_CHUNKS:,} a store may have (their list is checked in memory). "
            "Pass a larger chunk_size."
        )


def _write_chunks(path, group, X, labels, new, seed, expected):
    """Draw and write the chunks that the store at ``path`` (its ``group``, arrays ``X`` and ``labels``)
    lacks: every chunk of a ``new`` store, not listed (a typo's 15 million chunks took 57 s and
    3.9 GB to list, then to be refused for the disk: a review). ``expected`` is ``(status, (weights,
    means, covariances))``; one chunk is written first where the disk can be seen, to refuse rows
    that would not fit before the rest are written."""
    status, true = expected
    weights, means, covs = true
    cut = [] if new else set(_cut_short(X) + _cut_short(labels))
    todo = range(X.nchunks) if new else sorted({_chunk_index(k) for k in _store.missing_chunks(X)}
                                               | {_chunk_index(k) for k in _store.missing_chunks(labels)} | cut)
    if cut:
        logger.info("%s: %d chunks cut short (a power loss while they were written?) are written again",
                    path, len(cut))
    logger.info("writing %d of %d chunks (%d rows each) to %s", len(todo), X.nchunks, X.chunks[0], path)
    chol = np.linalg.cholesky(covs)
    token = tokenize(path, status, true)  # unique per store and arguments: keys never collide on a cluster
    recorded = group.attrs.asdict()[io.STATUS_ATTR]  # as the store holds it (resumed: as an earlier run wrote it)
    args = (X, labels, seed, weights, means, chol, recorded)
    if len(todo) > 1 and _store.chunk_file(X, 0) is not None:  # one chunk first, to learn what the rest need
        _compute_all(_chunk_writes(todo[:1], f"{token}-first", *args))
        _check_room(path, X, labels, todo[0], todo[1:])
        todo = todo[1:]
    _compute_all(_chunk_writes(todo, token, *args))
    _store.refuse_unwritten((X, labels), path, "Write to a path (or URL) that this process and every worker share, "
                        "then rerun to finish.")


def generate_mixture(
    path,
    n_samples,
    n_features=2,
    n_components=3,
    *,
    chunk_size=None,
    dtype="float64",
    random_state=None,
    overwrite=False,
    box=10.0,
    covariance_scale=0.1,
    min_separation=None,
    model=None,
    attributes=None,
    compression=None,
):
    """Draw a Gaussian mixture and write ``n_samples`` rows of it to a Zarr group, chunk by chunk.

    The group holds ``X`` (n_samples, n_features) of ``dtype``, ``labels`` (n_samples,) of
    :func:`label_dtype`, the true parameters as ``true_weights`` (K,), ``true_means``
    (K, n_features) and ``true_covariances`` (K, n_features, n_features), float64, and its record
    in its attributes; every array names its axes (:data:`DIMENSIONS`).

    Chunks are drawn and written in parallel on the active Dask scheduler
    (threads, processes or a ``distributed.Client``), at most a few in memory
    at a time. The same seed and arguments give the same bytes whatever the
    scheduler. An interrupted run is finished by rerunning it with the same
    arguments: only the missing chunks are written. On dask's threaded scheduler (the
    default; not with a ``pool`` or an executor of the caller's), a run whose write fails
    (a full disk) raises once the writes under way have ended.

    Parameters
    ----------
    path : str or os.PathLike
        Local path or fsspec URL of the Zarr group to write.
    n_samples : int
        Rows to write. On a local disk, rows that would take more than the disk has free, at the
        size of the first chunk written, are refused before the other chunks are written.
    n_features, n_components : int, default 2 and 3
        Ignored when ``model`` is given (``box``, ``covariance_scale`` and ``min_separation`` other than
        their defaults are refused with it).
    chunk_size : int, optional
        Rows per Zarr chunk (and per write task); capped at ``n_samples``. By
        default about 4 MiB of X (:func:`default_chunk_size`), which fits read
        fastest, except that rerunning on an existing store keeps the chunk
        size recorded there (so the same command resumes a store begun with
        another default).
    dtype : {'float64', 'float32'}
        dtype of ``X``; samples are drawn in float64 then cast.
    random_state : None, int, numpy.random.SeedSequence, Generator or RandomState
        None draws a fresh seed, except that rerunning on an existing store
        reuses the seed recorded there (so the same command resumes it). A
        Generator or RandomState is drawn from once, for the seed recorded.
    overwrite : bool, default False
        Replace the store at ``path`` that this function wrote (of any arguments,
        complete or not, or whose metadata cannot be read). Otherwise an existing
        store generated with other arguments is refused. Anything else at ``path``
        (another Zarr store, which may be data, or files and folders; an empty
        folder excepted) is refused either way. While one run writes a local
        store, another to the same path is refused (a lock: :func:`dask_gmm._files.one_writer`).
    box : float, default 10.0
        Means are uniform in ``[-box, box]^n_features``.
    covariance_scale : float, default 0.1
        Covariances are ``covariance_scale * A^T A``, ``A`` standard Gaussian (d, d).
    min_separation : float, optional
        Redraw all the means, at most 1000 times, until every pair is at least this far apart: a
        ValueError when no draw does (uniform draws rarely meet a separation that only a grid
        would), at once when no placement could.
    model : GaussianMixture or path of a model file, optional
        Sample from this fitted model (any covariance type) instead of drawing parameters.
    attributes : dict, optional
        More attributes of the group, JSON-serialisable (a tag of your own), written
        with the store's record when it is created, so an interrupted store has them too.
    compression : {'lz4', 'none'}, optional
        Blosc-LZ4 with byte shuffle, or no compression; every chunk carries a crc32c
        checksum either way. By default 'lz4', except that rerunning on an existing
        store keeps the compression recorded there. Random doubles barely compress
        (to about 0.93 of their size with 'lz4'), and a fit reads an uncompressed
        store faster: at 64-76 % of in-memory speed against 53-63 % (2 cores, d=2 and d=16).

    Returns
    -------
    GaussianMixture
        The true model, fitted, with ``covariance_type='full'``.
    """
    from .modelfile import fitted_model

    true = _write_mixture(path, n_samples, n_features, n_components, chunk_size=chunk_size, dtype=dtype,
                         random_state=random_state, overwrite=overwrite, box=box, covariance_scale=covariance_scale,
                         min_separation=min_separation, model=model, attributes=attributes, compression=compression)
    return fitted_model(*true[:3], "full", true[3])


def _write_mixture(path, n_samples, n_features, n_components, *, chunk_size, dtype, random_state, overwrite, box,
                  covariance_scale, min_separation, model, attributes, compression):
    """:func:`generate_mixture`'s work (its arguments, every one given), returning the true parameters,
    not a model: ``(weights (K,), means (K, d), covariances (K, d, d), precisions_cholesky (K, d, d))``,
    all float64 (``dask-gmm generate`` makes no model, and imports no scikit-learn)."""
    if not os.fspath(_check_path(path, "generate_mixture", "of the Zarr store to write")).strip():
        raise ValueError("generate_mixture: the path is empty. Give the path of the Zarr store to write.")
    path = io.data_path(path)  # absolute: the chunks may be written by a cluster's workers
    _files.refuse_chain_output(path, "the store")
    _files.refuse_output_inside(path, "the store", arrays_only=True, follow_link=True)
    _check_arguments(n_samples, chunk_size, dtype, attributes, compression, model, n_features, n_components, box,
                     covariance_scale, min_separation, overwrite)

    busy = (f"generate_mixture: {path!r} is being written by another run now (another process, or "
            "thread). Wait for it to finish, or write another path.")
    with one_writer(path, busy):  # a URL's store takes no lock
        if overwrite:
            _files.refuse_unreplaceable(path, "overwrite=True",
                                        (_generated, _generated_layout, "a store of generate_mixture"))
            _refuse_foreign_members(path)
        elif os.path.islink(path) and not os.path.exists(path):
            raise ValueError(f"generate_mixture: {path!r} is a link to {os.readlink(path)!r}, which does not exist. "
                             "Pass overwrite=True to replace the link, or choose another path.")
        old = None if overwrite else _read_status(path)
        recorded = old[0] if old and old[0].get("format") == FORMAT else {}  # what a rerun resumes by default
        root, seed = _root_seed(random_state, recorded, path)
        if model is None:
            params_seed = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, 0))
            weights, means, covs = draw_parameters(params_seed, n_features, n_components, box,
                                                   covariance_scale, min_separation)
            drawn = {"box": float(box), "covariance_scale": float(covariance_scale),
                     "min_separation": None if min_separation is None else float(min_separation)}
        else:
            weights, means, covs = _model_parameters(model)
            drawn = {"box": None, "covariance_scale": None, "min_separation": None,
                     "model_digest": _digest(weights, means, covs)}
        n_components, n_features = means.shape
        if chunk_size is None:
            chunk_size = recorded.get("chunk_size")  # as the seed: the default of the run that began the store
        if chunk_size is None:
            chunk_size = default_chunk_size(n_features, dtype)
        if compression is None:  # as the chunk size: what the store records (before the option, LZ4), else LZ4
            compression = recorded.get("compression", "lz4")
        rows = min(int(chunk_size), int(n_samples))
        _check_chunking(n_samples, rows, n_features, dtype, resumed=bool(old))
        status = {
            "format": FORMAT, "complete": False, "n_samples": int(n_samples), "n_features": n_features,
            "n_components": n_components, "chunk_size": rows, "dtype": np.dtype(dtype).name,
            "seed": seed["entropy"], "spawn_key": seed["spawn_key"], "covariance_type": "full",
            "source": "drawn" if model is None else "model", "compression": compression, **drawn,
        }
        true = (weights, means, covs)
        written = (*true, precision_cholesky(covs, "full"))  # before any write: as a model file's would be

        _cluster.refuse_workers_without_dask_gmm(wait=True)  # before anything is written (their chunk tasks waited for ever)
        if old is not None:
            _check_same(path, old, (status, true))
            if attributes:
                _warn_if_kept(path, io.open_node(path), attributes)
            if old[0]["complete"] and _whole(path):
                logger.info("%s is already complete; nothing to write", path)
                return written
            group = zarr.open_group(path, mode="r+")
            _remove_partial_files(path)
        else:
            if "://" not in path:  # a new store (an empty folder too): would its group list it? After every refusal
                try:
                    joined = _files.joined_group(path, "generate_mixture writes a Zarr v3 group")
                except ValueError as exc:
                    raise ValueError(f"generate_mixture: {exc}") from None
                for warning in joined:
                    io.warn_at_caller(warning)
            if overwrite and os.path.islink(path):  # the link is replaced, never what it points to
                os.unlink(path)
            elif "://" not in path:
                _remove_aside(path, overwrite)
            # an empty folder is kept as it is (mode "w" removed it and made it again: not a mount point)
            mode = "w-" if "://" not in path and os.path.isdir(path) and not os.listdir(path) else "w"
            # the record with the group, in one write: a run killed between two writes left a group without it
            group = zarr.open_group(path, mode=mode, attributes={**(attributes or {}), io.STATUS_ATTR: status})
        _true_arrays(group, true)
        X, labels = _arrays(group, int(n_samples), n_features, rows, dtype, n_components, compression)

        _write_chunks(path, group, X, labels, old is None, seed, (status, true))
        group.update_attributes({io.STATUS_ATTR: {**status, "complete": True}})
        logger.info("%s complete", path)
        return written


# ------------------------------------------------------------------ reading back
def match_components(true_means, fitted_means):
    """The fitted component matched to each true one, to compare a fit with the generator's truth:
    the pairing of least total distance between their means (the Hungarian algorithm).

    Parameters
    ----------
    true_means : array-like of shape (K_true, n_features)
    fitted_means : array-like of shape (K_fitted, n_features)

    Returns
    -------
    ndarray of shape (K_true,): index of the fitted component for each true one (-1 if none)
    """
    from scipy.optimize import linear_sum_assignment  # 0.14 s to import: not for generate or info

    means = []
    for name, value in (("true_means", true_means), ("fitted_means", fitted_means)):
        try:
            if np.iscomplexobj(value):  # cast, its imaginary parts had been dropped with NumPy's warning
                raise TypeError("it holds complex numbers")
            a = np.asarray(value, np.float64)
        except (TypeError, ValueError) as exc:  # scipy's own words had said it (a review)
            raise ValueError(f"match_components: {name} must be an array of real numbers ({exc}).") from None
        if a.ndim != 2 or not np.all(np.isfinite(a)):
            raise ValueError(f"match_components: {name} must be a 2-D array (n_components, n_features) of finite "
                             f"numbers; got shape {a.shape}{'' if np.all(np.isfinite(a)) else ', with NaN or infinity'}.")
        means.append(a)
    if means[0].shape[1] != means[1].shape[1]:
        raise ValueError(f"match_components: true_means have {means[0].shape[1]} features and fitted_means "
                         f"{means[1].shape[1]}: compare a model fitted to the store's data.")
    rows, cols = linear_sum_assignment(cdist(*means))
    out = np.full(len(true_means), -1)
    out[rows] = cols
    return out


#: Why a store without true parameters cannot be compared (the command line says it in its own words).
NO_TRUTH = "compare_with_truth compares a fit with the mixture of a store written by generate_mixture."


def truth_of(path):
    """``(true model, labels)`` of the generated store at ``path`` (or its array X): the true
    mixture (:func:`read_true_model`) and the Zarr array of its rows' true components, checked whole.

    Raises
    ------
    ValueError
        The store records no true parameters, or its labels have lost chunks or chunks cut short.
    """
    true = read_true_model(path)
    if true is None:
        raise ValueError(f"{os.fspath(path)!r} records no true parameters: {NO_TRUTH}")
    labels = io.member(_generated_group(path), "labels", os.fspath(path))
    if not isinstance(labels, zarr.Array) or _store.missing_chunks(labels) or _cut_short(labels):
        raise ValueError(f"the store {os.fspath(path)!r} has lost chunks of its true labels (or cut them short, or "
                         f"the array). Rerun {_store.RERUN} to write them again.")
    return true, labels


def compare_with_truth(model, path):
    """How the fitted ``model`` compares with the true mixture of the generated store at ``path``,
    component by component (matched by :func:`match_components`), and row by row: two passes over
    the data (the true mixture's score, and the labels), as ``dask-gmm score --truth`` reports them.

    Parameters
    ----------
    model : fitted GaussianMixture or BayesianGaussianMixture (dask_gmm's), or scikit-learn's
        GaussianMixture, of the store's n_features
    path : str or os.PathLike, a store written by :func:`generate_mixture`, or its array X

    Returns
    -------
    dict
        ``matched``: list of K_true ints, the fitted component of each true one (-1 where there
        are fewer fitted ones); ``weight_error``, ``mean_error`` and ``covariance_error``: lists
        of K_true floats (None where unmatched), ``|w - w_true|``, the Euclidean distance of the
        means and ``||C - C_true||_F / ||C_true||_F`` of the covariances as full (d, d) matrices;
        ``label_agreement``: the share of rows whose predicted component is the one matched to
        their true component; ``true_mean_log_likelihood``: the mean log-likelihood of the rows
        under the true mixture, to set beside ``model.score(path)``.

    Raises
    ------
    ValueError
        The store records no true parameters, or its labels have lost chunks (or have them cut
        short); the model is of other features, or not a Gaussian mixture of these.
    """
    import dask.array as da

    from .mixture import MixtureBase, check_fitted
    from .modelfile import fitted_model

    if not isinstance(model, MixtureBase) and type(model).__name__ != "GaussianMixture":
        raise ValueError(f"compare_with_truth compares dask_gmm's GaussianMixture or BayesianGaussianMixture, or "
                         f"scikit-learn's GaussianMixture, with the truth; got {type(model).__name__}.")
    check_fitted(model)
    watched = store_files(_check_path(path, "compare_with_truth"))  # before the truth is read
    true, labels = truth_of(path)
    if not isinstance(model, MixtureBase):  # scikit-learn's reads no path: its GaussianMixture as dask_gmm's
        model = fitted_model(model.weights_, model.means_, model.covariances_, model.covariance_type)
    if model.means_.shape[1] != true.means_.shape[1]:
        raise ValueError(f"the model has {model.means_.shape[1]} features and the store {os.fspath(path)!r} "
                         f"{true.means_.shape[1]}: compare a model fitted to that store.")
    order = match_components(true.means_, model.means_)
    fitted_cov = as_full_covariances(model.covariances_, model.covariance_type, *model.means_.shape)
    errors = {"weight_error": [], "mean_error": [], "covariance_error": []}
    for k, j in enumerate(order):
        found = j >= 0
        errors["weight_error"].append(float(abs(model.weights_[j] - true.weights_[k])) if found else None)
        errors["mean_error"].append(float(np.linalg.norm(model.means_[j] - true.means_[k])) if found else None)
        errors["covariance_error"].append(float(np.linalg.norm(fitted_cov[j] - true.covariances_[k])
                                                / np.linalg.norm(true.covariances_[k])) if found else None)
    K = len(order)  # read as X's blocks are: each decode bounded, a chunk that cannot be decoded named (a review)
    truth = _reader._zarr_blocks(labels, labels.shards or labels.chunks)
    same = da.from_array(order)[da.clip(truth, 0, K - 1)] == model.predict(path)  # a true one unmatched: -1, never
    agreement, outside = dask.compute(same.mean(), ((truth < 0) | (truth >= K)).sum())
    if outside:  # checked in the same pass: NumPy had taken -2 as the last component, and 99 raised an IndexError
        raise ValueError(f"The store {os.fspath(path)!r} is damaged: {int(outside):,} of its true labels are not "
                         f"components of its true mixture (0 to {K - 1}). {_OVERWRITE}")
    out = {"matched": [int(j) for j in order], **errors, "label_agreement": float(agreement),
           "true_mean_log_likelihood": float(true.score(path))}
    watched.check()  # each pass checks its own reads: a store replaced between them had mixed two (a review)
    return out


def store_files(path):
    """:class:`dask_gmm._cluster.StoredFiles` of the Zarr store at ``path`` as it stands now: its array X
    and, for a generated store, its labels and true parameters; to check, after several passes,
    that none was replaced between two of them (each pass checks only the files it reads, from
    its own start)."""
    node = _generated_group(path)
    if isinstance(node, zarr.Array):
        return _cluster.StoredFiles([node])
    arrays = [io.member(node, name, os.fspath(path)) for name in ("X", "labels", *TRUE_ARRAYS) if name in node]
    return _cluster.StoredFiles([a for a in arrays if isinstance(a, zarr.Array)])


def _generated_group(path):
    """The Zarr node at ``path``, but for the array X of a generated store (``STORE/X``), its group,
    as :func:`store_info` finds it (its true model had been read as none, a review)."""
    node = io.open_node(io.data_path(_check_path(path, "read_true_model")))
    if isinstance(node, zarr.Array) and io.holding_status(node):
        return io.holding_group(node)
    member = _generated_member(node) if isinstance(node, zarr.Array) else None
    if member is not None:  # its truth had been read as none, and compare_with_truth said it recorded none (a review)
        raise ValueError(f"{os.fspath(path)!r} is the array {member!r} of the generated store {_parent(path)!r}: give "
                         "the store's path (or its array X's).")
    return node


def _generated_member(arr):
    """The name of the Zarr array ``arr`` in a generated store that holds it, "labels" or one of
    :data:`TRUE_ARRAYS`, else None (X is found by :func:`dask_gmm.io.holding_status` itself)."""
    return next((m for m in ("labels", *TRUE_ARRAYS) if io.holding_status(arr, m)), None)


def _parent(path):
    """The path of the store holding the array at ``path`` (``STORE/labels``: ``STORE``)."""
    return os.fspath(path).rstrip("/").rpartition("/")[0] or "."


def _check_path(path, who, what="of a Zarr store (or of its array X)"):
    """``path``, a TypeError saying what to give where it is not a path or URL (a zarr group or array had
    Python's own "expected str, bytes or os.PathLike object", a review; generate_mixture's bytes path a
    regular expression's TypeError)."""
    if not isinstance(path, (str, os.PathLike)):
        kind = type(path).__name__
        module = type(path).__module__.partition(".")[0]
        advice = "pass os.fsdecode(path)" if isinstance(path, bytes) else "pass its path"
        raise TypeError(f"{who} takes the path or URL {what}, not a "
                        f"{kind if module == 'builtins' else f'{module}.{kind}'}: {advice}.")
    return path


def read_true_model(path):
    """The true model recorded in a generated store (given by its path, or its array X's), or None
    when it records none.

    Parameters
    ----------
    path : str or os.PathLike
        The path or URL of a store, or of its array ``X`` (``<store>/X``).

    Returns
    -------
    GaussianMixture (covariance_type='full', fitted) or None
    """
    from .modelfile import fitted_model

    node = _generated_group(path)
    true = recorded_true(node, os.fspath(path)) if isinstance(node, zarr.Group) else None
    lost = lost_true(node, os.fspath(path)) if true is None and isinstance(node, zarr.Group) else []
    if lost:
        raise ValueError(f"The store {os.fspath(path)!r} is damaged: it has lost the array(s) of its true parameters "
                         f"({', '.join(lost)}). Rerun {_store.RERUN} to write them again.")
    return None if true is None else fitted_model(*true, "full")


def lost_true(group, path=None):
    """The arrays :data:`TRUE_ARRAYS` that the generated ``group``, recorded complete, has lost
    (absent, not arrays, or short of chunks): [] for any other group, or a store of old (whose
    true parameters are an attribute). ``path`` names the store in errors."""
    path = str(group.store_path) if path is None else path
    if not io.generator_record(group, path).get("complete") or _true_attribute(group, path):
        return []
    return [name for name in TRUE_ARRAYS if not isinstance(a := group.get(name), zarr.Array) or _store.missing_chunks(a)]


def store_info(path):
    """What a store holds, for ``dask-gmm info``: never decodes chunk data.

    Parameters
    ----------
    path : str or os.PathLike
        The path or URL of a store, or of its array ``X`` (``<store>/X``).

    Returns
    -------
    dict
        ``path`` (as given), ``shape``, ``chunks``, ``shards``, ``dtype``, ``filters`` and ``compressors`` of the
        data array (codec class names), and ``checksum``, whether a codec of its chunks verifies their bytes
        (:func:`dask_gmm._codecs.checksummed`); ``cf_encoding``, how its values are CF-encoded, as
        xarray writes them (in words, :func:`dask_gmm.io.cf_encoding`; fits refuse such an array), or [];
        ``complete`` (the generator's record: whether its run finished, not whether every chunk is
        there now, which ``status`` says) and ``seed`` (None unless written by
        :func:`generate_mixture`); ``generator``, the generator's whole record (its arguments:
        ``box``, ``covariance_scale``, ``min_separation``, ``source``, ``chunk_size``, ``compression``,
        ...; None unless generated); ``n_components`` and ``true_model``
        (weights, means, covariances as lists, or None); ``missing_chunks``,
        the number of chunks of X (and labels) that zarr would read as fill values (in a
        sharded array: inner chunks, those of an absent shard included), and
        ``missing_chunks_of``, that number for each array by name, both None where the array is
        sharded in a layout whose unwritten chunks cannot be found, which ``unchecked`` then
        explains (else None); ``cut_short_chunks`` and
        ``cut_short_chunks_of``, the same for the chunk files of a generated store that are not the
        length their Blosc header (or their rows) says (:func:`_cut_short`: 16 bytes read a chunk;
        a rerun writes them again); ``lost_true``, the arrays of
        the true parameters lost since the store was complete (:func:`lost_true`); ``status``: None
        (not generated), "complete", "incomplete" (generation interrupted) or "damaged" (generated
        complete, chunks or arrays gone since); ``labels_of``: for the labels array of a generated store,
        given by its own path, the store's path (whose status it shares), else None; ``true_of``: the
        same for an array of its true parameters.
    """
    node = io.open_node(io.data_path(_check_path(path, "store_info")))
    status, true, arrays, parent, member, lost = {}, None, [node], None, None, []
    if isinstance(node, zarr.Array):  # the array X of a generated group, given by its own path, has its status
        status = io.holding_status(node)
        # its labels or a true parameter's array: the group's path
        member = None if status else _generated_member(node)
        if member is not None:
            parent = _parent(path)
        if status:  # X: its group's true model too, the group found from the array (it had been None)
            true, lost = _true_info(io.holding_group(node), os.fspath(path))
    if isinstance(node, zarr.Group):
        status = io.generator_record(node, os.fspath(path))
        true, lost = _true_info(node, os.fspath(path))
        X, labels = (io.member(node, k, os.fspath(path)) for k in ("X", "labels"))
        if X is None and not status.get("complete", True) and _RECORDED_SHAPE <= status.keys():
            return _unmade_info(os.fspath(path), status, true, labels)  # killed before its arrays were made
        if X is None and status:
            raise ValueError(io.lost_x(os.fspath(path)))
        if X is None:
            raise ValueError(io.no_x(node, os.fspath(path)))
        for name, a in (("X", X), ("labels", labels)):
            if isinstance(a, zarr.Group):
                raise ValueError(f"{name!r} in the Zarr group {os.fspath(path)!r} is a group, not an array"
                                 + (" (the store is damaged). Restore it, or regenerate it." if status else "."))
        arrays = [X] + ([labels] if labels is not None else [])
    X = arrays[0]
    bare = os.path.basename(os.fspath(path).rstrip("/")) or "array"  # an array, not a group: by its name
    names = ("X", "labels") if isinstance(node, zarr.Group) else (bare,)
    try:
        missing, unchecked = {name: _store.missing_chunk_count(a) for name, a in zip(names, arrays)}, None
    except _store.UncheckableLayout as exc:  # described all the same: what is there is what a rewrite needs
        missing, unchecked = None, str(exc)
    n_missing = None if missing is None else sum(missing.values())
    generated = status.get("format") == FORMAT or member is not None  # (labels or a true array: its store's)
    cut = {name: len(_cut_short(a)) if generated else 0 for name, a in zip(names, arrays)}
    changed = io.reshaped(status, X, labels if isinstance(node, zarr.Group) else None)
    return {
        "path": os.fspath(path),
        "shape": tuple(X.shape),
        "chunks": tuple(X.chunks),
        "shards": None if X.shards is None else tuple(X.shards),
        "dtype": str(X.dtype),
        "filters": [type(c).__name__ for c in X.filters],
        "compressors": [type(c).__name__ for c in X.compressors],
        "checksum": checksummed([*X.filters, *X.compressors]),
        "cf_encoding": io.cf_encoding(X),
        "complete": status.get("complete"),
        "seed": status.get("seed"),
        "n_components": status.get("n_components"),
        "generator": status or None,
        "true_model": true,
        "missing_chunks": n_missing,
        "missing_chunks_of": missing,
        "unchecked": unchecked,
        "cut_short_chunks": sum(cut.values()),
        "cut_short_chunks_of": cut,
        "lost_true": lost,
        "status": "damaged" if unchecked and status.get("complete") is not None else  # not resumable either
                  _status(status.get("complete"), n_missing or lost or sum(cut.values()), changed),
        "labels_of": parent if member == "labels" else None,
        "true_of": parent if member in TRUE_ARRAYS else None,
    }


def _true_info(group, path):
    """(the true parameters as lists by name, or None; the names of those lost) of a generated group."""
    true = recorded_true(group, path)
    return None if true is None else {k: v.tolist() for k, v in zip(_TRUE_KEYS, true)}, lost_true(group, path)


#: The keys of a generator's record that give its arrays' shape, chunks and dtype.
_RECORDED_SHAPE = {"n_samples", "n_features", "chunk_size", "dtype"}


def _unmade_info(path, status, true, labels):
    """:func:`store_info` of an incomplete generated store whose X was never made (its generation
    was killed within its first moments): X's shape and codecs as the generator makes them, every
    chunk of it missing, and of ``labels`` (None where not made either)."""
    n, d, rows = status["n_samples"], status["n_features"], status["chunk_size"]
    missing = {"X": -(-n // rows), "labels": -(-n // rows) if labels is None else _store.missing_chunk_count(labels)}
    codecs = _compressors(status.get("compression", "lz4"))
    return {"path": path, "shape": (n, d), "chunks": (rows, d), "shards": None, "dtype": status["dtype"],
            "filters": [], "compressors": [type(c).__name__ for c in codecs], "checksum": checksummed(codecs), "cf_encoding": [],
            "complete": False, "seed": status.get("seed"), "n_components": status.get("n_components"),
            "generator": status, "true_model": true,
            "missing_chunks": sum(missing.values()), "missing_chunks_of": missing, "unchecked": None,
            "lost_true": [], "status": "incomplete", "labels_of": None, "true_of": None}


def _status(complete, missing, changed=None):
    """:func:`store_info`'s ``status`` from the store's "complete" mark, its missing chunks and
    what differs from its recorded shape (:func:`dask_gmm.io.reshaped`)."""
    if complete is None:
        return None
    return ("damaged" if missing or changed else "complete") if complete else "incomplete"
