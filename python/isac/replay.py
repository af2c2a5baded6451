#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""Replay of a SigMF recording (``recording.py``, made by ``isac-sim --record``) through the
sensing chain, as a GNU Radio flowgraph built from a Scenario (``isac-sim --replay``):

    sigmf_source rx --Y_r--> reciprocal_filter (3) --Y~--> omp_receiver --detections--+
    sigmf_source tx --x-----/                                                         v
                    --m (one item per frame) -----------------------------------> ReplayScorer

The reciprocal filter and the receiver are the blocks isac-sim runs live (the scenario, the
method's array and loaded weights), so a recording replays to the live run's detections (same
method, receiver and threshold; tested). Frames with ground truth (the recording's annotations,
messages.Truth) are scored as the metrics block scores them (scoring.add_sensing_records: GOSPA
(17), p_md (20), p_fa (21), RMSEs); without annotations only the detections are reported.
Communication is not replayed (no comm signal is recorded)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pmt
from gnuradio import gr

from .blocks import omp_receiver, reciprocal_filter, sigmf_source
from .config import Scenario
from .messages import Detections, MessageError
from .model.domp import DEFAULT_TEMPERATURE
from .model.geometry import FrameGeometry
from .scoring import Scores, add_sensing_records


class ReplayScorer(gr.sync_block):
    """Stream in: one item per frame (the recorded messages m, int32 vlen S), the frame clock;
    message in ``detections`` (isac.omp_receiver). Item i is consumed only once frame i's
    detections have arrived, so the finite flowgraph ends after its last frame is scored (as
    the metrics block does with wait_for_messages). Frame i is then scored against ``truth[i]``
    when the recording has it, and ``on_frame(frame, truth or None, detections)`` is called."""

    def __init__(
        self, scenario: Scenario, truth: dict, on_frame: Callable[[int, object, Detections], None] | None = None
    ):
        n = FrameGeometry.of(scenario).symbol_items
        gr.sync_block.__init__(self, name="isac_replay_scorer", in_sig=[(np.int32, n)], out_sig=None)
        self.truth = truth
        self.scores = Scores.for_scenario(scenario)
        self.on_frame = on_frame
        self.detections: dict[int, Detections] = {}  # every frame's detections, kept for the caller
        self.skipped_frames = 0
        self.frames = 0
        self._lock = threading.Lock()
        self.message_port_register_in(pmt.intern("detections"))
        self.set_msg_handler(pmt.intern("detections"), self.handle_detections)

    def handle_detections(self, msg) -> None:
        try:
            det = Detections.from_pmt(msg)
        except (MessageError, ValueError, TypeError) as exc:
            self.logger.error(f"detections message ignored (not a detections message): {exc}")
            return
        with self._lock:
            self.detections[det.frame] = det

    def work(self, input_items, output_items):
        first = self.nitems_read(0)
        done, reports = 0, []
        with self._lock:
            for i in range(len(input_items[0])):
                det = self.detections.get(first + i)
                if det is None:
                    break
                truth = self.truth.get(first + i)
                if truth is not None:
                    if det.valid:
                        add_sensing_records(self.scores, [(truth, det)])
                    else:
                        self.skipped_frames += 1
                reports.append((first + i, truth, det))
                done += 1
            self.frames += done
        for report in reports:  # outside the lock: the callback may read summary()
            if self.on_frame is not None:
                self.on_frame(*report)
        if done == 0:
            time.sleep(0.001)  # waiting for the receiver; messages are handled between work calls
        return done

    def summary(self) -> dict:
        """Sensing scores of the annotated frames (p_md, p_fa, gospa, RMSEs; ``frames`` = frames
        scored), ``replayed`` (frames replayed) and ``skipped_frames`` (invalid input)."""
        with self._lock:
            out = self.scores.summary()
            out.update(replayed=self.frames, skipped_frames=self.skipped_frames)
        return out


class ReplayFlowgraph(gr.top_block):
    """The replay of the recording directory ``directory`` (``rx`` and ``tx`` SigMF recordings)
    through the reciprocal filter and the sensing receiver of ``scenario`` (K, S, f_c, Delta_f
    must match the recording: else BlockParameterError naming the key), ``method`` with
    ``weights``, ``receiver``, ``kernel``, ``temperature`` and ``threshold`` as in
    flowgraph.SimFlowgraph. ``frames`` > 0 replays at most that many frames.
    ``on_frame(frame, truth or None, detections)`` is called once per frame, in order."""

    def __init__(
        self,
        directory,
        scenario: Scenario,
        threshold: float,
        method: str = "baseline",
        weights=None,
        receiver: str = "omp",
        kernel: str | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        frames: int = 0,
        on_frame: Callable[[int, dict | None, dict], None] | None = None,
    ):
        gr.top_block.__init__(self, "isac_replay")
        directory = str(Path(directory))
        self.rx_source = sigmf_source(scenario, path=directory, kind="rx", frame_count=frames)
        self.tx_source = sigmf_source(scenario, path=directory, kind="tx", frame_count=frames)
        self.warnings = self.rx_source.warnings + self.tx_source.warnings
        if self.rx_source.frames != self.tx_source.frames:
            n = min(self.rx_source.frames, self.tx_source.frames)
            self.warnings.append(
                f"the rx recording has {self.rx_source.frames} frames and the tx recording "
                f"{self.tx_source.frames}: replaying the first {n}"
            )
            self.rx_source.frames = self.tx_source.frames = n
        self.frames = self.rx_source.frames
        self.annotated = self.rx_source.annotated
        self.info = self.rx_source.recording.info
        self.reciprocal = reciprocal_filter(scenario)
        self.receiver = omp_receiver(
            scenario,
            threshold=threshold,
            method=method,
            weights=weights,
            receiver=receiver,
            kernel=kernel or "",
            temperature=temperature,
        )
        self.scorer = ReplayScorer(scenario, self.rx_source.recording.truth, on_frame)
        self.connect((self.rx_source, 0), (self.reciprocal, 0))
        self.connect((self.tx_source, 0), (self.reciprocal, 1))
        self.connect(self.reciprocal, self.receiver)
        self.connect((self.tx_source, 1), self.scorer)
        self.msg_connect(self.receiver, "detections", self.scorer, "detections")

    def summary(self) -> dict:
        """The scorer's summary (scores of the annotated frames, frames replayed)."""
        return self.scorer.summary()

    def detections(self) -> list[Detections]:
        """The detections of every replayed frame, in frame order."""
        return [self.scorer.detections[f] for f in sorted(self.scorer.detections)]
