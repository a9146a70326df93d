"""Strong scaling of one EM iteration: the same Zarr store on LocalClusters of 1 and 2 worker processes.

    python scripts/scaling.py --n-samples 20_000_000 --chunk-rows 1_000_000

Also reports the per-task scheduler overhead (an iteration over many tiny
chunks), used by the README's cost model. Not a test.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from distributed import Client, LocalCluster

from bench import chunk_bytes  # scripts/ is on sys.path when run as a script
from dask_gmm import GaussianMixture, io
from memory import write_store


TINY_ROWS = 1000


def time_per_iteration(store, iters, init):
    gm = GaussianMixture(3, max_iter=1, tol=0, **init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(store)  # warm-up: imports, connections
        gm.set_params(max_iter=iters)
        t = time.perf_counter()
        gm.fit(store)
    return (time.perf_counter() - t) / iters


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-samples", type=lambda s: int(float(s.replace("_", ""))), default=20_000_000)
    ap.add_argument("--chunk-rows", type=int, default=1_000_000)
    ap.add_argument("--iters", type=int, default=3)
    args = ap.parse_args()
    store = f"/tmp/dask-gmm-scaling-{args.n_samples}-{args.chunk_rows}.zarr"
    write_store(store, args.n_samples, args.chunk_rows)
    tiny = f"/tmp/dask-gmm-scaling-tiny-{args.n_samples // 100}.zarr"
    write_store(tiny, args.n_samples // 100, TINY_ROWS)  # many chunks of 1000 rows: overhead dominated
    init = dict(weights_init=np.ones(3) / 3, means_init=[[-8.0, -1.0], [-1.0, 2.0], [8.0, -0.5]],
                precisions_init=np.stack([np.eye(2)] * 3))
    rows = []
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=":0") as cluster, Client(cluster):
            sec = time_per_iteration(store, args.iters, init)
            # one task per 1,000-row Zarr chunk: dask_gmm.io otherwise groups them into tasks of
            # about TARGET_CHUNK_BYTES and at most an eighth of the store: 8 tasks for 200 tiny chunks
            with chunk_bytes(TINY_ROWS * 2 * 8):
                sec_tiny = time_per_iteration(tiny, args.iters, init)
                n_tiny_tasks = len(io.as_dask_array(tiny).chunks[0])
        rows.append((workers, sec, sec_tiny, n_tiny_tasks))
    print(f"store: {args.n_samples:,} x 2 float64, chunks of {args.chunk_rows:,} rows")
    print("| workers | s / iteration | M points·it/s | speed-up | tiny-chunk store: ms per chunk task |")
    print("|---|---|---|---|---|")
    for workers, sec, sec_tiny, n_tiny_tasks in rows:
        print(f"| {workers} | {sec:.2f} | {args.n_samples / sec / 1e6:.1f} | {rows[0][1] / sec:.2f} | "
              f"{sec_tiny / n_tiny_tasks * 1e3 * workers:.2f} |")


if __name__ == "__main__":
    main()
