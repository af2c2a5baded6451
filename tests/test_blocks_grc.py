"""GRC: the block definitions grc/isac_*.block.yml against the blocks' constructors (every
parameter with its default, the choices, the callbacks), loaded by GRC's own platform (the
asserts hold at the defaults and refuse bad values, the rendered make template builds the block),
the ISAC Scenario variable block (its value is the scenario, its asserts and its value refuse
out-of-range keys with the key and the range), and the flowgraphs apps/*.grc compiled by grcc and
run with this Python: the headless flowgraph's metrics equal evaluation.evaluate on the same
frames and threshold, with the baseline and with the shipped learned weights."""

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
from gnuradio.isac.config import Scenario
from gnuradio.isac.evaluation import evaluate
from gnuradio.isac.simulation import STREAMS
from gnuradio.isac.transceiver import load_weights

REPO = Path(__file__).resolve().parents[1]
GRCC = shutil.which("grcc")
needs_grcc = pytest.mark.skipif(GRCC is None, reason="grcc (GNU Radio Companion compiler) not installed")
#: GRC-only parameters (not constructor arguments)
GRC_ONLY = {"gui_hint"}


def set_fields(grc_text: str, block: str, **values) -> str:
    """A .grc flowgraph's text with parameters ``values`` (GRC expressions) of the block named
    ``block`` changed, written back by GRC's own YAML writer."""
    from gnuradio.grc.core.io import yaml as grc_yaml

    data = yaml.safe_load(grc_text)
    (b,) = [b for b in data["blocks"] if b["name"] == block]
    b["parameters"].update(values)
    return grc_yaml.dump(data)


def block_yaml(name: str) -> dict:
    return yaml.safe_load((REPO / "grc" / f"isac_{name}.block.yml").read_text())


def signature(name: str) -> dict[str, inspect.Parameter]:
    params = dict(inspect.signature(getattr(isac, name).__init__).parameters)
    params.pop("self")
    return params


def yml_default(param: dict):
    """The Python value of a yml parameter's default, as GRC evaluates it for its dtype."""
    dtype, text = param["dtype"], str(param.get("default", ""))
    if dtype == "raw":
        return ast.literal_eval(text)
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


#: parameter with choices -> the values the blocks accept, in the registries' order (method and
#: receiver: editable choices, a registered plug-in's name can be typed)
CHOICES = {
    "method": ("",) + transceiver.methods(),
    "receiver": transceiver.receivers(),
    "kernel": ("",) + transceiver.KERNELS,
    "stream": tuple(STREAMS),
    "kind": ("rx", "tx"),
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
    if set(sig) - {"scenario"}:  # GRC checks the block's own values before the flowgraph runs
        assert doc["asserts"]
    # choices: exactly the values the blocks accept
    if "scenario" in sig:  # by id: an ISAC Scenario block, or None for the paper's
        assert params["scenario"]["dtype"] == "raw" and params["scenario"]["default"] in (None, "None")
    for pid, p in params.items():
        if "options" not in p:
            continue
        options = tuple(ast.literal_eval(o) if p["dtype"] == "enum" else o for o in p["options"])
        assert len(p["option_labels"]) == len(options), pid
        assert options == CHOICES[pid], pid
        if p["dtype"] == "string":  # an editable choice: GRC takes any text, the block checks it
            assert pid in ("method", "receiver"), pid
    # callbacks: methods of the block, with the block's parameters
    for callback in doc["templates"].get("callbacks", []):
        method, args = re.fullmatch(r"(\w+)\((.*)\)", callback).groups()
        assert callable(getattr(getattr(isac, name), method, None)), callback
        assert set(re.findall(r"\$\{(\w+)\}", args)) <= set(params), callback


def test_precoder_follows_its_scenario_at_run_time():
    """The precoder's run-time keys (eta, phi, P, sectors) come with the scenario: one callback."""
    from gnuradio.isac.blocks.precoder import RUNTIME

    assert block_yaml("precoder")["templates"]["callbacks"] == ["set_scenario(${scenario})"]
    assert set(RUNTIME.values()) == {
        "transmitter.eta",
        "transmitter.phi_rad",
        "transmitter.power",
        "scene.target_sector_deg",
        "scene.comm_sector_deg",
    }


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
        ("precoder", {"method": "'impairment'"}, "weights or method"),
        ("omp_receiver", {"method": "'nn'"}, "weights or method"),
        ("angle_delay_map_stream", {"method": "'dictionary'"}, "weights or method"),
        ("angle_delay_map_stream", {"method": "'nn'"}, "method != 'nn'"),
        ("omp_receiver", {"receiver": "'domp'", "temperature": "0"}, "0.0 < temperature < float('inf')"),
        ("ula_channel", {"fixed_angles_deg": "[-30.0]"}, "len(fixed_angles_deg) == len(fixed_ranges_m)"),
        ("metrics", {"stall_limit_s": "-1"}, "0.0 <= stall_limit_s < float('inf')"),
        ("map_display", {"map_points": "[0, 10]"}, "all(1 <= v <= 4096 for v in map_points)"),
    ],
)
def test_grc_asserts_refuse_bad_values(platform, name, values, wrong):
    _, errors = grc_block(platform, name, **values)
    assert any(wrong in e for e in errors), errors


#: out-of-range values of block parameters (GRC expression, the Python value): each passed GRC (no
#: assert, or a weaker one) and failed only when the flowgraph ran, or (map_points) asked for GiBs
BAD_BLOCK_VALUES = [
    ("metrics", "stall_limit_s", "float('inf')", float("inf")),
    ("metrics", "stall_limit_s", "float('nan')", float("nan")),
    ("metrics", "log_every", "2**60", 2**60),
    ("omp_receiver", "threshold", "float('inf')", float("inf")),
    ("omp_receiver", "temperature", "1e400", float("inf")),
    ("angle_delay_map_stream", "map_points", "[10**8, 100]", [10**8, 100]),
    ("map_display", "map_points", "[2000, 2000]", [2000, 2000]),
    ("map_display", "update_hz", "1e9", 1e9),
    ("map_display", "floor_db", "float('-inf')", float("-inf")),
    ("message_source", "frame_count", "2**70", 2**70),
    ("message_source", "first_frame", "2**60", 2**60),
    ("ula_channel", "fixed_angles_deg", "[120.0]", [120.0]),
    ("ula_channel", "fixed_ranges_m", "[float('nan')]", [float("nan")]),
    ("ula_channel", "spacings_m", "[-0.0025] * 64", [-0.0025] * 64),
    ("sigmf_sink", "spacings_m", "[float('inf')] * 64", [float("inf")] * 64),
    ("sigmf_source", "frame_count", "1e300", 1e300),
]


@pytest.mark.parametrize("name, param, expression, value", BAD_BLOCK_VALUES)
def test_grc_refuses_out_of_range_block_parameters_with_the_range(platform, name, param, expression, value):
    """The asserts generated from config_schema.BLOCK_PARAMETER_RANGES: GRC itself shows the parameter and
    its range; the constructor refuses the same value with the same range in one line."""
    values = {param: expression}
    if param == "fixed_angles_deg" or param == "fixed_ranges_m":  # the other list of the same length
        values["fixed_ranges_m" if param == "fixed_angles_deg" else "fixed_angles_deg"] = "[10.0]"
    _, errors = grc_block(platform, name, **values)
    failed = [e for e in errors if e.startswith("Assertion") and param in e and "failed" in e]
    assert len(failed) == 1, errors
    from gnuradio.isac.config_schema import BLOCK_PARAMETER_RANGES

    spec = BLOCK_PARAMETER_RANGES[(f"isac_{name}", param)]
    with pytest.raises(isac.BlockParameterError) as exc:
        if name == "map_display":
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
            from PyQt5 import QtWidgets

            app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])  # noqa: F841
        kwargs = {param: value}
        if param in ("fixed_angles_deg", "fixed_ranges_m"):
            kwargs["fixed_ranges_m" if param == "fixed_angles_deg" else "fixed_angles_deg"] = [10.0]
        if name == "sigmf_sink":
            kwargs["path"] = "unused"
        getattr(isac, name)(None, **kwargs)
    text = str(exc.value)
    assert text.startswith(f"isac_{name}: parameter '{param}' ") and spec.range_text() in text and "\n" not in text


def test_every_numeric_block_parameter_has_a_range():
    """A numeric parameter of a block's GRC file (int, real and their vectors) has a range in
    config_schema.BLOCK_PARAMETER_RANGES, and its generated assert is in the file: none can be added
    without one. Complex vectors (fixed_gains, precoder) are any K complex numbers."""
    from gnuradio.isac.config_schema import BLOCK_PARAMETER_RANGES

    numeric = {"int", "real", "int_vector", "real_vector", "float"}
    for name in sorted(BLOCKS):
        for param in block_yaml(name)["parameters"]:
            if param.get("dtype") in numeric:
                assert (f"isac_{name}", param["id"]) in BLOCK_PARAMETER_RANGES, (name, param["id"])
    for (block, param), spec in BLOCK_PARAMETER_RANGES.items():
        assert block.removeprefix("isac_") in BLOCKS, block
        asserts = block_yaml(block.removeprefix("isac_"))["asserts"]
        assert any(param in a and ("<" in a) for a in asserts), (block, param)


def test_map_display_keeps_as_many_frames_as_its_scatter_may_show():
    from gnuradio.isac.blocks.map_display import KEEP_FRAMES
    from gnuradio.isac.config_schema import BLOCK_PARAMETER_RANGES

    assert BLOCK_PARAMETER_RANGES[("isac_map_display", "xy_frames")].maximum == KEEP_FRAMES


# --- the ISAC Scenario block -----------------------------------------------------------------------
def test_the_scenario_block_holds_the_scenario(platform):
    """At its defaults the block's value is the paper's scenario; a field set to another value
    changes that key; with source "file" the TOML file is the scenario."""
    block, errors = grc_block(platform, "scenario")
    assert errors == []
    assert block.params["id"].get_value() == "isac_scenario_0"
    fg = block.parent_flowgraph
    assert fg.namespace["isac_scenario_0"] == Scenario.default()
    block, errors = grc_block(platform, "scenario", scene_snr_sensing_db="9.5", array_dead_list="[3, 5]")
    assert errors == [] and block.parent_flowgraph.namespace["isac_scenario_0"] == Scenario.default().with_overrides(
        {"scene.snr_sensing_db": 9.5, "array.dead_list": [3, 5]}
    )


@pytest.mark.parametrize(
    "values, wrong",
    [
        ({"scene_snr_sensing_db": "float('nan')"}, "-100.0 <= scene_snr_sensing_db <= 100.0"),
        ({"receiver_angle_grid": "10**8"}, "1 <= receiver_angle_grid <= 1048576"),
        ({"scene_target_sector_deg": "[-20.0, -40.0]"}, "scene_target_sector_deg[0] < scene_target_sector_deg[1]"),
        ({"scene_comm_taps": "300"}, "1 <= scene_comm_taps <= ofdm_subcarriers"),
        ({"array_dead_list": "[1, 1]"}, "len(set(array_dead_list)) == len(array_dead_list)"),
        ({"array_dead_list": "[64]"}, "v <= (array_antennas - 1) for v in array_dead_list"),
        ({"array_weak_gain": "1.0"}, "0.0 <= array_weak_gain < 1.0"),
        # cross-key rules: the scenario's own message, with the key and the range
        ({"array_antennas": "4", "array_coupling_taps": "4"}, "array.coupling_taps must be <= array.antennas - 1 = 3"),
        ({"array_dead_elements": "2", "array_dead_list": "[3]"}, "are exclusive"),
        ({"source": "file", "config_file": "'/nonexistent/s.toml'"}, "/nonexistent/s.toml"),
    ],
)
def test_the_scenario_block_refuses_out_of_range_keys_naming_the_key(platform, values, wrong):
    """GRC itself shows an out-of-range field: an assert generated from the key's range
    (tools/gen_grc_scenario.py), or the scenario's own error (a cross-key rule) as the block's
    value error, before any program runs."""
    block, _ = grc_block(platform, "scenario", **values)
    errors = block.get_error_messages()
    assert any(wrong in e for e in errors), errors


def test_grc_accepts_a_learned_method_with_weights(platform):
    for name in ("precoder", "omp_receiver", "angle_delay_map_stream"):
        _, errors = grc_block(platform, name, method='"impairment"', weights="'W.safetensors'")
        assert errors == [], (name, errors)


# --- grcc: the flowgraphs of apps/ ------------------------------------------------------------
def compile_flowgraph(grc: Path, out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, GRC_BLOCKS_PATH=str(REPO / "grc"))
    return subprocess.run(
        [sys.executable, GRCC, "-o", str(out), str(grc)], env=env, capture_output=True, text=True, timeout=120
    )


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


FOREIGN_COMM_RECEIVER = """
import numpy as np
from gnuradio import gr, isac


class users_comm_receiver(gr.sync_block):
    \"\"\"A user's own comm receiver (no gr-isac guard around its work): it raises on its first
    frames, so GNU Radio ends its thread and the metrics block gets no more frames.\"\"\"

    def __init__(self, scenario=None):
        n = isac.frame_geometry(scenario).symbol_items
        gr.sync_block.__init__(
            self, name="users_comm_receiver", in_sig=[(np.complex64, n)] * 2, out_sig=[(np.int32, n)]
        )

    def work(self, input_items, output_items):
        raise RuntimeError("the user's comm receiver failed")


isac.comm_receiver = users_comm_receiver
"""


@needs_grcc
def test_grc_flowgraph_ends_when_a_foreign_block_stops_delivering(tmp_path):
    """The headless flowgraph with a user's block in place of the comm receiver, which raises: the
    metrics block gets no frame for its stall limit (1 s here) and stops the flowgraph with one
    line naming its stream inputs; the program exits with status 1 instead of waiting for ever."""
    text = (REPO / "apps" / "isac_headless.grc").read_text()
    grc = tmp_path / "isac_headless.grc"
    grc.write_text(set_fields(text, "isac_metrics_0", stall_limit_s="1.0"))
    res = compile_flowgraph(grc, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    (tmp_path / "users_blocks.py").write_text(FOREIGN_COMM_RECEIVER)
    script = (
        "import sys, users_blocks, isac_headless\nsys.argv[1:] = ['-n', '40', '--seed', '0']\nisac_headless.main()\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(tmp_path)),
    )
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    lines = [ln for ln in out.splitlines() if "no frame has reached its stream inputs" in ln]
    assert len(lines) == 1, out
    assert "isac_metrics0: no frame has reached its stream inputs for 1 s (frame 0 is the next)" in lines[0]
    assert "stopped delivering" in lines[0]


@needs_grcc
def test_grcc_refuses_reversed_sector(tmp_path):
    """A reversed target sector typed into the ISAC Scenario block: grcc refuses the flowgraph and
    names the key and the block (one place to type it, one place that refuses it)."""
    text = (REPO / "apps" / "isac_headless.grc").read_text()
    grc = tmp_path / "bad.grc"
    grc.write_text(set_fields(text, "scenario", scene_target_sector_deg="[-20.0, -40.0]"))
    res = compile_flowgraph(grc, tmp_path)
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "target_sector_deg" in out and "scenario" in out, out


@needs_grcc
@pytest.mark.parametrize(
    "block, values, wrong",
    [
        ("scenario", {"scene_snr_sensing_db": "float('nan')"}, "-100.0 <= scene_snr_sensing_db <= 100.0"),
        ("scenario", {"receiver_angle_grid": "10**8"}, "1 <= receiver_angle_grid <= 1048576"),
        ("isac_metrics_0", {"stall_limit_s": "float('inf')"}, "0.0 <= stall_limit_s < float('inf')"),
        ("isac_omp_receiver_0", {"threshold": "float('inf')"}, "0.0 <= threshold < float('inf')"),
        ("isac_message_source_0", {"first_frame": "2**60"}, "0 <= first_frame <= 9007199254740992"),
    ],
)
def test_grcc_refuses_out_of_range_values_naming_the_key_and_the_range(tmp_path, block, values, wrong):
    """grcc compiled these flowgraphs, which failed only when they ran; now GRC's own check refuses
    them with the assert that names the key or parameter and its range (generated from the schema)."""
    text = (REPO / "apps" / "isac_headless.grc").read_text()
    grc = tmp_path / "bad.grc"
    grc.write_text(set_fields(text, block, **values))
    res = compile_flowgraph(grc, tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert wrong in out and block in out, out
    assert not (tmp_path / "isac_headless.py").exists()


@needs_grcc
def test_grcc_refuses_learned_method_without_weights(tmp_path):
    text = (REPO / "apps" / "isac_headless.grc").read_text()
    bad = set_fields(text, "isac_precoder_0", method="'dictionary'")
    bad = set_fields(bad, "isac_omp_receiver_0", method="'dictionary'")
    grc = tmp_path / "bad.grc"
    grc.write_text(bad)
    res = compile_flowgraph(grc, tmp_path)
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "weights or method" in out
    for block in ("isac_precoder_0", "isac_omp_receiver_0"):
        assert block in out, block


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


# --- the launchers: GRC with the Python gr-isac is installed for ---------------------------------
@needs_grcc
def test_isac_grcc_compiles_with_the_installed_blocks_and_this_python(tmp_path):
    """isac-grcc needs no GRC_BLOCKS_PATH and no interpreter on its command line: it finds the
    installed ISAC block files and evaluates their expressions with gnuradio.isac."""
    launcher = Path(sys.executable).parent / "isac-grcc"
    env = {k: v for k, v in os.environ.items() if k != "GRC_BLOCKS_PATH"}
    res = subprocess.run(
        [str(launcher), "-o", str(tmp_path), str(REPO / "apps" / "isac_headless.grc")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "isac.scenario_of_fields" in (tmp_path / "isac_headless.py").read_text()


def test_isac_companion_runs_gnuradio_companion_with_this_python(monkeypatch):
    from gnuradio.isac.cli import grc

    calls = []
    monkeypatch.setattr(grc.os, "execve", lambda exe, argv, env: calls.append((exe, argv, env)))
    monkeypatch.setenv("GRC_BLOCKS_PATH", "/my/blocks")
    grc.companion_main(["flow.grc"])
    ((exe, argv, env),) = calls
    assert exe == sys.executable and argv[0] == sys.executable
    assert argv[1].endswith("gnuradio-companion") and argv[2:] == ["flow.grc"]
    assert env["GRC_BLOCKS_PATH"].split(os.pathsep) == ["/my/blocks", grc.BLOCKS_DIR]
