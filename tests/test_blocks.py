"""QA of the GNU Radio blocks (``from gnuradio import isac``): each block in a top_block
(vector_source -> block -> vector_sink) against the model on the same seeds, message outputs
read deterministically after tb.run(), the full chain against evaluation.sense, and the blocks of
every method (baseline, perfect, impairment, dictionary, nn) against the offline transceiver layer."""

import inspect

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr, isac

from gnuradio.isac import transceiver
from gnuradio.isac.blocks import (
    BlockParameterError,
    comm_receiver,
    message_source,
    metrics,
    omp_receiver,
    precoder,
    reciprocal_filter,
    ula_channel,
)
from gnuradio.isac.config import Scenario
from gnuradio.isac.evaluation import sense
from gnuradio.isac.messages import DetectionBatch, Truth, to_pmt
from gnuradio.isac.model.array import positions_example1, scenario_nominal_array
from gnuradio.isac.model.channels_stream import array_frame
from gnuradio.isac.model.dictionaries import omp_dictionaries
from gnuradio.isac.model.grids import full_angle_grid
from gnuradio.isac.model.impairments import true_array
from gnuradio.isac.model.ofdm import ml_detect
from gnuradio.isac.model.reciprocal import reciprocal_filter as reciprocal_filter_model
from gnuradio.isac.model.scene import Scene
from gnuradio.isac.scoring import Scores
from gnuradio.isac.simulation import Simulator, baseline_precoder
from gnuradio.isac.transceiver import load_weights, save_weights

K, S, SEED, N = 16, 64, 3, 12
#: a scenario of 4 subcarriers (and one comm tap: at most S) for the message-only tests
TINY = Scenario.default().with_overrides({"ofdm.subcarriers": 4, "scene.comm_taps": 1})
THRESHOLD = 2.0e4  # small scenario: noise-only map maxima are ~ K S N0 ln(Na Nd) ~ 1e4


@pytest.fixture(scope="module")
def sc():
    return Scenario.default().with_overrides(
        {
            "array.antennas": K,
            "ofdm.subcarriers": S,
            "receiver.angle_grid": 90,
            "receiver.delay_grid": 50,
            "run.seed": SEED,
        }
    )


@pytest.fixture(scope="module")
def frames(sc):
    return Simulator(sc).frames(0, N, "test")


def make_precoder(sc, **extra):
    return precoder(sc, **extra)


def make_channel(sc, **extra):
    return ula_channel(sc, **extra)


def make_receiver(sc, **extra):
    """The OMP receiver block of ``sc`` with the numpy kernel (the reference) unless told."""
    kw = dict(threshold=THRESHOLD, kernel="numpy")
    kw.update(extra)
    return omp_receiver(sc, **kw)


def offline_receiver(sc, array):
    """The offline sensing receiver (transceiver layer) of Algorithm 1 on ``array``, numpy kernel."""
    return transceiver.get_receiver("omp")(sc, array, "numpy")


def flat(a):
    return np.asarray(a).reshape(-1).tolist()


def messages_of(debug):
    return [pmt.to_python(debug.get_message(i)) for i in range(debug.num_messages())]


# --- message source ------------------------------------------------------------------------
def test_message_source_equals_simulator(sc, frames):
    tb = gr.top_block()
    src = message_source(sc, frame_count=N)
    m_sink, x_sink = blocks.vector_sink_i(S), blocks.vector_sink_c(S)
    tb.connect((src, 0), m_sink)
    tb.connect((src, 1), x_sink)
    tb.run()
    np.testing.assert_array_equal(np.reshape(m_sink.data(), (N, S)), frames.messages)
    np.testing.assert_array_equal(np.reshape(x_sink.data(), (N, S)), frames.symbols)


# --- precoder ------------------------------------------------------------------------------
def test_precoder_equals_model_and_tags_f(sc, frames):
    tb = gr.top_block()
    pre = make_precoder(sc)
    sink = blocks.vector_sink_c(K * S)
    tb.connect(blocks.vector_source_c(flat(frames.symbols), False, S), pre, sink)
    tb.run()
    f = baseline_precoder(sc)
    np.testing.assert_array_equal(pre.precoder(), f)
    np.testing.assert_array_equal(np.reshape(sink.data(), (N, K, S)), array_frame(f, frames.symbols))
    tags = [t for t in sink.tags() if pmt.symbol_to_string(t.key) == "precoder"]
    assert [t.offset for t in tags] == [0]
    np.testing.assert_array_equal(pmt.c32vector_elements(tags[0].value), f)


def test_precoder_callbacks_and_config_message(sc):
    pre = make_precoder(sc)
    pre.set_eta(1.0)
    np.testing.assert_allclose(pre.precoder(), baseline_precoder(sc.with_overrides({"transmitter.eta": 1.0})))
    pre.set_target_sector([-30.0, -10.0])
    ref = sc.with_overrides({"transmitter.eta": 1.0, "scene.target_sector_deg": [-30.0, -10.0]})
    np.testing.assert_allclose(pre.precoder(), baseline_precoder(ref))
    msg = pmt.to_pmt({"eta": 0.25, "target_sector_deg": [-35.0, -15.0]})
    pre.handle_config(msg)
    ref = sc.with_overrides({"transmitter.eta": 0.25, "scene.target_sector_deg": [-35.0, -15.0]})
    np.testing.assert_allclose(pre.precoder(), baseline_precoder(ref))
    # the old config key is unknown now: logged and ignored, f unchanged
    pre.handle_config(pmt.to_pmt({"eta": 0.75, "sector_deg": [-25.0, -5.0]}))
    np.testing.assert_allclose(pre.precoder(), baseline_precoder(ref))
    # invalid run-time values: callbacks raise, messages are logged and ignored
    with pytest.raises(BlockParameterError, match="isac_precoder: parameter 'eta'"):
        pre.set_eta(1.5)
    with pytest.raises(BlockParameterError, match="isac_precoder: parameter 'target_sector_deg'"):
        pre.set_target_sector([-10.0, -30.0])
    pre.handle_config(pmt.to_pmt({"eta": 2.0}))
    pre.handle_config(pmt.to_pmt({"bogus": 1.0}))
    pre.handle_config(pmt.intern("not a dict"))
    np.testing.assert_allclose(pre.precoder(), baseline_precoder(ref))


def test_precoder_change_is_tagged_in_stream(sc, frames):
    """A config message posted while running: the new f is used and tagged from then on."""
    pre = make_precoder(sc)
    tb = gr.top_block()
    sink = blocks.vector_sink_c(K * S)
    tb.connect(blocks.vector_source_c(flat(frames.symbols[:2]), False, S), pre, sink)
    tb.run()
    pre.set_eta(0.9)
    f2 = pre.precoder()
    tb2 = gr.top_block()
    sink2 = blocks.vector_sink_c(K * S)
    tb2.connect(blocks.vector_source_c(flat(frames.symbols[2:4]), False, S), pre, sink2)
    tb2.run()
    tags = [t for t in sink2.tags() if pmt.symbol_to_string(t.key) == "precoder"]
    assert len(tags) == 1
    np.testing.assert_array_equal(pmt.c32vector_elements(tags[0].value), f2)
    np.testing.assert_array_equal(np.reshape(sink2.data(), (2, K, S)), array_frame(f2, frames.symbols[2:4]))


# --- channel -------------------------------------------------------------------------------
def run_channel(sc, symbols, scene=None, **extra):
    tb = gr.top_block()
    pre = make_precoder(sc)
    kw = dict(extra)
    if scene is not None:
        kw.update(fixed_angles_deg=np.rad2deg(scene.angles_rad), fixed_ranges_m=scene.ranges_m, fixed_gains=scene.gains)
    ch = make_channel(sc, **kw)
    sinks = [blocks.vector_sink_c(K * S), blocks.vector_sink_c(S), blocks.vector_sink_c(S)]
    debug = blocks.message_debug()
    tb.connect(blocks.vector_source_c(flat(symbols), False, S), pre, ch)
    for i, s in enumerate(sinks):
        tb.connect((ch, i), s)
    tb.msg_connect(ch, "truth", debug, "store")
    tb.run()
    n = len(symbols)
    return (
        np.reshape(sinks[0].data(), (n, K, S)),
        np.reshape(sinks[1].data(), (n, S)),
        np.reshape(sinks[2].data(), (n, S)),
        messages_of(debug),
        sinks[0].tags(),
    )


def test_channel_reproduces_simulator_frames(sc, frames):
    y_r, y_c, kappa, truth, tags = run_channel(sc, frames.symbols)
    # randomness drawn in Simulator order: scenes and CSI bit-exact, signals to float rounding
    np.testing.assert_array_equal(kappa, frames.csi)
    np.testing.assert_allclose(y_r, frames.y_sensing, rtol=0, atol=1e-4)
    np.testing.assert_allclose(y_c, frames.y_comm, rtol=0, atol=1e-4 * np.abs(frames.y_comm).max())
    assert [t["frame"] for t in truth] == list(range(N))
    assert [t["sim_frame"] for t in truth] == list(range(N))
    for t, scene, phi in zip(truth, frames.scenes, frames.comm_angle_rad):
        assert t["count"] == scene.count
        np.testing.assert_array_equal(t["angle_deg"], np.rad2deg(scene.angles_rad))
        np.testing.assert_array_equal(t["range_m"], scene.ranges_m)
        assert t["comm_angle_deg"] == np.rad2deg(phi)
    truth_tags = [t for t in tags if pmt.symbol_to_string(t.key) == "truth"]
    assert [t.offset for t in truth_tags] == list(range(N))
    assert pmt.to_python(truth_tags[4].value)["count"] == frames.scenes[4].count


def test_channel_fixed_targets_match_simulator_scene(sc):
    scene = Scene(np.deg2rad([-35.0, -25.0]), [40.0, 150.0], [2.0 + 1j, -1.5j])
    ref = Simulator(sc, scene=scene).frames(0, 4, "test")
    y_r, _, kappa, truth, _ = run_channel(sc, ref.symbols, scene=scene)
    np.testing.assert_allclose(y_r, ref.y_sensing, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(kappa, ref.csi)
    assert all(t["count"] == 2 for t in truth)
    np.testing.assert_allclose(truth[0]["angle_deg"], [-35.0, -25.0])


def test_channel_without_precoder_gives_nan_csi(sc, frames):
    tb = gr.top_block()
    ch = make_channel(sc)
    sinks = [blocks.vector_sink_c(K * S), blocks.vector_sink_c(S), blocks.vector_sink_c(S)]
    X = array_frame(baseline_precoder(sc), frames.symbols[:2])
    tb.connect(blocks.vector_source_c(flat(X), False, K * S), ch)
    for i, s in enumerate(sinks):
        tb.connect((ch, i), s)
    tb.run()
    assert np.all(np.isnan(sinks[2].data()))
    np.testing.assert_allclose(np.reshape(sinks[0].data(), (2, K, S)), frames.y_sensing[:2], atol=1e-4)


# --- reciprocal filter ---------------------------------------------------------------------
def test_reciprocal_filter_equals_model_and_flags_bad_symbols(sc, frames):
    x = frames.symbols[:4].copy()
    x[2, 5] = 0.0
    x[3, 7] = np.nan
    y = frames.y_sensing[:4]
    tb = gr.top_block()
    rf = reciprocal_filter(sc)
    sink = blocks.vector_sink_c(K * S)
    tb.connect(blocks.vector_source_c(flat(y), False, K * S), (rf, 0))
    tb.connect(blocks.vector_source_c(flat(x), False, S), (rf, 1))
    tb.connect(rf, sink)
    tb.run()
    out = np.reshape(sink.data(), (4, K, S))
    np.testing.assert_array_equal(out, reciprocal_filter_model(y, x, invalid="zero"))
    assert np.all(out[2, :, 5] == 0) and np.all(np.isfinite(out))
    assert rf.invalid_frames == 2
    tags = [(t.offset, pmt.to_python(t.value)) for t in sink.tags() if pmt.symbol_to_string(t.key) == "invalid_symbols"]
    assert tags == [(2, 1), (3, 1)]


# --- OMP receiver --------------------------------------------------------------------------
def run_omp_receiver(sc, y_tilde, **extra):
    tb = gr.top_block()
    rx = make_receiver(sc, **extra)
    debug = blocks.message_debug()
    tb.connect(blocks.vector_source_c(flat(y_tilde), False, K * S), rx)
    tb.msg_connect(rx, "detections", debug, "store")
    tb.run()
    return rx, messages_of(debug)


def assert_detections_equal(got, frames_, result, threshold, atol=1e-9):
    assert [d["frame"] for d in got] == list(frames_.index)
    for b, d in enumerate(got):
        ref = result.detections(b, threshold)
        assert d["count"] == len(ref["angle_rad"])
        np.testing.assert_allclose(d["angle_deg"], np.rad2deg(ref["angle_rad"]), rtol=0, atol=atol)
        np.testing.assert_allclose(d["range_m"], ref["range_m"], rtol=0, atol=atol)
        np.testing.assert_allclose(d["gain"], np.abs(ref["gain"]), rtol=1e-3)
        np.testing.assert_allclose(d["peak"], ref["peak"], rtol=1e-3)


def test_omp_receiver_equals_sense(sc, frames):
    y_tilde = reciprocal_filter_model(frames.y_sensing, frames.symbols)
    rx, got = run_omp_receiver(sc, y_tilde)
    result = sense(frames, offline_receiver(sc, scenario_nominal_array(sc)))
    assert_detections_equal(got, frames, result, THRESHOLD)
    assert sum(d["count"] for d in got) > 0
    d = got[0]
    np.testing.assert_allclose(np.hypot(d["x_m"], d["y_m"]), d["range_m"])
    assert rx.invalid_frames == 0


def test_omp_receiver_perfect_method_assumes_the_true_array(sc, frames):
    """method="perfect": the receiver assumes the true (impaired) array of its spacing_std_m /
    impairment_seed (taken from the scenario): the array of the channel."""
    y_tilde = reciprocal_filter_model(frames.y_sensing, frames.symbols)
    true = true_array(sc)
    rx, got = run_omp_receiver(sc, y_tilde[:4], method="perfect")
    assert rx.method == "perfect"
    np.testing.assert_array_equal(rx.array.positions_m, true.positions_m)
    np.testing.assert_array_equal(rx.array.positions_m, make_channel(sc).array.positions_m)
    assert np.abs(true.positions_m - scenario_nominal_array(sc).positions_m).max() > 1e-5  # impaired (m)
    result = sense(frames, offline_receiver(sc, true))
    for b in range(4):
        assert got[b]["count"] == result.counts(THRESHOLD)[b]
        np.testing.assert_allclose(got[b]["range_m"], result.detections(b, THRESHOLD)["range_m"])
    # the block follows the scenario's impairment parameters
    other = sc.with_overrides({"array.impairment_seed": 7, "array.spacing_std_m": 3e-4})
    rx7 = make_receiver(other, method="perfect")
    np.testing.assert_array_equal(rx7.array.positions_m, true_array(other).positions_m)
    assert np.abs(rx7.array.positions_m - true.positions_m).max() > 1e-5


def test_omp_receiver_skips_nonfinite_frames(sc, frames):
    y_tilde = reciprocal_filter_model(frames.y_sensing[:3], frames.symbols[:3])
    y_tilde[1, 2, 3] = np.inf
    rx, got = run_omp_receiver(sc, y_tilde)
    assert rx.invalid_frames == 1
    assert [d["valid"] for d in got] == [True, False, True]
    assert got[1]["count"] == 0 and got[1]["frame"] == 1


# --- comm receiver -------------------------------------------------------------------------
def test_comm_receiver_equals_ml_detect_and_flags_nan(sc, frames):
    y, kappa = frames.y_comm[:4].copy(), frames.csi[:4].copy()
    kappa[3, 0] = np.nan
    tb = gr.top_block()
    cr = comm_receiver(sc)
    sink = blocks.vector_sink_i(S)
    tb.connect(blocks.vector_source_c(flat(y), False, S), (cr, 0))
    tb.connect(blocks.vector_source_c(flat(kappa), False, S), (cr, 1))
    tb.connect(cr, sink)
    tb.run()
    np.testing.assert_array_equal(np.reshape(sink.data(), (4, S)), ml_detect(y, kappa))
    np.testing.assert_array_equal(np.reshape(sink.data(), (4, S))[:3], frames.messages[:3])  # SNR_c 20 dB
    assert cr.invalid_frames == 1
    assert [t.offset for t in sink.tags()] == [3]


# --- metrics -------------------------------------------------------------------------------
def test_metrics_equal_evaluation_scores(sc, frames):
    result = sense(frames, offline_receiver(sc, scenario_nominal_array(sc)))
    detected = ml_detect(frames.y_comm, frames.csi)
    detected[0, :3] = (frames.messages[0, :3] + 1) % 4  # some symbol errors
    rx = sc.receiver
    ref = Scores(sc.scene["max_targets"], rx["gospa_c_m"], rx["gospa_p"], rx["gospa_mu"])
    ref.add(frames, result, THRESHOLD, detected)

    met = metrics(sc)
    # messages first, out of order (the handlers match them by frame)
    batch = DetectionBatch(0, N, sc.scene["max_targets"])
    batch.fill(np.arange(N), result, THRESHOLD)
    detections = batch.pmts()
    for b in reversed(range(N)):
        scene = frames.scenes[b]
        met.handle_detections(detections[b])
        met.handle_truth(Truth(b, np.rad2deg(scene.angles_rad), scene.ranges_m, np.abs(scene.gains), 0.0).to_pmt())
    tb = gr.top_block()
    debug = blocks.message_debug()
    tb.connect(blocks.vector_source_i(flat(frames.messages.astype(np.int32)), False, S), (met, 0))
    tb.connect(blocks.vector_source_i(flat(detected.astype(np.int32)), False, S), (met, 1))
    tb.msg_connect(met, "metrics", debug, "store")
    tb.run()
    want, got = ref.summary(), met.summary()
    for key in ("p_md", "p_fa", "ser", "frames"):
        assert got[key] == pytest.approx(want[key], rel=1e-12), key
    for key in ("gospa", "angle_rmse_deg", "range_rmse_m"):
        assert got[key] == pytest.approx(want[key], rel=1e-9), key
    assert got["ser"] == np.count_nonzero(detected != frames.messages) / (N * S) > 0
    last = messages_of(debug)[-1]
    assert last["frames"] == N and last["comm_frames"] == N
    assert last["gospa"] == pytest.approx(want["gospa"], rel=1e-9)


def test_metrics_skip_invalid_detections_and_ignore_bad_messages():
    met = metrics(TINY.with_overrides({"scene.max_targets": 3}))
    met.handle_truth(pmt.to_pmt({"frame": 0, "count": 1, "angle_deg": [-30.0], "range_m": [50.0]}))
    met.handle_detections(pmt.to_pmt({"frame": 0, "count": 0, "valid": False, "angle_deg": [], "range_m": []}))
    met.handle_truth(pmt.intern("garbage"))
    s = met.summary()
    assert s["skipped_frames"] == 1 and s["frames"] == 0


# --- full chain ----------------------------------------------------------------------------
def test_full_chain_equals_evaluation_sense(sc, frames):
    """message source -> precoder -> channel -> reciprocal filter -> OMP receiver, and the comm
    path -> comm receiver -> metrics: streamed detections equal evaluation.sense on the
    Simulator's frames with the same threshold. Every block is built from the scenario."""
    tb = gr.top_block()
    src = message_source(sc, frame_count=N)
    pre = make_precoder(sc)
    ch = make_channel(sc)
    rf = reciprocal_filter(sc)
    rx = make_receiver(sc)
    cr = comm_receiver(sc)
    met = metrics(sc)
    debug = blocks.message_debug()
    tb.connect((src, 1), pre, ch)
    tb.connect((ch, 0), (rf, 0))
    tb.connect((src, 1), (rf, 1))
    tb.connect(rf, rx)
    tb.connect((ch, 1), (cr, 0))
    tb.connect((ch, 2), (cr, 1))
    tb.connect((src, 0), (met, 0))
    tb.connect(cr, (met, 1))
    tb.msg_connect(ch, "truth", met, "truth")
    tb.msg_connect(rx, "detections", met, "detections")
    tb.msg_connect(rx, "detections", debug, "store")
    tb.run()
    result = sense(frames, offline_receiver(sc, scenario_nominal_array(sc)))
    assert_detections_equal(messages_of(debug), frames, result, THRESHOLD)
    rxp = sc.receiver
    ref = Scores(sc.scene["max_targets"], rxp["gospa_c_m"], rxp["gospa_p"], rxp["gospa_mu"])
    ref.add(frames, result, THRESHOLD, ml_detect(frames.y_comm, frames.csi))
    got, want = met.summary(), ref.summary()
    assert got["frames"] == N and got["comm_frames"] == N
    for key in ("p_md", "p_fa", "ser"):
        assert got[key] == pytest.approx(want[key], rel=1e-12, nan_ok=True), key
    assert got["gospa"] == pytest.approx(want["gospa"], rel=1e-6)


# --- construction errors -------------------------------------------------------------------
SMALL4 = Scenario.default().with_overrides({"array.antennas": 4, "ofdm.subcarriers": 8, "transmitter.beam_grid": 90})


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: precoder(scenario=3.5), r"isac_precoder: parameter 'scenario' \(3.5\): a scenario is a Scenario"),
        (lambda: precoder("/nonexistent/s.toml"), r"isac_precoder: parameter 'scenario' .*No such file"),
        (lambda: precoder({"transmitter": {"eta": 1.2}}), r"isac_precoder: parameter 'scenario' .*transmitter.eta"),
        (lambda: precoder(method="weird"), r"isac_precoder: parameter 'method'.*must be one of baseline, perfect"),
        (lambda: precoder(method="nn"), r"isac_precoder: parameter 'method'.*'nn' needs a weights file"),
        (
            lambda: ula_channel(fixed_angles_deg=[-30, -20], fixed_ranges_m=[50]),
            r"isac_ula_channel: parameter 'fixed_ranges_m'",
        ),
        (lambda: ula_channel(SMALL4, precoder=[1, 0, 0]), r"isac_ula_channel: parameter 'precoder'.*K = 4"),
        (lambda: ula_channel(stream="nope"), r"isac_ula_channel: parameter 'stream'"),
        (lambda: ula_channel(first_frame=-1), r"isac_ula_channel: parameter 'first_frame' must be an integer >= 0"),
        (
            lambda: omp_receiver(method="weird"),
            r"isac_omp_receiver: parameter 'method'.*must be one of baseline, perfect",
        ),
        (lambda: omp_receiver(method="impairment"), r"isac_omp_receiver: parameter 'method'.*needs a weights file"),
        (
            lambda: omp_receiver(weights="/nonexistent/w.safetensors"),
            r"isac_omp_receiver: parameter 'weights'.*no such weights file",
        ),
        (lambda: omp_receiver(receiver="mp"), r"isac_omp_receiver: parameter 'receiver' must be one of 'omp', 'domp'"),
        (lambda: omp_receiver(temperature=0.0), r"isac_omp_receiver: parameter 'temperature'"),
        (lambda: omp_receiver(threshold=-1.0), r"isac_omp_receiver: parameter 'threshold'"),
        (lambda: metrics(log_every=-1), r"isac_metrics: parameter 'log_every'"),
        (lambda: metrics(stall_limit_s=float("nan")), r"isac_metrics: parameter 'stall_limit_s'"),
        (lambda: message_source(stream="x"), r"isac_message_source: parameter 'stream'"),
        (lambda: message_source(frame_count=-2), r"isac_message_source: parameter 'frame_count'"),
        (
            lambda: isac.angle_delay_map_stream(method="dictionary"),
            r"isac_angle_delay_map_stream: parameter 'method'.*needs a weights file",
        ),
        (
            lambda: isac.angle_delay_map_stream(map_points=[0, 10]),
            r"isac_angle_delay_map_stream: parameter 'map_points' must be two integers >= 1 and <= 4096",
        ),
    ],
)
def test_bad_parameters_name_block_and_parameter(make, match):
    with pytest.raises(BlockParameterError, match=match):
        make()


def test_mismatched_vector_lengths_are_refused_at_connect():
    tb = gr.top_block()
    pre = precoder(SMALL4)
    ch = ula_channel(SMALL4.with_overrides({"ofdm.subcarriers": 16}))
    with pytest.raises(Exception, match="itemsize"):
        tb.connect(pre, ch)


def test_channel_first_frame_offsets_draws_not_frame_numbers(sc, frames):
    """first_frame = 5 reproduces Simulator frames 5.. while messages keep item numbers."""
    _, _, kappa, truth, _ = run_channel(sc, frames.symbols[5:8], first_frame=5)
    np.testing.assert_array_equal(kappa, frames.csi[5:8])
    assert [t["frame"] for t in truth] == [0, 1, 2]
    assert [t["sim_frame"] for t in truth] == [5, 6, 7]
    assert [t["count"] for t in truth] == [s.count for s in frames.scenes[5:8]]


def test_channel_precoder_parameter_gives_csi_without_tags(sc, frames):
    tb = gr.top_block()
    f = baseline_precoder(sc)
    ch = make_channel(sc, precoder=f)
    sinks = [blocks.vector_sink_c(K * S), blocks.vector_sink_c(S), blocks.vector_sink_c(S)]
    tb.connect(blocks.vector_source_c(flat(array_frame(f, frames.symbols[:3])), False, K * S), ch)
    for i, s in enumerate(sinks):
        tb.connect((ch, i), s)
    tb.run()
    np.testing.assert_array_equal(np.reshape(sinks[2].data(), (3, S)), frames.csi[:3])


def test_metrics_without_message_ports_scores_ser_and_ends(sc, frames):
    """wait_for_messages=False: only the comm streams are connected and the flowgraph ends."""
    tb = gr.top_block()
    met = metrics(sc, wait_for_messages=False)
    detected = ml_detect(frames.y_comm, frames.csi).astype(np.int32)
    tb.connect(blocks.vector_source_i(flat(frames.messages.astype(np.int32)), False, S), (met, 0))
    tb.connect(blocks.vector_source_i(flat(detected), False, S), (met, 1))
    tb.run()
    s = met.summary()
    assert s["comm_frames"] == N and s["frames"] == 0
    assert s["ser"] == np.count_nonzero(detected != frames.messages) / (N * S)


def test_model_does_not_import_gnuradio():
    """Blocks import gnuradio.gr; the model (and channels_stream), the transceiver layer, scoring
    and weights must not."""
    import pathlib

    import gnuradio.isac.model as model
    import gnuradio.isac.transceiver as trx

    package = pathlib.Path(model.__file__).parent.parent
    paths = [
        *pathlib.Path(model.__file__).parent.glob("*.py"),
        *pathlib.Path(trx.__file__).parent.glob("*.py"),
        package / "scoring.py",
        package / "weights.py",
    ]
    assert len(paths) > 5
    for path in paths:
        text = path.read_text()
        for banned in ("from gnuradio import", "import gnuradio", "import pmt", "from gnuradio.gr"):
            assert banned not in text, f"{path.name} contains {banned!r}"


def test_precoder_config_port_through_the_scheduler(sc, frames):
    """A config message queued before the run is handled before the first work call."""
    pre = make_precoder(sc)
    pre.to_basic_block()._post(pmt.intern("config"), pmt.to_pmt({"eta": 1.0}))
    tb = gr.top_block()
    sink = blocks.vector_sink_c(K * S)
    tb.connect(blocks.vector_source_c(flat(frames.symbols[:2]), False, S), pre, sink)
    tb.run()
    f1 = baseline_precoder(sc.with_overrides({"transmitter.eta": 1.0}))
    np.testing.assert_allclose(np.reshape(sink.data(), (2, K, S)), array_frame(f1, frames.symbols[:2]), atol=1e-6)


def test_angle_delay_map_equals_model(sc, frames):
    """The map L = |Phi_a^H Y~ Phi_d^*|^2 / (K S) (Alg. 1, line 5) on the dictionaries (8) of the
    array the method's receiver assumes (baseline: nominal; perfect: the true array)."""
    from gnuradio.isac.model.angle_delay import angle_delay_map

    y_tilde = reciprocal_filter_model(frames.y_sensing[:3], frames.symbols[:3])
    sc2 = sc.with_overrides({"receiver.angle_grid": 30, "receiver.delay_grid": 20})
    for method, array in (("baseline", scenario_nominal_array(sc2)), ("perfect", true_array(sc2))):
        for db in (False, True):
            blk = isac.angle_delay_map_stream(sc, map_points=(30, 20), method=method, db=db)
            tb = gr.top_block()
            sink = blocks.vector_sink_f(30 * 20)
            tb.connect(blocks.vector_source_c(flat(y_tilde), False, K * S), blk, sink)
            tb.run()
            D = omp_dictionaries(sc2, array)
            ref = angle_delay_map(y_tilde, D.phi_a, D.phi_d) / (K * S)
            ref = 10 * np.log10(ref) if db else ref
            np.testing.assert_allclose(np.reshape(sink.data(), (3, 30, 20)), ref, rtol=1e-5, atol=1e-5)


def test_positions_pdu_converts_truth_and_detections():
    """Through the scheduler: a truth/detections dict in -> a PDU of the positions (2) as x + j y
    (m) with meta frame, count; a message that is not a dict, or whose angle_deg and range_m differ
    in length, is dropped (logged), not fatal; an empty message gives an empty PDU."""
    import time

    blk, debug, tb = isac.positions_pdu(), blocks.message_debug(), gr.top_block()
    tb.msg_connect(blk, "pdu", debug, "store")
    tb.start()
    try:
        for msg in (
            pmt.intern("garbage"),
            to_pmt({"frame": 2, "angle_deg": np.array([1.0, 2.0]), "range_m": np.array([3.0])}),
            to_pmt({"frame": 7, "angle_deg": np.array([-30.0, 0.0]), "range_m": np.array([100.0, 50.0])}),
            to_pmt({"frame": 1, "angle_deg": np.zeros(0), "range_m": np.zeros(0)}),
        ):
            blk.to_basic_block()._post(pmt.intern("in"), msg)
        deadline = time.time() + 10
        while debug.num_messages() < 2 and time.time() < deadline:
            time.sleep(0.01)
    finally:
        tb.stop()
        tb.wait()
    assert debug.num_messages() == 2
    pdu, empty = debug.get_message(0), debug.get_message(1)
    assert pmt.to_python(pmt.car(pdu)) == {"frame": 7, "count": 2}
    np.testing.assert_allclose(
        np.array(pmt.c32vector_elements(pmt.cdr(pdu))),
        [100 * np.cos(np.deg2rad(-30)) + 100j * np.sin(np.deg2rad(-30)), 50.0],
        rtol=1e-6,
    )
    assert pmt.to_python(pmt.car(empty)) == {"frame": 1, "count": 0}
    assert pmt.length(pmt.cdr(empty)) == 0


def test_metrics_bound_unmatched_messages(monkeypatch):
    import importlib

    metrics_module = importlib.import_module("gnuradio.isac.blocks.metrics")  # the package's .metrics is the class

    monkeypatch.setattr(metrics_module, "MAX_PENDING", 3)
    met = metrics(TINY, wait_for_messages=False)
    for f in range(6):
        met.handle_truth(pmt.to_pmt({"frame": f, "angle_deg": [-30.0], "range_m": [50.0]}))
    assert met.dropped_messages == 3
    met.handle_detections(pmt.to_pmt({"frame": 5, "angle_deg": [-30.0], "range_m": [50.0]}))
    assert met.summary()["frames"] == 1 and met.summary()["p_md"] == 0.0


def test_omp_receiver_cpp_kernel_equals_numpy(sc, frames):
    from gnuradio.isac import OmpKernel  # noqa: F401  (always built by tools/setup.sh: fail, never skip)

    y_tilde = reciprocal_filter_model(frames.y_sensing, frames.symbols)
    ref_rx, ref = run_omp_receiver(sc, y_tilde)
    assert ref_rx.kernel == "numpy"
    rx, got = run_omp_receiver(sc, y_tilde, kernel="cpp")
    assert rx.kernel == "cpp"
    assert omp_receiver(sc).kernel == "cpp"  # kernel "" = cpp when built
    assert [d["count"] for d in got] == [d["count"] for d in ref]
    for g, r in zip(got, ref):
        np.testing.assert_array_equal(g["angle_deg"], r["angle_deg"])
        np.testing.assert_array_equal(g["range_m"], r["range_m"])
        np.testing.assert_allclose(g["gain"], r["gain"], rtol=1e-3)
        np.testing.assert_allclose(g["peak"], r["peak"], rtol=1e-3)
    with pytest.raises(BlockParameterError, match="isac_omp_receiver: parameter 'kernel'"):
        omp_receiver(kernel="fortran")


def test_channel_with_a_given_spacing_vector_uses_that_array(sc):
    from gnuradio.isac.model.array import spacing_array

    d = np.linspace(0.9, 1.1, K) * sc.wavelength_m / 2
    ch = make_channel(sc, spacings_m=d)
    np.testing.assert_allclose(ch.array.positions_m, spacing_array(d, sc.wavelength_m).positions_m)
    with pytest.raises(
        ValueError, match=r"isac_ula_channel: parameter 'spacings_m' must be empty or have K = 16 entries, got 15"
    ):
        make_channel(sc, spacings_m=d[:-1])


# --- the gnuradio.isac namespace -----------------------------------------------------------
BLOCK_NAMES = (
    "precoder",
    "ula_channel",
    "reciprocal_filter",
    "omp_receiver",
    "comm_receiver",
    "metrics",
    "message_source",
    "angle_delay_map_stream",
    "map_display",
    "positions_pdu",
    "json_publisher",
    "sigmf_sink",
    "sigmf_source",
)
#: the blocks whose parameters describe a scenario
SCENARIO_BLOCKS = (
    "precoder",
    "ula_channel",
    "reciprocal_filter",
    "omp_receiver",
    "comm_receiver",
    "metrics",
    "message_source",
    "angle_delay_map_stream",
)


def test_gnuradio_isac_gives_every_block():
    """``from gnuradio import isac``: every block is an attribute, the class of its module."""
    import importlib

    import gnuradio.isac.blocks as package

    assert set(package.BLOCKS) == set(BLOCK_NAMES)
    assert set(isac._BLOCKS) - {"BlockParameterError"} == set(package.BLOCKS)
    for name in BLOCK_NAMES:
        module = importlib.import_module(f"gnuradio.isac.blocks.{name}")
        assert getattr(isac, name) is getattr(module, name) is getattr(package, name), name
        assert isinstance(getattr(isac, name), type), name
        assert name in dir(isac), name
    assert isac.precoder is importlib.import_module("gnuradio.isac.blocks.precoder").precoder
    assert isac.BlockParameterError is BlockParameterError
    for name in SCENARIO_BLOCKS:  # scenario-first: the scenario, then the block's own parameters
        params = list(inspect.signature(getattr(isac, name).__init__).parameters)
        assert params[1] == "scenario", name
    for old in ("isac_precoder", "isac_omp_receiver", "isac_angle_delay_map"):
        with pytest.raises(AttributeError, match=old):
            getattr(isac, old)


def test_blocks_take_the_scenario(sc):
    """Each block takes the scenario's values (a Scenario, or a TOML file: the same block)."""
    other = sc.with_overrides(
        {
            "scene.target_sector_deg": [-35.0, -5.0],
            "scene.range_m": [20.0, 150.0],
            "scene.comm_taps": 3,
            "array.impairment_seed": 4,
            "scene.max_targets": 4,
            "receiver.gospa_c_m": 50.0,
        }
    )
    pre = precoder(other)
    assert pre.scenario.scene["target_sector_deg"] == [-35.0, -5.0]
    np.testing.assert_array_equal(pre.precoder(), baseline_precoder(other))
    ch = ula_channel(other)
    assert ch.channel.tap_variances.shape == (3,)  # comm_taps
    np.testing.assert_array_equal(ch.array.positions_m, true_array(other).positions_m)
    rx = omp_receiver(other, method="perfect")
    assert rx.sensing.max_targets == 4 and rx.scenario.scene["range_m"] == [20.0, 150.0]
    np.testing.assert_array_equal(rx.array.positions_m, true_array(other).positions_m)
    assert metrics(other).scores.cutoff == 50.0
    assert message_source(other).geometry.subcarriers == S
    with pytest.raises(TypeError):
        precoder(other, target_sector_deg=[-30.0, -10.0])  # a scenario key is not a block parameter


def test_a_block_takes_a_toml_scenario(sc, tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(sc.to_toml())
    a, b = precoder(str(path)), precoder(sc)
    assert a.scenario == b.scenario and a.geometry == b.geometry
    np.testing.assert_array_equal(a.precoder(), b.precoder())
    assert precoder().scenario == Scenario.default() == precoder("").scenario  # no scenario: the paper's


# --- methods and weights -------------------------------------------------------------------
def array_weights(path, scenario, method, array, points=90):
    """A weights file of ``method`` holding ``array`` as if learned on ``scenario``: its spacings
    and positions (impairment) or its steering vectors on the full ``points`` grid (dictionary)."""
    grid = full_angle_grid(points)
    tensors = {"angle_grid_rad": grid}
    if method == "impairment":
        tensors.update(spacings_m=array.spacings_m, positions_m=positions_example1(array.spacings_m))
    else:
        tensors["dictionary"] = array.steering(grid).astype(np.complex64)
    save_weights(path, scenario, method, tensors, steps=1)
    return str(path)


@pytest.mark.parametrize("method", ["impairment", "dictionary"])
def test_blocks_with_weights_equal_the_offline_transceiver(sc, frames, tmp_path, method):
    """Weights holding the true array: the receiver block (method "" = the weights' method)
    emits the detections of transceiver.build on the same frames, the precoder block gives its f."""
    true = true_array(sc)
    path = array_weights(tmp_path / f"{method}.safetensors", sc, method, true)
    offline = transceiver.build(sc, method, load_weights(path, sc), kernel="numpy")
    y_tilde = reciprocal_filter_model(frames.y_sensing, frames.symbols)
    rx, got = run_omp_receiver(sc, y_tilde, weights=path)
    assert rx.method == method
    result = sense(frames, offline.receiver)
    assert_detections_equal(got, frames, result, THRESHOLD)
    assert sum(d["count"] for d in got) > 0
    pre = make_precoder(sc, weights=path)
    assert pre.method == method
    np.testing.assert_array_equal(pre.precoder(), offline.precoder(sc))
    if method == "impairment":
        # the learned array is the true one: the receiver of "perfect", the LS beams (6)-(7) on it
        assert_detections_equal(got, frames, sense(frames, offline_receiver(sc, true)), THRESHOLD)
        np.testing.assert_allclose(pre.precoder(), baseline_precoder(sc, true), rtol=0, atol=1e-6)
    else:
        # a dictionary of the array's steering vectors synthesises the LS beam of that array on its grid
        on_grid = sc.with_overrides({"transmitter.beam_grid": 90})
        np.testing.assert_allclose(pre.precoder(), baseline_precoder(on_grid, true), rtol=0, atol=1e-5)
        with pytest.raises(BlockParameterError, match=r"isac_omp_receiver: parameter 'receiver'.*dictionary"):
            make_receiver(sc, weights=path, receiver="domp")  # dOMP needs element positions
    wrong = rf"isac_omp_receiver: parameter 'method'.*holds weights of method '{method}', expected 'nn'"
    with pytest.raises(BlockParameterError, match=wrong):
        make_receiver(sc, method="nn", weights=path)
    with pytest.raises(BlockParameterError, match=r"isac_precoder: parameter 'method'.*does not use a weights file"):
        make_precoder(sc, method="baseline", weights=path)


# --- NNBL (Appendix A) in the blocks ---------------------------------------------------------
@pytest.fixture(scope="module")
def nn_trained(sc, tmp_path_factory):
    """A tiny NNBL weights file for ``sc``: the limited networks on 16 x 16 maps after one step
    of each training phase (trainer API as in test_nnbl.py)."""
    import torch
    from test_nnbl import options  # the tiny NNBL options of the trainer tests (imports torch)

    from gnuradio.isac.trainer.nnbl_train import NnTrainer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: one thread is much faster on 2 cores
    try:
        torch.manual_seed(0)
        tr = NnTrainer(sc, options(iterations=1))
        tr.train_step()
        tr.train_step()
    finally:
        torch.set_num_threads(threads)
    path = str(tmp_path_factory.mktemp("nn") / "nn.safetensors")
    save_weights(
        path, sc, "nn", tr.weight_tensors(), tr.step, tr.options.to_dict(), metadata={"nnbl": tr.cfg.to_dict()}
    )
    return path, tr


def test_nn_receiver_block_equals_offline_nn_transceiver(sc, frames, nn_trained):
    path, _ = nn_trained
    w = load_weights(path, sc)
    y_tilde = reciprocal_filter_model(frames.y_sensing, frames.symbols)
    result = transceiver.build(sc, "nn", w).receiver(y_tilde)
    # peaks are the detection probabilities u^: a threshold inside their range counts some, not all
    threshold = float(np.median(result.peaks))
    rx, got = run_omp_receiver(sc, y_tilde, method="nn", weights=path, threshold=threshold)
    assert rx.method == "nn" and rx.receiver == "nn"
    # float32 networks; torch's thread count (set by other tests) changes the summation order
    assert_detections_equal(got, frames, result, threshold, atol=1e-4)
    counts = [d["count"] for d in got]
    assert counts == result.counts(threshold).tolist()
    assert 0 < sum(counts) < N * sc.scene["max_targets"]
    for d in got:
        assert np.all((d["peak"] > threshold) & (d["peak"] < 1.0))
        np.testing.assert_allclose(np.hypot(d["x_m"], d["y_m"]), d["range_m"])
    # method "" takes the method of the weights (nn: a threshold below 1, its peaks are probabilities)
    assert make_receiver(sc, weights=path, threshold=0.5).method == "nn"
    with pytest.raises(BlockParameterError, match=r"isac_angle_delay_map_stream: parameter 'method'.*'nn'"):
        isac.angle_delay_map_stream(sc, weights=path)


def test_nn_precoder_block_gives_the_nn_precoder(sc, frames, nn_trained):
    import torch

    path, tr = nn_trained
    w = load_weights(path, sc)
    pre = make_precoder(sc, method="nn", weights=path)
    assert pre.method == "nn"
    f = pre.precoder()
    # the precoder MLP of the trained networks (Appendix A) for the scenario's sectors, eta, phi, P
    tx = sc.transmitter
    (lo, hi), (c_lo, c_hi) = sc.target_sector_rad, sc.comm_sector_rad
    tr.net.eval()
    with torch.no_grad():
        ref = tr.net.precoders(
            torch.tensor([lo]), torch.tensor([hi]), c_lo, c_hi, tx["eta"], tx["phi_rad"], tx["power"]
        )[0].numpy()
    np.testing.assert_allclose(f, ref, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(f, transceiver.build(sc, "nn", w).precoder(sc))
    assert np.linalg.norm(f) == pytest.approx(np.sqrt(tx["power"]), rel=1e-5)  # ||f||^2 = P
    assert np.abs(f - baseline_precoder(sc)).max() > 1e-2  # not the LS baseline
    # run-time change: the MLP recomputes f for the new sector, and the stream carries it
    pre.set_target_sector([-30.0, -10.0])
    sc2 = sc.with_overrides({"scene.target_sector_deg": [-30.0, -10.0]})
    f2 = pre.precoder()
    np.testing.assert_array_equal(f2, transceiver.build(sc2, "nn", w).precoder(sc2))
    assert np.abs(f2 - f).max() > 1e-6
    tb = gr.top_block()
    sink = blocks.vector_sink_c(K * S)
    tb.connect(blocks.vector_source_c(flat(frames.symbols[:2]), False, S), pre, sink)
    tb.run()
    np.testing.assert_array_equal(np.reshape(sink.data(), (2, K, S)), array_frame(f2, frames.symbols[:2]))


@pytest.mark.parametrize("method", ["impairment", "nn"])
def test_weights_of_another_array_are_refused_unless_weights_other_array(sc, frames, tmp_path, nn_trained, method):
    """Weights learned on another impairment seed: refused (parameter 'weights', as a path or a
    loaded Weights), deployed with weights_other_array=True; other mismatches are still refused."""
    other = sc.with_overrides({"array.impairment_seed": 2})
    path = str(tmp_path / f"{method}.safetensors")
    if method == "impairment":
        array_weights(path, other, method, true_array(other))
    else:
        _, tr = nn_trained
        save_weights(path, other, "nn", tr.weight_tensors(), tr.step, metadata={"nnbl": tr.cfg.to_dict()})
    loaded = load_weights(path, other)
    for weights in (path, loaded):
        with pytest.raises(BlockParameterError, match=r"isac_omp_receiver: parameter 'weights'.*impairment seed"):
            make_receiver(sc, weights=weights)
        with pytest.raises(BlockParameterError, match=r"isac_precoder: parameter 'weights'.*impairment seed"):
            make_precoder(sc, weights=weights)
    y_tilde = reciprocal_filter_model(frames.y_sensing[:4], frames.symbols[:4])
    offline = transceiver.build(sc, method, load_weights(path, sc, other_array=True), kernel="numpy")
    result = offline.receiver(y_tilde)
    threshold = THRESHOLD if method == "impairment" else float(np.median(result.peaks))
    for weights in (path, loaded):
        rx, got = run_omp_receiver(sc, y_tilde, weights=weights, weights_other_array=True, threshold=threshold)
        assert rx.method == method and rx.weights.other_array
        assert [d["count"] for d in got] == result.counts(threshold).tolist()
        for b, d in enumerate(got):
            np.testing.assert_allclose(d["range_m"], result.detections(b, threshold)["range_m"], rtol=0, atol=1e-9)
        pre = make_precoder(sc, weights=weights, weights_other_array=True)
        np.testing.assert_array_equal(pre.precoder(), offline.precoder(sc))
    if method == "impairment":  # the learned array of seed 2, not the scenario's true array
        np.testing.assert_array_equal(rx.array.positions_m, true_array(other).positions_m)
        assert np.abs(rx.array.positions_m - true_array(sc).positions_m).max() > 1e-5
    small = sc.with_overrides({"array.antennas": 8})
    with pytest.raises(BlockParameterError, match=r"isac_omp_receiver: parameter 'weights'.*antennas = 16.* 8"):
        make_receiver(small, weights=path, weights_other_array=True)


@pytest.mark.parametrize("method", ["impairment", "nn"])
def test_a_loaded_weights_object_is_not_read_again(sc, tmp_path, nn_trained, method):
    """Loaded once, passed to two blocks: the file is not read again (it is gone), both blocks
    hold the same object, and for nn the same networks."""
    import shutil

    path = str(tmp_path / f"{method}.safetensors")
    if method == "impairment":
        array_weights(path, sc, method, true_array(sc))
    else:
        shutil.copy(nn_trained[0], path)
    w = load_weights(path, sc)
    (tmp_path / f"{method}.safetensors").unlink()
    pre = make_precoder(sc, weights=w)
    rx = make_receiver(sc, weights=w, threshold=0.5 if method == "nn" else THRESHOLD)
    assert pre.method == rx.method == method
    assert pre.weights is w and rx.weights is w
    if method == "nn":
        assert pre.transmitter.net is rx.sensor.net  # the networks are built once per Weights object
    else:
        np.testing.assert_array_equal(rx.array.positions_m, transceiver.get(method).array(w, sc).positions_m)
    with pytest.raises(BlockParameterError, match=r"isac_omp_receiver: parameter 'weights'.*no such weights file"):
        make_receiver(sc, weights=path)  # only the loaded object could have served
