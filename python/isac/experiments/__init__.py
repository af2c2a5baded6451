"""Experiments that reproduce the paper's figures (and one beyond it) with the numpy model:

  fig3  angle-delay maps, ideal vs impaired array (Fig. 3)
  fig7  p_md and GOSPA vs p_fa: OMP vs dOMP with perfect impairment knowledge (Fig. 7)
  fig8  the same axes: baseline vs perfect knowledge (+ impairment learning from --weights) (Fig. 8)
  fig9  multi-target ISAC trade-off at p_fa = 1e-2 over eta: GOSPA, p_md vs SER (Fig. 9)
  fig5  single-target trade-offs over eta x phi: p_md, angle / range RMSE vs SER, learned methods (Fig. 5)
  fig6  the same on the unseen sector [-20, 20] deg (Fig. 6)
  crb   single-target Cramer-Rao bounds vs SNR_r beside OMP / dOMP / baseline RMSE
  impairments  array impairments beyond Example 1 (gain / phase errors, mutual coupling, dead
        elements, a combination): baseline vs perfect knowledge vs impairment learning
  doppler  moving targets over M OFDM symbols: speed RMSE vs its CRB, p_md / GOSPA vs M, ICI on
        vs off across speeds, two targets told apart by speed alone

Run one with ``isac-eval --experiment NAME --out DIR [--size quick|default|paper]`` or
:func:`run`. Each writes NAME.csv, NAME.png and NAME.json (the summary: scenario, sizes, key
numbers, run time) into DIR. The scenario is built as: --config file (or the Sec. V-A
defaults), then the experiment's own settings and default sizes (e.g. eta = 1), then the
--size's sizes (quick: seconds; paper: large Monte Carlo runs and, for missing weights, the
paper's training sizes, see learned.py), then the user's --set overrides, so a --set always
wins. Frames are seeded by run.seed: results are deterministic. Finished units of work are
stored as they finish (resume.py): rerunning an interrupted command continues it. The units
are computed in this process (``--workers 1``) or as tasks on Dask workers (``--workers N``,
``--scheduler ADDRESS``: cluster.py), with the same results.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Iterable

from ..config import Scenario
from ..model.domp import DEFAULT_TEMPERATURE
from ..transceiver import default_kernel
from . import crb, doppler, fig3, impairments, sweep, tradeoff
from .common import SIZES, Context, ExperimentError, write_json
from .resume import ResultStore, file_digest, scenario_digest

#: name -> (module-level defaults, quick sizes, runner, one-line description)
EXPERIMENTS = {
    "fig3": (fig3.DEFAULTS, fig3.QUICK, fig3.run, "angle-delay maps, ideal vs impaired array (Fig. 3)"),
    "fig7": (
        sweep.DEFAULTS,
        sweep.QUICK,
        sweep.run_fig7,
        "OMP vs dOMP, perfect knowledge: p_md, GOSPA vs p_fa (Fig. 7)",
    ),
    "fig8": (
        sweep.DEFAULTS,
        sweep.QUICK,
        sweep.run_fig8,
        "baseline vs perfect knowledge (+ learned): p_md, GOSPA vs p_fa (Fig. 8)",
    ),
    "fig9": (
        tradeoff.DEFAULTS_FIG9,
        tradeoff.QUICK_FIG9,
        tradeoff.run_fig9,
        "multi-target ISAC trade-off over eta at p_fa = 1e-2: GOSPA, p_md vs SER (Fig. 9)",
    ),
    "fig5": (
        tradeoff.DEFAULTS_FIG5,
        tradeoff.QUICK_FIG5,
        tradeoff.run_fig5,
        "single-target trade-offs over eta x phi, sector [-40, -20]: learned methods (Fig. 5)",
    ),
    "fig6": (
        tradeoff.DEFAULTS_FIG6,
        tradeoff.QUICK_FIG6,
        tradeoff.run_fig6,
        "single-target trade-offs on the unseen sector [-20, 20] (Fig. 6)",
    ),
    "crb": (crb.DEFAULTS, crb.QUICK, crb.run, "single-target CRB vs SNR_r beside OMP / dOMP / baseline RMSE"),
    "impairments": (
        impairments.DEFAULTS,
        impairments.QUICK,
        impairments.run,
        "gain / phase errors, mutual coupling, dead elements: baseline vs perfect vs impairment learning",
    ),
    "doppler": (
        doppler.DEFAULTS,
        doppler.QUICK,
        doppler.run,
        "moving targets over M symbols: speed RMSE vs CRB, p_md / GOSPA vs M, ICI on vs off, resolution in speed",
    ),
}


#: name -> the paper-size frame counts (the paper gives no test sizes: these make the 95 %
#: intervals of the plotted points a few per cent of their values where the metric is not tiny)
PAPER_SIZES = {
    "fig3": {},
    "fig7": {"run.frames": 20000, "run.calibration_frames": 20000, "run.batch": 200},
    "fig8": {"run.frames": 20000, "run.calibration_frames": 20000, "run.batch": 200},
    "fig9": {"run.frames": 5000, "run.calibration_frames": 5000, "run.batch": 200},
    "fig5": {"run.frames": 2000, "run.calibration_frames": 20000, "run.batch": 200},
    "fig6": {"run.frames": 2000, "run.calibration_frames": 20000, "run.batch": 200},
    "crb": {"run.frames": 10000, "run.batch": 200},
    "impairments": {"run.frames": 5000, "run.calibration_frames": 5000, "run.batch": 200},
    "doppler": {"run.frames": 2000, "run.calibration_frames": 2000, "run.batch": 10},
}


def size_settings(name: str, size: str) -> dict:
    """The scenario settings --size adds to experiment ``name``'s defaults."""
    if name not in EXPERIMENTS:
        raise ExperimentError(f"unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)}")
    if size not in SIZES:
        raise ExperimentError(f"--size must be one of {', '.join(SIZES)}, got {size!r}")
    return {"quick": EXPERIMENTS[name][1], "default": {}, "paper": PAPER_SIZES[name]}[size]


def experiment_scenario(
    name: str, config: str | None = None, overrides: Iterable[str] = (), quick: bool = False, size: str | None = None
) -> Scenario:
    """--config (or defaults) -> experiment settings -> --size sizes -> --set overrides
    (``quick=True`` is ``size="quick"``)."""
    size = size or ("quick" if quick else "default")
    sizes = size_settings(name, size)
    scenario = Scenario.load(config).with_overrides(EXPERIMENTS[name][0])
    return scenario.with_overrides(sizes).with_overrides(list(overrides))


def run(
    name: str,
    scenario: Scenario,
    out: str,
    quick: bool = False,
    kernel: str | None = None,
    progress=None,
    weights: str | None = None,
    command: str | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
    weights_dir: str | None = None,
    size: str | None = None,
    device: str = "cpu",
    fresh: bool = False,
    weights_other_array: bool = False,
    runner=None,
) -> dict:
    """Run experiment ``name`` on ``scenario`` (see :func:`experiment_scenario`), writing
    NAME.csv, NAME.png and NAME.json into ``out``. Returns the summary dict.

    ``size`` (quick | default | paper; ``quick=True`` is "quick") picks the sweeps and the
    training profile of missing weights; ``device`` is the torch device of that training.
    Finished units are kept in OUT/.partial/NAME/ and reused by a rerun (``fresh``: recompute).
    ``runner`` computes the units: None (tasks.SerialRunner: this process, one after another)
    or cluster.DaskRunner (Dask workers); the files are the same, bit for bit."""
    size = size or ("quick" if quick else "default")
    size_settings(name, size)  # checks name and size
    if weights and name not in ("fig8", "fig9", "doppler"):
        raise ExperimentError(
            f"--weights is used by experiments doppler, fig9 and fig8 only, not {name}"
            + (" (fig5 / fig6: --weights-dir DIR)" if name in ("fig5", "fig6") else "")
        )
    if weights_dir and name not in ("fig5", "fig6", "impairments"):
        raise ExperimentError(f"--weights-dir is used by experiments impairments, fig5 and fig6 only, not {name}")
    if weights_dir and not os.path.isdir(weights_dir):
        raise ExperimentError(f"--weights-dir {weights_dir}: no such folder")
    os.makedirs(out, exist_ok=True)
    kernel = kernel or default_kernel(scenario)
    weights_key = file_digest(weights) if weights and os.path.isfile(weights) else weights
    store = ResultStore(
        os.path.join(out, ".partial", name),
        {
            "experiment": name,
            "size": size,
            "kernel": kernel,
            "temperature": temperature,
            "scenario": scenario_digest(scenario),
            "weights": weights_key,
            **({"weights_other_array": True} if weights_other_array else {}),
        },
        enabled=not fresh,
    )
    ctx = Context(
        name,
        scenario,
        out,
        size == "quick",
        kernel,
        progress,
        weights,
        temperature,
        weights_dir,
        size=size,
        device=device,
        store=store,
        weights_other_array=weights_other_array,
        runner=runner,
    )
    t0 = time.perf_counter()
    result = EXPERIMENTS[name][2](ctx)
    elapsed = time.perf_counter() - t0
    summary = {
        "experiment": name,
        "description": EXPERIMENTS[name][3],
        "command": command,
        "quick": size == "quick",
        "size": size,
        "resume": store.summary(),
        "runner": ctx.runner.summary(),
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


__all__ = ["EXPERIMENTS", "ExperimentError", "PAPER_SIZES", "SIZES", "experiment_scenario", "run", "size_settings"]
