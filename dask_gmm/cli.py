"""The ``dask-gmm`` command line: a thin layer over the library, and the only module that prints.

Commands::

    dask-gmm generate PATH --n-samples N [--n-features D] [--n-components K] [--seed S] ...
    dask-gmm fit PATH --n-components K --output MODEL.json [--covariance-type T] ...
    dask-gmm select PATH --n-components 1-8 --output MODEL.json [--plot crit.png] ...
    dask-gmm predict MODEL.json PATH --output LABELS.zarr [--proba]
    dask-gmm score MODEL.json PATH
    dask-gmm info PATH|MODEL.json
    dask-gmm plot MODEL.json PATH --output fit.png
    dask-gmm demo [--n-samples N] [--output-dir DIR] [--seed S]

Errors a user can fix (bad arguments, missing or incomplete stores, a model
that does not match the data, anything the library reports as ValueError,
missing files, a full disk) print one line ``dask-gmm: error: ...`` on stderr and exit
with status 2; Ctrl-C exits with 130, SIGTERM with 143 (both after removing
the command's temporary files), and a closed output pipe with 141; the
``dask-gmm`` entry point (:mod:`dask_gmm.__main__`) then ends an interrupted
command killed by SIGINT, as Python does. Anything else is a bug and raises.

Progress (a one-line status per EM iteration, Dask's progress bar for
generate, predict, score and demo) goes to stderr, only when stderr is a terminal and
``--quiet`` is not given. Results and summaries go to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import decimal
import difflib
import errno
import gc
import json
import logging
import math
import os
import re
import secrets
import shlex
import shutil
import signal
import sys
import threading
import time
import warnings

import numpy as np

from ._signals import SignalAgain, Terminated, raising, stand_down

PROG = "dask-gmm"
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")  # as dask_gmm._covariance (not imported: --help stays fast)
INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")  # as dask_gmm._init.INITIALIZERS
DEMO_DEFAULTS = {"n_samples": 2_000_000, "n_features": 2, "n_components": 3, "seed": 1,
                 "chunk_size": 250_000, "output_dir": "dask-gmm-demo"}
NOTEBOOK_N, NOTEBOOK_ITERATIONS = 100_000, 100  # the seed notebook's sample size and iteration count
#: The demo's tol: to the optimum, so that its fitted - true differences are sampling error. At the default
#: 1e-3 seed 3's fit stopped while still climbing: its means 7 standard errors off, and scoring below the
#: true model (-2.6e-5 a row), which the optimum cannot (a review); five more iterations reach it.
DEMO_TOL = 1e-6
_SPARK = "▁▂▃▄▅▆▇█"
MODEL_MAX_SIZE = 10_000  # as dask_gmm.modelfile.MAX_SIZE: the most components or features a model file holds
PLOT_MAX_BINS = 1024  # as dask_gmm.plot.MAX_BINS: the most histogram bins per axis
#: The most components fit and select iterate together (each pass computes all of them for every row):
#: n_components x n_init for fit, the sum over candidates for select. It stops a typo such as
#: ``select -k 1-3000`` (about 4.5 million components) before it runs for days.
LOCKSTEP_MAX_COMPONENTS = 100_000


class CLIError(Exception):
    """A problem the user can fix: printed as one line, exit status 2."""


class _UsageError(Exception):
    pass


# ------------------------------------------------------------------ terminal output
class _Terminal:
    """Writes results to stdout, and progress (when wanted) as a rewritable line on stderr."""

    def __init__(self, quiet=False):
        self.quiet = quiet
        self._open = False  # a progress line is on screen, without its newline
        self._shown = 0

    @property
    def progress(self):
        return not self.quiet and _stderr_is_terminal()

    def status(self, text):
        if not self.progress:
            return
        width = shutil.get_terminal_size((100, 20)).columns - 1
        text = text[:width]
        sys.stderr.write("\r" + text.ljust(self._shown if self._open else 0))  # blank what is left of a longer line
        sys.stderr.flush()
        self._open, self._shown = True, len(text)

    def end_status(self):
        if self._open:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._open = False

    def out(self, text=""):
        self.end_status()
        print(text, flush=True)

    def warn(self, text):
        self.end_status()
        print(f"{PROG}: warning: {text}", file=sys.stderr, flush=True)


def _stderr_is_terminal():
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def _dask_progress(term):
    """Dask's progress bar on stderr for local-scheduler computations, when progress is wanted."""
    from ._cluster import default_client

    if not term.progress or default_client() is not None:
        yield
        return
    from dask.diagnostics import ProgressBar

    term.end_status()
    with ProgressBar(minimum=0.5, out=_PaddedLines(sys.stderr)):
        yield


class _PaddedLines:
    """A stream that pads each line drawn over the last (``"\\r..."``, dask's ProgressBar's) to the
    longest drawn before, so that a shorter one clears it: ``| 100% Completed | 1.49 s`` drawn over
    ``999.21 ms`` had left ``1.49 sms`` (a review)."""

    def __init__(self, stream):
        self.stream, self.width = stream, 0

    def write(self, text):
        if text.startswith("\r"):
            self.width = max(self.width, len(text))
            text = text.ljust(self.width)
        return self.stream.write(text)

    def flush(self):
        self.stream.flush()


class _FitProgress(logging.Handler):
    """Reads the records GaussianMixture logs per EM iteration (verbose=1, verbose_interval=1).

    Keeps the seconds of each iteration (so that the summary can tell the EM
    iterations from the initialisation) and, when progress is wanted, shows
    one status line updated per iteration.
    """

    def __init__(self, term, n_init):
        super().__init__(logging.INFO)
        self.term, self.n_init = term, n_init
        self.seconds = []  # one entry per pass over the data
        self._last_pass = None

    def emit(self, record):
        n_iter = getattr(record, "n_iter", None)
        if n_iter is None:
            return
        if record.pass_number != self._last_pass:  # every run a pass advanced logs the same pass
            self._last_pass = record.pass_number
            self.seconds.append(record.seconds)
        init = f"init {record.init}/{self.n_init}  " if self.n_init > 1 else ""
        change = record.change
        change = "       -" if not math.isfinite(change) else f"{change:+.2e}"
        self.term.status(
            f"fit: {init}iteration {n_iter}/{record.max_iter}  log-likelihood {record.lower_bound:.6f}  "
            f"change {change}  {record.seconds:.2f} s/it"
        )


class _WarningLines(logging.Handler):
    """The library's logged warnings (kernels not cached on disk, a lost worker's data sent again) as the
    command line's own ``dask-gmm: warning:`` lines, through ``warn``: with no handler of the user's,
    Python's last resort had printed the bare message. They still reach the user's handlers."""

    def __init__(self, warn):
        super().__init__(logging.WARNING)
        self.warn = warn

    def emit(self, record):
        self.warn(record.getMessage())


@contextlib.contextmanager
def _fit_progress(term, n_init):
    """Attach a :class:`_FitProgress` to the estimator's logger for the duration; yields it."""
    logger = logging.getLogger("dask_gmm.mixture")
    handler = _FitProgress(term, n_init)
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # the iterations go to the status line only, not to the root logger too
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate
        term.end_status()


# ------------------------------------------------------------------ argument types
def demo_rows(text):
    """The demo's ``--n-samples``: :func:`count`, where a number below 1 is told the demo's least, 10 rows a
    component (``-n 0`` had been told ">= 1", and ``-n 1`` then "at least 30")."""
    try:
        return count(text)
    except argparse.ArgumentTypeError as exc:
        if not str(exc).startswith("expected a number >= 1"):
            raise
        raise argparse.ArgumentTypeError(f"expected at least 10 rows a component ({10 * DEMO_DEFAULTS['n_components']} "
                                         f"for the default {DEMO_DEFAULTS['n_components']}), got {text!r}") from None


_NUMBER = re.compile(r"\s*[-+]?\d+(_\d+)*(\.(\d+(_\d+)*)?)?([eE][-+]?\d+)?\s*", re.ASCII)


def _decimal(text):
    """``text`` as a Decimal, or None unless it is a plain number in ASCII digits with single underscores
    between them (Decimal alone took ``1__000``, ``_1`` and Arabic-Indic or full-width digits); a sign is
    taken, for the checks of range to say what is wrong with ``-5``."""
    return decimal.Decimal(text.replace("_", "")) if _NUMBER.fullmatch(str(text)) else None


def count(text):
    """A positive whole number written as ``100000000``, ``100_000_000`` or ``1e8``."""
    value = _decimal(text)
    if value is None or value != value.to_integral_value():
        raise argparse.ArgumentTypeError(f"expected a whole number such as 100000, 100_000 or 1e5, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {text!r}")
    if value > _MAX_COUNT:  # before int(): 1e999999999 would take minutes to write out
        raise argparse.ArgumentTypeError(f"expected a number at most 2**62 (about 4.6e18), got {text!r}")
    return int(value)


_MAX_COUNT = 2**62  # as dask_gmm.mixture.MAX_INTEGER


def _bins(text):
    """``--bins``: a count (:func:`count`) of at most :data:`PLOT_MAX_BINS`."""
    value = count(text)
    if value > PLOT_MAX_BINS:
        raise argparse.ArgumentTypeError(f"expected a number from 1 to {PLOT_MAX_BINS}, got {text!r}")
    return value


def _positive_float(text, strict=False):
    """A finite number >= 0 (``strict``: > 0, ``--box`` and ``--covariance-scale``, whose -1 had been told
    ">= 0" and then 0 "> 0.0")."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (strict and value == 0):
        raise argparse.ArgumentTypeError(f"expected a finite number {'>' if strict else '>='} 0, got {text!r}")
    return value


def _scale(text):
    """``--box``, ``--covariance-scale``: a finite number > 0."""
    return _positive_float(text, strict=True)


def _whole_number(text, what="a whole number >= 0", longest=False):
    """A whole number >= 0 (``--max-iter``, ``--seed``; ``what`` names it in the message), written as
    ``100``, ``1_000`` or ``1e2``, as :func:`count` takes them (``1e2`` was refused as no whole number).
    At most 2**62 (``--max-iter 1e30`` had been told it is no whole number), but for digits alone
    with ``longest`` (a seed, of any length)."""
    number = _decimal(text)
    if number is None or number != number.to_integral_value() or number < 0:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    digits_alone = longest and "e" not in text.lower() and "." not in text
    if number > _MAX_COUNT and not digits_alone:  # before int(): 1e999999999 would take minutes to write out
        raise argparse.ArgumentTypeError(f"expected {what} at most 2**62 (about 4.6e18), got {text!r}")
    if len(number.as_tuple().digits) > _LONGEST_SEED:  # Python's own limit on an int written as text
        raise argparse.ArgumentTypeError(f"expected {what} of at most {_LONGEST_SEED:,} digits, got {len(text):,} "
                                         "characters")
    return int(number)


_LONGEST_SEED = 4300  # digits: sys.get_int_max_str_digits()'s default, which a seed's record meets


def _seed(text):
    return _whole_number(text, "a non-negative integer seed", longest=True)


def _int_range(text):
    """'1-8' or '2,4,8' (or a mix) as a sorted list of positive ints, at most :data:`MODEL_MAX_SIZE`."""
    out = set()
    try:
        if not text.isascii():  # int() takes Arabic-Indic and full-width digits
            raise ValueError(text)
        for part in text.split(","):
            lo, dash, hi = part.strip().partition("-")
            lo, hi = int(lo), int(hi if dash else lo)  # '4-' is no range
            if hi < lo:
                raise argparse.ArgumentTypeError(f"the range {part.strip()!r} runs backwards; write it as {hi}-{lo}")
            if hi > MODEL_MAX_SIZE:
                raise argparse.ArgumentTypeError(f"a model file holds at most {MODEL_MAX_SIZE:,} components, "
                                                 f"got {text!r}")
            out.update(range(lo, hi + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a range like 1-8 or a list like 2,4,8, got {text!r}") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"component counts must be >= 1, got {text!r}")
    return sorted(out)


def _model_components(text):
    """:func:`count`, at most :data:`MODEL_MAX_SIZE` (what a model file holds); a range or list (``2-5``,
    ``2,4``) is pointed to ``select``."""
    if re.fullmatch(r"\s*\d[\d_]*\s*([-,]\s*[\d_]*\s*)+", text):
        raise argparse.ArgumentTypeError(f"fit takes one number of components, got {text!r}; to compare several, "
                                         f"run '{PROG} select' with it")
    n = count(text)
    if n > MODEL_MAX_SIZE:
        raise argparse.ArgumentTypeError(f"a model file holds at most {MODEL_MAX_SIZE:,} components, got {text!r}")
    return n


def _covariance_types(text):
    types = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in types if t not in COVARIANCE_TYPES]
    if not types or bad:
        raise argparse.ArgumentTypeError(f"covariance types must be among {', '.join(COVARIANCE_TYPES)}, got {text!r}")
    return types


def _data_path(path):
    """:func:`dask_gmm.io.data_path`, imported when a command runs (not for ``--help``: io imports zarr and dask)."""
    from .io import data_path

    if not str(path).strip():
        raise CLIError("the data path is empty. Give the path or URL of a Zarr store.")
    return data_path(path)


def _not_empty(path, option):
    """A CLIError for an empty path given to ``option`` (it meant the current folder, or nothing)."""
    if path is not None and not str(path).strip():
        raise CLIError(f"{option} is empty. Give a path.")


def _lasting(path):
    """An output ``path``, or a CLIError for a memory:// URL, whose store ends with this process."""
    if "memory://" in str(path).lower():  # also behind a chain, simplecache::memory://
        raise CLIError(f"{path!r} is a memory:// store, which is gone when this command ends. "
                       "Write to a path, or to a URL of lasting storage.")
    return path


# ------------------------------------------------------------------ the parser
_NEGATIVE_NUMBER = re.compile(r"^-\.?\d")  # a value such as -5 or -.5, not an option


def _meant(parser, given):
    """`` (did you mean --x?)`` for the first option of ``given`` close to one of ``parser``'s."""
    known = [o for o in parser._option_string_actions if o.startswith("--")]
    for option in given:
        close = difflib.get_close_matches(option.split("=", 1)[0], known, n=1, cutoff=0.8) if option.startswith("--") else []
        if close:
            return f" (did you mean {close[0]}?)"
    return ""


class _Parser(argparse.ArgumentParser):
    def parse_known_args(self, args=None, namespace=None):
        self._given = list(sys.argv[1:] if args is None else args)  # what error() looks through
        return super().parse_known_args(args, namespace)

    def _unknown_options(self):
        """The options given that this parser does not know, not even as an abbreviation."""
        known = self._option_string_actions
        given = (a.split("=", 1)[0] for a in getattr(self, "_given", ()) if a.startswith("-") and a != "-")
        return [a for a in given if not _NEGATIVE_NUMBER.match(a) and not any(k.startswith(a) for k in known)]

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:  # argparse names the top parser: point to the command's own help
            command = getattr(parsed, "command", None)
            prog = f"{self.prog} {command}" if command else self.prog
            parser = self._subparsers._group_actions[0].choices.get(command) if command else None
            meant = _meant(parser, extras) if parser is not None else ""  # no command: its options unknown yet
            raise _UsageError(f"unrecognized arguments: {' '.join(extras)}{meant} (see '{prog} --help')")
        return parsed

    def error(self, message):
        unknown = self._unknown_options() if message.startswith("the following arguments are required") else []
        if unknown:  # a misspelt option is the likelier fault, and argparse would not name it
            message = f"unrecognized arguments: {' '.join(unknown)}{_meant(self, unknown)}; and {message}"
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def build_parser():
    parser = _Parser(
        prog=PROG,
        description="Gaussian mixture models fitted by EM on data larger than memory (Zarr stores).",
        epilog=f"Run '{PROG} demo' for a one-minute tour; '{PROG} COMMAND --help' for each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    common = _Parser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    cluster = _Parser(add_help=False)
    cluster.add_argument("--scheduler", metavar="ADDRESS",
                         help="address of a running Dask scheduler, e.g. tcp://127.0.0.1:8786 "
                              "(default: local threads)")
    em = _Parser(add_help=False)  # the EM options fit and select share
    em.add_argument("--max-iter", type=_whole_number, default=100, metavar="M",
                    help="most EM iterations of each restart (default 100)")
    em.add_argument("--tol", type=_positive_float, default=1e-3, metavar="T",
                    help="convergence threshold on the mean log-likelihood (default 1e-3)")
    em.add_argument("--n-init", type=count, default=1, metavar="I",
                    help="restarts, run in lockstep; the best is kept (default 1; more guard against a poor "
                         "local optimum, which can make select prefer too many components)")
    em.add_argument("--init-params", choices=INIT_PARAMS, default="kmeans",
                    help="how EM starts: kmeans (k-means|| seeding, then Lloyd passes), k-means++, random (random "
                         "responsibilities) or random_from_data (random rows as means) (default kmeans)")
    em.add_argument("--seed", type=_seed, default=None, metavar="S",
                    help="random seed (default: drawn, then printed and saved in the model file)")
    em.add_argument("--reg-covar", type=_positive_float, default=1e-6, metavar="R",
                    help="added to covariance diagonals (default 1e-6)")

    p = sub.add_parser("generate", parents=[common, cluster], help="write a synthetic Gaussian mixture to a Zarr store",
                       description="Draw a Gaussian mixture (means uniform in [-B, B]^D, covariances "
                                   "S A^T A, A standard Gaussian) or take a fitted model's, and write N rows "
                                   "of it to a Zarr group (arrays X and labels), chunk by chunk. Rerunning an "
                                   "interrupted command finishes it.")
    p.add_argument("path", metavar="PATH", help="Zarr store to write (a folder, or an fsspec URL)")
    p.add_argument("--n-samples", "-n", type=count, required=True, metavar="N", help="rows, e.g. 1e8 or 100_000_000")
    p.add_argument("--n-features", "-d", type=count, default=None, metavar="D", help="features (default 2)")
    p.add_argument("--n-components", "-k", type=count, default=None, metavar="K", help="components (default 3)")
    p.add_argument("--box", type=_scale, default=None, metavar="B",
                   help="means uniform in [-B, B]^D (default 10)")
    p.add_argument("--covariance-scale", type=_scale, default=None, metavar="S",
                   help="covariances S A^T A (default 0.1): larger S, more overlap")
    p.add_argument("--min-separation", type=_positive_float, default=None, metavar="M",
                   help="redraw the means until every pair is at least M apart (default: no minimum)")
    p.add_argument("--model", metavar="MODEL.json", default=None,
                   help="sample from this fitted model (of any covariance type) instead of drawing a mixture: "
                        "it gives D and K")
    p.add_argument("--seed", type=_seed, default=None, metavar="S",
                   help="random seed (default: fresh; an existing store's recorded one, when it resumes or reruns "
                        "without --overwrite)")
    p.add_argument("--chunk-size", type=count, default=None, metavar="C",
                   help="rows per Zarr chunk (default: about 4 MiB of X, 262_144 rows at D=2 float64, or what the "
                        "store at PATH records, when it resumes or reruns without --overwrite: the rows drawn depend "
                        "on it)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64", help="dtype of X (default float64)")
    p.add_argument("--compression", choices=("lz4", "none"), default=None,
                   help="Blosc-LZ4, or none (fits read it faster; random doubles barely compress); a crc32c "
                        "checksum either way (default lz4, or what the store at PATH records, when it resumes or reruns "
                        "without --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace the store that generate wrote at PATH (never other data or files)")
    p.add_argument("--json", action="store_true", help="print a JSON object: what info --json prints, and seconds")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("fit", parents=[common, cluster, em], help="fit a Gaussian mixture to a Zarr store",
                       description="Fit a Gaussian mixture by EM (one pass over the data per iteration) "
                                   "and write it as a JSON model file.")
    p.add_argument("path", metavar="PATH", help="Zarr store (group with array X, or an array)")
    p.add_argument("--n-components", "-k", type=_model_components, required=True, metavar="K",
                   help="number of mixture components")
    p.add_argument("--covariance-type", choices=COVARIANCE_TYPES, default="full", help="(default full)")
    p.add_argument("--checkpoint", metavar="FILE", help="save the EM state each iteration; rerun to resume (a larger --max-iter continues it)")
    p.add_argument("--output", "-o", required=True, metavar="MODEL.json", help="model file to write")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("select", parents=[common, cluster, em], help="choose the number of components by BIC or AIC",
                       description="Fit every candidate (n_components x covariance type) in lockstep, "
                                   "sharing each read of the data, print the criterion table and write "
                                   "the best model.")
    p.add_argument("path", metavar="PATH", help="Zarr store (group with array X, or an array)")
    p.add_argument("--n-components", "-k", type=_int_range, default=list(range(1, 9)), metavar="K",
                   help="candidates, e.g. 1-8 or 2,4,8 (default 1-8)")
    p.add_argument("--covariance-types", type=_covariance_types, default=["full"], metavar="T",
                   help="comma-separated, e.g. full,diag (default full)")
    p.add_argument("--criterion", choices=("bic", "aic"), default="bic", help="(default bic)")
    p.add_argument("--plot", metavar="PNG", help="also draw BIC and AIC against K")
    p.add_argument("--output", "-o", required=True, metavar="MODEL.json", help="model file to write (the best)")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(func=cmd_select)

    p = sub.add_parser("predict", parents=[common, cluster], help="write labels (or probabilities) to a Zarr array",
                       description="Label every row with its most probable component, chunk by chunk "
                                   "into a Zarr array (int), or its component probabilities with --proba.")
    p.add_argument("model", metavar="MODEL.json", help="model file (written by fit or select)")
    p.add_argument("path", metavar="PATH", help="Zarr store of the data")
    p.add_argument("--output", "-o", required=True, metavar="LABELS.zarr", help="Zarr array to write")
    p.add_argument("--proba", action="store_true", help="write (n_samples, K) probabilities instead of labels")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier output of predict (never other data or files)")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("score", parents=[common, cluster], help="mean log-likelihood, BIC and AIC of a model on data",
                       description="Mean log-likelihood per row, BIC and AIC of the model on the data (one pass).")
    p.add_argument("model", metavar="MODEL.json", help="model file (written by fit or select)")
    p.add_argument("path", metavar="PATH", help="Zarr store of the data")
    p.add_argument("--truth", action="store_true",
                   help="also compare the model with the true mixture of a store written by generate: each true "
                        "component's match, the labels' agreement, the true mixture's log-likelihood (two passes more)")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("info", parents=[common], help="describe a Zarr store, a model file or a checkpoint",
                       description="Shape, chunks, dtype, completeness and true parameters of a store, "
                                   "the parameters of a model file, or the fit and runs of a checkpoint. Decodes "
                                   "no chunk of X or labels (of a generated store, reads each chunk file's length "
                                   "and first 16 bytes, and the true parameters).")
    p.add_argument("path", metavar="PATH|MODEL.json",
                   help="a Zarr store (a path or URL), a model file, or a fit's --checkpoint file")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("plot", parents=[common, cluster], help="figures of a model and its data (PNG)",
                       description="Write OUTPUT (the data histogram with the fitted density and component "
                                   "ellipses) and two more figures named from it: -o fit.png writes fit.png, "
                                   "fit-density.png and fit-loglik.png. A folder as OUTPUT gets fit.png, "
                                   "density.png and loglik.png.")
    p.add_argument("model", metavar="MODEL.json", help="model file (written by fit or select)")
    p.add_argument("path", metavar="PATH", help="Zarr store of the data")
    p.add_argument("--output", "-o", required=True, metavar="fit.png", help="PNG file, prefix or folder")
    p.add_argument("--features", type=int, nargs=2, default=None, metavar=("I", "J"),
                   help="the pair of features to show (default 0 1)")
    p.add_argument("--bins", type=_bins, default=200, help=f"histogram bins per axis (default 200, at most {PLOT_MAX_BINS})")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("demo", parents=[common],
                       help="the whole job on a synthetic mixture: seconds (more the first time, as numba compiles)",
                       description="Generate a 3-component 2-D mixture (as the seed notebook), fit it, compare "
                                   "the fit with the truth component by component, write figures and the model.")
    p.add_argument("--n-samples", "-n", type=demo_rows, default=DEMO_DEFAULTS["n_samples"], metavar="N",
                   help=f"rows (default {DEMO_DEFAULTS['n_samples']:_}, at least {10 * DEMO_DEFAULTS['n_components']})")
    p.add_argument("--output-dir", default=DEMO_DEFAULTS["output_dir"], metavar="DIR",
                   help=f"where the store, model and figures go (default ./{DEMO_DEFAULTS['output_dir']})")
    p.add_argument("--seed", type=_seed, default=DEMO_DEFAULTS["seed"], metavar="S",
                   help=f"random seed (default {DEMO_DEFAULTS['seed']})")
    p.set_defaults(func=cmd_demo)
    return parser


def _version():
    from . import __version__

    return __version__


# ------------------------------------------------------------------ shared pieces
@contextlib.contextmanager
def _scheduler(address, term):
    """A distributed.Client connected to ``address`` for the duration, or nothing.

    A scheduler with no workers yet is waited on, as Dask does (workers may still be starting, or
    come from a batch queue), but not silently: a warning says what is awaited."""
    if address is None:
        yield None
        return
    if not address.strip():
        raise CLIError("the scheduler's address is empty. Give one, e.g. tcp://127.0.0.1:8786, "
                       "or leave out --scheduler to run on local threads.")
    from distributed import Client

    from . import _cluster

    _check_address(address)
    _quiet_lost_gathers()
    quiet = _QuietLogger("distributed")  # its client logs each failed reconnection with a traceback
    term.status(f"connecting to the Dask scheduler at {address} ...")
    try:
        _check_answers(address)
        client = Client(address, set_as_default=True)
    except (OSError, TimeoutError) as exc:
        raise CLIError(f"could not connect to the Dask scheduler at {address!r} ({exc}). "
                       "Check the address and that the scheduler is running.") from None
    try:
        try:
            workers = _worker_count(client)
            if not workers:
                if not term.quiet:
                    term.warn(f"the Dask scheduler at {address} has no workers yet; waiting for one to join "
                              f"(start one with 'dask worker {address}', or press Ctrl-C to stop)")
                client.wait_for_workers(1)
                workers = _worker_count(client)
        except OSError as exc:  # the scheduler went away: the client's reconnection gave up (TimeoutError too)
            raise CLIError(f"lost the Dask scheduler at {address} while waiting for workers "
                           f"({type(exc).__name__}: {exc}). Check that it is running, then rerun.") from None
        try:
            _cluster.refuse_workers_without_dask_gmm(client, f"the Dask scheduler at {address}")  # one line, before any work
            term.status(f"connected to {address} ({workers} worker{'s' if workers != 1 else ''})")
            term.end_status()
            with quiet, (contextlib.nullcontext() if term.quiet else _WorkersWatch(client, address, term)):
                yield client
        except Exception as exc:
            said = _cluster_failure(exc, address)
            if said is None:
                raise
            raise CLIError(said) from exc
    finally:
        with quiet:
            client.close()


def _paused_count(client):
    """How many workers of the scheduler of ``client`` are paused now (by their memory), as its
    ``scheduler_info`` lists them (0 where the client's refresh emptied that list meanwhile)."""
    workers = client.scheduler_info(n_workers=-1).get("workers") or {}
    return sum(w.get("status") == "paused" for w in workers.values())


def _worker_count(client):
    """How many workers the scheduler of ``client`` has now. Its ``n_workers``, fetched fresh: the
    ``workers`` of ``scheduler_info`` are the client's shared copy, which the client's own refresh
    (every 2 s, without workers) can empty between the fetch and the read."""
    return int(client.scheduler_info(n_workers=0).get("n_workers", 0))


class _WorkersWatch:
    """Within the block, a warning on ``term`` each time the scheduler at ``address`` is left with no
    workers, or with every worker paused (its memory past distributed's pause threshold): the command
    then waits for one to join, or for memory, as Dask does (it used to, silently: a review's workers of
    200 MB, paused once they had loaded dask_gmm, left a fit without a word until it was killed). Asked
    every ``interval`` seconds on a thread of its own, until the block ends (a scheduler that is gone
    answers with the last count it gave; the command itself reports it lost)."""

    def __init__(self, client, address, term, interval=2.0):
        self.client, self.address, self.term, self.interval = client, address, term, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="dask-gmm-workers-watch", daemon=True)

    def _watch(self):
        had, ran = True, True
        while not self.stop.wait(self.interval):
            try:
                workers = _worker_count(self.client)
                paused = _paused_count(self.client) if workers else 0
            except Exception:  # closing
                return
            if self.stop.is_set():
                return
            if had and not workers:
                self.term.warn(f"every worker of the Dask scheduler at {self.address} has gone; waiting for one "
                               f"to join (start one with 'dask worker {self.address}', or press Ctrl-C to stop)")
            running = paused < workers
            if ran and workers and not running:
                self.term.warn(f"every worker of the Dask scheduler at {self.address} is paused: its memory is past "
                               "distributed's pause threshold (distributed.worker.memory.pause, 80 % of its "
                               "--memory-limit); waiting for memory (give the workers more, or press Ctrl-C to stop)")
            had, ran = workers > 0, running or not workers

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=1.0)  # not longer: a question under way to a scheduler that is gone


class _QuietLogger:
    """Within the block, the logger ``name`` and its children (distributed sets their levels one by
    one) say only CRITICAL records: a command's errors are its one line (a failure of the cluster
    included, :func:`_cluster_failure`)."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        names = [n for n in logging.root.manager.loggerDict if n == self.name or n.startswith(self.name + ".")]
        self.levels = {n: logging.getLogger(n).level for n in names + [self.name]}
        for n in self.levels:
            logging.getLogger(n).setLevel(logging.CRITICAL)

    def __exit__(self, *exc):
        for n, level in self.levels.items():
            logging.getLogger(n).setLevel(level)


def _check_answers(address):
    """Connect to ``address`` and exchange distributed's handshake, then hang up; a TimeoutError or
    OSError otherwise. distributed gives up connecting after its connect timeout
    (``distributed.comm.timeouts.connect``), which ``distributed.Client`` bounds, but not the
    handshake that follows: given a port where something else listens and waits for its own kind of
    request (an HTTP server, as on the dashboard's port), it waited for ever. Here the whole
    exchange gets twice that timeout, on a loop of its own (a caller's running loop is left alone)."""
    import asyncio

    import dask.config
    from dask.utils import parse_timedelta
    from distributed.comm import connect

    timeout = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), default="seconds")

    async def handshake():
        try:
            comm = await connect(address, timeout=timeout)  # an OSError after timeout where nothing listens
        except (OSError, asyncio.TimeoutError, asyncio.CancelledError):
            raise
        except Exception as exc:  # bytes that are no handshake: an SSH banner's, read as a frame of 2.8 EiB
            raise OSError(f"what answered is not a Dask scheduler ({type(exc).__name__}: {exc}); is this another "
                          "program's port?") from None
        await comm.close()

    async def bounded():
        try:
            await asyncio.wait_for(handshake(), 2 * timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no Dask scheduler answered within {2 * timeout:g} s; is this the dashboard's "
                               "port, or another program's?") from None

    failed = []

    def run():
        try:
            asyncio.run(bounded())
        except BaseException as exc:  # raised in the caller's thread
            failed.append(exc)

    # a daemon thread: Ctrl-C meanwhile does not wait for it (an executor's shutdown waited up to the bound)
    thread = threading.Thread(target=run, name="dask-gmm-handshake", daemon=True)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


def _check_address(address):
    """A CLIError unless ``address`` is a scheduler address this command can use: ``tcp://HOST:PORT``
    (or ``HOST:PORT``). Others failed late or in distributed's words (a TLS address without the
    security settings, an unknown protocol, a port out of range, ``tcp//...``)."""
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        host, port = parse_host_port(location)
    except (ValueError, TypeError):
        scheme, host, port = None, None, None
    if scheme != "tcp" or not host or "/" in host or not isinstance(port, int) or not 0 < port < 65536:
        raise CLIError(f"{address!r} is not a scheduler address {PROG} can use: give tcp://HOST:PORT "
                       "(as 'dask scheduler' prints it; TLS and other protocols need a distributed.Client "
                       "made in Python, which dask_gmm then uses).")


def _cluster_failure(exc, address):
    """What to say of ``exc``, raised while a command ran on the cluster at ``address``, when it is
    the cluster's failure (distributed's own exceptions, or the library's :class:`_cluster.SchedulerLost`),
    else None."""
    from ._cluster import SchedulerLost

    if isinstance(exc, SchedulerLost):  # the library's words of it, or of what distributed raised
        exc = exc.__cause__
        why = "" if exc is None else f" ({type(exc).__name__}: {exc})"
        return (f"the Dask cluster at {address} failed{why}: its scheduler or the connection to it is gone. "
                "Check the scheduler and the workers' logs, then rerun.")
    if not (type(exc).__module__ or "").startswith("distributed"):
        return None
    if type(exc).__name__ == "KilledWorker":
        return (f"Dask workers died running a task of this command ({exc}); they may be short of memory. "
                "Check the workers' logs, or give them more memory.")
    return (f"the Dask cluster at {address} failed ({type(exc).__name__}: {exc}): its scheduler or the "
            "connection to it may be gone. Check the scheduler and the workers' logs, then rerun.")


class _LostGatherFilter(logging.Filter):
    """Drops asyncio's "Task exception was never retrieved" for distributed's internal ``AllExit``,
    which a client closed mid-gather (Ctrl-C, SIGTERM) leaves behind; it is not an error of ours."""

    def filter(self, record):
        exc = record.exc_info[1] if record.exc_info else None
        return type(exc).__name__ != "AllExit"


def _quiet_lost_gathers():
    logger = logging.getLogger("asyncio")
    if not any(isinstance(f, _LostGatherFilter) for f in logger.filters):
        logger.addFilter(_LostGatherFilter())


#: Options whose outputs are local files (models, checkpoints, figures, the demo's folder), by
#: argparse name; ``predict --output`` alone writes a Zarr store, which may be a URL.
_LOCAL_OUTPUTS = {"output": "--output", "checkpoint": "--checkpoint", "plot": "--plot", "output_dir": "--output-dir"}


def _local_outputs(args):
    """``file://`` and ``local://`` URLs of local outputs made their paths, in ``args``; any other URL a
    CLIError (it would have been written to a local folder named after its scheme, ``./s3:/...``), and
    so is ``-``, which names standard output to other tools (``predict -o -`` made a store named ``-``)."""
    from . import io

    outputs = {**_LOCAL_OUTPUTS, "path": "the store's PATH"} if args.command == "generate" else _LOCAL_OUTPUTS
    for attr, option in outputs.items():
        value = getattr(args, attr, None)
        if value is not None and str(value) == "-":
            raise CLIError(f"{option} - names no file: {PROG} writes its outputs to files, not to standard output. "
                           "Give a path (./- for a file named '-').")
        stores = attr in ("output", "path") and args.command in ("predict", "generate")  # may be URLs
        if value is None or "://" not in str(value) or stores:
            continue
        if str(value).split("://", 1)[0].lower() not in ("file", "local"):
            raise CLIError(f"{option} {value!r} is a URL, but {PROG} writes it to local files only. "
                           "Give a local path (or a file:// URL).")
        folder = "/" if str(value).endswith("/") else ""  # kept: a trailing / makes plot's --output a folder
        setattr(args, attr, io.data_path(str(value)) + folder)


def _check_folder(path, what, create=False):
    """A CLIError unless the folder that is to hold ``path`` (local) exists and may be written; with
    ``create`` (figures, whose folders are made), unless its nearest existing folder may be written."""
    from ._files import folder_refusal

    said = folder_refusal(path, create)
    if said:
        raise CLIError(f"cannot write the {what} to {path!r}: {said}")


def _of_output(what, exc):
    """The library's refusal ``exc`` of a file as the refusal of the command's ``what`` (model, figure)."""
    said = str(exc)
    return ("cannot write the " + what + " to " + said.removeprefix("Cannot write ") if said.startswith("Cannot write ")
            else f"the {what}: {said}")


def _check_writable(path, what, data):
    """Fail before the work, not after it, when ``path`` cannot be written, or would overwrite the
    input ``data`` (a local path or URL) or a file that is not one of ours (for a model file)."""
    from ._files import check_file_path
    from .modelfile import replaceable_model_file

    if not str(path).strip():
        raise CLIError(f"the {what}'s path is empty. Give a file name.")
    _check_folder(path, what)
    try:
        check_file_path(path)  # a folder, a path ending in '/', a device or FIFO
    except ValueError as exc:
        raise CLIError(_of_output(what, exc)) from None
    _refuse_inside_input(path, f"the {what}", data)
    try:
        replaceable = what != "model" or replaceable_model_file(path)
    except ValueError as exc:  # unreadable
        raise CLIError(f"the {what}: {exc}") from None
    if not replaceable:
        raise CLIError(f"{path!r} exists and is not a {PROG} model file; {PROG} replaces only its own "
                       "model files. Choose another path, or remove it yourself.")


def _distinct_outputs(*outputs):
    """A CLIError when two of a command's outputs, ``(what, path)`` pairs (path None: not asked
    for), are one file (links resolved): the second would replace the first."""
    seen = {}
    for what, path in outputs:
        if path is None:
            continue
        key = os.path.realpath(path)
        if key in seen:
            raise CLIError(f"the {seen[key]} and the {what} would both be written to {path!r}. "
                           "Give them different paths.")
        seen[key] = what


def _refuse_inside_input(path, what, data, files=True):
    """A CLIError when ``path`` is, holds or lies inside the input ``data`` (or the Zarr group holding
    it), or lies inside any other Zarr store: anywhere in it for a file (``files``), inside an array
    for a Zarr array (which a group may hold)."""
    from . import _files

    try:  # a file replaces a link at its path
        _files.refuse_output_inside(path, what, data, arrays_only=not files, follow_link=not files)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def _check_figures(paths, data):
    """Fail before the work when a figure would land inside the input ``data`` or replace a file
    that is not a PNG image (an existing PNG of that name is replaced, as any plotting tool does)."""
    from ._files import check_file_path, holds_other_than_png

    for p in paths:
        _check_folder(p, "figure", create=True)
        _refuse_inside_input(p, "the figure", data)
        if not os.path.isdir(p):  # a folder is named below, with the other files not to replace
            try:
                check_file_path(p)
            except ValueError as exc:
                raise CLIError(_of_output("figure", exc)) from None
        if os.path.isdir(p):  # was called "not a PNG image", as if a file
            raise CLIError(f"{p!r} is a folder, not a PNG file to write a figure to. Choose another path, or move "
                           "the folder away.")
        if holds_other_than_png(p):
            raise CLIError(f"{p!r} exists and is not a PNG image; {PROG} replaces only PNG files with its "
                           "figures. Choose another path, or remove it yourself.")


def _load_model(path):
    from ._files import local_file_path
    from .modelfile import load_model

    path = local_file_path(path, "The model file")
    if "://" not in path and not os.path.exists(path):  # a URL: load_model says model files are local
        raise CLIError(f"no model file at {path!r}. Check the path (write one with '{PROG} fit').")
    if os.path.isdir(path):
        raise CLIError(f"{path!r} is a folder, not a model file. Pass the MODEL.json written by '{PROG} fit'.")
    return load_model(path)


def _open_model_data(path):
    """:func:`_open_data`, refused when its features are more than a model file holds (before any fit)."""
    X = _open_data(path)
    if X.shape[1] > MODEL_MAX_SIZE:
        raise CLIError(f"{path!r} has {X.shape[1]:,} features; a model file holds at most {MODEL_MAX_SIZE:,}, "
                       "so no fitted model could be saved. Fit in Python (GaussianMixture) to keep it in memory.")
    return X


def _open_data(path):
    from . import io
    from ._outputs import PREDICT_ATTR, predicted
    from .generate import TRUE_ARRAYS

    if "://" not in path and not os.path.exists(path):
        raise CLIError(f"no Zarr store at {path!r}. Check the path (create one with '{PROG} generate').")
    arr = io.open_zarr(path)
    if arr.ndim != 2:  # in the command line's words, not scikit-learn's advice to reshape
        raise CLIError(f"{path!r} holds an array of shape {arr.shape}, not data of shape (rows, features). "
                       "Pass a store of X (or a group with X); a single feature is stored as shape (rows, 1).")
    if arr.shape[0] == 0 or arr.shape[1] == 0:  # scikit-learn's words named neither the store nor the minimum
        what = "rows" if arr.shape[0] == 0 else "features"
        raise CLIError(f"{path!r} holds no {what} (an array of shape {arr.shape}). Pass a store of data.")
    if predicted(arr):  # a slip of -o for the data's path: a plausible model of probabilities, without a word
        record = arr.attrs[PREDICT_ATTR]
        warnings.warn(f"{path!r} is an output of '{PROG} predict' (of the data {record.get('data')!r}), "
                      "not data; it is read as data as asked. Was the data's path meant?", stacklevel=2)
    elif any(io.holding_status(arr, name) for name in TRUE_ARRAYS):
        warnings.warn(f"{path!r} is an array of a store that '{PROG} generate' wrote, not its data (X); it is "
                      "read as data as asked. Was the store's own path meant?", stacklevel=2)
    with warnings.catch_warnings():  # the command's own pass warns once of what it finds (a rechunk)
        warnings.simplefilter("ignore")
        return io.as_dask_array(arr)


def _check_match(model, X, model_path, data_path):
    d = model.means_.shape[1]
    if X.shape[1] != d:
        raise CLIError(f"the model {model_path!r} has {_count(d, 'feature')} but the data {data_path!r} have "
                       f"{X.shape[1]}. Use the model fitted to these data.")


def _lower_bound_text(lower_bound):
    """A model's ``lower_bound_`` as fit and info print it."""
    if not np.isfinite(lower_bound):
        return "not computed (no iteration ran)"
    return f"{lower_bound:.6f} (mean log-likelihood per row, at the last iteration's start)"


def _count(n, word):
    """``n`` and ``word``, plural unless n is 1: '1 feature', '2,000 rows'."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _fmt_seconds(s):
    if s < 1:
        return f"{s:.2f} s"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def _fmt_num(x, precision=4):
    """``1.2346``; a value that fixed point would show as 0 or as hundreds of digits in exponent
    form (``1.2346e-150``)."""
    fixed = x == 0 or 10.0 ** -precision <= abs(x) < 1e9 or not np.isfinite(x)
    return f"{x:.{precision}f}" if fixed else f"{x:.{precision}e}"


def _fmt_vec(v, precision=4):
    """``[1.2346, -0.0012]``, each value as :func:`_fmt_num`."""
    return "[" + ", ".join(_fmt_num(x, precision) for x in np.asarray(v).ravel()) + "]"


def _fmt_cov(c):
    """A (d, d) covariance in full for d <= 3, else its diagonal."""
    c = np.asarray(c)
    if c.shape[0] <= 3:
        return "[" + ", ".join(_fmt_vec(row) for row in c) + "]"
    return "diag" + _fmt_vec(np.diag(c)) + " (variances)"


def _full_covariances(model):
    from ._covariance import as_full_covariances

    K, d = model.means_.shape
    return as_full_covariances(model.covariances_, model.covariance_type, K, d)


def _model_lines(weights, means, covs, indent="  "):
    """A table of a mixture's weights (K,), means (K, d) and full covariances (K, d, d)."""
    K, d = np.shape(means)
    lines = [f"{indent}{'k':>2}  {'weight':>8}  mean{'':<{max(0, 8 * d - 2)}}  covariance"]
    for k in range(K):
        lines.append(f"{indent}{k:>2}  {_fmt_num(weights[k]):>8}  {_fmt_vec(means[k]):<{8 * d + 2}}  "
                     f"{_fmt_cov(covs[k])}")
    return lines


def sparkline(values, width=40):
    """A one-line picture of a sequence (Unicode blocks, or ASCII when the terminal cannot show them)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return ""
    if v.size > width:
        v = v[np.linspace(0, v.size - 1, width).round().astype(int)]
    chars = _SPARK
    try:
        chars.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        chars = "_.-~=*#@"
    lo, hi = v.min(), v.max()
    flat = hi - lo <= 1e-12 * max(abs(lo), abs(hi))  # rounding noise (a converged curve's last ulp): a flat line
    idx = np.zeros(v.size, int) if flat else np.round((v - lo) / (hi - lo) * (len(chars) - 1)).astype(int)
    return "".join(chars[i] for i in idx)


def _curve_lines(lower_bounds):
    """A sparkline and a few values of the log-likelihood curve (a far-off starting value left out of the line)."""
    lb = [float(v) for v in lower_bounds]
    if not lb:
        return ["     (no iterations recorded)"]
    n = len(lb)
    rest = np.asarray(lb[1:])
    skip_first = rest.size >= 2 and (rest.min() - lb[0]) > 5 * max(rest.max() - rest.min(), 1e-12)
    spark = sparkline(rest if skip_first else lb)
    note = f"{n} iterations" + ("; iteration 1 is off this scale" if skip_first else "")
    picks = sorted({0, 1, 2, n // 2, n - 2, n - 1} & set(range(n)))
    parts, prev = [], None
    for i in picks:
        if prev is not None and i > prev + 1:
            parts.append("...")
        parts.append(f"{i + 1}: {lb[i]:.6f}")
        prev = i
    return [f"     {spark}  ({note})", "     " + ", ".join(parts)]


# ------------------------------------------------------------------ commands
def _store_state(path):
    """The ``store_info`` of the store that generate is to resume at ``path`` (None for anything else,
    which generate itself judges)."""
    from .generate import store_info

    try:
        info = store_info(path)
    except (ValueError, OSError):
        return None
    return info if info["status"] in ("complete", "incomplete", "damaged") else None


#: The arguments of generate_mixture and of GaussianMixture that the command line's options set.
GENERATE_ARGUMENTS = ("n_samples", "n_features", "n_components", "chunk_size", "dtype", "compression", "random_state",
                      "box", "covariance_scale", "min_separation")
#: generate's options of a drawn mixture: a --model gives the mixture instead.
DRAWN = ("n_features", "n_components", "box", "covariance_scale", "min_separation")
FIT_ARGUMENTS = ("max_iter", "tol", "n_init", "init_params", "random_state", "n_components", "covariance_type",
                 "reg_covar")


def _option_words(message, names):
    """The library's argument ``names`` in ``message`` as the command line's options (``n_samples``:
    ``--n-samples``, ``max_iter=17``: ``--max-iter 17``, ``overwrite=True``: ``--overwrite``), but
    inside quoted paths; the library's advice to regenerate a corrupt store (:data:`dask_gmm._store.REGENERATE`)
    as the command's."""
    from ._store import REGENERATE

    message = message.replace(REGENERATE, f"(a store of '{PROG} generate': delete that chunk's file and rerun the same "
                                          "command, without --overwrite: it writes the chunk again from the seed the "
                                          "store records)")
    parts = re.split(r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""", message)  # repr quotes a path so
    for i in range(0, len(parts), 2):  # the unquoted parts
        part = parts[i].replace("overwrite=True", "--overwrite")
        for name in names:
            option = "--seed" if name == "random_state" else "--" + name.replace("_", "-")
            part = re.sub(rf"\b{name}\b(=)?", lambda m: option + (" " if m.group(1) else ""), part)
        parts[i] = part
    return "".join(parts)


def _store_words(message, command):
    """A library ``message`` in the command line's words (:func:`_option_words`); a damaged store's
    "Pass overwrite=True to replace it." said by another command than generate as generate's: info,
    score and predict had advised an --overwrite of their own (a review)."""
    message = _option_words(message, ())
    if command == "generate":
        return message
    return message.replace("Pass --overwrite to replace it.", f"Regenerate it: '{PROG} generate' with --overwrite.")


def _fit_words(exc):
    """The message of a fit's ValueError ``exc`` with the arguments named as the options that set them
    (an unset ``random_state``, None in a checkpoint's message, as --seed "not given")."""
    from ._checkpoint import OWN_CHECKPOINT

    message = str(exc).replace("(None then, ", "(not given then, ").replace(", None now)", ", not given now)")
    return _option_words(message.replace(OWN_CHECKPOINT, " (each fit needs its own)"), FIT_ARGUMENTS)


def _check_rows(path, n, n_components):
    """Refuse data of fewer than 2 rows, or of fewer rows than the largest of ``n_components``, naming
    the option to change (the library's message names its arguments)."""
    if n < 2:
        raise CLIError(f"{path!r} has {_count(n, 'row')}; a mixture is fitted to 2 rows or more.")
    if n_components > n:
        raise CLIError(f"{path!r} has {_count(n, 'row')}, fewer than the {n_components} components asked "
                       f"for; pass --n-components up to {n}.")


def cmd_generate(args, term):
    import inspect

    from .generate import _write_mixture, generate_mixture  # _write_mixture: its work without its model (no scikit-learn)

    given = [name for name in DRAWN if getattr(args, name) is not None]
    if args.model is not None and given:  # the library ignores them: not silently here
        raise CLIError(f"--model gives the mixture, so {', '.join(_option_words(n, DRAWN) for n in given)} "
                       f"would be ignored. Leave {'it' if len(given) == 1 else 'them'} out, or leave out --model.")
    defaults = inspect.signature(generate_mixture).parameters  # the library's, for the options not given
    drawn = {name: getattr(args, name) if name in given else defaults[name].default for name in DRAWN}
    _refuse_file_suffix(args.path, "PATH", "data.zarr", "numpy.asarray(zarr.open_group(path)['X'])")
    model = None if args.model is None else _load_model(args.model)
    path = _lasting(_data_path(args.path))
    before = None if args.overwrite else _store_state(path)
    t0 = time.perf_counter()
    with _scheduler(args.scheduler, term), _dask_progress(term):
        try:
            true = _write_mixture(path, args.n_samples, **drawn, chunk_size=args.chunk_size, dtype=args.dtype,
                                 random_state=args.seed, overwrite=args.overwrite, model=model, attributes=None,
                                 compression=args.compression)
        except ValueError as exc:  # the library's advice, in the command line's words
            message = str(exc).removeprefix("generate_mixture: ")
            message = re.sub(r"(with different arguments \((?:[^()]*, )?)model(( differs?|,))", r"\1--model\2",
                             message)  # the word "model" is the option's only there
            for name in GENERATE_ARGUMENTS:  # an argument quoted as a name ('n_components'), not a path
                message = message.replace(f"'{name}'", name)
            message = _option_words(message, GENERATE_ARGUMENTS)  # _store.REGENERATE's words first
            raise CLIError(message.replace("generate_mixture", f"'{PROG} generate'")) from None
    seconds = time.perf_counter() - t0
    if args.json:
        found = None if before is None else before["status"]  # a fresh store, a rerun's nothing, a resume
        term.out(_json_line({**_store_json(path), "path": args.path, "seconds": seconds, "found": found}, default=str))
        return 0
    K, d = true[1].shape  # the means
    what = f"{_count(args.n_samples, 'row')} x {_count(d, 'feature')} ({_count(K, 'component')}, {args.dtype})"
    if before is None:
        term.out(f"wrote {what} to {args.path} in {_fmt_seconds(seconds)}")
    elif before["status"] == "complete":  # a rerun: its chunks are all there, and are not read again
        term.out(f"{args.path} already holds {what}: nothing written (to rewrite it, pass --overwrite)")
    elif before["missing_chunks"] == before["cut_short_chunks"] == 0 and not before["lost_true"]:  # killed after
        term.out(f"{args.path} held every chunk of {what}: marked it complete, nothing else written")  # its last chunk
    else:  # resumed, or mended: only the chunks (and true parameters' arrays) it lacked were written
        lacked = ", ".join([f"{_count(n, 'chunk')} of {name}" for name, n in before["missing_chunks_of"].items() if n]
                           + [f"{_count(n, 'chunk')} of {name} cut short" for name, n in
                              before["cut_short_chunks_of"].items() if n]
                           + [f"the array {name}" for name in before["lost_true"]])
        chunks = _count(-(-args.n_samples // before["chunks"][0]), "chunk")  # X's and labels' (not a true array's)
        term.out(f"wrote what {args.path} lacked ({lacked}; X and labels hold {chunks} each) of {what} in "
                 f"{_fmt_seconds(seconds)}")
    if args.seed is None:  # drawn (a new store's), or the one a rerun found recorded
        from . import io

        seed = io.generator_record(io.open_node(path), path)["seed"]
        term.out(f"seed {seed}" + (f"  (drawn: --seed {seed} repeats this store)" if before is None else ""))
    return 0


class FitTimes:
    """Wall time of a fit: total, and the EM iterations alone (the rest is initialisation)."""

    def __init__(self, total, iterations, resumed=False, compiled=False):
        self.total, self.iterations, self.resumed, self.compiled = total, list(iterations), resumed, compiled

    @property
    def em(self):
        return float(sum(self.iterations))

    @property
    def init(self):
        return max(0.0, self.total - self.em)

    @property
    def per_iteration(self):
        """The median iteration's seconds: numba's compilation, on a machine's first fit, falls in
        the first iteration (0.9 s against 0.005 for the others), and a mean spread it over them all."""
        return float(np.median(self.iterations)) if self.iterations else float("nan")

    def __str__(self):
        if not self.iterations:
            return _fmt_seconds(self.total)
        n = len(self.iterations)
        if n == 2:  # both: their mean said "at 6.235 s each" of a first pass of 12 s compiling and one of 0.5 (a review)
            each = "of {:.3f} s and {:.3f} s".format(*self.iterations)
        else:
            each = ("of {:.3f} s" if n == 1 else "at {:.3f} s each (median)").format(self.per_iteration)
        compiled = "; compiling the kernels included (numba caches them on disk where it can)" if self.compiled else ""
        return (f"{_fmt_seconds(self.total)} ({'resuming' if self.resumed else 'initialisation'} "
                f"{_fmt_seconds(self.init)}, {_count(n, 'EM iteration')} {each}{compiled})")


def _fit(path, term, **kwargs):
    """Fit with a progress line; returns (model, FitTimes). Shared by fit and demo.

    The estimator gets verbose=1 and verbose_interval=1 only to report each
    iteration to the handler; they do not change the numbers, and the
    returned model has them reset to the defaults.
    """
    from ._files import blank
    from .mixture import GaussianMixture

    with _fit_progress(term, kwargs.get("n_init", 1)) as progress:
        gm = GaussianMixture(verbose=1, verbose_interval=1, **kwargs)
        ckpt = kwargs.get("checkpoint")
        resumed = ckpt is not None and os.path.isfile(ckpt) and not blank(ckpt)  # a blank one: none yet
        term.status("fit: resuming from the checkpoint ..." if resumed else f"fit: initialising ({gm.init_params}) ...")
        compiled = _compiled_count()
        t0 = time.perf_counter()
        try:
            gm.fit(path)
        except ValueError as exc:  # the advice in the command line's words ("increase --reg-covar")
            raise CLIError(_fit_words(exc)) from None
        total = time.perf_counter() - t0
    gm.set_params(verbose=0, verbose_interval=10)
    return gm, FitTimes(total, progress.seconds, resumed, _compiled_count() > compiled)


def _settle_zarr():
    """:func:`dask_gmm.io.settle_zarr`, where :mod:`dask_gmm.io` has loaded (the command's own work
    interrupted). Never imported here: a signal as it loaded (numba's import, after zarr's) left a
    library half loaded, and importing it again raised an AttributeError from that, and a SIGTERM
    ended as a Ctrl-C (7 times in 150 SIGTERMs 1.3-1.6 s into ``generate``)."""
    settle_zarr = getattr(sys.modules.get(f"{__package__}.io"), "settle_zarr", None)
    if settle_zarr is not None:
        settle_zarr()


def _unwound(exc):
    """After the signal ``exc`` (Ctrl-C, SIGTERM) ended a command: zarr's event loop settled
    (:func:`_settle_zarr`), and the interrupted frames dropped where Python's warning of a coroutine
    never awaited is not shown. A coroutine of zarr's, made and not yet run when the signal came, is
    freed with them, and the warning had followed the one-line error (CI, a Ctrl-C 1.6 s into
    ``generate``)."""
    _settle_zarr()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"coroutine .* was never awaited", category=RuntimeWarning)
        while exc is not None:
            exc.__traceback__, exc = None, exc.__context__
        gc.collect()  # frames in reference cycles too


def _compiled_count():
    """Kernels compiled so far in this process (numba's first run on a machine), 0 without numba."""
    from . import _kernels, _numba

    return _numba.compiled_count() if _kernels.USE_NUMBA else 0


def _check_lockstep(candidates, n_init, advice):
    """Refuse more than :data:`LOCKSTEP_MAX_COMPONENTS` components in all, each of ``candidates``
    (a list of component counts) with ``n_init`` restarts, before any work."""
    total = sum(candidates) * n_init
    if total > LOCKSTEP_MAX_COMPONENTS:
        raise CLIError(f"that is {total:,} components fitted together in every pass, more than "
                       f"{LOCKSTEP_MAX_COMPONENTS:,}; {advice}.")


def _seed_of(args):
    """``(seed, drawn)``: ``--seed``, else the seed a fit's existing checkpoint records (which the
    resumed fit needs: None for one begun without), else a fresh one, printed and saved with the
    model so that the fit can be repeated (a run without ``--seed`` could not be)."""
    if args.seed is not None:
        return args.seed, False
    if getattr(args, "checkpoint", None) is not None:
        from ._checkpoint import recorded_seed

        found, seed = recorded_seed(args.checkpoint)
        if found:
            return seed, False
    return secrets.randbits(32), True


def _seed_line(seed, drawn):
    """The summary's line of the fit's seed."""
    return f"  seed               {seed}" + (f"  (drawn: --seed {seed} repeats this fit)" if drawn else "")


def cmd_fit(args, term):
    from .modelfile import save_model

    _check_lockstep([args.n_components], args.n_init, "pass a smaller --n-init")
    path = _data_path(args.path)
    X = _open_model_data(path)
    _check_rows(path, X.shape[0], args.n_components)
    _check_writable(args.output, "model", path)
    _distinct_outputs(("model", args.output), ("checkpoint", args.checkpoint))
    if args.checkpoint is not None:
        _check_writable(args.checkpoint, "checkpoint", path)
    seed, drawn = _seed_of(args)
    with _scheduler(args.scheduler, term):
        gm, times = _fit(path, term, n_components=args.n_components,
                           covariance_type=args.covariance_type, tol=args.tol, reg_covar=args.reg_covar,
                           max_iter=args.max_iter, n_init=args.n_init, init_params=args.init_params,
                           random_state=seed,
                           checkpoint=None if args.checkpoint is None else os.path.abspath(args.checkpoint))
    save_model(gm, args.output)
    n, d = X.shape
    if args.json:
        term.out(_json_line({"n_components": gm.n_components, "covariance_type": gm.covariance_type,
                             "n_samples": n, "n_features": d, "n_iter": gm.n_iter_, "converged": gm.converged_,
                             "lower_bound": gm.lower_bound_, "seed": seed, "seconds": times.total, "seconds_em": times.em,
                             "resumed": times.resumed, "checkpoint": args.checkpoint, "model": args.output}))
        return 0
    term.out(f"fitted {_count(gm.n_components, 'component')} ({gm.covariance_type} covariance) to "
             f"{_count(n, 'row')} x {_count(d, 'feature')}")
    term.out(f"  iterations         {gm.n_iter_}  ({'converged' if gm.converged_ else 'NOT converged'}, tol {gm.tol:g})")
    term.out(f"  lower bound        {_lower_bound_text(gm.lower_bound_)}")
    if seed is not None:  # None: a checkpoint's fit begun without one
        term.out(_seed_line(seed, drawn))
    term.out(f"  time               {times}")
    if args.checkpoint is not None:
        resumed = ""
        if times.resumed:  # with restarts, the iterations before were the other restarts' too: not counted
            resumed = (f"  (resumed: {_count(gm.n_iter_ - len(times.iterations), 'iteration')} made before this run)"
                       if args.n_init == 1 else f"  (resumed: its {args.n_init} restarts' iterations before this run)")
        term.out(f"  checkpoint         {args.checkpoint}{resumed}")
    term.out(f"  model              {args.output}")
    return 0


def cmd_select(args, term):
    from .modelfile import save_model
    from .selection import select_model

    _check_lockstep(args.n_components * len(set(args.covariance_types)), args.n_init,
                    "ask for fewer candidates (a list such as -k 2,4,8,16,32 spans a wide range) or a smaller --n-init")
    path = _data_path(args.path)
    _check_rows(path, _open_model_data(path).shape[0], max(args.n_components))
    _check_writable(args.output, "model", path)
    _not_empty(args.plot, "--plot")
    _distinct_outputs(("model", args.output), ("figure", args.plot))
    if args.plot:
        _check_figures([args.plot], path)
        if not args.plot.lower().endswith(".png"):  # PNG bytes were written to crit.jpg, or to s11
            raise CLIError(f"--plot writes a PNG image; give it a file name ending in .png, got {args.plot!r}.")
        try:
            _plot_module().require_matplotlib()  # before any work: it was found missing after the fit
        except ImportError as exc:
            raise CLIError(str(exc)) from None
    seed, drawn = _seed_of(args)
    with _scheduler(args.scheduler, term):
        term.status(f"select: fitting {len(set(args.n_components)) * len(set(args.covariance_types))} candidates "
                    "in lockstep ...")
        t0 = time.perf_counter()
        try:
            sel = select_model(path, n_components=args.n_components, covariance_types=args.covariance_types,
                               criterion=args.criterion, n_init=args.n_init, max_iter=args.max_iter, tol=args.tol,
                               random_state=seed, init_params=args.init_params, reg_covar=args.reg_covar)
        except ValueError as exc:
            raise CLIError(_fit_words(exc)) from None
        seconds = time.perf_counter() - t0
    term.end_status()
    # the figure, then the model, before any output: a reader closing the pipe (`| head -1`) or a
    # signal at the table had left the new model beside an earlier run's figure, or none
    figure = _plot_module().plot_criterion(sel, args.plot) if args.plot else None
    save_model(sel.best_, args.output)
    if args.json:
        best = {"n_components": sel.best_.n_components, "covariance_type": sel.best_.covariance_type}
        term.out(_json_line({"criterion": args.criterion, "best": best, "results": sel.results_, "seed": seed,
                             "seconds": seconds, "model": args.output, "figure": figure}))
        return 0
    term.out(f"{'K':>3}  {'covariance':<10} {'BIC':>16} {'AIC':>16} {'log-lik/row':>12} {'iter':>5}  converged")
    for r in sel.results_:
        chosen = r["n_components"] == sel.best_.n_components and r["covariance_type"] == sel.best_.covariance_type
        term.out(f"{r['n_components']:>3}  {r['covariance_type']:<10} {r['bic']:>16.3f} {r['aic']:>16.3f} "
                 f"{r['score']:>12.6f} {r['n_iter']:>5}  {'yes' if r['converged'] else 'NO'}"
                 f"{'   <- best ' + args.criterion.upper() if chosen else ''}")
    term.out(f"best: {_count(sel.best_.n_components, 'component')} ({sel.best_.covariance_type}) "
             f"in {_fmt_seconds(seconds)}")
    term.out(f"seed: {seed}" + (f" (drawn: --seed {seed} repeats this selection)" if drawn else ""))
    term.out(f"model: {args.output}")
    if figure is not None:
        term.out(f"wrote {figure}")
    return 0


def _check_store_output(output, overwrite, data, term):
    """A CLIError when the Zarr store ``output`` cannot be written: inside the input ``data``, in a
    missing folder, a mount point, already there without ``overwrite``, or (with it) anything but an
    earlier output of predict (:func:`dask_gmm._outputs.predicted`).
    A previous output that a killed run moved aside is put back first, with a warning on ``term``
    (:func:`dask_gmm._files.restore_moved_aside`)."""
    from . import _files
    from ._files import restore_moved_aside
    from ._outputs import refuse_unless_predicted

    try:
        _files.refuse_chain_output(output, "the output")
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    local = "://" not in output
    _refuse_inside_input(output, "the output", data, files=False)
    if local:
        _check_folder(output, "output")
        if os.path.ismount(output):  # the new output is renamed into place: not over a mount point (EBUSY)
            raise CLIError(f"{output!r} is a mount point, which the output, written beside it and renamed into "
                           "place, cannot replace. Write it to a folder inside it.")
        restored = restore_moved_aside(output)
        if restored is not None:
            term.warn(f"put back {output!r}, which a killed run had moved aside to {restored!r} to replace it")
    if local and os.path.lexists(output) and not overwrite:  # a link to nothing too: it is the user's
        refuse_unless_predicted(output)  # what --overwrite would refuse is not advised
        raise CLIError(f"{output!r} already exists. Pass --overwrite to replace it, or choose another path.")
    if overwrite:
        refuse_unless_predicted(output)
    if local:
        _check_joined_group(output, term)


def _check_joined_group(output, term):
    """:func:`dask_gmm._files.joined_group` for predict's output: its error a CLIError, its warnings on ``term``."""
    from ._files import joined_group

    try:
        advice = joined_group(output, "predict writes a Zarr v3 array")
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    for warning in advice:
        term.warn(warning)


def _being_generated(path):
    """Whether a run of generate is writing the local store at ``path`` (a group, or its array X) now."""
    from ._files import being_written

    local = os.path.abspath(path)
    return "://" not in path and (being_written(local) or being_written(os.path.dirname(local)))


#: Suffixes of one-file formats, which a Zarr store written to a folder of that name is not.
FILE_SUFFIXES = (".npy", ".npz", ".csv", ".tsv", ".txt", ".json", ".h5", ".hdf5", ".hdf", ".nc", ".parquet",
                 ".pq", ".feather", ".arrow", ".pkl", ".pickle", ".mat", ".png")


def _refuse_file_suffix(path, what, example, read):
    """A CLIError where the new local store ``path`` (``what``: "--output", "PATH") is named as a one-file format:
    ``predict -o labels.npy`` wrote a Zarr folder of that name, which np.load could not read (a review)."""
    suffix = os.path.splitext(str(path).rstrip("/"))[1].lower()
    if suffix in FILE_SUFFIXES and "://" not in str(path) and not os.path.lexists(path):  # what is there: the
        # other checks name it; a URL's (an object store's prefix) is not a local file for numpy to miss
        raise CLIError(f"{what} {path!r} names a {suffix} file, but {PROG} writes a Zarr store there (a folder). "
                       f"Give a store's path, such as {example} (NumPy reads it as {read}).")


def cmd_predict(args, term):
    from . import _cluster, io
    from ._outputs import PREDICT_ATTR, store_atomically
    from .generate import label_dtype

    _not_empty(args.output, "--output")
    _refuse_file_suffix(args.output, "--output", "labels.zarr", "numpy.asarray(zarr.open_array(path))")
    path = _data_path(args.path)
    model = _load_model(args.model)
    X = _open_data(path)
    _check_match(model, X, args.model, args.path)
    K = model.means_.shape[0]
    model_file = _model_file_record(args.model)
    attrs = {PREDICT_ATTR: {"kind": "proba" if args.proba else "labels", "model": model_file,
                            "data": path, "n_components": K}}
    output = _lasting(_data_path(args.output))
    _check_store_output(output, args.overwrite, path, term)  # before the scheduler is waited for
    watched = _cluster.StoredFiles([io.open_zarr(path)])  # the input, checked unchanged before the output is renamed in
    t0 = time.perf_counter()
    with _scheduler(args.scheduler, term), _dask_progress(term):  # built under the Client: its workers checked
        if args.proba:
            result, what = model.predict_proba(path), f"probabilities of {_count(K, 'component')}"
        else:
            result, what = model.predict(path).astype(label_dtype(K)), "labels"
        dimensions = ("sample", "component")[:result.ndim]  # as a generated store's (generate.DIMENSIONS)
        store_atomically(result, output, args.overwrite, attrs, watched.check, dimension_names=dimensions)
    seconds = time.perf_counter() - t0
    if args.json:
        term.out(_json_line({"output": args.output, "kind": attrs[PREDICT_ATTR]["kind"], "shape": list(result.shape),
                             "dtype": str(result.dtype), "model": args.model, "data": args.path,  # as given, as
                             "seconds": seconds}))  # every --json names them (the stored record: absolute)
        return 0
    term.out(f"wrote {what} of {_count(X.shape[0], 'row')} to {args.output} "
             f"(shape {tuple(result.shape)}, {result.dtype}) in {_fmt_seconds(seconds)}")
    return 0


def _model_file_record(path):
    """The absolute path of the model file ``path`` (a path or ``file://`` URL) that predict records in
    its output, or None for one read from a pipe or device (a shell's ``<(...)``, ``/dev/stdin``)."""
    from ._files import local_file_path

    path = os.path.realpath(local_file_path(path, "The model file"))
    return path if os.path.isfile(path) and not path.startswith(("/dev/", "/proc/")) else None


def _scores(model, path, n):
    """The scores of ``model`` on the data at ``path``, of ``n`` rows."""
    from .mixture import information_criteria

    mean_ll = float(model.score(path))
    p = model._n_parameters()
    return {"mean_log_likelihood": mean_ll, **information_criteria(mean_ll, n, p), "n_samples": n, "n_parameters": p}


def cmd_score(args, term):
    from .generate import NO_TRUTH, compare_with_truth, store_files, truth_of

    path = _data_path(args.path)
    model = _load_model(args.model)
    X = _open_data(path)  # once: it warns of a path that is not data
    _check_match(model, X, args.model, args.path)
    watched = None
    if args.truth:  # before any pass over the data
        try:
            truth_of(path)  # a true mixture, and its labels whole
        except ValueError as exc:
            raise CLIError(_store_words(str(exc).replace(NO_TRUTH, f"--truth compares a model with the mixture of a "
                                                                   f"store written by '{PROG} generate'. Leave out --truth."),
                                        "score")) from None
        watched = store_files(path)  # the passes' store, replaced between two of them, had been mixed (a review)
    with _scheduler(args.scheduler, term), _dask_progress(term):
        s = _scores(model, path, X.shape[0])
        if args.truth:
            s["truth"] = compare_with_truth(model, path)
            watched.check()
    if args.json:
        term.out(_json_line(s))
        return 0
    term.out(f"mean log-likelihood  {s['mean_log_likelihood']!r}")
    term.out(f"BIC                  {s['bic']!r}")
    term.out(f"AIC                  {s['aic']!r}")
    term.out(f"rows                 {s['n_samples']}")
    term.out(f"free parameters      {s['n_parameters']}")
    if args.truth:
        t = s["truth"]
        term.out(f"true mixture         mean log-likelihood {t['true_mean_log_likelihood']!r}; labels agree on "
                 f"{t['label_agreement']:.2%} of rows")
        for k, j in enumerate(t["matched"]):
            term.out(f"  true {k}: " + ("no fitted component left to match" if j < 0 else
                     f"fitted {j}, weight |diff| {t['weight_error'][k]:.1e}, mean |diff| {t['mean_error'][k]:.1e}, "
                     f"covariance rel diff {t['covariance_error'][k]:.1e}"))
    return 0


def _json_line(obj, **kwargs):
    """``obj`` as one line of strict JSON: a float that is not finite as the string a model file
    holds (``"-Infinity"``: a fit of no iteration's lower bound), where ``json.dumps`` wrote the
    ``-Infinity`` that strict parsers refuse."""
    from ._checkpoint import json_float  # the model files' own words for such floats

    def strict(v):
        if isinstance(v, dict):
            return {k: strict(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [strict(x) for x in v]
        return json_float(v) if isinstance(v, float) and not math.isfinite(v) else v

    return json.dumps(strict(obj), allow_nan=False, **kwargs)


def _model_dict(model):
    from .modelfile import model_to_dict

    return model_to_dict(model)


def _store_json(path):
    """What ``info --json`` prints of the store at ``path``: :func:`dask_gmm.generate.store_info`, and
    ``predicted``, the record of the predict that wrote it (else None)."""
    from ._files import killed_temporaries
    from ._outputs import predict_record
    from .generate import store_info

    info = store_info(path)
    left = killed_temporaries(info["path"]) if "://" not in info["path"] else []
    return {**info, "predicted": predict_record(path), "killed_temporaries": left}


def cmd_info(args, term):
    from ._files import local_file_path

    path = args.path
    local = local_file_path(path, "The model file")  # a file:// URL as its local path
    if os.path.exists(local) and not os.path.isdir(local):  # a file, a pipe: a model
        return _info_model(path, local, args, term)

    if "://" not in path and not os.path.exists(path):
        from ._files import moved_aside
        from ._store import first_few

        old, gone = moved_aside(path), moved_aside(path, ".gone")
        aside = (f" A previous output of it lies beside it, moved aside by a run killed while it replaced it (or "
                 f"replacing it now): {first_few(old)} (the newest first). If no run is writing it, move the newest back to {path!r}."
                 if old else "")
        if gone:  # generate --overwrite's old store, killed while it removed it: space the user may want back
            aside += (f" What a run replacing it was removing lies beside it (killed, or removing it now): "
                      f"{first_few(gone)}; the next run writing {path!r} removes it, or delete it.")
        raise CLIError(f"nothing at {path!r}: neither a Zarr store nor a model file. Check the path.{aside}")
    info = _store_json(path)
    if args.json:
        term.out(_json_line(info, default=str))
        return 0
    term.out(f"Zarr store {path}")
    if info["predicted"]:  # not data: it was called X, its components features
        p = info["predicted"]
        k = p.get("n_components")
        what = ("labels" if p.get("kind") != "proba" else
                f"probabilities of {_count(k, 'component')}" if isinstance(k, int) else "probabilities")
        term.out(f"  predicted    {what} of {_count(info['shape'][0], 'row')}, {info['dtype']}, written by "
                 f"{PROG} predict from {p.get('data')!r} with "
                 + (f"the model {p['model']!r}" if p.get("model") is not None else "a model read from a pipe"))
    elif len(info["shape"]) == 2:
        n, d = info["shape"]
        term.out(f"  X            {_count(n, 'row')} x {_count(d, 'feature')}, {info['dtype']}")
    else:  # predict's labels, say: described as --json describes them
        term.out(f"  array        shape {tuple(info['shape'])}, {info['dtype']} (not data of shape (rows, features))")
    term.out(f"  chunks       {info['chunks']}" + (f", shards {info['shards']}" if info["shards"] else "")
             + (f", filters {', '.join(info['filters'])}" if info["filters"] else "")
             + f", compressors {', '.join(info['compressors']) or 'none'}"
             + ("" if info["checksum"] else " (no checksum: a corrupt chunk may read as numbers)"))
    if info["cf_encoding"]:  # fit, predict and score refuse it, saying how to decode it
        term.out(f"  encoded      CF-encoded values ({', '.join(info['cf_encoding'])}), as xarray writes them: the "
                 "stored numbers are not the data's (decode them through xarray first)")
    term.out(f"  status       {_status_line(info, path)}")
    if info["unchecked"]:  # fit, predict and score refuse it with the same words
        term.out(f"  missing      not checked: {info['unchecked']}")
    if info["missing_chunks"]:
        term.out(f"  missing      {_count(info['missing_chunks'], 'chunk')} absent from the store{_of(info['missing_chunks_of'])}")
    if info.get("cut_short_chunks"):
        term.out(f"  cut short    {_count(info['cut_short_chunks'], 'chunk')} not the length their header says "
                 f"(a power loss while they were written?){_of(info['cut_short_chunks_of'])} (the same generate "
                 "command, rerun, writes them again)")
    if info["killed_temporaries"]:  # zarr warns of them as objects of no Zarr hierarchy, whenever it lists it
        from ._store import first_few

        term.out(f"  leftovers    {first_few(info['killed_temporaries'])}: the temporary output of a run killed while "
                 "it wrote into this store (the same command, rerun, removes it; or delete it)")
    if info.get("lost_true"):
        term.out(f"  lost         the true parameters' array(s) {', '.join(info['lost_true'])} (the same generate "
                 "command, rerun, writes them again)")
    if info["seed"] is not None:
        term.out(f"  seed         {info['seed']}")
    record = info["generator"] or {}
    if record.get("source") == "model":
        term.out("  drawn from   a fitted model (generate --model)")
    elif record.get("box") is not None:  # stores of before the record kept these have none
        apart = record.get("min_separation")
        term.out(f"  drawn with   means in [-{record['box']:g}, {record['box']:g}]^{record['n_features']}, covariances "
                 f"{record['covariance_scale']:g} A^T A, " + ("no minimum separation" if apart is None else
                                                             f"means at least {apart:g} apart"))
    true = info["true_model"]
    if true:
        term.out(f"  true model   {_count(len(true['weights']), 'component')}, full covariance")
        for line in _model_lines(*(np.asarray(true[k]) for k in ("weights", "means", "covariances")), indent="    "):
            term.out(line)
    return 0


def _status_line(info, path):
    """The status line of `info` for the Zarr store at ``path`` (``info``: its :func:`_store_json`)."""
    if info["true_of"] is not None:
        what = os.path.basename(os.path.normpath(path)).replace("_", " ")  # "true means"
        return (f"the {what} of a store written by dask-gmm generate, {info['true_of']!r}, not data "
                f"('{PROG} info {info['true_of']}' gives its status and true model)")
    if info["labels_of"] is not None:
        return (f"the labels of a store written by dask-gmm generate, {info['labels_of']!r} "
                f"('{PROG} info {info['labels_of']}' gives its status)")
    if info["predicted"]:
        return f"an output of {PROG} predict"
    if info["status"] == "incomplete" and _being_generated(path):
        return "INCOMPLETE (a run of generate is writing it now)"
    demo = info["status"] in ("damaged", "incomplete") and _is_demo_store(path)  # the demo remakes its own
    rerun = f"rerun the same {PROG} demo command" if demo else "rerun the same generate command"
    again = f"{rerun} to write it again" if demo else "restore the store, or regenerate it"
    if info["status"] == "damaged" and info["unchecked"]:  # complete or not: the generator wrote no such layout
        return f"DAMAGED: an array of it has been rewritten in a layout whose chunks cannot be checked (below); {again}"
    return {
        None: "not written by dask-gmm generate",
        "damaged": "DAMAGED: generated complete, but chunks or arrays have gone (or been cut short) or its shape, "
                   f"dtype or layout has changed since; {again}",
        "complete": "complete",
        "incomplete": f"INCOMPLETE (generation interrupted): {rerun} to finish it",
    }[info["status"]]


def _info_model(path, local, args, term):
    """`info` of the model file at ``path`` (``local``: its local path)."""
    from .io import refuse_metadata_file, refuse_zip_file

    refuse_zip_file(local)  # or a store zipped whole
    refuse_metadata_file(local, path)  # JSON, but a store's: it had been called a bad model file
    if os.path.isfile(local) and _info_checkpoint(path, local, args, term):
        return 0
    try:
        model = _load_model(path)
    except ValueError as exc:  # a CSV, say (not a damaged model file): the command reads two kinds of path
        if not os.path.isfile(local):  # a pipe, read already
            raise
        with open(local, "rb") as f:
            if f.read(4096).lstrip()[:1] == b"{":
                raise
        raise CLIError(f"{exc} {PROG} info reads model files and Zarr stores (folders).") from None
    if args.json:
        term.out(json.dumps(_model_dict(model)))
        return 0
    K, d = model.means_.shape
    term.out(f"model file {path}")
    term.out(f"  {_count(K, 'component')}, {_count(d, 'feature')}, {model.covariance_type} covariance")
    if hasattr(model, "feature_names_in_"):
        term.out(f"  features: {', '.join(map(repr, model.feature_names_in_))}")  # quoted, escaped
    stopped = ("converged" if model.converged_ else "NOT converged (tol 0: every iteration run)"
               if getattr(model, "tol", None) == 0 else "NOT converged")
    term.out(f"  {stopped} after {_count(model.n_iter_, 'iteration')}, "
             f"lower bound {_lower_bound_text(model.lower_bound_)}; `dask-gmm score` gives the mean "
             "log-likelihood at the fitted parameters")
    for line in _model_lines(model.weights_, model.means_, _full_covariances(model)):
        term.out(line)
    return 0


def _info_checkpoint(path, local, args, term):
    """`info` of the fit's checkpoint at ``path`` (``local``: its local path); False where it is none."""
    from ._checkpoint import _short, summary

    try:
        ckpt = summary(local)
    except ValueError as exc:
        raise CLIError(f"{path!r}: {exc}.") from None
    if ckpt is None:
        return False
    if args.json:
        term.out(_json_line({"checkpoint": path, **ckpt}, default=str))
        return True
    a, (n, d) = ckpt["args"], ckpt["shape"]
    seed = a.get("random_state")
    term.out(f"checkpoint {path}, of a fit: " + (
        "every run converged; that fit rerun with it returns its model without iterating"
        if all(run["converged"] for run in ckpt["runs"]) else
        "that fit rerun with it resumes (a larger --max-iter continues runs that reached the last one)"))
    term.out(f"  data         {_count(n, 'row')} x {_count(d, 'feature')}, {ckpt['dtype']}, "
             f"{_count(ckpt['row_chunks'], 'row chunk')}, {'with' if ckpt['weighted'] else 'no'} sample weights")
    term.out(f"  fit          {_count(a.get('n_components'), 'component')}, {a.get('covariance_type')} covariance, "
             f"n_init {a.get('n_init')}, tol {a.get('tol')}, reg_covar {a.get('reg_covar')}, "
             + ("a warm start" if ckpt["warm_start"] else f"init {a.get('init_params')}"
                + "".join(f" and {k}" for k in ("weights_init", "means_init", "precisions_init") if a.get(k) is not None))
             + ", "
             + (f"seed {seed}" if isinstance(seed, int) else f"random_state {_short(seed)}"))
    for i, run in enumerate(ckpt["runs"], 1):
        stopped = ("converged" if run["converged"] else "NOT converged (tol 0: every iteration run)"
                   if a.get("tol") == 0 else "NOT converged")
        term.out(f"  run {i:<8,} {stopped} after {_count(run['n_iter'], 'iteration')}, "
                 f"lower bound {_lower_bound_text(run['lower_bound'])}")
    return True


def _of(counts):
    """``": 1 of X, 2 of labels"``, the arrays of a store that ``counts`` (chunks by array) names, or ""
    for an array given by its own path (it had read "absent from the store: 1 of nanfill.zarr")."""
    names = [name for name, n in counts.items() if n]
    if len(counts) == 1 and names != ["X"]:
        return ""
    return ": " + ", ".join(f"{counts[name]:,} of {name}" for name in names)


def _plot_module():
    from . import plot

    return plot


def _true_model_or_none(path):
    from .generate import read_true_model

    try:
        return read_true_model(path)
    except ValueError:
        return None


def cmd_plot(args, term):
    _not_empty(args.output, "--output")
    plot = _plot_module()
    path = _data_path(args.path)
    model = _load_model(args.model)
    X = _open_data(path)
    _check_match(model, X, args.model, args.path)
    if args.features is not None and model.n_features_in_ == 1:
        raise CLIError(f"{args.model!r} has 1 feature: there is no pair to choose. Leave out --features.")
    features = (0, 1) if args.features is None else tuple(args.features)
    d = model.n_features_in_
    if args.features is not None and (len(set(features)) != 2 or not all(0 <= f < d for f in features)):
        raise CLIError(f"--features takes two distinct feature indices from 0 to {d - 1}, got "
                       f"{' '.join(map(str, features))}.")  # the option's words, not plot_all's
    true_model = _true_model_or_none(path)
    figures = plot.figure_paths(args.output)
    _check_figures(figures.values(), path)
    earlier_curve = os.path.exists(figures["loglik"])
    with _scheduler(args.scheduler, term):
        try:
            written = plot.plot_all(model, path, args.output, features=features, bins=args.bins,
                                    true_model=true_model)
        except ImportError as exc:
            raise CLIError(str(exc)) from None
    for p in written:
        term.out(f"wrote {p}")
    if not len(model.lower_bounds_):
        term.out("no log-likelihood curve: the model ran no EM iteration (fitted with --max-iter 0)")
        if earlier_curve and not os.path.exists(figures["loglik"]):
            term.out(f"removed {figures['loglik']}: an earlier plot's curve, not this model's")
    return 0


def _comparison_lines(true, fitted):
    from .generate import match_components

    order = match_components(true.means_, fitted.means_)
    tcov, fcov = _full_covariances(true), _full_covariances(fitted)
    lines = []
    for k, j in enumerate(order):
        if j < 0:
            lines.append(f"  true {k}: no fitted component left to match")
            continue
        lines.append(f"  component {k} (fitted #{j})")
        lines.append(f"    weight      true {true.weights_[k]:.4f}   fitted {fitted.weights_[j]:.4f}   "
                     f"|diff| {abs(true.weights_[k] - fitted.weights_[j]):.1e}")
        lines.append(f"    mean        true {_fmt_vec(true.means_[k])}   fitted {_fmt_vec(fitted.means_[j])}   "
                     f"|diff| {np.linalg.norm(true.means_[k] - fitted.means_[j]):.1e}")
        lines.append(f"    covariance  true {_fmt_cov(tcov[k])}   fitted {_fmt_cov(fcov[j])}   "
                     f"rel diff {np.linalg.norm(tcov[k] - fcov[j]) / np.linalg.norm(tcov[k]):.1e}")
    return lines


#: The attribute that marks a store as written by ``demo``, which a later demo may replace.
DEMO_ATTR = "dask_gmm_demo"


def _is_demo_store(path):
    import zarr

    try:
        return bool(zarr.open_group(path, mode="r").attrs.get(DEMO_ATTR))
    except (OSError, ValueError, zarr.errors.BaseZarrError):
        return False


def _check_demo_store(data):
    """A CLIError when ``data`` holds something that an earlier demo did not write."""
    if os.path.lexists(data) and not (os.path.isdir(data) and not os.listdir(data)) and not _is_demo_store(data):
        raise CLIError(f"{data!r} exists and was not written by dask-gmm demo. Choose another --output-dir, "
                       "or move it away.")


def _demo_paths(output_dir):
    """The demo's folder (made if missing), store and model file, ``(out, data, model_path)``, once
    everything that refuses what the demo would write there has been said, all at once, before any work."""
    from . import _files

    _not_empty(output_dir, "--output-dir")
    out = os.path.abspath(output_dir)
    above = out
    while not os.path.lexists(above):
        above = os.path.dirname(above)
    if not os.path.isdir(above):
        raise CLIError(f"--output-dir {output_dir!r}: {above!r} is a file, not a folder; give a folder (made "
                       "if it does not exist).")
    store = _files.store_folder(os.path.join(out, "model.json"))  # before its folders are made
    if store is not None:
        raise CLIError(f"cannot write the demo's files to {out!r}: it lies inside the Zarr store {store!r}. "
                       "Choose a folder outside it.")
    os.makedirs(out, exist_ok=True)
    data = os.path.join(out, "data.zarr")
    model_path = os.path.join(out, "model.json")
    _check_folder(model_path, "demo's files")  # then each file the folder holds that the demo would not replace
    figures = [os.path.join(out, f) for f in ("notebook-fit.png", "notebook-loglik.png")]
    with contextlib.suppress(ImportError):
        figures += list(_plot_module().figure_paths(out + os.sep).values())
    refusals = []  # all at once (they were named one run at a time), before any work
    checks = [lambda: _check_writable(model_path, "model", data)]
    checks += [lambda f=f: _check_figures([f], data) for f in figures]  # each figure named, not the first alone
    for check in checks + [lambda: _check_demo_store(data)]:
        try:
            check()
        except CLIError as exc:
            refusals.append(str(exc))
    if refusals:
        raise CLIError(" ".join(refusals))
    return out, data, model_path


def _demo_generate(data, n_samples, d, K, kw, term):
    """The demo's store ``data`` generated (``generate_mixture``'s keywords ``kw``), replacing an earlier
    demo's of other arguments but nothing else; returns the true model."""
    from . import _store
    from ._files import Busy
    from .generate import foreign_members, generate_mixture

    with _dask_progress(term):
        try:
            return generate_mixture(data, n_samples, d, K, **kw)
        except Busy as exc:  # another demo writing it now: not an earlier one's to replace (it had been tried)
            raise CLIError(str(exc).removeprefix("generate_mixture: ")) from None
        except ValueError as exc:
            if not os.path.exists(data):  # the arguments themselves: their own message
                raise CLIError(str(exc)) from None
            if not _is_demo_store(data):  # never overwrite what an earlier demo did not write (made meanwhile)
                raise CLIError(f"{data!r} exists and was not written by dask-gmm demo. Choose another "
                               "--output-dir, or move it away.") from None
            extra = foreign_members(data)  # before saying it replaces the store (it was refused after, in the
            if extra:  # library's words)
                raise CLIError(f"{data!r}, an earlier demo's store written with other arguments, also holds "
                               f"{_count(len(extra), 'item')} that the demo did not write ({_store.first_few(extra)}), "
                               "which replacing it would delete. Move them out, or choose another --output-dir.") from None
            term.out("   (replacing the previous demo store, written with other arguments)")
            try:
                return generate_mixture(data, n_samples, d, K, overwrite=True, **kw)
            except ValueError as exc:
                raise CLIError(str(exc).replace("overwrite=True", "an overwrite")) from None


def _demo_notebook_fit(data, n_nb, true, gm, seed, timings, term):
    """Step 4 of the demo: the seed notebook's EM (random means, identity covariances, 100 iterations)
    on the first ``n_nb`` rows of ``data``, compared with the ``true`` model and the k-means|| fit ``gm``;
    its time goes into ``timings``. Returns those rows and the fit, ``(X_nb, nb)``."""
    from sklearn.exceptions import ConvergenceWarning  # here: at the top, it made --help take 1.3-3 s (a review)

    from . import io
    from .generate import match_components, notebook_initialisation

    K, d = true.means_.shape
    X_nb = io.as_dask_array(data)[:n_nb]
    with warnings.catch_warnings():  # a fixed number of iterations, as the notebook: tol=0 never "converges"
        warnings.simplefilter("ignore", ConvergenceWarning)
        nb, nb_times = _fit(X_nb, term, n_components=K, max_iter=NOTEBOOK_ITERATIONS, tol=0.0,
                            **notebook_initialisation(seed, K, d))
    timings["fit (notebook's way)"] = nb_times.total
    with _dask_progress(term):
        ll_nb, ll_nb_true, ll_nb_default = (float(m.score(X_nb)) for m in (nb, true, gm))
    order = match_components(true.means_, nb.means_)
    if ll_nb >= ll_nb_true - 1e-3:
        verdict = ("found the true components this time (it fails on other seeds: examples/seed_notebook.py "
                   "in the source repository)")
    else:
        verdict = "STUCK in a local optimum, as in the notebook"
    term.out(f"   {verdict}: mean log-likelihood on these rows {ll_nb:.6f}, vs {ll_nb_default:.6f} "
             f"for the k-means|| fit above and {ll_nb_true:.6f} for the true model")
    for k, j in enumerate(order):
        if j >= 0:
            term.out(f"   true mean {_fmt_vec(true.means_[k], 2)} (weight {true.weights_[k]:.3f})  ->  fitted "
                     f"{_fmt_vec(nb.means_[j], 2)} (weight {nb.weights_[j]:.3g})")
    for line in _curve_lines(nb.lower_bounds_):
        term.out(line)
    return X_nb, nb


def cmd_demo(args, term):
    from . import _files
    from .generate import MAX_CHUNKS

    d, K = DEMO_DEFAULTS["n_features"], DEMO_DEFAULTS["n_components"]
    if args.n_samples < 10 * K:  # before any work: the fit needs rows enough for its components
        raise CLIError(f"--n-samples must be at least {10 * K} for the demo's {K} components, got {args.n_samples}.")
    chunk = min(DEMO_DEFAULTS["chunk_size"], args.n_samples)
    if -(-args.n_samples // chunk) > MAX_CHUNKS:  # before the folder is made: the demo has no --chunk-size
        raise CLIError(f"--n-samples {args.n_samples:,} is more than the demo's largest, {MAX_CHUNKS * chunk:,} rows "
                       f"({MAX_CHUNKS:,} chunks of {chunk:,}). For more, run `dask-gmm generate` with a larger "
                       "--chunk-size, then `dask-gmm fit`.")
    out, data, model_path = _demo_paths(args.output_dir)
    busy = (f"another dask-gmm demo is running in {out!r} now. Wait for it to end, or give another "
            "--output-dir.")
    with _files.one_writer(os.path.join(out, "demo"), busy):  # the lock .demo.lock in it, for the whole run
        return _demo(args, term, out, data, model_path, d, K, chunk)


def _demo(args, term, out, data, model_path, d, K, chunk):
    """:func:`cmd_demo`'s run, once its folder is checked and locked."""
    from .modelfile import save_model

    timings = {}
    t_all = time.perf_counter()

    term.out(f"dask-gmm demo: the seed notebook's experiment out of core: {K} Gaussians in {d}-D "
             f"(means uniform in [-10, 10]^{d}, covariances 0.1 A^T A, random weights), "
             f"{args.n_samples:,} rows, seed {args.seed}")
    n_chunks = -(-args.n_samples // chunk)
    term.out(f"1. generate  {data}  ({n_chunks:,} chunk{'s' if n_chunks > 1 else ''} of {chunk:,} rows)")
    t0 = time.perf_counter()
    kw = dict(chunk_size=chunk, random_state=args.seed, attributes={DEMO_ATTR: True})  # marked from the start
    true = _demo_generate(data, args.n_samples, d, K, kw, term)
    timings["generate"] = time.perf_counter() - t0
    term.out(f"   done in {_fmt_seconds(timings['generate'])}")

    term.out(f"2. fit  GaussianMixture(n_components={K}, tol={DEMO_TOL:g})  (full covariance, k-means|| "
             "initialisation; a tight tol, so that what differs from the truth below is sampling error)")
    gm, fit_times = _fit(data, term, n_components=K, random_state=args.seed, tol=DEMO_TOL)
    timings["fit"] = fit_times.total
    save_model(gm, model_path)
    term.out(f"   {'converged' if gm.converged_ else 'NOT converged'} after {gm.n_iter_} iterations in {fit_times}")
    term.out("   mean log-likelihood per row, by iteration:")
    for line in _curve_lines(gm.lower_bounds_):
        term.out(line)

    term.out("3. true vs fitted parameters (components matched by the Hungarian algorithm on the means)")
    for line in _comparison_lines(true, gm):
        term.out(line)
    t0 = time.perf_counter()
    with _dask_progress(term):
        ll_fit, ll_true = float(gm.score(data)), float(true.score(data))
    timings["score"] = time.perf_counter() - t0
    term.out(f"   mean log-likelihood of the data: fitted model {ll_fit:.6f}, true model {ll_true:.6f} "
             f"(fitted - true = {ll_fit - ll_true:+.1e})")

    n_nb = min(NOTEBOOK_N, args.n_samples)
    term.out(f"4. the notebook's way: {NOTEBOOK_ITERATIONS} EM iterations from random means in the box with "
             f"identity covariances, on the notebook's N = {n_nb:,} rows (the first rows of the store)")
    X_nb, nb = _demo_notebook_fit(data, n_nb, true, gm, args.seed, timings, term)

    term.out("5. figures")
    t0 = time.perf_counter()
    try:
        plot = _plot_module()
        written = plot.plot_all(gm, data, out + os.sep, true_model=true, tol=gm.tol)
        written.append(plot.plot_data_fit(
            nb, X_nb, os.path.join(out, "notebook-fit.png"), true_model=true, extent=plot.default_extent(gm, true, nb),
            title=f"The notebook's way: {NOTEBOOK_ITERATIONS} EM iterations from random means"))
        written.append(plot.plot_lower_bounds(nb, os.path.join(out, "notebook-loglik.png")))
    except ImportError as exc:
        written = []
        term.out(f"   skipped: {exc}")
    timings["plot"] = time.perf_counter() - t0
    for p in written:
        term.out(f"   {p}")
    total = time.perf_counter() - t_all
    term.out("timings: " + ", ".join(f"{k} {_fmt_seconds(v)}" for k, v in timings.items())
             + f"; total {_fmt_seconds(total)}")
    term.out(f"outputs in {out}: data.zarr (the data, Zarr), model.json (the fitted model)"
             + (", " + ", ".join(os.path.basename(p) for p in written) + " (figures)" if written else ""))
    term.out(f"next: dask-gmm info {shlex.quote(model_path)}")
    return 0


# ------------------------------------------------------------------ entry point
_FIXABLE_OS_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)
#: Other OS errors a user can fix, by errno, with what to do. A write that fails so leaves no
#: partial file (every write is atomic); an interrupted store is finished by the same command.
_FIXABLE_ERRNOS = {
    errno.ENOSPC: "Free space on that disk, or write to another one.",
    errno.EDQUOT: "Free space within your disk quota, or write to another disk.",
    errno.EFBIG: "A file would pass the size limit of this process ('ulimit -f') or of the file system.",
    errno.EROFS: "Write to a path on a writable file system.",
    errno.ENAMETOOLONG: "Choose a shorter path.",
    errno.EACCES: "Check the permissions of that path (and of its folders), or choose another.",
    errno.EPERM: "Check the permissions of that path (and of its folders), or choose another.",
    errno.ENOENT: "Check the path: it, or a folder on it, does not exist.",
}
#: Failures to reach a URL's server, by errno: said with the error's own words (which name the host).
_CONNECTION_ERRNOS = {
    errno.ECONNREFUSED: "Check the URL, and that its server is running.",
    errno.ECONNRESET: "Check the URL, and that its server is running.",
    errno.EHOSTUNREACH: "Check the URL and the network.",
    errno.ENETUNREACH: "Check the URL and the network.",
    errno.ETIMEDOUT: "Check the URL and the network.",
}


def _is_fixable_os_error(exc):
    return isinstance(exc, _FIXABLE_OS_ERRORS) or exc.errno in _FIXABLE_ERRNOS or exc.errno in _CONNECTION_ERRNOS


#: zarr's local store writes a file through ``NAME.<uuid4 hex>.partial`` (``with_suffix``: in place of NAME's
#: own suffix); an error there is named by its folder, not by that temporary name (a review).
_ZARR_PARTIAL = re.compile(r"\.[0-9a-f]{32}\.partial$")


def _describe_os_error(exc):
    if exc.errno in _CONNECTION_ERRNOS:
        return f"{str(exc).rstrip('.')}. {_CONNECTION_ERRNOS[exc.errno]}"
    if not exc.strerror:
        return str(exc)
    name = exc.filename
    if isinstance(name, str) and _ZARR_PARTIAL.search(name):
        where = f": {os.path.dirname(name)!r} (a file zarr was writing there)"
    else:
        where = f": {name!r}" if name is not None else ""
    advice = _FIXABLE_ERRNOS.get(exc.errno)
    return f"{exc.strerror}{where}." + (f" {advice}" if advice else "")


def _out_of_memory(exc, command):
    """The one-line message for a MemoryError, or a thread that could not start (under ``ulimit -v``
    each thread reserves its stack and a heap of its own, and starting one is what fails first), in
    ``command``: ``generate`` draws a chunk whole, the others read one whole."""
    what = "a thread could not start" if isinstance(exc, RuntimeError) else "out of memory"
    smaller = ("write smaller chunks (a smaller --chunk-size: a chunk is drawn whole)" if command == "generate"
               else "read the data in smaller chunks (rechunk the store: a chunk is read whole)")
    return (f"{what}{f' ({exc})' if str(exc) else ''}. Give the command more memory (a larger machine, or a larger "
            f"ulimit -v), or {smaller}.")


def main(argv=None):
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    term = _Terminal()

    def error(message, status=2):
        term.end_status()
        message = " ".join(str(message).split())  # always one line
        print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
        return status

    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        return error(exc)
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    term.quiet = args.quiet
    said = set()  # each warning once per command (the data's store is opened more than once)

    def show_warning(message, category, filename, lineno, file=None, line=None):
        # in the options' words: "increase max_iter or tol" is --max-iter and --tol here
        text = _option_words(" ".join(str(message).split()), FIT_ARGUMENTS)
        if getattr(args, "tol", None) == 0 and "did not converge" in text:
            return  # --tol 0 asks for all --max-iter iterations (its summary says NOT converged, tol 0)
        if text not in said:
            said.add(text)
            term.warn(text)

    def terminate(signum, frame):
        raising(signal.SIGTERM)
        raise Terminated

    handled = threading.current_thread() is threading.main_thread()
    if handled:  # SIGTERM unwinds like Ctrl-C, so that temporary files are removed on the way out
        previous = signal.signal(signal.SIGTERM, terminate)
        hook = sys.unraisablehook
        sys.unraisablehook = again = SignalAgain(hook)
    library = logging.getLogger("dask_gmm")
    lines = _WarningLines(lambda text: show_warning(text, None, None, None))
    library.addHandler(lines)  # before the first import of the kernels (_local_outputs imports io)
    try:
        try:
            _local_outputs(args)
            with warnings.catch_warnings():
                warnings.showwarning = show_warning
                status = args.func(args, term)
        except Exception as exc:  # an error that followed a signal Python dropped: the signal ends the command
            if handled and again.pending is not None:  # (numba's "no compiled object yet", its compile cut short)
                raise again.pending from exc
            raise
        if handled:
            again.raise_pending()
        return status
    except KeyboardInterrupt as exc:  # a Terminated (SIGTERM) too
        if handled:  # handled now: not sent again while the clean-up runs
            again.cancel()
        _unwound(exc)
        return error("terminated", 143) if isinstance(exc, Terminated) else error("interrupted", 130)
    except (MemoryError, RuntimeError) as exc:  # a traceback with status 1 had said it (a review, under ulimit -v)
        if isinstance(exc, RuntimeError) and "can't start new thread" not in str(exc):
            raise
        _settle_zarr()
        return error(_out_of_memory(exc, args.command))
    except BrokenPipeError:  # whoever read the output stopped reading (`dask-gmm info ... | head`)
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
    except CLIError as exc:
        return error(exc)
    except Warning as exc:  # made an error by the warnings filter (PYTHONWARNINGS=error): a traceback had said it
        text = _option_words(" ".join(str(exc).split()), FIT_ARGUMENTS)
        return error(f"{text} (a warning, made an error by Python's warnings filter: PYTHONWARNINGS or -W)")
    except ValueError as exc:
        return error(_store_words(str(exc), args.command))  # the library's overwrite=True as --overwrite
    except OSError as exc:
        if not _is_fixable_os_error(exc):
            raise
        resumable = args.command == "generate" and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        return error(_describe_os_error(exc) + (f" The store {args.path!r} keeps the chunks written: the same command, "
                                                "rerun, finishes it." if resumable else ""))
    except ImportError as exc:
        if exc.name is not None:  # a module of ours or a dependency failed to import: a broken install
            raise
        return error(exc)  # an optional package a URL or figure needs, with fsspec's or our advice
    finally:
        if handled:
            signal.signal(signal.SIGTERM, previous)
            sys.unraisablehook = hook
            again.cancel()  # nothing sent once the command has ended
            stand_down()
        library.removeHandler(lines)
        term.end_status()


if __name__ == "__main__":
    sys.exit(main())
