"""NNBL (Appendix A) deployed: the precoder MLP and the receiver networks of an
``isac-train --method nn`` weights file (gnuradio.isac.nn), behind the same interfaces as the
model-based methods. torch is imported here, and only when a method "nn" transceiver is built;
no training code is."""

from __future__ import annotations

import numpy as np

from ..config import SPEED_OF_LIGHT, Scenario
from ..model.geometry import FrameGeometry
from ..model.omp import OmpResult
from ..nn.schema import NnblConfig


def nnbl_config(weights) -> NnblConfig:
    """The NnblConfig (nn.schema: layer sizes, no torch) of "nn" weights."""
    import json

    return NnblConfig(**json.loads(weights.metadata["nnbl"]))


def networks(scenario: Scenario, weights):
    """The nn.networks.Nnbl networks of validated "nn" ``weights``, in eval mode. Built once per
    Weights object and numerology (cached on the object: every block and app of a process that
    shares the object shares the networks)."""
    key = (
        scenario.wavelength_m,
        scenario.ofdm["subcarriers"],
        scenario.ofdm["spacing_hz"],
        scenario.range_interval_m,
        scenario.scene["noise_power"],
    )
    cache = weights.__dict__.setdefault("_nnbl_networks", {})
    if key not in cache:
        from ..nn.networks import Nnbl, load_tensors

        net = Nnbl.for_scenario(scenario, nnbl_config(weights))
        load_tensors(net, weights.tensors)
        cache[key] = net.eval()
    return cache[key]


def nn_precoder(net, scenario: Scenario) -> np.ndarray:
    """The ISAC precoder (5) of the precoder MLP for the scenario's sectors, eta, phi and P:
    (K,) complex64."""
    import torch

    tx = scenario.transmitter
    (lo, hi), (c_lo, c_hi) = scenario.target_sector_rad, scenario.comm_sector_rad
    with torch.no_grad():
        f = net.precoders(torch.tensor([lo]), torch.tensor([hi]), c_lo, c_hi, tx["eta"], tx["phi_rad"], tx["power"])
    return f[0].numpy().astype(np.complex64)


class NnTransmitter:
    """The NNBL precoder MLP (Appendix A) as a transmitter (registry.Transmitter)."""

    def __init__(self, net):
        self.net = net

    def precoder(self, scenario: Scenario) -> np.ndarray:
        return nn_precoder(self.net, scenario)


class NnSensingReceiver:
    """NNBL receiver (Appendix A) on Y~ (B, K, S) -> OmpResult: ``peaks`` are the detection
    probabilities u^ sorted in decreasing order (so OmpResult.counts(delta) and
    metrics.calibrate_threshold count the u^ > delta), angles and delays the first T_max output
    slots (training pairs the first T slots with the T targets); indices and gains are zero.
    Its networks use torch's threads: it runs one estimation at a time (``parallel`` False)."""

    receiver = "nn"
    kernel = "torch"
    peaks = "probability"
    parallel = False

    def __init__(self, scenario: Scenario, net):
        import torch

        self.torch = torch
        self.net = net.eval()
        self.geometry = FrameGeometry.of(scenario)
        if self.geometry.symbols > 1:
            raise ValueError(
                f"method 'nn': the NNBL networks (Appendix A) take frames of one OFDM symbol, not "
                f"ofdm.symbols = {self.geometry.symbols}: use a model-based method (receiver 'omp')"
            )
        self.max_targets = scenario.scene["max_targets"]
        self.sector_rad = scenario.target_sector_rad
        self.array = None

    def __call__(self, y_tilde: np.ndarray) -> OmpResult:
        torch = self.torch
        y = np.ascontiguousarray(y_tilde, dtype=np.complex64)
        self.geometry.check_array(y, "receiver 'nn'")
        y = torch.as_tensor(y if y.ndim == 3 else y[None])
        B, T = y.shape[0], self.max_targets
        lo = torch.full((B,), self.sector_rad[0], dtype=torch.float64)
        hi = torch.full((B,), self.sector_rad[1], dtype=torch.float64)
        with torch.no_grad():
            out = self.net.sense(y, lo, hi)
        peaks = -np.sort(-out.probabilities.double().numpy(), axis=1)
        zeros = np.zeros((B, T), np.int64)
        return OmpResult(
            zeros,
            zeros.copy(),
            out.angles_rad.numpy(),
            2.0 * out.ranges_m.numpy() / SPEED_OF_LIGHT,
            peaks,
            np.zeros((B, T, T), np.complex64),
        )


__all__ = ["NnSensingReceiver", "NnTransmitter", "networks", "nn_precoder", "nnbl_config"]
