"""Learned arrays (weights of isac-train) in evaluation, isac-eval, the blocks and isac-sim.

The weights here are written by weights.save from known arrays (the true impaired spacings:
an "oracle" learner; a wrong array: a bad learner), so the expected behaviour is exact; the
trainer's own learning is tested in test_trainer_*.py."""

import numpy as np
import pytest

from gnuradio.isac import transceiver
from gnuradio.isac import weights as W
from gnuradio.isac.cli import eval as isac_eval
from gnuradio.isac.cli import sim as isac_sim
from gnuradio.isac.config import Scenario
from gnuradio.isac.evaluation import evaluate, sense
from gnuradio.isac.model.array import ArrayModel, draw_spacings, positions_example1
from gnuradio.isac.model.grids import full_angle_grid
from gnuradio.isac.model.impairments import true_array
from gnuradio.isac.simulation import Simulator, baseline_precoder
from gnuradio.isac.transceiver import load_weights, save_weights


def small(**kw):
    base = {
        "array.antennas": 32,
        "ofdm.subcarriers": 128,
        "receiver.angle_grid": 240,
        "receiver.delay_grid": 100,
        "run.frames": 120,
        "run.calibration_frames": 120,
        "transmitter.eta": 1.0,
        "run.seed": 4,
    }
    base.update(kw)
    return Scenario.default().with_overrides(base)


def write_spacings(path, sc, spacings):
    tensors = {
        "angle_grid_rad": full_angle_grid(720),
        "spacings_m": spacings,
        "positions_m": positions_example1(spacings),
    }
    save_weights(path, sc, "impairment", tensors, steps=0)
    return str(path)


@pytest.fixture(scope="module")
def sc():
    return small()


@pytest.fixture(scope="module")
def oracle(sc, tmp_path_factory):
    """Weights holding the true impaired spacings of the scenario."""
    return write_spacings(tmp_path_factory.mktemp("w") / "oracle.safetensors", sc, true_array(sc).spacings_m)


def learned_array(sc, path) -> ArrayModel:
    w = load_weights(path, sc, "impairment")
    return transceiver.get(w.method).array(w, sc)


def test_learned_array_and_transmitter_come_from_the_weights(sc, oracle):
    w = load_weights(oracle, sc, "impairment")
    t = transceiver.build(sc, "impairment", w, "omp", "numpy")
    arr = t.receiver.array
    np.testing.assert_allclose(arr.positions_m, true_array(sc).positions_m)
    f = t.precoder(sc)
    np.testing.assert_allclose(f, baseline_precoder(sc, arr))
    assert not np.allclose(f, baseline_precoder(sc))  # not the nominal beam
    np.testing.assert_allclose(transceiver.transmitter(sc, "perfect").precoder(sc), baseline_precoder(sc))
    with pytest.raises(ValueError, match="needs a weights file"):
        transceiver.build(sc, "impairment")
    with pytest.raises(ValueError, match="does not use a weights file"):
        transceiver.build(sc, "baseline", w)
    with pytest.raises(W.WeightsError, match="holds weights of method 'impairment', expected 'dictionary'"):
        transceiver.build(sc, "dictionary", w)


def test_oracle_weights_recover_the_impairment_loss(sc, oracle):
    base = evaluate(sc, "baseline", progress=False)
    learned = evaluate(sc, "impairment", load_weights(oracle, sc), progress=False)
    perfect = evaluate(sc, "perfect", progress=False)
    assert learned["p_md"] < base["p_md"] - 0.2
    assert learned["gospa"] < 0.6 * base["gospa"]
    assert abs(learned["p_md"] - perfect["p_md"]) < 0.1


def test_weights_of_another_impairment_draw_are_refused(sc, tmp_path, capsys):
    other = write_spacings(
        tmp_path / "o.safetensors",
        sc.with_overrides({"array.impairment_seed": 9}),
        draw_spacings(32, sc.wavelength_m, 2e-4, 9),
    )
    with pytest.raises(W.WeightsError, match="different array, impairment seed"):
        load_weights(other, sc, "impairment")
    # the one explicit way to deploy them anyway: other_array (--weights-other-array); all else is still checked
    w = load_weights(other, sc, "impairment", other_array=True)
    np.testing.assert_allclose(
        transceiver.get(w.method).array(w, None).spacings_m, draw_spacings(32, sc.wavelength_m, 2e-4, 9)
    )
    with pytest.raises(W.WeightsError, match="antennas"):
        load_weights(other, sc.with_overrides({"array.antennas": 16}), "impairment", other_array=True)
    code = isac_eval.main(
        [
            "--method",
            "impairment",
            "--weights",
            other,
            "--set",
            "array.antennas=32",
            "--set",
            "ofdm.subcarriers=128",
            "--no-progress",
        ]
    )
    assert code == 2
    assert "different array, impairment seed" in capsys.readouterr().err
    assert (
        isac_eval.main(
            [
                "--method",
                "impairment",
                "--weights",
                other,
                "--weights-other-array",
                "--set",
                "array.antennas=32",
                "--set",
                "ofdm.subcarriers=128",
                "--set",
                "run.frames=4",
                "--set",
                "run.calibration_frames=4",
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert isac_eval.main(["--method", "impairment", "--no-progress"]) == 2
    assert "needs a weights file" in capsys.readouterr().err


def test_isac_eval_with_weights(sc, oracle, tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text(sc.to_toml())
    out = tmp_path / "m.json"
    assert (
        isac_eval.main(
            ["--config", str(cfg), "--method", "impairment", "--weights", oracle, "--json", str(out), "--no-progress"]
        )
        == 0
    )
    import json

    got = json.loads(out.read_text())
    want = evaluate(sc, "impairment", load_weights(oracle, sc), progress=False)
    assert got["method"] == "impairment" and got["p_md"] == pytest.approx(want["p_md"])


def test_blocks_use_the_learned_array(sc, oracle):
    from gnuradio.isac import omp_receiver, precoder
    from gnuradio.isac.blocks import BlockParameterError

    pre = precoder(sc, weights=oracle)
    assert pre.method == "impairment"
    np.testing.assert_allclose(pre.precoder(), baseline_precoder(sc, learned_array(sc, oracle)), atol=1e-6)
    rx = omp_receiver(sc, weights=oracle, threshold=1.0)
    np.testing.assert_allclose(rx.array.positions_m, true_array(sc).positions_m)
    with pytest.raises(BlockParameterError, match="isac_omp_receiver: parameter 'weights'.*no such weights file"):
        omp_receiver(sc, weights="/nonexistent.safetensors")
    with pytest.raises(BlockParameterError, match="isac_precoder: parameter 'weights'.*antennas"):
        precoder(sc.with_overrides({"array.antennas": 16}), weights=oracle)
    with pytest.raises(BlockParameterError, match="isac_omp_receiver: parameter 'method'.*holds weights of method"):
        omp_receiver(sc, weights=oracle, method="dictionary")
    # the blocks apply the one rule of weights.load: another impairment draw is refused unless weights_other_array
    other = sc.with_overrides({"array.impairment_seed": 9})
    with pytest.raises(BlockParameterError, match="isac_omp_receiver: parameter 'weights'.*different array"):
        omp_receiver(other, weights=oracle)
    assert omp_receiver(other, weights=oracle, weights_other_array=True).method == "impairment"


def test_streamed_learned_system_equals_offline(sc, oracle):
    from gnuradio.isac.flowgraph import SimFlowgraph

    n, thr = 8, 1.2e4
    seen = {}
    w = load_weights(oracle, sc)
    tb = SimFlowgraph(
        sc, n, thr, method="impairment", weights=w, kernel="numpy", on_frame=lambda f, t, d, e: seen.__setitem__(f, d)
    )
    tb.run()
    t = transceiver.build(sc, "impairment", w, "omp", "numpy")
    frames = Simulator(sc, precoder=t.precoder(sc)).frames(0, n)
    result = sense(frames, t.receiver)
    for i in range(n):
        want = result.detections(i, thr)
        assert seen[i].count == len(want["angle_rad"])
        np.testing.assert_allclose(seen[i].range_m, want["range_m"], atol=1e-6)


def test_isac_sim_picks_the_shipped_weights_only_when_they_fit(sc, oracle, monkeypatch, capsys):
    monkeypatch.setattr(W, "default_weights_path", lambda: oracle)
    method, w = isac_sim.choose_method(sc, None, None)
    assert method == "impairment" and w.source == oracle and w.method == "impairment"
    other = sc.with_overrides({"array.impairment_seed": 3})
    assert isac_sim.choose_method(other, None, None) == ("baseline", None)
    assert "shipped weights not used" in capsys.readouterr().err
    assert isac_sim.choose_method(sc, "perfect", None) == ("perfect", None)
    with pytest.raises(ValueError, match="holds 'impairment' weights but --method is 'dictionary'"):
        isac_sim.choose_method(sc, "dictionary", oracle)


def test_shipped_default_weights_fit_the_default_scenario():
    path = W.default_weights_path()
    assert path is not None, "the module must ship data/weights/" + W.DEFAULT_FILE
    w = load_weights(path, Scenario.default(), "impairment")
    assert w.steps > 0


def test_a_limited_learned_dictionary_is_synthesised_on_its_own_grid(sc):
    """Dictionary weights on N = 156 angles: the transmitter's LS beams use that grid (as in
    training), so the precoder equals the beam synthesised on the learned columns directly."""
    from gnuradio.isac.model.array import DictionaryArray, nominal_array
    from gnuradio.isac.model.beamforming import transmit_beam

    grid = full_angle_grid(156)
    arr = DictionaryArray(grid, nominal_array(32, sc.wavelength_m).steering(grid))
    tx = sc.transmitter
    want = transmit_beam(
        arr, sc.target_sector_rad, sc.comm_sector_rad, tx["eta"], tx["phi_rad"], tx["power"], 156, tx["beam_rcond"]
    )
    from gnuradio.isac.transceiver import ArrayTransmitter

    np.testing.assert_allclose(ArrayTransmitter(arr).precoder(sc), want, atol=1e-6)
