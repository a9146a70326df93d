"""The ``dask-gmm`` command and ``python -m dask_gmm``: :func:`dask_gmm.cli.main`, imported here.

Loading the command line takes seconds (numpy, dask, numba, scikit-learn); a
Ctrl-C meanwhile ends it as one during a command does, with one line. An
interrupted command then ends as Python ends on Ctrl-C, killed by SIGINT (a
shell reports status 130), so that a shell running it in a loop stops too.
"""

import sys


def _quiet(kind, value, traceback):
    """``sys.excepthook`` that prints nothing for the KeyboardInterrupt :func:`main` raises last."""
    if not issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)


def main(argv=None):
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status, or raises
    KeyboardInterrupt (quietly) once an interrupted command has said so and cleaned up."""
    try:
        from .cli import main as cli_main

        status = cli_main(argv)
    except KeyboardInterrupt:  # before the command's own handling starts, or after it ends
        print("dask-gmm: error: interrupted", file=sys.stderr, flush=True)
        status = 130
    if status == 130:  # interrupted: the interpreter ends by SIGINT after its clean-up
        sys.excepthook = _quiet
        _quiet_shutdown()
        raise KeyboardInterrupt
    return status


def _quiet_shutdown():
    """Silence what the interpreter's clean-up says of work an interrupt cut short: zarr's coroutines
    never awaited (RuntimeWarnings) and asyncio's pending tasks destroyed (its log). The command has
    already said it was interrupted; those lines followed it when Ctrl-C came mid-write."""
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.getLogger("asyncio").setLevel(logging.CRITICAL + 1)


if __name__ == "__main__":
    sys.exit(main())
