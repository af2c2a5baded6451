"""Figs. 7 and 8: misdetection probability p_md (20) and GOSPA (17) against the false-alarm
probability p_fa (21), traced by sweeping the OMP stopping threshold delta (Alg. 1, line 6).

For each method (transmitter, array the receiver assumes, receiver mode):
  1. one run of T_max iterations on every calibration frame gives the map peaks; for each
     target false-alarm rate in P_FA_TARGETS, model.metrics.calibrate_threshold picks the
     threshold (the same rule as isac-eval, whose p_fa = 1e-2 is one of the targets);
  2. one run on every test frame; evaluation.score scores it at every threshold (the
     detected count for a threshold comes from the same run: OmpResult.counts).
Each point carries 95 % intervals: Wilson score intervals for p_md and p_fa (successes =
missed / false targets, trials = sum T_i / sum (T_max - T_i); the slots of one frame are not
independent, so the intervals are approximate) and the normal interval of the mean GOSPA.

fig7: OMP vs dOMP inference, both with perfect impairment knowledge (the receiver knows
      the true array), baseline transmitter, T_max = 5, eta = 1 (Fig. 7).
fig8: the baseline without impairment knowledge (Alg. 1 on the nominal array) vs dOMP with
      perfect knowledge vs impairment learning (--weights, else learned.resolve_weights: the
      shipped weights, or at --size paper a paper-profile training) (Fig. 8).
Each method's curve is one unit of a resumable run (resume.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import Scenario
from ..evaluation import calibration_peaks, score
from ..model.metrics import calibrate_threshold
from ..simulation import Simulator
from ..tasks import Shared, Unit, task
from ..transceiver import build
from .common import Context, pyplot, row_metrics, save_figure, write_csv
from .learned import resolve_weights
from .resume import file_digest

#: target false-alarm rates of the threshold sweep (1e-2 is the paper's operating point)
P_FA_TARGETS = (1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.3, 0.5)

#: scenario settings of Figs. 7-8 (before --quick sizes and the user's --set)
DEFAULTS = {
    "transmitter.eta": 1.0,
    "scene.max_targets": 5,
    "run.frames": 4000,
    "run.calibration_frames": 4000,
    "run.batch": 100,
}
QUICK = {"run.frames": 200, "run.calibration_frames": 200, "run.batch": 100}

#: the metrics of a curve point, in the CSV and in the summary at p_fa = 1e-2
METRIC_COLUMNS = (
    "threshold",
    "p_fa",
    "p_fa_lo",
    "p_fa_hi",
    "p_md",
    "p_md_lo",
    "p_md_hi",
    "gospa",
    "gospa_lo",
    "gospa_hi",
    "angle_rmse_deg",
    "range_rmse_m",
)
COLUMNS = ("method", "label", "p_fa_target", *METRIC_COLUMNS, "frames", "calibration_frames")


@dataclass
class Curve:
    """One curve: ``key`` (CSV name), ``label`` (legend), the transceiver ``method``, the
    ``receiver`` ("omp" | "domp") and, for a learned method, its weights file."""

    key: str
    label: str
    method: str
    receiver: str
    weights: str | None = None


def learned_curve(ctx: Context) -> tuple[Curve, dict]:
    """The impairment-learning curve of Fig. 8 and where its weights came from: ``ctx.weights``
    (--weights) or learned.resolve_weights (the shipped weights at the quick and default sizes,
    a paper-profile training at --size paper). The learned spacings define the array of BOTH
    the transmitter (LS synthesis (6)-(7) on the learned array) and the dOMP receiver
    (parameter sharing, Sec. IV)."""
    source = resolve_weights(ctx, "impairment", ctx.weights)  # WeightsError says why not
    return Curve("learned", "impairment learning (dOMP)", "impairment", "domp", source["path"]), source


def fig7_curves(ctx: Context) -> list[Curve]:
    return [
        Curve("omp_perfect", "OMP, perfect knowledge", "perfect", "omp"),
        Curve("domp_perfect", "dOMP, perfect knowledge", "perfect", "domp"),
    ]


def fig8_curves(ctx: Context) -> tuple[list[Curve], dict]:
    learned, source = learned_curve(ctx)
    return [
        Curve("baseline", "baseline (OMP, nominal array)", "baseline", "omp"),
        Curve("domp_perfect", "dOMP, perfect knowledge", "perfect", "domp"),
        learned,
    ], source


def curve_key(curve: Curve) -> dict:
    """What one curve's result depends on besides the run's scenario and options."""
    return {
        "curve": curve.key,
        "label": curve.label,
        "method": curve.method,
        "receiver": curve.receiver,
        "weights": file_digest(curve.weights),
    }


def sweep_curve(sc: Scenario, curve: Curve, weights, kernel: str, temperature: float, progress=None) -> list[dict]:
    """The rows (one per distinct threshold) of one curve on scenario ``sc``; ``weights``: the
    curve's loaded weights (None for baseline / perfect). A unit's task: it may run on a Dask
    worker (tasks.py)."""
    T = sc.scene["max_targets"]
    tr = build(sc, curve.method, weights, curve.receiver, kernel, temperature)
    simulator = Simulator(sc, precoder=tr.precoder(sc))
    peaks, counts = calibration_peaks(sc, simulator, tr.receiver, progress, f"calibrating {curve.key}")
    thresholds = [calibrate_threshold(peaks, counts, T, p) for p in P_FA_TARGETS]
    scores = score(sc, simulator, tr.receiver, thresholds, progress, f"testing {curve.key}")
    rows, seen = [], set()
    for target, thr, s in zip(P_FA_TARGETS, thresholds, scores):
        if thr in seen:  # two targets calibrated to the same threshold: one point
            continue
        seen.add(thr)
        row = dict(
            row_metrics(s),
            method=curve.key,
            label=curve.label,
            p_fa_target=target,
            threshold=thr,
            calibration_frames=sc.run["calibration_frames"],
        )
        rows.append({c: row[c] for c in COLUMNS})
    return rows


def at_operating_point(rows: list[dict], p_fa_target: float = 1e-2) -> dict:
    """The row calibrated to ``p_fa_target`` (or the nearest target present)."""
    return min(rows, key=lambda r: abs(np.log(r["p_fa_target"] / p_fa_target)))


def plot(path: str, curves: dict[str, list[dict]], title: str) -> None:
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    markers = iter("osd^v")
    for key, rows in curves.items():
        x = np.array([r["p_fa"] for r in rows])
        keep = x > 0  # a point with no false alarm at all cannot sit on a log axis
        rows = [r for r, k in zip(rows, keep) if k]
        x = x[keep]
        if not rows:
            continue
        xerr = np.array([[r["p_fa"] - r["p_fa_lo"] for r in rows], [r["p_fa_hi"] - r["p_fa"] for r in rows]])
        m = next(markers)
        for ax, name in ((ax1, "p_md"), (ax2, "gospa")):
            y = np.array([r[name] for r in rows])
            yerr = np.array([[r[name] - r[f"{name}_lo"] for r in rows], [r[f"{name}_hi"] - r[name] for r in rows]])
            ax.errorbar(x, y, xerr=xerr, yerr=yerr, marker=m, ms=4, capsize=2, lw=1.2, label=rows[0]["label"])
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("false-alarm probability $p_{fa}$")
    ax1.set_ylabel("misdetection probability $p_{md}$")
    ax2.set_xscale("log")
    ax2.set_xlabel("false-alarm probability $p_{fa}$")
    ax2.set_ylabel("GOSPA (m)")
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path, title)


def curve_unit(ctx: Context, curve: Curve) -> Unit:
    """One curve as a resumable unit of work (tasks.Unit: resume.py, cluster.py)."""
    sc = ctx.scenario
    weights = Shared(ctx.load_weights(curve.weights, curve.method) if curve.weights else None)
    return Unit(
        task(sweep_curve, sc, curve, weights, ctx.kernel, ctx.temperature, ctx.task_progress),
        curve_key(curve),
        label=f"{ctx.name} {curve.key}",
        scenario=sc,
        frames=sc.run["calibration_frames"] + sc.run["frames"],
    )


def _run(ctx: Context, methods: list[Curve], title: str) -> dict:
    """Each curve is one resumable unit (resume.py); the curves run at once on a Dask cluster."""
    computed = ctx.compute([curve_unit(ctx, m) for m in methods])
    curves = {m.key: rows for m, rows in zip(methods, computed)}
    timing = {m.key: seconds for m, seconds in zip(methods, ctx.runner.seconds)}
    rows = [r for key in curves for r in curves[key]]
    write_csv(ctx.path(f"{ctx.name}.csv"), rows, COLUMNS)
    plot(ctx.path(f"{ctx.name}.png"), curves, title)
    at = {k: at_operating_point(v) for k, v in curves.items()}
    return {
        "methods": {
            m.key: {"label": m.label, "receiver": m.receiver, "transmitter": "learned" if m.weights else "baseline"}
            for m in methods
        },
        "at_p_fa_1e-2": {k: {c: r[c] for c in METRIC_COLUMNS} for k, r in at.items()},
        "min_gospa": {k: min(v, key=lambda r: r["gospa"])["gospa"] for k, v in curves.items()},
        "seconds_per_method": timing,
        "p_fa_targets": list(P_FA_TARGETS),
    }


def run_fig7(ctx: Context) -> dict:
    sc = ctx.scenario
    out = _run(
        ctx,
        fig7_curves(ctx),
        f"Fig. 7: OMP vs dOMP, perfect impairment knowledge, baseline transmitter "
        f"(T_max = {sc.scene['max_targets']}, eta = {sc.transmitter['eta']:g}, "
        f"SNR_r = {sc.scene['snr_sensing_db']:g} dB, {sc.run['frames']} test frames)",
    )
    a = out["at_p_fa_1e-2"]
    out["delta_p_md_domp_minus_omp"] = a["domp_perfect"]["p_md"] - a["omp_perfect"]["p_md"]
    out["delta_gospa_domp_minus_omp"] = a["domp_perfect"]["gospa"] - a["omp_perfect"]["gospa"]
    return out


def run_fig8(ctx: Context) -> dict:
    sc = ctx.scenario
    methods, source = fig8_curves(ctx)  # loads the weights first: a bad file fails before any simulation
    out = _run(
        ctx,
        methods,
        f"Fig. 8: baseline vs perfect knowledge vs impairment learning "
        f"(T_max = {sc.scene['max_targets']}, eta = {sc.transmitter['eta']:g}, "
        f"SNR_r = {sc.scene['snr_sensing_db']:g} dB, {sc.run['frames']} test frames)",
    )
    a = out["at_p_fa_1e-2"]
    out["p_md_ratio_baseline_over_perfect"] = a["baseline"]["p_md"] / max(a["domp_perfect"]["p_md"], 1e-12)
    out["weights"] = source["path"]
    out["weights_source"] = source
    return out


__all__ = ["Curve", "DEFAULTS", "P_FA_TARGETS", "QUICK", "learned_curve", "run_fig7", "run_fig8", "sweep_curve"]
