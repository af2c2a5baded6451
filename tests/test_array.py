"""Array responses (Sec. II-A, Example 1) and the effect of impairments (Fig. 3)."""

import numpy as np
import pytest

from gnuradio.isac.model import array as arr
from gnuradio.isac.model.angle_delay import angle_delay_map
from gnuradio.isac.model.grids import angle_grid, delay_grid
from gnuradio.isac.model.ofdm import delay_dictionary, delay_vector

LAM = 299_792_458.0 / 60e9


def test_nominal_steering_matches_formula():
    K = 64
    th = np.deg2rad([-40.0, -3.0, 0.0, 25.0, 89.0])
    A = arr.nominal_array(K, LAM).steering(th)
    k = np.arange(K)[:, None]
    ref = np.exp(-2j * np.pi * (k - (K - 1) / 2) * (LAM / 2) * np.sin(th)[None] / LAM)
    assert A.shape == (K, 5) and A.dtype == np.complex64
    np.testing.assert_allclose(A, ref, atol=2e-6)
    np.testing.assert_allclose(np.abs(A), 1.0, atol=1e-6)
    # broadside is all ones; the array is centred so a(-theta) = conj(a(theta))
    np.testing.assert_allclose(A[:, 2], 1.0, atol=1e-7)
    np.testing.assert_allclose(arr.nominal_array(K, LAM).steering(-th), A.conj(), atol=2e-6)


def test_example1_with_nominal_spacing_is_nominal_and_perturbation_matches_formula():
    K = 8
    d = np.full(K, LAM / 2)
    th = np.linspace(-1.2, 1.2, 7)
    np.testing.assert_allclose(
        arr.spacing_array(d, LAM).steering(th), arr.nominal_array(K, LAM).steering(th), atol=1e-6
    )
    np.testing.assert_allclose(
        arr.spacing_array(d, LAM, "cumulative").steering(th), arr.nominal_array(K, LAM).steering(th), atol=1e-5
    )
    dp = d + np.linspace(-1e-4, 1e-4, K)
    k = np.arange(K)[:, None]
    ref = np.exp(-2j * np.pi * (k - (K - 1) / 2) * dp[:, None] * np.sin(th)[None] / LAM)
    np.testing.assert_allclose(arr.spacing_array(dp, LAM).steering(th), ref, atol=2e-6)


def test_drawn_spacings_are_reproducible_with_the_requested_spread():
    d1 = arr.draw_spacings(4096, LAM, 2e-4, seed=7)
    d2 = arr.draw_spacings(4096, LAM, 2e-4, seed=7)
    d3 = arr.draw_spacings(4096, LAM, 2e-4, seed=8)
    np.testing.assert_array_equal(d1, d2)
    assert not np.allclose(d1, d3)
    assert abs(d1.mean() - LAM / 2) < 4 * 2e-4 / np.sqrt(4096)
    assert abs(d1.std() / 2e-4 - 1) < 0.05
    np.testing.assert_array_equal(arr.draw_spacings(16, LAM, 0.0, seed=3), np.full(16, LAM / 2))


def test_cumulative_positions_never_cross():
    d = arr.draw_spacings(64, LAM, 2e-4, seed=1)
    p = arr.positions_cumulative(d)
    assert np.all(np.diff(p) > 0) and abs(p.mean()) < 1e-12
    # Example 1 positions can cross at this impairment size: that is the paper's model
    pe = arr.positions_example1(arr.draw_spacings(64, LAM, 2e-4, seed=1))
    assert pe.shape == (64,)


def test_dictionary_array_returns_nearest_grid_column():
    grid = np.deg2rad(np.linspace(-90, 90, 181))
    D = arr.nominal_array(16, LAM).steering(grid)
    da = arr.DictionaryArray(grid, D)
    got = da.steering(np.deg2rad([10.2, -44.6, 90.0, -90.0]))
    np.testing.assert_array_equal(got, D[:, [100, 45, 180, 0]])
    with pytest.raises(ValueError, match="K x N_theta"):
        arr.DictionaryArray(grid, D[:, :-1])
    with pytest.raises(ValueError, match="finite"):
        arr.DictionaryArray(grid, np.where(np.arange(181) == 3, np.nan, 1.0)[None].repeat(16, 0))


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="antennas"):
        arr.centred_index(0)
    with pytest.raises(ValueError, match="spacing std"):
        arr.draw_spacings(4, LAM, -1.0, 0)
    with pytest.raises(ValueError, match="impairment"):
        arr.spacing_array(np.ones(4), LAM, "bogus")
    with pytest.raises(ValueError, match="angles_rad"):
        arr.nominal_array(4, LAM).steering(np.array([np.nan]))


GRID = angle_grid(np.deg2rad((-60.0, 0.0)), 1200)


def _angle_cut(true_array, assumed_array, theta):
    """Angle cut (max over delay) of the map of a single noiseless target placed on grid
    points in angle and delay, Y = a_true(theta) rho(tau)^T, seen through ``assumed_array``."""
    S = 256
    delays = delay_grid((10.0, 190.0), 200)
    a = true_array.steering(np.array([theta]))[:, 0]
    Y = np.outer(a, delay_vector(delays[100], S, 120e3))
    return angle_delay_map(Y, assumed_array.steering(GRID), delay_dictionary(delays, S, 120e3)).max(axis=1)


def _widths_deg(cut):
    """(-3 dB width, -10 dB width, equivalent width = integral of the normalised cut) in degrees."""
    c = cut / cut.max()
    step = np.rad2deg(GRID[1] - GRID[0])
    above3 = np.rad2deg(GRID[c >= 0.5])
    return above3.max() - above3.min(), step * np.count_nonzero(c >= 0.1), step * c.sum()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_impairments_widen_the_target_lobe_and_lower_its_peak_fig3(seed):
    K, S = 64, 256
    nominal = arr.nominal_array(K, LAM)
    impaired = arr.spacing_array(arr.draw_spacings(K, LAM, 2e-4, seed=seed), LAM)
    theta = GRID[600]  # -30 deg
    ideal = _angle_cut(nominal, nominal, theta)
    w3, w10, weq = _widths_deg(ideal)
    # ideal: -3 dB width of a K-element ULA ~ 0.886 * 2/K / cos(theta) rad; peak (K S)^2
    expect = np.rad2deg(0.886 * 2 / K / np.cos(theta))
    assert abs(w3 - expect) / expect < 0.15
    assert ideal.max() == pytest.approx((K * S) ** 2, rel=1e-3)
    seen = _angle_cut(impaired, nominal, theta)
    i3, i10, ieq = _widths_deg(seen)
    assert i10 > 3 * w10 and ieq > 2.5 * weq  # the lobe spreads in angle
    assert seen.max() < 0.3 * ideal.max()  # and its peak drops (harder to tell from noise)
    # a receiver that knows the true array recovers the ideal peak
    assert _angle_cut(impaired, impaired, theta).max() == pytest.approx((K * S) ** 2, rel=1e-2)
