"""Differentiable OMP (trainer/domp.py): accuracy on and off the grid, sector restriction,
gradient flow, joint LS gains."""

import numpy as np
import pytest
import torch  # a hard dependency (tools/requirements.txt): a missing torch must fail, not skip

torch.set_num_threads(1)

from gnuradio.isac.config import Scenario  # noqa: E402
from gnuradio.isac.model import array as arr  # noqa: E402
from gnuradio.isac.model import impairments as imp  # noqa: E402
from gnuradio.isac.model.channels import sensing_echo  # noqa: E402
from gnuradio.isac.model.grids import delay_grid, delay_to_range, full_angle_grid  # noqa: E402
from gnuradio.isac.model.ofdm import qpsk_map  # noqa: E402
from gnuradio.isac.model.reciprocal import reciprocal_filter  # noqa: E402
from gnuradio.isac.model.scene import Scene  # noqa: E402
from gnuradio.isac.nn import arrays as tm  # noqa: E402
from gnuradio.isac.simulation import baseline_precoder  # noqa: E402
from gnuradio.isac.trainer.domp import DifferentiableOmp, joint_ls_gains, sector_rows, window_halfwidths  # noqa: E402

SC = Scenario.default()
LAM = SC.wavelength_m
K, S = 64, SC.ofdm["subcarriers"]
DF = SC.ofdm["spacing_hz"]
GRID = full_angle_grid(720)
DELAYS = delay_grid(SC.range_interval_m, 200)
ASTEP = GRID[1] - GRID[0]
RSTEP = (SC.range_interval_m[1] - SC.range_interval_m[0]) / 199
SECTOR = SC.target_sector_rad


def frames(array, angles, ranges, batch=2, noise=None, seed=0):
    rng = np.random.default_rng(seed)
    f = baseline_precoder(SC)
    out = []
    for _ in range(batch):
        x = qpsk_map(rng.integers(0, 4, S))
        scene = Scene(angles, ranges, np.full(len(angles), 3.0 + 0j))
        y = sensing_echo(array, f, x, scene, DF, 1.0, noise if noise is None else rng)
        out.append(reciprocal_filter(y, x))
    return torch.as_tensor(np.stack(out))


def run(model, y, iterations, sector=SECTOR):
    d = DifferentiableOmp(model, DELAYS, S, DF)
    B = y.shape[0]
    lo = torch.full((B,), sector[0], dtype=torch.float64)
    hi = torch.full((B,), sector[1], dtype=torch.float64)
    return d(y, iterations, lo, hi)


def test_window_halfwidths_follow_the_resolutions_16():
    assert window_halfwidths(K, S, DF, GRID, DELAYS) == (7, 5)  # paper-notes: 7 x 5 pixels for K=64


def test_sector_rows_cover_exactly_the_grid_angles_inside_each_sector():
    g = torch.as_tensor(GRID)
    idx, ok = sector_rows(g, torch.tensor([-0.5, 0.1]), torch.tensor([-0.3, 0.1 + 1e-6]), 2)
    for b, (lo, hi) in enumerate([(-0.5, -0.3), (0.1, 0.1 + 1e-6)]):
        inside = np.nonzero((GRID >= lo) & (GRID <= hi))[0]
        got = idx[b][ok[b]].numpy()
        if inside.size:
            np.testing.assert_array_equal(got, inside)
        else:  # narrower than a grid step: the nearest grid angle
            assert got.tolist() == [int(np.argmin(np.abs(GRID - (lo + hi) / 2)))]


@pytest.mark.parametrize("kind", ["spacing", "dictionary"])
def test_noiseless_on_grid_targets_are_recovered(kind):
    nominal = arr.nominal_array(K, LAM)
    model = tm.SpacingArray(K, LAM, 720) if kind == "spacing" else tm.DictionaryArray(K, LAM, 720)
    ai, di = [222, 250, 275], [30, 100, 160]
    y = frames(nominal, GRID[ai], delay_to_range(DELAYS[di]))
    r = run(model, y, 3)
    for b in range(2):
        order = np.argsort(r.angles_rad[b].detach().numpy())
        np.testing.assert_allclose(r.angles_rad[b].detach().numpy()[order], GRID[ai], atol=0.05 * ASTEP)
        np.testing.assert_allclose(r.ranges_m[b].detach().numpy()[order], delay_to_range(DELAYS[di]), atol=0.05 * RSTEP)
        assert sorted(r.angle_index[b].tolist()) == ai
    # joint LS gains of the true atoms recover the true gains (3)
    # the joint LS gains (13) are alpha_t = psi_t a(theta_t)^T f / sqrt(S) of eq. (3)
    alpha = 3.0 * (nominal.steering(GRID[ai]).T @ baseline_precoder(SC)) / np.sqrt(S)
    order = np.argsort(r.angle_index[0].numpy())
    np.testing.assert_allclose(r.gains[0].numpy()[order], alpha, rtol=1e-2)


def test_off_grid_targets_beat_the_grid_step_of_plain_omp():
    """Half-way between grid points the argmax of plain OMP on the same grid errs by half a
    step; the soft estimate is much closer (high SNR)."""
    nominal = arr.nominal_array(K, LAM)
    ang = GRID[[222, 250, 275]] + 0.5 * ASTEP
    rng_m = delay_to_range(DELAYS[[30, 100, 160]]) + 0.5 * RSTEP
    y = frames(nominal, ang, rng_m, noise=True)  # 10 log10(9 * 64) = 27.6 dB integrated SNR per target
    r = run(tm.SpacingArray(K, LAM, 720), y, 3)
    for b in range(2):
        order = np.argsort(r.angles_rad[b].detach().numpy())
        a_err = np.abs(r.angles_rad[b].detach().numpy()[order] - ang)
        r_err = np.abs(r.ranges_m[b].detach().numpy()[order] - rng_m)
        assert a_err.max() < 0.2 * ASTEP, a_err / ASTEP
        assert r_err.max() < 0.2 * RSTEP, r_err / RSTEP


def test_argmax_is_restricted_to_the_a_priori_sector():
    nominal = arr.nominal_array(K, LAM)
    # a strong target outside the sector and a weaker one inside: Y~ of eq. (3)
    a = tm.steering_matrix(torch.as_tensor(nominal.positions_m), torch.as_tensor(np.deg2rad([10.0, -30.0])), LAM)
    d = tm.delay_vector(torch.as_tensor(2 * np.array([50.0, 120.0]) / 299_792_458.0), S, DF)
    y = (torch.tensor([5.0, 1.0], dtype=torch.complex64)[:, None, None] * a[:, :, None] * d[:, None, :]).sum(0)[None]
    r = run(tm.SpacingArray(K, LAM, 720), y, 1)
    assert abs(np.rad2deg(r.angles_rad.item()) + 30.0) < 0.1 and abs(r.ranges_m.item() - 120.0) < 0.2
    r = run(tm.SpacingArray(K, LAM, 720), y, 1, sector=(-np.pi / 2, np.pi / 2))
    assert abs(np.rad2deg(r.angles_rad.item()) - 10.0) < 0.1


def test_gradients_flow_to_the_spacings_and_to_the_signal_not_through_the_argmax():
    true = imp.true_array(SC)
    y = frames(true, np.deg2rad([-33.0, -25.0]), [40.0, 140.0], noise=True)
    y.requires_grad_(True)
    model = tm.SpacingArray(K, LAM, 720)
    r = run(model, y, 2)
    (r.angles_rad.sum() + r.ranges_m.sum() * 1e-3).backward()
    assert torch.isfinite(model.u.grad).all() and model.u.grad.abs().max() > 0
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().max() > 0
    assert not r.peaks.requires_grad and not r.gains.requires_grad


def test_dictionary_learning_gets_gradients_only_on_window_columns():
    nominal = arr.nominal_array(K, LAM)
    y = frames(nominal, np.deg2rad([-30.0]), [100.0], batch=1)
    model = tm.DictionaryArray(K, LAM, 720)
    r = run(model, y, 1)
    r.angles_rad.sum().backward()
    touched = np.nonzero(model.A.grad.abs().sum(0).numpy())[0]
    i = int(r.angle_index[0, 0])
    assert touched.min() >= i - 7 and touched.max() <= i + 7 and len(touched) > 3


def test_joint_ls_gains_solve_the_gram_system():
    rng = np.random.default_rng(5)
    a = torch.as_tensor(arr.nominal_array(K, LAM).steering(np.deg2rad([-30.0, -29.0, 10.0])).T[None])
    d = tm.delay_vector(torch.as_tensor([[3e-7, 3.05e-7, 9e-7]]), S, DF)
    alpha = torch.as_tensor((rng.standard_normal(3) + 1j * rng.standard_normal(3))[None], dtype=torch.complex64)
    y = torch.einsum("btk,bt,bts->bks", a, alpha, d)
    np.testing.assert_allclose(joint_ls_gains(y, a, d).numpy(), alpha.numpy(), atol=1e-4)


@pytest.mark.parametrize("kind, sector", [("true", None), ("nominal", None), ("true", (-0.58, -0.40))])
def test_forward_matches_the_numpy_reference_model_domp(kind, sector):
    """Parity of the torch dOMP forward with model/domp.domp_inference (full-grid argmax)."""
    from gnuradio.isac.model.domp import domp_inference
    from gnuradio.isac.model.ofdm import delay_dictionary
    from gnuradio.isac.model.omp import Dictionaries

    array = imp.true_array(SC) if kind == "true" else arr.nominal_array(K, LAM)
    y = frames(imp.true_array(SC), np.deg2rad([-33.1, -25.4, -24.0]), [40.3, 140.7, 143.0], noise=True, seed=4)
    D = Dictionaries(GRID, DELAYS, array.steering(GRID), delay_dictionary(DELAYS, S, DF))
    ref = domp_inference(y.numpy(), D, array.positions_m, LAM, DF, 3, sector_rad=sector)
    model = tm.SpacingArray(K, LAM, 720, spacings_m=array.spacings_m)
    lo, hi = (None, None) if sector is None else (torch.full((2,), sector[0]), torch.full((2,), sector[1]))
    got = DifferentiableOmp(model, DELAYS, S, DF)(y, 3, lo, hi)  # sector None: argmax over the whole grid
    np.testing.assert_array_equal(got.angle_index.numpy(), ref.angle_index)
    np.testing.assert_array_equal(got.delay_index.numpy(), ref.delay_index)
    np.testing.assert_allclose(got.angles_rad.detach().numpy(), ref.angles_rad, rtol=0, atol=1e-4 * ASTEP)
    np.testing.assert_allclose(got.delays_s.detach().numpy(), ref.delays_s, rtol=0, atol=1e-4 * (DELAYS[1] - DELAYS[0]))
    np.testing.assert_allclose(got.peaks.numpy(), ref.peaks, rtol=2e-5)
    np.testing.assert_allclose(got.gains.numpy(), ref.gains[:, -1, :], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kernel", ["cpp", "numpy"])
def test_forward_equals_the_streaming_receivers_domp_mode(kernel):
    """The torch dOMP forward (trainer) and the GNU Radio receiver block in mode "domp" give
    the same estimates on the same frames (same array, grids, window, temperature, sector)."""
    from gnuradio.isac.blocks import omp_receiver

    true = imp.true_array(SC)
    y = frames(true, np.deg2rad([-33.1, -25.4, -24.0]), [40.3, 140.7, 143.0], noise=True, seed=7)
    rx = omp_receiver(
        SC.with_overrides({"scene.max_targets": 3}), method="perfect", receiver="domp", kernel=kernel, threshold=0.0
    )  # "perfect": the true array of SC
    got = rx.process(0, y.numpy())  # the block's per-frame detections (threshold 0: all 3 iterations)
    model = tm.SpacingArray(K, LAM, 720, spacings_m=true.spacings_m)
    lo, hi = torch.full((2,), SECTOR[0]), torch.full((2,), SECTOR[1])
    ref = DifferentiableOmp(model, DELAYS, S, DF)(y, 3, lo, hi)
    for b in range(2):
        np.testing.assert_allclose(got[b].angle_rad, ref.angles_rad[b].detach().numpy(), rtol=0, atol=1e-3 * ASTEP)
        np.testing.assert_allclose(got[b].range_m, ref.ranges_m[b].detach().numpy(), rtol=0, atol=1e-3 * RSTEP)
