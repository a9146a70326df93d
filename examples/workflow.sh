#!/usr/bin/env bash
# The dask-gmm workflow from the command line: generate -> info -> fit -> score -> predict -> plot.
#
#   bash examples/workflow.sh [WORKDIR]        (default: ./dask-gmm-workflow)
#
# Small sizes so that it runs in seconds; scale --n-samples up (1e8 works out of core).
# Add --scheduler tcp://HOST:PORT to generate/fit/predict/score/plot to run on a Dask cluster.
set -euo pipefail

WORK="${1:-dask-gmm-workflow}"
mkdir -p "$WORK"
cd "$WORK"

# 1. A synthetic 3-component mixture in 2-D: 200,000 rows in 50,000-row Zarr chunks, means
#    uniform in [-10, 10]^2 (--box) and covariances 0.1 A^T A (--covariance-scale: larger, more
#    overlap). --overwrite makes each run of this script start afresh; without it, rerunning the
#    same command on an interrupted store finishes it, writing only the chunks it lacks.
dask-gmm generate data.zarr --n-samples 200_000 --n-features 2 --n-components 3 \
    --box 10 --covariance-scale 0.1 --chunk-size 50_000 --seed 42 --overwrite

# 2. What the store holds (shape, chunks, completeness, the true parameters).
dask-gmm info data.zarr

# 3. Fit by EM (one pass over the data per iteration), checkpointing every iteration. The data
#    were just generated afresh, so the fit starts afresh too: an earlier run's checkpoint (of
#    other data, if --n-samples changed) would be refused. Without the rm, rerunning an
#    interrupted fit resumes it.
rm -f fit.ckpt
dask-gmm fit data.zarr --n-components 3 --covariance-type full --seed 0 \
    --checkpoint fit.ckpt --output model.json

# 4. The fitted model, then its mean log-likelihood, BIC and AIC on the data.
dask-gmm info model.json
dask-gmm score model.json data.zarr

# 5. Labels (int8) and component probabilities, written chunk by chunk to Zarr.
dask-gmm predict model.json data.zarr --output labels.zarr --overwrite
dask-gmm predict model.json data.zarr --output proba.zarr --proba --overwrite

# 6. Figures: fit.png (data + fit), fit-density.png, fit-loglik.png (needs matplotlib).
dask-gmm plot model.json data.zarr --output fit.png

# 7. The fit against the generator's truth: each true component's match and errors, and the
#    share of rows labelled as their true component (two more passes over the data).
dask-gmm score model.json data.zarr --truth

# Machine-readable output for scripts (generate, fit, select, predict and info take --json too):
dask-gmm score model.json data.zarr --json
echo "outputs in $(pwd)"
