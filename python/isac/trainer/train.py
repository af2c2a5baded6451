"""Offline end-to-end training of impairment or dictionary learning (Secs. IV-V), isac-train.

One step:
  1. a batch drawn in torch, in chunks of DRAW_CHUNK frames, each from its own generator
     seeded by (seed, step, chunk) -- so a run is deterministic given the seed, resumes
     exactly and can be split over data-parallel ranks: per frame a random target sector
     theta_mean ~ U[-60, 60] deg, Delta ~ U[10, 20] deg (Sec. V-A), T ~ U{1..T_max} targets
     (frames without targets carry no loss under (18)) in that sector and in [R_min, R_max],
     psi ~ CN(0, sigma_r^2), QPSK symbols, and the ISAC trade-off (eta, phi) drawn from the
     sweep of Sec. V-C (8 uniform eta in [0, 1], 8 uniform phi in [0, 7 pi/4]) or fixed;
  2. the transmitter: LS beams (6)-(7) of the LEARNABLE array towards the frame's sector and
     the communication sector, mixed by (5);
  3. the sensing echo (1) through the TRUE (impaired) array of the scenario, noise, and
     reciprocal filtering (3);
  4. differentiable OMP with T iterations on the learnable array (argmax in the sector);
  5. GOSPA (18) (or the MSE for single targets) averaged over the batch; Adam.

Validation on a fixed set of frames reports the GOSPA (18) of dOMP, the mean array coherence
|a(theta; d^)^H a(theta; d)| / K over the training angles [-70, 70] deg, and the spacing error
||d^ - d||. A CSV log, a loss-curve PNG and checkpoints (safetensors) go next to the output.

Under torchrun the step is data parallel (trainer/distributed.py): each rank draws its slice of
the step's frames from the same generators and DistributedDataParallel averages the gradients.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import weights as weights_io
from ..config import SPEED_OF_LIGHT, Scenario
from ..model.array import true_array
from ..model.grids import delay_grid
from ..model.ofdm import QPSK
from ..model.scene import sensing_gain_variance
from ..simulation import STREAMS
from . import distributed as dist_ctx
from . import torch_model as tm
from .domp import DEFAULT_TEMPERATURE, DifferentiableOmp
from .loss import gospa_equal, mse_single, positions

METHODS = ("impairment", "dictionary")
COHERENCE_SPAN_DEG = 70.0  # training sectors reach theta_mean +- Delta/2 <= 60 + 10 deg
#: a step's training frames are drawn in chunks of this many frames, chunk c of step s from its
#: own generator (Trainer.generator(s, chunk=c)); chunk 0 uses the generator of the whole step
#: used before chunking, so batches of <= DRAW_CHUNK frames (the quick profile) are unchanged.
#: A data-parallel rank draws only the chunks its slice touches.
DRAW_CHUNK = 32

#: paper-scale defaults (Sec. V-A/V-D: multi-target B = 1500, 25,000 iterations; lr in the units
#: of our parameters, see docs/trainer.md) and the CPU --quick profile.
PROFILES: dict[str, dict[str, Any]] = {
    "paper": {"batch": 1500, "iterations": 25000, "lr_impairment": 1e-3, "lr_dictionary": 5e-3,
              "curriculum_steps": 10000, "val_every": 500, "val_frames": 1000, "checkpoint_every": 1000},
    "quick": {"batch": 32, "iterations": 1000, "lr_impairment": 2e-3, "lr_dictionary": 5e-3,
              "curriculum_steps": 600, "val_every": 100, "val_frames": 128, "checkpoint_every": 100},
}


@dataclass
class TrainOptions:
    """Training hyper-parameters (CLI flags of isac-train; recorded in the weights metadata)."""

    method: str = "impairment"
    iterations: int = PROFILES["paper"]["iterations"]
    batch: int = PROFILES["paper"]["batch"]
    lr: float | None = None  # None: the profile's lr for the method
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
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.dictionary_points is not None:
            if self.method != "dictionary":
                raise ValueError("dictionary_points applies to method 'dictionary' only")
            if int(self.dictionary_points) < 2:
                raise ValueError(f"dictionary_points must be >= 2, got {self.dictionary_points}")
            self.dictionary_points = int(self.dictionary_points)
        if self.lr is None:
            self.lr = PROFILES[self.profile][f"lr_{self.method}"]
        if self.curriculum_steps < 0 or not 0 <= self.curriculum_start_deg <= self.theta_mean_deg:
            raise ValueError("curriculum_steps must be >= 0 and 0 <= curriculum_start_deg <= theta_mean_deg")
        for name in ("iterations", "batch", "val_every", "val_frames", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and self.temperature > 0):
            raise ValueError("lr and temperature must be > 0")
        if (self.lr_final is not None and not self.lr_final > 0) or (
                self.temperature_final is not None and not self.temperature_final > 0):
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
        base = {k: p[k] for k in ("batch", "iterations", "curriculum_steps", "val_every", "val_frames",
                                  "checkpoint_every")}
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


@dataclass
class Batch:
    """One training batch (torch, on the trainer's device)."""

    lo: torch.Tensor  # (B,) sector min, rad
    hi: torch.Tensor  # (B,) sector max, rad
    counts: torch.Tensor  # (B,) number of targets T_b
    present: torch.Tensor  # (B, T) bool
    angles: torch.Tensor  # (B, T) rad
    ranges: torch.Tensor  # (B, T) m
    gains: torch.Tensor  # (B, T) complex
    symbols: torch.Tensor  # (B, S) complex64
    noise: torch.Tensor  # (B, K, S) complex64, CN(0, N0)
    eta: torch.Tensor  # (B,)
    phi: torch.Tensor  # (B,)


def _complex_normal(gen: torch.Generator, shape, variance: float) -> torch.Tensor:
    re = torch.randn(shape, generator=gen, dtype=torch.float64)
    im = torch.randn(shape, generator=gen, dtype=torch.float64)
    return torch.complex(re, im) * math.sqrt(variance / 2.0)


class Trainer:
    """Holds the scenario, the learnable array, dOMP, the optimiser and the history."""

    def __init__(self, scenario: Scenario, options: TrainOptions, device: str = "cpu",
                 dist: dist_ctx.Context = dist_ctx.SINGLE):
        self.scenario = scenario
        self.options = options
        self.device = torch.device(device)
        self.dist = dist
        #: frames [start, stop) of every step's global batch that this process trains on
        self.shard = dist_ctx.shard(options.batch, dist.rank, dist.world_size)
        a, sc = scenario.array, scenario.scene
        self.K, self.S = a["antennas"], scenario.ofdm["subcarriers"]
        self.lam = scenario.wavelength_m
        self.spacing_hz = scenario.ofdm["spacing_hz"]
        self.T = 1 if options.loss == "mse" else sc["max_targets"]
        self.grid_points = scenario.transmitter["beam_grid"]
        self.rcond = scenario.transmitter["beam_rcond"]
        self.true = true_array(scenario)
        self.true_positions = torch.as_tensor(self.true.positions_m, dtype=torch.float64, device=self.device)
        if options.method == "impairment":
            self.array = tm.SpacingArray(self.K, self.lam, self.grid_points, a["impairment"], options.parameterisation)
        else:
            if options.dictionary_points is not None:  # complexity-limited dictionary (Sec. V-C)
                self.grid_points = options.dictionary_points
            self.array = tm.DictionaryArray(self.K, self.lam, self.grid_points)
        self.array.to(self.device)
        delays = delay_grid(scenario.range_interval_m, scenario.receiver["delay_grid"])
        self.domp = DifferentiableOmp(self.array, delays, self.S, self.spacing_hz, options.temperature).to(self.device)
        self.optimizer = torch.optim.Adam(self.array.parameters(), lr=options.lr)
        #: per-frame loss as a module (DistributedDataParallel needs a forward() to wrap)
        self.loss_module = dist_ctx.wrap(_FrameLoss(self), dist, self.device)
        self.gain_variance = sensing_gain_variance(sc["snr_sensing_db"], self.K, sc["noise_power"])
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self._qpsk = torch.as_tensor(QPSK)
        self._val_batch: Batch | None = None
        span = np.deg2rad(np.linspace(-COHERENCE_SPAN_DEG, COHERENCE_SPAN_DEG, 561))
        self._coh_angles = torch.as_tensor(span, device=self.device)
        self._coh_true = torch.as_tensor(self.true.steering(span).T, device=self.device)  # (N, K)
        g = self.array.grid_rad.cpu().numpy()
        in_span = np.abs(g) <= np.deg2rad(COHERENCE_SPAN_DEG) + 1e-12
        self._grid_span = torch.as_tensor(np.nonzero(in_span)[0], device=self.device)
        self._grid_true = torch.as_tensor(self.true.steering(g[in_span]).T, device=self.device)

    # --- data -------------------------------------------------------------------------------
    def parameter_count(self) -> int:
        """Number of learnable (real or complex) scalars: K spacings, or K x N_theta complex
        dictionary entries (paper: 64 x 720 = 46,080 full, 64 x 156 = 9,984 limited)."""
        return sum(p.numel() for p in self.array.parameters())

    def generator(self, step: int, stream: str = "train", chunk: int = 0) -> torch.Generator:
        """Generator of the batch of ``step`` of ``stream`` ("train" or "validation", numbered as
        simulation.STREAMS); ``chunk`` c > 0: of the c-th DRAW_CHUNK frames of that batch."""
        key = [int(self.options.seed), STREAMS[stream], int(step)] + ([int(chunk)] if chunk else [])
        seq = np.random.SeedSequence(key)
        return torch.Generator().manual_seed(int(seq.generate_state(1, dtype=np.uint64)[0]) >> 1)

    def draw_frames(self, step: int, start: int, stop: int, theta_mean_deg: float | None = None) -> Batch:
        """Frames [start, stop) of the training batch of ``step``: frame i is frame i % DRAW_CHUNK
        of chunk i // DRAW_CHUNK (drawn by generator(step, chunk=c)), whatever the slice, so
        slices drawn by different processes join into the batch drawn by one."""
        parts = []
        for c in range(start // DRAW_CHUNK, (stop - 1) // DRAW_CHUNK + 1):
            c0 = c * DRAW_CHUNK
            n = min(DRAW_CHUNK, self.options.batch - c0)
            b = self.draw(self.generator(step, chunk=c), n, theta_mean_deg)
            lo, hi = max(start, c0) - c0, min(stop, c0 + n) - c0
            parts.append(b if (lo, hi) == (0, n) else _slice(b, lo, hi))
        if len(parts) == 1:
            return parts[0]
        return Batch(*(torch.cat([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(Batch)))

    def draw(self, gen: torch.Generator, batch: int, theta_mean_deg: float | None = None,
             min_targets: int = 1) -> Batch:
        """A batch of random frames; T ~ U{min_targets..T_max} (model-based training: 1, since
        a frame without targets carries no loss under (18); NNBL's detection step: 0)."""
        o, sc = self.options, self.scenario.scene
        B, T, K, S = batch, self.T, self.K, self.S
        u = lambda *shape: torch.rand(shape, generator=gen, dtype=torch.float64)  # noqa: E731
        half = o.theta_mean_deg if theta_mean_deg is None else theta_mean_deg
        mean = torch.deg2rad((2 * u(B) - 1) * half)
        width = torch.deg2rad(o.width_deg[0] + (o.width_deg[1] - o.width_deg[0]) * u(B))
        lo, hi = (mean - width / 2).clamp(min=-math.pi / 2), (mean + width / 2).clamp(max=math.pi / 2)
        counts = torch.randint(min_targets, T + 1, (B,), generator=gen)
        present = torch.arange(T)[None, :] < counts[:, None]
        angles = lo[:, None] + (hi - lo)[:, None] * u(B, T)
        rmin, rmax = self.scenario.range_interval_m
        ranges = rmin + (rmax - rmin) * u(B, T)
        gains = _complex_normal(gen, (B, T), self.gain_variance)
        symbols = self._qpsk[torch.randint(0, 4, (B, S), generator=gen)]
        noise = _complex_normal(gen, (B, K, S), sc["noise_power"]).to(torch.complex64)
        if o.eta_phi == "sweep":
            eta = torch.linspace(0, 1, 8, dtype=torch.float64)[torch.randint(0, 8, (B,), generator=gen)]
            phi = (math.pi / 4) * torch.randint(0, 8, (B,), generator=gen).to(torch.float64)
        else:
            eta = torch.full((B,), float(self.scenario.transmitter["eta"]), dtype=torch.float64)
            phi = torch.full((B,), float(self.scenario.transmitter["phi_rad"]), dtype=torch.float64)
        dev = self.device
        return Batch(lo.to(dev), hi.to(dev), counts.to(dev), present.to(dev), angles.to(dev), ranges.to(dev),
                     gains.to(dev), symbols.to(dev), noise.to(dev), eta.to(dev), phi.to(dev))

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
        f = self.precoders(batch)
        delays = 2.0 * batch.ranges / SPEED_OF_LIGHT
        y = tm.sensing_echo(self.true_positions, self.lam, f, batch.symbols, batch.angles, delays, batch.gains,
                            batch.present, self.spacing_hz) + batch.noise
        y = tm.reciprocal_filter(y, batch.symbols)  # (3)
        lo, hi = (batch.lo, batch.hi) if self.options.sector_restricted else (None, None)
        iterations = int(batch.counts.max())
        res = self.domp(y, iterations, lo, hi)
        est = positions(res.angles_rad, res.ranges_m)  # (B, I, 2)
        true = positions(batch.angles[:, :iterations], batch.ranges[:, :iterations])
        if self.options.loss == "mse":
            return mse_single(true[:, 0], est[:, 0]), est
        rx = self.scenario.receiver
        return gospa_equal(true, est, batch.counts, rx["gospa_c_m"], rx["gospa_p"]), est

    def train_step(self) -> float:
        self.array.train()
        self.domp.temperature = self.options.temperature_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = self.options.lr_at(self.step)
        batch = self.draw_frames(self.step, *self.shard, self.options.theta_mean_at(self.step))
        per_frame = self.loss_module(*(getattr(batch, f.name) for f in dataclasses.fields(Batch)))
        if self.dist.enabled:
            # DDP averages the ranks' gradients: sum * world / B makes that the gradient of the
            # mean over the global batch, also when the slices differ in size by one frame
            loss = per_frame.sum() * (self.dist.world_size / self.options.batch)
            total = dist_ctx.sum_over_ranks(per_frame.detach().sum(), self.dist)
        else:
            loss = per_frame.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return float(total) / self.options.batch if self.dist.enabled else float(loss.detach())

    # --- validation --------------------------------------------------------------------------
    @torch.no_grad()
    def coherence(self) -> float:
        """Mean |a(theta; learned)^H a(theta; true)| / (||a|| ||a_true||) over the training angles
        (= |a(theta; d^)^H a(theta; d)| / K for steering vectors of unit-modulus entries)."""
        if isinstance(self.array, tm.SpacingArray):
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
        if not isinstance(self.array, tm.SpacingArray):
            return {"spacing_error_m": float("nan"), "position_rms_m": float("nan")}
        d = self.array.spacings_m().cpu().numpy()
        p = self.array.positions_m().cpu().numpy()
        dp = p - self.true.positions_m
        return {"spacing_error_m": float(np.linalg.norm(d - self.true.spacings_m)),
                "position_rms_m": float(np.sqrt(np.mean((dp - dp.mean()) ** 2)))}

    def validate(self) -> dict[str, float]:
        if self._val_batch is None:
            self._val_batch = self.draw(self.generator(0, "validation"), self.options.val_frames)
        self.domp.temperature = self.options.temperature_at(self.step)
        losses = []
        with torch.no_grad():
            vb = self._val_batch
            size = min(self.options.batch, 256)
            for s in range(0, self.options.val_frames, size):
                losses.append(self.forward(_slice(vb, s, s + size))[0])
        out = {"val_loss": float(torch.cat(losses).mean()), "coherence": self.coherence()}
        out.update(self.spacing_error())
        return out

    # --- checkpoints and weights -------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        t = {f"param.{k}": v.detach().cpu().contiguous() for k, v in self.array.named_parameters()}
        for i, p in enumerate(self.array.parameters()):
            st = self.optimizer.state.get(p, {})
            for key, value in st.items():
                t[f"adam.{i}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
        return t

    def save_checkpoint(self, path: str) -> None:
        from safetensors.torch import save_file

        meta = {"step": str(self.step), "options": json.dumps(self.options.to_dict(), sort_keys=True),
                "scenario_hash": self.scenario.hash(), "history": json.dumps(self.history)}
        tmp = path + ".tmp"
        save_file(self.state_tensors(), tmp, metadata=meta)
        os.chmod(tmp, weights_io._default_mode())
        os.replace(tmp, path)

    def load_checkpoint(self, path: str) -> None:
        from safetensors import safe_open

        with safe_open(path, framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        if meta.get("scenario_hash") != self.scenario.hash():
            raise ValueError(f"{path}: checkpoint of scenario {meta.get('scenario_hash')}, this run is "
                             f"{self.scenario.hash()}")
        saved = json.loads(meta["options"])
        for key in ("method", "parameterisation", "loss", "seed", "batch", "dictionary_points"):
            if saved.get(key) != self.options.to_dict()[key]:
                raise ValueError(f"{path}: checkpoint has {key} = {saved.get(key)!r}, this run "
                                 f"{self.options.to_dict()[key]!r}")
        with torch.no_grad():
            for k, v in self.array.named_parameters():
                if f"param.{k}" not in tensors or tensors[f"param.{k}"].shape != v.shape:
                    raise ValueError(f"{path}: parameter {k} missing or mis-shaped")
                v.copy_(tensors[f"param.{k}"])
        for i, p in enumerate(self.array.parameters()):
            st = {key.split(".", 2)[2]: val.to(self.device) for key, val in tensors.items()
                  if key.startswith(f"adam.{i}.")}
            if st:
                self.optimizer.state[p] = st
        self.step = int(meta["step"])
        self.history = json.loads(meta.get("history", "[]"))

    def weight_tensors(self) -> dict[str, np.ndarray]:
        grid = self.array.grid_rad.cpu().numpy()
        if isinstance(self.array, tm.SpacingArray):
            return {"spacings_m": self.array.spacings_m().detach().cpu().numpy().astype(np.float64),
                    "positions_m": self.array.positions_m().detach().cpu().numpy().astype(np.float64),
                    "angle_grid_rad": grid}
        return {"dictionary": self.array.dictionary().detach().cpu().numpy().astype(np.complex64),
                "angle_grid_rad": grid}


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


def _slice(b: Batch, start: int, stop: int) -> Batch:
    return Batch(*(getattr(b, f.name)[start:stop] for f in dataclasses.fields(Batch)))


CSV_FIELDS = ("step", "train_loss", "val_loss", "coherence", "spacing_error_m", "position_rms_m", "temperature",
              "elapsed_s")


def write_csv(path: str, history: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for row in history:
            w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_FIELDS})


def plot_training_loss(ax, steps: np.ndarray, loss: np.ndarray) -> None:
    """Per-batch training loss and its running mean (about 30 windows) on a matplotlib axis."""
    ax.plot(steps, loss, lw=0.6, alpha=0.5, label="train (batch)")
    if len(loss) >= 10:
        k = max(len(loss) // 30, 5)
        ax.plot(steps[k - 1:], np.convolve(loss, np.ones(k) / k, mode="valid"), lw=1.5, label=f"train ({k}-step mean)")


def save_plot(fig, path: str, title: str) -> None:
    """Title, lay out, write (PNG, 100 dpi) and free a training plot."""
    import matplotlib.pyplot as plt

    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_history(path: str, history: list[dict[str, Any]], title: str, curriculum_steps: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trained = [h for h in history if h.get("train_loss") is not None]
    steps = np.array([h["step"] for h in trained])
    loss = np.array([h["train_loss"] for h in trained], dtype=float)
    val = [(h["step"], h["val_loss"], h["coherence"]) for h in history if h.get("val_loss") is not None]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
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


def train(scenario: Scenario, options: TrainOptions, out: str, device: str = "cpu", resume: str | None = None,
          progress=None, log=print, dist: dist_ctx.Context = dist_ctx.SINGLE) -> dict[str, Any]:
    """Run (or resume) training and write the weights to ``out`` (safetensors), the CSV log
    and loss curve next to it (``<out stem>.csv`` / ``.png``), and checkpoints
    (``<out stem>.ckpt.safetensors``). Returns a summary dict.

    ``dist``: this process's place in a data-parallel run (distributed.init has joined the
    process group). Every rank trains its slice of each step; only rank 0 validates, logs,
    shows the progress bar and writes files, and only its summary has "first"/"last"/"paths"."""
    from tqdm import tqdm

    torch.manual_seed(options.seed)
    stem = out[:-len(".safetensors")] if out.endswith(".safetensors") else out
    paths = {"csv": stem + ".csv", "png": stem + ".png", "ckpt": stem + ".ckpt.safetensors"}
    trainer = Trainer(scenario, options, device, dist)
    if not dist.is_main:  # the other ranks only compute their slices' gradients
        if resume:
            trainer.load_checkpoint(resume)
        while trainer.step < options.iterations:
            trainer.train_step()
        return {"steps": trainer.step, "rank": dist.rank, "parameters": trainer.parameter_count()}
    if resume:
        trainer.load_checkpoint(resume)
        log(f"resumed from {resume} at step {trainer.step}")
    start_time = time.time()
    elapsed0 = trainer.history[-1]["elapsed_s"] if trainer.history else 0.0
    if trainer.step == 0:
        first = trainer.validate()
        trainer.history.append({"step": 0, "train_loss": None, "temperature": options.temperature_at(0),
                                "elapsed_s": 0.0, **first})
        log(_fmt(trainer.history[-1]))
    bar = tqdm(total=options.iterations, initial=trainer.step, desc=f"isac-train {options.method}", unit="step",
               disable=True if progress is False else None, dynamic_ncols=True)
    with bar:
        while trainer.step < options.iterations:
            loss = trainer.train_step()
            row: dict[str, Any] = {"step": trainer.step, "train_loss": loss,
                                   "temperature": trainer.domp.temperature,
                                   "elapsed_s": elapsed0 + time.time() - start_time}
            if trainer.step % options.val_every == 0 or trainer.step == options.iterations:
                row.update(trainer.validate())
                log(_fmt(row))
            trainer.history.append(row)
            bar.set_postfix(loss=f"{loss:.2f}")
            bar.update(1)
            if trainer.step % options.checkpoint_every == 0 or trainer.step == options.iterations:
                trainer.save_checkpoint(paths["ckpt"])
                write_csv(paths["csv"], trainer.history)
    write_csv(paths["csv"], trainer.history)
    plot_history(paths["png"], trainer.history, f"{options.method} learning ({options.loss})",
                 min(options.curriculum_steps, options.iterations))
    weights_io.save(out, scenario, options.method, trainer.weight_tensors(), trainer.step, options.to_dict())
    first = next(h for h in trainer.history if h.get("coherence") is not None)
    last = [h for h in trainer.history if h.get("coherence") is not None][-1]
    return {"steps": trainer.step, "elapsed_s": trainer.history[-1]["elapsed_s"], "first": first, "last": last,
            "paths": {**paths, "weights": out}, "rank": dist.rank, "parameters": trainer.parameter_count()}


def _fmt(row: dict[str, Any]) -> str:
    parts = [f"step {row['step']:6d}"]
    for key, fmt in (("train_loss", ".2f"), ("val_loss", ".2f"), ("coherence", ".4f"), ("spacing_error_m", ".3e"),
                     ("position_rms_m", ".3e"), ("temperature", ".3g")):
        v = row.get(key)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            parts.append(f"{key} {v:{fmt}}")
    return "  ".join(parts)
