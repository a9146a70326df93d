"""A Ctrl-C or SIGTERM that Python dropped, sent again: the command line's ``sys.unraisablehook``.

Imported by :mod:`dask_gmm.__main__` before the libraries load, so it imports nothing heavy.
"""

import os
import signal
import threading


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
    :func:`dask_gmm.__main__._watch`, but after Python's "Exception ignored" and a traceback).
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
