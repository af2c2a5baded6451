"""isac-sim: the streaming ISAC simulation. Runs the GNU Radio flowgraph (message source ->
precoder -> impaired ULA channel -> reciprocal filter -> OMP receiver, comm receiver ->
metrics) for N frames and prints, per frame, the true targets and the detections (angle in
degrees, range in metres, and for frames of M > 1 OFDM symbols the radial speed in m/s,
positive = approaching) and the SER; at the end p_md, p_fa, GOSPA and SER over all frames (and
the speed RMSE for M > 1).

The threshold is first calibrated to receiver.p_fa on separate calibration frames (or given
with --threshold). --zmq / --zmq-json publish the results while it runs; apps/isac-subscribe
prints them. Scenario keys: --set KEY=VALUE, e.g. moving targets over frames of 16 symbols:
isac-sim --set ofdm.symbols=16 --set 'scene.speed_mps=[-30,30]' (docs/config.md)."""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time

# GNU Radio runs every block in its own thread: one OpenBLAS thread per block, or OpenBLAS's
# idle workers spin in sched_yield against the blocks (docs/performance.md). Set before numpy
# loads OpenBLAS; an explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from ..config_schema import STALL_LIMIT_S
from ..model.geometry import FrameGeometry
from ..model.metrics import gospa
from ..model.scene import positions
from ..transceiver import REFERENCE_METHOD, default_kernel, load_weights, methods
from .common import add_scenario_options, add_transceiver_options, load_plugins, load_scenario, progress_flag


def _targets(angles_deg, ranges_m, speeds_mps=None) -> str:
    """'( -30.00 deg,   50.0 m)' per target, by range; with ``speeds_mps`` (frames of M > 1 OFDM
    symbols) also the radial speed, '( -30.00 deg,   50.0 m,  +12.3 m/s)' (positive = approaching)."""
    angles_deg, ranges_m = np.atleast_1d(angles_deg), np.atleast_1d(ranges_m)
    if len(angles_deg) == 0:
        return "-"
    order = np.argsort(ranges_m)
    if speeds_mps is None:
        return "  ".join(f"({angles_deg[i]:7.2f} deg, {ranges_m[i]:6.1f} m)" for i in order)
    v = np.atleast_1d(speeds_mps)
    return "  ".join(f"({angles_deg[i]:7.2f} deg, {ranges_m[i]:6.1f} m, {v[i]:+6.1f} m/s)" for i in order)


class FramePrinter:
    """Prints one block per frame (called from the flowgraph's metrics block)."""

    def __init__(self, scenario, frames: int, stream=None, progress=None):
        self.rx = scenario.receiver
        self.S = FrameGeometry.of(scenario).symbol_items  # symbols of a frame: S, or M S
        self.moving = FrameGeometry.of(scenario).symbols > 1  # speeds are measured and printed
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()
        self.bar = None
        if progress is not False:
            from tqdm import tqdm

            self.bar = tqdm(total=frames, unit="frame", desc="isac-sim", disable=None, leave=False, file=sys.stderr)

    def __call__(self, frame: int, truth, det, symbol_errors: int | None) -> None:
        """One frame's messages.Truth and messages.Detections, and its symbol errors (None: the comm
        receiver flagged the frame invalid)."""
        t_pos = positions(truth.angle_rad, truth.range_m)
        g = gospa(t_pos, det.positions_m, self.rx["gospa_c_m"], self.rx["gospa_p"], self.rx["gospa_mu"])
        flag = "" if det.valid else "  [frame skipped: invalid input]"
        if symbol_errors is None:
            flag += "  [comm frame skipped: invalid y_c or CSI]"
        ser = "  -   " if symbol_errors is None else f"{symbol_errors / self.S:.4f}"
        with self.lock:
            if self.bar is not None:
                self.bar.clear()
            print(
                f"frame {frame:4d}: {truth.count} targets, {det.count} detected, SER {ser}, GOSPA {g:6.2f} m{flag}",
                file=self.stream,
            )
            tv, dv = (truth.speed_mps, det.speed_mps) if self.moving else (None, None)
            print(f"    truth      {_targets(truth.angle_deg, truth.range_m, tv)}", file=self.stream)
            print(f"    detections {_targets(det.angle_deg, det.range_m, dv)}", file=self.stream, flush=True)
            if self.bar is not None:
                self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def choose_method(scenario, method: str | None, weights: str | None, other_array: bool = False):
    """(method, weights.Weights or None), the weights file read and validated once: --weights
    implies its method; with neither option, the shipped impairment-learning weights when they were
    learned for this scenario, else baseline."""
    from .. import weights as weights_io

    if weights:
        loaded = load_weights(weights, scenario, other_array=other_array)
        if method not in (None, loaded.method):
            raise ValueError(f"--weights holds {loaded.method!r} weights but --method is {method!r}")
        return loaded.method, loaded
    if method is not None:
        return method, None
    default = weights_io.default_weights_path()
    if default:
        try:
            return "impairment", load_weights(default, scenario, "impairment")
        except weights_io.WeightsError as exc:
            print(f"note: shipped weights not used ({exc}); running the baseline", file=sys.stderr)
    return "baseline", None


def _replay(args, scenario, method, transceiver, kernel, weights) -> int:
    """isac-sim --replay DIR: the recording through the reciprocal filter, the receiver and the
    metrics (replay.ReplayFlowgraph); per frame the detections (and the truth when annotated)."""
    from .. import recording
    from ..evaluation import calibrate
    from ..simulation import Simulator

    try:
        info = recording.read(args.replay, "rx", verify=False).info
    except recording.RecordingError as exc:
        print(f"error: --replay: {exc}", file=sys.stderr)
        return 2
    threshold = args.threshold
    same = (info.get("isac:method"), info.get("isac:receiver")) == (method, transceiver.receiver_name)
    if threshold is None and same and info.get("isac:threshold") is not None:
        threshold = float(info["isac:threshold"])
        print(
            f"threshold of the recording (method {method}, receiver {transceiver.receiver_name}): "
            f"delta = {threshold:.6g}"
        )
    elif threshold is None:
        simulator = Simulator(scenario, precoder=transceiver.precoder(scenario))
        threshold = calibrate(scenario, simulator, transceiver.receiver, progress_flag(args))
        print(
            f"threshold calibrated to p_fa = {scenario.receiver['p_fa']:g} on "
            f"{scenario.run['calibration_frames']} simulated frames: delta = {threshold:.6g}"
        )
    from ..replay import ReplayFlowgraph  # GNU Radio is imported only here

    rx = scenario.receiver
    moving = FrameGeometry.of(scenario).symbols > 1  # speeds are measured and printed, as in the live run

    def show(frame, truth, det):
        if args.quiet:
            return
        d = "" if det.valid else "  [frame skipped: invalid input]"
        if truth is None:
            print(f"frame {frame:4d}: {det.count} detected{d}")
        else:
            g = gospa(
                positions(truth.angle_rad, truth.range_m),
                det.positions_m,
                rx["gospa_c_m"],
                rx["gospa_p"],
                rx["gospa_mu"],
            )
            print(f"frame {frame:4d}: {truth.count} targets, {det.count} detected, GOSPA {g:6.2f} m{d}")
            print(f"    truth      {_targets(truth.angle_deg, truth.range_m, truth.speed_mps if moving else None)}")
        print(f"    detections {_targets(det.angle_deg, det.range_m, det.speed_mps if moving else None)}", flush=True)

    try:
        tb = ReplayFlowgraph(
            args.replay,
            scenario,
            threshold,
            method=method,
            weights=weights,
            receiver=args.receiver,
            kernel=kernel,
            temperature=args.temperature,
            frames=args.frames,
            on_frame=show,
        )
    except ValueError as exc:
        print(f"error: --replay: {exc}", file=sys.stderr)
        return 2
    for note in tb.warnings:
        print(f"warning: {note}", file=sys.stderr)
    print(
        f"replay of {args.replay} (scenario {info.get('isac:scenario_hash', '?')}, recorded with method "
        f"{info.get('isac:method', '?')}): method {method}, receiver {transceiver.receiver_name}, kernel {kernel}, "
        f"{FrameGeometry.of(scenario).describe()}, {tb.frames} frames"
        f"{'' if tb.annotated else ', no annotations: detections only'}",
        flush=True,
    )
    tb.run()  # GNU Radio's wait stops the flowgraph on Ctrl-C and returns
    s = tb.summary()
    if tb.annotated:
        print(
            f"over {s['frames']} annotated frames: p_md = {s['p_md']:.4f}, p_fa = {s['p_fa']:.4f}, "
            f"GOSPA = {s['gospa']:.2f} m, angle RMSE = {s['angle_rmse_deg']:.3f} deg, "
            f"range RMSE = {s['range_rmse_m']:.2f} m"
            + (f", speed RMSE = {s['speed_rmse_mps']:.2f} m/s" if moving else "")
            + " (SER: no comm signal recorded)"
        )
    else:
        print(f"{s['replayed']} frames replayed, {sum(d.count for d in tb.detections())} detections")
    if s["replayed"] < tb.frames:  # Ctrl-C: the scores above are those of the frames replayed
        print(f"isac-sim: interrupted after {s['replayed']} of {tb.frames} frames of {args.replay}", file=sys.stderr)
        return 130
    return 0


def main(argv=None) -> int:
    """isac-sim; Ctrl-C ends it with one line and status 130 (no traceback): during the threshold
    calibration nothing was streamed; while streaming, the frames run are reported first."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        phase = INTERRUPTED.get("phase", "")
        print(f"\nisac-sim: interrupted{' ' + phase if phase else ''}", file=sys.stderr, flush=True)
        return 130


#: what isac-sim was doing, for the line a Ctrl-C prints (set by _main)
INTERRUPTED: dict[str, str] = {}


def _main(argv=None) -> int:
    INTERRUPTED.clear()
    load_plugins(argv)  # before the parser: a plug-in's names are valid choices
    parser = argparse.ArgumentParser(
        prog="isac-sim", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=10, help="number of frames to run (default 10)")
    parser.add_argument(
        "--method",
        choices=methods(),
        help="baseline (nominal array), perfect (receiver knows the true array), impairment / "
        "dictionary (learned array at transmitter and receiver, from --weights), nn (NNBL "
        "networks of --weights). Default: impairment with the shipped weights when they were "
        "learned for this scenario, else baseline",
    )
    parser.add_argument("--weights", metavar="W.safetensors", help="weights of isac-train (learned methods)")
    parser.add_argument(
        "--no-compare", action="store_true", help="do not score the baseline on the same frames for comparison"
    )
    parser.add_argument("--threshold", type=float, help="OMP threshold delta (default: calibrated to receiver.p_fa)")
    parser.add_argument(
        "--zmq",
        metavar="ENDPOINT",
        help="publish detections and metrics as serialized PMTs (gr-zeromq), e.g. tcp://127.0.0.1:5555",
    )
    parser.add_argument(
        "--zmq-json",
        metavar="ENDPOINT",
        help="publish detections, truth and metrics as JSON (pyzmq), e.g. tcp://127.0.0.1:5556",
    )
    parser.add_argument("--map-png", metavar="FILE", help="save a picture of one frame's angle-delay map (like Fig. 3)")
    parser.add_argument("--map-frame", type=int, default=0, help="frame shown by --map-png (default 0)")
    parser.add_argument("--quiet", action="store_true", help="print only the final metrics")
    parser.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="CPUs the flowgraph runs on (its block threads are pinned to that many CPUs, and the "
        "receiver estimates its frames on that many worker threads; results do not depend on it). "
        "Default: all CPUs available (%(default)s)",
    )
    parser.add_argument(
        "--record",
        metavar="DIR",
        help="record the received array frames Y_r (with their truth) and the symbols x as SigMF "
        "recordings DIR/rx and DIR/tx (cf32_le, antenna-major; docs/blocks.md)",
    )
    parser.add_argument(
        "--replay",
        metavar="DIR",
        help="instead of simulating, replay the first --frames frames of a recording of --record "
        "through the reciprocal filter, the receiver and the metrics (scored against its "
        "annotations when present); the threshold is the recording's for the same method",
    )
    parser.add_argument(
        "--stall-limit",
        type=float,
        default=STALL_LIMIT_S,
        metavar="SECONDS",
        help="stop with an error when the stream or a message port stands still this long, e.g. a block "
        "that stopped delivering (0 = wait for ever; default %(default)g)",
    )
    add_transceiver_options(parser)
    add_scenario_options(parser)
    args = parser.parse_args(argv)
    if not 0 <= args.stall_limit < math.inf:
        parser.error(
            f"--stall-limit must be a finite number of seconds >= 0 (0 = wait for ever), got {args.stall_limit}"
        )
    if args.frames < 1:
        parser.error(f"--frames must be >= 1, got {args.frames}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.map_frame < 0:
        parser.error(f"--map-frame must be >= 0, got {args.map_frame}")
    from .eval import output_path_error

    if args.map_png and (problem := output_path_error("--map-png", args.map_png)):
        print(f"error: {problem}", file=sys.stderr)  # before minutes of work, not after
        return 2
    if args.replay and (args.record or args.zmq or args.zmq_json or args.map_png):
        parser.error("--replay cannot be combined with --record, --zmq, --zmq-json or --map-png")
    from ..publish import validate_endpoint

    for flag, endpoint in (("--zmq", args.zmq), ("--zmq-json", args.zmq_json)):
        if endpoint is not None:
            try:
                validate_endpoint(endpoint, flag)
            except ValueError as exc:
                parser.error(str(exc))
    if args.record and (problem := output_path_error("--record", args.record, folder=True)):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    scenario = load_scenario(args, streaming=True)  # its flowgraph's buffers counted (--replay: a subset)
    if not args.temperature > 0:
        parser.error(f"--temperature must be > 0, got {args.temperature}")
    kernel = args.kernel or default_kernel(scenario)
    from ..evaluation import calibrate, evaluate
    from ..simulation import Simulator
    from ..transceiver import build

    try:
        method, weights = choose_method(scenario, args.method, args.weights, args.weights_other_array)
        transceiver = build(scenario, method, weights, args.receiver, kernel, args.temperature)
    except ValueError as exc:  # WeightsError included: a one-line reason
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if weights is not None:
        print(f"weights: {weights.source}")
    if args.replay:
        return _replay(args, scenario, method, transceiver, kernel, weights)
    threshold = args.threshold
    if threshold is None:
        INTERRUPTED["phase"] = (
            f"during the threshold calibration ({scenario.run['calibration_frames']} frames): no frame was "
            f"streamed (--threshold DELTA skips the calibration)"
        )
        simulator = Simulator(scenario, precoder=transceiver.precoder(scenario))
        threshold = calibrate(scenario, simulator, transceiver.receiver, progress_flag(args))
        INTERRUPTED.clear()
        print(
            f"threshold calibrated to p_fa = {scenario.receiver['p_fa']:g} on "
            f"{scenario.run['calibration_frames']} frames: delta = {threshold:.6g}"
        )
    print(
        f"method {method}, receiver {transceiver.receiver_name}, kernel {kernel}, "
        f"{FrameGeometry.of(scenario).describe()}, "
        f"spacing std = {scenario.array['spacing_std_m'] * 1e3:g} mm, scenario {scenario.hash()}",
        flush=True,
    )

    from ..flowgraph import SimFlowgraph  # GNU Radio is imported only here

    printer = None if args.quiet else FramePrinter(scenario, args.frames, progress=progress_flag(args))
    try:
        tb = SimFlowgraph(
            scenario,
            args.frames,
            threshold,
            method=method,
            weights=weights,
            receiver=args.receiver,
            kernel=kernel,
            temperature=args.temperature,
            on_frame=printer,
            zmq_pmt=args.zmq,
            zmq_json=args.zmq_json,
            record=args.record,
            threads=args.threads,
            stall_limit_s=args.stall_limit,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for pub in tb.publishers:  # the bound endpoint: with port 0, the only way to learn the port
        print(f"publishing {pub.fmt} on {pub.endpoint}", file=sys.stderr, flush=True)
    from ..flowgraph import FlowgraphError

    t0 = time.perf_counter()
    try:
        tb.run()
    except FlowgraphError as exc:  # a block gave up (e.g. every frame failing): one line, non-zero exit
        if printer is not None:
            printer.close()
        print(f"error: the flowgraph stopped: {exc}", file=sys.stderr)
        return 1
    finally:
        tb.close()
    seconds = time.perf_counter() - t0
    if printer is not None:
        printer.close()
    s = tb.summary()
    run = tb.frames_run  # fewer than --frames when Ctrl-C stopped the flowgraph (GNU Radio's wait stops it)
    interrupted = run < args.frames
    done = f"interrupted after {run} of {args.frames}" if interrupted else f"{run}"
    print(f"flowgraph: {done} frames in {seconds:.2f} s ({run / seconds:.1f} frames/s)")
    for sink in tb.recorders:
        print(f"recorded {sink.frames} frames to {sink.meta_path} (+ .sigmf-data)")
    print(
        f"over {s['frames']} frames: p_md = {s['p_md']:.4f}, p_fa = {s['p_fa']:.4f}, GOSPA = {s['gospa']:.2f} m, "
        f"SER = {s['ser']:.4g}, angle RMSE = {s['angle_rmse_deg']:.3f} deg, range RMSE = {s['range_rmse_m']:.2f} m"
        + (f", speed RMSE = {s['speed_rmse_mps']:.2f} m/s" if FrameGeometry.of(scenario).symbols > 1 else "")
        + (
            f" ({s['skipped_comm_frames']} comm frames not scored: invalid y_c or CSI)"
            if s["skipped_comm_frames"]
            else ""
        )
    )
    if interrupted:
        skipped = [
            what
            for what, wanted in (
                ("the baseline comparison", method != REFERENCE_METHOD and not args.no_compare),
                ("--map-png", bool(args.map_png)),
            )
            if wanted
        ]
        print(
            f"isac-sim: interrupted after {run} of {args.frames} frames"
            + (f" ({' and '.join(skipped)} skipped)" if skipped else ""),
            file=sys.stderr,
            flush=True,
        )
        return 130
    INTERRUPTED["phase"] = "after the stream, during the baseline comparison or the map"
    if method != REFERENCE_METHOD and not args.no_compare:
        b = evaluate(
            scenario.with_overrides({"run.frames": args.frames}),
            REFERENCE_METHOD,
            receiver=args.receiver,
            kernel=kernel,
            temperature=args.temperature,
            progress=progress_flag(args),
        )
        print(
            f"baseline (nominal array, own threshold) on the same frames: p_md = {b['p_md']:.4f}, "
            f"p_fa = {b['p_fa']:.4f}, GOSPA = {b['gospa']:.2f} m, SER = {b['ser']:.4g}"
        )
    if args.map_png:
        from ..plots import save_frame_map

        try:
            save_frame_map(args.map_png, scenario, args.map_frame, threshold, method, weights)
        except ValueError as exc:
            print(f"error: --map-png: {exc}", file=sys.stderr)
            return 2
        print(f"angle-delay map of frame {args.map_frame} saved to {args.map_png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
