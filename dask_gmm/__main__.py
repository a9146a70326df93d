"""The ``dask-gmm`` command and ``python -m dask_gmm``: :func:`dask_gmm.cli.main`, imported here.

Loading the command line takes seconds (numpy, dask, numba, scikit-learn); a
Ctrl-C or a SIGTERM meanwhile ends it as one during a command does, with one line. An
interrupted command then ends as Python ends on Ctrl-C, killed by SIGINT (a
shell reports status 130), so that a shell running it in a loop stops too; one
ended by SIGTERM exits with status 143 at once, and any other command at once
with its own status once it has finished (Python's clean-up, in which a signal
had ended a command already done, is skipped). A Ctrl-C or SIGTERM that the command
is not seen handling, 5 s after it, while the process runs on, is sent again
(:func:`dask_gmm._signals.raising`).
"""

import os
import signal
import sys
import threading

from ._signals import SignalAgain, Terminated, cause, raised, raising


def main(argv=None):
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    The program's entry point (the console script, ``python -m dask_gmm``): on the main thread, an
    interrupted command, once it has said so and cleaned up, ends the process by SIGINT
    (:func:`_end_by_sigint`), and any other ends it at once with its status (:func:`_exit_now`);
    off the main thread it returns the status. To run a command within a program of one's own,
    call :func:`dask_gmm.cli.main`, which only returns.
    """
    on_main = threading.current_thread() is threading.main_thread()
    before = len(raised)  # the signals of an earlier command in this process are not this one's
    if on_main and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)
    if on_main and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:  # the command sets its own while it runs
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        again = None
        if on_main:  # a Ctrl-C that Python dropped as the libraries loaded (in the import system's lock
            # callbacks) is sent again, or raised once they have loaded, and not printed as "Exception ignored";
            # until the command ends: they load in cli_main too, before its command sets its own (a CI run)
            hook = sys.unraisablehook
            sys.unraisablehook = again = SignalAgain(hook)
        try:
            from .cli import main as cli_main

            if again is not None:
                again.raise_pending()
            status = cli_main(argv)
            if again is not None and status not in (130, 143):  # not interrupted already
                again.raise_pending()
        finally:
            if again is not None:
                sys.unraisablehook = hook
                again.cancel()
    except BaseException as exc:  # a signal before the command's own handling starts, or after it ends,
        # or an error as the command unwound from one (a library its import had cut short, imported again)
        signum = _signal_of(exc, raised[before:])
        if signum is None:
            if signal.getsignal(signal.SIGTERM) is _on_sigterm:  # a traceback to come: SIGTERM as Python has it
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
            raise
        said, status = ("terminated", 143) if signum == signal.SIGTERM else ("interrupted", 130)
        print(f"dask-gmm: error: {said}", file=sys.stderr, flush=True)
    if not on_main:  # no signals to handle there
        return status
    if signal.getsignal(signal.SIGINT) is _on_sigint:  # the command is over: a Ctrl-C now changes nothing
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if status == 130:
        _end_by_sigint()
    # The command is done and has said so. The interpreter's clean-up (a cluster client's threads
    # take up to a second) is skipped: a SIGTERM or Ctrl-C during it ended a command that had
    # succeeded by the signal (status 143 with no word, or a traceback: a review, 0.05-0.2 s after
    # "wrote labels ...").
    _exit_now(status)


def _on_sigint(signum, frame):
    """SIGINT's handler while a command runs: a KeyboardInterrupt, as Python's own, and a watch
    that the command acts on it (:func:`dask_gmm._signals.raising`)."""
    raising(signal.SIGINT)
    raise KeyboardInterrupt


def _on_sigterm(signum, frame):
    """SIGTERM's handler outside a command (which sets its own): as the libraries load, when nothing has
    been written, one line and status 143 at once, as during a command (it had ended the process by the
    signal with no word: a review). Set once this module runs: a SIGTERM in the first tenth of a
    second or so, as Python itself starts, still ends the process by the signal."""
    print("dask-gmm: error: terminated", file=sys.stderr, flush=True)
    _exit_now(143)


def _signal_of(exc, signals):
    """SIGINT or SIGTERM where ``exc`` came of that signal (:func:`dask_gmm._signals.cause`), else
    None. An ImportError after a signal (the last of ``signals``, those this command handled) is its
    doing, though its chain may not say so (numpy 2.0, cut short as it loads its C extensions,
    raises its own ImportError, "please exit the numpy source tree", without the KeyboardInterrupt:
    a traceback, status 1, at the lowest versions)."""
    signalled = cause(exc)
    if signalled is not None:
        return signal.SIGTERM if isinstance(signalled, Terminated) else signal.SIGINT
    if isinstance(exc, ImportError) and signals:
        return signals[-1]
    return None


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _exit_now(status):
    """End the process now with ``status``, its output flushed, without the interpreter's clean-up,
    once a command has run its own.

    A SIGTERM is raised in the main thread wherever it is; raised while the thread started a
    thread pool's worker (dask's pool, or a fit's pulling threads), it left the worker unknown to
    its pool, idle and never told to stop, and the interpreter's exit, which joins every such
    thread, waited for it for ever (a review: 4 times in 6 SIGTERMs sent as a thread started).
    After a command that succeeded, a signal during that clean-up ended it by the signal.
    """
    _flush()
    os._exit(status)


def _end_by_sigint():
    """End the process by SIGINT's default action now, as Python ends on an uncaught Ctrl-C.

    Python's own way, a KeyboardInterrupt raised to the interpreter, ended with status 1 instead
    when Ctrl-C came during ``predict``'s writes (``python -m dask_gmm`` and the console script
    alike; CPython keeps the uncaught KeyboardInterrupt in a flag that any later string ``exec``
    resets, and something in its clean-up then ran one: not traced further). Ending here also
    skips that clean-up's messages of work cut short (zarr's coroutines never awaited, asyncio's
    pending tasks).
    """
    _flush()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)


if __name__ == "__main__":
    sys.exit(main())
