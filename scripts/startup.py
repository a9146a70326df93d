"""Start-up of the command line: CPU seconds of small `dask-gmm` commands, best of N.

Each command runs as ``python -m dask_gmm ...`` in a fresh process on a store of 1,000 rows and a
model fitted to it (written once into a temporary folder), so nearly all of its time is imports.
CPU seconds (user + system of the child) are steadier than wall time on a shared machine.

    python scripts/startup.py [--repeat 7]
    PYTHONPATH=/path/to/other/checkout python scripts/startup.py   # another version, to compare

Compare versions in turns, in one session: the machine's speed drifts. Not a test: the numbers go
in docs/cli.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile

COMMANDS = {
    "--help": ["--help"],
    "info STORE": ["info", "{store}"],
    "info MODEL.json": ["info", "{model}"],
    "generate (1,000 rows)": ["generate", "{folder}/g.zarr", "-n", "1000", "-d", "2", "-k", "2", "--seed", "1",
                              "--overwrite", "-q"],
    "score MODEL.json STORE": ["score", "{model}", "{store}", "-q"],
}


def run(*args):
    """Run ``python -m dask_gmm args``; its CPU seconds (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "dask_gmm", *args], check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs of each command; the best is printed")
    args = parser.parse_args()
    import dask_gmm  # (the package this Python imports: PYTHONPATH first)

    print(f"dask_gmm from {os.path.dirname(dask_gmm.__file__)}; best of {args.repeat}, CPU seconds")
    with tempfile.TemporaryDirectory() as folder:
        paths = {"folder": folder, "store": f"{folder}/s.zarr", "model": f"{folder}/m.json"}
        run("generate", paths["store"], "-n", "1000", "-d", "2", "-k", "2", "--seed", "0", "-q")
        run("fit", paths["store"], "-k", "2", "--seed", "0", "-o", paths["model"], "-q")
        for name, argv in COMMANDS.items():
            argv = [a.format(**paths) for a in argv]
            best = min(run(*argv) for _ in range(args.repeat))
            print(f"{name:<24} {best:6.2f} s")


if __name__ == "__main__":
    main()
