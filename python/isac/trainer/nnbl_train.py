"""Two-step training of NNBL (Sec. V-A, Appendix A), isac-train --method nn.

The batches come from the sampler shared with impairment / dictionary learning
(sampler.FrameSampler: random sectors theta_mean ~ U[-60, 60] deg, Delta ~ U[10, 20] deg,
T ~ U{1..T_max} (step 2: U{0..T_max}), the eta/phi sweep, deterministic per-step generators; the
whole batch of a step from the step's generator), the echo goes through the TRUE impaired array,
then noise and the reciprocal filter (3) (FrameSampler.received); the loop, checkpoints, log and
plot are the shared harness.Harness. Then:

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

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ..config import Scenario
from ..nn.networks import Nnbl, NnblConfig, parameter_counts, state_tensors
from .harness import CheckpointError, Harness, new_figure, plot_training_loss, save_plot
from .loss import gospa_equal, positions
from .sampler import Batch, FrameSampler

#: paper-scale (Sec. V-A / App. A-B) and CPU profiles
NN_PROFILES: dict[str, dict[str, Any]] = {
    "paper": {
        "batch": 1500,
        "iterations": 25000,
        "lr_position": 1e-2,
        "lr_detection": 1e-3,
        "patience": 10000,
        "plateau_window": 500,
        "n_theta": 320,
        "n_tau": 128,
        "val_every": 500,
        "val_frames": 1000,
        "checkpoint_every": 1000,
    },
    "quick": {
        "batch": 16,
        "iterations": 300,
        "lr_position": 1e-3,
        "lr_detection": 1e-3,
        "patience": 100,
        "plateau_window": 25,
        "n_theta": 64,
        "n_tau": 64,
        "val_every": 50,
        "val_frames": 64,
        "checkpoint_every": 100,
        "lr_position_limited": 1e-2,
    },
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
        for name in (
            "iterations",
            "batch",
            "patience",
            "plateau_window",
            "n_theta",
            "n_tau",
            "val_every",
            "val_frames",
            "checkpoint_every",
        ):
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


def bce_gospa(
    counts: torch.Tensor, logits: torch.Tensor, gamma_u: float = GAMMA_U, p: float = 2.0, eps: float = 1e-12
) -> torch.Tensor:
    """BCE-GOSPA (19) per frame: labels u (the first ``counts[b]`` of T_max are 1, the rest 0)
    against u^ = sigmoid(``logits``) (B, T_max), cost min(BCE(u_i, u^_j), gamma_u)^p, optimal
    assignment (Hungarian on detached costs, as loss.gospa_equal). Returns (B,)."""
    B, T = logits.shape
    labels = (torch.arange(T, device=logits.device)[None, :] < counts[:, None].to(logits.device)).to(logits.dtype)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[:, None, :].expand(B, T, T), labels[:, :, None].expand(B, T, T), reduction="none"
    )  # (B, i, j)
    cost = torch.clamp(bce, max=gamma_u) ** p
    cost_np = cost.detach().cpu().numpy()
    cols = np.stack([linear_sum_assignment(c)[1] for c in cost_np])  # rows are 0..T-1
    picked = torch.gather(cost, 2, torch.as_tensor(cols, device=cost.device)[:, :, None])[..., 0]
    return (picked.sum(-1) + eps) ** (1.0 / p)


#: fewest targets per training frame in each step (position: frames without targets carry no
#: GOSPA (18); detection: the empty slots and frames are what teaches the count)
MIN_TARGETS = {"position": 1, "detection": 0}


class NnTrainer(Harness):
    """NNBL networks, one Adam optimiser and plateau scheduler per training step, on the harness.
    ``step`` counts both steps: 0 .. iterations - 1 position, then detection."""

    method = "nn"
    KIND = "nn"
    CSV_FIELDS = ("step", "phase", "train_loss", "val_position", "val_detection", "lr", "elapsed_s")
    #: options that must match to resume (the others, e.g. val_every, may change)
    RESUME_KEYS = ("iterations", "batch", "n_theta", "n_tau", "limited", "seed", "eta_phi", "gamma_u", "plateau_window")
    VAL_KEY = "val_position"

    def __init__(self, scenario: Scenario, options: NnOptions, device: str = "cpu"):
        sampler = FrameSampler(
            scenario, options.seed, options.batch, eta_phi=options.eta_phi, chunk=None, device=device
        )
        super().__init__(scenario, options, device, sampler)
        self.cfg = NnblConfig(
            scenario.array["antennas"], scenario.scene["max_targets"], options.n_theta, options.n_tau, options.limited
        )
        self.net = Nnbl.for_scenario(scenario, self.cfg).to(self.device)
        self._val: dict[str, Batch] | None = None
        self.phase = None
        self.start_phase("position")

    @property
    def total_steps(self) -> int:
        return 2 * self.options.iterations

    def parameter_count(self) -> dict[str, int]:
        return parameter_counts(self.net)

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
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, factor=0.5, patience=windows, min_lr=o.min_lr
        )
        self.window_losses: list[float] = []  # training losses of the current plateau window

    def loss(self, batch: Batch, phase: str | None = None) -> torch.Tensor:
        """Per-frame loss (B,) of ``phase`` (default: the current one)."""
        phase = phase or self.phase
        rx, sc = self.scenario.receiver, self.scenario
        c_lo, c_hi = sc.comm_sector_rad
        f = self.net.precoders(batch.lo, batch.hi, c_lo, c_hi, batch.eta, batch.phi, sc.transmitter["power"])
        y = self.sampler.received(batch, f)
        if phase == "position":
            out = self.net.sense(y, batch.lo, batch.hi, ("angle", "range"))
            est = positions(out.angles_rad, out.ranges_m)
            true = positions(batch.angles, batch.ranges)
            return gospa_equal(true, est, batch.counts, rx["gospa_c_m"], rx["gospa_p"])
        out = self.net.sense(y, batch.lo, batch.hi, ("detection",))
        return bce_gospa(batch.counts, out.logits, self.options.gamma_u, rx["gospa_p"])

    # --- harness hooks -----------------------------------------------------------------------------
    def before_step(self) -> None:
        if self.phase == "position" and self.step >= self.options.iterations:
            self.start_phase("detection")
        self.net.train()
        if self.phase == "detection":
            self.net.angle.eval()
            self.net.range.eval()

    def training_batch(self) -> Batch:
        return self.sampler.draw_frames(self.step, *self.shard, min_targets=MIN_TARGETS[self.phase])

    def per_frame_loss(self, batch: Batch) -> torch.Tensor:
        return self.loss(batch)

    def after_step(self, loss: float) -> None:
        self.window_losses.append(loss)
        if len(self.window_losses) >= self.options.plateau_window:
            self.scheduler.step(sum(self.window_losses) / len(self.window_losses))
            self.window_losses = []

    def validate_at(self, step: int) -> bool:
        return super().validate_at(step) or step == self.options.iterations

    def row_fields(self, loss: float | None) -> dict[str, Any]:
        if loss is None:
            return {"phase": self.phase}
        return {"phase": self.phase, "train_loss": loss, "lr": self.optimizer.param_groups[0]["lr"]}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        if self._val is None:  # one fixed validation set per step, drawn as that step's batches
            self._val = {phase: self.sampler.validation(self.options.val_frames, n) for phase, n in MIN_TARGETS.items()}
        self.net.eval()
        size, out = min(self.options.batch, 64), {"position": [], "detection": []}
        for phase, vb in self._val.items():
            for s in range(0, self.options.val_frames, size):
                out[phase].append(self.loss(vb.slice(s, s + size), phase))
        return {f"val_{k}": float(torch.cat(v).mean()) for k, v in out.items()}

    # --- checkpoints and weights ---------------------------------------------------------------------
    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        """Networks (BN counters included); save_checkpoint adds the current step's Adam state."""
        return {f"net.{k}": v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}

    def checkpoint_meta(self) -> dict[str, str]:
        return {
            "phase": self.phase,
            "scheduler": json.dumps(self.scheduler.state_dict(), default=float),
            "window_losses": json.dumps(self.window_losses),
        }

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, str], path: str) -> None:
        if meta.get("phase") not in MIN_TARGETS:
            raise CheckpointError(f"{path}: not an NNBL checkpoint (phase {meta.get('phase')!r})")
        if meta["phase"] != self.phase:
            self.start_phase(meta["phase"])
        try:
            self.net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
            self.scheduler.load_state_dict(json.loads(meta["scheduler"]))
            self.window_losses = [float(v) for v in json.loads(meta.get("window_losses", "[]"))]
        except (RuntimeError, KeyError, ValueError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"{path}: the networks or scheduler do not fit ({reason})") from None
        self.load_adam(tensors, meta, path)

    def weight_tensors(self) -> dict[str, np.ndarray]:
        return state_tensors(self.net)

    def weights_extra(self) -> dict[str, Any]:
        return {"metadata": {"nnbl": self.cfg.to_dict()}}

    # --- log, plot, summary --------------------------------------------------------------------------
    def start_message(self) -> str:
        return f"NNBL parameters: {parameter_counts(self.net)}"

    def resume_note(self) -> str:
        return f" ({self.phase})"

    def format_row(self, row: dict[str, Any]) -> str:
        parts = [f"step {row['step']:6d} {row.get('phase', ''):9s}"]
        for key in ("train_loss", "val_position", "val_detection"):
            if row.get(key) is not None:
                parts.append(f"{key} {row[key]:.3f}")
        if row.get("lr") is not None:
            parts.append(f"lr {row['lr']:.2e}")
        return "  ".join(parts)

    def plot(self, path: str) -> None:
        kind = "limited" if self.options.limited else "full"
        plot_history(path, self.history, f"NNBL ({kind}) two-step training", self.options.iterations)

    def summary(self, validations: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "first": validations[0],
            "last": validations[-1],
            "after_position": next(h for h in validations if h["step"] >= self.options.iterations),
        }


def training_options(method, profile: str, **flags) -> NnOptions:
    """The options of an NNBL training run (``method``: the registered "nn"): the ``profile``
    ("paper" | "quick") with isac-train's ``flags`` on top (--lr is step 1's lr_position,
    --map-points the networks' (n_theta, n_tau))."""
    if "lr" in flags:
        flags["lr_position"] = flags.pop("lr")
    n_theta, n_tau = flags.pop("map_points", None) or (None, None)
    return NnOptions.from_profile(profile, n_theta=n_theta, n_tau=n_tau, **flags)


def train_nn(
    scenario: Scenario,
    options: NnOptions,
    out: str,
    device: str = "cpu",
    resume: str | None = None,
    progress=None,
    log=print,
) -> dict[str, Any]:
    """Both training steps (or the rest of them from the checkpoint ``resume``); writes the
    weights ``out`` (method "nn"), ``<stem>.csv``, the loss curves ``<stem>.png`` and the
    checkpoint ``<stem>.ckpt.safetensors`` (Harness.run)."""
    torch.manual_seed(options.seed)
    return NnTrainer(scenario, options, device).run(out, resume, progress, log)


def plot_history(path: str, history: list[dict[str, Any]], title: str, iterations: int) -> None:
    """Loss curves of both training steps (PNG): GOSPA (18) of step 1 and BCE-GOSPA (19) of
    step 2, each as training batches, running mean and validation, with the lr below."""
    fig, axes = new_figure(2, 2, figsize=(10, 6), sharex="col", gridspec_kw={"height_ratios": [3, 1]})
    for col, (phase, val_key, ylabel) in enumerate(
        (("position", "val_position", "GOSPA (18) [m]"), ("detection", "val_detection", "BCE-GOSPA (19)"))
    ):
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


#: the training entry point of method nn (Method.trainer)
train = train_nn

__all__ = ["GAMMA_U", "MIN_TARGETS", "NN_PROFILES", "NnOptions", "NnTrainer", "bce_gospa", "train_nn"]
