"""The files dask_gmm writes: their paths checked, written atomically (beside, then renamed into
place, and synced), one writer at a time (a lock), and what an interrupted write left swept.
Model files, checkpoints, figures, the CLI's outputs and the generator's stores all go through it.
What an output may replace (:func:`replaceable`, :func:`refuse_unreplaceable`) and where it may
not lie (inside the input, or inside a Zarr store: :func:`refuse_output_inside`) are here too.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import stat
import time
import uuid

import fsspec

from . import io
from ._store import DamagedMetadata, _zarr_node, first_few, foreign_files, member_nodes


def file_path(path, what="The path to write"):
    """``path`` (str, bytes or os.PathLike) as a str; a ValueError naming ``what`` for anything else."""
    try:
        return os.fsdecode(os.fspath(path))
    except TypeError:
        raise ValueError(f"{what} must be a file's path (a str, bytes or os.PathLike), not "
                         f"{type(path).__name__} {path!r:.80}.") from None


def local_file_path(path, what):
    """``path`` (str, bytes or os.PathLike) as a str, a ``file://`` or ``local://`` URL as its local
    path (model files and checkpoints are local files, and may be named so); other URLs as they are."""
    path = file_path(path, what)
    scheme, sep, _ = path.partition("://")
    return io.data_path(path) if sep and scheme.lower() in ("file", "local") else path


def check_file_path(path):
    """Refuse a ``path`` to write that names no file that may be replaced: empty, ending in a
    separator, a folder, or a device, FIFO or socket (the rename that ends an atomic write would
    put a file in its place: ``/dev/null``, say; opening a FIFO to read a checkpoint waits forever)."""
    p = file_path(path)
    if not p.strip():
        raise ValueError("Cannot write to an empty path. Give the path of a file.")
    if os.path.isdir(p):
        raise ValueError(f"Cannot write {p!r}: it is a folder. Give the path of a file.")
    if p.endswith(("/", os.sep)):
        raise ValueError(f"Cannot write {p!r}: a path ending in {p[-1]!r} names a folder. Give the path of a file.")
    if os.path.exists(p) and not os.path.isfile(p):
        raise ValueError(f"Cannot write {p!r}: it is not a regular file (a device, a FIFO or a socket), "
                         "and writing would replace it. Give the path of a file.")
    name, limit = os.path.basename(p), _name_max(os.path.dirname(os.path.abspath(p)))
    if limit is not None and len(os.fsencode(name)) > limit:  # found at the rename, after the work, under another name
        raise ValueError(f"Cannot write {p!r}: its file name is {len(os.fsencode(name))} bytes long, more than the "
                         f"{limit} its file system allows. Choose a shorter name.")
    if os.path.isfile(p) and not os.path.islink(p) and not os.stat(p).st_mode & stat.S_IWUSR:  # marked read-only:
        # the rename would replace it without asking
        raise ValueError(f"Cannot write {p!r}: it is read-only (mode {stat.S_IMODE(os.stat(p).st_mode):04o}). "
                         "Make it writable (chmod u+w) to replace it, or choose another path.")


def _name_max(folder):
    """The longest file name, in bytes, that the file system of ``folder`` (or of its nearest
    existing parent: a figure's folder is made) takes; None where it does not say."""
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # pathconf: POSIX only
        return None


def is_png(path):
    """Whether ``path`` is a regular file that starts as a PNG image does (never opened otherwise:
    a FIFO would block)."""
    if not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as f:
            return f.read(8) == b"\x89PNG\r\n\x1a\n"
    except OSError:
        return False


def blank(path):
    """Whether ``path`` is a regular file holding nothing but blanks (none at all, as ``mktemp`` makes
    it; a newline, as ``echo > path``): one that any of our files may replace, holding nothing to lose."""
    try:
        if not os.path.isfile(path):
            return False
        size = os.path.getsize(path)
        if size == 0:  # not read: an empty file that may not be read is blank too
            return True
        if size > 64:
            return False
        with open(path, "rb") as f:
            return not f.read().strip()
    except OSError:  # unreadable: not known to be blank
        return False


def holds_other_than_png(path):
    """Whether something is at ``path`` that a figure may not replace: anything but a PNG image or
    a :func:`blank` file."""
    return os.path.exists(path) and not blank(path) and not is_png(path)


def check_folder(path):
    """Refuse a ``path`` to write that names no file to replace (:func:`check_file_path`), or whose
    folder cannot take it (:func:`folder_refusal`), naming ``path`` (not a temporary file)."""
    check_file_path(path)
    path = file_path(path)
    said = folder_refusal(path)
    if said:  # before any work, not at the first write
        raise ValueError(f"Cannot write {path!r}: {said}")


def folder_refusal(path, create=False):
    """Why the folder that is to hold the local ``path`` cannot take it (it does not exist, is a
    file, or may not be written), for messages; None when it can. With ``create`` (figures, whose
    folders are made), of its nearest existing folder."""
    folder = os.path.dirname(os.path.abspath(path))
    while create and not os.path.lexists(folder):
        folder = os.path.dirname(folder)
    if os.path.exists(folder) and not os.path.isdir(folder):
        return f"{folder!r} is a file, not a folder."
    if not os.path.isdir(folder):
        return f"the folder {folder!r} does not exist. Create it first, or choose a path in an existing folder."
    why = why_unwritable(folder)
    return None if why is None else f"{why}. Choose a path in a folder you may write."


def why_unwritable(folder):
    """Why files cannot be made in the existing ``folder`` (a read-only file system, or no
    permission to write in it), for messages; None when they can."""
    if os.access(folder, os.W_OK | os.X_OK):
        return None
    with contextlib.suppress(OSError, AttributeError):  # statvfs: POSIX only
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return f"the folder {folder!r} is on a read-only file system"
    return f"no permission to write in the folder {folder!r}"


#: The targets (folder, name) whose leftover temporary files this process has removed (once each).
_SWEPT = set()


def _machine_id():
    """The first 8 hex digits of this machine's id (systemd's ``/etc/machine-id``, D-Bus's copy of
    it), or "" where there is none. It outlives reboots, which a boot id would not: a leftover
    that a crash of the machine left is still this machine's after it."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            with open(path) as f:
                found = f.read().strip()[:8]
            if re.fullmatch(r"[0-9a-f]{8}", found):
                return found
    return ""


def writer_id():
    """This process's writer, as its temporary files name it: ``HOST+PIDNS+MACHINE@PID``, each part
    where the system shows it. PIDNS is the inode of its PID namespace (containers sharing a host
    name and a disk do not share PIDs); MACHINE the start of its machine id (:func:`_machine_id`):
    two machines of one host name share the first PID namespace's inode, 4026531836, and may share
    a folder (NFS), but not a machine id, unless cloned with it. Elsewhere ``HOST@PID``."""
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    machine = _machine_id()
    if machine:
        parts.append(machine)
    return f"{'+'.join(parts)}@{os.getpid()}"


def _sibling_name(path):
    """(folder, prefix) of ``path``'s temporary siblings: ``.NAME.tmp@`` (NAME a digest of a name
    too long to carry)."""
    folder, base = os.path.split(os.path.abspath(os.fspath(path)))
    if len(os.fsencode(base)) > _LONGEST_NAME:
        base = hashlib.blake2b(os.fsencode(base), digest_size=8).hexdigest()
    return folder, f".{base}.tmp@"


#: The longest NAME a temporary sibling carries whole: NAME_MAX (255 bytes) less the rest of the
#: longest sibling, ``.NAME.tmp@WRITER@HEX.gone`` (112 bytes), of the longest :func:`writer_id` (a
#: host name of 64 bytes, a namespace inode of 10 digits, 8 of the machine id, a pid of 7). It
#: depends on no host's own, so every writer of a path agrees on its lock's name. (It was 150: a
#: host name of 63 bytes made the rename of a 146-byte name's output fail, a review.)
_LONGEST_NAME = 255 - len(".") - len(".tmp@") - (64 + 1 + 10 + 1 + 8 + 1 + 7) - len("@") - 8 - len(".gone")


def _leftovers(folder, prefix):
    """``{name: (writer, pid, suffix)}`` of the temporary siblings in ``folder`` named ``prefix`` +
    WRITER@PID@HEX + suffix: "" (a temporary file or store), ".old" (a previous output moved aside:
    :func:`restore_moved_aside`) or ".gone" (a replaced output being removed). Nothing where the
    folder cannot be listed."""
    return _parsed(folder, re.escape(prefix))


#: The end of a temporary sibling's name, after ``.NAME.tmp@``: WRITER@PID@HEX and its suffix.
_SIBLING_TAIL = r"([^@]+)@([0-9]{1,9})@[0-9a-f]{8}(|\.old|\.gone)"


def _parsed(folder, head):
    """``{name: (writer, pid, suffix)}`` of the names in ``folder`` that the pattern ``head`` and
    :data:`_SIBLING_TAIL` match; nothing where the folder cannot be listed."""
    found = {}
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            m = re.fullmatch(head + _SIBLING_TAIL, name)
            if m:
                found[name] = (m[1], int(m[2]), m[3])
    return found


def _dead_leftovers(found):
    """``{name: suffix}`` of the leftovers ``found`` (:func:`_leftovers`) that a writer of this host,
    PID namespace and machine left when it was killed (its process gone)."""
    if os.name != "posix":  # os.kill(pid, 0) tests a pid on POSIX only
        return {}
    host = writer_id().rsplit("@", 1)[0]
    return {name: suffix for name, (writer, pid, suffix) in found.items() if writer == host and not _alive(pid)}


def killed_temporaries(folder):
    """The names, sorted, of the temporary outputs in ``folder`` (``.NAME.tmp@WRITER@HEX``, and the
    ``.gone`` of a replaced output being removed) that writers of this host, PID namespace and
    machine left when they were killed: what the next write of NAME sweeps
    (:func:`temporary_sibling`). Not a ``.old``: a previous output moved aside, perhaps the only copy."""
    return sorted(name for name, suffix in _dead_leftovers(_parsed(folder, r"\..+?\.tmp@")).items() if suffix != ".old")


def moved_aside(path, suffix=".old"):
    """The names of the previous outputs of ``path`` that writers moved aside (``.old``) and left,
    killed while they replaced it (or replacing it now), of any host, the newest first; with
    ``suffix`` ".gone", those replaced outputs that writers were removing."""
    folder, prefix = _sibling_name(path)
    return _newest_first(folder, [n for n, (_, _, end) in _leftovers(folder, prefix).items() if end == suffix])


def _newest_first(folder, names):
    """``names`` of files in ``folder``, the last changed (renamed) first."""
    return sorted(names, key=lambda n: _changed(os.path.join(folder, n)), reverse=True)


def _foreign_leftovers(path, folder, found):
    """A warning naming the temporary siblings of ``path`` (of ``found``, :func:`_leftovers` of its
    ``folder``) of writers of another host, PID namespace
    or machine (another container: each restart of a killed job's container is one), which this
    process cannot tell dead from at work, and so leaves; None where there are none. A killed job
    restarted in a new container had left them, its previous output moved aside among them, without
    a word (a review)."""
    host = writer_id().rsplit("@", 1)[0]
    theirs = {n: suffix for n, (writer, _, suffix) in found.items() if writer != host}
    if not theirs:
        return None
    old = _newest_first(folder, [n for n, suffix in theirs.items() if suffix == ".old"])
    temporary = sorted(n for n, suffix in theirs.items() if suffix != ".old")
    said = [f"Beside {os.fspath(path)!r} are files of writers on another host or in another container (or PID "
            "namespace), killed while they wrote it or writing it now, which are left as they are:"]
    if temporary:
        said.append(f"temporary {first_few(temporary)}, to delete unless such a writer is at work;")
    if old:
        said.append(f"previous output(s) moved aside {first_few(old)} (the newest first), to move back to its name "
                    "where that is missing (the newest), else to delete, unless such a writer is at work.")
    return " ".join(said).removesuffix(";") + ("" if said[-1].endswith(".") else ".")


def _remove(path):
    """Delete ``path``: a folder with all in it that can go (a link: not what it points to), or a
    file; the errors met, an empty list where it all went (or it was gone already)."""
    failed = []
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, onerror=lambda function, name, info: failed.append(info[1]))
        else:
            os.unlink(path)
    except FileNotFoundError:  # removed meanwhile (another run's sweep)
        pass
    except OSError as exc:
        failed.append(exc)
    return failed


def remove_replaced(gone, what):
    """Delete ``gone``, the replaced output ``what`` (its name, for the message) renamed aside (a
    store's folder, a file, a link: not what it points to), with a warning naming it where that
    fails: a read-only store stayed there, hidden and as large as it was, without a word (a review),
    and the sweep of later runs (:func:`temporary_sibling`) could not remove it either."""
    failed = _remove(gone)
    if failed and os.path.lexists(gone):
        io.warn_at_caller(f"{what!r} was replaced, but the old one, moved aside to {gone!r}, could not be deleted "
                          f"whole ({failed[0].strerror}). Delete it yourself (if it is read-only, after chmod -R u+w).")


def temporary_sibling(path):
    """A new hidden name beside ``path`` to write it through: ``.NAME.tmp@WRITER@HEX``, WRITER
    :func:`writer_id` (NAME a digest of a name too long for that).

    The first time a process writes ``path``, it removes the temporary siblings of
    ``path`` that a writer of the same host, PID namespace and machine left when
    it was killed (its process gone: SIGKILL skips every clean-up), so that they
    do not pile up, one per kill: temporary files and stores, and replaced
    outputs it was removing (``.gone``). Those of a live process, of another
    host, namespace or machine, and a ``.old`` (a previous output moved aside,
    perhaps the only copy: :func:`restore_moved_aside`) stay; a leftover that
    cannot be removed stays too (the sweep is tidying: it never fails a write).
    Those of another host, namespace or machine are named in a warning.
    """
    folder, prefix = _sibling_name(path)
    if (folder, prefix) not in _SWEPT:
        found = _leftovers(folder, prefix)  # one listing of the folder
        for name, suffix in _dead_leftovers(found).items():
            if suffix != ".old":
                _remove(os.path.join(folder, name))
        foreign = _foreign_leftovers(path, folder, found)
        if foreign:
            io.warn_at_caller(foreign)
        if len(_SWEPT) >= 4096:  # a process writing many paths sweeps again rather than grow this
            _SWEPT.clear()
        _SWEPT.add((folder, prefix))
    return os.path.join(folder, f"{prefix}{writer_id()}@{uuid.uuid4().hex[:8]}")


class Busy(ValueError):
    """The ValueError of :func:`one_writer` when another run holds the lock."""


def _lock_paths(path):
    """The lock files of the local output ``path``: the hidden sibling ``.NAME.lock`` of its real path,
    and of ``path`` itself where it is reached through a link. A run through a link that replaced the
    link with its new store had held only the target's lock, and a second run on the same path,
    finding a folder there, took another and removed the first's half-written store (a review)."""
    absolute = os.path.abspath(path)
    # the path's own name in its real folder: a folder reached through a link (/tmp on macOS) is one
    # lock file, whose second flock, of another descriptor, this process would have refused itself
    named = os.path.join(os.path.realpath(os.path.dirname(absolute)), os.path.basename(absolute))
    paths = dict.fromkeys((os.path.realpath(path), named))
    return [os.path.join(folder, f"{prefix.removesuffix('.tmp@')}.lock")
            for folder, prefix in map(_sibling_name, paths)]


def being_written(path):
    """Whether a run holds :func:`one_writer`'s lock of the local ``path`` now (asked without waiting,
    and without making the lock file); False where that cannot be told."""
    return any(_held(lock) for lock in _lock_paths(path))


def _held(lock):
    """Whether a run holds the lock file ``lock`` now (:func:`being_written`)."""
    try:
        import fcntl

        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
    except (ImportError, OSError):  # not POSIX, or no lock file: no writer
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError:  # no flock here
        return False
    finally:
        os.close(fd)  # the lock taken, if any, goes with it


def _lock_soon(fcntl, fd):
    """An exclusive ``flock`` of ``fd``, tried for 50 ms: :func:`being_written` holds a shared one
    for microseconds (it refused 2,893 of 20,000 writers, asked in a loop, a review), a writer for
    its whole run. BlockingIOError when it is still held then."""
    deadline = time.monotonic() + 0.05
    while True:
        try:
            return fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.001)


@contextlib.contextmanager
def one_writer(path, busy):
    """Hold the lock of the local output ``path`` while this process writes it in place: an
    exclusive ``flock`` of the hidden sibling ``.NAME.lock`` of its real path (links resolved),
    and of the path itself where it is a link (:func:`_lock_paths`), removed after. A second
    writer of ``path`` meanwhile (another process, on any host where the file system honours
    ``flock``, or another thread) gets the ValueError ``busy`` rather than interleave its chunks
    with this one's (:class:`Busy`): two overwrites at once had left a store recorded as one
    seed's, complete, holding a chunk of the other's. Where no lock can be made (a URL, no
    ``fcntl``, a missing or unwritable folder, a file system without ``flock``) none is taken, and
    the write goes on as before."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        fcntl = None
    if fcntl is None or "://" in os.fspath(path):
        yield
        return
    with contextlib.ExitStack() as stack:
        for lock in _lock_paths(path):
            stack.enter_context(_locked(fcntl, lock, busy))
        yield


@contextlib.contextmanager
def _locked(fcntl, lock, busy):
    """Hold the lock file ``lock`` (:func:`one_writer`)."""
    for _ in range(100):  # each turn: a writer that had the file removed it as this one opened it
        try:
            # flock needs no write access; a link planted at the lock's name is not followed (a review:
            # a dangling one made the file at its target), and the write goes on without the lock
            fd = os.open(lock, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError:
            break
        try:
            _lock_soon(fcntl, fd)
        except BlockingIOError:
            os.close(fd)
            raise Busy(busy) from None
        except OSError:  # no flock here (ENOLCK, EOPNOTSUPP): no lock, and no file left behind
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(lock)
            break
        try:
            held = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except OSError:
            held = False
        if held:
            try:
                yield
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(lock)
                os.close(fd)
            return
        os.close(fd)
    else:  # the file kept being replaced: writers are at work there
        raise Busy(busy)
    yield


def restore_moved_aside(path):
    """Undo what a writer killed while replacing ``path`` left: the previous output it had moved
    aside (``.NAME.tmp@WRITER@HEX.old``, its writer dead) goes back to ``path`` when nothing is
    there (killed between its two renames; of several, the one moved aside last), and is removed
    when the new output took its place. Returns the name put back, or None. Call it before checking
    whether ``path`` exists."""
    folder, prefix = _sibling_name(path)
    restored = None
    aside = [n for n, suffix in _dead_leftovers(_leftovers(folder, prefix)).items() if suffix == ".old"]
    for name in _newest_first(folder, aside):
        left = os.path.join(folder, name)
        if os.path.lexists(path):
            _remove(left)
            continue
        try:
            os.replace(left, path)
        except OSError:  # it stays where it is, for its owner to see
            continue
        restored = name
    return restored


def _changed(path):
    """When ``path`` last changed (a rename counts), or 0 if it is gone."""
    try:
        return os.lstat(path).st_ctime_ns
    except OSError:
        return 0


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def replaced_mode(path):
    """The permissions a file written to replace ``path`` keeps: those of the regular file there (not
    of a link, which is replaced, not followed), or None where there is none."""
    if os.path.isfile(path) and not os.path.islink(path):
        with contextlib.suppress(FileNotFoundError):
            return stat.S_IMODE(os.stat(path).st_mode)
    return None


def write_atomic(path, write, mode="w", replaces=None):
    """Fill ``path`` with ``write(f)`` through a temporary file beside it (:func:`temporary_sibling`;
    the folder must exist), synced to disk, and a rename, synced too: a reader never sees half a file. A new file
    gets the permissions the umask gives, a replaced one keeps its own (a private 0600 model file
    stays private). A link at ``path`` is replaced, not what it points to. ``replaces(path)``, when
    given, runs just before the rename and raises to keep what is there (written there while
    ``write`` ran, after the caller's own checks); the temporary file is then removed. Returns
    ``path`` (a str)."""
    path = file_path(path)
    check_folder(path)
    try:
        tmp = temporary_sibling(path)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:  # name the file asked for, not the temporary one
        raise type(exc)(exc.errno, exc.strerror, path) from None
    try:
        try:
            with os.fdopen(fd, mode) as f:  # first: the file is closed whatever fails after
                kept = replaced_mode(path)
                if kept is not None:  # from before any byte is written (a 0600 file's stay private)
                    os.fchmod(f.fileno(), kept)
                write(f)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:  # a full disk's write, flush or sync names no file: the one asked for (a review)
            if exc.filename is not None or exc.errno is None:
                raise
            raise type(exc)(exc.errno, exc.strerror, path) from None
        if replaces is not None:
            replaces(path)
        try:
            os.replace(tmp, path)
        except OSError as exc:  # name the file asked for, not the temporary one
            raise type(exc)(exc.errno, exc.strerror, path) from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    sync_folder(os.path.dirname(path) or ".")
    return path


def sync_folder(path):
    """The folder ``path``'s entries synced to disk: after a crash of the machine, a rename into it
    stands (else the old file, or none, may come back). Where a folder cannot be opened or synced
    (Windows, some file systems), nothing is done."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sync_tree(root):
    """Every file under the folder ``root`` synced to disk, then each folder after its entries
    (:func:`sync_folder`): done before ``root`` is renamed into place, so that after a crash of the
    machine the renamed tree holds what was written, not empty or short files. A file's sync that
    fails raises (a write the disk or server could not keep: EIO, ENOSPC, EDQUOT), unless the file
    system cannot sync at all (EINVAL, ENOTSUP)."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDWR)  # Windows flushes only what it may write
            try:
                os.fsync(fd)
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
                    raise
            finally:
                os.close(fd)
        sync_folder(folder)


# ------------------------------------------------------------------ what an output may replace, and where it may lie
def replaceable(path):
    """Whether an overwrite may replace what is at ``path`` (a local path or URL).

    Only nothing, an empty folder or a Zarr store (an array or a group) may be
    replaced: never another file or folder, which could hold anything.
    """
    try:
        io.open_node(path)
        return True
    except DamagedMetadata:
        return True
    except ValueError:
        fs, p = fsspec.core.url_to_fs(path)
        return not fs.exists(p) or (fs.isdir(p) and not fs.ls(p))


def refuse_unreplaceable(path, flag, own):
    """Raise ValueError unless an overwrite (named ``flag``, as the caller's user writes it) may
    replace what is at ``path``: only nothing, an empty folder or the command's own earlier output,
    a Zarr store holding nothing but its own files (:func:`~dask_gmm._store.foreign_files`), never other data.
    ``own`` = (test, layout, words): a store is the command's own when its node passes ``test``
    (the opened Zarr node) or, when its root metadata cannot be read, when its member nodes'
    names pass ``layout`` (a set of names: :func:`~dask_gmm._store.member_nodes`); ``words`` say what passes."""
    test, layout, words = own
    if not replaceable(path):
        raise ValueError(
            f"{path!r} exists and is not a Zarr store; {flag} replaces only {words} (and empty folders), "
            "never other files or folders. Choose another path, or remove it yourself."
        )
    try:
        node = io.open_node(path)
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
        p = io._resolved(chain_target(p))
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
    path = io.data_path(chain_target(path))  # a local path unchanged by chain_target, checked and made absolute
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


def joined_group(path, writes):
    """Where the local Zarr node at ``path`` (``writes``: what writes it, as 'predict writes a Zarr v3
    array') would join a Zarr group that would not show it as written: a ValueError for a Zarr v2 group,
    which lists only v2 nodes (a review saw the new node missing from the group); for a v3 group with
    consolidated metadata, its own or a group's above it (which zarr and xarray read the group's members
    from), a warning to give for each such group, innermost first (a list, empty for none): that
    metadata will not list the node, or lists what was at ``path`` before (an overwrite: probabilities
    had read as the old labels' int8). Each group's own listing needs consolidating again (a group's
    above does not mend it). The group is the user's: not consolidated again here."""
    group = os.path.dirname(os.path.abspath(path))
    if os.path.isfile(os.path.join(group, ".zgroup")):
        raise ValueError(f"{path!r} would lie in the Zarr v2 group {group!r}, which lists only Zarr v2 arrays and "
                         f"groups, and {writes}, which the group would not show. Write it outside that group.")
    member = os.path.basename(os.path.abspath(path))
    advice = []
    while True:  # up through the v3 groups (a v2 group above one lists none of its members anyway)
        try:
            with open(os.path.join(group, "zarr.json"), "rb") as f:
                meta = json.load(f)
        except (OSError, ValueError):  # no group here, or none that zarr could read either: the groups end
            return advice
        if not isinstance(meta, dict) or meta.get("node_type") != "group":
            return advice
        consolidated = meta.get("consolidated_metadata")
        if consolidated:
            listed = isinstance(consolidated, dict) and member in (consolidated.get("metadata") or {})
            said, to = ("describes what was at this path before", "update") if listed else ("will not list the output",
                                                                                          "list")
            advice.append(f"the Zarr group {group!r} has consolidated metadata, from which zarr and xarray read its "
                            f"members, and which {said}: run zarr.consolidate_metadata({group!r}) once it is written "
                            f"to {to} it")
        group, below = os.path.dirname(group), group
        if group == below:
            return advice
        member = f"{os.path.basename(below)}/{member}"
