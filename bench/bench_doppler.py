#!/usr/bin/env python3
"""Benchmark of the sensing receiver on frames of M OFDM symbols (not a test): the OMP receiver
of M = 1 (the 2-D C++ OmpKernel) and of M = 16, 64 (the C++ OmpDopplerKernel over angle, delay
and speed) side by side in one run, per frame and per OFDM symbol, with the memory per frame.

    .venv/bin/python bench/bench_doppler.py [--symbols 1 16 64] [--frames 4] [--repeats 7] [--points N]

Scenario: the default one (K = 64 antennas, S = 256 subcarriers, receiver.angle_grid = 720 and
receiver.delay_grid = 200 over the a-priori sector and range, T_max = scene.max_targets
iterations, the baseline's nominal array) with ofdm.symbols = M and, for M > 1,
scene.speed_mps = [-30, 30] m/s and the automatic speed grid (a step of half the resolution
lambda / (2 M T_O)), or --points speeds. Frames: the simulator's test frames, reciprocal-filtered.
Each line is the median over ``repeats`` timed calls of the receiver on all frames (candidates
interleaved, so machine load hits all alike). The target: ms per symbol at M > 1 <= ms per frame
at M = 1 (ratio <= 1).

Columns "T = 1" time the same kernel with one iteration (the map and one pass over its cells):
the map's share, and (T_max - T = 1) / (T_max - 1) the cost of one more iteration.

Memory per frame: the input Y~ (M K S complex64), the kernel's work buffers per worker thread
(OmpDopplerKernel.workspace_bytes: the map of Na Nd Nv cells as split float32 planes, the frame
contracted over its symbols (Nv K S complex64), projections; for the 2-D kernel the map, its
split planes and the power map, 20 bytes per cell; the 2-D mapper's own buffers, about 1.7 MB,
are in neither), and the resident memory the receiver's first call adds in a fresh process
(--no-rss skips it).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--symbols", type=int, nargs="+", default=[1, 16, 64], help="values of M (1 is the reference)")
    p.add_argument("--frames", type=int, default=4, help="frames per call")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--points", type=int, default=0, help="speeds of the Doppler grid (0: automatic)")
    p.add_argument("--speed", type=float, nargs=2, default=(-30.0, 30.0), metavar=("VMIN", "VMAX"))
    p.add_argument("--no-check", action="store_true", help="skip the C++ == numpy check on one frame per M")
    p.add_argument("--no-rss", action="store_true", help="skip the resident-memory measurement")
    p.add_argument("--rss-child", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


args = parse()
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import time  # noqa: E402

import numpy as np  # noqa: E402

from gnuradio.isac.config import Scenario  # noqa: E402
from gnuradio.isac.model.array import scenario_nominal_array  # noqa: E402
from gnuradio.isac.model.omp import omp, omp_doppler  # noqa: E402
from gnuradio.isac.model.reciprocal import reciprocal_filter  # noqa: E402
from gnuradio.isac.simulation import Simulator  # noqa: E402
from gnuradio.isac.transceiver.sensing import get_receiver  # noqa: E402

MB = 1e6


def scenario(M: int) -> Scenario:
    over = {"ofdm.symbols": M}
    if M > 1:
        over["scene.speed_mps"] = list(args.speed)
        if args.points:
            over["receiver.doppler_grid"] = args.points
    return Scenario.default().with_overrides(over)


def receiver(sc: Scenario):
    return get_receiver("omp")(sc, scenario_nominal_array(sc))  # the default kernel: cpp


def vm_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def rss_child(M: int) -> int:
    """In this (fresh) process: the resident memory added by building the receiver and its first
    call on one frame (noise: the memory does not depend on the data)."""
    sc = scenario(M)
    K, S = sc.array["antennas"], sc.ofdm["subcarriers"]
    rng = np.random.default_rng(0)
    shape = (1, K, S) if M == 1 else (1, M, K, S)
    y = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    before = vm_rss()
    rx = receiver(sc)
    rx(y)
    print(vm_rss() - before)
    return 0


def measured_rss(M: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(M), "--points", str(args.points), "--speed"]
        + [str(v) for v in args.speed],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.split()[-1]) / MB


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line for line in f if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "?"
    return "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"


def main() -> int:
    if args.rss_child:
        return rss_child(args.rss_child)
    symbols = sorted(set(args.symbols))
    if symbols[0] != 1:
        symbols = [1] + symbols
    B, R = args.frames, args.repeats
    cases = {}
    for M in symbols:
        sc = scenario(M)
        frames = Simulator(sc).frames(0, B)
        y = np.ascontiguousarray(reciprocal_filter(frames.y_sensing, frames.symbols), dtype=np.complex64)
        rx = receiver(sc)
        D = rx.dictionaries
        Na, Nd = D.phi_a.shape[1], D.phi_d.shape[1]
        Nv = D.phi_v.shape[1] if D.doppler else 1
        T = rx.max_targets
        if D.doppler:
            workspace = rx._cpp.workspace_bytes
        else:
            workspace = 20 * Na * Nd  # omp_kernel: M0 complex, its split planes, the power map
        cases[M] = dict(sc=sc, y=y, rx=rx, D=D, Na=Na, Nd=Nd, Nv=Nv, T=T, workspace=workspace)

    print(f"CPU: {cpu_name()} ({cpu_flags()}), {os.cpu_count()} logical CPUs; numpy {np.__version__}")
    print(f"load average at the start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    c1 = cases[1]
    print(
        f"K = {c1['sc'].array['antennas']}, S = {c1['sc'].ofdm['subcarriers']}, Na = {c1['Na']}, Nd = {c1['Nd']}, "
        f"T_max = {c1['T']}; speeds {args.speed[0]:g} .. {args.speed[1]:g} m/s "
        f"({'--points ' + str(args.points) if args.points else 'automatic grid'}); frames per call {B}, "
        f"repeats {R} (median); threads 1"
    )
    for M, c in cases.items():
        kind = type(c["rx"]._cpp).__name__
        print(f"  M = {M:3d}: receiver kernel {c['rx'].kernel} ({kind}), Nv = {c['Nv']}")

    if not args.no_check:
        for M, c in cases.items():
            y1 = c["y"][:1]
            got = c["rx"](y1)
            ref = omp_doppler(y1, c["D"], c["T"]) if c["D"].doppler else omp(y1, c["D"], c["T"])
            same = np.array_equal(got.angle_index, ref.angle_index) and np.array_equal(got.delay_index, ref.delay_index)
            if c["D"].doppler:
                same = same and np.array_equal(got.doppler_index, ref.doppler_index)
            rel = float(np.abs(got.peaks - ref.peaks).max() / ref.peaks.max())
            print(f"  M = {M:3d}: C++ == numpy on frame 0: cells {same}, peaks to {rel:.1e}")

    # candidates, interleaved: the receivers, and the 3-D kernels with one iteration
    cands = []
    for M, c in cases.items():
        cands.append((f"M = {M}", M, lambda c=c: c["rx"](c["y"])))
    for M, c in cases.items():
        cands.append((f"M = {M}, T = 1", M, lambda c=c: c["rx"]._cpp(c["y"], 1)))
    for _, _, f in cands:
        f()  # warm-up
    times = {name: [] for name, _, _ in cands}
    for _ in range(R):
        for name, _, f in cands:
            t0 = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)
    ms = {name: 1e3 * float(np.median(v)) / B for name, v in times.items()}
    ref = ms["M = 1"]
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")

    rss = {} if args.no_rss else {M: measured_rss(M) for M in cases}
    print()
    print(
        "| M | N_v | cells Na·Nd·Nv | ms/frame | ms/symbol | per symbol / M = 1 per frame | T = 1 ms/frame | "
        "ms per further iteration | Y~ MB/frame | kernel buffers MB/frame | RSS added MB | MB/symbol |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for M, c in cases.items():
        frame = ms[f"M = {M}"]
        t1 = ms.get(f"M = {M}, T = 1")
        more = (frame - t1) / (c["T"] - 1) if t1 is not None and c["T"] > 1 else None
        y_mb = c["y"][0].nbytes / MB
        buf_mb = c["workspace"] / MB
        print(
            f"| {M} | {c['Nv']} | {c['Na'] * c['Nd'] * c['Nv']:,} | {frame:.2f} | {frame / M:.3f} | "
            f"{frame / M / ref:.2f} | {'' if t1 is None else f'{t1:.2f}'} | {'' if more is None else f'{more:.2f}'} | "
            f"{y_mb:.2f} | {buf_mb:.1f} | {'' if M not in rss else f'{rss[M]:.1f}'} | {(y_mb + buf_mb) / M:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
