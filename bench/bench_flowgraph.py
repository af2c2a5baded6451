#!/usr/bin/env python3
"""Benchmark of isac-sim's streaming flowgraph (not a test): frames/s of the flowgraph against
the bare receiver kernel and the offline evaluation, on the same frames, in one run.

    .venv/bin/python bench/bench_flowgraph.py [--frames 500] [--rounds 3] [--configs baseline:omp,...]

Candidates, per configuration (method:receiver; learned methods use the shipped weights or
--weights), interleaved round by round so that machine load hits all of them alike:

  kernel      the method's sensing receiver (transceiver.build, kernel "cpp") on the frames' reciprocal-filtered Y~
              (made beforehand, untimed), in chunks of --chunk frames, on 1 CPU
  offline     evaluation.score on the same test frames (numpy channel, reciprocal filter, the same
              receiver, ML detection, Scores), on 1 CPU
  flowgraph N flowgraph.SimFlowgraph (what isac-sim runs, without the per-frame printing) with
              threads=N: its block threads on N CPUs, the receiver's chunks of frames on N
              worker threads, GIL switch interval flowgraph.GIL_SWITCH_INTERVAL_S; N = each
              of --threads

frames/s is the median over the rounds of frames / wall time (flowgraph: tb.run(), without
construction). The paired ratios (flowgraph / kernel, flowgraph NT / flowgraph 1T) are taken
round by round from the runs of the same round and shown with their spread: this VM's wall
clock moves +-7 % between identical runs, which a ratio of medians hides. CPU ms/frame: the
median CPU time of the candidate's threads per frame (what the candidate costs whatever else
runs on the machine; its ratio to the kernel's is the 1-CPU efficiency on an idle core).
Per-block shares: CPU time of each GNU Radio block thread (GNU Radio names its threads after
the blocks; /proc/self/task/<tid>/schedstat, sampled every 50 ms by a thread that is not
counted), ms per frame, summed over the rounds. Each flowgraph run's metrics are checked
against the offline scores (same frames, same threshold). The load average (1 min) is printed
before and after.

OpenBLAS runs one thread (OPENBLAS_NUM_THREADS=1 before numpy is imported), as in isac-sim.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as isac-sim does

import contextlib  # noqa: E402
import functools  # noqa: E402
import inspect  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=500, help="test frames per run (default 500)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument(
        "--configs",
        default="baseline:omp,baseline:domp,impairment:omp,impairment:domp",
        help="comma-separated method:receiver pairs",
    )
    p.add_argument("--threads", default="1,2", help="flowgraph thread counts (default 1,2)")
    p.add_argument("--weights", help="weights file for learned methods (default: the shipped ones)")
    p.add_argument("--chunk", type=int, default=32, help="frames per kernel call of the bare kernel (default 32)")
    p.add_argument(
        "--calibration-frames",
        type=int,
        default=200,
        help="calibration frames for each configuration's threshold (default 200)",
    )
    p.add_argument("--no-offline", action="store_true", help="skip the offline candidate")
    p.add_argument(
        "--work-calls",
        action="store_true",
        help="also count each block's work calls and time the CPU inside work and the metrics block's "
        "message handlers (wraps those methods: adds a little per call)",
    )
    return p.parse_args(argv)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def paired_ratio_keys(keys: list[str]) -> list[tuple[str, str, str]]:
    """(label, candidate, reference) of the issue's two ratios, frames/s of the candidate over
    the reference's: every flowgraph against the kernel, and every multi-thread flowgraph
    against the 1-thread one (those present among ``keys``)."""
    out = [(f"{k} / kernel", k, "kernel") for k in keys if k.startswith("flowgraph") and "kernel" in keys]
    if "flowgraph 1T" in keys:
        out += [
            (f"{k} / flowgraph 1T", k, "flowgraph 1T")
            for k in keys
            if k.startswith("flowgraph") and k != "flowgraph 1T"
        ]
    return out


def loadavg() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


@contextlib.contextmanager
def pinned(ncpu: int):
    """Run the calling thread (and the threads it starts) on the first ``ncpu`` CPUs it may use."""
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, sorted(old)[:ncpu])
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


class ClassPatches:
    """Methods replaced on classes until :meth:`restore`: ``wrap(cls, name, make)`` sets
    ``cls.name = make(original)`` (GNU Radio's gateway looks the methods up by name, so the
    wrappers take effect on blocks built meanwhile); restore puts back the class's own method,
    or removes the wrapper of an inherited one."""

    def __init__(self):
        self._saved = []

    def wrap(self, cls, name: str, make) -> None:
        self._saved.append((cls, name, cls.__dict__.get(name)))
        setattr(cls, name, functools.wraps(getattr(cls, name))(make(getattr(cls, name))))

    def restore(self) -> None:
        for cls, name, own in reversed(self._saved):
            if own is None:
                delattr(cls, name)
            else:
                setattr(cls, name, own)
        self._saved = []


class WorkCalls:
    """Per block class and method (``work``, the metrics block's ``handle_truth`` /
    ``handle_detections``): calls, frames (work's return value; 1 per handler call) and the CPU
    time of the calling thread inside the method, by wrapping the methods on the classes while
    a flowgraph is built and run (GNU Radio's gateway looks them up by name, so the wrappers
    keep the names). The rest of a block thread's CPU is GNU Radio's scheduler, its Python
    gateway and the waits for the GIL."""

    METHODS = ("work", "handle_truth", "handle_detections")

    def __init__(self, classes):
        self.classes, self.stats, self._patches = classes, {}, ClassPatches()

    def __enter__(self):
        for cls in self.classes:
            for meth in self.METHODS:
                if meth in cls.__dict__:  # the block's own methods only
                    self._patches.wrap(cls, meth, lambda f, b=cls.__name__, m=meth: self._timed(b, m, f))
        return self

    def __exit__(self, *exc):
        self._patches.restore()

    def _timed(self, block: str, meth: str, f):
        stats = self.stats.setdefault((block, meth), [0, 0, 0.0])  # calls, frames, CPU s

        def timed(obj, *args):
            c0 = time.thread_time()
            r = f(obj, *args)
            stats[2] += time.thread_time() - c0
            stats[0] += 1
            stats[1] += max(int(r), 0) if meth == "work" else 1
            return r

        return timed


class ThreadCpu:
    """CPU time (s) of this process's threads by name, sampled from /proc every ``period`` s while
    running and once more as each block of ``classes`` stops (``stop`` runs in the block's thread,
    before the receiver ends its worker threads), so that a thread's last CPU time is not lost
    when it ends between two samples (a thread that ended keeps its last sample)."""

    def __init__(self, period: float = 0.05, classes=()):
        self.period, self.last, self._stop, self._own = period, {}, threading.Event(), None
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._classes, self._patches = classes, ClassPatches()

    def sample(self) -> None:
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/comm") as f:
                    name = f.read().strip()
                with open(f"/proc/self/task/{tid}/schedstat") as f:
                    ns = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            # samples from several threads may land out of order: CPU time only grows
            self.last[tid] = (name, max(ns, self.last.get(tid, (name, 0))[1]))

    def _loop(self) -> None:
        self._own = str(threading.get_native_id())  # the sampling thread is not measured
        while not self._stop.wait(self.period):
            self.sample()

    def _sampling_stop(self, stop):
        def sampled(obj, *args):
            self.sample()
            return stop(obj, *args)

        return sampled

    def __enter__(self):
        for cls in self._classes:
            self._patches.wrap(cls, "stop", self._sampling_stop)
        self.sample()
        self.first = dict(self.last)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.sample()
        self._patches.restore()

    def by_name(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for tid, (name, ns) in self.last.items():
            if tid == self._own:
                continue
            ns0 = self.first.get(tid, (name, 0))[1] if tid in self.first else 0
            out[name] = out.get(name, 0.0) + (ns - ns0) * 1e-9
        return out


def main(argv=None) -> int:
    args = parse(argv)
    import numpy as np

    from gnuradio.isac import transceiver
    from gnuradio.isac import weights as weights_io
    from gnuradio.isac.config import Scenario
    from gnuradio.isac.evaluation import calibrate, score
    from gnuradio.isac.flowgraph import SimFlowgraph
    from gnuradio.isac.model.geometry import FrameGeometry
    from gnuradio.isac.model.reciprocal import reciprocal_filter
    from gnuradio.isac.simulation import Simulator

    N = args.frames
    threads = [int(t) for t in args.threads.split(",") if t]
    fg_takes_threads = "threads" in inspect.signature(SimFlowgraph.__init__).parameters
    base = Scenario.default().with_overrides({"run.frames": N, "run.calibration_frames": args.calibration_frames})
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} CPUs (this process may use {len(os.sched_getaffinity(0))}), "
        f"python {platform.python_version()}, numpy {np.__version__}"
    )
    print(
        f"frames per run: {N}, rounds: {args.rounds}, kernel chunk: {args.chunk}, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}"
    )
    loads = [loadavg()]
    print(f"load average (1 min) at start: {loads[0]:.2f}", flush=True)

    configs = []
    for item in args.configs.split(","):
        method, _, receiver = item.partition(":")
        receiver = receiver or "omp"
        w = None
        if transceiver.get(method).learned:
            path = args.weights or weights_io.default_weights_path()
            w = transceiver.load_weights(path, base, method)
        t = transceiver.build(base, method, w, receiver, "cpp")
        sim = Simulator(base, precoder=t.precoder(base))
        threshold = calibrate(base, sim, t.receiver, False)
        frames = sim.frames(0, N, "test")
        y = reciprocal_filter(frames.y_sensing, frames.symbols)
        configs.append(
            dict(
                name=f"{method}:{receiver}",
                method=method,
                receiver=receiver,
                weights=w,
                t=t,
                sim=sim,
                threshold=threshold,
                y=y,
            )
        )

    def run_kernel(cfg):
        rx = cfg["t"].receiver
        with pinned(1):
            t0, c0 = time.perf_counter(), time.thread_time()
            for start in range(0, N, args.chunk):
                rx(cfg["y"][start : start + args.chunk])
            return time.perf_counter() - t0, None, {"(main thread)": time.thread_time() - c0}

    def run_offline(cfg):
        with pinned(1):
            t0, c0 = time.perf_counter(), time.thread_time()
            s = score(base, cfg["sim"], cfg["t"].receiver, [cfg["threshold"]], False)[0]
            return time.perf_counter() - t0, s.summary(), {"(main thread)": time.thread_time() - c0}

    from gnuradio.isac import blocks as isac_blocks

    block_classes = [
        isac_blocks.message_source,
        isac_blocks.precoder,
        isac_blocks.ula_channel,
        isac_blocks.reciprocal_filter,
        isac_blocks.omp_receiver,
        isac_blocks.comm_receiver,
        isac_blocks.metrics,
    ]
    calls = {}  # (config, candidate) -> {(block class, method): [calls, frames, CPU s]} over the rounds

    def run_flowgraph(cfg, n):
        if not args.work_calls:
            return run_flowgraph_timed(cfg, n)
        with WorkCalls(block_classes) as wc:
            out = run_flowgraph_timed(cfg, n)
        acc = calls.setdefault((cfg["name"], f"flowgraph {n}T"), {})
        for key, st in wc.stats.items():
            a = acc.setdefault(key, [0, 0, 0.0])
            for i in range(3):
                a[i] += st[i]
        return out

    def run_flowgraph_timed(cfg, n):
        kw = {"threads": n} if fg_takes_threads else {}
        tb = SimFlowgraph(
            base,
            N,
            cfg["threshold"],
            method=cfg["method"],
            weights=cfg["weights"],
            receiver=cfg["receiver"],
            kernel="cpp",
            **kw,
        )
        # GNU Radio names a block's thread after the block (cut to 15 characters): the first 9
        # characters tell the blocks of this flowgraph apart
        names = {
            b.name()[:9]: b.name()
            for b in (tb.source, tb.precoder, tb.channel, tb.reciprocal, tb.receiver, tb.comm, tb.metrics)
        }
        with ThreadCpu(classes=block_classes) as cpu, pinned(n):  # the sampling thread is not pinned with the flowgraph
            t0 = time.perf_counter()
            tb.run()
            dt = time.perf_counter() - t0
        per = {}
        for name, sec in cpu.by_name().items():
            key = names.get(name[:9], f"other: {name}")
            per[key] = per.get(key, 0.0) + sec
        return dt, tb.summary(), per

    candidates = [("kernel", run_kernel)]
    if not args.no_offline:
        candidates.append(("offline", run_offline))
    candidates += [(f"flowgraph {n}T", lambda cfg, n=n: run_flowgraph(cfg, n)) for n in threads]
    times = {(c["name"], k): [] for c in configs for k, _ in candidates}
    cpu = {(c["name"], k): [] for c in configs for k, _ in candidates}
    blocks = {(c["name"], k): {} for c in configs for k, _ in candidates}
    mismatches = []
    for r in range(args.rounds):
        for cfg in configs:
            ref = None
            for key, fn in candidates:
                dt, summary, per = fn(cfg)
                times[(cfg["name"], key)].append(dt)
                cpu[(cfg["name"], key)].append(sum(per.values()))
                if key == "offline":
                    ref = summary
                if key.startswith("flowgraph"):
                    acc = blocks[(cfg["name"], key)]
                    for name, sec in per.items():
                        acc[name] = acc.get(name, 0.0) + sec
                if summary is not None and ref is not None and key != "offline":
                    for m in ("p_md", "p_fa", "gospa", "ser"):
                        a, b = summary[m], ref[m]
                        if not (a == b or abs(a - b) <= 1e-9 * max(1.0, abs(b)) or (a != a and b != b)):
                            mismatches.append(f"{cfg['name']} {key} round {r}: {m} {a} != offline {b}")
        loads.append(loadavg())
        print(f"round {r + 1}/{args.rounds} done, load average {loads[-1]:.2f}", flush=True)

    print()
    M = FrameGeometry.of(base).symbols  # OFDM symbols per frame: the costs per symbol are per frame / M
    print(f"OFDM symbols per frame: {M}")
    print(
        "| config | candidate | frames/s | vs kernel | vs flowgraph 1T | CPU ms/frame | CPU ms/symbol | "
        "frames per CPU-s vs kernel |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for cfg in configs:
        rate = {k: N / statistics.median(times[(cfg["name"], k)]) for k, _ in candidates}
        cms = {k: 1e3 * statistics.median(cpu[(cfg["name"], k)]) / N for k, _ in candidates}
        one = rate.get("flowgraph 1T")
        for k, _ in candidates:
            vs1 = f"{rate[k] / one:.2f}x" if one and k.startswith("flowgraph") else ""
            print(
                f"| {cfg['name']} | {k} | {rate[k]:.0f} | {rate[k] / rate['kernel']:.2f} | {vs1} | "
                f"{cms[k]:.3f} | {cms[k] / M:.3f} | {cms['kernel'] / cms[k]:.2f} |"
            )
    print()
    print(
        "Paired ratios, round by round (each ratio from two runs of the same round, minutes apart at most, "
        "so that slow drifts of the machine cancel): min / median / max over the rounds"
    )
    print("| config | ratio | min | median | max | per round |")
    print("|---|---|---|---|---|---|")
    for cfg in configs:
        for label, num, den in paired_ratio_keys([k for k, _ in candidates]):
            r = [b / a for a, b in zip(times[(cfg["name"], num)], times[(cfg["name"], den)])]
            print(
                f"| {cfg['name']} | {label} | {min(r):.2f} | {statistics.median(r):.2f} | {max(r):.2f} | "
                f"{', '.join(f'{v:.2f}' for v in r)} |"
            )
    print()
    print("Per-block CPU (ms per frame, share of the flowgraph's CPU), summed over the rounds:")
    for cfg in configs:
        for k, _ in candidates:
            acc = blocks[(cfg["name"], k)]
            if not acc:
                continue
            total = sum(acc.values())
            frames = N * args.rounds
            print(f"\n{cfg['name']} {k}: {total / frames * 1e3:.3f} ms CPU per frame")
            print("| block thread | ms/frame | share |")
            print("|---|---|---|")
            for name, sec in sorted(acc.items(), key=lambda kv: -kv[1]):
                print(f"| {name} | {sec / frames * 1e3:.3f} | {100 * sec / total:.1f} % |")
    if calls:
        print()
        print(
            "Work calls (--work-calls), summed over the rounds: calls and CPU inside work (and the metrics "
            "block's message handlers) per frame; 'outside' = the block thread's CPU less that: GNU Radio's "
            "scheduler, its Python gateway, GIL waits (for the receiver with N > 1 also its worker threads)"
        )
        for (name, k), acc in calls.items():
            frames = N * args.rounds
            thread = blocks[(name, k)]
            print(f"\n{name} {k}:")
            print(
                "| block | method | calls/frame | frames/call | CPU inside ms/frame | thread ms/frame | "
                "outside ms/frame |"
            )
            print("|---|---|---|---|---|---|---|")
            for cls in block_classes:
                rows = [(m, acc[(cls.__name__, m)]) for m in WorkCalls.METHODS if (cls.__name__, m) in acc]
                inside = sum(st[2] for _, st in rows)
                total = thread.get(f"isac_{cls.__name__}")
                for i, (m, (c, f, sec)) in enumerate(rows):
                    last = i == len(rows) - 1
                    tcol = f"{total / frames * 1e3:.3f}" if last and total is not None else ""
                    ocol = f"{(total - inside) / frames * 1e3:.3f}" if last and total is not None else ""
                    print(
                        f"| isac_{cls.__name__} | {m} | {c / frames:.3f} | {f / max(c, 1):.1f} | "
                        f"{sec / frames * 1e3:.3f} | {tcol} | {ocol} |"
                    )
    print()
    print(f"load average (1 min): start {loads[0]:.2f}, after each round {', '.join(f'{v:.2f}' for v in loads[1:])}")
    if mismatches:
        print("MISMATCH between flowgraph and offline metrics:\n  " + "\n  ".join(mismatches))
        return 1
    print("flowgraph metrics equal the offline scores on the same frames in every run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
