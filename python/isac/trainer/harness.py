"""The training harness shared by every trainer of isac-train (model-based and NNBL).

``Harness`` owns what does not depend on the method:

  * the step: hooks ``before_step`` (schedules), ``training_batch`` (from the FrameSampler),
    ``per_frame_loss``, then ``optimise`` (batch mean, or under torchrun the data-parallel sum
    of trainer/distributed.py), Adam, ``after_step``, step + 1;
  * the loop ``run``: validation every ``val_every`` steps, the history (one row per step), a
    tqdm progress bar, the CSV log, checkpoints every ``checkpoint_every`` steps, the loss plot,
    and the weights file (transceiver.save_weights); under torchrun only rank 0 validates, logs and writes;
  * checkpoints (safetensors, written atomically): the trainer's tensors, the Adam state
    ("adam.<i>.<key>"), step, options, scenario hash, lr and history in the metadata, plus the
    trainer's own metadata; ``load_checkpoint`` refuses an unreadable file, another scenario or
    other ``RESUME_KEYS`` options with a one-line CheckpointError naming the file.

A trainer subclasses it and supplies the hooks marked "subclass" below (docs/trainer.md).
"""

from __future__ import annotations

import csv
import json
import os
import time
from typing import Any

import numpy as np
import torch

from .. import weights as weights_io
from ..config import Scenario
from ..transceiver import save_weights
from . import distributed as dist_ctx
from .sampler import Batch, FrameSampler


class CheckpointError(ValueError):
    """A --resume file that cannot be used (unreadable, or of another run); one line naming it."""


def read_checkpoint(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of an isac-train checkpoint; CheckpointError if ``path`` is not one.
    Only safetensors is read: a pickle (torch.save) file is named as such, never unpickled."""
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory; --resume takes a checkpoint file (W.ckpt.safetensors)")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises its own error types
        with open(path, "rb") as fh:
            head = fh.read(2)
        if head == b"PK" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
            raise CheckpointError(
                f"{path}: a pickle / torch.save file, not a safetensors checkpoint (isac-train never unpickles)"
            ) from None
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: damaged or not a safetensors checkpoint ({reason})") from None
    missing = [k for k in ("step", "options", "scenario_hash") if k not in meta]
    if missing:
        raise CheckpointError(
            f"{path}: not an isac-train checkpoint (no {missing[0]!r} metadata; a weights "
            "file? resume from W.ckpt.safetensors)"
        )
    try:
        int(meta["step"])
        json.loads(meta["options"])
        json.loads(meta.get("history", "[]"))
    except ValueError as exc:
        raise CheckpointError(f"{path}: damaged checkpoint metadata ({exc})") from None
    return tensors, meta


class Harness:
    """Step loop, checkpoints, CSV log, progress bar, plot and weights of one training run."""

    #: the weights file's method (subclass)
    method: str = ""
    #: columns of the CSV log (subclass)
    CSV_FIELDS: tuple[str, ...] = ("step", "train_loss", "elapsed_s")
    #: options that must match to resume a checkpoint (subclass)
    RESUME_KEYS: tuple[str, ...] = ("seed", "batch")
    #: a history row holding this key is a validation row (subclass)
    VAL_KEY: str = "val_loss"
    #: the trainer of a checkpoint ("trainer" metadata; before it was recorded: NNBL checkpoints
    #: were those with a "phase") (subclass)
    KIND: str = ""

    def __init__(
        self, scenario: Scenario, options, device: str, sampler: FrameSampler, dist: dist_ctx.Context = dist_ctx.SINGLE
    ):
        self.scenario = scenario
        self.options = options
        self.device = torch.device(device)
        self.sampler = sampler
        self.dist = dist
        #: frames [start, stop) of every step's global batch that this process trains on
        self.shard = dist_ctx.shard(options.batch, dist.rank, dist.world_size)
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.optimizer: torch.optim.Optimizer | None = None

    # --- hooks (subclass) ------------------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        return self.options.iterations

    def before_step(self) -> None:
        """Schedules of the coming step (lr, temperature, phase), train mode."""

    def training_batch(self) -> Batch:
        raise NotImplementedError

    def per_frame_loss(self, batch: Batch) -> torch.Tensor:
        """The loss of each frame of ``batch`` (B,), differentiable."""
        raise NotImplementedError

    def after_step(self, loss: float) -> None:
        """After the optimiser step (e.g. an lr scheduler), with the batch's mean loss."""

    def validate(self) -> dict[str, float]:
        raise NotImplementedError

    def validate_at(self, step: int) -> bool:
        return step % self.options.val_every == 0 or step == self.total_steps

    def row_fields(self, loss: float | None) -> dict[str, Any]:
        """History fields of the row after a step (``loss``), or of step 0 (None)."""
        return {"train_loss": loss}

    def format_row(self, row: dict[str, Any]) -> str:
        return f"step {row['step']:6d}  " + "  ".join(
            f"{k} {v:.3g}" for k, v in row.items() if k != "step" and isinstance(v, float)
        )

    def start_message(self) -> str | None:
        """Logged before training (or None)."""
        return None

    def resume_note(self) -> str:
        return ""

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        """The trainer's learnable state (the Adam state is added by save_checkpoint)."""
        raise NotImplementedError

    def checkpoint_meta(self) -> dict[str, str]:
        return {}

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, str], path: str) -> None:
        """Load the trainer's state and (load_adam) its optimiser from a read checkpoint."""
        raise NotImplementedError

    def weight_tensors(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def weights_extra(self) -> dict[str, Any]:
        """Keyword arguments of transceiver.save_weights beyond the tensors (e.g. metadata={"nnbl": ...})."""
        return {}

    def parameter_count(self):
        raise NotImplementedError

    def plot(self, path: str) -> None:
        """Write the loss curves of the history (PNG)."""

    def summary(self, validations: list[dict[str, Any]]) -> dict[str, Any]:
        return {"first": validations[0], "last": validations[-1]}

    # --- one step ------------------------------------------------------------------------------
    def train_step(self, batch: Batch | None = None) -> float:
        """One optimiser step on ``batch`` (default: the sampler's batch of this step); returns
        the mean training loss of the step's (global) batch."""
        self.before_step()
        if batch is None:
            batch = self.training_batch()
        value = self.optimise(self.per_frame_loss(batch))
        self.after_step(value)
        self.step += 1
        return value

    def optimise(self, per_frame: torch.Tensor) -> float:
        """Backward pass of the batch mean and an optimiser step. Under torchrun each rank has
        its slice: sum * world / B makes DDP's gradient average over the ranks the gradient of
        the mean over the global batch (also for slices differing in size by one frame)."""
        if self.dist.enabled:
            loss = per_frame.sum() * (self.dist.world_size / self.options.batch)
            total = dist_ctx.sum_over_ranks(per_frame.detach().sum(), self.dist)
        else:
            loss = per_frame.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(total) / self.options.batch if self.dist.enabled else float(loss.detach())

    # --- checkpoints -----------------------------------------------------------------------------
    def save_checkpoint(self, path: str) -> None:
        """Trainer tensors, Adam state, step, options, history (safetensors, atomic)."""
        from safetensors.torch import save_file

        t = dict(self.checkpoint_tensors())
        for i, st in self.optimizer.state_dict()["state"].items():
            for key, value in st.items():
                t[f"adam.{i}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
        meta = {
            "step": str(self.step),
            "options": json.dumps(self.options.to_dict(), sort_keys=True),
            "scenario_hash": self.scenario.hash(),
            "history": json.dumps(self.history),
            "lr": repr(self.optimizer.param_groups[0]["lr"]),
            "trainer": self.KIND,
            **self.checkpoint_meta(),
        }
        tmp = path + ".tmp"
        save_file(t, tmp, metadata=meta)
        os.chmod(tmp, weights_io.file_mode())
        os.replace(tmp, path)

    def load_checkpoint(self, path: str) -> None:
        """Continue from ``path``: the same batches follow (per-step generators), so a resumed
        run reaches the uninterrupted run's weights bit for bit."""
        tensors, meta = read_checkpoint(path)
        if meta["scenario_hash"] != self.scenario.hash():
            raise CheckpointError(
                f"{path}: checkpoint of scenario {meta['scenario_hash']}, this run is {self.scenario.hash()}"
            )
        kind = meta.get("trainer") or ("nn" if "phase" in meta else "model-based")
        if kind != self.KIND:
            raise CheckpointError(f"{path}: a checkpoint of the {kind} trainer, this run trains {self.method}")
        saved, mine = json.loads(meta["options"]), self.options.to_dict()
        for key in self.RESUME_KEYS:
            if saved.get(key) != mine[key]:
                raise CheckpointError(f"{path}: checkpoint has {key} = {saved.get(key)!r}, this run {mine[key]!r}")
        self.restore(tensors, meta, path)
        self.step = int(meta["step"])
        self.history = json.loads(meta.get("history", "[]"))

    def load_adam(self, tensors: dict[str, torch.Tensor], meta: dict[str, str], path: str) -> None:
        """The optimiser state "adam.<i>.<key>" (and the lr, if recorded) of a checkpoint."""
        opt = self.optimizer.state_dict()
        opt["state"] = {}
        for key, value in tensors.items():
            if key.startswith("adam."):
                _, i, name = key.split(".", 2)
                opt["state"].setdefault(int(i), {})[name] = value.to(self.device)
        if "lr" in meta:
            for group in opt["param_groups"]:
                group["lr"] = float(meta["lr"])
        try:
            self.optimizer.load_state_dict(opt)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: optimiser state does not fit ({exc})") from None

    # --- the loop --------------------------------------------------------------------------------
    def run(self, out: str, resume: str | None = None, progress=None, log=print) -> dict[str, Any]:
        """Train (or continue from the checkpoint ``resume``) to ``total_steps`` and write the
        weights ``out``, the log ``<stem>.csv``, the plot ``<stem>.png`` and checkpoints
        ``<stem>.ckpt.safetensors``. Returns a summary (on rank 0 with "first", "last", "paths")."""
        from tqdm import tqdm

        stem = out[: -len(".safetensors")] if out.endswith(".safetensors") else out
        paths = {"csv": stem + ".csv", "png": stem + ".png", "ckpt": stem + ".ckpt.safetensors"}
        if not self.dist.is_main:  # the other ranks only compute their slices' gradients
            if resume:
                self.load_checkpoint(resume)
            while self.step < self.total_steps:
                self.train_step()
            return {"steps": self.step, "rank": self.dist.rank, "parameters": self.parameter_count()}
        message = self.start_message()
        if message:
            log(message)
        if resume:
            self.load_checkpoint(resume)
            log(f"resumed from {resume} at step {self.step}{self.resume_note()}")
        start_time = time.time()
        elapsed0 = self.history[-1].get("elapsed_s", 0.0) if self.history else 0.0
        if self.step == 0:
            self.history.append({"step": 0, **self.row_fields(None), "elapsed_s": 0.0, **self.validate()})
            log(self.format_row(self.history[-1]))
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            desc=f"isac-train {self.method}",
            unit="step",
            disable=True if progress is False else None,
            dynamic_ncols=True,
        )
        with bar:
            while self.step < self.total_steps:
                loss = self.train_step()
                row = {"step": self.step, **self.row_fields(loss), "elapsed_s": elapsed0 + time.time() - start_time}
                if self.validate_at(self.step):
                    row.update(self.validate())
                    log(self.format_row(row))
                self.history.append(row)
                bar.set_postfix(loss=f"{loss:.2f}")
                bar.update(1)
                if self.step % self.options.checkpoint_every == 0 or self.step == self.total_steps:
                    self.save_checkpoint(paths["ckpt"])
                    write_csv(paths["csv"], self.history, self.CSV_FIELDS)
        write_csv(paths["csv"], self.history, self.CSV_FIELDS)
        self.plot(paths["png"])
        save_weights(
            out,
            self.scenario,
            self.method,
            self.weight_tensors(),
            self.step,
            self.options.to_dict(),
            **self.weights_extra(),
        )
        validations = [h for h in self.history if h.get(self.VAL_KEY) is not None]
        return {
            "steps": self.step,
            "elapsed_s": self.history[-1].get("elapsed_s", 0.0),
            **self.summary(validations),
            "paths": {**paths, "weights": out},
            "rank": self.dist.rank,
            "parameters": self.parameter_count(),
        }


# --- the log and the plots -----------------------------------------------------------------------------
def write_csv(path: str, history: list[dict[str, Any]], fields: tuple[str, ...]) -> None:
    """The history as CSV, one row per step (empty cells where a row has no value)."""
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for row in history:
            w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in fields})


def plot_training_loss(ax, steps: np.ndarray, loss: np.ndarray) -> None:
    """Per-batch training loss and its running mean (about 30 windows) on a matplotlib axis."""
    ax.plot(steps, loss, lw=0.6, alpha=0.5, label="train (batch)")
    if len(loss) >= 10:
        k = max(len(loss) // 30, 5)
        ax.plot(steps[k - 1 :], np.convolve(loss, np.ones(k) / k, mode="valid"), lw=1.5, label=f"train ({k}-step mean)")


def new_figure(*args, **kwargs):
    """A matplotlib figure on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_plot(fig, path: str, title: str) -> None:
    """Title, lay out, write (PNG, 100 dpi) and free a training plot."""
    import matplotlib.pyplot as plt

    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


__all__ = [
    "CheckpointError",
    "Harness",
    "new_figure",
    "plot_training_loss",
    "read_checkpoint",
    "save_plot",
    "write_csv",
]
