"""model.channels_stream: the channels driven by X = f x^T equal model.channels, and
channel_frame reproduces simulation.Simulator.frame."""

import numpy as np
import pytest

from gnuradio.isac.config import Scenario
from gnuradio.isac.model import array as arr
from gnuradio.isac.model.channels import comm_channel, comm_tap_variances, sensing_echo
from gnuradio.isac.model.channels_stream import (
    array_frame,
    channel_frame,
    comm_channel_from_frame,
    sensing_echo_from_frame,
)
from gnuradio.isac.model.ofdm import qpsk_map
from gnuradio.isac.model.scene import Scene, sensing_gain_variance
from gnuradio.isac.simulation import Simulator, frame_rng

LAM = 299_792_458.0 / 60e9
K, S, DF = 16, 64, 120e3


@pytest.fixture
def setup(rng):
    a = arr.spacing_array(arr.draw_spacings(K, LAM, 2e-4, 3), LAM)
    f = (rng.standard_normal(K) + 1j * rng.standard_normal(K)).astype(np.complex64)
    f /= np.linalg.norm(f)
    x = qpsk_map(rng.integers(0, 4, S))
    scene = Scene(np.deg2rad([-30.0, -22.5, -35.0]), [40.0, 150.0, 80.0], [1 + 0.5j, -0.3j, 2.0])
    return a, f, x, scene


def test_array_frame_is_outer_product_antenna_major(setup):
    _, f, x, _ = setup
    X = array_frame(f, x)
    assert X.shape == (K, S) and X.dtype == np.complex64
    flat = X.reshape(-1)
    assert flat[3 * S + 5] == np.complex64(f[3] * x[5])
    assert array_frame(f, np.stack([x, x])).shape == (2, K, S)


def test_sensing_echo_from_frame_equals_eq1(setup):
    a, f, x, scene = setup
    X = array_frame(f, x)
    np.testing.assert_allclose(
        sensing_echo_from_frame(a, X, scene, DF, 1.0, None),
        sensing_echo(a, f, x, scene, DF, 1.0, None),
        rtol=0,
        atol=1e-5,
    )
    # same noise draws from the same generator
    y1 = sensing_echo_from_frame(a, X, scene, DF, 1.0, np.random.default_rng(7))
    y2 = sensing_echo(a, f, x, scene, DF, 1.0, np.random.default_rng(7))
    np.testing.assert_allclose(y1, y2, rtol=0, atol=1e-5)
    assert not np.allclose(y1, sensing_echo(a, f, x, scene, DF, 1.0, None), atol=1e-2)


def test_comm_channel_from_frame_equals_eq4(setup):
    a, f, x, _ = setup
    taps = comm_tap_variances(5, 20.0, S, 1.0)
    X = array_frame(f, x)
    y1, k1 = comm_channel_from_frame(a, X, f, 0.7, taps, 1.0, np.random.default_rng(3))
    y2, k2 = comm_channel(a, f, x, 0.7, taps, 1.0, np.random.default_rng(3))
    np.testing.assert_array_equal(k1, k2)  # kappa is computed the same way: bit-exact
    np.testing.assert_allclose(y1, y2, rtol=0, atol=1e-4 * np.abs(y2).max())
    _, k3 = comm_channel_from_frame(a, X, None, 0.7, taps, 1.0, np.random.default_rng(3))
    assert np.all(np.isnan(k3))


def test_frame_shape_is_checked(setup):
    a, f, x, scene = setup
    with pytest.raises(ValueError, match="K = 16"):
        sensing_echo_from_frame(a, np.zeros((K + 1, S)), scene, DF, 1.0, None)


@pytest.mark.parametrize("fixed", [False, True])
def test_channel_frame_reproduces_simulator_frame(fixed):
    sc = Scenario.default().with_overrides({"array.antennas": K, "ofdm.subcarriers": S, "run.seed": 5})
    scene = Scene(np.deg2rad([-30.0, -25.0]), [50.0, 120.0], [3.0, 1j]) if fixed else None
    sim = Simulator(sc, scene=scene)
    g2 = sensing_gain_variance(sc.scene["snr_sensing_db"], K, 1.0)
    for i in range(6):
        messages, symbols, ref_scene, y_r, y_c, kappa, phi = sim.frame(i, "test")
        out = channel_frame(
            frame_rng(5, "test", i),
            sim.array,
            array_frame(sim.precoder, symbols),
            sim.precoder,
            max_targets=sc.scene["max_targets"],
            sector_rad=sc.target_sector_rad,
            range_m=sc.range_interval_m,
            gain_variance=g2,
            comm_sector_rad=sc.comm_sector_rad,
            spacing_hz=DF,
            noise_power=1.0,
            tap_variances=sim.tap_variances,
            scene=scene,
        )
        got_scene, got_y, got_yc, got_kappa, got_phi = out
        np.testing.assert_array_equal(got_scene.angles_rad, ref_scene.angles_rad)
        np.testing.assert_array_equal(got_scene.ranges_m, ref_scene.ranges_m)
        np.testing.assert_array_equal(got_scene.gains, ref_scene.gains)
        assert got_phi == phi
        np.testing.assert_array_equal(got_kappa, kappa)
        np.testing.assert_allclose(got_y, y_r, rtol=0, atol=1e-4)
        np.testing.assert_allclose(got_yc, y_c, rtol=0, atol=1e-4 * max(1.0, np.abs(y_c).max()))
