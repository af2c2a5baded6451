"""NNBL tensor schema (Appendix A) without torch: the network sizes and the tensors they imply.

``NnblConfig`` holds the sizes of the NNBL networks (nn/networks.py builds them in torch);
``expected_shapes(cfg)`` gives the name -> shape of every tensor of an "nn" weights file,
computed from the layer sizes below, so that a weights file is validated without torch.
tests/test_nnbl.py pins it to the state tensors of the torch networks.

Layout (the state_dict names of nn/networks.py; BN = weight, bias, running_mean, running_var;
the BN batch counters are not part of a weights file):

  precoder.net.{0,2,4,6}   Linear 2 -> h -> h -> h -> 2K               (h: precoder_hidden)
  <task>.cnn.0, .1         conv 5x5 1 -> c0, BN(c0)                     (task: angle, range, detection)
  <task>.cnn.<4 + i>       residual block i (Fig. 10): down = conv 3x3 c_in -> c_out;
                           b1, b2 = bottleneck body.0 conv 1x1 C -> C/4, body.1 BN(C/4),
                           body.3 conv 3x3 C/4 -> C/4, body.4 conv 1x1 C/4 -> C
  <task>.cnn.<4 + n>, <5 + n>  conv 3x3 c_last -> 1, BN(1)              (n: number of blocks)
  <task>.mlp.{0,2,4}       Linear F + a -> h1 -> h2 -> T_max            (F: feature_shape product;
                                                                         a = 2, 2, 4 a-priori inputs)
Convolutions and linear layers have biases: a weight (out, in[, k, k]) and a bias (out,).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: a-priori inputs of each task's MLP head (Table II): sector {min, max}, range {min, max}, both
APRIORI_INPUTS = {"angle": 2, "range": 2, "detection": 4}


@dataclass(frozen=True)
class NnblConfig:
    """Sizes of the NNBL networks (App. A-B): K antennas, T_max outputs, the N_theta x N_tau
    input map, and ``limited`` for the complexity-limited variant."""

    antennas: int = 64
    max_targets: int = 5
    n_theta: int = 320
    n_tau: int = 128
    limited: bool = False

    @property
    def precoder_hidden(self) -> int:
        return 4 if self.limited else 8 * self.antennas

    @property
    def first_channels(self) -> int:
        return 2 if self.limited else 8

    @property
    def block_channels(self) -> tuple[int, ...]:
        return (4, 8, 16) if self.limited else (16, 32, 64, 128, 256, 512)

    @property
    def block_strides(self) -> tuple[int, ...]:
        return (1, 2, 2) if self.limited else (1, 2, 2, 2, 2, 2)

    @property
    def pool(self) -> int:
        return 4 if self.limited else 2

    @property
    def mlp_hidden(self) -> tuple[int, int]:
        return (4, 4) if self.limited else (4 * self.antennas, 4 * self.antennas)

    @property
    def feature_shape(self) -> tuple[int, int]:
        """Size of the CNN output map (the paper's N_theta N_tau / 2^12 elements): maxpool
        (floor), then each stride s with padding 1 maps n -> (n - 1) // s + 1."""
        h, w = self.n_theta // self.pool, self.n_tau // self.pool
        for s in self.block_strides:
            h, w = (h - 1) // s + 1, (w - 1) // s + 1
        return h, w

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> "NnblConfig":
        if min(self.antennas, self.max_targets) < 1:
            raise ValueError("NNBL: antennas and max_targets must be >= 1")
        if self.n_theta < self.pool or self.n_tau < self.pool:
            raise ValueError(
                f"NNBL: the map ({self.n_theta} x {self.n_tau}) must be at least the {self.pool} x {self.pool} maxpool"
            )
        return self


def _linear(prefix: str, n_in: int, n_out: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (n_out, n_in), f"{prefix}.bias": (n_out,)}


def _conv(prefix: str, c_in: int, c_out: int, k: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (c_out, c_in, k, k), f"{prefix}.bias": (c_out,)}


def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{name}": (c,) for name in ("weight", "bias", "running_mean", "running_var")}


def _bottleneck(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    mid = max(c // 4, 1)
    return {
        **_conv(f"{prefix}.body.0", c, mid, 1),
        **_bn(f"{prefix}.body.1", mid),
        **_conv(f"{prefix}.body.3", mid, mid, 3),
        **_conv(f"{prefix}.body.4", mid, c, 1),
    }


def _task(prefix: str, cfg: NnblConfig, apriori: int) -> dict[str, tuple[int, ...]]:
    c0 = cfg.first_channels
    out = {**_conv(f"{prefix}.cnn.0", 1, c0, 5), **_bn(f"{prefix}.cnn.1", c0)}
    c = c0
    for i, c_out in enumerate(cfg.block_channels):
        block = f"{prefix}.cnn.{4 + i}"
        out.update(_conv(f"{block}.down", c, c_out, 3))
        out.update(_bottleneck(f"{block}.b1", c_out))
        out.update(_bottleneck(f"{block}.b2", c_out))
        c = c_out
    n = len(cfg.block_channels)
    out.update(_conv(f"{prefix}.cnn.{4 + n}", c, 1, 3))
    out.update(_bn(f"{prefix}.cnn.{5 + n}", 1))
    h, w = cfg.feature_shape
    h1, h2 = cfg.mlp_hidden
    out.update(_linear(f"{prefix}.mlp.0", h * w + apriori, h1))
    out.update(_linear(f"{prefix}.mlp.2", h1, h2))
    out.update(_linear(f"{prefix}.mlp.4", h2, cfg.max_targets))
    return out


def expected_shapes(cfg: NnblConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor of an "nn" weights file for ``cfg`` (module docstring)."""
    h, K = cfg.precoder_hidden, cfg.antennas
    out = {
        **_linear("precoder.net.0", 2, h),
        **_linear("precoder.net.2", h, h),
        **_linear("precoder.net.4", h, h),
        **_linear("precoder.net.6", h, 2 * K),
    }
    for task, apriori in APRIORI_INPUTS.items():
        out.update(_task(task, cfg, apriori))
    return out


__all__ = ["APRIORI_INPUTS", "NnblConfig", "expected_shapes"]
