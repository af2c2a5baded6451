"""The transceiver layer (gnuradio.isac.transceiver): one method registry under the blocks, the
apps, the offline evaluation and the experiments; the layering it enforces; results pinned to the
values measured before the layer existed; a weights file read once per isac-sim run."""

import json
import subprocess
import sys

import numpy as np
import pytest

from gnuradio.isac import transceiver
from gnuradio.isac import weights as W
from gnuradio.isac.cli import eval as isac_eval
from gnuradio.isac.cli import sim as isac_sim
from gnuradio.isac.config import Scenario
from gnuradio.isac.evaluation import evaluate
from gnuradio.isac.model.array import PositionArray, scenario_nominal_array
from gnuradio.isac.model.impairments import true_array


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_blocks_do_not_import_evaluation_experiments_trainer_or_torch():
    mods = _modules_after(
        "from gnuradio import isac\n"
        "for name in ('precoder', 'ula_channel', 'reciprocal_filter', 'omp_receiver', "
        "'comm_receiver', 'metrics', 'message_source', 'angle_delay_map_stream', 'map_display', "
        "'positions_pdu', 'json_publisher'):\n    getattr(isac, name)\n"
        "import gnuradio.isac.flowgraph"
    )
    assert "gnuradio.isac.blocks.omp_receiver" in mods  # the probe did import the blocks
    for forbidden in ("gnuradio.isac.evaluation", "gnuradio.isac.experiments", "gnuradio.isac.trainer", "torch"):
        assert not any(m == forbidden or m.startswith(forbidden + ".") for m in mods), forbidden


def test_model_and_transceiver_import_neither_gnu_radio_nor_torch():
    mods = _modules_after(
        "import gnuradio.isac.model.array, gnuradio.isac.model.angle_delay, "
        "gnuradio.isac.model.beamforming, gnuradio.isac.model.channels, "
        "gnuradio.isac.model.channels_stream, gnuradio.isac.model.dictionaries, "
        "gnuradio.isac.model.domp, gnuradio.isac.model.grids, gnuradio.isac.model.metrics, "
        "gnuradio.isac.model.ofdm, gnuradio.isac.model.omp, gnuradio.isac.model.reciprocal, "
        "gnuradio.isac.model.scene, gnuradio.isac.transceiver, gnuradio.isac.scoring, "
        "gnuradio.isac.weights, gnuradio.isac.simulation, gnuradio.isac.evaluation"
    )
    assert "gnuradio.isac.transceiver.registry" in mods
    for forbidden in ("gnuradio.gr", "pmt", "torch", "gnuradio.isac.blocks", "gnuradio.isac.trainer"):
        assert not any(m == forbidden or m.startswith(forbidden + ".") for m in mods), forbidden


def test_importing_the_module_is_light():
    mods = _modules_after("import gnuradio.isac")
    for heavy in ("gnuradio.gr", "torch", "gnuradio.isac.blocks", "scipy", "matplotlib"):
        assert not any(m == heavy or m.startswith(heavy + ".") for m in mods), heavy


def test_no_method_name_is_compared_outside_the_transceiver_layer():
    """A method owns what it does: outside transceiver/ no code compares a value with a registered
    method's name (``method == "nn"``, ``w.method in ("impairment", "dictionary")``); it asks the
    registered class instead."""
    import ast
    from pathlib import Path

    package = Path(transceiver.__file__).resolve().parents[1]
    names = set(transceiver.methods())
    found = []
    for path in sorted(package.rglob("*.py")):
        if "transceiver" in path.relative_to(package).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare):
                continue
            values = []
            for side in (node.left, *node.comparators):
                if isinstance(side, ast.Constant):
                    values.append(side.value)
                elif isinstance(side, (ast.Tuple, ast.List, ast.Set)):
                    values += [e.value for e in side.elts if isinstance(e, ast.Constant)]
            hits = names.intersection(v for v in values if isinstance(v, str))
            if hits:
                found.append(f"{path.relative_to(package)}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "method names compared outside transceiver/:\n" + "\n".join(found)


def test_deploying_nnbl_weights_imports_no_training_code(tmp_path):
    """NNBL's networks live in gnuradio.isac.nn: loading its weights and running its transmitter
    and receiver imports torch, never gnuradio.isac.trainer."""
    import torch

    from gnuradio.isac.nn.networks import Nnbl, NnblConfig, state_tensors

    sc = Scenario.default().with_overrides({"array.antennas": 8, "ofdm.subcarriers": 32, "scene.max_targets": 2})
    torch.manual_seed(0)
    cfg = NnblConfig(8, 2, 16, 16, True)
    path = tmp_path / "nn.safetensors"
    transceiver.save_weights(
        path, sc, "nn", state_tensors(Nnbl.for_scenario(sc, cfg)), 0, metadata={"nnbl": cfg.to_dict()}
    )
    mods = _modules_after(
        "import numpy as np\n"
        "from gnuradio.isac import transceiver\n"
        "from gnuradio.isac.config import Scenario\n"
        "sc = Scenario.default().with_overrides(\n"
        "    {'array.antennas': 8, 'ofdm.subcarriers': 32, 'scene.max_targets': 2})\n"
        f"w = transceiver.load_weights({str(path)!r}, sc)\n"
        "t = transceiver.build(sc, 'nn', w)\n"
        "f = t.precoder(sc)\n"
        "r = t.receiver(np.ones((1, 8, 32), np.complex64))\n"
        "assert f.shape == (8,) and r.peaks.shape == (1, 2), (f.shape, r.peaks.shape)\n"
    )
    assert "gnuradio.isac.nn.networks" in mods and "torch" in mods  # the probe did run the networks
    assert not any(m == "gnuradio.isac.trainer" or m.startswith("gnuradio.isac.trainer.") for m in mods)


# --- results must not move ------------------------------------------------------------------------------
#: isac-eval --kernel cpp --set run.frames=60 --set run.calibration_frames=60 --set run.batch=30 (default scenario),
#: measured with the code before the transceiver layer (commit ef06688); the layer must reproduce them
PINNED = {
    ("baseline", "omp"): dict(
        p_md=0.5660377358490566,
        p_fa=0.0070921985815602835,
        gospa=74.46964383675005,
        ser=0.005403645833333333,
        angle_rmse_deg=2.9507609735160076,
        range_rmse_m=22.295474628432853,
        threshold=312327.875,
    ),
    ("perfect", "omp"): dict(
        p_md=0.13207547169811318,
        p_fa=0.0070921985815602835,
        gospa=21.226045242216408,
        ser=0.005403645833333333,
        angle_rmse_deg=0.12102364199608401,
        range_rmse_m=0.37671546593294214,
        threshold=213030.6875,
    ),
    ("impairment", "omp"): dict(
        p_md=0.11949685534591192,
        p_fa=0.02127659574468085,
        gospa=21.406091800986168,
        ser=0.00625,
        angle_rmse_deg=1.3242159696680516,
        range_rmse_m=1.102042339519678,
        threshold=190790.078125,
    ),
    ("impairment", "domp"): dict(
        p_md=0.11949685534591192,
        p_fa=0.02127659574468085,
        gospa=21.33407726582476,
        ser=0.00625,
        angle_rmse_deg=1.322710706896712,
        range_rmse_m=1.0962963634573575,
        threshold=188939.71875,
    ),
}


@pytest.mark.parametrize("method, receiver", sorted(PINNED))
def test_isac_eval_json_is_unchanged(method, receiver, tmp_path):
    out = tmp_path / "m.json"
    args = [
        "--method",
        method,
        "--receiver",
        receiver,
        "--kernel",
        "cpp",
        "--set",
        "run.frames=60",
        "--set",
        "run.calibration_frames=60",
        "--set",
        "run.batch=30",
        "--no-progress",
        "--workers",
        "1",  # the one-pass path; tests/test_eval_dask.py checks the Dask chunks against it
        "--json",
        str(out),
    ]
    if method == "impairment":
        args += ["--weights", W.default_weights_path()]
    assert isac_eval.main(args) == 0
    got = json.loads(out.read_text())
    assert got["method"] == method and got["receiver"] == receiver and got["frames"] == 60
    assert got["calibration_frames"] == 60 and got["scenario_hash"] == Scenario.default().hash()
    for key, want in PINNED[(method, receiver)].items():
        assert got[key] == pytest.approx(want, rel=1e-6), key


# --- one place to add a method --------------------------------------------------------------------------
class HalfKnowledge(transceiver.Method):
    """A method added from outside the module: the receiver assumes element positions halfway
    between the nominal and the true ones; the transmitter is the baseline."""

    name, summary = "half", "halfway between nominal and true positions (test method)"

    def receive_array(self, scenario, weights):
        p = 0.5 * (scenario_nominal_array(scenario).positions_m + true_array(scenario).positions_m)
        return PositionArray(p, scenario.wavelength_m)


@pytest.fixture
def half_method():
    transceiver.register(HalfKnowledge())
    yield "half"
    from gnuradio.isac.transceiver import registry

    registry._REGISTRY.pop("half")


def test_a_registered_method_runs_everywhere(half_method):
    sc = Scenario.default().with_overrides(
        {
            "array.antennas": 16,
            "ofdm.subcarriers": 64,
            "receiver.angle_grid": 90,
            "receiver.delay_grid": 50,
            "run.frames": 40,
            "run.calibration_frames": 40,
            "transmitter.eta": 1.0,
        }
    )
    assert "half" in transceiver.methods()
    t = transceiver.build(sc, "half", receiver="omp", kernel="numpy")
    np.testing.assert_allclose(
        t.receiver.array.positions_m, 0.5 * (scenario_nominal_array(sc).positions_m + true_array(sc).positions_m)
    )
    np.testing.assert_array_equal(t.precoder(sc), transceiver.build(sc, "baseline").precoder(sc))
    out = evaluate(sc, "half", progress=False, kernel="numpy")
    assert out["method"] == "half" and out["frames"] == 40
    # the blocks take it too
    from gnuradio import isac

    rx = isac.omp_receiver(sc, method="half", kernel="numpy")
    np.testing.assert_array_equal(rx.array.positions_m, t.receiver.array.positions_m)


def test_method_words_and_defaults():
    assert transceiver.methods() == ("baseline", "perfect", "impairment", "dictionary", "nn")
    assert transceiver.learned_methods() == ("impairment", "dictionary", "nn")
    assert transceiver.receivers() == ("omp", "domp") and transceiver.KERNELS == ("cpp", "numpy")
    assert transceiver.default_kernel() == "cpp"  # the C++ kernels are built by the set-up
    sc = Scenario.default()
    assert transceiver.build(sc, "baseline").receiver.kernel == "cpp"


# --- weights: read once --------------------------------------------------------------------------------
def test_isac_sim_reads_the_weights_file_once(monkeypatch, tmp_path, capsys):
    calls = []
    real = W.read

    def counting(path, *args, **kw):
        calls.append(str(path))
        return real(path, *args, **kw)

    monkeypatch.setattr(W, "read", counting)
    path = W.default_weights_path()
    png = tmp_path / "map.png"
    code = isac_sim.main(
        [
            "--weights",
            path,
            "--frames",
            "2",
            "--set",
            "run.calibration_frames=8",
            "--no-progress",
            "--no-compare",
            "--map-png",
            str(png),
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert calls == [path]
    assert png.stat().st_size > 10_000
