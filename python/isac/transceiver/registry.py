"""The method registry: a method is one class that owns everything about itself, and the only
place a method is defined. Blocks, apps, the offline evaluation, the experiments and the
trainer ask the registered class; none of them compares method names.

A :class:`Method` says

  * its arrays: ``receive_array`` (the array the sensing receiver assumes) and
    ``transmit_array`` (the array the LS precoder (6)-(7) is synthesised on; None: nominal), or
    its own ``transmitter`` / ``sensing_receiver`` when it is not an array (NNBL);
  * what it supports: ``receivers`` (None: every registered receiver that supports its array),
    ``has_array`` (an angle-delay map of its own), ``paper_receiver`` (the receiver the paper
    pairs it with), ``transmit_learned`` (its transmitter uses learned parameters);
  * its weights: ``learned`` (it needs a weights file of its own kind), ``validate_weights``
    (the tensors it must hold), ``weights_metadata`` (what it records), ``parameter_count``;
  * its training: ``trainer`` (the module that trains it, by name: the apps that train import
    it, this layer never does), ``train_flags`` (the isac-train options it takes), ``data_parallel``,
    ``limited_options`` (the complexity-limited variant of Sec. V-C), ``tiny_options`` and
    ``paper_options`` (the experiments' training sizes).

Adding a method is subclassing Method (or methods.LearnedArrayMethod for a method that learns an
array) and :func:`register`-ing an instance: it then runs in isac-eval, isac-sim, isac-train,
the experiments and the blocks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .. import weights as weights_io
from ..config import Scenario
from ..model.array import ArrayModel
from ..model.domp import DEFAULT_TEMPERATURE
from ..model.impairments import receiver_array
from ..simulation import baseline_precoder
from ..weights import Weights, WeightsError
from .sensing import get_receiver, receivers


class Transmitter:
    """The ISAC precoder (5) of a method: ``precoder(scenario)`` gives f (K,) complex64 for the
    scenario's sectors, eta, phi and P (the blocks recompute it when those change)."""

    def precoder(self, scenario: Scenario) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


class ArrayTransmitter(Transmitter):
    """LS beams (6)-(7) on ``array`` (None: the nominal array of the scenario, i.e. the baseline
    transmitter of Sec. III-A), mixed by (5). An array with its own angle grid (``grid_rad``: a
    learned dictionary) is synthesised on that grid."""

    def __init__(self, array: ArrayModel | None = None):
        self.array = array

    def precoder(self, scenario: Scenario) -> np.ndarray:
        grid = getattr(self.array, "grid_rad", None)
        if grid is not None:
            scenario = scenario.with_overrides({"transmitter.beam_grid": int(grid.shape[0])})
        return baseline_precoder(scenario, self.array)


class Method:
    """One method (see the module docstring). The defaults are those of a method that needs no
    weights and assumes an array at the receiver."""

    name: str = ""
    summary: str = ""
    learned: bool = False
    has_array: bool = True
    receivers: tuple[str, ...] | None = None
    paper_receiver: str = "omp"
    transmit_learned: bool = False
    # --- training ---
    #: the module that trains it (gnuradio.isac.trainer.for_method imports it): its
    #: training_options(method, profile, **flags) and train(scenario, options, out, **kwargs);
    #: None: the method does not train
    trainer: str | None = None
    train_flags: tuple[str, ...] = ()
    data_parallel: bool = True
    limited_options: Mapping[str, Any] | None = None
    #: what one of its training "steps" is (for messages)
    step_unit: str = "steps"

    # --- arrays -------------------------------------------------------------------------------
    def receive_array(self, scenario: Scenario, weights) -> ArrayModel:
        """The array the sensing receiver assumes."""
        raise NotImplementedError(f"method {self.name!r} has no array")

    def transmit_array(self, scenario: Scenario, weights) -> ArrayModel | None:
        """The array the LS precoder is synthesised on (None: the nominal array)."""
        return None

    def transmitter(self, scenario: Scenario, weights) -> Transmitter:
        return ArrayTransmitter(self.transmit_array(scenario, weights))

    def supported_receivers(self) -> tuple[str, ...]:
        return tuple(r for r in receivers() if self.receivers is None or r in self.receivers)

    def sensing_receiver(self, scenario: Scenario, weights, receiver: str, kernel: str | None, temperature: float):
        """The sensing receiver ``receiver`` on the method's array (an impaired array's atoms are
        matched at equal norms: model.impairments.receiver_array)."""
        if receiver not in self.supported_receivers():
            raise ValueError(
                f"method {self.name!r} runs receiver {' or '.join(self.supported_receivers())}, not {receiver!r}"
            )
        cls = get_receiver(receiver)
        return cls(scenario, receiver_array(self.receive_array(scenario, weights)), kernel, temperature)

    # --- weights ------------------------------------------------------------------------------
    def validate_weights(self, weights: Weights, scenario: Scenario | None) -> None:
        """Check the tensors a weights file of this method must hold (the common metadata rule,
        weights.check_scenario, has run); WeightsError naming the first problem."""

    def weights_metadata(self, scenario: Scenario, tensors, metadata: Mapping[str, Any] | None) -> dict[str, str]:
        """Metadata strings a weights file of this method records beyond weights.scenario_metadata
        (which this extends: keys given here win)."""
        return {}

    def angle_points(self, tensors, metadata: Mapping[str, Any] | None) -> int:
        """The points of the angle grid the weights were learned on (metadata ``angle_grid``)."""
        return int(np.asarray(tensors["angle_grid_rad"]).shape[0])

    def parameter_count(self, weights: Weights, scenario: Scenario) -> dict[str, int]:
        """Learnable parameters of loaded weights: {"real": n} or {"complex": n}."""
        return {"real": int(sum(np.asarray(t).size for t in weights.tensors.values()))}

    # --- training -----------------------------------------------------------------------------
    def training_report(self, summary: Mapping[str, Any], scenario: Scenario, options) -> list[str]:
        """The lines isac-train prints about a finished run (its ``train`` summary)."""
        return [f"trained {summary['steps']} steps in {summary['elapsed_s']:.1f} s"]

    def tiny_options(self, steps: int) -> dict[str, Any]:
        """Training flags of a plumbing-only run of about ``steps`` optimisation steps."""
        return {}

    def paper_options(self, batch: int, iterations: int) -> dict[str, Any]:
        """Training flags of a paper-size run (Sec. V-A): ``batch`` frames, ``iterations`` steps."""
        return {"batch": batch, "iterations": iterations}


_REGISTRY: dict[str, Method] = {}
#: the method every other one is compared with: the paper's system of Sec. III (nominal array)
REFERENCE_METHOD = "baseline"


def register(method: Method) -> Method:
    """Add ``method`` to the registry (its ``name`` becomes a valid --method everywhere)."""
    if not method.name:
        raise ValueError("a method needs a name")
    _REGISTRY[method.name] = method
    return method


def methods() -> tuple[str, ...]:
    """The registered method names."""
    return tuple(_REGISTRY)


def learned_methods() -> tuple[str, ...]:
    """The registered methods that need a weights file."""
    return tuple(name for name, m in _REGISTRY.items() if m.learned)


_UNCHECKED = object()


def get(name: str, weights=_UNCHECKED) -> Method:
    """The registered method ``name``; with ``weights`` (weights.Weights or None) checked against
    them: a learned method needs weights of its own kind, the others take none. ValueError says why."""
    if name not in _REGISTRY:
        raise ValueError(f"method must be one of {', '.join(_REGISTRY)}, got {name!r}")
    method = _REGISTRY[name]
    if weights is _UNCHECKED:
        return method
    if method.learned and weights is None:
        raise ValueError(f"method {name!r} needs a weights file (isac-train --method {name} --out W.safetensors)")
    if not method.learned and weights is not None:
        raise ValueError(f"method {name!r} does not use a weights file; the weights hold method {weights.method!r}")
    if weights is not None and weights.method != name:
        raise WeightsError(f"{weights.source}: holds weights of method {weights.method!r}, expected {name!r}")
    return method


# --- weights files -----------------------------------------------------------------------------------
def validate_weights(weights: Weights, scenario: Scenario | None = None) -> Weights:
    """The one validation of weights, everywhere: a registered learned method, the common rule
    (weights.check_scenario) and the method's own tensors. Returns ``weights``."""
    method = _REGISTRY.get(weights.method)
    if method is None or not method.learned:
        raise WeightsError(f"{weights.source}: method {weights.method!r} is not one of {', '.join(learned_methods())}")
    weights_io.check_scenario(weights, scenario)
    method.validate_weights(weights, scenario)
    return weights


def load_weights(
    path: str | os.PathLike, scenario: Scenario | None = None, method: str | None = None, other_array: bool = False
) -> Weights:
    """Read a weights file and validate it (against ``scenario`` when given; against the expected
    ``method`` when given). ``other_array``: deploy on an array other than the one learned (the
    scenario hash is not compared). WeightsError with a one-line reason. A file is read once per
    process: pass the Weights object on (blocks, flowgraphs, the transceiver layer take it)."""
    w = weights_io.read(path, other_array)
    if method is not None and w.method != method:
        raise WeightsError(f"{w.source}: holds weights of method {w.method!r}, expected {method!r}")
    return validate_weights(w, scenario)


def save_weights(
    path: str | os.PathLike,
    scenario: Scenario,
    method: str,
    tensors: Mapping[str, np.ndarray],
    steps: int,
    training: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Weights:
    """Validate and write the weights of ``method`` learned on ``scenario`` (atomically);
    ``metadata``: what the method records beyond the tensors (nn: {"nnbl": its sizes})."""
    if method not in _REGISTRY:
        raise WeightsError(f"weights: method must be one of {', '.join(learned_methods())}, got {method!r}")
    m = _REGISTRY[method]
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    try:
        points = m.angle_points(tensors, metadata)
    except KeyError as exc:
        raise WeightsError(f"weights: tensor {exc} is required") from None
    meta = weights_io.scenario_metadata(scenario, method, steps, points, training)
    meta.update(m.weights_metadata(scenario, tensors, metadata))
    weights = validate_weights(Weights(method, tensors, meta, os.fspath(path)), scenario)
    weights_io.write(path, weights)
    return weights


# --- transceivers --------------------------------------------------------------------------------------
@dataclass
class Transceiver:
    """The transmitter and the sensing receiver of one method on one scenario."""

    method: str
    transmitter: Transmitter
    receiver: object  # a receivers.Receiver, or NNBL's: Y~ (B, K, S) -> OmpResult

    @property
    def receiver_name(self) -> str:
        """The estimator that runs: "omp", "domp", "nn", ..."""
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
    """The sensing receiver of ``method``: ``receiver`` (omp, domp, or a registered one) on the
    method's array (ignored by nn), ``kernel`` "cpp" | "numpy" | None (the default: cpp when built)."""
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
    "Transceiver",
    "Transmitter",
    "build",
    "get",
    "learned_methods",
    "load_weights",
    "methods",
    "register",
    "save_weights",
    "sensing_receiver",
    "transmitter",
    "validate_weights",
]
