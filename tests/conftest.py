import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest


#: A command's prefix that runs it as root without the capabilities by which root ignores file modes.
WITHOUT_OVERRIDES = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner",
                     "--inh-caps=-dac_override,-dac_read_search,-fowner"]


def console_script(name):
    """The console script ``name`` installed beside the Python running the tests (a venv's), else the
    one on PATH, else None: a PATH without the venv had run another installation's ``dask``."""
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.access(here, os.X_OK) else shutil.which(name)


def path_with_this_python():
    """os.environ's PATH with the folder of this Python's console scripts first (for shell scripts)."""
    return os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])


def shard_with_inner_chunk(path, n, inner):
    """The shard file ``path`` (of ``n`` inner chunks indexed at its end, crc32c after the index) with
    its first inner chunk's bytes replaced by ``inner``."""
    import google_crc32c

    raw = path.read_bytes()
    index = np.frombuffer(raw[-4 - 16 * n : -4], "<u8").reshape(n, 2)
    parts = [inner] + [raw[o : o + s] for o, s in index[1:]]
    entries, at = [], 0
    for part in parts:
        entries.append((at, len(part)))
        at += len(part)
    table = np.array(entries, "<u8").tobytes()
    path.write_bytes(b"".join(parts) + table + google_crc32c.value(table).to_bytes(4, "little"))


def make_blobs(n=3000, means=((0.0, 0.0), (6.0, 0.0), (0.0, 6.0)), seed=0, scale=1.0):
    """Rows drawn from isotropic Gaussians at ``means``, in random order."""
    rng = np.random.default_rng(seed)
    means = np.asarray(means, float)
    per = n // len(means)
    X = np.vstack([rng.normal(m, scale, size=(per, means.shape[1])) for m in means])
    return X[rng.permutation(len(X))]


@pytest.fixture
def ctrl_c_delivered():
    """Python's own SIGINT handler for the test, so that ``_thread.interrupt_main`` raises
    KeyboardInterrupt: a test run started in the background of a script (``pytest ... &``) inherits
    SIGINT ignored, and interrupt_main then does nothing (a review's harness saw such a test fail)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def mount_point(tmp_path):
    """An empty folder that is a mount point (a small tmpfs), as a dedicated disk or a container's
    volume is; skipped where this user cannot mount one."""
    path = tmp_path / "mounted.zarr"
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root, or no mount command)")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.fixture
def blobs():
    return make_blobs()


def seed_like_problem(seed, n_components=3, n_features=2, n_samples=3000, box=10.0):
    """The seed notebook's problem: means uniform in a box, covariances 0.1·AᵀA, random weights."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(-box, box, size=(n_components, n_features))
    A = rng.standard_normal((n_components, n_features, n_features))
    covs = 0.1 * np.einsum("kji,kjl->kil", A, A) + 1e-3 * np.eye(n_features)
    weights = rng.uniform(0.2, 1.0, n_components)
    weights /= weights.sum()
    labels = rng.choice(n_components, size=n_samples, p=weights)
    X = np.empty((n_samples, n_features))
    for k in range(n_components):
        idx = labels == k
        X[idx] = rng.multivariate_normal(means[k], covs[k], idx.sum())
    return X, weights, means, covs


def random_model(rng, ct, K, d, shift=0.0):
    """A kernel Model with random means (scale 3, ``shift`` from the origin) and covariances AᵀA + I.

    Returns the Model, the weights (K,), the means (K, d) and the covariances expanded to (K, d, d).
    """
    from dask_gmm import _covariance as cov
    from dask_gmm import _kernels as kern

    means = rng.normal(size=(K, d)) * 3 + shift
    A = rng.standard_normal((K, d, d))
    full = np.einsum("kji,kjl->kil", A, A) + np.eye(d)
    covs = {"full": full, "tied": full[0], "diag": full[:, range(d), range(d)],
            "spherical": full[:, range(d), range(d)].mean(1)}[ct]
    weights = rng.dirichlet(np.ones(K))
    model = kern.Model(ct, np.log(weights), means, cov.precision_cholesky(covs, ct))
    return model, weights, means, cov.as_full_covariances(covs, ct, K, d)
