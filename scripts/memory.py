"""Out-of-core memory check: fit a Zarr store several times larger than the memory the fit uses.

Writes (once) an N x 2 float64 mixture store, then fits it on a LocalCluster of
worker processes (or the threaded scheduler) while sampling the resident memory
of this process and all its children every 20 ms (bench.PeakRSS).

    python scripts/memory.py --n-samples 100_000_000 --store /tmp/gmm-1e8.zarr

Prints the uncompressed data size, the peak summed RSS of all processes and
their ratio. Not a test: the numbers go in the README.
"""

from __future__ import annotations

import argparse
import os
import time

import dask.array as da
import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from bench import PeakRSS  # scripts/ is on sys.path when run as a script
from dask_gmm import GaussianMixture


def write_store(path, n_samples, chunk_rows, seed=0):
    if os.path.exists(path):  # written by an earlier run: reused only if it is the store asked for
        old = zarr.open_array(path, mode="r")
        if old.shape != (n_samples, 2) or old.chunks != (chunk_rows, 2):
            raise SystemExit(f"{path} holds {old.shape} in chunks {old.chunks}, not ({n_samples}, 2) in "
                             f"({chunk_rows}, 2): remove it or pass another --store")
        return
    means = np.array([[-8.0, -1.0], [-1.0, 2.0], [8.0, -0.5]])
    rs = da.random.RandomState(seed)
    labels = rs.randint(0, 3, size=n_samples, chunks=chunk_rows)
    noise = rs.standard_normal((n_samples, 2), chunks=(chunk_rows, 2))
    X = noise + da.from_array(means)[labels]
    arr = zarr.create_array(path, shape=X.shape, chunks=(chunk_rows, 2), dtype="f8",
                            compressors=[ZstdCodec(level=3)], config={"write_empty_chunks": True})
    da.store(X, arr, lock=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-samples", type=lambda s: int(float(s.replace("_", ""))), default=100_000_000)
    ap.add_argument("--chunk-rows", type=int, default=1_000_000)
    ap.add_argument("--store", default="/tmp/dask-gmm-memory.zarr")
    ap.add_argument("--max-iter", type=int, default=2)
    ap.add_argument("--threads", action="store_true", help="threaded scheduler instead of a LocalCluster")
    ap.add_argument("--target-chunk-mib", type=float, default=None,
                    help="dask_gmm.io.TARGET_CHUNK_BYTES in MiB (how many Zarr chunks one task reads)")
    args = ap.parse_args()

    if args.target_chunk_mib:
        from dask_gmm import io

        io.TARGET_CHUNK_BYTES = int(args.target_chunk_mib * 2**20)
    t = time.perf_counter()
    write_store(args.store, args.n_samples, args.chunk_rows)
    print(f"store ready in {time.perf_counter() - t:.0f} s: {args.store}")
    data_bytes = args.n_samples * 2 * 8

    client = cluster = None
    if not args.threads:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=":0")
        client = Client(cluster)
    gm = GaussianMixture(3, init_params="random_from_data", max_iter=args.max_iter, tol=0, random_state=0)
    with PeakRSS() as rss:
        t = time.perf_counter()
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gm.fit(args.store)
        seconds = time.perf_counter() - t
    if client is not None:
        client.close()
        cluster.close()
    print(f"scheduler: {'threads' if args.threads else 'LocalCluster 2 processes x 1 thread'}")
    print(f"data (uncompressed float64): {data_bytes / 2**30:.2f} GiB, chunk {args.chunk_rows * 16 / 2**20:.0f} MiB")
    print(f"peak RSS of all processes: {rss.peak / 2**30:.3f} GiB (before fit {rss.base / 2**30:.3f} GiB)")
    print(f"peak RSS / data size: {rss.peak / data_bytes:.3f}")
    print(f"fit: {args.max_iter} EM iterations + 1 init pass in {seconds:.1f} s; means {np.round(gm.means_, 3).tolist()}")


if __name__ == "__main__":
    main()
