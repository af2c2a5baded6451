"""The method registry: from (scenario, method, loaded weights) the transmitter and the sensing
receiver of every method. The only place a method is defined; blocks, apps, the offline
evaluation and the experiments all build their transceivers here.

  baseline    Sec. III: LS beams (6)-(7) of the nominal lambda/2 array at the transmitter; the
              receiver assumes the nominal array.
  perfect     "perfect knowledge" of Figs. 7-8: the receiver knows the true (impaired) array of
              the scenario; the transmitter is still the baseline of Sec. III-A.
  impairment  impairment learning (Sec. IV-A): transmitter AND receiver use the learned array
              (spacings, and the element gains / coupling of the models the scenario turns on;
              parameter sharing).
  dictionary  dictionary learning (Sec. IV-A): transmitter and receiver use the learned
              K x N_theta dictionary; the LS synthesis runs on its own grid, as in training.
  nn          NNBL (Appendix A): the precoder MLP and the receiver CNNs of the weights file.

To add a method: subclass :class:`Method` (override ``receive_array`` / ``transmit_array``, or
``transmitter`` / ``sensing_receiver`` for a method that is not an array), and :func:`register` it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import Scenario
from ..model.array import ArrayModel, DictionaryArray, scenario_nominal_array, true_array
from ..model.domp import DEFAULT_TEMPERATURE
from ..model.impairments import check_domp, receiver_array
from ..simulation import baseline_precoder
from .sensing import SensingReceiver


class Transmitter:
    """The ISAC precoder (5) of a method: ``precoder(scenario)`` gives f (K,) complex64 for the
    scenario's sectors, eta, phi and P (the blocks recompute it when those change)."""

    def precoder(self, scenario: Scenario) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


class ArrayTransmitter(Transmitter):
    """LS beams (6)-(7) on ``array`` (None: the nominal array of the scenario, i.e. the baseline
    transmitter of Sec. III-A), mixed by (5). A dictionary is synthesised on its own angle grid."""

    def __init__(self, array: ArrayModel | None = None):
        self.array = array

    def precoder(self, scenario: Scenario) -> np.ndarray:
        if isinstance(self.array, DictionaryArray):
            scenario = scenario.with_overrides({"transmitter.beam_grid": int(self.array.grid_rad.shape[0])})
        return baseline_precoder(scenario, self.array)


class NnTransmitter(Transmitter):
    """The NNBL precoder MLP (Appendix A)."""

    def __init__(self, net):
        self.net = net

    def precoder(self, scenario: Scenario) -> np.ndarray:
        from .nn import nn_precoder

        return nn_precoder(self.net, scenario)


class Method:
    """One method: its name, a one-line summary, and whether it needs weights (``learned``: the
    weights file's method must equal ``name``)."""

    name: str = ""
    summary: str = ""
    learned: bool = False

    def receive_array(self, scenario: Scenario, weights) -> ArrayModel:
        """The array the sensing receiver assumes."""
        raise NotImplementedError

    def transmit_array(self, scenario: Scenario, weights) -> ArrayModel | None:
        """The array the LS precoder is synthesised on (None: the nominal array)."""
        return None

    def transmitter(self, scenario: Scenario, weights) -> Transmitter:
        return ArrayTransmitter(self.transmit_array(scenario, weights))

    def sensing_receiver(self, scenario: Scenario, weights, receiver: str, kernel: str | None, temperature: float):
        array = self.receive_array(scenario, weights)
        if receiver == "domp":  # its atoms come from element positions only (model.impairments)
            check_domp(array)
        # an impaired array's atoms are matched at equal norms (impairments.ReceiverArray)
        return SensingReceiver(scenario, receiver_array(array), receiver, kernel, temperature)


class Baseline(Method):
    name, summary = "baseline", "nominal lambda/2 array at the transmitter and the receiver (Sec. III)"

    def receive_array(self, scenario, weights):
        return scenario_nominal_array(scenario)


class Perfect(Method):
    name, summary = "perfect", "the receiver knows the true array; baseline transmitter (Figs. 7-8)"

    def receive_array(self, scenario, weights):
        return true_array(scenario)


class LearnedArray(Method):
    """Impairment or dictionary learning: the learned array at both ends (parameter sharing)."""

    learned = True

    def receive_array(self, scenario, weights):
        return weights.array(scenario.wavelength_m)

    def transmit_array(self, scenario, weights):
        return weights.array(scenario.wavelength_m)


class Impairment(LearnedArray):
    name, summary = "impairment", "learned element spacings at the transmitter and the receiver (Sec. IV-A)"


class Dictionary(LearnedArray):
    name, summary = "dictionary", "learned K x N_theta dictionary at the transmitter and the receiver (Sec. IV-A)"


class Nn(Method):
    name, summary = "nn", "NNBL: precoder MLP and receiver CNNs (Appendix A)"
    learned = True

    def transmitter(self, scenario, weights):
        from .nn import networks

        return NnTransmitter(networks(scenario, weights))

    def sensing_receiver(self, scenario, weights, receiver, kernel, temperature):
        from .nn import NnSensingReceiver, networks

        return NnSensingReceiver(scenario, networks(scenario, weights))


_REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to the registry (its ``name`` becomes a valid --method everywhere)."""
    _REGISTRY[method.name] = method
    return method


for _m in (Baseline(), Perfect(), Impairment(), Dictionary(), Nn()):
    register(_m)


def methods() -> tuple[str, ...]:
    """The registered method names."""
    return tuple(_REGISTRY)


def learned_methods() -> tuple[str, ...]:
    """The registered methods that need a weights file."""
    return tuple(name for name, m in _REGISTRY.items() if m.learned)


def get(name: str, weights=None) -> Method:
    """The method ``name``, checked against ``weights`` (weights.Weights or None): a learned
    method needs weights of its own kind, the others take none. ValueError says why."""
    if name not in _REGISTRY:
        raise ValueError(f"method must be one of {', '.join(_REGISTRY)}, got {name!r}")
    method = _REGISTRY[name]
    if method.learned and weights is None:
        raise ValueError(f"method {name!r} needs a weights file (isac-train --method {name} --out W.safetensors)")
    if not method.learned and weights is not None:
        raise ValueError(f"method {name!r} does not use a weights file; the weights hold method {weights.method!r}")
    if weights is not None and weights.method != name:
        from ..weights import WeightsError

        raise WeightsError(f"{weights.source}: holds weights of method {weights.method!r}, expected {name!r}")
    return method


@dataclass
class Transceiver:
    """The transmitter and the sensing receiver of one method on one scenario."""

    method: str
    transmitter: Transmitter
    receiver: object  # SensingReceiver | NnSensingReceiver: Y~ (B, K, S) -> OmpResult

    @property
    def receiver_name(self) -> str:
        """ "omp", "domp" or "nn" (the estimator that runs)."""
        return self.receiver.receiver

    def precoder(self, scenario: Scenario) -> np.ndarray:
        return self.transmitter.precoder(scenario)


def transmitter(scenario: Scenario, method: str, weights=None) -> Transmitter:
    """The transmitter of ``method`` (weights: a loaded weights.Weights for learned methods)."""
    return get(method, weights).transmitter(scenario, weights)


def sensing_receiver(
    scenario: Scenario,
    method: str,
    weights=None,
    receiver: str = "omp",
    kernel: str | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
):
    """The sensing receiver of ``method``: ``receiver`` "omp" | "domp" on the method's array
    (ignored by nn), ``kernel`` "cpp" | "numpy" | None (the default: cpp when built)."""
    return get(method, weights).sensing_receiver(scenario, weights, receiver, kernel, temperature)


def build(
    scenario: Scenario,
    method: str,
    weights=None,
    receiver: str = "omp",
    kernel: str | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
) -> Transceiver:
    """Transmitter and sensing receiver of ``method`` on ``scenario``."""
    m = get(method, weights)
    return Transceiver(
        method, m.transmitter(scenario, weights), m.sensing_receiver(scenario, weights, receiver, kernel, temperature)
    )


__all__ = [
    "ArrayTransmitter",
    "Method",
    "NnTransmitter",
    "Transceiver",
    "Transmitter",
    "build",
    "get",
    "learned_methods",
    "methods",
    "register",
    "sensing_receiver",
    "transmitter",
]
