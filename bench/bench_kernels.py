#!/usr/bin/env python3
"""Benchmark of the receiver kernels (not a test): C++ against the numpy references, in one
run, on the same frames and the same thread count.

    .venv/bin/python bench/bench_kernels.py [--frames 16] [--repeats 15] [--threads 1]

Sizes of the paper: K = 64 antennas, S = 256 subcarriers, N_theta = 720 angles over
[-90, 90] deg (the dOMP grid), N_tau = 200 delays over [10, 190] m, T = 5 iterations.
Frames: 3 random targets in white noise. Dictionaries of the nominal array (symmetric about
its centre: the map's half-size angle product applies) and, for comparison rows, of an
Example-1 impaired array (general angle product, like a learned dictionary). Each line is the median over ``repeats``
timed
calls on all frames (candidates interleaved, so machine load hits all alike), in ms per
frame, and its ratio to the numpy reference of that group (>1: faster than numpy).
The thread count is applied to OpenBLAS/OpenMP (environment, before numpy is imported)
and to the C++ kernels (threads=, frames split across threads).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args()


args = parse()
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import time  # noqa: E402

import numpy as np  # noqa: E402
from gnuradio import isac  # noqa: E402

from gnuradio.isac.model import array as arr  # noqa: E402
from gnuradio.isac.model.angle_delay import angle_delay_map_complex  # noqa: E402
from gnuradio.isac.model.domp import DEFAULT_TEMPERATURE, domp_inference, window_half_widths  # noqa: E402
from gnuradio.isac.model.grids import delay_grid, full_angle_grid, range_to_delay  # noqa: E402
from gnuradio.isac.model.ofdm import delay_dictionary, delay_vector  # noqa: E402
from gnuradio.isac.model.omp import Dictionaries, omp  # noqa: E402

LAM = 299_792_458.0 / 60e9
K, S, NA, ND, DF = 64, 256, 720, 200, 120e3


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    B, T, W = args.frames, args.iterations, args.threads
    rng = np.random.default_rng(args.seed)
    nominal = arr.nominal_array(K, LAM)
    # Example 1 impairment (sigma = lambda / 25): not symmetric about its centre, so its
    # dictionary takes the general angle product, as a learned dictionary does
    impaired = arr.spacing_array(LAM / 2 + (LAM / 25) * rng.standard_normal(K), LAM)
    angles = full_angle_grid(NA)
    delays = delay_grid((10.0, 190.0), ND)
    phi_d = delay_dictionary(delays, S, DF)
    D = Dictionaries(angles, delays, nominal.steering(angles), phi_d)
    Di = Dictionaries(angles, delays, impaired.steering(angles), phi_d)
    array = nominal
    Y = np.empty((B, K, S), np.complex64)
    for b in range(B):
        th = rng.uniform(-1.2, 1.2, 3)
        r = rng.uniform(15.0, 185.0, 3)
        al = rng.standard_normal(3) + 1j * rng.standard_normal(3)
        noise = 0.7 * (rng.standard_normal((K, S)) + 1j * rng.standard_normal((K, S)))
        Y[b] = (array.steering(th) * al) @ delay_vector(range_to_delay(r), S, DF) + noise
    hw = window_half_widths(K, S, DF, angles, delays)
    pa_h = np.ascontiguousarray(D.phi_a.conj().T)
    pd_c = D.phi_d.conj()
    omp_kernel = isac.OmpKernel(D.phi_a, D.phi_d)
    omp_kernel_i = isac.OmpKernel(Di.phi_a, Di.phi_d)
    domp_kernel = isac.DompKernel(
        D.phi_a, D.phi_d, angles, delays, nominal.positions_m, LAM, DF, hw, DEFAULT_TEMPERATURE
    )
    domp_kernel_i = isac.DompKernel(
        Di.phi_a, Di.phi_d, angles, delays, impaired.positions_m, LAM, DF, hw, DEFAULT_TEMPERATURE
    )
    cmap = isac.angle_delay_map_complex

    groups = {
        "map (complex, Na x Nd)": [
            ("numpy, paper order (Phi_a^H Y) Phi_d^*", lambda: (pa_h @ Y) @ pd_c),
            ("numpy, cheap order Phi_a^H (Y Phi_d^*)  [ref]", lambda: angle_delay_map_complex(Y, D.phi_a, D.phi_d)),
            (
                "C++, general products (GEMM, GEMM)",
                lambda: cmap(Y, D.phi_a, D.phi_d, chirp_z=False, symmetric=False, threads=W),
            ),
            (
                "C++, chirp-z delay side, general angle side",
                lambda: cmap(Y, D.phi_a, D.phi_d, symmetric=False, threads=W),
            ),
            ("C++, chirp-z + symmetric array (default here)", lambda: cmap(Y, D.phi_a, D.phi_d, threads=W)),
        ],
        f"OMP, T = {T}": [
            ("numpy model.omp.omp  [ref]", lambda: omp(Y, D, T)),
            ("C++ isac.omp (kernel built per call)", lambda: isac.omp(Y, D.phi_a, D.phi_d, T, threads=W)),
            ("C++ isac.OmpKernel (kept)", lambda: omp_kernel(Y, T, threads=W)),
            ("C++ isac.OmpKernel, impaired array", lambda: omp_kernel_i(Y, T, threads=W)),
        ],
        f"dOMP inference, T = {T}, window {hw}": [
            (
                "numpy model.domp.domp_inference  [ref]",
                lambda: domp_inference(Y, D, nominal.positions_m, LAM, DF, T, hw, DEFAULT_TEMPERATURE),
            ),
            ("C++ isac.DompKernel (kept)", lambda: domp_kernel(Y, T, threads=W)),
            ("C++ isac.DompKernel, impaired array", lambda: domp_kernel_i(Y, T, threads=W)),
        ],
    }

    # agreement on these frames (the tests check it in detail)
    ref = omp(Y, D, T)
    got = omp_kernel(Y, T)
    same_omp = np.array_equal(got[0], ref.angle_index) and np.array_equal(got[1], ref.delay_index)
    dref = domp_inference(Y, D, array.positions_m, LAM, DF, T, hw, DEFAULT_TEMPERATURE)
    dgot = domp_kernel(Y, T)
    same_domp = np.array_equal(dgot[4], dref.angle_index) and np.array_equal(dgot[5], dref.delay_index)
    dth = np.abs(dgot[0] - dref.angles_rad).max() / (angles[1] - angles[0])

    print(
        f"CPU: {cpu_name()}, {os.cpu_count()} logical CPUs; numpy {np.__version__}; python {platform.python_version()}"
    )
    print(
        f"threads: {W} (OPENBLAS/OMP/MKL_NUM_THREADS and C++ threads=); frames: {B}; repeats: {args.repeats} (median)"
    )
    print(
        f"nominal array: chirp-z {isac.delay_dictionary_is_uniform_dft(D.phi_d)}, symmetric "
        f"{isac.angle_dictionary_is_symmetric(D.phi_a)}; impaired array: symmetric "
        f"{isac.angle_dictionary_is_symmetric(Di.phi_a)}"
    )
    print(
        f"C++ == numpy on these frames: OMP indices {same_omp}, dOMP indices {same_domp}, "
        f"dOMP angle difference {dth:.1e} pixel"
    )
    for title, cands in groups.items():
        for _, f in cands:  # warm-up
            f()
        times = {name: [] for name, _ in cands}
        for _ in range(args.repeats):
            for name, f in cands:
                t0 = time.perf_counter()
                f()
                times[name].append(time.perf_counter() - t0)
        med = {name: 1e3 * float(np.median(v)) / B for name, v in times.items()}
        ref_name = next(name for name, _ in cands if name.endswith("[ref]"))
        print(f"\n{title}")
        print(f"  {'candidate':50s} {'ms/frame':>9s} {'vs ref':>7s}")
        for name, _ in cands:
            print(f"  {name:50s} {med[name]:9.3f} {med[ref_name] / med[name]:6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
