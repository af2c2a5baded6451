"""Figs. 5, 6 and 9: ISAC trade-offs at p_fa = 1e-2 over the transmitter's (eta, phi) sweep (5).

For each method and each sweep point (eta, phi) the threshold is calibrated once to
receiver.p_fa (evaluation.calibrate, the rule of isac-eval) on calibration frames sent with that
point's precoder, then test frames are scored with evaluation.Scores: p_md (20), GOSPA (17),
angle / range RMSE over the GOSPA-matched pairs, and the SER (22) of the ML detector on the
communication link. The sensing receiver does not depend on (eta, phi) (it is built once per
method); the transmitter does. Nothing here re-implements the model: the precoder and the
receivers come from the transceiver layer, calibration and scoring from evaluation (the same
calls as evaluation.evaluate; a test checks one point against it).

95 % intervals: Wilson for p_md (missed / sum T_i) and for the SER (symbol errors / symbols;
symbols of one frame share a channel, so it is approximate), the normal interval of the mean
GOSPA, and the normal interval of the mean squared error, square-rooted, for the RMSEs.

fig9  multi-target (T_max = 5), eta over 8 uniform values in [0, 1], phi = 0: GOSPA and p_md
      vs SER for the baseline (no impairment knowledge: Alg. 1 on the nominal array, baseline
      transmitter), perfect knowledge (dOMP on the true array, baseline transmitter) and
      impairment learning (transmitter AND dOMP receiver on the learned array; --weights,
      default the shipped data/weights/impairment_default.safetensors).
fig5  single target (T_max = 1), sector [-40, -20] deg, eta x phi sweep (8 x 8: eta uniform in
      [0, 1], phi uniform in [0, 7 pi/4]): p_md, angle RMSE, range RMSE vs SER for the
      baseline, impairment learning, dictionary learning (full 720-point and limited 156-point
      dictionaries, OMP receiver on the learned dictionary) and NNBL (full and limited).
fig6  the same on the unseen sector [-20, 20] deg, without the limited variants (as the paper).

Weights of fig5 / fig6 (``--weights-dir DIR``), one file per method (learned.WEIGHT_FILES):
  impairment.safetensors          isac-train --method impairment
  dictionary.safetensors          isac-train --method dictionary
  dictionary_limited.safetensors  isac-train --method dictionary --dictionary-points 156
  nn.safetensors                  isac-train --method nn
  nn_limited.safetensors          isac-train --method nn --limited
(dictionary and nn files trained with scene.max_targets = 1, as the experiment's scenario; NNBL
checks T_max). A missing file is found or trained as learned.py says (OUT/weights-SIZE/, the
shipped impairment weights, or a training of the --size's profile). Each sweep point is one
unit of a resumable run (resume.py); all the units of a figure are computed at once (on a
Dask cluster, in parallel: cluster.py), the single-target threshold once per method.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ..config import Scenario
from ..evaluation import calibrate, score
from ..simulation import Simulator
from ..tasks import Shared, Unit, task
from ..transceiver import build, get
from .common import Context, ExperimentError, pyplot, row_metrics, save_figure, write_csv
from .learned import method_of, parameter_count, resolve_weights
from .resume import file_digest, scenario_digest

#: the paper's sweeps (Sec. V-C): 8 uniform eta in [0, 1], 8 uniform phi in [0, 7 pi / 4]
ETA_PAPER = tuple(float(x) for x in np.linspace(0.0, 1.0, 8))
PHI_PAPER = tuple(float(k * math.pi / 4) for k in range(8))

#: scenario settings (before --quick sizes and the user's --set)
DEFAULTS_FIG9 = {"scene.max_targets": 5, "run.frames": 1000, "run.calibration_frames": 1000, "run.batch": 100}
QUICK_FIG9 = {"run.frames": 60, "run.calibration_frames": 100, "run.batch": 100}
#: fig5 / fig6 calibrate once per method (Transceiver.threshold), so their calibration set is large
DEFAULTS_FIG5 = {
    "scene.max_targets": 1,
    "scene.target_sector_deg": [-40.0, -20.0],
    "run.frames": 200,
    "run.calibration_frames": 2000,
    "run.batch": 100,
}
QUICK_FIG5 = {"run.frames": 30, "run.calibration_frames": 60, "run.batch": 100}
DEFAULTS_FIG6 = {**DEFAULTS_FIG5, "scene.target_sector_deg": [-20.0, 20.0]}
QUICK_FIG6 = dict(QUICK_FIG5)

#: sweeps: (etas, phis) at the default size and with --quick (subsets of the paper's values; fig9's
#: quick sweep leaves out eta = 0, the communication-only beam, where every method sits near the
#: GOSPA cut-off and 60 frames cannot order them)
SWEEPS = {
    "fig9": ((ETA_PAPER, (0.0,)), ((ETA_PAPER[2], ETA_PAPER[4], 1.0), (0.0,))),
    "fig5": ((ETA_PAPER, PHI_PAPER), ((0.0, ETA_PAPER[4], 1.0), (0.0, math.pi))),
    "fig6": ((ETA_PAPER, PHI_PAPER), ((0.0, ETA_PAPER[4], 1.0), (0.0, math.pi))),
}

COLUMNS = (
    "method",
    "label",
    "eta",
    "phi_rad",
    "threshold",
    "p_fa",
    "p_md",
    "p_md_lo",
    "p_md_hi",
    "gospa",
    "gospa_lo",
    "gospa_hi",
    "ser",
    "ser_lo",
    "ser_hi",
    "angle_rmse_deg",
    "angle_rmse_lo",
    "angle_rmse_hi",
    "range_rmse_m",
    "range_rmse_lo",
    "range_rmse_hi",
    "matched",
    "frames",
    "calibration_frames",
)


@dataclass
class Spec:
    """One curve: ``key`` (CSV name), ``label``, evaluation ``method``, receiver mode (omp |
    domp; NNBL: its networks) and the weights file of a learned method."""

    key: str
    label: str
    method: str
    receiver: str = "omp"
    weights: str | None = None


def single_target_threshold(
    scenario: Scenario, base: Scenario, spec: Spec, weights, kernel: str, temperature: float
) -> float:
    """delta calibrated to receiver.p_fa (evaluation.calibrate) for the points of ``spec`` with
    T_max = 1: a false alarm (21) can then only happen on a frame without a target, whose echo is
    noise alone, drawn from the frame's own generator whatever the precoder, so the threshold is
    the same at every (eta, phi) of a method (tested). It is calibrated once per method, on the
    frames of the sweep's first point ``scenario``: a task that the method's points take."""
    t = build(base, spec.method, weights, spec.receiver, kernel, temperature)
    return calibrate(scenario, Simulator(scenario, precoder=t.precoder(scenario)), t.receiver, False)


def point(
    scenario: Scenario,
    base: Scenario,
    spec: Spec,
    weights,
    kernel: str,
    temperature: float,
    threshold: float | None = None,
) -> dict:
    """Calibrate to receiver.p_fa (unless ``threshold``, the method's single-target one, is
    given) and score one sweep point ``scenario``; the row of the CSV. The receiver is built on
    the experiment's scenario ``base`` (it does not depend on eta, phi), the precoder on the
    point's. A unit's task: it may run on a Dask worker (tasks.py)."""
    t = build(base, spec.method, weights, spec.receiver, kernel, temperature)
    simulator = Simulator(scenario, precoder=t.precoder(scenario))
    if threshold is None:
        threshold = calibrate(scenario, simulator, t.receiver, False)
    s = score(scenario, simulator, t.receiver, [threshold], False)[0]
    tx = scenario.transmitter
    row = dict(
        row_metrics(s),
        method=spec.key,
        label=spec.label,
        eta=tx["eta"],
        phi_rad=tx["phi_rad"],
        threshold=threshold,
        calibration_frames=scenario.run["calibration_frames"],
    )
    return {c: row[c] for c in COLUMNS}


def sweep_units(ctx: Context, spec: Spec, etas, phis) -> list[Unit]:
    """The units of one curve, one resumable unit per (eta, phi), in sweep order; with T_max = 1
    they share one threshold task (single_target_threshold), computed only when a point is."""
    base = ctx.scenario
    weights = Shared(ctx.load_weights(spec.weights, spec.method) if spec.weights else None)
    setup = (base, spec, weights, ctx.kernel, ctx.temperature)
    grid = [(float(eta), float(phi)) for eta in etas for phi in phis]
    scenarios = [base.with_overrides({"transmitter.eta": eta, "transmitter.phi_rad": phi}) for eta, phi in grid]
    threshold = task(single_target_threshold, scenarios[0], *setup) if base.scene["max_targets"] == 1 else None
    digest = file_digest(spec.weights)
    frames = base.run["frames"] + (0 if threshold else base.run["calibration_frames"])
    return [
        Unit(
            task(point, sc, *setup, threshold),
            {
                "curve": spec.key,
                "label": spec.label,
                "method": spec.method,
                "receiver": spec.receiver,
                "weights": digest,
                "point_scenario": scenario_digest(sc),
            },
            label=f"{ctx.name} {spec.key} eta={eta:.4g} phi={phi:.4g}",
            scenario=sc,
            frames=frames,
        )
        for (eta, phi), sc in zip(grid, scenarios)
    ]


def pareto(rows: list[dict], metric: str) -> list[dict]:
    """The non-dominated points (lower SER and lower ``metric``), by increasing SER."""
    pts = sorted((r for r in rows if _finite(r["ser"]) and _finite(r[metric])), key=lambda r: (r["ser"], r[metric]))
    front, best = [], math.inf
    for r in pts:
        if r[metric] < best:
            front.append(r)
            best = r[metric]
    return front


def _mean(values) -> float:
    v = [x for x in values if _finite(x)]
    return float(np.mean(v)) if v else float("nan")


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float, np.floating)) and math.isfinite(v)


def plot(
    path: str, curves: dict[str, list[dict]], metrics: list[tuple[str, str, bool]], title: str, lines: bool
) -> None:
    """Each metric vs SER. ``lines``: join the points in sweep order (the eta sweep of fig9);
    else every sweep point as a marker and the Pareto front (lower-left envelope) as a line."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4.2))
    markers = iter("osd^v<>p")
    for key, rows in curves.items():
        m = next(markers)
        for ax, (name, _, log) in zip(axes, metrics):
            ok = [r for r in rows if _finite(r[name]) and _finite(r["ser"]) and (not log or r[name] > 0)]
            if not ok:
                continue
            if lines:
                x = np.array([r["ser"] for r in ok])
                y = np.array([r[name] for r in ok])
                lo = np.array([r.get(f"{name}_lo", r[name]) for r in ok], dtype=float)
                hi = np.array([r.get(f"{name}_hi", r[name]) for r in ok], dtype=float)
                yerr = np.nan_to_num(np.array([y - lo, hi - y]), nan=0.0).clip(min=0)
                line = ax.errorbar(x, y, yerr=yerr, marker=m, ms=4, capsize=2, lw=1.2, label=rows[0]["label"])
                for r in ok:
                    ax.annotate(
                        f"{r['eta']:.2f}",
                        (r["ser"], r[name]),
                        fontsize=6,
                        alpha=0.7,
                        textcoords="offset points",
                        xytext=(3, 3),
                        color=line[0].get_color(),
                    )
            else:
                pts = ax.plot([r["ser"] for r in ok], [r[name] for r in ok], m, ms=3, alpha=0.35)[0]
                front = pareto(ok, name)
                ax.plot(
                    [r["ser"] for r in front],
                    [r[name] for r in front],
                    "-" + m,
                    ms=4,
                    lw=1.4,
                    color=pts.get_color(),
                    label=rows[0]["label"],
                )
    for ax, (name, ylabel, log) in zip(axes, metrics):
        ax.set_xscale("symlog", linthresh=1e-4)
        ax.set_xlim(left=0)
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("symbol error rate (SER)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, path, title, fontsize=9)


# --- runners ---------------------------------------------------------------------------------------------


def _summarise(curves: dict[str, list[dict]], metrics: list[str]) -> dict:
    out = {}
    for key, rows in curves.items():
        sensing = max(rows, key=lambda r: (r["eta"], -r["phi_rad"]))  # eta = 1 (sensing-only beam), phi = 0
        out[key] = {
            "points": len(rows),
            "mean": {m: _mean([r[m] for r in rows]) for m in metrics + ["ser"]},
            "at_max_eta": {m: sensing[m] for m in ["eta", "phi_rad", "ser", "p_fa"] + metrics},
            "pareto": {
                m: [{"eta": r["eta"], "phi_rad": r["phi_rad"], "ser": r["ser"], m: r[m]} for r in pareto(rows, m)]
                for m in metrics
            },
        }
    return out


def _run_curves(ctx: Context, specs: list[Spec], etas, phis) -> tuple[dict, dict]:
    """The rows of every curve (one compute of all their units: on a Dask cluster they run at
    once) and the seconds spent on each curve's units."""
    plans = [sweep_units(ctx, spec, etas, phis) for spec in specs]
    results = ctx.compute([u for plan in plans for u in plan])
    curves, timing, first = {}, {}, 0
    for spec, plan in zip(specs, plans):
        curves[spec.key] = results[first : first + len(plan)]
        timing[spec.key] = sum(ctx.runner.seconds[first : first + len(plan)])
        first += len(plan)
    return curves, timing


def run_fig9(ctx: Context) -> dict:
    sc = ctx.scenario
    source = resolve_weights(ctx, "impairment", ctx.weights)  # fails before any simulation, saying why
    weights = source["path"]
    specs = [
        Spec("baseline", "baseline (OMP, nominal array)", "baseline", "omp"),
        Spec("perfect", "perfect knowledge (dOMP; baseline transmitter)", "perfect", "domp"),
        Spec("impairment", "impairment learning (dOMP; learned transmitter)", "impairment", "domp", weights),
    ]
    etas, phis = SWEEPS["fig9"][1 if ctx.quick else 0]
    curves, timing = _run_curves(ctx, specs, etas, phis)
    rows = [r for k in curves for r in curves[k]]
    write_csv(ctx.path(f"{ctx.name}.csv"), rows, COLUMNS)
    plot(
        ctx.path(f"{ctx.name}.png"),
        curves,
        [("gospa", "GOSPA (m)", False), ("p_md", "misdetection probability $p_{md}$", True)],
        f"Fig. 9: multi-target ISAC trade-off at p_fa = {sc.receiver['p_fa']:g} over eta (phi = 0; labels: eta), "
        f"T_max = {sc.scene['max_targets']}, {sc.run['calibration_frames']} + {sc.run['frames']} frames per point",
        lines=True,
    )
    gap = {f"{r['eta']:.4f}": b["gospa"] - r["gospa"] for r, b in zip(curves["impairment"], curves["baseline"])}
    return {
        "etas": list(etas),
        "phis": list(phis),
        "weights": weights,
        "weights_source": source,
        "methods": {
            s.key: {
                "label": s.label,
                "receiver": s.receiver,
                "transmitter": "learned" if get(s.method).transmit_learned else "baseline",
            }
            for s in specs
        },
        "curves": _summarise(curves, ["p_md", "gospa", "angle_rmse_deg", "range_rmse_m"]),
        "gospa_baseline_minus_impairment": gap,
        "seconds_per_method": timing,
    }


def _single_target(ctx: Context, keys: list[str], figure: str) -> dict:
    sc = ctx.scenario
    if sc.scene["max_targets"] != 1:
        raise ExperimentError(f"{ctx.name} is single-target: scene.max_targets must be 1")
    labels = {
        "baseline": "baseline (OMP, nominal array)",
        "impairment": "impairment learning (dOMP)",
        "dictionary": "dictionary learning (OMP, 720-pt)",
        "dictionary_limited": "dictionary learning, limited (156-pt)",
        "nn": "NNBL",
        "nn_limited": "NNBL, limited",
    }
    weights, params, t_weights = {}, {}, time.perf_counter()
    for key in keys[1:]:
        weights[key] = resolve_weights(ctx, key)
        params[key] = parameter_count(sc, ctx.load_weights(weights[key]["path"], method_of(key)))
    t_weights = time.perf_counter() - t_weights
    specs = [Spec("baseline", labels["baseline"], "baseline", "omp")]
    for key in keys[1:]:
        method = method_of(key)
        specs.append(Spec(key, labels[key], method, get(method).paper_receiver, weights[key]["path"]))
    etas, phis = SWEEPS[ctx.name][1 if ctx.quick else 0]
    curves, timing = _run_curves(ctx, specs, etas, phis)
    rows = [r for k in curves for r in curves[k]]
    write_csv(ctx.path(f"{ctx.name}.csv"), rows, COLUMNS)
    lo, hi = sc.scene["target_sector_deg"]
    plot(
        ctx.path(f"{ctx.name}.png"),
        curves,
        [
            ("p_md", "misdetection probability $p_{md}$", True),
            ("angle_rmse_deg", "angle RMSE (deg)", True),
            ("range_rmse_m", "range RMSE (m)", True),
        ],
        f"{figure}: single-target ISAC trade-offs at p_fa = {sc.receiver['p_fa']:g}, sector [{lo:g}, {hi:g}] deg, "
        f"{len(etas)} eta x {len(phis)} phi (markers: sweep points, lines: Pareto fronts), "
        f"{sc.run['calibration_frames']} calibration frames per method, {sc.run['frames']} test frames per point",
        lines=False,
    )
    return {
        "etas": list(etas),
        "phis": list(phis),
        "sector_deg": [lo, hi],
        "methods": {
            s.key: {
                "label": s.label,
                "method": s.method,
                "receiver": s.receiver,
                "weights": weights.get(s.key),
                "parameters": params.get(s.key),
            }
            for s in specs
        },
        "curves": _summarise(curves, ["p_md", "angle_rmse_deg", "range_rmse_m", "gospa"]),
        "seconds_weights": t_weights,
        "seconds_per_method": timing,
    }


def run_fig5(ctx: Context) -> dict:
    return _single_target(
        ctx, ["baseline", "impairment", "dictionary", "dictionary_limited", "nn", "nn_limited"], "Fig. 5"
    )


def run_fig6(ctx: Context) -> dict:
    return _single_target(ctx, ["baseline", "impairment", "dictionary", "nn"], "Fig. 6 (unseen sector)")


__all__ = [
    "COLUMNS",
    "DEFAULTS_FIG5",
    "DEFAULTS_FIG6",
    "DEFAULTS_FIG9",
    "ETA_PAPER",
    "PHI_PAPER",
    "QUICK_FIG5",
    "QUICK_FIG6",
    "QUICK_FIG9",
    "SWEEPS",
    "Spec",
    "pareto",
    "point",
    "run_fig5",
    "run_fig6",
    "run_fig9",
    "single_target_threshold",
    "sweep_units",
]
