"""Plug-in points, proven from outside the package: examples/isac_plugin_example.py registers
an array impairment model (cable), a sensing receiver (peaks) and a learned method
(calibration), one class each, and nothing else of the project changes. Each runs where the
project's own do: the true array and perfect knowledge, impairment learning, isac-train,
isac-eval, the blocks in a flowgraph (streamed == offline).

The module's registrations are undone after each test (the registries are restored), so the
rest of the suite sees the project's own models, receivers and methods only; the apps load the
plug-in with --plugin in a subprocess."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gnuradio.isac import config_schema, plugins, transceiver
from gnuradio.isac.config import Scenario
from gnuradio.isac.evaluation import evaluate
from gnuradio.isac.model import impairments
from gnuradio.isac.model.array import scenario_nominal_array
from gnuradio.isac.model.omp import omp
from gnuradio.isac.transceiver import registry, sensing

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "examples" / "isac_plugin_example.py"
SMALL = {
    "array.antennas": 8,
    "ofdm.subcarriers": 32,
    "scene.max_targets": 2,
    "run.frames": 40,
    "run.calibration_frames": 40,
    "run.batch": 40,
}
SETS = [a for k, v in SMALL.items() for a in ("--set", f"{k}={v}")]


@pytest.fixture
def plugin():
    """The example plug-in, imported as a user's module; the registries restored afterwards."""
    saved = (
        dict(impairments._MODELS),
        dict(config_schema.KEYS),
        {s: dict(d) for s, d in config_schema.DEFAULTS.items()},
        dict(registry._REGISTRY),
        dict(sensing._RECEIVERS),
        list(plugins._LOADED),
    )
    module = plugins.load(str(PLUGIN))
    assert plugins.loaded()[-1] == str(PLUGIN)  # a Dask runner's workers import it too
    yield module
    impairments._MODELS.clear()
    impairments._MODELS.update(saved[0])
    config_schema.KEYS.clear()
    config_schema.KEYS.update(saved[1])
    for section, values in saved[2].items():
        config_schema.DEFAULTS[section].clear()
        config_schema.DEFAULTS[section].update(values)
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved[3])
    sensing._RECEIVERS.clear()
    sensing._RECEIVERS.update(saved[4])
    plugins._LOADED[:] = saved[5]
    sys.modules.pop("isac_plugin_" + PLUGIN.stem, None)


def run_app(app: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    code = f"import sys; from gnuradio.isac.cli.{app} import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, "--plugin", str(PLUGIN), *args, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def test_the_plugin_touches_no_project_file():
    """One module: it imports the project's public pieces and registers; the project names it
    nowhere (a plug-in needs no project file beyond its own)."""
    tree = ast.parse(PLUGIN.read_text())
    calls = {
        ast.unparse(n.func)
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and ast.unparse(n.func).split(".")[-1].startswith("register")
        and not ast.unparse(n.func).startswith("self.")
    }
    assert calls == {"impairments.register", "transceiver.register_receiver", "transceiver.register"}
    for path in (REPO / "python").rglob("*.py"):
        text = path.read_text()
        for name in ("CableDelays", "PeakPickingReceiver", "isac_plugin_example"):
            assert name not in text, (path, name)


def test_unknown_plugin_names_the_option_and_the_reason():
    res = subprocess.run(
        [sys.executable, "-m", "gnuradio.isac.cli.eval", "--plugin", "no_such_plugin_module"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2
    assert "--plugin" in res.stderr and "no_such_plugin_module" in res.stderr and "ModuleNotFoundError" in res.stderr


# --- an array impairment model ------------------------------------------------------------------
def test_element_model_joins_the_true_array_in_its_place(plugin):
    """a = diag(g_gain g_cable) C a_pos: the plug-in's chain factor multiplies the built-in gain,
    behind the coupling, from its own seed stream (the other models' draws do not move)."""
    base = Scenario.default().with_overrides({**SMALL, "array.gain_std_db": 1.0, "array.coupling_taps": 1})
    sc = base.with_overrides({"array.cable_delay_std_ps": 5.0})
    assert "array.cable_delay_std_ps" in config_schema.KEYS and sc.hash() != base.hash()
    assert Scenario.default().hash() == Scenario.default().with_overrides({"array.cable_delay_std_ps": 0.0}).hash()
    with pytest.raises(Exception, match=r"cable_delay_std_ps"):
        Scenario.default().with_overrides({"array.cable_delay_std_ps": -1.0})
    params, before = impairments.true_parameters(sc), impairments.true_parameters(base)
    assert set(params) == {"gain", "coupling", "cable"}
    for name in ("gain", "coupling"):  # its own stream: the built-in draws are unchanged
        for k in before[name]:
            np.testing.assert_array_equal(params[name][k], before[name][k])
    rng = np.random.default_rng(np.random.SeedSequence([sc.get("array.impairment_seed"), 0xCAB1E]))
    phase = -2 * np.pi * sc.get("array.carrier_hz") * rng.normal(0, 5e-12, 8)
    np.testing.assert_allclose(params["cable"]["cable_phase_rad"], phase, rtol=1e-12)
    g = impairments.element_model("gain").factor(params["gain"], 8) * np.exp(1j * phase)
    C = impairments.element_model("coupling").factor(params["coupling"], 8)
    theta = np.deg2rad(np.array([-40.0, 0.0, 25.0]))
    true = impairments.true_array(sc)
    a_pos = true.base.steering(theta)
    np.testing.assert_allclose(true.steering(theta), (g[:, None] * (C @ a_pos)), rtol=1e-5, atol=1e-6)
    # "perfect" knows it
    perfect = transceiver.get("perfect").receive_array(sc, None)
    np.testing.assert_allclose(perfect.steering(theta), true.steering(theta))


def test_element_model_hurts_the_baseline_and_perfect_knowledge_undoes_it(plugin):
    """Large cable errors (sigma 2 pi f_c = 1.9 rad of phase at 60 GHz, 5 ps): the baseline's
    nominal array misses most targets, the receiver that knows the true array does not."""
    sc = Scenario.default().with_overrides({**SMALL, "run.frames": 100, "array.cable_delay_std_ps": 5.0})
    base = evaluate(sc, "baseline", progress=False)
    perfect = evaluate(sc, "perfect", progress=False)
    assert perfect["gospa"] < 0.6 * base["gospa"] and perfect["p_md"] < base["p_md"] - 0.2


def test_element_model_is_learned_saved_and_deployed(plugin, tmp_path):
    """isac-train --method impairment learns the plug-in's phases with the spacings; the weights
    hold its tensor and its unit, load, and run in isac-eval and in the receiver block."""
    out = tmp_path / "w.safetensors"
    sets = SETS + ["--set", "array.cable_delay_std_ps=2.0"]
    res = run_app(
        "train",
        "--method",
        "impairment",
        "--quick",
        "--iterations",
        "3",
        "--batch",
        "8",
        "--val-every",
        "3",
        "--val-frames",
        "8",
        "--out",
        str(out),
        *sets,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "learned array models spacing, cable" in res.stdout
    sc = Scenario.default().with_overrides({**SMALL, "array.cable_delay_std_ps": 2.0})
    w = transceiver.load_weights(out, sc)
    assert w.array_models == ("spacing", "cable") and w.tensors["cable_phase_rad"].shape == (8,)
    assert np.any(w.tensors["cable_phase_rad"] != 0)  # learned
    assert json.loads(w.metadata["units"])["cable_phase_rad"] == "rad"
    learned = transceiver.get("impairment", w).receive_array(sc, w)
    assert learned.models == ("cable",)
    np.testing.assert_allclose(learned.gains, np.exp(1j * w.tensors["cable_phase_rad"]), rtol=1e-12)
    res = run_app("eval", "--method", "impairment", "--weights", str(out), "--json", str(tmp_path / "m.json"), *sets)
    assert res.returncode == 0, res.stdout + res.stderr
    got = json.loads((tmp_path / "m.json").read_text())
    want = evaluate(sc, "impairment", w, progress=False)
    assert got["gospa"] == pytest.approx(want["gospa"], rel=1e-9) and got["p_md"] == want["p_md"]
    # the blocks: the precoder and the receiver with the weights, streamed == offline
    assert_stream_equals_offline(sc, "impairment", w, "omp")


# --- a sensing receiver ---------------------------------------------------------------------------
def test_receiver_first_detection_is_omps(plugin):
    """Peak picking and OMP pick the same first cell (the map maximum, eq. (10)); OMP's later
    ones come from the residual (14), the plug-in's from the same map."""
    sc = Scenario.default().with_overrides(SMALL)
    rx = transceiver.sensing_receiver(sc, "baseline", None, "peaks")
    assert rx.receiver == "peaks" and "peaks" in transceiver.receivers()
    rng = np.random.default_rng(3)
    y = (rng.normal(size=(6, 8, 32)) + 1j * rng.normal(size=(6, 8, 32))).astype(np.complex64)
    a = rx(y)
    b = omp(y, rx.dictionaries, 2)
    np.testing.assert_array_equal(a.angle_index[:, 0], b.angle_index[:, 0])
    np.testing.assert_array_equal(a.delay_index[:, 0], b.delay_index[:, 0])
    np.testing.assert_allclose(a.peaks[:, 0], b.peaks[:, 0], rtol=1e-5)
    assert np.all(np.diff(a.peaks, axis=1) <= 0)  # decreasing map cells
    with pytest.raises(ValueError, match="receiver"):  # dOMP-only arrays are refused by the method's list
        transceiver.get("calibration").sensing_receiver(sc, None, "domp", None, 0.1)


def test_receiver_runs_in_isac_eval_and_in_the_receiver_block(plugin, tmp_path):
    # on two Dask workers: they import the client's plug-in (cluster.run_on_worker)
    res = run_app("eval", "--receiver", "peaks", "--workers", "2", "--json", str(tmp_path / "m.json"), *SETS)
    assert res.returncode == 0, res.stdout + res.stderr
    got = json.loads((tmp_path / "m.json").read_text())
    sc = Scenario.default().with_overrides(SMALL)
    want = evaluate(sc, "baseline", receiver="peaks", progress=False)
    assert got["receiver"] == "peaks"
    assert got["gospa"] == pytest.approx(want["gospa"], rel=1e-9) and got["p_md"] == want["p_md"]
    assert_stream_equals_offline(sc, "baseline", None, "peaks")


# --- a learned method -----------------------------------------------------------------------------
def test_learned_method_trains_saves_loads_and_runs(plugin, tmp_path):
    """isac-train --method calibration learns the chain gains of an array with gain and phase
    errors (its coherence with the true array grows); the weights load, are validated by the
    method's own rule, and run in isac-eval and in the blocks."""
    sets = SETS + ["--set", "array.spacing_std_m=0", "--set", "array.gain_std_db=2", "--set", "array.phase_std_deg=30"]
    out = tmp_path / "cal.safetensors"
    res = run_app(
        "train",
        "--method",
        "calibration",
        "--quick",
        "--iterations",
        "8",
        "--batch",
        "8",
        "--val-every",
        "4",
        "--val-frames",
        "8",
        "--out",
        str(out),
        *sets,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    rows = list(__import__("csv").DictReader(open(tmp_path / "cal.csv")))
    assert float(rows[-1]["coherence"]) > float(rows[0]["coherence"])
    sc = Scenario.default().with_overrides(
        {**SMALL, "array.spacing_std_m": 0.0, "array.gain_std_db": 2.0, "array.phase_std_deg": 30.0}
    )
    w = transceiver.load_weights(out, sc)
    assert w.method == "calibration" and set(w.tensors) == {"gains", "angle_grid_rad"}
    arr = transceiver.get("calibration", w).receive_array(sc, w)
    c = w.tensors["gains"][:, 0] + 1j * w.tensors["gains"][:, 1]
    theta = np.deg2rad([-30.0, 10.0])
    np.testing.assert_allclose(arr.steering(theta), c[:, None] * scenario_nominal_array(sc).steering(theta), rtol=1e-5)
    # the method's own validation refuses a bad tensor
    bad = dict(w.tensors, gains=np.zeros((7, 2)))
    with pytest.raises(transceiver.WeightsError, match=r"'gains' has shape \(7, 2\), expected \(8, 2\)"):
        transceiver.save_weights(tmp_path / "bad.safetensors", sc, "calibration", bad, 1)
    res = run_app("eval", "--method", "calibration", "--weights", str(out), "--json", str(tmp_path / "m.json"), *sets)
    assert res.returncode == 0, res.stdout + res.stderr
    got = json.loads((tmp_path / "m.json").read_text())
    want = evaluate(sc, "calibration", w, progress=False)
    assert got["method"] == "calibration" and got["gospa"] == pytest.approx(want["gospa"], rel=1e-9)
    assert_stream_equals_offline(sc, "calibration", w, "omp")


# --- streamed == offline --------------------------------------------------------------------------
def assert_stream_equals_offline(sc, method, weights, receiver, frames=12):
    """isac-sim's flowgraph of the blocks (message_source -> precoder -> ula_channel ->
    reciprocal_filter -> omp_receiver, comm_receiver -> metrics) scores what evaluate scores on
    the same frames and its calibrated threshold."""
    from gnuradio.isac.flowgraph import SimFlowgraph

    sc = sc.with_overrides({"run.frames": frames, "run.seed": 0})
    want = evaluate(sc, method, weights, receiver=receiver, progress=False)
    tb = SimFlowgraph(sc, frames, want["threshold"], method=method, weights=weights, receiver=receiver)
    assert tb.receiver.receiver == receiver
    tb.run()
    got = tb.summary()
    assert got["frames"] == frames
    for key in ("p_md", "p_fa"):
        assert got[key] == pytest.approx(want[key], abs=1e-12), key
    assert got["gospa"] == pytest.approx(want["gospa"], rel=1e-6)
    assert got["ser"] == pytest.approx(want["ser"], rel=1e-9)
