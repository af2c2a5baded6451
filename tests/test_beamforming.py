"""LS beampattern synthesis (6)-(7) and the ISAC beam (5)."""

import numpy as np
import pytest

from gnuradio.isac.model import array as arr
from gnuradio.isac.model.beamforming import (
    beam_gain,
    desired_beampattern,
    isac_beam,
    ls_beam,
    sector_beam,
    transmit_beam,
)
from gnuradio.isac.model.grids import full_angle_grid

LAM = 299_792_458.0 / 60e9
K = 64
NOMINAL = arr.nominal_array(K, LAM)
SECTOR = tuple(np.deg2rad((-40.0, -20.0)))
COMM = tuple(np.deg2rad((30.0, 50.0)))


def test_ls_beam_equals_closed_form_7_for_the_nominal_array():
    grid = full_angle_grid(720)
    A = NOMINAL.steering(grid).astype(np.complex128)
    b = desired_beampattern(grid, SECTOR, K)
    assert set(np.unique(b)) == {0.0, K}
    closed = np.linalg.solve(A.conj() @ A.T, A.conj() @ b)  # (A* A^T)^-1 A* b
    np.testing.assert_allclose(ls_beam(A, b), closed, rtol=1e-6, atol=1e-9)


def test_ls_beam_concentrates_power_in_the_sector():
    f = sector_beam(NOMINAL, SECTOR)
    assert np.linalg.norm(f) == pytest.approx(1.0)
    grid = full_angle_grid(3601)
    g = beam_gain(NOMINAL, f, grid)
    inside = (grid >= SECTOR[0]) & (grid <= SECTOR[1])
    # most radiated power (integrated over sin(theta), the ULA's natural axis) is in the sector
    u = np.sin(grid)
    frac = np.trapz(g * inside, u) / np.trapz(g, u)
    assert frac > 0.9
    assert g[inside].mean() > 50 * g[~inside].mean()
    # by Parseval the mean gain over u in [-1, 1] of a unit-norm beam is 1 -> in-sector
    # gain ~ 2 / (width of the sector in u)
    width_u = np.sin(SECTOR[1]) - np.sin(SECTOR[0])
    assert g[inside].mean() == pytest.approx(2 / width_u * frac, rel=0.15)


def test_isac_beam_eq5_mixes_and_normalises():
    f_r = sector_beam(NOMINAL, SECTOR)
    f_c = sector_beam(NOMINAL, COMM)
    np.testing.assert_allclose(isac_beam(f_r, f_c, 1.0, 0.3, 1.0), f_r)
    np.testing.assert_allclose(isac_beam(f_r, f_c, 0.0, 0.3, 1.0), np.exp(0.3j) * f_c)
    f = isac_beam(f_r, f_c, 0.5, 0.0, 4.0)
    assert np.linalg.norm(f) == pytest.approx(2.0)  # sqrt(P)
    mix = np.sqrt(0.5) * f_r + np.sqrt(0.5) * f_c
    np.testing.assert_allclose(f, 2 * mix / np.linalg.norm(mix))
    # eta trades sensing gain for comm gain
    gs, gc = [], []
    for eta in (0.1, 0.5, 0.9):
        fe = transmit_beam(NOMINAL, SECTOR, COMM, eta, 0.0)
        gs.append(beam_gain(NOMINAL, fe, np.deg2rad([-30.0]))[0])
        gc.append(beam_gain(NOMINAL, fe, np.deg2rad([40.0]))[0])
    assert gs[0] < gs[1] < gs[2] and gc[0] > gc[1] > gc[2]
    with pytest.raises(ValueError, match="eta"):
        isac_beam(f_r, f_c, 1.5, 0.0)


def test_well_posed_synthesis_on_the_true_impaired_array():
    """The plain LS (7) on the ill-conditioned impaired matrix loses in-sector gain; the
    truncated-SVD solve keeps it (docs/model.md)."""
    imp = arr.spacing_array(arr.draw_spacings(K, LAM, 2e-4, seed=1), LAM)
    grid = full_angle_grid(720)
    sv = np.linalg.svd(imp.steering(grid), compute_uv=False)
    sv_nom = np.linalg.svd(NOMINAL.steering(grid), compute_uv=False)
    assert sv.min() / sv.max() < 0.2 * sv_nom.min() / sv_nom.max()  # much worse conditioned
    # nominal: the default cut-off drops nothing (smallest/largest singular value ~ 0.30)
    assert sv_nom.min() / sv_nom.max() > 0.1
    inside = np.deg2rad(np.linspace(-39, -21, 50))
    plain = beam_gain(imp, sector_beam(imp, SECTOR, rcond=0.0), inside).mean()
    regular = beam_gain(imp, sector_beam(imp, SECTOR), inside).mean()
    nominal = beam_gain(NOMINAL, sector_beam(NOMINAL, SECTOR), inside).mean()
    assert plain < 0.1 * nominal  # in-sector gain collapses with the plain LS (7)
    assert regular > 0.75 * nominal
