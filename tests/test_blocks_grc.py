"""GRC: the block definitions grc/isac_*.block.yml against the blocks' constructors (every
parameter with its default, the enum choices, the callbacks), loaded by GRC's own platform
(the asserts hold at the defaults and refuse bad values, the rendered make template builds the
block), and the flowgraphs apps/*.grc compiled by grcc and run with this Python: the headless
flowgraph's metrics equal evaluation.evaluate on the same frames and threshold, with the
baseline and with the shipped learned weights."""

import ast
import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from gnuradio import isac

from gnuradio.isac import transceiver, weights
from gnuradio.isac.blocks import BLOCKS
from gnuradio.isac.blocks.omp_receiver import DEFAULT_THRESHOLD
from gnuradio.isac.config import ConfigError, Scenario
from gnuradio.isac.evaluation import evaluate
from gnuradio.isac.simulation import STREAMS
from gnuradio.isac.transceiver import load_weights

REPO = Path(__file__).resolve().parents[1]
GRCC = shutil.which("grcc")
needs_grcc = pytest.mark.skipif(GRCC is None, reason="grcc (GNU Radio Companion compiler) not installed")
#: GRC-only parameters (not constructor arguments)
GRC_ONLY = {"gui_hint"}


def block_yaml(name: str) -> dict:
    return yaml.safe_load((REPO / "grc" / f"isac_{name}.block.yml").read_text())


def signature(name: str) -> dict[str, inspect.Parameter]:
    params = dict(inspect.signature(getattr(isac, name).__init__).parameters)
    params.pop("self")
    return params


def yml_default(param: dict):
    """The Python value of a yml parameter's default, as GRC evaluates it for its dtype."""
    dtype, text = param["dtype"], str(param.get("default", ""))
    if dtype == "enum":
        assert text in param["options"], f"{param['id']}: default {text!r} is not an option"
        return ast.literal_eval(text)
    if dtype in ("string", "file_open"):  # GRC evaluates the text; what is not a str literal stays text
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
        return value if isinstance(value, str) else text
    value = ast.literal_eval(text) if text else []
    if dtype == "int":
        assert isinstance(value, int) and not isinstance(value, bool), (param["id"], text)
        return value
    if dtype == "real":
        assert isinstance(value, (int, float)) and not isinstance(value, bool), (param["id"], text)
        return float(value)
    if dtype == "bool":
        assert isinstance(value, bool), (param["id"], text)
        return value
    if dtype in ("real_vector", "complex_vector", "int_vector"):
        return list(value)
    raise AssertionError(f"{param['id']}: dtype {dtype} not handled by this test")


def plain(value):
    return list(value) if isinstance(value, (tuple, list)) else value


#: enum parameter -> the values the blocks accept, in the registries' order
CHOICES = {
    "method": ("",) + transceiver.methods(),
    "receiver": transceiver.receivers(),
    "kernel": ("",) + transceiver.KERNELS,
    "stream": tuple(STREAMS),
}


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_block_yaml_matches_the_constructor(name):
    doc = block_yaml(name)
    assert doc["id"] == f"isac_{name}"
    assert doc["category"] == "[ISAC]"
    assert doc["file_format"] == 1
    assert doc["templates"]["imports"] == "from gnuradio import isac"
    make = doc["templates"]["make"]
    assert make.startswith(f"isac.{name}(")
    assert doc["documentation"].strip()
    params = {p["id"]: p for p in doc["parameters"]}
    sig = signature(name)
    # one yml parameter per constructor argument, same name, same default
    assert set(params) - GRC_ONLY == set(sig), (
        f"yml only: {set(params) - GRC_ONLY - set(sig)}, constructor only: {set(sig) - set(params)}"
    )
    for pid, p in params.items():
        if pid in GRC_ONLY:
            continue
        want = sig[pid].default
        assert want is not inspect.Parameter.empty, pid
        assert yml_default(p) == plain(want), f"{name}.{pid}: yml default {p.get('default')!r}, constructor {want!r}"
        assert f"{pid}=${{{pid}}}" in make.replace(" ", "").replace("\n", ""), f"{pid} is not passed to the constructor"
    if sig:  # GRC checks the values before the flowgraph runs
        assert doc["asserts"]
    # enums: exactly the values the blocks accept
    for pid, p in params.items():
        if p["dtype"] != "enum":
            continue
        options = tuple(ast.literal_eval(o) for o in p["options"])
        assert len(p["option_labels"]) == len(options), pid
        if pid == "impairment":
            for option in options:
                Scenario.default().with_overrides({"array.impairment": option})
            with pytest.raises(ConfigError, match="array.impairment"):
                Scenario.default().with_overrides({"array.impairment": "bogus"})
        elif pid == "method" and name == "angle_delay_map_stream":  # NNBL has no array, hence no map
            assert options == tuple(m for m in CHOICES["method"] if m != "nn")
        else:
            assert options == CHOICES[pid], pid
    # callbacks: methods of the block, with the block's parameters
    for callback in doc["templates"].get("callbacks", []):
        method, args = re.fullmatch(r"(\w+)\((.*)\)", callback).groups()
        assert callable(getattr(getattr(isac, name), method, None)), callback
        assert set(re.findall(r"\$\{(\w+)\}", args)) <= set(params), callback


def test_precoder_callbacks_cover_its_runtime_parameters():
    from gnuradio.isac.blocks.precoder import RUNTIME

    callbacks = block_yaml("precoder")["templates"]["callbacks"]
    assert {re.search(r"\$\{(\w+)\}", cb).group(1) for cb in callbacks} == set(RUNTIME)


# --- GRC's platform: asserts and make templates as GRC evaluates them ------------------------
@pytest.fixture(scope="module")
def platform():
    from gnuradio import gr
    from gnuradio.grc.core.platform import Platform

    old = os.environ.get("GRC_BLOCKS_PATH")
    os.environ["GRC_BLOCKS_PATH"] = str(REPO / "grc")
    try:
        p = Platform(
            name="gr-isac tests",
            prefs=gr.prefs(),
            version=gr.version(),
            version_parts=(gr.major_version(), gr.api_version(), gr.minor_version()),
        )
        p.build_library()
    finally:
        if old is None:
            del os.environ["GRC_BLOCKS_PATH"]
        else:
            os.environ["GRC_BLOCKS_PATH"] = old
    return p


def grc_block(platform, name: str, **values):
    """A GRC block isac_<name> in a new flowgraph, parameters at their defaults except ``values``
    (GRC expressions); returns (block, its assert / evaluation errors)."""
    fg = platform.make_flow_graph()
    block = fg.new_block(f"isac_{name}")
    assert block is not None, f"GRC did not load isac_{name}"
    block.params["id"].set_value(f"isac_{name}_0")
    for key, value in values.items():
        block.params[key].set_value(value)
    fg.rewrite()
    fg.validate()
    errors = [e for e in block.get_error_messages() if "Assertion" in e or "evaluate" in e]
    return block, errors


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_grc_builds_each_block_from_its_make_template(platform, name):
    values = {"address": repr(f"tcp://127.0.0.1:{free_port()}")} if name == "json_publisher" else {}
    block, errors = grc_block(platform, name, **values)
    assert errors == []
    call = ast.parse(block.templates.render("make")).body[0].value  # map_display: widget lines follow
    assert isinstance(call, ast.Call) and ast.unparse(call.func) == f"isac.{name}"
    assert {k.arg for k in call.keywords} == set(signature(name))
    if name == "map_display":  # its widget needs a QApplication
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from PyQt5 import QtWidgets

        app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])  # noqa: F841
    blk = eval(compile(ast.Expression(call), f"isac_{name} make", "eval"), {"isac": isac})
    assert type(blk) is getattr(isac, name)


@pytest.mark.parametrize(
    "name, values, wrong",
    [
        ("precoder", {"method": '"impairment"'}, "weights or method"),
        ("omp_receiver", {"method": '"nn"'}, "weights or method"),
        ("angle_delay_map_stream", {"method": '"dictionary"'}, "weights or method"),
        ("omp_receiver", {"receiver": '"domp"', "temperature": "0"}, "temperature > 0"),
        ("precoder", {"target_sector_deg": "[-20.0, -40.0]"}, "target_sector_deg"),
        ("ula_channel", {"comm_taps": "300"}, "comm_taps <= S"),
        ("map_display", {"target_sector_deg": "[-100.0, 0.0]"}, "target_sector_deg"),
        ("ula_channel", {"K": "4", "coupling_taps": "4"}, "coupling_taps <= min(8, K - 1)"),
        ("omp_receiver", {"dead_list": "[1, 1]"}, "len(set(dead_list))"),
        ("precoder", {"dead_list": "[64]"}, "max(dead_list) < K"),
        ("sigmf_sink", {"dead_elements": "2", "dead_list": "[3]"}, "dead_elements == 0 or len(dead_list) == 0"),
        ("angle_delay_map_stream", {"weak_gain": "1.0"}, "weak_gain < 1"),
    ],
)
def test_grc_asserts_refuse_bad_values(platform, name, values, wrong):
    _, errors = grc_block(platform, name, **values)
    assert any(wrong in e for e in errors), errors


def test_grc_accepts_a_learned_method_with_weights(platform):
    for name in ("precoder", "omp_receiver", "angle_delay_map_stream"):
        _, errors = grc_block(platform, name, method='"impairment"', weights="'W.safetensors'")
        assert errors == [], (name, errors)


# --- grcc: the flowgraphs of apps/ ------------------------------------------------------------
def compile_flowgraph(grc: Path, out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, GRC_BLOCKS_PATH=str(REPO / "grc"))
    return subprocess.run([GRCC, "-o", str(out), str(grc)], env=env, capture_output=True, text=True, timeout=120)


def run_headless(grc: Path, tmp_path: Path, frames: int) -> dict:
    """Compile and run a headless flowgraph for ``frames`` frames (seed 0); its final metrics line."""
    res = compile_flowgraph(grc, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    script = tmp_path / "isac_headless.py"
    assert script.exists()
    run = subprocess.run(
        [sys.executable, str(script), "-n", str(frames), "--seed", "0"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=dict(os.environ, OPENBLAS_NUM_THREADS="1"),
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [ln for ln in (run.stdout + run.stderr).splitlines() if f"{frames} frames:" in ln]
    assert lines, run.stdout + run.stderr
    return dict(re.findall(r"(p_md|p_fa|GOSPA|SER)=([-+0-9.e]+|nan)", lines[-1]))


def assert_metrics_equal(got: dict, want: dict) -> None:
    assert float(got["p_md"]) == pytest.approx(want["p_md"], abs=1e-4)
    assert float(got["p_fa"]) == pytest.approx(want["p_fa"], abs=1e-4)
    assert float(got["GOSPA"]) == pytest.approx(want["gospa"], abs=1e-2)
    assert float(got["SER"]) == pytest.approx(want["ser"], rel=1e-2)


@needs_grcc
def test_headless_flowgraph_compiles_runs_and_matches_evaluate(tmp_path):
    """The receiver's kernel "" is cpp when built, as evaluate's default."""
    frames = 12
    got = run_headless(REPO / "apps" / "isac_headless.grc", tmp_path, frames)
    sc = Scenario.default().with_overrides({"run.frames": frames, "run.seed": 0})
    assert_metrics_equal(got, evaluate(sc, "baseline", threshold=DEFAULT_THRESHOLD, progress=False))


@needs_grcc
def test_headless_flowgraph_with_learned_weights_matches_evaluate(tmp_path):
    """The shipped impairment-learning weights set in the precoder and the receiver (method ""
    = the method of the weights): the flowgraph computes what evaluate computes for them."""
    path = weights.default_weights_path()
    assert path is not None, "data/weights/impairment_default.safetensors is missing"
    text = (REPO / "apps" / "isac_headless.grc").read_text()
    learned = text.replace("    weights: ''\n", f"    weights: {path}\n")
    assert learned.count(path) == 2  # precoder and receiver
    grc = tmp_path / "isac_headless.grc"
    grc.write_text(learned)
    frames = 12
    got = run_headless(grc, tmp_path, frames)
    sc = Scenario.default().with_overrides({"run.frames": frames, "run.seed": 0})
    w = load_weights(path, sc)
    assert w.method == "impairment"
    want = evaluate(sc, w.method, w, threshold=DEFAULT_THRESHOLD, progress=False)
    assert_metrics_equal(got, want)
    base = evaluate(sc, "baseline", threshold=DEFAULT_THRESHOLD, progress=False)
    assert (want["p_md"], want["gospa"]) != (base["p_md"], base["gospa"])  # the weights did change the run


@needs_grcc
def test_grcc_refuses_reversed_sector(tmp_path):
    text = (REPO / "apps" / "isac_headless.grc").read_text()
    bad = text.replace("target_sector_deg: '[-40.0, -20.0]'", "target_sector_deg: '[-20.0, -40.0]'")
    assert bad.count("[-20.0, -40.0]") == 3  # precoder, channel, receiver
    grc = tmp_path / "bad.grc"
    grc.write_text(bad)
    res = compile_flowgraph(grc, tmp_path)
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "target_sector_deg" in out
    for block in ("isac_precoder_0", "isac_ula_channel_0", "isac_omp_receiver_0"):
        assert block in out, block


@needs_grcc
def test_grcc_refuses_learned_method_without_weights(tmp_path):
    text = (REPO / "apps" / "isac_headless.grc").read_text()
    bad = text.replace("    method: '\"\"'\n", "    method: '\"dictionary\"'\n")
    assert bad.count('"dictionary"') == 2
    grc = tmp_path / "bad.grc"
    grc.write_text(bad)
    res = compile_flowgraph(grc, tmp_path)
    assert res.returncode != 0
    assert "weights or method" in res.stdout + res.stderr


@needs_grcc
def test_zmq_flowgraph_publishes_detections_and_metrics(tmp_path):
    """apps/isac_zmq.grc runs until stopped and publishes serialized PMT dicts on 127.0.0.1."""
    import pmt
    import zmq

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
    proc = subprocess.Popen(
        [
            sys.executable,
            str(tmp_path / "isac_zmq.py"),
            "-n",
            "0",
            "--detections-address",
            det_addr,
            "--metrics-address",
            met_addr,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
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
    import time

    import gnuradio.qtgui  # noqa: F401
    import PyQt5  # noqa: F401  (Debian python3-pyqt5, installed by tools/setup.sh)

    res = compile_flowgraph(REPO / "apps" / "isac_gui.grc", tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_RUNTIME_DIR=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "isac_gui.py"), "-n", "0", "-r", "50"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        time.sleep(4)
        alive = proc.poll() is None
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode(errors="replace")
    assert alive, out
    assert "Traceback" not in out and "rror" not in out, out
