"""Beyond the paper: single-target Cramer-Rao bounds (CRB) on angle and range with perfect
impairment knowledge, against SNR_r, beside the RMSE of OMP and dOMP (perfect knowledge) and
of the baseline (nominal receiver) from simulation. Derivation: docs/results.md, "CRB".

Model after reciprocal filtering (3) with one target: Y~ = alpha a(theta) rho(tau)^T + N,
N iid CN(0, N0) (QPSK symbols have unit modulus), unknowns eta = (theta, tau, Re alpha,
Im alpha), alpha = psi a^T(theta) f / sqrt(S). For a Gaussian mean-parameterised model the
Fisher information is J = (2 / N0) Re{G^H G}, G = [d mu / d eta_i] with mu = vec(Y~ - N);
every column of G is separable (u v^T), so G^H G follows from inner products
<u1 v1^T, u2 v2^T> = (u1^H u2)(v1^H v2) in closed form (:func:`fisher_information`).
Eliminating the nuisance alpha gives (:func:`crb_closed_form`)

    var(theta) >= N0 / (2 |alpha|^2 S (2 pi cos(theta) / lambda)^2 sum_k (p_k - mean p)^2)
    var(tau)   >= N0 / (2 |alpha|^2 K (2 pi Delta_f)^2 S (S^2 - 1) / 12)

with |alpha|^2 = sigma_r^2 |a^T(theta) f|^2 / S, sigma_r^2 = SNR_r N0 / K.

Moving target over a frame of M OFDM symbols (model/doppler.py): per cell [m, k, s],
Y~ = alpha a_k(theta) rho_s(tau) exp(j 2 pi f_D m T_O) + N, unknowns (theta, tau, f_D, Re alpha,
Im alpha); the 5 x 5 information is :func:`fisher_information_doppler`, the speed bound
(:func:`crb_speed_closed_form`, derivation in docs/model.md, "Moving targets: the speed CRB")

    var(v) >= (lambda / 2)^2 N0 / (2 |alpha|^2 K S (2 pi T_O)^2 M (M^2 - 1) / 12)

and the angle and delay bounds above divided by M (:func:`crb_closed_form` with ``symbols``).

Simulation: one FIXED target (theta0, R0), placed midway between two points of the OMP grids
(the worst case for grid-limited OMP, whose error then floors at half a grid step), with a
deterministic gain |psi| = sigma_r (the CRB conditions on the gain; a Rayleigh-faded gain
would make the averaged bound infinite), T_max = 1, baseline transmitter (eta = 1). Every
frame's estimate counts (no threshold: the target is always present and OMP returns one).
Each (SNR, method) is one unit of a resumable run (resume.py).
"""

from __future__ import annotations

import math

import numpy as np

from ..config import SPEED_OF_LIGHT
from ..evaluation import batches, progress_bar, sense
from ..model.beamforming import beam_gain
from ..model.grids import angle_grid, delay_grid, delay_to_range
from ..model.impairments import true_array
from ..model.scene import Scene, sensing_gain_variance
from ..simulation import Simulator, baseline_precoder
from ..tasks import Unit, task
from ..transceiver import sensing_receiver
from .common import Context, pyplot, rmse_interval, save_figure, write_csv
from .resume import scenario_digest

SNR_DB = tuple(float(s) for s in range(-10, 45, 5))
QUICK_SNR_DB = (0.0, 10.0, 20.0, 30.0)
TARGET_NEAR_DEG = -30.0
TARGET_NEAR_M = 100.0
GAIN_PHASE_RAD = 0.7

DEFAULTS = {"scene.max_targets": 1, "transmitter.eta": 1.0, "run.frames": 2000, "run.batch": 100}
QUICK = {"run.frames": 150, "run.batch": 150}

METHODS = (
    ("omp_perfect", "OMP, perfect knowledge", "perfect", "omp"),
    ("domp_perfect", "dOMP, perfect knowledge", "perfect", "domp"),
    ("baseline", "baseline (OMP, nominal array)", "baseline", "omp"),
)

COLUMNS = (
    "snr_db",
    "method",
    "angle_rmse_deg",
    "angle_rmse_lo",
    "angle_rmse_hi",
    "angle_bias_deg",
    "range_rmse_m",
    "range_rmse_lo",
    "range_rmse_hi",
    "range_bias_m",
    "crb_angle_deg",
    "crb_range_m",
    "frames",
)


def _atoms(positions_m, wavelength_m, theta, tau, subcarriers, spacing_hz):
    """a, da/dtheta (K,) and rho, drho/dtau (S,), complex128, of the steering model."""
    p = np.asarray(positions_m, np.float64)
    k_a = 2 * np.pi / wavelength_m * p
    a = np.exp(-1j * k_a * np.sin(theta))
    da = -1j * k_a * np.cos(theta) * a
    s = np.arange(subcarriers, dtype=np.float64)
    rho = np.exp(-2j * np.pi * spacing_hz * tau * s)
    drho = -2j * np.pi * spacing_hz * s * rho
    return a, da, rho, drho


def fisher_information(positions_m, wavelength_m, theta, tau, alpha, subcarriers, spacing_hz, noise_power=1.0):
    """Fisher information (4 x 4) of (theta [rad], tau [s], Re alpha, Im alpha) for
    Y~ = alpha a(theta) rho(tau)^T + N, N ~ CN(0, N0): J = (2/N0) Re{G^H G} with the separable
    columns G = [alpha da rho^T, alpha a drho^T, a rho^T, j a rho^T]."""
    a, da, rho, drho = _atoms(positions_m, wavelength_m, theta, tau, subcarriers, spacing_hz)
    cols = [(alpha * da, rho), (alpha * a, drho), (a, rho), (1j * a, rho)]
    J = np.empty((4, 4))
    for i, (u1, v1) in enumerate(cols):
        for j, (u2, v2) in enumerate(cols):
            J[i, j] = (2.0 / noise_power) * np.real(np.vdot(u1, u2) * np.vdot(v1, v2))
    return J


def crb_closed_form(
    positions_m, wavelength_m, theta, alpha_power, subcarriers, spacing_hz, noise_power=1.0, symbols: int = 1
):
    """(var theta [rad^2], var tau [s^2]) lower bounds, alpha eliminated (Schur complement;
    the angle-delay cross term vanishes after centring, see docs/results.md). ``symbols``: a
    frame of M OFDM symbols carries M times the information on both (the speed, unknown or
    not, decouples from them: docs/model.md, "Moving targets: the speed CRB")."""
    p = np.asarray(positions_m, np.float64)
    K, S, M = p.size, int(subcarriers), int(symbols)
    spread = float(np.sum((p - p.mean()) ** 2))
    j_theta = 2 * alpha_power / noise_power * M * S * (2 * np.pi * np.cos(theta) / wavelength_m) ** 2 * spread
    j_tau = 2 * alpha_power / noise_power * M * K * (2 * np.pi * spacing_hz) ** 2 * S * (S * S - 1) / 12.0
    return 1.0 / j_theta, 1.0 / j_tau


def _slow_time(doppler_hz, symbols, symbol_duration_s):
    """d, dd/df_D (M,), complex128, of the slow-time atom [d]_m = exp(j 2 pi f_D m T_O)."""
    w = 2 * np.pi * symbol_duration_s * np.arange(int(symbols), dtype=np.float64)
    d = np.exp(1j * w * doppler_hz)
    return d, 1j * w * d


def fisher_information_doppler(
    positions_m,
    wavelength_m,
    theta,
    tau,
    doppler_hz,
    alpha,
    subcarriers,
    spacing_hz,
    symbols,
    symbol_duration_s,
    noise_power=1.0,
):
    """Fisher information (5 x 5) of (theta [rad], tau [s], f_D [Hz], Re alpha, Im alpha) for a
    frame of M symbols, Y~[m, k, s] = alpha a_k(theta) rho_s(tau) d_m(f_D) + N, N ~ CN(0, N0):
    J = (2/N0) Re{G^H G} with the separable columns alpha da (x) rho (x) d, alpha a (x) drho (x) d,
    alpha a (x) rho (x) dd, a (x) rho (x) d and j a (x) rho (x) d, whose inner products are the
    products of the three factors' inner products."""
    a, da, rho, drho = _atoms(positions_m, wavelength_m, theta, tau, subcarriers, spacing_hz)
    d, dd = _slow_time(doppler_hz, symbols, symbol_duration_s)
    cols = [
        (alpha * da, rho, d),
        (alpha * a, drho, d),
        (alpha * a, rho, dd),
        (a, rho, d),
        (1j * a, rho, d),
    ]
    J = np.empty((5, 5))
    for i, (u1, v1, w1) in enumerate(cols):
        for j, (u2, v2, w2) in enumerate(cols):
            J[i, j] = (2.0 / noise_power) * np.real(np.vdot(u1, u2) * np.vdot(v1, v2) * np.vdot(w1, w2))
    return J


def crb_speed_closed_form(
    wavelength_m, alpha_power, antennas, subcarriers, symbols, symbol_duration_s, noise_power=1.0
) -> float:
    """var v [(m/s)^2] lower bound of a target's radial speed over M symbols, alpha (and the
    angle and delay, known or not) eliminated: (lambda/2)^2 / J_fD with
    J_fD = 2 |alpha|^2 / N0 K S (2 pi T_O)^2 M (M^2 - 1) / 12 (v = lambda f_D / 2). Infinite for
    M = 1 (one symbol carries no speed information)."""
    K, S, M = int(antennas), int(subcarriers), int(symbols)
    j_fd = 2 * alpha_power / noise_power * K * S * (2 * np.pi * symbol_duration_s) ** 2 * M * (M * M - 1) / 12.0
    return math.inf if j_fd <= 0 else (0.5 * wavelength_m) ** 2 / j_fd


def crb_speed_at_snr(scenario, array, precoder, theta, snr_db) -> float:
    """Speed std bound [m/s] at SNR_r = snr_db for a target at theta over the scenario's M
    symbols, with the beam gain |a^T(theta) f|^2 of ``array`` and ``precoder`` (|psi| = sigma_r):
    (lambda / (4 pi T_O)) sqrt(6 / (SNR_r G(theta) M (M^2 - 1)))."""
    K, S = scenario.array["antennas"], scenario.ofdm["subcarriers"]
    n0 = scenario.scene["noise_power"]
    sigma2 = sensing_gain_variance(snr_db, K, n0)
    alpha_power = sigma2 * float(beam_gain(array, precoder, np.array([theta]))[0]) / S
    var = crb_speed_closed_form(
        scenario.wavelength_m, alpha_power, K, S, scenario.ofdm["symbols"], scenario.symbol_duration_s, n0
    )
    return math.sqrt(var)


def crb_at_snr(scenario, array, precoder, theta, snr_db) -> tuple[float, float]:
    """(angle std bound [deg], range std bound [m]) at SNR_r = snr_db for a target at theta,
    with the beam gain |a^T(theta) f|^2 of ``array`` (the true array) and ``precoder``."""
    K, S = scenario.array["antennas"], scenario.ofdm["subcarriers"]
    n0 = scenario.scene["noise_power"]
    sigma2 = sensing_gain_variance(snr_db, K, n0)
    alpha_power = sigma2 * float(beam_gain(array, precoder, np.array([theta]))[0]) / S
    v_theta, v_tau = crb_closed_form(
        array.positions_m, scenario.wavelength_m, theta, alpha_power, S, scenario.ofdm["spacing_hz"], n0
    )
    return math.degrees(math.sqrt(v_theta)), 0.5 * SPEED_OF_LIGHT * math.sqrt(v_tau)


def target(scenario) -> tuple[float, float]:
    """(theta0 [rad], R0 [m]): midway between the OMP grid points nearest TARGET_NEAR_*."""
    rx = scenario.receiver
    ag = angle_grid(scenario.target_sector_rad, rx["angle_grid"])
    rg = delay_to_range(delay_grid(scenario.range_interval_m, rx["delay_grid"]))
    i = min(int(np.argmin(np.abs(ag - math.radians(TARGET_NEAR_DEG)))), ag.size - 2)
    j = min(int(np.argmin(np.abs(rg - TARGET_NEAR_M))), rg.size - 2)
    return 0.5 * (ag[i] + ag[i + 1]), 0.5 * (rg[j] + rg[j + 1])


def plot(path, rows, crb_rows, title) -> None:
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    snr = [r["snr_db"] for r in crb_rows]
    ax1.semilogy(snr, [r["crb_angle_deg"] for r in crb_rows], "k-", lw=2, label="CRB (perfect knowledge)")
    ax2.semilogy(snr, [r["crb_range_m"] for r in crb_rows], "k-", lw=2, label="CRB (perfect knowledge)")
    for key, label, _, _ in METHODS:
        rr = [r for r in rows if r["method"] == key]
        x = [r["snr_db"] for r in rr]
        for ax, name in ((ax1, "angle_rmse"), (ax2, "range_rmse")):
            unit = "deg" if name == "angle_rmse" else "m"
            y = np.array([r[f"{name}_{unit}"] for r in rr])
            err = np.array(
                [
                    [r[f"{name}_{unit}"] - r[f"{name}_lo"] for r in rr],
                    [r[f"{name}_hi"] - r[f"{name}_{unit}"] for r in rr],
                ]
            )
            ax.errorbar(x, y, yerr=err, marker="o", ms=4, capsize=2, label=label)
    ax1.set_ylabel("angle RMSE (deg)")
    ax2.set_ylabel("range RMSE (m)")
    for ax in (ax1, ax2):
        ax.set_xlabel("SNR$_r$ (dB)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path, title)


def rmse_point(
    scenario,
    simulator_scene: Scene,
    theta0: float,
    r0: float,
    key: str,
    method: str,
    mode: str,
    kernel: str,
    temperature: float,
    bounds: tuple[float, float],
    progress=None,
) -> dict:
    """The CSV row of one (SNR, method): the angle and range errors of ``method``'s receiver
    (``mode`` omp | domp) on run.frames frames with the fixed target (theta0 [rad], r0 [m]) of
    ``simulator_scene``, as RMSE with its interval and bias; ``bounds``: the CRB (angle [deg],
    range [m]) at this SNR. A unit's task: it may run on a Dask worker (tasks.py)."""
    snr = scenario.scene["snr_sensing_db"]
    simulator = Simulator(scenario, scene=simulator_scene)
    receiver = sensing_receiver(scenario, method, None, mode, kernel, temperature)
    ea, er = [], []
    with progress_bar(scenario.run["frames"], f"SNR {snr:g} dB {key}", progress) as bar:
        for start, n in batches(scenario.run["frames"], scenario.run["batch"]):
            res = sense(simulator.frames(start, n, "test"), receiver)
            ea.append(np.rad2deg(res.angles_rad[:, 0] - theta0))
            er.append(res.ranges_m[:, 0] - r0)
            bar.update(n)
    ea, er = np.concatenate(ea), np.concatenate(er)
    a, a_lo, a_hi = rmse_interval(ea)
    r, r_lo, r_hi = rmse_interval(er)
    return dict(
        snr_db=snr,
        method=key,
        angle_rmse_deg=a,
        angle_rmse_lo=a_lo,
        angle_rmse_hi=a_hi,
        angle_bias_deg=float(ea.mean()),
        range_rmse_m=r,
        range_rmse_lo=r_lo,
        range_rmse_hi=r_hi,
        range_bias_m=float(er.mean()),
        crb_angle_deg=bounds[0],
        crb_range_m=bounds[1],
        frames=int(ea.size),
    )


def run(ctx: Context) -> dict:
    sc = ctx.scenario
    snrs = QUICK_SNR_DB if ctx.quick else SNR_DB
    theta0, r0 = target(sc)
    true = true_array(sc)
    f = baseline_precoder(sc)
    units, crb_rows = [], []
    for snr in snrs:
        s = sc.with_overrides({"scene.snr_sensing_db": snr})
        psi = math.sqrt(sensing_gain_variance(snr, sc.array["antennas"], sc.scene["noise_power"]))
        scene = Scene([theta0], [r0], [psi * np.exp(1j * GAIN_PHASE_RAD)])
        crb_a, crb_r = crb_at_snr(sc, true, f, theta0, snr)
        crb_rows.append({"snr_db": snr, "crb_angle_deg": crb_a, "crb_range_m": crb_r})
        for key, _, method, mode in METHODS:
            # one resumable unit per (SNR, method); the target and gain are fixed by the module
            units.append(
                Unit(
                    task(
                        rmse_point,
                        s,
                        scene,
                        theta0,
                        r0,
                        key,
                        method,
                        mode,
                        ctx.kernel,
                        ctx.temperature,
                        (crb_a, crb_r),
                        ctx.task_progress,
                    ),
                    {
                        "snr_db": snr,
                        "method": key,
                        "mode": mode,
                        "receiver_array": method,
                        "point_scenario": scenario_digest(s),
                        "target": [theta0, r0, GAIN_PHASE_RAD],
                    },
                    label=f"crb SNR {snr:g} dB {key}",
                    scenario=s,
                    frames=s.run["frames"],
                )
            )
    rows = ctx.compute(units)
    timing = {}
    for u, row, seconds in zip(units, rows, ctx.runner.seconds):
        timing[row["method"]] = timing.get(row["method"], 0.0) + seconds
    write_csv(ctx.path("crb.csv"), rows, COLUMNS)
    rx = sc.receiver
    step_deg = (sc.scene["target_sector_deg"][1] - sc.scene["target_sector_deg"][0]) / (rx["angle_grid"] - 1)
    rmin, rmax = sc.range_interval_m
    step_m = (rmax - rmin) / (rx["delay_grid"] - 1)
    plot(
        ctx.path("crb.png"),
        rows,
        crb_rows,
        f"Single target at {math.degrees(theta0):.3f} deg, {r0:.2f} m (off the OMP grid), |psi| = sigma_r, "
        f"{sc.run['frames']} frames per point; OMP grid steps {step_deg:.4f} deg, {step_m:.3f} m",
    )
    return {
        "target": {"angle_deg": math.degrees(theta0), "range_m": r0, "gain": "|psi| = sigma_r, fixed phase"},
        "omp_grid_step": {"angle_deg": step_deg, "range_m": step_m},
        "omp_grid_floor": {"angle_deg": step_deg / 2, "range_m": step_m / 2},
        "beam_gain": float(beam_gain(true, f, np.array([theta0]))[0]),
        "snr_db": list(snrs),
        "crb": crb_rows,
        "rmse": {
            key: [
                {c: r[c] for c in ("snr_db", "angle_rmse_deg", "range_rmse_m", "angle_bias_deg", "range_bias_m")}
                for r in rows
                if r["method"] == key
            ]
            for key, *_ in METHODS
        },
        "seconds_per_method": timing,
    }


__all__ = [
    "crb_at_snr",
    "crb_closed_form",
    "crb_speed_at_snr",
    "crb_speed_closed_form",
    "fisher_information",
    "fisher_information_doppler",
    "rmse_point",
    "run",
    "target",
]
