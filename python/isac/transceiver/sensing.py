"""Sensing receivers on reciprocal-filtered frames Y~ (B, K, S) -> OmpResult.

  SensingReceiver    ``receiver="omp"``: Algorithm 1 on the sector dictionaries (8);
                     ``receiver="domp"``: the inference step of differentiable OMP (Sec. IV-B):
                     full-grid dictionary, sector-restricted argmax, softmax window of the
                     resolutions (16) with a temperature, off-grid estimates.
  NnSensingReceiver  the NNBL receiver networks (Appendix A), see ``transceiver.nn``.

The words: a **method** (baseline, perfect, impairment, dictionary, nn) says which transmitter
and which array the receiver assumes; a **receiver** (omp, domp) says which estimator runs on
that array; a **kernel** (cpp, numpy) says which implementation computes it (same results).
"""

from __future__ import annotations

import numpy as np

from ..config import Scenario
from ..model.array import ArrayModel
from ..model.dictionaries import domp_dictionaries, omp_dictionaries
from ..model.domp import DEFAULT_TEMPERATURE, DompResult, domp_inference, window_half_widths
from ..model.omp import OmpResult, omp

RECEIVERS = ("omp", "domp")
KERNELS = ("cpp", "numpy")


def cpp_kernels_available() -> bool:
    """True when the compiled kernels (OmpKernel, DompKernel) load."""
    try:
        from .. import DompKernel, OmpKernel  # noqa: F401
    except ImportError:
        return False
    return True


def default_kernel() -> str:
    """The kernel used when none is named, everywhere (apps, blocks, experiments): "cpp" when
    the C++ kernels are built (same results as numpy, 10-20x faster), else "numpy"."""
    return "cpp" if cpp_kernels_available() else "numpy"


def check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


class SensingReceiver:
    """The sensing estimator after reciprocal filtering, for the array the receiver assumes.
    ``receiver``: "omp" | "domp"; ``kernel``: "cpp" | "numpy" | None (default_kernel());
    ``temperature``: the dOMP softmax temperature (> 0). Calling it on Y~ (B, K, S) runs
    T_max iterations and returns an OmpResult (DompResult for domp)."""

    def __init__(
        self,
        scenario: Scenario,
        array: ArrayModel,
        receiver: str = "omp",
        kernel: str | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
    ):
        check_choice("receiver", receiver, RECEIVERS)
        kernel = default_kernel() if kernel is None else check_choice("kernel", kernel, KERNELS)
        if not (isinstance(temperature, (int, float)) and np.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
        if receiver == "domp" and not hasattr(array, "positions_m"):
            raise ValueError(
                "receiver 'domp' recomputes atoms off the grid: it needs an array with element "
                "positions (nominal, spacing vector), not a dictionary"
            )
        self.receiver, self.kernel, self.temperature = receiver, kernel, float(temperature)
        self.max_targets = scenario.scene["max_targets"]
        self.array = array
        self.dictionaries = (omp_dictionaries if receiver == "omp" else domp_dictionaries)(scenario, array)
        self.sector_rad = scenario.target_sector_rad
        self.wavelength_m = scenario.wavelength_m
        self.spacing_hz = scenario.ofdm["spacing_hz"]
        D = self.dictionaries
        if receiver == "domp":
            K, S = array.antennas, scenario.ofdm["subcarriers"]
            self.half_widths = window_half_widths(K, S, self.spacing_hz, D.angles_rad, D.delays_s)
        self._cpp = None
        if kernel == "cpp":
            from .. import DompKernel, OmpKernel  # the compiled module; ImportError names the reason

            self._cpp = (
                OmpKernel(D.phi_a, D.phi_d)
                if receiver == "omp"
                else DompKernel(
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
            )

    def __call__(self, y_tilde: np.ndarray) -> OmpResult:
        D, T = self.dictionaries, self.max_targets
        y = np.ascontiguousarray(y_tilde, dtype=np.complex64)
        if self.receiver == "omp":
            if self._cpp is None:
                return omp(y, D, T)
            ai, di, peaks, gains = self._cpp(y, T)
            return OmpResult(ai, di, D.angles_rad[ai], D.delays_s[di], peaks, gains)
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


__all__ = ["KERNELS", "RECEIVERS", "SensingReceiver", "cpp_kernels_available", "default_kernel"]
