"""Moving targets in the stream: frames of M OFDM symbols through the blocks, isac-sim, SigMF
recordings, ZeroMQ and the pictures, against the offline model on the same frames.

- isac-sim's flowgraph (flowgraph.SimFlowgraph) on a small moving scenario of M symbols gives
  evaluation.evaluate's metrics (baseline, perfect, impairment and dictionary with oracle weights) and the
  offline receiver's detections, speeds included; dOMP and NNBL are refused through the blocks;
- the ULA channel block's fixed targets move with ``fixed_speeds_mps``."""

import numpy as np
import pytest
from gnuradio import isac
from test_blocks_grc import grc_block, platform  # noqa: F401 (GRC's platform, a fixture)

from gnuradio.isac import transceiver
from gnuradio.isac.blocks.base import BlockParameterError
from gnuradio.isac.config import Scenario
from gnuradio.isac.evaluation import calibrate, evaluate, sense
from gnuradio.isac.flowgraph import SimFlowgraph
from gnuradio.isac.model.array import positions_example1
from gnuradio.isac.model.grids import full_angle_grid
from gnuradio.isac.model.impairments import true_array
from gnuradio.isac.simulation import Simulator
from gnuradio.isac.transceiver import load_weights, save_weights

N = 8  # frames streamed
M = 8  # OFDM symbols per frame


def moving_scenario(overrides: dict | None = None) -> Scenario:
    """A small scenario of M symbols with targets at -30 .. 30 m/s (K = 16, S = 64, coarse grids)."""
    return Scenario.default().with_overrides(
        {
            "array.antennas": 16,
            "ofdm.subcarriers": 64,
            "ofdm.symbols": M,
            "scene.speed_mps": [-30.0, 30.0],
            "scene.max_targets": 3,
            "receiver.angle_grid": 60,
            "receiver.delay_grid": 50,
            "run.seed": 11,
            "run.frames": N,
            "run.calibration_frames": 48,
            "transmitter.eta": 0.8,
            **(overrides or {}),
        }
    )


@pytest.fixture(scope="module")
def sc():
    return moving_scenario()


@pytest.fixture(scope="module")
def oracle(sc, tmp_path_factory):
    """Impairment-learning weights holding the scenario's true spacings (an oracle learner)."""
    d = true_array(sc).spacings_m
    path = tmp_path_factory.mktemp("w") / "oracle.safetensors"
    tensors = {"angle_grid_rad": full_angle_grid(720), "spacings_m": d, "positions_m": positions_example1(d)}
    save_weights(str(path), sc, "impairment", tensors, steps=0)
    return load_weights(str(path), sc, "impairment")


@pytest.fixture(scope="module")
def oracle_dictionary(sc, tmp_path_factory):
    """Dictionary-learning weights holding the true array's steering vectors on the full 720-point
    grid (an oracle learner): a learned array is spatial, the same over the M symbols."""
    grid = full_angle_grid(720)
    path = tmp_path_factory.mktemp("w") / "oracle_dictionary.safetensors"
    tensors = {"angle_grid_rad": grid, "dictionary": true_array(sc).steering(grid).astype(np.complex64)}
    save_weights(str(path), sc, "dictionary", tensors, steps=0)
    return load_weights(str(path), sc, "dictionary")


def stream(sc, threshold, **kw):
    """Run isac-sim's flowgraph on the first N test frames; (flowgraph, {frame: (truth, detections, errors)})."""
    seen = {}
    tb = SimFlowgraph(sc, N, threshold, on_frame=lambda f, t, d, e: seen.__setitem__(f, (t, d, e)), **kw)
    tb.run()
    return tb, seen


@pytest.mark.parametrize(
    "method, kernel", [("baseline", "cpp"), ("perfect", "numpy"), ("impairment", "cpp"), ("dictionary", "cpp")]
)
def test_streamed_m_symbol_frames_equal_the_offline_evaluation(sc, oracle, oracle_dictionary, method, kernel):
    """The metrics of the stream are evaluate's on the same frames and threshold (p_md, p_fa
    exact; GOSPA, SER, RMSEs to rounding), and every frame's detections, speeds included, are
    the offline receiver's: for every method that runs on M symbols (dOMP and NNBL refuse them,
    below)."""
    weights = {"impairment": oracle, "dictionary": oracle_dictionary}.get(method)
    t = transceiver.build(sc, method, weights, "omp", kernel)
    threshold = calibrate(sc, Simulator(sc, precoder=t.precoder(sc)), t.receiver, progress=False)
    tb, seen = stream(sc, threshold, method=method, weights=weights, kernel=kernel)
    assert tb.receiver.kernel == kernel and tb.receiver.sensor.dictionaries.doppler

    want = evaluate(sc, method, weights, "omp", kernel, threshold=threshold, progress=False)
    got = tb.summary()
    assert got["frames"] == want["frames"] == N
    assert got["p_md"] == want["p_md"] and got["p_fa"] == want["p_fa"]
    for key in ("gospa", "ser", "angle_rmse_deg", "range_rmse_m", "speed_rmse_mps"):
        assert got[key] == pytest.approx(want[key], rel=1e-6, abs=1e-9, nan_ok=True), key
    assert np.isfinite(got["speed_rmse_mps"])  # targets were detected and their speeds scored

    frames = Simulator(sc, precoder=t.precoder(sc)).frames(0, N)
    result = sense(frames, t.receiver)
    assert sorted(seen) == list(range(N))
    detected = 0
    for i in range(N):
        truth, det, _ = seen[i]
        np.testing.assert_array_equal(truth.speed_mps, frames.scenes[i].speeds_mps)
        off = result.detections(i, threshold)
        assert det.count == len(off["angle_rad"]) and det.valid
        np.testing.assert_array_equal(det.speed_mps, off["speed_mps"])  # grid speeds: exactly
        np.testing.assert_allclose(det.angle_deg, np.rad2deg(off["angle_rad"]), rtol=0, atol=1e-9)
        np.testing.assert_allclose(det.range_m, off["range_m"], rtol=0, atol=1e-9)
        detected += det.count
    assert detected > 0 and np.all(np.abs(np.concatenate([seen[i][1].speed_mps for i in range(N)])) <= 30.0)


def test_domp_and_nnbl_on_m_symbols_are_refused_by_the_blocks(sc, tmp_path):
    with pytest.raises(BlockParameterError) as err:
        SimFlowgraph(sc, 1, 1e3, receiver="domp")
    msg = str(err.value)
    assert msg.startswith("isac_omp_receiver: parameter 'receiver'") and "\n" not in msg
    assert f"receiver 'domp' runs on frames of one OFDM symbol, not ofdm.symbols = {M}: use receiver 'omp'" in msg
    w = nnbl_weights(sc, tmp_path / "nn.safetensors")
    for make in (
        lambda: SimFlowgraph(sc, 1, 0.5, method="nn", weights=w),
        lambda: isac.omp_receiver(sc, 0.5, weights=w),
    ):
        with pytest.raises(BlockParameterError) as err:
            make()
        msg = str(err.value)
        assert msg.startswith("isac_omp_receiver: parameter 'method' 'nn': the NNBL") and "\n" not in msg, msg
        assert f"the NNBL networks (Appendix A) take frames of one OFDM symbol, not ofdm.symbols = {M}" in msg


def nnbl_weights(sc, path):
    """NNBL weights for ``sc``: networks after one Adam step on its one-symbol twin (the networks do
    not depend on M; the plumbing of the refusal is under test, not the networks)."""
    import torch

    from gnuradio.isac.trainer.nnbl_train import NnOptions, NnTrainer

    torch.manual_seed(0)
    opts = NnOptions(
        iterations=1, batch=4, n_theta=16, n_tau=16, limited=True, val_frames=4, val_every=1, profile="quick"
    )
    tr = NnTrainer(sc.with_overrides({"ofdm.symbols": 1}), opts)
    tr.train_step()
    save_weights(
        str(path), sc, "nn", tr.weight_tensors(), tr.step, tr.options.to_dict(), metadata={"nnbl": tr.cfg.to_dict()}
    )
    return load_weights(str(path), sc, "nn")


# --- the channel block's fixed targets move -------------------------------------------------------
FIXED = dict(angles_deg=[-33.0, -25.0], ranges_m=[60.0, 140.0], gains=[12.0, 9.0 - 4.0j], speeds_mps=[21.0, -14.0])


def run_fixed_channel(sc, frames: int, **fixed):
    """Frames 0 .. frames-1 of the baseline transmitter through isac.ula_channel with the fixed
    targets ``fixed``: (Y_r (n, M, K, S), [truth dicts])."""
    from gnuradio import blocks, gr

    from gnuradio.isac.messages import Truth

    g = isac.frame_geometry(sc)
    sim = Simulator(sc)
    x = sim.frames(0, frames).symbols.reshape(frames, -1)
    tb = gr.top_block()
    pre, ch = isac.precoder(sc), isac.ula_channel(sc, **fixed)
    sink, debug = blocks.vector_sink_c(g.array_items), blocks.message_debug()
    tb.connect(blocks.vector_source_c(x.ravel().tolist(), False, g.symbol_items), pre, ch, sink)
    for port in (1, 2):
        tb.connect((ch, port), blocks.null_sink(8 * g.symbol_items))
    tb.msg_connect(ch, "truth", debug, "store")
    tb.run()
    truth = [Truth.from_pmt(debug.get_message(i)) for i in range(debug.num_messages())]
    return np.reshape(sink.data(), (frames,) + g.array_shape), truth


def test_fixed_targets_move_with_fixed_speeds_mps(sc):
    """isac.ula_channel(fixed_speeds_mps=...) is Simulator(scenario, scene=...) with those speeds,
    bit for bit; the truth carries them; the receiver measures them (to its speed grid) and a
    static copy of the scene is not the same frame."""
    from gnuradio.isac.model.scene import fixed_scene

    n = 3
    kw = dict(
        fixed_angles_deg=FIXED["angles_deg"],
        fixed_ranges_m=FIXED["ranges_m"],
        fixed_gains=FIXED["gains"],
        fixed_speeds_mps=FIXED["speeds_mps"],
    )
    y_r, truth = run_fixed_channel(sc, n, **kw)
    scene = fixed_scene(FIXED["angles_deg"], FIXED["ranges_m"], FIXED["gains"], speeds_mps=FIXED["speeds_mps"])
    want = Simulator(sc, scene=scene).frames(0, n)
    np.testing.assert_array_equal(y_r, want.y_sensing)
    assert [t.frame for t in truth] == list(range(n))
    for t in truth:
        np.testing.assert_array_equal(t.speed_mps, FIXED["speeds_mps"])
        np.testing.assert_array_equal(t.range_m, FIXED["ranges_m"])
    # the receiver on these frames finds both targets at their speeds (within half a grid step)
    t = transceiver.build(sc, "perfect", None, "omp", "numpy")
    result = sense(want, t.receiver)
    step = np.diff(t.receiver.dictionaries.speeds_mps)[0]
    for b in range(n):
        order = np.argsort(result.ranges_m[b, :2])
        np.testing.assert_allclose(result.speeds_mps[b, :2][order], FIXED["speeds_mps"], atol=step / 2 + 1e-9)
        np.testing.assert_allclose(result.ranges_m[b, :2][order], FIXED["ranges_m"], atol=5.0)
    static, truth0 = run_fixed_channel(sc, 1, **{**kw, "fixed_speeds_mps": ()})
    np.testing.assert_array_equal(truth0[0].speed_mps, [0.0, 0.0])
    assert np.abs(static[0] - y_r[0]).max() > 0.1 * np.abs(y_r[0]).max()


def test_fixed_speeds_on_one_symbol_reach_the_truth_through_the_numpy_channel():
    """M = 1: the speeds do not change the echo of one symbol, but the truth carries them (the
    channel runs its numpy model for a moving fixed scene: the C++ twin draws static scenes)."""
    one = moving_scenario({"ofdm.symbols": 1, "scene.speed_mps": [0.0, 0.0]})
    kw = dict(fixed_angles_deg=[-30.0], fixed_ranges_m=[80.0], fixed_gains=[5.0], fixed_speeds_mps=[-40.0])
    assert not isac.ula_channel(one, **kw).use_cpp
    y_r, truth = run_fixed_channel(one, 2, **kw)
    np.testing.assert_array_equal(truth[1].speed_mps, [-40.0])
    from gnuradio.isac.model.scene import fixed_scene

    want = Simulator(one, scene=fixed_scene([-30.0], [80.0], [5.0], speeds_mps=[-40.0])).frames(0, 2)
    np.testing.assert_allclose(y_r, want.y_sensing, rtol=0, atol=1e-4)  # (1) of X vs of f, x: float rounding


@pytest.mark.parametrize(
    "kw, text",
    [
        (
            dict(fixed_angles_deg=[-30.0], fixed_ranges_m=[50.0], fixed_speeds_mps=[150.0]),
            "entries must each lie in [-119.917, 119.917] (m/s: the unambiguous speed lambda / (4 T_O) of the "
            "scenario), got 150.0",
        ),
        (
            dict(fixed_angles_deg=[-30.0], fixed_ranges_m=[50.0], fixed_speeds_mps=[float("nan")]),
            "entries must each be in [-1e5, 1e5] (m/s; and within the scenario's unambiguous speed), got nan (entry 0)",
        ),
        (
            dict(fixed_angles_deg=[-30.0], fixed_ranges_m=[50.0], fixed_speeds_mps=[1.0, 2.0]),
            "must be empty (static targets) or have 1 entries, got 2",
        ),
        (dict(fixed_speeds_mps=[3.0]), "needs fixed targets (fixed_angles_deg, fixed_ranges_m), got 1 speeds"),
    ],
)
def test_bad_fixed_speeds_are_refused_naming_the_parameter_and_its_range(sc, kw, text):
    with pytest.raises(BlockParameterError) as err:
        isac.ula_channel(sc, **kw)
    assert str(err.value) == f"isac_ula_channel: parameter 'fixed_speeds_mps' {text}"


@pytest.mark.parametrize("gain", [float("nan"), complex(1.0, float("inf"))])
def test_non_finite_fixed_gains_are_refused_naming_them(sc, gain):
    """A NaN or infinite gain is refused by the parameter that carries it (before, the scene's
    own check answered, under the name of fixed_angles_deg)."""
    with pytest.raises(BlockParameterError) as err:
        isac.ula_channel(sc, fixed_angles_deg=[-30.0, 10.0], fixed_ranges_m=[50.0, 70.0], fixed_gains=[1.0, gain])
    assert str(err.value) == (
        f"isac_ula_channel: parameter 'fixed_gains' entries must be finite complex numbers, "
        f"got {complex(gain)!r} (entry 1)"
    )


def test_grc_checks_fixed_speeds_before_the_flowgraph_runs(platform):  # noqa: F811 (the fixture)
    """The channel's GRC file: the generated range assert and the unambiguous speed of the
    scenario (the paper's: 119.917 m/s) refuse a speed; a moving fixed target passes."""
    p = platform
    one = {"fixed_angles_deg": "[-30.0]", "fixed_ranges_m": "[50.0]"}
    _, errors = grc_block(p, "ula_channel", **one, fixed_speeds_mps="[20.0]")
    assert errors == []
    _, errors = grc_block(p, "ula_channel", **one, fixed_speeds_mps="[150.0]")
    assert [e for e in errors if "unambiguous_speed_mps" in e] and not [e for e in errors if "100e3" in e], errors
    _, errors = grc_block(p, "ula_channel", **one, fixed_speeds_mps="[2e5]")
    assert [e for e in errors if "-100e3 <= v <= 100e3" in e], errors
    _, errors = grc_block(p, "ula_channel", **one, fixed_speeds_mps="[1.0, 2.0]")
    assert [e for e in errors if "len(fixed_speeds_mps) in (0, len(fixed_angles_deg))" in e], errors


# --- SigMF: record, then replay ---------------------------------------------------------------------
def test_record_then_replay_gives_the_live_detections_and_speeds(sc, tmp_path):
    """isac-sim's flowgraph with record=DIR writes M-symbol frames (symbol-major, then
    antenna-major) and the truth with its speeds as annotations; the replay of DIR gives every
    frame's live detections, speeds included, and the live sensing scores."""
    import json

    from gnuradio.isac import recording
    from gnuradio.isac.replay import ReplayFlowgraph

    threshold = 1.0e6
    live = {}
    tb = SimFlowgraph(
        sc, N, threshold, record=str(tmp_path / "rec"), on_frame=lambda f, t, d, e: live.__setitem__(f, (t, d))
    )
    tb.run()
    tb.close()
    g = isac.frame_geometry(sc)
    meta = json.loads((tmp_path / "rec" / "rx.sigmf-meta").read_text())
    assert (meta["global"]["isac:symbols"], meta["global"]["isac:frame_samples"]) == (M, M * 16 * 64)
    assert meta["global"]["isac:layout"].startswith("symbol-major, then antenna-major: sample (m*K + k)*S + s")
    frames = Simulator(sc).frames(0, N)
    rx = np.fromfile(tmp_path / "rec" / "rx.sigmf-data", dtype="<c8").reshape((N,) + g.array_shape)
    np.testing.assert_array_equal(rx, frames.y_sensing)  # the channel's frames: the Simulator's, bit for bit
    tx = np.fromfile(tmp_path / "rec" / "tx.sigmf-data", dtype="<c8").reshape((N,) + g.symbol_shape)
    np.testing.assert_array_equal(tx, frames.symbols)
    for f, ann in enumerate(meta["annotations"]):
        assert ann["core:sample_start"] == f * M * 16 * 64
        np.testing.assert_array_equal(ann["isac:speeds_mps"], frames.scenes[f].speeds_mps)
    assert recording.read(tmp_path / "rec").truth[3].speed_mps.tolist() == frames.scenes[3].speeds_mps.tolist()

    got = {}
    rp = ReplayFlowgraph(tmp_path / "rec", sc, threshold, on_frame=lambda f, t, d: got.__setitem__(f, (t, d)))
    rp.run()
    assert sorted(got) == sorted(live) == list(range(N))
    moving = 0
    for f in range(N):
        (t_live, d_live), (t_rep, d_rep) = live[f], got[f]
        np.testing.assert_array_equal(t_rep.speed_mps, t_live.speed_mps)
        assert d_rep.count == d_live.count
        for key in ("angle_deg", "range_m", "speed_mps", "peak"):
            np.testing.assert_array_equal(getattr(d_rep, key), getattr(d_live, key), err_msg=key)
        moving += int(np.count_nonzero(d_rep.speed_mps))
    assert moving > 0
    s_live, s_rep = tb.summary(), rp.summary()
    for key in ("p_md", "p_fa", "gospa", "angle_rmse_deg", "range_rmse_m", "speed_rmse_mps"):
        assert s_rep[key] == pytest.approx(s_live[key], rel=1e-9, nan_ok=True), key


def test_isac_sim_record_then_replay_prints_the_speeds(sc, tmp_path, capsys):
    import re

    from gnuradio.isac.cli import sim as isac_sim

    cfg = tmp_path / "s.toml"
    cfg.write_text(sc.to_toml())
    run = ["--config", str(cfg), "--frames", "4", "--no-progress", "--method", "baseline", "--threshold", "1e6"]
    assert isac_sim.main([*run, "--record", str(tmp_path / "rec")]) == 0
    live = capsys.readouterr().out
    assert isac_sim.main([*run, "--replay", str(tmp_path / "rec")]) == 0
    replayed = capsys.readouterr().out
    lines = re.compile(r"^    (?:truth|detections) .*$", re.M)
    assert lines.findall(replayed) == lines.findall(live) and len(lines.findall(live)) == 8
    assert re.search(r"m/s\)", "".join(lines.findall(live)))  # the speeds are printed
    speed = re.compile(r"speed RMSE = (\S+) m/s")
    assert speed.search(replayed).group(1) == speed.search(live.split("flowgraph:")[1]).group(1)


# --- ZeroMQ: JSON and PMT, isac-subscribe ----------------------------------------------------------------
def expected_line(topic: str, record) -> str:
    """isac-subscribe's line of a truth / detections record of a moving frame: every target with
    its speed (the truth of a frame without targets: none)."""
    targets = "  ".join(
        f"({a:.2f} deg, {r:.1f} m, {v:+.1f} m/s)" for a, r, v in zip(record.angle_deg, record.range_m, record.speed_mps)
    )
    return f"[{topic}] frame {record.frame}: {record.count} targets  {targets or '-'}"


@pytest.mark.parametrize("pmt_mode", [False, True])
def test_isac_subscribe_prints_each_targets_speed(sc, pmt_mode, capsys):
    """isac-sim's publishers (JSON and serialized PMT) on 127.0.0.1 carry the speeds: isac-subscribe
    prints every truth and detection of a moving frame with its speed, and the speed RMSE."""
    import socket
    import threading
    import time

    from gnuradio.isac.cli import subscribe as isac_subscribe

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    seen = {}
    kw = {"zmq_pmt": endpoint} if pmt_mode else {"zmq_json": endpoint}
    tb = SimFlowgraph(sc, N, 1.0e6, on_frame=lambda f, t, d, e: seen.__setitem__(f, (t, d)), **kw)
    argv = [endpoint, "--count", str(3 * N), "--timeout", "20"] + (["--pmt"] if pmt_mode else [])
    sub = threading.Thread(target=isac_subscribe.main, args=(argv,))
    sub.start()
    time.sleep(0.7)  # PUB/SUB: the subscription reaches the publisher before the frames flow
    tb.run()
    sub.join(timeout=60)
    tb.close()
    assert not sub.is_alive()
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 * N, out
    speeds = 0
    for f, (truth, det) in seen.items():
        assert expected_line("truth", truth) in out
        assert expected_line("detections", det) in out
        speeds += det.count
    assert speeds > 0
    rmse = tb.summary()["speed_rmse_mps"]
    assert out[-1].endswith(f" speed RMSE={rmse} m/s") and out[-1].startswith(f"[metrics] {N} frames:")


def test_isac_subscribe_prints_speeds_only_where_a_frame_has_them():
    """One-symbol frames: detections measure no speed (null) and static truth has none to show: the
    lines of before; a malformed speed vector is reported and skipped."""
    from gnuradio.isac.cli import subscribe as S

    det1 = {"frame": 0, "count": 1, "angle_deg": [-30.0], "range_m": [50.0], "speed_mps": [None]}
    truth0 = {"frame": 0, "count": 2, "angle_deg": [-31.5, 20.25], "range_m": [40.0, 120.5], "speed_mps": [0.0, 0.0]}
    truth_moving = {**truth0, "speed_mps": [12.25, 0.0]}
    old = {"frame": 0, "count": 1, "angle_deg": [-30.0], "range_m": [50.0]}  # a publisher without speeds
    metrics = {"frames": 1, "p_md": 0.5, "p_fa": 0.0, "gospa": 12.5, "ser": 0.0, "speed_rmse_mps": None}
    for topic, body in (("detections", det1), ("truth", truth0), ("truth", truth_moving), ("detections", old)):
        S.check(topic, body)
    assert S._line("detections", det1) == "[detections] frame 0: 1 targets  (-30.00 deg, 50.0 m)"
    assert S._line("detections", old) == "[detections] frame 0: 1 targets  (-30.00 deg, 50.0 m)"
    assert S._line("truth", truth0) == "[truth] frame 0: 2 targets  (-31.50 deg, 40.0 m)  (20.25 deg, 120.5 m)"
    assert S._line("truth", truth_moving) == (
        "[truth] frame 0: 2 targets  (-31.50 deg, 40.0 m, +12.2 m/s)  (20.25 deg, 120.5 m, +0.0 m/s)"
    )
    assert S._line("metrics", metrics) == "[metrics] 1 frames: p_md=0.5 p_fa=0.0 GOSPA=12.5 SER=0.0"
    for bad in ({**det1, "speed_mps": "fast"}, {**det1, "speed_mps": [1.0, 2.0]}, {**det1, "speed_mps": ["x"]}):
        with pytest.raises(S.MalformedMessage, match="speed_mps"):
            S.check("detections", bad)


# --- the map stream: angle-delay and range-velocity maps of M symbols -------------------------------------
def map_frames(sc, frames, points=(30, 20), db=False, connect_rv=True):
    """Y~ frames (B, M, K, S) through isac.angle_delay_map_stream (baseline array); the two outputs
    as (B, angles, delays) and (B, speeds, delays), the second None when not connected."""
    from gnuradio import blocks, gr

    g = isac.frame_geometry(sc)
    blk = isac.angle_delay_map_stream(sc, map_points=points, db=db)
    tb = gr.top_block()
    y = np.ascontiguousarray(frames, np.complex64)
    sinks = [blocks.vector_sink_f(blk.size), blocks.vector_sink_f(blk.rv_size)]
    tb.connect(blocks.vector_source_c(y.ravel().tolist(), False, g.array_items), blk, sinks[0])
    if connect_rv:
        tb.connect((blk, 1), sinks[1])
    tb.run()
    n = len(y)
    ad = np.reshape(sinks[0].data(), (n, points[0], points[1]))
    rv = np.reshape(sinks[1].data(), (n, blk.speed_points, points[1])) if connect_rv else None
    return blk, ad, rv


def explicit_map(sc, y, points):
    """L3 = |sum_mks conj(a_k(theta_i)) Y~[m,k,s] conj(rho_s(tau_j)) conj(d_m(v_l))|^2 / (K S M), built from
    the model's atoms on the display grids and the receiver's speed grid: (B, angles, delays, speeds)."""
    from gnuradio.isac.model.array import scenario_nominal_array
    from gnuradio.isac.model.dictionaries import doppler_speeds
    from gnuradio.isac.model.doppler import doppler_phases
    from gnuradio.isac.model.grids import angle_grid, delay_grid
    from gnuradio.isac.model.ofdm import delay_vector

    g = isac.frame_geometry(sc)
    a = scenario_nominal_array(sc).steering(angle_grid(sc.target_sector_rad, points[0]))  # (K, Na)
    rho = delay_vector(delay_grid(sc.range_interval_m, points[1]), g.subcarriers, sc.ofdm["spacing_hz"])  # (Nd, S)
    v = doppler_speeds(sc)
    d = doppler_phases(v, g.symbols, sc.symbol_duration_s, sc.get("array.carrier_hz"))  # (Nv, M)
    c = np.einsum("ki,bmks,js,lm->bijl", a.conj(), y.astype(np.complex128), rho.conj(), d.conj(), optimize=True)
    return np.abs(c) ** 2 / g.array_items, v


def test_map_stream_of_m_symbols_is_the_maximum_of_the_3d_map_over_speed_and_angle(sc):
    """Out 0 is max over speed, out 1 (speed-major) max over angle of the angle-delay-Doppler map
    / (K S M), against the explicit correlation with the model's atoms; dB is 10 log10 of it; an
    unconnected out 1 leaves out 0 unchanged."""
    frames = Simulator(sc).frames(0, 3)
    from gnuradio.isac.model.reciprocal import reciprocal_filter

    y = reciprocal_filter(frames.y_sensing, frames.symbols)
    blk, ad, rv = map_frames(sc, y)
    L3, speeds = explicit_map(sc, y, (30, 20))
    np.testing.assert_array_equal(blk.speeds_mps, speeds)
    assert blk.speed_points == sc.doppler_points == isac.speed_points(sc) == len(speeds) > 1
    np.testing.assert_allclose(ad, L3.max(axis=3), rtol=2e-4, atol=1e-4 * L3.max())
    np.testing.assert_allclose(rv, L3.max(axis=1).transpose(0, 2, 1), rtol=2e-4, atol=1e-4 * L3.max())
    # the strongest cell: the same in both views, the map's maximum
    np.testing.assert_allclose(ad.max(axis=(1, 2)), rv.max(axis=(1, 2)), rtol=1e-6)
    _, ad_db, rv_db = map_frames(sc, y, db=True)
    np.testing.assert_allclose(ad_db, 10 * np.log10(np.maximum(ad, 1e-12)), atol=2e-3)
    np.testing.assert_allclose(rv_db, 10 * np.log10(np.maximum(rv, 1e-12)), atol=2e-3)
    _, ad_only, none = map_frames(sc, y, connect_rv=False)
    assert none is None
    np.testing.assert_array_equal(ad_only, ad)


def test_map_stream_of_one_symbol_frames_gives_the_map_as_before_and_the_range_profile_on_out_1():
    """M = 1 (the paper's frame, here with targets moving at -30 .. 30 m/s that one symbol cannot
    measure): out 0 is the 2-D map (10) / (K S) bit for bit as the model computes it, against the
    explicit correlation; out 1 has the one speed 0 and is its maximum over the angles, a range
    profile (vlen = delays)."""
    from gnuradio.isac.model.angle_delay import angle_delay_map
    from gnuradio.isac.model.array import scenario_nominal_array
    from gnuradio.isac.model.grids import angle_grid, delay_grid
    from gnuradio.isac.model.ofdm import delay_vector
    from gnuradio.isac.model.reciprocal import reciprocal_filter

    one = moving_scenario({"ofdm.symbols": 1})
    frames = Simulator(one).frames(0, 3)
    y = reciprocal_filter(frames.y_sensing, frames.symbols)
    assert y.shape == (3, 16, 64)
    blk, ad, rv = map_frames(one, y)
    assert blk.speed_points == one.doppler_points == isac.speed_points(one) == 1 and blk.rv_size == 20
    np.testing.assert_array_equal(blk.speeds_mps, [0.0])
    assert rv.shape == (3, 1, 20)
    D = blk.dictionaries
    want = angle_delay_map(y.astype(np.complex64), D.phi_a, D.phi_d) / np.float32(16 * 64)
    np.testing.assert_array_equal(ad, want)
    np.testing.assert_array_equal(rv[:, 0], want.max(axis=1))
    a = scenario_nominal_array(one).steering(angle_grid(one.target_sector_rad, 30))
    rho = delay_vector(delay_grid(one.range_interval_m, 20), 64, one.ofdm["spacing_hz"])
    L = np.abs(np.einsum("ki,bks,js->bij", a.conj(), y.astype(np.complex128), rho.conj())) ** 2 / (16 * 64)
    np.testing.assert_allclose(ad, L, rtol=2e-4, atol=1e-4 * L.max())
    np.testing.assert_allclose(rv[:, 0], L.max(axis=1), rtol=2e-4, atol=1e-4 * L.max())


def test_map_stream_normalisation_noise_at_n0_and_m_times_the_one_symbol_peak():
    """One speed (a static scenario of M = 8 symbols): out 0 is the 3-D map itself. Noise-only
    frames average N0 per cell; a static echo repeated over the M symbols peaks M times higher
    than its one-symbol map, cell by cell (the coherent gain), and out 1 is the range profile."""
    static = moving_scenario({"scene.speed_mps": [0.0, 0.0], "scene.noise_power": 2.0})
    one = moving_scenario({"scene.speed_mps": [0.0, 0.0], "scene.noise_power": 2.0, "ofdm.symbols": 1})
    rng = np.random.default_rng(3)
    shape = (20, M, 16, 64)
    noise = np.sqrt(2.0 / 2) * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
    blk, ad, rv = map_frames(static, noise)
    assert blk.speed_points == 1 and rv.shape == (20, 1, 20)
    assert ad.mean() == pytest.approx(2.0, rel=0.05)  # N0
    np.testing.assert_allclose(rv[:, 0], ad.max(axis=1), rtol=1e-6)
    y1 = Simulator(one).frames(2, 1)
    from gnuradio.isac.model.reciprocal import reciprocal_filter

    echo = reciprocal_filter(y1.y_sensing, y1.symbols)  # (1, K, S) incl. noise: any frame will do
    _, ad1, _ = map_frames(one, echo)
    _, adm, _ = map_frames(static, np.repeat(echo[:, None], M, axis=1))
    np.testing.assert_allclose(adm, M * ad1, rtol=1e-4, atol=1e-6 * ad1.max())


def test_map_stream_of_a_huge_m_symbol_frame_is_that_of_the_frame_at_the_usual_scale(sc):
    from gnuradio.isac.model.reciprocal import reciprocal_filter

    frames = Simulator(sc).frames(0, 2)
    y = reciprocal_filter(frames.y_sensing, frames.symbols)
    _, ad, rv = map_frames(sc, y, db=True)
    _, ad_big, rv_big = map_frames(sc, y * np.float32(2.0**60), db=True)
    assert np.all(np.isfinite(ad_big)) and np.all(np.isfinite(rv_big))
    np.testing.assert_allclose(ad_big, ad + 10 * np.log10(2.0**120), atol=2e-3)
    np.testing.assert_allclose(rv_big, rv + 10 * np.log10(2.0**120), atol=2e-3)


def test_map_stream_flags_a_failing_m_symbol_frame_on_both_outputs_and_goes_on(sc):
    """A frame whose map raises: NaN on both outputs, counted in failed_frames, the other frames
    mapped as usual (the chunk is retried frame by frame)."""
    from gnuradio import blocks, gr

    from gnuradio.isac.model.reciprocal import reciprocal_filter

    frames = Simulator(sc).frames(0, 6)
    y = reciprocal_filter(frames.y_sensing, frames.symbols).astype(np.complex64)
    y[2, 0, 0, 0] = 12345.0  # the frame the patched map refuses
    g = isac.frame_geometry(sc)
    blk = isac.angle_delay_map_stream(sc, map_points=(30, 20), db=False)
    good = blk.maps

    def maps(frames_in):
        if np.any(frames_in[:, 0, 0, 0] == 12345.0):
            raise RuntimeError("this frame's map failed")
        return good(frames_in)

    blk.maps = maps
    tb = gr.top_block()
    s0, s1 = blocks.vector_sink_f(blk.size), blocks.vector_sink_f(blk.rv_size)
    tb.connect(blocks.vector_source_c(y.ravel().tolist(), False, g.array_items), blk, s0)
    tb.connect((blk, 1), s1)
    tb.run()
    ad, rv = np.reshape(s0.data(), (6, -1)), np.reshape(s1.data(), (6, -1))
    assert blk.failed_frames == 1 and blk.fatal_error is None
    assert np.all(np.isnan(ad[2])) and np.all(np.isnan(rv[2]))
    want_ad, want_rv = good(np.delete(y, 2, axis=0))
    np.testing.assert_array_equal(np.delete(ad, 2, axis=0), want_ad.reshape(5, -1))
    np.testing.assert_array_equal(np.delete(rv, 2, axis=0), want_rv.reshape(5, -1))


# --- GRC: apps/*.grc with M > 1 set in the ISAC Scenario block ------------------------------------------
#: the ISAC Scenario block's fields of moving_scenario() (run.seed: the flowgraphs' --seed)
FIELDS = {
    "array_antennas": "16",
    "ofdm_subcarriers": "64",
    "ofdm_symbols": str(M),
    "scene_speed_mps": "[-30.0, 30.0]",
    "scene_max_targets": "3",
    "receiver_angle_grid": "60",
    "receiver_delay_grid": "50",
    "run_calibration_frames": "48",
    "transmitter_eta": "0.8",
}


def compile_moving(name: str, tmp_path, **fields) -> "Path":  # noqa: F821
    """apps/<name>.grc with the moving scenario in its ISAC Scenario block, compiled by grcc
    with this Python: the generated script's path."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from test_blocks_grc import REPO, set_fields

    grcc = shutil.which("grcc")
    assert grcc is not None, "grcc (GNU Radio Companion) is installed by tools/setup.sh"
    grc = tmp_path / f"{name}.grc"
    grc.write_text(set_fields((REPO / "apps" / f"{name}.grc").read_text(), "scenario", **{**FIELDS, **fields}))
    env = {**__import__("os").environ, "GRC_BLOCKS_PATH": str(REPO / "grc")}
    res = subprocess.run(
        [sys.executable, grcc, "-o", str(tmp_path), str(grc)], env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return Path(tmp_path) / f"{name}.py"


def run_script(script, *args, timeout=300, env=None):
    import os
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=script.parent,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1", **(env or {})},
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    return out


def metrics_line(out: str, frames: int) -> dict:
    import re

    line = [ln for ln in out.splitlines() if f"{frames} frames:" in ln][-1]
    return {k: float(v) for k, v in re.findall(r"(p_md|p_fa|GOSPA|SER|speed RMSE)=([-+0-9.e]+|nan)", line)}


def test_headless_grc_with_m_symbols_matches_evaluate(sc, tmp_path):
    """apps/isac_headless.grc with ofdm.symbols = 8 and moving targets set in its Scenario block:
    the ports follow the frame geometry, and the metrics are evaluate's on the same frames."""
    script = compile_moving("isac_headless", tmp_path)
    got = metrics_line(run_script(script, "-n", N, "--seed", 11, "--threshold", "1e6"), N)
    want = evaluate(sc, "baseline", threshold=1.0e6, progress=False)
    assert got["p_md"] == pytest.approx(want["p_md"], abs=1e-4) and got["p_fa"] == pytest.approx(want["p_fa"], abs=1e-4)
    assert got["GOSPA"] == pytest.approx(want["gospa"], abs=1e-2)
    assert got["SER"] == pytest.approx(want["ser"], rel=1e-2, abs=1e-9)
    assert got["speed RMSE"] == pytest.approx(want["speed_rmse_mps"], abs=1e-3) and want["speed_rmse_mps"] > 0


def test_replay_grc_with_m_symbols_scores_like_the_live_run(sc, tmp_path):
    tb = SimFlowgraph(sc, 5, 1.0e6, record=str(tmp_path / "rec"))
    tb.run()
    tb.close()
    want = tb.summary()
    script = compile_moving("isac_replay", tmp_path)
    got = metrics_line(run_script(script, "-d", tmp_path / "rec", "--threshold", "1e6"), 5)
    assert got["p_md"] == pytest.approx(want["p_md"], abs=1e-4) and got["p_fa"] == pytest.approx(want["p_fa"], abs=1e-4)
    assert got["GOSPA"] == pytest.approx(want["gospa"], abs=1e-2)
    assert got["speed RMSE"] == pytest.approx(want["speed_rmse_mps"], abs=1e-3)


def test_zmq_grc_with_m_symbols_publishes_detections_with_speeds(tmp_path):
    import pmt
    import zmq
    from test_blocks_grc import free_port

    script = compile_moving("isac_zmq", tmp_path)
    det_addr, met_addr = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    ctx = zmq.Context()
    subs = []
    for addr in (det_addr, met_addr):
        sock = ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.setsockopt(zmq.RCVTIMEO, 30000)
        sock.connect(addr)
        subs.append(sock)
    import subprocess
    import sys

    args = ["-n", "0", "--seed", "11", "--detections-address", det_addr, "--metrics-address", met_addr]
    proc = subprocess.Popen(
        [sys.executable, str(script), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path
    )
    try:
        dets = [pmt.to_python(pmt.deserialize_str(subs[0].recv())) for _ in range(12)]
        metrics = pmt.to_python(pmt.deserialize_str(subs[1].recv()))
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode(errors="replace")
        for sock in subs:
            sock.close(linger=0)
        ctx.term()
    measured = [v for d in dets for v in np.atleast_1d(d["speed_mps"])]
    assert all(len(np.atleast_1d(d["speed_mps"])) == d["count"] for d in dets), out
    assert measured and np.all(np.isfinite(measured)) and np.all(np.abs(measured) <= 30.0), out
    assert "speed_rmse_mps" in metrics


GUI_M_RUNNER = """
import importlib.util, sys, threading, time
import numpy as np
from PyQt5 import Qt, QtCore, QtGui
spec = importlib.util.spec_from_file_location("isac_gui", sys.argv[1])
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
app = Qt.QApplication(sys.argv[:1])
tb = mod.isac_gui(frames=int(sys.argv[2]), seed=11, frame_rate=20)
tb.resize(1800, 1000)
tb.start()
tb.show()
blk = tb.isac_map_display_0
rv, xy, ad = blk.rv_widget(), blk.xy_widget(), blk.map_widget()
done = threading.Thread(target=tb.wait)
done.start()
t0 = time.monotonic()
while done.is_alive() and time.monotonic() - t0 < 120:  # the QTimers refresh while it runs
    app.processEvents(QtCore.QEventLoop.AllEvents, 50)
    time.sleep(0.01)
print("ENDED", int(not done.is_alive()), flush=True)
app.processEvents(QtCore.QEventLoop.AllEvents, 50)
ad.refresh(); xy.refresh()  # the last frame; the angle-delay picture refreshes the range-velocity one
img = rv.grab().toImage()
white, near = 0, [(dx, dy) for dx in range(-9, 10) for dy in range(-9, 10)]
for v, r in [] if rv.truth is None else zip(rv.truth["speed_mps"], rv.truth["range_m"]):
    x, y = rv.to_pixel(v, r)
    white += sum(img.pixelColor(int(x) + dx, int(y) + dy) == QtGui.QColor(255, 255, 255) for dx, dy in near)
arrows = sum(len(xy.arrows(r[1], r[3])) for r in xy.rows)
speeds = [] if rv.truth is None else [float(v) for v in rv.truth["speed_mps"]]
print("RV", rv.frame, ad.frame, white, arrows, "SPEEDS", *speeds, flush=True)
if len(sys.argv) > 3:
    tb.grab().save(sys.argv[3])
"""


def test_gui_grc_with_m_symbols_shows_the_range_velocity_map_and_arrows(sc, tmp_path):
    """apps/isac_gui.grc with M = 8 (offscreen Qt), run to its end: the display gets both maps of
    the map block; its range-velocity picture shows the last frame, the one the angle-delay
    picture shows, with the Simulator's true speeds of that frame as white circles at (speed,
    range), and the x-y scatter has an arrow on each moving target. The frame count is chosen so
    that the last frame has targets. With ISAC_GUI_MOVING_SCREENSHOT=path the window is saved
    there (docs/figures/gui_moving.png is made so)."""
    import os

    import gnuradio.qtgui  # noqa: F401  (part of Debian gnuradio)

    sim = Simulator(sc)
    frames = next(n for n in range(40, 80) if sim.frames(n - 1, 1).true_counts[0] > 0)
    want = sim.frames(frames - 1, 1).scenes[0].speeds_mps
    script = compile_moving("isac_gui", tmp_path, transmitter_eta="eta")  # the flowgraph's slider
    runner = tmp_path / "run_gui.py"
    runner.write_text(GUI_M_RUNNER)
    shot = [os.environ["ISAC_GUI_MOVING_SCREENSHOT"]] if os.environ.get("ISAC_GUI_MOVING_SCREENSHOT") else []
    env = {"QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(tmp_path)}
    out = run_script(runner, script, frames, *shot, env=env)
    assert "Traceback" not in out and "ENDED 1" in out, out
    row = next(ln for ln in out.splitlines() if ln.startswith("RV")).split()
    rv_frame, ad_frame, white, arrows = row[1:5]
    assert rv_frame == ad_frame == str(frames - 1), out  # both pictures show the last frame
    np.testing.assert_allclose([float(v) for v in row[6:]], want, rtol=1e-12)
    assert np.all(want != 0.0)
    assert int(white) >= 12 * len(want), out  # a white circle at each (speed, range)
    assert int(arrows) >= len(want), out  # the last frame's targets move: an arrow each, at least


# --- the stream unit: whole frames of M symbols per item, and the memory of their buffers -------------------
@pytest.mark.parametrize("symbols", [1, M])
def test_stream_items_are_whole_frames_and_the_buffers_hold_32_array_and_128_symbol_frames(symbols):
    """docs/blocks.md, "The stream unit for frames of M OFDM symbols": every output of isac-sim's
    chain carries one whole frame per item (8 M K S bytes for the array frames, 8 M S complex and
    4 M S int32 for the symbol frames), and GNU Radio allocates each output 2 x 32 KiB / item size
    items, at least 2, raised to the block's minimum (32 array frames, 128 symbol frames):
    measured after a run, max_output_buffer(port) being the buffer GNU Radio allocated."""
    from gnuradio.isac.blocks.base import STREAM_FRAMES, SYMBOL_FRAMES
    from gnuradio.isac.resources import stream_buffer_bytes

    sc = moving_scenario({"ofdm.symbols": symbols})
    K, S = 16, 64
    tb = SimFlowgraph(sc, 2, 1.0e9)
    tb.run()
    tb.close()
    got = {}
    for (blk, port), _ in tb.edges:
        got[(blk.name(), port)] = (blk.output_signature().sizeof_stream_items()[port], blk.max_output_buffer(port))
    array, cplx, ints = 8 * symbols * K * S, 8 * symbols * S, 4 * symbols * S

    def allocated(size, minimum):
        return max(2 * 32768 // size, 2, minimum)

    want = {
        ("isac_message_source", 0): (ints, allocated(ints, SYMBOL_FRAMES)),
        ("isac_message_source", 1): (cplx, allocated(cplx, SYMBOL_FRAMES)),
        ("isac_precoder", 0): (array, allocated(array, STREAM_FRAMES)),
        ("isac_ula_channel", 0): (array, allocated(array, STREAM_FRAMES)),
        ("isac_ula_channel", 1): (cplx, allocated(cplx, SYMBOL_FRAMES)),
        ("isac_ula_channel", 2): (cplx, allocated(cplx, SYMBOL_FRAMES)),
        ("isac_reciprocal_filter", 0): (array, allocated(array, STREAM_FRAMES)),
        ("isac_comm_receiver", 0): (ints, allocated(ints, SYMBOL_FRAMES)),
    }
    assert got == want
    assert (STREAM_FRAMES, SYMBOL_FRAMES) == (32, 128)
    total = sum(size * items for size, items in got.values())
    # isac-sim's memory check counts these buffers (resources.stream_buffer_bytes), to the byte
    assert total == stream_buffer_bytes(sc)
    if symbols > 1:  # items large enough for the blocks' minima to decide: the formula of docs/blocks.md
        assert total == symbols * (32 * 3 * 8 * K * S + 128 * (3 * 8 * S + 2 * 4 * S))
