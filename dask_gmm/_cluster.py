"""Checks of what a pass reads and of where it runs: the Zarr arrays behind a dask array (absent
chunks, stores held in one process's memory), their files watched while read and seen the same by
every worker of a cluster, and the workers' dask_gmm (its :func:`build`) and scheduler.
"""

from __future__ import annotations

import hashlib
import os
import sys

import zarr
from dask.base import get_scheduler
from zarr.core.sync import sync  # zarr 3 has no synchronous listing or lookup in its public API

from . import __version__
from ._reader import _worker_address, zarr_arrays_read_by
from ._store import (ZARR_METADATA, _absent_chunks, _file_size, _folder_of, _local_folder, _scanned, _store_name,
                     first_few)


class StoredFiles:
    """The files of the Zarr arrays on this machine's file systems that a computation reads, as they
    stood when it began: each file's size, modification and status change times, in each array's
    folder and where its chunks may be under it (:func:`~dask_gmm._store._scan_folder`; folders linked there too).

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
    chunks = sorted(p for p in state if os.path.basename(p) not in ZARR_METADATA)
    sampled = set(chunks[:SAMPLED_CHUNKS] + chunks[-SAMPLED_CHUNKS:])
    return {path: (size, _head_digest(path) if path in sampled or os.path.basename(path) in ZARR_METADATA else None)
            for path, (size, *_) in state.items()}


def _digest(fingerprint):
    """A digest of a :func:`_fingerprint`."""
    return hashlib.sha256(repr(sorted(fingerprint.items())).encode()).hexdigest()


def _digest_here(folders, ndim):
    """:func:`_digest` of the files of the arrays of ``ndim`` dimensions in ``folders`` as this process
    sees them (:func:`~dask_gmm._store._scanned`): run on each of a cluster's workers by :func:`refuse_other_files_on_workers`."""
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

    ``checked``, a set of workers as :func:`_incarnations` names them (an address and the worker
    process's own folder): nothing is asked while the scheduler's workers are all in it (finding
    them costs a call to the scheduler), else every worker is asked and added to it. A worker
    restarted at the same address (a fixed ``--worker-port`` under a nanny) is another process,
    perhaps of other code, and is asked again: kept by address, it had been taken as checked, and
    a fit whose restarted worker ran changed code returned its means 12 off without a word (a
    review). Called after each pass with the same set (:class:`dask_gmm._em.Blocks`), a worker
    that joined during a fit and read other files fails it there. Every worker, not
    only the new ones: asked by address, a worker gone meanwhile took 30 s to time out, where
    the scheduler's own list has only those it holds; one that cannot answer is left out, to be
    asked later."""
    if not _on_a_cluster():
        return
    files = files if files is not None else stored_files(X, None, rows)
    if checked and not files.state:  # no files: the workers were asked at the start, not after every pass
        return
    client = get_scheduler().__self__
    if wait:
        _wait_for_a_worker(client)
    present = _incarnations(client)  # before they are asked: one restarted meanwhile is asked next time
    if checked is not None and not set(present.values()) - checked:
        return
    answered = refuse_workers_without_dask_gmm(client)  # before any function of ours goes to them
    if not files.state:
        if checked is not None:
            checked.update(present[w] for w in answered if w in present)
        return
    expected = _fingerprint(files.state)
    digest = _digest(expected)
    answers = _of_cluster(client.run, _digest_here, files.folders, files.ndim, on_error="ignore")
    if checked is not None:
        checked.update(present[w] for w in answers if w in present)
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


def _incarnations(client):
    """``{address: (address, its local directory)}`` of the scheduler's workers: a worker process's
    local directory is a folder of its own (``mkdtemp``), so a worker restarted at the same address
    is named anew."""
    try:
        info = _of_cluster(client.scheduler_info, n_workers=-1)  # every worker: distributed's default was 5 a while
    except TypeError:  # a distributed without n_workers: every worker
        info = _of_cluster(client.scheduler_info)
    return {address: (address, worker.get("local_directory")) for address, worker in info.get("workers", {}).items()}


#: What a worker is asked to evaluate: the modules whose functions the tasks carry (they import
#: numba, zarr, dask, scikit-learn), and the build (:func:`build`). ``import dask_gmm`` alone loads none of them.
#: Builds from before ``dask_gmm._build`` answer with the package's ``_BUILD``, or older ones with
#: ``dask_gmm.io.build()``; older still, an AttributeError.
_WORKER_IMPORTS = ("(__import__('dask_gmm.generate'), __import__('dask_gmm.mixture'), "
                   "(lambda p: p._build() if hasattr(p, '_build') else getattr(p, '_BUILD', None) "
                   "or __import__('dask_gmm.io', fromlist=['build']).build())(__import__('dask_gmm')))[2]")


def build():
    """``VERSION+DIGEST``: dask_gmm's version and a digest of its modules' source as it was when the
    package was first imported (``dask_gmm._BUILD``), so that workers running other code of the same
    version (a development checkout changed since they started, or another checkout) are told apart:
    only the version had been compared (a review). The version alone where the source cannot be read.
    Where the package's files have changed since, that build and theirs now (``dask_gmm._build``)."""
    return sys.modules[__package__]._build()


def _of_cluster(call, *args, **kwargs):
    """``call(*args, **kwargs)``, a method of a distributed Client: :class:`SchedulerLost` where its
    scheduler cannot be reached (distributed's CommClosedError or another OSError: a review's scheduler
    killed as a command began was a bare traceback) or is lost, a RuntimeError where it is closed (a
    closed Client has no scheduler to call: an AttributeError)."""
    refuse_unusable(call.__self__, "before or while it ran")  # closed before the fit too (a review: "while")
    try:
        return call(*args, **kwargs)
    except OSError as exc:
        refuse_unusable(call.__self__, "while it ran", exc)  # a Client closed by its user had been called a
        raise SchedulerLost.of(exc) from exc  # scheduler lost (a review)


def client_state(client):
    """``"lost"`` where the distributed ``client`` lost its scheduler (it drops its connection to
    reconnect, then closes itself when that fails: a scheduler killed mid-fit had been called a Client
    closed by the user, a review), ``"closed"`` where it was closed, else None (or not a Client)."""
    status = getattr(client, "status", None)
    if status == "connecting" or (status in ("closing", "closed") and getattr(client, "scheduler_comm", 0) is None):
        return "lost"
    return "closed" if status in ("closing", "closed") else None


def refuse_unusable(client, when, exc=None):
    """:class:`SchedulerLost` where the distributed ``client`` lost its scheduler, a RuntimeError
    (:data:`CLIENT_CLOSED`, closed ``when``) where it was closed; nothing for one in use, or for
    anything else. ``exc``: the error that revealed it, if any, as the cause."""
    state = client_state(client)
    if state is None:
        return
    error = SchedulerLost.of(exc) if state == "lost" else RuntimeError(CLIENT_CLOSED.format(when=when))
    if exc is None:
        raise error  # in an ``except`` of the caller's, chained to what it handles (``from None`` hid it)
    raise error from exc


def default_client():
    """distributed's default Client, or None where there is none (distributed not imported: none)."""
    distributed = sys.modules.get("distributed")
    try:
        return distributed.default_client()
    except (AttributeError, ValueError):  # distributed not imported, or no Client
        return None


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
    here = build()
    package = sys.modules[__package__]
    if here != package._BUILD:  # its files changed since it imported them: no worker matches it
        raise ValueError(f"dask_gmm's files in {package._FOLDER} changed since this process imported them (build "
                         f"{here}): it may run old and new code together, and workers that start later may run the "
                         "new. Restart this Python process and the workers, then rerun.")
    if wait:
        _wait_for_a_worker(client)
    answers = _of_cluster(client.run, eval, _WORKER_IMPORTS, on_error="return")  # eval: nothing of ours to unpickle
    for worker, answer in sorted(answers.items()):
        if isinstance(answer, ImportError):
            raise ValueError(f"The worker {worker} of {where} cannot import dask_gmm ({type(answer).__name__}: "
                             f"{answer}). Install dask-gmm {__version__} in the workers' Python environment, "
                             "then rerun.")
        if isinstance(answer, AttributeError):  # a version before build(): another version
            answer = "of another version"
        if isinstance(answer, str) and not _same_code(answer, here):
            version = answer.partition("+")[0]
            if version == __version__:
                raise ValueError(f"The worker {worker} of {where} runs dask-gmm {version} of other code than this "
                                 f"process (build {answer}, here {here}): a checkout changed since the workers "
                                 "started, or another one. Restart the workers with this process's dask_gmm, then rerun.")
            raise ValueError(f"The worker {worker} of {where} runs dask-gmm {version}, this process {__version__}. "
                             f"Install dask-gmm {__version__} in the workers' Python environment, then rerun.")
    return {worker for worker, answer in answers.items() if isinstance(answer, str)}


def _wait_for_a_worker(client):
    """Wait for a first worker to join ``client``'s scheduler when it has none yet, as the
    computation that follows would wait for it."""
    if not _of_cluster(client.nthreads):
        _of_cluster(client.wait_for_workers, 1)


def _same_code(build_a, build_b):
    """Whether two builds (:func:`build`) run the same code: equal, or of one version where either
    has no digest (its source could not be read: its version alone is compared)."""
    if build_a == build_b:
        return True
    return build_a.partition("+")[0] == build_b.partition("+")[0] and ("+" not in build_a or "+" not in build_b)


class OnThisBuild:
    """A task's function (``fn``) that checks, in the process that runs it, that the process runs
    the dask_gmm it was made in (``dask_gmm._BUILD``) before it runs: the workers are checked as a
    lazy per-row output is made, or a store's generation begins (:func:`refuse_workers_without_dask_gmm`),
    and one restarted or joined since, from a changed checkout or another one, had computed its
    blocks with its own code without a word (a review: 379,590 of 2e6 labels). ``what`` names the
    work in the error ("output", "store")."""

    def __init__(self, fn, what="output"):
        self.fn, self.what, self.build = fn, what, sys.modules[__package__]._BUILD
        self.__name__ = getattr(fn, "__name__", "read")  # (a partial of a reader's method has none)

    def __call__(self, *args, **kwargs):
        here = sys.modules[__package__]._BUILD
        if not _same_code(here, self.build):
            address = _worker_address()  # None: not a worker, a process of dask's processes scheduler, say
            where = f"The worker {address}" if address else f"The process {os.getpid()} that dask started to compute it"
            raise ValueError(f"{where} runs dask_gmm build {here}, and this {self.what} was made by build "
                             f"{self.build}: it started since from other code (a checkout changed since this "
                             "Python process imported dask_gmm, or another checkout), and would compute its rows with "
                             "it. Restart this Python process and the workers, so that all run the same dask_gmm, then "
                             f"{'make the output again' if self.what == 'output' else 'rerun'}.")
        return self.fn(*args, **kwargs)


def _on_a_cluster():
    """Whether dask would compute on a ``distributed`` cluster now (a default Client)."""
    return is_client(getattr(get_scheduler(), "__self__", None))


def is_client(obj):
    """Whether ``obj`` is a distributed Client (distributed not imported: none is)."""
    distributed = sys.modules.get("distributed")
    return distributed is not None and isinstance(obj, distributed.Client)


def _in_process_memory(store):
    """Whether the zarr ``store`` is fsspec's ``memory://``, which each process holds its own of
    (zarr's own MemoryStore is pickled with its contents)."""
    fs = getattr(store, "fs", None)
    protocol = getattr(getattr(fs, "sync_fs", fs), "protocol", ())
    return "memory" in ((protocol,) if isinstance(protocol, str) else protocol)


def _check_zarr_sources(X):
    """Refuse a dask array computed from a Zarr array that has lost chunks (zarr reads them as fill
    values; read so, and not checked after, where :data:`~dask_gmm._store.ABSENT_CHUNKS` is ``"fill"``), or, on a
    cluster, one opened by a relative path (the workers resolve it in their own folders), or, under
    dask's processes scheduler, one in a ``memory://`` store (the other processes' is empty: a fit
    of its zeros had ended with means of 0). A dask array reading a whole Zarr array unchanged is
    read as that array instead (:func:`~dask_gmm._reader.whole_zarr_array`)."""
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
