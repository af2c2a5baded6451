"""Reproducible frame generation for a scenario: messages -> QPSK -> ISAC precoder ->
sensing echo (1) and MISO channel (4), with ground truth.

Every frame draws its randomness from its own generator, seeded by (run.seed, stream,
frame index), so frame i is the same whatever the batch size or the order in which
frames are produced (offline, streaming, or in parallel). Calibration and test frames use
different streams and never overlap."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import Scenario
from .model.array import ArrayModel, scenario_nominal_array, true_array
from .model.beamforming import transmit_beam
from .model.channels import comm_channel, comm_tap_variances, sensing_echo
from .model.ofdm import qpsk_map, random_messages
from .model.scene import Scene, random_scene, sensing_gain_variance

STREAMS = {"test": 1, "calibration": 2, "train": 3, "validation": 4}


def frame_rng(seed: int, stream: str, index: int) -> np.random.Generator:
    """The generator of frame ``index`` of ``stream`` ("test", "calibration", "train", "validation")."""
    if stream not in STREAMS:
        raise ValueError(f"stream must be one of {', '.join(STREAMS)}, got {stream!r}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), STREAMS[stream], int(index)]))


@dataclass
class Frames:
    """A batch of B frames: transmitted data, received signals and ground truth."""

    index: np.ndarray  # (B,) frame indices
    messages: np.ndarray  # (B, S) int64 in {0..3}
    symbols: np.ndarray  # (B, S) complex64, x(m)
    y_sensing: np.ndarray  # (B, K, S) complex64, Y_r of (1)
    y_comm: np.ndarray  # (B, S) complex64, y_c of (4)
    csi: np.ndarray  # (B, S) complex64, kappa
    comm_angle_rad: np.ndarray  # (B,)
    scenes: list[Scene] = field(default_factory=list)

    @property
    def true_counts(self) -> np.ndarray:
        return np.array([s.count for s in self.scenes], dtype=np.int64)

    def __len__(self) -> int:
        return int(self.index.shape[0])


def baseline_precoder(scenario: Scenario, array: ArrayModel | None = None) -> np.ndarray:
    """ISAC precoder (5) from LS beams (6)-(7) of ``array`` (default: the nominal array,
    i.e. the baseline transmitter of Sec. III-A), with the scenario's eta, phi and P."""
    tx = scenario.transmitter
    return transmit_beam(
        array or scenario_nominal_array(scenario),
        scenario.target_sector_rad,
        scenario.comm_sector_rad,
        tx["eta"],
        tx["phi_rad"],
        tx["power"],
        tx["beam_grid"],
        tx["beam_rcond"],
    )


class Simulator:
    """Generates frames of a scenario through its TRUE (possibly impaired) array.

    ``precoder`` (K,) defaults to the baseline transmitter; ``scene`` fixes the targets of
    every frame (default: random scenes with the paper's distribution)."""

    def __init__(
        self,
        scenario: Scenario,
        precoder: np.ndarray | None = None,
        array: ArrayModel | None = None,
        scene: Scene | None = None,
    ):
        self.scenario = scenario
        self.array = array or true_array(scenario)
        self.precoder = baseline_precoder(scenario) if precoder is None else np.asarray(precoder, np.complex64)
        if self.precoder.shape != (self.array.antennas,):
            raise ValueError(
                f"Simulator: precoder must have K = {self.array.antennas} entries, got shape {self.precoder.shape}"
            )
        self.fixed_scene = scene
        sc = scenario.scene
        self.gain_variance = sensing_gain_variance(sc["snr_sensing_db"], scenario.array["antennas"], sc["noise_power"])
        self.tap_variances = comm_tap_variances(
            sc["comm_taps"], sc["snr_comm_db"], scenario.ofdm["subcarriers"], sc["noise_power"]
        )

    def frame(self, index: int, stream: str = "test"):
        """One frame: (messages, symbols, scene, Y_r, y_c, kappa, phi)."""
        sc = self.scenario.scene
        S = self.scenario.ofdm["subcarriers"]
        rng = frame_rng(self.scenario.run["seed"], stream, index)
        messages = random_messages(rng, S)
        symbols = qpsk_map(messages)
        scene = self.fixed_scene or random_scene(
            rng, sc["max_targets"], self.scenario.target_sector_rad, self.scenario.range_interval_m, self.gain_variance
        )
        y_r = sensing_echo(
            self.array, self.precoder, symbols, scene, self.scenario.ofdm["spacing_hz"], sc["noise_power"], rng
        )
        phi = rng.uniform(*self.scenario.comm_sector_rad)
        y_c, kappa = comm_channel(self.array, self.precoder, symbols, phi, self.tap_variances, sc["noise_power"], rng)
        return messages, symbols, scene, y_r, y_c, kappa, phi

    def frames(self, start: int, count: int, stream: str = "test") -> Frames:
        """Frames ``start .. start+count-1`` of ``stream``."""
        parts = [self.frame(i, stream) for i in range(start, start + count)]
        return Frames(
            index=np.arange(start, start + count),
            messages=np.stack([p[0] for p in parts]),
            symbols=np.stack([p[1] for p in parts]),
            y_sensing=np.stack([p[3] for p in parts]),
            y_comm=np.stack([p[4] for p in parts]),
            csi=np.stack([p[5] for p in parts]),
            comm_angle_rad=np.array([p[6] for p in parts]),
            scenes=[p[2] for p in parts],
        )
