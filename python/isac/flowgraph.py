"""The streaming ISAC simulation as a GNU Radio flowgraph, built from a Scenario.

    message source -> precoder -> ULA channel -> reciprocal filter -> OMP receiver -> detections
                                         \\-> comm receiver -----------------> metrics <- truth

Block parameters come from the scenario (``block_kwargs``), so the flowgraph computes what
``evaluation`` computes offline on the same seeds (tested). Used by ``isac-sim``; the GRC
flowgraphs in ``apps/`` wire the same blocks."""
from __future__ import annotations

from typing import Callable

import numpy as np
from gnuradio import gr

from .blocks import (isac_comm_receiver, isac_message_source, isac_metrics, isac_omp_receiver, isac_precoder,
                     isac_reciprocal_filter, isac_ula_channel)
from .config import Scenario
from .model.array import true_array
from .model.domp import DEFAULT_TEMPERATURE
from .publish import Publisher


def block_kwargs(scenario: Scenario) -> dict[str, dict]:
    """Constructor arguments of each block for ``scenario`` (keys: precoder, channel, omp, metrics)."""
    a, o, s, tx, rx = scenario.array, scenario.ofdm, scenario.scene, scenario.transmitter, scenario.receiver
    K, S = a["antennas"], o["subcarriers"]
    return {
        "source": dict(S=S, seed=scenario.run["seed"]),
        "precoder": dict(K=K, S=S, fc=a["carrier_hz"], eta=tx["eta"], phi=tx["phi_rad"], power=tx["power"],
                         sensing_sector_deg=s["target_sector_deg"], comm_sector_deg=s["comm_sector_deg"],
                         beam_grid=tx["beam_grid"], beam_rcond=tx["beam_rcond"]),
        "channel": dict(K=K, S=S, fc=a["carrier_hz"], spacing_hz=o["spacing_hz"], spacing_std_m=a["spacing_std_m"],
                        impairment_seed=a["impairment_seed"], impairment=a["impairment"],
                        snr_sensing_db=s["snr_sensing_db"], snr_comm_db=s["snr_comm_db"], taps=s["comm_taps"],
                        target_sector_deg=s["target_sector_deg"], comm_sector_deg=s["comm_sector_deg"],
                        range_m=s["range_m"], max_targets=s["max_targets"], seed=scenario.run["seed"],
                        noise_power=s["noise_power"]),
        "omp": dict(K=K, S=S, fc=a["carrier_hz"], spacing_hz=o["spacing_hz"], sector_deg=s["target_sector_deg"],
                    range_m=s["range_m"], angle_grid=rx["angle_grid"], delay_grid=rx["delay_grid"],
                    max_targets=s["max_targets"], impairment=a["impairment"], beam_grid=tx["beam_grid"]),
        "metrics": dict(S=S, max_targets=s["max_targets"], gospa_c_m=rx["gospa_c_m"], gospa_p=rx["gospa_p"],
                        gospa_mu=rx["gospa_mu"]),
    }


class SimFlowgraph(gr.top_block):
    """The streaming simulation of ``frames`` test frames of ``scenario``.

    ``receiver``: "baseline" (nominal array), "perfect" (true spacings), a spacing vector (m),
    or "impairment" / "dictionary" with ``weights`` (the learned array at the transmitter and
    the receiver); ``mode``: "omp" or "domp" (with ``temperature``); ``kernel``: "cpp" or "numpy"; ``on_frame(frame, truth, detections, symbol_errors)`` is called once per scored frame;
    ``zmq_pmt`` publishes truth, detections and running metrics per frame as serialized PMTs
    (the wire format of gr-zeromq's pub_msg_sink) and ``zmq_json`` the same as JSON, each on
    its own bound endpoint (see gnuradio.isac.publish)."""

    def __init__(self, scenario: Scenario, frames: int, threshold: float, receiver="baseline", kernel: str = "cpp",
                 on_frame: Callable[[int, dict, dict, int], None] | None = None, zmq_pmt: str | None = None,
                 zmq_json: str | None = None, log_every: int = 0, mode: str = "omp",
                 temperature: float = DEFAULT_TEMPERATURE, weights: str | None = None):
        gr.top_block.__init__(self, "isac_sim")
        kw = block_kwargs(scenario)
        if isinstance(receiver, str):
            if receiver in ("baseline", "impairment", "dictionary"):
                array = "nominal"  # learned methods: the weights file replaces it
            elif receiver == "perfect":
                array = np.asarray(true_array(scenario).spacings_m)
            else:
                raise ValueError(f"receiver must be 'baseline', 'perfect', 'impairment', 'dictionary' or a spacing "
                                 f"vector, got {receiver!r}")
            if receiver in ("impairment", "dictionary") and not weights:
                raise ValueError(f"receiver {receiver!r} needs the weights file of isac-train")
        else:
            array = np.asarray(receiver, dtype=np.float64)
        K, S = scenario.array["antennas"], scenario.ofdm["subcarriers"]
        self.source = isac_message_source(frames=frames, **kw["source"])
        self.precoder = isac_precoder(weights=weights or "", **kw["precoder"])
        self.channel = isac_ula_channel(**kw["channel"])
        self.reciprocal = isac_reciprocal_filter(K, S)
        self.receiver = isac_omp_receiver(threshold=threshold, array=array, kernel=kernel, mode=mode,
                                          temperature=temperature, weights=weights or "", **kw["omp"])
        self.comm = isac_comm_receiver(S)
        self.metrics = isac_metrics(log_every=log_every, **kw["metrics"])
        self.connect((self.source, 1), self.precoder, self.channel)
        self.connect((self.channel, 0), (self.reciprocal, 0))
        self.connect((self.source, 1), (self.reciprocal, 1))
        self.connect(self.reciprocal, self.receiver)
        self.connect((self.channel, 1), (self.comm, 0))
        self.connect((self.channel, 2), (self.comm, 1))
        self.connect((self.source, 0), (self.metrics, 0))
        self.connect(self.comm, (self.metrics, 1))
        self.msg_connect(self.channel, "truth", self.metrics, "truth")
        self.msg_connect(self.receiver, "detections", self.metrics, "detections")
        self.on_frame = on_frame
        # Publication happens in the metrics block's per-frame callback, which runs before the
        # frame is consumed: nothing is lost when the flowgraph stops (message-only blocks may
        # drop their last queued messages at shutdown).
        self.publishers = [Publisher(ep, fmt) for ep, fmt in ((zmq_pmt, "pmt"), (zmq_json, "json")) if ep]
        self.metrics.on_frame = self._frame_done

    def _frame_done(self, frame: int, truth: dict, detections: dict, symbol_errors: int) -> None:
        for pub in self.publishers:
            pub.publish("truth", truth)
            pub.publish("detections", detections)
            pub.publish("metrics", self.metrics.summary())
        if self.on_frame is not None:
            self.on_frame(frame, truth, detections, symbol_errors)

    def close(self) -> None:
        """Close the ZeroMQ publishers (queued messages still leave, up to 2 s)."""
        for pub in self.publishers:
            pub.close()
        self.publishers = []

    def summary(self) -> dict:
        """Running metrics of the metrics block (p_md, p_fa, gospa, ser, RMSEs, frames)."""
        return self.metrics.summary()
