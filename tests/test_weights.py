"""Weights files (weights.py: the format; transceiver.load_weights / save_weights: the one
validation, by each method's registry class): round trip and every refusal."""

import json

import numpy as np
import pytest
import safetensors  # noqa: F401  (hard dependency: fail, never skip)

from gnuradio.isac import transceiver  # noqa: E402
from gnuradio.isac import weights as W  # noqa: E402
from gnuradio.isac.config import Scenario  # noqa: E402
from gnuradio.isac.model import array as arr  # noqa: E402
from gnuradio.isac.model import impairments as imp  # noqa: E402
from gnuradio.isac.model.grids import full_angle_grid  # noqa: E402
from gnuradio.isac.transceiver import load_weights, save_weights  # noqa: E402

SC = Scenario.default()
K = SC.array["antennas"]
GRID = full_angle_grid(720)
TRUE = imp.true_array(SC)


def learned(w, scenario=None):
    """The array of loaded weights, as their method deploys it."""
    return transceiver.get(w.method).array(w, scenario)


def impairment_tensors():
    return {"spacings_m": TRUE.spacings_m, "positions_m": TRUE.positions_m, "angle_grid_rad": GRID}


def dictionary_tensors():
    return {"dictionary": TRUE.steering(GRID), "angle_grid_rad": GRID}


def rewrite(path, tensors=None, meta=None):
    """Rewrite a file with changed tensors / metadata (bypassing the checks of save)."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), framework="np") as fh:
        m = dict(fh.metadata())
        t = {k: fh.get_tensor(k) for k in fh.keys()}
    for k, v in (tensors or {}).items():
        if v is None:
            t.pop(k)
        else:
            t[k] = v
    for k, v in (meta or {}).items():
        if v is None:
            m.pop(k)
        else:
            m[k] = v
    save_file(t, str(path), metadata=m)


@pytest.fixture
def imp_file(tmp_path):
    p = tmp_path / "w.safetensors"
    save_weights(p, SC, "impairment", impairment_tensors(), steps=12, training={"lr": 1e-3})
    return p


def test_round_trip_impairment(imp_file):
    w = load_weights(imp_file, SC, method="impairment")
    assert w.method == "impairment" and w.steps == 12
    np.testing.assert_array_equal(w.tensors["spacings_m"], TRUE.spacings_m)
    assert w.tensors["spacings_m"].dtype == np.float64
    meta = w.metadata
    assert meta["antennas"] == "64" and meta["subcarriers"] == "256" and float(meta["carrier_hz"]) == 60e9
    assert json.loads(meta["units"])["spacings_m"] == "m" and json.loads(meta["training"]) == {"lr": 1e-3}
    assert meta["scenario_hash"] == SC.hash(("array", "ofdm")) and meta["scenario_hash_full"] == SC.hash()
    array = learned(w, SC)
    np.testing.assert_allclose(array.steering(GRID[:5]), TRUE.steering(GRID[:5]))


def test_weights_file_is_readable_by_others_under_the_default_umask(imp_file):
    import os

    mask = os.umask(0)
    os.umask(mask)
    assert imp_file.stat().st_mode & 0o777 == 0o666 & ~mask


def test_round_trip_dictionary(tmp_path):
    p = tmp_path / "d.safetensors"
    save_weights(p, SC, "dictionary", dictionary_tensors(), steps=3)
    w = load_weights(p, SC)
    assert w.method == "dictionary" and w.tensors["dictionary"].dtype == np.complex64
    np.testing.assert_array_equal(learned(w).steering(GRID[[7]]), TRUE.steering(GRID[[7]]))


def test_file_holds_no_pickle(imp_file):
    data = imp_file.read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    json.loads(data[8 : 8 + header_len])  # plain JSON header, raw tensor bytes after it
    assert b"\x80\x04" not in data[: 8 + header_len]


def test_refuses_scene_changes_only_when_physical(imp_file):
    # scene / transmitter differences are allowed (training randomised them)
    load_weights(imp_file, SC.with_overrides(["transmitter.eta=0.2", "scene.target_sector_deg=[-20, 20]"]))
    with pytest.raises(W.WeightsError, match="array/OFDM scenario"):
        load_weights(imp_file, SC.with_overrides(["array.impairment_seed=7"]))
    # the one explicit way past the array check; every other check still applies
    w = load_weights(imp_file, SC.with_overrides(["array.impairment_seed=7"]), other_array=True)
    assert w.other_array and w.source == str(imp_file)
    with pytest.raises(W.WeightsError, match="antennas = 64, the scenario has 32"):
        load_weights(imp_file, SC.with_overrides(["array.impairment_seed=7", "array.antennas=32"]), other_array=True)


@pytest.mark.parametrize(
    "override, message",
    [
        ("array.antennas=32", "antennas = 64, the scenario has 32"),
        ("ofdm.subcarriers=128", "subcarriers = 256, the scenario has 128"),
        ("array.carrier_hz=28e9", "carrier_hz"),
        ("ofdm.spacing_hz=60e3", "subcarrier_spacing_hz"),
        ("array.impairment='cumulative'", "impairment model 'spacing'"),
    ],
)
def test_refuses_mismatched_metadata(imp_file, override, message):
    with pytest.raises(W.WeightsError, match=message):
        load_weights(imp_file, SC.with_overrides([override]))


def test_refuses_wrong_method_format_and_missing_metadata(imp_file, tmp_path):
    with pytest.raises(W.WeightsError, match="method 'impairment', expected 'dictionary'"):
        load_weights(imp_file, SC, method="dictionary")
    rewrite(imp_file, meta={"format_version": "99"})
    with pytest.raises(W.WeightsError, match="version '99'"):
        load_weights(imp_file, SC)
    rewrite(imp_file, meta={"format_version": "1", "steps": None})
    with pytest.raises(W.WeightsError, match="metadata lacks steps"):
        load_weights(imp_file, SC)
    rewrite(imp_file, meta={"steps": "1", "method": "nnbl"})
    with pytest.raises(W.WeightsError, match="'nnbl' is not one of"):
        load_weights(imp_file, SC)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"spacings_m": None}, "'spacings_m' is missing"),
        ({"positions_m": np.zeros(63)}, r"'positions_m' has shape \(63,\), expected \(64,\)"),
        ({"spacings_m": np.full(64, np.nan)}, "'spacings_m' contains NaN or Inf"),
        ({"spacings_m": np.ones(64, np.complex64)}, "expected a real float type"),
        ({"angle_grid_rad": np.linspace(-1, 1, 720)}, "not the uniform 720-point grid"),
    ],
)
def test_refuses_bad_tensors(imp_file, change, message):
    rewrite(imp_file, tensors=change)
    with pytest.raises(W.WeightsError, match=message):
        load_weights(imp_file, SC)


def test_refuses_bad_dictionary(tmp_path):
    p = tmp_path / "d.safetensors"
    save_weights(p, SC, "dictionary", dictionary_tensors(), steps=3)
    bad = TRUE.steering(GRID)
    bad[3, 5] = np.inf
    rewrite(p, tensors={"dictionary": bad})
    with pytest.raises(W.WeightsError, match="'dictionary' contains NaN or Inf"):
        load_weights(p, SC)
    rewrite(p, tensors={"dictionary": np.ones((64, 720), np.float32)})
    with pytest.raises(W.WeightsError, match="expected a complex type"):
        load_weights(p, SC)


def test_save_refuses_invalid_tensors(tmp_path):
    t = impairment_tensors()
    t["spacings_m"] = t["spacings_m"][:10]
    with pytest.raises(W.WeightsError, match="shape"):
        save_weights(tmp_path / "x.safetensors", SC, "impairment", t, steps=0)
    assert not (tmp_path / "x.safetensors").exists()


def test_refuses_missing_and_corrupt_files(tmp_path):
    with pytest.raises(W.WeightsError, match="no such weights file"):
        load_weights(tmp_path / "none.safetensors", SC)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(W.WeightsError, match="not a readable safetensors file"):
        load_weights(bad, SC)


# --- the element impairment models (model/impairments.py) ------------------------------------------

ELEM = Scenario.default().with_overrides(
    [
        "array.gain_std_db=1",
        "array.phase_std_deg=20",
        "array.coupling_taps=2",
        "array.coupling_db=-12",
        "array.dead_elements=3",
        "array.weak_gain=0.2",
    ]
)


def element_tensors(sc=ELEM):
    """The true array's parameters as impairment weights tensors."""
    a = sc.array
    true = imp.true_array(sc)
    gain_db, phase = imp.draw_gain_errors(K, a["gain_std_db"], a["phase_std_deg"], a["impairment_seed"])
    return {
        "spacings_m": true.spacings_m,
        "positions_m": true.positions_m,
        "angle_grid_rad": GRID,
        "gain_db": gain_db,
        "phase_rad": phase,
        "amplitude": imp.element_amplitudes(K, imp.dead_indices(sc), a["weak_gain"]),
        "coupling": true.parameters["coupling"]["coupling"],
    }


@pytest.fixture
def elem_file(tmp_path):
    p = tmp_path / "e.safetensors"
    save_weights(p, ELEM, "impairment", element_tensors(), steps=5)
    return p


def test_element_model_weights_round_trip_and_rebuild_the_array(elem_file):
    w = load_weights(elem_file, ELEM, "impairment")
    assert w.array_models == ("spacing", "gain", "coupling", "dead")
    assert json.loads(w.metadata["array_models"]) == ["spacing", "gain", "coupling", "dead"]
    units = json.loads(w.metadata["units"])
    assert units["gain_db"] == "dB" and units["phase_rad"] == "rad" and units["amplitude"] == "linear"
    array, true = learned(w, ELEM), imp.true_array(ELEM)
    assert isinstance(array, imp.ImpairedArray) and array.models == ("gain", "coupling", "dead")
    np.testing.assert_allclose(array.steering(GRID), true.steering(GRID), atol=1e-6)
    np.testing.assert_array_equal(array.positions_m, true.positions_m)


def test_default_weights_record_the_spacing_model_and_old_files_read_as_such(imp_file):
    w = load_weights(imp_file, SC)
    assert json.loads(w.metadata["array_models"]) == ["spacing"] and type(learned(w)) is arr.PositionArray
    rewrite(imp_file, meta={"array_models": None})  # a file written before the element models
    w = load_weights(imp_file, SC)
    assert "array_models" not in w.metadata and w.array_models == ("spacing",)
    np.testing.assert_array_equal(learned(w, SC).steering(GRID[:9]), TRUE.steering(GRID[:9]))


def test_refuses_weights_of_other_array_models(imp_file, elem_file):
    """One rule: the weights' array models must be the scenario's, also with other_array=True."""
    with pytest.raises(
        W.WeightsError, match="learned for array models spacing, the scenario's array has spacing, gain, coupling, dead"
    ):
        load_weights(imp_file, ELEM, other_array=True)
    with pytest.raises(
        W.WeightsError, match="learned for array models spacing, gain, coupling, dead, the scenario's array has spacing"
    ):
        load_weights(elem_file, SC, other_array=True)
    with pytest.raises(W.WeightsError, match="array models"):
        load_weights(elem_file, ELEM.with_overrides(["array.coupling_taps=0"]), other_array=True)
    with pytest.raises(
        W.WeightsError,
        match=r"tensor 'coupling' of array model 'coupling' has shape \(2, 2\), the scenario's array needs \(3, 2\)",
    ):
        load_weights(elem_file, ELEM.with_overrides(["array.coupling_taps=3"]), other_array=True)
    # another draw of the same models: the hash differs (another array); other_array deploys it
    with pytest.raises(W.WeightsError, match="array/OFDM scenario"):
        load_weights(elem_file, ELEM.with_overrides(["array.impairment_seed=4"]))
    load_weights(elem_file, ELEM.with_overrides(["array.impairment_seed=4", "array.gain_std_db=3"]), other_array=True)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"gain_db": None}, "'gain_db' is missing"),
        ({"phase_rad": np.zeros(63)}, r"'phase_rad' has shape \(63,\), expected \(64,\)"),
        ({"amplitude": np.full(64, np.nan)}, "'amplitude' contains NaN or Inf"),
        ({"coupling": np.zeros((2, 3))}, r"'coupling' has shape \(2, 3\), expected \(2, 2\)"),
        ({"coupling": np.zeros((2, 2), np.complex64)}, "expected a real float type"),
    ],
)
def test_refuses_bad_element_tensors(elem_file, change, message):
    rewrite(elem_file, tensors=change)
    with pytest.raises(W.WeightsError, match=message):
        load_weights(elem_file, ELEM)


def test_refuses_element_tensors_the_models_do_not_list_and_malformed_models(imp_file):
    rewrite(imp_file, tensors={"gain_db": np.zeros(64)})
    with pytest.raises(
        W.WeightsError,
        match="tensor 'gain_db' of array model 'gain', which the file's array_models "
        r"\['spacing'\] do not list",
    ):
        load_weights(imp_file, SC)
    rewrite(imp_file, tensors={"gain_db": None})
    for bad in ('["spacing", "bogus"]', "[]", '["gain", "gain"]', "not json"):
        rewrite(imp_file, meta={"array_models": bad})
        with pytest.raises(W.WeightsError, match="malformed metadata"):
            load_weights(imp_file, SC)
