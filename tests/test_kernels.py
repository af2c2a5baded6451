"""C++ kernels (gnuradio.isac.omp, gnuradio.isac.domp, the angle-delay mapper) against the
numpy references model.omp.omp and model.domp.domp_inference.

Selected cells must agree exactly while the selection is decided by the data; once the
residual is pure rounding noise (more iterations than noiseless targets) the argmax of
that noise is implementation-defined, and only the peaks (tiny) are compared.
Peaks and gains are compared at single-precision tolerance."""

import numpy as np
import pytest
from gnuradio import isac

from gnuradio.isac.model import array as arr
from gnuradio.isac.model.domp import DEFAULT_TEMPERATURE, domp_inference, window_half_widths
from gnuradio.isac.model.grids import angle_grid, delay_grid, full_angle_grid, range_to_delay
from gnuradio.isac.model.ofdm import delay_dictionary, delay_vector
from gnuradio.isac.model.omp import Dictionaries, omp

LAM = 299_792_458.0 / 60e9
DF = 120e3


def make_problem(K=16, S=32, Na=90, Nd=40, full=False):
    array = arr.nominal_array(K, LAM)
    angles = full_angle_grid(Na) if full else angle_grid(np.deg2rad((-40.0, -20.0)), Na)
    delays = delay_grid((10.0, 190.0), Nd)
    return array, Dictionaries(angles, delays, array.steering(angles), delay_dictionary(delays, S, DF))


def echo(array, D, cells, alphas, S, noise=0.0, rng=None):
    """Y = sum alpha a(theta_i) rho(tau_j)^T (+ complex white noise) on grid cells (i, j)."""
    K = array.antennas
    Y = np.zeros((K, S), np.complex128)
    for (i, j), a in zip(cells, alphas):
        Y += a * np.outer(D.phi_a[:, i], D.phi_d[:, j])
    if noise:
        Y += noise * (rng.standard_normal((K, S)) + 1j * rng.standard_normal((K, S)))
    return Y.astype(np.complex64)


def run_cpp(Y, D, T, threads=1):
    return isac.omp(Y, D.phi_a, D.phi_d, T, threads=threads)


def assert_omp_equal(Y, D, T, exact_iterations=None, threads=1):
    """C++ omp == model.omp.omp: indices exactly for the first ``exact_iterations``
    iterations (all by default), peaks and gains to single precision."""
    ref = omp(Y, D, T)
    ai, di, peaks, gains = run_cpp(Y, D, T, threads)
    B = ref.peaks.shape[0]
    assert ai.shape == di.shape == peaks.shape == (B, T) and gains.shape == (B, T, T)
    assert ai.dtype == di.dtype == np.int64 and peaks.dtype == np.float64 and gains.dtype == np.complex128
    n = T if exact_iterations is None else exact_iterations
    np.testing.assert_array_equal(ai[:, :n], ref.angle_index[:, :n])
    np.testing.assert_array_equal(di[:, :n], ref.delay_index[:, :n])
    scale = np.maximum(ref.peaks[:, :1], 1e-300)
    np.testing.assert_allclose(peaks / scale, ref.peaks / scale, rtol=1e-4, atol=1e-5)
    gscale = max(np.abs(ref.gains[:, :n]).max(), 1e-300)
    np.testing.assert_allclose(gains[:, :n] / gscale, ref.gains[:, :n] / gscale, rtol=0, atol=2e-5)
    assert np.all(np.triu(gains, 1) == 0)
    return ref, (ai, di, peaks, gains)


def test_omp_random_batch_and_single_frame(rng):
    array, D = make_problem()
    Y = (rng.standard_normal((4, 16, 32)) + 1j * rng.standard_normal((4, 16, 32))).astype(np.complex64)
    assert_omp_equal(Y, D, 5)
    assert_omp_equal(Y[:2], D, 11)  # beyond 8 atoms: the generic residual pass
    ref, got = assert_omp_equal(Y[2], D, 3)  # a (K, S) frame gives B = 1
    assert got[0].shape == (1, 3)
    # threads split the frames: identical results
    one = run_cpp(Y, D, 5)
    for a, b in zip(one, run_cpp(Y, D, 5, threads=3)):
        np.testing.assert_array_equal(a, b)


def test_omp_paper_size_targets_in_noise(rng):
    array, D = make_problem(64, 256, 720, 200, full=True)
    cells = [(100, 20), (400, 120), (650, 180)]
    Y = np.stack([echo(array, D, cells, [1.0, 0.6j, -0.8], 256, noise=0.05, rng=rng) for _ in range(2)])
    ref, got = assert_omp_equal(Y, D, 5)
    assert set(zip(got[0][0, :3], got[1][0, :3])) == set(cells)


def test_omp_noiseless_on_grid():
    array, D = make_problem(64, 64)
    cells = [(5, 3), (44, 20), (89, 39), (60, 3), (5, 30)]  # shared angle / shared delay pairs
    alphas = [1.0, 0.5j, -0.8 + 0.1j, 0.3, 0.7 - 0.7j]
    Y = echo(array, D, cells, alphas, 64)
    ref, (ai, di, peaks, gains) = assert_omp_equal(Y, D, 6, exact_iterations=5)
    assert set(zip(ai[0, :5], di[0, :5])) == set(cells)
    assert peaks[0, 5] < 1e-8 * peaks[0, 0]  # the residual after 5 atoms is rounding noise


def test_omp_targets_at_grid_edges():
    array, D = make_problem()
    cells = [(0, 0), (89, 39), (0, 39), (89, 0)]
    Y = echo(array, D, cells, [1.0, 1.0j, -1.0, 0.5], 32)
    ref, (ai, di, _, _) = assert_omp_equal(Y, D, 4)
    assert set(zip(ai[0], di[0])) == set(cells)


def test_omp_zero_frame_and_repeated_atom():
    array, D = make_problem()
    Y = np.zeros((2, 16, 32), np.complex64)
    ref, (ai, di, peaks, gains) = assert_omp_equal(Y, D, 3)
    assert np.all(ai == 0) and np.all(di == 0) and np.all(peaks == 0) and np.all(gains == 0)
    # a dictionary with a repeated column: the tie goes to the first copy, then the
    # singular Gram matrix of a re-selected atom is handled by the pseudo-inverse
    phi_a = D.phi_a.copy()
    phi_a[:, 50] = phi_a[:, 10]
    D2 = Dictionaries(D.angles_rad, D.delays_s, phi_a, D.phi_d)
    Y = echo(array, D2, [(10, 7)], [2.0], 32)[None]
    ref, (ai, di, peaks, gains) = assert_omp_equal(Y, D2, 1)
    assert (ai[0, 0], di[0, 0]) == (10, 7)


@pytest.mark.parametrize("scale", [1e-15, 1.0, 1e12])
def test_omp_huge_dynamic_range(scale):
    """Absolute scales over 27 orders of magnitude and 60 dB between targets. (Beyond
    ~80 dB the weak target's map is at the float32 rounding level of the strong ones'
    rank-one updates, and numpy and C++ may pick neighbouring pixels.)"""
    array, D = make_problem(64, 64)
    cells = [(10, 10), (45, 30), (80, 20)]
    Y = echo(array, D, cells, [scale, scale * 1e-2, scale * 1e-3j], 64)
    ref, (ai, di, peaks, gains) = assert_omp_equal(Y, D, 3)
    assert set(zip(ai[0], di[0])) == set(cells)
    np.testing.assert_allclose(gains[0, 2], np.array([1, 1e-2, 1e-3j]) * scale, rtol=1e-3, atol=1e-6 * scale)


def test_omp_errors(rng):
    array, D = make_problem()
    Y = np.zeros((16, 32), np.complex64)
    cases = [
        ((Y, D.phi_a[:15], D.phi_d, 2), "omp: Phi_a has 15 rows but Y has 16 (K must match)"),
        ((Y, D.phi_a, D.phi_d[:31], 2), "omp: Phi_d has 31 rows but Y has 32 columns (S must match)"),
        ((Y[0], D.phi_a, D.phi_d, 2), "omp: Y must have shape (K, S) or (B, K, S), got 1"),
        ((Y, D.phi_a[0], D.phi_d, 2), "omp: Phi_a must have shape (K, Na), got 1"),
        ((Y, D.phi_a, D.phi_d, 0), "omp: iterations must be >= 1, got 0"),
        ((Y, D.phi_a[:, :0], D.phi_d, 1), "omp: Phi_a has no columns"),
    ]
    for args, message in cases:
        with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
            isac.omp(*args)
    bad = Y.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="^omp: Y contains NaN or Inf"):
        isac.omp(bad, D.phi_a, D.phi_d, 1)
    bad[3, 4] = np.inf
    with pytest.raises(ValueError, match="^omp: Y contains NaN or Inf"):
        isac.omp(bad, D.phi_a, D.phi_d, 1)
    # the scan covers every value of a batch: one -Inf in the imaginary part of the last value
    # of the last frame is found; the largest finite floats and subnormals are finite
    batch = np.repeat(Y[None], 3, axis=0)
    batch[-1, -1, -1] = complex(1.0, -np.inf)
    with pytest.raises(ValueError, match="^omp: Y contains NaN or Inf"):
        isac.omp(batch, D.phi_a, D.phi_d, 1)
    edge = Y.copy()
    edge[0, 0] = complex(np.finfo(np.float32).max, -np.finfo(np.float32).max)
    edge[0, 1] = complex(np.finfo(np.float32).smallest_subnormal, 0.0)
    isac.omp(edge, D.phi_a, D.phi_d, 1)  # accepted: no ValueError
    with pytest.raises(ValueError, match="^omp: threads must be >= 1"):
        isac.omp(Y, D.phi_a, D.phi_d, 1, threads=0)


# ---------------------------------------------------------------- dOMP


def run_domp_cpp(Y, D, array, T, hw, temperature):
    return isac.domp(Y, D.phi_a, D.phi_d, D.angles_rad, D.delays_s, array.positions_m, LAM, DF, T, hw, temperature)


def assert_domp_equal(Y, D, array, T, hw=None, temperature=DEFAULT_TEMPERATURE):
    ref = domp_inference(Y, D, array.positions_m, LAM, DF, T, hw, temperature)
    if hw is None:
        hw = window_half_widths(array.antennas, Y.shape[-1], DF, D.angles_rad, D.delays_s)
    th, ta, peaks, gains, ai, di = run_domp_cpp(Y, D, array, T, hw, temperature)
    np.testing.assert_array_equal(ai, ref.angle_index)
    np.testing.assert_array_equal(di, ref.delay_index)
    dth = D.angles_rad[1] - D.angles_rad[0]
    dta = D.delays_s[1] - D.delays_s[0]
    # The softmax weights are exp(L / L_max / temperature): float32 rounding of a weak
    # residual's map (relative 1e-4 after strong targets were removed) moves the
    # estimates by ~1e-4 pixel at temperature 0.1.
    tol = 1e-3 * max(1.0, 0.1 / temperature)
    np.testing.assert_allclose(th, ref.angles_rad, rtol=0, atol=tol * dth)
    np.testing.assert_allclose(ta, ref.delays_s, rtol=0, atol=tol * dta)
    scale = np.maximum(ref.peaks[:, :1], 1e-300)
    np.testing.assert_allclose(peaks / scale, ref.peaks / scale, rtol=1e-4, atol=1e-5)
    gscale = max(np.abs(ref.gains).max(), 1e-300)
    np.testing.assert_allclose(gains / gscale, ref.gains / gscale, rtol=0, atol=2e-5)
    return ref, (th, ta, peaks, gains, ai, di)


def off_grid_echo(array, thetas, ranges, alphas, S, noise, rng):
    A = array.steering(np.asarray(thetas))
    R = delay_vector(range_to_delay(np.asarray(ranges)), S, DF)
    K = array.antennas
    Y = (A * np.asarray(alphas)) @ R + noise * (rng.standard_normal((K, S)) + 1j * rng.standard_normal((K, S)))
    return Y.astype(np.complex64)


def test_domp_paper_grid_off_grid_targets(rng):
    array, D = make_problem(64, 256, 720, 200, full=True)
    assert window_half_widths(64, 256, DF, D.angles_rad, D.delays_s) == (7, 5)
    Y = np.stack(
        [
            off_grid_echo(array, [-0.5, 0.3, 0.31], [40.3, 100.7, 150.2], [1.0, 0.5j, -0.7], 256, 0.05, rng)
            for _ in range(2)
        ]
    )
    ref, (th, ta, *_) = assert_domp_equal(Y, D, array, 4)
    # the soft estimates land near the true targets (off the grid)
    for truth in (-0.5, 0.3, 0.31):
        assert np.min(np.abs(th[0, :3] - truth)) < 0.5 * (D.angles_rad[1] - D.angles_rad[0])


def test_domp_small_grid_edges_windows_temperatures(rng):
    array, D = make_problem(16, 32, 90, 40)
    Y = np.stack(
        [
            off_grid_echo(array, [D.angles_rad[0], D.angles_rad[-1]], [10.0, 190.0], [1.0, 0.8j], 32, 0.02, rng),
            echo(array, D, [(45, 20)], [1.0], 32, noise=0.3, rng=rng),
        ]
    )
    for hw, temp in [((3, 2), 0.1), ((0, 0), 0.1), ((1, 6), 2.0), ((50, 50), 0.01)]:
        assert_domp_equal(Y, D, array, 3, hw, temp)
    ref, (th, ta, *_) = assert_domp_equal(Y[:1], D, array, 2, (0, 0), 0.1)
    # zero half-widths: the estimates are the argmax grid cells
    np.testing.assert_array_equal(th, D.angles_rad[ref.angle_index])


def test_domp_zero_frame_uniform_window():
    array, D = make_problem(16, 32, 90, 40)
    Y = np.zeros((16, 32), np.complex64)
    ref, (th, ta, peaks, gains, ai, di) = assert_domp_equal(Y, D, array, 2, (3, 2), 0.1)
    # argmax 0 and a window clipped to rows 0..3, columns 0..2 with uniform weights
    assert th[0, 0] == pytest.approx(D.angles_rad[:4].mean(), abs=1e-12)
    assert ta[0, 0] == pytest.approx(D.delays_s[:3].mean(), rel=1e-12)
    assert np.all(gains == 0) and np.all(peaks == 0)


def test_domp_errors():
    array, D = make_problem(16, 32, 90, 40)
    Y = np.zeros((16, 32), np.complex64)
    args = dict(
        Y=Y,
        Phi_a=D.phi_a,
        Phi_d=D.phi_d,
        angles_rad=D.angles_rad,
        delays_s=D.delays_s,
        positions_m=array.positions_m,
        wavelength_m=LAM,
        spacing_hz=DF,
        iterations=2,
        half_widths=(1, 1),
        temperature=0.1,
    )
    cases = [
        (dict(angles_rad=D.angles_rad[:-1]), r"^domp: angles_rad must have shape \(90,\)"),
        (dict(delays_s=D.delays_s[:-1]), r"^domp: delays_s must have shape \(40,\)"),
        (dict(positions_m=array.positions_m[:3]), r"^domp: positions_m must have shape \(16,\)"),
        (dict(temperature=0.0), "^domp: temperature must be finite and > 0"),
        (dict(half_widths=(-1, 2)), r"^domp: half_widths must be >= 0"),
        (dict(wavelength_m=-1.0), "^domp: wavelength_m must be finite and > 0"),
        (dict(iterations=0), "^domp: iterations must be >= 1, got 0"),
        (dict(Phi_d=D.phi_d[:5]), "^domp: Phi_d has 5 rows but Y has 32 columns"),
        (dict(Y=np.full((16, 32), np.nan, np.complex64)), "^domp: Y contains NaN or Inf"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            isac.domp(**{**args, **change})
    with pytest.raises(ValueError, match="domp: temperature"):
        domp_inference(Y, D, array.positions_m, LAM, DF, 1, (1, 1), 0.0)
    with pytest.raises(ValueError, match="domp: iterations"):
        domp_inference(Y, D, array.positions_m, LAM, DF, 0)
    with pytest.raises(ValueError, match=r"domp: positions_m must have shape \(16,\)"):
        domp_inference(Y, D, array.positions_m[:3], LAM, DF, 1)


def test_mapper_batch_matches_single_frames(rng):
    """The bindings run one angle_delay_mapper per batch: same maps as frame by frame."""
    array, D = make_problem(64, 256, 720, 200, full=True)
    Y = (rng.standard_normal((3, 64, 256)) + 1j * rng.standard_normal((3, 64, 256))).astype(np.complex64)
    M = isac.angle_delay_map_complex(Y, D.phi_a, D.phi_d)
    for b in range(3):
        np.testing.assert_array_equal(M[b], isac.angle_delay_map_complex(Y[b], D.phi_a, D.phi_d))
    ref = (D.phi_a.conj().T.astype(np.complex128) @ Y[0]) @ D.phi_d.conj()
    np.testing.assert_allclose(M[0], ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_chirp_z_delay_path(rng):
    """A delay dictionary on a uniform grid is a partial DFT: the map takes the chirp-z
    path and equals the general product to float rounding; anything else takes GEMM."""
    array, D = make_problem(64, 256, 720, 200, full=True)
    assert isac.delay_dictionary_is_uniform_dft(D.phi_d)
    assert isac.delay_dictionary_is_uniform_dft(D.phi_d[:, ::-1])  # descending delays
    assert not isac.delay_dictionary_is_uniform_dft(D.phi_d * np.exp(1e-4j * rng.standard_normal(D.phi_d.shape)))
    # phases computed in float32 (as a float32 torch model would) are off by ~1e-5 rad
    s = np.arange(256, dtype=np.float32)[:, None]
    phi32 = np.exp(
        1j * (np.float32(-2 * np.pi * DF) * D.delays_s.astype(np.float32)[None, :] * s).astype(np.float32)
    ).astype(np.complex64)
    assert not isac.delay_dictionary_is_uniform_dft(phi32)
    Y = (rng.standard_normal((2, 64, 256)) + 1j * rng.standard_normal((2, 64, 256))).astype(np.complex64)
    fast = isac.angle_delay_map_complex(Y, D.phi_a, D.phi_d)
    slow = isac.angle_delay_map_complex(Y, D.phi_a, D.phi_d, chirp_z=False)
    ref = (D.phi_a.conj().T.astype(np.complex128) @ Y) @ D.phi_d.conj().astype(np.complex128)
    for M in (fast, slow):
        assert np.abs(M - ref).max() < 1e-6 * np.abs(ref).max()
    np.testing.assert_allclose(isac.angle_delay_map(Y, D.phi_a, D.phi_d), np.abs(fast) ** 2, rtol=1e-5)


def test_persistent_kernels_match_functions(rng):
    array, D = make_problem(16, 32, 90, 40)
    Y = (rng.standard_normal((3, 16, 32)) + 1j * rng.standard_normal((3, 16, 32))).astype(np.complex64)
    k = isac.OmpKernel(D.phi_a, D.phi_d)
    want = isac.omp(Y, D.phi_a, D.phi_d, 4)
    for got in (k(Y, 4), k(Y, 4, threads=2), k(Y[:1], 4)):
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b[: len(a)])
    hw = (3, 2)
    kd = isac.DompKernel(D.phi_a, D.phi_d, D.angles_rad, D.delays_s, array.positions_m, LAM, DF, hw, 0.1)
    want = isac.domp(Y, D.phi_a, D.phi_d, D.angles_rad, D.delays_s, array.positions_m, LAM, DF, 3, hw, 0.1)
    for got in (kd(Y, 3), kd(Y, 3, threads=3)):
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"^omp: Phi_a has 16 rows but Y has 8"):
        k(Y[:, :8], 2)
    with pytest.raises(ValueError, match=r"^domp: positions_m must have shape \(16,\)"):
        isac.DompKernel(D.phi_a, D.phi_d, D.angles_rad, D.delays_s, array.positions_m[:2], LAM, DF, hw, 0.1)


def test_domp_sector_restriction(rng):
    """The argmax inside the a-priori sector, as the trainer does; the window may reach
    outside it, where a stronger target can sit."""
    array, D = make_problem(16, 32, 90, 40, full=True)
    step = D.angles_rad[1] - D.angles_rad[0]
    strong, weak = D.angles_rad[40], D.angles_rad[44]
    Y = np.stack(
        [
            off_grid_echo(array, [strong, weak, -1.0], [120.0, 121.0, 150.0], [3.0, 1.0, 2.0], 32, 0.05, rng)
            for _ in range(3)
        ]
    )
    sector = (weak - 0.5 * step, weak + 10 * step)  # excludes the strong target's row, not its lobe
    ref = domp_inference(Y, D, array.positions_m, LAM, DF, 2, (6, 3), 0.1, sector_rad=sector)
    assert np.all(ref.angle_index >= 44) and np.all(ref.angle_index <= 54)
    L = isac.angle_delay_map(Y[0], D.phi_a, D.phi_d)
    assert L[40, ref.delay_index[0, 0]] > ref.peaks[0, 0]  # the window holds a cell above the peak
    per_frame = np.array([sector, (-1.2, -0.8), (0.01 + D.angles_rad[10], 0.02 + D.angles_rad[10])])
    for sec in (sector, per_frame, None):
        ref = domp_inference(Y, D, array.positions_m, LAM, DF, 2, (6, 3), 0.1, sector_rad=sec)
        got = isac.domp(
            Y, D.phi_a, D.phi_d, D.angles_rad, D.delays_s, array.positions_m, LAM, DF, 2, (6, 3), 0.1, sector_rad=sec
        )
        np.testing.assert_array_equal(got[4], ref.angle_index)
        np.testing.assert_array_equal(got[5], ref.delay_index)
        np.testing.assert_allclose(got[0], ref.angles_rad, rtol=0, atol=1e-3 * step)
        np.testing.assert_allclose(got[3], ref.gains, rtol=0, atol=2e-5 * np.abs(ref.gains).max())
    assert ref.angle_index[2, 0] != 10
    ref = domp_inference(Y, D, array.positions_m, LAM, DF, 1, (6, 3), 0.1, sector_rad=per_frame)
    assert ref.angle_index[2, 0] == 10  # a sector between two grid angles: the nearest one
    for bad in ((0.5, 0.1), (0.0, np.nan), np.zeros((2, 2))):
        with pytest.raises(ValueError, match="^domp: sector_rad must be"):
            isac.domp(
                Y,
                D.phi_a,
                D.phi_d,
                D.angles_rad,
                D.delays_s,
                array.positions_m,
                LAM,
                DF,
                1,
                (1, 1),
                0.1,
                sector_rad=bad,
            )
        with pytest.raises(ValueError, match="^domp: sector_rad must be"):
            domp_inference(Y, D, array.positions_m, LAM, DF, 1, (1, 1), 0.1, sector_rad=bad)


def test_map_threads(rng):
    array, D = make_problem(16, 32, 90, 40)
    Y = (rng.standard_normal((5, 16, 32)) + 1j * rng.standard_normal((5, 16, 32))).astype(np.complex64)
    for f in (isac.angle_delay_map, isac.angle_delay_map_complex):
        np.testing.assert_array_equal(f(Y, D.phi_a, D.phi_d, threads=3), f(Y, D.phi_a, D.phi_d))
    with pytest.raises(ValueError, match="^angle_delay_map: threads must be >= 1"):
        isac.angle_delay_map(Y, D.phi_a, D.phi_d, threads=0)


def test_symmetric_array_path(rng):
    """The nominal array is symmetric about its centre: Phi_a^H T is one real product of
    half the work, the same map as the general complex product; an impaired array (Example
    1 spacings) takes the general path."""
    array, D = make_problem(64, 256, 720, 200, full=True)
    assert isac.angle_dictionary_is_symmetric(D.phi_a)
    d = LAM / 2 + (LAM / 25) * rng.standard_normal(64)
    impaired = arr.spacing_array(d, LAM)
    assert not isac.angle_dictionary_is_symmetric(impaired.steering(D.angles_rad))
    odd = arr.nominal_array(15, LAM).steering(D.angles_rad)
    assert isac.angle_dictionary_is_symmetric(odd)
    Y = (rng.standard_normal((2, 64, 256)) + 1j * rng.standard_normal((2, 64, 256))).astype(np.complex64)
    ref = (D.phi_a.conj().T.astype(np.complex128) @ Y) @ D.phi_d.conj().astype(np.complex128)
    for kw in (dict(), dict(symmetric=False), dict(chirp_z=False), dict(chirp_z=False, symmetric=False)):
        M = isac.angle_delay_map_complex(Y, D.phi_a, D.phi_d, **kw)
        assert np.abs(M - ref).max() < 1e-6 * np.abs(ref).max(), kw
    Y15 = Y[:, :15]
    ref = (odd.conj().T.astype(np.complex128) @ Y15) @ D.phi_d.conj().astype(np.complex128)
    M = isac.angle_delay_map_complex(Y15, odd, D.phi_d)
    assert np.abs(M - ref).max() < 1e-6 * np.abs(ref).max()


def test_omp_domp_impaired_array(rng):
    """An impaired (Example 1) array: general complex GEMM on the angle side."""
    d = LAM / 2 + (LAM / 25) * rng.standard_normal(32)
    array = arr.spacing_array(d, LAM)
    angles = full_angle_grid(180)
    delays = delay_grid((10.0, 190.0), 60)
    D = Dictionaries(angles, delays, array.steering(angles), delay_dictionary(delays, 64, DF))
    assert not isac.angle_dictionary_is_symmetric(D.phi_a)
    Y = np.stack([off_grid_echo(array, [-0.4, 0.5], [60.0, 140.0], [1.0, 0.7j], 64, 0.05, rng) for _ in range(2)])
    assert_omp_equal(Y, D, 3)
    assert_domp_equal(Y, D, array, 3, (2, 2), 0.1)


def test_persistent_kernel_from_python_threads(rng):
    """Calls on one OmpKernel from several Python threads run one after the other."""
    import threading

    array, D = make_problem(16, 32, 90, 40)
    Y = (rng.standard_normal((4, 16, 32)) + 1j * rng.standard_normal((4, 16, 32))).astype(np.complex64)
    k = isac.OmpKernel(D.phi_a, D.phi_d)
    want = k(Y, 3)
    results = []

    def worker():
        for _ in range(20):
            results.append(k(Y, 3, threads=2))

    pool = [threading.Thread(target=worker) for _ in range(3)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert len(results) == 60
    for got in results:
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="ascending angle grid"):
        domp_inference(
            Y,
            Dictionaries(D.angles_rad[::-1], D.delays_s, D.phi_a[:, ::-1], D.phi_d),
            array.positions_m,
            LAM,
            DF,
            1,
            (1, 1),
            0.1,
            sector_rad=(0.1, 0.2),
        )
    with pytest.raises(ValueError, match="^domp: sector_rad needs an ascending angle grid"):
        isac.domp(
            Y,
            D.phi_a[:, ::-1],
            D.phi_d,
            D.angles_rad[::-1],
            D.delays_s,
            array.positions_m,
            LAM,
            DF,
            1,
            (1, 1),
            0.1,
            sector_rad=(0.1, 0.2),
        )
