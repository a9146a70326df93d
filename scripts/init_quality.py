"""How often do the default settings reach the global optimum? dask_gmm against scikit-learn.

Problems like the seed notebook's: K Gaussians with means uniform in a
[-10, 10]^2 box, covariances 0.1·AᵀA, random weights. The reference optimum is
EM started from the true parameters (run to tol 1e-8). Two measures:

* ``within s``: the default fit's mean log-likelihood is within ``s`` of the
  reference's (a fit stopped by the default tol=1e-3 may still be climbing);
* ``basin``: the default fit, continued to tol=1e-8 from where it stopped,
  ends within 1e-5 of the reference: the initialisation found the optimum's
  basin of attraction.

    python scripts/init_quality.py --problems 30 --n-components 8
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.mixture import GaussianMixture as SKGaussianMixture

from dask_gmm import GaussianMixture

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import seed_like_problem  # noqa: E402  (the same problem generator as the tests)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", type=int, default=30)
    ap.add_argument("--n-components", type=int, default=8)
    ap.add_argument("--n-samples", type=int, default=5000)
    ap.add_argument("--slack", type=float, nargs="+", default=[1e-3, 1e-2], help="mean log-likelihood units")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    K = args.n_components
    hits = {(name, s): 0 for name in ("dask_gmm", "scikit-learn") for s in [*args.slack, "basin"]}
    seconds = {"dask_gmm": 0.0, "scikit-learn": 0.0}
    for p in range(args.problems):
        X, w, m, c = seed_like_problem(1000 + p, n_components=K, n_samples=args.n_samples)
        ref = GaussianMixture(K, weights_init=w, means_init=m, precisions_init=np.linalg.inv(c), tol=1e-8,
                              max_iter=10_000).fit(X)
        for name, est in (("dask_gmm", GaussianMixture(K, random_state=p)),
                          ("scikit-learn", SKGaussianMixture(K, random_state=p))):
            t = time.perf_counter()
            est.fit(X)
            seconds[name] += time.perf_counter() - t
            for s in args.slack:
                hits[name, s] += bool(est.score(X) >= ref.score(X) - s)
            refined = GaussianMixture(K, weights_init=est.weights_, means_init=est.means_,
                                      precisions_init=est.precisions_, tol=1e-8, max_iter=10_000).fit(X)
            hits[name, "basin"] += bool(refined.score(X) >= ref.score(X) - 1e-5)
    print(f"{args.problems} problems, K={K}, d=2, n={args.n_samples}, defaults (n_init=1):")
    for (name, s), n in hits.items():
        what = "in the optimum's basin" if s == "basin" else f"within {s:g} of the optimum's mean log-likelihood"
        print(f"  {name:13s} {what}: {n:2d}/{args.problems} ({seconds[name] / args.problems:.2f} s per fit)")


if __name__ == "__main__":
    main()
