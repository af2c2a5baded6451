"""Array impairments beyond Example 1 (model/impairments.py): for each element model alone (gain
and phase errors, mutual coupling, dead elements) and a realistic combination with the spacing
errors, at two strengths, the baseline (nominal array at both ends, Sec. III), perfect knowledge
(the receiver knows the true array, baseline transmitter: Figs. 7-8) and impairment learning of
every active model (the learned array at both ends, Sec. IV-A), all with the OMP receiver of
Algorithm 1, at p_fa = receiver.p_fa (1e-2): p_md (20), GOSPA (17) and SER (22) with 95 %
intervals (Wilson for p_md, p_fa and the SER, whose symbols of one frame share a channel, so it
is approximate; the normal interval of the mean GOSPA). The ideal array (every model off) is the
reference row.

Settings: the scenario's (by default the Sec. V-A test scenario, eta = 0.5) with the models of
CONFIGS, each configuration alone on the ideal array positions (array.spacing_std_m = 0) except
the combinations, which add the spacing errors; dead element counts scale with K. The default
impairment seed is HELD_OUT_SEED, not the seed the learning rates (the models' lr_scale) were tuned
on (1): the learned curves are trained on the held-out array itself, like any deployment.

Weights per configuration ("impairments-KEY.safetensors", KEY in CONFIGS): from ``--weights-dir
DIR``, else OUT/weights-SIZE/ of an earlier run, else trained now (learned.train_weights with the
--size's profile: quick = a few steps, plumbing only; default = the isac-train --quick profile;
paper = the multi-target paper profile). Each (configuration, method) is one resumable unit.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from .. import transceiver
from ..config import Scenario
from ..evaluation import calibrate, score
from ..model import array as arr
from ..model.impairments import active_models, dead_indices, draw_gain_errors, learned_models, true_array
from ..simulation import Simulator
from ..tasks import Unit, task
from ..transceiver import build
from .common import Context, ExperimentError, pyplot, row_metrics, save_figure, write_csv
from .learned import cache_dir, train_weights
from .resume import file_digest, scenario_digest

#: the impairment seed of the published run: not the seed (1) the learning rates were tuned on
HELD_OUT_SEED = 7

#: scenario settings (before --size sizes and the user's --set)
DEFAULTS = {"array.impairment_seed": HELD_OUT_SEED, "run.frames": 400, "run.calibration_frames": 400, "run.batch": 100}
QUICK = {"run.frames": 40, "run.calibration_frames": 60, "run.batch": 50}

#: key -> (model, strength, label, overrides); "dead" counts are fractions of K (at least 1)
CONFIGS = {
    "gain-mild": ("gain", "mild", "gain 1.5 dB / 30°", {"array.gain_std_db": 1.5, "array.phase_std_deg": 30.0}),
    "gain-strong": ("gain", "strong", "gain 3 dB / 60°", {"array.gain_std_db": 3.0, "array.phase_std_deg": 60.0}),
    "coupling-mild": (
        "coupling",
        "mild",
        "coupling −15 dB, 3 taps",
        {"array.coupling_taps": 3, "array.coupling_db": -15.0},
    ),
    "coupling-strong": (
        "coupling",
        "strong",
        "coupling −8 dB, 3 taps",
        {"array.coupling_taps": 3, "array.coupling_db": -8.0},
    ),
    "dead-mild": ("dead", "mild", "K/16 dead", {"dead_fraction": 1 / 16}),
    "dead-strong": ("dead", "strong", "K/4 dead", {"dead_fraction": 1 / 4}),
    "combined-mild": (
        "combined",
        "mild",
        "0.1 mm + 1 dB/15° + −20 dB + K/32 dead",
        {
            "array.spacing_std_m": 1e-4,
            "array.gain_std_db": 1.0,
            "array.phase_std_deg": 15.0,
            "array.coupling_taps": 2,
            "array.coupling_db": -20.0,
            "dead_fraction": 1 / 32,
        },
    ),
    "combined-strong": (
        "combined",
        "strong",
        "0.2 mm + 2 dB/30° + −12 dB + K/16 dead",
        {
            "array.spacing_std_m": 2e-4,
            "array.gain_std_db": 2.0,
            "array.phase_std_deg": 30.0,
            "array.coupling_taps": 2,
            "array.coupling_db": -12.0,
            "dead_fraction": 1 / 16,
        },
    ),
}
#: the transceiver methods compared: key -> (method, legend)
METHODS = {
    "baseline": ("baseline", "baseline (nominal array)"),
    "perfect": ("perfect", "perfect knowledge (receiver)"),
    "learned": ("impairment", "impairment learning"),
}

#: the metrics of a row (evaluate_method), after the configuration columns
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
    "ser",
    "ser_lo",
    "ser_hi",
    "frames",
    "calibration_frames",
)
COLUMNS = ("config", "model", "strength", "label", "method", *METRIC_COLUMNS)

#: the key of the reference row: every impairment model off (the ideal lambda/2 ULA)
IDEAL = "ideal"


def _off() -> dict:
    """The overrides that turn every impairment model off (the ideal array)."""
    return {
        "array.spacing_std_m": 0.0,
        "array.gain_std_db": 0.0,
        "array.phase_std_deg": 0.0,
        "array.coupling_taps": 0,
        "array.dead_elements": 0,
        "array.dead_list": [],
    }


def config_scenario(base: Scenario, key: str) -> Scenario:
    """The scenario of configuration ``key`` (CONFIGS) on ``base``: every model off, then the
    configuration's (dead_fraction: max(1, round(fraction K)) elements, at most K - 1)."""
    if key == IDEAL:
        return base.with_overrides(_off())
    if key not in CONFIGS:
        raise ExperimentError(f"unknown impairments configuration {key!r}; choose from {', '.join(CONFIGS)}")
    settings = dict(CONFIGS[key][3])
    K = base.array["antennas"]
    fraction = settings.pop("dead_fraction", None)
    if fraction is not None:
        settings["array.dead_elements"] = int(min(max(1, round(fraction * K)), K - 1))
    taps = settings.get("array.coupling_taps")
    if taps is not None:
        settings["array.coupling_taps"] = min(taps, K - 1)
    return base.with_overrides({**_off(), **settings})


def weights_name(key: str) -> str:
    return f"impairments-{key}.safetensors"


def resolve(ctx: Context, key: str, scenario: Scenario) -> dict:
    """{path, source, ...} of the learned weights of configuration ``key``: --weights-dir, an
    earlier run's OUT/weights-SIZE/, or trained now (learned.train_weights, the --size's profile)."""
    sub = dataclasses.replace(ctx, scenario=scenario)
    if ctx.weights_dir:
        p = os.path.join(ctx.weights_dir, weights_name(key))
        if os.path.isfile(p):
            sub.load_weights(p, "impairment")  # a file that does not fit fails here, saying why
            return {"path": p, "source": "weights-dir"}
    cached = os.path.join(cache_dir(ctx), weights_name(key))
    if os.path.isfile(cached):
        try:
            sub.load_weights(cached, "impairment")
            return {"path": cached, "source": "cached"}
        except ValueError:
            pass  # another scenario's file: train again
    info = train_weights(sub, "impairment", cached)
    return {"path": cached, "source": "trained", **info}


def evaluate_method(scenario: Scenario, method: str, weights, kernel: str, temperature: float) -> dict:
    """Calibrate to receiver.p_fa (the rule of isac-eval) and score the OMP receiver of
    ``method`` (``weights``: its loaded weights, None for baseline / perfect) on ``scenario``:
    one CSV row's metrics with their 95 % intervals. A unit's task: it may run on a Dask
    worker (tasks.py)."""
    tr = build(scenario, method, weights, "omp", kernel, temperature)
    simulator = Simulator(scenario, precoder=tr.precoder(scenario))
    threshold = calibrate(scenario, simulator, tr.receiver, False)
    s = score(scenario, simulator, tr.receiver, [threshold], False)[0]
    row = dict(row_metrics(s), threshold=threshold, calibration_frames=scenario.run["calibration_frames"])
    return {k: row[k] for k in METRIC_COLUMNS}


def _coherence(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |a^H b| / (||a|| ||b||) over the columns (angles)."""
    a, b = a.astype(np.complex128), b.astype(np.complex128)
    cos = np.abs(np.sum(a.conj() * b, axis=0)) / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0))
    return float(np.mean(cos))


def _element_error(est: np.ndarray, ref: np.ndarray) -> float:
    """min_s ||s est - ref||_F / ||ref||_F: the relative error after the best common complex
    scale s (a common gain and phase of every element only scales the maps; nothing sees it)."""
    s = np.vdot(est, ref) / max(np.vdot(est, est).real, 1e-300)
    return float(np.linalg.norm(s * est - ref) / np.linalg.norm(ref))


def _rms_offset_free(x: np.ndarray, circular: bool = False) -> float:
    """RMS of x after removing its mean (circular mean for phases, wrapped to (-pi, pi])."""
    if circular:
        x = np.angle(np.exp(1j * (x - np.angle(np.mean(np.exp(1j * x))))))
        return float(np.sqrt(np.mean(x**2)))
    return float(np.sqrt(np.mean((x - x.mean()) ** 2)))


def learned_quality(scenario: Scenario, weights) -> dict:
    """How close the learned array is to the true one, at the nominal start and after learning:
    the mean coherence over [-70, 70] deg, the element error of M = diag(g) C (_element_error),
    and per model the parameters' errors: gain phases (deg) and amplitudes (dB), rms with the
    common offset removed; the mean learned amplitude of the dead and of the live elements;
    the relative coupling error ||c^ - c|| / ||c||."""
    K = scenario.array["antennas"]
    true, learned = true_array(scenario), transceiver.get(weights.method).array(weights, scenario)
    nominal = arr.scenario_nominal_array(scenario)
    angles = np.deg2rad(np.linspace(-70.0, 70.0, 281))
    b = true.steering(angles)
    ref = getattr(true, "element_matrix", np.eye(K))
    out = {
        "coherence_start": _coherence(nominal.steering(angles), b),
        "coherence": _coherence(learned.steering(angles), b),
        "element_error_start": _element_error(np.eye(K), ref),
        "element_error": _element_error(getattr(learned, "element_matrix", np.eye(K)), ref),
    }
    a, t = scenario.array, weights.tensors
    models = learned_models(scenario)
    if "gain" in models:
        gain_db, phase = draw_gain_errors(K, a["gain_std_db"], a["phase_std_deg"], a["impairment_seed"])
        out.update(
            phase_rms_deg_start=np.rad2deg(_rms_offset_free(phase, True)),
            phase_rms_deg=np.rad2deg(_rms_offset_free(t["phase_rad"] - phase, True)),
            amplitude_rms_db_start=_rms_offset_free(gain_db),
            amplitude_rms_db=_rms_offset_free(t["gain_db"] - gain_db),
        )
    if "dead" in models:
        dead = np.zeros(K, bool)
        dead[dead_indices(scenario)] = True
        out.update(
            dead_amplitude=float(np.mean(t["amplitude"][dead])),
            live_amplitude=float(np.mean(t["amplitude"][~dead])),
            true_dead_amplitude=a["weak_gain"],
        )
    if "coupling" in models:
        c = true.parameters["coupling"]["coupling"] @ np.array([1.0, 1j])
        out["coupling_error"] = float(
            np.linalg.norm(t["coupling"][:, 0] + 1j * t["coupling"][:, 1] - c) / np.linalg.norm(c)
        )
    if "spacing" in models:
        dp = learned.positions_m - true.positions_m
        out.update(
            position_rms_mm_start=1e3 * _rms_offset_free(nominal.positions_m - true.positions_m),
            position_rms_mm=1e3 * _rms_offset_free(dp),
        )
    return {k: float(v) for k, v in out.items()}


def _units(ctx: Context, key: str, scenario: Scenario, weights: dict | None) -> list[Unit]:
    """The units of configuration ``key``: one per method (the ideal array: the baseline only)."""
    methods = ["baseline"] if key == IDEAL else list(METHODS)
    units = []
    for m in methods:
        path = weights["path"] if m == "learned" else None
        loaded = dataclasses.replace(ctx, scenario=scenario).load_weights(path, "impairment") if path else None
        units.append(
            Unit(
                task(evaluate_method, scenario, METHODS[m][0], loaded, ctx.kernel, ctx.temperature),
                {"config": key, "method": m, "scenario": scenario_digest(scenario), "weights": file_digest(path)},
                label=f"impairments {key} {m}",
                scenario=scenario,
                frames=scenario.run["calibration_frames"] + scenario.run["frames"],
            )
        )
    return units


def _row(key: str, unit: Unit, metrics: dict) -> dict:
    """The CSV row of one unit's ``metrics``, after its configuration's columns."""
    model, strength, label = (IDEAL, "-", "ideal array") if key == IDEAL else CONFIGS[key][:3]
    return dict(config=key, model=model, strength=strength, label=label, method=unit.key["method"], **metrics)


def plot(path: str, rows: list[dict], title: str) -> None:
    """p_md, GOSPA and SER per configuration: one bar per method with its 95 % interval; the
    ideal array as a dashed line."""
    plt = pyplot()
    configs = [k for k in CONFIGS if any(r["config"] == k for r in rows)]
    ideal = next((r for r in rows if r["config"] == IDEAL), None)
    fig, axes = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    x = np.arange(len(configs))
    width = 0.27
    for ax, (metric, name) in zip(axes, (("p_md", "$p_{md}$"), ("gospa", "GOSPA (m)"), ("ser", "SER"))):
        for i, m in enumerate(METHODS):
            sel = [next(r for r in rows if r["config"] == k and r["method"] == m) for k in configs]
            y = np.array([r[metric] for r in sel], dtype=float)
            err = np.array([[r[metric] - r[f"{metric}_lo"] for r in sel], [r[f"{metric}_hi"] - r[metric] for r in sel]])
            ax.bar(x + (i - 1) * width, y, width, yerr=np.nan_to_num(err), capsize=2, label=METHODS[m][1])
        if ideal is not None:
            ax.axhline(ideal[metric], color="0.3", ls="--", lw=1, label="ideal array")
        ax.set_ylabel(name)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, ncol=4)
    axes[-1].set_xticks(x)
    axes[-1].set_xticklabels([CONFIGS[k][2] for k in configs], rotation=20, ha="right", fontsize=8)
    save_figure(fig, path, title)


def run(ctx: Context) -> dict:
    """The weights of every configuration first (found, or trained here, one after another),
    then every unit at once (on a Dask cluster, in parallel), then the table."""
    base = ctx.scenario
    configs, timing = {}, {}
    plans = [(IDEAL, _units(ctx, IDEAL, config_scenario(base, IDEAL), None))]
    for key in CONFIGS:
        t0 = time.perf_counter()
        sc = config_scenario(base, key)
        weights = resolve(ctx, key, sc)
        plans.append((key, _units(ctx, key, sc, weights)))
        w = dataclasses.replace(ctx, scenario=sc).load_weights(weights["path"], "impairment")
        configs[key] = {
            "label": CONFIGS[key][2],
            "models": list(active_models(sc)),
            "learned_models": list(learned_models(sc)),
            "dead_elements": sc.array["dead_elements"],
            "scenario_hash": sc.hash(),
            "weights": weights,
            **learned_quality(sc, w),
        }
        timing[key] = time.perf_counter() - t0  # finding or training the weights
    results = ctx.compute([u for _, units in plans for u in units])
    rows, first = [], 0
    for key, units in plans:
        rows += [_row(key, u, r) for u, r in zip(units, results[first : first + len(units)])]
        timing[key] = timing.get(key, 0.0) + sum(ctx.runner.seconds[first : first + len(units)])
        first += len(units)
    write_csv(ctx.path("impairments.csv"), rows, COLUMNS)
    sc = base.scene
    plot(
        ctx.path("impairments.png"),
        rows,
        f"Array impairments: baseline vs perfect knowledge vs impairment learning, p_fa = {base.receiver['p_fa']:g}\n"
        f"(impairment seed {base.array['impairment_seed']}, K = {base.array['antennas']}, T_max = "
        f"{sc['max_targets']}, eta = {base.transmitter['eta']:g}, {base.run['frames']} test frames, "
        f"{ctx.size} size; 95 % intervals)",
    )
    table = {r["config"]: {} for r in rows}
    for r in rows:
        table[r["config"]][r["method"]] = {
            c: r[c]
            for c in ("p_md", "p_md_lo", "p_md_hi", "gospa", "gospa_lo", "gospa_hi", "ser", "ser_lo", "ser_hi", "p_fa")
        }
    return {
        "at_p_fa": base.receiver["p_fa"],
        "impairment_seed": base.array["impairment_seed"],
        "held_out_seed": HELD_OUT_SEED,
        "configs": configs,
        "metrics": table,
        "seconds": timing,
    }


__all__ = [
    "CONFIGS",
    "DEFAULTS",
    "HELD_OUT_SEED",
    "METHODS",
    "QUICK",
    "config_scenario",
    "evaluate_method",
    "learned_quality",
    "resolve",
    "run",
]
