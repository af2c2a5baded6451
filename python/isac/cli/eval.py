"""isac-eval: calibrate the detection threshold to receiver.p_fa and score a method.

    isac-eval --method baseline|perfect [--config F] [--set k=v ...] --json OUT
"""
from __future__ import annotations

import argparse
import json
import sys

from ..evaluation import KERNELS, METHODS, RECEIVERS, evaluate
from ..model.domp import DEFAULT_TEMPERATURE
from .common import add_scenario_options, load_scenario, progress_flag

KEYS = ("p_md", "p_fa", "gospa", "ser", "angle_rmse_deg", "range_rmse_m", "threshold", "frames")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="isac-eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=METHODS, default="baseline",
                        help="baseline: receiver assumes the nominal array; perfect: it knows the true array")
    parser.add_argument("--receiver", choices=RECEIVERS, default="omp",
                        help="sensing estimator: omp (Algorithm 1) or domp (differentiable-OMP inference, Sec. IV-B)")
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE,
                        help=f"dOMP softmax temperature (default {DEFAULT_TEMPERATURE})")
    parser.add_argument("--kernel", choices=KERNELS, default="numpy",
                        help="numpy (the reference model, default) or cpp (the C++ kernels, same results)")
    parser.add_argument("--json", metavar="OUT", help="write the metrics to this JSON file")
    add_scenario_options(parser)
    args = parser.parse_args(argv)
    if not args.temperature > 0:
        parser.error(f"--temperature must be > 0, got {args.temperature}")
    scenario = load_scenario(args)
    result = evaluate(scenario, args.method, progress=progress_flag(args), receiver=args.receiver,
                      kernel=args.kernel, temperature=args.temperature)
    out = {k: result[k] for k in KEYS}
    out.update(method=args.method, receiver=args.receiver, scenario_hash=scenario.hash(),
               calibration_frames=scenario.run["calibration_frames"])
    for key in KEYS:
        print(f"{key:>16s}  {out[key]:.6g}" if isinstance(out[key], float) else f"{key:>16s}  {out[key]}")
    if args.json:
        # strict JSON: a metric that is undefined (e.g. RMSE with no matched pair) is null
        strict = {k: (None if isinstance(v, float) and v != v else v) for k, v in out.items()}
        with open(args.json, "w") as fh:
            json.dump(strict, fh, indent=2, allow_nan=False)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
