"""Beyond the paper: moving targets over frames of M OFDM symbols (``ofdm.symbols``,
model/doppler.py). Four parts, each point one resumable unit of work (resume.py), all in
doppler.csv (column ``part``):

  a  speed RMSE vs SNR_r against the speed CRB (crb.crb_speed_at_snr; docs/model.md, "Moving
     targets: the speed CRB"): one fixed target, M = 16, T_max = 1, eta = 1, |psi| = sigma_r
     with a fixed phase (the CRB is conditional on the gain), OMP with perfect knowledge. The
     target sits on a point of the angle and delay grids (81 x 41 over the sector and range
     interval: no mismatch loss, and the speed is separable from them) and midway between two
     points of a fine speed grid (A_SPEED_POINTS over half a resolution cell lambda / (2 M T_O)
     around it, the a-priori speed interval: step 1/600 of a cell, 0.025 m/s, whose quantisation
     adds under 3 % to the RMSE at the SNRs shown, and at least 6 bounds either side of the target);
     every frame's single estimate counts (no threshold).
  b  p_md (20) and GOSPA (17) (positions: receiver.gospa_speed_weight_s = 0, so every M is scored
     alike) vs M for the baseline, perfect knowledge and impairment learning (the shipped weights,
     or --weights), all with the OMP receiver (dOMP takes one symbol only), on the experiment's
     scenario: the defaults with targets moving at U[scene.speed_mps] (default [-30, 30] m/s), the
     threshold calibrated to receiver.p_fa for each (M, method), as isac-eval does. The M = 1
     point is the paper's one-symbol scenario itself (scene.speed_mps = [0, 0]: one symbol
     measures no speed, its echo (1) is the same at every speed; drawing the unobservable speeds
     would only reorder the random draws), so its rows equal ``evaluation.evaluate`` of it.
  c  ICI on vs off across speeds 0 .. 0.95 lambda / (4 T_O): one fixed target (on the angle,
     delay and speed grids), M = 16, at C_SNR_DB where detection is marginal; echoes simulated
     with ofdm.ici = off (the receiver's model) and on (time domain: the subcarriers leak), the
     same receiver (it assumes no ICI) and one threshold calibrated to receiver.p_fa on random
     scenes. Beside p_md and the RMSEs, the noiseless map peak against |alpha K S M|^2, whose
     loss with ICI is the closed form 10 log10 |D(eps)|^2 (doppler.ici_own_carrier, eps = f_D / Delta_f).
  d  two targets at the same angle and range (on the grids), speeds +- x delta_v / 2 with the
     resolution delta_v = lambda / (2 M T_O), M = 16, |psi| = sigma_r each with independent
     uniform phases per frame, T_max = 2: the fraction of frames that resolve them (two
     detections above the threshold calibrated to receiver.p_fa, assigned one to each target,
     each within min(x delta_v, delta_v) / 2 of its own speed: within half a cell, and nearer its
     own speed than the other's) vs x.
"""

from __future__ import annotations

import math

import numpy as np

from .. import transceiver
from ..evaluation import batches, calibrate, progress_bar, score, sense
from ..model.beamforming import beam_gain
from ..model.channels_stream import Motion, array_frame, sensing_echo_from_frame
from ..model.dictionaries import doppler_speeds
from ..model.doppler import doppler_hz, ici_own_carrier
from ..model.grids import angle_grid, delay_grid, delay_to_range
from ..model.impairments import true_array
from ..model.ofdm import ml_detect
from ..model.reciprocal import reciprocal_filter
from ..model.scene import Scene, sensing_gain_variance
from ..scoring import Scores
from ..simulation import Simulator, baseline_precoder
from ..tasks import Shared, Unit, task
from ..transceiver import build, sensing_receiver
from .common import Context, pyplot, rmse_interval, row_metrics, save_figure, wilson_interval, write_csv
from .crb import GAIN_PHASE_RAD, crb_speed_at_snr
from .learned import resolve_weights
from .resume import file_digest, scenario_digest

#: the experiment's scenario (before --size sizes and the user's --set): moving targets, batches
#: small enough for 64-symbol frames (the batch changes no result)
DEFAULTS = {
    "scene.speed_mps": [-30.0, 30.0],
    "run.frames": 200,
    "run.calibration_frames": 200,
    "run.batch": 10,
}
QUICK = {"run.frames": 20, "run.calibration_frames": 20, "run.batch": 10}

SYMBOLS = 16  # M of parts a, c and d
#: where the single-target parts place their target (moved onto the nearest grid points)
TARGET_NEAR_DEG = -30.0
TARGET_NEAR_M = 100.0
#: the grids of parts a, c and d (targets on their points): angles over the sector, delays over the range interval
SMALL_GRIDS = {"receiver.angle_grid": 81, "receiver.delay_grid": 41}

# part a
A_SNR_DB = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)
A_QUICK_SNR_DB = (0.0, 10.0, 20.0)
A_SPEED_MPS = 15.0  # centre of the speed window (half a resolution cell wide)
A_SPEED_POINTS = 301  # grid over the window: step = resolution / 600

# part b
B_SYMBOLS = (1, 4, 16, 64)
B_QUICK_SYMBOLS = (1, 4, 16)
B_METHODS = (
    ("baseline", "baseline (OMP, nominal array)"),
    ("perfect", "OMP, perfect knowledge"),
    ("impairment", "impairment learning (OMP, learned array)"),
)

# part c
C_SNR_DB = -6.0
C_SPEED_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 0.95)  # of the unambiguous speed lambda / (4 T_O)
C_QUICK_SPEED_FRACTIONS = (0.0, 0.95)
C_SPEED_POINTS = 39  # over [-0.95, 0.95] v_u: step 0.05 v_u, every speed above on the grid

# part d
D_SNR_DB = 10.0
D_CELLS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)  # speed difference / resolution
D_QUICK_CELLS = (0.25, 1.0, 2.0)
D_SPEED_MPS = (-30.0, 30.0)  # a-priori interval; its grid steps resolution / 8 (every speed above on it)
D_SPEED_POINTS = 33
D_PHASE_STREAM = 0xD0  # the random phases of part d's frames: SeedSequence([run.seed, this, frame])

COLUMNS = (
    "part",
    "method",
    "symbols",
    "snr_db",
    "speed_mps",
    "ici",
    "speed_diff_cells",
    "threshold",
    "p_md",
    "p_md_lo",
    "p_md_hi",
    "p_fa",
    "gospa",
    "gospa_lo",
    "gospa_hi",
    "speed_rmse_mps",
    "speed_rmse_lo",
    "speed_rmse_hi",
    "speed_bias_mps",
    "crb_speed_mps",
    "angle_rmse_deg",
    "range_rmse_m",
    "peak_db",
    "ici_closed_form_db",
    "resolved",
    "resolved_lo",
    "resolved_hi",
    "frames",
)


def _row(**values) -> dict:
    """A CSV row: every column, NaN (empty) where the part does not fill it."""
    row = {c: float("nan") for c in COLUMNS}
    row.update(part="", method="", ici="")
    row.update(values)
    return row


def on_grid_target(scenario) -> tuple[float, float]:
    """(theta0 [rad], R0 [m]): the OMP grid points nearest TARGET_NEAR_* (no mismatch loss)."""
    rx = scenario.receiver
    ag = angle_grid(scenario.target_sector_rad, rx["angle_grid"])
    rg = delay_to_range(delay_grid(scenario.range_interval_m, rx["delay_grid"]))
    return float(ag[np.argmin(np.abs(ag - math.radians(TARGET_NEAR_DEG)))]), float(
        rg[np.argmin(np.abs(rg - TARGET_NEAR_M))]
    )


def matched_peak(scenario, array, precoder, theta, gain) -> float:
    """|alpha K S M|^2, alpha = psi a^T(theta) f / sqrt(S): the map peak of a noiseless target on
    every grid (unit-modulus atoms), the reference of part c's ``peak_db``."""
    K, S, M = scenario.array["antennas"], scenario.ofdm["subcarriers"], scenario.ofdm["symbols"]
    a = array.steering(np.array([theta]))[:, 0].astype(np.complex128)
    alpha = gain * (a @ np.asarray(precoder, np.complex128)) / math.sqrt(S)
    return float(abs(alpha * K * S * M) ** 2)


# --- units ------------------------------------------------------------------------------------
def speed_point(scenario, scene: Scene, speed0: float, kernel: str, bound: float, progress=None) -> dict:
    """Part a, one SNR: the speed errors of the perfect-knowledge OMP receiver's single estimate
    on run.frames frames of the fixed ``scene`` (true speed ``speed0``), as RMSE with its
    interval and bias, beside the CRB ``bound`` (m/s). A unit's task."""
    snr = scenario.scene["snr_sensing_db"]
    simulator = Simulator(scenario, scene=scene)
    receiver = sensing_receiver(scenario, "perfect", None, "omp", kernel)
    errors = []
    with progress_bar(scenario.run["frames"], f"speed SNR {snr:g} dB", progress) as bar:
        for start, n in batches(scenario.run["frames"], scenario.run["batch"]):
            errors.append(sense(simulator.frames(start, n, "test"), receiver).speeds_mps[:, 0] - speed0)
            bar.update(n)
    e = np.concatenate(errors)
    rmse, lo, hi = rmse_interval(e)
    return _row(
        part="a",
        method="perfect",
        symbols=scenario.ofdm["symbols"],
        snr_db=snr,
        speed_mps=speed0,
        ici=scenario.ofdm["ici"],
        speed_rmse_mps=rmse,
        speed_rmse_lo=lo,
        speed_rmse_hi=hi,
        speed_bias_mps=float(e.mean()),
        crb_speed_mps=bound,
        frames=int(e.size),
    )


def symbols_point(scenario, method: str, weights, kernel: str, temperature: float, progress=None) -> dict:
    """Part b, one (M, method): calibrate the threshold to receiver.p_fa, then score run.frames
    test frames: the path of evaluation.evaluate in one process (the same numbers), with the 95 %
    intervals. A unit's task."""
    M = scenario.ofdm["symbols"]
    t = build(scenario, method, weights, "omp", kernel, temperature)
    simulator = Simulator(scenario, precoder=t.precoder(scenario))
    threshold = calibrate(scenario, simulator, t.receiver, progress)
    s = score(scenario, simulator, t.receiver, [threshold], progress, f"testing {method} M={M}")[0]
    speed, speed_lo, speed_hi = s.rmse_interval("speed")
    m = row_metrics(s)
    return _row(
        part="b",
        method=method,
        symbols=M,
        snr_db=scenario.scene["snr_sensing_db"],
        threshold=float(threshold),
        **{k: m[k] for k in ("p_md", "p_md_lo", "p_md_hi", "p_fa", "gospa", "gospa_lo", "gospa_hi")},
        speed_rmse_mps=speed,
        speed_rmse_lo=speed_lo,
        speed_rmse_hi=speed_hi,
        angle_rmse_deg=m["angle_rmse_deg"],
        range_rmse_m=m["range_rmse_m"],
        frames=m["frames"],
    )


def perfect_threshold(scenario, kernel: str, progress=None) -> float:
    """The threshold of the perfect-knowledge OMP receiver calibrated to receiver.p_fa on the
    calibration frames of ``scenario`` (random scenes): the shared first task of parts c and d."""
    receiver = sensing_receiver(scenario, "perfect", None, "omp", kernel)
    return float(calibrate(scenario, Simulator(scenario), receiver, progress))


def ici_point(scenario, rx_scenario, scene: Scene, kernel: str, threshold: float, progress=None) -> dict:
    """Part c, one (speed, ICI): the fixed single target ``scene`` simulated with the scenario's
    ofdm.ici, received by the perfect-knowledge OMP of ``rx_scenario`` (ICI off) cut at
    ``threshold``: p_md, the RMSEs and the noiseless map peak in dB against |alpha K S M|^2. A
    unit's task."""
    speed = float(scene.speeds_mps[0])
    receiver = sensing_receiver(rx_scenario, "perfect", None, "omp", kernel)
    simulator = Simulator(scenario, scene=scene)
    s = score(scenario, simulator, receiver, [threshold], progress, f"ICI {scenario.ofdm['ici']} {speed:g} m/s")[0]
    # the noiseless echo of the first test frame's data, through the same receiver
    symbols = simulator.frame(0, "test")[1]
    y = sensing_echo_from_frame(
        simulator.array,
        array_frame(simulator.precoder, symbols),
        scene,
        scenario.ofdm["spacing_hz"],
        scenario.scene["noise_power"],
        None,
        Motion.of(scenario),
    )
    peak = float(receiver(reciprocal_filter(y, symbols)).peaks[0, 0])
    ref = matched_peak(scenario, simulator.array, simulator.precoder, scene.angles_rad[0], scene.gains[0])
    eps = float(doppler_hz(speed, scenario.get("array.carrier_hz"))) / scenario.ofdm["spacing_hz"]
    m = row_metrics(s)
    speed_rmse, speed_lo, speed_hi = s.rmse_interval("speed")
    return _row(
        part="c",
        method="perfect",
        symbols=scenario.ofdm["symbols"],
        snr_db=scenario.scene["snr_sensing_db"],
        speed_mps=speed,
        ici=scenario.ofdm["ici"],
        threshold=threshold,
        p_md=m["p_md"],
        p_md_lo=m["p_md_lo"],
        p_md_hi=m["p_md_hi"],
        speed_rmse_mps=speed_rmse,
        speed_rmse_lo=speed_lo,
        speed_rmse_hi=speed_hi,
        angle_rmse_deg=m["angle_rmse_deg"],
        range_rmse_m=m["range_rmse_m"],
        peak_db=10 * math.log10(peak / ref),
        ici_closed_form_db=10 * math.log10(abs(complex(ici_own_carrier(eps, scenario.ofdm["subcarriers"]))) ** 2),
        frames=m["frames"],
    )


class PhaseDrawSimulator(Simulator):
    """A Simulator whose fixed targets draw new independent uniform phases every frame (from
    SeedSequence([run.seed, D_PHASE_STREAM, frame]), apart from the frame's own draws): the
    two equal-power targets of part d, whose relative phase decides how they add up."""

    def __init__(self, scenario, scene: Scene, **kwargs):
        super().__init__(scenario, scene=scene, **kwargs)
        self.base_scene = scene

    def frame(self, index: int, stream: str = "test"):
        b = self.base_scene
        rng = np.random.default_rng(np.random.SeedSequence([self.scenario.run["seed"], D_PHASE_STREAM, int(index)]))
        phases = np.exp(1j * rng.uniform(0.0, 2 * np.pi, b.count))
        self.fixed_scene = Scene(b.angles_rad, b.ranges_m, np.abs(b.gains) * phases, b.speeds_mps)
        return super().frame(index, stream)


def resolved_frames(speeds_mps: np.ndarray, counts: np.ndarray, truth: tuple[float, float], tolerance: float):
    """(B,) bool: frames whose first two detections (``counts`` >= 2) can be assigned one to each
    true speed of ``truth`` with both errors below ``tolerance`` (m/s)."""
    v = np.asarray(speeds_mps, np.float64)
    if v.shape[1] < 2:
        return np.zeros(v.shape[0], bool)
    t1, t2 = truth
    straight = np.maximum(np.abs(v[:, 0] - t1), np.abs(v[:, 1] - t2))
    crossed = np.maximum(np.abs(v[:, 0] - t2), np.abs(v[:, 1] - t1))
    return (np.asarray(counts) >= 2) & (np.minimum(straight, crossed) < tolerance)


def resolution_point(scenario, scene: Scene, cells: float, kernel: str, threshold: float, progress=None) -> dict:
    """Part d, one speed difference (``cells`` resolution cells): the fraction of run.frames
    frames of the two-target ``scene`` (new phases each frame) that the perfect-knowledge OMP
    resolves (:func:`resolved_frames`, tolerance min(cells, 1) * resolution / 2), with its Wilson
    interval, p_md and the speed RMSE. A unit's task."""
    truth = tuple(float(v) for v in np.sort(scene.speeds_mps))
    tolerance = min(cells, 1.0) * scenario.speed_resolution_mps / 2.0
    receiver = sensing_receiver(scenario, "perfect", None, "omp", kernel)
    simulator = PhaseDrawSimulator(scenario, scene)
    s = Scores.for_scenario(scenario)
    resolved = 0
    with progress_bar(scenario.run["frames"], f"two targets {cells:g} cells", progress) as bar:
        for start, n in batches(scenario.run["frames"], scenario.run["batch"]):
            frames = simulator.frames(start, n, "test")
            result = sense(frames, receiver)
            s.add(frames, result, threshold, ml_detect(frames.y_comm, frames.csi))
            resolved += int(resolved_frames(result.speeds_mps, result.counts(threshold), truth, tolerance).sum())
            bar.update(n)
    lo, hi = wilson_interval(resolved, s.frames)
    m = row_metrics(s)
    speed_rmse, speed_lo, speed_hi = s.rmse_interval("speed")
    return _row(
        part="d",
        method="perfect",
        symbols=scenario.ofdm["symbols"],
        snr_db=scenario.scene["snr_sensing_db"],
        speed_diff_cells=cells,
        threshold=threshold,
        p_md=m["p_md"],
        p_md_lo=m["p_md_lo"],
        p_md_hi=m["p_md_hi"],
        speed_rmse_mps=speed_rmse,
        speed_rmse_lo=speed_lo,
        speed_rmse_hi=speed_hi,
        resolved=resolved / s.frames,
        resolved_lo=lo,
        resolved_hi=hi,
        frames=s.frames,
    )


# --- the parts' units ------------------------------------------------------------------------
def _unit(ctx: Context, fn, scenario, key: dict, label: str, *args) -> Unit:
    return Unit(
        task(fn, scenario, *args),
        {**key, "point_scenario": scenario_digest(scenario)},
        label=label,
        scenario=scenario,
        frames=scenario.run["frames"],
    )


def part_a(ctx: Context) -> tuple[list[Unit], dict]:
    base = ctx.scenario.with_overrides(
        {"ofdm.symbols": SYMBOLS, "scene.max_targets": 1, "transmitter.eta": 1.0, **SMALL_GRIDS}
    )
    half = base.speed_resolution_mps / 4.0
    base = base.with_overrides(
        {
            "scene.speed_mps": [A_SPEED_MPS - half, A_SPEED_MPS + half],
            "receiver.doppler_grid": A_SPEED_POINTS,
        }
    )
    grid = doppler_speeds(base)
    step = float(grid[1] - grid[0])
    speed0 = A_SPEED_MPS + step / 2.0  # midway between two grid speeds
    theta0, r0 = on_grid_target(base)
    array, f = true_array(base), baseline_precoder(base)
    units, bounds = [], []
    for snr in A_QUICK_SNR_DB if ctx.quick else A_SNR_DB:
        s = base.with_overrides({"scene.snr_sensing_db": snr})
        psi = math.sqrt(sensing_gain_variance(snr, s.array["antennas"], s.scene["noise_power"]))
        scene = Scene([theta0], [r0], [psi * np.exp(1j * GAIN_PHASE_RAD)], [speed0])
        bound = crb_speed_at_snr(s, array, f, theta0, snr)
        bounds.append({"snr_db": snr, "crb_speed_mps": bound})
        units.append(
            _unit(
                ctx,
                speed_point,
                s,
                {"part": "a", "snr_db": snr, "target": [theta0, r0, speed0, GAIN_PHASE_RAD]},
                f"doppler a: SNR {snr:g} dB",
                scene,
                speed0,
                ctx.kernel,
                bound,
                ctx.task_progress,
            )
        )
    info = {
        "symbols": SYMBOLS,
        "target": {"angle_deg": math.degrees(theta0), "range_m": r0, "speed_mps": speed0},
        "speed_grid": {
            "from_mps": float(grid[0]),
            "to_mps": float(grid[-1]),
            "points": int(grid.size),
            "step_mps": step,
        },
        "beam_gain": float(beam_gain(array, f, np.array([theta0]))[0]),
        "crb": bounds,
    }
    return units, info


def part_b(ctx: Context) -> tuple[list[Unit], dict]:
    source = resolve_weights(ctx, "impairment", ctx.weights)  # WeightsError says why not
    weights = Shared(ctx.load_weights(source["path"], "impairment"))
    units = []
    for M in B_QUICK_SYMBOLS if ctx.quick else B_SYMBOLS:
        # one symbol measures no speed: the M = 1 point is the paper's static scenario
        extra = {"ofdm.symbols": M} if M > 1 else {"ofdm.symbols": 1, "scene.speed_mps": [0.0, 0.0]}
        s = ctx.scenario.with_overrides(extra)
        for method, _ in B_METHODS:
            w = weights if transceiver.get(method).learned else None  # the learned method of B_METHODS
            units.append(
                _unit(
                    ctx,
                    symbols_point,
                    s,
                    {
                        "part": "b",
                        "symbols": M,
                        "method": method,
                        "weights": file_digest(source["path"]) if w else None,
                    },
                    f"doppler b: M {M} {method}",
                    method,
                    w,
                    ctx.kernel,
                    ctx.temperature,
                    ctx.task_progress,
                )
            )
    info = {
        "weights": source["path"],
        "weights_source": source["source"],
        "speed_mps": list(ctx.scenario.speed_interval_mps),
        "resolution_mps": {
            str(M): ctx.scenario.with_overrides({"ofdm.symbols": M}).speed_resolution_mps for M in B_SYMBOLS if M > 1
        },
    }
    return units, info


def part_c(ctx: Context) -> tuple[list[Unit], dict]:
    rx = ctx.scenario.with_overrides(
        {
            "ofdm.symbols": SYMBOLS,
            "scene.max_targets": 1,
            "transmitter.eta": 1.0,
            "scene.snr_sensing_db": C_SNR_DB,
            **SMALL_GRIDS,
        }
    )
    vu = rx.unambiguous_speed_mps
    top = max(C_SPEED_FRACTIONS) * vu
    rx = rx.with_overrides({"scene.speed_mps": [-top, top], "receiver.doppler_grid": C_SPEED_POINTS})
    threshold = task(perfect_threshold, rx, ctx.kernel, ctx.task_progress)
    theta0, r0 = on_grid_target(rx)
    psi = math.sqrt(sensing_gain_variance(C_SNR_DB, rx.array["antennas"], rx.scene["noise_power"]))
    grid = doppler_speeds(rx)
    units = []
    for frac in C_QUICK_SPEED_FRACTIONS if ctx.quick else C_SPEED_FRACTIONS:
        speed = float(grid[np.argmin(np.abs(grid - frac * vu))])  # the grid speed there
        scene = Scene([theta0], [r0], [psi * np.exp(1j * GAIN_PHASE_RAD)], [speed])
        for ici in ("off", "on"):
            s = rx.with_overrides({"ofdm.ici": ici})
            units.append(
                _unit(
                    ctx,
                    ici_point,
                    s,
                    {
                        "part": "c",
                        "speed_mps": speed,
                        "ici": ici,
                        "target": [theta0, r0, GAIN_PHASE_RAD],
                        "receiver_scenario": scenario_digest(rx),
                    },
                    f"doppler c: {speed:.4g} m/s ICI {ici}",
                    rx,
                    scene,
                    ctx.kernel,
                    threshold,
                    ctx.task_progress,
                )
            )
    curve = np.linspace(0.0, top, 61)
    eps = doppler_hz(curve, rx.get("array.carrier_hz")) / rx.ofdm["spacing_hz"]
    info = {
        "symbols": SYMBOLS,
        "snr_db": C_SNR_DB,
        "unambiguous_speed_mps": vu,
        "closed_form_db": {
            "speed_mps": curve.tolist(),
            "db": (10 * np.log10(np.abs(ici_own_carrier(eps, rx.ofdm["subcarriers"])) ** 2)).tolist(),
        },
        "speed_grid_step_mps": float(grid[1] - grid[0]),
        "target": {"angle_deg": math.degrees(theta0), "range_m": r0},
    }
    return units, info


def part_d(ctx: Context) -> tuple[list[Unit], dict]:
    sc = ctx.scenario.with_overrides(
        {
            "ofdm.symbols": SYMBOLS,
            "scene.max_targets": 2,
            "transmitter.eta": 1.0,
            "scene.snr_sensing_db": D_SNR_DB,
            "scene.speed_mps": list(D_SPEED_MPS),
            "receiver.doppler_grid": D_SPEED_POINTS,
            **SMALL_GRIDS,
        }
    )
    res = sc.speed_resolution_mps
    threshold = task(perfect_threshold, sc, ctx.kernel, ctx.task_progress)
    theta0, r0 = on_grid_target(sc)
    psi = math.sqrt(sensing_gain_variance(D_SNR_DB, sc.array["antennas"], sc.scene["noise_power"]))
    units = []
    for cells in D_QUICK_CELLS if ctx.quick else D_CELLS:
        v = cells * res / 2.0
        scene = Scene([theta0, theta0], [r0, r0], [psi, psi], [-v, v])
        units.append(
            _unit(
                ctx,
                resolution_point,
                sc,
                {"part": "d", "speed_diff_cells": cells, "target": [theta0, r0]},
                f"doppler d: {cells:g} cells",
                scene,
                cells,
                ctx.kernel,
                threshold,
                ctx.task_progress,
            )
        )
    grid = doppler_speeds(sc)
    info = {
        "symbols": SYMBOLS,
        "snr_db": D_SNR_DB,
        "resolution_mps": res,
        "speed_grid_step_mps": float(grid[1] - grid[0]),
        "target": {"angle_deg": math.degrees(theta0), "range_m": r0},
    }
    return units, info


# --- figure and run --------------------------------------------------------------------------
def plot(path, rows, info, title) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.4))
    by = {p: [r for r in rows if r["part"] == p] for p in "abcd"}

    def bars(r, key, lo, hi):
        # clipped at 0: a Wilson interval at 0 of n (or n of n) ends a rounding error (1.7e-18 at
        # 0 of 200) beyond the value, and errorbar refuses negative lengths
        return [[max(0.0, r_[key] - r_[lo]) for r_ in r], [max(0.0, r_[hi] - r_[key]) for r_ in r]]

    ax = axes[0, 0]
    a = by["a"]
    x = [r["snr_db"] for r in a]
    ax.semilogy(x, [r["crb_speed_mps"] for r in a], "k-", lw=2, label="CRB")
    y = [r["speed_rmse_mps"] for r in a]
    ax.errorbar(
        x,
        y,
        yerr=bars(a, "speed_rmse_mps", "speed_rmse_lo", "speed_rmse_hi"),
        marker="o",
        capsize=2,
        label="OMP, perfect knowledge",
    )
    ax.set_xlabel("SNR$_r$ (dB)")
    ax.set_ylabel("speed RMSE (m/s)")
    ax.set_title(
        f"(a) one target, M = {info['a']['symbols']}, grid step {info['a']['speed_grid']['step_mps']:.3g} m/s",
        fontsize=9,
    )
    for col, (key, label) in enumerate((("p_md", "p$_{md}$"), ("gospa", "GOSPA (m)"))):
        ax = axes[0, 1 + col]
        for method, mlabel in B_METHODS:
            r = [r_ for r_ in by["b"] if r_["method"] == method]
            ax.errorbar(
                [r_["symbols"] for r_ in r],
                [r_[key] for r_ in r],
                yerr=bars(r, key, f"{key}_lo", f"{key}_hi"),
                marker="o",
                capsize=2,
                label=mlabel,
            )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("symbols per frame M")
        ax.set_ylabel(label)
        lo, hi = info["b"]["speed_mps"]
        ax.set_title(f"(b) default scenario, v ~ U[{lo:g}, {hi:g}] m/s (M > 1), p$_{{fa}}$ calibrated", fontsize=9)
    ax = axes[1, 0]
    for ici, marker in (("off", "o"), ("on", "s")):
        r = [r_ for r_ in by["c"] if r_["ici"] == ici]
        ax.errorbar(
            [r_["speed_mps"] for r_ in r],
            [r_["p_md"] for r_ in r],
            yerr=bars(r, "p_md", "p_md_lo", "p_md_hi"),
            marker=marker,
            capsize=2,
            label=f"echo simulated with ICI {ici}",
        )
    ax.set_xlabel("target speed (m/s)")
    ax.set_ylabel("p$_{md}$")
    ax.set_title(
        f"(c) one target, M = {info['c']['symbols']}, {info['c']['snr_db']:g} dB; receiver assumes no ICI", fontsize=9
    )
    ax = axes[1, 1]
    on = [r_ for r_ in by["c"] if r_["ici"] == "on"]
    off = [r_ for r_ in by["c"] if r_["ici"] == "off"]
    ax.plot(
        info["c"]["closed_form_db"]["speed_mps"],
        info["c"]["closed_form_db"]["db"],
        "k-",
        lw=2,
        label="closed form 10 log$_{10}$|D($\\epsilon$)|$^2$",
    )
    ax.plot([r_["speed_mps"] for r_ in on], [r_["peak_db"] for r_ in on], "s", label="ICI on (noiseless map peak)")
    ax.plot([r_["speed_mps"] for r_ in off], [r_["peak_db"] for r_ in off], "o", mfc="none", label="ICI off")
    ax.set_xlabel("target speed (m/s)")
    ax.set_ylabel("map peak / |$\\alpha$KSM|$^2$ (dB)")
    ax.set_title("(c) the echo's power lost to ICI", fontsize=9)
    ax = axes[1, 2]
    d = by["d"]
    ax.errorbar(
        [r_["speed_diff_cells"] for r_ in d],
        [r_["resolved"] for r_ in d],
        yerr=bars(d, "resolved", "resolved_lo", "resolved_hi"),
        marker="o",
        capsize=2,
    )
    ax.axvline(1.0, color="k", ls=":", lw=1)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("speed difference / resolution $\\lambda$/(2 M T$_O$)")
    ax.set_ylabel("fraction resolved")
    ax.set_title(
        f"(d) two targets, same angle and range, M = {info['d']['symbols']}, {info['d']['snr_db']:g} dB", fontsize=9
    )
    for ax in axes.flat:
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    save_figure(fig, path, title)


def run(ctx: Context) -> dict:
    parts = {"a": part_a, "b": part_b, "c": part_c, "d": part_d}
    units, info, owner = [], {}, []
    for name, make in parts.items():
        u, info[name] = make(ctx)
        units += u
        owner += [name] * len(u)
    rows = ctx.compute(units)
    seconds = {}
    for name, t in zip(owner, ctx.runner.seconds):
        seconds[name] = seconds.get(name, 0.0) + t
    write_csv(ctx.path("doppler.csv"), rows, COLUMNS)
    sc = ctx.scenario
    plot(
        ctx.path("doppler.png"),
        rows,
        info,
        f"Moving targets: f$_c$ = {sc.get('array.carrier_hz') / 1e9:g} GHz, "
        f"T$_O$ = {sc.symbol_duration_s * 1e6:.3g} us, unambiguous speed {sc.unambiguous_speed_mps:.4g} m/s, "
        f"{sc.run['frames']} test frames per point",
    )
    keep = {
        "a": ("snr_db", "speed_rmse_mps", "speed_rmse_lo", "speed_rmse_hi", "speed_bias_mps", "crb_speed_mps"),
        "b": (
            "symbols",
            "method",
            "threshold",
            "p_md",
            "p_fa",
            "gospa",
            "speed_rmse_mps",
            "angle_rmse_deg",
            "range_rmse_m",
        ),
        "c": ("speed_mps", "ici", "p_md", "speed_rmse_mps", "range_rmse_m", "peak_db", "ici_closed_form_db"),
        "d": ("speed_diff_cells", "resolved", "resolved_lo", "resolved_hi", "p_md", "speed_rmse_mps"),
    }
    return {
        "symbol_duration_s": sc.symbol_duration_s,
        "unambiguous_speed_mps": sc.unambiguous_speed_mps,
        "parts": info,
        "points": {p: [{c: r[c] for c in keep[p]} for r in rows if r["part"] == p] for p in keep},
        "seconds_per_part": seconds,
    }


__all__ = [
    "COLUMNS",
    "DEFAULTS",
    "QUICK",
    "PhaseDrawSimulator",
    "ici_point",
    "matched_peak",
    "on_grid_target",
    "perfect_threshold",
    "resolution_point",
    "resolved_frames",
    "run",
    "speed_point",
    "symbols_point",
]
