"""Parity of the torch twins (nn/arrays.py, nn/twins.py) with the numpy model they mirror."""

import numpy as np
import pytest
import torch  # a hard dependency (tools/requirements.txt): a missing torch must fail, not skip

torch.set_num_threads(1)

from gnuradio.isac.config import Scenario  # noqa: E402
from gnuradio.isac.model import array as arr  # noqa: E402
from gnuradio.isac.model import beamforming as bf  # noqa: E402
from gnuradio.isac.model import impairments as imp  # noqa: E402
from gnuradio.isac.model.channels import sensing_echo as np_echo  # noqa: E402
from gnuradio.isac.model.grids import full_angle_grid, range_to_delay  # noqa: E402
from gnuradio.isac.model.ofdm import delay_vector as np_delay_vector  # noqa: E402
from gnuradio.isac.model.ofdm import qpsk_map  # noqa: E402
from gnuradio.isac.model.scene import Scene  # noqa: E402
from gnuradio.isac.nn import arrays as tm  # noqa: E402

SC = Scenario.default()
LAM = SC.wavelength_m
K = 64
GRID = full_angle_grid(720)
TRUE = imp.true_array(SC)
C64 = dict(rtol=0, atol=2e-6)  # complex64 entries of unit modulus


@pytest.mark.parametrize("impairment", ["spacing", "cumulative"])
@pytest.mark.parametrize("param", ["spacing", "position"])
def test_spacing_array_matches_numpy_steering(impairment, param):
    ref = arr.spacing_array(TRUE.spacings_m, LAM, impairment)
    model = tm.SpacingArray(K, LAM, 720, impairment, param, spacings_m=TRUE.spacings_m)
    np.testing.assert_allclose(model.positions_m().detach().numpy(), ref.positions_m, rtol=0, atol=1e-15)
    np.testing.assert_allclose(model.spacings_m().detach().numpy()[:-1], TRUE.spacings_m[:-1], rtol=1e-12)
    np.testing.assert_allclose(model.dictionary().detach().numpy(), ref.steering(GRID), **C64)
    th = np.deg2rad([-33.3, 0.0, 12.7])
    np.testing.assert_allclose(model.atoms(torch.as_tensor(th)).detach().numpy(), ref.steering(th).T, **C64)


def test_spacing_array_defaults_to_the_nominal_ula_with_u_equal_one():
    model = tm.SpacingArray(K, LAM, 720)
    assert torch.all(model.u == 1.0) and model.u.dtype == torch.float64
    np.testing.assert_allclose(model.dictionary().detach().numpy(), arr.nominal_array(K, LAM).steering(GRID), **C64)
    model.load_spacings(TRUE.spacings_m)
    np.testing.assert_allclose(model.spacings_m().detach().numpy(), TRUE.spacings_m, rtol=1e-12)


def test_dictionary_array_initialises_from_the_nominal_steering_matrix_and_interpolates():
    model = tm.DictionaryArray(K, LAM, 720)
    nominal = arr.nominal_array(K, LAM)
    assert model.A.shape == (K, 720) and model.A.dtype == torch.complex64
    np.testing.assert_allclose(model.dictionary().detach().numpy(), nominal.steering(GRID), **C64)
    # on-grid atoms are columns; half-way atoms are the mean of the two neighbours
    np.testing.assert_allclose(
        model.atoms(torch.as_tensor(GRID[[3, 400]])).detach().numpy(), nominal.steering(GRID[[3, 400]]).T, **C64
    )
    mid = 0.5 * (GRID[100] + GRID[101])
    expect = 0.5 * (nominal.steering(GRID[[100]]) + nominal.steering(GRID[[101]]))[:, 0]
    np.testing.assert_allclose(model.atoms(torch.as_tensor([mid])).detach().numpy()[0], expect, atol=1e-5)
    # the numpy DictionaryArray holds the same dictionary
    np_dict = arr.DictionaryArray(GRID, model.A.detach().numpy())
    np.testing.assert_allclose(np_dict.steering(GRID[[5]])[:, 0], model.grid_columns(torch.tensor([5])).detach()[0])


@pytest.mark.parametrize("which", ["nominal", "impaired"])
def test_ls_beam_matches_numpy_truncated_svd(which):
    A = (arr.nominal_array(K, LAM) if which == "nominal" else TRUE).steering(GRID)
    for sector in (SC.target_sector_rad, SC.comm_sector_rad):
        b = bf.desired_beampattern(GRID, sector, K)
        ref = bf.ls_beam(A, b, 0.1)
        got = tm.ls_beam(torch.as_tensor(A), torch.as_tensor(b)[None], 0.1)[0].numpy()
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9 * np.abs(ref).max())


def test_sector_beams_and_isac_beam_match_numpy_and_have_gradients():
    model = tm.SpacingArray(K, LAM, 720)
    lo = torch.tensor([SC.target_sector_rad[0], SC.comm_sector_rad[0]], dtype=torch.float64)
    hi = torch.tensor([SC.target_sector_rad[1], SC.comm_sector_rad[1]], dtype=torch.float64)
    beams = tm.sector_beams(model, lo, hi)
    nominal = arr.nominal_array(K, LAM)
    np.testing.assert_allclose(beams[0].detach().numpy(), bf.sector_beam(nominal, SC.target_sector_rad), atol=1e-9)
    np.testing.assert_allclose(beams[1].detach().numpy(), bf.sector_beam(nominal, SC.comm_sector_rad), atol=1e-9)
    f = tm.isac_beam(beams[:1], beams[1:], torch.tensor([0.3]), torch.tensor([1.1]), power=2.0)[0]
    ref = bf.isac_beam(beams[0].detach().numpy(), beams[1].detach().numpy(), 0.3, 1.1, 2.0)
    np.testing.assert_allclose(f.detach().numpy(), ref, rtol=0, atol=1e-7)
    ref_tx = bf.transmit_beam(nominal, SC.target_sector_rad, SC.comm_sector_rad, 0.3, 1.1, 2.0)
    np.testing.assert_allclose(f.detach().numpy(), ref_tx, atol=2e-6)
    # gradient reaches the spacings, finite, through the LS solve
    (f.abs() ** 2 * torch.arange(K)).sum().backward()
    assert torch.isfinite(model.u.grad).all() and model.u.grad.abs().max() > 0


def test_ls_beam_gradient_is_finite_on_the_impaired_array_truncated_branch():
    model = tm.SpacingArray(K, LAM, 720, spacings_m=TRUE.spacings_m)
    lo = torch.tensor([-0.7])
    hi = torch.tensor([-0.35])
    f = tm.sector_beams(model, lo.double(), hi.double())
    ref = bf.sector_beam(TRUE, (-0.7, -0.35))
    np.testing.assert_allclose(f[0].detach().numpy(), ref, atol=1e-9)
    f.real.sum().backward()
    assert torch.isfinite(model.u.grad).all()


def test_delay_vector_and_sensing_echo_match_numpy():
    rng = np.random.default_rng(3)
    S, spacing = SC.ofdm["subcarriers"], SC.ofdm["spacing_hz"]
    tau = range_to_delay(np.array([[12.0, 99.5], [150.3, 187.0]]))
    np.testing.assert_allclose(
        tm.delay_vector(torch.as_tensor(tau), S, spacing).numpy(), np_delay_vector(tau, S, spacing), atol=2e-5
    )
    x = qpsk_map(rng.integers(0, 4, (2, S)))
    f = bf.transmit_beam(arr.nominal_array(K, LAM), SC.target_sector_rad, SC.comm_sector_rad, 0.6, 0.4)
    angles = np.deg2rad([[-31.0, -22.5], [-38.0, 0.0]])
    gains = rng.standard_normal((2, 2)) + 1j * rng.standard_normal((2, 2))
    present = np.array([[True, True], [True, False]])
    got = tm.sensing_echo(
        torch.as_tensor(TRUE.positions_m),
        LAM,
        torch.as_tensor(np.stack([f, f])),
        torch.as_tensor(x),
        torch.as_tensor(angles),
        torch.as_tensor(tau),
        torch.as_tensor(gains),
        torch.as_tensor(present),
        spacing,
    ).numpy()
    for b in range(2):
        n = int(present[b].sum())
        scene = Scene(angles[b, :n], 0.5 * 299_792_458.0 * tau[b, :n], gains[b, :n])
        ref = np_echo(TRUE, f, x[b], scene, spacing, 1.0, None)
        np.testing.assert_allclose(got[b], ref, rtol=0, atol=2e-5 * np.abs(ref).max())


def test_reciprocal_filter_matches_numpy():
    from gnuradio.isac.model.reciprocal import reciprocal_filter

    rng = np.random.default_rng(8)
    x = qpsk_map(rng.integers(0, 4, (2, 16)))
    y = (rng.standard_normal((2, 4, 16)) + 1j * rng.standard_normal((2, 4, 16))).astype(np.complex64)
    got = tm.reciprocal_filter(torch.as_tensor(y), torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(got, reciprocal_filter(y, x), rtol=1e-6)
    x[0, 3] = 0
    with pytest.raises(ValueError, match="zero"):
        tm.reciprocal_filter(torch.as_tensor(y), torch.as_tensor(x))
