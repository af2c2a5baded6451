"""Reliability of the stream blocks (issue 11): a frame whose computation raises is flagged,
counted and skipped while the stream goes on; a failure that cannot be survived stops the
flowgraph with a message (and isac-sim exits non-zero); frames whose amplitudes overflow single
precision get the detections of the unscaled frame; blocks of swapped K and S (same K*S) are
refused with both blocks named. Every flowgraph runs under a timeout, so a hang fails the test."""

import importlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from gnuradio.isac import transceiver
from gnuradio.isac.blocks import comm_receiver, message_source, omp_receiver, precoder, reciprocal_filter, ula_channel
from gnuradio.isac.config import Scenario
from gnuradio.isac.flowgraph import FlowgraphError, SimFlowgraph
from gnuradio.isac.model.ofdm import ml_detect
from gnuradio.isac.model.reciprocal import reciprocal_filter as reciprocal_model
from gnuradio.isac.simulation import Simulator

K, S, N = 16, 64, 12
THRESHOLD = 2.0e4
BAD = 3  # the frame that fails


@pytest.fixture(scope="module")
def sc():
    return Scenario.default().with_overrides(
        {
            "array.antennas": K,
            "ofdm.subcarriers": S,
            "receiver.angle_grid": 90,
            "receiver.delay_grid": 50,
            "run.seed": 5,
        }
    )


@pytest.fixture(scope="module")
def frames(sc):
    return Simulator(sc).frames(0, N, "test")


def swapped(sc):
    """``sc`` with K and S exchanged: frames of the same length K*S."""
    return sc.with_overrides({"array.antennas": S, "ofdm.subcarriers": K, "scene.comm_taps": 4})


def run_with_timeout(tb, seconds=60.0):
    """tb.run() in a thread; fails the test when it has not returned after ``seconds`` (a hang).
    Returns the exception run() raised, or None."""
    raised = []

    def target():
        try:
            tb.run()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            raised.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        tb.stop()
        t.join(10)
        pytest.fail(f"the flowgraph still runs after {seconds:.0f} s: it hangs")
    return raised[0] if raised else None


def module(name):
    return importlib.import_module(f"gnuradio.isac.blocks.{name}")  # the module, not the block class


def flat(a):
    return np.asarray(a).reshape(-1).tolist()


def messages_of(debug):
    return [pmt.to_python(debug.get_message(i)) for i in range(debug.num_messages())]


# --- (1) a failing frame is flagged and the stream goes on --------------------------------
@pytest.mark.parametrize("kernel", ["cpp", "numpy"])
def test_channel_failure_flags_the_frame_and_the_flowgraph_finishes(sc, frames, monkeypatch, kernel):
    """MemoryError in the channel model for frame BAD: its truth is flagged invalid, the receiver
    skips its NaN frame, the metrics skip it, every other frame is the model's."""
    mod = importlib.import_module("gnuradio.isac.simulation")  # simulation.StreamChannel calls them

    def failing(real, first_arg, frames_arg):
        def call(*args, **kwargs):
            first, n = args[first_arg], len(args[frames_arg])
            if first <= BAD < first + n:
                raise MemoryError("simulated: no memory for the channel")
            return real(*args, **kwargs)

        return call

    # channel_frames_cpp(kernel, seed, stream, first, array, X, ...), channel_frames(rng_of, first, array, X, ...)
    monkeypatch.setattr(mod, "channel_frames_cpp", failing(mod.channel_frames_cpp, 3, 5))
    monkeypatch.setattr(mod, "channel_frames", failing(mod.channel_frames, 1, 3))
    seen = {}
    tb = SimFlowgraph(sc, N, THRESHOLD, kernel=kernel, on_frame=lambda f, t, d, e: seen.__setitem__(f, (t, d)))
    assert run_with_timeout(tb) is None
    assert sorted(seen) == list(range(N))
    truth, det = seen[BAD]
    assert truth.valid is False and truth.count == 0 and det.valid is False
    assert tb.channel.failed_frames == 1 and tb.receiver.invalid_frames == 1
    s = tb.summary()
    assert s["frames"] == N - 1 and s["skipped_frames"] == 1
    for i in set(range(N)) - {BAD}:
        assert seen[i][0].valid is True and seen[i][0].count == frames.scenes[i].count
        np.testing.assert_array_equal(seen[i][0].angle_deg, np.rad2deg(frames.scenes[i].angles_rad))


@pytest.mark.parametrize("threads", [1, 2])
def test_receiver_failure_flags_the_frame_and_goes_on(sc, frames, threads):
    """threads = 2: the pipelined path (chunks of frames on worker threads, consumed in order)."""
    y = reciprocal_model(frames.y_sensing, frames.symbols)
    rx = omp_receiver(sc, threshold=THRESHOLD, kernel="numpy")
    sensor = rx.sensor

    def failing(chunk):
        if any(np.array_equal(f, y[BAD]) for f in chunk):
            raise MemoryError("simulated: no memory for the map")
        return sensor(chunk)

    rx.sensing.receiver = failing
    rx.sensing._receivers = [failing]  # the second worker's receiver
    rx.set_threads(threads)
    tb = gr.top_block()
    debug = blocks.message_debug()
    tb.connect(blocks.vector_source_c(flat(y), False, K * S), rx)
    tb.msg_connect(rx, "detections", debug, "store")
    assert run_with_timeout(tb) is None
    got = messages_of(debug)
    assert [d["frame"] for d in got] == list(range(N))
    assert got[BAD]["valid"] is False and got[BAD]["count"] == 0
    assert rx.failed_frames == 1
    want = sensor(y)
    for i in set(range(N)) - {BAD}:
        assert got[i]["valid"] is True
        assert got[i]["count"] == want.counts(THRESHOLD)[i]
        np.testing.assert_allclose(got[i]["angle_deg"], np.rad2deg(want.angles_rad[i, : got[i]["count"]]))


def test_reciprocal_filter_and_comm_receiver_failures_flag_the_frame(sc, frames, monkeypatch):
    """The reciprocal filter's output of a failing frame is NaN (so the receiver skips it), the comm
    receiver's is message 0 tagged invalid_comm; both go on with the other frames."""
    y_r = frames.y_sensing.copy()
    y_r[BAD, 0, 0] = 12345.0  # marks the failing frame
    rf = reciprocal_filter(sc)
    real_filter = rf.filter

    def failing_filter(Y, x, out=None):
        if np.any(Y[:, 0, 0] == 12345.0):
            raise MemoryError("simulated")
        return real_filter(Y, x, out)

    rf.filter = failing_filter
    y_c = frames.y_comm.copy()
    y_c[BAD, 0] = 12345.0
    real_ml = module("comm_receiver").ml_detect

    def failing_ml(y, kappa):
        if np.any(np.asarray(y) == 12345.0):
            raise MemoryError("simulated")
        return real_ml(y, kappa)

    monkeypatch.setattr(module("comm_receiver"), "ml_detect", failing_ml)
    cr = comm_receiver(sc)
    tb = gr.top_block()
    out_rf, out_cr = blocks.vector_sink_c(K * S), blocks.vector_sink_i(S)
    tb.connect(blocks.vector_source_c(flat(y_r), False, K * S), (rf, 0))
    tb.connect(blocks.vector_source_c(flat(frames.symbols), False, S), (rf, 1))
    tb.connect(rf, out_rf)
    tb.connect(blocks.vector_source_c(flat(y_c), False, S), (cr, 0))
    tb.connect(blocks.vector_source_c(flat(frames.csi), False, S), (cr, 1))
    tb.connect(cr, out_cr)
    assert run_with_timeout(tb) is None
    got = np.reshape(out_rf.data(), (N, K, S))
    assert np.all(np.isnan(got[BAD]))
    want = reciprocal_model(frames.y_sensing, frames.symbols)
    keep = [i for i in range(N) if i != BAD]
    np.testing.assert_array_equal(got[keep], want[keep])
    assert rf.failed_frames == 1
    det = np.reshape(out_cr.data(), (N, S))
    assert not det[BAD].any() and cr.failed_frames == 1
    np.testing.assert_array_equal(det[keep], ml_detect(frames.y_comm, frames.csi)[keep])
    assert [t.offset for t in out_cr.tags() if pmt.symbol_to_string(t.key) == "invalid_comm"] == [BAD]


def test_map_stream_failure_gives_a_nan_map_and_goes_on(sc, frames):
    from gnuradio.isac.blocks import angle_delay_map_stream

    y = reciprocal_model(frames.y_sensing, frames.symbols)
    ms = angle_delay_map_stream(sc, map_points=(20, 10))
    real = ms.maps  # (angle-delay, range-velocity) maps: what work computes

    def failing(Y):
        if any(np.array_equal(f, y[BAD]) for f in Y):
            raise MemoryError("simulated")
        return real(Y)

    ms.maps = failing
    tb = gr.top_block()
    sink = blocks.vector_sink_f(ms.size)
    tb.connect(blocks.vector_source_c(flat(y), False, K * S), ms, sink)
    assert run_with_timeout(tb) is None
    got = np.reshape(sink.data(), (N, ms.size))
    assert np.all(np.isnan(got[BAD])) and ms.failed_frames == 1
    keep = [i for i in range(N) if i != BAD]
    np.testing.assert_array_equal(got[keep], real(y[keep])[0].reshape(len(keep), -1))


def test_message_source_failure_sends_message_zero_and_goes_on(sc, frames):
    src = message_source(sc, frame_count=N)
    real = src.messages

    def failing(first, count):
        if first <= BAD < first + count:
            raise MemoryError("simulated")
        return real(first, count)

    src.messages = failing
    tb = gr.top_block()
    sink = blocks.vector_sink_i(S)
    tb.connect((src, 0), sink)
    tb.connect((src, 1), blocks.null_sink(gr.sizeof_gr_complex * S))
    assert run_with_timeout(tb) is None
    m = np.reshape(sink.data(), (N, S))
    assert not m[BAD].any() and src.failed_frames == 1
    keep = [i for i in range(N) if i != BAD]
    np.testing.assert_array_equal(m[keep], frames.messages[keep])


# --- (1) a failure that cannot be survived stops the flowgraph ------------------------------
@pytest.mark.parametrize("threads", [None, 2])
def test_every_frame_failing_stops_the_flowgraph_with_the_message(sc, threads):
    frames = 48  # more than MAX_CONSECUTIVE_FAILURES
    tb = SimFlowgraph(sc, frames, THRESHOLD, kernel="numpy", threads=threads)

    def broken(y):
        raise MemoryError("simulated: the receiver cannot allocate its maps")

    tb.receiver.sensing.receiver = broken
    tb.receiver.sensing._receivers = [broken]
    exc = run_with_timeout(tb)
    assert isinstance(exc, FlowgraphError)
    assert "isac_omp_receiver" in str(exc) and "MemoryError: simulated" in str(exc)
    assert tb.receiver.fatal_error == str(exc)


def test_isac_sim_exits_nonzero_with_the_message(sc, tmp_path):
    """isac-sim as a user runs it, its receiver model raising on every frame (monkeypatched in the
    child process): a non-zero exit status and the reason on stderr, not a hang."""
    cfg = tmp_path / "s.toml"
    cfg.write_text(sc.to_toml())
    script = (
        "import sys\n"
        "from gnuradio.isac.transceiver import sensing\n"
        "def broken(self, y):\n"
        "    raise MemoryError('simulated: no memory for the map')\n"
        "sensing.OmpReceiver.estimate = broken\n"
        "from gnuradio.isac.cli.sim import main\n"
        f"sys.exit(main(['--config', {str(cfg)!r}, '--frames', '60', '--threshold', '2e4', '--quiet',\n"
        "                '--no-compare', '--no-progress', '--kernel', 'numpy', '--method', 'baseline']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 1
    assert "isac_omp_receiver" in proc.stderr and "MemoryError: simulated: no memory for the map" in proc.stderr
    assert "error: the flowgraph stopped:" in proc.stderr and "Traceback" not in proc.stderr  # one line, no traceback


class ForeignBlock(gr.sync_block):
    """A user's own block (not a gr-isac FrameBlock, so nothing guards its work): it passes frames
    through until its work meets frame BAD, then raises; GNU Radio ends its thread, and the blocks
    after it get no more frames."""

    def __init__(self, vlen):
        gr.sync_block.__init__(self, name="users_block", in_sig=[(np.complex64, vlen)], out_sig=[(np.complex64, vlen)])

    def work(self, input_items, output_items):
        n = len(input_items[0])
        if self.nitems_read(0) + n > BAD:
            raise RuntimeError("the user's block failed")
        output_items[0][:n] = input_items[0][:n]
        return n


def insert_foreign_block(tb, path):
    """A ForeignBlock between the channel and the reciprocal filter (``sensing``) or the comm
    receiver (``comm``) of a SimFlowgraph; returns it."""
    port, dst, vlen = (0, tb.reciprocal, K * S) if path == "sensing" else (1, tb.comm, S)
    foreign = ForeignBlock(vlen)
    tb.disconnect((tb.channel, port), (dst, 0))
    tb.connect((tb.channel, port), foreign, (dst, 0))
    return foreign


@pytest.mark.parametrize("path", ["sensing", "comm"])
def test_a_foreign_block_that_raises_stops_the_sim_flowgraph_naming_it(sc, path):
    """A block that is not ours raises in work inside the isac-sim chain: on the sensing path the
    detections stop, on the comm path the metrics block's stream input stops (its work is no
    longer called: it waited for ever). After the stall limit the flowgraph ends with one message
    that names the block that stopped delivering."""
    tb = SimFlowgraph(sc, 40, THRESHOLD, kernel="numpy", stall_limit_s=1.0)
    foreign = insert_foreign_block(tb, path)
    exc = run_with_timeout(tb)
    assert isinstance(exc, FlowgraphError), exc
    message = str(exc)
    assert "\n" not in message
    assert f"{foreign.alias()} stopped delivering: its input holds unread frames and its output is drained" in message
    assert tb.stopped_blocks() == [foreign] and tb.metrics.alias() in message
    wanted = "for its detections message" if path == "sensing" else "no frame has reached its stream inputs for 1 s"
    assert wanted in message


def test_isac_sim_ends_with_one_error_line_when_a_foreign_block_stops(sc, tmp_path):
    """isac-sim as a user runs it, with a user's block that raises on the comm path (inserted in
    the child process): exit status 1 after --stall-limit, one error line naming that block."""
    cfg = tmp_path / "s.toml"
    cfg.write_text(sc.to_toml())
    script = (
        "import sys\n"
        "sys.path.insert(0, {tests!r})\n"
        "from test_block_reliability import insert_foreign_block\n"
        "from gnuradio.isac import flowgraph\n"
        "build = flowgraph.SimFlowgraph.__init__\n"
        "def with_foreign_block(self, *a, **k):\n"
        "    build(self, *a, **k)\n"
        "    insert_foreign_block(self, 'comm')\n"
        "flowgraph.SimFlowgraph.__init__ = with_foreign_block\n"
        "from gnuradio.isac.cli.sim import main\n"
        "sys.exit(main(['--config', {cfg!r}, '--frames', '40', '--threshold', '2e4', '--quiet', '--no-compare',\n"
        "               '--no-progress', '--kernel', 'numpy', '--method', 'baseline', '--stall-limit', '1']))\n"
    ).format(tests=str(Path(__file__).parent), cfg=str(cfg))
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith("error: the flowgraph stopped: isac_metrics")
    assert "no frame has reached its stream inputs for 1 s" in errors[0]
    assert "users_block" in errors[0] and "stopped delivering" in errors[0]


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "1e400"])
def test_isac_sim_refuses_a_bad_stall_limit(value, capsys):
    from gnuradio.isac.cli.sim import main

    with pytest.raises(SystemExit) as exc:
        main(["--stall-limit", value, "--frames", "1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--stall-limit must be a finite number of seconds >= 0 (0 = wait for ever), got" in err


# --- (2) amplitudes beyond single precision --------------------------------------------------
@pytest.mark.parametrize("kernel, receiver", [("cpp", "omp"), ("numpy", "omp"), ("cpp", "domp")])
@pytest.mark.parametrize("scale", [1e17, 1e30, 1e-25])
def test_huge_and_tiny_frames_get_the_detections_of_the_unscaled_frame(sc, frames, kernel, receiver, scale):
    """|Y~| ~ 1e17 overflows |map|^2 in single precision (and 1e-25 underflows it): the receiver
    scales such a frame by a power of two, exactly, so its detections are those of the frame at
    the usual scale, with peaks and gains scaled back."""
    y = reciprocal_model(frames.y_sensing, frames.symbols)
    rx = omp_receiver(sc, threshold=THRESHOLD, kernel=kernel, receiver=receiver)
    ref = rx.process(0, y)
    rx2 = omp_receiver(sc, threshold=THRESHOLD * scale**2, kernel=kernel, receiver=receiver)
    big = (y.astype(np.complex128) * scale).astype(np.complex64)
    got = rx2.process(0, big)
    assert sum(d.count for d in ref) > 0
    for g, r in zip(got, ref):
        assert g.valid is True and g.count == r.count
        np.testing.assert_allclose(g.angle_deg, r.angle_deg, atol=1e-3)
        np.testing.assert_allclose(g.range_m, r.range_m, atol=1e-2)
        np.testing.assert_allclose(g.peak, r.peak * scale**2, rtol=1e-4)
        np.testing.assert_allclose(g.gain, r.gain * scale, rtol=1e-3)


def run_comm(sc, y, kappa, messages=None):
    """y_c, kappa (n, S) through isac.comm_receiver, into isac.metrics (stream only) when
    ``messages`` (the true m) are given; (detected messages, their invalid_comm tags, the blocks)."""
    tb = gr.top_block()
    cr = comm_receiver(sc)
    sink = blocks.vector_sink_i(S)
    tb.connect(blocks.vector_source_c(flat(y), False, S), (cr, 0))
    tb.connect(blocks.vector_source_c(flat(kappa), False, S), (cr, 1))
    tb.connect(cr, sink)
    met = None
    if messages is not None:
        from gnuradio.isac.blocks import metrics

        met = metrics(sc, wait_for_messages=False)
        tb.connect(blocks.vector_source_i(flat(messages), False, S), (met, 0))
        tb.connect(cr, (met, 1))
    assert run_with_timeout(tb) is None
    tags = [t.offset for t in sink.tags() if pmt.symbol_to_string(t.key) == "invalid_comm"]
    return np.reshape(sink.data(), (len(y), S)), tags, cr, met


@pytest.mark.parametrize("scale", [2.0**70, 2.0**-75, 1e30])
def test_huge_and_tiny_comm_frames_get_the_messages_of_the_unscaled_frame(sc, frames, scale):
    """|y_c|, |kappa| ~ 1e21 overflow |y - kappa x|^2 in single precision (and 2^-75 underflows
    it): every message came out 0 and the frame was not flagged. Each subcarrier is now detected
    on a power-of-two rescaled copy, exactly, so the messages are those of the unscaled frame."""
    y, kappa = frames.y_comm.astype(np.complex64), frames.csi.astype(np.complex64)
    want = ml_detect(y, kappa)
    assert np.count_nonzero(want != frames.messages) < want.size // 50  # SNR_c 20 dB: the right messages
    big_y = (y.astype(np.complex128) * scale).astype(np.complex64)
    big_kappa = (kappa.astype(np.complex128) * scale).astype(np.complex64)
    assert np.isfinite(big_y).all() and np.isfinite(big_kappa).all()
    got, tags, cr, _ = run_comm(sc, big_y, big_kappa)
    np.testing.assert_array_equal(got, want)
    assert tags == [] and cr.invalid_frames == 0


def test_comm_frames_without_csi_are_flagged_counted_and_not_scored(sc, frames):
    """kappa = 0 on a subcarrier (no CSI: every message is as likely) or NaN: the frame is
    flagged invalid_comm and counted, and the metrics block leaves it out of the SER (counted in
    skipped_comm_frames), even where its message-0 decisions happen to be right: frame 1 sends
    only message 0, which a frame of zero CSI detects "perfectly" (it was scored as good)."""
    y, kappa, m = frames.y_comm.copy(), frames.csi.copy(), frames.messages.copy()
    m[1] = 0
    kappa[1] = 0.0  # no CSI at all
    kappa[5, 7] = 0.0  # one subcarrier without CSI
    kappa[8, 3] = np.nan
    y[1] = 0.0
    got, tags, cr, met = run_comm(sc, y, kappa, m)
    assert tags == [1, 5, 8] and cr.invalid_frames == 3
    keep = [i for i in range(N) if i not in (1, 5, 8)]
    np.testing.assert_array_equal(got[keep], ml_detect(y[keep], kappa[keep]))
    assert not got[1].any()  # message 0 everywhere: "right" for this frame
    s = met.summary()
    assert s["comm_frames"] == N - 3 and s["skipped_comm_frames"] == 3
    assert s["ser"] == np.count_nonzero(got[keep] != m[keep]) / ((N - 3) * S)  # the good frames only


def test_map_stream_of_huge_frames_is_the_map_of_the_unscaled_frame(sc, frames):
    """|Y~| ~ 1e30 (finite): the map overflowed to non-finite values. The block computes it on a
    power-of-two rescaled copy (transceiver.stream's scales, the receiver's) and scales it back:
    the dB map is the unscaled frame's plus 20 log10(scale); a linear map beyond float32 is output
    as NaN, flagged and counted, never as finite numbers that are wrong."""
    from gnuradio.isac.blocks import angle_delay_map_stream

    y = reciprocal_model(frames.y_sensing[:4], frames.symbols[:4])
    scale = 2.0**100  # ~1.3e30, a power of two: the rescaled frame is exactly the unscaled one
    big = (y.astype(np.complex128) * scale).astype(np.complex64)
    assert np.isfinite(big).all()
    for db in (True, False):
        ms = angle_delay_map_stream(sc, map_points=(20, 10), db=db)
        tb = gr.top_block()
        sink = blocks.vector_sink_f(ms.size)
        tb.connect(blocks.vector_source_c(flat(np.concatenate([y, big])), False, K * S), ms, sink)
        assert run_with_timeout(tb) is None
        got = np.reshape(sink.data(), (8, ms.size))
        assert np.isfinite(got[:4]).all()
        if db:
            np.testing.assert_allclose(got[4:], got[:4] + 20.0 * np.log10(scale), atol=1e-3)
            assert ms.invalid_frames == 0
        else:  # |map|^2 ~ 1e60: not a float32
            assert np.isnan(got[4:]).all() and ms.invalid_frames == 4


# --- (3) K and S swapped with the same K*S ---------------------------------------------------
def test_swapped_k_and_s_are_refused_naming_both_blocks(sc, frames):
    """precoder (K=16, S=64) into a channel of K=64, S=16: both have 1024-element frames, so GNU
    Radio connects them; the frame_shape tag makes the channel refuse them."""
    tb = gr.top_block()
    pre = precoder(sc)
    ch = ula_channel(swapped(sc))
    tb.connect(blocks.vector_source_c(flat(frames.symbols), False, S), pre, ch)
    for port, size in ((0, K * S), (1, K), (2, K)):
        tb.connect((ch, port), blocks.null_sink(gr.sizeof_gr_complex * size))
    assert run_with_timeout(tb) is None
    assert ch.fatal_error is not None
    assert pre.alias() in ch.fatal_error and ch.alias() in ch.fatal_error
    assert "K = 16, S = 64" in ch.fatal_error and "K = 64, S = 16" in ch.fatal_error


def test_a_block_that_gives_up_stops_an_endless_grc_style_flowgraph(sc):
    """No handler (a GRC flowgraph): the block returns WORK_DONE, which GNU Radio passes on to the
    blocks around it, so an endless source does not keep the flowgraph running with a dead block."""
    tb = gr.top_block()
    src = message_source(sc, frame_count=0)  # endless
    pre = precoder(sc)
    ch = ula_channel(swapped(sc))
    tb.connect((src, 1), pre, ch)
    tb.connect((src, 0), blocks.null_sink(gr.sizeof_int * S))
    for port, size in ((0, K * S), (1, K), (2, K)):
        tb.connect((ch, port), blocks.null_sink(gr.sizeof_gr_complex * size))
    assert run_with_timeout(tb, 30) is None
    assert ch.fatal_error is not None and pre.alias() in ch.fatal_error


def test_swapped_k_and_s_between_filter_and_receiver_stop_isac_sim_flowgraph(sc, frames):
    tb = gr.top_block()
    rf = reciprocal_filter(sc)
    rx = omp_receiver(swapped(sc), threshold=THRESHOLD, kernel="numpy")
    tb.connect(blocks.vector_source_c(flat(frames.y_sensing), False, K * S), (rf, 0))
    tb.connect(blocks.vector_source_c(flat(frames.symbols), False, S), (rf, 1))
    tb.connect(rf, rx)
    stopped = []
    rx.on_fatal = lambda block, message: stopped.append(message)
    assert run_with_timeout(tb) is None
    assert stopped and rx.alias() in stopped[0] and rf.alias() in stopped[0]


def test_matching_shapes_run_and_tags_name_the_sender(sc, frames):
    tb = gr.top_block()
    pre = precoder(sc)
    sink = blocks.vector_sink_c(K * S)
    tb.connect(blocks.vector_source_c(flat(frames.symbols[:2]), False, S), pre, sink)
    assert run_with_timeout(tb) is None
    tags = [pmt.to_python(t.value) for t in sink.tags() if pmt.symbol_to_string(t.key) == "frame_shape"]
    assert tags == [{"block": pre.alias(), "S": S, "K": K, "M": 1}]


# --- threads ---------------------------------------------------------------------------------
def test_threads_do_not_change_the_results(sc):
    runs = []
    for threads in (1, 3):
        seen = {}
        tb = SimFlowgraph(
            sc, N, THRESHOLD, kernel="cpp", threads=threads, on_frame=lambda f, t, d, e: seen.__setitem__(f, (t, d, e))
        )
        assert run_with_timeout(tb) is None
        runs.append((seen, tb.summary()))
    (a, sa), (b, sb) = runs
    assert sorted(a) == sorted(b) == list(range(N))
    for i in range(N):
        for key in ("count", "angle_deg", "range_m", "peak", "gain"):
            np.testing.assert_array_equal(getattr(a[i][1], key), getattr(b[i][1], key))
        assert a[i][2] == b[i][2]
    assert json.dumps(sa, sort_keys=True) == json.dumps(sb, sort_keys=True)  # NaN (no speeds at M = 1) equals NaN
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        SimFlowgraph(sc, N, THRESHOLD, threads=0)


def test_isac_sim_threads_option(sc, tmp_path, capsys):
    from gnuradio.isac.cli import sim as isac_sim

    cfg = tmp_path / "s.toml"
    cfg.write_text(sc.to_toml())
    outs = []
    for threads in ("1", "2"):
        code = isac_sim.main(
            [
                "--config",
                str(cfg),
                "--frames",
                "6",
                "--threshold",
                "2e4",
                "--quiet",
                "--no-compare",
                "--no-progress",
                "--method",
                "baseline",
                "--threads",
                threads,
            ]
        )
        out = capsys.readouterr().out
        assert code == 0 and "frames/s)" in out
        outs.append(out.splitlines()[-1])  # the metrics line
    assert outs[0] == outs[1]
    with pytest.raises(SystemExit):
        isac_sim.main(["--threads", "0"])
    assert "--threads must be >= 1" in capsys.readouterr().err


def test_the_receivers_of_every_thread_are_the_same_estimator(sc):
    rx = omp_receiver(sc, threshold=THRESHOLD, kernel="cpp")
    rx.set_threads(3)
    workers = rx.sensing._workers(3)
    assert len(workers) == 3 and workers[0] is rx.sensor
    assert all(isinstance(w, transceiver.get_receiver("omp")) and w is not rx.sensor for w in workers[1:])
