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

from .common import add_scenario_options, load_scenario, progress_flag


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isac-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--method",
        choices=("impairment", "dictionary", "nn"),
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


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    scenario = load_scenario(args)
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        print(f"error: isac-train needs torch ({exc}); run bash tools/setup.sh", file=sys.stderr)
        return 2
    from ..trainer.train import TrainOptions, train

    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    from ..trainer import distributed
    from ..trainer.harness import CheckpointError

    if args.method == "nn" and args.dictionary_points is not None:
        parser.error("--dictionary-points applies to --method dictionary only")
    if args.method == "nn" and distributed.from_environment().enabled:
        parser.error("--method nn is not data parallel: start it without torchrun")
    if args.method == "nn":
        return _train_nn(args, scenario, parser)
    if args.limited or args.map_points or args.patience is not None or args.plateau_window is not None:
        parser.error("--limited, --map-points, --patience and --plateau-window apply to --method nn only")
    try:
        options = TrainOptions.from_profile(
            "quick" if args.quick else "paper",
            method=args.method,
            iterations=args.iterations,
            batch=args.batch,
            lr=args.lr,
            lr_final=args.lr_final,
            seed=args.seed,
            temperature=args.temperature,
            temperature_final=args.temperature_final,
            parameterisation=args.parameterisation,
            loss=args.loss,
            eta_phi=args.eta_phi,
            sector_restricted=False if args.no_sector_argmax else None,
            curriculum_steps=args.curriculum_steps,
            val_every=args.val_every,
            val_frames=args.val_frames,
            checkpoint_every=args.checkpoint_every,
            dictionary_points=args.dictionary_points,
        )
    except ValueError as exc:
        parser.error(str(exc))
    if options.loss == "mse" and scenario.scene["max_targets"] != 1:
        print("note: --loss mse trains single-target frames (T = 1)", file=sys.stderr)
    try:  # under torchrun: join the process group, one device per rank (docs/trainer.md)
        dist = distributed.init(distributed.from_environment(), args.device)
        summary = train(
            scenario,
            options,
            args.out,
            device=distributed.rank_device(dist, args.device),
            resume=args.resume,
            progress=progress_flag(args),
            dist=dist,
        )
    except CheckpointError as exc:  # --resume names an unusable file: a usage error
        print(f"error: --resume {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        distributed.shutdown()
    if not dist.is_main:
        return 0
    first, last = summary["first"], summary["last"]
    print(
        f"trained {summary['steps']} steps in {summary['elapsed_s']:.1f} s: coherence {first['coherence']:.4f} -> "
        f"{last['coherence']:.4f}, validation loss {first['val_loss']:.2f} -> {last['val_loss']:.2f}"
    )
    if options.method == "impairment":
        print(
            f"spacing error ||d^ - d|| {first['spacing_error_m'] * 1e3:.3f} -> {last['spacing_error_m'] * 1e3:.3f} mm, "
            f"rms position error (offset removed) {first['position_rms_m'] * 1e3:.3f} -> "
            f"{last['position_rms_m'] * 1e3:.3f} mm"
        )
        if "element_error" in last:  # element models (array gain / phase errors, coupling, dead elements)
            from ..model.impairments import learned_models

            print(
                f"learned array models {', '.join(learned_models(scenario))}: element error of C diag(g) "
                f"(relative, common complex scale removed) {first['element_error']:.3f} -> "
                f"{last['element_error']:.3f}"
            )
    if options.method == "dictionary":
        print(
            f"learned {summary['parameters']} complex dictionary entries ({scenario.array['antennas']} x "
            f"{summary['parameters'] // scenario.array['antennas']} grid angles)"
        )
    print("wrote " + ", ".join(summary["paths"][k] for k in ("weights", "csv", "png", "ckpt")))
    return 0


def _train_nn(args, scenario, parser) -> int:
    """isac-train --method nn [--limited]: the two-step NNBL training (trainer/nnbl_train.py).
    --iterations is per step; --lr sets the position step's lr; options of the model-based
    methods that do not apply are refused."""
    from ..trainer.harness import CheckpointError
    from ..trainer.nnbl_train import NnOptions, train_nn

    unused = [
        name
        for name in (
            "lr_final",
            "temperature",
            "temperature_final",
            "parameterisation",
            "loss",
            "curriculum_steps",
            "dictionary_points",
        )
        if getattr(args, name, None) is not None
    ]
    if args.no_sector_argmax:
        unused.append("no_sector_argmax")
    if unused:
        parser.error("--method nn does not use --" + ", --".join(u.replace("_", "-") for u in unused))
    try:
        options = NnOptions.from_profile(
            "quick" if args.quick else "paper",
            iterations=args.iterations,
            batch=args.batch,
            lr_position=args.lr,
            seed=args.seed,
            eta_phi=args.eta_phi,
            val_every=args.val_every,
            val_frames=args.val_frames,
            checkpoint_every=args.checkpoint_every,
            patience=args.patience,
            plateau_window=args.plateau_window,
            limited=args.limited,
            n_theta=(args.map_points or (None, None))[0],
            n_tau=(args.map_points or (None, None))[1],
        )
        summary = train_nn(
            scenario, options, args.out, device=args.device, resume=args.resume, progress=progress_flag(args)
        )
    except CheckpointError as exc:
        print(f"error: --resume {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    first, mid, last = summary["first"], summary["after_position"], summary["last"]
    print(
        f"NNBL ({'limited' if options.limited else 'full'}, {summary['parameters']['total']} parameters): "
        f"{summary['steps']} steps in {summary['elapsed_s']:.1f} s; validation GOSPA (18) "
        f"{first['val_position']:.2f} -> {mid['val_position']:.2f} m (step 1), BCE-GOSPA (19) "
        f"{mid['val_detection']:.3f} -> {last['val_detection']:.3f} (step 2)"
    )
    print("wrote " + ", ".join(summary["paths"][k] for k in ("weights", "csv", "png", "ckpt")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
