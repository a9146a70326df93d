"""The dask-gmm command line, end to end on a tiny store, against the library it wraps."""

import argparse
import contextlib
import errno
import importlib.util
import json
import logging
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import textwrap
import sys
import threading
import time
import warnings
import types

import numpy as np
import pytest
import zarr
from sklearn.exceptions import ConvergenceWarning

from dask_gmm import GaussianMixture, _kernels, _outputs, cli, generate_mixture, load_model, save_model
from dask_gmm.generate import read_true_model, store_info
from dask_gmm._signals import Terminated
from dask_gmm.io import as_dask_array

from .conftest import WITHOUT_OVERRIDES, console_script

N, CHUNK = 20_000, 5_000


def run(capsys, *argv):
    """main(argv) in-process: (exit status, stdout, stderr)."""
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc, err, *fragments, status=2):
    assert rc == status
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dask-gmm: error: ")
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "mix.zarr"
    assert cli.main(["generate", str(path), "--n-samples", "20_000", "--chunk-size", "5e3", "--seed", "1",
                     "--quiet"]) == 0
    return str(path)


@pytest.fixture(scope="module")
def model_file(store, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.json"
    assert cli.main(["fit", store, "--n-components", "3", "--seed", "0", "--output", str(path)]) == 0
    return str(path)


# ------------------------------------------------------------------ the commands against the library
def test_help_imports_none_of_the_numerical_stack():
    """``dask-gmm --help`` imported scikit-learn for one warning class used by the demo: 1.3-3 s where it
    takes 0.4 (a review). The command line's module and its help import none of the heavy libraries."""
    code = ("import contextlib, io, sys; from dask_gmm import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try: cli.main(['fit', '--help'])\n"
            "    except SystemExit: pass\n"
            "print(sorted(m for m in ('sklearn', 'numba', 'dask', 'zarr', 'distributed', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_generate_and_info_of_a_store_import_no_scikit_learn(tmp_path):
    """``generate`` and ``info`` of a store imported scikit-learn (about 1 s of their start-up here)
    through the estimators, the model files and the k-means start, which neither uses; ``info``
    imported distributed too (dask's ``compute`` by a scheduler's name looks for a Client). Both
    now run without scikit-learn, and ``info`` without distributed; it still prints the true
    mixture, which a model had been made for."""
    path = str(tmp_path / "s.zarr")

    def run_alone(argv):  # in a fresh process: (the heavy modules it imported, its output)
        code = ("import contextlib, io, sys; from dask_gmm import cli\n"
                "out = io.StringIO()\n"
                "with contextlib.redirect_stdout(out):\n"
                f"    assert cli.main({argv!r}) == 0\n"
                "print(sorted(m for m in ('sklearn', 'distributed', 'matplotlib') if m in sys.modules))\n"
                "print(out.getvalue())")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return done.stdout.splitlines()[0], done.stdout

    imported, _ = run_alone(["generate", path, "-n", "50", "-d", "2", "-k", "2", "--seed", "3"])
    assert "sklearn" not in imported, imported  # (distributed: generate's writes look for a Client)
    imported, out = run_alone(["info", path])
    assert imported == "[]", imported
    true = generate_mixture(str(tmp_path / "ref.zarr"), 50, 2, 2, random_state=3)
    assert "true model   2 components, full covariance" in out
    for line in cli._model_lines(true.weights_, true.means_, true.covariances_, indent="    "):
        assert line in out.splitlines(), line  # the table of the generator's model (it had been printed from one)


def test_choices_are_the_library_s():
    """The CLI copies these lists (so that --help does not import numba and dask); they must not drift."""
    from dask_gmm import _covariance, _init

    assert cli.COVARIANCE_TYPES == tuple(_covariance.COVARIANCE_TYPES)
    assert set(cli.INIT_PARAMS) == set(_init.INITIALIZERS)
    from dask_gmm import modelfile

    assert cli.MODEL_MAX_SIZE == modelfile.MAX_SIZE
    from dask_gmm import plot

    assert cli.PLOT_MAX_BINS == plot.MAX_BINS
    from dask_gmm import mixture

    assert cli._MAX_COUNT == mixture.MAX_INTEGER
    from dask_gmm import generate  # its copies, too (it imports no scikit-learn)

    assert generate.MAX_INTEGER == mixture.MAX_INTEGER and generate.MAX_SIZE == modelfile.MAX_SIZE


def test_generate_equals_the_library(store, tmp_path):
    ref = tmp_path / "ref.zarr"
    true = generate_mixture(ref, N, 2, 3, chunk_size=CHUNK, random_state=1)
    a, b = zarr.open_group(store, mode="r"), zarr.open_group(ref, mode="r")
    assert a["X"].chunks == (CHUNK, 2)
    np.testing.assert_array_equal(a["X"][:], b["X"][:])
    np.testing.assert_array_equal(a["labels"][:], b["labels"][:])
    np.testing.assert_array_equal(a["true_means"][...], true.means_)


def test_generate_draws_as_asked_and_says_so(store, model_file, tmp_path, capsys):
    """A separation sweep had to leave the command line: generate had no --box, --covariance-scale,
    --min-separation or --model, printed no seed it drew, and info showed none of them (a review of
    scripted experiments)."""
    drawn = ("-n", "2000", "-d", "3", "-k", "4", "--box", "3", "--covariance-scale", "0.5", "--min-separation", "1")
    rc, out, _ = run(capsys, "generate", tmp_path / "a.zarr", *drawn)
    seed = int(re.fullmatch(r"seed (\d+)  \(drawn: --seed \1 repeats this store\)", out.splitlines()[1])[1])
    ref = generate_mixture(tmp_path / "ref.zarr", 2000, 3, 4, random_state=seed, box=3, covariance_scale=0.5,
                           min_separation=1)
    np.testing.assert_array_equal(zarr.open_group(tmp_path / "a.zarr")["X"][:], zarr.open_group(tmp_path / "ref.zarr")["X"][:])
    assert np.abs(ref.means_).max() <= 3 and np.abs(ref.means_).max() > 1
    assert not np.array_equal(ref.means_, generate_mixture(tmp_path / "b.zarr", 2000, 3, 4, random_state=seed).means_)
    rc, out, _ = run(capsys, "info", tmp_path / "a.zarr")
    assert rc == 0 and "  drawn with   means in [-3, 3]^3, covariances 0.5 A^T A, means at least 1 apart\n" in out
    rc, out, _ = run(capsys, "generate", tmp_path / "a.zarr", *drawn)  # a rerun: its recorded seed, not "drawn"
    assert rc == 0 and out.splitlines()[1] == f"seed {seed}"
    rc, _, err = run(capsys, "generate", tmp_path / "a.zarr", *drawn[:-2])
    assert_one_line_error(rc, err, "generated with different arguments (--min-separation differs)")
    rc, _, err = run(capsys, "generate", tmp_path / "a.zarr", "-n", "2000", "--model", model_file, "--seed", str(seed))
    assert_one_line_error(rc, err, "with different arguments (--model, --n-components, --n-features differ)")  # not --box
    rc, _, err = run(capsys, "generate", tmp_path / "z.zarr", "-n", "2000", "-k", "40", "--min-separation", "5")
    assert_one_line_error(rc, err, "would fill more than that cube widened by as much. Lower --min-separation or "
                                   "raise --box.")  # the word "box" had been made "--box" in "the --box widened"
    # --json: info's object, and the seconds
    rc, out, _ = run(capsys, "generate", tmp_path / "c.zarr", *drawn, "--seed", "4", "--json")
    assert rc == 0 and len(out.splitlines()) == 1
    info = json.loads(out)
    took, found = info.pop("seconds"), info.pop("found")
    assert isinstance(took, float) and info["path"] == str(tmp_path / "c.zarr") and info["seed"] == 4 and found is None
    assert info["generator"]["box"] == 3.0 and info["generator"]["covariance_scale"] == 0.5
    assert info["generator"]["min_separation"] == 1.0 and info["generator"]["source"] == "drawn"
    assert info == json.loads(run(capsys, "info", tmp_path / "c.zarr", "--json")[1])
    rerun = lambda: json.loads(run(capsys, "generate", tmp_path / "c.zarr", *drawn, "--seed", "4", "--json")[1])  # noqa: E731
    assert rerun()["found"] == "complete"  # nothing written: a script tells a rerun from a fresh store
    os.unlink(next((tmp_path / "c.zarr" / "X" / "c").iterdir()) / "0")
    again = rerun()
    assert again["found"] == "damaged" and again["status"] == "complete"  # the lost chunk written again
    # --model: the fitted model's mixture, which gives D and K
    rc, out, _ = run(capsys, "generate", tmp_path / "m.zarr", "-n", "3000", "--model", model_file, "--seed", "2")
    assert rc == 0 and out.startswith("wrote 3,000 rows x 2 features (3 components, float64)")
    fitted = load_model(model_file)
    generate_mixture(tmp_path / "mref.zarr", 3000, model=fitted, random_state=2)
    np.testing.assert_array_equal(zarr.open_group(tmp_path / "m.zarr")["X"][:], zarr.open_group(tmp_path / "mref.zarr")["X"][:])
    np.testing.assert_allclose(read_true_model(tmp_path / "m.zarr").covariances_, fitted.covariances_, rtol=1e-12)
    assert "  drawn from   a fitted model (generate --model)" in run(capsys, "info", tmp_path / "m.zarr")[1]
    for extra in (("-k", "3"), ("--box", "3", "-d", "2")):  # ignored by the library: refused here
        rc, _, err = run(capsys, "generate", tmp_path / "n.zarr", "-n", "3000", "--model", model_file, *extra)
        assert_one_line_error(rc, err, "--model gives the mixture, so", "would be ignored")
    assert not (tmp_path / "n.zarr").exists()


def test_score_truth_equals_the_library(store, model_file, tmp_path, capsys):
    from dask_gmm.generate import compare_with_truth

    rc, out, _ = run(capsys, "score", model_file, store, "--truth", "--json")
    assert rc == 0 and json.loads(out)["truth"] == compare_with_truth(load_model(model_file), store)
    truth = json.loads(out)["truth"]
    rc, out, _ = run(capsys, "score", model_file, store, "--truth")
    assert rc == 0 and f"labels agree on {truth['label_agreement']:.2%} of rows" in out
    assert f"  true 0: fitted {truth['matched'][0]}, weight |diff| {truth['weight_error'][0]:.1e}" in out
    zarr.create_array(str(tmp_path / "plain.zarr"), shape=(N, 2), chunks=(CHUNK, 2), dtype="f8")[:] = (
        zarr.open_group(store)["X"][:])
    rc, _, err = run(capsys, "score", model_file, tmp_path / "plain.zarr", "--truth")
    assert_one_line_error(rc, err, "records no true parameters: --truth compares", "Leave out --truth")
    rc, out, _ = run(capsys, "score", model_file, store + "/X", "--truth", "--json")  # as info takes it
    assert rc == 0 and json.loads(out)["truth"] == truth
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    with open(copy / "labels" / "c" / "1", "r+b") as f:
        f.truncate(20)
    import dask_gmm.mixture

    passes = []  # refused before the score's pass over the data (the docs say so)
    real = dask_gmm.mixture.GaussianMixture.score
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dask_gmm.mixture.GaussianMixture, "score", lambda self, X, *a: passes.append(X) or real(self, X, *a))
        rc, _, err = run(capsys, "score", model_file, copy, "--truth")
    assert_one_line_error(rc, err, "has lost chunks of its true labels (or cut them short", "Rerun the same generate")
    assert passes == []


def test_a_store_named_as_a_file_format_is_refused(store, model_file, tmp_path, capsys):
    """``predict -o labels.npy`` wrote a Zarr folder of that name, which np.load could not read (a review)."""
    for name in ("labels.npy", "labels.CSV", "out.h5/"):  # a trailing / too (a Path had dropped it)
        rc, _, err = run(capsys, "predict", model_file, store, "-o", f"{tmp_path}/{name}")
        assert_one_line_error(rc, err, "names a", "file, but dask-gmm writes a Zarr store there (a folder)",
                              "such as labels.zarr (NumPy reads it as numpy.asarray(zarr.open_array(path)))")
    rc, _, err = run(capsys, "generate", tmp_path / "data.npz", "-n", "100")
    assert_one_line_error(rc, err, "PATH", "names a .npz file", "numpy.asarray(zarr.open_group(path)['X'])")
    assert os.listdir(tmp_path) == []
    assert run(capsys, "predict", model_file, store, "-o", tmp_path / "labels.v2", "-q")[0] == 0  # any other name


def test_score_reads_no_member_but_the_data(tmp_path, capsys):
    """score without --truth had opened every member named labels or true_* (a watch over a generated
    store's arrays): a user's group with a damaged labels array was refused in JSON's words (a review)."""
    X = np.random.default_rng(0).normal(size=(500, 2))
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    g.create_array("X", data=X)
    g.create_array("labels", data=np.zeros(500, "i1"))
    (tmp_path / "g.zarr" / "labels" / "zarr.json").write_text('{"broken\n')
    save_model(GaussianMixture(2, random_state=0).fit(X), tmp_path / "m.json")
    rc, out, err = run(capsys, "score", tmp_path / "m.json", tmp_path / "g.zarr", "--json")
    assert rc == 0, err
    assert json.loads(out)["mean_log_likelihood"] == pytest.approx(load_model(tmp_path / "m.json").score(X), rel=1e-12)


def test_score_refuses_a_store_replaced_between_its_passes(tmp_path, capsys, monkeypatch):
    """score --truth makes three passes (the model's score, the labels, the true mixture's score),
    each checking only its own reads: a store replaced after the first (a link repointed) printed
    A's mean log-likelihood beside B's truth, status 0 (a review)."""
    for name, seed in (("A.zarr", "1"), ("B.zarr", "9")):
        assert run(capsys, "generate", tmp_path / name, "-n", "20_000", "--chunk-size", "5e3", "--seed", seed,
                   "-q")[0] == 0
    link = tmp_path / "D.zarr"
    link.symlink_to("A.zarr")
    assert run(capsys, "fit", link, "-k", "3", "--seed", "0", "-o", tmp_path / "m.json", "-q")[0] == 0
    score = GaussianMixture.score
    calls = []

    def repointed(self, X, *args, **kwargs):
        calls.append(X)
        if len(calls) == 1:  # after the model's pass
            out = score(self, X, *args, **kwargs)
            (tmp_path / "D.tmp").symlink_to("B.zarr")
            os.replace(tmp_path / "D.tmp", link)
            return out
        return score(self, X, *args, **kwargs)

    monkeypatch.setattr(GaussianMixture, "score", repointed)
    rc, _, err = run(capsys, "score", tmp_path / "m.json", link, "--json", "--truth")
    assert_one_line_error(rc, err, f"The Zarr array {str(link / 'X')!r} changed while dask_gmm read it")
    calls.clear()
    (tmp_path / "D.tmp").symlink_to("A.zarr")
    os.replace(tmp_path / "D.tmp", link)
    rc, out, _ = run(capsys, "score", tmp_path / "m.json", link, "--json")  # one pass: A's, whole
    assert rc == 0 and json.loads(out)["mean_log_likelihood"] == pytest.approx(load_model(tmp_path / "m.json").score(
        tmp_path / "A.zarr"), rel=1e-12)


def test_predict_json(store, model_file, tmp_path, capsys, monkeypatch):
    """Paths as given, as fit's and generate's --json name them (model and data had been absolute beside
    a relative output); the record stored with the output keeps absolute ones."""
    monkeypatch.chdir(tmp_path)
    rc, out, _ = run(capsys, "predict", model_file, store, "-o", "p.zarr", "--proba", "--json")
    assert rc == 0 and len(out.splitlines()) == 1
    said = json.loads(out)
    assert said["output"] == "p.zarr" and said["kind"] == "proba" and said["shape"] == [N, 3]
    took = said.pop("seconds")
    assert isinstance(took, float) and said["dtype"] == "float64"
    assert said["model"] == str(model_file) and said["data"] == str(store)
    assert said["shape"] == list(zarr.open_array(tmp_path / "p.zarr").shape)
    recorded = zarr.open_array(tmp_path / "p.zarr").attrs[_outputs.PREDICT_ATTR]
    assert recorded["model"] == os.path.realpath(model_file) and os.path.isabs(recorded["data"])


def test_generate_without_compression_equals_the_library_and_says_so(tmp_path, capsys):
    path, ref = tmp_path / "none.zarr", tmp_path / "ref.zarr"
    assert run(capsys, "generate", path, "-n", "20_000", "--chunk-size", "5000", "--seed", "1",
               "--compression", "none", "-q")[0] == 0
    generate_mixture(ref, 20_000, chunk_size=5000, random_state=1, compression="none")
    a, b = zarr.open_group(path, mode="r"), zarr.open_group(ref, mode="r")
    assert [type(c).__name__ for c in a["X"].compressors] == ["Crc32cCodec"]
    np.testing.assert_array_equal(a["X"][:], b["X"][:])
    rc, out, _ = run(capsys, "info", path)
    assert rc == 0 and "compressors Crc32cCodec\n" in out
    zarr.create_array(str(tmp_path / "plain.zarr"), shape=(100, 2), chunks=(50, 2), dtype="f8")[:] = 1.0
    rc, out, _ = run(capsys, "info", tmp_path / "plain.zarr")  # zarr's default codecs: Zstd, no checksum
    assert rc == 0 and "compressors ZstdCodec (no checksum: a corrupt chunk may read as numbers)" in out
    import numcodecs  # zarr's dependency

    for name, kw in {"v2 compressor": dict(compressors=numcodecs.CRC32C()),  # each was said to have no checksum
                     "v2 filter": dict(filters=[numcodecs.CRC32C()], compressors=numcodecs.Zstd()),
                     "zstd's own": dict(compressors=zarr.codecs.ZstdCodec(checksum=True), zarr_format=3),
                     "numcodecs' zstd's own, wrapped": dict(compressors=zarr.codecs.numcodecs.Zstd(level=1, checksum=True),
                                                            zarr_format=3)}.items():
        checked = str(tmp_path / f"{name}.zarr")
        zarr.create_array(checked, data=np.ones((100, 2)), chunks=(50, 2), **{"zarr_format": 2, **kw})
        rc, out, _ = run(capsys, "info", checked)
        assert rc == 0 and "compressors " in out and "no checksum" not in out, name
        assert ("filters CRC32C, compressors Zstd\n" in out) == (name == "v2 filter"), out  # its filters had gone unnamed
        assert store_info(checked)["checksum"] is True
    assert store_info(str(tmp_path / "plain.zarr"))["checksum"] is False
    rc, _, err = run(capsys, "generate", path, "-n", "20_000", "--chunk-size", "5000", "--seed", "1",
                     "--compression", "lz4")
    assert_one_line_error(rc, err, "different arguments (--compression differs)", "--overwrite")
    rc, _, err = run(capsys, "generate", path, "-n", "20_000", "--chunk-size", "5000", "--seed", "2",
                     "--compression", "none")  # the option's name (it said "seed", the record's key)
    assert_one_line_error(rc, err, "different arguments (--seed differs)", "--overwrite")
    with pytest.raises(ValueError, match=r"different arguments \(random_state differs\)"):
        generate_mixture(path, 20_000, chunk_size=5000, random_state=2, compression="none")


def test_fit_equals_the_library(store, model_file, capsys):
    cli_model = load_model(model_file)
    gm = GaussianMixture(3, random_state=0).fit(store)
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(cli_model, attr), getattr(gm, attr))
    assert cli_model.n_iter_ == gm.n_iter_ and cli_model.converged_ == gm.converged_
    assert cli_model.lower_bounds_ == gm.lower_bounds_


def test_fit_options_reach_the_estimator(store, tmp_path, capsys):
    out = tmp_path / "m.json"
    rc, stdout, err = run(capsys, "fit", store, "-k", "2", "--covariance-type", "diag", "--max-iter", "40",
                          "--tol", "1e-5", "--reg-covar", "1e-4", "--n-init", "2", "--init-params", "k-means++",
                          "--seed", "7", "--checkpoint", tmp_path / "ckpt.json", "-o", out)
    assert rc == 0 and err == ""
    gm = GaussianMixture(2, covariance_type="diag", max_iter=40, tol=1e-5, reg_covar=1e-4, n_init=2,
                         init_params="k-means++", random_state=7).fit(store)
    m = load_model(out)
    assert m.covariance_type == "diag"
    np.testing.assert_array_equal(m.means_, gm.means_)
    np.testing.assert_array_equal(m.covariances_, gm.covariances_)
    assert os.path.exists(tmp_path / "ckpt.json")
    assert f"iterations         {gm.n_iter_}" in stdout and str(out) in stdout


def test_fit_leaves_the_logger_as_it_was(store, tmp_path, capsys):
    logger = logging.getLogger("dask_gmm.mixture")
    before = (logger.level, logger.propagate, list(logger.handlers))
    assert run(capsys, "fit", store, "-k", "3", "--seed", "0", "-o", tmp_path / "m.json")[0] == 0
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


def test_score_equals_the_library(store, model_file, capsys):
    rc, out, err = run(capsys, "score", model_file, store)
    assert rc == 0 and err == ""
    printed = {line[:20].strip(): line[21:].strip() for line in out.splitlines()}
    gm = load_model(model_file)
    assert float(printed["mean log-likelihood"]) == gm.score(store)
    assert float(printed["BIC"]) == pytest.approx(gm.bic(store), rel=1e-13)
    assert float(printed["AIC"]) == pytest.approx(gm.aic(store), rel=1e-13)
    rc, out, _ = run(capsys, "score", model_file, store, "--json")
    said = json.loads(out)
    assert said == {"mean_log_likelihood": gm.score(store), "bic": said["bic"], "aic": said["aic"], "n_samples": 20_000,
                    "n_parameters": 17}  # the keys docs/cli.md lists
    assert said["bic"] == pytest.approx(gm.bic(store), rel=1e-13) and said["aic"] == pytest.approx(gm.aic(store), rel=1e-13)


def test_fit_and_select_json_equal_the_library(store, tmp_path, capsys):
    """``fit --json`` and ``select --json`` print one JSON object each, for scripts (only ``score`` and
    ``info`` had one: an experiment-scripter review), with what the model file and select_model hold."""
    from dask_gmm import select_model

    rc, out, err = run(capsys, "fit", store, "-k", "3", "--seed", "0", "--tol", "1e-4", "-o", tmp_path / "m.json",
                       "--json", "-q")
    assert rc == 0 and err == ""
    fitted, gm = json.loads(out), load_model(tmp_path / "m.json")
    assert {k: fitted[k] for k in ("n_components", "covariance_type", "n_samples", "n_features", "n_iter",
                                   "converged", "lower_bound", "model", "checkpoint", "resumed")} == {
        "n_components": 3, "covariance_type": "full", "n_samples": 20_000, "n_features": 2, "n_iter": gm.n_iter_,
        "converged": gm.converged_, "lower_bound": gm.lower_bound_, "model": str(tmp_path / "m.json"),
        "checkpoint": None, "resumed": False}
    em, total = fitted["seconds_em"], fitted["seconds"]  # the iterations' part of the fit's time
    assert isinstance(em, float) and isinstance(total, float) and 0 < em <= total
    rc, out, err = run(capsys, "select", store, "-k", "1-3", "--covariance-types", "full,diag", "--seed", "0",
                       "-o", tmp_path / "s.json", "--json", "-q")
    assert rc == 0 and err == ""
    chosen = json.loads(out)
    sel = select_model(store, n_components=[1, 2, 3], covariance_types=["full", "diag"], random_state=0)
    assert chosen["results"] == sel.results_ and chosen["criterion"] == "bic" and chosen["figure"] is None
    assert chosen["best"] == {"n_components": sel.best_.n_components, "covariance_type": sel.best_.covariance_type}
    np.testing.assert_array_equal(load_model(tmp_path / "s.json").means_, sel.best_.means_)
    # strict JSON: a fit of no iteration has no lower bound, written as a model file writes it, not -Infinity
    for argv in (("fit", store, "-k", "2"), ("select", store, "-k", "2")):
        rc, out, _ = run(capsys, *argv, "--max-iter", "0", "-o", tmp_path / "z.json", "--json", "-q")
        assert rc == 0
        said = json.loads(out, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
        assert (said if argv[0] == "fit" else said["results"][0])["lower_bound"] == "-Infinity"


def test_fit_and_select_without_a_seed_say_and_save_the_seed_they_drew(store, tmp_path, capsys):
    """Without --seed, a fit could not be repeated: the seed it drew was neither printed nor saved (a
    new user's review). It is now drawn by the command, printed, given by --json and saved in the
    model file's settings; --seed with it repeats the fit. A checkpoint's rerun takes its seed."""
    rc, out, err = run(capsys, "fit", store, "-k", "3", "-o", tmp_path / "a.json", "-q")
    assert rc == 0 and err == "", err
    seed = int(re.search(r"seed +(\d+)  \(drawn: --seed (\d+) repeats this fit\)", out).group(1))
    drawn = load_model(tmp_path / "a.json")
    assert drawn.random_state == seed
    run(capsys, "fit", store, "-k", "3", "-o", tmp_path / "b.json", "--seed", seed, "-q")
    np.testing.assert_array_equal(load_model(tmp_path / "b.json").means_, drawn.means_)
    np.testing.assert_array_equal(drawn.means_, GaussianMixture(3, random_state=seed).fit(store).means_)
    rc, out, _ = run(capsys, "select", store, "-k", "2-3", "-o", tmp_path / "s.json", "--json", "-q")
    chosen = json.loads(out)
    assert load_model(tmp_path / "s.json").random_state == chosen["seed"] and isinstance(chosen["seed"], int)
    run(capsys, "select", store, "-k", "2-3", "-o", tmp_path / "t.json", "--seed", chosen["seed"], "-q")
    np.testing.assert_array_equal(load_model(tmp_path / "t.json").means_, load_model(tmp_path / "s.json").means_)
    # a checkpoint begun without --seed is resumed without it: the rerun takes the seed it records
    ckpt = tmp_path / "c.ckpt"
    rc, out, _ = run(capsys, "fit", store, "-k", "3", "-o", tmp_path / "c.json", "--checkpoint", ckpt,
                     "--max-iter", "1", "-q")  # not converged: a warning
    first = re.search(r"seed +(\d+)", out).group(1)
    rc, out, err = run(capsys, "fit", store, "-k", "3", "-o", tmp_path / "c.json", "--checkpoint", ckpt, "-q")
    assert rc == 0 and "resumed: 1 iteration made before this run" in out and err == "", out + err
    assert re.search(r"seed +(\d+)\n", out).group(1) == first  # not drawn again
    np.testing.assert_array_equal(load_model(tmp_path / "c.json").means_,
                                  GaussianMixture(3, random_state=int(first)).fit(store).means_)


def test_a_damaged_store_is_advised_generates_overwrite_by_every_command(store, model_file, tmp_path, capsys):
    """A store whose record no longer fits its true parameters: info and score advised "Pass --overwrite
    to replace it", an option they do not have (a review); generate, which has it, still does."""
    bad = tmp_path / "bad.zarr"
    shutil.copytree(store, bad)
    meta = json.loads((bad / "zarr.json").read_text())
    meta["attributes"]["dask_gmm"]["n_components"] = 10**9
    (bad / "zarr.json").write_text(json.dumps(meta))
    said = "is damaged: the arrays of its true parameters have shapes (3,), (3, 2) and (3, 2, 2), not those of 1000000000"
    for argv in (["info", bad], ["score", model_file, bad, "--truth"]):
        rc, _, err = run(capsys, *argv)
        assert_one_line_error(rc, err, said, "Regenerate it: 'dask-gmm generate' with --overwrite.")
    rc, _, err = run(capsys, "generate", bad, "--n-samples", "20_000", "--chunk-size", "5e3", "--seed", "1", "-q")
    assert_one_line_error(rc, err, said, "components of 2 features. Pass --overwrite to replace it.")


def test_info_summarises_a_checkpoint(store, tmp_path, capsys):
    """``info`` of a fit's checkpoint had been refused as "not a model": it now says what fit it belongs
    to and how far each run got, as the model file of that fit records the best run, and leaves it as it
    is. A damaged one, or one cut short, is named as such, as the fit would name it."""
    ckpt, model = tmp_path / "fit.ckpt", tmp_path / "m.json"
    fit = ["fit", store, "-k", "3", "--n-init", "2", "--tol", "0", "--max-iter", "4", "--seed", "5",
           "--covariance-type", "diag", "-o", model, "--checkpoint", ckpt, "-q"]
    assert run(capsys, *fit)[0] == 0
    before = ckpt.read_bytes()
    rc, out, err = run(capsys, "info", ckpt, "--json")
    assert rc == 0 and err == "" and ckpt.read_bytes() == before
    got = json.loads(out)
    fitted = load_model(model)
    X = zarr.open_array(os.path.join(store, "X"), mode="r")
    assert (got["shape"], got["dtype"], got["weighted"], got["warm_start"]) == (list(X.shape), str(X.dtype), False, False)
    assert got["row_chunks"] == len(as_dask_array(store).chunks[0])  # the fit's blocks
    assert {k: got["args"][k] for k in ("n_components", "covariance_type", "n_init", "tol", "random_state")} == {
        "n_components": 3, "covariance_type": "diag", "n_init": 2, "tol": 0.0, "random_state": 5}
    assert [r["n_iter"] for r in got["runs"]] == [4, 4] and not any(r["converged"] for r in got["runs"])
    best = max(got["runs"], key=lambda r: r["lower_bound"])
    assert best["lower_bound"] == fitted.lower_bound_ and best["n_iter"] == fitted.n_iter_
    rc, out, _ = run(capsys, "info", ckpt)
    assert rc == 0 and out.startswith(f"checkpoint {ckpt}, of a fit: that fit rerun with it resumes"), out
    assert "  data         20,000 rows x 2 features, float64," in out and "no sample weights" in out
    assert "3 components, diag covariance, n_init 2, tol 0.0, reg_covar 1e-06, init kmeans, seed 5" in out
    assert out.count("NOT converged (tol 0: every iteration run) after 4 iterations, lower bound ") == 2, out
    assert f"{fitted.lower_bound_:.6f}" in out
    finished = tmp_path / "done.ckpt"
    assert run(capsys, "fit", store, "-k", "2", "--seed", "1", "-o", model, "--checkpoint", finished, "-q")[0] == 0
    rc, out, _ = run(capsys, "info", finished)
    assert rc == 0 and "every run converged; that fit rerun with it returns its model without iterating" in out
    # damaged: edited, cut short, of the older layout: named, as the fit names them
    state = json.loads(before)
    state["runs"][0]["means"][0][0] += 1.0
    (tmp_path / "edited.ckpt").write_text(json.dumps(state))
    (tmp_path / "cut.ckpt").write_bytes(before[:300])
    del state["runs_digest"]
    (tmp_path / "older.ckpt").write_text(json.dumps(state))
    for name, words in (("edited", "it is a damaged checkpoint of a fit (its runs are not those written with it"),
                        ("cut", "it is a damaged checkpoint of a fit (cut short or corrupted: "),
                        ("older", "it is a checkpoint of a fit by an older dask_gmm, which this version does not resume")):
        rc, _, err = run(capsys, "info", tmp_path / f"{name}.ckpt")
        assert_one_line_error(rc, err, words)
        rc, _, err = run(capsys, *fit[:-5], "-o", tmp_path / "n.json", "--checkpoint", tmp_path / f"{name}.ckpt", "-q")
        assert rc == 2 and ("damaged" in err or "older dask_gmm" in err), err  # the fit refuses each too


def test_a_new_users_slips_are_named_with_what_to_do(store, model_file, tmp_path, capsys):
    """A new user's review: a range given to fit was "expected a whole number"; a misspelt option
    only "unrecognized"; a checkpoint given as a model had its format tag named; a CSV leaked the JSON
    parser's words alone; a folder as fit's output read "the model: Cannot write ..."; an output
    that could not be made named its hidden temporary path."""
    for k in ("2-5", "2,4"):
        rc, _, err = run(capsys, "fit", store, "-k", k, "-o", tmp_path / "m.json")
        assert_one_line_error(rc, err, f"fit takes one number of components, got '{k}'", "run 'dask-gmm select'")
    rc, _, err = run(capsys, "fit", store, "-k", "2", "-o", tmp_path / "m.json", "--covariance-types", "diag")
    assert_one_line_error(rc, err, "unrecognized arguments: --covariance-types diag (did you mean --covariance-type?)")
    rc, _, err = run(capsys, "fit", store, "--covariance-types", "diag")  # with required ones missing too
    assert_one_line_error(rc, err, "--covariance-types (did you mean --covariance-type?); and the following")
    rc, _, err = run(capsys, "--json")  # no command: nothing to suggest (it was --version)
    assert_one_line_error(rc, err, "unrecognized arguments: --json (see 'dask-gmm --help')")
    # a damaged checkpoint, without --seed: the checkpoint's own error, not a traceback of the seed's lookup
    (tmp_path / "bad.ckpt").write_text('{"format": "dask_gmm.checkpoint/1", "fingerprint": []}')
    rc, _, err = run(capsys, "fit", store, "-k", "2", "-o", tmp_path / "m.json", "--checkpoint", tmp_path / "bad.ckpt")
    assert_one_line_error(rc, err, "is damaged")
    ckpt = tmp_path / "c.ckpt"
    assert run(capsys, "fit", store, "-k", "2", "-o", tmp_path / "m.json", "--checkpoint", ckpt, "-q")[0] == 0
    rc, _, err = run(capsys, "predict", ckpt, store, "-o", tmp_path / "p.zarr")  # (info summarises it)
    assert_one_line_error(rc, err, "is not a valid dask_gmm model file (it is a checkpoint of a fit, not a model")
    rc, _, err = run(capsys, "predict", "s3://bucket/m.json", store, "-o", tmp_path / "p.zarr")  # was "no model
    assert_one_line_error(rc, err, "model files are local files. Copy it here")  # file at 's3://...'"
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    rc, _, err = run(capsys, "info", tmp_path / "data.csv")
    assert_one_line_error(rc, err, "is not a valid dask_gmm model file (not JSON: Expecting value")
    rc, _, err = run(capsys, "fit", store, "-k", "2", "-o", store)
    assert_one_line_error(rc, err, f"cannot write the model to {store!r}: it is a folder")
    if os.path.isdir("/proc/self"):  # Linux: nothing can be made in /proc
        long = "/proc/" + "l" * 160 + ".zarr"  # its hidden name holds a digest of it
        for output in ("/proc/x.zarr", long):
            rc, _, err = run(capsys, "predict", model_file, store, "-o", output)
            assert_one_line_error(rc, err, f"{output!r}. Check the path")
            assert ".tmp@" not in err


def test_a_warning_made_an_error_by_the_warnings_filter_is_one_line(store, tmp_path, capsys):
    """Under PYTHONWARNINGS=error a warning ended the command in its traceback (a review)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rc, _, err = run(capsys, "fit", store, "-k", "2", "--max-iter", "1", "--seed", "0", "-q",
                         "-o", tmp_path / "m.json")
    assert_one_line_error(rc, err, "did not converge", "increase --max-iter", "(a warning, made an error by Python's "
                          "warnings filter: PYTHONWARNINGS or -W)")
    assert not (tmp_path / "m.json").exists()


def test_a_warning_is_said_once_per_command(store, tmp_path, capsys):
    """The data's store is opened more than once by a command: the warning of a caching chain was
    printed twice by fit and predict (a diff review)."""
    rc, _, err = run(capsys, "fit", f"simplecache::file://{store}", "-k", "2", "--seed", "0", "-o",
                     tmp_path / "m.json", "-q")
    assert rc == 0 and err.count("dask-gmm: warning: ") == 1 and "caching file system" in err, err


@pytest.mark.skipif(not os.path.isdir("/dev/fd"), reason="no /dev/fd here")
def test_a_prediction_from_a_model_read_from_a_pipe_does_not_record_the_pipe(store, model_file, tmp_path, capsys):
    """A shell's <(cat m.json) is /dev/fd/63: it had been recorded, and shown by info, as the model's path."""
    r, w = os.pipe()
    threading.Thread(target=lambda: (os.write(w, open(model_file, "rb").read()), os.close(w)), daemon=True).start()
    try:
        rc, _, err = run(capsys, "predict", f"/dev/fd/{r}", store, "-o", tmp_path / "p.zarr", "-q")
    finally:
        os.close(r)
    assert rc == 0, err
    assert zarr.open_array(tmp_path / "p.zarr", mode="r").attrs[_outputs.PREDICT_ATTR]["model"] is None
    rc, out, _ = run(capsys, "info", tmp_path / "p.zarr")
    assert "with a model read from a pipe" in out and "/dev/fd" not in out


def test_predict_equals_the_library(store, model_file, tmp_path, capsys):
    gm = load_model(model_file)
    out = tmp_path / "labels.zarr"
    rc, stdout, err = run(capsys, "predict", model_file, store, "--output", out)
    assert rc == 0 and err == "" and stdout.startswith(f"wrote labels of {N:,} rows to {out} ")
    labels = zarr.open_array(out, mode="r")
    assert labels.dtype == np.int8 and labels.chunks[0] % CHUNK == 0
    assert [type(c).__name__ for c in labels.compressors] == ["ZstdCodec", "Crc32cCodec"]  # corruption is an error
    np.testing.assert_array_equal(labels[:], gm.predict(store).compute())

    proba_path = tmp_path / "proba.zarr"
    assert run(capsys, "predict", model_file, store, "-o", proba_path, "--proba")[0] == 0
    proba = zarr.open_array(proba_path, mode="r")
    assert proba.shape == (N, 3)
    np.testing.assert_allclose(proba[:], gm.predict_proba(store).compute(), rtol=0, atol=1e-15)
    assert sorted(os.listdir(tmp_path)) == ["labels.zarr", "proba.zarr"]  # no temporary folders left

    rc, _, err = run(capsys, "predict", model_file, store, "-o", out)
    assert_one_line_error(rc, err, "already exists", "--overwrite")
    assert run(capsys, "predict", model_file, store, "-o", out, "--overwrite", "--proba")[0] == 0
    assert zarr.open_array(out, mode="r").shape == (N, 3)
    assert sorted(os.listdir(tmp_path)) == ["labels.zarr", "proba.zarr"]
    one = tmp_path / "one.zarr"  # it said "1 rows"
    zarr.create_array(str(one), data=zarr.open_group(store, mode="r")["X"][:1])
    assert run(capsys, "predict", model_file, one, "-o", tmp_path / "one-labels.zarr")[1].startswith("wrote labels of 1 row to ")


@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")
def test_predict_into_a_group_that_would_not_list_it(store, model_file, tmp_path, capsys):
    """predict's output may join a Zarr group, but a v2 group lists only v2 arrays, and predict writes
    v3: the output was written where the group did not show it (a review). That is refused before the
    work; a v3 group whose consolidated metadata (its own, or a group's above it) would not list it is
    written to, with a warning saying how to list it (the group is the user's, not consolidated again)."""
    v2, v3, plain = (str(tmp_path / name) for name in ("v2.zarr", "v3.zarr", "plain.zarr"))
    zarr.open_group(v2, mode="w", zarr_format=2).create_array("Y", shape=(3, 2), dtype="f8")[...] = 1.0
    for group in (v3, plain):
        zarr.open_group(group, mode="w").create_array("Y", shape=(3, 2), dtype="f8")[...] = 1.0
    zarr.consolidate_metadata(v3)
    before = _digest(v2)
    rc, _, err = run(capsys, "predict", model_file, store, "-o", os.path.join(v2, "labels"))
    assert_one_line_error(rc, err, f"would lie in the Zarr v2 group {v2!r}, which lists only Zarr v2 arrays and "
                                   "groups, and predict writes a Zarr v3 array, which the group would not show. Write it outside")
    assert _digest(v2) == before and not os.path.lexists(os.path.join(v2, "labels"))
    labels = load_model(model_file).predict(store).compute()
    for group, warned in ((v3, True), (plain, False)):
        rc, _, err = run(capsys, "predict", model_file, store, "-o", os.path.join(group, "labels"), "-q")
        assert rc == 0
        said = (f"dask-gmm: warning: the Zarr group {group!r} has consolidated metadata, from which zarr and xarray "
                f"read its members, and which will not list the output: run zarr.consolidate_metadata({group!r}) "
                "once it is written to list it\n")
        assert err == (said if warned else "")
        np.testing.assert_array_equal(zarr.open_array(os.path.join(group, "labels"), mode="r")[:], labels)
        assert sorted(zarr.open_group(group, mode="r").array_keys()) == (["Y"] if warned else ["Y", "labels"])
    zarr.consolidate_metadata(v3)  # as the warning says
    assert sorted(zarr.open_group(v3, mode="r").array_keys()) == ["Y", "labels"]
    rc, _, err = run(capsys, "predict", model_file, store, "-o", os.path.join(v3, "labels"), "--proba", "--overwrite",
                     "-q")  # the listing now describes the labels: probabilities had read as int8 without a word
    assert rc == 0 and err == (f"dask-gmm: warning: the Zarr group {v3!r} has consolidated metadata, from which zarr "
                               "and xarray read its members, and which describes what was at this path before: run "
                               f"zarr.consolidate_metadata({v3!r}) once it is written to update it\n")
    zarr.open_group(os.path.join(v2, "sub"), mode="w", zarr_format=3)  # a v3 group in the v2 one lists it: written
    rc, _, err = run(capsys, "predict", model_file, store, "-o", os.path.join(v2, "sub", "labels"), "-q")
    assert (rc, err) == (0, "")
    assert list(zarr.open_group(os.path.join(v2, "sub"), mode="r").array_keys()) == ["labels"]
    nested = zarr.open_group(str(tmp_path / "root.zarr"), mode="w")  # consolidated above the output's own group
    nested.create_group("sub").create_array("Y", shape=(3, 2), dtype="f8")[...] = 1.0
    nested.create_group("big", attributes={"pad": "x" * 2**20})  # a zarr.json over 1 MiB, once consolidated
    # (it had been read in part, and no warning given: 2,500 arrays in a review)
    zarr.consolidate_metadata(nested.store_path.store)
    assert os.path.getsize(tmp_path / "root.zarr" / "zarr.json") > 2**20
    rc, _, err = run(capsys, "predict", model_file, store, "-o", tmp_path / "root.zarr" / "sub" / "labels", "-q")
    assert rc == 0 and err == f"dask-gmm: warning: the Zarr group {str(tmp_path / 'root.zarr')!r} has consolidated " \
        f"metadata, from which zarr and xarray read its members, and which will not list the output: run " \
        f"zarr.consolidate_metadata({str(tmp_path / 'root.zarr')!r}) once it is written to list it\n"


def test_predict_outputs_in_an_xarray_group_keep_it_open(store, model_file, tmp_path, capsys):
    """predict's outputs had no dimension names, and xarray needs them: once one joined a group that
    xarray wrote, ``xr.open_zarr`` of that group failed (a review). Both outputs now name their axes as
    a generated store's, and read back through xarray as predict computed them."""
    xr = pytest.importorskip("xarray")
    n = zarr.open_group(store, mode="r")["X"].shape[0]
    group = str(tmp_path / "results.zarr")
    xr.Dataset({"temperature": (("sample",), np.arange(float(n)))}).to_zarr(group, mode="w", consolidated=False)
    for name, option in (("labels", ()), ("proba", ("--proba",))):
        assert run(capsys, "predict", model_file, store, *option, "-o", os.path.join(group, name), "-q")[0] == 0
    ds = xr.open_zarr(group, consolidated=False)
    assert dict(ds.sizes) == {"sample": n, "component": 3}
    model = load_model(model_file)
    np.testing.assert_array_equal(ds["labels"].values, model.predict(store).compute())
    np.testing.assert_array_equal(ds["proba"].values, model.predict_proba(store).compute())
    np.testing.assert_array_equal(ds["temperature"].values, np.arange(float(n)))


def test_predict_failure_leaves_nothing_behind(store, model_file, tmp_path, capsys, monkeypatch):
    import dask.array as da

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(da, "store", boom)
    rc, _, err = run(capsys, "predict", model_file, store, "-o", tmp_path / "labels.zarr")
    assert_one_line_error(rc, err, "interrupted", status=130)
    assert os.listdir(tmp_path) == []


def test_predict_whose_input_changed_meanwhile_publishes_nothing(store, model_file, tmp_path, capsys):
    """A chunk of the input rewritten while predict read it: the labels of two data sets, written
    under the output's name without a word."""
    from dask.callbacks import Callback

    data = tmp_path / "mix.zarr"
    shutil.copytree(store, data)
    chunks = data / "X" / "c"

    class RewriteOnce(Callback):  # after the first task ends, as another writer would, mid-pass
        done = False

        def _posttask(self, key, result, dsk, state, worker_id):
            if not self.done:
                self.done = True
                shutil.copyfile(chunks / "1" / "0", tmp_path / "new")
                os.replace(tmp_path / "new", chunks / "3" / "0")

    with RewriteOnce():
        rc, _, err = run(capsys, "predict", model_file, data, "-o", tmp_path / "labels.zarr", "-q")
    assert_one_line_error(rc, err, f"The Zarr array {str(data / 'X')!r} changed while dask_gmm read it: its file "
                                   "'c/3/0' was rewritten after the computation began")
    assert sorted(os.listdir(tmp_path)) == ["mix.zarr"]  # no output, no temporary
    assert run(capsys, "predict", model_file, data, "-o", tmp_path / "labels.zarr", "-q")[0] == 0  # unchanged now


def test_predict_removes_what_killed_runs_left_not_what_live_ones_write(store, model_file, tmp_path, capsys):
    """A predict killed with SIGKILL leaves its hidden temporary store; they piled up, one per kill."""
    from dask_gmm._files import writer_id

    dead = subprocess.Popen(["true"])
    dead.wait()
    live = subprocess.Popen(["sleep", "60"])
    try:
        host = writer_id().split("@")[0]
        left = tmp_path / f".labels.zarr.tmp@{host}@{dead.pid}@0badc0de"
        kept = [tmp_path / f".labels.zarr.tmp@{host}@{live.pid}@0badc0de",  # its process still writes
                tmp_path / f".labels.zarr.tmp@{host}@{live.pid}@0badc0de.old",  # (the output it replaces)
                tmp_path / f".labels.zarr.tmp@{host}-2@{dead.pid}@0badc0de",  # another host's
                tmp_path / f".labels.zarr.tmp@x.tmp@{host}@{dead.pid}@0badc0de.old"]  # the path labels.zarr.tmp@x's
        for folder in (left, *kept):
            folder.mkdir()
            (folder / "zarr.json").write_text("{}")
        (tmp_path / "notes.txt").write_text("keep")
        rc, _, err = run(capsys, "predict", model_file, store, "-o", tmp_path / "labels.zarr")
        assert rc == 0, err
        assert sorted(os.listdir(tmp_path)) == sorted([*(k.name for k in kept), "labels.zarr", "notes.txt"])
        # another host's (or container's) cannot be told dead: named, where a restarted job's piled up silently
        assert err.count("dask-gmm: warning: Beside") == 1 and f"temporary {kept[2].name}, to delete unless" in err
        assert kept[0].name not in err and kept[3].name not in err
        shutil.rmtree(tmp_path / "labels.zarr")  # info of the missing output names what was moved aside
        rc, _, err = run(capsys, "info", tmp_path / "labels.zarr")
        assert_one_line_error(rc, err, "nothing at", f"A previous output of it lies beside it, moved aside by a run "
                              f"killed while it replaced it (or replacing it now): {kept[1].name} (the newest first). If no run is writing")
    finally:
        live.kill()
        live.wait()


def test_predict_into_a_group_is_no_member_of_it_until_renamed(store, model_file, tmp_path, capsys, monkeypatch):
    """predict -o GROUP/NAME wrote its temporary output as an array of the group: zarr listed it and
    xarray opened it as a variable while it was written, and a killed run's stayed one, its rows never
    written read as fill values (a review)."""
    from dask_gmm import _outputs

    group = tmp_path / "g.zarr"
    shutil.copytree(store, group)
    real, seen = _outputs.sync_tree, []

    def listed(root):  # the output written whole, not yet renamed
        seen.append((sorted(zarr.open_group(group, mode="r").keys()), os.listdir(group)))
        return real(root)

    monkeypatch.setattr(_outputs, "sync_tree", listed)
    assert run(capsys, "predict", model_file, store, "-o", group / "pred", "-q")[0] == 0  # another store's group
    (members, names), = seen
    assert members == sorted(zarr.open_group(store, mode="r").keys())  # X, labels, true_*: not the output
    assert any(n.startswith(".pred.tmp@") for n in names)  # there, holding no metadata of its own
    assert sorted(zarr.open_group(group, mode="r").keys()) == sorted(members + ["pred"])
    assert not [n for n in os.listdir(group) if ".tmp@" in n]
    np.testing.assert_array_equal(zarr.open_array(group / "pred")[:], load_model(model_file).predict(store).compute())


def test_predict_syncs_its_output_to_disk_before_and_after_the_rename(store, model_file, tmp_path, capsys,
                                                                      monkeypatch):
    """Only the rename was atomic: the chunk files were never synced, so after a crash of the machine
    the output's name could stand over empty or short chunks. A crash cannot be staged here: os.fsync
    is watched (and still run) instead."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("names a descriptor's file through /proc (Linux)")
    synced = []  # (path when synced, whether the output's name existed then)
    out = tmp_path / "sub" / "labels.zarr"
    out.parent.mkdir()
    real = os.fsync

    def fsync(fd):
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), out.exists()))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert run(capsys, "predict", model_file, store, "-o", out)[0] == 0
    temporary = re.compile(r".*/\.labels\.zarr\.tmp@[^/]*/array")  # the folder it was written in, renamed after
    before = {temporary.sub("", p).lstrip("/") or "." for p, there in synced if temporary.match(p) and not there}
    written = {os.path.relpath(os.path.join(r, n), out) for r, ds, fs in os.walk(out) for n in fs + ds} | {"."}
    assert len(written) > 5 and written <= before, (written, before)  # every chunk file and folder, and the root
    assert (str(out.parent), True) in synced  # the rename into the folder, after it


def test_predict_whose_files_the_disk_could_not_keep_publishes_nothing(store, model_file, tmp_path, capsys,
                                                                       monkeypatch):
    """A file's sync that fails (a server that runs out of space, or of quota, says so at fsync) was
    ignored, and the store renamed into place as if whole."""
    real = os.fsync

    def fsync(fd):
        if stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    rc, _, err = run(capsys, "predict", model_file, store, "-o", tmp_path / "labels.zarr")
    assert_one_line_error(rc, err, "No space left on device", "Free space on that disk")
    assert os.listdir(tmp_path) == []


def test_predict_to_a_mount_point_is_refused_before_the_work(store, model_file, mount_point, capsys):
    """The output is written beside its path and renamed into place, which a mount point refuses
    (EBUSY): the run did all its work, then ended in a traceback (a review). A folder inside it works."""
    for extra in ((), ("--overwrite",)):
        rc, out, err = run(capsys, "predict", model_file, store, "--output", mount_point, *extra)
        assert_one_line_error(rc, err, "is a mount point", "Write it to a folder inside it.")
        assert os.listdir(mount_point) == []
    rc, out, err = run(capsys, "predict", model_file, store, "--output", mount_point / "labels.zarr")
    assert rc == 0 and os.listdir(mount_point) == ["labels.zarr"]


def test_an_output_into_the_input_by_a_bind_mount_of_it_is_refused(store, model_file, tmp_path, capsys):
    """Paths were compared as strings: through a bind mount of the input store, the labels were
    written into it (a review). Folders are now also compared by their device and inode."""
    import subprocess

    data = tmp_path / "data.zarr"
    shutil.copytree(store, data)
    alias = tmp_path / "alias"
    alias.mkdir()
    if subprocess.run(["mount", "--bind", str(data), str(alias)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here (not root, or no mount command)")
    try:
        before = sorted(os.listdir(data))
        for source, output in ((data, alias / "pred.zarr"), (alias, data / "pred.zarr"), (alias, data)):
            rc, out, err = run(capsys, "predict", model_file, source, "--output", output)
            assert_one_line_error(rc, err, "it is, holds or lies inside the input data")
        assert sorted(os.listdir(data)) == before
        rc, out, err = run(capsys, "predict", model_file, alias, "--output", tmp_path / "pred.zarr")
        assert rc == 0
    finally:
        subprocess.run(["umount", str(alias)], check=True)


def _dead_writer(tmp_path, name, suffix=""):
    """The name of a temporary sibling of ``tmp_path / name`` that a killed writer left."""
    from dask_gmm._files import writer_id

    dead = subprocess.Popen(["true"])
    dead.wait()
    return tmp_path / f".{name}.tmp@{writer_id().rsplit('@', 1)[0]}@{dead.pid}@0badc0de{suffix}"


def test_a_killed_predicts_temporary_output_in_a_generated_store_is_named_and_overwritten(tmp_path, capsys):
    """A predict -o STORE/NAME killed while it wrote left its temporary output in the store: info said
    nothing of it (zarr warns of it at every listing), and generate --overwrite refused the store as
    holding a node it did not write (a review)."""
    group = tmp_path / "g.zarr"
    assert run(capsys, "generate", group, "-n", "1000", "--seed", "2", "-q")[0] == 0
    left = _dead_writer(group, "pred")
    zarr.create_array(str(left / "array"), shape=(1000,), chunks=(500,), dtype="i1")  # as predict writes it
    rc, out, _ = run(capsys, "info", group)
    assert rc == 0 and f"  leftovers    {left.name}: the temporary output of a run killed while it wrote" in out
    rc, out, _ = run(capsys, "info", group, "--json")
    assert json.loads(out)["killed_temporaries"] == [left.name]
    live = group / f".pred.tmp@{left.name.split('@')[1]}@{os.getpid()}@0badc0de"  # a run writing it now: kept
    shutil.copytree(left, live)
    rc, _, err = run(capsys, "generate", group, "-n", "1000", "--seed", "2", "--overwrite", "-q")
    assert_one_line_error(rc, err, f"holds 1 Zarr node(s) it did not write ({live.name})")
    shutil.rmtree(live)
    assert run(capsys, "generate", group, "-n", "1000", "--seed", "2", "--overwrite", "-q")[0] == 0
    assert sorted(os.listdir(group)) == ["X", "labels", "true_covariances", "true_means", "true_weights", "zarr.json"]
    rc, out, _ = run(capsys, "info", group, "--json")
    assert json.loads(out)["killed_temporaries"] == []


def test_predict_puts_back_an_output_a_killed_run_had_moved_aside(store, model_file, tmp_path, capsys):
    """A predict --overwrite SIGKILLed between its two renames left the previous output under a hidden
    '.old' name, and no output: nothing said where it had gone, and nothing put it back."""
    out = tmp_path / "labels.zarr"
    assert run(capsys, "predict", model_file, store, "-o", out)[0] == 0
    kept = snapshot(out)
    aside = _dead_writer(tmp_path, "labels.zarr", ".old")
    os.replace(out, aside)
    rc, _, err = run(capsys, "predict", model_file, store, "-o", out, "--proba")
    assert rc == 2 and err.splitlines() == [
        f"dask-gmm: warning: put back {str(out)!r}, which a killed run had moved aside to {aside.name!r} to replace it",
        f"dask-gmm: error: {str(out)!r} already exists. Pass --overwrite to replace it, or choose another path."], err
    assert snapshot(out) == kept and os.listdir(tmp_path) == ["labels.zarr"]


def test_of_two_outputs_moved_aside_the_newest_goes_back(store, model_file, tmp_path, capsys):
    """Two runs killed between their renames (concurrent writers): the first by name went back, the
    other was removed, whichever was newer."""
    out = tmp_path / "labels.zarr"
    assert run(capsys, "predict", model_file, store, "-o", out)[0] == 0
    older = _dead_writer(tmp_path, "labels.zarr", ".old")
    shutil.copytree(out, older)
    (older / "older").write_text("")
    time.sleep(0.05)
    newer = _dead_writer(tmp_path, "labels.zarr", ".old")
    assert newer != older
    os.replace(out, newer)
    kept = snapshot(newer)
    rc, _, err = run(capsys, "predict", model_file, store, "-o", out)
    assert rc == 2 and f"which a killed run had moved aside to {newer.name!r}" in err, err
    assert snapshot(out) == kept and os.listdir(tmp_path) == ["labels.zarr"]


def test_predict_removes_the_replaced_output_a_killed_run_was_removing(store, model_file, tmp_path, capsys):
    """Killed while it removed the output it had replaced, predict left a partial copy of it under a
    hidden '.old' name (or now '.gone') that no later run removed."""
    out = tmp_path / "labels.zarr"
    assert run(capsys, "predict", model_file, store, "-o", tmp_path / "first.zarr")[0] == 0
    os.replace(tmp_path / "first.zarr", out)  # (this process has not written out yet: it sweeps once per output)
    for suffix in (".old", ".gone"):
        shutil.copytree(out, _dead_writer(tmp_path, "labels.zarr", suffix))
    rc, _, err = run(capsys, "predict", model_file, store, "-o", out, "--overwrite", "--proba")
    assert rc == 0 and err == "", err
    assert os.listdir(tmp_path) == ["labels.zarr"] and zarr.open_array(out, mode="r").ndim == 2


def test_info_names_the_old_store_an_overwrite_killed_while_it_removed_it_left(tmp_path, capsys):
    """After a kill -9 of generate --overwrite, info said "nothing at" the path, where the old store
    lay beside it, under the hidden name of a removal (a review: 80 MB until the next run)."""
    gone = _dead_writer(tmp_path, "ow.zarr", ".gone")
    gone.mkdir()
    (gone / "zarr.json").write_text("{}")
    rc, _, err = run(capsys, "info", tmp_path / "ow.zarr")
    assert_one_line_error(rc, err, "nothing at", f"What a run replacing it was removing lies beside it (killed, or "
                          f"removing it now): {gone.name}; the next run writing '{tmp_path / 'ow.zarr'}' removes it, "
                          "or delete it.")
    assert "A previous output" not in err


def test_predict_keeps_what_appeared_at_its_output_while_it_ran(store, model_file, tmp_path, capsys):
    """predict checked its output's path before the work only, and at the end replaced whatever was
    there: a folder made meanwhile lost its files, without --overwrite too, and of two runs to one
    new output both said they had written it (a review). The writes' own check, run after the chunks
    are written and before the rename, stands in for the other program here."""
    model = load_model(model_file)
    out = tmp_path / "labels.zarr"
    attrs = {_outputs.PREDICT_ATTR: {"kind": "labels", "model": model_file, "data": store, "n_components": 3}}

    def folder_appears():
        out.mkdir()
        (out / "notes.txt").write_text("mine")

    for overwrite, words in ((False, "appeared while this command ran"), (True, "not a Zarr store")):
        with pytest.raises(ValueError, match=words):
            _outputs.store_atomically(model.predict(store), str(out), overwrite, attrs, folder_appears, dimension_names=("sample",))
        assert os.listdir(tmp_path) == ["labels.zarr"] and os.listdir(out) == ["notes.txt"]
        shutil.rmtree(out)
    # another run's output, appearing meanwhile: refused without --overwrite, replaced with it
    other = tmp_path / "other.zarr"
    assert run(capsys, "predict", model_file, store, "-o", other, "--proba")[0] == 0
    appears = lambda: shutil.copytree(other, out)  # noqa: E731
    with pytest.raises(ValueError, match="appeared while this command ran"):
        _outputs.store_atomically(model.predict(store), str(out), False, attrs, appears, dimension_names=("sample",))
    assert zarr.open_array(out, mode="r").ndim == 2  # the other run's probabilities, kept
    shutil.rmtree(out)
    _outputs.store_atomically(model.predict(store), str(out), True, attrs, appears, dimension_names=("sample",))
    np.testing.assert_array_equal(zarr.open_array(out, mode="r")[:], model.predict(store).compute())
    assert sorted(os.listdir(tmp_path)) == ["labels.zarr", "other.zarr"]


@pytest.mark.parametrize("marker", ["yes", [1, 2], None])
def test_an_array_whose_predict_marker_is_no_record_is_data(store, model_file, tmp_path, capsys, marker):
    """A review: an array of someone else's with another value in the attribute that predict's
    outputs carry ended fit, score, predict and plot in an AttributeError traceback, and info in a
    TypeError one. It is data; --overwrite does not replace it (predict did not write it)."""
    X = np.random.default_rng(0).normal(size=(300, 2))
    data = tmp_path / "x.zarr"
    zarr.create_array(data, data=X, chunks=(100, 2), attributes={_outputs.PREDICT_ATTR: marker})
    rc, out, err = run(capsys, "fit", data, "-k", "2", "--seed", "0", "-o", tmp_path / "m.json", "--quiet")
    assert rc == 0 and err == "", err
    np.testing.assert_allclose(load_model(tmp_path / "m.json").means_,
                               GaussianMixture(2, random_state=0).fit(X).means_, rtol=1e-12)
    rc, out, err = run(capsys, "info", data)
    assert rc == 0 and "300 rows x 2 features" in out and err == "", err
    assert run(capsys, "score", model_file, data)[0] == 0
    rc, _, err = run(capsys, "predict", model_file, store, "-o", data, "--overwrite")
    assert_one_line_error(rc, err, "not an output of")
    np.testing.assert_array_equal(zarr.open_array(data, mode="r")[:], X)


def test_info_of_the_labels_of_a_generated_store_names_the_store(store, capsys):
    """They were "not written by dask-gmm generate", and so were the true parameters' arrays (which
    info described as data)."""
    said = {"labels": ("labels_of", f"the labels of a store written by dask-gmm generate, {store!r} "
                                    f"('dask-gmm info {store}' gives its status)"),
            "true_means": ("true_of", f"the true means of a store written by dask-gmm generate, {store!r}, not "
                                      f"data ('dask-gmm info {store}' gives its status and true model)")}
    for member, (key, line) in said.items():
        rc, out, err = run(capsys, "info", f"{store}/{member}")
        assert rc == 0 and err == "" and f"  status       {line}\n" in out
        rc, out, _ = run(capsys, "info", f"{store}/{member}", "--json")
        got = json.loads(out)
        assert got[key] == store and got["status"] is None
        assert got["labels_of" if key == "true_of" else "true_of"] is None
    rc, out, _ = run(capsys, "info", f"{store}/X", "--json")
    got = json.loads(out)
    assert got["labels_of"] is None and got["true_of"] is None and got["status"] == "complete"


def test_info(store, model_file, capsys):
    rc, out, err = run(capsys, "info", store)
    assert rc == 0 and err == ""
    assert "20,000 rows x 2 features, float64" in out and "(5000, 2)" in out and "complete" in out
    true = store_info(store)["true_model"]
    assert f"{true['weights'][0]:.4f}" in out and f"{true['means'][0][0]:.4f}" in out
    rc, out, _ = run(capsys, "info", store, "--json")
    info = json.loads(out)
    assert info["shape"] == [N, 2] and info["complete"] is True and info["seed"] == 1

    rc, out, err = run(capsys, "info", model_file)
    assert rc == 0 and err == ""
    gm = load_model(model_file)
    assert "3 components, 2 features, full covariance" in out and f"{gm.means_[1][0]:.4f}" in out
    rc, out, _ = run(capsys, "info", model_file, "--json")
    assert json.loads(out)["means"] == gm.means_.tolist()
    assert "features:" not in run(capsys, "info", model_file)[1]


def test_one_feature_and_one_component_are_singular(tmp_path, capsys):
    """'1 features', '1 components' before."""
    rc, out, _ = run(capsys, "generate", tmp_path / "one.zarr", "-n", "1000", "-d", "1", "-k", "1", "--seed", "0")
    assert rc == 0 and "1,000 rows x 1 feature (1 component, float64)" in out
    out = run(capsys, "info", tmp_path / "one.zarr")[1]
    assert "1,000 rows x 1 feature, float64" in out and "true model   1 component, full covariance" in out
    rc, out, _ = run(capsys, "select", tmp_path / "one.zarr", "-k", "1", "-o", tmp_path / "sel.json")
    assert rc == 0 and "best: 1 component (full)" in out
    assert run(capsys, "fit", tmp_path / "one.zarr", "-k", "1", "--max-iter", "0", "-o", tmp_path / "zero.json")[0] == 0
    out = run(capsys, "info", tmp_path / "zero.json")[1]  # as fit says it, not 'lower bound -inf'
    assert "NOT converged after 0 iterations, lower bound not computed (no iteration ran)" in out
    rc, out, _ = run(capsys, "fit", tmp_path / "one.zarr", "-k", "1", "--max-iter", "1", "-o", tmp_path / "it.json")
    assert rc == 0 and "1 EM iteration of " in out
    rc, out, _ = run(capsys, "fit", tmp_path / "one.zarr", "-k", "1", "-o", tmp_path / "one.json")
    assert rc == 0 and "fitted 1 component (full covariance) to 1,000 rows x 1 feature\n" in out
    assert "  1 component, 1 feature, full covariance" in run(capsys, "info", tmp_path / "one.json")[1]
    # --features 0 1 was taken for the default and drew the one feature; any other pair was refused
    rc, _, err = run(capsys, "plot", tmp_path / "one.json", tmp_path / "one.zarr", "-o", tmp_path / "p.png",
                     "--features", "0", "1")
    assert_one_line_error(rc, err, "has 1 feature: there is no pair to choose. Leave out --features.")
    assert not (tmp_path / "p.png").exists()


def test_info_shows_parameters_at_any_scale(tmp_path, capsys):
    """Fixed point showed a model of data scaled by 1e-150 as all zeros, and one at 1e150 in
    hundreds of digits."""
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, (500, 2)), rng.normal(6, 1, (500, 2))]
    for scale, shown in ((1e-150, "e-1"), (1e150, "e+1")):
        save_model(GaussianMixture(2, random_state=0, reg_covar=0.0).fit(X * scale), tmp_path / "m.json")
        rc, out, _ = run(capsys, "info", tmp_path / "m.json")
        means = [line for line in out.splitlines() if line.strip()[:1] in "01"]
        assert rc == 0 and len(means) == 2 and all(shown in line and "0.0000," not in line for line in means), out
        assert max(map(len, out.splitlines())) < 200


def test_info_names_the_features_of_a_model_fitted_on_a_data_frame(tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    X = np.random.default_rng(0).normal(size=(300, 2))
    save_model(GaussianMixture(1).fit(pd.DataFrame(X, columns=["height", "weight"])), tmp_path / "m.json")
    rc, out, err = run(capsys, "info", str(tmp_path / "m.json"))
    assert rc == 0 and "  features: 'height', 'weight'\n" in out
    rc, out, _ = run(capsys, "info", str(tmp_path / "m.json"), "--json")
    assert json.loads(out)["feature_names_in"] == ["height", "weight"]


def test_plot(store, model_file, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    rc, out, err = run(capsys, "plot", model_file, store, "--output", tmp_path / "fit.png", "--bins", "40")
    assert rc == 0 and err == ""
    assert sorted(os.listdir(tmp_path)) == ["fit-density.png", "fit-loglik.png", "fit.png"]
    for name in os.listdir(tmp_path):
        with open(tmp_path / name, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert str(tmp_path / name) in out
    assert "no log-likelihood curve" not in out
    # a model that ran no iteration has no curve: said, not skipped without a word
    assert run(capsys, "fit", store, "-k", "3", "--max-iter", "0", "-o", tmp_path / "zero.json")[0] == 0
    rc, out, _ = run(capsys, "plot", tmp_path / "zero.json", store, "--output", tmp_path / "z.png", "--bins", "40")
    assert rc == 0 and not (tmp_path / "z-loglik.png").exists()
    assert "no log-likelihood curve: the model ran no EM iteration (fitted with --max-iter 0)" in out
    # an earlier model's curve at the same output would pass for this one's: removed, and said
    rc, out, _ = run(capsys, "plot", tmp_path / "zero.json", store, "--output", tmp_path / "fit.png", "--bins", "40")
    assert rc == 0 and sorted(os.listdir(tmp_path)) == ["fit-density.png", "fit.png", "z-density.png", "z.png",
                                                         "zero.json"]
    assert f"removed {tmp_path / 'fit-loglik.png'}: an earlier plot's curve, not this model's" in out
    for pair in (["0", "2"], ["1", "1"], ["-1", "0"]):  # in the option's words (plot_all's: "features must be")
        rc, _, err = run(capsys, "plot", model_file, store, "--output", tmp_path / "pair.png", "--features", *pair)
        assert_one_line_error(rc, err, f"--features takes two distinct feature indices from 0 to 1, got {' '.join(pair)}.")
    assert run(capsys, "plot", model_file, store, "--output", tmp_path / "pair.png", "--features", "1", "0",
               "--bins", "20")[0] == 0
    from PIL import Image  # matplotlib's own dependency

    said = Image.open(tmp_path / "pair.png").text["Description"]  # the figure in words (plot.description)
    assert "in a 20x20 histogram" in said and "x: feature 1 (X[:, 1]); y: feature 0 (X[:, 0])" in said, said
    assert "20x20" not in Image.open(tmp_path / "fit.png").text["Description"]  # --bins 40 there


def test_demo(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out_dir = tmp_path / "my demo"  # a space: the suggested next command quotes it
    rc, out, err = run(capsys, "demo", "--n-samples", "1000", "--output-dir", out_dir, "--seed", "3", "-q")
    assert rc == 0, err  # an earlier demo's store
    rc, out, err = run(capsys, "demo", "--n-samples", "200_000", "--output-dir", out_dir, "--seed", "3")
    assert rc == 0, err
    # fitted to the optimum, which scores at least as well as the truth on the same rows: at the default tol
    # this seed's fit had stopped climbing at -1.3e-5 a row below it (a review)
    assert "GaussianMixture(n_components=3, tol=1e-06)" in out
    assert float(re.search(r"fitted - true = ([-+.e0-9]+)\)", out).group(1)) > 0
    assert sorted(os.listdir(out_dir)) == ["data.zarr", "density.png", "fit.png", "loglik.png", "model.json",
                                           "notebook-fit.png", "notebook-loglik.png"]
    gm = load_model(out_dir / "model.json")
    assert gm.means_.shape == (3, 2)
    assert "true vs fitted" in out and "timings:" in out and str(out_dir) in out
    assert out.count("    mean        true") == 3  # every true component matched to a fitted one
    assert "the notebook's way: 100 EM iterations" in out and out.count("   true mean [") == 3
    assert "replacing the previous demo store" in out  # written with other arguments: replaced
    assert zarr.open_group(out_dir / "data.zarr", mode="r")["X"].shape == (200_000, 2)
    (next_line,) = [line for line in out.splitlines() if line.startswith("next: ")]
    prog, *argv = shlex.split(next_line.removeprefix("next: "))
    assert prog == "dask-gmm" and argv == ["info", str(out_dir / "model.json")]
    assert run(capsys, *argv)[0] == 0


def test_demo_never_replaces_what_it_did_not_write(tmp_path, capsys):
    """Not a folder of the user's, nor a store the user generated (the demo took any generated
    store for its own, and replaced it), nor a file the user put inside a demo store."""
    out_dir = tmp_path / "demo"
    (out_dir / "data.zarr").mkdir(parents=True)
    (out_dir / "data.zarr" / "precious.txt").write_text("mine")
    rc, _, err = run(capsys, "demo", "-n", "1000", "--output-dir", out_dir)
    assert_one_line_error(rc, err, "data.zarr")
    assert (out_dir / "data.zarr" / "precious.txt").read_text() == "mine"
    mine = tmp_path / "mine"
    assert run(capsys, "generate", mine / "data.zarr", "-n", "900", "-d", "3", "--seed", "9", "-q")[0] == 0
    kept = snapshot(mine)
    rc, out, err = run(capsys, "demo", "-n", "1000", "--output-dir", mine)
    assert_one_line_error(rc, err, "was not written by dask-gmm demo")
    assert out == ""  # refused before any work: it printed its banner and its first step first
    assert snapshot(mine) == kept
    demo = tmp_path / "demo2"
    assert run(capsys, "demo", "-n", "1000", "--output-dir", demo, "-q")[0] == 0
    (demo / "data.zarr" / "NOTES.txt").write_text("mine")
    rc, _, err = run(capsys, "demo", "-n", "2000", "--output-dir", demo, "-q")
    assert_one_line_error(rc, err, "also holds 1 item that the demo did not write (NOTES.txt)")
    assert (demo / "data.zarr" / "NOTES.txt").read_text() == "mine"
    (demo / "data.zarr" / "NOTES.txt").unlink()
    zarr.open_group(str(demo / "data.zarr")).create_array("extra", shape=(3,), dtype="f8")  # an array of the user's
    kept = snapshot(demo)
    rc, out, err = run(capsys, "demo", "-n", "2000", "--output-dir", demo)
    assert_one_line_error(rc, err, "an earlier demo's store written with other arguments, also holds 1 item that "
                          "the demo did not write (extra), which replacing it would delete. Move them out, or choose "
                          "another --output-dir.")  # in the library's words, after saying it replaced the store
    assert "replacing" not in out and snapshot(demo) == kept
    (out_dir / "model.json").write_text("{}")  # every file it would not replace, in one error (one a run, before)
    for name in ("fit.png", "notebook-fit.png", "loglik.png"):  # every one named: the first alone was
        (out_dir / name).write_text("not a PNG")
    kept = snapshot(out_dir)
    rc, _, err = run(capsys, "demo", "-n", "1000", "--output-dir", out_dir)
    assert_one_line_error(rc, err, "model.json' exists and is not a dask-gmm model file", "fit.png' exists and is "
                          "not a PNG image", "notebook-fit.png' exists", "loglik.png' exists",
                          "data.zarr' exists and was not written by dask-gmm demo")
    assert err.count("exists and is not a PNG image") == 3
    assert snapshot(out_dir) == kept


def test_an_interrupted_demo_is_replaced_by_the_next(tmp_path, capsys, monkeypatch):
    """Its store was marked as the demo's only once written whole: a demo interrupted while
    generating, rerun with other arguments, was refused as not the demo's own."""
    from dask_gmm import generate

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    out = tmp_path / "d"
    with monkeypatch.context() as m:
        m.setattr(generate, "_write_chunk", full_disk)
        rc, _, err = run(capsys, "demo", "-n", "1000", "--output-dir", out, "-q")
    assert_one_line_error(rc, err, "No space left on device. Free space on that disk, or write to another one.")
    assert zarr.open_group(out / "data.zarr", mode="r").attrs["dask_gmm"]["complete"] is False
    # what finishes it is the demo's command (they named generate's, which the demo's user never ran)
    rc, text, _ = run(capsys, "info", out / "data.zarr")
    assert rc == 0 and "INCOMPLETE (generation interrupted): rerun the same dask-gmm demo command" in text
    rc, _, err = run(capsys, "fit", out / "data.zarr", "-k", "2", "-o", tmp_path / "m.json")
    assert_one_line_error(rc, err, "incomplete", "the same demo command")
    rc, out_text, err = run(capsys, "demo", "-n", "2000", "--output-dir", out)
    assert rc == 0, err
    assert "replacing the previous demo store" in out_text
    assert zarr.open_group(out / "data.zarr", mode="r")["X"].shape == (2000, 2)
    # and what mends it, as info says: a chunk lost, the same demo command writes it again
    (out / "data.zarr" / "X" / "c" / "0" / "0").unlink()
    rc, text, _ = run(capsys, "info", out / "data.zarr")
    assert rc == 0 and "DAMAGED" in text and "rerun the same dask-gmm demo command to write it again" in text
    assert run(capsys, "demo", "-n", "2000", "--output-dir", out, "-q")[0] == 0
    assert "status       complete" in run(capsys, "info", out / "data.zarr")[1]


def test_overwrite_replaces_only_the_commands_own_outputs(store, model_file, tmp_path, capsys):
    """predict --overwrite replaced any Zarr store, data too (a mistyped output path lost a
    generated store, X and all); generate --overwrite replaced any. Each now replaces only its own
    command's earlier output, and refuses the rest unchanged."""
    data, labels, theirs = tmp_path / "data.zarr", tmp_path / "labels.zarr", tmp_path / "theirs.zarr"
    assert run(capsys, "generate", data, "-n", "1000", "--seed", "1", "-q")[0] == 0
    assert run(capsys, "predict", model_file, store, "-o", labels, "-q")[0] == 0
    zarr.create_array(str(theirs), shape=(10, 2), dtype="f8")[:] = 1.0
    kept = {p: snapshot(p) for p in (data, labels, theirs)}
    for argv, words in [(("predict", model_file, store, "-o", data), "not an output of dask-gmm predict"),
                        (("predict", model_file, store, "-o", theirs), "not an output of dask-gmm predict"),
                        (("generate", labels, "-n", "100"), "not a store of 'dask-gmm generate'"),
                        (("generate", theirs, "-n", "100"), "not a store of 'dask-gmm generate'")]:
        rc, _, err = run(capsys, *argv, "--overwrite", "-q")
        assert_one_line_error(rc, err, words, "remove it yourself")
    assert {p: snapshot(p) for p in kept} == kept
    text = tmp_path / "labels.txt"  # the message said "replaces only Zarr stores", not its own outputs
    text.write_text("mine")
    rc, _, err = run(capsys, "predict", model_file, store, "-o", text, "--overwrite", "-q")
    assert_one_line_error(rc, err, "not a Zarr store; --overwrite replaces only an output of dask-gmm predict "
                          "(and empty folders)", "remove it yourself")
    assert text.read_text() == "mine"
    # a store whose own metadata cannot be read is judged by what it holds: data, for predict
    (data / "zarr.json").write_text("{bad")
    kept = snapshot(data)
    rc, _, err = run(capsys, "predict", model_file, store, "-o", data, "--overwrite", "-q")
    assert_one_line_error(rc, err, "metadata cannot be read and which holds X, labels, true_covariances",
                          "remove it yourself")
    assert snapshot(data) == kept
    assert run(capsys, "predict", model_file, store, "-o", labels, "--overwrite", "-q")[0] == 0
    assert run(capsys, "generate", data, "-n", "500", "--seed", "2", "--overwrite", "-q")[0] == 0


def test_overwrite_keeps_files_a_store_holds_besides_its_own(store, model_file, tmp_path, capsys):
    """--overwrite deleted a whole store folder, the user's notes and a nested project's files
    with it; now it refuses, naming them, and changes nothing."""
    gen = tmp_path / "g.zarr"
    assert run(capsys, "generate", gen, "-n", "1000", "--seed", "1", "-q")[0] == 0
    (gen / "NOTES.txt").write_text("my notes")
    (gen / "mine").mkdir()
    (gen / "mine" / "data.csv").write_text("y")
    (gen / "X" / "c" / "0" / "junk").write_text("z")
    kept = snapshot(gen)
    rc, _, err = run(capsys, "generate", gen, "-n", "2000", "--seed", "1", "--overwrite", "-q")
    assert_one_line_error(rc, err, "holds 3 file(s) of no Zarr array or group (NOTES.txt, X/c/0/junk, mine/data.csv)",
                          "--overwrite would delete")
    assert snapshot(gen) == kept
    out = tmp_path / "labels.zarr"
    assert run(capsys, "predict", model_file, store, "--output", out, "-q")[0] == 0
    (out / "NOTES.txt").write_text("mine")
    kept = snapshot(out)
    rc, _, err = run(capsys, "predict", model_file, store, "--output", out, "--overwrite", "-q")
    assert_one_line_error(rc, err, "(NOTES.txt)")
    assert snapshot(out) == kept
    (out / "NOTES.txt").unlink()
    assert run(capsys, "predict", model_file, store, "--output", out, "--overwrite", "-q")[0] == 0  # its own files only


def test_a_corrupt_chunk_is_named_with_the_same_advice_by_every_command(store, model_file, tmp_path, capsys):
    """fit advised "--overwrite"; score and predict the library's "overwrite=True" (a review's report)."""
    bad = tmp_path / "bad.zarr"
    shutil.copytree(store, bad)
    chunk = bad / "X" / "c" / "1" / "0"
    data = bytearray(chunk.read_bytes())
    data[100] ^= 0xFF  # one byte flipped: the checksum refuses it
    chunk.write_bytes(bytes(data))
    for argv in (["fit", bad, "-k", "3", "-o", tmp_path / "m.json"], ["score", model_file, bad],
                 ["predict", model_file, bad, "-o", tmp_path / "l.zarr"]):
        rc, _, err = run(capsys, *argv, "-q")
        assert_one_line_error(rc, err, f"'X/c/1/0' of the Zarr array 'file://{bad}/X' (rows 5000-9999) cannot be decoded (its crc32c "
                              "checksum does not match its bytes); the store is corrupt. Restore or regenerate it "
                              "(a store of 'dask-gmm generate': delete that chunk's file and rerun the same command, "
                              "without --overwrite: it writes the chunk again from the seed the store records).")


def test_the_advice_for_a_corrupt_chunk_gives_back_the_same_store(tmp_path, capsys):
    """Followed, the advice writes the store as it was, though no seed was given: "rerun it with
    --overwrite" had drawn another seed and rewritten every chunk with other rows (a review)."""
    store = tmp_path / "unseeded.zarr"
    command = ["generate", store, "-n", "4000", "--chunk-size", "1000", "-q"]
    assert run(capsys, *command)[0] == 0
    kept = snapshot(store)
    chunk = store / "X" / "c" / "2" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-1] + b"x")
    rc, _, err = run(capsys, "fit", store, "-k", "3", "-o", tmp_path / "m.json", "-q")
    assert_one_line_error(rc, err, f"'X/c/2/0' of the Zarr array 'file://{store}/X' (rows 2000-2999) cannot be decoded",
                          "delete that chunk's file and rerun the same command, without --overwrite")
    chunk.unlink()
    assert run(capsys, *command)[0] == 0
    assert snapshot(store) == kept


@pytest.mark.parametrize("where, damage", [("zarr.json", "cut"), ("zarr.json", "[1, 2]"), ("X/zarr.json", "cut"),
                                           ("X/zarr.json", "empty"), ("X/zarr.json", "{}"),
                                           ("X/zarr.json", '{"zarr_format": 3, "node_type": "array"}')])
def test_unreadable_store_metadata_is_called_corrupt(store, model_file, tmp_path, capsys, where, damage):
    """A damaged zarr.json gave JSON's or zarr's bare words ("Expecting value: line 1 column 1",
    "'data_type'"), naming neither the store nor what to do."""
    bad = tmp_path / "bad.zarr"
    shutil.copytree(store, bad)
    meta = bad / where
    text = meta.read_text()
    meta.write_text({"cut": text[:100], "empty": ""}.get(damage, damage))
    kept = snapshot(bad)
    for argv in (["info", bad], ["fit", bad, "-k", "3", "-o", tmp_path / "m.json"],
                 ["predict", model_file, bad, "-o", tmp_path / "l.zarr"]):
        rc, _, err = run(capsys, *argv)
        assert_one_line_error(rc, err, f"The Zarr metadata in {str(bad)!r} cannot be read",
                              "the store is corrupt, or in a form this zarr does not read. Restore or regenerate it.")
    assert snapshot(bad) == kept and not (tmp_path / "m.json").exists() and not (tmp_path / "l.zarr").exists()
    # as the error advises: regenerated, with --overwrite (without, generate says the same, and how)
    again = ["generate", bad, "--n-samples", "20_000", "--chunk-size", "5e3", "--seed", "1", "-q"]
    rc, _, err = run(capsys, *again)
    assert_one_line_error(rc, err, "cannot be read", "Pass --overwrite to replace it.")
    assert run(capsys, *again, "--overwrite")[0] == 0
    assert snapshot(bad) == snapshot(store)


def test_two_outputs_of_one_command_at_one_path_are_refused(store, tmp_path, capsys):
    """select's figure replaced the model it had just written (exit 0); fit's model replaced its
    checkpoint, and the rerun then failed on it."""
    same = tmp_path / "same.json"
    for argv, fragment in ((["select", store, "-o", same, "--n-components", "1-2", "--plot", same],
                            "the model and the figure would both be written"),
                           (["fit", store, "-k", "2", "-o", same, "--checkpoint", same],
                            "the model and the checkpoint would both be written")):
        rc, _, err = run(capsys, *argv, "-q")
        assert_one_line_error(rc, err, fragment)
        assert not same.exists()


# ------------------------------------------------------------------ progress and quiet
def test_progress_on_a_terminal_only(store, tmp_path, capsys, monkeypatch):
    args = ["fit", store, "-k", "3", "--seed", "0", "--init-params", "random", "--max-iter", "5", "--tol", "0",
            "-o", tmp_path / "m.json"]
    rc, out, err = run(capsys, *args)
    assert rc == 0 and "fit: iteration" not in err  # not a terminal: clean logs
    monkeypatch.setattr(cli, "_stderr_is_terminal", lambda: True)
    rc, out, err = run(capsys, *args)
    assert rc == 0
    assert "\rfit: iteration 1/5  log-likelihood" in err and "\rfit: iteration 5/5" in err and "s/it" in err
    assert "fitted 3 components" in out
    assert "fit: initialising (random) ..." in err
    rc, out, err = run(capsys, *args, "--quiet")
    assert "fit: iteration" not in err and "fitted 3 components" in out
    ckpt = ["--checkpoint", tmp_path / "fit.ckpt"]
    rc, out, err = run(capsys, *args, *ckpt)
    assert rc == 0 and "fit: initialising (random) ..." in err
    assert f"checkpoint         {ckpt[1]}\n" in out
    rc, out, err = run(capsys, *args, *ckpt)  # the checkpoint holds the finished fit
    assert rc == 0 and "fit: resuming from the checkpoint ..." in err and "initialising" not in err, err
    assert f"checkpoint         {ckpt[1]}  (resumed: 5 iterations made before this run)" in out, out
    blank = tmp_path / "blank.ckpt"
    blank.write_text("\n")  # no checkpoint yet, as the library reads it: not "resumed" (a review)
    rc, out, err = run(capsys, *args, "--checkpoint", blank)
    assert rc == 0 and "fit: initialising (random) ..." in err and f"checkpoint         {blank}\n" in out, out
    assert "(initialisation " in out and "resum" not in out + err, out
    # The checkpoint's refusals name the command line's options, not the library's arguments
    rc, _, err = run(capsys, *args[:-2], "--max-iter", "3", *args[-2:], *ckpt, "-q")
    assert_one_line_error(rc, err, "holds 5 iterations, more than --max-iter (3) allows. Pass --max-iter 5 or more")
    rc, _, err = run(capsys, *args, "--n-init", "2", "--reg-covar", "1e-5", *ckpt, "-q")
    assert_one_line_error(rc, err, "belongs to a different fit (its arguments --n-init (1 then, 2 now), "
                          "--reg-covar (1e-06 then, 1e-05 now) differ)", "checkpoint path (each fit needs its own).")
    assert "GridSearchCV" not in err  # the library's advice
    assert args[4:6] == ["--seed", "0"]
    rc, out, err = run(capsys, *args[:4], *args[6:], *ckpt, "-q")  # no --seed: the checkpoint's is taken
    assert rc == 0 and "resumed: 5 iterations made before this run" in out and re.search(r"seed +0\n", out), out + err
    restarts = ["--checkpoint", tmp_path / "two.ckpt", "--n-init", "2"]
    assert run(capsys, *args, *restarts, "-q")[0] == 0
    rc, out, _ = run(capsys, *args, *restarts, "-q")  # not counted: the restarts' iterations ("resumed: iterations")
    assert rc == 0 and f"checkpoint         {restarts[1]}  (resumed: its 2 restarts' iterations before this run)\n" in out


def test_warnings_are_one_line(store, tmp_path, capsys):
    rc, out, err = run(capsys, "fit", store, "-k", "3", "--seed", "0", "--init-params", "random",
                       "--max-iter", "1", "--tol", "1e-12", "-o", tmp_path / "m.json")  # 1 iteration: no change seen
    assert rc == 0
    assert err.startswith("dask-gmm: warning: Best performing initialization did not converge")
    assert "or increase --max-iter, --tol, or" in err  # the options' names, not the library's arguments
    assert len(err.strip().splitlines()) == 1 and "NOT converged" in out


def test_a_warning_is_given_once_per_command(tmp_path, capsys, model_file):
    """A store chunked across features (zarr v2: not read by the direct reader, which is not warned
    of): fit warned twice, score three times (each opening)."""
    X = np.random.default_rng(0).normal(size=(3000, 2))
    zarr.create_array(str(tmp_path / "f.zarr"), shape=X.shape, chunks=(1000, 1), dtype="f8", zarr_format=2)[:] = X
    for argv in (["fit", tmp_path / "f.zarr", "-k", "2", "--seed", "0", "-o", tmp_path / "m.json"],
                 ["score", model_file, tmp_path / "f.zarr"]):
        rc, _, err = run(capsys, *argv)
        assert rc == 0 and err.count("chunked across features") == 1, err


# ------------------------------------------------------------------ errors
def test_missing_store(tmp_path, capsys):
    missing = tmp_path / "nope.zarr"
    for argv in (["fit", missing, "-k", "2", "-o", tmp_path / "m.json"], ["info", missing]):
        rc, _, err = run(capsys, *argv)
        assert_one_line_error(rc, err, "nope.zarr")
    assert not os.path.exists(tmp_path / "m.json")


def test_a_file_given_as_data_is_said_to_be_a_file(model_file, store, tmp_path, capsys):
    """A CSV or a model file given as the data was "No Zarr store found ... Check the path", where
    the path was right; info called a CSV an invalid model file only (a review)."""
    (tmp_path / "data.csv").write_text("1,2\n3,4\n")
    for data in (tmp_path / "data.csv", model_file):
        for argv in (["fit", data, "-k", "2", "-o", tmp_path / "m.json"], ["score", model_file, data]):
            rc, _, err = run(capsys, *argv)
            assert_one_line_error(rc, err, f"{str(data)!r} is a file, not a Zarr store")
    rc, _, err = run(capsys, "info", tmp_path / "data.csv")
    assert_one_line_error(rc, err, "is not a valid dask_gmm model file", "info reads model files and Zarr stores")
    (tmp_path / "damaged.json").write_text(open(model_file).read().replace('"weights"', '"weight"'))
    rc, _, err = run(capsys, "info", tmp_path / "damaged.json")  # a model file: what is wrong with it, only
    assert_one_line_error(rc, err, "is not a valid dask_gmm model file", "missing keys ['weights']")
    assert "info reads" not in err
    meta = os.path.join(store, "zarr.json")  # a store's metadata file: JSON, but no model file (a review)
    for argv in (["info", meta], ["fit", meta, "-k", "2", "-o", tmp_path / "m.json"]):
        rc, _, err = run(capsys, *argv)
        assert_one_line_error(rc, err, f"{meta!r} is a Zarr metadata file: give the path of its folder, {store!r}.")
    with pytest.raises(ValueError, match="is a file, not a Zarr store"):
        GaussianMixture(2).fit(str(tmp_path / "data.csv"))
    assert not os.path.exists(tmp_path / "m.json")


def test_incomplete_store(store, tmp_path, capsys):
    broken = tmp_path / "broken.zarr"
    shutil.copytree(store, broken)
    g = zarr.open_group(broken, mode="r+")
    g.attrs["dask_gmm"] = {**g.attrs["dask_gmm"], "complete": False}
    rc, _, err = run(capsys, "fit", broken, "-k", "3", "-o", tmp_path / "m.json")
    assert_one_line_error(rc, err, "incomplete", "generate")
    rc, out, _ = run(capsys, "info", broken)
    assert rc == 0 and "INCOMPLETE" in out


def test_missing_chunk(store, tmp_path, capsys, model_file):
    broken = tmp_path / "holes.zarr"
    shutil.copytree(store, broken)
    os.unlink(broken / "X" / "c" / "1" / "0")
    rc, _, err = run(capsys, "score", model_file, broken)
    assert_one_line_error(rc, err, f"The Zarr array 'file://{broken}/X' is missing 1 of its chunks (c/1/0)")
    rc, out, _ = run(capsys, "info", broken)  # said "complete" beside the missing chunk
    assert rc == 0 and "status       DAMAGED: generated complete, but chunks or arrays have gone (or been cut short) or its shape, dtype or layout has changed since" in out
    assert "missing      1 chunk absent from the store: 1 of X" in out
    info = json.loads(run(capsys, "info", broken, "--json")[1])  # "complete": true beside the hole, alone
    assert info["status"] == "damaged" and info["complete"] is True
    os.unlink(broken / "labels" / "c" / "2")  # a labels chunk: named as one (counted as X's before)
    rc, out, _ = run(capsys, "info", broken)
    assert rc == 0 and "missing      2 chunks absent from the store: 1 of X, 1 of labels" in out
    bare = zarr.create_array(tmp_path / "bare.zarr", shape=(100,), chunks=(10,), dtype="int64")  # predict's kind
    bare[:50] = 1
    rc, out, _ = run(capsys, "info", tmp_path / "bare.zarr")
    assert rc == 0 and "missing      5 chunks absent from the store\n" in out  # an array by its path: no "5 of bare.zarr"
    zarr.create_array(tmp_path / "many.zarr", shape=(20_000,), chunks=(10,), dtype="int64")  # none written
    rc, out, _ = run(capsys, "info", tmp_path / "many.zarr")  # the counts with their thousands marked
    assert rc == 0 and "missing      2,000 chunks absent from the store\n" in out


def test_demo_too_few_samples_is_refused_before_any_work(tmp_path, capsys):
    """It generated the store, then failed in the fit with scikit-learn's words."""
    rc, _, err = run(capsys, "demo", "-n", "1", "--output-dir", tmp_path / "d")
    assert_one_line_error(rc, err, "--n-samples must be at least 30")
    rc, _, err = run(capsys, "demo", "-n", "0", "--output-dir", tmp_path / "d")  # had been told ">= 1"
    assert_one_line_error(rc, err, "expected at least 10 rows a component (30 for the default 3), got '0'")
    assert not os.path.exists(tmp_path / "d")


def test_a_second_demo_in_one_folder_is_refused_while_the_first_runs(tmp_path, capsys):
    """A second demo had replaced the first's store as the first read it, and the first then blamed
    missing chunks (a review). A running demo holds its folder's lock for its whole run."""
    from dask_gmm import _files

    out = tmp_path / "d"
    out.mkdir()
    with _files.one_writer(os.path.join(out, "demo"), "held"):  # the lock a running demo holds
        rc, _, err = run(capsys, "demo", "-n", "300", "--output-dir", out)
    assert_one_line_error(rc, err, f"another dask-gmm demo is running in {str(out)!r} now. Wait for it to end")
    assert os.listdir(out) == []  # nothing written; the lock's file gone with its holder


def test_demo_too_many_samples_is_refused_before_any_work(tmp_path, capsys):
    """It made the folder, then repeated the generator's advice to pass a chunk_size, which the demo has not."""
    rc, _, err = run(capsys, "demo", "-n", "1e13", "--output-dir", tmp_path / "d")
    assert_one_line_error(rc, err, "more than the demo's largest, 4,194,304,000,000 rows")
    assert "dask-gmm generate` with a larger --chunk-size" in err
    assert not os.path.exists(tmp_path / "d")


def test_demo_folder_inside_a_store_or_on_a_file_is_refused_before_any_folder_is_made(store, tmp_path, capsys):
    """Its folders were made inside the store before the refusal, and an existing file was refused
    as "File exists" (found by a probe)."""
    before = sorted(os.walk(store))
    rc, _, err = run(capsys, "demo", "-n", "30", "--output-dir", os.path.join(store, "a", "b"))
    assert_one_line_error(rc, err, f"cannot write the demo's files to {os.path.join(store, 'a', 'b')!r}: it lies "
                                   f"inside the Zarr store {store!r}")
    assert sorted(os.walk(store)) == before
    (tmp_path / "notes").write_text("mine")
    rc, _, err = run(capsys, "demo", "-n", "30", "--output-dir", tmp_path / "notes")
    assert_one_line_error(rc, err, f"--output-dir {str(tmp_path / 'notes')!r}: {str(tmp_path / 'notes')!r} is a "
                                   "file, not a folder; give a folder")
    rc, _, err = run(capsys, "demo", "-n", "30", "--output-dir", tmp_path / "notes" / "sub")  # was "Not a directory"
    assert_one_line_error(rc, err, f"{str(tmp_path / 'notes')!r} is a file, not a folder; give a folder")
    assert (tmp_path / "notes").read_text() == "mine"


def test_model_data_mismatch(model_file, tmp_path, capsys):
    three = tmp_path / "d3.zarr"
    generate_mixture(three, 1000, 3, 2, chunk_size=500, random_state=0)
    for cmd in (["score"], ["predict", "--output", tmp_path / "l.zarr"] , ["plot", "--output", tmp_path / "f.png"]):
        rc, _, err = run(capsys, cmd[0], model_file, three, *cmd[1:])
        assert_one_line_error(rc, err, "2 features", "have 3")
    assert os.listdir(tmp_path) == ["d3.zarr"]


def test_bad_model_file(store, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    for argv in (["info", bad], ["score", bad, store], ["score", tmp_path / "none.json", store]):
        rc, _, err = run(capsys, *argv)
        assert_one_line_error(rc, err, "model file")


@pytest.mark.parametrize("value", ["1.5", "abc", "0", "-3", "1e-3", "inf", "nan", ""])
def test_bad_n_samples(value, tmp_path, capsys):
    rc, _, err = run(capsys, "generate", tmp_path / "x.zarr", "--n-samples", value)
    assert_one_line_error(rc, err, "--n-samples")
    assert not os.path.exists(tmp_path / "x.zarr")


def test_generate_refuses_other_arguments_in_cli_words(store, tmp_path, capsys):
    rc, _, err = run(capsys, "generate", store, "-n", "20_000", "--chunk-size", "5000", "--seed", "2")
    assert_one_line_error(rc, err, "different arguments", "--overwrite")
    assert "overwrite=True" not in err
    # fewer rows, in the default chunks: n_samples alone differs, named as an option (it said
    # "(--chunk-size, n_samples differ)": the default chunk is capped at the rows)
    small = tmp_path / "dtype" / "n_samples.zarr"  # the path keeps its words (it became '--dtype/--n-samples.zarr')
    small.parent.mkdir()
    assert run(capsys, "generate", small, "-n", "2e4", "--seed", "1", "-q")[0] == 0
    rc, _, err = run(capsys, "generate", small, "-n", "1.5e4", "--seed", "1", "-q")
    assert_one_line_error(rc, err, f"The store {str(small)!r} was generated with different arguments (--n-samples differs)")
    # killed after its last chunk, before its record said complete: no empty list of chunks written
    meta = json.loads((small / "zarr.json").read_text())
    meta["attributes"]["dask_gmm"]["complete"] = False
    (small / "zarr.json").write_text(json.dumps(meta))
    rc, out, _ = run(capsys, "generate", small, "-n", "2e4", "--seed", "1")
    assert rc == 0 and out.startswith(f"{small} held every chunk of 20,000 rows x 2 features")
    assert "already holds" in run(capsys, "generate", small, "-n", "2e4", "--seed", "1")[1]


def test_outputs_are_checked_before_the_scheduler_is_reached(store, model_file, tmp_path, capsys):
    """An existing predict output and a figure in a missing folder were refused only after the
    connection to the scheduler (here unreachable: 30 s, then its error instead)."""
    (tmp_path / "out.zarr").mkdir()
    far = ["--scheduler", "tcp://127.0.0.1:9"]
    rc, _, err = run(capsys, "predict", model_file, store, "-o", tmp_path / "out.zarr", *far)
    assert_one_line_error(rc, err, "already exists. Pass --overwrite")
    (tmp_path / "a-file").write_text("")
    rc, _, err = run(capsys, "plot", model_file, store, "-o", tmp_path / "a-file" / "new" / "p.png", *far)
    assert_one_line_error(rc, err, "cannot write the figure to", "is a file, not a folder")


def test_figures_go_into_new_folders(store, model_file, tmp_path, capsys):
    """plot makes the folders of its figures (a check before the work refused them for a while)."""
    rc, _, _ = run(capsys, "plot", model_file, store, "-o", f"{tmp_path}/figs/new/", "-q")
    assert rc == 0 and sorted(os.listdir(tmp_path / "figs" / "new")) == ["density.png", "fit.png", "loglik.png"]


def test_generate_rerun_says_what_it_wrote(tmp_path, capsys):
    """A rerun on a complete store said "wrote 20,000 rows" having written nothing, even when a chunk
    was corrupt (it is not read again: --overwrite rewrites it)."""
    argv = ("generate", tmp_path / "g.zarr", "-n", "20_000", "--chunk-size", "5000", "--seed", "2")
    assert run(capsys, *argv)[1].startswith("wrote 20,000 rows")
    rc, out, _ = run(capsys, *argv)
    assert rc == 0 and "already holds 20,000 rows x 2 features (3 components, float64): nothing written" in out
    assert "pass --overwrite" in out and "wrote" not in out
    shutil.rmtree(tmp_path / "g.zarr" / "X" / "c" / "1")  # a lost chunk is written again, and said so
    (tmp_path / "g.zarr" / "labels" / "c" / "3").unlink()  # (it said "wrote 20,000 rows", as if all)
    rc, out, _ = run(capsys, *argv)
    assert rc == 0 and out.startswith(f"wrote what {tmp_path / 'g.zarr'} lacked (1 chunk of X, 1 chunk of "
                                      "labels; X and labels hold 4 chunks each) of 20,000 rows x 2 features")
    assert "already holds" in run(capsys, *argv)[1]
    (tmp_path / "g.zarr" / "X" / "c" / "2" / "0").write_bytes(b"")  # a power loss's empty chunk file: "nothing
    rc, out, _ = run(capsys, "info", tmp_path / "g.zarr")  # written", and a fit refused the store (a review)
    assert rc == 0 and "status       DAMAGED" in out
    assert "cut short    1 chunk not the length their header says (a power loss while they were written?): 1 of X" in out
    rc, out, _ = run(capsys, *argv)
    assert rc == 0 and out.startswith(f"wrote what {tmp_path / 'g.zarr'} lacked (1 chunk of X cut short; X and labels "
                                      "hold 4 chunks each)")
    assert store_info(str(tmp_path / "g.zarr"))["status"] == "complete"
    # lost arrays of the true parameters: info said complete, read_true_model None, a rerun "nothing written"
    kept = (tmp_path / "g.zarr" / "true_means" / "c" / "0" / "0").read_bytes()
    shutil.rmtree(tmp_path / "g.zarr" / "true_covariances")
    (tmp_path / "g.zarr" / "true_means" / "c" / "0" / "0").unlink()
    info = store_info(str(tmp_path / "g.zarr"))
    assert info["status"] == "damaged" and info["lost_true"] == ["true_means", "true_covariances"]
    assert "lost         the true parameters' array(s) true_means, true_covariances" in run(
        capsys, "info", tmp_path / "g.zarr")[1]
    with pytest.raises(ValueError, match=r"has lost the array\(s\) of its true parameters \(true_means, "
                                         r"true_covariances\)\. Rerun the same generate command"):
        read_true_model(str(tmp_path / "g.zarr"))
    rc, out, _ = run(capsys, *argv)
    assert rc == 0 and out.startswith(f"wrote what {tmp_path / 'g.zarr'} lacked (the array true_means, the array "
                                      "true_covariances; X and labels hold 4 chunks each)")
    assert (tmp_path / "g.zarr" / "true_means" / "c" / "0" / "0").read_bytes() == kept
    assert store_info(str(tmp_path / "g.zarr"))["status"] == "complete"
    assert read_true_model(str(tmp_path / "g.zarr")).means_.shape == (3, 2)


def test_unwritable_outputs_fail_before_the_work(store, tmp_path, capsys, monkeypatch):
    def no_fit(*args, **kwargs):
        raise AssertionError("fitted although the model could not be saved")

    monkeypatch.setattr(cli, "_fit", no_fit)
    rc, _, err = run(capsys, "fit", store, "-k", "3", "-o", tmp_path / "no" / "m.json")
    assert_one_line_error(rc, err, "does not exist")
    rc, _, err = run(capsys, "fit", store, "-k", "3", "-o", tmp_path / "m.json", "--checkpoint", tmp_path / "no" / "c")
    assert_one_line_error(rc, err, "checkpoint", "does not exist")
    (tmp_path / "notes.txt").write_text("mine")
    rc, _, err = run(capsys, "fit", store, "-k", "3", "-o", tmp_path / "notes.txt" / "m.json")
    assert_one_line_error(rc, err, "notes.txt' is a file, not a folder")  # was "does not exist"
    rc, _, err = run(capsys, "fit", store, "-k", "3", "-o", "")
    assert_one_line_error(rc, err, "the model's path is empty")  # was "inside the input data"


def snapshot(root):
    """{relative path: bytes, or None for a folder} of everything under root."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for d in dirs:
            out[os.path.relpath(os.path.join(folder, d), root)] = None
        for f in files:
            with open(os.path.join(folder, f), "rb") as fh:
                out[os.path.relpath(os.path.join(folder, f), root)] = fh.read()
    return out


def test_outputs_never_replace_the_input_or_what_is_not_ours(store, model_file, tmp_path, capsys):
    """An output that is, holds or lies inside the input data is refused, and so is --overwrite (or a
    model file) over anything but a Zarr store (or a model file): nothing on disk changes."""
    data = tmp_path / "data.zarr"
    shutil.copytree(store, data)
    script = tmp_path / "notes.py"
    script.write_text("print('mine')\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    for argv, fragment in [
        (("predict", model_file, data, "-o", data, "--overwrite"), "input data"),
        (("predict", model_file, data, "-o", data / "X", "--overwrite"), "input data"),
        (("predict", model_file, data, "-o", tmp_path, "--overwrite"), "input data"),
        (("predict", model_file, data, "-o", script, "--overwrite"), "not a Zarr store"),
        (("predict", model_file, data, "-o", folder, "--overwrite"), "not a Zarr store"),
        (("predict", model_file, data, "-o", model_file, "--overwrite"), "not a Zarr store"),
        (("fit", data, "-k", "2", "-o", data / "zarr.json"), "inside the input data"),
        (("fit", data, "-k", "2", "-o", script), "not a dask-gmm model file"),
        (("fit", data, "-k", "2", "-o", tmp_path / "m.json", "--checkpoint", data / "c.json"), "inside the input"),
        (("select", data, "--n-components", "1-2", "-o", script), "not a dask-gmm model file"),
        (("generate", folder, "-n", "100", "--overwrite"), "not a Zarr store"),
        (("generate", folder, "-n", "100"), "not a Zarr store"),
        (("generate", script, "-n", "100", "--overwrite"), "not a Zarr store"),
        # file:// URLs are the same local paths; an array's group is the input too
        (("predict", model_file, f"file://{data}", "-o", data, "--overwrite"), "input data"),
        (("predict", model_file, data, "-o", f"file://{data}", "--overwrite"), "input data"),
        (("predict", model_file, data, "-o", f"local://{data}/X", "--overwrite"), "input data"),
        (("predict", model_file, data / "X", "-o", data / "labels", "--overwrite"), "input data"),
        (("fit", f"file://{data}", "-k", "2", "-o", tmp_path / "m.json", "--checkpoint", data / "c.json"), "input"),
        # figures: never inside the input, never over a file that is not a PNG
        (("select", data, "--n-components", "1-2", "-o", tmp_path / "m.json", "--plot", data / "zarr.json"), "input"),
        (("select", data, "--n-components", "1-2", "-o", tmp_path / "m.json", "--plot", script), "not a PNG"),
        (("select", data, "--n-components", "1-2", "-o", tmp_path / "m.json", "--plot", folder), "is a folder, not"),
        (("select", data, "--n-components", "1-2", "-o", tmp_path / "m.json", "--plot", tmp_path / "crit.jpg"),
         "--plot writes a PNG image; give it a file name ending in .png, got"),  # PNG bytes went to crit.jpg
        (("plot", model_file, data, "-o", data), "inside the input data"),
    ]:
        rc, _, err = run(capsys, *argv)
        assert_one_line_error(rc, err, fragment)
    assert snapshot(tmp_path) == before
    (folder / "fit.png").write_text("not a picture")
    rc, _, err = run(capsys, "plot", model_file, data, "-o", folder / "fit.png")
    assert_one_line_error(rc, err, "not a PNG")
    (folder / "fit.png").unlink()
    # What they may replace: a Zarr store (with --overwrite), a model file, a PNG figure; a link to a
    # store is replaced, not the store it points to.
    for _ in range(2):
        assert run(capsys, "predict", model_file, data, "-o", tmp_path / "labels.zarr", "--overwrite")[0] == 0
        assert run(capsys, "fit", data, "-k", "2", "-o", tmp_path / "m.json")[0] == 0
        assert run(capsys, "plot", model_file, data, "-o", tmp_path / "figs" / "")[0] == 0
    os.symlink(tmp_path / "labels.zarr", tmp_path / "link.zarr")
    kept = snapshot(tmp_path / "labels.zarr")
    assert run(capsys, "predict", model_file, data, "-o", tmp_path / "link.zarr", "--overwrite")[0] == 0
    assert not os.path.islink(tmp_path / "link.zarr") and snapshot(tmp_path / "labels.zarr") == kept
    assert run(capsys, "predict", model_file, data, "-o", f"file://{tmp_path / 'url.zarr'}")[0] == 0
    assert zarr.open_array(str(tmp_path / "url.zarr"), mode="r").shape == (N,)
    assert snapshot(data) == {k[len("data.zarr/"):]: v for k, v in before.items() if k.startswith("data.zarr/")}
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]


def test_predict_onto_what_overwrite_would_not_replace_does_not_advise_it(store, model_file, tmp_path, capsys):
    """An existing store of other data (or a CSV) at predict's output was refused with the advice to
    pass --overwrite, which was then refused too (a review)."""
    (tmp_path / "data.csv").write_text("1,2\n")
    shutil.copytree(store, tmp_path / "other.zarr")
    for out, said in ((tmp_path / "other.zarr", "is a Zarr store that is not an output of dask-gmm predict"),
                      (tmp_path / "data.csv", "exists and is not a Zarr store")):
        before = snapshot(out) if os.path.isdir(out) else open(out).read()
        rc, _, err = run(capsys, "predict", model_file, store, "-o", out)
        assert_one_line_error(rc, err, said, "Choose another path")
        assert "Pass --overwrite" not in err
        assert before == (snapshot(out) if os.path.isdir(out) else open(out).read())
    assert run(capsys, "predict", model_file, store, "-o", tmp_path / "labels.zarr")[0] == 0
    rc, _, err = run(capsys, "predict", model_file, store, "-o", tmp_path / "labels.zarr")  # its own: advised
    assert_one_line_error(rc, err, "already exists. Pass --overwrite to replace it")


def test_predict_onto_a_dangling_link_needs_overwrite(store, model_file, tmp_path, capsys):
    """A link to nothing was replaced without --overwrite (os.path.exists is false for it)."""
    (tmp_path / "labels.zarr").symlink_to(tmp_path / "elsewhere.zarr")
    rc, _, err = run(capsys, "predict", model_file, store, "-o", tmp_path / "labels.zarr")
    assert_one_line_error(rc, err, "already exists. Pass --overwrite")
    assert os.path.islink(tmp_path / "labels.zarr")
    assert run(capsys, "predict", model_file, store, "-o", tmp_path / "labels.zarr", "--overwrite")[0] == 0
    assert not os.path.islink(tmp_path / "labels.zarr") and not (tmp_path / "elsewhere.zarr").exists()


def test_predict_into_a_missing_folder_says_so_as_fit_does(store, model_file, tmp_path, capsys):
    """zarr's bare 'No such file or directory' before; now fit's words, and nothing is made."""
    rc, _, err = run(capsys, "predict", model_file, store, "-o", tmp_path / "none" / "labels.zarr")
    assert_one_line_error(rc, err, f"the folder '{tmp_path / 'none'}' does not exist",
                          "Create it first, or choose a path in an existing folder")  # what to do, too
    rc, _, err = run(capsys, "fit", store, "-k", "2", "-o", tmp_path / "none" / "m.json")
    assert_one_line_error(rc, err, f"the folder '{tmp_path / 'none'}' does not exist", "Create it first")
    assert not (tmp_path / "none").exists()


def test_info_of_predicts_outputs(store, model_file, tmp_path, capsys):
    """info called predict's probabilities "X  100,000 rows x 3 features ... not written by dask-gmm
    generate"; it now says what they are, and --json records predict's attribute."""
    for flags, what in (((), "labels of 20,000 rows, int8"), (("--proba",), "probabilities of 3 components of "
                                                                           "20,000 rows, float64")):
        out_path = tmp_path / f"out{len(flags)}.zarr"
        assert run(capsys, "predict", model_file, store, "-o", out_path, *flags, "-q")[0] == 0
        rc, out, _ = run(capsys, "info", out_path)
        assert rc == 0 and f"predicted    {what}, written by dask-gmm predict from {store!r}" in out
        assert "status       an output of dask-gmm predict" in out and "  X  " not in out
        record = json.loads(run(capsys, "info", out_path, "--json")[1])["predicted"]
        assert record["kind"] == ("proba" if flags else "labels") and record["n_components"] == 3
    assert json.loads(run(capsys, "info", store, "--json")[1])["predicted"] is None


def test_an_array_that_is_not_data(model_file, tmp_path, capsys):
    """fit, select and score gave scikit-learn's advice to call X.reshape; info describes such an
    array (predict's labels) as its --json does (it refused it, while --json described it)."""
    zarr.create_array(str(tmp_path / "w.zarr"), shape=(100,), dtype="f8")[:] = 1.0
    zarr.create_array(str(tmp_path / "c.zarr"), shape=(10, 5, 2), dtype="f8")[:] = 1.0
    rc, out, _ = run(capsys, "info", tmp_path / "w.zarr")
    assert rc == 0 and "shape (100,), float64 (not data of shape (rows, features))" in out
    assert json.loads(run(capsys, "info", tmp_path / "w.zarr", "--json")[1])["shape"] == [100]
    for argv in (["fit", tmp_path / "w.zarr", "-k", "2", "-o", tmp_path / "m.json"],
                 ["select", tmp_path / "c.zarr", "-o", tmp_path / "m.json"], ["score", model_file, tmp_path / "c.zarr"]):
        rc, _, err = run(capsys, *argv)
        assert_one_line_error(rc, err, "holds an array of shape (", "not data of shape (rows, features). Pass a store "
                              "of X (or a group with X); a single feature is stored as shape (rows, 1).")
        assert "reshape" not in err


def test_a_group_above_the_input_does_not_guard_everything_below_it(model_file, store, tmp_path, capsys):
    """Only an array's own group is guarded with it: a store inside a folder that is itself a Zarr
    group (a stray zarr.json higher up) still takes outputs beside it."""
    zarr.open_group(str(tmp_path), mode="w")  # tmp_path/zarr.json
    data = tmp_path / "data.zarr"
    shutil.copytree(store, data)
    assert run(capsys, "predict", model_file, data, "-o", tmp_path / "labels.zarr")[0] == 0
    rc, _, err = run(capsys, "predict", model_file, data / "X", "-o", data / "labels2.zarr")
    assert_one_line_error(rc, err, f"input data '{data}'")


def test_an_empty_file_may_be_replaced(store, tmp_path, capsys):
    """As ``out=$(mktemp)`` makes: an empty file holds nothing to lose."""
    (tmp_path / "m.json").write_text("")
    assert run(capsys, "fit", store, "-k", "2", "-o", tmp_path / "m.json")[0] == 0
    assert load_model(tmp_path / "m.json").n_components == 2


def test_an_interrupted_overwrite_keeps_the_old_output(store, model_file, tmp_path, capsys, monkeypatch):
    """Interrupted between moving the old output aside and moving the new one in (a window of
    microseconds, hit here by failing the second rename): the old output goes back."""
    out = tmp_path / "labels.zarr"
    assert run(capsys, "predict", model_file, store, "-o", out)[0] == 0
    kept = snapshot(out)
    real = os.replace

    def new_one_in_fails(a, b):  # zarr's own renames of chunk files pass
        if os.fspath(b) == str(out) and not os.fspath(a).endswith(".old"):
            raise KeyboardInterrupt
        real(a, b)

    monkeypatch.setattr(os, "replace", new_one_in_fails)
    rc, _, err = run(capsys, "predict", model_file, store, "-o", out, "--overwrite", "--proba")
    monkeypatch.undo()
    assert_one_line_error(rc, err, "interrupted", status=130)
    assert snapshot(out) == kept and sorted(os.listdir(tmp_path)) == ["labels.zarr"]


def test_demo_replaces_only_its_own_files(tmp_path, capsys):
    for name, text, fragment in (("model.json", '{"mine": 1}', "not a dask-gmm model file"),
                                 ("fit.png", "not a picture", "not a PNG")):
        out = tmp_path / name.replace(".", "-")
        out.mkdir()
        (out / name).write_text(text)
        rc, _, err = run(capsys, "demo", "--n-samples", "2000", "--output-dir", out)
        assert_one_line_error(rc, err, fragment)
        assert os.listdir(out) == [name] and (out / name).read_text() == text


def test_library_value_error(tmp_path, capsys):
    X = np.random.default_rng(0).normal(size=(50, 2))
    X[17, 1] = np.inf
    zarr.create_array(str(tmp_path / "holed.zarr"), data=X, chunks=(25, 2))
    # a fixed seed: with a fresh one the initialisation may draw row 17 as a starting row and name it
    # so ("drawn as a starting row"), before the pass that names its chunk (seen once in CI)
    rc, _, err = run(capsys, "fit", tmp_path / "holed.zarr", "-k", "2", "--seed", "0", "-o", tmp_path / "m.json")
    assert_one_line_error(rc, err, "Input X contains NaN or infinity in 1 row(s) among rows 0-24 (first bad row: 17)")


def test_usage_errors(capsys):
    for argv in (["fit"], ["frobnicate"], ["fit", "x.zarr", "-k", "2", "-o", "m.json", "--covariance-type", "odd"]):
        rc, _, err = run(capsys, *argv)
        assert_one_line_error(rc, err, "--help")
    rc, out, _ = run(capsys, "--help")
    assert rc == 0 and "generate" in out and "demo" in out
    rc, _, err = run(capsys, "plot", "m.json", "x.zarr", "-o", "f.png", "--bins", "1025")  # the library's words before
    assert_one_line_error(rc, err, "argument --bins: expected a number from 1 to 1024, got '1025'")
    for option in ("--tol", "--reg-covar"):
        rc, _, err = run(capsys, "fit", "x.zarr", "-k", "2", "-o", "m.json", option, "abc")
        assert_one_line_error(rc, err, f"argument {option}: expected a number, got 'abc' (see 'dask-gmm fit --help')")


def test_a_folder_given_for_the_model_file_is_named_as_one(store, tmp_path, capsys):
    for argv in (("score", tmp_path, store), ("predict", tmp_path, store, "-o", tmp_path / "p.zarr"),
                 ("plot", tmp_path, store, "-o", tmp_path / "f.png")):
        rc, _, err = run(capsys, *argv)
        assert_one_line_error(rc, err, f"{str(tmp_path)!r} is a folder, not a model file. Pass the MODEL.json "
                                       "written by 'dask-gmm fit'.")
    assert os.listdir(tmp_path) == []


def test_a_file_name_too_long_is_refused_before_the_work(tmp_path, capsys, store, model_file):
    """It failed at the rename, after the fit or the data's pass, naming the hidden temporary file
    (a review)."""
    long = "a" * 300
    for argv, what in ((["plot", model_file, store, "-o", tmp_path / f"{long}.png"], f"{long}.png"),
                       (["fit", store, "-k", "2", "-o", tmp_path / f"{long}.json"], f"{long}.json"),
                       (["fit", store, "-k", "2", "-o", tmp_path / "m.json", "--checkpoint", tmp_path / long], long)):
        rc, _, err = run(capsys, *argv, "-q")
        assert_one_line_error(rc, err, f"{what}': its file name is {len(what)} bytes long, more than the 255 its "
                              "file system allows. Choose a shorter name.")
        assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("address", ["", "  "])
def test_an_empty_scheduler_address_is_refused_not_taken_for_local(store, tmp_path, address, capsys):
    """`--scheduler "$UNSET_VARIABLE"` ran on local threads, silently off the cluster that was meant."""
    rc, _, err = run(capsys, "fit", store, "-k", "3", "-o", tmp_path / "m.json", "--scheduler", address)
    assert_one_line_error(rc, err, "the scheduler's address is empty", "leave out --scheduler")
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("argv", [
    ["plot", "{model}", "{store}", "--output", "s3://bucket/f.png"],
    ["plot", "{model}", "{store}", "--output", "memory://f.png"],
    ["fit", "{store}", "-k", "2", "--output", "s3://bucket/m.json"],
    ["fit", "{store}", "-k", "2", "--output", "{tmp}/m.json", "--checkpoint", "gcs://b/ck.json"],
    ["select", "{store}", "--n-components", "1-2", "--output", "{tmp}/m.json", "--plot", "s3://b/crit.png"],
    ["demo", "--output-dir", "s3://bucket/demo"],
])
def test_local_outputs_refuse_urls(tmp_path, capsys, store, model_file, argv, monkeypatch):
    """Figures, models, checkpoints and the demo's folder were written under ./s3:/... (a folder named
    after the URL's scheme), and the command said it wrote the URL."""
    monkeypatch.chdir(tmp_path)
    rc, _, err = run(capsys, *(a.format(tmp=tmp_path, store=store, model=model_file) for a in argv))
    assert_one_line_error(rc, err, "is a URL, but dask-gmm writes it to local files only")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("argv", [
    ["predict", "{model}", "{store}", "-o", "-"],
    ["fit", "{store}", "-k", "2", "-o", "-"],
    ["fit", "{store}", "-k", "2", "-o", "{tmp}/m.json", "--checkpoint", "-"],
    ["plot", "{model}", "{store}", "-o", "-"],
    ["demo", "--output-dir", "-"],
    ["generate", "-", "-n", "100"],
])
def test_a_dash_for_an_output_is_refused(tmp_path, capsys, store, model_file, argv, monkeypatch):
    """``-`` names standard output to other tools: ``predict -o -`` wrote a store named ``-``, and
    ``fit -o -`` then failed, calling it a folder (an experiment-scripter review)."""
    monkeypatch.chdir(tmp_path)
    rc, _, err = run(capsys, *(a.format(tmp=tmp_path, store=store, model=model_file) for a in argv))
    assert_one_line_error(rc, err, " - names no file: dask-gmm writes its outputs to files, not to standard output")
    assert os.listdir(tmp_path) == []


def test_local_outputs_take_file_urls_as_their_paths(tmp_path, capsys, store, model_file, monkeypatch):
    rc, out, _ = run(capsys, "plot", model_file, store, "--output", f"file://{tmp_path}/fig.png", "-q")
    assert rc == 0 and (tmp_path / "fig.png").exists() and f"wrote {tmp_path}/fig.png" in out
    rc, _, _ = run(capsys, "fit", store, "-k", "2", "--max-iter", "1", "--output", f"FILE://{tmp_path}/m.json", "-q")
    assert rc == 0 and (tmp_path / "m.json").exists()  # the scheme in capitals too (was a folder 'FILE:')
    rc, _, _ = run(capsys, "plot", model_file, store, "--output", f"file://{tmp_path}/figs/", "-q")
    assert rc == 0 and sorted(os.listdir(tmp_path / "figs")) == ["density.png", "fit.png", "loglik.png"]
    # file://localhost/PATH is PATH (RFC 8089), where fsspec reads it as ./localhost/PATH: a model was
    # written there, and a store read from there (a review)
    monkeypatch.chdir(tmp_path)
    rc, _, _ = run(capsys, "fit", f"file://localhost{store}", "-k", "2", "--max-iter", "1", "-q",
                   "--output", f"file://localhost{tmp_path}/lh.json")
    assert rc == 0 and (tmp_path / "lh.json").exists() and not (tmp_path / "localhost").exists()
    for url in (f"file://LOCALHOST{store}", f"simplecache::file://localhost{store}"):  # in a chain too
        rc, out, _ = run(capsys, "info", url)
        assert rc == 0 and "status       complete" in out, url


@pytest.mark.parametrize("argv, said", [
    (["info", "http://127.0.0.1:1/x.zarr"], "Cannot connect to host 127.0.0.1:1"),  # was aiohttp's traceback
    (["info", "gibberish://x"], "protocol 'gibberish', which fsspec does not know"),  # was "the store is corrupt"
    (["fit", "simplecache::gibberish://x", "-k", "2", "-o", "{tmp}/m.json"], "protocol 'gibberish'"),
    (["generate", "memory://g.zarr", "-n", "1000"], "is a memory:// store, which is gone when this command ends"),
    (["generate", "simplecache::MEMORY://g.zarr", "-n", "1000"], "is a memory:// store"),
    (["generate", "", "-n", "1000"], "the data path is empty"),  # was the current folder
    (["generate", "{tmp}/g.zarr", "-n", "1e400"], "at most 2**62 (about 4.6e18), got '1e400'"),  # 401 digits
    (["generate", "{tmp}/g.zarr", "-n", "1e11", "--chunk-size", "1e11"],
     "would hold 1,600,000,000,000 bytes each, more than the 1,073,741,824 (1 GiB) a chunk may hold (each is made in "
     "memory, and Blosc takes at most 2 GiB). Pass a smaller --chunk-size."),
])
def test_more_one_line_errors(tmp_path, capsys, argv, said):
    """Each was a traceback, a silent loss or a message in the library's words; nothing is written."""
    rc, _, err = run(capsys, *(a.format(tmp=tmp_path) for a in argv))
    assert_one_line_error(rc, err, said)
    assert "generate_mixture" not in err
    assert os.listdir(tmp_path) == []


def test_outputs_that_name_no_regular_file_are_refused_before_the_work(store, model_file, tmp_path, capsys):
    """fit -o FIFO (or /dev/null, as root) replaced it with a regular file; a path ending in '/' failed
    after the fit naming a temporary file (-o), or was written without it (--checkpoint); a FIFO as
    checkpoint or model file to read waited forever."""
    (tmp_path / "pipes").mkdir()
    fifo = tmp_path / "pipes" / "fifo"  # outside the snapshot's folder: reading it would wait
    os.mkfifo(fifo)
    out = tmp_path / "out"
    out.mkdir()
    before = snapshot(out)
    for argv, fragment in [
        (("fit", store, "-k", "2", "-o", fifo), "not a regular file (a device, a FIFO or a socket)"),
        (("fit", store, "-k", "2", "-o", out / "m.json", "--checkpoint", fifo), "not a regular file"),
        (("fit", store, "-k", "2", "-o", f"{out / 'new.json'}/"), "a path ending in '/' names a folder"),
        (("fit", store, "-k", "2", "-o", out / "m.json", "--checkpoint", f"{out / 'ck.json'}/"),
         "a path ending in '/' names a folder"),
        (("select", store, "-k", "1-2", "-o", fifo), "not a regular file"),
        (("select", store, "-k", "1-2", "-o", out / "m.json", "--plot", fifo), "not a regular file"),
        (("predict", fifo, store, "-o", out / "labels.zarr"), "not a valid dask_gmm model file"),  # no writer
        (("plot", model_file, store, "-o", fifo), "is a device, FIFO or socket, not a folder"),  # wrote fifo-fit.png
    ]:
        rc, _, err = run(capsys, *argv)
        assert_one_line_error(rc, err, fragment)
    assert snapshot(out) == before
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and os.listdir(tmp_path / "pipes") == ["fifo"]


def test_empty_output_paths_are_refused(store, model_file, tmp_path, capsys, monkeypatch):
    """plot -o '' wrote '-fit.png' and its fellows here, demo --output-dir '' wrote here, select --plot ''
    drew nothing, all silently."""
    monkeypatch.chdir(tmp_path)
    for argv, option in ((["plot", model_file, store, "-o", ""], "--output"), (["demo", "--output-dir", " "], "--output-dir"),
                         (["select", store, "-k", "1-2", "-o", "m.json", "--plot", ""], "--plot")):
        rc, _, err = run(capsys, *argv)
        assert_one_line_error(rc, err, f"{option} is empty")
    assert os.listdir(tmp_path) == []


def test_outputs_inside_another_zarr_store_are_refused(store, model_file, tmp_path, capsys):
    """demo --output-dir STORE wrote data.zarr, model.json and PNGs into the user's store (which then
    listed them as members); plot -o STORE/x.png and fit -o STORE/X/m.json wrote there too."""
    other = tmp_path / "other.zarr"
    shutil.copytree(store, other)
    before = sorted(p.relative_to(other) for p in other.rglob("*"))
    for argv in (["demo", "-n", "1000", "--output-dir", other], ["plot", model_file, store, "-o", other / "x.png"],
                 ["fit", store, "-k", "2", "-o", other / "X" / "m.json"],
                 # deeper in an array's chunk folders: were written (only the folder right above was checked)
                 ["fit", store, "-k", "2", "-o", other / "X" / "c" / "m.json"],
                 ["predict", model_file, store, "-o", other / "X" / "c" / "0" / "p.zarr"]):
        rc, _, err = run(capsys, *argv)
        assert_one_line_error(rc, err, "lies inside the Zarr array" if argv[0] == "predict" else "lies inside the Zarr store")
    assert sorted(p.relative_to(other) for p in other.rglob("*")) == before
    rc, _, _ = run(capsys, "predict", model_file, store, "-o", other / "labels2.zarr", "-q")  # an array in a group
    assert rc == 0


def test_a_url_needing_a_missing_package_is_one_line(capsys):
    pytest.importorskip("fsspec")
    if importlib.util.find_spec("s3fs") is not None:
        pytest.skip("s3fs is installed")
    for argv in (["info", "s3://bucket/x.zarr"], ["fit", "simplecache::s3://bucket/x.zarr", "-k", "2", "-o", "m.json"]):
        rc, _, err = run(capsys, *argv)
        assert_one_line_error(rc, err, f"Cannot open {argv[1]!r}: Install s3fs to access S3.")
    with pytest.raises(ImportError, match=r"Cannot open 's3://bucket/x.zarr': Install s3fs"):
        GaussianMixture(2).fit("s3://bucket/x.zarr")


@pytest.mark.parametrize("argv, said", [
    (["fit", "x.zarr", "-k", "2", "--ouput", "m.json"], "unrecognized arguments: --ouput (did you mean --output?); "
                                                        "and the following arguments are required: --output/-o"),
    (["fit", "--bogus=x"], "unrecognized arguments: --bogus; and the following arguments are required: "
                           "PATH, --n-components/-k, --output/-o"),
    (["fit", "x.zarr", "--n-comp", "-2", "--output", "m.json"], "argument --n-components/-k: expected"),
    (["fit", "x.zarr", "-o", "m.json"], "error: the following arguments are required: --n-components/-k"),
    (["fit", "x.zarr", "-k", "2", "-o", "m.json", "--n-componets", "3"],  # pointed to 'dask-gmm --help'
     "error: unrecognized arguments: --n-componets 3 (did you mean --n-components?) (see 'dask-gmm fit --help')"),
    (["--bogus"], "error: unrecognized arguments: --bogus (see 'dask-gmm --help')"),
])
def test_a_misspelt_option_is_named_with_the_missing_ones(capsys, argv, said):
    """argparse names only the missing required options, not the misspelt one that was meant; an
    abbreviation (--n-comp) or a negative number is not taken for a misspelling."""
    rc, _, err = run(capsys, *argv)
    assert_one_line_error(rc, err, said)
    assert run(capsys, "--version")[0] == 0


def test_keyboard_interrupt_and_bugs(store, capsys, monkeypatch):
    def interrupted(args, term):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_info", interrupted)
    rc, _, err = run(capsys, "info", store)
    assert_one_line_error(rc, err, "interrupted", status=130)

    def bug(args, term):
        raise RuntimeError("a real bug")

    monkeypatch.setattr(cli, "cmd_info", bug)
    with pytest.raises(RuntimeError, match="a real bug"):
        cli.main(["info", store])


# ------------------------------------------------------------------ helpers
@pytest.mark.parametrize("text, value", [("1e5", 100_000), ("100_000", 100_000), ("100000000", 10**8),
                                         ("1e8", 10**8), ("1E8", 10**8), ("100_000_000", 10**8),
                                         ("2.5e3", 2500), (" 7 ", 7), ("4_611_686_018_427_387_904", 2**62)])
def test_count_parses_exactly(text, value):
    assert cli.count(text) == value and isinstance(cli.count(text), int)


@pytest.mark.parametrize("text", ["1__000", "_1", "1_", "1_e3", "\u0661\u0662\u0663", "\uff11\uff12", "1e", "", "0x10"])
def test_counts_and_seeds_are_plain_ascii_numbers(text):
    """Decimal alone had taken 1__000, _1 and 1_ (underscores not between two digits) and Arabic-Indic
    or full-width digits; int() took the latter for --seed and --max-iter."""
    with pytest.raises(argparse.ArgumentTypeError, match="expected a whole number such as"):
        cli.count(text)
    with pytest.raises(argparse.ArgumentTypeError, match="expected a non-negative integer seed"):
        cli._seed(text)
    assert cli._seed("12_345") == 12345 and cli._seed(" 3e2 ") == 300 and cli._seed("9" * 50) == int("9" * 50)
    assert cli._seed("9" * 4300) == int("9" * 4300)  # Python's limit on an int written as text: one more failed
    with pytest.raises(argparse.ArgumentTypeError, match=r"seed of at most 4,300 digits, got 4,301 characters"):
        cli._seed("9" * 4301)  # after the parse, in Python's words (a review)
    for text, said in (("-5", "expected a number >= 1, got '-5'"), ("-1e3", "expected a number >= 1")):
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(said)):  # had been "such as 100000"
            cli.count(text)
    with pytest.raises(argparse.ArgumentTypeError, match="expected a non-negative integer seed, got '-5'"):
        cli._seed("-5")


def test_too_large_counts_and_non_positive_scales_are_told_so(tmp_path, capsys):
    """--max-iter 1e30 was told it is no whole number, and 2**63 passed to the estimator's words;
    --box -1 was told ">= 0", and then 0 "> 0.0" (a review)."""
    for text in ("1e30", str(2**63)):
        with pytest.raises(argparse.ArgumentTypeError, match=rf"^expected a whole number >= 0 at most 2\*\*62 "
                                                              rf"\(about 4\.6e18\), got '{text}'$"):
            cli._whole_number(text)
    assert cli._whole_number(str(2**62)) == 2**62
    for option in ("--box", "--covariance-scale"):
        for text in ("-1", "0", "0e5"):
            rc, _, err = run(capsys, "generate", tmp_path / "g.zarr", "-n", "100", option, text)
            assert_one_line_error(rc, err, f"argument {option}: expected a finite number > 0, got '{text}'", status=2)
    rc, _, err = run(capsys, "fit", tmp_path / "g.zarr", "-k", "2", "-o", tmp_path / "m.json", "--tol", "-1")
    assert_one_line_error(rc, err, "argument --tol: expected a finite number >= 0, got '-1'", status=2)
    assert not os.path.exists(tmp_path / "g.zarr")


def test_sparkline():
    assert cli.sparkline([0, 1, 2, 3, 4, 5, 6, 7]) in ("▁▂▃▄▅▆▇█", "_.-~=*#@")
    assert len(cli.sparkline(np.arange(500), width=40)) == 40
    assert cli.sparkline([]) == ""
    # a converged curve's last ulp had been drawn as a fall of the full height: "█▁"
    assert cli.sparkline([1.005166402466127, 1.0051664024661269]) in ("▁▁", "__")
    assert cli.sparkline([-2.5, -2.5 + 1e-9]) in ("▁█", "_@")


def test_too_few_rows_and_the_collapse_advice_name_the_options(tmp_path, capsys):
    """fit gave scikit-learn's messages (n_components, n_samples) and advice in the library's words
    (increase reg_covar); select named the store and the option for the one, not the other."""
    one = tmp_path / "one.zarr"
    assert run(capsys, "generate", one, "-n", "1", "--seed", "1", "-q")[0] == 0
    five = tmp_path / "five.zarr"
    assert run(capsys, "generate", five, "-n", "5", "--seed", "1", "-q")[0] == 0
    for command in ("fit", "select"):
        rc, _, err = run(capsys, command, one, "-k", "1", "-o", tmp_path / "m.json", "-q")
        assert_one_line_error(rc, err, f"{str(one)!r} has 1 row; a mixture is fitted to 2 rows or more.")
        rc, _, err = run(capsys, command, five, "-k", "6", "-o", tmp_path / "m.json", "-q")
        assert_one_line_error(rc, err, f"{str(five)!r} has 5 rows, fewer than the 6 components asked for; "
                                       "pass --n-components up to 5.")
    empty = tmp_path / "empty.zarr"
    zarr.create_array(str(empty), shape=(0, 2), chunks=(10, 2), dtype="f8")
    fitted = tmp_path / "fitted.json"
    assert run(capsys, "fit", five, "-k", "1", "-o", fitted, "-q")[0] == 0
    for argv in (("fit", empty, "-k", "1", "-o", tmp_path / "m.json"), ("select", empty, "-k", "1", "-o", tmp_path / "m.json"),
                 ("score", fitted, empty), ("predict", fitted, empty, "-o", tmp_path / "p.zarr")):
        rc, _, err = run(capsys, *argv, "-q")
        assert_one_line_error(rc, err, f"{str(empty)!r} holds no rows (an array of shape (0, 2)). Pass a store of data.")
    zeros = tmp_path / "zeros.zarr"  # every row the same: a component collapses with --reg-covar 0
    zarr.create_array(str(zeros), data=np.zeros((1000, 2)), chunks=(500, 2), config={"write_empty_chunks": True})
    rc, _, err = run(capsys, "fit", zeros, "-k", "2", "--reg-covar", "0", "-o", tmp_path / "m.json", "-q")
    assert rc == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith("Try to decrease the number of components, increase "
                                                 "--reg-covar (currently 0.0), or scale the input data.")
    assert not (tmp_path / "m.json").exists()
    # select gives the same advice, and takes the option it names (it had none: "unrecognized arguments")
    rc, _, err = run(capsys, "select", zeros, "-k", "2", "--reg-covar", "0", "-o", tmp_path / "m.json", "-q")
    assert rc == 2 and "increase --reg-covar (currently 0.0)" in err.strip().splitlines()[-1]
    assert run(capsys, "select", zeros, "-k", "1-2", "--reg-covar", "1e-3", "-o", tmp_path / "m.json", "-q")[0] == 0
    assert load_model(tmp_path / "m.json").reg_covar == 1e-3


def test_fitting_a_predict_output_or_a_true_parameter_array_is_warned_of(store, model_file, tmp_path, capsys):
    """A slip of -o for the data's path fitted the probabilities predict wrote (or a generated store's
    true means) without a word: a plausible-looking model of the wrong array."""
    proba = tmp_path / "p.zarr"
    assert run(capsys, "predict", model_file, store, "-o", proba, "--proba", "-q")[0] == 0
    rc, out, err = run(capsys, "fit", proba, "-k", "2", "-o", tmp_path / "m.json", "-q")
    assert rc == 0 and err == (f"dask-gmm: warning: {str(proba)!r} is an output of 'dask-gmm predict' (of the data "
                               f"{store!r}), not data; it is read as data as asked. Was the data's path meant?\n")
    means = os.path.join(store, "true_means")
    rc, out, err = run(capsys, "fit", means, "-k", "2", "-o", tmp_path / "m.json", "-q")
    assert rc == 0 and err.startswith(f"dask-gmm: warning: {means!r} is an array of a store that 'dask-gmm "
                                      "generate' wrote, not its data (X)")
    rc, out, err = run(capsys, "fit", store, "-k", "2", "-o", tmp_path / "m.json", "-q")
    assert rc == 0 and err == ""  # the data themselves: no word
    assert run(capsys, "fit", proba, "-k", "2", "-o", tmp_path / "p.json", "-q")[0] == 0
    for command in (["score", tmp_path / "p.json", proba], ["score", tmp_path / "p.json", proba, "--json"]):  # twice
        rc, out, err = run(capsys, *command)
        assert rc == 0 and err.count("dask-gmm: warning:") == 1 and "is an output of 'dask-gmm predict'" in err, err


# ------------------------------------------------------------------ the real console script
def _console(*argv):
    exe = console_script("dask-gmm")
    cmd = [exe] if exe else [sys.executable, "-m", "dask_gmm"]
    return subprocess.run(cmd + [str(a) for a in argv], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", ["generate", "predict"])
def test_a_replaced_store_that_cannot_be_deleted_is_named(tmp_path, command):
    """--overwrite of a read-only store (chmod -R a-w) renamed it aside and then failed to delete it
    without a word: a hidden copy as large as the store, which no later run could remove either (a
    review). It is named in a warning, and what can be deleted is (for generate, a store whose
    labels alone are read-only leaves just them). Run without the capabilities by which root ignores modes."""
    if os.geteuid() == 0 and (shutil.which("setpriv") is None
                              or subprocess.run(WITHOUT_OVERRIDES + ["true"], capture_output=True).returncode):
        pytest.skip("root, and no setpriv to drop the capabilities that ignore file modes")
    prefix = WITHOUT_OVERRIDES if os.geteuid() == 0 else []
    store, model, labels = tmp_path / "s.zarr", tmp_path / "m.json", tmp_path / "p.zarr"
    assert _console("generate", store, "-n", "2000", "--seed", "1", "-q").returncode == 0
    assert _console("fit", store, "-k", "2", "-o", model, "-q").returncode == 0
    assert _console("predict", model, store, "-o", labels, "-q").returncode == 0
    target = store if command == "generate" else labels
    argv = (("generate", store, "-n", "1000", "--seed", "2") if command == "generate"
            else ("predict", model, store, "-o", labels)) + ("--overwrite", "-q")
    subprocess.run(["chmod", "-R", "a-w", str(target / "labels" if command == "generate" else target)], check=True)
    try:
        proc = subprocess.run(prefix + _command(*argv), capture_output=True, text=True, timeout=120)
        left = [p for p in os.listdir(tmp_path) if p.startswith(f".{target.name}.tmp@") and p.endswith(".gone")]
        assert proc.returncode == 0 and len(left) == 1, proc.stderr
        assert re.search(rf"^dask-gmm: warning: '[^']*{target.name}' was replaced, but the old one, moved aside to "
                         rf"'[^']*{re.escape(left[0])}', could not be deleted whole \(Permission denied\)\. Delete it "
                         r"yourself", proc.stderr, re.M), proc.stderr
        assert zarr.open_group(store, mode="r").attrs  # the new store is in place
        assert sorted(os.listdir(tmp_path / left[0])) == (["labels"] if command == "generate" else ["c", "zarr.json"])
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(tmp_path)], check=True)


def test_generate_writes_the_dtype_asked_for_and_info_names_the_shards(tmp_path, capsys):
    """--dtype float32 and info's shards were never checked through the command line (a review's
    mutants: a float64 store said to be float32, and no shards shown)."""
    path = tmp_path / "f.zarr"
    assert run(capsys, "generate", path, "-n", "3000", "--dtype", "float32", "--seed", "1", "-q")[0] == 0
    assert zarr.open_group(str(path), mode="r")["X"].dtype == np.float32
    rc, out, _ = run(capsys, "info", path, "--json")
    assert rc == 0 and json.loads(out)["dtype"] == "float32" and json.loads(out)["shards"] is None
    X = np.random.default_rng(0).normal(size=(12000, 3))
    group = zarr.open_group(str(tmp_path / "sh.zarr"), mode="w")
    group.create_array("X", shape=X.shape, chunks=(3000, 3), shards=(6000, 3), dtype=X.dtype)[:] = X
    rc, out, _ = run(capsys, "info", tmp_path / "sh.zarr", "--json")
    assert rc == 0 and json.loads(out)["shards"] == [6000, 3] and json.loads(out)["chunks"] == [3000, 3]
    rc, out, _ = run(capsys, "info", tmp_path / "sh.zarr")
    assert "chunks       (3000, 3), shards (6000, 3)" in out


def test_console_script(store, tmp_path):
    res = _console("info", store)
    assert res.returncode == 0 and "20,000 rows" in res.stdout and res.stderr == ""
    res = _console("fit", tmp_path / "missing.zarr", "-k", "2", "-o", tmp_path / "m.json")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]
    assert res.stderr.startswith("dask-gmm: error: no Zarr store")


def test_a_fit_that_compiled_the_kernels_says_so(store, tmp_path):
    """A machine's first fit compiles numba's kernels (seconds), and its summary charged them to EM
    without a word ('2 EM iterations at 4.715 s each'); the next fit loads them from the cache."""
    if not _kernels.USE_NUMBA:  # DASK_GMM_NUMBA=0, false, no or off
        pytest.skip("the NumPy kernels compile nothing")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    said = []
    for _ in range(2):
        res = subprocess.run(_command("fit", store, "-k", "2", "--seed", "0", "-o", tmp_path / "m.json"),
                             capture_output=True, text=True, timeout=300, env=env)
        assert res.returncode == 0, res.stderr
        said.append("compiling the kernels included (numba caches them on disk where it can)" in res.stdout)
    assert said == [True, False]


def _command(*argv):
    exe = console_script("dask-gmm")
    return ([exe] if exe else [sys.executable, "-m", "dask_gmm"]) + [str(a) for a in argv]


_SIGTERM_AS_A_THREAD_STARTS = textwrap.dedent(
    """
    import os, signal, sys, threading
    start, prefix = threading._start_new_thread, sys.argv[1]

    def start_and_terminate(func, args, *rest):  # SIGTERM as a pool's worker thread starts
        ident = start(func, args, *rest)
        if getattr(getattr(func, "__self__", None), "name", "").startswith(prefix):
            threading._start_new_thread = start
            os.kill(os.getpid(), signal.SIGTERM)
        return ident

    threading._start_new_thread = start_and_terminate
    from dask_gmm.__main__ import main
    sys.argv = ["dask-gmm"] + sys.argv[2:]
    sys.exit(main())
    """
)


_UNDER_AN_ADDRESS_SPACE_LIMIT = textwrap.dedent(
    """
    import resource, sys
    import distributed, numpy as np  # what a command imports lazily: its import would fail first
    import dask_gmm.cli, dask_gmm.generate, dask_gmm.mixture
    from dask_gmm.__main__ import main

    np.linalg.cholesky(np.eye(3))  # BLAS started
    vm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize:")) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + 2**28, resource.getrlimit(resource.RLIMIT_AS)[1]))  # 256 MiB more
    sys.exit(main(sys.argv[1:]))
    """
)


def test_running_out_of_memory_is_one_line(tmp_path):
    """Under ulimit -v a chunk of 640 MB (or the threads to draw it) does not fit: a traceback with
    status 1 had said so, a MemoryError or Thread.start's RuntimeError (a review)."""
    argv = ("generate", tmp_path / "s.zarr", "-n", "4e7", "--chunk-size", "4e7", "--seed", "1", "-q")
    proc = subprocess.run([sys.executable, "-c", _UNDER_AN_ADDRESS_SPACE_LIMIT, *map(str, argv)], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-800:]
    assert re.fullmatch(r"dask-gmm: error: (out of memory|a thread could not start)( \(.*\))?\. Give the command more "
                        r"memory \(a larger machine, or a larger ulimit -v\), or write smaller chunks \(a smaller "
                        r"--chunk-size: a chunk is drawn whole\)\.\n", proc.stderr), proc.stderr


_SIGNAL_IN_A_WEAKREF_CALLBACK = textwrap.dedent(
    """
    import os, signal, sys, weakref
    from dask_gmm import cli
    from dask_gmm.__main__ import main

    signum, when, info = getattr(signal, sys.argv[1]), sys.argv[2], cli.cmd_info
    last = when == "last"

    class Thing:
        pass

    def in_a_callback(args, term):  # the signal arrives while the main thread runs a weakref callback
        status = info(args, term) if last else None
        thing = Thing()
        ref = weakref.ref(thing, lambda _: (os.kill(os.getpid(), signum), sum(range(10**5))))
        del thing
        if when == "error":  # as numba's compile, whose callback dropped the signal, fails next
            raise RuntimeError("no compiled object yet for <Library 'estep_full'>")
        return status if last else info(args, term)

    cli.cmd_info = in_a_callback
    sys.argv = ["dask-gmm"] + sys.argv[3:]
    sys.exit(main())
    """
)


@pytest.mark.parametrize("when", ["first", "last", "error"])
@pytest.mark.parametrize("signum, status, said", [("SIGINT", -2, "interrupted"), ("SIGTERM", 143, "terminated")])
def test_a_signal_whose_exception_python_dropped_still_ends_the_command(tmp_path, signum, status, said, when):
    """A signal's handler raises in the main thread wherever it is: in a weakref callback, whose
    exceptions Python prints as "Exception ignored" and drops, the Ctrl-C or SIGTERM was lost, and
    ``demo`` ran on to its end with status 0 (a review: 3 times in 25 Ctrl-Cs). It is sent again,
    or, where the command ends first (its last step), raised as it ends (a diff review: lost), or,
    where an error follows at once (numba's RuntimeError when its compile's callback dropped it: a
    traceback, status 1, 3 times in 45 SIGTERMs of a review), ends the command instead."""
    store = tmp_path / "s.zarr"
    generate_mixture(store, n_samples=1000, n_features=2, n_components=2, random_state=0)
    proc = subprocess.run([sys.executable, "-c", _SIGNAL_IN_A_WEAKREF_CALLBACK, signum, when, "info", str(store)],
                          capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stderr.strip()) == (status, f"dask-gmm: error: {said}"), proc.stderr


@pytest.mark.parametrize("command", ["fit", "generate"])
def test_sigterm_as_a_pool_thread_starts_still_ends_the_command(tmp_path, command):
    """SIGTERM raised while the main thread started a thread pool's worker left that worker unknown
    to its pool, and the process hung at exit after saying "terminated" (a review's report)."""
    store = tmp_path / "s.zarr"
    if command == "fit":
        assert _console("generate", store, "-n", "20000", "--chunk-size", "2000", "--seed", "1", "-q").returncode == 0
        argv = ("dask_gmm-pull", "fit", store, "-k", "3", "-o", tmp_path / "m.json", "-q")
    else:
        argv = ("ThreadPoolExecutor", "generate", store, "-n", "200000", "--seed", "1", "-q")
    proc = subprocess.run([sys.executable, "-c", _SIGTERM_AS_A_THREAD_STARTS, *map(str, argv)],
                          capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stderr.strip()) == (143, "dask-gmm: error: terminated"), proc.stderr


def test_sigterm_unwinds_like_an_interrupt(tmp_path):
    """SIGTERM ends a command with one line and status 143, its clean-up run (the store stays
    marked incomplete, and a rerun finishes it)."""
    path = tmp_path / "s.zarr"
    argv = ("generate", path, "-n", "2e6", "--chunk-size", "1e4", "--seed", "1", "-q")
    proc = subprocess.Popen(_command(*argv), stderr=subprocess.PIPE, text=True)
    chunks, deadline = path / "X" / "c", time.monotonic() + 60
    try:
        while not (chunks.is_dir() and len(os.listdir(chunks)) >= 5):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 143 and err.strip() == "dask-gmm: error: terminated", err
    assert _console("info", path).stdout.count("INCOMPLETE") == 1
    assert _console(*argv).returncode == 0 and "INCOMPLETE" not in _console("info", path).stdout


_AFTER_THE_COMMAND = textwrap.dedent(
    """
    import sys
    from dask_gmm.__main__ import main
    status = main(sys.argv[1:])
    print("returned", flush=True)  # the interpreter's clean-up would follow: a signal in it ended the process
    sys.exit(99)
    """
)


@pytest.mark.parametrize("argv", [("info",), ("info", "--no-such-option")])
def test_the_command_ends_the_process_with_its_status_once_done(store, argv):
    """A SIGTERM 0.05-0.2 s after predict had written its output and said so ended the process by the
    signal (143, no message; a Ctrl-C, a traceback): the interpreter's clean-up, where Python's
    default actions were back (a review). The entry point now ends the process with the command's
    status as soon as the command is done."""
    proc = subprocess.run([sys.executable, "-c", _AFTER_THE_COMMAND, argv[0], store, *argv[1:]],
                          capture_output=True, text=True, timeout=120)
    assert "returned" not in proc.stdout
    if len(argv) == 1:
        assert proc.returncode == 0 and "complete" in proc.stdout and proc.stderr == "", proc.stderr
    else:
        assert proc.returncode == 2 and proc.stderr.startswith("dask-gmm: error: unrecognized arguments"), proc.stderr


def _sigint_default():
    """A ``preexec_fn``: SIGINT as a terminal gives it (a test run in the background inherits it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("interrupted", [KeyboardInterrupt, Terminated, None])
@pytest.mark.parametrize("error", [ImportError, RuntimeError])
def test_an_import_cut_short_by_ctrl_c_is_an_interruption_and_other_import_errors_are_not(monkeypatch, capsys,
                                                                                          interrupted, error):
    """A Ctrl-C in a C extension's initialisation (scipy's HiGHS module as scikit-learn loads) comes
    out as ImportError("initialization failed") raised from the KeyboardInterrupt, and in a class's
    ``__set_name__`` (dask's ``Expr`` as dask loads) as a RuntimeError raised from it: one line, as
    any Ctrl-C while the libraries load (each seen once, with a traceback: in a CI run of the test
    below, in 120 Ctrl-Cs of the same command). A SIGTERM's so is "terminated", status 143 (it
    was "interrupted", 130). Another error is raised as it is, after a signal that an earlier
    command in the process handled too. Run off the main thread: the entry point then returns the
    status instead of ending the process by SIGINT."""
    from dask_gmm import __main__ as entry

    def load(name):
        if interrupted is None:
            raise error("No module named 'something'")
        try:
            raise interrupted
        except KeyboardInterrupt as exc:
            raise error("initialization failed") from exc

    fake = types.ModuleType("dask_gmm.cli")
    fake.__getattr__ = load
    monkeypatch.setitem(sys.modules, "dask_gmm.cli", fake)
    monkeypatch.setattr(entry, "raised", [signal.SIGINT])  # an earlier command's in this process: not this one's
    got = {}

    def run():
        try:
            got["status"] = entry.main(["info", "x"])
        except error as exc:
            got["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if interrupted is not None:
        status, said = (143, "terminated") if interrupted is Terminated else (130, "interrupted")
        assert got == {"status": status} and capsys.readouterr().err == f"dask-gmm: error: {said}\n"
    else:
        assert str(got["error"]) == "No module named 'something'" and capsys.readouterr().err == ""


def test_ctrl_c_while_the_libraries_load(tmp_path):
    """Ctrl-C at any moment of a command's start (importing numpy, dask, numba and scikit-learn takes
    seconds) is one line, as during the command itself, and the process ends killed by SIGINT, as
    Python ends on Ctrl-C (a shell reports 130): no traceback."""
    for i, delay in enumerate((0.3, 0.6, 1.0, 1.6, 2.5)):
        argv = ("generate", tmp_path / f"s{i}.zarr", "-n", "2e8", "--chunk-size", "1e4", "-q")  # minutes of work:
        # 2e6 rows were done in 2.5 s on an idle machine, before the Ctrl-C
        proc = subprocess.Popen(_command(*argv), stderr=subprocess.PIPE, text=True, preexec_fn=_sigint_default)
        try:
            time.sleep(delay)
            proc.send_signal(signal.SIGINT)
            err = proc.communicate(timeout=60)[1]
        finally:  # a command that ignored the Ctrl-C would write 3.2 GB
            proc.kill()
        assert (proc.returncode, err.strip()) == (-signal.SIGINT, "dask-gmm: error: interrupted"), (delay, err)


def test_sigterm_while_the_libraries_load(tmp_path):
    """SIGTERM as a command starts is one line and status 143, as during the command itself: as the
    libraries loaded, it had ended the process by the signal with no word (a review). (Not before
    Python runs dask_gmm's entry point, in the first tenth of a second or so: the first delay leaves
    room for a loaded machine.)"""
    for i, delay in enumerate((0.5, 0.8, 1.2, 1.8, 2.5)):
        argv = ("generate", tmp_path / f"s{i}.zarr", "-n", "2e8", "--chunk-size", "1e4", "-q")
        proc = subprocess.Popen(_command(*argv), stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(delay)
            proc.send_signal(signal.SIGTERM)
            err = proc.communicate(timeout=60)[1]
        finally:  # a command that ignored the signal would write 3.2 GB
            proc.kill()
        assert (proc.returncode, err.strip()) == (143, "dask-gmm: error: terminated"), (delay, err)


_SIGTERM_CUTS_NUMBAS_IMPORT_SHORT = textwrap.dedent(
    """
    import signal, sys
    import dask_gmm.__main__ as entry

    class CutShort:  # numba's import, as the command's first import of the kernels loads it
        tries = 0

        def find_spec(self, name, path=None, target=None):
            if name == "numba":
                CutShort.tries += 1
                if CutShort.tries == 1:
                    signal.raise_signal(signal.SIGTERM)  # the command's handler raises here
                print("numba imported again", file=sys.stderr, flush=True)
                raise AttributeError("module 'numba' has no attribute 'core'")  # as a numba left half loaded
            return None

    sys.meta_path.insert(0, CutShort())
    entry.main(["generate", sys.argv[1], "-n", "1000", "-q"])
    """
)


def test_sigterm_as_numba_loads_is_one_line_and_imports_it_no_more(tmp_path):
    """A SIGTERM as the command loaded numba (after zarr) ended as a Ctrl-C, "interrupted" and killed
    by SIGINT (7 times in 150 SIGTERMs 1.3-1.6 s into ``generate``): unwinding, the command imported
    the kernels again to settle zarr's event loop, and the half-loaded numba raised an AttributeError
    from the SIGTERM. Staged here: nothing is imported again, and the command ends as on any SIGTERM."""
    done = subprocess.run([sys.executable, "-c", _SIGTERM_CUTS_NUMBAS_IMPORT_SHORT, str(tmp_path / "s.zarr")],
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (143, "dask-gmm: error: terminated\n")
    assert os.listdir(tmp_path) == []


_INTERRUPTED_WITH_A_COROUTINE_MADE = textwrap.dedent(
    """
    import asyncio, signal, sys
    import dask_gmm.cli as cli
    from dask_gmm._signals import Terminated

    def command(args, term):  # zarr's sync() had made its coroutine when the signal came
        pending = asyncio.sleep(0)
        raise KeyboardInterrupt if sys.argv[1] == "int" else Terminated

    cli.cmd_info = command
    sys.exit(cli.main(["info", "anything"]))
    """
)


@pytest.mark.parametrize("signal_name", ["int", "term"])
def test_a_signal_as_a_coroutine_is_made_is_one_line_still(signal_name):
    """A Ctrl-C (or SIGTERM) that lands after zarr made a coroutine and before it ran: Python's
    "coroutine ... was never awaited" warning had followed the one-line error (seen once in CI, in
    test_ctrl_c_while_the_libraries_load). The moment made here on purpose."""
    done = subprocess.run([sys.executable, "-c", _INTERRUPTED_WITH_A_COROUTINE_MADE, signal_name],
                          capture_output=True, text=True, timeout=120)
    said = "interrupted" if signal_name == "int" else "terminated"
    assert (done.returncode, done.stderr.strip()) == (130 if signal_name == "int" else 143, f"dask-gmm: error: {said}")


_CTRL_C_STAND_IN = textwrap.dedent(
    """
    import sys, time, types
    import dask_gmm.__main__ as entry
    import dask_gmm._signals as signals

    def main(argv):  # a stand-in command line
        try:
            print("ready", flush=True)
            time.sleep(30)
        except KeyboardInterrupt if argv == ["handles"] else BaseException:  # else a library's bare except
            if argv == ["handles"]:  # a clean-up well past the watch's time: not cut short
                time.sleep(3 * signals.ACT_WITHIN)
                print("cleaned up", flush=True)
                return 130
        try:
            time.sleep(30)  # the command's work
        except KeyboardInterrupt:
            print("dask-gmm: error: interrupted", file=sys.stderr, flush=True)
            return 130
        return 0

    sys.modules["dask_gmm.cli"] = types.SimpleNamespace(main=main)
    signals.ACT_WITHIN = 0.5
    entry.main(sys.argv[1:])
    """
)


def _ctrl_c_once_ready(script, argument, signum=signal.SIGINT):
    """Run ``script`` (``python -c``) with ``argument``, send it a Ctrl-C (or ``signum``) once it
    prints "ready", and return its status and what it then printed to stdout and stderr."""
    proc = subprocess.Popen([sys.executable, "-c", script, argument], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_sigint_default)
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=25)
    finally:
        proc.kill()
    return proc.returncode, out, err


@pytest.mark.parametrize("command", ["swallows", "handles"])
def test_a_ctrl_c_that_a_library_swallows_is_sent_again(command):
    """A Ctrl-C that something took (a library's bare ``except``: once in a CI run, 0.6 s in, a
    2e8-row generate ran on) is sent again by the entry point when the process has not ended within
    seconds and is not handling it; the command then ends as on any Ctrl-C. Before, the work ran on
    to its end. A command that handles it, however long its clean-up, is left to finish it."""
    said = ("", "dask-gmm: error: interrupted\n") if command == "swallows" else ("cleaned up\n", "")
    assert _ctrl_c_once_ready(_CTRL_C_STAND_IN, command) == (-signal.SIGINT, *said)


_SIGTERM_STAND_IN = textwrap.dedent(
    """
    import sys, time
    import dask_gmm._signals as signals
    import dask_gmm.cli as cli

    def command(args, term):  # a stand-in command
        try:
            print("ready", flush=True)
            time.sleep(30)
        except KeyboardInterrupt if sys.argv[1] == "handles" else BaseException:  # else a library's bare except
            if sys.argv[1] == "handles":  # a clean-up well past the watch's time: not cut short
                time.sleep(3 * signals.ACT_WITHIN)
                print("cleaned up", flush=True)
                raise
        time.sleep(30)  # the command's work
        return 0

    cli.cmd_info = command
    signals.ACT_WITHIN = 0.5
    sys.exit(cli.main(["info", "anything"]))
    """
)


@pytest.mark.parametrize("command", ["swallows", "handles"])
def test_a_sigterm_that_a_library_swallows_is_sent_again(command):
    """A SIGTERM that something took (once in a CI run, 0.5 s into a 2e8-row generate, which ran on
    past the test's minute) is sent again when the process has not ended within seconds and is not
    handling it, as a Ctrl-C is; the command then ends as on any SIGTERM. Before, the work ran on to
    its end. A command that handles it, however long its clean-up, is left to finish it."""
    said = "cleaned up\n" if command == "handles" else ""
    assert _ctrl_c_once_ready(_SIGTERM_STAND_IN, command, signal.SIGTERM) == (143, said, "dask-gmm: error: terminated\n")


_SIGTERM_THEN_GOES_ON = textwrap.dedent(
    """
    import sys, time
    import dask_gmm._signals as signals
    import dask_gmm.cli as cli

    def command(args, term):  # a stand-in command, ended by the SIGTERM
        print("ready", flush=True)
        time.sleep(30)

    cli.cmd_info = command
    signals.ACT_WITHIN = 0.3
    status = cli.main(["info", "anything"])
    time.sleep(1.5)  # a program of one's own, going on after the command
    print("went on after", status, flush=True)
    """
)


def test_a_program_that_ran_a_command_a_sigterm_ended_is_not_sent_it_again():
    """cli.main in a program of one's own, ended by a SIGTERM it handled (status 143): the watch that
    sends a signal left unhandled again stands down as the command ends, where it had killed the
    program by the signal once it went on for a few seconds (a review)."""
    said = _ctrl_c_once_ready(_SIGTERM_THEN_GOES_ON, "", signal.SIGTERM)
    assert said == (0, "went on after 143\n", "dask-gmm: error: terminated\n")


_CTRL_C_DROPPED_AS_THE_LIBRARIES_LOAD = textwrap.dedent(
    """
    import sys, time, types, weakref
    import dask_gmm.__main__ as entry
    import dask_gmm._signals as signals

    class Lock:
        pass

    def dropping(_):  # as the import system's module locks' weakref callbacks: its exceptions are dropped
        print("ready", flush=True)
        time.sleep(30)

    def load(name):  # the command line's import, a stand-in
        if name != "main":  # (the import system asks for __spec__)
            raise AttributeError(name)
        lock = Lock()
        ref = weakref.ref(lock, dropping)
        del lock  # the callback runs, and the Ctrl-C lands in it
        if sys.argv[1] == "loads on":
            time.sleep(30)
        return lambda argv: 0  # a command done at once

    cli = types.ModuleType("dask_gmm.cli")
    cli.__getattr__ = load
    sys.modules["dask_gmm.cli"] = cli
    signals.ACT_WITHIN = 0.5
    entry.main([])
    """
)


_CTRL_C_MADE_AN_IMPORT_ERROR = textwrap.dedent(
    """
    import sys, time, types
    import dask_gmm.__main__ as entry

    def load(name):  # the command line's import, a stand-in for numpy 2.0's
        if name != "main":  # (the import system asks for __spec__)
            raise AttributeError(name)
        cut_short = False
        try:
            print("ready", flush=True)
            time.sleep(30)
        except KeyboardInterrupt:  # taken, and an ImportError raised that does not hold it
            cut_short = True
        if cut_short:
            raise ImportError("Error importing numpy: you should not try to import numpy from its source directory")
        return lambda argv: 0

    cli = types.ModuleType("dask_gmm.cli")
    cli.__getattr__ = load
    sys.modules["dask_gmm.cli"] = cli
    entry.main([])
    """
)


def test_a_ctrl_c_that_a_library_turns_into_an_import_error_is_one_line():
    """At the lowest versions (numpy 2.0), a Ctrl-C 0.3 s after the start printed numpy's ImportError
    ("you should not try to import numpy from its source directory") and ended with status 1: its
    chain did not hold the KeyboardInterrupt (not reproduced since; staged here so). An ImportError
    after a Ctrl-C is the Ctrl-C's doing."""
    assert _ctrl_c_once_ready(_CTRL_C_MADE_AN_IMPORT_ERROR, "") == (-signal.SIGINT, "", "dask-gmm: error: interrupted\n")


@pytest.mark.parametrize("then", ["loads on", "has loaded"])
def test_a_ctrl_c_dropped_as_the_libraries_load_is_one_line(then):
    """A Ctrl-C that lands in a weakref callback as the libraries load (the import system's module
    locks have them), where Python prints its exception as "Exception ignored" and drops it: a CI run
    printed that and a traceback before the one line (sent again 5 s on). It is raised again at once,
    and where the libraries load on, or have loaded by then, the command ends as on any Ctrl-C, with
    one line."""
    said = _ctrl_c_once_ready(_CTRL_C_DROPPED_AS_THE_LIBRARIES_LOAD, then)
    assert said == (-signal.SIGINT, "", "dask-gmm: error: interrupted\n")


def test_ctrl_c_while_plot_draws_leaves_the_earlier_set_of_figures_whole(tmp_path, store, model_file):
    """plot renamed each figure into place as it was drawn: a Ctrl-C then left figures of two models
    (a review). They are drawn into a hidden folder and renamed together at the end."""
    other = tmp_path / "other.json"
    assert cli.main(["fit", store, "-k", "2", "--seed", "0", "-o", str(other), "-q"]) == 0
    out = tmp_path / "set.png"
    assert _console("plot", model_file, store, "-o", out, "-q").returncode == 0
    before = {p.name: p.read_bytes() for p in tmp_path.glob("set*.png")}
    assert sorted(before) == ["set-density.png", "set-loglik.png", "set.png"]
    (tmp_path / "set-density.png").chmod(0o600)  # a private figure stays private when replaced
    assert _console("plot", model_file, store, "-o", out, "-q").returncode == 0
    assert {p.name: p.read_bytes() for p in tmp_path.glob("set*.png")} == before  # the same figures again
    umask = os.umask(0)
    os.umask(umask)
    assert [stat.S_IMODE(p.stat().st_mode) for p in sorted(tmp_path.glob("set*.png"))] == [0o600] + [0o666 & ~umask] * 2
    proc = subprocess.Popen(_command("plot", other, store, "-o", out, "-q"), stderr=subprocess.PIPE, text=True,
                            preexec_fn=_sigint_default)
    try:
        while proc.poll() is None:  # the first figure drawn (staged, or before: put in place)
            if any(tmp_path.glob(".set.png.tmp@*/fit.png")) or out.read_bytes() != before["set.png"]:
                proc.send_signal(signal.SIGINT)
                break
            time.sleep(0.001)
        err = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    assert (proc.returncode, err) == (-signal.SIGINT, "dask-gmm: error: interrupted\n")
    assert {p.name: p.read_bytes() for p in tmp_path.glob("set*.png")} == before
    assert sorted(os.listdir(tmp_path)) == ["other.json", "set-density.png", "set-loglik.png", "set.png"]


def test_ctrl_c_stops_a_shell_loop_of_commands(tmp_path):
    """Ctrl-C in a terminal reaches the shell and the command; a shell whose command says it exited
    130 runs the loop on (it takes the command to have handled the key), one killed by SIGINT stops."""
    loop = 'for i in 1 2 3; do "$@" "$0/s$i.zarr"; echo after $i; done'
    argv = ["bash", "-c", loop, str(tmp_path), *_command("generate", "-n", "2e8", "--chunk-size", "1e4", "-q")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_sigint_default)
    try:
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: to the whole foreground group
        out, err = proc.communicate(timeout=120)
    finally:  # a loop that ran on would write 3.2 GB a command
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert (proc.returncode, out, err.strip()) == (-signal.SIGINT, "", "dask-gmm: error: interrupted"), (out, err)
    assert set(os.listdir(tmp_path)) <= {"s1.zarr"}  # the second and third never ran


def test_ctrl_c_during_predicts_writes_ends_by_sigint(tmp_path):
    """Ctrl-C while predict writes its output (2,000 chunks, about a second): one line, nothing left
    behind, and the process killed by SIGINT. It exited with status 1 (Python's KeyboardInterrupt
    at the top was forgotten during the interpreter's clean-up), which a shell loop runs on after."""
    from dask_gmm import GaussianMixture, save_model

    X = np.random.default_rng(0).normal(size=(400_000, 3))
    zarr.create_array(str(tmp_path / "x.zarr"), shape=X.shape, chunks=(200, 3), dtype="f8")[:] = X
    save_model(GaussianMixture(3, random_state=0).fit(X[:20_000]), tmp_path / "m.json")
    argv = _command("predict", "m.json", "x.zarr", "--output", "p.zarr", "--proba", "-q")
    proc = subprocess.Popen(argv, cwd=tmp_path, stderr=subprocess.PIPE, text=True, preexec_fn=_sigint_default)
    while proc.poll() is None and not any(name.startswith(".p.zarr") for name in os.listdir(tmp_path)):
        time.sleep(0.002)
    time.sleep(0.1)  # into the writes
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=120)[1]
    said = [line for line in err.splitlines() if "is stored in 2,000 chunks of 4,800 bytes" not in line]  # so many
    assert (proc.returncode, said) == (-signal.SIGINT, ["dask-gmm: error: interrupted"]), err
    assert sorted(os.listdir(tmp_path)) == ["m.json", "x.zarr"]


def test_a_closed_output_pipe_is_not_an_error(model_file):
    """``dask-gmm info ... | head -c 1``: the reader leaves, the command stops quietly (status 141)."""
    proc = subprocess.Popen(_command("info", model_file), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the command writes anything
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 141 and err == b"", err


def test_predict_failing_on_a_bad_row_leaves_nothing_behind(model_file, tmp_path, capsys):
    """The real failure (a NaN row in one chunk of many): the other threads' writes under way are
    waited for, so that the removed temporary output is not written again."""
    path = str(tmp_path / "nan.zarr")
    generate_mixture(path, 200_000, chunk_size=5_000, random_state=0)
    zarr.open_group(path, mode="r+")["X"][57_000, 0] = np.nan
    out = tmp_path / "out"
    out.mkdir()
    for i in range(3):
        rc, _, err = run(capsys, "predict", model_file, path, "-o", out / f"labels{i}.zarr")
        assert_one_line_error(rc, err, "first bad row: 57000")
    assert os.listdir(out) == []


@pytest.mark.parametrize("module", ["dask_gmm", "dask_gmm.cli"])
def test_python_dash_m(tmp_path, module):
    res = subprocess.run([sys.executable, "-m", module, "generate", tmp_path / "x.zarr", "-n", "1.5"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.startswith("dask-gmm: error: argument --n-samples")


@pytest.mark.parametrize("exc, advice", [
    (PermissionError(errno.EACCES, "Permission denied", "/sys/x.json"), "Check the permissions of that path"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/proc/x.json"), "Check the path"),
])
def test_os_errors_say_what_to_do(exc, advice):
    """A write into /sys or /proc (where the folder check passes, as root) said only what failed."""
    said = cli._describe_os_error(exc)
    assert said.startswith(f"{exc.strerror}: {exc.filename!r}. {advice}") and cli._is_fixable_os_error(exc)


def test_an_os_error_on_zarrs_temporary_file_names_its_folder():
    """zarr writes a chunk through NAME.<uuid>.partial: an error there named that temporary file (a
    review: a rerun of generate into read-only folders)."""
    import pathlib
    import uuid

    partial = pathlib.Path("/data/s.zarr/X/c/4/0").with_suffix(f".{uuid.uuid4().hex}.partial")  # as zarr names it
    said = cli._describe_os_error(PermissionError(errno.EACCES, "Permission denied", str(partial)))
    assert said.startswith("Permission denied: '/data/s.zarr/X/c/4' (a file zarr was writing there). Check the")


def _file_size_limit(limit):
    """A ``preexec_fn``: files of this process may not grow past ``limit`` bytes (the write fails with
    EFBIG, File too large, as a full disk fails with ENOSPC; SIGXFSZ ignored, as the shell leaves it)."""
    import resource

    def pre():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return pre


def test_a_failed_write_is_one_line_and_the_same_command_finishes_the_store(tmp_path):
    """A write the OS refuses (here a file-size limit, a full disk alike) is a one-line error with
    advice, not a traceback; no partial chunk is left, and the same command then writes the store
    that an uninterrupted run writes, byte for byte."""
    argv = ("generate", tmp_path / "s.zarr", "-n", "300000", "-d", "4", "--chunk-size", "20000", "--seed", "3", "-q")
    res = subprocess.run(_command(*argv), capture_output=True, text=True, timeout=120,
                         preexec_fn=_file_size_limit(100_000))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip().splitlines() == ["dask-gmm: error: File too large. A file would pass the size "
                                               "limit of this process ('ulimit -f') or of the file system. The store "
                                               f"{str(tmp_path / 's.zarr')!r} keeps the chunks written: the same "
                                               "command, rerun, finishes it."]
    files = [os.path.join(r, f) for r, _, fs in os.walk(tmp_path / "s.zarr") for f in fs]
    assert not any(f.endswith(".partial") for f in files)
    assert "INCOMPLETE" in _console("info", tmp_path / "s.zarr").stdout
    assert _console(*argv).returncode == 0
    whole = ("generate", tmp_path / "whole.zarr", *argv[2:])
    assert _console(*whole).returncode == 0
    for name in ("X", "labels"):
        a, b = zarr.open_array(tmp_path / "s.zarr" / name), zarr.open_array(tmp_path / "whole.zarr" / name)
        np.testing.assert_array_equal(a[:], b[:])


# ------------------------------------------------------------------ select
def test_select_equals_the_library_and_writes_the_best(store, tmp_path, capsys):
    from dask_gmm import select_model

    out_model, out_png = tmp_path / "best.json", tmp_path / "crit.png"
    rc, out, err = run(capsys, "select", store, "--n-components", "1-3,5", "--covariance-types", "full,diag",
                       "--seed", "0", "--output", out_model, "--plot", out_png)
    assert rc == 0, err
    sel = select_model(store, n_components=[1, 2, 3, 5], covariance_types=("full", "diag"), random_state=0)
    best = load_model(out_model)
    assert (best.n_components, best.covariance_type) == (sel.best_.n_components, sel.best_.covariance_type)
    np.testing.assert_array_equal(best.means_, sel.best_.means_)
    assert "<- best BIC" in out and len([l for l in out.splitlines() if l.strip()[:1].isdigit()]) == 8
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_select_by_aic_picks_by_aic_and_says_which_converged(tmp_path, capsys):
    """--criterion was never given in a test: select by BIC with the table saying "best AIC" passed
    them all, and so did a converged column of "yes" for every candidate (a review's mutants). On
    these heavy-tailed rows BIC picks 2 components and AIC 4."""
    from dask_gmm import select_model

    X = np.random.default_rng(0).standard_t(3, size=(600, 2))
    path = tmp_path / "t.zarr"
    zarr.create_array(str(path), shape=X.shape, chunks=(200, 2), dtype=X.dtype, config={"write_empty_chunks": True})[:] = X
    for criterion, k in (("aic", 4), ("bic", 2)):
        rc, out, err = run(capsys, "select", path, "-k", "1-4", "--criterion", criterion, "--seed", "0",
                           "-o", tmp_path / f"{criterion}.json")
        assert rc == 0, err
        sel = select_model(str(path), n_components=range(1, 5), criterion=criterion, random_state=0)
        assert sel.best_.n_components == k and load_model(tmp_path / f"{criterion}.json").n_components == k
        (chosen,) = [line for line in out.splitlines() if "<- best" in line]
        assert chosen.split()[0] == str(k) and chosen.endswith(f"<- best {criterion.upper()}")
    rc, out, err = run(capsys, "select", path, "-k", "1-3", "--max-iter", "2", "--seed", "0", "-o", tmp_path / "m.json")
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    with pytest.warns(ConvergenceWarning, match="The selected model did not converge") as warned:
        sel = select_model(str(path), n_components=range(1, 4), max_iter=2, random_state=0)
    assert warned[0].filename == __file__  # the user's line, not selection.py's
    assert [row[6] for row in rows] == ["yes" if r["converged"] else "NO" for r in sel.results_]
    assert [r["converged"] for r in sel.results_] == [True, False, False]  # one component converges at once


def test_select_plot_without_matplotlib_is_refused_before_any_work(store, tmp_path, capsys, monkeypatch):
    """It fitted every candidate and wrote the model, then failed: the refusal comes first now."""
    from dask_gmm import selection

    fitted = []
    monkeypatch.setattr(selection, "select_model", lambda *a, **k: fitted.append(1))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    rc, out, err = run(capsys, "select", store, "-k", "1-2", "-o", tmp_path / "m.json", "--plot", tmp_path / "c.png")
    assert_one_line_error(rc, err, "dask_gmm's figures need matplotlib: pip install 'dask_gmm[plot]'")
    assert fitted == [] and os.listdir(tmp_path) == [] and out == ""


def test_select_writes_its_figure_and_model_before_any_output(store, tmp_path, capsys, monkeypatch):
    """The model was written before the table, the figure after it: a reader closing the pipe at the
    table's first line (`| head -1`) left the new model beside an earlier run's figure. Duplicate
    candidates are counted once in the status line."""
    pytest.importorskip("matplotlib")
    printed, statuses = [], []

    def out(self, text=""):
        printed.append(text)
        assert (tmp_path / "m.json").exists() and (tmp_path / "c.png").exists()
        raise BrokenPipeError

    monkeypatch.setattr(cli._Terminal, "out", out)
    monkeypatch.setattr(cli._Terminal, "status", lambda self, text: statuses.append(text))
    rc, _, err = run(capsys, "select", store, "-k", "1,2,2", "--covariance-types", "full,full",
                     "-o", tmp_path / "m.json", "--plot", tmp_path / "c.png")
    assert rc == 141 and len(printed) == 1, err
    assert statuses == ["select: fitting 2 candidates in lockstep ..."]


def test_select_writes_the_model_that_fit_writes_with_the_same_seed(store, tmp_path, capsys):
    """Candidates were seeded from children of --seed: the best was another model than fit's."""
    assert run(capsys, "select", store, "-k", "2-4", "--covariance-types", "full,diag", "--seed", "5",
               "--output", tmp_path / "best.json")[0] == 0
    best = load_model(tmp_path / "best.json")
    assert run(capsys, "fit", store, "-k", str(best.n_components), "--covariance-type", best.covariance_type,
               "--seed", "5", "--output", tmp_path / "fit.json")[0] == 0
    np.testing.assert_allclose(load_model(tmp_path / "fit.json").means_, best.means_, rtol=1e-12)


def test_max_iter_and_seed_are_written_as_counts_are(store, tmp_path, capsys):
    """--max-iter 1e1 was refused as "expected a whole number >= 0", where -k, -n and --n-init take 1e1."""
    for name, argv in (("a", ("--max-iter", "1e1", "--seed", "5e0")), ("b", ("--max-iter", "10", "--seed", "5")),
                       ("c", ("--max-iter", "1_0", "--seed", "5.0"))):
        assert run(capsys, "fit", store, "-k", "2", *argv, "--tol", "0", "-o", tmp_path / f"{name}.json")[0] == 0
    a, b, c = (load_model(tmp_path / f"{name}.json") for name in "abc")
    assert a.max_iter == b.max_iter == c.max_iter == 10 and a.n_iter_ == 10 and a.random_state == 5
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(c.means_, b.means_)


def test_select_prints_the_log_likelihood_at_the_fitted_parameters(store, tmp_path, capsys):
    """The log-lik/row column is the mean log-likelihood that BIC uses (at the fitted parameters),
    not the lower bound (at the parameters entering the last iteration), which differ when a fit
    is stopped early."""
    rc, out, err = run(capsys, "select", store, "--n-components", "2,3", "--seed", "0", "--max-iter", "1",
                       "--init-params", "random", "--output", tmp_path / "best.json")
    assert rc == 0, err
    best = load_model(tmp_path / "best.json")
    row = next(l for l in out.splitlines() if "<- best BIC" in l).split()
    assert float(row[4]) == pytest.approx(best.score(store), abs=1e-6)
    assert abs(best.score(store) - best.lower_bound_) > 1e-3


@pytest.mark.parametrize("argv, fragment", [
    (["--n-components", "0-3"], ">= 1"),
    (["--n-components", "a-b"], "range like 1-8"),
    (["--n-components", "2,\u0663"], "range like 1-8"),
    (["--n-components", "2,5-1"], "the range '5-1' runs backwards; write it as 1-5"),
    (["--covariance-types", "full,weird"], "covariance types"),
])
def test_select_bad_arguments(store, tmp_path, capsys, argv, fragment):
    rc, _, err = run(capsys, "select", store, "--output", tmp_path / "m.json", *argv)
    assert_one_line_error(rc, err, fragment)


@pytest.mark.parametrize("argv, fragment", [
    (["select", "-k", "1-3000"], "4,501,500 components fitted together in every pass, more than 100,000"),
    (["select", "-k", "1-400", "--covariance-types", "full,diag"], "160,400 components"),
    (["select", "-k", "1-300", "--n-init", "3"], "135,450 components"),
    (["fit", "-k", "10000", "--n-init", "11"], "110,000 components"),
    # within the cap (1 + ... + 446 = 99,681 components), the output is the problem
    (["select", "-k", "1-446", "--output", "/"], "cannot write the model to '/': it is a folder"),
    # a type named twice is fitted once (80,200 components)
    (["select", "-k", "1-400", "--covariance-types", "full,full", "--output", "/"], "cannot write the model to '/': it is a folder"),
])
def test_too_many_components_in_lockstep_are_refused_before_any_work(store, tmp_path, capsys, argv, fragment):
    """``select -k 1-3000`` checked each K against the model file's cap, not their sum: it set out
    to fit about 4.5 million components in every pass."""
    out = tmp_path / "m.json"
    rc, _, err = run(capsys, argv[0], store, "--output", out, *argv[1:])  # a second --output wins
    assert_one_line_error(rc, err, fragment)
    assert not out.exists()


# ------------------------------------------------------------------ found by a black-box probe
def _digest(path):
    import hashlib

    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for f in sorted(files):
            h.update(os.path.join(os.path.relpath(root, path), f).encode() + open(os.path.join(root, f), "rb").read())
    return h.hexdigest()


def test_a_chained_url_output_is_refused_and_deletes_nothing(store, model_file, tmp_path, capsys):
    """Through 'simplecache::', an overwrite deleted the store through the file system while the writes
    went to the cache: the input itself was lost when named as the output."""
    import shutil

    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    before = _digest(copy)
    rc, _, err = run(capsys, "predict", model_file, copy, "-o", f"simplecache::file://{copy}", "--overwrite")
    assert_one_line_error(rc, err, "through a chain of URLs ('::')", f"file://{copy}")
    with pytest.raises(ValueError, match="through a chain of URLs"):
        generate_mixture(f"simplecache::file://{copy}", 100, random_state=0, overwrite=True)
    assert _digest(copy) == before


def test_an_output_inside_an_input_given_as_a_chained_url_is_refused(store, model_file, tmp_path, capsys):
    """The input 'simplecache::file:///...' was not compared with the output's path: predict wrote
    into the input store, or replaced it with its own labels."""
    import shutil

    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    before = _digest(copy)
    for data, output in ((f"simplecache::file://{copy}", copy / "pred"), (f"simplecache::file://{copy}", copy),
                         (f"filecache::file://{copy}/X", copy)):
        rc, _, err = run(capsys, "predict", model_file, data, "-o", output, "--overwrite")
        warning, error = err.strip().splitlines()  # the cache's warning, once, as the input is opened
        assert warning.startswith("dask-gmm: warning: ") and "fsspec's caching file system" in warning
        assert_one_line_error(rc, error, "it is, holds or lies inside the input data")
    assert _digest(copy) == before


def test_component_counts_a_model_file_cannot_hold_are_refused_first(store, tmp_path, capsys):
    """fit -k 10001 ran the whole fit, then could not save it; select -k 1-1e12 ran out of memory
    building the list (a MemoryError traceback)."""
    rc, _, err = run(capsys, "fit", store, "-k", "10001", "-o", tmp_path / "m.json")
    assert_one_line_error(rc, err, "a model file holds at most 10,000 components")
    rc, _, err = run(capsys, "select", store, "-k", "1-1000000000000", "-o", tmp_path / "m.json")
    assert_one_line_error(rc, err, "a model file holds at most 10,000 components")
    rc, _, err = run(capsys, "select", store, "-k", "4-", "-o", tmp_path / "m.json")  # ran K=4 alone
    assert_one_line_error(rc, err, "expected a range like 1-8")
    wide = tmp_path / "wide.zarr"
    zarr.create_array(wide, shape=(3, 10_001), chunks=(3, 10_001), dtype="f8")[:] = np.arange(30_003.0).reshape(3, -1)
    for argv in (("fit", wide, "-k", "1"), ("select", wide, "-k", "1")):
        rc, _, err = run(capsys, *argv, "-o", tmp_path / "m.json")
        assert_one_line_error(rc, err, "has 10,001 features; a model file holds at most 10,000")
    for option in ("-k", "-d"):  # generate's limit named as the option, not as the library's 'n_components'
        rc, _, err = run(capsys, "generate", tmp_path / "g.zarr", "-n", "100", option, "10001")
        name = {"-k": "--n-components", "-d": "--n-features"}[option]
        assert_one_line_error(rc, err, f"{name} must be an integer >= 1 and at most 10,000; got 10001.")
    assert sorted(os.listdir(tmp_path)) == ["wide.zarr"]


def test_a_model_given_as_a_file_url_or_a_pipe_is_read(model_file, store, capsys):
    """fit writes -o file:///m.json; score, predict, plot and info said there was no such model file, and
    info read a pipe as a Zarr store."""
    rc, out, err = run(capsys, "score", f"file://{model_file}", store, "--json")
    assert rc == 0, err
    assert json.loads(out) == json.loads(run(capsys, "score", model_file, store, "--json")[1])
    rc, out, err = run(capsys, "info", f"file://{model_file}")
    assert rc == 0 and "3 components, 2 features" in out, err
    r, w = os.pipe()
    with open(model_file, "rb") as f:
        os.write(w, f.read())
    os.close(w)
    try:
        rc, out, err = run(capsys, "info", f"/dev/fd/{r}")
    finally:
        os.close(r)
    assert rc == 0 and "3 components, 2 features" in out, err


def test_messages_name_the_option_at_fault(store, model_file, tmp_path, capsys):
    rc, _, err = run(capsys, "predict", model_file, store, "-o", "")
    assert_one_line_error(rc, err, "--output is empty")  # was "the data path is empty"
    rc, _, err = run(capsys, "fit", store, "-k", "2", "--max-iter", "-1", "-o", tmp_path / "m.json")
    assert_one_line_error(rc, err, "argument --max-iter: expected a whole number >= 0, got '-1'")
    for bad in ("1.5", "1e-1", "nan", "ten"):
        rc, _, err = run(capsys, "fit", store, "-k", "2", "--max-iter", bad, "-o", tmp_path / "m.json")
        assert_one_line_error(rc, err, f"argument --max-iter: expected a whole number >= 0, got '{bad}'")
    rc, _, err = run(capsys, "fit", store, "-k", "2", "--max-iter", "1e99", "-o", tmp_path / "m.json")
    assert_one_line_error(rc, err, "argument --max-iter: expected a whole number >= 0 at most 2**62 (about 4.6e18), "
                                   "got '1e99'")
    rc, _, err = run(capsys, "fit", store, "-k", "2", "--reg-covar", "1.7e308", "--covariance-type", "spherical",
                     "-o", tmp_path / "m.json")  # the data alone were blamed
    assert_one_line_error(rc, err, "The covariances overflowed: the data (or their sample weights, or --reg-covar")
    tiny = tmp_path / "tiny.zarr"
    generate_mixture(tiny, 5, random_state=0)
    rc, _, err = run(capsys, "select", tiny, "-o", tmp_path / "m.json")  # scikit-learn's 'Expected n_samples >= ...'
    assert_one_line_error(rc, err, "has 5 rows, fewer than the 8 components asked for; pass --n-components up to 5")


def test_labels_resized_make_a_generated_store_damaged(tmp_path, capsys):
    """info said complete, and a rerun of generate said there was nothing to write."""
    path = tmp_path / "g.zarr"
    generate_mixture(path, 2000, chunk_size=500, random_state=0)
    zarr.open_array(path / "labels", mode="r+").resize((2500,))
    rc, out, _ = run(capsys, "info", path)
    assert rc == 0 and "DAMAGED" in out
    rc, _, err = run(capsys, "generate", path, "-n", "2000", "--chunk-size", "500", "--seed", "0")
    assert_one_line_error(rc, err, "its array labels has shape (2500,)", "Pass --overwrite")


def test_a_store_that_lost_its_root_metadata_is_said_so_and_an_overwrite_may_replace_it(tmp_path, capsys):
    """With a generated store's zarr.json deleted, fit said "No Zarr store found ... Check the path"
    and generate --overwrite refused it as "not a Zarr store"; a garbage zarr.json was already judged
    by the nodes it holds. A folder of other stores stays refused, unchanged."""
    data = tmp_path / "data.zarr"
    assert run(capsys, "generate", data, "-n", "1000", "--seed", "1", "-q")[0] == 0
    (data / "zarr.json").unlink()
    kept = snapshot(data)
    lost = "has no Zarr metadata of its own (zarr.json) but holds the Zarr node(s) X, labels, true_covariances"
    assert_one_line_error(*run(capsys, "fit", data, "-k", "3", "-o", tmp_path / "m.json", "-q")[::2], lost)
    assert_one_line_error(*run(capsys, "generate", data, "-n", "1000", "--seed", "1", "-q")[::2], lost,
                          "Pass --overwrite to replace it")
    assert snapshot(data) == kept
    assert run(capsys, "generate", data, "-n", "1000", "--seed", "1", "--overwrite", "-q")[0] == 0
    assert zarr.open_group(str(data), mode="r")["X"].shape == (1000, 2)
    folder = tmp_path / "stores"  # not a store of generate_mixture: never replaced, nor said to be
    zarr.create_array(str(folder / "a.zarr"), shape=(10, 2), dtype="f8")[:] = 1.0
    kept = snapshot(folder)
    rc, _, err = run(capsys, "generate", folder, "-n", "100", "-q")
    assert_one_line_error(rc, err, "holds the Zarr node(s) a.zarr: a store that lost its root metadata, or a folder of stores",
                          "never replaces what it did not write: choose another path")
    assert "--overwrite" not in err
    assert_one_line_error(*run(capsys, "generate", folder, "-n", "100", "--overwrite", "-q")[::2],
                          "holds a.zarr", "remove it yourself")
    (folder / "model.json").write_text("{}")  # a folder of other files too (demo's output): no store at all
    kept = snapshot(folder)
    assert_one_line_error(*run(capsys, "generate", folder, "-n", "100", "-q")[::2], "is not a Zarr store")
    assert_one_line_error(*run(capsys, "fit", folder, "-k", "3", "-o", tmp_path / "m.json", "-q")[::2],
                          "No Zarr store found")
    assert snapshot(folder) == kept


def test_fit_times_quote_the_median_iteration_not_the_first_fits_compilation():
    """A machine's first fit compiles numba's kernels inside its first iteration; the mean then
    said "5 EM iterations at 0.944 s each" of iterations that took 0.005 s."""
    times = cli.FitTimes(6.0, [4.6, 0.005, 0.004, 0.006, 0.005])
    assert times.per_iteration == np.median(times.iterations) == 0.005
    assert str(times).endswith("5 EM iterations at 0.005 s each (median))")
    assert str(cli.FitTimes(1.0, [0.2, 0.4])).endswith("2 EM iterations of 0.200 s and 0.400 s)")


def _read_only_mount():
    """A folder on a read-only file system of this machine (from /proc/mounts), or None."""
    with contextlib.suppress(OSError):
        with open("/proc/mounts") as mounts:
            for line in mounts:
                _, where, _, options, *_ = line.split()
                if "ro" in options.split(",") and os.path.isdir(where) and " " not in where and "\\" not in where:
                    return where
    return None


def test_an_output_on_a_read_only_file_system_is_said_so(store, capsys):
    """It was called 'no permission to write', without advice (root may write in any folder but these)."""
    folder = _read_only_mount()
    if folder is None:
        pytest.skip("no read-only file system is mounted here")
    said = f"the folder {folder!r} is on a read-only file system. Choose a path in a folder you may write."
    rc, _, err = run(capsys, "fit", store, "-k", "2", "-o", os.path.join(folder, "m.json"))
    assert_one_line_error(rc, err, "cannot write the model to", said)
    with pytest.raises(ValueError, match=re.escape(said)):
        GaussianMixture(2, checkpoint=os.path.join(folder, "c.json")).fit(np.zeros((10, 2)))


def test_a_predict_output_larger_than_the_disk_is_refused_after_its_first_chunk(tmp_path):
    """Outputs that would take twice the disk's free space (64 components' probabilities of 1e9 rows
    are 512 GB) filled the disk before failing: the first chunk is written, measured, and the rest
    refused before they are computed, the temporary output removed and nothing left at ``output``."""
    import dask.array as da
    from dask.callbacks import Callback

    free = shutil.disk_usage(tmp_path).free
    width = 2048  # random doubles barely compress under Zstd: 16 KiB a row, chunks of 1,024 rows (16 MiB)
    rows = 2 * free // (width * 8) + 1
    if rows // 1024 > 500_000:  # a disk of more than 8 TB free: too many chunks to graph here
        pytest.skip("the disk is too large to be outgrown")
    result = da.random.default_rng(0).random((rows, width), chunks=(1024, width))

    class AtMostTwoChunks(Callback):  # were the check gone, the disk would fill: stop the tasks early
        started = 0  # of every kind (dask fuses the chunks' draws and writes as it likes): a few for a chunk

        def _pretask(self, key, dsk, state):
            self.started += 1
            assert self.started <= 16, "the chunks went on being computed"

    out = tmp_path / "proba.zarr"
    with AtMostTwoChunks(), pytest.raises(ValueError, match=rf"^the output's other {rows - 1024:,} rows would take "
                                          r"about [\d,]+\.\d [GM]B of disk \(its first 1,024 took [\d,]+ bytes\), and "
                                          r"the disk holding '.*proba.zarr' has [\d,]+\.\d [GM]B free\. Free space, "
                                          r"or write the output to another disk \(--output\)\.$"):
        _outputs.store_atomically(result, str(out), False, {}, dimension_names=None)
    assert os.listdir(tmp_path) == []  # the temporary output removed


def test_a_predict_output_written_in_two_steps_holds_every_row(tmp_path, monkeypatch):
    """Where the disk may not surely hold it, the first chunk is written alone, then the rest."""
    import dask.array as da

    monkeypatch.setattr(_outputs, "surely_fits", lambda result, target: False)
    result = da.arange(1000 * 3, dtype=np.float64).reshape(1000, 3).rechunk((100, 3)) + 1.0
    out = tmp_path / "out.zarr"
    _outputs.store_atomically(result, str(out), False, {}, dimension_names=None)
    np.testing.assert_array_equal(zarr.open_array(str(out), mode="r")[:], result.compute())


def test_a_predict_output_whose_chunk_never_reached_the_store_is_not_published(tmp_path, monkeypatch):
    """A chunk a cluster's worker wrote to a disk of its own (here: a write dropped) is an error, and
    no output is left with it missing (zarr would read it as fill values)."""
    import dask.array as da

    setitem = _outputs._Writes.__setitem__

    def dropping(self, key, value):
        if key[0].start != 100:
            setitem(self, key, value)

    monkeypatch.setattr(_outputs._Writes, "__setitem__", dropping)
    result = da.ones((1000, 3), chunks=(100, 3))
    out = tmp_path / "out.zarr"
    with pytest.raises(ValueError, match=r"1 chunk written for .*out\.zarr is not in the store as this process sees it"):
        _outputs.store_atomically(result, str(out), False, {}, dimension_names=None)
    assert os.listdir(tmp_path) == []


def test_a_model_files_unknown_setting_is_one_warning_line(model_file, tmp_path, capsys):
    """It was a log line, bare on stderr, outside the command line's 'dask-gmm: warning:' format (a review)."""
    d = json.loads(open(model_file).read())
    d["settings"]["colour"] = "teal"
    later = tmp_path / "later.json"
    later.write_text(json.dumps(d))
    rc, out, err = run(capsys, "info", later)
    assert rc == 0 and "3 components" in out
    assert err == ("dask-gmm: warning: Ignoring the setting 'colour' of the model file, unknown to this dask_gmm "
                   "(a later version's?): the model is loaded without it.\n"), err


def test_a_progress_line_drawn_over_a_longer_one_clears_it():
    """dask's ProgressBar draws over its last line with '\\r'; '1.49 s' over '999.21 ms' had left
    '1.49 sms' on a terminal (a review)."""
    import io as _io

    from dask.diagnostics import ProgressBar

    buf = _io.StringIO()
    bar = ProgressBar(out=cli._PaddedLines(buf))
    bar._draw_bar(0.5, 0.99921)
    bar._draw_bar(1.0, 1.49)
    first, second = buf.getvalue().split("\r")[1:]
    assert first.endswith("999.21 ms") and second.rstrip().endswith("| 1.49 s")
    assert len(second) == len(first)  # the last line's two extra characters blanked


def test_tol_0_is_not_told_to_increase_tol(store, tmp_path, capsys):
    """--tol 0 asks for every iteration of --max-iter: its fit never converges, by choice, and had been
    warned to 'increase --max-iter, --tol' (a review). A tol it may reach is still warned of."""
    rc, out, err = run(capsys, "fit", store, "-k", "3", "--seed", "0", "--tol", "0", "--max-iter", "3",
                       "-o", tmp_path / "m.json")
    assert rc == 0 and err == "" and "(NOT converged, tol 0)" in out
    rc, out, err = run(capsys, "info", tmp_path / "m.json")
    assert rc == 0 and "NOT converged (tol 0: every iteration run) after 3 iterations" in out
    rc, out, err = run(capsys, "fit", store, "-k", "3", "--seed", "0", "--tol", "1e-12", "--max-iter", "1",
                       "-o", tmp_path / "m.json")
    assert rc == 0 and "did not converge" in err and "increase --max-iter, --tol" in err
