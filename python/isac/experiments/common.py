"""Shared pieces of the experiments: the run context, output writers (CSV, strict JSON,
PNG through matplotlib's Agg backend) and Monte Carlo confidence intervals (of sequences; the
scored metrics' intervals come from scoring.Scores' running statistics). Transceivers come
from the transceiver layer, calibration and scoring from ``evaluation``."""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from ..config import Scenario
from ..model.domp import DEFAULT_TEMPERATURE
from ..scoring import Z95, normal_interval, root_interval


class ExperimentError(ValueError):
    """An experiment cannot run with the given options; the message says why."""


#: experiment sizes: quick (tests, previews: seconds on 2 cores), default (the published CPU
#: runs of docs/results.md: minutes), paper (Sec. V training sizes and large Monte Carlo runs:
#: a GPU for the training, hours)
SIZES = ("quick", "default", "paper")


@dataclass
class Context:
    """What an experiment needs: the scenario (experiment defaults, --size sizes and the
    user's --config / --set already applied), the output folder, the sensing kernel,
    the progress-bar flag (None: tqdm decides, False: off), optional learned weights (a file; a
    folder of files for fig5 / fig6), the dOMP softmax temperature, the size (``quick`` is
    ``size == "quick"``), the torch device of on-the-fly training, the store of finished
    units (resume.ResultStore; None: nothing is stored) and the runner that computes the units
    (tasks.SerialRunner in this process, or cluster.DaskRunner on Dask workers)."""

    name: str
    scenario: Scenario
    out: str
    quick: bool = False
    kernel: str | None = None  # None: transceiver.default_kernel()
    progress: Any = None
    weights: str | None = None
    temperature: float = DEFAULT_TEMPERATURE  # dOMP softmax temperature
    weights_dir: str | None = None  # fig5 / fig6: folder of weights files named by method (learned.WEIGHT_FILES)
    size: str | None = None  # None: "quick" if quick else "default"
    device: str = "cpu"
    store: Any = None
    weights_other_array: bool = False  # load the given weights with load_weights(..., other_array=True)
    runner: Any = None  # tasks.SerialRunner (None: one, with ``progress``) or cluster.DaskRunner
    files: list = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.size is None:
            self.size = "quick" if self.quick else "default"
        if self.size not in SIZES:
            raise ExperimentError(f"size must be one of {', '.join(SIZES)}, got {self.size!r}")
        self.quick = self.size == "quick"
        if self.runner is None:
            from ..tasks import SerialRunner

            self.runner = SerialRunner(self.progress)

    def load_weights(self, path: str, method: str):
        """The weights file ``path`` of ``method``, read and validated (transceiver.load_weights) against the
        experiment's scenario, once per file and run."""
        from ..transceiver import load_weights

        cache = self.__dict__.setdefault("_weights", {})
        if (path, method) not in cache:  # the same file asked for as another method fails, saying so
            cache[path, method] = load_weights(path, self.scenario, method, other_array=self.weights_other_array)
        return cache[path, method]

    @property
    def task_progress(self):
        """The progress flag of the units' own frame bars: the run's in this process, off on
        Dask workers (the runner's bar over the units shows the progress there)."""
        return self.runner.task_progress

    def compute(self, units: list, desc: str | None = None) -> list:
        """The results of ``units`` (tasks.Unit), in order: from the store of a resumed run, else
        computed by the runner (and stored as each finishes); tasks.UnitsFailed names those that
        raised after the others finished."""
        return self.runner.run(units, self.store, desc or self.name)

    def path(self, filename: str) -> str:
        p = os.path.join(self.out, filename)
        self.files.append(filename)
        return p


def wilson_interval(successes: float, trials: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k/n (NaNs when n = 0)."""
    n = float(trials)
    if n <= 0:
        return float("nan"), float("nan")
    p = float(successes) / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(values: Sequence[float], z: float = Z95) -> tuple[float, float, float]:
    """(mean, lower, upper): normal confidence interval of the mean of a sequence
    (scoring.normal_interval; scoring.Scores gives the same from its running statistics)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    std = float(x.std(ddof=1)) if x.size > 1 else float("nan")
    return normal_interval(float(x.mean()), std, x.size, z)


def rmse_interval(errors: Sequence[float], z: float = Z95) -> tuple[float, float, float]:
    """(RMSE, lower, upper): the normal interval of the mean squared error, square-rooted
    (scoring.root_interval)."""
    return root_interval(mean_interval(np.asarray(errors, dtype=np.float64) ** 2, z))


def _plain(value):
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_json(path: str, obj: dict) -> None:
    """Strict JSON (NaN and Inf become null), indented, with a final newline."""
    with open(path, "w") as fh:
        json.dump(_plain(obj), fh, indent=2, allow_nan=False)
        fh.write("\n")


def write_csv(path: str, rows: Iterable[dict], columns: Sequence[str]) -> None:
    """CSV with a header line; floats with 8 significant digits, NaN as empty."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for row in rows:
            out = []
            for c in columns:
                v = row[c]
                if isinstance(v, (float, np.floating)):
                    out.append("" if not math.isfinite(v) else f"{float(v):.8g}")
                else:
                    out.append(v)
            w.writerow(out)


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str, title: str, fontsize: float = 10, tight_bbox: bool = False) -> None:
    """Title, lay out and write an experiment's figure (PNG, 130 dpi), then free it."""
    plt = pyplot()
    fig.suptitle(title, fontsize=fontsize)
    if tight_bbox:
        fig.savefig(path, dpi=130, bbox_inches="tight")
    else:
        fig.tight_layout()
        fig.savefig(path, dpi=130)
    plt.close(fig)


def row_metrics(s) -> dict:
    """A CSV row's metrics of ``s`` (scoring.Scores) with their 95 % intervals: p_md (20) and
    p_fa (21) with Wilson intervals of their counts, GOSPA (17) with the normal interval of its
    mean, SER (22) with a Wilson interval (the symbols of a frame share a channel: approximate),
    the angle / range RMSEs with the square-rooted interval of the mean squared error, the
    number of matched pairs and of frames. Each experiment keeps the columns it reports."""
    summ = s.summary()
    p_md_lo, p_md_hi = wilson_interval(s.missed, s.true_targets)
    p_fa_lo, p_fa_hi = wilson_interval(s.false_alarms, s.false_alarm_room)
    ser_lo, ser_hi = wilson_interval(s.symbol_errors, s.symbols)
    gospa, gospa_lo, gospa_hi = s.gospa_interval()
    _, angle_rmse_lo, angle_rmse_hi = s.rmse_interval("angle")
    _, range_rmse_lo, range_rmse_hi = s.rmse_interval("range")
    return dict(
        p_fa=summ["p_fa"],
        p_fa_lo=p_fa_lo,
        p_fa_hi=p_fa_hi,
        p_md=summ["p_md"],
        p_md_lo=p_md_lo,
        p_md_hi=p_md_hi,
        gospa=gospa,
        gospa_lo=gospa_lo,
        gospa_hi=gospa_hi,
        ser=summ["ser"],
        ser_lo=ser_lo,
        ser_hi=ser_hi,
        angle_rmse_deg=summ["angle_rmse_deg"],
        angle_rmse_lo=angle_rmse_lo,
        angle_rmse_hi=angle_rmse_hi,
        range_rmse_m=summ["range_rmse_m"],
        range_rmse_lo=range_rmse_lo,
        range_rmse_hi=range_rmse_hi,
        matched=s.matched,
        frames=summ["frames"],
    )
