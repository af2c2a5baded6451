"""Experiments that reproduce the paper's figures (and one beyond it) with the numpy model:

  fig3  angle-delay maps, ideal vs impaired array (Fig. 3)
  fig7  p_md and GOSPA vs p_fa: OMP vs dOMP with perfect impairment knowledge (Fig. 7)
  fig8  the same axes: baseline vs perfect knowledge (+ impairment learning from --weights) (Fig. 8)
  fig9  multi-target ISAC trade-off at p_fa = 1e-2 over eta: GOSPA, p_md vs SER (Fig. 9)
  fig5  single-target trade-offs over eta x phi: p_md, angle / range RMSE vs SER, learned methods (Fig. 5)
  fig6  the same on the unseen sector [-20, 20] deg (Fig. 6)
  crb   single-target Cramer-Rao bounds vs SNR_r beside OMP / dOMP / baseline RMSE

Run one with ``isac-eval --experiment NAME --out DIR [--quick]`` or :func:`run`. Each writes
NAME.csv, NAME.png and NAME.json (the summary: scenario, sizes, key numbers, run time) into
DIR. The scenario is built as: --config file (or the Sec. V-A defaults), then the
experiment's own settings (e.g. eta = 1), then the --quick sizes, then the user's --set
overrides, so a --set always wins. Frames are seeded by run.seed: results are deterministic.
"""
from __future__ import annotations

import os
import platform
import time
from typing import Iterable

from ..config import Scenario
from ..model.domp import DEFAULT_TEMPERATURE
from . import crb, fig3, sweep, tradeoff
from .common import Context, ExperimentError, default_kernel, write_json

#: name -> (module-level defaults, quick sizes, runner, one-line description)
EXPERIMENTS = {
    "fig3": (fig3.DEFAULTS, fig3.QUICK, fig3.run, "angle-delay maps, ideal vs impaired array (Fig. 3)"),
    "fig7": (sweep.DEFAULTS, sweep.QUICK, sweep.run_fig7, "OMP vs dOMP, perfect knowledge: p_md, GOSPA vs p_fa (Fig. 7)"),
    "fig8": (sweep.DEFAULTS, sweep.QUICK, sweep.run_fig8, "baseline vs perfect knowledge (+ learned): p_md, GOSPA vs p_fa (Fig. 8)"),
    "fig9": (tradeoff.DEFAULTS_FIG9, tradeoff.QUICK_FIG9, tradeoff.run_fig9,
             "multi-target ISAC trade-off over eta at p_fa = 1e-2: GOSPA, p_md vs SER (Fig. 9)"),
    "fig5": (tradeoff.DEFAULTS_FIG5, tradeoff.QUICK_FIG5, tradeoff.run_fig5,
             "single-target trade-offs over eta x phi, sector [-40, -20]: learned methods (Fig. 5)"),
    "fig6": (tradeoff.DEFAULTS_FIG6, tradeoff.QUICK_FIG6, tradeoff.run_fig6,
             "single-target trade-offs on the unseen sector [-20, 20] (Fig. 6)"),
    "crb": (crb.DEFAULTS, crb.QUICK, crb.run, "single-target CRB vs SNR_r beside OMP / dOMP / baseline RMSE"),
}


def experiment_scenario(name: str, config: str | None = None, overrides: Iterable[str] = (),
                        quick: bool = False) -> Scenario:
    """--config (or defaults) -> experiment settings -> --quick sizes -> --set overrides."""
    if name not in EXPERIMENTS:
        raise ExperimentError(f"unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)}")
    defaults, quick_sizes, _, _ = EXPERIMENTS[name]
    scenario = Scenario.load(config).with_overrides(defaults)
    if quick:
        scenario = scenario.with_overrides(quick_sizes)
    return scenario.with_overrides(list(overrides))


def run(name: str, scenario: Scenario, out: str, quick: bool = False, kernel: str | None = None, progress=None,
        weights: str | None = None, command: str | None = None, temperature: float = DEFAULT_TEMPERATURE,
        weights_dir: str | None = None) -> dict:
    """Run experiment ``name`` on ``scenario`` (see :func:`experiment_scenario`), writing
    NAME.csv, NAME.png and NAME.json into ``out``. Returns the summary dict."""
    if name not in EXPERIMENTS:
        raise ExperimentError(f"unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)}")
    if weights and name not in ("fig8", "fig9"):
        raise ExperimentError(f"--weights is used by experiments fig9 and fig8 only, not {name}"
                              + (" (fig5 / fig6: --weights-dir DIR)" if name in ("fig5", "fig6") else ""))
    if weights_dir and name not in ("fig5", "fig6"):
        raise ExperimentError(f"--weights-dir is used by experiments fig5 and fig6 only, not {name}")
    if weights_dir and not os.path.isdir(weights_dir):
        raise ExperimentError(f"--weights-dir {weights_dir}: no such folder")
    os.makedirs(out, exist_ok=True)
    ctx = Context(name, scenario, out, quick, kernel or default_kernel(), progress, weights, temperature, weights_dir)
    t0 = time.perf_counter()
    result = EXPERIMENTS[name][2](ctx)
    elapsed = time.perf_counter() - t0
    summary = {
        "experiment": name,
        "description": EXPERIMENTS[name][3],
        "command": command,
        "quick": quick,
        "kernel": ctx.kernel,
        "domp_temperature": temperature,
        "seconds": elapsed,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "scenario_hash": scenario.hash(),
        "scenario": scenario.to_dict(),
        "results": result,
        "files": sorted(ctx.files + [f"{name}.json"]),
    }
    write_json(os.path.join(out, f"{name}.json"), summary)
    return summary


__all__ = ["EXPERIMENTS", "ExperimentError", "experiment_scenario", "run"]
