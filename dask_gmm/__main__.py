"""The ``dask-gmm`` command and ``python -m dask_gmm``: :func:`dask_gmm.cli.main`, imported here.

Loading the command line takes seconds (numpy, dask, numba, scikit-learn); a
Ctrl-C meanwhile ends it as one during a command does: one line, status 130.
"""

import sys


def main(argv=None):
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    try:
        from .cli import main as cli_main

        return cli_main(argv)
    except KeyboardInterrupt:  # before the command's own handling starts, or after it ends
        print("dask-gmm: error: interrupted", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
