"""The seed notebook's experiment, redone out of core with dask_gmm.

The notebook drew K=3 Gaussians in 2-D (means uniform in [-10, 10]^2,
covariances 0.1 A^T A, random weights), sampled N = 10**5 points, and ran 100
EM iterations started from random means in the box with identity covariances.
Its estimate ended with two means on the same cluster and one between
clusters: plain EM from a random start is stuck in a local optimum. This
script does the same with data in a Zarr store, then fits again with
dask_gmm's default start (k-means||), and repeats over several seeds to show
how often each start finds the true components.

    python examples/seed_notebook.py [--n-samples 100000] [--trials 10] [--output-dir DIR]

A fit "finds the truth" when its mean log-likelihood is at least the true
parameters' (to 1e-3): the maximum-likelihood estimate of a well-specified
model scores at least as well as the truth on its own data.
"""

import argparse
import os
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

import dask_gmm
from dask_gmm.generate import match_components, notebook_initialisation

D, K = 2, 3


def notebook_em(store, seed):
    """The notebook's EM: start from random means in the box, identity covariances; 100 iterations."""
    init = notebook_initialisation(seed, K, D)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0: it runs all 100, as the notebook did
        return dask_gmm.GaussianMixture(K, max_iter=100, tol=0.0, **init).fit(store)


def default_em(store, seed):
    """dask_gmm's default: k-means|| initialisation, tol=1e-3."""
    return dask_gmm.GaussianMixture(K, random_state=seed).fit(store)


def worst_mean_error(true, fitted):
    order = match_components(true.means_, fitted.means_)
    return max(np.linalg.norm(true.means_[k] - fitted.means_[j]) for k, j in enumerate(order))


def at_least(low):
    """An argparse type: an int >= low."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected at least {low}, got {value}")
        return value
    return parse


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-samples", type=at_least(10 * K), default=100_000)
    parser.add_argument("--trials", type=at_least(1), default=10)
    parser.add_argument("--output-dir", default="seed-notebook-out")
    args = parser.parse_args()
    if not args.output_dir:
        parser.error("--output-dir must not be empty")
    os.makedirs(args.output_dir, exist_ok=True)
    store = os.path.join(args.output_dir, "data.zarr")

    print(f"{args.trials} problems of the notebook's kind: K={K} Gaussians in {D}-D, N={args.n_samples:,}\n")
    print(f"{'seed':>4}  {'true LL':>9}  | {'notebook start':^31} | {'k-means|| start (default)':^31}")
    print(f"{'':>4}  {'':>9}  | {'LL':>9} {'iters':>5} {'worst |dmean|':>13} ok | "
          f"{'LL':>9} {'iters':>5} {'worst |dmean|':>13} ok")
    found = {"notebook": 0, "default": 0}
    seconds = {"notebook": 0.0, "default": 0.0}
    first = None
    for seed in range(args.trials):
        truth = dask_gmm.generate_mixture(store, args.n_samples, D, K, chunk_size=25_000,
                                          random_state=seed, overwrite=True)
        ll_true = truth.score(store)
        row = f"{seed:>4}  {ll_true:9.4f}  |"
        fits = {}
        for name, fit in (("notebook", notebook_em), ("default", default_em)):
            t0 = time.perf_counter()
            gm = fit(store, seed)
            seconds[name] += time.perf_counter() - t0
            ok = gm.lower_bound_ >= ll_true - 1e-3
            found[name] += ok
            fits[name] = gm
            row += (f" {gm.lower_bound_:9.4f} {gm.n_iter_:5d} {worst_mean_error(truth, gm):13.3g} "
                    f"{'yes' if ok else 'NO ':>2} |")
        print(row.rstrip("|"))
        if first is None:
            first = (truth, fits)

    print(f"\nfound the true components: notebook start {found['notebook']}/{args.trials}, "
          f"k-means|| start {found['default']}/{args.trials}")
    print(f"time: notebook start {seconds['notebook']:.1f} s (100 iterations each), "
          f"k-means|| start {seconds['default']:.1f} s")

    # Figures of the first problem (seed 0): as the notebook's cells, plus the two fits.
    from dask_gmm import plot

    truth, fits = first
    dask_gmm.generate_mixture(store, args.n_samples, D, K, chunk_size=25_000, random_state=0, overwrite=True)
    out = args.output_dir
    extent = plot.default_extent(truth, *fits.values())
    try:
        written = [
            plot.plot_density(truth, os.path.join(out, "true-density.png"), extent=extent),
            plot.plot_data_fit(fits["notebook"], store, os.path.join(out, "notebook-start-fit.png"),
                               true_model=truth, extent=extent,
                               title="EM from the notebook's start (random means, identity covariances)"),
            plot.plot_lower_bounds(fits["notebook"], os.path.join(out, "notebook-start-loglik.png")),
            plot.plot_data_fit(fits["default"], store, os.path.join(out, "default-fit.png"),
                               true_model=truth, extent=extent, title="EM from k-means|| (dask_gmm's default)"),
        ]
    except ImportError as exc:
        print(exc)
        return
    print("figures (seed 0):", ", ".join(written))


if __name__ == "__main__":
    main()
