"""Moving targets over frames of M OFDM symbols (model/doppler.py, the echo of
model/channels_stream.py, the angle-delay-Doppler map and OMP of model/angle_delay.py and
model/omp.py): the sign and size of the Doppler shift, the configuration's limits, the echo's
closed form per symbol, the time-domain (ICI) echo against its closed form, the map against the
explicit correlation, OMP resolving two targets by speed alone, and the paper's one-symbol frame
unchanged."""

import numpy as np
import pytest

from gnuradio.isac.config import SPEED_OF_LIGHT, ConfigError, Scenario
from gnuradio.isac.model import doppler as dop
from gnuradio.isac.model.angle_delay import (
    angle_delay_doppler_map,
    angle_delay_doppler_map_complex,
    angle_delay_map_complex,
    map_views,
)
from gnuradio.isac.model.array import scenario_nominal_array
from gnuradio.isac.model.channels_stream import Motion, array_frame, channel_frame, sensing_echo_from_frame
from gnuradio.isac.model.dictionaries import doppler_speeds, omp_dictionaries
from gnuradio.isac.model.geometry import FrameGeometry
from gnuradio.isac.model.grids import range_to_delay
from gnuradio.isac.model.ofdm import delay_vector, qpsk_map, random_messages
from gnuradio.isac.model.omp import Dictionaries, omp, omp_doppler
from gnuradio.isac.model.reciprocal import reciprocal_filter
from gnuradio.isac.model.scene import Scene, random_scene
from gnuradio.isac.simulation import Simulator, StreamChannel, frame_rng

SMALL = {
    "array.antennas": 8,
    "ofdm.subcarriers": 32,
    "scene.max_targets": 2,
    "receiver.angle_grid": 41,
    "receiver.delay_grid": 41,
    "run.frames": 4,
}
MOVING = {**SMALL, "ofdm.symbols": 16, "scene.speed_mps": [-30.0, 30.0]}


def test_doppler_sign_and_size():
    """Approaching (v > 0) is a positive shift f_D = 2 v f_c / c: 30 m/s at 60 GHz is 12.0 kHz."""
    assert (
        dop.doppler_hz(30.0, 60e9) == pytest.approx(2 * 30.0 * 60e9 / SPEED_OF_LIGHT) == pytest.approx(12008.3, abs=0.1)
    )
    assert dop.doppler_hz(-30.0, 60e9) < 0
    assert dop.speed_mps(dop.doppler_hz(17.5, 28e9), 28e9) == pytest.approx(17.5)
    d = dop.doppler_phases(np.array([10.0]), 4, 1e-5, 60e9)[0]
    np.testing.assert_allclose(np.angle(d[1] / d[0]), 2 * np.pi * dop.doppler_hz(10.0, 60e9) * 1e-5)


def test_scenario_keys_their_limits_and_derived_quantities():
    sc = Scenario.default()
    assert sc.hash() == "321bd814ba1ac987"  # the default scenario (and the shipped weights) unchanged
    assert FrameGeometry.of(sc).symbols == 1 and sc.get("ofdm.ici") == "off"
    m = Scenario.default().with_overrides(MOVING)
    assert m.hash() != Scenario.default().with_overrides(SMALL).hash()
    T_O = 1.25 / 120e3
    assert m.symbol_duration_s == pytest.approx(T_O)
    assert m.unambiguous_speed_mps == pytest.approx(m.wavelength_m / (4 * T_O)) == pytest.approx(119.917, abs=1e-3)
    assert m.speed_resolution_mps == pytest.approx(m.wavelength_m / (2 * 16 * T_O))
    assert FrameGeometry.of(m).array_shape == (16, 8, 32)
    with pytest.raises(ConfigError, match=r"scene.speed_mps = \[-200, 0\] m/s exceeds the unambiguous speed"):
        Scenario.default().with_overrides({**MOVING, "scene.speed_mps": [-200.0, 0.0]})
    with pytest.raises(ConfigError, match=r"scene.speed_mps must satisfy"):
        Scenario.default().with_overrides({**MOVING, "scene.speed_mps": [5.0, 3.0]})
    Scenario.default().with_overrides({**MOVING, "scene.speed_mps": [5.0, 5.0]})  # one speed is an interval
    with pytest.raises(ConfigError, match=r"beyond the 78.07 m whose delays fit in the cyclic prefix"):
        Scenario.default().with_overrides({**MOVING, "ofdm.cp_fraction": 0.0625})
    with pytest.raises(ConfigError, match=r"ofdm.symbols must be an integer >= 1 and <= 4096"):
        Scenario.default().with_overrides({"ofdm.symbols": 0})
    Scenario.default().with_overrides({"ofdm.cp_fraction": 0.0625})  # one symbol: the paper's frame, no rule


def test_static_scenes_are_drawn_as_before_and_moving_ones_inside_the_interval():
    old = random_scene(np.random.default_rng(5), 5, (-0.7, -0.3), (10.0, 190.0), 2.0)
    again = random_scene(np.random.default_rng(5), 5, (-0.7, -0.3), (10.0, 190.0), 2.0, (0.0, 0.0))
    assert not old.moving and np.array_equal(old.speeds_mps, np.zeros(old.count))
    for a in ("angles_rad", "ranges_m", "gains"):
        np.testing.assert_array_equal(getattr(old, a), getattr(again, a))
    rng = np.random.default_rng(6)
    s = [random_scene(rng, 5, (-0.7, -0.3), (10.0, 190.0), 2.0, (-30.0, 20.0)) for _ in range(50)]
    v = np.concatenate([x.speeds_mps for x in s])
    assert v.size > 50 and v.min() >= -30 and v.max() <= 20 and v.std() > 10


def one_target_echo(sc, speed, angle_deg=-30.0, range_m=50.0, gain=3.0 + 1j, ici=False, seed=1):
    arr = scenario_nominal_array(sc)
    g = FrameGeometry.of(sc)
    x = qpsk_map(random_messages(np.random.default_rng(seed), g.symbol_shape))
    f = arr.steering(np.deg2rad([angle_deg]))[:, 0].conj() / np.sqrt(g.antennas)
    scene = Scene(np.deg2rad([angle_deg]), [range_m], [gain], [speed])
    motion = Motion(sc.symbol_duration_s, sc.get("array.carrier_hz"), sc.ofdm["cp_fraction"], ici)
    y = sensing_echo_from_frame(arr, array_frame(f, x), scene, sc.ofdm["spacing_hz"], 1.0, None, motion)
    return arr, f, x, scene, y


def test_echo_of_m_symbols_is_eq_1_per_symbol_with_the_doppler_phase():
    """Noiseless, one target: Y~[m, k, s] = psi a_k (a^T f) rho_s exp(j 2 pi f_D m T_O) / sqrt(S)."""
    sc = Scenario.default().with_overrides(MOVING)
    arr, f, x, scene, y = one_target_echo(sc, 21.0)
    yt = reciprocal_filter(y, x)
    a = arr.steering(scene.angles_rad)[:, 0].astype(complex)
    rho = delay_vector(range_to_delay(scene.ranges_m), 32, sc.ofdm["spacing_hz"])[0]
    d = dop.doppler_phases(np.array([21.0]), 16, sc.symbol_duration_s, 60e9)[0]
    want = scene.gains[0] * (a @ f) / np.sqrt(32) * d[:, None, None] * a[None, :, None] * rho[None, None, :]
    np.testing.assert_allclose(yt, want, rtol=2e-5, atol=2e-6 * np.abs(want).max())
    # static: every symbol the same echo (after the data are removed), which is (1)'s
    _, _, x0, s0, y0 = one_target_echo(sc, 0.0)
    yt0 = reciprocal_filter(y0, x0)
    np.testing.assert_allclose(yt0, np.broadcast_to(yt0[0], yt0.shape), rtol=1e-5, atol=1e-6)


def test_time_domain_echo_equals_the_frequency_model_at_zero_speed_and_leaks_as_the_closed_form():
    sc = Scenario.default().with_overrides({**MOVING, "ofdm.ici": "on"})
    _, _, _, _, y_on = one_target_echo(sc, 0.0, ici=True)
    _, _, _, _, y_off = one_target_echo(sc, 0.0, ici=False)
    np.testing.assert_allclose(y_on, y_off, rtol=0, atol=1e-5 * np.abs(y_off).max())
    # ICI: the own-carrier part D(eps) and the leaked power 1 - |D(eps)|^2 for random QPSK data
    S, rng = 64, np.random.default_rng(3)
    for eps in (0.05, 0.2, 0.45):
        X = qpsk_map(random_messages(rng, (400, S)))
        Y = dop.time_domain_echo(X, eps * 120e3, 0, 1 / 120e3, 0.0, 120e3)
        D = dop.ici_own_carrier(eps, S)
        leaked = np.sum(np.abs(Y - D * X) ** 2) / np.sum(np.abs(Y) ** 2)
        assert leaked == pytest.approx(float(dop.ici_power_fraction(eps, S)), rel=0.05)
        assert float(dop.ici_power_fraction(eps, S)) == pytest.approx(1 - np.sinc(eps) ** 2, rel=2e-3)
        # the own-carrier factor is the mean of the rotation over the useful samples
        assert D == pytest.approx(np.mean(np.exp(2j * np.pi * eps * np.arange(S) / S)))


def test_angle_delay_doppler_map_is_the_explicit_correlation():
    rng = np.random.default_rng(4)
    M, K, S, Na, Nd, Nv = 3, 4, 5, 6, 7, 2
    c = lambda *s: (rng.normal(size=s) + 1j * rng.normal(size=s)).astype(np.complex64)  # noqa: E731
    y, pa, pd, pv = c(2, M, K, S), c(K, Na), c(S, Nd), c(M, Nv)
    got = angle_delay_doppler_map_complex(y, pa, pd, pv)
    want = np.einsum("ki,bmks,sj,ml->bijl", pa.conj(), y.astype(complex), pd.conj(), pv.conj())
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    # one symbol and the speed 0: the map (10)
    one = angle_delay_doppler_map_complex(y[:, :1], pa, pd, np.ones((1, 1), np.complex64))
    np.testing.assert_allclose(one[..., 0], angle_delay_map_complex(y[:, 0], pa, pd), rtol=1e-5)


def test_map_views_are_the_maxima_of_the_3d_map_over_speed_and_over_angle():
    """map_views of a power map (B, N_theta, N_tau, N_v), element by element against a loop: the
    angle-delay view max over l of P[b, i, j, l], the range-velocity view (speed-major) max over i;
    one frame (no batch axis) alike; with one speed the angle-delay view is the map itself."""
    rng = np.random.default_rng(9)
    B, Na, Nd, Nv = 2, 5, 4, 3
    P = rng.exponential(size=(B, Na, Nd, Nv)).astype(np.float32)
    ad, rv = map_views(P)
    assert ad.shape == (B, Na, Nd) and rv.shape == (B, Nv, Nd) and ad.dtype == rv.dtype == np.float32
    for b in range(B):
        for j in range(Nd):
            for i in range(Na):
                assert ad[b, i, j] == max(P[b, i, j, lv] for lv in range(Nv))
            for lv in range(Nv):
                assert rv[b, lv, j] == max(P[b, i, j, lv] for i in range(Na))
    ad1, rv1 = map_views(P[1])
    np.testing.assert_array_equal(ad1, ad[1])
    np.testing.assert_array_equal(rv1, rv[1])
    ad0, rv0 = map_views(P[..., :1])
    np.testing.assert_array_equal(ad0, P[..., 0])
    np.testing.assert_array_equal(rv0[:, 0], P[..., 0].max(axis=1))  # a range profile
    # the power map is |M|^2 of the complex one, in float32
    c = lambda *s: (rng.normal(size=s) + 1j * rng.normal(size=s)).astype(np.complex64)  # noqa: E731
    y, pa, pd, pv = c(2, 3, 4, 5), c(4, 6), c(5, 7), c(3, 2)
    m = angle_delay_doppler_map_complex(y, pa, pd, pv)
    power = angle_delay_doppler_map(y, pa, pd, pv)
    assert power.dtype == np.float32 and power.shape == (2, 6, 7, 2)
    np.testing.assert_allclose(power, np.abs(m) ** 2, rtol=1e-6)


@pytest.mark.parametrize(
    "overrides, points",
    [
        ({}, 1),  # the paper's frame: no Doppler dictionary
        ({"scene.speed_mps": [-30.0, 30.0]}, 1),  # one symbol, moving targets: still one speed (0)
        (MOVING, 10),  # 60 m/s over lambda / (2 M T_O) = 14.99 m/s at M = 16: ceil(8.005) + 1
        ({**MOVING, "ofdm.symbols": 64}, 34),  # 3.75 m/s: ceil(32.02) + 1 (docs/performance.md)
        ({**MOVING, "scene.speed_mps": [-119.0, 119.0]}, 33),
        ({**MOVING, "scene.speed_mps": [0.0, 7.0]}, 2),  # 7 m/s <= half the resolution: the two ends
        ({**MOVING, "scene.speed_mps": [5.0, 5.0]}, 1),  # one speed
        ({**MOVING, "receiver.doppler_grid": 7}, 7),
        ({**MOVING, "scene.speed_mps": [5.0, 5.0], "receiver.doppler_grid": 7}, 1),
    ],
)
def test_doppler_points_is_the_length_of_the_receivers_speed_grid(overrides, points):
    """Scenario.doppler_points (N_v, the one definition of the grid's size: the map stream and the
    display size their range-velocity maps with it) is the length of model.dictionaries.
    doppler_speeds and of the receiver's Doppler dictionary; the automatic grid is the fewest
    points from v_min to v_max whose step is at most half the resolution lambda / (2 M T_O)."""
    sc = Scenario.default().with_overrides({**SMALL, **overrides})
    speeds = doppler_speeds(sc)
    assert sc.doppler_points == len(speeds) == points
    M = sc.get("ofdm.symbols")
    D = omp_dictionaries(sc, scenario_nominal_array(sc))
    if M == 1:
        np.testing.assert_array_equal(speeds, [0.0])
        assert not D.doppler
        return
    lo, hi = sc.speed_interval_mps
    assert D.phi_v.shape == (M, points)
    np.testing.assert_array_equal(D.speeds_mps, speeds)
    assert speeds[0] == lo and speeds[-1] == hi
    if hi > lo and not sc.get("receiver.doppler_grid"):
        half = sc.speed_resolution_mps / 2
        assert np.diff(speeds).max() <= half * (1 + 1e-12)
        assert points == 2 or (hi - lo) / (points - 2) > half  # one point fewer would not do


def test_omp_resolves_two_targets_at_the_same_angle_and_range_by_speed():
    """Two targets in one angle-range cell, 2 resolutions apart in speed: OMP over the Doppler
    dictionary finds both speeds (to the grid); at one symbol they would be one target."""
    sc = Scenario.default().with_overrides(MOVING)
    res = sc.speed_resolution_mps
    arr = scenario_nominal_array(sc)
    x = qpsk_map(random_messages(np.random.default_rng(2), (16, 32)))
    f = arr.steering(np.deg2rad([-30.0]))[:, 0].conj() / np.sqrt(8)
    v = np.array([-0.9 * res, 1.1 * res])
    scene = Scene(np.deg2rad([-30.0, -30.0]), [60.0, 60.0], [10.0, 9.0j], v)
    y = sensing_echo_from_frame(
        arr, array_frame(f, x), scene, sc.ofdm["spacing_hz"], 1e-3, np.random.default_rng(0), Motion.of(sc)
    )
    D = omp_dictionaries(sc, arr)
    assert D.doppler and D.phi_v.shape == (16, D.speeds_mps.size) and D.speeds_mps.size >= 2 * 60 / res
    r = omp_doppler(reciprocal_filter(y, x), D, 2)
    step = D.speeds_mps[1] - D.speeds_mps[0]
    np.testing.assert_allclose(np.sort(r.speeds_mps[0]), np.sort(v), atol=step / 2 + 1e-9)
    np.testing.assert_allclose(np.rad2deg(r.angles_rad[0]), -30.0, atol=0.6)
    assert np.all(r.peaks[0] > 1e3 * 1e-3 * 8 * 32 * 16)  # both far above the noise map


def test_omp_doppler_on_one_symbol_is_omp():
    """M = 1 and the one speed 0: the angle-delay-Doppler OMP picks what Algorithm 1 picks."""
    sc = Scenario.default().with_overrides(SMALL)
    arr = scenario_nominal_array(sc)
    D = omp_dictionaries(sc, arr)
    D3 = Dictionaries(D.angles_rad, D.delays_s, D.phi_a, D.phi_d, np.zeros(1), np.ones((1, 1), np.complex64))
    frames = Simulator(sc).frames(0, 4)
    y = reciprocal_filter(frames.y_sensing, frames.symbols)
    a, b = omp(y, D, 2), omp_doppler(y[:, None], D3, 2)
    np.testing.assert_array_equal(a.angle_index, b.angle_index)
    np.testing.assert_array_equal(a.delay_index, b.delay_index)
    np.testing.assert_allclose(a.peaks, b.peaks, rtol=1e-4)
    assert np.all(b.speeds_mps == 0)


def test_streamed_channel_equals_the_simulator_for_m_symbols():
    """The channel block's model (StreamChannel, numpy: moving targets) draws the Simulator's
    frames bit for bit from the transmitted array frames X."""
    sc = Scenario.default().with_overrides(MOVING)
    sim = Simulator(sc)
    frames = sim.frames(0, 3)
    X = np.stack([array_frame(sim.precoder, frames.symbols[b]) for b in range(3)])
    ch = StreamChannel(sc)
    assert not ch.use_cpp
    out = ch.frames(0, X, sim.precoder)
    np.testing.assert_array_equal(out.y_sensing, frames.y_sensing)
    np.testing.assert_array_equal(out.y_comm, frames.y_comm)
    np.testing.assert_array_equal(out.csi, frames.csi)
    for b in range(3):
        np.testing.assert_array_equal(out.speeds_mps[b, : out.counts[b]], frames.scenes[b].speeds_mps)
    assert frames.y_sensing.shape == (3, 16, 8, 32) and frames.messages.shape == (3, 16, 32)
    # the draws' order: a channel fed the same X from the same generator gives the same frame
    scene, y_r, *_ = channel_frame(
        frame_rng(sc.run["seed"], "test", 1), sim.array, X[1], sim.precoder, **ch.parameters()
    )
    np.testing.assert_array_equal(y_r, frames.y_sensing[1])


def test_scores_keep_speed_errors_and_the_velocity_aware_gospa():
    """One target at p, speed 10 m/s; one estimate at p, 13 m/s: the paper's GOSPA (w = 0) sees no
    error, the velocity-aware one (w = 2 s) sees |w dv| = 6 m; the speed RMSE is 3 m/s either way."""
    from gnuradio.isac.scoring import Scores

    args = (np.array([[0.3]]), np.array([[50.0]]), [1], np.array([[0.3]]), np.array([[50.0]]), [1])
    for w, want in ((0.0, 0.0), (2.0, 6.0)):
        s = Scores(2, 90.0, 2.0, 2.0, w)
        g = s.add_sensing_batch(*args, np.array([[10.0]]), np.array([[13.0]]))
        assert g[0] == pytest.approx(want) and s.summary()["speed_rmse_mps"] == pytest.approx(3.0)
    # an estimate without a speed (one-symbol frames: NaN) adds no speed error
    s = Scores(2, 90.0, 2.0, 2.0)
    s.add_sensing_batch(*args, np.array([[10.0]]), np.array([[np.nan]]))
    assert np.isnan(s.summary()["speed_rmse_mps"]) and s.summary()["gospa"] == 0.0
    assert (
        Scores.for_scenario(Scenario.default().with_overrides({"receiver.gospa_speed_weight_s": 0.5})).speed_weight
        == 0.5
    )


def test_the_memory_estimate_grows_with_the_symbols_and_names_them():
    from gnuradio.isac.resources import dominant_key, estimate_memory_bytes, memory_terms

    one = Scenario.default()
    many = one.with_overrides({"ofdm.symbols": 16, "scene.speed_mps": [-30.0, 30.0]})
    t1, t16 = memory_terms(one), memory_terms(many)
    assert t16["frames"] == pytest.approx(16 * t1["frames"], rel=0.01)
    assert t16["maps"] > 10 * t1["maps"] and estimate_memory_bytes(many) > 10 * estimate_memory_bytes(one)
    assert dominant_key(many) == "ofdm.symbols"


def test_evaluate_measures_speeds_over_m_symbols():
    """isac-eval's evaluation on moving targets: the speeds are estimated (finite RMSE, within a
    grid step of the truth on most detections) and the numpy and C++ kernels agree."""
    from gnuradio.isac.evaluation import evaluate

    sc = Scenario.default().with_overrides(
        {
            **MOVING,
            "scene.snr_sensing_db": 25.0,
            "run.frames": 30,
            "run.calibration_frames": 60,
            "run.batch": 30,
        }
    )
    a = evaluate(sc, "baseline", kernel="numpy", progress=False)
    b = evaluate(sc, "baseline", kernel="cpp", progress=False)
    assert a["p_md"] < 0.5 and 0 < a["speed_rmse_mps"] < sc.speed_resolution_mps
    for key in ("p_md", "p_fa", "gospa", "speed_rmse_mps"):
        assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-9), key
    with pytest.raises(ValueError, match="receiver 'domp' runs on frames of one OFDM symbol"):
        evaluate(sc, "perfect", receiver="domp", progress=False)
