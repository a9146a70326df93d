"""The dask-gmm workflow in Python: generate -> inspect -> fit -> score -> predict -> plot.

    python examples/workflow.py [WORKDIR]        (default: ./dask-gmm-workflow-py)

The same steps as examples/workflow.sh, with the library. Small sizes so that it
runs in seconds; nothing here loads the whole data set into memory, so the same
code works on a store of 10**8 rows. To use a Dask cluster, create a
``distributed.Client(address)`` first: every step then runs on it.
"""

import argparse
import os
import time

import dask.array as da
import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

import dask_gmm
from dask_gmm.generate import read_true_model, store_info


def main(workdir="dask-gmm-workflow-py"):
    workdir = os.path.abspath(workdir)  # a cluster's workers, started in other folders, see the same files
    os.makedirs(workdir, exist_ok=True)
    data = os.path.join(workdir, "data.zarr")

    # 1. Generate: a Zarr group with X (200,000 x 2) and labels, 50,000-row chunks; returns the true model.
    truth = dask_gmm.generate_mixture(data, n_samples=200_000, n_features=2, n_components=3,
                                      chunk_size=50_000, random_state=42, overwrite=True)

    # 2. Inspect the store without reading any chunk.
    info = store_info(data)
    print(f"store {data}: shape {info['shape']}, chunks {info['chunks']}, dtype {info['dtype']}, "
          f"status {info['status']}")  # "complete"; "damaged" if chunks went missing since ("complete" is the record)
    assert np.allclose(read_true_model(data).means_, truth.means_)

    # 3. Fit: one pass over the data per EM iteration; the path, a zarr.Array or a dask array all work.
    #    The data were just generated afresh, so the fit starts afresh too: an earlier run's
    #    checkpoint (of other data, if n_samples changed) would be refused. Without the removal,
    #    rerunning an interrupted fit resumes it.
    checkpoint = os.path.join(workdir, "fit.ckpt")
    if os.path.exists(checkpoint):
        os.remove(checkpoint)
    t0 = time.perf_counter()
    gm = dask_gmm.GaussianMixture(n_components=3, covariance_type="full", random_state=0,
                                  checkpoint=checkpoint).fit(data)
    print(f"fit: {gm.n_iter_} iterations, converged={gm.converged_}, "
          f"mean log-likelihood {gm.lower_bound_:.6f}, {time.perf_counter() - t0:.2f} s")
    print("log-likelihood per iteration:", np.round(gm.lower_bounds_, 6).tolist())
    dask_gmm.save_model(gm, os.path.join(workdir, "model.json"))
    gm = dask_gmm.load_model(os.path.join(workdir, "model.json"))  # exact round trip

    # 4. Score: each is one pass over the data.
    print(f"score {gm.score(data):.6f}   BIC {gm.bic(data):.1f}   AIC {gm.aic(data):.1f}")

    # 5. Predict: lazy dask arrays with the data's row chunks, stored chunk by chunk into Zarr.
    labels = gm.predict(data).astype(np.int8)
    labels_path = os.path.join(workdir, "labels.zarr")
    out = zarr.create_array(labels_path, shape=labels.shape,
                            chunks=(labels.chunks[0][0],), dtype=labels.dtype,
                            compressors=[ZstdCodec(level=3), Crc32cCodec()], overwrite=True)
    da.store(labels, out, lock=False)
    true_labels = zarr.open_group(data, mode="r")["labels"]
    # Components are numbered arbitrarily: compare through the best matching of means.
    from dask_gmm.generate import match_components

    fitted_of_true = match_components(truth.means_, gm.means_)
    agree = da.mean(da.from_array(fitted_of_true)[da.from_zarr(true_labels)] == da.from_zarr(out)).compute()
    print(f"labels written to {labels_path}; agreement with the true labels: {agree:.4%}")

    # 6. Figures (needs matplotlib: pip install 'dask_gmm[plot]').
    from dask_gmm import plot

    try:
        written = plot.plot_all(gm, data, os.path.join(workdir, "fit.png"), true_model=truth)
    except ImportError as exc:
        print(exc)
        return
    for path in written:
        print("wrote", path)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", nargs="?", default="dask-gmm-workflow-py", help="(default: %(default)s)")
    workdir = parser.parse_args().workdir
    if not workdir:
        parser.error("WORKDIR must not be empty")
    main(workdir)
