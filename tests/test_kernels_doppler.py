"""The C++ angle-delay-Doppler kernels (gnuradio.isac.angle_delay_doppler_map[_complex],
gnuradio.isac.OmpDopplerKernel) against the numpy references
model.angle_delay.angle_delay_doppler_map_complex and model.omp.omp_doppler, and the sensing
receiver that uses them for frames of M > 1 OFDM symbols.

As in tests/test_kernels.py: selected cells must agree exactly where the data decide them
(well-separated targets in noise), peaks and gains at single-precision tolerance."""

import numpy as np
import pytest
from gnuradio import isac

from gnuradio.isac.config import Scenario
from gnuradio.isac.model import array as arr
from gnuradio.isac.model.angle_delay import angle_delay_doppler_map_complex
from gnuradio.isac.model.array import scenario_nominal_array
from gnuradio.isac.model.doppler import doppler_dictionary, speed_grid
from gnuradio.isac.model.grids import angle_grid, delay_grid
from gnuradio.isac.model.ofdm import delay_dictionary
from gnuradio.isac.model.omp import Dictionaries, omp, omp_doppler
from gnuradio.isac.model.reciprocal import reciprocal_filter
from gnuradio.isac.simulation import Simulator
from gnuradio.isac.transceiver import sensing

LAM = 299_792_458.0 / 60e9
DF = 120e3
T_O = 1.25 / DF  # OFDM symbol with the default cyclic prefix (0.25)

#: (M, K, S, Na, Nd, Nv): one symbol and one speed, one symbol several speeds, several symbols
#: one speed, odd sizes, more speeds than symbols, and a larger case
SIZES = [
    (1, 8, 16, 20, 12, 1),
    (1, 8, 16, 20, 12, 3),
    (4, 8, 16, 20, 12, 1),
    (5, 7, 9, 11, 6, 3),
    (8, 16, 32, 40, 24, 9),
    (6, 12, 40, 30, 20, 11),
]


def crandn(rng, *shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def make_dictionaries(M, K, S, Na, Nd, Nv, kind="model", rng=None):
    """The receiver's dictionaries (nominal array: symmetric; uniform delay grid: chirp-z; the
    Doppler atoms over +-60 m/s) or random ones (the general GEMM paths)."""
    angles = angle_grid(np.deg2rad((-50.0, 40.0)), Na)
    delays = delay_grid((10.0, 190.0), Nd)
    speeds = speed_grid((-60.0, 60.0), Nv)
    if kind == "random":
        return Dictionaries(angles, delays, crandn(rng, K, Na), crandn(rng, S, Nd), speeds, crandn(rng, M, Nv))
    array = arr.nominal_array(K, LAM)
    return Dictionaries(
        angles,
        delays,
        array.steering(angles),
        delay_dictionary(delays, S, DF),
        speeds,
        doppler_dictionary(speeds, M, T_O, 60e9),
    )


def echo(D, cells, alphas, noise=0.0, rng=None):
    """Y~ (M, K, S) = sum alpha d(v_v) x a(theta_i) x rho(tau_j) (+ white noise) on grid cells (i, j, l)."""
    Y = np.zeros((D.phi_v.shape[0], D.phi_a.shape[0], D.phi_d.shape[0]), np.complex128)
    for (i, j, v), a in zip(cells, alphas):
        Y += a * np.einsum("m,k,s->mks", D.phi_v[:, v], D.phi_a[:, i], D.phi_d[:, j])
    if noise:
        Y += noise * (rng.standard_normal(Y.shape) + 1j * rng.standard_normal(Y.shape))
    return Y.astype(np.complex64)


def cpp_map(Y, D, **kw):
    return isac.angle_delay_doppler_map_complex(Y, D.phi_a, D.phi_d, D.phi_v, **kw)


def assert_map_close(got, ref):
    assert got.shape == ref.shape and got.dtype == np.complex64
    scale = np.abs(ref).max()
    np.testing.assert_allclose(got / scale, ref / scale, rtol=0, atol=1e-4)


@pytest.mark.parametrize("kind", ["model", "random"])
@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: "M{}-K{}-S{}-Na{}-Nd{}-Nv{}".format(*s))
def test_map_matches_numpy(sizes, kind, rng):
    D = make_dictionaries(*sizes, kind=kind, rng=rng)
    M, K, S = sizes[:3]
    Y = crandn(rng, 3, M, K, S)
    ref = angle_delay_doppler_map_complex(Y, D.phi_a, D.phi_d, D.phi_v)
    assert_map_close(cpp_map(Y, D), ref)
    assert_map_close(cpp_map(Y[1], D), ref[1])  # one frame (M, K, S): (Na, Nd, Nv)
    assert_map_close(cpp_map(Y, D, chirp_z=False, symmetric=False), ref)  # the general products
    power = isac.angle_delay_doppler_map(Y, D.phi_a, D.phi_d, D.phi_v)
    assert power.dtype == np.float32 and power.shape == ref.shape
    np.testing.assert_allclose(power / (np.abs(ref) ** 2).max(), np.abs(ref) ** 2 / (np.abs(ref) ** 2).max(), atol=1e-4)
    np.testing.assert_array_equal(cpp_map(Y, D, threads=2), cpp_map(Y, D))


def test_map_with_one_symbol_and_one_speed_is_the_2d_map(rng):
    """M = 1 and the one speed 0 (d = [1]): the 3-D map is the 2-D map (10) of the frame, bit for bit
    (the Doppler mode multiplies by 1 exactly, then the same 2-D mapper runs)."""
    D = make_dictionaries(1, 16, 32, 30, 20, 1)
    np.testing.assert_array_equal(D.phi_v, np.ones((1, 1), np.complex64))
    Y = crandn(rng, 2, 1, 16, 32)
    got = cpp_map(Y, D)
    assert got.shape == (2, 30, 20, 1)
    np.testing.assert_array_equal(got[..., 0], isac.angle_delay_map_complex(Y[:, 0], D.phi_a, D.phi_d))
    np.testing.assert_array_equal(
        isac.angle_delay_doppler_map(Y, D.phi_a, D.phi_d, D.phi_v)[..., 0],
        isac.angle_delay_map(Y[:, 0], D.phi_a, D.phi_d),
    )


def assert_omp_equal(Y, D, T, threads=1):
    """OmpDopplerKernel == model.omp.omp_doppler: indices exactly, peaks and gains to single precision."""
    ref = omp_doppler(Y, D, T)
    got = isac.OmpDopplerKernel(D.phi_a, D.phi_d, D.phi_v)(Y, T, threads=threads)
    ai, di, vi, peaks, gains = got
    B = ref.peaks.shape[0]
    assert ai.shape == di.shape == vi.shape == peaks.shape == (B, T) and gains.shape == (B, T, T)
    assert ai.dtype == di.dtype == vi.dtype == np.int64
    assert peaks.dtype == np.float64 and gains.dtype == np.complex128
    np.testing.assert_array_equal(ai, ref.angle_index)
    np.testing.assert_array_equal(di, ref.delay_index)
    np.testing.assert_array_equal(vi, ref.doppler_index)
    scale = np.maximum(ref.peaks[:, :1], 1e-300)
    np.testing.assert_allclose(peaks / scale, ref.peaks / scale, rtol=1e-4, atol=1e-5)
    gscale = max(np.abs(ref.gains).max(), 1e-300)
    np.testing.assert_allclose(gains / gscale, ref.gains / gscale, rtol=0, atol=2e-5)
    assert np.all(np.triu(gains, 1) == 0)
    return ref, got


def separated_cells(rng, D, n):
    """n cells (i, j, l) apart in every coordinate (at least 2 grid steps)."""
    Na, Nd, Nv = D.phi_a.shape[1], D.phi_d.shape[1], D.phi_v.shape[1]

    def spread(N):
        picks = rng.choice(np.arange(0, N, 2), size=n, replace=N // 2 < n)
        return picks if N >= 2 * n else rng.integers(0, N, n)

    return list(zip(spread(Na), spread(Nd), spread(Nv)))


@pytest.mark.parametrize("kind", ["model", "random"])
@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: "M{}-K{}-S{}-Na{}-Nd{}-Nv{}".format(*s))
def test_omp_matches_numpy_on_targets_in_noise(sizes, kind, rng):
    D = make_dictionaries(*sizes, kind=kind, rng=rng)
    frames = []
    for _ in range(3):
        cells = separated_cells(rng, D, 3)
        frames.append(echo(D, cells, [1.0, -0.6j, 0.35 + 0.1j], noise=0.05, rng=rng))
    Y = np.stack(frames)
    ref, got = assert_omp_equal(Y, D, 5)  # 3 targets, then 2 iterations in the noise
    one = assert_omp_equal(Y[1], D, 4)[1]  # one frame (M, K, S): B = 1
    assert one[0].shape == (1, 4)
    for a, b in zip(got, isac.OmpDopplerKernel(D.phi_a, D.phi_d, D.phi_v)(Y, 5, threads=2)):
        np.testing.assert_array_equal(a, b)  # frames split over threads: identical


def test_omp_finds_the_targets_at_the_paper_size(rng):
    """K = 64, S = 256, 720 x 200 cells, M = 16 symbols, 10 speeds: three targets apart in speed
    only (same angle and delay) or in angle and delay only (same speed)."""
    D = make_dictionaries(16, 64, 256, 720, 200, 10)
    cells = [(300, 100, 1), (300, 100, 7), (600, 20, 7)]
    Y = np.stack([echo(D, cells, [1.0, 0.7j, -0.5], noise=0.05, rng=rng) for _ in range(2)])
    ref, (ai, di, vi, peaks, gains) = assert_omp_equal(Y, D, 4)
    assert set(zip(ai[0, :3], di[0, :3], vi[0, :3])) == set(cells)
    np.testing.assert_allclose(gains[:, 2, :3], np.array([[1.0, 0.7j, -0.5]] * 2), atol=2e-3)


def test_omp_with_one_symbol_and_one_speed_is_the_2d_omp(rng):
    D = make_dictionaries(1, 16, 32, 30, 20, 1)
    D2 = Dictionaries(D.angles_rad, D.delays_s, D.phi_a, D.phi_d)
    Y = np.stack([echo(D, [(5, 3, 0), (22, 15, 0)], [1.0, 0.5j], noise=0.05, rng=rng) for _ in range(3)])
    ai, di, vi, peaks, gains = isac.OmpDopplerKernel(D.phi_a, D.phi_d, D.phi_v)(Y, 4)
    ai2, di2, peaks2, gains2 = isac.OmpKernel(D.phi_a, D.phi_d)(Y[:, 0], 4)
    np.testing.assert_array_equal(ai, ai2)
    np.testing.assert_array_equal(di, di2)
    np.testing.assert_array_equal(vi, 0)
    np.testing.assert_allclose(peaks, peaks2, rtol=1e-6)
    np.testing.assert_allclose(gains, gains2, rtol=1e-6, atol=1e-12)
    ref = omp(Y[:, 0], D2, 4)
    np.testing.assert_array_equal(ai, ref.angle_index)
    np.testing.assert_array_equal(di, ref.delay_index)


def test_omp_zero_frame_and_repeated_atoms(rng):
    """Ties go to numpy's first flat index of (Na, Nd, Nv): a zero frame re-selects cell (0, 0, 0)
    (singular Gram matrix); a repeated speed or angle column gives the first copy."""
    D = make_dictionaries(6, 8, 16, 20, 12, 5)
    ref, (ai, di, vi, peaks, gains) = assert_omp_equal(np.zeros((2, 6, 8, 16), np.complex64), D, 3)
    assert np.all(ai == 0) and np.all(di == 0) and np.all(vi == 0) and np.all(peaks == 0) and np.all(gains == 0)
    phi_v = D.phi_v.copy()
    phi_v[:, 4] = phi_v[:, 1]
    phi_a = D.phi_a.copy()
    phi_a[:, 17] = phi_a[:, 3]
    D2 = Dictionaries(D.angles_rad, D.delays_s, phi_a, D.phi_d, D.speeds_mps, phi_v)
    Y = echo(D2, [(3, 7, 4), (9, 2, 0)], [2.0, 1.0])[None]
    ref, (ai, di, vi, peaks, gains) = assert_omp_equal(Y, D2, 2)
    assert (ai[0, 0], di[0, 0], vi[0, 0]) == (3, 7, 1)


def test_bad_inputs_are_refused_with_clear_messages(rng):
    D = make_dictionaries(4, 8, 16, 20, 12, 3)
    Y = np.zeros((2, 4, 8, 16), np.complex64)
    kernel = isac.OmpDopplerKernel(D.phi_a, D.phi_d, D.phi_v)

    def refuses(message, call, *args, **kw):
        with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
            call(*args, **kw)

    for fn, call in [
        ("omp_doppler", lambda y, pa, pd, pv: isac.OmpDopplerKernel(pa, pd, pv)(y, 2)),
        ("angle_delay_doppler_map_complex", isac.angle_delay_doppler_map_complex),
        ("angle_delay_doppler_map", isac.angle_delay_doppler_map),
    ]:
        refuses(f"{fn}: Y must have shape (M, K, S) or (B, M, K, S), got 2", call, Y[0, 0], D.phi_a, D.phi_d, D.phi_v)
        refuses(f"{fn}: Phi_v has 1 rows but Y has 4 symbols (M must match)", call, Y, D.phi_a, D.phi_d, D.phi_v[:1])
        refuses(f"{fn}: Phi_a has 7 rows but Y has 8 (K must match)", call, Y, D.phi_a[:7], D.phi_d, D.phi_v)
        refuses(f"{fn}: Phi_d has 15 rows but Y has 16 columns (S must match)", call, Y, D.phi_a, D.phi_d[:15], D.phi_v)
        refuses(f"{fn}: Phi_v must have shape (M, Nv), got 1", call, Y, D.phi_a, D.phi_d, D.phi_v[:, 0])
    with pytest.raises(ValueError, match=r"^omp_doppler: Phi_v has 3 rows but Y has 4 symbols \(M must match\)"):
        isac.OmpDopplerKernel(D.phi_a, D.phi_d, D.phi_v[:3])(Y, 1)
    refuses(
        "omp_doppler: Phi_v has no columns (empty speed grid)", isac.OmpDopplerKernel, D.phi_a, D.phi_d, D.phi_v[:, :0]
    )
    refuses(
        "omp_doppler: Phi_a has no columns (empty angle grid)", isac.OmpDopplerKernel, D.phi_a[:, :0], D.phi_d, D.phi_v
    )
    refuses("omp_doppler: iterations must be >= 1, got 0", kernel, Y, 0)
    refuses("omp_doppler: iterations must be <= 64, got 65", kernel, Y, 65)
    refuses("omp_doppler: threads must be >= 1, got 0", kernel, Y, 1, threads=0)
    refuses(
        "angle_delay_doppler_map: threads must be >= 1, got 0",
        isac.angle_delay_doppler_map,
        Y,
        D.phi_a,
        D.phi_d,
        D.phi_v,
        threads=0,
    )
    for bad in (np.nan, np.inf, complex(0.0, -np.inf)):
        y = Y.copy()
        y[-1, -1, -1, -1] = bad
        refuses("omp_doppler: Y contains NaN or Inf", kernel, y, 1)
    kernel(Y, 1)  # the instance still works after the refusals


def moving_scenario(symbols):
    return Scenario.default().with_overrides(
        {
            "ofdm.symbols": symbols,
            "scene.speed_mps": [-30.0, 30.0],
            "receiver.angle_grid": 180,
            "receiver.delay_grid": 100,
        }
    )


def test_receiver_uses_the_cpp_kernel_for_multi_symbol_frames_with_numpy_s_detections():
    sc = moving_scenario(4)
    array = scenario_nominal_array(sc)
    assert sensing._doppler_kernel_available()
    rx = sensing.get_receiver("omp")(sc, array)  # no kernel named: the default
    assert rx.kernel == "cpp" and isinstance(rx._cpp, isac.OmpDopplerKernel)
    ref_rx = sensing.get_receiver("omp")(sc, array, "numpy")
    frames = Simulator(sc).frames(0, 6)
    y = reciprocal_filter(frames.y_sensing, frames.symbols)
    assert y.shape == (6, 4, 64, 256)
    got, ref = rx(y), ref_rx(y)
    T = sc.scene["max_targets"]
    assert got.doppler_index.shape == (6, T)
    for name in ("angle_index", "delay_index", "doppler_index", "angles_rad", "delays_s", "speeds_mps"):
        np.testing.assert_array_equal(getattr(got, name), getattr(ref, name), err_msg=name)
    np.testing.assert_allclose(got.peaks, ref.peaks, rtol=1e-4)
    threshold = float(np.median(ref.peaks))
    np.testing.assert_array_equal(got.counts(threshold), ref.counts(threshold))
    for b in range(6):
        a, r = got.detections(b, threshold), ref.detections(b, threshold)
        for key in ("angle_rad", "range_m", "speed_mps"):
            np.testing.assert_array_equal(a[key], r[key])
        np.testing.assert_allclose(a["gain"], r["gain"], rtol=1e-3, atol=1e-5 * np.abs(r["gain"]).max(initial=1.0))
    # one symbol per frame: the 2-D kernel as before
    one = sensing.get_receiver("omp")(Scenario.default(), scenario_nominal_array(Scenario.default()))
    assert one.kernel == "cpp" and isinstance(one._cpp, isac.OmpKernel)
