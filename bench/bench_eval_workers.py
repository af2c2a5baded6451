#!/usr/bin/env python3
"""Benchmark of isac-eval on Dask workers (not a test): the wall time of one experiment on 1
worker (in process, no Dask) and on N local worker processes, in one run, and whether the
CSVs are the same.

    .venv/bin/python bench/bench_eval_workers.py --experiment fig9 --size paper --workers 1,2 \\
        --rounds 2 [--weights data/weights/impairment_default.safetensors] [--out DIR]

Each round runs ``isac-eval --experiment NAME --size SIZE --workers N --fresh --no-progress``
once per N, in the order given (so machine load hits every candidate alike), each into its own
folder, as a separate process: the wall time includes starting Python, the local cluster and
its workers, and writing the files. The speed-up of N workers is taken round by round against
the first candidate of the same round (paired ratios; this VM's wall clock moves between
identical runs, which a ratio of medians hides). Each CSV is compared byte for byte with the
first one. The load average (1 min) is printed before and after each run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", default="fig9")
    p.add_argument("--size", default="paper", choices=("quick", "default", "paper"))
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts, the first is the reference")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--weights", help="--weights of isac-eval (fig8 / fig9)")
    p.add_argument("--out", help="folder for the runs' files (default: a temporary folder, removed)")
    args = p.parse_args()
    try:
        args.workers = [int(w) for w in args.workers.split(",")]
    except ValueError:
        p.error(f"--workers must be comma-separated integers >= 1, got {args.workers!r}")
    if not args.workers or min(args.workers) < 1:
        p.error(f"--workers must be comma-separated integers >= 1, got {args.workers}")
    if args.rounds < 1:
        p.error(f"--rounds must be >= 1, got {args.rounds}")
    return args


def isac_eval() -> str:
    here = Path(sys.executable).parent / "isac-eval"
    return str(here) if here.is_file() else "isac-eval"


def run_once(args, workers: int, folder: Path) -> float:
    cmd = [isac_eval(), "--experiment", args.experiment, "--size", args.size, "--out", str(folder)]
    cmd += ["--workers", str(workers), "--fresh", "--no-progress"]
    if args.weights:
        cmd += ["--weights", args.weights]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed


def main() -> int:
    args = parse()
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_eval_workers_"))
    name = args.experiment
    print(
        f"isac-eval --experiment {name} --size {args.size}, workers {args.workers}, {args.rounds} round(s), "
        f"{os.cpu_count()} CPUs"
    )
    times = {w: [] for w in args.workers}
    ratios = {w: [] for w in args.workers[1:]}
    reference_csv, identical = None, True
    try:
        for r in range(args.rounds):
            for w in args.workers:
                folder = root / f"round{r}-workers{w}"
                load = os.getloadavg()[0]
                seconds = run_once(args, w, folder)
                times[w].append(seconds)
                csv = (folder / f"{name}.csv").read_bytes()
                if reference_csv is None:
                    reference_csv = csv
                same = csv == reference_csv
                identical &= same
                print(
                    f"round {r + 1}: --workers {w}: {seconds:7.1f} s  (load {load:.2f} -> {os.getloadavg()[0]:.2f}), "
                    f"CSV {'identical' if same else 'DIFFERENT'}",
                    flush=True,
                )
            for w in args.workers[1:]:
                ratios[w].append(times[args.workers[0]][r] / times[w][r])
        base = args.workers[0]
        for w in args.workers[1:]:
            rs = ratios[w]
            print(
                f"speed-up of {w} workers over {base}: paired ratios {', '.join(f'{x:.2f}' for x in rs)}; "
                f"median {statistics.median(rs):.2f}, min {min(rs):.2f}, max {max(rs):.2f}"
            )
        print(f"CSVs: {'all identical' if identical else 'NOT all identical'}")
    finally:
        if not args.out:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
