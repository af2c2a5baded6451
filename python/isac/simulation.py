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
from .model.array import ArrayModel, PositionArray, scenario_nominal_array
from .model.beamforming import transmit_beam
from .model.channels import comm_channel, comm_tap_variances, sensing_echo
from .model.channels_stream import (
    FrameBatch,
    Motion,
    array_frame,
    channel_frames,
    channel_frames_cpp,
    comm_channel_from_frame,
    sensing_echo_from_frame,
)
from .model.geometry import FrameGeometry
from .model.impairments import true_array
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
    messages: np.ndarray  # (B, *symbol_shape) int64 in {0..3}: (B, S), or (B, M, S) for M symbols
    symbols: np.ndarray  # (B, *symbol_shape) complex64, x(m)
    y_sensing: np.ndarray  # (B, *array_shape) complex64, Y_r of (1): (B, K, S), or (B, M, K, S)
    y_comm: np.ndarray  # (B, *symbol_shape) complex64, y_c of (4)
    csi: np.ndarray  # (B, *symbol_shape) complex64, kappa
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
        """One frame: (messages, symbols, scene, Y_r, y_c, kappa, phi), shaped by the frame
        geometry (M symbols: messages, symbols, y_c, kappa (M, S) and Y_r (M, K, S)). A frame of
        one symbol without the time-domain ICI model is the paper's (1), drawn as it always was."""
        sc, o = self.scenario.scene, self.scenario.ofdm
        geometry = FrameGeometry.of(self.scenario)
        rng = frame_rng(self.scenario.run["seed"], stream, index)
        messages = random_messages(rng, geometry.symbol_shape)
        symbols = qpsk_map(messages)
        scene = self.fixed_scene or random_scene(
            rng,
            sc["max_targets"],
            self.scenario.target_sector_rad,
            self.scenario.range_interval_m,
            self.gain_variance,
            self.scenario.speed_interval_mps,
        )
        if geometry.symbols == 1 and o["ici"] == "off":
            y_r = sensing_echo(self.array, self.precoder, symbols, scene, o["spacing_hz"], sc["noise_power"], rng)
            phi = rng.uniform(*self.scenario.comm_sector_rad)
            y_c, kappa = comm_channel(
                self.array, self.precoder, symbols, phi, self.tap_variances, sc["noise_power"], rng
            )
            return messages, symbols, scene, y_r, y_c, kappa, phi
        # M symbols (or the time-domain ICI model): through X = f x_m^T, as the channel block computes
        # them (the same frames bit for bit)
        X = array_frame(self.precoder, symbols)
        y_r = sensing_echo_from_frame(
            self.array, X, scene, o["spacing_hz"], sc["noise_power"], rng, Motion.of(self.scenario)
        )
        phi = rng.uniform(*self.scenario.comm_sector_rad)
        y_c, kappa = comm_channel_from_frame(
            self.array, X, self.precoder, phi, self.tap_variances, sc["noise_power"], rng
        )
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


# --- streams: frames computed as a flowgraph produces them ---------------------------------------
def stream_messages(seed: int, stream: str, first: int, count: int, geometry: FrameGeometry) -> np.ndarray:
    """The messages m of frames ``first .. first+count-1`` of ``stream`` ((count, M S) int32: a
    frame's M symbols of S messages in a row), drawn as Simulator.frame draws them: by the C++ twin
    (``gnuradio.isac.frame_messages``: numpy's own generator and distribution code) when it is built,
    else by numpy (the same messages; tested)."""
    draw = _compiled("frame_messages")
    n = geometry.symbol_items
    if draw is not None:
        return draw(int(seed), STREAMS[stream], int(first), int(count), n)
    rows = [random_messages(frame_rng(seed, stream, first + i), n) for i in range(count)]
    return np.stack(rows).astype(np.int32).reshape(count, n) if rows else np.zeros((0, n), np.int32)


def _compiled(name: str):
    """A compiled twin of the numpy stream (``gnuradio.isac.<name>``), or None when the module was
    not built with numpy's libnpyrandom."""
    import gnuradio.isac as module

    try:
        twin, available = getattr(module, name), module.numpy_stream_available()
    except (ImportError, AttributeError):
        return None
    return twin if available else None


class StreamChannel:
    """The sensing echo (1) and the downlink (4) of a scenario's stream of frames, frame i drawn
    from ``frame_rng(run.seed, stream, i)`` in the order of :meth:`Simulator.frame`
    (model.channels_stream.channel_frame), for the transmitted array frames X of a streaming
    transmitter: what isac.ula_channel computes.

    The frames are computed by the C++ twin (``gnuradio.isac.FrameChannel``: the same draws from
    numpy's generator and distribution code, the echo in C++, the downlink completed by
    model.channels_stream.comm_from_draws) when it is built and the array is given by element
    positions, else by the numpy model frame by frame (arrays with element models). Both give the
    Simulator's scenes, noise, comm angles and CSI exactly and its signals to float rounding
    (tests/test_blocks_channels_stream.py). ``use_cpp`` says which runs; ``threads`` splits a
    call's frames (C++ only)."""

    def __init__(
        self,
        scenario: Scenario,
        array: ArrayModel | None = None,
        stream: str = "test",
        fixed_scene: Scene | None = None,
    ):
        if stream not in STREAMS:
            raise ValueError(f"stream must be one of {', '.join(STREAMS)}, got {stream!r}")
        self.scenario, self.stream = scenario, stream
        self.geometry = FrameGeometry.of(scenario)
        self.array = array if array is not None else true_array(scenario)
        sc = scenario.scene
        self.gain_variance = sensing_gain_variance(sc["snr_sensing_db"], self.geometry.antennas, sc["noise_power"])
        self.tap_variances = comm_tap_variances(
            sc["comm_taps"], sc["snr_comm_db"], self.geometry.subcarriers, sc["noise_power"]
        )
        self.fixed_scene = fixed_scene
        self.threads = 1
        self._cpp = self._compiled_channel()

    @property
    def use_cpp(self) -> bool:
        return self._cpp is not None

    def parameters(self) -> dict:
        """The keyword arguments of model.channels_stream.channel_frame."""
        sc = self.scenario
        return dict(
            max_targets=sc.scene["max_targets"],
            sector_rad=sc.target_sector_rad,
            range_m=sc.range_interval_m,
            gain_variance=self.gain_variance,
            comm_sector_rad=sc.comm_sector_rad,
            spacing_hz=sc.ofdm["spacing_hz"],
            noise_power=sc.scene["noise_power"],
            tap_variances=self.tap_variances,
            scene=self.fixed_scene,
            speed_mps=sc.speed_interval_mps,
            motion=Motion.of(sc) if self.moving else None,
        )

    @property
    def moving(self) -> bool:
        """Whether the frames need the motion model: M > 1 symbols, the time-domain ICI model, or
        targets that may move (drawn, or fixed with speeds; the C++ twin draws static one-symbol
        frames only)."""
        sc, fixed = self.scenario, self.fixed_scene
        return (
            self.geometry.symbols > 1
            or sc.ofdm["ici"] == "on"
            or sc.speed_interval_mps != (0.0, 0.0)
            or (fixed is not None and fixed.moving)
        )

    def _compiled_channel(self):
        FrameChannel = _compiled("FrameChannel")
        if FrameChannel is None or not isinstance(self.array, PositionArray) or self.moving:
            return None  # e.g. element models (model.impairments), moving targets: the numpy model runs
        p, fs = self.parameters(), self.fixed_scene
        return FrameChannel(
            self.array.positions_m,
            self.array.wavelength_m,
            p["spacing_hz"],
            self.geometry.subcarriers,
            p["max_targets"],
            p["sector_rad"],
            p["range_m"],
            p["gain_variance"],
            p["comm_sector_rad"],
            np.asarray(self.tap_variances, np.float64),
            p["noise_power"],
            *((fs.angles_rad, fs.ranges_m, fs.gains) if fs is not None else ()),
        )

    def frames(self, index: int, X: np.ndarray, precoder, out: np.ndarray | None = None) -> FrameBatch:
        """Frames ``index ..`` of the stream for the transmitted frames X (B, K, S) and the
        precoder f (None: kappa NaN); ``out`` (B, K, S) complex64, C-contiguous: where the C++
        twin writes Y_r."""
        seed = self.scenario.run["seed"]
        if self._cpp is not None:
            return channel_frames_cpp(
                self._cpp, seed, STREAMS[self.stream], index, self.array, X, precoder, self.threads, out
            )
        return channel_frames(
            lambda i: frame_rng(seed, self.stream, i), index, self.array, X, precoder, **self.parameters()
        )
