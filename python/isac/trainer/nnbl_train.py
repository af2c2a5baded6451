"""Two-step training of NNBL (Sec. V-A, Appendix A), isac-train --method nn.

The batches are those of the model-based trainer (train.Trainer.draw: random sectors
theta_mean ~ U[-60, 60] deg, Delta ~ U[10, 20] deg, T ~ U{1..T_max} (step 2: U{0..T_max}), the
eta/phi sweep, deterministic per-step generators), the echo goes through the TRUE impaired array
(torch_model.sensing_echo), then noise and the reciprocal filter (3), exactly as for impairment /
dictionary learning. Then:

  step 1 ("position"):  precoder f_eps + angle and range networks (f_xi), GOSPA (18) with
                        |P| = |P^| = T (loss.gospa_equal: the first T output slots against the T
                        targets, Hungarian assignment on detached costs);
  step 2 ("detection"): f_xi frozen (parameters and BN statistics), precoder + detection network
                        f_zeta, BCE-GOSPA (19), on frames with T ~ U{0..T_max} (the scenes of
                        Sec. II-A, as at test time): without target-free frames a single-target
                        detector (T_max = 1) would only ever see the label 1 and learn "always
                        present" (measured: validation BCE 0.000, then p_md 1.0 at p_fa 1e-2).

(19) reading: D holds the T_max presence labels of the frame (u_i = 1 for the T targets, 0 for the
T_max - T empty slots) and D^ the T_max detection probabilities; the paper's "|D| = |D^| = T" would
leave only ones, which cannot teach a count. The optimal assignment of the clipped BCE costs
min(BCE(u_i, u^_j), gamma_u) (Hungarian, detached) then matches the T ones with the T largest u^:
the network learns how many targets there are. At test time the count is the number of u^ above
the threshold delta and the positions are the first slots, as in training.

Adam; ReduceLROnPlateau (factor 0.5, min lr 1e-6) on the MEAN training loss of consecutive
windows of ``plateau_window`` steps, with ``patience`` counted in steps (patience / window
windows). A per-step feed would compare every loss with the luckiest batch so far: with
small batches the lr then halves every ``patience`` steps whatever the progress (measured: a
3000-step limited NNBL run at B = 16, patience 100, reached the 1e-6 floor by step 2000 with
its validation GOSPA stuck at 26 m).
Checkpoints (networks, Adam and scheduler state, step, phase, history) every ``checkpoint_every``
steps; a resumed run continues with the same batches (per-step generators) and reaches the same
weights as an uninterrupted one.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .. import weights as weights_io
from ..config import SPEED_OF_LIGHT, Scenario
from . import torch_model as tm
from .loss import gospa_equal, positions
from .nnbl import Nnbl, NnblConfig, parameter_counts, state_tensors
from .train import TrainOptions, Trainer, plot_training_loss, save_plot

#: paper-scale (Sec. V-A / App. A-B) and CPU profiles
NN_PROFILES: dict[str, dict[str, Any]] = {
    "paper": {"batch": 1500, "iterations": 25000, "lr_position": 1e-2, "lr_detection": 1e-3, "patience": 10000,
              "plateau_window": 500, "n_theta": 320, "n_tau": 128, "val_every": 500, "val_frames": 1000,
              "checkpoint_every": 1000},
    "quick": {"batch": 16, "iterations": 300, "lr_position": 1e-3, "lr_detection": 1e-3, "patience": 100,
              "plateau_window": 25,
              "n_theta": 64, "n_tau": 64, "val_every": 50, "val_frames": 64, "checkpoint_every": 100,
              "lr_position_limited": 1e-2},
}
#: with B = 16 the full networks die at lr 1e-2 in step 1 (range ReLU at 0, all costs at the cut-off:
#: measured), the limited ones learn too slowly at 1e-3; the quick profile uses lr_position_limited
#: for --limited (docs/trainer.md)
#: BCE cut-off gamma_u of (19) (not given in the paper): -log(u^) <= 10, u^ >= 4.5e-5
GAMMA_U = 10.0


@dataclass
class NnOptions:
    """Options of NNBL training (recorded in the weights metadata). ``iterations`` per step."""

    iterations: int = NN_PROFILES["paper"]["iterations"]
    batch: int = NN_PROFILES["paper"]["batch"]
    lr_position: float = NN_PROFILES["paper"]["lr_position"]
    lr_detection: float = NN_PROFILES["paper"]["lr_detection"]
    patience: int = NN_PROFILES["paper"]["patience"]  # steps without improvement of the window mean
    plateau_window: int = NN_PROFILES["paper"]["plateau_window"]  # steps per scheduler observation
    min_lr: float = 1e-6
    n_theta: int = NN_PROFILES["paper"]["n_theta"]
    n_tau: int = NN_PROFILES["paper"]["n_tau"]
    limited: bool = False
    gamma_u: float = GAMMA_U
    eta_phi: str = "sweep"
    seed: int = 0
    val_every: int = NN_PROFILES["paper"]["val_every"]
    val_frames: int = NN_PROFILES["paper"]["val_frames"]
    checkpoint_every: int = NN_PROFILES["paper"]["checkpoint_every"]
    profile: str = "paper"

    def __post_init__(self) -> None:
        for name in ("iterations", "batch", "patience", "plateau_window", "n_theta", "n_tau", "val_every", "val_frames",
                     "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr_position > 0 and self.lr_detection > 0 and self.gamma_u > 0):
            raise ValueError("learning rates and gamma_u must be > 0")

    @classmethod
    def from_profile(cls, profile: str, **overrides) -> "NnOptions":
        p = {k: v for k, v in NN_PROFILES[profile].items()}
        lr_limited = p.pop("lr_position_limited", None)
        if overrides.get("limited") and lr_limited is not None:
            p["lr_position"] = lr_limited
        p.update({k: v for k, v in overrides.items() if v is not None})
        return cls(profile=profile, **p)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bce_gospa(counts: torch.Tensor, logits: torch.Tensor, gamma_u: float = GAMMA_U, p: float = 2.0,
              eps: float = 1e-12) -> torch.Tensor:
    """BCE-GOSPA (19) per frame: labels u (the first ``counts[b]`` of T_max are 1, the rest 0)
    against u^ = sigmoid(``logits``) (B, T_max), cost min(BCE(u_i, u^_j), gamma_u)^p, optimal
    assignment (Hungarian on detached costs, as loss.gospa_equal). Returns (B,)."""
    B, T = logits.shape
    labels = (torch.arange(T, device=logits.device)[None, :] < counts[:, None].to(logits.device)).to(logits.dtype)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[:, None, :].expand(B, T, T), labels[:, :, None].expand(B, T, T), reduction="none")  # (B, i, j)
    cost = torch.clamp(bce, max=gamma_u) ** p
    cost_np = cost.detach().cpu().numpy()
    cols = np.stack([linear_sum_assignment(c)[1] for c in cost_np])  # rows are 0..T-1
    picked = torch.gather(cost, 2, torch.as_tensor(cols, device=cost.device)[:, :, None])[..., 0]
    return (picked.sum(-1) + eps) ** (1.0 / p)


#: fewest targets per training frame in each step (position: frames without targets carry no
#: GOSPA (18); detection: the empty slots and frames are what teaches the count)
MIN_TARGETS = {"position": 1, "detection": 0}


class NnTrainer:
    """NNBL networks, the batch source (a model-based Trainer used only for draw()), optimisers."""

    def __init__(self, scenario: Scenario, options: NnOptions, device: str = "cpu"):
        self.scenario = scenario
        self.options = options
        self.device = torch.device(device)
        self.data = Trainer(scenario, TrainOptions(method="impairment", batch=options.batch, seed=options.seed,
                                                   iterations=2 * options.iterations, curriculum_steps=0,
                                                   eta_phi=options.eta_phi), device)
        self.cfg = NnblConfig(scenario.array["antennas"], scenario.scene["max_targets"], options.n_theta,
                              options.n_tau, options.limited)
        self.net = Nnbl.for_scenario(scenario, self.cfg).to(self.device)
        self.step = 0  # global step: 0 .. iterations - 1 position, then detection
        self.history: list[dict[str, Any]] = []
        self._val = None
        self.phase = None
        self.start_phase("position")

    def start_phase(self, phase: str) -> None:
        o = self.options
        self.phase = phase
        if phase == "position":
            params = [*self.net.precoder.parameters(), *self.net.angle.parameters(), *self.net.range.parameters()]
            lr = o.lr_position
        else:
            for sub in (self.net.angle, self.net.range):  # f_xi frozen, BN statistics included
                sub.requires_grad_(False)
            params = [*self.net.precoder.parameters(), *self.net.detection.parameters()]
            lr = o.lr_detection
        self.optimizer = torch.optim.Adam(params, lr=lr)
        windows = max(1, -(-o.patience // o.plateau_window))  # patience in windows, rounded up
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, factor=0.5, patience=windows,
                                                                    min_lr=o.min_lr)
        self.window_losses: list[float] = []  # training losses of the current plateau window

    def _train_mode(self) -> None:
        self.net.train()
        if self.phase == "detection":
            self.net.angle.eval()
            self.net.range.eval()

    def received(self, batch) -> torch.Tensor:
        """Y~ (B, K, S): NN precoder, echo through the true array, noise, reciprocal filter (3)."""
        sc = self.scenario
        c_lo, c_hi = sc.comm_sector_rad
        f = self.net.precoders(batch.lo, batch.hi, c_lo, c_hi, batch.eta, batch.phi, sc.transmitter["power"])
        delays = 2.0 * batch.ranges / SPEED_OF_LIGHT
        y = tm.sensing_echo(self.data.true_positions, self.data.lam, f, batch.symbols, batch.angles, delays,
                            batch.gains, batch.present, self.data.spacing_hz) + batch.noise
        return tm.reciprocal_filter(y, batch.symbols)

    def loss(self, batch, phase: str | None = None) -> torch.Tensor:
        """Per-frame loss (B,) of ``phase`` (default: the current one)."""
        phase = phase or self.phase
        rx = self.scenario.receiver
        y = self.received(batch)
        if phase == "position":
            out = self.net.sense(y, batch.lo, batch.hi, ("angle", "range"))
            est = positions(out.angles_rad, out.ranges_m)
            true = positions(batch.angles, batch.ranges)
            return gospa_equal(true, est, batch.counts, rx["gospa_c_m"], rx["gospa_p"])
        out = self.net.sense(y, batch.lo, batch.hi, ("detection",))
        return bce_gospa(batch.counts, out.logits, self.options.gamma_u, rx["gospa_p"])

    def train_step(self, batch=None) -> float:
        if self.phase == "position" and self.step >= self.options.iterations:
            self.start_phase("detection")
        self._train_mode()
        if batch is None:
            batch = self.data.draw(self.data.generator(self.step), self.options.batch,
                                   min_targets=MIN_TARGETS[self.phase])
        loss = self.loss(batch).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        value = float(loss.detach())
        self.window_losses.append(value)
        if len(self.window_losses) >= self.options.plateau_window:
            self.scheduler.step(sum(self.window_losses) / len(self.window_losses))
            self.window_losses = []
        self.step += 1
        return value

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        if self._val is None:  # one fixed validation set per step, drawn as that step's batches
            self._val = {phase: self.data.draw(self.data.generator(0, "validation"), self.options.val_frames,
                                               min_targets=n) for phase, n in MIN_TARGETS.items()}
        self.net.eval()
        size, out = min(self.options.batch, 64), {"position": [], "detection": []}
        for phase, vb in self._val.items():
            for s in range(0, self.options.val_frames, size):
                part = type(vb)(*(getattr(vb, f.name)[s:s + size] for f in dataclasses.fields(vb)))
                out[phase].append(self.loss(part, phase))
        return {f"val_{k}": float(torch.cat(v).mean()) for k, v in out.items()}

    def weight_tensors(self) -> dict[str, np.ndarray]:
        return state_tensors(self.net)

    # --- checkpoints (--resume) ---------------------------------------------------------------
    #: options that must match to resume (the others, e.g. val_every, may change)
    RESUME_KEYS = ("iterations", "batch", "n_theta", "n_tau", "limited", "seed", "eta_phi", "gamma_u",
                   "plateau_window")

    def save_checkpoint(self, path: str) -> None:
        """Networks (BN counters included), the current step's Adam state and scheduler, the
        step, phase, options and history (safetensors, written atomically)."""
        import os

        from safetensors.torch import save_file

        t = {f"net.{k}": v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        opt = self.optimizer.state_dict()
        for i, st in opt["state"].items():
            for key, value in st.items():
                t[f"adam.{i}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
        meta = {"step": str(self.step), "phase": self.phase, "scenario_hash": self.scenario.hash(),
                "options": json.dumps(self.options.to_dict(), sort_keys=True),
                "scheduler": json.dumps(self.scheduler.state_dict(), default=float),
                "lr": repr(self.optimizer.param_groups[0]["lr"]), "history": json.dumps(self.history),
                "window_losses": json.dumps(self.window_losses)}
        tmp = path + ".tmp"
        save_file(t, tmp, metadata=meta)
        os.chmod(tmp, weights_io._default_mode())
        os.replace(tmp, path)

    def load_checkpoint(self, path: str) -> None:
        from safetensors import safe_open

        try:
            with safe_open(path, framework="pt") as fh:
                meta = fh.metadata() or {}
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        except Exception as exc:
            raise ValueError(f"{path}: not a readable checkpoint ({exc})") from None
        if meta.get("scenario_hash") != self.scenario.hash():
            raise ValueError(f"{path}: checkpoint of scenario {meta.get('scenario_hash')}, this run is "
                             f"{self.scenario.hash()}")
        if "phase" not in meta:
            raise ValueError(f"{path}: not an NNBL checkpoint")
        saved, mine = json.loads(meta["options"]), self.options.to_dict()
        for key in self.RESUME_KEYS:
            if saved.get(key) != mine[key]:
                raise ValueError(f"{path}: checkpoint has {key} = {saved.get(key)!r}, this run {mine[key]!r}")
        if meta["phase"] != self.phase:
            self.start_phase(meta["phase"])
        state = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
        self.net.load_state_dict(state)
        opt = self.optimizer.state_dict()
        opt["state"] = {}
        for key, value in tensors.items():
            if key.startswith("adam."):
                _, i, name = key.split(".", 2)
                opt["state"].setdefault(int(i), {})[name] = value.to(self.device)
        for group in opt["param_groups"]:
            group["lr"] = float(meta["lr"])
        self.optimizer.load_state_dict(opt)
        self.scheduler.load_state_dict(json.loads(meta["scheduler"]))
        self.step = int(meta["step"])
        self.history = json.loads(meta.get("history", "[]"))
        self.window_losses = [float(v) for v in json.loads(meta.get("window_losses", "[]"))]


CSV_FIELDS = ("step", "phase", "train_loss", "val_position", "val_detection", "lr", "elapsed_s")


def write_csv(path: str, history: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for row in history:
            w.writerow({k: row.get(k, "") for k in CSV_FIELDS})


def train_nn(scenario: Scenario, options: NnOptions, out: str, device: str = "cpu", resume: str | None = None,
             log=print) -> dict[str, Any]:
    """Both training steps (or the rest of them from the checkpoint ``resume``); writes the
    weights ``out`` (method "nn"), ``<stem>.csv``, the loss curves ``<stem>.png`` and the
    checkpoint ``<stem>.ckpt.safetensors``."""
    torch.manual_seed(options.seed)
    stem = out[:-len(".safetensors")] if out.endswith(".safetensors") else out
    ckpt = stem + ".ckpt.safetensors"
    tr = NnTrainer(scenario, options, device)
    log(f"NNBL parameters: {parameter_counts(tr.net)}")
    if resume:
        tr.load_checkpoint(resume)
        log(f"resumed from {resume} at step {tr.step} ({tr.phase})")
    t0 = time.time()
    elapsed0 = tr.history[-1].get("elapsed_s", 0.0) if tr.history else 0.0
    if tr.step == 0:
        tr.history.append({"step": 0, "phase": "position", "elapsed_s": 0.0, **tr.validate()})
        log(_fmt(tr.history[-1]))
    total = 2 * options.iterations
    while tr.step < total:
        loss = tr.train_step()
        row = {"step": tr.step, "phase": tr.phase, "train_loss": loss, "lr": tr.optimizer.param_groups[0]["lr"],
               "elapsed_s": elapsed0 + time.time() - t0}
        if tr.step % options.val_every == 0 or tr.step in (options.iterations, total):
            row.update(tr.validate())
            log(_fmt(row))
        tr.history.append(row)
        if tr.step % options.checkpoint_every == 0 or tr.step == total:
            tr.save_checkpoint(ckpt)
            write_csv(stem + ".csv", tr.history)
    write_csv(stem + ".csv", tr.history)
    plot_history(stem + ".png", tr.history, f"NNBL ({'limited' if options.limited else 'full'}) two-step training",
                 options.iterations)
    weights_io.save(out, scenario, "nn", tr.weight_tensors(), tr.step, options.to_dict(),
                    nnbl=tr.cfg.to_dict())
    vals = [h for h in tr.history if "val_position" in h]
    return {"steps": tr.step, "elapsed_s": tr.history[-1].get("elapsed_s", 0.0), "first": vals[0], "after_position":
            next(h for h in vals if h["step"] >= options.iterations), "last": vals[-1],
            "parameters": parameter_counts(tr.net),
            "paths": {"weights": out, "csv": stem + ".csv", "png": stem + ".png", "ckpt": ckpt}}


def plot_history(path: str, history: list[dict[str, Any]], title: str, iterations: int) -> None:
    """Loss curves of both training steps (PNG): GOSPA (18) of step 1 and BCE-GOSPA (19) of
    step 2, each as training batches, running mean and validation, with the lr below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 6), sharex="col", gridspec_kw={"height_ratios": [3, 1]})
    for col, (phase, val_key, ylabel) in enumerate((("position", "val_position", "GOSPA (18) [m]"),
                                                    ("detection", "val_detection", "BCE-GOSPA (19)"))):
        ax, ax_lr = axes[0, col], axes[1, col]
        rows = [h for h in history if h.get("phase") == phase and h.get("train_loss") is not None]
        if rows:
            steps = np.array([h["step"] for h in rows])
            plot_training_loss(ax, steps, np.array([h["train_loss"] for h in rows], dtype=float))
            ax_lr.semilogy(steps, [h["lr"] for h in rows], color="0.3")
        lo, hi = (0, iterations) if phase == "position" else (iterations, 2 * iterations)
        val = [(h["step"], h[val_key]) for h in history if h.get(val_key) is not None and lo <= h["step"] <= hi]
        if val:
            v = np.array(val, dtype=float)
            ax.plot(v[:, 0], v[:, 1], "o-", ms=3, label="validation")
        ax.set_title(f"step {col + 1}: {phase}", fontsize=9)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax_lr.set_ylabel("lr")
        ax_lr.set_xlabel("step")
        ax_lr.grid(alpha=0.3)
    save_plot(fig, path, title)


def _fmt(row: dict[str, Any]) -> str:
    parts = [f"step {row['step']:6d} {row.get('phase', ''):9s}"]
    for key in ("train_loss", "val_position", "val_detection"):
        if row.get(key) is not None:
            parts.append(f"{key} {row[key]:.3f}")
    if row.get("lr") is not None:
        parts.append(f"lr {row['lr']:.2e}")
    return "  ".join(parts)


__all__ = ["GAMMA_U", "MIN_TARGETS", "NN_PROFILES", "NnOptions", "NnTrainer", "bce_gospa", "train_nn"]
