"""The streaming flowgraph with the element impairments of model.impairments (gain / phase errors,
mutual coupling, dead elements, and all together with the spacing errors): the blocks take them
from the scenario, the channel simulates the impaired array a = diag(g) C a_pos,
and the streamed results equal the offline transceiver on the same frames; isac-sim accepts the
keys, the SigMF sink records them, and a GRC flowgraph with them compiles and runs."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_sim_flowgraph import check_streamed_equals_offline, run_collect, small_stream_scenario

from gnuradio.isac import recording, transceiver
from gnuradio.isac.blocks import angle_delay_map_stream, omp_receiver, precoder, sigmf_sink, ula_channel
from gnuradio.isac.blocks.omp_receiver import DEFAULT_THRESHOLD
from gnuradio.isac.cli import sim as isac_sim
from gnuradio.isac.config import Scenario
from gnuradio.isac.evaluation import evaluate
from gnuradio.isac.model.impairments import ImpairedArray, receiver_array, true_array, true_parameters

REPO = Path(__file__).resolve().parents[1]
GRCC = shutil.which("grcc")

#: one scenario per element model, and all of them together with the spacing errors
MODELS = {
    "gain": {"array.gain_std_db": 1.5, "array.phase_std_deg": 20.0},
    "coupling": {"array.coupling_taps": 2, "array.coupling_db": -12.0},
    "dead": {"array.dead_elements": 3},
    "combined": {
        "array.gain_std_db": 1.0,
        "array.phase_std_deg": 15.0,
        "array.coupling_taps": 1,
        "array.coupling_db": -15.0,
        "array.dead_list": [2, 9],
        "array.weak_gain": 0.3,
    },
}


@pytest.mark.parametrize("model", sorted(MODELS))
def test_blocks_build_the_scenarios_impaired_array(model):
    """The blocks take the element keys from the scenario: the channel's array is its true array
    (steering equal to true_array's, not to the position array's), run by the numpy model; the
    receiver and the map block of 'perfect' match its equal-norm atoms."""
    sc = small_stream_scenario(MODELS[model])
    ch = ula_channel(sc)
    assert isinstance(ch.array, ImpairedArray) and not ch.use_cpp
    theta = np.deg2rad(np.linspace(-60.0, 60.0, 25))
    want = true_array(sc).steering(theta)
    np.testing.assert_array_equal(ch.array.steering(theta), want)
    assert np.max(np.abs(ch.array.base.steering(theta) - want)) > 0.05  # the models change a(theta)
    rx = omp_receiver(sc, method="perfect", kernel="numpy")
    atoms = receiver_array(true_array(sc)).steering(theta)
    np.testing.assert_allclose(rx.array.steering(theta), atoms, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(atoms, axis=0), np.sqrt(16), rtol=1e-5)
    m = angle_delay_map_stream(sc, method="perfect")
    np.testing.assert_allclose(m.array.steering(theta), atoms, atol=1e-6)
    tx = precoder(sc, method="perfect")
    np.testing.assert_allclose(tx.precoder(), transceiver.build(sc, "perfect", None, "omp", "numpy").precoder(sc))


def test_channel_with_given_spacings_applies_the_element_models():
    sc = small_stream_scenario(MODELS["combined"])
    d = np.full(16, sc.wavelength_m / 2) * (1 + 0.01 * np.arange(16))
    ch = ula_channel(sc.with_overrides({"array.spacing_std_m": 0.0}), spacings_m=d)
    assert isinstance(ch.array, ImpairedArray) and ch.array.models == ("gain", "coupling", "dead")
    np.testing.assert_allclose(ch.array.spacings_m, d)
    for model, params in true_parameters(sc).items():
        for key, value in params.items():
            np.testing.assert_array_equal(ch.array.parameters[model][key], value)


def test_blocks_refuse_a_scenario_with_bad_element_keys(tmp_path):
    """A TOML scenario with out-of-range element keys: the block names its scenario parameter and
    the key with its range."""
    for block, keys, key in (
        (ula_channel, {"gain_std_db": -1.0}, "array.gain_std_db"),
        (omp_receiver, {"antennas": 4, "coupling_taps": 5}, "array.coupling_taps"),
        (precoder, {"dead_list": [64]}, "array.dead_list"),
    ):
        path = tmp_path / "bad.toml"
        path.write_text("[array]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items()))
        with pytest.raises(ValueError, match=rf"parameter 'scenario' .*{key}"):
            block(str(path))


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("method", ["baseline", "perfect"])
def test_streamed_results_equal_offline_model(model, method):
    sc = small_stream_scenario(MODELS[model])
    tb, seen = run_collect(sc, method=method, kernel="numpy", receiver="omp")
    assert isinstance(tb.channel.array, ImpairedArray)
    check_streamed_equals_offline(sc, tb, seen, transceiver.build(sc, method, None, "omp", "numpy"), "numpy")


def test_isac_sim_runs_with_element_keys(tmp_path, capsys):
    code = isac_sim.main(
        [
            "--set",
            "array.antennas=16",
            "--set",
            "ofdm.subcarriers=64",
            "--set",
            "receiver.angle_grid=90",
            "--set",
            "receiver.delay_grid=50",
            "--set",
            "array.gain_std_db=1.5",
            "--set",
            "array.coupling_taps=2",
            "--set",
            "array.dead_elements=2",
            "--method",
            "perfect",
            "--threshold",
            "2e4",
            "--frames",
            "3",
            "--no-progress",
            "--no-compare",
            "--record",
            str(tmp_path / "rec"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "over 3 frames: p_md = " in out
    info = recording.read(tmp_path / "rec", "rx").info
    sc = small_stream_scenario({"array.gain_std_db": 1.5, "array.coupling_taps": 2, "array.dead_elements": 2})
    assert (info["isac:gain_std_db"], info["isac:coupling_taps"], info["isac:dead_elements"]) == (1.5, 2, 2)
    recorded = info["isac:true_impairments"]
    assert set(recorded) == {"gain", "coupling", "dead"}
    for model, params in true_parameters(sc).items():
        for key, value in params.items():
            np.testing.assert_allclose(recorded[model][key], value)


def test_sigmf_sink_records_the_element_models(tmp_path):
    sc = small_stream_scenario(MODELS["combined"])
    blk = sigmf_sink(sc, path=str(tmp_path / "rx"))
    assert blk.info["isac:dead_list"] == [2, 9] and blk.info["isac:weak_gain"] == 0.3
    assert blk.metadata["isac:scenario"]["array"]["coupling_taps"] == 1
    json.dumps(blk.info)  # plain JSON
    off = sigmf_sink(small_stream_scenario({}), path=str(tmp_path / "rx0"))
    assert off.info["isac:gain_std_db"] == 0.0 and "isac:true_impairments" not in off.info


@pytest.mark.skipif(GRCC is None, reason="grcc (GNU Radio Companion compiler) not installed")
def test_headless_grc_flowgraph_with_element_parameters_matches_evaluate(tmp_path):
    """apps/isac_headless.grc with the element keys typed once, in its ISAC Scenario block, compiles
    (grcc, the blocks' yml) and computes what evaluate computes: the precoder, the channel and the
    receiver all see them."""
    from test_blocks_grc import set_fields

    text = set_fields(
        (REPO / "apps" / "isac_headless.grc").read_text(),
        "scenario",
        array_gain_std_db="1.5",
        array_coupling_taps="2",
        array_dead_list="[5]",
    )
    grc = tmp_path / "isac_headless.grc"
    grc.write_text(text)
    env = dict(os.environ, GRC_BLOCKS_PATH=str(REPO / "grc"))
    res = subprocess.run(
        [sys.executable, GRCC, "-o", str(tmp_path), str(grc)], env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stdout + res.stderr
    script = tmp_path / "isac_headless.py"
    code = script.read_text()
    assert "dead_list=" not in code  # no block takes the key: the scenario (and its setter) carry it
    assert code.count('"array.dead_list": [5]') == 2
    frames = 4
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
    got = dict(re.findall(r"(p_md|p_fa|GOSPA|SER)=([-+0-9.e]+|nan)", lines[-1]))
    sc = Scenario.default().with_overrides(
        {
            "run.frames": frames,
            "run.seed": 0,
            "array.gain_std_db": 1.5,
            "array.coupling_taps": 2,
            "array.dead_list": [5],
        }
    )
    want = evaluate(sc, "baseline", threshold=DEFAULT_THRESHOLD, progress=False)
    assert float(got["p_md"]) == pytest.approx(want["p_md"], abs=1e-4)
    assert float(got["p_fa"]) == pytest.approx(want["p_fa"], abs=1e-4)
    assert float(got["GOSPA"]) == pytest.approx(want["gospa"], abs=1e-2)


def test_record_then_replay_with_element_models(tmp_path, capsys):
    """isac-sim --record, then --replay with the same element keys: the perfect receiver of the
    impaired array gives the live detections on the recorded frames."""
    from test_sigmf import SMALL, blocks_of

    keys = ["--set", "array.gain_std_db=1.5", "--set", "array.coupling_taps=2", "--set", "array.dead_list=[4]"]
    d = tmp_path / "rec"
    args = ["--method", "perfect", *SMALL, *keys]
    assert isac_sim.main(["--frames", "4", "--record", str(d), "--no-compare", *args]) == 0
    live = blocks_of(capsys.readouterr().out)
    assert recording.read(d, "rx").info["isac:dead_list"] == [4]
    assert isac_sim.main(["--frames", "4", "--replay", str(d), *args]) == 0
    replayed = blocks_of(capsys.readouterr().out)
    assert sorted(live) == list(range(4)) and replayed == live
    # the detections depend on the element models the receiver assumes
    assert isac_sim.main(["--frames", "4", "--replay", str(d), "--method", "perfect", *SMALL]) == 0
    assert blocks_of(capsys.readouterr().out) != live
