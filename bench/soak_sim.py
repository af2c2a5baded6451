#!/usr/bin/env python3
"""Soak benchmark (not a test): speed and memory of a long streaming run, to show that both
stay flat (frames/s and resident memory within a few per cent from frame 1,000 to the end).

    .venv/bin/python bench/soak_sim.py [--frames 200000] [--mode flowgraph|metrics]
        [--set key=value ...] [--config F] [--method baseline] [--threshold D] [--zmq-json EP]
        [--window 500] [--every 10000] [--csv FILE]

--mode flowgraph (default): the isac-sim flowgraph (gnuradio.isac.flowgraph.SimFlowgraph:
message source -> precoder -> ULA channel -> reciprocal filter -> OMP receiver, comm receiver
-> metrics) of the scenario (--config / --set, as isac-sim), the threshold calibrated to
receiver.p_fa as isac-sim does unless --threshold is given; --zmq-json also publishes every
frame's truth, detections and running metrics (the publisher path reads the metrics summary
once per frame).

--mode metrics: the metrics block alone, fed random frames (0..T_max true targets and
detections, angles in the target sector, ranges in [10, 190] m) as truth / detections
messages by a pass-through block on the stream of true messages: the scoring path without
the physics, many times faster.

A line is printed at frame 1,000, 2,000, 5,000, then every --every frames and at the end:
the frame, frames/s over the last --window frames, the resident set size (VmRSS of
/proc/self/status, MiB) and the running p_md / GOSPA. The last lines compare the end with
frame 1,000 (per cent change of frames/s and RSS).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import numpy as np


def rss_mib() -> float:
    """Resident set size of this process (MiB), from /proc/self/status."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def checkpoints(frames: int, every: int) -> list[int]:
    marks = {c for c in (1000, 2000, 5000) if c <= frames} | set(range(every, frames + 1, every)) | {frames}
    return sorted(marks)


class Probe:
    """Called once per scored frame (the metrics block's on_frame): records the time at the
    start of each window and prints a line at each checkpoint."""

    def __init__(self, frames: int, every: int, window: int, summary, csv_path: str | None = None):
        self.marks = checkpoints(frames, every)
        self.window = window
        self.starts = {max(c - window, 0) for c in self.marks}
        self.summary = summary
        self.rows: list[tuple[int, float, float]] = []
        self.last = (0, None)  # (frame, time) of the previous line
        self.count = 0
        self.t0 = time.perf_counter()
        self.times: dict[int, float] = {0: self.t0}
        self.csv = open(csv_path, "w") if csv_path else None
        if self.csv:
            self.csv.write("frame,frames_per_s,frames_per_s_since_last,rss_mib,elapsed_s\n")
        print(
            f"{'frame':>8s} {'frames/s':>9s} {'since last':>10s} {'RSS MiB':>8s} {'elapsed s':>9s}  running metrics",
            flush=True,
        )

    def __call__(self, *args) -> None:
        now = time.perf_counter()
        self.count += 1
        n = self.count
        if n in self.starts:
            self.times[n] = now
        if n in self.marks:
            start = max(n - self.window, 0)
            rate = (n - start) / (now - self.times[start])
            prev, t_prev = self.last
            since = (n - prev) / (now - t_prev) if t_prev is not None else float("nan")
            self.last = (n, now)
            rss = rss_mib()
            self.rows.append((n, rate, rss, since))
            s = self.summary()
            print(
                f"{n:8d} {rate:9.1f} {since:10.1f} {rss:8.1f} {now - self.t0:9.1f}  p_md {s['p_md']:.4f}  "
                f"GOSPA {s['gospa']:.2f} m  SER {s['ser']:.3g}",
                flush=True,
            )
            if self.csv:
                self.csv.write(f"{n},{rate:.3f},{since:.3f},{rss:.2f},{now - self.t0:.2f}\n")
                self.csv.flush()

    def report(self) -> None:
        if self.csv:
            self.csv.close()
        first = next((r for r in self.rows if r[0] >= 1000), None)
        last = self.rows[-1] if self.rows else None
        if first is None or last is None or last[0] == first[0]:
            print("too few frames for a comparison with frame 1,000")
            return
        print(f"frame {first[0]:,}: {first[1]:.1f} frames/s, RSS {first[2]:.1f} MiB")
        print(
            f"frame {last[0]:,}: {last[1]:.1f} frames/s ({100 * (last[1] / first[1] - 1):+.1f} %), "
            f"RSS {last[2]:.1f} MiB ({100 * (last[2] / first[2] - 1):+.1f} %, "
            f"{(last[2] - first[2]) * 2**20 / (last[0] - first[0]):+.1f} B per frame)"
        )
        later = [r for r in self.rows if r[0] > 1000]
        rates = np.array([r[1] for r in self.rows if r[0] >= 1000])
        print(
            f"frames/s over {self.window} frames from frame 1,000 on: min {rates.min():.1f}, "
            f"median {np.median(rates):.1f}, max {rates.max():.1f}"
        )
        if len(later) >= 2:  # between lines: longer spans, less noise from the machine's load
            a, b = later[0], later[-1]
            print(
                f"frames/s between lines: {a[3]:.1f} up to frame {a[0]:,}, {b[3]:.1f} up to frame {b[0]:,} "
                f"({100 * (b[3] / a[3] - 1):+.1f} %)"
            )


def run_flowgraph(args, scenario) -> Probe:
    from gnuradio.isac.evaluation import calibrate
    from gnuradio.isac.flowgraph import SimFlowgraph
    from gnuradio.isac.simulation import Simulator
    from gnuradio.isac.transceiver import build

    t = build(scenario, args.method, None, "omp", None)
    threshold = args.threshold
    if threshold is None:
        threshold = calibrate(scenario, Simulator(scenario, precoder=t.precoder(scenario)), t.receiver, False)
    print(
        f"method {args.method}, threshold {threshold:.6g}, K = {scenario.array['antennas']}, "
        f"S = {scenario.ofdm['subcarriers']}, grid {scenario.receiver['angle_grid']} x "
        f"{scenario.receiver['delay_grid']}, T_max = {scenario.scene['max_targets']}, "
        f"scenario {scenario.hash()}",
        flush=True,
    )
    tb = SimFlowgraph(
        scenario, args.frames, threshold, method=args.method, zmq_json=args.zmq_json, threads=args.threads
    )
    probe = Probe(args.frames, args.every, args.window, tb.summary, args.csv)
    tb.on_frame = probe
    try:
        tb.run()
    finally:
        tb.close()
    return probe


def run_metrics(args, scenario) -> Probe:
    import pmt
    from gnuradio import blocks, gr

    from gnuradio.isac import metrics

    S, T = scenario.ofdm["subcarriers"], scenario.scene["max_targets"]
    lo, hi = np.deg2rad(scenario.scene["target_sector_deg"])

    class Feeder(gr.sync_block):
        """Passes the true messages (vlen S) through and publishes each frame's random truth and
        detections (the detections near the truth, some missed, some false)."""

        def __init__(self):
            gr.sync_block.__init__(self, name="soak_feeder", in_sig=[(np.int32, S)], out_sig=[(np.int32, S)])
            self.rng = np.random.default_rng(scenario.run["seed"])
            for port in ("truth", "detections"):
                self.message_port_register_out(pmt.intern(port))

        def work(self, input_items, output_items):
            start, n = self.nitems_read(0), len(input_items[0])
            for i in range(n):
                t, e = self.rng.integers(0, T + 1, 2)
                ta, tr = self.rng.uniform(lo, hi, t), self.rng.uniform(10.0, 190.0, t)
                ea, er = self.rng.uniform(lo, hi, e), self.rng.uniform(10.0, 190.0, e)
                k = min(t, e)
                ea[:k], er[:k] = ta[:k] + self.rng.normal(0, 0.01, k), tr[:k] + self.rng.normal(0, 2.0, k)
                for port, a, r in (("truth", ta, tr), ("detections", ea, er)):
                    msg = {
                        "frame": start + i,
                        "count": int(len(a)),
                        "angle_deg": np.rad2deg(a).tolist(),
                        "range_m": r.tolist(),
                    }
                    self.message_port_pub(pmt.intern(port), pmt.to_pmt(msg))
            output_items[0][:] = input_items[0]
            return n

    print(f"metrics block alone, S = {S}, T_max = {T}, random frames", flush=True)
    tb = gr.top_block()
    met = metrics(scenario, log_every=0)
    feeder = Feeder()
    m = np.zeros(S * 1024, np.int32)
    tb.connect(blocks.vector_source_i(m.tolist(), True, S), blocks.head(4 * S, args.frames), feeder, (met, 0))
    tb.connect(blocks.vector_source_i(m.tolist(), True, S), blocks.head(4 * S, args.frames), (met, 1))
    tb.msg_connect(feeder, "truth", met, "truth")
    tb.msg_connect(feeder, "detections", met, "detections")
    probe = Probe(args.frames, args.every, args.window, met.summary, args.csv)
    met.on_frame = probe
    tb.run()
    return probe


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=200_000)
    p.add_argument("--mode", choices=("flowgraph", "metrics"), default="flowgraph")
    p.add_argument("--method", default="baseline", help="flowgraph mode: baseline or perfect (no weights)")
    p.add_argument("--threshold", type=float, help="flowgraph mode: OMP threshold (default: calibrated)")
    p.add_argument("--zmq-json", metavar="ENDPOINT", help="flowgraph mode: also publish JSON (pyzmq) here")
    p.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="flowgraph mode: CPUs and receiver workers, as isac-sim --threads (default: all, %(default)s)",
    )
    p.add_argument("--window", type=int, default=500, help="frames/s over this many frames (default 500)")
    p.add_argument("--every", type=int, default=10_000, help="a line every this many frames (default 10000)")
    p.add_argument("--csv", metavar="FILE", help="also write the lines as CSV")
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    if args.frames < 1000 or args.window < 1 or args.every < 1 or args.window > 1000 or args.threads < 1:
        p.error("need --frames >= 1000, --every >= 1, 1 <= --window <= 1000 and --threads >= 1")
    from gnuradio.isac.config import Scenario

    scenario = Scenario.load(args.config, args.overrides)
    print(
        f"soak: {args.frames:,} frames, mode {args.mode}, pid {os.getpid()}, "
        f"{threading.active_count()} threads, --threads {args.threads}, overrides {args.overrides or 'none'}",
        flush=True,
    )
    t0 = time.perf_counter()
    probe = (run_flowgraph if args.mode == "flowgraph" else run_metrics)(args, scenario)
    print(f"{probe.count:,} frames in {time.perf_counter() - t0:.1f} s")
    probe.report()
    return 0 if probe.count == args.frames else 1


if __name__ == "__main__":
    sys.exit(main())
