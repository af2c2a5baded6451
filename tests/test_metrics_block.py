"""The streaming metrics block (blocks/metrics.py): running statistics with no per-frame state
left behind over a long stream, the same metrics as scoring.Scores, and no silent wait on a
sensing message port that stopped delivering (not connected, or its sender failed): after the
stall limit the flowgraph ends with one line naming the port."""

from __future__ import annotations

import importlib
import threading

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr
from test_scoring import deep_size, random_frames

from gnuradio.isac import metrics
from gnuradio.isac.config import Scenario
from gnuradio.isac.flowgraph import SimFlowgraph
from gnuradio.isac.scoring import Scores

metrics_module = importlib.import_module("gnuradio.isac.blocks.metrics")  # the package's .metrics is the class
S, T_MAX = 8, 5
SC = Scenario.default().with_overrides({"ofdm.subcarriers": S, "scene.comm_taps": 1, "scene.max_targets": T_MAX})


class Feeder(gr.sync_block):
    """Stream in and out: the true messages m (vlen S), passed through; publishes frame i's
    ``truth`` and ``detections`` dicts (angles in degrees, ranges in m) as frame i passes, as
    ula_channel / omp_receiver do (the stream's buffers keep it a few frames ahead, as in a
    flowgraph)."""

    def __init__(self, frames):
        gr.sync_block.__init__(self, name="feeder", in_sig=[(np.int32, S)], out_sig=[(np.int32, S)])
        self.frames = frames
        for port in ("truth", "detections"):
            self.message_port_register_out(pmt.intern(port))

    def work(self, input_items, output_items):
        start, n = self.nitems_read(0), len(input_items[0])
        for i in range(n):
            ta, tr, ea, er = self.frames[start + i]
            for port, a, r in (("truth", ta, tr), ("detections", ea, er)):
                msg = {
                    "frame": start + i,
                    "count": len(a),
                    "angle_deg": [float(v) for v in np.rad2deg(a)],
                    "range_m": [float(v) for v in r],
                }
                self.message_port_pub(pmt.intern(port), pmt.to_pmt(msg))
        output_items[0][:] = input_items[0]
        return n


def run_with_timeout(tb, seconds=60.0) -> bool:
    """tb.run() in a thread; True when it ended within ``seconds`` (else it is stopped)."""
    done = threading.Event()
    thread = threading.Thread(target=lambda: (tb.run(), done.set()), daemon=True)
    thread.start()
    if not done.wait(seconds):
        tb.stop()
        tb.wait()
        return False
    return True


def stream_flowgraph(n, connect=("truth", "detections"), seed=3, ahead=False, **kw):
    """Metrics fed ``n`` random frames: streams m (through the Feeder), m^ (vlen S) and, on the
    ports in ``connect``, the Feeder's messages. ``ahead``: the Feeder is fed its own copy of m
    and is not held back by the metrics block (all its messages come at once). Returns (top
    block, metrics, frames, m, m^)."""
    rng = np.random.default_rng(seed)
    frames = list(random_frames(rng, n))
    m = rng.integers(0, 4, (n, S)).astype(np.int32)
    m_hat = np.where(rng.random((n, S)) < 0.1, (m + 1) % 4, m).astype(np.int32)
    tb = gr.top_block()
    met = metrics(SC, **kw)
    feeder = Feeder(frames)
    if ahead:
        tb.connect(blocks.vector_source_i(m.ravel().tolist(), False, S), feeder, blocks.null_sink(4 * S))
        tb.connect(blocks.vector_source_i(m.ravel().tolist(), False, S), (met, 0))
    else:
        feeder.set_max_output_buffer(128)  # frames in flight: well below MAX_PENDING
        tb.connect(blocks.vector_source_i(m.ravel().tolist(), False, S), feeder, (met, 0))
    tb.connect(blocks.vector_source_i(m_hat.ravel().tolist(), False, S), (met, 1))
    for port in connect:
        tb.msg_connect(feeder, port, met, port)
    tb.feeder = feeder  # a Python block must outlive this function while the flowgraph runs
    return tb, met, frames, m, m_hat


def test_long_stream_equals_scores_and_leaves_no_per_frame_state():
    """3000 frames: the running metrics equal scoring.Scores on the same frames, the pending
    tables are empty at the end, and the block's scores hold as many bytes as after 10 frames."""
    n = 3000
    tb, met, frames, m, m_hat = stream_flowgraph(n)
    assert run_with_timeout(tb)
    ref = Scores(T_MAX, 90.0, 2.0, 2.0)
    for ta, tr, ea, er in frames:
        ref.add_sensing(ta, tr, ea, er)
    ref.add_symbols(np.count_nonzero(m != m_hat), m.size)
    got, want = met.summary(), ref.summary()
    assert got["frames"] == n and got["comm_frames"] == n
    for key in ("p_md", "p_fa", "ser", "frames"):
        assert got[key] == want[key], key
    for key in ("gospa", "angle_rmse_deg", "range_rmse_m"):
        assert got[key] == pytest.approx(want[key], rel=1e-9), key
    assert not met._truth and not met._detections and not met._sensed and not met._unscored
    small = Scores(T_MAX, 90.0, 2.0, 2.0)
    for ta, tr, ea, er in frames[:10]:
        small.add_sensing(ta, tr, ea, er)
    small.add_symbols(1, S)
    assert deep_size(met.scores) == deep_size(small)


def test_dropped_messages_are_not_waited_for(monkeypatch):
    """A sender far ahead of the stream overflows the pending table (MAX_PENDING): the frames
    whose message was dropped are scored for SER only, and the flowgraph ends (it waited
    forever for them before)."""
    monkeypatch.setattr(metrics_module, "MAX_PENDING", 50)
    n = 600
    tb, met, frames, m, m_hat = stream_flowgraph(n, ahead=True)
    assert run_with_timeout(tb, 60.0), "the flowgraph did not end"
    s = met.summary()
    assert s["comm_frames"] == n and s["ser"] == np.count_nonzero(m != m_hat) / m.size
    assert met.dropped_messages > 0 and 0 < s["frames"] < n
    assert not met._sensed
    assert len(met._truth) <= 50 and len(met._detections) <= 50


@pytest.mark.parametrize(
    "connect, missing", [((), "truth and detections"), (("truth",), "detections"), (("detections",), "truth")]
)
def test_a_silent_sensing_port_stops_the_flowgraph_after_the_stall_limit(connect, missing):
    """wait_for_messages (the default) with a sensing port that never delivers (here: left
    unconnected): the flowgraph ends after stall_limit_s with one error line naming the port(s)
    (it waited forever before), through on_fatal as isac-sim's flowgraph has it."""
    n = 20
    tb, met, frames, m, m_hat = stream_flowgraph(n, connect, stall_limit_s=0.3)
    stopped = []
    met.on_fatal = lambda block, message: stopped.append(message)
    assert run_with_timeout(tb, 30.0), "the flowgraph did not end"
    assert stopped == [met.fatal_error]
    assert f"frame 0 has waited 0 s for its {missing} message" in met.fatal_error
    ports = " and ".join(f"'{p}'" for p in missing.split(" and "))
    assert f"message port{'s' if ' and ' in missing else ''} {ports} stopped delivering" in met.fatal_error


def test_connected_ports_are_waited_for():
    tb, met, *_ = stream_flowgraph(5)
    assert run_with_timeout(tb)
    assert met.summary()["frames"] == 5 and met.fatal_error is None


def test_stall_limit_zero_waits_for_ever():
    tb, met, *_ = stream_flowgraph(5, ("truth",), stall_limit_s=0.0)
    assert not run_with_timeout(tb, 1.5)  # waits for detections that never come
    assert met.fatal_error is None


def test_sim_flowgraph_leaves_no_pending_state():
    """The isac-sim flowgraph: after the run nothing per frame is left in the metrics block."""
    sc = Scenario.default().with_overrides(
        {
            "array.antennas": 8,
            "ofdm.subcarriers": 32,
            "receiver.angle_grid": 40,
            "receiver.delay_grid": 30,
            "run.seed": 2,
        }
    )
    published = []
    tb = SimFlowgraph(sc, 40, 1.0e4, on_frame=lambda *a: published.append(tb.summary()["frames"]))
    tb.run()
    met = tb.metrics
    assert met.summary()["frames"] == met.summary()["comm_frames"] == 40
    assert len(published) == 40 and published == sorted(published) and published[-1] == 40
    assert not met._truth and not met._detections and not met._sensed


def test_a_message_whose_angles_and_ranges_differ_in_length_is_refused(capfd):
    """Logged and ignored at arrival (it would otherwise fail the batch it is scored in): the
    frame is not scored, the next one is."""
    met = metrics(SC, wait_for_messages=False)
    good = {"frame": 0, "angle_deg": [1.0], "range_m": [50.0]}
    met.handle_truth(pmt.to_pmt({"frame": 0, "angle_deg": [1.0, 2.0], "range_m": [50.0]}))
    met.handle_detections(pmt.to_pmt(good))
    met.handle_truth(pmt.to_pmt({**good, "frame": 1}))
    met.handle_detections(pmt.to_pmt({**good, "frame": 1}))
    s = met.summary()
    assert s["frames"] == 1 and s["gospa"] == 0.0
    out = capfd.readouterr()
    assert "truth message ignored" in out.out + out.err
    assert "angle_deg and range_m differ in length (2, 1)" in out.out + out.err
