"""A Ctrl-C or SIGTERM that Python dropped, sent again (the command line's ``sys.unraisablehook``),
and one that something took and left unhandled (:func:`raising`).

Imported by :mod:`dask_gmm.__main__` before the libraries load, so it imports nothing heavy.
"""

import os
import signal
import sys
import threading
import time


#: The signals (SIGINT, SIGTERM) whose handlers raised in this process, the last last.
raised = []
#: Seconds a command has to end after a Ctrl-C or SIGTERM before it must be seen handling it (:func:`raising`).
ACT_WITHIN = 5.0
_watchers = []  # the watch under way, if any
_stood_down = [0]  # how many times :func:`stand_down` was called: a watch started before it sends nothing
# re-entrant: a handler's raising() may run in the main thread while it is in stand_down()
_watch_lock = threading.RLock()


def raising(signum):
    """A handler about to raise the exception of ``signum`` (SIGINT, SIGTERM): the signal recorded
    (:data:`raised`) and sent again if the process has not ended :data:`ACT_WITHIN` seconds on, nor
    the command (:func:`stand_down`), and its main thread is then not handling it (in an
    ``except``, a ``finally`` or a ``with``'s exit on the way out), at two looks 20 ms apart.

    A Ctrl-C 0.6 s after the start was once ignored in a CI run, and a 2e8-row ``generate`` ran on
    (not reproduced in 200 tries; by our reading a library's bare ``except`` took the
    KeyboardInterrupt as the libraries loaded); a SIGTERM 0.5 s in, once (not reproduced in 150).
    A command handling it may take a minute (writes under way are waited for), all of it with the
    exception current. Sent again, it is handled as a second signal, by the command's own clean-up.
    """
    raised.append(signum)
    with _watch_lock:
        if _watchers:  # one at a time
            return
        watch = threading.Thread(target=_watch, args=(threading.main_thread().ident, signum, _stood_down[0]),
                                 daemon=True, name="dask-gmm-signal-watch")
        try:
            watch.start()
        except (RuntimeError, MemoryError):  # no thread to be had (a limit on them): the signal still ends it
            return
        _watchers.append(watch)


def stand_down():
    """Send no signal again from now on: the command has ended (a program that runs
    :func:`dask_gmm.cli.main` goes on after it)."""
    with _watch_lock:
        _stood_down[0] += 1
        _watchers.clear()


def _watch(ident, signum, stood_down):
    time.sleep(ACT_WITHIN)
    missed = 0
    while missed < 2:
        current = sys._current_exceptions().get(ident)  # Python 3.11: an exc_info tuple, later the exception
        missed = 0 if cause(current[1] if isinstance(current, tuple) else current) is not None else missed + 1
        time.sleep(0.02)
    with _watch_lock:
        if _stood_down[0] != stood_down:
            return
        _watchers.clear()
        os.kill(os.getpid(), signum)


def cause(exc):
    """The KeyboardInterrupt (a :class:`Terminated` for SIGTERM) in ``exc``'s chain, or None: a C
    extension whose module a KeyboardInterrupt cut short in its initialisation raises
    ImportError("initialization failed") from it (scipy's HiGHS module, as scikit-learn loaded, 0.3 s
    after the start: once in a CI run), a class whose attribute's ``__set_name__`` it cut short a
    RuntimeError (dask's ``Expr``, as dask loaded: once in 120 Ctrl-Cs), and a library it left half
    loaded an AttributeError when imported again (numba)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread (a KeyboardInterrupt, so that no ``except Exception`` stops it)."""


class SignalAgain:
    """``sys.unraisablehook`` while a command runs or its libraries load: a Ctrl-C or SIGTERM whose
    exception Python dropped is sent again, to be raised where it is not; anything else goes to the
    hook before (``before``).

    A signal's handler raises in the main thread wherever it is; raised while that thread ran a
    weakref callback or a ``__del__``, whose exceptions Python prints as "Exception ignored" and
    drops, it was lost: ``demo`` ran on to its end and exited 0 after a Ctrl-C (3 times in 25) or
    a SIGTERM (3 in 16), with a traceback (a review). As the libraries load, the import system's
    module locks have such callbacks (a CI run: the Ctrl-C was sent again 5 s on, by
    :func:`raising`, but after Python's "Exception ignored" and a traceback).
    """

    def __init__(self, before):
        self.before = before
        self.pending = None  # the exception dropped last, until the command has ended
        self.timer = None

    def __call__(self, unraisable):
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
            self.pending = Terminated if issubclass(unraisable.exc_type, Terminated) else KeyboardInterrupt
            signum = signal.SIGTERM if self.pending is Terminated else signal.SIGINT
            # from another thread, 10 ms on: sent from here, its handler raised here, in the hook,
            # which drops it too (and again, where the callback still runs)
            self.timer = threading.Timer(0.01, os.kill, (os.getpid(), signum))
            self.timer.daemon = True
            self.timer.start()
        else:
            self.before(unraisable)

    def cancel(self):
        """Send nothing again from now on (the signal is handled, or the command has ended)."""
        if self.timer is not None:
            self.timer.cancel()

    def raise_pending(self):
        """Raise the signal's exception if one was dropped (at a command's end, or once the
        libraries have loaded: the work had gone on, and a command ended with status 0, before
        it was sent again)."""
        if self.pending is not None:
            raise self.pending
