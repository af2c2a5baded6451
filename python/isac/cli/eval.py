"""isac-eval: calibrate the detection threshold to receiver.p_fa and score a method, or run
one of the paper's experiments (CSV + PNG + JSON summary into a folder).

    isac-eval --method baseline|perfect [--config F] [--set k=v ...] --json OUT
    isac-eval --experiment fig3|fig7|fig8|fig9|fig5|fig6|crb|impairments|doppler --out DIR [--size quick|default|paper]
              [--weights W | --weights-dir D] [--device cuda] [--fresh] [--config F] [--set k=v ...]
    ... [--workers N | --scheduler tcp://HOST:8786]

Experiments are resumable: finished units (sweep points, curves) are kept in OUT/.partial/ and
a rerun of the same command continues an interrupted run with the same result.

The work runs on a local Dask cluster of --workers processes (default: every CPU), or on the
workers of a Dask scheduler (--scheduler); --workers 1 runs it in this process, without Dask.
An experiment's units are Dask tasks (the same files, bit for bit); --method splits its
calibration and test frames into chunks. A scheduler port runs whatever code it is sent: keep
it on the loopback or a private network, or use tls:// (docs/results.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile

from ..cluster import ClusterError, check_scheduler_address, default_workers
from ..tasks import SerialRunner, UnitsFailed
from ..transceiver import load_weights, methods
from .common import add_scenario_options, add_transceiver_options, load_plugins, load_scenario, progress_flag

KEYS = ("p_md", "p_fa", "gospa", "ser", "angle_rmse_deg", "range_rmse_m", "threshold", "frames")


def output_path_error(option: str, path: str, folder: bool = False) -> str | None:
    """Why the output ``path`` of ``option`` cannot be written, as one line naming both, or None
    when it can: checked before any work starts. A file: its folder must exist and take a new
    file (an existing file is opened for appending, so left unchanged; a file created by the
    check is removed again). With ``folder``: the folder is created when missing and must take
    a new file."""
    reason = None
    if folder:
        if os.path.lexists(path) and not os.path.isdir(path):
            reason = "exists and is not a folder"
        else:
            try:
                os.makedirs(path, exist_ok=True)
                with tempfile.TemporaryFile(dir=path):
                    pass
            except OSError as exc:
                reason = exc.strerror or str(exc)
    elif os.path.isdir(path):
        reason = "is a folder"
    else:
        existed = os.path.lexists(path)
        try:
            with open(path, "a"):
                pass
            if not existed:
                os.remove(path)
        except OSError as exc:
            reason = exc.strerror or str(exc)
    return None if reason is None else f"{option} {path}: cannot write there ({reason})"


def _check_outputs(*outputs) -> int:
    """0, or 2 after printing the first unwritable (option, path, folder) of ``outputs``."""
    for option, path, folder in outputs:
        problem = output_path_error(option, path, folder) if path else None
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    return 0


def main(argv=None) -> int:
    load_plugins(argv)  # before the parser: a plug-in's names are valid choices
    parser = argparse.ArgumentParser(
        prog="isac-eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--method",
        choices=methods(),
        default="baseline",
        help="baseline: receiver assumes the nominal array; perfect: it knows the true array; "
        "impairment / dictionary: transmitter and receiver use the learned array (--weights); "
        "nn: the NNBL networks of --weights",
    )
    parser.add_argument(
        "--weights",
        metavar="W.safetensors",
        help="weights of isac-train for --method impairment|dictionary, or the impairment-learning "
        "curve of --experiment fig8|fig9|doppler (default: the shipped weights; at --size paper a "
        "paper-profile training)",
    )
    parser.add_argument(
        "--weights-dir",
        metavar="DIR",
        help="with --experiment fig5|fig6: folder of weights files impairment.safetensors, "
        "dictionary.safetensors, dictionary_limited.safetensors, nn.safetensors, "
        "nn_limited.safetensors; with --experiment impairments: its per-configuration impairment "
        "weights (docs/results.md). Missing ones: cached in OUT/weights-SIZE or trained with the "
        "--size's profile",
    )
    parser.add_argument("--json", metavar="OUT", help="write the metrics to this JSON file")
    from ..experiments import EXPERIMENTS, SIZES

    parser.add_argument(
        "--experiment",
        choices=tuple(EXPERIMENTS),
        help="run an experiment instead: " + "; ".join(f"{k}: {v[3]}" for k, v in EXPERIMENTS.items()),
    )
    parser.add_argument("--out", metavar="DIR", help="with --experiment: folder for NAME.csv, NAME.png, NAME.json")
    parser.add_argument("--quick", action="store_true", help="with --experiment: the same as --size quick")
    parser.add_argument(
        "--size",
        choices=SIZES,
        default=None,
        help="with --experiment: quick (seconds on 2 cores: tests, previews), default (the CPU runs "
        "of docs/results.md: minutes), paper (large Monte Carlo runs; missing weights are "
        "trained with the paper's batch and iterations: a GPU job, see --device)",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="with --experiment: torch device of any on-the-fly training (cpu, cuda, cuda:1); "
        "evaluation itself runs on the CPU kernels",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="with --experiment: recompute every unit instead of reusing those an earlier run of "
        "the same command left in OUT/.partial/",
    )
    parser.add_argument(
        "--workers",
        type=_worker_count,
        metavar="N",
        help="compute on N worker processes, a local Dask cluster listening on 127.0.0.1 only "
        f"(default: every CPU of this machine, {default_workers()} here); 1: in this process, one "
        "unit after another on one core (one BLAS thread, as on each worker), without Dask",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="compute on the workers of a running Dask scheduler: tcp://HOST:PORT, or tls://HOST:PORT "
        "with Dask's TLS configuration (distributed.comm.tls.*). Whoever can reach a scheduler runs "
        "code on its workers and in this client: docs/results.md",
    )
    add_transceiver_options(parser)
    add_scenario_options(parser)
    args = parser.parse_args(argv)
    if not args.temperature > 0:
        parser.error(f"--temperature must be > 0, got {args.temperature}")
    if args.scheduler is not None:
        if args.workers is not None:
            parser.error("--workers and --scheduler exclude each other: a scheduler's cluster has its own workers")
        try:
            check_scheduler_address(args.scheduler)
        except ValueError as exc:
            parser.error(str(exc))
    if args.experiment:
        return run_experiment(parser, args, argv)
    if args.out:
        parser.error("--out needs --experiment")
    if args.weights_dir:
        parser.error("--weights-dir needs --experiment fig5|fig6")
    for flag, given in (
        ("--quick", args.quick),
        ("--size", args.size),
        ("--fresh", args.fresh),
        ("--device", args.device != "cpu"),
    ):
        if given:
            parser.error(f"{flag} needs --experiment")
    scenario = load_scenario(args)
    if _check_worker_memory(scenario, args.receiver, args) or _check_outputs(("--json", args.json, False)):
        return 2
    from ..evaluation import evaluate

    try:
        weights = (
            None
            if not args.weights
            else load_weights(args.weights, scenario, args.method, other_array=args.weights_other_array)
        )
        with make_runner(args) as runner:
            result = evaluate(
                scenario,
                args.method,
                weights,
                receiver=args.receiver,
                kernel=args.kernel,
                temperature=args.temperature,
                progress=progress_flag(args),
                runner=None if isinstance(runner, SerialRunner) else runner,
            )
    except ValueError as exc:  # a missing, unfitting or unreadable weights file (WeightsError): one line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except UnitsFailed as exc:
        print(
            f"error: {len(exc.failures)} of {exc.total} frame chunks failed (each said above); no metrics",
            file=sys.stderr,
        )
        return 1
    keys = KEYS if scenario.get("ofdm.symbols") == 1 else KEYS[:6] + ("speed_rmse_mps",) + KEYS[6:]
    out = {k: result[k] for k in keys}
    out.update(
        method=args.method,
        receiver=result["receiver"],
        scenario_hash=scenario.hash(),
        calibration_frames=scenario.run["calibration_frames"],
    )
    for key in keys:
        print(f"{key:>16s}  {out[key]:.6g}" if isinstance(out[key], float) else f"{key:>16s}  {out[key]}")
    if args.json:
        # strict JSON: a metric that is undefined (e.g. RMSE with no matched pair) is null
        strict = {k: (None if isinstance(v, float) and v != v else v) for k, v in out.items()}
        with open(args.json, "w") as fh:
            json.dump(strict, fh, indent=2, allow_nan=False)
            fh.write("\n")
    return 0


def run_experiment(parser: argparse.ArgumentParser, args: argparse.Namespace, argv) -> int:
    """--experiment NAME: build its scenario, run it, print where the files are."""
    from ..config import ConfigError
    from ..experiments import ExperimentError, experiment_scenario, run
    from ..experiments.common import write_json
    from ..resources import check_memory

    if not args.out:
        parser.error("--experiment needs --out DIR")
    if args.quick and args.size not in (None, "quick"):
        parser.error(f"--quick is --size quick; it contradicts --size {args.size}")
    size = "quick" if args.quick else (args.size or "default")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print(f"error: --device {args.device} but torch sees no CUDA device (use --device cpu)", file=sys.stderr)
            return 2
    try:
        scenario = experiment_scenario(args.experiment, args.config, args.overrides, size=size)
        check_memory(scenario, args.receiver)  # refused up front, as load_scenario does for the other apps
    except (ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if _check_worker_memory(scenario, args.receiver, args) or _check_outputs(
        ("--out", args.out, True), ("--json", args.json, False)
    ):
        return 2
    command = "isac-eval " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    partial = f"{args.out}/.partial/{args.experiment}/"
    try:
        with make_runner(args) as runner:
            summary = run(
                args.experiment,
                scenario,
                args.out,
                kernel=args.kernel,
                progress=progress_flag(args),
                weights=args.weights,
                command=command,
                temperature=args.temperature,
                weights_dir=args.weights_dir,
                size=size,
                device=args.device,
                fresh=args.fresh,
                weights_other_array=args.weights_other_array,
                runner=runner,
            )
    except (ExperimentError, ClusterError, _weights_error()) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except UnitsFailed as exc:
        print(
            f"error: {len(exc.failures)} of {exc.total} units failed (each said above); the finished units are "
            f"kept in {partial}: run the same command again to compute the missing ones",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: the finished units are kept in {partial}; run the same command again to continue",
            file=sys.stderr,
        )
        return 130
    resumed = summary["resume"]["units_reused"]
    print(
        f"{args.experiment}: {summary['seconds']:.1f} s, wrote {', '.join(summary['files'])} into {args.out}"
        + (
            f" ({resumed} of {resumed + summary['resume']['units_computed']} units from an earlier run)"
            if resumed
            else ""
        )
    )
    if args.json:
        write_json(args.json, summary)
    return 0


def _worker_count(text: str) -> int:
    """--workers: an integer >= 1 (argparse's type: a clear error otherwise)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or str(value) != text.strip():
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def make_runner(args: argparse.Namespace):
    """The runner of the work: tasks.SerialRunner for --workers 1 (no Dask is imported), else a
    cluster.DaskRunner on --workers local processes (default: every CPU) or --scheduler."""
    progress = progress_flag(args)
    if args.scheduler is None and (args.workers or default_workers()) == 1:
        return SerialRunner(progress)
    from ..cluster import DaskRunner  # imports Dask when it first computes something

    return DaskRunner(args.workers, args.scheduler, progress)


def _check_worker_memory(scenario, receiver: str, args: argparse.Namespace) -> int:
    """0, or 2 after saying why: N local workers hold a batch each at once, so the scenario
    must fit in 1/N of the memory available (resources.check_memory; a scheduler's workers
    check their own memory before each unit)."""
    from ..resources import ResourceError, available_memory_bytes, check_memory

    workers = 1 if args.scheduler else (args.workers or default_workers())
    available = available_memory_bytes()
    if workers == 1 or available is None:
        return 0
    try:
        check_memory(scenario, receiver, available // workers)
    except ResourceError as exc:
        print(f"error: {exc} (the share of one of {workers} local workers: or lower --workers)", file=sys.stderr)
        return 2
    return 0


def _weights_error():
    """weights.WeightsError (a weights file that does not fit), or nothing to catch."""
    try:
        from ..weights import WeightsError
    except ImportError:
        return ()
    return WeightsError


if __name__ == "__main__":
    sys.exit(main())
