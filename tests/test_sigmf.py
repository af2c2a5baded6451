"""SigMF recordings (recording.py, isac.sigmf_sink / isac.sigmf_source) and their replay
(replay.py, isac-sim --record / --replay, apps/isac_replay.grc): the recordings validate with
the sigmf package, hold the flowgraph's frames in the documented layout with the scenario's
metadata and the truth as annotations, and replay to the live run's detections; recordings
that do not fit the receiver are refused, truncated ones stop at the last whole frame."""

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from gnuradio import blocks, gr, isac
from test_sim_flowgraph import small_stream_scenario

from gnuradio.isac import BlockParameterError, recording, transceiver, weights
from gnuradio.isac.cli import sim as isac_sim
from gnuradio.isac.config import Scenario
from gnuradio.isac.flowgraph import SimFlowgraph
from gnuradio.isac.model.array import draw_spacings
from gnuradio.isac.replay import ReplayFlowgraph
from gnuradio.isac.simulation import Simulator
from gnuradio.isac.transceiver import load_weights
from gnuradio.isac.version import __version__

REPO = Path(__file__).resolve().parents[1]
N = 8
THRESHOLD = 2.0e4  # detects targets in the small scenario below (tests/test_sim_flowgraph.py)


@pytest.fixture(scope="module")
def sc():
    return small_stream_scenario()


def record(sc, directory, frames=N, threshold=THRESHOLD, **kw):
    """Run SimFlowgraph with record=directory; returns (flowgraph, {frame: (truth, detections)})."""
    seen = {}
    tb = SimFlowgraph(
        sc, frames, threshold, record=str(directory), on_frame=lambda f, t, d, e: seen.__setitem__(f, (t, d)), **kw
    )
    tb.run()
    tb.close()
    return tb, seen


@pytest.fixture(scope="module")
def live(sc, tmp_path_factory):
    directory = tmp_path_factory.mktemp("rec") / "baseline"
    tb, seen = record(sc, directory)
    return directory, tb, seen


def replay(sc, directory, threshold=THRESHOLD, **kw):
    got = {}
    tb = ReplayFlowgraph(directory, sc, threshold, on_frame=lambda f, t, d: got.__setitem__(f, (t, d)), **kw)
    tb.run()
    return tb, got


def assert_same_detections(a, b) -> None:
    """Two messages.Detections records: the same detections."""
    assert a.count == b.count
    for key in ("angle_deg", "range_m", "peak"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)


def copy_recording(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_meta(path: Path, change) -> None:
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def test_version_is_the_cmake_project_version():
    m = re.search(r"project\(gr-isac VERSION (\S+)", (REPO / "CMakeLists.txt").read_text())
    assert m and m.group(1) == __version__


# --- the recordings --------------------------------------------------------------------------
def test_recordings_validate_with_the_sigmf_package(live):
    from sigmf import sigmffile, validate

    directory = live[0]
    for kind in ("rx", "tx"):
        meta = json.loads((directory / f"{kind}.sigmf-meta").read_text())
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. an undeclared extension namespace
            validate.validate(meta)
        sf = sigmffile.fromfile(str(directory / f"{kind}.sigmf-meta"))  # checks core:sha512 of the data
        sf.validate()
        assert sf.get_global_field("core:datatype") == "cf32_le"
    # the sigmf package's validator refuses a broken one, and so does the reader
    broken = directory.parent / "broken.sigmf-meta"
    meta = json.loads((directory / "rx.sigmf-meta").read_text())
    meta["annotations"][0]["core:sample_start"] = -1
    broken.write_text(json.dumps(meta))
    shutil.copy(directory / "rx.sigmf-data", directory.parent / "broken.sigmf-data")
    with pytest.raises(Exception):
        validate.validate(meta)
    with pytest.raises(recording.RecordingError, match="not valid SigMF metadata at annotations/0"):
        recording.read(broken)


def test_metadata_describes_the_scenario_and_the_array(sc, live):
    directory = live[0]
    K, S = sc.array["antennas"], sc.ofdm["subcarriers"]
    for kind, n in (("rx", K * S), ("tx", S)):
        meta = json.loads((directory / f"{kind}.sigmf-meta").read_text())
        g = meta["global"]
        assert g["core:sample_rate"] == S * sc.ofdm["spacing_hz"]
        assert meta["captures"] == [{"core:sample_start": 0, "core:frequency": sc.array["carrier_hz"]}]
        assert {"name": "isac", "version": __version__, "optional": True} in g["core:extensions"]
        assert (g["isac:kind"], g["isac:antennas"], g["isac:subcarriers"], g["isac:frame_samples"]) == (kind, K, S, n)
        assert g["isac:frames"] == N and g["isac:version"] == __version__ and __version__ in g["core:recorder"]
        assert g["isac:nominal_spacing_m"] == pytest.approx(sc.wavelength_m / 2, rel=1e-12)
        assert (g["isac:impairment"], g["isac:spacing_std_m"], g["isac:impairment_seed"]) == (
            sc.array["impairment"],
            sc.array["spacing_std_m"],
            sc.array["impairment_seed"],
        )
        np.testing.assert_array_equal(
            g["isac:true_spacings_m"],
            draw_spacings(K, sc.wavelength_m, sc.array["spacing_std_m"], sc.array["impairment_seed"]),
        )
        assert g["isac:scenario_hash"] == sc.hash() and Scenario.from_dict(g["isac:scenario"]).hash() == sc.hash()
        assert (g["isac:method"], g["isac:receiver"], g["isac:threshold"]) == ("baseline", "omp", THRESHOLD)
        assert (directory / f"{kind}.sigmf-data").stat().st_size == N * n * 8


def test_data_are_the_frames_antenna_major_and_annotations_the_truth(sc, live):
    directory, _, seen = live
    K, S = sc.array["antennas"], sc.ofdm["subcarriers"]
    frames = Simulator(sc, precoder=transceiver.build(sc, "baseline").precoder(sc)).frames(0, N)
    rx = np.fromfile(directory / "rx.sigmf-data", dtype="<c8").reshape(N, K * S)
    tx = np.fromfile(directory / "tx.sigmf-data", dtype="<c8").reshape(N, S)
    np.testing.assert_array_equal(tx, frames.symbols)  # x(m), bit for bit
    # sample k*S + s of a frame is antenna k, subcarrier s: Y_r of (1) to float32 rounding
    np.testing.assert_allclose(rx.reshape(N, K, S), frames.y_sensing, rtol=0, atol=1e-4)
    assert np.abs(rx.reshape(N, K, S) - frames.y_sensing.transpose(0, 2, 1).reshape(N, K, S)).max() > 1.0
    anns = json.loads((directory / "rx.sigmf-meta").read_text())["annotations"]
    assert [a["core:sample_start"] for a in anns] == [f * K * S for f in range(N)]
    assert all(a["core:sample_count"] == K * S and a["core:label"] == f"frame {f}" for f, a in enumerate(anns))
    for f, a in enumerate(anns):
        truth = seen[f][0]
        assert a["isac:frame"] == f and a["isac:count"] == truth.count == frames.scenes[f].count
        np.testing.assert_array_equal(a["isac:angles_deg"], truth.angle_deg)
        np.testing.assert_array_equal(a["isac:ranges_m"], truth.range_m)
    assert json.loads((directory / "tx.sigmf-meta").read_text())["annotations"] == []


# --- replay -----------------------------------------------------------------------------------
def test_replay_gives_the_live_detections_and_scores(sc, live):
    directory, tb_live, seen = live
    tb, got = replay(sc, directory)
    assert tb.annotated and tb.frames == N and tb.warnings == []
    assert sorted(got) == list(range(N))
    assert sum(d.count for _, d in got.values()) > 0
    for f in range(N):
        truth, det = got[f]
        assert_same_detections(det, seen[f][1])
        np.testing.assert_array_equal(truth.angle_deg, seen[f][0].angle_deg)
    s, want = tb.summary(), tb_live.summary()
    assert s["frames"] == want["frames"] == N
    for key in ("p_md", "p_fa", "gospa", "angle_rmse_deg", "range_rmse_m"):
        assert s[key] == pytest.approx(want[key], rel=1e-12, nan_ok=True), key


def test_replay_with_learned_weights_and_domp_matches_the_live_run(tmp_path):
    """The default scenario with the shipped impairment-learning weights (a learned method at
    both ends) and the dOMP receiver: replay = live."""
    path = weights.default_weights_path()
    assert path, "the shipped weights data/weights/impairment_default.safetensors are missing"
    sc = Scenario.default()
    w = load_weights(path, sc)
    kw = dict(method="impairment", weights=w, receiver="domp")
    _, seen = record(sc, tmp_path / "rec", frames=4, threshold=2.0e5, **kw)
    meta = json.loads((tmp_path / "rec" / "rx.sigmf-meta").read_text())["global"]
    assert (meta["isac:method"], meta["isac:receiver"], meta["isac:weights"]) == ("impairment", "domp", Path(path).name)
    tb, got = replay(sc, tmp_path / "rec", threshold=2.0e5, **kw)
    assert sum(d.count for _, d in got.values()) > 0
    for f in range(4):
        assert_same_detections(got[f][1], seen[f][1])


def test_replay_without_annotations_reports_detections_only(sc, live, tmp_path):
    directory, _, seen = live
    bare = copy_recording(directory, tmp_path / "bare")
    edit_meta(bare / "rx.sigmf-meta", lambda m: m.__setitem__("annotations", []))
    tb, got = replay(sc, bare)
    assert not tb.annotated and sorted(got) == list(range(N))
    for f in range(N):
        assert got[f][0] is None
        assert_same_detections(got[f][1], seen[f][1])
    s = tb.summary()
    assert s["frames"] == 0 and s["replayed"] == N


@pytest.mark.parametrize(
    "override, key",
    [
        ({"array.antennas": 8}, "isac:antennas"),
        ({"ofdm.subcarriers": 32}, "isac:subcarriers"),
        ({"array.carrier_hz": 28e9}, "isac:carrier_hz"),
        ({"ofdm.spacing_hz": 240e3}, "isac:spacing_hz"),
    ],
)
def test_a_recording_that_does_not_fit_the_receiver_is_refused(sc, live, override, key):
    with pytest.raises(BlockParameterError, match=rf"isac_sigmf_source: parameter 'path' .*{key} = .* but "):
        ReplayFlowgraph(live[0], sc.with_overrides(override), THRESHOLD)


def test_a_recording_of_another_sample_format_is_refused(sc, live, tmp_path):
    other = copy_recording(live[0], tmp_path / "ci16")
    edit_meta(other / "rx.sigmf-meta", lambda m: m["global"].__setitem__("core:datatype", "ci16_le"))
    with pytest.raises(recording.RecordingError, match="core:datatype is 'ci16_le', but the receiver takes 'cf32_le'"):
        recording.read(other, "rx")
    with pytest.raises(BlockParameterError, match="core:datatype is 'ci16_le'"):
        ReplayFlowgraph(other, sc, THRESHOLD)
    # K or S of the metadata inconsistent with the frame size
    other2 = copy_recording(live[0], tmp_path / "odd")
    edit_meta(other2 / "tx.sigmf-meta", lambda m: m["global"].__setitem__("isac:frame_samples", 7))
    with pytest.raises(recording.RecordingError, match="isac:frame_samples = 7"):
        recording.read(other2, "tx")


def test_a_modified_data_file_is_refused(live, tmp_path):
    other = copy_recording(live[0], tmp_path / "mod")
    data = bytearray((other / "rx.sigmf-data").read_bytes())
    data[100] ^= 0xFF
    (other / "rx.sigmf-data").write_bytes(bytes(data))
    with pytest.raises(recording.RecordingError, match="SHA-512 differs from core:sha512"):
        recording.read(other, "rx")


def test_a_truncated_data_file_stops_at_the_last_whole_frame_and_says_so(sc, live, tmp_path):
    directory, _, seen = live
    K, S = sc.array["antennas"], sc.ofdm["subcarriers"]
    cut = copy_recording(directory, tmp_path / "cut")
    frame_bytes = K * S * 8
    with open(cut / "rx.sigmf-data", "r+b") as fh:
        fh.truncate(3 * frame_bytes + frame_bytes // 2)  # 3.5 frames
    rec = recording.read(cut, "rx")
    assert rec.frames == 3 and sorted(rec.truth) == [0, 1, 2]
    assert len(rec.warnings) == 1
    assert re.search(
        r"rx\.sigmf-data is truncated .*3 whole frames of \d+ bytes \+ \d+ bytes\): replaying its 3 "
        rf"whole frames of the {N} recorded",
        rec.warnings[0],
    ), rec.warnings[0]
    tb, got = replay(sc, cut)
    assert tb.frames == 3 and sorted(got) == [0, 1, 2]
    assert any("truncated" in w for w in tb.warnings)
    assert any("replaying the first 3" in w for w in tb.warnings)  # tx has all N frames
    for f in range(3):
        assert_same_detections(got[f][1], seen[f][1])
    # cut at a frame boundary: the metadata's isac:frames tells
    with open(cut / "rx.sigmf-data", "r+b") as fh:
        fh.truncate(2 * frame_bytes)
    rec = recording.read(cut, "rx")
    assert rec.frames == 2 and "replaying its 2 whole frames" in rec.warnings[0]
    with open(cut / "rx.sigmf-data", "r+b") as fh:
        fh.truncate(frame_bytes - 8)
    with pytest.raises(recording.RecordingError, match="holds no whole frame"):
        recording.read(cut, "rx")


# --- the blocks -------------------------------------------------------------------------------
def test_sigmf_source_plays_frames_truth_and_messages(sc, live):
    import pmt

    directory, _, seen = live
    K, S = sc.array["antennas"], sc.ofdm["subcarriers"]
    tb = gr.top_block()
    rx = isac.sigmf_source(sc, path=str(directory / "rx.sigmf-meta"), frame_count=5)
    tx = isac.sigmf_source(sc, path=str(directory), kind="tx")
    y, x, m = blocks.vector_sink_c(K * S), blocks.vector_sink_c(S), blocks.vector_sink_i(S)
    dbg = blocks.message_debug()
    tb.connect(rx, y)
    tb.connect((tx, 0), x)
    tb.connect((tx, 1), m)
    tb.msg_connect(rx, "truth", dbg, "store")
    tb.run()
    data = np.fromfile(directory / "rx.sigmf-data", dtype="<c8")
    np.testing.assert_array_equal(np.asarray(y.data(), np.complex64), data[: 5 * K * S])
    frames = Simulator(sc).frames(0, N)
    np.testing.assert_array_equal(np.asarray(x.data(), np.complex64).reshape(N, S), frames.symbols)
    np.testing.assert_array_equal(np.asarray(m.data()).reshape(N, S), frames.messages)  # ML detection (15) of x
    truths = [pmt.to_python(dbg.get_message(i)) for i in range(dbg.num_messages())]
    assert [t["frame"] for t in truths] == list(range(5))
    for t in truths:
        np.testing.assert_array_equal(np.atleast_1d(t["range_m"]), seen[t["frame"]][0].range_m)
    tags = [pmt.to_python(t.value)["frame"] for t in y.tags() if pmt.symbol_to_string(t.key) == "truth"]
    assert tags == list(range(5))


K4S8 = Scenario.default().with_overrides({"array.antennas": 4, "ofdm.subcarriers": 8, "transmitter.beam_grid": 90})


@pytest.mark.parametrize(
    "block, kw, param",
    [
        ("sigmf_sink", dict(kind="bogus"), "kind"),
        ("sigmf_source", dict(kind="iq"), "kind"),
        ("sigmf_sink", dict(scenario=K4S8, spacings_m=[1e-3] * 3), "spacings_m"),
        ("sigmf_sink", dict(path=3), "path"),
        ("sigmf_source", dict(frame_count=-1), "frame_count"),
        ("sigmf_source", dict(path="/nonexistent/rec"), "path"),
        ("sigmf_sink", dict(scenario={"array": {"antennas": 0}}), "scenario"),
    ],
)
def test_bad_parameters_name_block_and_parameter(block, kw, param):
    with pytest.raises(BlockParameterError, match=f"isac_{block}: parameter '{param}'"):
        getattr(isac, block)(**kw)


def test_blocks_with_an_empty_path_end_the_flowgraph_with_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tb = gr.top_block()
    src = blocks.vector_source_c([0j] * 256 * 3, False, 256)
    sink = isac.sigmf_sink(kind="tx")
    source = isac.sigmf_source(kind="tx")
    tb.connect(src, sink)
    xs, ms = blocks.vector_sink_c(256), blocks.vector_sink_i(256)
    tb.connect((source, 0), xs)
    tb.connect((source, 1), ms)
    tb.run()  # ends at once, nothing written or played
    assert (
        sink.error == "isac_sigmf_sink: parameter 'path' is empty: give the recording's base name (e.g. "
        "rec/rx) or directory"
    )
    assert source.error.startswith("isac_sigmf_source: parameter 'path' is empty")
    assert sink.frames == 0 and list(tmp_path.iterdir()) == [] and len(xs.data()) == 0


def test_sink_records_a_measured_array_without_truth(tmp_path):
    """kind rx without truth tags: no annotations; simulated=False with given spacings records them."""
    K, S, d = 4, 8, [2.4e-3, 2.5e-3, 2.6e-3, 2.5e-3]
    frames = (np.arange(3 * K * S) * (1 + 1j)).astype(np.complex64)
    tb = gr.top_block()
    sink = isac.sigmf_sink(K4S8, path=str(tmp_path / "hw"), spacings_m=d, simulated=False, description="bench")
    tb.connect(blocks.vector_source_c(frames.tolist(), False, K * S), sink)
    tb.run()
    rec = recording.read(tmp_path / "hw", "rx")
    assert rec.frames == 3 and not rec.annotated
    assert rec.info["isac:true_spacings_m"] == d and rec.info["isac:simulated"] is False
    assert rec.info["core:description"] == "bench"
    np.testing.assert_array_equal(rec.frame(1), frames[K * S : 2 * K * S].reshape(K, S))
    recording.validate_file(tmp_path / "hw")


# --- the command line and GRC -----------------------------------------------------------------
SMALL = [
    "--set",
    "array.antennas=16",
    "--set",
    "ofdm.subcarriers=64",
    "--set",
    "receiver.angle_grid=90",
    "--set",
    "receiver.delay_grid=50",
    "--set",
    "run.seed=5",
    "--set",
    "transmitter.eta=0.7",
    "--set",
    "run.calibration_frames=40",
    "--no-progress",
]


def blocks_of(out: str) -> dict[int, str]:
    """frame -> its printed detections line."""
    frames = re.findall(r"^frame +(\d+):.*\n(?:    truth .*\n)?    detections (.*)$", out, re.M)
    return {int(f): det for f, det in frames}


def test_cli_record_then_replay(tmp_path, capsys):
    d = tmp_path / "rec"
    assert isac_sim.main(["--frames", "6", "--method", "baseline", "--record", str(d), *SMALL]) == 0
    live_out = capsys.readouterr().out
    assert f"recorded 6 frames to {d / 'rx.sigmf-meta'}" in live_out
    assert isac_sim.main(["--frames", "6", "--replay", str(d), "--method", "baseline", *SMALL]) == 0
    out = capsys.readouterr().out
    assert "threshold of the recording (method baseline, receiver omp)" in out
    assert "threshold calibrated" not in out
    live_blocks, replay_blocks = blocks_of(live_out), blocks_of(out)
    assert sorted(live_blocks) == list(range(6)) and replay_blocks == live_blocks
    live_sum = re.search(r"p_md = (\S+), p_fa = (\S+), GOSPA = (\S+) m", live_out.split("flowgraph:")[1]).groups()
    replay_sum = re.search(r"over 6 annotated frames: p_md = (\S+), p_fa = (\S+), GOSPA = (\S+) m", out).groups()
    assert replay_sum == live_sum
    # a scenario the recording does not fit: one line, exit 2
    assert isac_sim.main(["--replay", str(d), "--method", "baseline", *SMALL, "--set", "array.antennas=8"]) == 2
    err = capsys.readouterr().err
    assert "error: --replay:" in err and "isac:antennas = 16 but" in err
    # truncated: the warning on stderr, the whole frames replayed
    with open(d / "rx.sigmf-data", "r+b") as fh:
        fh.truncate(4 * 16 * 64 * 8 + 100)
    assert isac_sim.main(["--frames", "6", "--replay", str(d), "--method", "baseline", *SMALL]) == 0
    cap = capsys.readouterr()
    assert re.search(r"^warning: rx\.sigmf-data is truncated .*replaying its 4 whole frames", cap.err, re.M)
    assert blocks_of(cap.out) == {f: live_blocks[f] for f in range(4)}
    with pytest.raises(SystemExit):
        isac_sim.main(["--replay", str(d), "--record", str(tmp_path / "x"), *SMALL])


def test_installed_isac_sim_records_and_replays(tmp_path):
    """The README's commands: the installed isac-sim, record then replay (default method)."""
    exe = Path(sys.executable).parent / "isac-sim"
    assert exe.exists(), exe
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    run = [str(exe), "--frames", "3", "--no-compare", "--no-progress"]
    live_out = subprocess.run(
        [*run, "--record", str(tmp_path / "r")], capture_output=True, text=True, env=env, timeout=600, check=True
    ).stdout
    out = subprocess.run(
        [*run, "--replay", str(tmp_path / "r")], capture_output=True, text=True, env=env, timeout=600, check=True
    ).stdout
    assert blocks_of(out) == blocks_of(live_out) and len(blocks_of(out)) == 3


GRCC = shutil.which("grcc")


@pytest.mark.skipif(GRCC is None, reason="grcc (GNU Radio Companion compiler) not installed")
def test_replay_flowgraph_grc_scores_like_the_live_run(tmp_path):
    """apps/isac_replay.grc (SigMF sources -> reciprocal filter -> receiver -> metrics) on a
    recording of the default scenario with the shipped weights: the live run's metrics."""
    path = weights.default_weights_path()
    sc = Scenario.default()
    w = load_weights(path, sc)
    tb, _ = record(sc, tmp_path / "rec", frames=5, threshold=2.0e5, method="impairment", weights=w)
    want = tb.summary()
    env = dict(os.environ, GRC_BLOCKS_PATH=str(REPO / "grc"), OPENBLAS_NUM_THREADS="1")
    res = subprocess.run(
        [sys.executable, GRCC, "-o", str(tmp_path), str(REPO / "apps" / "isac_replay.grc")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    run = subprocess.run(
        [
            sys.executable,
            str(tmp_path / "isac_replay.py"),
            "-d",
            str(tmp_path / "rec"),
            "--threshold",
            "2.0e5",
            "--weights",
            path,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    line = [ln for ln in out.splitlines() if "5 frames:" in ln][-1]
    got = dict(re.findall(r"(p_md|p_fa|GOSPA)=([-+0-9.e]+|nan)", line))
    assert float(got["p_md"]) == pytest.approx(want["p_md"], abs=1e-4)
    assert float(got["p_fa"]) == pytest.approx(want["p_fa"], abs=1e-4)
    assert float(got["GOSPA"]) == pytest.approx(want["gospa"], abs=1e-2)
