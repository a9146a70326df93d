"""The scripts in examples/ run end to end (small sizes) and say what they promise."""

import os
import subprocess
import sys

import pytest

from .conftest import console_script, path_with_this_python

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def _run(args, cwd):
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PATH=path_with_this_python()))  # workflow.sh's dask-gmm
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _scaled(script, tmp_path, old, new):
    """A copy of ``script`` with ``old`` replaced by ``new``, as its comments invite."""
    text = open(os.path.join(EXAMPLES, script)).read()
    assert text.count(old) == 1
    copy = tmp_path / f"scaled-{script}"
    copy.write_text(text.replace(old, new))
    return str(copy)


def test_python_workflow(tmp_path):
    """Run again, in the same folder, after a run with other n_samples (the fit's checkpoint of it
    was refused: 'belongs to a different fit')."""
    pytest.importorskip("matplotlib")
    _run([sys.executable, _scaled("workflow.py", tmp_path, "n_samples=200_000", "n_samples=100_000"), "w"], tmp_path)
    out = _run([sys.executable, os.path.join(EXAMPLES, "workflow.py"), "w"], tmp_path)
    assert "agreement with the true labels: 100.0000%" in out
    assert {"fit.png", "fit-density.png", "fit-loglik.png", "model.json"} <= set(os.listdir(tmp_path / "w"))


@pytest.mark.skipif(console_script("dask-gmm") is None, reason="the dask-gmm command is not installed")
def test_shell_workflow(tmp_path):
    """Run again, in the same folder, after a run with other --n-samples (as for workflow.py)."""
    pytest.importorskip("matplotlib")
    _run(["bash", _scaled("workflow.sh", tmp_path, "--n-samples 200_000", "--n-samples 100_000"), "w"], tmp_path)
    out = _run(["bash", os.path.join(EXAMPLES, "workflow.sh"), "w"], tmp_path)
    assert '"n_samples": 200000' in out
    assert "labels agree on 100.00% of rows" in out  # score --truth: well separated, every row as true
    assert {"fit.png", "model.json", "labels.zarr"} <= set(os.listdir(tmp_path / "w"))


def test_seed_notebook_example(tmp_path):
    pytest.importorskip("matplotlib")
    out = _run([sys.executable, os.path.join(EXAMPLES, "seed_notebook.py"), "--n-samples", "20000", "--trials", "2",
                "--output-dir", "sn"], tmp_path)
    assert "k-means|| start 2/2" in out  # the default start finds the true components every time


@pytest.mark.parametrize("script, args, message", [
    ("seed_notebook.py", ["--trials", "0"], "--trials: expected at least 1, got 0"),
    ("seed_notebook.py", ["--n-samples", "5"], "--n-samples: expected at least 30, got 5"),
    ("seed_notebook.py", ["--output-dir", ""], "--output-dir must not be empty"),
    ("workflow.py", [""], "WORKDIR must not be empty"),
])
def test_examples_refuse_bad_arguments_in_one_line(script, args, message, tmp_path):
    """Usage errors, before any work: before, a TypeError after all the fits, or FileNotFoundError."""
    done = subprocess.run([sys.executable, os.path.join(EXAMPLES, script), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert os.listdir(tmp_path) == []
