"""EM throughput: dask_gmm against scikit-learn, the seed notebook's SciPy loop and Spark MLlib.

    python scripts/bench.py                 # the default run, over 11 minutes on 2 cores (with Spark)
    python scripts/bench.py --quick         # small sizes, five cases, no Spark: a smoke test (about 3 min)
    python scripts/bench.py --cases d2,predict --iters 10

Prints one table from one run. Within a case every library gets the same
data and the same initial parameters (scikit-learn's k-means start plus one
EM iteration on the first 50 000 rows, passed as weights_init, means_init and
precisions_init; Spark MLlib takes none), and runs a fixed number of EM iterations with tol=0, so
that nobody stops early. "ms / iteration" is the wall time of a whole fit
divided by its iterations, after a warm-up fit: it includes dask_gmm's per-fit
work (dask's graph building). Not the others': scikit-learn's fit of n
iterations makes n + 1 E-steps (the last for its labels), so its "ms /
iteration" is the fit's time less that of a fit of 1 iteration from the same
start (one iteration, its checks and that E-step), over n - 1; Spark MLlib takes no initial model
and draws its own start from the data, so its "ms / iteration" is the
difference of its fits of maxIter 2n and n, over the iterations they made (n, or fewer
where a fit stops on an exactly repeated likelihood). Ratios are against
scikit-learn in the same run, on the same data; the machine may be shared, so
only ratios are comparable between runs. A fit is timed at least 3 times, and
again while less than 3 s have been spent on it, at most 5 times; the fastest
time is kept (the same rule for every library). Spark MLlib's row also gives
how many times faster dask_gmm is, from fits of the two made in turns (five
rounds, the best of each), as are the float32/float64 and in-memory/Zarr ratios. Each
call in turns starts after 0.5 s of rest and 50 ms with every core busy
(``timed_in_turns``, ``warm_cores``).

Peak memory is measured in a separate short fit (2 iterations) so that
tracemalloc does not slow the timed ones. "tracemalloc" is the peak of the
Python/NumPy allocations made during the fit, beyond the input data (numba's
scratch, a few tens of KiB, and BLAS buffers are not traced); "RSS" is the peak
resident-set growth of this process and its children, sampled every 20 ms.

Cases (``--cases``, comma separated; default all):

  d2       N=1e6, d=2, K=3, full
  d16      N=2e5, d=16, K=8, full
  diag16   N=1e6, d=16, K=8, diag
  d100     N=1e5, d=100, K=16, full (the kernels' products are BLAS calls: one BLAS thread each)
  tied64   N=5e4, d=64, K=32, tied (one product of the shared factor a tile, pooled second moments)
  small    N=1e3 and N=1e4, d=2, K=3, full, in memory: 200 iterations, where an iteration's work
           outside the kernels is most of it (not scaled by --quick)
  zarr     N=4e6, d=2, K=3, full (float64 and float32) and N=5e5, d=16, K=8, full: in memory and
           from Zarr stores (Zstd(3); Blosc-LZ4 with byte shuffle and crc32c, as generated; uncompressed,
           crc32c only) fitted by path
  cold     N=4e6, d=2, K=3 and N=5e5, d=16, K=8, full: from the Blosc-LZ4 store dropped from the page
           cache before every iteration (Linux), against the page cache and memory
  f32      float32 against float64 data (d=2 and d=16, full)
  predict  predict, predict_proba and score_samples against one EM iteration (d=2 and d=16), in
           memory and from the Blosc-LZ4 store (lazy outputs, computed); each timed over as many
           calls as the fit has iterations, in turns with the fit
  init     the initialisation alone (max_iter=0, each library's own start from its own
           random_state; scikit-learn's less the final E-step its fit makes): "kmeans" (dask_gmm:
           k-means|| seeding and Lloyd passes; scikit-learn: KMeans on the data in memory) and
           "k-means++", at d=2 and d=16, in memory and (dask_gmm)
           from the Blosc-LZ4 store; the number of passes over the data is in the note
  init128  the same for "kmeans" at N=2e4, d=128, K=32, full (the k-means start of many features)
  cluster  the Blosc-LZ4 stores of "zarr" (float64) fitted by path, and the same rows in memory (NumPy),
           on a distributed LocalCluster (2 worker processes x 1 thread) against local threads, in turns
  chunks   dask_gmm's throughput against the in-memory chunk size (io.TARGET_CHUNK_BYTES) and
           against the number of chunks per core; stores of zarr's own default chunking and codec,
           of whole rows in its chunk rows, and of 1,000-row chunks, against memory (d=2 and d=16);
           N=5e6, d=2 in memory (5 chunks: uneven on 2 cores) against N=4e6 (4 chunks), in turns

dask_gmm compiles its numba kernels once per machine (cached on disk); the
compile time and the time to load them from the cache are measured in fresh
subprocesses and printed apart from the table. The "numpy kernels" rows are
dask_gmm with the compiled kernels switched off (``_kernels.USE_NUMBA``): the
code before them. Not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import warnings

import numpy as np
import psutil

import dask
import dask_gmm
from dask_gmm import GaussianMixture, _kernels, generate, io
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SKGaussianMixture

SEED_NOTEBOOK = "seed notebook (SciPy)"


# ------------------------------------------------------------------ data and initial parameters
def make_problem(n, d, K, seed=0, dtype=np.float64):
    """The seed notebook's mixture: means uniform in [-10, 10]^d, covariances 0.1 AᵀA, random weights."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(-10.0, 10.0, (K, d))
    A = rng.standard_normal((K, d, d))
    covs = 0.1 * np.einsum("kji,kjl->kil", A, A) + 1e-2 * np.eye(d)
    weights = rng.uniform(0.2, 1.0, K)
    labels = rng.choice(K, size=n, p=weights / weights.sum())
    X = np.empty((n, d))
    for k in range(K):
        idx = np.flatnonzero(labels == k)
        X[idx] = means[k] + rng.standard_normal((idx.size, d)) @ np.linalg.cholesky(covs[k]).T
    return X.astype(dtype, copy=False)


def case_name(X, K, ct):
    n = X.shape[0]
    exp = int(np.floor(np.log10(n)))
    mant = n / 10**exp
    size = f"{mant:g}e{exp}"
    return f"N={size} d={X.shape[1]} K={K} {ct}"


def initial_parameters(X, K, ct):
    """scikit-learn's k-means start and one EM iteration on the first 50 000 rows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = SKGaussianMixture(K, covariance_type=ct, max_iter=1, random_state=0).fit(X[:50_000])
    return dict(weights_init=sk.weights_, means_init=sk.means_, precisions_init=sk.precisions_)


# ------------------------------------------------------------------ measuring
def busy_cores(seconds=1.0):
    """Cores kept busy by other processes (from /proc/stat over ``seconds``), or None off Linux."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait

    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except OSError:
        return None
    return (1 - (i1 - i0) / max(1, t1 - t0)) * os.cpu_count()


def timed(fn, *, budget=3.0, least=3, most=5):
    """Seconds of fn(), the best of ``least`` to ``most`` calls: more than ``least`` while less than
    ``budget`` seconds are spent (a slow fit had been timed once, against the best of five of a fast one)."""
    best, spent, calls = np.inf, 0.0, 0
    while calls < least or (calls < most and spent < budget):
        t = time.perf_counter()
        fn()
        t = time.perf_counter() - t
        best, spent, calls = min(best, t), spent + t, calls + 1
    return best


def warm_cores(seconds):
    """Keep every core busy (a NumPy loop in one thread per core) for ``seconds``.

    After the cores had idled, two threads ran at about the speed of one for the next
    few tens of ms on the 2-vCPU virtual machines of these runs: a 1e6 x 2
    ``predict_proba`` took 4.0-8.4 ms a call for the first 5-10 calls after 0.5 s of
    sleep, its process's CPU time equal to its wall time (one thread's worth), against
    2.8-3.1 ms (about twice the wall time in CPU) once warm; two threads of NumPy work did
    the same, one thread alone did not (the host spreading the vCPUs again, it seems).
    """
    stop = time.perf_counter() + seconds
    a = np.ones(20_000)

    def spin():
        while time.perf_counter() < stop:
            np.exp(a)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    helpers = [threading.Thread(target=spin) for _ in range(cores - 1)]
    for h in helpers:
        h.start()
    spin()
    for h in helpers:
        h.join()


def timed_in_turns(fns, rounds=5, settle=0.5, warm=0.05):
    """{key: best seconds} of the calls in ``fns`` ({key: fn}), made in turns ``rounds`` times.
    A call that returns a float is timed by it (seconds it measured itself).

    For the ratio of two fits (dask_gmm against Spark, float32 against float64,
    Zarr against memory): a burst of load on the shared machine then hits every
    side alike. Each call starts ``settle`` seconds after the one before: a
    Spark fit leaves its JVM busy for about 0.2 s (0.2-0.7 cores), and a
    dask_gmm fit started at once ran up to 1.3x slower. Then every core is kept
    busy for ``warm`` seconds (:func:`warm_cores`), so that the timed call starts
    on cores running at full speed, as they do in a long fit. The order rotates from
    round to round: two identical fits timed third and second in every round
    differed by 10 % in two runs of three, so no call keeps one place.
    """
    best = dict.fromkeys(fns, np.inf)
    keys = list(fns)
    for r in range(rounds):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            fn = fns[key]
            time.sleep(settle)
            warm_cores(warm)
            t = time.perf_counter()
            own = fn()
            t = time.perf_counter() - t
            best[key] = min(best[key], own if isinstance(own, float) else t)
    return best


def drop_from_page_cache(path):
    """Ask the OS to drop the files under ``path`` from the page cache (posix_fadvise
    DONTNEED; Linux), so that they are next read from the disk. Each file is synced
    first: the OS keeps pages not yet written back."""
    for root, _, files in os.walk(path):
        for f in files:
            fd = os.open(os.path.join(root, f), os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def read_files(path):
    """Bytes of every file under ``path``, read one after another."""
    n = 0
    for root, _, files in os.walk(path):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                n += len(fh.read())
    return n


def traced_peak(fn):
    """Peak bytes of Python/NumPy allocations during fn() (tracemalloc)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1], "tracemalloc"
    finally:
        tracemalloc.stop()


class PeakRSS:
    """Peak growth of the summed RSS of this process and its children, sampled every 20 ms."""

    def __enter__(self):
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _rss(self):
        me = psutil.Process()
        total = 0
        for p in [me] + me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def grown(self):
        return self.peak - self.base


@contextlib.contextmanager
def numba_kernels(on):
    old = _kernels.USE_NUMBA
    _kernels.USE_NUMBA = bool(on)
    try:
        yield
    finally:
        _kernels.USE_NUMBA = old


@contextlib.contextmanager
def chunk_bytes(nbytes):
    old = io.TARGET_CHUNK_BYTES
    if nbytes is not None:
        io.TARGET_CHUNK_BYTES = int(nbytes)
    try:
        yield
    finally:
        io.TARGET_CHUNK_BYTES = old


def calls(fn, X, n):
    """fn(X) n times, each result dropped before the next call."""
    for _ in range(n):
        fn(X)


def _count_passes(fn):
    """How many passes over the data (calls of ``_em.Blocks.map_reduce``) ``fn()`` makes."""
    from dask_gmm import _em

    original, count = _em.Blocks.map_reduce, [0]

    def counted(self, *args, **kwargs):
        count[0] += 1
        return original(self, *args, **kwargs)

    _em.Blocks.map_reduce = counted
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fn()
    finally:
        _em.Blocks.map_reduce = original
    return count[0]


def fit_dask_gmm(X, K, ct, init, iters):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(K, covariance_type=ct, tol=0, max_iter=iters, **init).fit(X)


def fit_sklearn(X, K, ct, init, iters):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return SKGaussianMixture(K, covariance_type=ct, tol=0, max_iter=iters, **init).fit(X)


def sklearn_iteration(X, K, ct, init, iters):
    """Seconds of one scikit-learn EM iteration: the difference of fits of ``iters`` (at least 2) and
    of 1 iteration from the same start, over ``iters`` - 1. Every scikit-learn fit ends in one more
    E-step (for its labels), which dask_gmm's does not: n + 1 E-steps for n iterations, charged to
    them (a review measured 23-27 % too slow an iteration over 3, 7-8 % over 10). A fit of no
    iterations from given precisions fails in scikit-learn 1.9 (no covariances_). dask_gmm's per-fit
    work stays in its own time. NaN, said on stderr, where noise made the difference not positive."""
    assert iters >= 2, iters
    t_n = timed(lambda: fit_sklearn(X, K, ct, init, iters))
    t_1 = timed(lambda: fit_sklearn(X, K, ct, init, 1))
    return positive((t_n - t_1) / (iters - 1), f"scikit-learn's iteration ({iters} less 1 iteration)")


def positive(seconds, what):
    """``seconds``, or NaN (said on stderr) where a difference of two timings came out not positive."""
    if seconds > 0:
        return seconds
    print(f"bench: {what} came out {seconds * 1e3:.1f} ms, not positive: too noisy, reported as nan",
          file=sys.stderr, flush=True)
    return float("nan")


def fit_seed_notebook(X_rows, K, ct, init, iters):
    """The seed notebook's loop, as written there (vectorised NumPy/SciPy, data stored (d, N)).

    E-step with ``multivariate_normal.pdf`` per component, M-step, then a
    separate pass for the log-likelihood, every iteration. Full covariances only.
    """
    from scipy.stats import multivariate_normal

    X = np.ascontiguousarray(X_rows.T)  # the notebook keeps X as (d, N) and XT = X.T
    XT = X.T
    d, N = X.shape
    estimate_pi_k = np.array(init["weights_init"], float)
    estimate_mu_k = np.array(init["means_init"], float)
    estimate_cov_mat = np.linalg.inv(init["precisions_init"])

    def compute_E_step(XT, mu, cov, pi):
        gamma = np.zeros((K, N))
        for k in range(K):
            gamma[k, :] = pi[k] * multivariate_normal.pdf(XT, mean=mu[k, :], cov=cov[k, :, :])
        gamma /= np.sum(gamma, axis=0)
        return gamma

    def compute_M_step(X, gamma):
        mu_new = np.zeros((K, d))
        cov_new = np.zeros((K, d, d))
        Nk = np.sum(gamma, axis=1)
        pi_new = Nk / N
        XT = X.T
        for k in range(K):
            mu_new[k, :] = np.sum(X * gamma[k, :], axis=1) / Nk[k]
            x_m_mu = XT - mu_new[k, :]
            cov_new[k, :, :] = 1e-9 + (gamma[k, :] * x_m_mu.T) @ (x_m_mu) * (1.0 / Nk[k])
        return pi_new, mu_new, cov_new

    def compute_log_likelihood(XT, mu, cov, pi):
        LL = np.zeros((K, N))
        for k in range(K):
            LL[k, :] = pi[k] * multivariate_normal.pdf(XT, mean=mu[k, :], cov=cov[k, ...])
        return np.sum(np.log(np.sum(LL, axis=0)))

    LL = np.zeros(iters)
    for ite in range(iters):
        gamma = compute_E_step(XT, estimate_mu_k, estimate_cov_mat, estimate_pi_k)
        pi_new, mu_new, cov_new = compute_M_step(X, gamma)
        estimate_cov_mat = 1 * cov_new
        estimate_mu_k = 1 * mu_new
        estimate_pi_k = 1 * pi_new
        LL[ite] = compute_log_likelihood(XT, estimate_mu_k, estimate_cov_mat, estimate_pi_k)
    return LL


def spark_available():
    return importlib.util.find_spec("pyspark") is not None and shutil.which("java") is not None


class Spark:
    """Spark MLlib's GaussianMixture in local[2] mode (full covariances only; it takes no initial model),
    its driver bound to 127.0.0.1."""

    def __init__(self):
        from pyspark.sql import SparkSession

        self.session = (
            SparkSession.builder.master("local[2]").appName("dask_gmm-bench")
            .config("spark.ui.enabled", "false").config("spark.driver.memory", "4g")
            .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
            .getOrCreate()
        )
        self.session.sparkContext.setLogLevel("ERROR")
        self.made = {}  # maxIter -> the iterations its fits made (the same in every repeat)

    def frame(self, X):
        from pyspark.ml.linalg import Vectors

        rows = [(Vectors.dense(r),) for r in X.tolist()]
        return self.session.createDataFrame(rows, ["features"]).repartition(2).cache()

    def fit(self, df, K, iters):
        from pyspark.ml.clustering import GaussianMixture as SparkGMM

        model = SparkGMM(k=K, maxIter=iters, tol=0.0, seed=0).fit(df)
        made = model.summary.numIter  # with tol=0 it stops early only on an exactly repeated likelihood
        if self.made.setdefault(iters, made) != made:
            raise RuntimeError(f"Spark's fits of maxIter={iters} made {self.made[iters]} and {made} iterations")
        return model

    def iteration(self, times, n, m):
        """Spark's time an iteration from its fits of maxIter ``n`` and ``m`` > n (``times``: seconds, by
        maxIter): their difference over the iterations they made (a fit that converged exactly, its
        likelihood repeated, makes fewer: 14 of 20 at d=2 in a run of 2026-12-06, where an error had
        left Spark out)."""
        if not self.made[m] > self.made[n]:
            raise RuntimeError(f"Spark's fits of maxIter={n} and {m} made {self.made[n]} and {self.made[m]} "
                               f"iterations: it converged before maxIter {n}")
        return (times[m] - times[n]) / (self.made[m] - self.made[n])

    def stop(self):
        self.session.stop()


# ------------------------------------------------------------------ the table
class Table:
    def __init__(self):
        self.rows = []

    def add(self, library, case, seconds_per_iter, n_points, ratio, memory, note=""):
        self.rows.append((library, case, seconds_per_iter, n_points, ratio, memory, note))

    def print(self):
        head = ("library", "case", "ms / iteration", "M points·it/s", "vs scikit-learn", "peak memory", "")
        lines = []
        for lib, case, spi, n, ratio, mem, note in self.rows:
            lines.append((
                lib, case,
                "—" if spi is None else f"{spi * 1e3:,.{2 if spi < 0.01 else 1}f}",
                "—" if spi is None else f"{n / spi / 1e6:,.2f}",
                "—" if ratio is None else f"{ratio:,.1f}×",
                mem, note,
            ))
        widths = [max(len(str(r[i])) for r in [head] + lines) for i in range(len(head))]
        fmt = "| " + " | ".join("{:<%d}" % w for w in widths) + " |"
        print(fmt.format(*head))
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for r in lines:
            print(fmt.format(*r))


def mib(nbytes, how):
    return f"{nbytes / 2**20:,.0f} MiB ({how})"


# ------------------------------------------------------------------ cases
class Bench:
    def __init__(self, args):
        self.args = args
        self.table = Table()
        self.notes = []
        self.tmp = tempfile.mkdtemp(prefix="dask-gmm-bench-")
        self.spark = None

    def n(self, full):
        return max(20_000, int(full * self.args.scale))

    def warm_up(self, X, K, ct, init):
        """One tiny fit: imports, numba's cache load or compile, dask's thread pool."""
        fit_dask_gmm(X[:5000], K, ct, init, 1)

    def em_case(self, X, K, ct):
        """Rows for one in-memory case: scikit-learn, dask_gmm (numba and NumPy kernels), the notebook, Spark."""
        a = self.args
        N = X.shape[0]
        name = case_name(X, K, ct)
        init = initial_parameters(X, K, ct)
        self.warm_up(X, K, ct, init)
        slow = a.slow_iters

        t_sk = sklearn_iteration(X, K, ct, init, a.iters)
        mem_sk = traced_peak(lambda: fit_sklearn(X, K, ct, init, 2))
        self.table.add("scikit-learn", name, t_sk, N, 1.0, mib(*mem_sk))

        t = timed(lambda: fit_dask_gmm(X, K, ct, init, a.iters)) / a.iters
        mem = traced_peak(lambda: fit_dask_gmm(X, K, ct, init, 2))
        nchunks = len(io.as_dask_array(X).chunks[0])
        self.table.add("dask_gmm", name, t, N, t_sk / t, mib(*mem), f"{nchunks} chunk(s)")

        with numba_kernels(False):
            t0 = timed(lambda: fit_dask_gmm(X, K, ct, init, slow)) / slow
            mem0 = traced_peak(lambda: fit_dask_gmm(X, K, ct, init, 2))
        self.table.add("dask_gmm, numpy kernels (before)", name, t0, N, t_sk / t0, mib(*mem0),
                       f"{slow} it; numba {t0 / t:.1f}× faster")

        if ct == "full":
            t_nb = timed(lambda: fit_seed_notebook(X, K, ct, init, slow)) / slow
            mem_nb = traced_peak(lambda: fit_seed_notebook(X, K, ct, init, 1))
            self.table.add(SEED_NOTEBOOK, name, t_nb, N, t_sk / t_nb, mib(*mem_nb), f"{slow} it")

        if ct == "full" and not a.no_spark and spark_available():
            try:
                if self.spark is None:
                    self.spark = Spark()
                df = self.spark.frame(X)
                df.count()
                with PeakRSS() as rss:
                    self.spark.fit(df, K, 1)  # also the warm-up: JIT, job set-up
                # Spark's times vary most from run to run (0.38-0.68 s an iteration at d=16 on one day):
                # it and dask_gmm take turns for their ratio, five rounds, best of each.
                # Spark takes no initial model: its fit draws its own start from the data, and starts its
                # jobs, about 2 s of a 10-iteration fit (run BK: some 13 of its iterations at d=16). Its
                # iteration is the difference of fits of maxIter 2n and n, over the iterations they made
                # (Spark.iteration; the same seed: the same start and first n iterations); dask_gmm's stays
                # its whole fit's time over n, its per-fit work included.
                self.spark.made.clear()
                times = timed_in_turns({"spark": lambda: self.spark.fit(df, K, a.iters),
                                        "spark 2n": lambda: self.spark.fit(df, K, 2 * a.iters),
                                        "ours": lambda: fit_dask_gmm(X, K, ct, init, a.iters)})
                t_sp = positive(self.spark.iteration({a.iters: times["spark"], 2 * a.iters: times["spark 2n"]},
                                                     a.iters, 2 * a.iters), "Spark's iteration (2n less n)")
                self.table.add("Spark MLlib local[2]", name, t_sp, N, t_sk / t_sp, mib(rss.grown, "RSS"),
                               f"its own init, not charged; dask_gmm {t_sp * a.iters / times['ours']:.1f}× "
                               f"faster, timed in turns (its whole fit {times['spark'] / a.iters * 1e3:.0f} ms "
                               f"an iteration; its fits of maxIter {a.iters} and {2 * a.iters} made "
                               f"{self.spark.made[a.iters]} and {self.spark.made[2 * a.iters]})")
                df.unpersist()
            except Exception as exc:  # noqa: BLE001 - a broken Spark set-up must not end the run
                self.notes.append(f"Spark MLlib failed on {name}: {type(exc).__name__}: {exc}")

    # -------------------------------------------------------------- the cases
    def case_d2(self):
        self.em_case(make_problem(self.n(1_000_000), 2, 3), 3, "full")

    def case_d16(self):
        self.em_case(make_problem(self.n(200_000), 16, 8, seed=1), 8, "full")

    def case_diag16(self):
        self.em_case(make_problem(self.n(1_000_000), 16, 8, seed=2), 8, "diag")

    def case_d100(self):
        self.em_case(make_problem(self.n(100_000), 100, 16, seed=5), 16, "full")

    def case_small(self):
        """Small data in memory (N=1e3 and 1e4, d=2, K=3, full), where the work of an iteration outside
        the kernels (the M-step, the model's layout, the pass's bookkeeping) is most of it: scikit-learn's
        own ground. 200 iterations; dask_gmm charged its whole fit, scikit-learn the difference of its
        fits of 200 and 1 iterations (as em_case), all three fits timed in turns."""
        K, ct, iters = 3, "full", 200
        for n in (1_000, 10_000):  # not scaled by --quick
            X = make_problem(n, 2, K)
            init = initial_parameters(X, K, ct)
            self.warm_up(X, K, ct, init)
            times = timed_in_turns({"scikit-learn": lambda: fit_sklearn(X, K, ct, init, iters),
                                    "scikit-learn 1": lambda: fit_sklearn(X, K, ct, init, 1),
                                    "dask_gmm": lambda: fit_dask_gmm(X, K, ct, init, iters)})
            t_sk = positive((times["scikit-learn"] - times["scikit-learn 1"]) / (iters - 1),
                            f"scikit-learn's iteration at N={n} ({iters} less 1 iteration)")
            t = times["dask_gmm"] / iters
            name = case_name(X, K, ct)
            self.table.add("scikit-learn", name, t_sk, n, 1.0, "—")
            self.table.add("dask_gmm", name, t, n, t_sk / t, "—", f"{iters} iterations, its whole fit; timed in turns")

    def case_tied64(self):
        self.em_case(make_problem(self.n(50_000), 64, 32, seed=6), 32, "tied")

    def write_zarr(self, X, chunk_rows, compressors=None, label="zstd3"):
        import zarr
        from zarr.codecs import ZstdCodec

        path = os.path.join(self.tmp, f"X-{X.shape[0]}-{X.shape[1]}-{X.dtype.name}-{chunk_rows}-{label}.zarr")
        if not os.path.exists(path):
            arr = zarr.create_array(store=path, shape=X.shape, chunks=(chunk_rows, X.shape[1]), dtype=X.dtype,
                                    compressors=compressors or [ZstdCodec(level=3)])
            for i in range(0, X.shape[0], chunk_rows):
                arr[i : i + chunk_rows] = X[i : i + chunk_rows]
        return path

    def case_zarr(self):
        """In memory against the same rows in compressed Zarr stores fitted by path.

        The fits from memory and from each store take turns (timed_in_turns), so
        that a burst of load on the shared machine does not land on one side of
        the ratio only.

        Three codecs: Zstd(3); Blosc-LZ4 with byte shuffle and a crc32c checksum (what
        dask_gmm.generate writes by default); and no compression, the crc32c checksum alone
        (generate's compression='none'). The stores' chunks are dask_gmm.generate's default, about 4 MiB of
        rows; a fit reads them in tasks of whole Zarr chunks, about 16 MiB and at most
        an eighth of the store (dask_gmm.io): two chunks, 8 MiB, for these 64 MB stores.
        """
        from zarr.codecs import ZstdCodec

        a = self.args
        codecs = (("Zstd(3)", "zstd3", [ZstdCodec(level=3)]),
                  ("Blosc-LZ4", "lz4-crc32c", generate._compressors()),
                  ("uncompressed (crc32c)", "crc32c", generate._compressors("none")))
        for n, d, K, dtype, seed in ((4_000_000, 2, 3, np.float64, 3), (4_000_000, 2, 3, np.float32, 3),
                                     (500_000, 16, 8, np.float64, 4)):
            X = make_problem(self.n(n), d, K, seed=seed).astype(dtype)
            N = X.shape[0]
            chunk_rows = min(N, generate.default_chunk_size(d, dtype))
            name = case_name(X, K, "full") + ("" if dtype == np.float64 else " float32")
            init = initial_parameters(X, K, "full")
            self.warm_up(X, K, "full", init)
            t_sk = None
            if dtype == np.float64:
                t_sk = sklearn_iteration(X, K, "full", init, a.slow_iters)
                self.table.add("scikit-learn", name, t_sk, N, 1.0, "—", f"{a.slow_iters} it")
            sources = {"in memory": X}
            for codec, label, compressors in codecs:
                path = sources[codec] = self.write_zarr(X, chunk_rows, compressors, label)
                stored = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)
                fit_dask_gmm(path, K, "full", init, 1)  # warm the page cache and zarr
                self.notes.append(
                    f"Zarr store {name}, {codec}: {X.nbytes / 2**20:.0f} MiB in {-(-N // chunk_rows)} chunk(s) of "
                    f"{chunk_rows:,} rows, {stored / 2**20:.0f} MiB on disk, read through the page cache."
                )
            times = timed_in_turns({key: (lambda src=src: fit_dask_gmm(src, K, "full", init, a.iters))
                                    for key, src in sources.items()})
            times = {key: t / a.iters for key, t in times.items()}
            t_mem = times.pop("in memory")
            nchunks = len(io.as_dask_array(X).chunks[0])
            self.table.add("dask_gmm, in memory", name, t_mem, N, t_sk and t_sk / t_mem,
                           mib(*traced_peak(lambda: fit_dask_gmm(X, K, "full", init, 2))), f"{nchunks} chunk(s)")
            for codec, t_z in times.items():
                with PeakRSS() as rss:
                    fit_dask_gmm(sources[codec], K, "full", init, 2)
                self.table.add(f"dask_gmm, Zarr {codec} by path", name, t_z, N, t_sk and t_sk / t_z,
                               mib(rss.grown, "RSS"), f"{t_mem / t_z:.0%} of in memory")

    def case_cold(self):
        """Out of core from the disk: the store is dropped from the page cache before every iteration.

        Each iteration is its own fit call that continues the last (warm_start,
        max_iter=1), timed without the drop; the fits in memory and from the page
        cache are made the same way, in turns with it. The store is Blosc-LZ4 with
        crc32c, as generated. The disk's own read rate (the store's files read one
        after another, just dropped) is in the notes: it bounds these fits.
        """
        if not hasattr(os, "posix_fadvise"):
            self.notes.append("cold skipped: it needs os.posix_fadvise (Linux) to drop a store from the page cache.")
            return
        a = self.args

        def by_iteration(src, K, init, cold):
            gm = GaussianMixture(K, tol=0, max_iter=1, warm_start=True, **init)
            spent = 0.0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                for _ in range(a.iters):
                    if cold:
                        drop_from_page_cache(src)
                    t = time.perf_counter()
                    gm.fit(src)
                    spent += time.perf_counter() - t
            return spent

        for n, d, K, seed in ((4_000_000, 2, 3, 3), (500_000, 16, 8, 4)):
            X = make_problem(self.n(n), d, K, seed=seed)
            N = X.shape[0]
            name = case_name(X, K, "full")
            init = initial_parameters(X, K, "full")
            self.warm_up(X, K, "full", init)
            path = self.write_zarr(X, min(N, generate.default_chunk_size(d, X.dtype)), generate._compressors(),
                                   "lz4-crc32c")
            rates = []
            for _ in range(3):
                drop_from_page_cache(path)
                t = time.perf_counter()
                nbytes = read_files(path)
                rates.append(nbytes / (time.perf_counter() - t))
            self.notes.append(f"Disk read rate of the store {name} ({nbytes / 2**20:.0f} MiB), dropped from the page "
                              f"cache, its files one after another: {max(rates) / 1e9:.2f} GB/s (best of 3).")
            times = timed_in_turns({
                "in memory": lambda: by_iteration(X, K, init, False),
                "page cache": lambda: by_iteration(path, K, init, False),
                "disk": lambda: by_iteration(path, K, init, True),
            })
            t_mem = times["in memory"] / a.iters
            self.table.add("dask_gmm, in memory, a fit call per iteration", name, t_mem, N, None, "—")
            for where in ("page cache", "disk"):
                t = times[where] / a.iters
                self.table.add(f"dask_gmm, Zarr Blosc-LZ4 from the {where}", name, t, N, None, "—",
                               f"{t_mem / t:.0%} of in memory; {X.nbytes / t / 1e9:.2f} GB/s of rows")

    def case_f32(self):
        a = self.args
        for (n, d, K, seed) in ((1_000_000, 2, 3, 0), (200_000, 16, 8, 1)):
            X64 = make_problem(self.n(n), d, K, seed=seed)
            X32 = X64.astype(np.float32)
            N = X64.shape[0]
            name = case_name(X64, K, "full")
            init = initial_parameters(X64, K, "full")
            self.warm_up(X32, K, "full", init)
            self.warm_up(X64, K, "full", init)
            t_sk = sklearn_iteration(X64, K, "full", init, a.iters)
            t_sk32 = sklearn_iteration(X32, K, "full", init, a.iters)
            ours = timed_in_turns({64: lambda: fit_dask_gmm(X64, K, "full", init, a.iters),
                                   32: lambda: fit_dask_gmm(X32, K, "full", init, a.iters)})
            t64, t32 = ours[64] / a.iters, ours[32] / a.iters
            self.table.add("scikit-learn float64", name, t_sk, N, 1.0, "—")
            self.table.add("scikit-learn float32", name, t_sk32, N, t_sk / t_sk32, "—")
            self.table.add("dask_gmm float64", name, t64, N, t_sk / t64, "—")
            self.table.add("dask_gmm float32", name, t32, N, t_sk / t32, "—", f"{t64 / t32:.2f}× float64's speed")

    def case_predict(self):
        for (n, d, K, seed) in ((1_000_000, 2, 3, 0), (200_000, 16, 8, 1)):
            X = make_problem(self.n(n), d, K, seed=seed)
            N = X.shape[0]
            name = case_name(X, K, "full")
            init = initial_parameters(X, K, "full")
            self.warm_up(X, K, "full", init)
            ours = fit_dask_gmm(X, K, "full", init, 2)
            sk = fit_sklearn(X, K, "full", init, 2)
            path = self.write_zarr(X, min(N, generate.default_chunk_size(d, X.dtype)), generate._compressors(),
                                   "lz4-crc32c")
            fit_dask_gmm(path, K, "full", init, 1)  # warm the page cache
            methods = ("predict", "predict_proba", "score_samples")
            for method in methods:
                getattr(ours, method)(X[:1000])
            # Each output against an EM iteration on the same input, in turns (five rounds, best of
            # each), over as many calls as the fit has iterations, so per-call costs are averaged
            # alike. Each output is dropped before the next call, as scikit-learn's are (its memory
            # is then reused); kept, every output lands on fresh pages, whose first touch the OS
            # charges for (timed apart). From the store, each output is a lazy dask array, computed
            # to one NumPy array by dask.
            its = self.args.iters
            mem_turns = timed_in_turns({"em": lambda: fit_dask_gmm(X, K, "full", init, its),
                                        **{m: (lambda m=m: calls(getattr(ours, m), X, its)) for m in methods}})
            store_turns = timed_in_turns({"em": lambda: fit_dask_gmm(path, K, "full", init, its),
                                          **{m: (lambda m=m: calls(lambda p: getattr(ours, m)(p).compute(), path, its))
                                             for m in methods}})
            t_em, t_em_z = mem_turns["em"] / its, store_turns["em"] / its
            self.table.add("dask_gmm EM iteration", name, t_em, N, None, "—")
            self.table.add("dask_gmm EM iteration, Zarr Blosc-LZ4 by path", name, t_em_z, N, None, "—")
            from_store = []
            for method in methods:
                ours_fn = getattr(ours, method)
                t_sk = timed(lambda: getattr(sk, method)(X))
                t, t_z = mem_turns[method] / its, store_turns[method] / its
                t_kept = timed(lambda: [ours_fn(X) for _ in range(its)]) / its
                mem = traced_peak(lambda: ours_fn(X))
                self.table.add(f"scikit-learn {method}", name, t_sk, N, 1.0, "—")
                self.table.add(f"dask_gmm {method}", name, t, N, t_sk / t, mib(*mem),
                               f"{t_em / t:.2f}× an EM iteration's speed; {t_em / t_kept:.2f}× with "
                               "every output kept")
                from_store.append((f"dask_gmm {method}, Zarr by path", t_z, t_sk))
            for label, t_z, t_sk in from_store:
                self.table.add(label, name, t_z, N, t_sk / t_z, "—",
                               f"{t_em_z / t_z:.2f}× an EM iteration's speed from the store; computed")

    def case_init(self):
        """The initialisation alone: each library's own start (max_iter=0), timed in turns."""
        self._init_rows(((1_000_000, 2, 3, 0), (200_000, 16, 8, 1)), ("kmeans", "k-means++"))

    def case_init128(self):
        """The k-means start of many features (N=2e4, d=128, K=32, full): its Lloyd passes' moments are
        gathered by component (_numba.hard_moments_grouped), its M-steps are K d x d factorisations."""
        self._init_rows(((20_000, 128, 32, 2),), ("kmeans",))

    def _init_rows(self, sizes, inits):
        note = ("init rows: 'ms / iteration' is the whole initialisation (max_iter=0; scikit-learn's "
                "less the final E-step its fit makes, as a score_samples call on the same rows, "
                "timed in turns: the same log-probabilities and log-sum-exp, and its input checks) and "
                "'M points·it/s' the rows over that time; timed in turns (five rounds, best of each).")
        if note not in self.notes:
            self.notes.append(note)
        for (n, d, K, seed) in sizes:
            X = make_problem(self.n(n), d, K, seed=seed)
            N = X.shape[0]
            name = case_name(X, K, "full")
            path = self.write_zarr(X, min(N, generate.default_chunk_size(d, X.dtype)), generate._compressors(),
                                   "lz4-crc32c")
            # scikit-learn's fit of no iterations still makes its final E-step (40-63 % of its time here,
            # a review measured): timed in turns as score_samples of a model of K components, and taken off
            # (a difference of two fits' times had come out negative at --quick sizes)
            sk_model = fit_sklearn(X, K, "full", initial_parameters(X, K, "full"), 1)
            for init in inits:
                ours = lambda src: GaussianMixture(K, init_params=init, max_iter=0, random_state=0).fit(src)
                theirs = lambda: SKGaussianMixture(K, init_params=init, max_iter=0, random_state=0).fit(X)
                for src in (X, path):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", ConvergenceWarning)
                        ours(src)  # warm-up: numba's cache, the page cache
                passes = _count_passes(lambda: ours(X))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    times = timed_in_turns({"sk": theirs, "sk e-step": lambda: sk_model.score_samples(X),
                                            "mem": lambda: ours(X), "zarr": lambda: ours(path)})
                # its fit's final E-step, which dask_gmm's does not make
                times["sk"] = positive(times["sk"] - times["sk e-step"], "scikit-learn's init less its E-step")
                self.table.add(f"scikit-learn, init {init}", name, times["sk"], N, 1.0, "—",
                               "in memory, less its final E-step")
                self.table.add(f"dask_gmm, init {init}", name, times["mem"], N, times["sk"] / times["mem"], "—",
                               f"{passes} passes over the data (and the random rows' chunks)")
                self.table.add(f"dask_gmm, init {init}, Zarr Blosc-LZ4 by path", name, times["zarr"], N,
                               times["sk"] / times["zarr"], "—", f"{times['mem'] / times['zarr']:.0%} of in memory")

    def case_cluster(self):
        """The Blosc-LZ4 store fitted by path on a distributed LocalCluster (two worker processes of one
        thread each, on 127.0.0.1, with distributed's defaults: its nanny sets MALLOC_TRIM_THRESHOLD_)
        against dask's local threads, in turns (the Client stays up; local fits run under
        ``dask.config.set(scheduler="threads")``)."""
        from distributed import Client, LocalCluster

        a = self.args
        problems = []
        for (n, d, K, seed) in ((4_000_000, 2, 3, 3), (500_000, 16, 8, 4)):
            X = make_problem(self.n(n), d, K, seed=seed)
            init = initial_parameters(X, K, "full")
            path = self.write_zarr(X, min(X.shape[0], generate.default_chunk_size(d, X.dtype)),
                                   generate._compressors(), "lz4-crc32c")
            self.warm_up(X, K, "full", init)
            t_sk = sklearn_iteration(X, K, "full", init, a.slow_iters)
            problems.append((X, K, init, path, t_sk))
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=":0") as cluster, Client(cluster):  # None served :8787 too
            for X, K, init, path, t_sk in problems:
                N, name = X.shape[0], case_name(X, K, "full")

                def local():
                    with dask.config.set(scheduler="threads"):
                        return fit_dask_gmm(path, K, "full", init, a.iters)

                def local_memory():
                    with dask.config.set(scheduler="threads"):
                        return fit_dask_gmm(X, K, "full", init, a.iters)

                fit_dask_gmm(path, K, "full", init, 2)  # warm-up: the workers' numba cache, imports
                fit_dask_gmm(X, K, "full", init, 2)
                local()
                times = timed_in_turns({"threads": local, "cluster": lambda: fit_dask_gmm(path, K, "full", init, a.iters),
                                        "memory threads": local_memory,
                                        "memory cluster": lambda: fit_dask_gmm(X, K, "full", init, a.iters)})
                t = {key: v / a.iters for key, v in times.items()}
                self.table.add("scikit-learn", name, t_sk, N, 1.0, "—", f"in memory, {a.slow_iters} it")
                for where, threads, cluster in (("Zarr Blosc-LZ4 by path", "threads", "cluster"),
                                                ("in memory (NumPy)", "memory threads", "memory cluster")):
                    self.table.add(f"dask_gmm, {where}, local threads", name, t[threads], N, t_sk / t[threads], "—")
                    self.table.add(f"dask_gmm, {where}, LocalCluster (2 processes x 1 thread)", name, t[cluster], N,
                                   t_sk / t[cluster], "—", f"{t[threads] / t[cluster]:.0%} of local threads' speed")

    def case_chunks(self):
        """Chunk-size sweeps."""
        K, ct = 3, "full"
        X = make_problem(self.n(4_000_000), 2, K, seed=3)
        N = X.shape[0]
        init = initial_parameters(X, K, ct)
        self.warm_up(X, K, ct, init)
        path = self.write_zarr(X, 2**16)
        name = case_name(X, K, ct)
        for m in (1, 2, 4, 8, 16, 32):
            with chunk_bytes(m * 2**20):
                nchunks = len(io.as_dask_array(X).chunks[0])
                t = timed(lambda: fit_dask_gmm(X, K, ct, init, self.args.iters)) / self.args.iters
                fit_dask_gmm(path, K, ct, init, 1)
                tz = timed(lambda: fit_dask_gmm(path, K, ct, init, self.args.iters)) / self.args.iters
            self.table.add(f"dask_gmm, chunks of {m} MiB", name, t, N, None, "—",
                           f"{nchunks} chunk(s); Zarr by path: {N / tz / 1e6:.1f} M points·it/s")
        self.zarr_layouts(X, K, init)
        X16 = make_problem(self.n(500_000), 16, 8, seed=1)  # zarr's chunks of 2 of the 16 features
        self.zarr_layouts(X16, 8, initial_parameters(X16, 8, ct))
        import dask.array as da

        for X2, K2, label in ((X, K, name), (make_problem(self.n(200_000), 16, 8, seed=1), 8, None)):
            init2 = init if label else initial_parameters(X2, K2, ct)
            label = label or case_name(X2, K2, ct)
            for per_core in (1, 2, 4):
                parts = per_core * os.cpu_count()
                Xd = da.from_array(X2, chunks=(-(-X2.shape[0] // parts), X2.shape[1]))
                t = timed(lambda: fit_dask_gmm(Xd, K2, ct, init2, self.args.iters)) / self.args.iters
                self.table.add(f"dask_gmm, {per_core} chunk(s) per core", label, t, X2.shape[0], None, "—",
                               f"{parts} chunks of {X2.nbytes / parts / 2**20:.1f} MiB")
        # Five chunks of 16 MiB (dask_gmm's own chunking of 5e6 x 2) do not split evenly between two
        # threads; swept in pieces (_em.PIECE_BYTES) the threads end together.
        X5 = make_problem(self.n(5_000_000), 2, K, seed=3)
        times = timed_in_turns({"4": lambda: fit_dask_gmm(X, K, ct, init, self.args.iters),
                                "5": lambda: fit_dask_gmm(X5, K, ct, init, self.args.iters)})
        t4, t5 = times["4"] / self.args.iters, times["5"] / self.args.iters
        self.table.add("dask_gmm, in memory, dask_gmm's chunks", case_name(X5, K, ct), t5, X5.shape[0], None, "—",
                       f"{len(io.as_dask_array(X5).chunks[0])} chunks; {X5.shape[0] / t5 / (N / t4):.0%} of the "
                       f"throughput of {name.split()[0]}'s {len(io.as_dask_array(X).chunks[0])} chunks, in turns")

    def zarr_layouts(self, X, K, init):
        """The same rows in stores of zarr's own defaults (its chunking, across the features for
        few of them, and its Zstd codec), in whole-row chunks of the same number of rows, and in
        small chunks of 1,000 rows, against memory, in turns."""
        import zarr

        a, N, name = self.args, X.shape[0], case_name(X, K, "full")
        d = X.shape[1]
        default = zarr.create_array(store=os.path.join(self.tmp, f"default-{d}.zarr"), shape=X.shape, dtype=X.dtype)
        default[:] = X
        sources = {"in memory": X, f"zarr's defaults, chunks {default.chunks}": default.store_path.store.root}
        for rows in (default.chunks[0], 1_000):
            path = os.path.join(self.tmp, f"rows-{rows}-{d}.zarr")
            zarr.create_array(store=path, shape=X.shape, chunks=(rows, X.shape[1]), dtype=X.dtype)[:] = X
            sources[f"zarr's codec, chunks ({rows}, {X.shape[1]})"] = path
        for src in sources.values():
            fit_dask_gmm(src, K, "full", init, 1)  # warm the page cache and zarr
        times = timed_in_turns({key: (lambda src=src: fit_dask_gmm(src, K, "full", init, a.iters))
                                for key, src in sources.items()})
        t_mem = times.pop("in memory") / a.iters
        for layout, t in times.items():
            t /= a.iters
            self.table.add(f"dask_gmm, Zarr by path, {layout}", name, t, N, None, "—", f"{t_mem / t:.0%} of in memory")

    # -------------------------------------------------------------- compile time
    def compile_times(self):
        code = (
            "import time, numpy as np\n"
            "t0 = time.perf_counter()\n"
            "from dask_gmm import _kernels as k, _numba\n"
            "t1 = time.perf_counter()\n"
            "m = k.Model('full', np.log(np.ones(3) / 3), np.zeros((3, 2)), np.stack([np.eye(2)] * 3))\n"
            "X = np.random.default_rng(0).normal(size=(1000, 2))\n"
            "k.e_step_stats(X, [m])\n"
            "t2 = time.perf_counter()\n"
            "for dt in (np.float32, np.float64):\n"
            "    for ct, pc in (('full', np.stack([np.eye(2)] * 3)), ('diag', np.ones((3, 2)))):\n"
            "        mm = k.Model(ct, m.log_weights, m.means, pc)\n"
            "        Xd = X.astype(dt)\n"
            "        k.e_step_stats(Xd, [mm]); k.score_samples(Xd, mm); k.predict(Xd, mm); k.predict_proba(Xd, mm)\n"
            "        k.nearest_cost(Xd, mm.means); k.hard_stats(Xd, mm.means, ct)\n"
            "t3 = time.perf_counter()\n"
            "print(t1 - t0, t2 - t1, t3 - t1)\n"
        )
        out = {}
        cold, warm = (tempfile.mkdtemp(prefix="numba-cache-", dir=self.tmp) for _ in range(2))
        # "cached": a cache this probe filled itself, in an untimed run first (it had used the package's own
        # cache, which held what earlier runs had compiled, and timed a compile of the rest as a load: a review)
        for label, cache in (("cold", cold), ("fill", warm), ("cached", warm)):
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
            if res.returncode:
                self.notes.append(f"compile-time probe failed: {res.stderr.strip()[-300:]}")
                return
            out[label] = [float(v) for v in res.stdout.split()]
        imp, first, every = out["cold"]
        _, first_c, every_c = out["cached"]
        self.notes.append(
            f"numba kernels: first E-step call {first:.1f} s to compile (full, float64), {every:.1f} s for every "
            f"specialisation (E-step, per-row and k-means, full and diag, float32 and float64); from numba's on-disk "
            f"cache, filled by a run before: {first_c:.2f} s and {every_c:.2f} s. (Importing dask_gmm itself, numba included: {imp:.2f} s.) Excluded from the timings (warm-up fits)."
        )

    def close(self):
        if self.spark is not None:
            self.spark.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


CASES = ("d2", "d16", "diag16", "d100", "tied64", "small", "zarr", "cold", "f32", "predict", "init", "init128", "cluster",
         "chunks")
DEFAULT_CASES = CASES
#: --quick's cases when none are named: the slow ones (d100, tied64, the cold reads, a cluster, chunk sizes) left out
QUICK_CASES = ("d2", "d16", "zarr", "predict", "init")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help=f"1/20 of the sizes and 4 iterations, without Spark or the compile-time subprocesses, the "
                         f"cases {','.join(QUICK_CASES)} unless --cases names others: a smoke test")
    ap.add_argument("--cases", default=None, help=f"comma separated, from {','.join(CASES)} (default: all)")
    ap.add_argument("--iters", type=int, default=10, help="EM iterations of dask_gmm and scikit-learn (default 10)")
    ap.add_argument("--slow-iters", type=int, default=3,
                    help="iterations of the slow baselines: the notebook loop and NumPy kernels (default 3)")
    ap.add_argument("--chunk-mib", type=float, default=None,
                    help="override dask_gmm.io.TARGET_CHUNK_BYTES (MiB): the blocks of in-memory inputs, and how "
                         "many Zarr chunks a task of a store reads")
    ap.add_argument("--no-spark", action="store_true", help="skip Spark MLlib even when pyspark is installed")
    ap.add_argument("--no-compile-time", action="store_true", help="skip the compile-time subprocesses")
    args = ap.parse_args(argv)
    if min(args.iters, args.slow_iters) < 2:
        ap.error("--iters and --slow-iters must be at least 2: scikit-learn's iteration is timed as the "
                 "difference of fits of n and 1 iterations")
    args.scale = 0.05 if args.quick else 1.0
    if args.quick:
        args.iters = min(args.iters, 4)
        args.slow_iters = min(args.slow_iters, 2)
        args.no_spark = args.no_compile_time = True  # Spark's JVM and the compiles took minutes of a "smoke test"
    if args.cases is None:
        args.cases = ",".join(QUICK_CASES if args.quick else DEFAULT_CASES)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        ap.error(f"unknown case(s) {unknown}; choose from {CASES}")

    bench = Bench(args)
    busy = busy_cores()
    started = time.perf_counter()
    try:
        with chunk_bytes(None if args.chunk_mib is None else args.chunk_mib * 2**20):
            if not args.no_compile_time:
                bench.compile_times()
            for case in cases:
                getattr(bench, f"case_{case}")()
                print(f"[{case} done at {time.perf_counter() - started:.0f} s]", file=sys.stderr, flush=True)
            chunk_note = f"{io.TARGET_CHUNK_BYTES / 2**20:g} MiB"
    finally:
        bench.close()

    import numba  # noqa: F401 - for the version line only
    import sklearn

    print(
        f"dask_gmm {dask_gmm.__version__ if hasattr(dask_gmm, '__version__') else ''} "
        f"({'numba ' + numba.__version__ + ' kernels' if _kernels.USE_NUMBA else 'NumPy kernels'}), "
        f"scikit-learn {sklearn.__version__}, dask {dask.__version__} threaded scheduler, "
        f"{os.cpu_count()} cores; in-memory chunks of about {chunk_note}; "
        f"{args.iters} EM iterations (tol=0) unless a note says otherwise; total {time.perf_counter() - started:.0f} s; "
        + ("" if busy is None else f"{busy:.1f} of {os.cpu_count()} cores busy with other work just before the run.")
        + f" BLAS: {blas_line()}."
    )
    print()
    bench.table.print()
    print()
    if not spark_available():
        bench.notes.append("Spark MLlib skipped: pyspark is not installed" + ("" if shutil.which("java") else " and java is absent") + ".")
    for note in bench.notes:
        print("- " + note)


def blas_line():
    """The BLAS libraries loaded (threadpoolctl) and the kernels each picked for this CPU. scikit-learn's
    fits are mostly BLAS calls, dask_gmm's mostly its own compiled loops, so the kernels BLAS picked
    (``OPENBLAS_CORETYPE`` can force them) move the ratio between the two."""
    import threadpoolctl

    libs = sorted({f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture') or 'kernels unknown'} kernels)"
                   for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"})
    forced = os.environ.get("OPENBLAS_CORETYPE")
    return ", ".join(libs) + (f"; OPENBLAS_CORETYPE={forced!r} in the environment" if forced is not None else "")


if __name__ == "__main__":
    main()
