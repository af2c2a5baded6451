"""Training frames of a scenario, shared by every trainer (impairment, dictionary, NNBL).

One ``FrameSampler`` draws the random frames of Sec. V-A and passes a transmitted precoder
through the scenario's channel:

  * per frame a random target sector theta_mean ~ U[-theta_mean_deg, theta_mean_deg] (60 deg,
    or the model-based trainer's curriculum), width Delta ~ U[10, 20] deg;
  * T ~ U{min_targets..T_max} targets uniform in that sector and in [R_min, R_max], gains
    psi ~ CN(0, sigma_r^2) (sigma_r^2 from the sensing SNR), QPSK symbols, noise CN(0, N0);
  * the ISAC trade-off (eta, phi) from the sweep of Sec. V-C (8 uniform eta in [0, 1], 8
    uniform phi in [0, 7 pi/4]) or the scenario's fixed transmitter.eta / phi_rad;
  * ``received``: the echo (1) through the TRUE (impaired) array (positions and, when the
    scenario turns them on, the element models diag(g) C of model.impairments), noise,
    reciprocal filter (3).

Randomness: the batch of training step s comes from generators seeded by (seed, "train", s)
(simulation.STREAMS numbering), the validation set from (seed, "validation", 0), so a run is
deterministic given its seed and a resumed run draws the same batches. With ``chunk`` = C the
step's batch is drawn in chunks of C frames, chunk c from generator (seed, "train", s, c) (chunk
0: the step's own generator), so a data-parallel rank draws just its slice; ``chunk`` None draws
the whole batch from the step's generator (NNBL's stream; the same frames for B <= C).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..config import SPEED_OF_LIGHT, Scenario
from ..model.impairments import true_array
from ..model.ofdm import QPSK
from ..model.scene import sensing_gain_variance
from ..nn import arrays as tm
from ..simulation import STREAMS

#: frames per drawing chunk of the model-based trainers (chunk 0 is the step's own generator,
#: so batches of <= DRAW_CHUNK frames, the quick profiles, are drawn as before chunking)
DRAW_CHUNK = 32


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

    def tensors(self) -> list[torch.Tensor]:
        return [getattr(self, f.name) for f in dataclasses.fields(self)]

    def slice(self, start: int, stop: int) -> "Batch":
        return Batch(*(t[start:stop] for t in self.tensors()))

    @staticmethod
    def cat(parts: list["Batch"]) -> "Batch":
        return parts[0] if len(parts) == 1 else Batch(*(torch.cat(ts) for ts in zip(*(p.tensors() for p in parts))))


def _complex_normal(gen: torch.Generator, shape, variance: float) -> torch.Tensor:
    re = torch.randn(shape, generator=gen, dtype=torch.float64)
    im = torch.randn(shape, generator=gen, dtype=torch.float64)
    return torch.complex(re, im) * math.sqrt(variance / 2.0)


class FrameSampler:
    """Random training frames of ``scenario`` (module docstring) and its true channel.

    ``batch``: frames per training step; ``max_targets``: T_max (None: the scenario's);
    ``eta_phi``: "sweep" | "fixed"; ``theta_mean_deg``, ``width_deg`` (deg): the sector prior;
    ``chunk``: frames per generator (None: one generator per step)."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        batch: int,
        max_targets: int | None = None,
        eta_phi: str = "sweep",
        theta_mean_deg: float = 60.0,
        width_deg: tuple[float, float] = (10.0, 20.0),
        chunk: int | None = DRAW_CHUNK,
        device: str | torch.device = "cpu",
    ):
        if eta_phi not in ("sweep", "fixed"):
            raise ValueError(f"eta_phi must be 'sweep' or 'fixed', got {eta_phi!r}")
        self.scenario = scenario
        self.seed, self.batch, self.chunk = int(seed), int(batch), chunk
        self.eta_phi, self.theta_mean_deg, self.width_deg = eta_phi, float(theta_mean_deg), tuple(width_deg)
        self.device = torch.device(device)
        sc = scenario.scene
        self.T = sc["max_targets"] if max_targets is None else int(max_targets)
        self.K, self.S = scenario.array["antennas"], scenario.ofdm["subcarriers"]
        self.gain_variance = sensing_gain_variance(sc["snr_sensing_db"], self.K, sc["noise_power"])
        self.true = true_array(scenario)
        self.true_positions = torch.as_tensor(self.true.positions_m, dtype=torch.float64, device=self.device)
        #: M = diag(g) C of the true array's element models (model.impairments), None without them
        m = getattr(self.true, "element_matrix", None)
        self.true_element_matrix = None if m is None else torch.as_tensor(m, device=self.device)
        self._qpsk = torch.as_tensor(QPSK)

    def generator(self, step: int, stream: str = "train", chunk: int = 0) -> torch.Generator:
        """Generator of the batch of ``step`` of ``stream`` ("train" or "validation"); ``chunk``
        c > 0: of the c-th chunk of that batch."""
        key = [self.seed, STREAMS[stream], int(step)] + ([int(chunk)] if chunk else [])
        seq = np.random.SeedSequence(key)
        return torch.Generator().manual_seed(int(seq.generate_state(1, dtype=np.uint64)[0]) >> 1)

    def draw_frames(
        self,
        step: int,
        start: int = 0,
        stop: int | None = None,
        theta_mean_deg: float | None = None,
        min_targets: int = 1,
    ) -> Batch:
        """Frames [start, stop) of the training batch of ``step``. Chunked: frame i is frame
        i % chunk of chunk i // chunk whatever the slice, so slices drawn by different
        processes join into the batch drawn by one."""
        stop = self.batch if stop is None else stop
        if self.chunk is None:
            b = self.draw(self.generator(step), self.batch, theta_mean_deg, min_targets)
            return b if (start, stop) == (0, self.batch) else b.slice(start, stop)
        parts = []
        for c in range(start // self.chunk, (stop - 1) // self.chunk + 1):
            c0 = c * self.chunk
            n = min(self.chunk, self.batch - c0)
            b = self.draw(self.generator(step, chunk=c), n, theta_mean_deg, min_targets)
            lo, hi = max(start, c0) - c0, min(stop, c0 + n) - c0
            parts.append(b if (lo, hi) == (0, n) else b.slice(lo, hi))
        return Batch.cat(parts)

    def validation(self, frames: int, min_targets: int = 1) -> Batch:
        """The fixed validation set: ``frames`` frames of the "validation" stream."""
        return self.draw(self.generator(0, "validation"), frames, min_targets=min_targets)

    def draw(
        self, gen: torch.Generator, frames: int, theta_mean_deg: float | None = None, min_targets: int = 1
    ) -> Batch:
        """``frames`` random frames from ``gen``; T ~ U{min_targets..T_max} (model-based
        training and NNBL step 1: 1, since a frame without targets carries no loss under (18);
        NNBL's detection step: 0)."""
        B, T, K, S = frames, self.T, self.K, self.S
        u = lambda *shape: torch.rand(shape, generator=gen, dtype=torch.float64)  # noqa: E731
        half = self.theta_mean_deg if theta_mean_deg is None else theta_mean_deg
        mean = torch.deg2rad((2 * u(B) - 1) * half)
        width = torch.deg2rad(self.width_deg[0] + (self.width_deg[1] - self.width_deg[0]) * u(B))
        lo, hi = (mean - width / 2).clamp(min=-math.pi / 2), (mean + width / 2).clamp(max=math.pi / 2)
        counts = torch.randint(min_targets, T + 1, (B,), generator=gen)
        present = torch.arange(T)[None, :] < counts[:, None]
        angles = lo[:, None] + (hi - lo)[:, None] * u(B, T)
        rmin, rmax = self.scenario.range_interval_m
        ranges = rmin + (rmax - rmin) * u(B, T)
        gains = _complex_normal(gen, (B, T), self.gain_variance)
        symbols = self._qpsk[torch.randint(0, 4, (B, S), generator=gen)]
        noise = _complex_normal(gen, (B, K, S), self.scenario.scene["noise_power"]).to(torch.complex64)
        if self.eta_phi == "sweep":
            eta = torch.linspace(0, 1, 8, dtype=torch.float64)[torch.randint(0, 8, (B,), generator=gen)]
            phi = (math.pi / 4) * torch.randint(0, 8, (B,), generator=gen).to(torch.float64)
        else:
            eta = torch.full((B,), float(self.scenario.transmitter["eta"]), dtype=torch.float64)
            phi = torch.full((B,), float(self.scenario.transmitter["phi_rad"]), dtype=torch.float64)
        return Batch(
            *(t.to(self.device) for t in (lo, hi, counts, present, angles, ranges, gains, symbols, noise, eta, phi))
        )

    def received(self, batch: Batch, precoder: torch.Tensor) -> torch.Tensor:
        """Y~ (B, K, S): the echo (1) of ``precoder`` (B, K) through the TRUE array, plus the
        batch's noise, reciprocal-filtered (3). Differentiable in the precoder."""
        delays = 2.0 * batch.ranges / SPEED_OF_LIGHT
        y = (
            tm.sensing_echo(
                self.true_positions,
                self.scenario.wavelength_m,
                precoder,
                batch.symbols,
                batch.angles,
                delays,
                batch.gains,
                batch.present,
                self.scenario.ofdm["spacing_hz"],
                self.true_element_matrix,
            )
            + batch.noise
        )
        return tm.reciprocal_filter(y, batch.symbols)


__all__ = ["Batch", "DRAW_CHUNK", "FrameSampler"]
