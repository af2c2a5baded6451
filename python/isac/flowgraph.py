"""The streaming ISAC simulation as a GNU Radio flowgraph, built from a Scenario.

    message source -> precoder -> ULA channel -> reciprocal filter -> OMP receiver -> detections
                                         \\-> comm receiver -----------------> metrics <- truth

Every block is built from the scenario (and its own parameters), the precoder and the receiver
with the method and the loaded weights of the transceiver layer, so the flowgraph computes what
``evaluation`` computes offline on the same seeds (tested). Used by ``isac-sim``; the GRC
flowgraphs in ``apps/`` wire the same blocks to an ISAC Scenario block."""

from __future__ import annotations

import os
import sys
import threading
from typing import Callable

from gnuradio import gr

from .blocks import comm_receiver, message_source, metrics, omp_receiver, precoder, reciprocal_filter, ula_channel
from .blocks.metrics import STALL_LIMIT_S
from .config import Scenario
from .model.domp import DEFAULT_TEMPERATURE
from .publish import Publisher

#: Python's GIL switch interval (s) while a SimFlowgraph runs (Python's default: 5 ms). A block
#: thread that returns from a C++ call (GIL released) waits for the GIL until the thread holding
#: it, e.g. the metrics block scoring a batch, gives it up; at 5 ms the receiver's worker threads
#: waited while a CPU sat idle. Measured with 2 CPUs (baseline OMP, 1000 frames, 3 runs each):
#: 5 ms 1078, 1 ms 1098, 0.2 ms 1139-1170, 0.1 ms 1211 frames/s; 1 CPU unchanged (724-728).
GIL_SWITCH_INTERVAL_S = 1e-4


class FlowgraphError(RuntimeError):
    """A block of the flowgraph failed in a way it cannot survive; the message names the block."""


def cpu_set(threads: int | None) -> list[int]:
    """The CPUs a flowgraph of ``threads`` threads runs on: the first ``threads`` of those this
    process may use (all of them when ``threads`` is None or at least their number)."""
    cpus = sorted(os.sched_getaffinity(0))
    return cpus if threads is None else cpus[: max(1, int(threads))]


class SimFlowgraph(gr.top_block):
    """The streaming simulation of ``frames`` test frames of ``scenario``.

    ``method`` (transceiver layer: baseline, perfect, impairment, dictionary, nn) with ``weights``
    (a loaded weights.Weights for learned methods, shared by the precoder and the receiver);
    ``receiver``: "omp" or "domp" (with ``temperature``); ``kernel``: "cpp", "numpy" or None
    (cpp when built); ``on_frame(frame, truth, detections, symbol_errors)`` (messages.Truth and
    messages.Detections; symbol_errors None when the comm receiver flagged the frame) is called once
    per scored frame; ``zmq_pmt`` publishes truth,
    detections and running metrics per frame as serialized PMTs (the wire format of gr-zeromq's
    pub_msg_sink) and ``zmq_json`` the same as JSON, each on its own bound endpoint (see
    gnuradio.isac.publish). ``record`` (a directory) records the received array frames Y_r with
    their truth and the symbols x as SigMF recordings ``record``/rx and ``record``/tx
    (isac.sigmf_sink, recording.py; replay.py plays them).

    ``threads``: the CPUs the flowgraph uses. GNU Radio runs every block in its own thread; with
    ``threads`` = N they start on the first N CPUs of the process (os.sched_setaffinity, inherited
    by the block threads), and the receiver estimates chunks of frames on N worker threads
    (``omp_receiver.set_threads``). None (default): no CPU pinning, one worker. Results do not
    depend on it.

    A block failure that cannot be survived (e.g. every frame raising, blocks of different
    frame geometries connected, or a block that stopped delivering its messages for
    ``stall_limit_s`` seconds, the metrics block's watch) stops the flowgraph: ``wait()`` /
    ``run()`` then raise FlowgraphError with the block's message (``fatal_error``)."""

    def __init__(
        self,
        scenario: Scenario,
        frames: int,
        threshold: float,
        method: str = "baseline",
        weights=None,
        receiver: str = "omp",
        kernel: str | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        on_frame: Callable[[int, dict, dict, int], None] | None = None,
        zmq_pmt: str | None = None,
        zmq_json: str | None = None,
        log_every: int = 0,
        record: str | None = None,
        threads: int | None = None,
        stall_limit_s: float = STALL_LIMIT_S,
    ):
        gr.top_block.__init__(self, "isac_sim")
        #: stream edges ((block, port), (block, port)) as connected, blocks of the user's included
        self.edges: list[tuple[tuple, tuple]] = []
        if threads is not None and (isinstance(threads, bool) or int(threads) != threads or threads < 1):
            raise ValueError(f"threads must be an integer >= 1 or None, got {threads!r}")
        self.threads = None if threads is None else int(threads)
        self._switch_interval: float | None = None  # Python's, while the flowgraph runs
        self.fatal_error = None
        self.source = message_source(scenario, frame_count=frames)
        self.precoder = precoder(scenario, method=method, weights=weights)
        self.channel = ula_channel(scenario)
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
        self.comm = comm_receiver(scenario)
        self.metrics = metrics(scenario, log_every=log_every, stall_limit_s=stall_limit_s)
        #: message port of the metrics block -> the block that sends to it (for its stall message)
        self.senders = {"truth": self.channel, "detections": self.receiver}
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
        # only the receiver splits its frames: the channel and the filter (C++, GIL released) run
        # beside its workers; splitting their work calls too made them wait for their slower half
        # (2 CPUs, baseline OMP, 1000 frames: 1078 -> 1141 frames/s without their split)
        self.receiver.set_threads(self.threads or 1)
        for block in (
            self.source,
            self.precoder,
            self.channel,
            self.reciprocal,
            self.receiver,
            self.comm,
            self.metrics,
        ):
            block.on_fatal = self._fatal
        self.on_frame = on_frame
        # Publication happens in the metrics block's per-frame callback, which runs before the
        # frame is consumed: nothing is lost when the flowgraph stops (message-only blocks may
        # drop their last queued messages at shutdown).
        self.publishers = [
            Publisher(ep, fmt, name=flag)
            for ep, fmt, flag in ((zmq_pmt, "pmt", "--zmq"), (zmq_json, "json", "--zmq-json"))
            if ep is not None
        ]
        self.metrics.on_frame = self._frame_done
        self.recorders = []
        if record:  # SigMF recordings of Y_r (the channel's truth tags become annotations) and x
            from .blocks import sigmf_sink

            for kind, port in (("rx", (self.channel, 0)), ("tx", (self.source, 1))):
                sink = sigmf_sink(scenario, path=f"{record}/{kind}", kind=kind)
                sink.metadata.update(
                    {
                        "isac:method": method,
                        "isac:receiver": self.receiver.receiver,
                        "isac:threshold": float(threshold),
                        "isac:seed": scenario.run["seed"],
                        "isac:weights": str(getattr(weights, "source", "")).rsplit("/", 1)[-1],
                    }
                )
                self.connect(port, sink)
                self.recorders.append(sink)

    # --- the stream edges, kept to name a block that stopped delivering ---------------------------
    @staticmethod
    def _endpoints(points) -> list[tuple]:
        return [p if isinstance(p, tuple) else (p, 0) for p in points]

    def connect(self, *points) -> None:
        gr.top_block.connect(self, *points)
        ends = self._endpoints(points)
        self.edges += list(zip(ends, ends[1:]))

    def disconnect(self, *points) -> None:
        gr.top_block.disconnect(self, *points)
        ends = self._endpoints(points)
        for edge in zip(ends, ends[1:]):
            if edge in self.edges:
                self.edges.remove(edge)

    def stopped_blocks(self) -> list:
        """The blocks with stream outputs that hold unread frames on every stream input while
        everything they wrote has been read: they stopped delivering (GNU Radio ended the thread of a block whose
        ``work`` raised, or it is stuck in ``work``). The blocks before such a block wait with full
        buffers, those after it with empty ones. Meaningful once the stream has stood still."""
        waiting: dict = {}  # block -> [input holds unread items]
        drained: dict = {}  # block -> [output fully read]
        for (src, out_port), (dst, in_port) in self.edges:
            try:
                written, read = src.nitems_written(out_port), dst.nitems_read(in_port)
            except (AttributeError, RuntimeError):  # a hierarchical block: no counters of its own
                continue
            waiting.setdefault(dst, []).append(written > read)
            drained.setdefault(src, []).append(written == read)
        return [b for b in waiting if b in drained and all(waiting[b]) and all(drained[b])]

    def start(self, max_noutput_items: int = 10000000) -> None:
        """Start the block threads on the CPUs of ``threads`` (they inherit this thread's CPU set),
        with Python's GIL switch interval at most GIL_SWITCH_INTERVAL_S until :meth:`wait` returns."""
        if self._switch_interval is None:
            self._switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(self._switch_interval, GIL_SWITCH_INTERVAL_S))
        cpus = cpu_set(self.threads)
        before = os.sched_getaffinity(0)
        if set(cpus) == before:
            gr.top_block.start(self, max_noutput_items)
            return
        os.sched_setaffinity(0, cpus)
        try:
            gr.top_block.start(self, max_noutput_items)
        finally:
            os.sched_setaffinity(0, before)

    def wait(self) -> None:
        """Wait for the flowgraph to finish; FlowgraphError when a block stopped it."""
        try:
            gr.top_block.wait(self)
        finally:
            if self._switch_interval is not None:
                sys.setswitchinterval(self._switch_interval)
                self._switch_interval = None
        if self.fatal_error is not None:
            raise FlowgraphError(self.fatal_error)

    def _fatal(self, block, message: str) -> None:
        """A block cannot go on (base.FrameBlock.stop_flowgraph): keep its message (the metrics
        block's stall: with the block that stopped delivering, found from the stream counters
        (:meth:`stopped_blocks`), else the block that feeds the silent port), stop the flowgraph (from
        another thread: the caller is one of the block threads that stop() interrupts)."""
        if self.fatal_error is None:
            stopped = self.stopped_blocks() if block is self.metrics else []
            if stopped:  # the stream stood still for stall_limit_s: name the block where it stopped
                names = ", ".join(b.alias() for b in stopped)
                its = (
                    "its input holds unread frames and its output is"
                    if len(stopped) == 1
                    else "their inputs hold unread frames and their outputs are"
                )
                message = (
                    f"{message}; {names} stopped delivering: {its} drained (did its work raise? GNU Radio ends the "
                    f"thread of such a block)"
                )
            elif block is self.metrics:
                feeders = [f"'{p}' comes from {b.alias()}" for p, b in self.senders.items() if f"'{p}'" in message]
                message = f"{message}; {', '.join(feeders)}" if feeders else message
            self.fatal_error = message
            threading.Thread(target=self.stop, name="isac_sim_stop", daemon=True).start()

    def _frame_done(self, frame: int, truth, detections, symbol_errors: int | None) -> None:
        for pub in self.publishers:
            pub.publish("truth", truth.to_dict())
            pub.publish("detections", detections.to_dict())
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

    @property
    def frames_run(self) -> int:
        """Frames that went through the whole flowgraph (scored by the metrics block): ``frames``
        after a complete run, fewer when it was stopped (Ctrl-C: GNU Radio's ``wait`` stops the
        flowgraph and returns) or failed."""
        return self.metrics.comm_frames + self.metrics.skipped_comm_frames
