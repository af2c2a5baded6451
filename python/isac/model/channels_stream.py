"""The channels (1) and (4) driven by a transmitted array frame X = f x^T, for streaming.

A streaming transmitter hands the channel the K x S frame it radiates, X = f x^T (antenna k,
subcarrier s), not f and x separately (M such frames, one per OFDM symbol, for a frame of M
symbols: X (M, K, S)). Eq. (1) depends on f and x only through X:

    Y_r = 1/sqrt(S) sum_t psi_t a(theta_t) a(theta_t)^T X diag(rho(tau_t)) + W,

and so does the received signal of (4): y_c = beta (.) (a(phi)^T X)^T + n. Only the CSI
kappa = beta f^T a(phi) needs the precoder f itself (X fixes f only up to a complex scale).

:func:`channel_frame` draws one frame's randomness in the order of
``simulation.Simulator.frame`` (messages, scene, sensing noise, comm angle, taps, comm noise),
so that a channel fed with the Simulator's X reproduces the Simulator's frame from the same
generator. :class:`FrameBatch` holds many frames at once; :func:`channel_frames` fills it with
:func:`channel_frame` frame by frame, :func:`channel_frames_cpp` with the C++ twin
(``gnuradio.isac.FrameChannel``: the same draws from numpy's own distribution functions, the
echo (1) in C++) and the downlink (4) completed here in numpy, so that the CSI is computed as the
model computes it. Like the rest of ``model``, this imports neither GNU Radio nor torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .array import ArrayModel
from .channels import comm_frequency_response
from .doppler import doppler_hz, doppler_phases, time_domain_echo
from .grids import range_to_delay
from .ofdm import delay_vector, random_messages
from .scene import Scene, complex_normal, random_scene


def array_frame(precoder: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """Transmitted array frame X = f x^T: (K, S) for symbols (S,), or (B, K, S) for (B, S);
    complex64."""
    f = np.asarray(precoder, dtype=np.complex64).reshape(-1)
    x = np.asarray(symbols, dtype=np.complex64)
    return (f[:, None] * x[..., None, :]).astype(np.complex64)


def _frame(frame: np.ndarray, antennas: int, who: str) -> np.ndarray:
    X = np.asarray(frame, dtype=np.complex128)
    if X.ndim not in (2, 3) or X.shape[-2] != antennas:
        raise ValueError(f"{who}: X must be K x S (or M x K x S) with K = {antennas}, got shape {X.shape}")
    return X


@dataclass(frozen=True)
class Motion:
    """How the targets' motion enters a frame of M OFDM symbols (model/doppler.py): the symbol
    duration T_O = (1 + cp) / Delta_f (s), the carrier f_c (Hz), the cyclic-prefix fraction cp and
    whether the echo is simulated in time (``ici``: inter-carrier interference)."""

    symbol_duration_s: float
    carrier_hz: float
    cp_fraction: float = 0.0
    ici: bool = False

    @staticmethod
    def of(scenario) -> "Motion":
        o = scenario.ofdm
        return Motion(scenario.symbol_duration_s, scenario.get("array.carrier_hz"), o["cp_fraction"], o["ici"] == "on")


def sensing_echo_from_frame(
    array: ArrayModel,
    frame: np.ndarray,
    scene: Scene,
    spacing_hz: float,
    noise_power: float,
    rng: np.random.Generator | None,
    motion: Motion | None = None,
) -> np.ndarray:
    """Received sensing frame Y_r (K x S, complex64) of eq. (1) from the transmitted frame
    X (K x S): 1/sqrt(S) sum_t psi_t a_t a_t^T X diag(rho_t) + W, W ~ CN(0, N0).
    Equals ``channels.sensing_echo(array, f, x, ...)`` for X = f x^T (to rounding), and
    draws the noise the same way. ``rng=None`` gives the noiseless echo.

    A frame of M symbols X (M, K, S) with ``motion``: symbol m's echo turns by each target's
    Doppler phase exp(j 2 pi f_D,t m T_O) (doppler.doppler_phases), or, with ``motion.ici``, is
    simulated in time (doppler.time_domain_echo: ICI); returns Y_r (M, K, S)."""
    X = _frame(frame, array.antennas, "sensing_echo_from_frame")
    if X.ndim == 3 or motion is not None:
        y = _echo_symbols(array, X.reshape((-1,) + X.shape[-2:]), scene, spacing_hz, noise_power, rng, motion)
        return y.reshape(X.shape)
    K, S = X.shape
    y = np.zeros((K, S), dtype=np.complex128)
    if scene.count:
        a = array.steering(scene.angles_rad).astype(np.complex128)  # K x T
        rho = delay_vector(range_to_delay(scene.ranges_m), S, spacing_hz).astype(np.complex128)  # T x S
        y = (a * (scene.gains / np.sqrt(S))) @ ((a.T @ X) * rho)
    if rng is not None:
        y = y + complex_normal(rng, (K, S), noise_power)
    return y.astype(np.complex64)


def _echo_symbols(array, X, scene, spacing_hz, noise_power, rng, motion) -> np.ndarray:
    """Eq. (1) for each symbol of X (M, K, S) with the targets' Doppler (see sensing_echo_from_frame)."""
    if motion is None:
        if scene.moving:
            raise ValueError(
                "sensing_echo_from_frame: moving targets need the frame's motion (symbol duration, carrier)"
            )
        motion = Motion(1.0, 1.0)  # static targets: every Doppler phase is 1
    M, K, S = X.shape
    y = np.zeros((M, K, S), dtype=np.complex128)
    if scene.count:
        a = array.steering(scene.angles_rad).astype(np.complex128)  # K x T
        rho = delay_vector(range_to_delay(scene.ranges_m), S, spacing_hz).astype(np.complex128)  # T x S
        spectra = np.einsum("kt,mks->tms", a, X) * rho[:, None, :]  # (a_t^T X_m) (.) rho_t: T x M x S
        if motion.ici:
            fd = doppler_hz(scene.speeds_mps, motion.carrier_hz)
            spectra = np.stack(
                [
                    np.stack(
                        [
                            time_domain_echo(
                                spectra[t, m], fd[t], m, motion.symbol_duration_s, motion.cp_fraction, spacing_hz
                            )
                            for m in range(M)
                        ]
                    )
                    for t in range(scene.count)
                ]
            )
        else:
            spectra = (
                spectra * doppler_phases(scene.speeds_mps, M, motion.symbol_duration_s, motion.carrier_hz)[..., None]
            )
        y = np.einsum("kt,tms->mks", a * (scene.gains / np.sqrt(S)), spectra)
    if rng is not None:
        y = y + complex_normal(rng, (M, K, S), noise_power)
    return y.astype(np.complex64)


def comm_channel_from_frame(
    array: ArrayModel,
    frame: np.ndarray,
    precoder: np.ndarray | None,
    comm_angle_rad: float,
    tap_variances: np.ndarray,
    noise_power: float,
    rng: np.random.Generator,
    noiseless: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """MISO downlink (4) from the transmitted frame X: y_c = beta (.) (a(phi)^T X)^T + n,
    which is [x (.) beta] f^T a(phi) + n for X = f x^T. Returns (y_c, kappa), (S,) complex64,
    with kappa = beta f^T a(phi); kappa is NaN when ``precoder`` is None (unknown).
    Draws taps then noise, as ``channels.comm_channel``. A frame of M symbols X (M, K, S) goes
    through one channel: y_c and kappa (M, S)."""
    X = _frame(frame, array.antennas, "comm_channel_from_frame")
    S = X.shape[-1]
    taps = complex_normal(rng, len(tap_variances), 1.0) * np.sqrt(tap_variances)
    beta = comm_frequency_response(taps, S)
    a_phi = array.steering(np.array([comm_angle_rad]))[:, 0].astype(np.complex128)
    y = beta * np.einsum("k,...ks->...s", a_phi, X) if X.ndim == 3 else beta * (a_phi @ X)
    if precoder is None:
        kappa = np.full(S, np.nan + 1j * np.nan)
    else:
        f = np.asarray(precoder, dtype=np.complex128).reshape(-1)
        if f.shape[0] != array.antennas:
            raise ValueError(
                f"comm_channel_from_frame: precoder has {f.shape[0]} entries, array has K = {array.antennas}"
            )
        kappa = beta * (a_phi @ f)
    if not noiseless:
        y = y + complex_normal(rng, y.shape if X.ndim == 3 else S, noise_power)
    return y.astype(np.complex64), np.broadcast_to(kappa, y.shape).astype(np.complex64)


def channel_frame(
    rng: np.random.Generator,
    array: ArrayModel,
    frame: np.ndarray,
    precoder: np.ndarray | None,
    *,
    max_targets: int,
    sector_rad: tuple[float, float],
    range_m: tuple[float, float],
    gain_variance: float,
    comm_sector_rad: tuple[float, float],
    spacing_hz: float,
    noise_power: float,
    tap_variances: np.ndarray,
    scene: Scene | None = None,
    speed_mps: tuple[float, float] = (0.0, 0.0),
    motion: Motion | None = None,
):
    """One frame of both channels from X, with the draws in the order of
    ``simulation.Simulator.frame``: the messages (drawn by the transmitter there; drawn
    and discarded here to keep the order), the scene (unless ``scene`` fixes it), the
    sensing noise, the comm angle phi ~ U[comm sector], the taps and the comm noise.

    Returns (scene, Y_r (K x S), y_c (S,), kappa (S,), phi); for a frame of M symbols X
    (M, K, S) with ``motion``: Y_r (M, K, S), y_c and kappa (M, S)."""
    X = _frame(frame, array.antennas, "channel_frame")
    random_messages(rng, X.shape[0::2] if X.ndim == 3 else X.shape[1])
    if scene is None:
        scene = random_scene(rng, max_targets, sector_rad, range_m, gain_variance, speed_mps)
    y_r = sensing_echo_from_frame(array, X, scene, spacing_hz, noise_power, rng, motion)
    phi = rng.uniform(*comm_sector_rad)
    y_c, kappa = comm_channel_from_frame(array, X, precoder, phi, tap_variances, noise_power, rng)
    return scene, y_r, y_c, kappa, phi


@dataclass
class FrameBatch:
    """B frames of both channels. Scene arrays are padded to the largest count with zeros;
    ``counts[b]`` entries of row b are valid. ``valid[b]`` is False for a frame whose synthesis
    failed (its signals are NaN, its count 0)."""

    counts: np.ndarray  # (B,) int64, T per frame
    angles_rad: np.ndarray  # (B, T_pad)
    ranges_m: np.ndarray  # (B, T_pad)
    gains: np.ndarray  # (B, T_pad) complex128
    y_sensing: np.ndarray  # (B, K, S) complex64, Y_r of (1); (B, M, K, S) for M symbols
    y_comm: np.ndarray  # (B, S) complex64, y_c of (4); (B, M, S)
    csi: np.ndarray  # (B, S) complex64, kappa; (B, M, S)
    comm_angle_rad: np.ndarray  # (B,)
    valid: np.ndarray  # (B,) bool
    speeds_mps: np.ndarray | None = None  # (B, T_pad) radial speeds (m/s); None: static (zeros)

    def __post_init__(self) -> None:
        if self.speeds_mps is None:
            self.speeds_mps = np.zeros(self.angles_rad.shape)

    def __len__(self) -> int:
        return int(self.counts.shape[0])

    def scene(self, b: int) -> Scene:
        n = int(self.counts[b])
        return Scene(self.angles_rad[b, :n], self.ranges_m[b, :n], self.gains[b, :n], self.speeds_mps[b, :n])

    @staticmethod
    def empty(batch: int, antennas: int, subcarriers: int, slots: int, symbols: int = 1) -> "FrameBatch":
        """A batch of ``batch`` invalid frames (NaN signals, no targets), to be filled; frames of
        ``symbols`` OFDM symbols have the shapes (M, K, S) and (M, S)."""
        nan = np.complex64(complex(np.nan, np.nan))
        lead = (batch,) if symbols == 1 else (batch, symbols)
        return FrameBatch(
            np.zeros(batch, np.int64),
            np.zeros((batch, slots)),
            np.zeros((batch, slots)),
            np.zeros((batch, slots), np.complex128),
            np.full(lead + (antennas, subcarriers), nan, np.complex64),
            np.full(lead + (subcarriers,), nan, np.complex64),
            np.full(lead + (subcarriers,), nan, np.complex64),
            np.full(batch, np.nan),
            np.zeros(batch, bool),
            np.zeros((batch, slots)),
        )

    def put(self, b: int, scene: Scene, y_r, y_c, kappa, phi) -> None:
        """Row b from one frame's outputs (those of :func:`channel_frame`)."""
        n = scene.count
        if n > self.angles_rad.shape[1]:
            grow = n - self.angles_rad.shape[1]
            self.angles_rad = np.pad(self.angles_rad, ((0, 0), (0, grow)))
            self.ranges_m = np.pad(self.ranges_m, ((0, 0), (0, grow)))
            self.gains = np.pad(self.gains, ((0, 0), (0, grow)))
            self.speeds_mps = np.pad(self.speeds_mps, ((0, 0), (0, grow)))
        self.counts[b] = n
        self.angles_rad[b, :n], self.ranges_m[b, :n], self.gains[b, :n] = scene.angles_rad, scene.ranges_m, scene.gains
        self.speeds_mps[b, :n] = scene.speeds_mps
        self.y_sensing[b], self.y_comm[b], self.csi[b], self.comm_angle_rad[b] = y_r, y_c, kappa, phi
        self.valid[b] = True


def channel_frames(
    rng_of: Callable[[int], np.random.Generator],
    first: int,
    array: ArrayModel,
    frames: np.ndarray,
    precoder: np.ndarray | None,
    **params,
) -> FrameBatch:
    """Frames ``first .. first+B-1`` of both channels for the transmitted frames ``frames``
    (B, K, S), or (B, M, K, S) for frames of M symbols: :func:`channel_frame` on
    ``rng_of(first + b)`` for each b (``params``: its keyword arguments). The numpy reference of
    :func:`channel_frames_cpp` (one symbol per frame)."""
    X = np.asarray(frames)
    B, K, S = X.shape[0], X.shape[-2], X.shape[-1]
    M = X.shape[1] if X.ndim == 4 else 1
    out = FrameBatch.empty(B, K, S, params.get("max_targets", 0), M)
    for b in range(B):
        out.put(b, *channel_frame(rng_of(first + b), array, X[b], precoder, **params))
    return out


def comm_from_draws(
    array: ArrayModel,
    comm_angle_rad: np.ndarray,
    taps: np.ndarray,
    comm_signal: np.ndarray,
    comm_noise: np.ndarray,
    precoder: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The downlink (4) of B frames from their draws: beta = DFT of the taps (B, L) (as
    :func:`channels.comm_frequency_response`), y_c = beta (.) a(phi)^T X + n with
    ``comm_signal`` = a(phi)^T X (B, S) and ``comm_noise`` = n (B, S); kappa = beta f^T a(phi)
    (NaN without ``precoder``), computed per frame as :func:`comm_channel_from_frame` does.
    Returns (y_c, kappa), (B, S) complex64."""
    S = comm_signal.shape[-1]
    beta = np.fft.fft(np.asarray(taps), n=S, axis=-1) / np.sqrt(S)
    y = (beta * comm_signal + comm_noise).astype(np.complex64)
    if precoder is None:
        return y, np.full(y.shape, np.nan + 1j * np.nan, dtype=np.complex64)
    f = np.asarray(precoder, dtype=np.complex128).reshape(-1)
    a_phi = array.steering(np.asarray(comm_angle_rad, dtype=np.float64))  # K x B
    gain = np.array([a_phi[:, b].astype(np.complex128) @ f for b in range(a_phi.shape[1])], dtype=np.complex128)
    return y, (beta * gain[:, None]).astype(np.complex64)


def channel_frames_cpp(
    kernel,
    seed: int,
    stream: int,
    first: int,
    array: ArrayModel,
    frames: np.ndarray,
    precoder: np.ndarray | None,
    threads: int = 1,
    out: np.ndarray | None = None,
) -> FrameBatch:
    """:func:`channel_frames` with the C++ twin ``kernel`` (a ``gnuradio.isac.FrameChannel`` of
    the same array and parameters): the frames of SeedSequence([seed, stream, first + b]) (the
    generator of simulation.frame_rng; ``stream`` the stream's number), the scenes and noise
    bit-equal, the signals to float rounding, the CSI bit-equal (computed here). ``out``: a
    C-contiguous complex64 (B, K, S) array that receives Y_r (the batch's y_sensing is then ``out``)."""
    y_r, counts, angles, ranges, gains, phi, taps, noise, signal = kernel.run(
        np.ascontiguousarray(frames, dtype=np.complex64), int(seed), int(stream), int(first), int(threads), out
    )
    y_c, kappa = comm_from_draws(array, phi, taps, signal, noise, precoder)
    return FrameBatch(counts, angles, ranges, gains, y_r, y_c, kappa, phi, np.ones(len(counts), bool))
