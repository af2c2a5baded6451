"""Command-line applications (python/isac/cli): isac-eval and isac-sim run in-process with
small sizes, their option errors, --config files, and the installed isac-eval script."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gnuradio.isac.cli import eval as isac_eval
from gnuradio.isac.cli import sim as isac_sim
from gnuradio.isac.config import Scenario
from gnuradio.isac.model.metrics import false_alarm_probability, misdetection_probability

REPO = Path(__file__).resolve().parents[1]

SMALL = ["run.frames=20", "run.calibration_frames=20", "receiver.angle_grid=180", "receiver.delay_grid=60"]
SMALL_ARGS = [a for kv in SMALL for a in ("--set", kv)] + ["--no-progress"]

EVAL_KEYS = {
    "p_md",
    "p_fa",
    "gospa",
    "ser",
    "angle_rmse_deg",
    "range_rmse_m",
    "threshold",
    "frames",
    "method",
    "receiver",
    "scenario_hash",
    "calibration_frames",
}


def run_eval(tmp_path, *extra, name="out.json"):
    """isac-eval in this process (--workers 1; tests/test_eval_dask.py runs it on Dask workers)."""
    out = tmp_path / name
    assert isac_eval.main([*SMALL_ARGS, "--workers", "1", "--json", str(out), *extra]) == 0
    return json.loads(out.read_text())


def check_eval_result(result, frames=20, calibration_frames=20, method="baseline"):
    assert set(result) == EVAL_KEYS
    for key in ("p_md", "p_fa", "gospa", "ser", "angle_rmse_deg", "range_rmse_m", "threshold"):
        assert isinstance(result[key], float) and math.isfinite(result[key]), (key, result[key])
    assert 0.0 <= result["p_md"] <= 1.0
    assert 0.0 <= result["p_fa"] <= 1.0
    assert 0.0 <= result["ser"] <= 1.0
    # GOSPA (17) with T_max = 5, gamma = 90, p = mu = 2 is at most gamma sqrt(T_max)
    assert 0.0 <= result["gospa"] <= 90.0 * math.sqrt(5) + 1e-9
    # matched pairs are closer than gamma = 90 m, both angles lie in the 20 deg sector
    assert 0.0 <= result["range_rmse_m"] < 90.0
    assert 0.0 <= result["angle_rmse_deg"] <= 20.0
    assert result["threshold"] > 0.0
    assert result["frames"] == frames and isinstance(result["frames"], int)
    assert result["calibration_frames"] == calibration_frames
    assert result["method"] == method
    assert re.fullmatch(r"[0-9a-f]{16}", result["scenario_hash"])


# --- isac-eval -----------------------------------------------------------------------------


def test_eval_writes_the_metrics_json(tmp_path, capsys):
    result = run_eval(tmp_path)
    check_eval_result(result)
    assert result["scenario_hash"] == Scenario.load(None, SMALL).hash()
    # the impaired array with the nominal receiver misses targets, but not all of them
    assert 0.0 < result["p_md"] < 1.0
    # stdout lists the same numbers, one key per line
    out = capsys.readouterr().out
    for key in ("p_md", "p_fa", "gospa", "ser", "angle_rmse_deg", "range_rmse_m", "threshold"):
        m = re.search(rf"^\s*{key}\s+(\S+)\s*$", out, re.M)
        assert m, key
        assert float(m.group(1)) == pytest.approx(result[key], rel=1e-5, abs=1e-12)
    assert re.search(r"^\s*frames\s+20\s*$", out, re.M)


def test_eval_is_reproducible_and_follows_the_options(tmp_path):
    a = run_eval(tmp_path, name="a.json")
    b = run_eval(tmp_path, name="b.json")
    assert a == b  # frames are seeded by run.seed
    perfect = run_eval(tmp_path, "--method", "perfect", name="p.json")
    check_eval_result(perfect, method="perfect")
    assert perfect["scenario_hash"] == a["scenario_hash"]  # same physical scenario
    # knowing the true array helps (Figs. 7-8): far better angles, smaller GOSPA
    assert perfect["angle_rmse_deg"] < a["angle_rmse_deg"] / 5
    assert perfect["gospa"] < a["gospa"]
    more = run_eval(tmp_path, "--set", "run.frames=30", "--set", "run.calibration_frames=25", name="m.json")
    check_eval_result(more, frames=30, calibration_frames=25)
    assert more["scenario_hash"] == a["scenario_hash"]  # run.* is not part of the scenario
    ideal = run_eval(tmp_path, "--set", "array.spacing_std_m=0", name="i.json")
    check_eval_result(ideal)
    assert ideal["scenario_hash"] != a["scenario_hash"]


def test_eval_with_a_config_file(tmp_path):
    cfg = tmp_path / "small.toml"
    cfg.write_text("""
[run]
frames = 12
calibration_frames = 15

[receiver]
angle_grid = 180
delay_grid = 60
p_fa = 0.05
""")
    out = tmp_path / "cfg.json"
    assert isac_eval.main(["--config", str(cfg), "--no-progress", "--workers", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    check_eval_result(result, frames=12, calibration_frames=15)
    assert result["scenario_hash"] == Scenario.load(str(cfg)).hash()
    assert result["scenario_hash"] != Scenario.default().hash()  # p_fa and grids differ
    # --set is applied after the file
    argv = ["--config", str(cfg), "--set", "run.frames=8", "--no-progress", "--workers", "1", "--json", str(out)]
    assert isac_eval.main(argv) == 0
    check_eval_result(json.loads(out.read_text()), frames=8, calibration_frames=15)


# --- isac-sim -----------------------------------------------------------------------------

TARGET = r"\(\s*(-?\d+\.\d+) deg,\s*(\d+\.\d+) m\)"


def parse_targets(text):
    text = text.strip()
    if text == "-":
        return []
    found = [(float(a), float(r)) for a, r in re.findall(TARGET, text)]
    assert len(found) == text.count("("), text
    return found


def parse_sim(out):
    """Per-frame blocks (index, true count, detected count, gospa, truth, detections) and the summary."""
    lines = out.splitlines()
    blocks = []
    for k, line in enumerate(lines):
        m = re.match(r"frame\s+(\d+): (\d+) targets, (\d+) detected, SER (\S+), GOSPA\s+(\S+) m$", line)
        if m:
            truth = re.match(r"^    truth\s+(.*)$", lines[k + 1])
            dets = re.match(r"^    detections\s+(.*)$", lines[k + 2])
            assert truth and dets, lines[k : k + 3]
            blocks.append(
                dict(
                    index=int(m.group(1)),
                    true=int(m.group(2)),
                    detected=int(m.group(3)),
                    ser=float(m.group(4)),
                    gospa=float(m.group(5)),
                    truth=parse_targets(truth.group(1)),
                    detections=parse_targets(dets.group(1)),
                )
            )
    summary = re.search(r"^over (\d+) frames: p_md = (\S+), p_fa = (\S+), GOSPA = (\S+) m, SER = (\S+),", out, re.M)
    assert summary, out
    # the summary follows the frames; only the baseline comparison (learned methods) may follow it
    tail = (
        lines[-2:]
        if lines[-1].startswith("baseline (nominal array, own threshold) on the same frames: p_md = ")
        else lines[-1:]
    )
    assert summary.group(0) in tail[0], tail
    return blocks, dict(
        frames=int(summary.group(1)),
        p_md=float(summary.group(2)),
        p_fa=float(summary.group(3)),
        gospa=float(summary.group(4)),
        ser=float(summary.group(5)),
    )


def test_sim_prints_one_block_per_frame_and_a_summary(capsys):
    assert isac_sim.main(["--frames", "6", *SMALL_ARGS]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^threshold calibrated to p_fa = 0\.01 on 20 frames: delta = \S+$", out, re.M)
    # the default scenario's array: the shipped impairment-learning weights, compared with the baseline
    assert re.search(r"^method impairment, receiver omp", out, re.M)
    assert out.splitlines()[-1].startswith("baseline (nominal array, own threshold) on the same frames: p_md = ")
    blocks, summary = parse_sim(out)
    assert [b["index"] for b in blocks] == list(range(6))
    assert summary["frames"] == 6
    sector, ranges = (-40.0, -20.0), (10.0, 190.0)
    for b in blocks:
        assert len(b["truth"]) == b["true"] <= 5
        assert len(b["detections"]) == b["detected"] <= 5
        for angle, r in b["truth"] + b["detections"]:
            assert sector[0] - 0.01 <= angle <= sector[1] + 0.01
            assert ranges[0] - 0.1 <= r <= ranges[1] + 0.1
        assert 0.0 <= b["ser"] <= 1.0 and 0.0 <= b["gospa"] <= 90 * math.sqrt(5) + 0.01
    assert sum(b["true"] for b in blocks) > 0
    # the summary is (20), (21) and the mean GOSPA of the printed frames
    t = [b["true"] for b in blocks]
    e = [b["detected"] for b in blocks]
    assert summary["p_md"] == pytest.approx(misdetection_probability(t, e), abs=5e-5)
    assert summary["p_fa"] == pytest.approx(false_alarm_probability(t, e, 5), abs=5e-5)
    assert summary["gospa"] == pytest.approx(np.mean([b["gospa"] for b in blocks]), abs=0.01)


def test_sim_with_a_given_threshold_skips_calibration(capsys):
    assert isac_sim.main(["--frames", "3", "--threshold", "0", *SMALL_ARGS]) == 0
    out = capsys.readouterr().out
    assert "threshold calibrated" not in out
    blocks, summary = parse_sim(out)
    # every map maximum exceeds 0: OMP runs all T_max = 5 iterations
    assert [b["detected"] for b in blocks] == [5, 5, 5]
    assert summary["p_md"] == 0.0
    assert isac_sim.main(["--frames", "3", "--threshold", "1e30", *SMALL_ARGS]) == 0
    blocks, summary = parse_sim(capsys.readouterr().out)
    assert [b["detected"] for b in blocks] == [0, 0, 0]
    assert all(b["detections"] == [] for b in blocks)
    assert summary["p_fa"] == 0.0


def test_sim_rejects_a_non_positive_frame_count(capsys):
    with pytest.raises(SystemExit) as exc:
        isac_sim.main(["--frames", "0", *SMALL_ARGS])
    assert exc.value.code == 2
    assert "--frames must be >= 1" in capsys.readouterr().err


# --- option errors: exit status 2 and a message naming the key ------------------------------


@pytest.mark.parametrize("main", [isac_eval.main, isac_sim.main], ids=["isac-eval", "isac-sim"])
@pytest.mark.parametrize(
    "override, expected",
    [
        ("array.antenas=32", "did you mean 'array.antennas'"),
        ("reciever.p_fa=0.1", "did you mean 'receiver.p_fa'"),
        ("scene.target_sector_deg=[10,-10]", "scene.target_sector_deg must satisfy -90 <= min < max <= 90"),
        ("scene.range_m=[10,2000]", "scene.range_m must satisfy"),
        ("array.antennas=0", "array.antennas must be an integer >= 1"),
        ("array.antennas=inf", "array.antennas must be an integer"),
        ("receiver.p_fa=2", "receiver.p_fa must be in (0, 1)"),
        ("run.frames", "--set expects key=value"),
    ],
)
def test_bad_set_exits_2_with_the_reason(main, override, expected, capsys, tmp_path):
    out = tmp_path / "never.json"
    argv = [*SMALL_ARGS, "--set", override]
    if main is isac_eval.main:
        argv += ["--json", str(out)]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert expected in err
    assert "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[array]\nantenas = 32\n", "did you mean 'array.antennas'"),
        ("[scene]\ncomm_sector_deg = [50, 30]\n", "scene.comm_sector_deg"),
        ("[scene\n", "invalid TOML"),
    ],
)
def test_bad_config_file_exits_2(text, expected, capsys, tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(SystemExit) as exc:
        isac_eval.main(["--config", str(cfg), "--no-progress"])
    assert exc.value.code == 2
    assert expected in capsys.readouterr().err


def test_missing_config_file_exits_2(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        isac_eval.main(["--config", str(tmp_path / "missing.toml"), "--no-progress"])
    assert exc.value.code == 2
    assert "missing.toml" in capsys.readouterr().err


# --- the installed script -----------------------------------------------------------------


def test_installed_isac_eval_script(tmp_path):
    """CI always installs the apps into <repo>/.venv (tools/setup.sh), so a missing
    script is a failure, not a skip. It runs with the default --workers (every CPU: a local
    Dask cluster whose worker processes import the script again; it must not run there)."""
    script = REPO / ".venv" / "bin" / "isac-eval"
    assert script.is_file(), f"{script} is missing: run 'bash tools/setup.sh' to build and install gr-isac"
    assert os.access(script, os.X_OK), f"{script} is not executable"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # test what is installed
    out = tmp_path / "installed.json"
    proc = subprocess.run(
        [str(script), *SMALL_ARGS, "--json", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    check_eval_result(json.loads(out.read_text()))
    assert re.search(r"^\s*p_md\s+\S+", proc.stdout, re.M)
    bad = subprocess.run(
        [str(script), "--set", "array.antenas=3", "--no-progress"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert "did you mean 'array.antennas'" in bad.stderr


def test_repo_root_is_computed_from_this_file():
    assert (REPO / "python" / "isac" / "cli" / "eval.py").is_file()
    assert Path(sys.modules[__name__].__file__).resolve().parent == REPO / "tests"


def test_eval_json_is_strict_with_null_for_undefined_metrics(tmp_path):
    """With no targets at all, RMSE is undefined: the file says null, never NaN."""
    out = tmp_path / "m.json"
    code = isac_eval.main(
        [
            "--set",
            "scene.max_targets=1",
            "--set",
            "scene.snr_sensing_db=-60",
            "--set",
            "run.frames=5",
            "--set",
            "run.calibration_frames=10",
            "--set",
            "receiver.angle_grid=30",
            "--set",
            "receiver.delay_grid=20",
            "--no-progress",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    text = out.read_text()
    assert "NaN" not in text
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert all(data[k] is None or np.isfinite(data[k]) for k in ("angle_rmse_deg", "range_rmse_m"))


def test_eval_domp_receiver_on_the_cpp_kernel_equals_numpy(tmp_path):
    a = run_eval(tmp_path, "--receiver", "domp", "--kernel", "cpp", name="c.json")
    b = run_eval(tmp_path, "--receiver", "domp", "--kernel", "numpy", name="n.json")
    assert a["receiver"] == "domp"
    for key in ("p_md", "p_fa", "gospa", "threshold"):
        assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-9), key


def test_eval_rejects_a_bad_temperature(capsys):
    with pytest.raises(SystemExit) as exc:
        isac_eval.main(["--receiver", "domp", "--temperature", "0"])
    assert exc.value.code == 2
    assert "--temperature must be > 0" in capsys.readouterr().err


# --- unwritable outputs are refused before any work --------------------------------------


def _no_work(*args, **kwargs):
    raise AssertionError("work started although an output path cannot be written")


def _unwritable_paths(tmp_path):
    """(label, path) of output files that cannot be written, whoever runs the tests (root too)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    return [
        ("missing folder", tmp_path / "no" / "such" / "m.json"),
        ("a folder", tmp_path),
        ("under a file", blocker / "m.json"),
    ]


def _refused(capsys, code, option, path):
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"error: {option} {path}: cannot write there (")
    assert "Traceback" not in err


@pytest.mark.parametrize("which", [0, 1, 2], ids=["missing-folder", "is-a-folder", "under-a-file"])
def test_eval_refuses_an_unwritable_json_before_work(which, tmp_path, capsys, monkeypatch):
    from gnuradio.isac import evaluation

    monkeypatch.setattr(evaluation, "evaluate", _no_work)
    _, path = _unwritable_paths(tmp_path)[which]
    _refused(capsys, isac_eval.main([*SMALL_ARGS, "--json", str(path)]), "--json", path)


def test_eval_experiment_refuses_an_unwritable_out_or_json_before_work(tmp_path, capsys, monkeypatch):
    from gnuradio.isac import experiments

    monkeypatch.setattr(experiments, "run", _no_work)
    blocker = tmp_path / "a-file"
    blocker.write_text("keep")
    code = isac_eval.main(["--experiment", "fig3", "--size", "quick", "--out", str(blocker), "--no-progress"])
    _refused(capsys, code, "--out", blocker)
    code = isac_eval.main(["--experiment", "fig3", "--size", "quick", "--out", str(blocker / "sub"), "--no-progress"])
    _refused(capsys, code, "--out", blocker / "sub")
    out = tmp_path / "new" / "dir"  # a missing --out folder is fine: it is created
    code = isac_eval.main(
        ["--experiment", "fig3", "--size", "quick", "--out", str(out), "--json", str(tmp_path), "--no-progress"]
    )
    _refused(capsys, code, "--json", tmp_path)
    assert out.is_dir() and not any(out.iterdir())
    assert blocker.read_text() == "keep"


def test_sim_refuses_an_unwritable_map_png_before_work(tmp_path, capsys, monkeypatch):
    from gnuradio.isac import evaluation

    monkeypatch.setattr(evaluation, "calibrate", _no_work)
    for _, path in _unwritable_paths(tmp_path):
        _refused(capsys, isac_sim.main(["--frames", "2", "--map-png", str(path), *SMALL_ARGS]), "--map-png", path)


def test_output_check_leaves_files_as_they_were(tmp_path):
    """The check writes nothing: a new path is not left behind, an existing file keeps its bytes."""
    new, old = tmp_path / "new.json", tmp_path / "old.json"
    old.write_text("previous results")
    assert isac_eval.output_path_error("--json", str(new)) is None and not new.exists()
    assert isac_eval.output_path_error("--json", str(old)) is None and old.read_text() == "previous results"


def test_isac_eval_experiment_refuses_a_scenario_that_cannot_fit(tmp_path, capsys):
    """--experiment builds its own scenario (experiment defaults + --set): the memory check applies to it
    too, before any work."""
    from gnuradio.isac.cli import eval as isac_eval

    code = isac_eval.main(
        ["--experiment", "fig7", "--out", str(tmp_path / "out"), "--quick", "--set", "scene.max_targets=1000000"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "scene.max_targets" in err and "memory" in err


# --- Ctrl-C: one line and status 130, never a traceback (issue 22, item 4) ------------------------
SIGINT_CHILD = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (a background job ignores it)


def ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(60)  # the KeyboardInterrupt arrives here
"""


def run_sim_child(patch: str, argv: list[str]) -> subprocess.CompletedProcess:
    """isac-sim in a child process (a real SIGINT there, never in pytest's) with ``patch`` run first."""
    script = SIGINT_CHILD + patch + f"\nfrom gnuradio.isac.cli.sim import main\nsys.exit(main({argv!r}))\n"
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_sim_ctrl_c_during_calibration_is_one_line_and_status_130():
    """A KeyboardInterrupt traceback and exit status -2 before."""
    patch = "from gnuradio.isac import evaluation\nevaluation.calibrate = lambda *a, **k: ctrl_c()\n"
    proc = run_sim_child(patch, [*SMALL_ARGS, "--frames", "5", "--method", "baseline"])
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "isac-sim: interrupted during the threshold calibration (20 frames): no frame was streamed "
        "(--threshold DELTA skips the calibration)"
    ]


def test_sim_ctrl_c_while_streaming_reports_the_frames_run():
    """GNU Radio's wait stops the flowgraph on Ctrl-C and returns: the flowgraph line said the
    requested 100000 frames and the status was 0; it now says how many ran, and the status is 130."""
    patch = (
        "from gnuradio.isac import flowgraph\n"
        "done = flowgraph.SimFlowgraph._frame_done\n"
        "def frame_done(self, frame, *a):\n"
        "    done(self, frame, *a)\n"
        "    if frame == 5:\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "flowgraph.SimFlowgraph._frame_done = frame_done\n"
    )
    argv = [*SMALL_ARGS, "--frames", "100000", "--threshold", "3e5", "--quiet", "--method", "perfect", "--threads", "1"]
    proc = run_sim_child(patch, argv)
    assert proc.returncode == 130, proc.stdout + proc.stderr
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("flowgraph:")]
    assert len(line) == 1 and re.match(r"flowgraph: interrupted after \d+ of 100000 frames in ", line[0]), line
    run = int(line[0].split()[3])
    assert 6 <= run < 100000
    assert re.search(r"^over \d+ frames: p_md = ", proc.stdout, re.M)
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"isac-sim: interrupted after {run} of 100000 frames (the baseline comparison skipped)"
    )


def test_replay_ctrl_c_reports_the_frames_replayed(tmp_path):
    """isac-sim --replay: Ctrl-C stopped GNU Radio's wait, the summary read as if the whole
    recording had been replayed and the status was 0; it now names the frames replayed and
    the status is 130 (as for a live run)."""
    rec = tmp_path / "rec"
    small = [*SMALL_ARGS, "--method", "baseline", "--threshold", "3e5", "--quiet", "--no-compare"]
    assert isac_sim.main([*small, "--frames", "60", "--record", str(rec)]) == 0
    patch = (  # the scorer takes one frame per work call, slowly: GNU Radio stops a block between calls
        "from gnuradio.isac import replay\n"
        "work = replay.ReplayScorer.work\n"
        "def one_frame(self, ins, outs):\n"
        "    done = work(self, [ins[0][:1]], outs)\n"
        "    if done and self.frames == 4:\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.05)\n"
        "    return done\n"
        "replay.ReplayScorer.work = one_frame\n"
    )
    proc = run_sim_child(patch, [*small, "--frames", "60", "--replay", str(rec)])
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    found = re.fullmatch(rf"isac-sim: interrupted after (\d+) of 60 frames of {re.escape(str(rec))}", last)
    assert found, last
    assert 4 <= int(found[1]) < 60
    assert re.search(rf"^over {found[1]} annotated frames: p_md = ", proc.stdout, re.M), proc.stdout
