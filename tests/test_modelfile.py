"""Model files: exact JSON round trips, atomic writes, and refusal of malformed or hostile files."""

import errno
import json
import os
import pickle
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from dask_gmm import GaussianMixture, load_model, save_model
from dask_gmm._files import write_atomic, writer_id
from dask_gmm.modelfile import FORMAT, fitted_model, model_to_dict

from .conftest import make_blobs

ATTRS = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_")


@pytest.fixture(scope="module")
def X():
    return make_blobs(n=600)


@pytest.fixture(scope="module")
def models(X):
    return {ct: GaussianMixture(3, covariance_type=ct, random_state=0).fit(X)
            for ct in ("full", "tied", "diag", "spherical")}


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_exact_round_trip(tmp_path, models, X, ct):
    gm = models[ct]
    save_model(gm, tmp_path / "a.json")
    loaded = load_model(tmp_path / "a.json")
    assert loaded.covariance_type == ct and loaded.n_components == 3 and loaded.n_features_in_ == 2
    for a in ATTRS:
        np.testing.assert_array_equal(getattr(loaded, a), getattr(gm, a))
    assert (loaded.converged_, loaded.n_iter_, loaded.lower_bound_) == (gm.converged_, gm.n_iter_, gm.lower_bound_)
    assert loaded.lower_bounds_ == gm.lower_bounds_
    save_model(loaded, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    np.testing.assert_array_equal(loaded.predict(X), gm.predict(X))
    assert loaded.score(X) == gm.score(X)
    assert loaded.sample(5)[0].shape == (5, 2)
    with warnings.catch_warnings():  # a fit stopped short keeps its converged_ False
        warnings.simplefilter("ignore", ConvergenceWarning)
        short = GaussianMixture(3, covariance_type=ct, max_iter=1, tol=0, random_state=0).fit(X)
    save_model(short, tmp_path / "c.json")
    assert (load_model(tmp_path / "c.json").converged_, load_model(tmp_path / "c.json").n_iter_) == (False, 1)


@pytest.mark.parametrize("edit, said", [
    ({"lower_bound": "NaN"}, "'lower_bound' is nan, not the last of 'lower_bounds'"),
    ({"lower_bound": "Infinity"}, "'lower_bound' is inf, not the last of 'lower_bounds'"),
    ({"lower_bounds": "history with a NaN"}, "'lower_bounds' holds values that are not finite"),
    ({"n_iter": 3}, "'lower_bounds' holds 5 values, but 'n_iter' is 3"),
    ({"lower_bounds": []}, "'lower_bounds' holds 0 values, but 'n_iter' is 5"),
])
def test_a_history_no_fit_writes_is_refused(tmp_path, edit, said):
    """Edited files loaded, and `info` then said "lower bound not computed" of a 16-iteration model, and
    `plot` that lower_bounds_ was empty; a checkpoint resumed with a NaN in its history and wrote it."""
    from dask_gmm._checkpoint import check_history
    X = np.random.default_rng(0).normal(size=(300, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(2, max_iter=5, tol=0, random_state=0).fit(X)
    save_model(gm, tmp_path / "m.json")
    d = json.loads((tmp_path / "m.json").read_text())
    assert len(d["lower_bounds"]) == d["n_iter"] == 5
    if edit.get("lower_bounds") == "history with a NaN":
        edit = {"lower_bounds": d["lower_bounds"][:2] + ["NaN"] + d["lower_bounds"][3:]}
    (tmp_path / "e.json").write_text(json.dumps(d | edit))
    with pytest.raises(ValueError, match=re.escape(said)):
        load_model(tmp_path / "e.json")
    with pytest.raises(ValueError, match="not finite"):
        check_history(2, -1.0, [-2.0, float("inf")])
    check_history(0, float("-inf"), [])  # max_iter=0
    check_history(0, float("nan"), [])  # a model not fitted by EM (a generator's true model)


def test_non_finite_lower_bounds_round_trip_in_strict_json(tmp_path):
    """NaN (unfitted) and -inf (max_iter=0) lower bounds: the file was Python's JSON extension
    (a bare -Infinity), which other readers reject; now strict JSON, and old files still load."""

    def strict(text):  # what a strict reader (Node's JSON.parse, jq's) accepts
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))

    gm = fitted_model([0.5, 0.5], [[0.0], [1.0]], [[[1.0]], [[2.0]]], "full")
    save_model(gm, tmp_path / "m.json")
    d = strict((tmp_path / "m.json").read_text())
    assert d["lower_bound"] == "NaN" and d["lower_bounds"] == []
    back = load_model(tmp_path / "m.json")
    assert np.isnan(back.lower_bound_) and back.lower_bounds_ == []
    X = np.random.default_rng(0).normal(size=(200, 2))
    zero = GaussianMixture(2, max_iter=0, means_init=[[0, 0], [1, 1]], weights_init=[0.5, 0.5],
                           precisions_init=np.array([np.eye(2)] * 2)).fit(X)
    assert zero.lower_bound_ == -np.inf
    save_model(zero, tmp_path / "z.json")
    assert strict((tmp_path / "z.json").read_text())["lower_bound"] == "-Infinity"
    assert load_model(tmp_path / "z.json").lower_bound_ == -np.inf
    old = (tmp_path / "z.json").read_text().replace('"-Infinity"', "-Infinity")  # as written before
    (tmp_path / "old.json").write_text(old)
    assert load_model(tmp_path / "old.json").lower_bound_ == -np.inf


def test_atomic_write_leaves_only_the_file(tmp_path, models):
    save_model(models["full"], tmp_path / "m.json")
    save_model(models["diag"], tmp_path / "m.json")  # replaces it
    assert os.listdir(tmp_path) == ["m.json"]
    assert load_model(tmp_path / "m.json").covariance_type == "diag"


def test_atomic_write_syncs_the_file_then_its_folder_after_the_rename(tmp_path, models, monkeypatch):
    """The rename was not synced: after a crash of the machine the old file (or none) could be back."""
    synced = []
    real = os.fsync

    def fsync(fd):
        st = os.fstat(fd)
        synced.append(("folder", st.st_ino) if stat.S_ISDIR(st.st_mode) else ("file", st.st_ino))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    save_model(models["full"], tmp_path / "m.json")
    assert synced == [("file", os.stat(tmp_path / "m.json").st_ino), ("folder", os.stat(tmp_path).st_ino)]
    fds = set(os.listdir("/proc/self/fd"))
    save_model(models["diag"], tmp_path / "m.json")
    assert set(os.listdir("/proc/self/fd")) <= fds  # the folder's descriptor is closed


def test_a_replaced_file_whose_permissions_cannot_be_kept_is_not_written_and_nothing_leaks(tmp_path, models,
                                                                                             monkeypatch):
    """A file system that refuses chmod (EPERM, simulated: none here does): the write fails, the
    old file stays, and the temporary file's descriptor was closed (it leaked) and the file removed."""
    save_model(models["full"], tmp_path / "m.json")
    before = (tmp_path / "m.json").read_bytes()
    fds = set(os.listdir("/proc/self/fd"))

    def refuse(fd, mode):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "fchmod", refuse)
    with pytest.raises(PermissionError):
        save_model(models["diag"], tmp_path / "m.json")
    assert set(os.listdir("/proc/self/fd")) <= fds
    assert os.listdir(tmp_path) == ["m.json"] and (tmp_path / "m.json").read_bytes() == before


def _writer(path, then):
    """A process that starts writing ``path`` atomically, says so, then is killed (SIGKILL) or
    waits for a line on its stdin before it finishes."""
    pause = "os.kill(os.getpid(), signal.SIGKILL)" if then == "die" else "sys.stdin.readline()"
    code = ("import os, signal, sys\n"
            "from dask_gmm._files import write_atomic\n"
            "def write(f):\n"
            "    f.write('{'); f.flush(); print('writing', flush=True)\n"
            f"    {pause}\n"
            "    f.write('}')\n"
            f"write_atomic({str(path)!r}, write)\n")
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_writes_remove_what_killed_writers_left_not_what_live_ones_write(tmp_path, models):
    """A checkpoint or model file whose writer was killed mid-write (SIGKILL skips every clean-up) left
    a hidden temporary file, one per kill; the next write beside it removes it."""
    path = tmp_path / "m.json"
    dead = _writer(path, "die")
    assert dead.stdout.readline() == "writing\n" and dead.wait(timeout=60) == -signal.SIGKILL
    (left,) = os.listdir(tmp_path)
    assert left.startswith(".m.json.tmp@")
    live = _writer(path, "wait")
    try:
        assert live.stdout.readline() == "writing\n"
        writing = set(os.listdir(tmp_path)) - {left}
        host = writer_id().split("@")[0]
        if os.path.exists("/etc/machine-id"):  # the machine: another machine of this host name names its
            with open("/etc/machine-id") as f:  # files apart (this one swept them before)
                assert host.endswith("+" + f.read().strip()[:8])
        kept = [f".m.json.tmp@another-host@{dead.pid}@0badc0de",  # another host's
                f".m.json.tmp@{socket.gethostname()}+1@{dead.pid}@0badc0de",  # another PID namespace's
                f".m.json.tmp@{host.rsplit('+', 1)[0]}+00000000@{dead.pid}@0badc0de",  # another machine's of
                # the same host name (its initial PID namespace has the same inode as this one's)
                f".n.json.tmp@{host}@{dead.pid}@0badc0de",  # another file's
                f".m.json.tmp@{host}@99999999999999999999@0badc0de",  # no process's
                "notes.txt"]
        for name in kept:
            (tmp_path / name).write_text("{")
        with pytest.warns(UserWarning, match="another host or in another container") as said:  # left, said so
            save_model(models["full"], path)
        assert len(said) == 1 and all(name in str(said[0].message) for name in kept[:3])
        assert kept[3] not in str(said[0].message) and kept[4] not in str(said[0].message)
        assert sorted(os.listdir(tmp_path)) == sorted(["m.json", *writing, *kept])
        assert load_model(path).covariance_type == "full"
    finally:
        live.stdin.close()
        assert live.wait(timeout=60) == 0
    assert json.loads(path.read_text()) == {}  # the live writer's rename, last
    assert sorted(os.listdir(tmp_path)) == sorted(["m.json", *kept])


def test_writers_sweeping_at_once_both_write(tmp_path):
    """Two writers of one path remove the same leftovers at once: the one that finds a leftover gone
    writes on (the sweep is tidying; before, its write failed with FileNotFoundError naming the path)."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = writer_id().split("@")[0]
    for i in range(3000):
        (tmp_path / f".m.json.tmp@{host}@{dead.pid}@{i:08x}").write_text("{")
    start, errors = threading.Barrier(2), []

    def write(value):
        start.wait()
        try:
            write_atomic(tmp_path / "m.json", lambda f: json.dump({"x": value}, f))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(v,)) for v in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and os.listdir(tmp_path) == ["m.json"]
    assert json.loads((tmp_path / "m.json").read_text()) in ({"x": 1}, {"x": 2})


def test_a_write_the_disk_refuses_names_the_file(tmp_path, models):
    """A full disk fails the write itself, not the open or the rename, and that error named no file:
    the command line said only "No space left on device" for a model file or checkpoint (a review).
    Here a file-size limit refuses the write (EFBIG), as a full disk does (ENOSPC)."""
    save_model(models["full"], tmp_path / "src.json")
    script = ("import resource, signal, sys\n"
              "from dask_gmm import load_model, save_model\n"
              "model = load_model(sys.argv[1])\n"
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))\n"
              "try:\n"
              "    save_model(model, sys.argv[2])\n"
              "except OSError as exc:\n"
              "    print(exc.errno, exc.filename)\n")
    res = subprocess.run([sys.executable, "-c", script, str(tmp_path / "src.json"), str(tmp_path / "m.json")],
                         capture_output=True, text=True, timeout=120)
    assert res.stdout.split() == [str(errno.EFBIG), str(tmp_path / "m.json")], res.stdout + res.stderr
    assert sorted(os.listdir(tmp_path)) == ["src.json"]  # no temporary file left


def test_a_long_file_name_is_written(tmp_path, models):
    """The temporary file's name holds the file's: a name near the file system's limit of 255 bytes."""
    path = tmp_path / ("m" * 240 + ".json")
    save_model(models["full"], path)
    assert os.listdir(tmp_path) == [path.name] and load_model(path).covariance_type == "full"


def test_missing_folder_is_named_with_the_path_given(tmp_path, models):
    path = tmp_path / "no" / "such" / "m.json"
    with pytest.raises(ValueError, match=r"Cannot write '.*m\.json': the folder '.*such' does not exist") as err:
        save_model(models["full"], path)
    assert ".tmp@" not in str(err.value)
    assert not (tmp_path / "no").exists()
    (tmp_path / "notes").write_text("kept")  # a file where the folder should be: not "does not exist"
    for write in (lambda p: save_model(models["full"], p),
                  lambda p: GaussianMixture(2, checkpoint=p).fit(np.random.default_rng(0).normal(size=(50, 2)))):
        with pytest.raises(ValueError, match=r"Cannot write '.*m\.json': '.*notes' is a file, not a folder\.$"):
            write(tmp_path / "notes" / "m.json")
    assert (tmp_path / "notes").read_text() == "kept"


def test_unfitted_model_refused_and_file_untouched(tmp_path, models):
    save_model(models["full"], tmp_path / "m.json")
    before = (tmp_path / "m.json").read_bytes()
    with pytest.raises(NotFittedError, match="not fitted"):  # scikit-learn's kind, a ValueError too
        save_model(GaussianMixture(2), tmp_path / "m.json")
    for other in ("hello", None, 42):  # was scikit-learn's "hello is not an estimator instance."
        with pytest.raises(TypeError, match=rf"Expected a fitted GaussianMixture, got \w+ {other!r}\.$"):
            save_model(other, tmp_path / "m.json")
    assert (tmp_path / "m.json").read_bytes() == before and os.listdir(tmp_path) == ["m.json"]


def _valid(models, ct="full"):
    return model_to_dict(models[ct])


def _set(d, key, value):
    d = json.loads(json.dumps(d))
    if value is _DELETE:
        del d[key]
    else:
        d[key] = value(d[key]) if callable(value) else value
    return d


_DELETE = object()


def _first(value):
    """Replace the first entry of a list."""
    return lambda old: [value] + old[1:]


def _skew(c):
    c = np.array(c)
    c[0, 0, 1] += 0.5
    return c.tolist()

MUTATIONS = {
    "wrong format": ("full", "format", "dask_gmm.model/99", "format tag"),
    "checkpoint format": ("full", "format", "dask_gmm.checkpoint/1", "checkpoint of a fit, not a model"),
    "missing means": ("full", "means", _DELETE, "missing keys"),
    "missing format": ("full", "format", _DELETE, "format tag"),
    "unknown covariance type": ("full", "covariance_type", "banana", "covariance_type"),
    "huge n_components": ("full", "n_components", 10**9, "'n_components' must be an integer"),
    "huge n_features": ("full", "n_features_in", 10**6, "'n_features_in' must be an integer"),
    "n_components bool": ("full", "n_components", True, "'n_components' must be an integer"),
    "n_components string": ("full", "n_components", "3", "'n_components' must be an integer"),
    "n_components mismatch": ("full", "n_components", 4, "has shape"),
    "means wrong shape": ("full", "means", lambda m: m[:2], "'means' has shape"),
    "means ragged": ("full", "means", lambda m: [m[0], m[1][:1], m[2]], "not a rectangular"),
    "means strings": ("full", "means", lambda m: [[str(v) for v in r] for r in m], "numbers only"),
    "means null": ("full", "means", lambda m: [[None, None]] * 3, "numbers only"),
    "means nested dict": ("full", "means", {"__class__": "os.system"}, "numbers only"),
    "means NaN": ("full", "means", lambda m: [[float("nan"), 0.0]] + m[1:], "non-finite"),
    "covariances diag shape for full": ("full", "covariances", [[1.0, 1.0]] * 3, "'covariances' has shape"),
    "covariances infinite": ("full", "covariances", _first([[float("inf"), 0.0], [0.0, 1.0]]), "non-finite"),
    "covariances indefinite": ("full", "covariances", _first([[1.0, 2.0], [2.0, 1.0]]), "not positive definite"),
    "covariances asymmetric": ("full", "covariances", _skew, "same symmetric"),
    "diag covariance negative": ("diag", "covariances", lambda c: [[-1.0, 1.0]] + c[1:], "not positive definite"),
    "spherical covariance zero": ("spherical", "covariances", lambda c: [0.0] + c[1:], "not positive definite"),
    "tied covariance 3d": ("tied", "covariances", lambda c: [c] * 3, "'covariances' has shape"),
    "precisions_cholesky inconsistent": ("full", "precisions_cholesky", lambda p: (2 * np.array(p)).tolist(),
                                         "same symmetric"),
    "precisions_cholesky lower": ("full", "precisions_cholesky", lambda p: np.swapaxes(p, 1, 2).tolist(),
                                  "same symmetric"),
    "weights sum 2": ("full", "weights", lambda w: [2 * v for v in w], "sum to 1, got sum 2.0"),
    "weights sum 1.003": ("full", "weights", lambda w: [1.003 * v for v in w], "sum to 1"),  # every score off by 3e-3
    "weights negative": ("full", "weights", [1.5, -0.25, -0.25], "sum to 1, got -0.25"),  # was 'got sum 1.0'
    "converged string": ("full", "converged", "yes", "'converged'"),
    "n_iter negative": ("full", "n_iter", -1, "'n_iter'"),
    "lower_bounds not list": ("full", "lower_bounds", "1,2", "'lower_bounds'"),
    "lower_bounds strings": ("full", "lower_bounds", ["x"], "'lower_bounds'"),
    "lower_bound list": ("full", "lower_bound", [1.0], "'lower_bound' must be a number"),
}


def test_a_file_of_json_that_is_no_object_is_refused(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"m\.json' is not a valid dask_gmm model file \(the file does not hold a JSON "
                                         r"object\)\. Model files are written by dask_gmm\.save_model"):
        load_model(path)


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_malformed_file_raises_value_error(tmp_path, models, case):
    ct, key, value, reason = MUTATIONS[case]
    path = tmp_path / "m.json"
    path.write_text(json.dumps(_set(_valid(models, ct), key, value)))
    with pytest.raises(ValueError, match="not a valid dask_gmm model file") as err:
        load_model(path)
    assert reason in str(err.value)


def test_unmodified_valid_dict_loads(tmp_path, models):
    # The mutations above start from this dict: it must load, or they would prove nothing.
    for ct in models:
        (tmp_path / "m.json").write_text(json.dumps(_valid(models, ct)))
        assert load_model(tmp_path / "m.json").covariance_type == ct


def test_a_key_given_twice_is_refused(tmp_path, models):
    """json keeps the last of a key given twice: an edit appended "weights" and it loaded silently."""
    text = json.dumps(_valid(models, "full"))
    assert text.endswith("}")
    (tmp_path / "m.json").write_text(text[:-1] + ', "weights": [1.0, 0.0, 0.0]}')
    with pytest.raises(ValueError, match=r"not a valid dask_gmm model file \(the key\(s\) 'weights' appear more "
                                         r"than once in an object\)"):
        load_model(tmp_path / "m.json")


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"\xff\xfe\x00garbage", b"[1, 2, 3]", b'"dask_gmm.model/1"', b"[" * 100_000,
     pickle.dumps({"format": FORMAT}), b'{"format": "dask_gmm.model/1"'],
    ids=["empty", "text", "binary", "list", "string", "deep nesting", "pickle", "truncated"],
)
def test_not_a_model_file_raises_value_error(tmp_path, content):
    path = tmp_path / "m.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a valid dask_gmm model file") as err:
        load_model(path)
    if content.startswith(b"\xff"):  # it was the codec's own words, "'utf-8' codec can't decode byte 0xff ..."
        assert "(not UTF-8 text, as JSON is)" in str(err.value)


def test_a_byte_order_mark_is_skipped(tmp_path, X):
    # Windows editors save UTF-8 with a byte-order mark; json.loads refused it ("Unexpected UTF-8 BOM")
    model = GaussianMixture(2, random_state=0).fit(X)
    save_model(model, tmp_path / "m.json")
    marked = tmp_path / "marked.json"
    marked.write_bytes(b"\xef\xbb\xbf" + (tmp_path / "m.json").read_bytes())
    loaded = load_model(marked)
    np.testing.assert_array_equal(loaded.means_, model.means_)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_missing_file_raises_value_error(tmp_path):
    with pytest.raises(ValueError, match="No model file"):
        load_model(tmp_path / "absent.json")
    # a URL was "No model file at 's3://...'. Check the path." (a review)
    with pytest.raises(ValueError, match=r"Cannot read the model file 's3://bucket/m\.json': model files are local "
                                         r"files\. Copy it here"):
        load_model("s3://bucket/m.json")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_bayesian_model_is_refused(tmp_path):
    from dask_gmm import BayesianGaussianMixture

    X = np.random.default_rng(0).normal(size=(200, 2))
    bgm = BayesianGaussianMixture(n_components=2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="BayesianGaussianMixture"):
        save_model(bgm, tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


def test_written_files_follow_the_umask(tmp_path):
    """Written through a temporary file and a rename, as others would write them: not 0600."""
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "a.json", lambda f: json.dump({"x": 1}, f))
    finally:
        os.umask(old)
    assert (os.stat(tmp_path / "a.json").st_mode & 0o777) == 0o640


def test_settings_round_trip_so_a_loaded_model_samples_and_refits_the_same(tmp_path, X):
    gm = GaussianMixture(3, reg_covar=0.5, tol=1e-6, max_iter=50, init_params="random", random_state=7,
                         split_every=4).fit(X)
    save_model(gm, tmp_path / "m.json")
    loaded = load_model(tmp_path / "m.json")
    settings = ("reg_covar", "tol", "max_iter", "init_params", "random_state", "split_every", "n_init", "warm_start")
    assert {k: loaded.get_params()[k] for k in settings} == {k: gm.get_params()[k] for k in settings}
    np.testing.assert_array_equal(loaded.sample(5)[0], gm.sample(5)[0])
    for m in (gm, loaded):  # a warm refit under the same reg_covar
        m.set_params(warm_start=True, max_iter=3).fit(X)
    np.testing.assert_array_equal(loaded.covariances_, gm.covariances_)


def test_settings_that_are_not_json_scalars_are_left_out(tmp_path, X):
    gm = GaussianMixture(3, random_state=np.random.default_rng(0), means_init=X[:3], checkpoint=tmp_path / "c.json")
    save_model(gm.fit(X), tmp_path / "m.json")
    settings = json.loads((tmp_path / "m.json").read_text())["settings"]
    assert "random_state" not in settings and "means_init" not in settings and "checkpoint" not in settings
    loaded = load_model(tmp_path / "m.json")
    assert loaded.random_state is None and loaded.means_init is None and loaded.checkpoint is None


def test_a_file_without_settings_loads_with_the_defaults(tmp_path, models):
    d = model_to_dict(models["full"])
    del d["settings"]
    (tmp_path / "old.json").write_text(json.dumps(d))
    loaded = load_model(tmp_path / "old.json")
    assert loaded.get_params() == GaussianMixture(3).get_params()
    np.testing.assert_array_equal(loaded.means_, models["full"].means_)


def test_unknown_settings_of_a_later_version_are_ignored(tmp_path, models):
    d = model_to_dict(models["full"])
    d["settings"]["colour"] = "teal"
    (tmp_path / "later.json").write_text(json.dumps(d))
    with pytest.warns(UserWarning, match="Ignoring the setting 'colour' of the model file") as seen:
        loaded = load_model(tmp_path / "later.json")
    assert seen[0].filename == __file__  # the caller's line (a log line had bypassed the command line's warnings)
    assert "colour" not in loaded.get_params()
    np.testing.assert_array_equal(loaded.means_, models["full"].means_)
    del d["settings"]["colour"]  # a key of the file's own unknown: said too (a review saw it ignored silently)
    (tmp_path / "later.json").write_text(json.dumps({**d, "colour": "teal", "means_init": [[0.0]]}))
    with pytest.warns(UserWarning, match="Ignoring the keys 'colour', 'means_init' of the model file, unknown to "
                                         "this dask_gmm") as seen:
        loaded = load_model(tmp_path / "later.json")
    assert len(seen) == 1 and seen[0].filename == __file__
    np.testing.assert_array_equal(loaded.means_, models["full"].means_)
    (tmp_path / "later.json").write_text(json.dumps(d))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a file as save_model writes it: no word
        load_model(tmp_path / "later.json")


def test_bool_verbose_and_a_float32_scikit_learn_model_save_and_load(tmp_path):
    """verbose=True was dropped (a bool is no JSON int); a scikit-learn model fitted on float32
    correlated data was refused by save_model (its float32 factor did not match its covariances).
    The tied model of x + 0.3 noise alone no longer showed it (a review removed the fix and this
    test passed); a full one of x + 0.01 noise does."""
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal
    from sklearn.mixture import GaussianMixture as SKGaussianMixture

    rng = np.random.default_rng(0)
    x = rng.standard_normal(5000)
    for covariance_type, noise in (("tied", 0.3), ("full", 0.01)):
        X32 = np.c_[x, x + noise * rng.standard_normal(5000)].astype(np.float32)
        sk = SKGaussianMixture(2, covariance_type=covariance_type, random_state=0, verbose=True).fit(X32)
        save_model(sk, tmp_path / "sk.json")
        loaded = load_model(tmp_path / "sk.json")
        assert loaded.verbose == 1
        np.testing.assert_array_equal(loaded.covariances_, sk.covariances_.astype(np.float64))
        X64, covs = X32.astype(np.float64), np.broadcast_to(loaded.covariances_, (2, 2, 2))
        ref = logsumexp([np.log(w) + multivariate_normal(m, c).logpdf(X64)  # SciPy's, from the saved parameters
                         for w, m, c in zip(loaded.weights_, loaded.means_, covs)], axis=0)
        # atol: a row's log-density near 0 (-0.0016) differed by 1.7e-12 with OpenBLAS's AVX-512 kernels
        np.testing.assert_allclose(loaded.score_samples(X64), ref, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("settings, said", [
    ({"max_iter": 2.5}, "'settings.max_iter' must be a JSON int"),
    ({"warm_start": 1}, "'settings.warm_start' must be a JSON bool"),
    ({"tol": -1.0}, "'tol' parameter"),
    ({"init_params": "best"}, "init_params must be one of"),
    ({"random_state": -1}, "'settings.random_state' must be a non-negative integer, got -1"),  # loaded; fit failed
    ({"verbose": -2}, "'verbose' parameter"),
    ([], "'settings' must be a JSON object"),
])
def test_bad_settings_are_refused(tmp_path, models, settings, said):
    d = model_to_dict(models["full"])
    d["settings"] = settings
    (tmp_path / "bad.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match=re.escape(said)):
        load_model(tmp_path / "bad.json")


@pytest.mark.parametrize("change, said", [
    (lambda m: setattr(m, "weights_", np.array([0.5, 0.5, 0.5])),
     "model.weights_ (summing to 1.5, smallest 0.5) are not a mixture's weights, non-negative and summing to 1"),
    (lambda m: m.means_.__setitem__((0, 0), np.nan), "model.means_ holds NaN or infinite values, which no fit leaves"),
])
def test_a_model_that_would_not_load_is_not_saved(tmp_path, X, change, said):
    gm = GaussianMixture(3, random_state=0).fit(X)
    change(gm)
    with pytest.raises(ValueError, match=re.escape(said)):
        save_model(gm, tmp_path / "m.json")
    assert os.listdir(tmp_path) == []


def test_paths_that_name_no_regular_file_are_refused(tmp_path, models):
    """save_model to a FIFO (or /dev/null) replaced it with a regular file; to 'x.json/' it failed naming
    its temporary file; load_model of a FIFO waited forever for a writer."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"fifo': it is not a regular file \(a device, a FIFO or a socket\)"):
        save_model(models["full"], fifo)
    with pytest.raises(ValueError, match=r"new\.json/': a path ending in '/' names a folder"):
        save_model(models["full"], f"{tmp_path / 'new.json'}/")
    with pytest.raises(ValueError, match="fifo' is not a valid dask_gmm model file \\(not JSON: Expecting value"):
        load_model(fifo)  # nobody writes to it: read as empty, not waited on
    with pytest.raises(ValueError, match="not a valid dask_gmm model file \\(not a regular file, nor a pipe"):
        load_model(os.devnull)
    assert os.listdir(tmp_path) == ["fifo"] and stat.S_ISFIFO(os.stat(fifo).st_mode)


_LOAD_UNDER_A_LIMIT = """
import resource, sys
import dask_gmm
dask_gmm.load_model(sys.argv[1])  # every module it needs imported first
vm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + 2**28, resource.getrlimit(resource.RLIMIT_AS)[1]))  # 256 MiB more
print(dask_gmm.load_model(sys.argv[1]).n_components)
"""


def test_a_model_file_is_read_within_a_small_address_space(tmp_path, models):
    """load_model read a model with f.read(2**30 + 1), which set aside 1 GiB first: under an address-space
    limit (ulimit -v, as batch systems set) score and predict of a model of a few KB ended in a
    MemoryError traceback (a review). It reads a MiB at a time."""
    path = tmp_path / "m.json"
    save_model(models["full"], path)
    done = subprocess.run([sys.executable, "-c", _LOAD_UNDER_A_LIMIT, str(path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == str(models["full"].n_components), done.stderr[-500:]


def test_a_model_file_is_read_from_a_pipe(tmp_path, models):
    """A shell's <(cat model.json), or a pipe into /dev/stdin: /dev/fd/N, a pipe, read as the file."""
    path = tmp_path / "m.json"
    save_model(models["full"], path)
    data = path.read_bytes()
    assert len(data) < 65536  # the pipe holds it all before it is read
    r, w = os.pipe()
    try:
        os.write(w, data)
        os.close(w)
        got = load_model(f"/dev/fd/{r}")
    finally:
        os.close(r)
    want = load_model(path)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))


def test_a_folder_as_the_path_is_a_value_error_naming_it(tmp_path, models):
    (tmp_path / "models").mkdir()
    with pytest.raises(ValueError, match="it is a folder"):
        save_model(models["full"], tmp_path / "models")
    assert os.listdir(tmp_path) == ["models"] and os.listdir(tmp_path / "models") == []


def test_bytes_paths_are_paths_and_other_values_are_named(tmp_path, models, X):
    """load_model read a bytes path, where save_model and checkpoint= raised a TypeError from
    os.fspath's str methods (found by a probe); True or 5 were os.fspath's TypeError."""
    path = os.fsencode(tmp_path / "m.json")
    save_model(models["full"], path)
    np.testing.assert_array_equal(load_model(path).means_, models["full"].means_)
    ckpt = os.fsencode(tmp_path / "ck.json")
    a = GaussianMixture(3, random_state=0, checkpoint=ckpt).fit(X)
    assert json.loads((tmp_path / "ck.json").read_text())["runs"][0]["n_iter"] == a.n_iter_ > 0
    b = GaussianMixture(3, random_state=0, checkpoint=ckpt).fit(X)  # resumed from it: the same fit
    np.testing.assert_array_equal(a.means_, b.means_)
    for bad in (True, 5, 1.5):
        with pytest.raises(ValueError, match=rf"^checkpoint must be a file's path \(a str, bytes or os.PathLike\), "
                                             rf"not {type(bad).__name__} {bad}\.$"):
            GaussianMixture(3, checkpoint=bad).fit(X)
        with pytest.raises(ValueError, match=r"^The path to write must be a file's path"):
            save_model(models["full"], bad)
    assert sorted(os.listdir(tmp_path)) == ["ck.json", "m.json"]


def _times_100(c, where):
    c = np.array(c)
    c[where] *= 100
    return c.tolist()


#: Edits of a covariance of small scale: the middle feature's variance (1e6 times under the first
#: feature's), and the whole of the narrow component 0 (its rows 1e-3 times the others').
#: (Fitted tied and spherical models do not reach such scales: see the built ones below.)
SMALL_SCALE_EDITS = {"full": [(slice(None), 1, 1), 0], "diag": [(slice(None), 1), 0]}


@pytest.mark.parametrize("ct", ["full", "diag"])
def test_an_edit_of_a_feature_or_component_of_small_scale_is_refused(tmp_path, ct):
    """One norm over the whole array let the covariances of a feature 1e6 times smaller than another,
    or of a component that much narrower, be edited 100-fold (found by a probe); ill-conditioned
    models still load."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 3)) * [1e6, 1.0, 1e-6]
    X[:2000] = X[:2000] * 1e-3 + [0, 10, 0]
    gm = GaussianMixture(2, covariance_type=ct, random_state=0, reg_covar=1e-15).fit(X)
    path = tmp_path / "m.json"
    save_model(gm, path)
    np.testing.assert_array_equal(load_model(path).covariances_, gm.covariances_)
    d = json.loads(path.read_text())
    for where in SMALL_SCALE_EDITS[ct]:
        path.write_text(json.dumps({**d, "covariances": _times_100(d["covariances"], where)}))
        with pytest.raises(ValueError, match="'covariances' and 'precisions_cholesky' do not describe the same"):
            load_model(path)


@pytest.mark.parametrize("ct", ["full", "tied"])
def test_a_fit_of_nearly_collinear_features_saves_and_its_checkpoint_resumes(tmp_path, ct):
    """Two features equal to 1e-8 of their scale: the fit's covariances have condition numbers near
    2e14 at the default reg_covar, and the factor recomputed from them differed from the fit's by
    more than 1e-4, so neither dask_gmm's fit nor scikit-learn's could be saved, and the fit's
    checkpoint was called damaged (a review). An edit of 1 % of a covariance is still refused."""
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    rng = np.random.default_rng(2)  # scikit-learn's tied factor: 4.3 eps cond from the one recomputed
    u = rng.normal(size=(4000, 1))
    X = np.hstack([u, u + 1e-8 * rng.normal(size=(4000, 1)), rng.normal(size=(4000, 1))]) * 1e4
    X[2000:] += 1e5
    path, checkpoint = tmp_path / "m.json", tmp_path / "ck.json"
    fits = [GaussianMixture(2, covariance_type=ct, random_state=0).fit(X)]
    try:
        fits.append(SkGaussianMixture(2, covariance_type=ct, random_state=0).fit(X))
    except ValueError:  # its tied covariance, X'X less the means' products, lost its definiteness with
        assert ct == "tied"  # OpenBLAS's Haswell kernels (an AMD Zen 3): no fit of its to save there
    for gm in fits:
        assert np.linalg.cond(np.asarray(gm.covariances_).reshape(-1, 3, 3)).max() > 1e13
        save_model(gm, path)
        loaded = load_model(path)
        for attr in ("covariances_", "precisions_cholesky_", "means_", "weights_"):
            np.testing.assert_array_equal(getattr(loaded, attr), getattr(gm, attr))
    d = json.loads(path.read_text())
    factor = np.asarray(d["precisions_cholesky"])
    factor[..., 0] *= 1.01  # the factor along the first feature, a direction the data determine
    for edit in ({"covariances": (np.asarray(d["covariances"]) * 1.01).tolist()},
                 {"precisions_cholesky": factor.tolist()}):
        path.write_text(json.dumps({**d, **edit}))
        with pytest.raises(ValueError, match="'covariances' and 'precisions_cholesky' do not describe the same"):
            load_model(path)
    kwargs = dict(covariance_type=ct, random_state=0, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        whole = GaussianMixture(2, max_iter=4, **kwargs).fit(X)
        GaussianMixture(2, max_iter=2, checkpoint=checkpoint, **kwargs).fit(X)
        resumed = GaussianMixture(2, max_iter=4, checkpoint=checkpoint, **kwargs).fit(X)
    assert resumed.n_iter_ == whole.n_iter_ == 4
    np.testing.assert_array_equal(resumed.lower_bounds_, whole.lower_bounds_)
    np.testing.assert_array_equal(resumed.precisions_cholesky_, whole.precisions_cholesky_)


def test_a_fit_whose_covariances_scaled_to_unit_variance_round_indefinite_saves(tmp_path):
    """Condition 1.7e17: the covariances scaled to unit variances lost their definiteness in the
    rounding, so the fit could not be saved ("not positive definite") nor its checkpoint resumed,
    where the fit's own Cholesky, in the stored units, had succeeded (a review)."""
    rng = np.random.default_rng(4)
    u = rng.normal(size=(1000, 1))
    X = np.hstack([u, u + 1e-10 * rng.normal(size=(1000, 1))]) * 5e4
    X[500:] += 2.5e5
    gm = GaussianMixture(2, covariance_type="tied", random_state=0).fit(X)
    assert np.linalg.cond(gm.covariances_) > 1e15  # 1.7e17 on the machine of the review, 3e15-2e16 on others
    save_model(gm, tmp_path / "m.json")
    np.testing.assert_array_equal(load_model(tmp_path / "m.json").precisions_cholesky_, gm.precisions_cholesky_)
    # whether a fit's rounds so depends on the machine's BLAS: covariances that do, on every machine
    cov = np.array([[4952088346.940576, 4952088348.638007], [4952088348.638007, 4952088350.335441]])
    np.linalg.cholesky(cov)
    s = np.sqrt(np.diag(cov))
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(cov / np.outer(s, s))
    model = fitted_model(np.array([0.5, 0.5]), np.array([[0.0, 0.0], [2.5e5, 2.5e5]]), cov, "tied")
    save_model(model, tmp_path / "c.json")
    np.testing.assert_array_equal(load_model(tmp_path / "c.json").precisions_cholesky_, model.precisions_cholesky_)


@pytest.mark.parametrize("ct", ["full", "spherical"])
def test_a_model_file_whose_precisions_overflow_is_refused(tmp_path, models, X, ct):
    """Variances of 1e-310, consistent with their factor (1e155), loaded with precisions_ of inf: the
    model's score then blamed the data's magnitude (a review)."""
    path = tmp_path / "m.json"
    save_model(models[ct], path)
    d = json.loads(path.read_text())
    K, n = len(d["weights"]), X.shape[1]
    tiny = 1e-310
    if ct == "full":
        d["covariances"] = (np.eye(n) * tiny)[None].repeat(K, 0).tolist()
        d["precisions_cholesky"] = (np.eye(n) * tiny**-0.5)[None].repeat(K, 0).tolist()
    else:
        d["covariances"], d["precisions_cholesky"] = [tiny] * K, [tiny**-0.5] * K
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=r"'covariances' are too small for float64: the precisions, their "
                                         r"inverses, overflow"):
        load_model(path)
    with np.errstate(over="ignore"):  # its precisions_: inf
        gm = fitted_model(d["weights"], d["means"], np.asarray(d["covariances"]), ct,
                          np.asarray(d["precisions_cholesky"]))
    with pytest.raises(ValueError, match="'covariances' are too small for float64"):
        save_model(gm, tmp_path / "again.json")


def test_a_model_file_whose_weights_sum_to_nearly_1_samples(tmp_path, models):
    """load_model takes weights summing to 1 within 1e-6, which numpy's multinomial refused in sample()
    ("sum(pvals[:-1]) > 1.0", found by a probe)."""
    path = tmp_path / "m.json"
    save_model(models["full"], path)
    d = json.loads(path.read_text())
    d["weights"] = [0.6, 0.4000005, 0.0]
    path.write_text(json.dumps(d))
    X, y = load_model(path).sample(2000)
    assert X.shape == (2000, 2) and set(np.unique(y)) == {0, 1}
    assert abs(np.mean(y == 0) - 0.6) < 0.05


def test_save_model_replaces_only_model_files_and_never_writes_into_a_store(tmp_path, models):
    """save_model replaced any file: a Zarr array's metadata (the store then unreadable), a CSV (found
    by a probe); the CLI refused both. A URL was taken for a relative folder."""
    import zarr

    store = tmp_path / "data.zarr"
    zarr.open_group(str(store), mode="w").create_array("X", data=np.ones((10, 2)), chunks=(5, 2))
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    csv = tmp_path / "data.csv"
    csv.write_text("id,value\n")
    for path, said in ((store / "X" / "zarr.json", "lies inside the Zarr store"),
                       (store / "model.json", "lies inside the Zarr store"),
                       (csv, "exists and is not a dask_gmm model file"),
                       ("http://host/m.json", "model files are local files")):
        with pytest.raises(ValueError, match=said):
            save_model(models["full"], path)
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == before
    assert csv.read_text() == "id,value\n"
    empty = tmp_path / "empty.json"
    for blank in (b"", b"\n", b" \t\r\n"):  # as mktemp makes it, as ``echo > empty.json`` does...
        empty.write_bytes(blank)
        for _ in range(2):  # a blank file, then a model file, are replaced (a file of a newline had been refused)
            save_model(models["diag"], empty)
            assert load_model(empty).covariance_type == "diag"
    assert sorted(os.listdir(tmp_path)) == ["data.csv", "data.zarr", "empty.json"]
    # a file:// URL names a local file, as in the CLI (save_model refused it, load_model said "no model file")
    url = (tmp_path / "url.json").as_uri()
    save_model(models["tied"], url)
    assert load_model(tmp_path / "url.json").covariance_type == load_model(url).covariance_type == "tied"
    with pytest.raises(ValueError, match="lies inside the Zarr store"):
        save_model(models["full"], (store / "m.json").as_uri())


def test_a_file_written_at_the_path_during_a_save_is_kept(tmp_path):
    """What is at the path is checked again just before the rename, as the README says of every
    output: a CSV written there while a large model was written was replaced (a review)."""
    rng = np.random.default_rng(0)
    A = rng.normal(size=(400, 40, 40))
    model = fitted_model(np.full(400, 1 / 400), rng.normal(size=(400, 40)),
                         A @ A.transpose(0, 2, 1) / 40 + np.eye(40), "full")  # a 22 MB file: about a second
    path = tmp_path / "m.json"
    errors = []

    def save():
        try:
            save_model(model, path)
        except ValueError as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=save)
    thread.start()
    while not any(".tmp@" in name for name in os.listdir(tmp_path)) and thread.is_alive():
        time.sleep(0.001)
    path.write_text("id,value\n1,precious\n")  # written while the model is, as another program would
    thread.join()
    assert path.read_text() == "id,value\n1,precious\n"
    assert errors in ([], [f"{str(path)!r} exists and is not a dask_gmm model file; save_model replaces only model "
                           "files. Choose another path, or remove it yourself."])  # [] only if the save ended first
    assert os.listdir(tmp_path) == ["m.json"]


def test_replaced_model_files_keep_their_permissions_and_read_only_ones_are_kept(tmp_path, models):
    """A 0600 model file was replaced by a 0644 one, and a read-only (0444) one replaced silently."""
    private = tmp_path / "private.json"
    save_model(models["full"], private)
    private.chmod(0o600)
    save_model(models["diag"], private)
    assert load_model(private).covariance_type == "diag" and stat.S_IMODE(private.stat().st_mode) == 0o600
    private.chmod(0o444)
    kept = private.read_bytes()
    with pytest.raises(ValueError, match=r"private.json': it is read-only \(mode 0444\)\. Make it writable"):
        save_model(models["full"], private)
    assert private.read_bytes() == kept
    new = tmp_path / "new.json"
    save_model(models["full"], new)  # a new file: the umask's permissions
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~_umask()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_model_files_of_another_version_and_booleans_in_arrays(tmp_path, models):
    """A later format was "format tag is ..., Save models with dask_gmm.save_model"; a JSON true in an
    array of numbers loaded as 1.0 (scalars refused it)."""
    d = _valid(models, "full")
    path = tmp_path / "m.json"
    path.write_text(json.dumps({**d, "format": "dask_gmm.model/2"}))
    with pytest.raises(ValueError, match=r"written by another version of dask_gmm: format tag 'dask_gmm.model/2'"):
        load_model(path)
    means = [list(row) for row in d["means"]]
    means[0][0] = True
    path.write_text(json.dumps({**d, "means": means}))
    with pytest.raises(ValueError, match="'means' must hold numbers only"):
        load_model(path)


def test_model_and_checkpoint_paths_near_stores_links_and_files(tmp_path, models, X):
    """A review's findings: a plain file in the path was called a Zarr store; the store check followed
    a link that the write replaces; a checkpoint was written inside another store; load_model(5) was
    os.fspath's TypeError; a checkpoint whose arguments were a list was a TypeError."""
    import zarr

    store = tmp_path / "d.zarr"
    zarr.open_group(str(store), mode="w").create_array("X", data=np.ones((10, 2)), chunks=(5, 2))
    (tmp_path / "notes").write_text("mine")
    with pytest.raises(ValueError, match="notes' is a file, not a folder"):  # it was "the folder does not exist"
        save_model(models["full"], tmp_path / "notes" / "m.json")
    (store / "link.json").symlink_to(tmp_path / "m.json")  # the write would put a file in the store
    with pytest.raises(ValueError, match="lies inside the Zarr store"):
        save_model(models["full"], store / "link.json")
    (tmp_path / "out.json").symlink_to(store / "kept.json")  # the write replaces the link, outside the store
    save_model(models["full"], tmp_path / "out.json")
    assert not (tmp_path / "out.json").is_symlink() and not (store / "kept.json").exists()
    with pytest.raises(ValueError, match="Cannot write the checkpoint .*lies inside the Zarr store"):
        GaussianMixture(3, checkpoint=store / "X" / "ck.json").fit(X)
    assert sorted(p.name for p in (store / "X").iterdir()) == ["c", "zarr.json"]
    with pytest.raises(ValueError, match=r"^The model file must be a file's path"):
        load_model(5)
    ckpt = tmp_path / "ck.json"
    GaussianMixture(3, random_state=0, max_iter=3, tol=1e-1, checkpoint=ckpt).fit(X)
    state = json.loads(ckpt.read_text())
    state["fingerprint"]["args"] = [1, 2]
    ckpt.write_text(json.dumps(state))
    with pytest.raises(ValueError, match="is damaged"):
        GaussianMixture(3, random_state=0, max_iter=3, tol=1e-1, checkpoint=ckpt).fit(X)


@pytest.mark.parametrize("ct, covariances, where", [
    ("tied", np.diag([1e12, 1.0, 1e-12]), (1, 1)),
    ("spherical", np.array([1e12, 1.0, 1e-12]), 1),
])
def test_an_edit_of_a_built_covariance_of_small_scale_is_refused(tmp_path, ct, covariances, where):
    """The fitted tied and spherical models above did not reach the scales that the old check let
    through (a review): built ones do."""
    K = 1 if ct == "tied" else 3
    gm = fitted_model(np.full(K, 1 / K), np.zeros((K, 3)), covariances, ct)
    path = tmp_path / "m.json"
    save_model(gm, path)
    d = json.loads(path.read_text())
    path.write_text(json.dumps({**d, "covariances": _times_100(d["covariances"], where)}))
    with pytest.raises(ValueError, match="'covariances' and 'precisions_cholesky' do not describe the same"):
        load_model(path)


def test_a_previous_output_moved_aside_by_a_killed_writer_outlives_the_sweep_of_a_save(tmp_path):
    """A '.old' sibling (an output a killed writer had moved aside: perhaps the only copy) stays."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = writer_id().rsplit("@", 1)[0]
    aside = tmp_path / f".m.json.tmp@{host}@{dead.pid}@0badc0de.old"
    aside.write_text("the only copy")
    save_model(GaussianMixture(2, random_state=0).fit(make_blobs(n=300)), tmp_path / "m.json")
    assert aside.read_text() == "the only copy"


def test_a_model_whose_n_components_was_set_after_the_fit_saves_the_fitted_one(tmp_path):
    gm = GaussianMixture(3, random_state=0).fit(make_blobs(n=600))
    gm.set_params(n_components=5)  # for a next fit: the fitted model is still of 3
    save_model(gm, tmp_path / "m.json")
    loaded = load_model(tmp_path / "m.json")
    assert loaded.n_components == 3
    np.testing.assert_array_equal(loaded.means_, gm.means_)
