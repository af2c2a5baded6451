"""isac-sim: run the ISAC system frame by frame on a scenario and print, per frame, the
true targets and the detections (angle in degrees, range in metres) and the SER; at the
end p_md, p_fa and GOSPA over all frames.

The threshold is first calibrated to receiver.p_fa on separate calibration frames (or
given with --threshold)."""
from __future__ import annotations

import argparse
import sys

import numpy as np

from ..evaluation import METHODS, Scores, calibrate, omp_dictionaries, receiver_array, sense
from ..model.metrics import symbol_error_rate
from ..model.ofdm import ml_detect
from ..simulation import Simulator
from .common import add_scenario_options, load_scenario, progress_flag


def _targets(angles_rad, ranges_m) -> str:
    if len(angles_rad) == 0:
        return "-"
    order = np.argsort(ranges_m)
    return "  ".join(f"({np.rad2deg(angles_rad[i]):7.2f} deg, {ranges_m[i]:6.1f} m)" for i in order)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="isac-sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=10, help="number of frames to run (default 10)")
    parser.add_argument("--method", choices=METHODS, default="baseline", help="sensing receiver (default baseline)")
    parser.add_argument("--threshold", type=float, help="OMP threshold delta (default: calibrated to receiver.p_fa)")
    add_scenario_options(parser)
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error(f"--frames must be >= 1, got {args.frames}")
    scenario = load_scenario(args)
    sim = Simulator(scenario)
    dictionaries = omp_dictionaries(scenario, receiver_array(scenario, args.method))
    T = scenario.scene["max_targets"]
    threshold = args.threshold
    if threshold is None:
        threshold = calibrate(scenario, sim, dictionaries, progress_flag(args))
        print(f"threshold calibrated to p_fa = {scenario.receiver['p_fa']:g} on "
              f"{scenario.run['calibration_frames']} frames: delta = {threshold:.6g}")
    rx = scenario.receiver
    scores = Scores(T, rx["gospa_c_m"], rx["gospa_p"], rx["gospa_mu"])
    print(f"method {args.method}, K = {scenario.array['antennas']}, S = {scenario.ofdm['subcarriers']}, "
          f"spacing std = {scenario.array['spacing_std_m'] * 1e3:g} mm, scenario {scenario.hash()}")
    for i in range(args.frames):
        frames = sim.frames(i, 1)
        result = sense(frames, dictionaries, T)
        detected = ml_detect(frames.y_comm, frames.csi)
        scores.add(frames, result, threshold, detected)
        scene, det = frames.scenes[0], result.detections(0, threshold)
        print(f"frame {i:4d}: {scene.count} targets, {len(det['angle_rad'])} detected, "
              f"SER {symbol_error_rate(frames.messages, detected):.4f}, GOSPA {scores.gospa[-1]:6.2f} m")
        print(f"    truth      {_targets(scene.angles_rad, scene.ranges_m)}")
        print(f"    detections {_targets(det['angle_rad'], det['range_m'])}")
    s = scores.summary()
    print(f"over {s['frames']} frames: p_md = {s['p_md']:.4f}, p_fa = {s['p_fa']:.4f}, GOSPA = {s['gospa']:.2f} m, "
          f"SER = {s['ser']:.4g}, angle RMSE = {s['angle_rmse_deg']:.3f} deg, range RMSE = {s['range_rmse_m']:.2f} m")
    return 0


if __name__ == "__main__":
    sys.exit(main())
