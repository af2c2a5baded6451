"""The configuration schema (python/isac/config_schema.py): one table of keys whose ranges
Scenario.validated checks, whose defaults are DEFAULTS and the GRC block defaults, and from
which docs/config.md is generated (tools/gen_config_doc.py)."""

import ast
import importlib.util
import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gnuradio.isac.config import DEFAULTS, ConfigError, Scenario
from gnuradio.isac.config_schema import KEYS, KEYS_LIST, MAX_EXACT_INT

REPO = Path(__file__).resolve().parents[1]


def load(*overrides):
    return Scenario.default().with_overrides(list(overrides))


# --- the table ---------------------------------------------------------------------------


def test_defaults_are_the_schema_defaults_in_table_order():
    flat = {f"{s}.{k}": v for s, sec in DEFAULTS.items() for k, v in sec.items()}
    assert list(flat) == list(KEYS)
    for key, spec in KEYS.items():
        assert flat[key] == spec.default and type(flat[key]) is type(spec.default), key


def test_every_key_is_documented_with_unit_meaning_and_paper_symbol():
    for spec in KEYS_LIST:
        assert spec.unit and spec.doc and spec.paper, spec.key
        assert "\n" not in spec.doc and "|" not in spec.doc + spec.paper + spec.doc_range(), spec.key
        numeric = spec.kind in ("int", "float", "interval", "list")
        assert numeric != bool(spec.choices), spec.key  # a number has a range, a string its choices
        if numeric:  # every number is bounded on both sides (directly or by another key)
            assert spec.minimum is not None, spec.key
            assert spec.maximum is not None or spec.maximum_ref is not None, spec.key


def test_every_default_lies_in_its_own_range():
    s = Scenario.default()
    for spec in KEYS_LIST:
        ref = None if spec.maximum_ref is None else (spec.maximum_ref, s.derived_bound(spec.maximum_ref))
        assert spec.violation(spec.default, ref) is None, spec.key


def test_default_hash_is_the_hash_the_shipped_weights_were_trained_for():
    """data/weights/impairment_default.safetensors records the full scenario hash it was
    learned for (isac-sim uses it only when the hash matches)."""
    blob = (REPO / "data" / "weights" / "impairment_default.safetensors").read_bytes()
    n = struct.unpack("<Q", blob[:8])[0]
    meta = json.loads(blob[8 : 8 + n])["__metadata__"]
    assert Scenario.default().hash() == meta["scenario_hash_full"]


def test_the_schema_imports_without_numpy_torch_or_gnu_radio():
    code = (
        "import sys\n"
        "for m in ('numpy', 'torch', 'gnuradio.gr', 'pmt'):\n"
        "    sys.modules[m] = None\n"
        "from gnuradio.isac.config_schema import KEYS\n"
        "print(len(KEYS), KEYS['array.antennas'].field_id)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(len(KEYS)), "array_antennas"]


# --- Scenario.validated checks the ranges of the table -------------------------------------

#: keys whose edge values need other keys moved so that a cross-key rule does not interfere
EDGE_CONTEXT = {
    "scene.noise_power": ["scene.snr_sensing_db=-100", "scene.snr_comm_db=-100"],
    "transmitter.power": ["scene.snr_sensing_db=-100", "scene.snr_comm_db=-100"],
    "ofdm.spacing_hz": ["scene.range_m=[0.01, 0.1]"],
    "transmitter.beam_grid": ["scene.target_sector_deg=[-90, -20]", "scene.comm_sector_deg=[-90, 50]"],
    "ofdm.subcarriers": ["scene.comm_taps=1"],
}


def _outside(spec, bound, direction):
    """The value just outside ``bound`` (itself if the bound is open)."""
    is_open = spec.min_open if direction < 0 else spec.max_open
    if is_open:
        return bound
    if spec.kind == "int":
        return int(bound) + direction
    return math.nextafter(float(bound), direction * math.inf)


SCALARS = [s for s in KEYS_LIST if s.kind in ("int", "float") and s.maximum_ref is None]


@pytest.mark.parametrize("spec", SCALARS, ids=[s.key for s in SCALARS])
def test_scalar_ranges_come_from_the_schema(spec):
    context = EDGE_CONTEXT.get(spec.key, [])
    for bound, direction, is_open in ((spec.minimum, -1, spec.min_open), (spec.maximum, 1, spec.max_open)):
        bad = _outside(spec, bound, direction)
        with pytest.raises(ConfigError) as exc:
            load(*context, f"{spec.key}={bad!r}")
        assert str(exc.value).startswith(f"{spec.key} must be ")
        if isinstance(bad, int) and abs(bad) > MAX_EXACT_INT:  # refused before the range: not exact in float64
            assert "must be an integer of magnitude <= 2^53" in str(exc.value)
        else:
            assert str(exc.value) == spec.violation(bad)
            assert spec.range_text() in str(exc.value)
        if not is_open:  # the bound itself is allowed
            assert load(*context, f"{spec.key}={bound!r}").get(spec.key) == bound


def test_range_text_is_written_from_the_bounds():
    assert KEYS["receiver.p_fa"].range_text() == "in (0, 1)"
    assert KEYS["transmitter.beam_rcond"].range_text() == "in [0, 1)"
    assert KEYS["scene.snr_sensing_db"].range_text() == "in [-100, 100] (dB)"
    assert KEYS["array.antennas"].range_text() == "an integer >= 1 and <= 1048576"
    assert KEYS["scene.target_sector_deg"].range_text() == "-90 <= min < max <= 90 (degrees)"
    assert (
        KEYS["scene.range_m"].range_text(("c/(2*ofdm.spacing_hz)", 1249.08))
        == "0 <= min < max <= c/(2*ofdm.spacing_hz) = 1249.1 m"
    )


def test_interval_elements_and_order_come_from_the_schema():
    spec = KEYS["scene.comm_sector_deg"]
    for value in ([-90.5, 0.0], [0.0, 90.5], [20.0, 10.0], [10.0, 10.0]):
        with pytest.raises(ConfigError) as exc:
            load(f"scene.comm_sector_deg={value}")
        assert str(exc.value) == spec.violation(value)


def test_changing_a_bound_in_the_table_changes_the_validation(monkeypatch):
    """The range is read from the table at validation time, not copied into config.py."""
    import dataclasses

    from gnuradio.isac import config

    assert load("run.batch=5000").run["batch"] == 5000
    monkeypatch.setitem(config.KEYS, "run.batch", dataclasses.replace(KEYS["run.batch"], maximum=1000))
    with pytest.raises(ConfigError, match=r"run\.batch must be an integer >= 1 and <= 1000, got 5000"):
        load("run.batch=5000")


# --- GNU Radio Companion: the ISAC Scenario block is generated from the schema -------------------


def _grc_blocks():
    for path in sorted((REPO / "grc").glob("*.block.yml")):
        data = yaml.safe_load(path.read_text())
        yield path.name, data["id"], data.get("parameters", [])


def _tool(name: str):
    """A generator of tools/ (run with any python3), imported from its file."""
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _grc_generator():
    return _tool("gen_grc_scenario")


def test_the_grc_scenario_block_is_the_generated_output():
    gen = _grc_generator()
    assert gen.OUT.read_text() == gen.render(), (
        "grc/isac_scenario.block.yml is out of date: run tools/gen_grc_scenario.py"
    )
    assert gen.main(["--check"]) == 0


def test_the_grc_scenario_block_has_one_field_per_key_with_its_default():
    """Every key of the schema is a field of the ISAC Scenario block (id section_name, the key's
    default); the block's value and its generated code pass every field to the scenario."""
    doc = yaml.safe_load((REPO / "grc" / "isac_scenario.block.yml").read_text())
    params = {p["id"]: p for p in doc["parameters"]}
    for spec in KEYS_LIST:
        p = params[spec.field_id]
        default = str(p["default"])
        got = default if spec.choices else ast.literal_eval(default)
        assert got == spec.default, f"{spec.key}: field default {got!r}, schema {spec.default!r}"
        assert p["dtype"] == ("enum" if spec.choices else {"int": "int", "float": "real"}.get(spec.kind, p["dtype"]))
        assert f'"{spec.key}": {spec.field_id}' in doc["value"], spec.key
        assert (
            f'"{spec.key}": ' in doc["templates"]["var_make"]
            and f"${{{spec.field_id}}}" in doc["templates"]["var_make"]
        )
    assert set(params) == {"source", "config_file"} | {k.field_id for k in KEYS_LIST}


def test_no_block_but_the_scenario_block_retypes_a_scenario_key():
    """The other blocks take the scenario by id plus their own parameters: no parameter id of
    theirs names a scenario key (its GRC field id or its key name)."""
    names = {k.field_id for k in KEYS_LIST} | {k.name for k in KEYS_LIST}
    for name, block, params in _grc_blocks():
        if block == "isac_scenario":
            continue
        ids = {p["id"] for p in params}
        assert "scenario" in ids or block in ("isac_positions_pdu", "isac_json_publisher"), name
        assert not ids & names, f"{name}: {sorted(ids & names)} retype scenario keys"


# --- docs/config.md is generated from the schema -----------------------------------------------


def _generator():
    return _tool("gen_config_doc")


def test_docs_config_md_is_the_generated_output():
    gen = _generator()
    text = gen.DOC.read_text(encoding="utf-8")
    assert gen.splice(text, gen.render()) == text, "docs/config.md is out of date: run python3 tools/gen_config_doc.py"


def test_generator_check_mode_detects_a_stale_page(tmp_path, monkeypatch):
    gen = _generator()
    stale = tmp_path / "config.md"
    stale.write_text(gen.DOC.read_text(encoding="utf-8").replace("| `antennas` |", "| `antenas` |"))
    monkeypatch.setattr(gen, "DOC", stale)
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0
    assert stale.read_text() == gen.DOC.read_text() and "| `antennas` |" in stale.read_text()


def test_docs_list_every_key_with_its_unit_and_range():
    text = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    for spec in KEYS_LIST:
        rows = [r for r in text.splitlines() if r.startswith(f"| `{spec.name}` |")]
        assert len(rows) == 1, spec.key
        cells = [c.strip() for c in rows[0].strip("|").split(" | ")]
        assert cells[2] == spec.unit, spec.key
        assert spec.doc_range().split("[")[0] in cells[4], spec.key


def test_docs_name_the_paper_and_stand_alone():
    text = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    flat = " ".join(text.split())
    assert "*Model-Based End-to-End Learning for Multi-Target Integrated Sensing and Communication*" in flat
    assert "Multi-Band" not in text
    assert "shared/" not in text and "../shared" not in text


def test_max_exact_int_is_the_float64_limit():
    assert float(MAX_EXACT_INT) == MAX_EXACT_INT and float(MAX_EXACT_INT + 1) != MAX_EXACT_INT + 1
