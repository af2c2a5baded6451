"""GRC: the block definitions grc/isac_*.block.yml and the headless flowgraph
apps/isac_headless.grc, compiled by grcc and run with this Python for a few frames; its
metrics equal evaluation.evaluate on the same frames and threshold."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gnuradio.isac.blocks.omp_receiver import DEFAULT_THRESHOLD
from gnuradio.isac.config import Scenario
from gnuradio.isac.evaluation import evaluate

REPO = Path(__file__).resolve().parents[1]
BLOCKS = ["message_source", "precoder", "ula_channel", "reciprocal_filter", "omp_receiver", "angle_delay_map",
          "comm_receiver", "metrics", "positions_pdu"]
GRCC = shutil.which("grcc")
needs_grcc = pytest.mark.skipif(GRCC is None, reason="grcc (GNU Radio Companion compiler) not installed")


@pytest.mark.parametrize("name", BLOCKS)
def test_block_yaml_is_complete(name):
    doc = yaml.safe_load((REPO / "grc" / f"isac_{name}.block.yml").read_text())
    assert doc["id"] == f"isac_{name}"
    assert doc["category"] == "[ISAC]"
    assert doc["file_format"] == 1
    assert f"from gnuradio.isac.blocks import isac_{name}" == doc["templates"]["imports"]
    assert doc["templates"]["make"].startswith(f"isac_{name}(")
    assert doc["documentation"].strip()
    params = {p["id"] for p in doc["parameters"]}
    if params:
        assert any("> 0" in a for a in doc["asserts"])
    # every parameter is passed to the constructor
    for p in params - {"array_model", "spacings_m"}:
        assert f"{p}=${{{p}}}" in doc["templates"]["make"].replace(" ", ""), p


def compile_flowgraph(grc: Path, out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, GRC_BLOCKS_PATH=str(REPO / "grc"))
    return subprocess.run([GRCC, "-o", str(out), str(grc)], env=env, capture_output=True, text=True, timeout=120)


@needs_grcc
def test_headless_flowgraph_compiles_runs_and_matches_evaluate(tmp_path):
    res = compile_flowgraph(REPO / "apps" / "isac_headless.grc", tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    script = tmp_path / "isac_headless.py"
    assert script.exists()
    frames = 12
    run = subprocess.run([sys.executable, str(script), "-n", str(frames), "--seed", "0"], capture_output=True,
                         text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [ln for ln in (run.stdout + run.stderr).splitlines() if f"{frames} frames:" in ln]
    assert lines, run.stdout + run.stderr
    got = dict(re.findall(r"(p_md|p_fa|GOSPA|SER)=([-+0-9.e]+|nan)", lines[-1]))
    sc = Scenario.default().with_overrides({"run.frames": frames, "run.seed": 0})
    want = evaluate(sc, "baseline", progress=False, threshold=DEFAULT_THRESHOLD)
    assert float(got["p_md"]) == pytest.approx(want["p_md"], abs=1e-4)
    assert float(got["p_fa"]) == pytest.approx(want["p_fa"], abs=1e-4)
    assert float(got["GOSPA"]) == pytest.approx(want["gospa"], abs=1e-2)
    assert float(got["SER"]) == pytest.approx(want["ser"], rel=1e-2)


@needs_grcc
def test_grcc_refuses_reversed_sector(tmp_path):
    text = (REPO / "apps" / "isac_headless.grc").read_text()
    bad = text.replace("sensing_sector_deg: '[-40.0, -20.0]'", "sensing_sector_deg: '[-20.0, -40.0]'")
    assert bad != text
    grc = tmp_path / "bad.grc"
    grc.write_text(bad)
    res = compile_flowgraph(grc, tmp_path)
    assert res.returncode != 0
    assert "sensing_sector_deg" in res.stdout + res.stderr


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_grcc
def test_zmq_flowgraph_publishes_detections_and_metrics(tmp_path):
    """apps/isac_zmq.grc runs until stopped and publishes serialized PMT dicts on 127.0.0.1."""
    import zmq
    import pmt

    res = compile_flowgraph(REPO / "apps" / "isac_zmq.grc", tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    det_addr, met_addr = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    ctx = zmq.Context()
    subs = []
    for addr in (det_addr, met_addr):
        sock = ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.setsockopt(zmq.RCVTIMEO, 30000)
        sock.connect(addr)
        subs.append(sock)
    proc = subprocess.Popen([sys.executable, str(tmp_path / "isac_zmq.py"), "-n", "0",
                             "--detections-address", det_addr, "--metrics-address", met_addr],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        dets = [pmt.to_python(pmt.deserialize_str(subs[0].recv())) for _ in range(3)]
        metrics = pmt.to_python(pmt.deserialize_str(subs[1].recv()))
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode(errors="replace")
        for sock in subs:
            sock.close(linger=0)
        ctx.term()
    frames = [d["frame"] for d in dets]
    assert frames == sorted(frames) and len(set(frames)) == 3, out
    assert {"count", "angle_deg", "range_m", "x_m", "y_m", "gain", "peak", "valid"} <= set(dets[0])
    assert {"p_md", "p_fa", "gospa", "ser", "frames", "comm_frames"} <= set(metrics)
    assert metrics["comm_frames"] >= 1


@needs_grcc
def test_gui_flowgraph_compiles_and_runs_offscreen(tmp_path):
    """apps/isac_gui.grc (QT GUI) compiles, and runs for a few seconds on Qt's offscreen platform."""
    import PyQt5  # noqa: F401  (Debian python3-pyqt5, installed by tools/setup.sh)
    import gnuradio.qtgui  # noqa: F401
    import time

    res = compile_flowgraph(REPO / "apps" / "isac_gui.grc", tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_RUNTIME_DIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, str(tmp_path / "isac_gui.py"), "-n", "0", "-r", "50"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        time.sleep(4)
        alive = proc.poll() is None
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode(errors="replace")
    assert alive, out
    assert "Traceback" not in out and "rror" not in out, out
