"""Offline end-to-end training of impairment or dictionary learning (Secs. IV-V), isac-train.

One step (the loop, checkpoints, log, plot and weights are the shared harness.Harness):
  1. the step's batch from the shared sampler.FrameSampler, in chunks of DRAW_CHUNK frames,
     each from its own generator seeded by (seed, step, chunk): per frame a random target
     sector theta_mean ~ U[-60, 60] deg (or the curriculum's range), Delta ~ U[10, 20] deg
     (Sec. V-A), T ~ U{1..T_max} targets (frames without targets carry no loss under (18)),
     psi ~ CN(0, sigma_r^2), QPSK symbols, and the ISAC trade-off (eta, phi) of the Sec. V-C
     sweep or fixed;
  2. the transmitter: LS beams (6)-(7) of the LEARNABLE array towards the frame's sector and
     the communication sector, mixed by (5);
  3. the sensing echo (1) through the TRUE (impaired) array of the scenario, noise, and
     reciprocal filtering (3) (FrameSampler.received);
  4. differentiable OMP with T iterations on the learnable array (argmax in the sector);
  5. GOSPA (18) (or the MSE for single targets) averaged over the batch; Adam.

Validation on a fixed set of frames reports the GOSPA (18) of dOMP, the mean array coherence
|a(theta; d^)^H a(theta; d)| / K over the training angles [-70, 70] deg, and the spacing error
||d^ - d||. When the scenario turns on element models (model.impairments: gain and phase
errors, mutual coupling, dead or weak elements), impairment learning learns the parameters of
every active model (model.impairments.learned_models; nn.arrays.ImpairmentArray), each
parameter with its own learning rate (its model's lr_scale times the lr), dOMP matches the atoms at equal norms
(nn.arrays.ReceiverView), and validation also reports the element error of M = diag(g) C.
Under torchrun the step is data parallel (trainer/distributed.py): each rank draws its slice
of the step's frames from the same generators and DistributedDataParallel averages the
gradients.
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import Scenario
from ..model.grids import delay_grid
from ..nn import arrays as tm
from ..transceiver import get
from . import distributed as dist_ctx
from .domp import DEFAULT_TEMPERATURE, DifferentiableOmp
from .harness import CheckpointError, Harness, new_figure, plot_training_loss, save_plot
from .loss import gospa_equal, mse_single, positions
from .sampler import DRAW_CHUNK, Batch, FrameSampler

COHERENCE_SPAN_DEG = 70.0  # training sectors reach theta_mean +- Delta/2 <= 60 + 10 deg

#: paper-scale defaults (Sec. V-A/V-D: multi-target B = 1500, 25,000 iterations) and the CPU
#: --quick profile; each method's learning rate per profile is its own (its registry class's
#: ``learning_rate``, in the units of its parameters: docs/trainer.md)
PROFILES: dict[str, dict[str, Any]] = {
    "paper": {
        "batch": 1500,
        "iterations": 25000,
        "curriculum_steps": 10000,
        "val_every": 500,
        "val_frames": 1000,
        "checkpoint_every": 1000,
    },
    "quick": {
        "batch": 32,
        "iterations": 1000,
        "curriculum_steps": 600,
        "val_every": 100,
        "val_frames": 128,
        "checkpoint_every": 100,
    },
}


@dataclass
class TrainOptions:
    """Training hyper-parameters (CLI flags of isac-train; recorded in the weights metadata)."""

    method: str = "impairment"
    iterations: int = PROFILES["paper"]["iterations"]
    batch: int = PROFILES["paper"]["batch"]
    lr: float | None = None  # None: the method's lr for the profile (its learning_rate)
    lr_final: float | None = None  # geometric decay of the lr to this value at the last step (None: constant)
    seed: int = 0
    temperature: float = DEFAULT_TEMPERATURE  # softmax temperature at the start
    temperature_final: float | None = None  # geometric schedule to this value (None: constant)
    parameterisation: str = "spacing"  # impairment learning: "spacing" (d / (lambda/2)) | "position"
    loss: str = "gospa"  # "gospa" (18) | "mse" (single target, T_max = 1)
    eta_phi: str = "sweep"  # "sweep" (Sec. V-C values) | "fixed" (the scenario's transmitter.eta / phi_rad)
    sector_restricted: bool = True  # argmax of dOMP restricted to the a-priori sector
    theta_mean_deg: float = 60.0  # theta_mean ~ U[-theta_mean_deg, theta_mean_deg]
    curriculum_steps: int = PROFILES["paper"]["curriculum_steps"]  # > 0: theta_mean range grows over these steps ...
    curriculum_start_deg: float = 5.0  # ... from +-curriculum_start_deg to +-theta_mean_deg
    width_deg: tuple[float, float] = (10.0, 20.0)  # Delta ~ U[width]
    val_every: int = PROFILES["paper"]["val_every"]
    val_frames: int = PROFILES["paper"]["val_frames"]
    checkpoint_every: int = PROFILES["paper"]["checkpoint_every"]
    profile: str = "paper"
    dictionary_points: int | None = None  # dictionary learning: N_theta of the learnable grid (None: beam_grid)

    def __post_init__(self) -> None:
        from ..transceiver import LearnedArrayMethod, get, methods

        array_methods = [m for m in methods() if isinstance(get(m), LearnedArrayMethod)]
        if self.method not in array_methods:
            raise ValueError(f"method must be one of {', '.join(array_methods)}, got {self.method!r}")
        if self.dictionary_points is not None:
            if "dictionary_points" not in get(self.method).train_flags:
                raise ValueError(f"dictionary_points does not apply to method {self.method!r}")
            if int(self.dictionary_points) < 2:
                raise ValueError(f"dictionary_points must be >= 2, got {self.dictionary_points}")
            self.dictionary_points = int(self.dictionary_points)
        if self.lr is None:
            self.lr = get(self.method).learning_rate[self.profile]
        if self.curriculum_steps < 0 or not 0 <= self.curriculum_start_deg <= self.theta_mean_deg:
            raise ValueError("curriculum_steps must be >= 0 and 0 <= curriculum_start_deg <= theta_mean_deg")
        for name in ("iterations", "batch", "val_every", "val_frames", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and self.temperature > 0):
            raise ValueError("lr and temperature must be > 0")
        if (self.lr_final is not None and not self.lr_final > 0) or (
            self.temperature_final is not None and not self.temperature_final > 0
        ):
            raise ValueError("lr_final and temperature_final must be > 0")
        if self.parameterisation not in ("spacing", "position"):
            raise ValueError(f"parameterisation must be 'spacing' or 'position', got {self.parameterisation!r}")
        if self.loss not in ("gospa", "mse"):
            raise ValueError(f"loss must be 'gospa' or 'mse', got {self.loss!r}")
        if self.eta_phi not in ("sweep", "fixed"):
            raise ValueError(f"eta_phi must be 'sweep' or 'fixed', got {self.eta_phi!r}")
        self.width_deg = tuple(float(w) for w in self.width_deg)

    @classmethod
    def from_profile(cls, profile: str, **overrides) -> "TrainOptions":
        p = PROFILES[profile]
        base = {
            k: p[k] for k in ("batch", "iterations", "curriculum_steps", "val_every", "val_frames", "checkpoint_every")
        }
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(profile=profile, **base)

    def lr_at(self, step: int) -> float:
        if self.lr_final is None or self.iterations <= 1:
            return self.lr
        frac = min(step / (self.iterations - 1), 1.0)
        return self.lr * (self.lr_final / self.lr) ** frac

    def temperature_at(self, step: int) -> float:
        if self.temperature_final is None or self.iterations <= 1:
            return self.temperature
        frac = min(step / (self.iterations - 1), 1.0)
        return self.temperature * (self.temperature_final / self.temperature) ** frac

    def theta_mean_at(self, step: int) -> float:
        """Half-range (deg) of theta_mean at ``step`` (the sector curriculum, docs/trainer.md)."""
        if self.curriculum_steps <= 0:
            return self.theta_mean_deg
        frac = min(step / self.curriculum_steps, 1.0)
        return self.curriculum_start_deg + frac * (self.theta_mean_deg - self.curriculum_start_deg)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["width_deg"] = list(self.width_deg)
        return d


class Trainer(Harness):
    """Learning of a method's array (impairment, dictionary, or a registered
    transceiver.LearnedArrayMethod): the method's learnable array, dOMP and Adam on the harness."""

    CSV_FIELDS = (
        "step",
        "train_loss",
        "val_loss",
        "coherence",
        "spacing_error_m",
        "position_rms_m",
        "temperature",
        "elapsed_s",
    )
    #: options that must match to resume (the others, e.g. val_every or the lr, may change)
    RESUME_KEYS = ("method", "parameterisation", "loss", "seed", "batch", "dictionary_points")
    KIND = "model-based"

    def __init__(
        self, scenario: Scenario, options: TrainOptions, device: str = "cpu", dist: dist_ctx.Context = dist_ctx.SINGLE
    ):
        T = 1 if options.loss == "mse" else scenario.scene["max_targets"]
        sampler = FrameSampler(
            scenario,
            options.seed,
            options.batch,
            T,
            options.eta_phi,
            options.theta_mean_deg,
            options.width_deg,
            DRAW_CHUNK,
            device,
        )
        super().__init__(scenario, options, device, sampler, dist)
        self.method = options.method
        self.K, self.S, self.T = scenario.array["antennas"], scenario.ofdm["subcarriers"], T
        self.rcond = scenario.transmitter["beam_rcond"]
        self.true = sampler.true
        self.array = get(options.method).learnable_array(scenario, options)
        self.grid_points = int(self.array.grid_rad.shape[0])
        #: the array models learned (model.impairments.learned_models); () for an unstructured array
        self.models: tuple[str, ...] = getattr(self.array, "models", ())
        if isinstance(self.array, tm.ImpairmentArray):
            self.CSV_FIELDS = self.CSV_FIELDS[:-2] + ("element_error",) + self.CSV_FIELDS[-2:]
        self.array.to(self.device)
        delays = delay_grid(scenario.range_interval_m, scenario.receiver["delay_grid"])
        self.domp = DifferentiableOmp(
            tm.receiver_array(self.array), delays, self.S, scenario.ofdm["spacing_hz"], options.temperature
        ).to(self.device)
        if isinstance(self.array, tm.ImpairmentArray):  # one parameter group per parameter, its own lr
            groups = [
                {"params": ps, "lr": options.lr * scale, "lr_scale": scale, "group": g}
                for g, (ps, scale) in self.array.parameter_groups().items()
            ]
            self.optimizer = torch.optim.Adam(groups, lr=options.lr)
        else:
            self.optimizer = torch.optim.Adam(self.array.parameters(), lr=options.lr)
        #: per-frame loss as a module (DistributedDataParallel needs a forward() to wrap)
        self.loss_module = dist_ctx.wrap(_FrameLoss(self), dist, self.device)
        self._val_batch: Batch | None = None
        span = np.deg2rad(np.linspace(-COHERENCE_SPAN_DEG, COHERENCE_SPAN_DEG, 561))
        self._coh_angles = torch.as_tensor(span, device=self.device)
        self._coh_true = torch.as_tensor(self.true.steering(span).T, device=self.device)  # (N, K)
        g = self.array.grid_rad.cpu().numpy()
        in_span = np.abs(g) <= np.deg2rad(COHERENCE_SPAN_DEG) + 1e-12
        self._grid_span = torch.as_tensor(np.nonzero(in_span)[0], device=self.device)
        self._grid_true = torch.as_tensor(self.true.steering(g[in_span]).T, device=self.device)
        m = getattr(self.true, "element_matrix", None)
        self._true_element = torch.as_tensor(np.eye(self.K) if m is None else m, device=self.device)

    def parameter_count(self) -> int:
        """Number of learnable (real or complex) scalars: K spacings, or K x N_theta complex
        dictionary entries (paper: 64 x 720 = 46,080 full, 64 x 156 = 9,984 limited)."""
        return sum(p.numel() for p in self.array.parameters())

    # --- forward -----------------------------------------------------------------------------
    def precoders(self, batch: Batch) -> torch.Tensor:
        """ISAC precoders (5) from LS beams (7) of the learnable array (B, K)."""
        f_r = tm.sector_beams(self.array, batch.lo, batch.hi, self.rcond)
        c_lo, c_hi = self.scenario.comm_sector_rad
        one = torch.ones(1, dtype=torch.float64, device=self.device)
        f_c = tm.sector_beams(self.array, c_lo * one, c_hi * one, self.rcond)
        return tm.isac_beam(f_r, f_c, batch.eta, batch.phi, self.scenario.transmitter["power"])

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame loss (B,) and the dOMP result's estimated positions (B, T, 2)."""
        y = self.sampler.received(batch, self.precoders(batch))
        lo, hi = (batch.lo, batch.hi) if self.options.sector_restricted else (None, None)
        iterations = int(batch.counts.max())
        res = self.domp(y, iterations, lo, hi)
        est = positions(res.angles_rad, res.ranges_m)  # (B, I, 2)
        true = positions(batch.angles[:, :iterations], batch.ranges[:, :iterations])
        if self.options.loss == "mse":
            return mse_single(true[:, 0], est[:, 0]), est
        rx = self.scenario.receiver
        return gospa_equal(true, est, batch.counts, rx["gospa_c_m"], rx["gospa_p"]), est

    # --- harness hooks -------------------------------------------------------------------------
    def before_step(self) -> None:
        self.array.train()
        self.domp.temperature = self.options.temperature_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = self.options.lr_at(self.step) * group.get("lr_scale", 1.0)

    def training_batch(self) -> Batch:
        return self.sampler.draw_frames(self.step, *self.shard, self.options.theta_mean_at(self.step))

    def per_frame_loss(self, batch: Batch) -> torch.Tensor:
        return self.loss_module(*batch.tensors())

    def row_fields(self, loss: float | None) -> dict[str, Any]:
        temperature = self.options.temperature_at(0) if loss is None else self.domp.temperature
        return {"train_loss": loss, "temperature": temperature}

    # --- validation --------------------------------------------------------------------------
    @torch.no_grad()
    def coherence(self) -> float:
        """Mean |a(theta; learned)^H a(theta; true)| / (||a|| ||a_true||) over the training angles
        (= |a(theta; d^)^H a(theta; d)| / K for steering vectors of unit-modulus entries)."""
        if not isinstance(self.array, tm.DictionaryArray):  # a structured array: its off-grid atoms
            a = self.array.atoms(self._coh_angles)
            b = self._coh_true
        else:
            a = self.array.dictionary().T[self._grid_span]
            b = self._grid_true
        num = (a.conj() * b).sum(-1).abs()
        den = torch.linalg.vector_norm(a, dim=-1) * torch.linalg.vector_norm(b, dim=-1)
        return float((num / den).mean())

    @torch.no_grad()
    def spacing_error(self) -> dict[str, float]:
        """||d^ - d|| (m) and the rms element-position error after removing the mean offset
        (a common translation of the array does not change |a^H y| and is not identifiable)."""
        if not hasattr(self.array, "positions_m"):  # no element positions (a dictionary, a plug-in's array)
            return {"spacing_error_m": float("nan"), "position_rms_m": float("nan")}
        d = self.array.spacings_m().cpu().numpy()
        p = self.array.positions_m().cpu().numpy()
        dp = p - self.true.positions_m
        out = {
            "spacing_error_m": float(np.linalg.norm(d - self.true.spacings_m)),
            "position_rms_m": float(np.sqrt(np.mean((dp - dp.mean()) ** 2))),
        }
        if isinstance(self.array, tm.ImpairmentArray):
            out["element_error"] = self.element_error()
        return out

    @torch.no_grad()
    def element_error(self) -> float:
        """min_s ||s M^ - M||_F / ||M||_F of the element matrices M = diag(g) C (learned M^, true
        M): the relative error after the best common complex scale s, which no loss can see (a
        common gain and phase of every element only scales the maps)."""
        est, true = self.array.element_matrix(), self._true_element
        s = (est.conj() * true).sum() / (est.abs() ** 2).sum().clamp_min(1e-300)
        return float(torch.linalg.norm(s * est - true) / torch.linalg.norm(true))

    def validate(self) -> dict[str, float]:
        if self._val_batch is None:
            self._val_batch = self.sampler.validation(self.options.val_frames)
        self.domp.temperature = self.options.temperature_at(self.step)
        losses = []
        with torch.no_grad():
            size = min(self.options.batch, 256)
            for s in range(0, self.options.val_frames, size):
                losses.append(self.forward(self._val_batch.slice(s, s + size))[0])
        out = {"val_loss": float(torch.cat(losses).mean()), "coherence": self.coherence()}
        out.update(self.spacing_error())
        return out

    # --- checkpoints and weights -------------------------------------------------------------
    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        return {f"param.{k}": v.detach().cpu().contiguous() for k, v in self.array.named_parameters()}

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, str], path: str) -> None:
        with torch.no_grad():
            for k, v in self.array.named_parameters():
                if f"param.{k}" not in tensors or tensors[f"param.{k}"].shape != v.shape:
                    raise CheckpointError(f"{path}: parameter {k} missing or mis-shaped")
                v.copy_(tensors[f"param.{k}"])
        self.load_adam(tensors, meta, path)

    def weight_tensors(self) -> dict[str, np.ndarray]:
        return self.array.weight_tensors()

    # --- log and plot ----------------------------------------------------------------------------
    def format_row(self, row: dict[str, Any]) -> str:
        parts = [f"step {row['step']:6d}"]
        for key, fmt in (
            ("train_loss", ".2f"),
            ("val_loss", ".2f"),
            ("coherence", ".4f"),
            ("spacing_error_m", ".3e"),
            ("position_rms_m", ".3e"),
            ("element_error", ".4f"),
            ("temperature", ".3g"),
        ):
            v = row.get(key)
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                parts.append(f"{key} {v:{fmt}}")
        return "  ".join(parts)

    def plot(self, path: str) -> None:
        o = self.options
        plot_history(path, self.history, f"{o.method} learning ({o.loss})", min(o.curriculum_steps, o.iterations))


class _FrameLoss(torch.nn.Module):
    """The trainer's per-frame loss (B,) as a module over the learnable array and dOMP, for
    DistributedDataParallel (which hooks the gradient all-reduce into its forward)."""

    def __init__(self, trainer: "Trainer"):
        super().__init__()
        self.array = trainer.array
        self.domp = trainer.domp
        # a weak reference, not a submodule: no Trainer <-> DDP cycle, so the DDP reducer is freed
        # with the trainer (before the process group is destroyed), not at interpreter exit
        object.__setattr__(self, "_trainer", weakref.ref(trainer))

    def forward(self, *fields: torch.Tensor) -> torch.Tensor:
        return self._trainer().forward(Batch(*fields))[0]


def plot_history(path: str, history: list[dict[str, Any]], title: str, curriculum_steps: int = 0) -> None:
    """Training loss (batch, running mean) and validation GOSPA above, mean coherence below."""
    trained = [h for h in history if h.get("train_loss") is not None]
    steps = np.array([h["step"] for h in trained])
    loss = np.array([h["train_loss"] for h in trained], dtype=float)
    val = [(h["step"], h["val_loss"], h["coherence"]) for h in history if h.get("val_loss") is not None]
    fig, (ax1, ax2) = new_figure(2, 1, figsize=(7, 6), sharex=True)
    plot_training_loss(ax1, steps, loss)
    if val:
        v = np.array(val, dtype=float)
        ax1.plot(v[:, 0], v[:, 1], "o-", label="validation")
        ax2.plot(v[:, 0], v[:, 2], "o-", color="C3")
    if curriculum_steps > 0:
        for ax in (ax1, ax2):
            ax.axvline(curriculum_steps, color="0.5", ls="--", lw=1)
        ax1.text(curriculum_steps, ax1.get_ylim()[1], " end of sector curriculum", va="top", fontsize=8, color="0.4")
    ax1.set_ylabel("GOSPA (18) [m]" if "mse" not in title else "MSE [m^2]")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.set_ylabel("mean coherence")
    ax2.set_xlabel("step")
    ax2.grid(alpha=0.3)
    save_plot(fig, path, title)


def training_options(method, profile: str, **flags) -> TrainOptions:
    """The options of a training run of the array-learning ``method`` (a registered
    transceiver.LearnedArrayMethod): the ``profile`` ("paper" | "quick") with isac-train's
    ``flags`` on top; the learning rate, when not given, is the method's for the profile."""
    return TrainOptions.from_profile(profile, method=method.name, **flags)


def train(
    scenario: Scenario,
    options: TrainOptions,
    out: str,
    device: str = "cpu",
    resume: str | None = None,
    progress=None,
    log=print,
    dist: dist_ctx.Context = dist_ctx.SINGLE,
) -> dict[str, Any]:
    """Run (or resume) training and write the weights to ``out`` (safetensors), the CSV log
    and loss curve next to it (``<out stem>.csv`` / ``.png``), and checkpoints
    (``<out stem>.ckpt.safetensors``) -- Harness.run. Returns a summary dict.

    ``dist``: this process's place in a data-parallel run (distributed.init has joined the
    process group). Every rank trains its slice of each step; only rank 0 validates, logs,
    shows the progress bar and writes files, and only its summary has "first"/"last"/"paths"."""
    torch.manual_seed(options.seed)
    return Trainer(scenario, options, device, dist).run(out, resume, progress, log)


__all__ = [
    "COHERENCE_SPAN_DEG",
    "DRAW_CHUNK",
    "PROFILES",
    "Batch",
    "TrainOptions",
    "Trainer",
    "plot_history",
    "train",
]
