"""isac-train: learn the impaired array end to end (Sec. IV) and write safetensors weights.

    isac-train --method impairment|dictionary [--config F] [--set k=v ...] [--quick]
               [--device cpu|cuda] [--resume CKPT] --out W.safetensors

Impairment learning learns the parameters of every array impairment model the scenario turns on
(spacings; element gain and phase errors, mutual coupling, dead elements: docs/model.md).
Writes W.safetensors (the weights, see docs/trainer.md), W.csv (loss and validation log),
W.png (loss curve) and W.ckpt.safetensors (checkpoint for --resume); --method nn [--limited] trains
the NNBL baseline of Appendix A in two steps (the same files; W.png shows both steps). The default profile is
paper-scale (B = 1500, 25,000 steps: a GPU job); --quick is a CPU profile of a few minutes.
Data parallel on several GPUs / nodes: start it under torchrun (docs/trainer.md), e.g.
    torchrun --standalone --nproc_per_node=4 -m gnuradio.isac.cli.train --device cuda --out W.safetensors
"""

from __future__ import annotations

import argparse
import sys

from .common import add_scenario_options, load_plugins, load_scenario, progress_flag


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isac-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    from ..transceiver import learned_methods

    parser.add_argument(
        "--method",
        choices=learned_methods(),
        default="impairment",
        help="impairment: learn the K spacings d (and the parameters of the array models the "
        "scenario turns on: gain / phase errors, coupling, dead elements); dictionary: learn the "
        "K x 720 steering dictionary; nn: the NNBL baseline of Appendix A (precoder MLP + receiver CNNs, "
        "two-step training)",
    )
    parser.add_argument(
        "--limited",
        action="store_true",
        help="--method nn: the complexity-limited networks of Appendix A-B (about 10.5 k parameters)",
    )
    parser.add_argument(
        "--map-points",
        type=int,
        nargs=2,
        metavar=("N_THETA", "N_TAU"),
        help="--method nn: angle x delay points of the receiver's input map (paper 320 128, quick 64 64)",
    )
    parser.add_argument("--out", metavar="W.safetensors", required=True, help="weights file to write")
    parser.add_argument(
        "--quick", action="store_true", help="small CPU profile (B=32, 1000 steps, about 2 minutes on 2 cores)"
    )
    parser.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda")
    parser.add_argument(
        "--resume",
        metavar="CKPT",
        help="continue from a checkpoint (W.ckpt.safetensors); a file that is "
        "not a checkpoint of this run stops with exit status 2",
    )
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (default: torch's choice; 1 is faster on a busy machine)"
    )
    g = parser.add_argument_group("training options (default: the profile's)")
    g.add_argument("--iterations", type=int, help="Adam steps (paper 25000, quick 1000)")
    g.add_argument("--batch", type=int, help="frames per step (paper 1500, quick 32)")
    g.add_argument("--lr", type=float, help="Adam learning rate (impairment: in units of lambda/2; see docs)")
    g.add_argument("--lr-final", type=float, help="decay the lr geometrically to this value at the last step")
    g.add_argument("--seed", type=int, default=0, help="training seed (batches, validation set)")
    g.add_argument("--temperature", type=float, help="softmax temperature of dOMP on the normalised map (0.1)")
    g.add_argument("--temperature-final", type=float, help="anneal the temperature geometrically to this value")
    g.add_argument(
        "--parameterisation",
        choices=("spacing", "position"),
        help="impairment learning: learn d/(lambda/2) (spacing, default) or positions/(lambda/2)",
    )
    g.add_argument("--loss", choices=("gospa", "mse"), help="gospa (18) (default) or mse (single target)")
    g.add_argument(
        "--eta-phi",
        choices=("sweep", "fixed"),
        help="ISAC trade-off per frame: sweep of Sec. V-C (default) or the scenario's eta/phi",
    )
    g.add_argument(
        "--no-sector-argmax",
        action="store_true",
        help="do not restrict the dOMP argmax to the a-priori sector (for comparison)",
    )
    g.add_argument(
        "--curriculum-steps",
        type=int,
        help="grow the theta_mean range from +-5 deg to +-60 deg over N steps (0: off; "
        "default: paper 10000, quick 600)",
    )
    g.add_argument("--val-every", type=int, help="validate every N steps")
    g.add_argument("--val-frames", type=int, help="validation frames")
    g.add_argument("--checkpoint-every", type=int, help="checkpoint every N steps")
    g.add_argument(
        "--patience",
        type=int,
        metavar="STEPS",
        help="--method nn: halve the lr after this many steps without a better mean training loss "
        "(paper 10000, quick 100)",
    )
    g.add_argument(
        "--plateau-window",
        type=int,
        metavar="STEPS",
        help="--method nn: steps averaged per observation of the lr scheduler (paper 500, quick 25)",
    )
    g.add_argument(
        "--dictionary-points",
        type=int,
        metavar="N",
        help="dictionary learning: learn the K x N dictionary on an N-point grid over [-90, 90] deg "
        "(complexity-limited, paper N = 156; default: transmitter.beam_grid, 720)",
    )
    add_scenario_options(parser)
    return parser


#: training options of the parser (argparse dest -> the name the methods take)
TRAINING_FLAGS = {
    "iterations": "iterations",
    "batch": "batch",
    "lr": "lr",
    "lr_final": "lr_final",
    "seed": "seed",
    "temperature": "temperature",
    "temperature_final": "temperature_final",
    "parameterisation": "parameterisation",
    "loss": "loss",
    "eta_phi": "eta_phi",
    "no_sector_argmax": "sector_restricted",
    "curriculum_steps": "curriculum_steps",
    "val_every": "val_every",
    "val_frames": "val_frames",
    "checkpoint_every": "checkpoint_every",
    "patience": "patience",
    "plateau_window": "plateau_window",
    "limited": "limited",
    "map_points": "map_points",
    "dictionary_points": "dictionary_points",
}


def given_flags(args: argparse.Namespace) -> dict:
    """The training options given on the command line (method flag name -> value)."""
    out = {}
    for dest, flag in TRAINING_FLAGS.items():
        value = getattr(args, dest, None)
        if dest in ("no_sector_argmax", "limited"):
            if value:
                out[flag] = False if dest == "no_sector_argmax" else True
        elif value is not None:
            out[flag] = value
    return out


def main(argv=None) -> int:
    load_plugins(argv)  # before the parser: a plug-in's names are valid choices
    parser = build_parser()
    args = parser.parse_args(argv)
    scenario = load_scenario(args)
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        print(f"error: isac-train needs torch ({exc}); run bash tools/setup.sh", file=sys.stderr)
        return 2
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    from .. import transceiver
    from ..trainer import distributed, for_method
    from ..trainer.harness import CheckpointError

    method = transceiver.get(args.method)
    flags = given_flags(args)
    unused = [dest for dest, flag in TRAINING_FLAGS.items() if flag in flags and flag not in method.train_flags]
    if unused:
        parser.error(f"--method {args.method} does not use --" + ", --".join(u.replace("_", "-") for u in unused))
    parallel = distributed.from_environment().enabled
    if parallel and not method.data_parallel:
        parser.error(f"--method {args.method} is not data parallel: start it without torchrun")
    try:
        trainer = for_method(method)  # the method's own training module
        options = trainer.training_options(method, "quick" if args.quick else "paper", **flags)
    except ValueError as exc:
        parser.error(str(exc))
    if getattr(options, "loss", None) == "mse" and scenario.scene["max_targets"] != 1:
        print("note: --loss mse trains single-target frames (T = 1)", file=sys.stderr)
    dist = distributed.SINGLE
    try:
        if method.data_parallel:  # under torchrun: join the process group, one device per rank (docs/trainer.md)
            dist = distributed.init(distributed.from_environment(), args.device)
        kwargs = {"dist": dist} if method.data_parallel else {}
        summary = trainer.train(
            scenario,
            options,
            args.out,
            device=distributed.rank_device(dist, args.device),
            resume=args.resume,
            progress=progress_flag(args),
            **kwargs,
        )
    except CheckpointError as exc:  # --resume names an unusable file: a usage error
        print(f"error: --resume {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if method.data_parallel:
            distributed.shutdown()
    if not dist.is_main:
        return 0
    for line in method.training_report(summary, scenario, options):
        print(line)
    print("wrote " + ", ".join(summary["paths"][k] for k in ("weights", "csv", "png", "ckpt")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
