"""Compiled (numba) per-chunk kernels: the E-step and the per-row outputs in one sweep.

:mod:`dask_gmm._kernels` dispatches here unless DASK_GMM_NUMBA=0, and keeps
its NumPy kernels (with :mod:`dask_gmm._covariance`) as the readable reference
that the tests compare these kernels with.

Every kernel reads a block ``X`` (n, d) of float32 or float64 as it is (a
float32 block is never copied to float64: each value is widened as it is
read) and accumulates in float64. One pass over the rows computes the K
log-probabilities ``log pi_k + log N(x | mu_k, P_k)`` of each row (Mahalanobis
distances through the precision Cholesky factor, ``y = (x - mu_k) @ P_k``),
their log-sum-exp, the responsibilities (times the sample weight), and adds
the row's share of ``nk``, ``s1c = sum r (x - mu_k)`` and the centred second
moments ``s2`` exactly as :func:`dask_gmm._covariance.centred_moments` defines
them, centred on the model's current means.

How it is fast without fast-math
--------------------------------
Of LLVM's fast-math flags only ``contract`` (multiply-adds fused into FMAs,
:data:`_OPTIONS`) is on, and NaN and infinities behave as IEEE says, which
the error checks rely on. Results are not reassociated, but for the dot
products of :func:`_gram_upper` (a tile's second moments) and the sums of
:func:`_moments_diag` (diagonal factors' moments), whose order of additions is
the compiler's, as a BLAS call's is its library's.

The rows are swept a tile at a time (256, 504 or 512 rows, :func:`tile_rows`). A
tile is copied once, transposed and centred on the weighted mean of the model's means, into a
small float64 scratch (d, tile); everything after that (Mahalanobis sums,
the log-sum-exp, the exponentials, the responsibilities) is a loop along the
rows of the tile, which LLVM vectorises as written. Scratch memory does not
depend on the block size (tens of KiB at d=2; 0.7 MiB at d=16, K=8, most of it
the packed rows' buffers, K x 2 tiles x d): nothing of size n x K is ever made.

* ``exp`` and ``log`` are :func:`_exp1` and :func:`_log_tile`: range
  reduction through the bits of the float and a short polynomial, written so
  that they vectorise (libm's are scalar calls, half of the time of a d = 2
  E-step). Both are within 2 ulp of libm (tests/test_numba.py). ``exp`` is a
  function of one value, inlined into the loops that use it (the bits of a
  float through :func:`_bits` and :func:`_float`, LLVM bitcasts).
* Responsibilities below e^-600 times a row's largest are 0
  (:data:`dask_gmm._covariance.RESP_MIN_LOG`): no subnormal arithmetic, which
  costs Intel cores a microcode assist per operation.
* Sums over the rows of a tile use 8 explicit partial sums: a fixed order, so
  results are the same bytes whatever the scheduler.
* Up to :data:`UNROLL_MAX_FEATURES` features, the Mahalanobis sums of the
  triangular factors this package makes are straight-line code written for
  that number of features (:func:`_unrolled_source`): each component's
  d (d + 1) / 2 factor entries are read into locals once per tile, and each
  row is one line of multiply-adds, which LLVM vectorises along the tile
  (d=16, K=8: the whole E-step 1.14-1.20x faster than the GEMMs below). The
  full kernels are compiled for each such d and input dtype on its first use
  (about 6-9 s more for the E-step and 2 s for the per-row outputs, cached on
  disk like the rest); :func:`_logprob_tile` chooses the code. Up to
  :data:`LOAD_UNROLL_MAX_FEATURES` features their tile's load is such code
  too (:func:`_load_source`).
* Tied covariances, from :data:`TIED_MIN_FEATURES` features, have kernels of their own
  (:func:`estep_tied`, :func:`rows_tied`): the one factor's product ``P^T X_c`` once a tile,
  each component's distances from it (K d a row, not K d^2), and the second moments pooled, a tile's
  ``(s X_c) X_c^T`` with ``s`` each row's responsibilities summed, corrected per component at the end
  of the block, which keeps the covariance to ~2e-10 while the means lie within
  :data:`MAX_POOLED_DISTANCE` of the tiles' centre (else a product per component, below). N=5e4, d=64, K=32: a fit's iteration 9.7x faster.
* Full (and tied) covariances do the two d x d x tile products of a tile,
  ``P_k^T X_c`` (beyond :data:`UNROLL_MAX_FEATURES` features) and, from
  :data:`PACK_MIN_FEATURES` features on, ``(r X_c) X_c^T``, as BLAS GEMMs, the
  latter with a row of ones (of sqrt(r) in packed rows) that gives each
  component's first moments, centred on its own means, too. Up to
  :data:`GRAM_MAX_FEATURES` features the second moments are instead
  :func:`_gram_upper`'s dot products along the tile (or along the packed rows,
  stored feature-major): the E-step at d=16, K=8 1.24-1.28x faster. (BLAS
  ``dtrmm`` and ``dsyrk``, which skip the triangle that GEMM computes for
  nothing, were slower still at these sizes; the Mahalanobis GEMM skips most
  of it in row blocks instead, :func:`feature_block`.) The tile is kept small
  enough (:func:`tile_rows`) that OpenBLAS runs them on the calling thread.
  With fewer features the moments are sums along the tile
  (:func:`_moments_tile`), and up to :data:`SMALL_MAX_FEATURES` the
  Mahalanobis products of a factor that is not triangular are loops along the
  tile: no BLAS call.
  Which wins depends on the machine's OpenBLAS (these measurements predate
  the straight-line Mahalanobis code). On 2026-11-30's machine, BLAS
  beat the compiled loops of then at every d (M rows/s on one core, loops /
  BLAS: d=2 K=3 48/57, d=4 K=4 20/31, d=8 K=8 3.9/8.4, d=16 K=8 1.2/3.5). On
  2026-12-01's (AVX2, no AVX-512; OpenBLAS's Haswell kernels, whose small
  GEMMs cost 1.4-2.9 us a call, e.g. (2, 512) by (512, 2)), today's loops
  beat BLAS from d=2 (1.9x) to d=9 (1.13x), and BLAS wins at d=16.
* The Mahalanobis products start from the once-centred tile:
  ``P_k^T (x - mu_k) = P_k^T (x - c) - P_k^T (mu_k - c)``, so no tile is
  centred per component (d=16, K=8: 1.14x faster, measured when the first
  moments were a GEMM of their own). Both sides are small where the data are, whatever their
  offset from the origin (tests shift them by 1e6).
* Rows whose responsibility for a component is exactly 0 (underflow: common
  when components are well separated) add exactly nothing to its second
  moments, so from :data:`PACK_MIN_FEATURES` features on, the tile's other
  rows are packed before that component's product, as ``sqrt(r) (x - mu_k)``
  read along the rows of X: one packed matrix, copied from contiguous rows
  (d=16, K=8: 1.14x faster than packing ``r X_c`` and ``X_c`` from the
  transposed tile; d=32 1.1x). A component's packed rows wait over tiles
  until they fill a product of up to two tiles' worth (d=16, K=8 1.01-1.05x,
  d=12, K=6 1.05x faster than one small GEMM per tile, measured with GEMMs).

The initialisation's k-means passes have two kernels here too:
:func:`nearest_tiles` (each row's nearest centre, tiled as the E-step, the
distances summed along the rows of the tile) and the hard-assignment moments
(:func:`hard_moments_full`, :func:`hard_moments_diag`: a row at a time, into
its centre's sums; a full model's from :data:`GROUPED_MIN_FEATURES` features
gathered by component, :func:`hard_moments_grouped`). Against the NumPy reference, per row on one core (N=1e6,
d=2: 31 centres 267 -> 15 ns, the Lloyd step with 3 centres 108 -> 14 ns;
d=16: 81 centres 622 -> 199 ns, the Lloyd step with 8 centres 977 -> 88 ns).

Two families, chosen by covariance type in
:data:`dask_gmm._covariance.KERNEL_FAMILY`: ``full`` (full, and tied below
:data:`TIED_MIN_FEATURES` features or far from the centre, its factor repeated per component and
its second moments the per-component ones summed) and ``diag`` (diag, and spherical with its
factor repeated over the features).

All kernels release the GIL (``nogil=True``) and are serial
(``parallel=False``): dask's threaded scheduler already runs a chunk per
thread. ``cache=True`` writes the machine code to ``__pycache__`` next to this
file (else to the user's cache folder; where neither can be written, the kernels
are compiled in each process: :func:`_njit`), so only the first process on a
machine compiles (about 12 s for the first E-step; more for each further dtype,
covariance family and, for full covariances, number of features up to
:data:`UNROLL_MAX_FEATURES`).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
import weakref

import numba
import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba.extending import intrinsic, overload

from ._covariance import KERNEL_FAMILY, LOG_2PI, RESP_MIN_LOG, S2_PER_COMPONENT, log_det_cholesky

logger = logging.getLogger(__name__)

#: The one fast-math flag is ``contract``: LLVM may fuse a multiply and an add into an FMA, which
#: rounds once where the pair rounded twice. No reassociation, and NaN and infinities keep
#: their IEEE meaning (d=16 K=8 1.04x, d=8 K=4 1.05x, d=2 K=3 1.13x faster per row on one core).
_OPTIONS = dict(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")


def _njit(**options):
    """``numba.njit(**options)``, but where numba has no folder to cache in, uncached.

    numba caches in ``__pycache__`` beside this file, else under the user's cache folder
    (``NUMBA_CACHE_DIR`` where set); where it can write in neither (a read-only install run
    by a user without a writable home: a container, a service account) it refused at the
    decoration, and ``import dask_gmm`` failed. The kernels are then compiled in every process
    (about 12 s for the first E-step), said once in the log."""
    def decorate(fn):
        try:
            return numba.njit(**options)(fn)
        except RuntimeError as exc:
            if "cannot cache" not in str(exc):
                raise
            if not _UNCACHED:
                logger.warning("dask_gmm's compiled kernels are not cached on disk (%s): every process compiles "
                               "them afresh. Set NUMBA_CACHE_DIR to a folder this user can write.", exc)
            _UNCACHED.append(fn.__name__)
            return numba.njit(**{**options, "cache": False})(fn)
    return decorate


#: The kernels compiled without the disk cache (:func:`_njit`).
_UNCACHED = []
_jit = _njit(parallel=False, **_OPTIONS)
#: Helpers are inlined at numba IR level (LLVM does not inline across numba's modules).
_inline = _njit(inline="always", **_OPTIONS)
#: The sums along a tile that LLVM may also reassociate, and so split across vector lanes
#: (:func:`_gram_upper`, :func:`_moments_diag`, :func:`_moments_small`, :func:`_moments_tile`);
#: NaN and infinities still keep their meaning.
_REASSOC = {**_OPTIONS, "fastmath": {"contract", "reassoc"}}
_reassoc = _njit(**_REASSOC)

#: Rows per tile (a multiple of 64).
TILE_ROWS = 256
#: From this many features, tiles of 512 rows hold 504 (:func:`tile_rows`).
SKEW_MIN_FEATURES = 10
#: From this many features on, the full E-step packs each tile's rows of nonzero
#: responsibility before the second-moment product. Where components are well
#: separated most responsibilities underflow to exactly 0 (87 % at d=16, K=8 in
#: scripts/bench.py), and the product shrinks up to K-fold: measured (with GEMMs) per row on one
#: core, d=16 K=8 1.25-1.34x, d=10 K=8 and d=12 K=6 1.1x faster; d=8 K=4
#: 0.7-0.86x and d=2 0.9x (so not there); overlapping components cost 1-5 %.
#: Packing sqrt(r) (x - mu_k) from X's rows, it did not pay below 10: d=8 K=8 1.11x, but d=8 K=4
#: 0.96x, d=6 K=6 0.90x, d=4 0.95x. With the packing generated per d and :func:`_gram_upper`'s
#: products (twenty-fifth session, E-step per row on one core against :func:`_moments_small`'s
#: sums along the tile, in turns, 15-21 rounds): d=9 separated (the benchmark's data, 52-87 % of
#: responsibilities 0) K=3-16 1.51-2.15x, overlapping (standard normal rows) 0.96-1.25x; d=8
#: 1.13-1.78x and 0.90-1.17x; d=7 1.05-1.78x and 0.83-1.17x (median 1.06x); d=6 0.98-1.16x and
#: 0.79-0.80x. Fits at d=7-9: separated 1.47-1.77x, overlapping 0.95-1.01x. Then the sums along
#: the tile became one sweep for every moment (:func:`_moments_source`), and against the packing:
#: d=7 separated 1.12-1.22x, overlapping 1.39-1.55x; d=8 0.92-1.15x and 1.27-1.59x; d=9 0.83x and
#: 1.48x (docs/performance.md, twenty-fifth session). So from 9 features the full E-step packs.
PACK_MIN_FEATURES = 9
#: Up to this many features, the Mahalanobis products of a factor that is not triangular are loops
#: along the tile instead of BLAS calls, whose fixed cost (1.4-2.9 us a call on this machine for a
#: (2, 512) by (512, 2) product) outweighs the work. (The triangular factors this package makes
#: take :data:`UNROLL_MAX_FEATURES`'s code.) Measured with the moments, which took the same loops
#: up to 9 features then, per row on one core against GEMMs: d=2 K=3 1.9x, d=4 K=4 2.2x, d=8 K=8
#: 1.17x, d=9 K=8 1.13x.
SMALL_MAX_FEATURES = 9
#: Up to this many features, the Mahalanobis sums of lower-triangular factors ``P_k^T`` (all
#: that this package makes) are straight-line code written for that number of features
#: (:func:`_unrolled_source`, :func:`_logprob_tile`). Per row on one core, K=8, the products and
#: their sums alone against :func:`_logprob_full`: d=2 2.7x, d=4 2.8x, d=8 2.0x, d=12 1.5x,
#: d=16 1.4x, d=18 1.3x faster; d=20 1.04x, d=24 1.1x (the factor's entries no longer fit
#: the registers); d=32 0.8x. The whole E-step: d=2 K=3 1.09x, d=4 K=4 1.18x, d=8 K=8 1.22x,
#: d=12 1.0-1.3x, d=16 1.14-1.20x; per-row outputs (score_samples) 1.1-1.7x.
UNROLL_MAX_FEATURES = 18
#: Up to this many features (with :data:`UNROLL_MAX_FEATURES`'s triangular factors), the full
#: kernels load a tile by straight-line code for that number of features (:func:`_load_source`).
LOAD_UNROLL_MAX_FEATURES = 7
#: Up to this many features, the full kernels' second moments (a tile's ``(r X_c) X_c^T``, and the
#: packed rows', :func:`_packed_moments`) are :func:`_gram_upper`'s dot products, not GEMMs:
#: OpenBLAS's fixed work per call (packing both operands, the edges of its 4 x 8 kernel) dominates
#: such thin products. The product alone, per row on one core, (e, 512) by (512, e), a GEMM against
#: :func:`_gram_upper`: e=11 3.5x, e=17 2.3x, e=25 2.1x, e=33 1.5x, e=49 1.4x, e=65 1.2x slower,
#: e=97 0.95x. The whole E-step per row on one core, in turns in one process, against GEMMs:
#: separated components (scripts/bench.py's data, most rows packed) d=10 K=8 1.09-1.11x, d=12 1.20x,
#: d=14 1.35x, d=16 K=8 1.24-1.28x, d=16 K=4 1.29x, d=20-32 1.07x, d=64 1.03x; overlapping ones
#: (50,000 standard normal rows, whole tiles) d=5 K=40 1.66x, d=10 K=4 1.69x, d=12 K=8 1.53x, d=16
#: K=8 1.39x, d=24 1.31x, d=32 1.25x, d=64 K=4 1.08x. The packed rows are written feature-major
#: from X's rows; gathered from the transposed tile instead, d=16 lost (0.90-0.93x). Whole fits
#: (10 iterations on 2 threads, in turns in one process): overlapping d=16 K=8 1.40x; separated
#: d=12 K=8 1.13x, but d=16 K=8 0.94-1.01x: there the kernel's gain did not reach the fit (not
#: understood; docs/performance.md, twentieth session).
GRAM_MAX_FEATURES = 64
#: OpenBLAS runs a GEMM of m*n*k <= 65536 * 4 multiply-adds on the calling thread.
_BLAS_SINGLE_THREAD_MNK = 262_144

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # 32 significant bits: n * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_EXP_MIN = -746.0  # exp(x) rounds to 0 below this
_SQRT2 = 1.4142135623730951
#: 2^52 + 1023. For an integer k with -1023 <= k < 2^52 - 1023, the float k + _EXP_BIAS_SHIFT holds
#: k + 1023 in its low bits; shifted left 52 bits, they are the exponent field of 2^k. The kernels
#: convert between exponents and floats this way, not by int64 <-> float64 casts, which have no
#: vector instruction before AVX-512 (LLVM made those loops scalar: exp 4.0 ns an element, not 1.0).
_EXP_BIAS_SHIFT = 4503599627371519.0


def tile_rows(n_components, n_features):
    """Rows per tile: 512 while K x d <= 128 (504 from :data:`SKEW_MIN_FEATURES` features), else
    256, and fewer where a GEMM of the tile would otherwise be run on several threads by OpenBLAS,
    down to 64 rows: from 64 features a tile's GEMM is above OpenBLAS's one-thread size all the same
    (d=256: 4.2M multiply-adds), and only the limit of one BLAS thread a pass holds
    (:func:`dask_gmm._em._one_blas_thread`) keeps it on one (a review: an E-step called outside a
    pass, d=128 K=128 tied, under load, 6.9 s with OpenBLAS's threads against 0.55 s with one).

    The E-step per row on one core, tiles of 256 / 512 / 1024 rows, in turns in one process
    (12 rounds; 2026-12-02, Zen 5): full d=2 K=3 10.6 / 10.0 / 9.7 ns, d=5 K=4 30.4 / 25.7 /
    26.8, d=4 K=4 20.9 / 16.2 / 16.9, d=8 K=8 67.8 / 62.6 / 78.5, d=12 K=8 67.7 / 67.5 / 69.2,
    d=16 K=8 91.3 / 87.9 / 97.6, d=2 K=50 106.9 / 100.1 / 104.0, but d=16 K=16 166.0 / 184.1 /
    192.0; diag d=16 K=8 49.2 / 50.3 / 47.8. (Before, 512 only while K x d <= 16, chosen while
    per-component (K, d, tile) copies of the tile were kept.)

    From :data:`SKEW_MIN_FEATURES` features, 504 rows rather than 512: rows of the tile's
    scratch 4,096 bytes apart all fall in the same set of a 4 KiB-way L1 cache, and the
    Mahalanobis code reads d of them at once. E-step per row on one core, 504 / 512 rows, in
    turns, three processes (2026-12-02, Zen 5: 48 KiB 12-way L1): full d=16 K=8 80.6-118.1 /
    83.8-124.1 ns (1.04-1.09x), d=16 K=4 1.02-1.08x, d=12 K=8 1.01-1.04x, d=10 K=8 0.98-1.03x;
    ``predict_proba`` d=16 K=8 1.06x, d=12 1.03-1.05x; diag d=16 K=8 the same (0.99-1.01x);
    at d=2 and d=5 512 stays (504: 0.93-0.98x and 0.97-1.02x). Fits of the benchmark's d=16
    K=8 case (10 iterations, two threads, in turns, six processes): 0.97x, 1.11-1.24x in five.
    """
    rows = TILE_ROWS * 2 if n_components * n_features <= 128 else TILE_ROWS
    if rows == 2 * TILE_ROWS and n_features >= SKEW_MIN_FEATURES:
        rows -= 8
    blas_cap = _BLAS_SINGLE_THREAD_MNK // (n_features * n_features)
    return int(max(64, min(rows, blas_cap // 64 * 64)))


def feature_block(n_features):
    """Rows of ``P_k^T`` per Mahalanobis GEMM (:func:`_logprob_full`): about a quarter of them, at least 4.

    ``P_k^T`` is lower triangular, so a block of its rows needs only the tile's
    features up to the block's last row: 4 blocks do 5/8 of the multiply-adds of
    one GEMM. (This package's factors take the straight-line code of
    :data:`UNROLL_MAX_FEATURES` up to 18 features, so these blocks only
    beyond.) Measured, the whole E-step per row on one core against one GEMM
    per component: d=8 the same (blocks of 2, 4 or 8 rows within 3 %), d=12
    1.08x, d=16 1.10x (blocks of 2 rows 1.05x, of 8 1.08x), d=24 1.08x,
    d=32 1.16x.
    """
    return max(4, -(-n_features // 4))


# ------------------------------------------------------------------ scratch
@_jit
def _scratch(K, d, B):
    """The scratch arrays of a sweep (made once per kernel call)."""
    XT = np.empty((d, B))  # the tile, transposed, float64, centred on the model's centre
    A = np.empty((K, B))  # log-probabilities, then exponentials, then responsibilities
    lse = np.empty(B)  # per-row log-sum-exp
    ssum = np.empty(B)
    bits = np.empty((2, B), dtype=np.int64)  # scratch of _log_tile and _add_log
    return XT, A, lse, ssum, bits


# ------------------------------------------------------------------ helpers
@_inline
def _sum8(a, n):
    """sum(a[:n]) for n a multiple of 8, as eight interleaved partial sums.

    Read as rows of 8 indexed by the loop's own counter and constant columns:
    as ``a[t + 1]`` with ``t`` from ``range(0, n, 8)``, numba guarded every
    index against negative values (compare and select per element, no vector
    add); the E-step per row on one core, in turns, the same bytes: full d=2
    K=3 1.05-1.07x, d=5 K=4 1.05x, d=16 K=8 1.01x; diag d=16 K=8 1.05x.
    """
    v = a[:n].reshape((n // 8, 8))
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    for t in range(n // 8):
        s0 += v[t, 0]
        s1 += v[t, 1]
        s2 += v[t, 2]
        s3 += v[t, 3]
        s4 += v[t, 4]
        s5 += v[t, 5]
        s6 += v[t, 6]
        s7 += v[t, 7]
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


def _bits(x):
    """The bits of the float64 ``x`` as an int64 (compiled: one LLVM bitcast)."""
    return np.float64(x).view(np.int64)


def _float(i):
    """The int64 ``i``'s bits as a float64 (compiled: one LLVM bitcast)."""
    return np.int64(i).view(np.float64)


@intrinsic
def _bitcast(typingctx, x, to):
    """``x`` reinterpreted as the type of ``to`` (float64 and int64), the same 64 bits."""
    target = to
    if {x, target} != {numba.types.float64, numba.types.int64}:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(target))

    return target(x, to), codegen


@overload(_bits, inline="always")
def _bits_overload(x):
    return lambda x: _bitcast(x, np.int64(0))


@overload(_float, inline="always")
def _float_overload(i):
    return lambda i: _bitcast(i, 0.0)


@_inline
def _exp1(v):
    """exp(v) for v <= 0 (and +inf, NaN), written so that a loop of it vectorises.

    exp(x) = 2^n p(r), n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2]
    (Cody-Waite, two constants), p the degree-13 Taylor polynomial (truncation
    < 1e-17). 2^n = 2^h 2^(n-h) from two sets of exponent bits, so results
    down to the subnormals are right; x below -746 (or -inf) gives 0, NaN
    stays NaN, +inf stays +inf.

    Against the code before (the same arithmetic in three loops over a tile,
    through arrays of the exponents' bits, and x below -746 computed as
    exp(-746), whose products then underflow through the subnormals), in
    turns in one process, the same bytes: the log-sum-exp and responsibilities
    of a tile (K=3) 1.12x faster where exponents stay above -746 and 1.03x where
    most lie far below; the E-step d=2 K=3 1.12x (float64) and 1.15x
    (float32), ``predict_proba`` 1.28x and 1.24x; d=16 K=8 1.03-1.06x and
    1.05-1.07x; diagonal d=16 1.02-1.04x. Fused into the loop alone, without
    the computation at 0 for those far below, the E-step at d=2 was 0.78x.
    """
    under = v < _EXP_MIN  # exp(v) rounds to 0: computed at 0 instead (no subnormal arithmetic), then 0
    vr = 0.0 if under else v  # NaN stays NaN
    vn = vr if vr > _EXP_MIN else _EXP_MIN  # no NaN for the integer part
    vn = vn if vn < 0.0 else 0.0
    n = np.floor(vn * _LOG2E + 0.5)  # a float: math.floor gives an int, cast back and forth
    r = (vr - n * _LN2_HI) - n * _LN2_LO
    # Estrin's scheme: pairs, then pairs of pairs, by powers of r (a chain of 5 multiply-adds, not 13);
    # the 1 added last, so that no rounding of 1 + r loses r's low bits (within 1 ulp, as Horner's)
    r2 = r * r
    r4 = r2 * r2
    q1 = 0.5 + r * (1.0 / 6.0)
    q2 = 1.0 / 24.0 + r * (1.0 / 120.0)
    q3 = 1.0 / 720.0 + r * (1.0 / 5040.0)
    q4 = 1.0 / 40320.0 + r * (1.0 / 362880.0)
    q5 = 1.0 / 3628800.0 + r * (1.0 / 39916800.0)
    q6 = 1.0 / 479001600.0 + r * (1.0 / 6227020800.0)
    u1 = q2 + r2 * q3
    u2 = q4 + r2 * q5
    w = u1 + r4 * (u2 + r4 * q6)
    p = 1.0 + (r + (r2 * q1 + r4 * w))
    h = np.floor(n * 0.5)  # n = h + (n - h), each part's 2^part a normal number
    # 2^52 + part + 1023 has that integer in its low bits; shifted into the exponent field (the 2^52
    # goes past bit 63), they are 2^part, without an int-float conversion (which AVX2 cannot vectorise)
    s1 = _float(_bits(h + _EXP_BIAS_SHIFT) << 52)
    s2 = _float(_bits((n - h) + _EXP_BIAS_SHIFT) << 52)
    return 0.0 if under else (p * s1) * s2


#: Rows of a band that :func:`interleave` copies from every chunk before the next rows.
INTERLEAVE_ROWS = 512


@_jit
def interleave(out, parts, d):
    """out[t, j w + c] = parts[j, t, c] for the first ``d`` columns: the chunks across a band's
    features (J, chunk rows, w), decoded, put together into whole rows ``out`` (rows, d).

    A tile of :data:`INTERLEAVE_ROWS` rows at a time takes its columns from every chunk, so each
    row of ``out`` is written while in cache: NumPy's copy of one chunk at a time into
    ``out[:, j w : (j + 1) w]`` went over every row J times (1 MiB chunks, d=16 in chunks of 2
    features: 2.56 against 1.14 ms a band; :data:`dask_gmm._reader.ZarrRows` uses it from 2 features
    a chunk, or 8 chunks a band)."""
    J, _, w = parts.shape
    rows = out.shape[0]
    for t0 in range(0, rows, INTERLEAVE_ROWS):
        t1 = min(rows, t0 + INTERLEAVE_ROWS)
        for j in range(J):
            c1 = min(w, d - j * w)
            for t in range(t0, t1):
                for c in range(c1):
                    out[t, j * w + c] = parts[j, t, c]


@_jit
def _log_tile(s, out, bits):
    """out[:] = log(s[:]) for s normal positive, 0 (-inf), +inf or NaN; vectorisable.

    s = 2^e m with m in [sqrt(1/2), sqrt(2)) from the bits, log m = 2 atanh(f),
    f = (m - 1)/(m + 1), |f| < 0.172, by its series to f^23 (truncation < 1e-18);
    e ln 2 in two parts. Within 2 ulp of libm.
    """
    B = s.shape[0]
    sb = s.view(np.int64)
    ob = out.view(np.int64)
    mant = bits[0]
    for t in range(B):
        b = sb[t]
        ob[t] = ((b >> 52) & 0x7FF) | 0x4330000000000000  # the float 2^52 + (the exponent field)
        mant[t] = (b & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000
    m = mant.view(np.float64)
    for t in range(B):
        mt = m[t]
        e = out[t] - _EXP_BIAS_SHIFT
        big = mt > _SQRT2
        mt = mt * 0.5 if big else mt
        e = e + 1.0 if big else e
        f = (mt - 1.0) / (mt + 1.0)
        f2 = f * f
        p = 1.0 / 23.0
        p = p * f2 + 1.0 / 21.0
        p = p * f2 + 1.0 / 19.0
        p = p * f2 + 1.0 / 17.0
        p = p * f2 + 1.0 / 15.0
        p = p * f2 + 1.0 / 13.0
        p = p * f2 + 1.0 / 11.0
        p = p * f2 + 1.0 / 9.0
        p = p * f2 + 1.0 / 7.0
        p = p * f2 + 1.0 / 5.0
        p = p * f2 + 1.0 / 3.0
        r = e * _LN2_HI + (2.0 * f + (2.0 * f) * (f2 * p) + e * _LN2_LO)
        v = s[t]
        out[t] = r if (v > 0.0 and v < np.inf) else (-np.inf if v == 0.0 else v)


@_jit
def _load_looped(X, i0, b, centre, XT):
    """XT (d, B) = (X[i0:i0+b] - centre).T as float64, zero-padded: :func:`_load_tile`'s loop
    for any number of features.

    Four rows by two features at a time: LLVM turns each such block into
    vector loads along X's rows, shuffles and vector stores along XT's rows
    (2.0x faster than one value at a time for d=16 and d=8, 1.5x for d=2,
    measured alone; the whole E-step per row on one core, in turns: d=2 and
    d=8 1.06x, d=16 1.01x).

    With each four rows, the cache lines of the four rows half a tile ahead
    are prefetched (:func:`_prefetch`), so that they come from memory while
    this tile is computed: a tile waited for its rows from memory (at d=16,
    the load alone ran at 19-22 ns a row, about 6 GB/s, and took a quarter
    of the E-step's samples in ``perf``), which the hardware's prefetchers
    fetch only a few lines ahead. Per row on one core, in turns, the same
    bytes: E-step full d=16 K=8 1.17-1.21x, diag d=16 K=8 1.26-1.28x, d=2 K=3
    1.05-1.08x; ``predict_proba`` d=16 1.26-1.28x, diag 1.37x, d=2 1.02-1.07x;
    float32 E-step d=16 1.10x, d=2 1.01x (``predict_proba`` 1.16x, 0.98x). The lines
    of the tile after next all at once, at the start of each tile: d=16
    1.01x, d=2 0.99x (E-step); a fixed 16 or 32 KiB ahead as half a tile at
    d=16, less at d=2.
    """
    d, B = XT.shape
    d2 = d - d % 2
    ahead = B // 2
    line = 64 // X.itemsize  # elements a cache line
    t0 = 0
    while t0 + 4 <= b:
        r = i0 + t0
        if r + ahead + 4 <= X.shape[0]:
            for q in range((r + ahead) * X.shape[1], (r + ahead + 4) * X.shape[1], line):
                _prefetch(X, q)
        for j in range(0, d2, 2):
            c0 = centre[j]
            c1 = centre[j + 1]
            a0, b0 = X[r, j], X[r, j + 1]
            a1, b1 = X[r + 1, j], X[r + 1, j + 1]
            a2, b2 = X[r + 2, j], X[r + 2, j + 1]
            a3, b3 = X[r + 3, j], X[r + 3, j + 1]
            XT[j, t0], XT[j, t0 + 1], XT[j, t0 + 2], XT[j, t0 + 3] = a0 - c0, a1 - c0, a2 - c0, a3 - c0
            XT[j + 1, t0], XT[j + 1, t0 + 1], XT[j + 1, t0 + 2], XT[j + 1, t0 + 3] = b0 - c1, b1 - c1, b2 - c1, b3 - c1
        for j in range(d2, d):
            for u in range(4):
                XT[j, t0 + u] = X[r + u, j] - centre[j]
        t0 += 4
    for t in range(t0, b):
        for j in range(d):
            XT[j, t] = X[i0 + t, j] - centre[j]
    for j in range(d):
        for t in range(b, B):
            XT[j, t] = 0.0


def _load_source(d):
    """The source of :func:`_load_tile`'s code for ``d`` features: the centre in locals, and
    eight rows at a time, each d straight-line stores of the loop's arithmetic (and the
    same prefetches, half a tile ahead).

    The loop's pairs of features, with d known only at run time, took 1.45 ns a row at
    d=2 (float32 1.77); this takes 0.79 (0.96). Per row on one core, the load alone,
    against the loop (4 MiB of rows, tiles as the E-step's): d=1 2.5x, d=2 1.8x, d=3 1.9x,
    d=4 1.4x, d=5 1.4x (float32 1.6x), d=6 1.0x (1.3x), d=7 1.1x (1.3x); d=8 0.9x (1.05x), so
    it stops at :data:`LOAD_UNROLL_MAX_FEATURES`.
    """
    lines = ["def load(X, i0, b, centre, XT, unrolled):", "    B = XT.shape[1]", "    ahead = B // 2",
             "    line = 64 // X.itemsize  # elements a cache line", "    t0 = 0"]
    lines += [f"    c{j} = centre[{j}]" for j in range(d)]
    lines += ["    while t0 + 8 <= b:", "        r = i0 + t0", "        if r + ahead + 8 <= X.shape[0]:",
              f"            for q in range((r + ahead) * {d}, (r + ahead + 8) * {d}, line):",
              "                prefetch(X, q)",
              "        for u in range(8):", "            row = X[r + u]"]
    lines += [f"            XT[{j}, t0 + u] = row[{j}] - c{j}" for j in range(d)]
    lines += ["        t0 += 8", "    for t in range(t0, b):", "        row = X[i0 + t]"]
    lines += [f"        XT[{j}, t] = row[{j}] - c{j}" for j in range(d)]
    lines += ["    for t in range(b, B):"]
    lines += [f"        XT[{j}, t] = 0.0" for j in range(d)]
    return "\n".join(lines) + "\n"


def _load_tile(X, i0, b, centre, XT, unrolled):
    """XT (d, B) = (X[i0:i0+b] - centre).T as float64, zero-padded. Where ``unrolled`` has d
    zeros (:func:`_logprob_tile`) and d is at most :data:`LOAD_UNROLL_MAX_FEATURES`,
    straight-line code for d features (:func:`_load_source`), else :func:`_load_looped`.
    """
    if 0 < len(unrolled) <= LOAD_UNROLL_MAX_FEATURES:
        _generated(_load_source, len(unrolled))(X, i0, b, centre, XT, unrolled)
    else:
        _load_looped(X, i0, b, centre, XT)


@overload(_load_tile, jit_options=dict(fastmath=_OPTIONS["fastmath"], error_model=_OPTIONS["error_model"]))
def _load_tile_overload(X, i0, b, centre, XT, unrolled):
    if 0 < len(unrolled) <= LOAD_UNROLL_MAX_FEATURES:
        return _generated(_load_source, len(unrolled))

    def looped(X, i0, b, centre, XT, unrolled):
        _load_looped(X, i0, b, centre, XT)

    return looped


@_jit
def _factor_blocks(pcT, hs):
    """The factors' row blocks ``pcT[k, q0:q1, :q1]`` (q0 = 0, hs, 2 hs, ...), contiguous:
    block by block, and within a block component by component."""
    K, d, _ = pcT.shape
    per = 0
    for q0 in range(0, d, hs):
        q1 = min(d, q0 + hs)
        per += (q1 - q0) * q1
    PB = np.empty(K * per)
    o = 0
    for q0 in range(0, d, hs):
        q1 = min(d, q0 + hs)
        for k in range(K):
            for i in range(q0, q1):
                for j in range(q1):
                    PB[o] = pcT[k, i, j]
                    o += 1
    return PB


@_inline
def _small_matmul(P, XT, Y):
    """Y (m, B) = P (m, q) @ XT[:q] (XT (d, B), q <= d), along the tile: for few features (see
    :data:`SMALL_MAX_FEATURES`)."""
    m, q = P.shape
    B = XT.shape[1]
    for i in range(m):
        y = Y[i]
        a = P[i, 0]
        x = XT[0]
        for t in range(B):
            y[t] = a * x[t]
        for j in range(1, q):
            a = P[i, j]
            x = XT[j]
            for t in range(B):
                y[t] += a * x[t]


@_inline
def _squared_distances(XT, point, out):
    """out (B,) = the squared distances of the tile's columns XT (d, B) from ``point`` (d,),
    summed a feature at a time along the tile."""
    for t in range(XT.shape[1]):
        out[t] = 0.0
    for j in range(XT.shape[0]):
        pj = point[j]
        x = XT[j]
        for t in range(XT.shape[1]):
            v = x[t] - pj
            out[t] += v * v


@_jit
def _logprob_full(XT, PB, hs, bias, log_norm, Y, A):
    """A[k] = log pi_k + log N(x | k) for the tile's columns.

    ``XT`` is the tile centred on the model's centre c, ``PB`` the factors'
    row blocks (:func:`_factor_blocks`) and ``bias[k] = P_k^T (mu_k - c)``, so
    ``P_k^T XT - bias[k]`` has the rows of ``(x - mu_k) @ P_k`` as columns.
    Each block of ``hs`` rows of ``P_k^T`` needs only the tile's first q1
    features: ``P_k^T`` is lower triangular, so the rest of its rows is 0
    (``hs = d``, one block, for a factor that is not). Where there are several
    blocks, one GEMM does a block of every component (as many as OpenBLAS runs
    on this thread; d=16, K=8: 1.04-1.06x faster than a GEMM per component);
    a single block stays one GEMM per component (d=4: stacked was 0.97x).
    ``Y`` is scratch of at least (max(d, K * hs), B). Triangular factors take
    it only beyond :data:`UNROLL_MAX_FEATURES` features (:func:`_logprob_tile`).
    """
    K = bias.shape[0]
    d, B = XT.shape
    for k in range(K):
        a = A[k]
        for t in range(B):
            a[t] = 0.0
    o = 0
    for q0 in range(0, d, hs):
        q1 = min(d, q0 + hs)
        s = q1 - q0
        G = 1 if hs >= d else max(1, _BLAS_SINGLE_THREAD_MNK // (s * q1 * B))  # components per GEMM
        for g0 in range(0, K, G):
            g1 = min(K, g0 + G)
            ys = Y[: (g1 - g0) * s]
            P = PB[o : o + (g1 - g0) * s * q1].reshape(((g1 - g0) * s, q1))
            if d <= SMALL_MAX_FEATURES:
                _small_matmul(P, XT, ys)
            else:
                np.dot(P, XT[:q1], ys)
            o += (g1 - g0) * s * q1
            for k in range(g0, g1):
                a = A[k]
                for j in range(s):
                    bj = bias[k, q0 + j]
                    y = ys[(k - g0) * s + j]
                    for t in range(B):
                        v = y[t] - bj
                        a[t] += v * v
    for k in range(K):
        a = A[k]
        c = log_norm[k]
        for t in range(B):
            a[t] = -0.5 * a[t] + c


def _prefetch(arr, i):
    """Ask the CPU to fetch the cache line of element ``i`` of the C-contiguous ``arr``, counted
    in its flat order, into every cache level (compiled: ``llvm.prefetch``, read, locality 3;
    x86 ``prefetcht0``; in Python, with numba's JIT disabled, nothing). A hint: it never
    faults, and the caller keeps ``i`` within ``arr``."""


@overload(_prefetch, inline="always")
def _prefetch_overload(arr, i):
    if isinstance(arr, numba.types.Array) and arr.layout == "C" and isinstance(i, numba.types.Integer):
        return lambda arr, i: _prefetch_line(arr, i)
    return None


@intrinsic
def _prefetch_line(typingctx, arr, i):
    """:func:`_prefetch`, compiled."""

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p], ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]))
        address = builder.bitcast(builder.gep(data, [args[1]]), i8p)
        builder.call(fn, [address, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return numba.types.none(arr, i), codegen


@intrinsic
def _aligned_frame(typingctx):
    """Make the calling function's stack frame 64-byte aligned, whatever the stack pointer it is
    called with (a 64-byte slot of its own, which LLVM can only give it by realigning the frame).

    The straight-line Mahalanobis code (:func:`_unrolled_source`) keeps most of its factor
    entries broadcast in vector registers spilled to its frame. LLVM decides on those spills
    during register allocation, too late to realign a frame, so it writes and reads them with
    unaligned moves, at addresses that follow the stack pointer the function was called with:
    on a 16-byte aligned stack, 3 of the 4 positions modulo 64 put every 64-byte (AVX-512) slot
    across two cache lines, and 1 of 2 modulo 32 every 32-byte (AVX2) one. d=16, K=8, E-step per
    row on one core, one process, called from frames at each position modulo 64 (0, 16, 32,
    48): without this, float64 106/107/107/86 ns and float32 101/100/81/100; with it 86 and
    79-80 at all four. Which position a call got depended on the process (its stack's random
    start), so float32 against float64 and the d=16 benchmark's speed did too.
    """

    def codegen(context, builder, signature, args):
        with builder.goto_entry_block():  # a static slot: seen before register allocation
            slot = builder.alloca(ir.ArrayType(ir.IntType(8), 64))
            slot.align = 64
        keep = ir.InlineAsm(ir.FunctionType(ir.VoidType(), [slot.type]), "", "r", side_effect=True)
        builder.call(keep, [slot])  # an empty instruction that uses the slot, so that it stays
        return context.get_dummy_value()

    return numba.types.none(), codegen


def _unrolled_source(d):
    """The source of :func:`_logprob_tile`'s code for ``d`` features and lower-triangular factors.

    Each component's factor ``P_k^T`` (d (d + 1) / 2 values) and bias are
    read into locals, and each row of the tile is one straight line: its d
    sums ``y_j = sum_{i <= j} P_k^T[j, i] (x - c)_i - bias[k, j]`` built a
    feature at a time (d independent chains of multiply-adds), then their
    squares added in 4 partial sums. LLVM vectorises the loop along the tile. Its frame is
    aligned (:func:`_aligned_frame`).
    """
    lines = ["def logprob(XT, pcT, PB, hs, bias, log_norm, Y, A, unrolled):",
             "    aligned_frame()",
             "    B = XT.shape[1]",
             "    for k in range(bias.shape[0]):",
             "        P = pcT[k]",
             "        b = bias[k]",
             "        a = A[k]",
             "        c = log_norm[k]"]
    lines += [f"        p{j}_{i} = P[{j}, {i}]" for j in range(d) for i in range(j + 1)]
    lines += [f"        b{j} = b[{j}]" for j in range(d)]
    lines += ["        for t in range(B):", "            x = XT[0, t]"]
    lines += [f"            y{j} = p{j}_0 * x - b{j}" for j in range(d)]
    for i in range(1, d):
        lines.append(f"            x = XT[{i}, t]")
        lines += [f"            y{j} += p{j}_{i} * x" for j in range(i, d)]
    parts = min(4, d)
    for q in range(parts):
        lines.append(f"            s{q} = y{q} * y{q}")
        lines += [f"            s{q} += y{j} * y{j}" for j in range(q + parts, d, parts)]
    total = ("s0", "s0 + s1", "(s0 + s1) + s2", "(s0 + s1) + (s2 + s3)")[parts - 1]
    lines.append(f"            a[t] = -0.5 * ({total}) + c")
    return "\n".join(lines) + "\n"


def _logprob_tile(XT, pcT, PB, hs, bias, log_norm, Y, A, unrolled):
    """A[k] = log pi_k + log N(x | k) for the tile's columns.

    ``unrolled`` is a tuple whose length is known when compiling: d zeros for
    the straight-line code of :func:`_unrolled_source` (d features,
    lower-triangular factors ``pcT`` (K, d, d)), or () for
    :func:`_logprob_full`'s blocked products (the other arguments are
    :func:`_logprob_full`'s). A tuple, not a literal number, because the
    dispatcher matches a tuple's type as fast as any argument's. Run as Python
    (``NUMBA_DISABLE_JIT=1``), it runs the same code.
    """
    if unrolled:
        _generated(_unrolled_source, len(unrolled))(XT, pcT, PB, hs, bias, log_norm, Y, A, unrolled)
    else:
        _logprob_full(XT, PB, hs, bias, log_norm, Y, A)


@functools.cache
def _generated(make_source, d):
    """The function that ``make_source(d)`` defines (its one ``def``), as Python: numba compiles it
    where it is called. The sources of :func:`_unrolled_source`, :func:`_pack_source`,
    :func:`_moments_source` and :func:`_load_source`; made once per d, so that numba sees the same function each time."""
    source = make_source(d)
    namespace = {"sqrt": math.sqrt, "prefetch": _prefetch, "aligned_frame": (lambda: None) if numba.config.DISABLE_JIT else _aligned_frame}
    exec(source, namespace)
    return namespace[source[len("def "):source.index("(")]]


@overload(_logprob_tile, jit_options=dict(fastmath=_OPTIONS["fastmath"], error_model=_OPTIONS["error_model"]))
def _logprob_tile_overload(XT, pcT, PB, hs, bias, log_norm, Y, A, unrolled):
    if len(unrolled):
        return _generated(_unrolled_source, len(unrolled))

    def blocked(XT, pcT, PB, hs, bias, log_norm, Y, A, unrolled):
        _logprob_full(XT, PB, hs, bias, log_norm, Y, A)

    return blocked


@_inline
def _pack_looped(X, i0, centre, cmk, r, used, c, pk, h):
    """:func:`_pack_rows` by a loop over the features."""
    d = X.shape[1]
    for u in range(c):
        t = used[u]
        sr = math.sqrt(r[t])
        for m in range(d):
            pk[m, h + u] = sr * ((X[i0 + t, m] - centre[m]) - cmk[m])
        pk[d, h + u] = sr


def _pack_rows(X, i0, centre, cmk, r, used, c, pk, h, unrolled):
    """pk[:d, h + u] = sqrt(r[t]) ((X[i0 + t] - centre) - cmk) and pk[d, h + u] = sqrt(r[t]) for
    t = used[u], u < c: a component's rows of nonzero responsibility, packed feature-major
    (pk (d + 1, >= h + c)). Where ``unrolled`` has d zeros (:func:`_logprob_tile`), straight-line
    code for d features (:func:`_pack_source`), else :func:`_pack_looped`.
    """
    if unrolled:
        _generated(_pack_source, len(unrolled))(X, i0, centre, cmk, r, used, c, pk, h, unrolled)
    else:
        _pack_looped(X, i0, centre, cmk, r, used, c, pk, h)


def _pack_source(d):
    """The source of :func:`_pack_rows`'s code for ``d`` features: the centre and the component's
    point in locals, and each packed row d stores of the same arithmetic as the loop's.

    A loop over d features known only at run time is compiled with a vectorised version for
    unit strides and run-time checks to choose it, in every row; the rows here are written
    with a stride. The E-step per row on one core, against that loop, in turns, the same
    bytes: d=16 K=8 1.02-1.06x (float32 1.02x), d=12 K=8 1.08-1.13x; 1.06x and 1.13x inlined
    (``inline="always"``) against 1.04x and 1.11x called; where the loop stays (d=24, d=40)
    0.99-1.00x.
    """
    lines = ["def pack(X, i0, centre, cmk, r, used, c, pk, h, unrolled):"]
    lines += [f"    c{j} = centre[{j}]" for j in range(d)]
    lines += [f"    m{j} = cmk[{j}]" for j in range(d)]
    lines += ["    for u in range(c):", "        t = used[u]", "        sr = sqrt(r[t])", "        row = X[i0 + t]"]
    lines += [f"        pk[{j}, h + u] = sr * ((row[{j}] - c{j}) - m{j})" for j in range(d)]
    lines.append(f"        pk[{d}, h + u] = sr")
    return "\n".join(lines) + "\n"


@overload(_pack_rows, inline="always", jit_options=dict(fastmath=_OPTIONS["fastmath"], error_model=_OPTIONS["error_model"]))
def _pack_rows_overload(X, i0, centre, cmk, r, used, c, pk, h, unrolled):
    if len(unrolled):
        return _generated(_pack_source, len(unrolled))

    def looped(X, i0, centre, cmk, r, used, c, pk, h, unrolled):
        _pack_looped(X, i0, centre, cmk, r, used, c, pk, h)

    return looped


@_jit
def _logprob_diag(XT, means, pc, log_norm, A):
    """As :func:`_logprob_full` for diagonal factors pc (K, d), with ``means`` relative to the centre."""
    K = means.shape[0]
    d, B = XT.shape
    for k in range(K):
        a = A[k]
        for t in range(B):
            a[t] = 0.0
        for j in range(d):
            mu = means[k, j]
            p = pc[k, j]
            x = XT[j]
            for t in range(B):
                v = (x[t] - mu) * p
                a[t] += v * v
        c = log_norm[k]
        for t in range(B):
            a[t] = -0.5 * a[t] + c


@_reassoc
def _moments_diag(XT, r, cmk, s1k, s2k):
    """s1k (d,) += sum over the tile of r (x - cm_k), s2k (d,) += sum r (x - cm_k)^2; XT (d, B), r (B,).

    Sums along the tile that LLVM may reassociate, so that it vectorises them
    (as :func:`_gram_upper`), from the tile itself: no centred copies of it are
    stored. Against the code before (each component's centred tile and its
    squares stored, then two BLAS GEMVs, or lanes up to 9 features), the
    E-step per row on one core, in turns in one process: d=16 K=8 1.63-1.72x
    (diag and spherical, float64 and float32), d=5 K=4 1.33x, d=2 K=3 1.13x;
    the per-row outputs, which no longer store the centred copies either,
    1.06-1.46x.
    """
    d, B = XT.shape
    for j in range(d):
        mu = cmk[j]
        x = XT[j]
        s = 0.0
        q = 0.0
        for t in range(B):
            v = x[t] - mu
            rv = r[t] * v
            s += rv
            q += rv * v
        s1k[j] += s
        s2k[j] += q


@_reassoc
def _moments_small(XT, r, cmk, s1k, s2k):
    """s1k (d,) += sum over the tile of r (x - cm_k), s2k (d, d) += sum r (x - cm_k)(x - cm_k)^T
    (its upper triangle, mirrored); XT (d, B), r (B,). Sums along the tile, as :func:`_moments_diag`.

    Against the lanes before (each row's moments added into (K, moments, tile) arrays, summed once
    per block), the E-step per row on one core, in turns in one process: d=2 K=3 1.10x (float64)
    and 1.07x (float32), d=5 K=4 1.10x and 1.09x, d=8 K=8 1.12x and 1.05x. Since the twenty-fifth
    session only for factors that are not triangular: the others take :func:`_moments_tile`'s
    one sweep.
    """
    d, B = XT.shape
    for m in range(d):
        mu = cmk[m]
        xm = XT[m]
        s = 0.0
        for t in range(B):
            s += r[t] * (xm[t] - mu)
        s1k[m] += s
        for j in range(m, d):
            nu = cmk[j]
            xj = XT[j]
            q = 0.0
            for t in range(B):
                q += (r[t] * (xm[t] - mu)) * (xj[t] - nu)
            s2k[m, j] += q
            if j != m:
                s2k[j, m] += q


def _moments_tile(XT, r, cmk, s1k, s2k, unrolled):
    """:func:`_moments_small`'s sums, in one sweep of the tile (:func:`_moments_source`) where
    ``unrolled`` has d zeros (triangular factors, up to :data:`UNROLL_MAX_FEATURES` features).
    :func:`estep_full` takes it for every tile below :data:`PACK_MIN_FEATURES` features, and from
    there for a component's dense tiles, those it does not pack (over 3/4 of their rows of
    nonzero responsibility)."""
    _moments_small(XT, r, cmk, s1k, s2k)


def _moments_source(d):
    """The source of :func:`_moments_tile`'s code for ``d`` features: every sum of
    :func:`_moments_small` (the same arithmetic for each row) is a local, and one sweep of the
    tile reads each row's values once and adds to all of them.

    :func:`_moments_small` sweeps the tile d + d (d + 1) / 2 times, reading r and two features
    for each product. The E-step per row on one core, against it, in turns, 15-21 rounds
    (twenty-fifth session; the sums reassociated differently, equal to the tests' 1e-10):
    separated components (the benchmark's data) d=1 K=3 1.07x, d=2 K=3 1.19x, K=20 1.31x, d=3
    1.25x, d=4 1.24x, d=5 1.71x, d=6 1.59-1.83x; overlapping ones d=2 1.10x, d=4 1.44x, d=6 1.65x.
    On dense tiles from :data:`PACK_MIN_FEATURES` features, against the (r X_c) X_c^T dot
    products of :func:`_gram_upper`, overlapping components (every tile dense), K=8 but where
    said: d=9 1.20x, d=10 1.13x (K=4 1.27x), d=12 1.19x (K=4 1.37x), d=14 1.36x, d=16 1.13x,
    d=18 1.06x; separated ones, whose tiles are packed, the same (d=10 1.01x, d=16 1.00x).
    """
    pairs = [(m, j) for m in range(d) for j in range(m, d)]
    lines = ["def moments(XT, r, cmk, s1k, s2k, unrolled):", "    aligned_frame()", "    B = XT.shape[1]"]
    lines += [f"    x{m} = XT[{m}]" for m in range(d)]
    lines += [f"    c{m} = cmk[{m}]" for m in range(d)]
    lines += [f"    s{m} = 0.0" for m in range(d)]
    lines += [f"    q{m}_{j} = 0.0" for m, j in pairs]
    lines += ["    for t in range(B):", "        rt = r[t]"]
    for m in range(d):
        lines += [f"        y{m} = x{m}[t] - c{m}", f"        w{m} = rt * y{m}"]
    lines += [f"        s{m} += w{m}" for m in range(d)]
    lines += [f"        q{m}_{j} += w{m} * y{j}" for m, j in pairs]
    lines += [f"    s1k[{m}] += s{m}" for m in range(d)]
    for m, j in pairs:
        lines.append(f"    s2k[{m}, {j}] += q{m}_{j}")
        if j != m:
            lines.append(f"    s2k[{j}, {m}] += q{m}_{j}")
    return "\n".join(lines) + "\n"


@overload(_moments_tile, jit_options=dict(fastmath=_REASSOC["fastmath"], error_model=_REASSOC["error_model"]))
def _moments_tile_overload(XT, r, cmk, s1k, s2k, unrolled):
    # compiled apart (not inlined), as the other _reassoc sums
    if len(unrolled):
        return _generated(_moments_source, len(unrolled))

    def looped(XT, r, cmk, s1k, s2k, unrolled):
        _moments_small(XT, r, cmk, s1k, s2k)

    return looped


@_jit
def _softmax(A, lse, ssum, bits, with_log=True):
    """A (K, B) -> exp(A - max over k); lse = the log-sum-exp of each column (only the
    maxima without ``with_log``), ssum = the sums.

    A column of -inf gives lse -inf and ssum 0 (NaN responsibilities, as the
    NumPy reference); NaN propagates; +inf gives +inf. An entry more than 600
    below its column's maximum (:data:`dask_gmm._covariance.RESP_MIN_LOG`) gives 0,
    computed as exp(-inf): no subnormal numbers.
    """
    K, B = A.shape
    mx = lse  # the maxima, then the log-sum-exps
    for t in range(B):
        mx[t] = -np.inf
        ssum[t] = 0.0
    for k in range(K):
        for t in range(B):
            v = A[k, t]
            mx[t] = v if v > mx[t] else mx[t]
    for t in range(B):
        m = mx[t]
        mx[t] = m if (m > -np.inf and m < np.inf) else 0.0  # the reference's m_safe
    for k in range(K):
        a = A[k]
        for t in range(B):
            v = a[t] - mx[t]
            e = _exp1(-np.inf if v < RESP_MIN_LOG else v)  # NaN stays NaN
            a[t] = e
            ssum[t] += e
    if with_log:
        _add_log(lse, ssum, bits)


@_jit
def _add_log(lse, ssum, bits):
    """lse += log(ssum), vectorised (scratch: bits (2, B) int64, and bits[1] as floats)."""
    tmp = bits[1].view(np.float64)
    _log_tile(ssum, tmp, bits)
    for t in range(lse.shape[0]):
        lse[t] += tmp[t]


@_jit
def _estep_tile(A, b, w, i0, lse, ssum, bits):
    """Log-probabilities A (K, B) -> weighted responsibilities (0 in the padding); returns sum w * lse."""
    K, B = A.shape
    _softmax(A, lse, ssum, bits)
    if w.shape[0] > 0:
        for t in range(b):
            wt = w[i0 + t]
            lse[t] *= wt
            ssum[t] = wt / ssum[t]
    else:
        for t in range(b):
            ssum[t] = 1.0 / ssum[t]
    for t in range(b, B):  # the padding
        lse[t] = 0.0
        ssum[t] = 0.0
    for k in range(K):
        for t in range(B):
            A[k, t] *= ssum[t]
    return _sum8(lse, B)


# ------------------------------------------------------------------ E-step
@_jit
def _bias(pcT, means):
    """(K, d): ``pcT[k] @ means[k]``."""
    K, d = means.shape
    out = np.zeros((K, d))
    for k in range(K):
        for i in range(d):
            for j in range(d):
                out[k, i] += pcT[k, i, j] * means[k, j]
    return out


@_jit
def _mahalanobis_setup(pcT, means, hs, B, straight):
    """What :func:`_logprob_tile` takes besides the tile: the biases ``P_k^T (mu_k - c)`` and,
    for :func:`_logprob_full` (not ``straight``), its GEMM outputs' scratch and the factors' row
    blocks (empty for the straight-line code, which reads neither)."""
    K, d = means.shape
    if straight:
        return np.empty((0, B)), np.empty(0), _bias(pcT, means)
    return np.empty((max(d, K * hs), B)), _factor_blocks(pcT, hs), _bias(pcT, means)


@_reassoc
def _gram_upper_2x4(A, B, c, S):
    """S[i, j] = sum over u < c of A[i, u] * B[j, u] for i <= j; A, B (e, >= c), S (e, e).

    Entries below the diagonal are scratch. The sums in blocks of 2 rows by 4
    columns, each a loop along u that LLVM vectorises: this function alone lets
    it reassociate the sums (``reassoc``), which it needs to split a sum across
    vector lanes. The order of the additions is then the compiler's, as a BLAS
    call's is its library's; NaN and infinities keep their meaning (no ``nnan``,
    ``ninf``). See :data:`_gram_upper` for the block shapes.
    """
    e = S.shape[0]
    for i in range(0, e, 2):
        i1 = min(i + 1, e - 1)
        a0, a1 = A[i], A[i1]
        for j in range(i, e, 4):
            j1, j2, j3 = min(j + 1, e - 1), min(j + 2, e - 1), min(j + 3, e - 1)
            b0, b1, b2, b3 = B[j], B[j1], B[j2], B[j3]
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = 0.0
            for u in range(c):
                x0, x1 = a0[u], a1[u]
                y0, y1, y2, y3 = b0[u], b1[u], b2[u], b3[u]
                s00 += x0 * y0
                s01 += x0 * y1
                s02 += x0 * y2
                s03 += x0 * y3
                s10 += x1 * y0
                s11 += x1 * y1
                s12 += x1 * y2
                s13 += x1 * y3
            S[i, j], S[i, j1], S[i, j2], S[i, j3] = s00, s01, s02, s03
            S[i1, j], S[i1, j1], S[i1, j2], S[i1, j3] = s10, s11, s12, s13


@_reassoc
def _gram_upper_4x4(A, B, c, S):
    """:func:`_gram_upper_2x4` in blocks of 4 rows by 4 columns (16 sums: for 32 vector registers)."""
    e = S.shape[0]
    for i in range(0, e, 4):
        i1, i2, i3 = min(i + 1, e - 1), min(i + 2, e - 1), min(i + 3, e - 1)
        a0, a1, a2, a3 = A[i], A[i1], A[i2], A[i3]
        for j in range(i, e, 4):
            j1, j2, j3 = min(j + 1, e - 1), min(j + 2, e - 1), min(j + 3, e - 1)
            b0, b1, b2, b3 = B[j], B[j1], B[j2], B[j3]
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = 0.0
            s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = 0.0
            for u in range(c):
                x0, x1, x2, x3 = a0[u], a1[u], a2[u], a3[u]
                y0, y1, y2, y3 = b0[u], b1[u], b2[u], b3[u]
                s00 += x0 * y0
                s01 += x0 * y1
                s02 += x0 * y2
                s03 += x0 * y3
                s10 += x1 * y0
                s11 += x1 * y1
                s12 += x1 * y2
                s13 += x1 * y3
                s20 += x2 * y0
                s21 += x2 * y1
                s22 += x2 * y2
                s23 += x2 * y3
                s30 += x3 * y0
                s31 += x3 * y1
                s32 += x3 * y2
                s33 += x3 * y3
            S[i, j], S[i, j1], S[i, j2], S[i, j3] = s00, s01, s02, s03
            S[i1, j], S[i1, j1], S[i1, j2], S[i1, j3] = s10, s11, s12, s13
            S[i2, j], S[i2, j1], S[i2, j2], S[i2, j3] = s20, s21, s22, s23
            S[i3, j], S[i3, j1], S[i3, j2], S[i3, j3] = s30, s31, s32, s33


def _compiles_for_avx512():
    """Whether numba compiles for AVX-512 here (its 32 vector registers): the CPU features numba
    was told (``NUMBA_CPU_FEATURES``), else the host's."""
    features = numba.config.CPU_FEATURES or llvm.get_host_cpu_features().flatten()
    return "+avx512f" in features


#: The second moments' dot products (:func:`_gram_upper_2x4`): blocks of 4 x 4 sums where numba
#: compiles for AVX-512, else 2 x 4. 16 sums and the 8 values they load a step need more than
#: AVX2's 16 vector registers. Before, blocks of 2 x 2 (4 values loaded a step for 4 sums). The
#: product alone, per row on one core (Zen 5, in turns), against 2 x 2: 4 x 4 e=10 (504 rows)
#: 1.2-1.3x, e=17 0.9-1.8x, e=33 1.6-2.2x, e=49 1.1-1.6x, e=65 1.2-2.0x; 2 x 4 0.8-1.3x on
#: AVX-512; compiled for AVX2 (``NUMBA_CPU_FEATURES``), 2 x 4 1.1-1.5x and 4 x 4 0.6-0.9x.
#: The whole E-step, one core, against 2 x 2 (two processes): 4 x 4 overlapping components d=24
#: K=8 1.02x, d=32 K=8 1.06-1.18x, d=48 K=8 1.11x, d=64 K=4 1.12-1.17x, d=12-20 the same
#: (0.99-1.03x); 2 x 4 1.07x at d=32 and d=64. Fits (two threads, 10 iterations, in turns, 7
#: rounds): d=32 1.06x, d=48 1.16x, d=64 1.14x, the benchmark's d=16 K=8 1.01x.
_gram_upper = _gram_upper_4x4 if _compiles_for_avx512() else _gram_upper_2x4


@_inline
def _add_upper(S, s1k, s2k, ones):
    """s2k (d, d) += S's upper triangle (d, d), mirrored; and, where ``ones`` (S (d + 1, d + 1) with
    a last row of ones or sqrt(r)), s1k (d,) += S[:d, d]. S from :func:`_gram_upper` or a GEMM
    (whose lower triangle, equal but for rounding, is not read: s2 comes out exactly symmetric)."""
    d = s2k.shape[0]
    for m in range(d):
        if ones:
            s1k[m] += S[m, d]
        s2k[m, m] += S[m, m]
        for j in range(m + 1, d):
            v = S[m, j]
            s2k[m, j] += v
            s2k[j, m] += v


@_inline
def _packed_moments(pk, c, S, s1k, s2k, gram):
    """s2k (d, d) += the second moments and s1k (d,) += the first moments of the c packed rows of
    pk, each sqrt(r) (x - cm_k) then sqrt(r) (d + 1 values), through the scratch S (d + 1, d + 1).
    ``gram``: pk (d + 1, >= c) holds them feature-major, for :func:`_gram_upper`; else pk (at least
    c rounded up to 8, d + 1) holds them row by row for one GEMM, and its rows up to a multiple of 8
    are zeroed."""
    if gram:
        _gram_upper(pk, pk, c, S)
    else:
        c8 = (c + 7) // 8 * 8
        for u in range(c, c8):
            for m in range(pk.shape[1]):
                pk[u, m] = 0.0
        xs = pk[:c8]
        np.dot(xs.T, xs, S)
    _add_upper(S, s1k, s2k, True)


@_jit
def estep_full(X, w, centre, means, cm, pcT, hs, unrolled, log_norm, tile, nk, s1c, s2):
    """Add a block's statistics to nk (K,), s1c (K, d), s2 (K, d, d) for full factors.

    ``w`` is the (n,) sample weight or an empty array for unit weights;
    ``means`` (K, d) are relative to ``centre`` (d,), on which each tile is
    centred once, and so is ``cm`` (K, d), the points the moments are centred
    on (``means`` itself, but for :func:`dask_gmm._em.recentred`); ``pcT`` (K, d, d) the
    transposed precision Cholesky factors, whose Mahalanobis sums are straight-line code for
    d features where ``unrolled`` (:func:`_logprob_tile`) has d zeros, else GEMMs in blocks of
    ``hs`` rows (see :func:`_logprob_full`). Below :data:`PACK_MIN_FEATURES` features the moments
    are sums along the tile (:func:`_moments_tile`, no BLAS call); from there, the second moments are
    :func:`_gram_upper`'s dot products up to :data:`GRAM_MAX_FEATURES` features, GEMMs
    past them. From :data:`PACK_MIN_FEATURES` features on, the
    second-moment product of a component runs on only the rows whose
    responsibility is not exactly 0 when they are at most 3/4 of the tile:
    those are packed, and a component's packed rows from successive tiles
    share one product, up to two tiles' worth. A denser tile's moments are
    :func:`_moments_tile`'s one sweep where the factors are triangular up to
    :data:`UNROLL_MAX_FEATURES` features, else its own product.
    Returns the (weighted) sum of the rows' log-likelihoods.
    """
    n, d = X.shape
    K = means.shape[0]
    B = tile
    XT, A, lse, ssum, bits = _scratch(K, d, B)
    Y, PB, bias = _mahalanobis_setup(pcT, means, hs, B, len(unrolled) > 0)
    small = d < PACK_MIN_FEATURES  # few features: the moments are sums along the tile, no BLAS call
    pack = not small  # more: the rows of nonzero responsibility are packed
    # packed: a last row of ones in XK (of sqrt(r) in P) makes the second-moment product give the first
    # moments sum r (x - cm_k) too, directly: not sum r (x - c) less (sum r) (cm_k - c), which cancels
    # after a far start (a recomputed iteration, _em.recentred: 6.6e-9 of the means at d=12 in a probe)
    e = d + pack
    XK = np.empty((e, B))
    RX = np.empty((e, B))
    S = np.empty((e, e))
    used = np.empty(B, dtype=np.int64)
    gram = d <= GRAM_MAX_FEATURES  # second moments by _gram_upper, not GEMMs
    # each component's packed rows, up to two tiles': feature-major for _gram_upper, else row by row
    P = np.empty((K if pack else 0, e, 2 * B + 8) if gram else (K if pack else 0, 2 * B + 8, e))
    held = np.zeros(K, dtype=np.int64)  # rows held in P
    if pack:
        for t in range(B):
            XK[d, t] = 1.0
    ll = 0.0
    for i0 in range(0, n, B):
        b = min(B, n - i0)
        _load_tile(X, i0, b, centre, XT, unrolled)
        _logprob_tile(XT, pcT, PB, hs, bias, log_norm, Y, A, unrolled)
        ll += _estep_tile(A, b, w, i0, lse, ssum, bits)
        if small:
            for k in range(K):
                r = A[k]
                nk[k] += _sum8(r, B)
                _moments_tile(XT, r, cm[k], s1c[k], s2[k], unrolled)
            continue
        for k in range(K):
            r = A[k]
            nk[k] += _sum8(r, B)
            c = 0  # the tile's rows with r > 0, packed in order (rows with r == 0 add exactly 0)
            for t in range(B):
                used[c] = t
                c += r[t] != 0.0
            if c == 0:
                continue
            if c > B - B // 4 and len(unrolled) > 0:  # a dense tile: every moment in one sweep
                _moments_tile(XT, r, cm[k], s1c[k], s2[k], unrolled)
            elif c > B - B // 4:
                for m in range(d):
                    mu = cm[k, m]
                    for t in range(B):
                        v = XT[m, t] - mu
                        XK[m, t] = v
                        RX[m, t] = r[t] * v
                for t in range(B):
                    RX[d, t] = r[t]
                if gram:
                    _gram_upper(RX, XK, B, S)  # (r X_c) X_c^T, its upper triangle
                else:
                    np.dot(RX, XK.T, S)  # (r X_c) X_c^T, one GEMM
                _add_upper(S, s1c[k], s2[k], True)
            else:  # the packed rows sqrt(r) (x - mu_k), read along X's rows, gathered over tiles
                if held[k] + c > 2 * B:
                    _packed_moments(P[k], held[k], S, s1c[k], s2[k], gram)
                    held[k] = 0
                h = held[k]
                if gram:  # written feature-major (gathered from the tile, XT, the d=16 E-step lost 1.4x)
                    _pack_rows(X, i0, centre, cm[k], r, used, c, P[k], h, unrolled)
                else:
                    pk = P[k, h:]
                    for u in range(c):
                        t = used[u]
                        sr = math.sqrt(r[t])
                        for m in range(d):
                            pk[u, m] = sr * ((X[i0 + t, m] - centre[m]) - cm[k, m])
                        pk[u, d] = sr
                held[k] += c
    for k in range(K):
        if held[k] > 0:
            _packed_moments(P[k], held[k], S, s1c[k], s2[k], gram)
    return ll


@_jit
def estep_diag(X, w, centre, means, cm, pc, log_norm, tile, nk, s1c, s2):
    """Add a block's statistics to nk (K,), s1c (K, d), s2 (K, d) for diagonal factors pc (K, d),
    the moments centred on ``cm`` (K, d; both relative to ``centre``, as :func:`estep_full`)."""
    n, d = X.shape
    K = means.shape[0]
    B = tile
    XT, A, lse, ssum, bits = _scratch(K, d, B)
    ll = 0.0
    for i0 in range(0, n, B):
        b = min(B, n - i0)
        _load_tile(X, i0, b, centre, XT, ())
        _logprob_diag(XT, means, pc, log_norm, A)
        ll += _estep_tile(A, b, w, i0, lse, ssum, bits)
        for k in range(K):
            r = A[k]
            nk[k] += _sum8(r, B)
            _moments_diag(XT, r, cm[k], s1c[k], s2[k])
    return ll


# ------------------------------------------------------------------ tied: one shared factor
@_jit
def _tied_setup(pT, means, hs, B):
    """What :func:`_logprob_tied` takes besides the tile: its product's scratch Y (d, B), the shared
    factor's row blocks (:func:`_factor_blocks`) and the biases ``P^T (mu_k - c)`` (K, d)."""
    d = pT.shape[0]
    K = means.shape[0]
    pcT = pT.reshape((1, d, d))
    bias = np.zeros((K, d))
    for k in range(K):
        for i in range(d):
            for j in range(d):
                bias[k, i] += pT[i, j] * means[k, j]
    return np.empty((d, B)), _factor_blocks(pcT, hs), bias


@_jit
def _logprob_tied(XT, PB, hs, bias, log_norm, Y, A):
    """A[k] = log pi_k + log N(x | k) for the tile's columns, every component with one factor P.

    ``Y = P^T XT`` is made once for the tile (in row blocks of ``hs``, as
    :func:`_logprob_full` makes each component's), and ``Y - bias[k]`` has the
    rows of ``(x - mu_k) @ P`` as columns: d^2 / 2 multiply-adds a row for the
    product, then 2 K d for the distances (K d^2 / 2 with a product per component).
    """
    K = bias.shape[0]
    d, B = XT.shape
    o = 0
    for q0 in range(0, d, hs):
        q1 = min(d, q0 + hs)
        s = q1 - q0
        P = PB[o : o + s * q1].reshape((s, q1))
        if d <= SMALL_MAX_FEATURES:
            _small_matmul(P, XT, Y[q0:q1])
        else:
            np.dot(P, XT[:q1], Y[q0:q1])
        o += s * q1
    for k in range(K):
        a = A[k]
        _squared_distances(Y, bias[k], a)
        c = log_norm[k]
        for t in range(B):
            a[t] = -0.5 * a[t] + c


@_reassoc
def _cross(A, B, c, S):
    """S[i, j] = sum over u < c of A[i, u] * B[j, u]; A (m, >= c), B (e, >= c), S (m, e): dot products
    along the tile, where :func:`_gram_upper`'s are used, for the same reason (a GEMM's fixed cost,
    :data:`GRAM_MAX_FEATURES`)."""
    for i in range(A.shape[0]):
        a = A[i]
        for j in range(B.shape[0]):
            b = B[j]
            s = 0.0
            for u in range(c):
                s += a[u] * b[u]
            S[i, j] = s


@_inline
def _add_scatter(RX, XT, S, U, gram):
    """U (d, d) += the upper triangle of ``RX XT^T`` (both (d, B)), through the scratch S (d, d):
    :func:`_gram_upper`'s dot products (``gram``), else a GEMM."""
    if gram:
        _gram_upper(RX, XT, XT.shape[1], S)
    else:
        np.dot(RX, XT.T, S)
    for m in range(U.shape[0]):
        for j in range(m, U.shape[0]):
            U[m, j] += S[m, j]


@_jit
def estep_tied(X, w, centre, means, cm, pT, hs, unrolled, log_norm, tile, nk, s1c, s2):
    """Add a block's statistics to nk (K,), s1c (K, d) and s2 (d, d), the components' second
    moments summed, for one factor ``pT`` (d, d) shared by every component (tied).

    The arguments are :func:`estep_full`'s (``unrolled`` only chooses the tile's load). The
    Mahalanobis sums are :func:`_logprob_tied`'s, and the second moments are pooled: each
    tile adds ``sum_t s_t a_t a_t^T`` (``a_t = x_t - c``, ``s_t`` the row's responsibilities
    summed) and each component's first moments about c, ``T_k = sum_t r_tk a_t``; at the end
    ``s1c_k = T_k - nk_k cm_k`` and ``s2 = sum_t s_t a_t a_t^T - sum_k (cm_k u_k^T + u_k cm_k^T)``
    with ``u_k = s1c_k + nk_k cm_k / 2``, which is ``sum_k sum_t r_tk (a_t - cm_k)(a_t - cm_k)^T``.
    That is about 2 d^2 + 3 K d multiply-adds a row, not 2 K d^2, but it cancels as the points ``cm``
    lie farther from c: :class:`Prepared` sends a model here only while they lie within
    :data:`MAX_POOLED_DISTANCE` of it (``pooled``).
    Returns the (weighted) sum of the rows' log-likelihoods.
    """
    n, d = X.shape
    K = means.shape[0]
    B = tile
    XT, A, lse, ssum, bits = _scratch(K, d, B)
    Y, PB, bias = _tied_setup(pT, means, hs, B)
    RX = np.empty((d, B))
    S = np.empty((d, d))
    U = np.zeros((d, d))  # sum_t s_t a_t a_t^T, its upper triangle
    T = np.zeros((K, d))  # sum_t r_tk a_t
    TK = np.empty((K, d))
    n0 = np.zeros(K)
    gram = d <= GRAM_MAX_FEATURES
    ll = 0.0
    for i0 in range(0, n, B):
        b = min(B, n - i0)
        _load_tile(X, i0, b, centre, XT, unrolled)
        _logprob_tied(XT, PB, hs, bias, log_norm, Y, A)
        ll += _estep_tile(A, b, w, i0, lse, ssum, bits)
        for t in range(B):
            ssum[t] = 0.0
        for k in range(K):
            r = A[k]
            n0[k] += _sum8(r, B)
            for t in range(B):
                ssum[t] += r[t]
        for m in range(d):
            x = XT[m]
            rx = RX[m]
            for t in range(B):
                rx[t] = ssum[t] * x[t]
        _add_scatter(RX, XT, S, U, gram)
        if gram:
            _cross(A, XT, B, TK)
        else:
            np.dot(A, XT.T, TK)
        for k in range(K):
            for m in range(d):
                T[k, m] += TK[k, m]
    for k in range(K):
        nk[k] += n0[k]
        for m in range(d):
            v = T[k, m] - n0[k] * cm[k, m]
            s1c[k, m] += v
            TK[k, m] = v + 0.5 * n0[k] * cm[k, m]  # u_k
    for m in range(d):
        for j in range(m, d):
            v = U[m, j]
            for k in range(K):
                v -= cm[k, m] * TK[k, j] + TK[k, m] * cm[k, j]
            s2[m, j] += v
            if j > m:
                s2[j, m] += v
    return ll


# ------------------------------------------------------------------ per-row outputs
@_jit
def _rows_out(A, i0, b, lse, ssum, bits, lse_out, proba_out, label_out):
    """Write a tile's per-row outputs from its log-probabilities A (K, B); False if a row is bad.

    Labels: argmax (the first maximum, as NumPy); bad = a row whose largest
    log-probability is not finite (a NaN or infinite value in the row gives NaN
    or -inf in every component; so does a row so far out that the distances
    overflow, which the caller tells apart). Otherwise bad = a non-finite
    log-likelihood, that is a sum of exponentials outside [1, inf).
    """
    K = A.shape[0]
    if label_out.shape[0] > 0:
        top, best = lse, bits[0]  # along the tile, component by component: loops that vectorise
        for t in range(b):
            top[t] = A[0, t]
            best[t] = 0
        for k in range(1, K):
            for t in range(b):
                v = A[k, t]
                more = v > top[t]
                top[t] = v if more else top[t]
                best[t] = k if more else best[t]
        ok = True
        for t in range(b):
            label_out[i0 + t] = best[t]
            ok = ok and (top[t] > -np.inf and top[t] < np.inf)
        return ok
    _softmax(A, lse, ssum, bits, lse_out.shape[0] > 0)
    ok = True
    for t in range(b):
        if not (ssum[t] >= 1.0 and ssum[t] < np.inf):
            ok = False
    if lse_out.shape[0] > 0:
        for t in range(b):
            lse_out[i0 + t] = lse[t]
    if proba_out.shape[0] > 0:
        for t in range(b):
            ssum[t] = 1.0 / ssum[t]
        _store_rows(A, ssum, b, proba_out[i0 : i0 + b])
    return ok


@_inline
def _store_rows(A, s, b, out):
    """out[t, k] = A[k, t] * s[t] for t < b: a tile's columns written as rows.

    Two to four components written one by one in each row, not by a loop over
    them: a loop of K iterations per row costs its set-up in every row. With
    the labels' argmax along the tile (:func:`_rows_out`) and the sums of
    :func:`_softmax` made in its exp loop, against the loops before, per row
    on one core in turns (2026-12-02, Zen 5; the same bytes): predict_proba
    d=2 K=3 1.21x, d=5 K=4 1.19x, d=16 K=8 1.01x; predict 1.27x, 1.30x,
    1.03x, d=5 K=20 2.15x; score_samples d=2 1.04-1.06x; the E-step d=2
    1.01-1.03x.
    """
    K = A.shape[0]
    if K == 2:
        for t in range(b):
            st = s[t]
            out[t, 0], out[t, 1] = A[0, t] * st, A[1, t] * st
    elif K == 3:
        for t in range(b):
            st = s[t]
            out[t, 0], out[t, 1], out[t, 2] = A[0, t] * st, A[1, t] * st, A[2, t] * st
    elif K == 4:
        for t in range(b):
            st = s[t]
            out[t, 0], out[t, 1], out[t, 2], out[t, 3] = A[0, t] * st, A[1, t] * st, A[2, t] * st, A[3, t] * st
    else:
        for t in range(b):
            for k in range(K):
                out[t, k] = A[k, t] * s[t]


@_jit
def rows_full(X, centre, means, pcT, hs, unrolled, log_norm, tile, lse_out, proba_out, label_out):
    """Per-row outputs for full factors.

    Fills whichever of ``lse_out`` (n,), ``proba_out`` (n, K) and ``label_out``
    (n,) int64 has n rows (pass empty arrays for the others). Returns False if
    a row's largest log-probability (labels) or its log-likelihood (the others)
    is not finite.
    """
    n, d = X.shape
    K = means.shape[0]
    B = tile
    XT, A, lse, ssum, bits = _scratch(K, d, B)
    Y, PB, bias = _mahalanobis_setup(pcT, means, hs, B, len(unrolled) > 0)
    ok = True
    for i0 in range(0, n, B):
        b = min(B, n - i0)
        _load_tile(X, i0, b, centre, XT, unrolled)
        _logprob_tile(XT, pcT, PB, hs, bias, log_norm, Y, A, unrolled)
        ok = _rows_out(A, i0, b, lse, ssum, bits, lse_out, proba_out, label_out) and ok
    return ok


@_jit
def rows_tied(X, centre, means, pT, hs, unrolled, log_norm, tile, lse_out, proba_out, label_out):
    """As :func:`rows_full` for one factor ``pT`` (d, d) shared by every component
    (:func:`_logprob_tied`'s Mahalanobis sums)."""
    n, d = X.shape
    K = means.shape[0]
    B = tile
    XT, A, lse, ssum, bits = _scratch(K, d, B)
    Y, PB, bias = _tied_setup(pT, means, hs, B)
    ok = True
    for i0 in range(0, n, B):
        b = min(B, n - i0)
        _load_tile(X, i0, b, centre, XT, unrolled)
        _logprob_tied(XT, PB, hs, bias, log_norm, Y, A)
        ok = _rows_out(A, i0, b, lse, ssum, bits, lse_out, proba_out, label_out) and ok
    return ok


@_jit
def rows_diag(X, centre, means, pc, log_norm, tile, lse_out, proba_out, label_out):
    """As :func:`rows_full` for diagonal factors."""
    n, d = X.shape
    K = means.shape[0]
    B = tile
    XT, A, lse, ssum, bits = _scratch(K, d, B)
    ok = True
    for i0 in range(0, n, B):
        b = min(B, n - i0)
        _load_tile(X, i0, b, centre, XT, ())
        _logprob_diag(XT, means, pc, log_norm, A)
        ok = _rows_out(A, i0, b, lse, ssum, bits, lse_out, proba_out, label_out) and ok
    return ok


# ------------------------------------------------------------------ k-means (initialisation)
@_jit
def nearest_tiles(X, centres, labels, d2):
    """labels (n,) int64 and d2 (n,): each row's nearest centre of ``centres`` (m, d) (the first
    of equals, as argmin) and its squared Euclidean distance, summed as ``sum (x - c)^2``.

    A tile at a time: the tile is loaded transposed (as the E-step's, not centred), then for
    each centre the distances of all its rows are summed feature by feature and compared,
    loops along the rows that LLVM vectorises. A row with NaN or infinity, or whose
    distances to every centre overflow, gets label 0 and d2 inf.
    """
    n, d = X.shape
    m = centres.shape[0]
    B = TILE_ROWS
    XT = np.empty((d, B))
    dist = np.empty(B)
    best = np.empty(B)
    lab = np.empty(B, dtype=np.int64)
    origin = np.zeros(d)
    for i0 in range(0, n, B):
        b = min(B, n - i0)
        _load_tile(X, i0, b, origin, XT, ())
        for t in range(B):
            best[t] = np.inf
            lab[t] = 0
        for c in range(m):
            for t in range(B):
                dist[t] = 0.0
            for j in range(d):
                cj = centres[c, j]
                xj = XT[j]
                for t in range(B):
                    v = xj[t] - cj
                    dist[t] += v * v
            for t in range(B):
                closer = dist[t] < best[t]
                best[t] = dist[t] if closer else best[t]
                lab[t] = c if closer else lab[t]
        for t in range(b):
            labels[i0 + t] = lab[t]
            d2[i0 + t] = best[t]


@_jit
def hard_moments_full(X, w, centres, labels, nk, s1c, s2):
    """Add to nk (K,), s1c (K, d) and s2 (K, d, d) the statistics of each row's hard assignment
    to ``centres[labels[i]]``: its weight, ``w (x - c)`` and ``w (x - c)(x - c)^T`` (its lower
    triangle summed, then mirrored onto the upper one, whose values are overwritten). ``w`` is the
    (n,) sample weight or empty for unit weights."""
    n, d = X.shape
    v = np.empty(d)
    for i in range(n):
        k = labels[i]
        wi = 1.0 if w.shape[0] == 0 else w[i]
        nk[k] += wi
        for j in range(d):
            v[j] = X[i, j] - centres[k, j]
            s1c[k, j] += wi * v[j]
        for a in range(d):
            va = wi * v[a]
            for j in range(a + 1):
                s2[k, a, j] += va * v[j]
    for k in range(s2.shape[0]):
        for a in range(d):
            for j in range(a):
                s2[k, j, a] = s2[k, a, j]


#: Rows of a tile in :func:`resp_moments_full` and :func:`hard_moments_grouped`.
RESP_TILE = 256
#: From this many features a full model's hard-assignment moments are gathered by component
#: (:func:`hard_moments_grouped`); below, a row at a time (:func:`hard_moments_full`). Per row on one
#: core, the grouped kernel against the row's, one block of 50,000 rows: d=24 0.71-1.16x, d=32
#: 1.05-1.36x, d=40 0.81-1.36x; blocks of 1,000-4,000 rows, 8 to 500 rows a component: d=32
#: 1.4-2.1x, d=64 1.4-2.1x, d=128 1.1-1.6x, d=256 1.3-1.5x, d=500 1.2-2.1x (2026-12-07, Zen 3,
#: noisy; docs/performance.md, sixty-eighth session).
GROUPED_MIN_FEATURES = 32


@_jit
def hard_moments_grouped(X, w, centres, labels, nk, s1c, s2):
    """As :func:`hard_moments_full`, with s2 (K, d, d) whole (symmetric), each component's rows
    gathered: their indices sorted by label (a counting sort, stable), then :data:`RESP_TILE` of a
    component's rows at a time packed feature-major as ``sqrt(w) (x - c)`` with a last row
    ``sqrt(w)``, whose :func:`_gram_upper` dot products give ``w (x - c)(x - c)^T`` and ``w (x - c)``
    (d^2 a row from the cache, where a row at a time into its component's (d, d) sums is
    memory-bound once they outgrow it: d=500, K=128 about 0.2-0.3 ms a row). Dot products rather
    than BLAS for one order of sums whatever BLAS's threads (as :func:`resp_moments_full`); they
    measured as fast as GEMMs here (d=64 to 500)."""
    n, d = X.shape
    K = centres.shape[0]
    start = np.zeros(K + 1, dtype=np.int64)
    for i in range(n):
        start[labels[i] + 1] += 1
    for k in range(K):
        start[k + 1] += start[k]
    at = start[:K].copy()
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        order[at[labels[i]]] = i
        at[labels[i]] += 1
    r = w if w.shape[0] > 0 else np.ones(n)
    zero = np.zeros(d)
    pk = np.empty((d + 1, RESP_TILE))
    S = np.empty((d + 1, d + 1))
    for k in range(K):
        for u0 in range(start[k], start[k + 1], RESP_TILE):
            c = min(RESP_TILE, start[k + 1] - u0)
            used = order[u0 : u0 + c]
            for u in range(c):
                nk[k] += r[used[u]]
            _pack_looped(X, 0, centres[k], zero, r, used, c, pk, 0)  # the E-step's: sqrt(w) (x - c), sqrt(w)
            _packed_moments(pk, c, S, s1c[k], s2[k], True)


@_jit
def hard_scatter(X, w, centres, labels, tile, s2):
    """Add to s2 (d, d) the rows' scatter about their centres, ``sum_i w_i (x_i - c)(x_i - c)^T``
    with ``c = centres[labels[i]]``: the components' second moments of :func:`hard_moments_full`
    summed (tied), pooled as :func:`estep_tied`'s, ``tile`` rows a product (d^2 a row, in BLAS or
    :func:`_gram_upper`, where a row at a time into its component's (d, d) sums was memory-bound: at
    K=128, d=500 they took 256 MB)."""
    n, d = X.shape
    B = tile
    Y = np.empty((d, B))
    RY = np.empty((d, B))
    S = np.empty((d, d))
    U = np.zeros((d, d))
    gram = d <= GRAM_MAX_FEATURES
    for i0 in range(0, n, B):
        b = min(B, n - i0)
        for t in range(b):
            k = labels[i0 + t]
            wt = 1.0 if w.shape[0] == 0 else w[i0 + t]
            for m in range(d):
                v = X[i0 + t, m] - centres[k, m]
                Y[m, t] = v
                RY[m, t] = wt * v
        for m in range(d):
            for t in range(b, B):
                Y[m, t] = 0.0
                RY[m, t] = 0.0
        _add_scatter(RY, Y, S, U, gram)
    for m in range(d):
        for j in range(m, d):
            s2[m, j] += U[m, j]
            if j > m:
                s2[j, m] += U[m, j]


@_jit
def hard_moments_diag(X, w, centres, labels, nk, s1c, s2):
    """As :func:`hard_moments_full` with ``w (x - c)^2`` in s2 (K, d)."""
    n, d = X.shape
    for i in range(n):
        k = labels[i]
        wi = 1.0 if w.shape[0] == 0 else w[i]
        nk[k] += wi
        for j in range(d):
            v = X[i, j] - centres[k, j]
            s1c[k, j] += wi * v
            s2[k, j] += wi * v * v


@_jit
def resp_moments_full(X, ref, resp, s1c, s2):
    """Add to s1c (K, d) and s2 (K, d, d) the moments of responsibilities ``resp`` (n, K), sample
    weights included, about the one point ``ref`` (d,): ``r (x - ref)`` and ``r (x - ref)(x - ref)^T``.
    A tile of :data:`RESP_TILE` rows at a time, centred once, feature-major, with a last row of ones
    for the first moments; the products are :func:`_gram_upper`'s dot products along the tile, whose
    order of sums is the compiled code's, not a BLAS library's, which orders them by its threads (the
    ``random`` start's fits differed between schedulers, a review)."""
    n, d = X.shape
    K = resp.shape[1]
    e = d + 1
    XK = np.empty((e, RESP_TILE))
    RX = np.empty((e, RESP_TILE))
    S = np.empty((e, e))
    for i0 in range(0, n, RESP_TILE):
        b = min(RESP_TILE, n - i0)
        for t in range(b):
            for m in range(d):
                XK[m, t] = X[i0 + t, m] - ref[m]
            XK[d, t] = 1.0
        for k in range(K):
            for m in range(e):
                for t in range(b):
                    RX[m, t] = resp[i0 + t, k] * XK[m, t]
            _gram_upper(RX, XK, b, S)
            _add_upper(S, s1c[k], s2[k], True)


@_jit
def resp_moments_diag(X, ref, resp, s1c, s2):
    """As :func:`resp_moments_full` with ``r (x - ref)^2`` in s2 (K, d)."""
    n, d = X.shape
    K = resp.shape[1]
    for i in range(n):
        for k in range(K):
            r = resp[i, k]
            for j in range(d):
                v = X[i, j] - ref[j]
                s1c[k, j] += r * v
                s2[k, j] += r * v * v


# ------------------------------------------------------------------ the generator
#: The generator's rows must be the same bytes on every machine and as the NumPy loop's
#: (:func:`dask_gmm.generate.draw_rows`): its kernel is compiled with IEEE arithmetic throughout,
#: no contraction into FMAs either.
_strict = _njit(cache=True, nogil=True, error_model="numpy")
#: Rows of one component mapped together, so that each row of its factor is read from the cache
#: for all of them (d=768, 3,000 rows on one core: 8 rows 1.4 s, 32 rows 0.7 s, 128 rows 0.9 s).
MAP_ROWS = 32


@_strict
def mixture_rows(z, labels, cholesky, means):
    """X (n, d): row r is ``z[r] @ L.T + means[k]`` for ``L = cholesky[k]``, ``k = labels[r]``.

    Each value is summed over the factor's columns j = 0, 1, ... in order, from
    0.0, each product rounded before it is added: the NumPy loop of
    :func:`dask_gmm.generate.draw_rows` sums the same products in the same
    order (and adds the factor's zeros above the diagonal, which change no
    sum), so the bytes are the same. Vectorised along the features; 3 to 8
    times faster than that loop at d=16 to 768 (N=200,000, d=64: 4.2 s -> 0.9 s).

    z : float64 (n, d) standard normal draws; labels : int64 (n,) in [0, K);
    cholesky : float64 (K, d, d), lower triangular; means : float64 (K, d).
    """
    n, d = z.shape
    K = means.shape[0]
    X = np.zeros((n, d))
    LT = np.empty((d, d))  # the component's factor, transposed: its columns as rows
    rows = np.empty(n, dtype=np.int64)
    for k in range(K):
        c = 0
        for r in range(n):
            if labels[r] == k:
                rows[c] = r
                c += 1
        for j in range(d):
            for m in range(d):
                LT[j, m] = cholesky[k, m, j]
        for u0 in range(0, c, MAP_ROWS):
            u1 = min(c, u0 + MAP_ROWS)
            for j in range(d):
                lt = LT[j]
                for u in range(u0, u1):
                    x = X[rows[u]]
                    zj = z[rows[u], j]
                    for m in range(j, d):  # the factor is 0 above its diagonal
                        x[m] += zj * lt[m]
        for u in range(c):
            x = X[rows[u]]
            for m in range(d):
                x[m] += means[k, m]
    return X


# ------------------------------------------------------------------ Python side
#: Kernel family by covariance type.


#: A component weighing at most this is not live: it places the tiles' centre nowhere, and its own
#: precision does not decide which kernels take the model (an emptied component keeps its mean
#: wherever it was, and weighs ~1e-17), unless it turns out to hold rows (:attr:`Prepared.far_light`).
LIVE_WEIGHT = 1e-10
#: The largest Mahalanobis distance of the tiles' centre from a live component's mean that the
#: compiled kernels take: rows near that mean then lose up to ~2**20 eps (2e-10) of their distance.
MAX_CENTRE_DISTANCE = 2.0**20
#: The largest reach of the centre from a live full component's mean (:class:`Prepared`'s ``reach``,
#: the centre's offsets weighed by the precision along each feature): rows near that mean then lose
#: up to ~2**25 eps (7.5e-9) of their distance along its narrowest axes.
MAX_CENTRE_REACH = 2.0**25
#: The same for a light component (weight at most LIVE_WEIGHT, over 0): up to 2**45 eps (0.008) of
#: a distance, so that a row it holds still gets a responsibility above 0 for it, which
#: :func:`e_step` and :func:`per_row` look for.
MAX_LIGHT_DISTANCE = 2.0**45
#: The largest Mahalanobis distance of the tiles' centre from the mean, and from the moments'
#: centre, of a tied component that weighs anything, for the pooled second moments
#: (:func:`estep_tied`). They lose about eps D^2 of the covariance for a distance D (measured, two
#: components 2D apart and rows of unit spread around them: up to 3.4 eps D^2, at D = 2^4-2^13), so
#: up to ~2**20 eps (2e-10) here. Farther, the tied E-step is :func:`estep_full`'s, a product per
#: component, which loses eps D (measured: at most 660 eps D below 2^11, 0.001 eps D beyond).
MAX_POOLED_DISTANCE = 2.0**9
#: From this many features, tied models take the tied kernels (:func:`estep_tied`, :func:`rows_tied`):
#: one product of the shared factor a tile, not one per component. Below it, the full kernels (with the
#: factor repeated per component), whose straight-line Mahalanobis sums are faster there. Per row on one
#: core against them, in turns in one process (random_model's tied mixtures, rows 2 or 0.3 from
#: their means): E-step d=4 K=4 0.91-0.97x, d=5 1.06x / 0.96x, d=6 K=6 1.12-1.19x, d=8 K=8 1.42-1.59x,
#: d=12 K=8 1.66-1.82x, d=16 K=8 2.5-2.95x, d=16 K=16 3.7x, d=32 K=8 3.6x; predict_proba d=4 0.89-0.94x,
#: d=6 0.96-1.01x, d=8 1.02-1.08x, d=16 K=8 1.08-1.27x, d=24 2.3x, d=32 2.9x.
TIED_MIN_FEATURES = 6


def _mahalanobis(pc, points, kind):
    """(K,): each ``points[k]``'s Mahalanobis distance from 0 in component k's units, through the
    factors as :class:`Prepared` lays them out (``pc``: (K, d, d) or one (d, d) transposed, or (K, d) diagonal)."""
    if kind == "diag":
        far = pc * points
    else:
        far = points @ pc.T if pc.ndim == 2 else np.matmul(pc, points[:, :, None])[:, :, 0]
    return np.sqrt((far * far).sum(axis=1))


def compiled_count():
    """How many kernel specialisations this process has compiled, not found in numba's disk cache."""
    dispatchers = [v for v in list(globals().values()) if isinstance(v, numba.core.dispatcher.Dispatcher)]
    return sum(sum(d.stats.cache_misses.values()) for d in dispatchers)


#: Entries of the factors whose strict upper triangles :class:`Prepared` gathers at once (1 MiB).
_TRIANGLE_CHECK_ITEMS = 2**17


@functools.cache
def _strict_upper(d):
    """The indices of the strict upper triangle of a (d, d) array (``np.triu_indices(d, 1)``)."""
    return np.triu_indices(d, 1)


class Prepared:
    """A model's parameters laid out for the compiled kernels (tiny; made once per model, :func:`prepared`).

    All arrays are fresh, writable and C-contiguous float64, so that every
    model compiles to the same specialisation (but for ``unrolled``, which
    gives the number of features of triangular full factors up to
    :data:`UNROLL_MAX_FEATURES` to the compiler: a specialisation per d).
    """

    __slots__ = ("kind", "tied", "shared", "pooled", "centre", "means", "pc", "hs", "unrolled", "log_norm", "tile", "exact",
                 "far_light")

    def __init__(self, model, n_features):
        ct = model.covariance_type
        K = model.means.shape[0]
        d = n_features
        self.kind = KERNEL_FAMILY[ct]
        self.tied = not S2_PER_COMPONENT[ct]
        self.shared = self.tied and d >= TIED_MIN_FEATURES  # the tied kernels, with the one factor
        means = np.asarray(model.means, dtype=np.float64)
        log_weights = np.asarray(model.log_weights, np.float64)
        live = np.exp(log_weights) > LIVE_WEIGHT
        live = live if live.any() else np.ones(K, bool)
        # Tiles are centred once, on c, and the kernels see the means relative to it:
        # (x - c) - (mu_k - c) is x - mu_k to within eps * (|x - c| + |mu_k - c|), whatever the data's
        # offset. c is the weighted mean of the means (of components weighing over LIVE_WEIGHT): after
        # an M-step that is the data's mean, wherever an emptied component's mean lies. Where the
        # moments are centred elsewhere (model.centres, _em.recentred), c is the weighted mean of
        # those points, so that x - centre_k keeps its digits too when the means are far from them.
        basis = means if model.centres is None else np.asarray(model.centres, np.float64)
        pc = np.asarray(model.precisions_cholesky, dtype=np.float64)
        # -0.5 d log 2pi + log det P_k + log pi_k, as the reference adds them (tied: one log det)
        log_norm = -0.5 * (d * LOG_2PI) + log_det_cholesky(pc, ct, d) + log_weights
        self.log_norm = np.array(log_norm, dtype=np.float64, order="C")
        if self.kind == "full":
            # P_k^T (K, d, d), or the tied kernels' one P^T (d, d) (``shared``), or that one repeated
            transposed = pc.T if self.shared else np.swapaxes(pc if pc.ndim == 3 else np.broadcast_to(pc, (K, d, d)), 1, 2)
            self.pc = np.array(transposed, order="C")
            # P_k upper triangular, as this package makes them (a few at a time, :data:`_TRIANGLE_CHECK_ITEMS`:
            # np.triu of all K made a K x d x d copy, 244 MB at K=128, d=500, a review; tied checks its one
            # factor), read at the indices of the strict upper triangle of P_k^T (np.triu of each: 170 of
            # the 280 us that a layout took at d=16, K=8; one component at a time, 85 of 270 us)
            factors = self.pc[None] if self.shared else self.pc[:1] if self.tied else self.pc
            i, j = _strict_upper(d)
            step = max(1, _TRIANGLE_CHECK_ITEMS // (d * d))  # components at a time (one from d = 257)
            lower = not any(factors[k:k + step, i, j].any() for k in range(0, len(factors), step))
            self.hs = feature_block(d) if lower else d
            self.unrolled = (0,) * d if lower and d <= UNROLL_MAX_FEATURES else ()
        else:
            self.pc = np.array(np.broadcast_to(pc.reshape(K, -1), (K, d)), order="C")
            self.unrolled = ()
        # c's Mahalanobis distance from each component: a row near mu_k loses about eps times it of
        # its distance from mu_k. Far (a live component far from the others, in its own units), the
        # reference kernels, which centre on each mean, take the model (:func:`exact`). A light
        # component may lie farther (an emptied one, which holds no row), but not if it holds rows
        # (rows of weight 1 among rows of weight 1e12 can make one): the kernels' results are then
        # refused (``far_light``: :func:`e_step`, :func:`per_row`).
        # That distance misses a full component whose long axis points at c: x - c loses up to
        # eps |x_j - c_j| of each coordinate, which P_k^T carries into the distance from mu_k as
        # that times row j of P_k, summed over j (``reach``), which weighs its narrowest axes (a
        # centre 3e4 along the long axis of a 1e6:1 component cost its rows 5e-6 of their
        # log-likelihoods; a review). The bound is loose where rows do not spread along those axes
        # (a feature the sum of two others: its thin axis is reg_covar's alone, and the compiled
        # results were 1e-11 off at 147 times MAX_CENTRE_DISTANCE), so it has a limit of its own.
        with np.errstate(over="ignore", invalid="ignore"):  # means near the float64 limit: not exact
            w = np.exp(log_weights[live])
            self.centre = np.array(w @ basis[live] / w.sum(), order="C")
            self.means = np.array(means - self.centre, order="C")
            distance = _mahalanobis(self.pc, self.means, self.kind)
            moved = distance if model.centres is None else _mahalanobis(
                self.pc, np.asarray(model.centres, np.float64) - self.centre, self.kind)
            reach = distance
            if self.kind == "full":  # (diagonal precisions: the Mahalanobis distance is the bound)
                rows = np.sqrt(np.einsum("...ij,...ij->...j", self.pc, self.pc))  # ||P_k[j, :]||, column j of P_k^T
                reach = (np.abs(self.means) * rows).sum(axis=1)
        weighs = log_weights > -np.inf
        self.exact = bool((distance[live] <= MAX_CENTRE_DISTANCE).all() and (reach[live] <= MAX_CENTRE_REACH).all()
                          and (distance[weighs] <= MAX_LIGHT_DISTANCE).all())
        self.far_light = np.flatnonzero(~live & weighs & ~(distance <= MAX_CENTRE_DISTANCE))
        # tied: the pooled second moments (:func:`estep_tied`) while every component that weighs
        # anything has its mean and its moments' centre near c
        self.pooled = self.shared and bool((distance[weighs] <= MAX_POOLED_DISTANCE).all()
                                         and (moved[weighs] <= MAX_POOLED_DISTANCE).all())
        self.tile = tile_rows(K, d)


#: The :class:`Prepared` layouts of the models in use, by the identity of their arrays: every block
#: of a pass gets the same Model object, so a pass lays each model out once instead of once per
#: block (36 us at d=16, K=8). Model arrays are never changed in place. An entry holds weak
#: references to its model's arrays and goes when any of them does, so a layout lives no longer
#: than its model (a cache of the last 16 held up to 16 dropped models and their layouts: 2 GiB
#: at d=1024, K=8).
_PREPARED = {}


#: Held while a layout is made: a pass's threads all start on the same new model, and each made its
#: own, contending for the GIL (d=16, K=8: about 0.5 ms of each thread's pass, for 0.24 ms of work).
#: One lock for every model: layouts are mostly Python work, which the GIL serialises all the same.
_PREPARING = threading.Lock()


def _after_fork():
    """In a forked child, a new lock: one that another thread of the parent held as it forked stays
    held in the child, whose every new model would wait for it (as :func:`dask_gmm._em._after_fork`)."""
    global _PREPARING
    _PREPARING = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def prepared(model, n_features):
    """``Prepared(model, n_features)``, made once per model while its arrays live (see :data:`_PREPARED`)."""
    arrays = (model.log_weights, model.means, model.precisions_cholesky)
    if model.centres is not None:
        arrays += (model.centres,)
    key = (*map(id, arrays), n_features)

    def cached():
        hit = _PREPARED.get(key)
        return hit[1] if hit is not None and all(r() is a for r, a in zip(hit[0], arrays)) else None

    p = cached()
    if p is not None:
        return p
    with _PREPARING:
        p = cached()  # made by another thread while this one waited
        if p is not None:
            return p
        p = Prepared(model, n_features)
        try:
            refs = tuple(weakref.ref(a, lambda _, key=key: _PREPARED.pop(key, None)) for a in arrays)
        except TypeError:  # an array that cannot be weakly referenced: laid out on every call
            return p
        _PREPARED[key] = (refs, p)
    return p


def exact(model, n_features):
    """Whether these kernels compute ``model`` to about 1e-10 of the reference's log-likelihoods:
    not when the centre of its tiles lies more than :data:`MAX_CENTRE_DISTANCE` (in a live
    component's own units) from a live component's mean, as when one mean lies far from the
    others and keeps a real weight (the reference kernels then take it, :mod:`dask_gmm._kernels`)."""
    return prepared(model, n_features).exact


_NO_WEIGHTS = np.empty(0)


def _as_block(X, n_features):
    """X as a C-contiguous float32 or float64 array (no copy when it already is one), checked to have
    ``n_features`` columns: the kernels index the model's arrays by X's columns, unchecked."""
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"A block of shape {X.shape} reached a kernel for {n_features} features "
                         "(a reader returned other columns): please report this.")
    dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    return np.ascontiguousarray(X, dtype=dtype)


def e_step(X, model, sample_weight=None):
    """(nk, s1c, s2, loglik) of a block, as ``centred_moments`` and the reference E-step define them
    (centred on ``model.centres`` where it is given, else on the means)."""
    X = _as_block(X, model.means.shape[1])
    d = X.shape[1]
    p = prepared(model, d)
    K = p.means.shape[0]
    w = _NO_WEIGHTS if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=np.float64)
    nk = np.zeros(K)
    s1c = np.zeros((K, d))
    cm = p.means if model.centres is None else np.array(np.asarray(model.centres, np.float64) - p.centre, order="C")
    if p.pooled:
        s2 = np.zeros((d, d))
        ll = estep_tied(X, w, p.centre, p.means, cm, p.pc, p.hs, p.unrolled, p.log_norm, p.tile, nk, s1c, s2)
    elif p.kind == "full":
        pcT = np.ascontiguousarray(np.broadcast_to(p.pc, (K, d, d))) if p.shared else p.pc  # far: a copy each
        s2 = np.zeros((K, d, d))
        ll = estep_full(X, w, p.centre, p.means, cm, pcT, p.hs, p.unrolled, p.log_norm, p.tile, nk, s1c, s2)
        if p.tied:
            s2 = s2.sum(axis=0)
    else:
        s2 = np.zeros((K, d))
        ll = estep_diag(X, w, p.centre, p.means, cm, p.pc, p.log_norm, p.tile, nk, s1c, s2)
    if p.far_light.size and (nk[p.far_light] > 0).any():  # a light component far from the centre holds rows: inexact
        return None
    return nk, s1c, s2, float(ll)


#: What :func:`per_row` computes.
SCORE, PROBA, LABEL = "score", "proba", "label"


def per_row(X, model, what, out=None):
    """(output, ok): per-row log-likelihood (SCORE), responsibilities (PROBA) or labels (LABEL).

    ``out``, if given, is the C-contiguous output to fill: float64 (n,) for SCORE,
    (n, K) for PROBA, int64 (n,) for LABEL. None where a light component far
    from the tiles' centre (:attr:`Prepared.far_light`) holds a row: the
    reference kernels must compute this block.
    """
    X = _as_block(X, model.means.shape[1])
    n, d = X.shape
    p = prepared(model, d)
    K = p.means.shape[0]
    new = {SCORE: lambda: np.empty(n), PROBA: lambda: np.empty((n, K)), LABEL: lambda: np.empty(n, np.int64)}
    out = new[what]() if out is None else out

    def rows(lse=np.empty(0), proba=np.empty((0, K)), label=np.empty(0, np.int64)):
        if p.shared:
            return bool(rows_tied(X, p.centre, p.means, p.pc, p.hs, p.unrolled, p.log_norm, p.tile, lse, proba, label))
        if p.kind == "full":
            return bool(rows_full(X, p.centre, p.means, p.pc, p.hs, p.unrolled, p.log_norm, p.tile, lse, proba, label))
        return bool(rows_diag(X, p.centre, p.means, p.pc, p.log_norm, p.tile, lse, proba, label))

    if p.far_light.size:  # the responsibilities first, to see whether those components hold rows
        proba = out if what == PROBA else np.empty((n, K))
        ok = rows(lse=out, proba=proba) if what == SCORE else rows(proba=proba)
        if np.any(proba[:, p.far_light]):
            return None
        if what != LABEL:
            return out, ok
    if what == LABEL:
        return out, rows(label=out)
    return out, rows(lse=out) if what == SCORE else rows(proba=out)


def nearest(X, centres):
    """(labels (n,) int64, d2 (n,)): :func:`nearest_tiles` of a block."""
    X = _as_block(X, centres.shape[1])
    labels, d2 = np.empty(X.shape[0], np.int64), np.empty(X.shape[0])
    nearest_tiles(X, np.ascontiguousarray(centres, dtype=np.float64), labels, d2)
    return labels, d2


def resp_moments(X, resp, ref, covariance_type):
    """(s1c, s2) of a block's responsibilities ``resp`` (n, K) (sample weights included) centred on
    the one point ``ref`` (d,), as :func:`dask_gmm._covariance.centred_moments` defines them."""
    X = _as_block(X, ref.shape[0])
    K, d = resp.shape[1], ref.shape[0]
    full = KERNEL_FAMILY[covariance_type] == "full"
    s1c, s2 = np.zeros((K, d)), np.zeros((K, d, d) if full else (K, d))
    with np.errstate(over="ignore", invalid="ignore"):  # inf, which the M-step refuses by name
        (resp_moments_full if full else resp_moments_diag)(X, np.ascontiguousarray(ref, dtype=np.float64),
                                                           np.ascontiguousarray(resp), s1c, s2)
    return s1c, (s2 if S2_PER_COMPONENT[covariance_type] else s2.sum(axis=0))  # tied: the components' sum


def hard_moments(X, centres, labels, covariance_type, sample_weight=None):
    """(nk, s1c, s2) of the rows of a block assigned to ``centres[labels]``, centred on those
    centres, as :func:`dask_gmm._covariance.centred_moments` defines them for one-hot responsibilities."""
    X = _as_block(X, centres.shape[1])
    K, d = centres.shape
    w = _NO_WEIGHTS if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=np.float64)
    centres = np.ascontiguousarray(centres, dtype=np.float64)
    full = KERNEL_FAMILY[covariance_type] == "full"
    nk, s1c = np.zeros(K), np.zeros((K, d))
    with np.errstate(over="ignore", invalid="ignore"):  # inf, which the M-step refuses by name
        if not S2_PER_COMPONENT[covariance_type] and d >= TIED_MIN_FEATURES:  # tied: one pooled scatter
            hard_moments_diag(X, w, centres, labels, nk, s1c, np.zeros((K, d)))
            s2 = np.zeros((d, d))
            hard_scatter(X, w, centres, labels, tile_rows(K, d), s2)
            return nk, s1c, s2
        s2 = np.zeros((K, d, d) if full else (K, d))
        if full and S2_PER_COMPONENT[covariance_type] and d >= GROUPED_MIN_FEATURES:  # full, not tied
            hard_moments_grouped(X, w, centres, labels, nk, s1c, s2)
            return nk, s1c, s2
        (hard_moments_full if full else hard_moments_diag)(X, w, centres, labels, nk, s1c, s2)
        return nk, s1c, (s2 if S2_PER_COMPONENT[covariance_type] else s2.sum(axis=0))  # tied: the components' sum
