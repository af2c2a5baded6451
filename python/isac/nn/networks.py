"""Neural-network-based learning (NNBL), the baseline of Appendix A: networks only.

NNBL replaces the precoder and the sensing estimator of Fig. 2 by neural networks and uses no
model of the array (nor of its impairments) beyond the nominal dictionaries that form the
receiver's input map.

Transmitter (App. A-B): an MLP f_eps: R^2 -> R^2K, input the sector {min, max} in rad, 3 hidden
layers of 8K ReLU units (``limited``: 4), output [Re f; Im f] normalised to unit norm. The same
MLP gives f_r (target sector) and f_c (communication sector), mixed by (5)
(nn.twins.isac_beam).

Receiver input: the angle-delay map L = |Phi_a^H Y~ Phi_d^*|^2 of Sec. III (Algorithm 1, line 5)
with NOMINAL dictionaries: N_theta angles uniform over the frame's a-priori sector
[theta_min, theta_max] (the Sec. III grid) and N_tau delays over [R_min, R_max] (paper: 320 x 128
for NNBL). It is normalised as log(1 + L / (K S N0)): K S N0 is the mean of a noise-only map cell
(unit-modulus atoms, CN(0, N0) noise; reciprocal filtering by QPSK keeps N0), so the scale does not
depend on the units, and the log compresses the 40 dB between noise and strong echoes while keeping
the absolute level that detection needs (a per-frame max normalisation would remove it).

Three CNNs with the common trunk of Table I (one per task: angle, range, detection), each
followed by its MLP head of Table II:

  conv 5x5 (1 -> c0) + BN + ReLU, maxpool p x p,
  residual bottleneck blocks (Fig. 10) c_{i-1} -> c_i with stride s_i,
  conv 3x3 (c_last -> 1) + BN + ReLU, flatten (F = N_theta N_tau / 2^12 features for the paper),
  MLP [F + a-priori] -> hidden ReLU layers -> T_max outputs.

A residual bottleneck block (Fig. 10, read from the text: "a convolutional layer with some
stride, then 2 bottleneck blocks with skip connections similar to ResNet, with fewer
activations and normalisations (ConvNeXt), and a residual connection from the beginning to the
end of both bottleneck blocks"):

  h0 = conv3x3(C_in -> C_out, stride)
  h1 = h0 + B1(h0),  h2 = h1 + B2(h1),  out = h2 + h0
  B(x) = conv1x1(C -> C/4) -> BN -> ReLU -> conv3x3(C/4 -> C/4) -> conv1x1(C/4 -> C)

(ResNet's 4x bottleneck width; one BN and one ReLU per bottleneck.) All convolutions have biases
and zero padding that keeps the size (stride 1).

Heads (Table II): angle uses {theta_min, theta_max} (rad), output tanh(.) * 90 deg; range uses
{R_min, R_max} / RANGE_SCALE_M, output ReLU(.) * RANGE_SCALE_M (m), its output bias initialised
to the middle of the interval (a head that starts at ReLU(.) = 0 puts every estimate at the origin,
beyond the GOSPA cut-off of most targets, and never gets a gradient); detection uses all four,
output sigmoid (the logits are returned too, for a stable BCE). Each outputs T_max values: slot i
is the i-th potential target (training uses the first T slots, see nnbl_train).

``limited`` (App. A-B, complexity limits): precoder hidden 4, maxpool 4x4, 3 residual blocks,
channels / 4, MLP hidden layers of 4 units. The sizes (NnblConfig) and the tensor names and shapes
they imply (expected_shapes) live in the torch-free gnuradio.isac.nn.schema.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..model import array as np_array
from ..model.grids import delay_grid
from . import twins as tm
from .schema import APRIORI_INPUTS, NnblConfig, expected_shapes  # noqa: F401 (expected_shapes: re-exported)

#: the range a-priori inputs are divided by and the range head's output multiplied by (m)
RANGE_SCALE_M = 100.0


# --- transmitter ------------------------------------------------------------------------------
class PrecoderNet(nn.Module):
    """f_eps: sector {min, max} (rad) (B, 2) -> unit-norm complex precoder (B, K)."""

    def __init__(self, antennas: int, hidden: int):
        super().__init__()
        self.antennas = antennas
        self.net = nn.Sequential(
            nn.Linear(2, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2 * antennas),
        )

    def forward(self, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        x = self.net(torch.stack([lo, hi], dim=-1).to(torch.float32)).to(torch.float64)
        f = torch.complex(x[..., : self.antennas], x[..., self.antennas :])
        return tm.normalise(f)


# --- receiver ---------------------------------------------------------------------------------
class Bottleneck(nn.Module):
    """conv1x1 C -> C/4, BN, ReLU, conv3x3 C/4 -> C/4, conv1x1 C/4 -> C (no activation at the end)."""

    def __init__(self, channels: int):
        super().__init__()
        mid = max(channels // 4, 1)
        self.body = nn.Sequential(
            nn.Conv2d(channels, mid, 1),
            nn.BatchNorm2d(mid),
            nn.ReLU(),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.Conv2d(mid, channels, 1),
        )

    def forward(self, x):
        return x + self.body(x)


class ResidualBottleneck(nn.Module):
    """Fig. 10: strided conv3x3 C_in -> C_out, two bottlenecks with skips, outer residual."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.down = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.b1 = Bottleneck(c_out)
        self.b2 = Bottleneck(c_out)

    def forward(self, x):
        h0 = self.down(x)
        return self.b2(self.b1(h0)) + h0


class TaskNet(nn.Module):
    """One task's CNN (Table I) and MLP head (Table II): map (B, 1, N_theta, N_tau) and a-priori
    inputs (B, n_apriori) -> (B, T_max) raw outputs (before the task's output function)."""

    def __init__(self, cfg: NnblConfig, n_apriori: int):
        super().__init__()
        c0 = cfg.first_channels
        layers: list[nn.Module] = [
            nn.Conv2d(1, c0, 5, padding=2),
            nn.BatchNorm2d(c0),
            nn.ReLU(),
            nn.MaxPool2d(cfg.pool),
        ]
        c = c0
        for c_out, s in zip(cfg.block_channels, cfg.block_strides):
            layers.append(ResidualBottleneck(c, c_out, s))
            c = c_out
        layers += [nn.Conv2d(c, 1, 3, padding=1), nn.BatchNorm2d(1), nn.ReLU(), nn.Flatten()]
        self.cnn = nn.Sequential(*layers)
        h, w = cfg.feature_shape
        h1, h2 = cfg.mlp_hidden
        self.mlp = nn.Sequential(
            nn.Linear(h * w + n_apriori, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, cfg.max_targets)
        )

    def forward(self, x: torch.Tensor, apriori: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([self.cnn(x), apriori.to(x.dtype)], dim=-1))


@dataclass
class NnblOutput:
    """Receiver outputs, (B, T_max) each: angles (rad), ranges (m), detection logits."""

    angles_rad: torch.Tensor
    ranges_m: torch.Tensor
    logits: torch.Tensor

    @property
    def probabilities(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)


class Nnbl(nn.Module):
    """The NNBL transmitter and receiver of one scenario numerology.

    ``precoder`` f_eps, and the receiver's ``angle`` (f_xi angle part), ``range`` (f_xi range
    part) and ``detection`` (f_zeta) networks. Buffers (not learned, not saved): the nominal
    element positions and the delay dictionary of the input map."""

    def __init__(
        self,
        cfg: NnblConfig,
        wavelength_m: float,
        subcarriers: int,
        spacing_hz: float,
        range_m: tuple[float, float],
        noise_power: float = 1.0,
    ):
        super().__init__()
        self.cfg = cfg.check()
        self.wavelength_m = float(wavelength_m)
        self.subcarriers = int(subcarriers)
        self.range_m = (float(range_m[0]), float(range_m[1]))
        self.noise_power = float(noise_power)
        self.precoder = PrecoderNet(cfg.antennas, cfg.precoder_hidden)
        self.angle = TaskNet(cfg, APRIORI_INPUTS["angle"])
        self.range = TaskNet(cfg, APRIORI_INPUTS["range"])
        self.detection = TaskNet(cfg, APRIORI_INPUTS["detection"])
        with torch.no_grad():  # range outputs start at the middle of [R_min, R_max]: the ReLU is live
            self.range.mlp[-1].bias.fill_(0.5 * sum(self.range_m) / RANGE_SCALE_M)
        nominal = np_array.positions_example1(np.full(cfg.antennas, wavelength_m / 2))
        self.register_buffer("nominal_positions_m", torch.as_tensor(nominal, dtype=torch.float64), persistent=False)
        delays = torch.as_tensor(delay_grid(self.range_m, cfg.n_tau), dtype=torch.float64)
        phi_d = tm.delay_vector(delays, subcarriers, spacing_hz).T.contiguous()  # S x N_tau
        self.register_buffer("phi_d_conj", phi_d.conj(), persistent=False)

    @classmethod
    def for_scenario(cls, scenario, cfg: NnblConfig) -> "Nnbl":
        return cls(
            cfg,
            scenario.wavelength_m,
            scenario.ofdm["subcarriers"],
            scenario.ofdm["spacing_hz"],
            scenario.range_interval_m,
            scenario.scene["noise_power"],
        )

    # transmitter
    def precoders(self, lo, hi, comm_lo, comm_hi, eta, phi, power: float = 1.0) -> torch.Tensor:
        """ISAC precoders (5) (B, K) complex128 for target sectors [lo, hi] (B,) and the
        communication sector (floats), trade-off eta, phi (scalars or (B,))."""
        lo = torch.as_tensor(lo, dtype=torch.float64)
        hi = torch.as_tensor(hi, dtype=torch.float64)
        f_r = self.precoder(lo, hi)
        c = torch.tensor([[comm_lo, comm_hi]], dtype=torch.float64, device=f_r.device)
        f_c = self.precoder(c[:, 0], c[:, 1])
        return tm.isac_beam(f_r, f_c, eta, phi, power)

    # receiver
    def input_map(self, y_tilde: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        """log(1 + L / (K S N0)) on the nominal sector x range grids: (B, K, S) -> (B, 1, N_theta, N_tau)
        float32 (differentiable in Y~)."""
        K, S = y_tilde.shape[-2:]
        frac = torch.linspace(0.0, 1.0, self.cfg.n_theta, dtype=torch.float64, device=y_tilde.device)
        angles = lo[:, None].to(torch.float64) + (hi - lo)[:, None].to(torch.float64) * frac  # (B, N_theta)
        atoms = tm.steering_matrix(self.nominal_positions_m, angles, self.wavelength_m)  # (B, N_theta, K)
        m = atoms.conj() @ (y_tilde.to(tm.CDTYPE) @ self.phi_d_conj)  # (B, N_theta, N_tau)
        power = m.real**2 + m.imag**2
        return torch.log1p(power / (K * S * self.noise_power))[:, None].to(torch.float32)

    def sense(
        self, y_tilde: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, heads=("angle", "range", "detection")
    ) -> NnblOutput:
        """Receiver on reciprocal-filtered frames Y~ (B, K, S) with the a-priori sector (B,) and
        the range interval; ``heads`` restricts which networks run (others give None)."""
        x = self.input_map(y_tilde, lo, hi)
        B = x.shape[0]
        sector = torch.stack([lo, hi], dim=-1).to(torch.float32)
        rng = torch.tensor([self.range_m], dtype=torch.float32, device=x.device).expand(B, 2) / RANGE_SCALE_M
        angles = ranges = logits = None
        if "angle" in heads:
            angles = torch.tanh(self.angle(x, sector)).to(torch.float64) * (math.pi / 2)
        if "range" in heads:
            ranges = torch.relu(self.range(x, rng)).to(torch.float64) * RANGE_SCALE_M
        if "detection" in heads:
            logits = self.detection(x, torch.cat([sector, rng], dim=-1))
        return NnblOutput(angles, ranges, logits)


# --- parameter counts and the tensors of a weights file -------------------------------------------
def parameter_counts(model: Nnbl) -> dict[str, int]:
    """Learnable real parameters per network and in total."""
    out = {
        name: sum(p.numel() for p in getattr(model, name).parameters())
        for name in ("precoder", "angle", "range", "detection")
    }
    out["total"] = sum(out.values())
    return out


def state_tensors(model: Nnbl) -> dict[str, np.ndarray]:
    """All network tensors of a weights file (parameters and BN running statistics; not the
    BN batch counters), float32 numpy."""
    return {
        k: v.detach().cpu().numpy().astype(np.float32)
        for k, v in model.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }


def load_tensors(model: Nnbl, tensors: dict[str, np.ndarray]) -> None:
    """Copy a weights file's tensors into ``model`` (shapes checked by weights.validate)."""
    state = {k: torch.as_tensor(np.asarray(v)) for k, v in tensors.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"NNBL tensors: missing {missing[:3]}, unexpected {unexpected[:3]}")
