"""The sensing receivers that run on a method's array: reciprocal-filtered frames Y~ (B, K, S)
-> an OmpResult of T_max iterations (model.omp), in a registry that a new receiver joins by
:func:`register` alone.

  omp   Algorithm 1 (Sec. III-B) on the sector dictionaries (8)
  domp  the inference step of differentiable OMP (Sec. IV-B): the full [-90, 90] deg angle grid
        shared with the precoder's LS synthesis, the argmax restricted to the a-priori sector,
        the softmax window of the resolutions (16) with a temperature, off-grid estimates

A receiver is a class: ``name``, ``summary``, ``kernels`` (the implementations it has; "cpp"
is the C++ kernels, "numpy" the reference model, with the same results), ``supports(array)``
(None when it can run on that array, else why not), and an instance built as
``Receiver(scenario, array, kernel, temperature)`` that is called on Y~. Its results carry
``peaks``: the map maxima of the T_max iterations, which the threshold delta of Algorithm 1
stops (``peaks = "probability"`` for a receiver whose peaks are detection probabilities, e.g.
NNBL's). The words: a **method** says which array the receiver assumes, a **receiver** which
estimator runs on it, a **kernel** which implementation computes it.
"""

from __future__ import annotations

import numpy as np

from ..config import Scenario
from ..model.array import ArrayModel
from ..model.dictionaries import domp_dictionaries, omp_dictionaries
from ..model.domp import DEFAULT_TEMPERATURE, DompResult, domp_inference, window_half_widths
from ..model.geometry import FrameGeometry
from ..model.impairments import check_domp
from ..model.omp import OmpResult, omp, omp_doppler

KERNELS = ("cpp", "numpy")


def cpp_kernels_available() -> bool:
    """True when the compiled kernels (OmpKernel, DompKernel) load."""
    try:
        from .. import DompKernel, OmpKernel  # noqa: F401
    except ImportError:
        return False
    return True


def _doppler_kernel_available() -> bool:
    """True when the compiled angle-delay-Doppler OMP kernel loads."""
    try:
        from .. import OmpDopplerKernel  # noqa: F401
    except ImportError:
        return False
    return True


def default_kernel(scenario=None) -> str:
    """The kernel used when none is named, everywhere (apps, blocks, experiments): "cpp" when
    the C++ kernels are built (same results as numpy, 10-20x faster), else "numpy"; for a
    ``scenario`` of M > 1 OFDM symbols, "cpp" when the angle-delay-Doppler kernel is built too."""
    if not cpp_kernels_available():
        return "numpy"
    if scenario is not None and FrameGeometry.of(scenario).symbols > 1 and not _doppler_kernel_available():
        return "numpy"
    return "cpp"


def check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


class Receiver:
    """Base of the sensing receivers (see the module docstring). Subclasses set ``name``,
    ``summary``, ``kernels``, implement ``estimate(y)`` and, when they need more than the
    array's steering vectors, ``supports``."""

    name: str = ""
    summary: str = ""
    kernels: tuple[str, ...] = ("numpy",)
    peaks: str = "map"  # "map": angle-delay map maxima; "probability": detection probabilities
    #: exactly equivariant under a power-of-two scale of Y~ (the same argmaxes; peaks x 4^e, gains
    #: x 2^e): a stream may rescale frames outside the single-precision range (stream.py)
    rescalable: bool = False
    #: several instances may run at once on worker threads
    parallel: bool = True
    #: it runs on frames of M > 1 OFDM symbols (and measures the targets' speeds)
    multi_symbol: bool = False

    @classmethod
    def supports(cls, array: ArrayModel) -> str | None:
        """None when the receiver can run on ``array``, else why not (a sentence naming the receiver)."""
        return None

    def __init__(
        self,
        scenario: Scenario,
        array: ArrayModel,
        kernel: str | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
    ):
        if kernel is None:
            kernel = default_kernel(scenario) if default_kernel(scenario) in self.kernels else self.kernels[-1]
        self.kernel = check_choice("kernel", kernel, self.kernels)
        if not (isinstance(temperature, (int, float)) and np.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
        problem = self.supports(array)
        if problem:
            raise ValueError(problem)
        self.receiver = self.name
        self.temperature = float(temperature)
        self.geometry = FrameGeometry.of(scenario)
        if self.geometry.symbols > 1 and not self.multi_symbol:
            multi = [n for n, r in _RECEIVERS.items() if r.multi_symbol]
            raise ValueError(
                f"receiver {self.name!r} runs on frames of one OFDM symbol, not ofdm.symbols = "
                f"{self.geometry.symbols}: use receiver {' or '.join(repr(n) for n in multi)}"
            )
        self.max_targets = scenario.scene["max_targets"]
        self.array = array

    def __call__(self, y_tilde: np.ndarray) -> OmpResult:
        y = np.ascontiguousarray(y_tilde, dtype=np.complex64)
        self.geometry.check_array(y, f"receiver {self.name!r}")
        return self.estimate(y if y.ndim == len(self.geometry.array_shape) + 1 else y[None])

    def estimate(self, y: np.ndarray) -> OmpResult:  # pragma: no cover - interface
        """T_max iterations on frames Y~ (B, *geometry.array_shape), complex64, C-contiguous."""
        raise NotImplementedError


class OmpReceiver(Receiver):
    name, summary = "omp", "Algorithm 1 on the sector dictionaries (8); over angle, delay and speed for M > 1 symbols"
    kernels = ("cpp", "numpy")
    rescalable = True
    multi_symbol = True

    def __init__(self, scenario, array, kernel=None, temperature=DEFAULT_TEMPERATURE):
        if kernel is None:  # the default, unless a subclass (a plug-in) does not have it
            kernel = default_kernel(scenario) if default_kernel(scenario) in self.kernels else self.kernels[-1]
        if kernel == "cpp" and FrameGeometry.of(scenario).symbols > 1 and not _doppler_kernel_available():
            raise ValueError(
                "kernel 'cpp': the C++ kernels of this build run frames of one OFDM symbol; with "
                "ofdm.symbols > 1 use kernel 'numpy'"
            )
        super().__init__(scenario, array, kernel, temperature)
        self.dictionaries = D = omp_dictionaries(scenario, array)
        self._cpp = None
        if self.kernel == "cpp" and D.doppler:
            from .. import OmpDopplerKernel  # the compiled module; ImportError names the reason

            self._cpp = OmpDopplerKernel(D.phi_a, D.phi_d, D.phi_v)
        elif self.kernel == "cpp":
            from .. import OmpKernel

            self._cpp = OmpKernel(D.phi_a, D.phi_d)

    def estimate(self, y):
        D, T = self.dictionaries, self.max_targets
        if self._cpp is None:
            return omp_doppler(y, D, T) if D.doppler else omp(y, D, T)
        if D.doppler:
            ai, di, vi, peaks, gains = self._cpp(y, T)
            return OmpResult(
                ai, di, D.angles_rad[ai], D.delays_s[di], peaks, gains, doppler_index=vi, speeds_mps=D.speeds_mps[vi]
            )
        ai, di, peaks, gains = self._cpp(y, T)
        return OmpResult(ai, di, D.angles_rad[ai], D.delays_s[di], peaks, gains)


class DompReceiver(Receiver):
    name = "domp"
    summary = "differentiable-OMP inference (Sec. IV-B): full grid, sector argmax, softmax window"
    kernels = ("cpp", "numpy")
    rescalable = True

    @classmethod
    def supports(cls, array):
        try:
            check_domp(array)  # its atoms come from element positions only
        except ValueError as exc:
            return str(exc)
        if not hasattr(array, "positions_m"):
            return (
                "receiver 'domp' recomputes atoms off the grid: it needs an array with element positions "
                "(nominal, spacing vector), not a dictionary"
            )
        return None

    def __init__(self, scenario, array, kernel=None, temperature=DEFAULT_TEMPERATURE):
        super().__init__(scenario, array, kernel, temperature)
        self.dictionaries = D = domp_dictionaries(scenario, array)
        self.sector_rad = scenario.target_sector_rad
        self.wavelength_m = scenario.wavelength_m
        self.spacing_hz = scenario.ofdm["spacing_hz"]
        self.half_widths = window_half_widths(
            array.antennas, self.geometry.subcarriers, self.spacing_hz, D.angles_rad, D.delays_s
        )
        self._cpp = None
        if self.kernel == "cpp":
            from .. import DompKernel

            self._cpp = DompKernel(
                D.phi_a,
                D.phi_d,
                D.angles_rad,
                D.delays_s,
                np.asarray(array.positions_m, np.float64),
                self.wavelength_m,
                self.spacing_hz,
                self.half_widths,
                self.temperature,
            )

    def estimate(self, y):
        D, T = self.dictionaries, self.max_targets
        if self._cpp is None:
            return domp_inference(
                y,
                D,
                self.array.positions_m,
                self.wavelength_m,
                self.spacing_hz,
                T,
                self.half_widths,
                self.temperature,
                sector_rad=self.sector_rad,
            )
        th, tau, peaks, gains, ai, di = self._cpp(y, T, sector_rad=np.asarray(self.sector_rad, np.float64))
        return DompResult(angle_index=ai, delay_index=di, angles_rad=th, delays_s=tau, peaks=peaks, gains=gains)


_RECEIVERS: dict[str, type[Receiver]] = {}


def register(receiver: type[Receiver]) -> type[Receiver]:
    """Add a receiver class (its ``name`` becomes a valid --receiver / block ``receiver``
    everywhere: isac-eval, isac-sim, the experiments, the receiver block)."""
    if not receiver.name:
        raise ValueError("a receiver needs a name")
    if not receiver.kernels or any(k not in KERNELS for k in receiver.kernels):
        raise ValueError(f"receiver {receiver.name!r}: kernels must be a non-empty subset of {KERNELS}")
    _RECEIVERS[receiver.name] = receiver
    return receiver


def receivers() -> tuple[str, ...]:
    """The registered receiver names."""
    return tuple(_RECEIVERS)


def get_receiver(name: str) -> type[Receiver]:
    if name not in _RECEIVERS:
        raise ValueError(f"receiver must be one of {', '.join(_RECEIVERS)}, got {name!r}")
    return _RECEIVERS[name]


for _r in (OmpReceiver, DompReceiver):
    register(_r)


__all__ = [
    "DompReceiver",
    "KERNELS",
    "OmpReceiver",
    "Receiver",
    "cpp_kernels_available",
    "default_kernel",
    "get_receiver",
    "receivers",
    "register",
]
