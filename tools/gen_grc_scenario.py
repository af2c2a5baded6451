#!/usr/bin/env python3
"""Generate grc/isac_scenario.block.yml, GRC's ISAC Scenario variable block, from the
configuration schema (python/isac/config_schema.py): one parameter per configuration key (its
id ``section_name``, its type, its default, a tab per section, the documentation line as the
parameter's tooltip) and one GRC assert per key from the key's allowed range, so that GRC itself
shows an out-of-range value with the key and the range before the flowgraph runs. Likewise the
range asserts of the other blocks' numeric parameters (config_schema.BLOCK_PARAMETER_RANGES, the ranges
their constructors check) in grc/isac_<block>.block.yml, between two marker comments of their
``asserts:`` (the asserts outside the markers are the block's own, written by hand).

    python3 tools/gen_grc_scenario.py          # rewrite grc/isac_scenario.block.yml and the asserts
    python3 tools/gen_grc_scenario.py --check  # exit 1 if any of them is out of date

The block's value is ``isac.scenario_of_fields(source, config_file, {key: field, ...})``
(gnuradio.isac.config_grc), which validates the whole scenario (the cross-key rules too: GRC
shows its message when it refuses). The schema is loaded from the source tree (standard library
only), so this runs without a build.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from schema_source import REPO, load_schema  # noqa: E402

OUT = REPO / "grc" / "isac_scenario.block.yml"


SCHEMA = load_schema()
#: section -> its tab in the block's properties
TABS = {
    "array": "Array",
    "ofdm": "OFDM",
    "scene": "Scene",
    "transmitter": "Transmitter",
    "receiver": "Receiver",
    "run": "Run",
}
#: the keys shown on the block's face (the others in its properties only)
ON_FACE = ("array.antennas", "ofdm.subcarriers", "scene.snr_sensing_db", "scene.target_sector_deg", "transmitter.eta")
#: key-name suffixes that are units
UNITS = {"hz": "Hz", "m": "m", "deg": "deg", "db": "dB", "rad": "rad", "mps": "m/s", "s": "s"}
#: the Python text of the bounds that depend on other keys (Key.maximum_ref), in field ids
REFS = {
    "ofdm.subcarriers": "ofdm_subcarriers",
    "c/(2*ofdm.spacing_hz)": "299792458.0 / (2 * ofdm_spacing_hz)",
    "array.antennas - 1": "(array_antennas - 1)",
}
DTYPES = {"int": "int", "float": "real", "interval": "real_vector", "list": "int_vector", "str": "enum"}


def label(key) -> str:
    words = key.name.split("_")
    unit = UNITS.get(words[-1]) if len(words) > 1 else None
    text = " ".join(words[:-1] if unit else words)
    text = text[0].upper() + text[1:]
    symbol = key.paper.split(",")[0].split(" (")[0].strip()
    # a symbol (K, f_c, N_θ), not a phrase or the first half of a pair ("{θ_min", "T_O =", "B of", "(7)")
    if len(symbol) <= 6 and symbol != "-" and not any(c in symbol for c in " {(="):
        text = symbol if symbol.lower() == text.lower() else f"{text}, {symbol}"  # "ICI", not "Ici, ICI"
    return f"{text} ({unit})" if unit else text


def quote(text: str) -> str:
    """A YAML single-quoted scalar."""
    return "'" + str(text).replace("'", "''") + "'"


def num(x) -> str:
    """A number as a short Python literal: 60e9, 120e3, 0.0002, 1048576."""
    if isinstance(x, float) and abs(x) >= 1e5 and x == int(x):
        exponent = 3 * ((len(str(int(abs(x)))) - 1) // 3)
        return f"{SCHEMA._num(x / 10**exponent)}e{exponent}"
    text = SCHEMA._num(x)
    return text + ".0" if isinstance(x, float) and not any(c in text for c in ".e") else text


def python_default(key) -> str:
    d = key.default
    if key.choices:
        return d  # GRC's enum value (the block's template quotes it)
    if isinstance(d, list):
        return "[" + ", ".join(num(v) for v in d) + "]"
    return num(d)


def bounded(key, value: str) -> str | None:
    """A chained comparison of ``value`` with the key's bounds: 'lo <= x <= hi' (None: unbounded)."""
    lo = None if key.minimum is None else f"{num(key.minimum)} {'<' if key.min_open else '<='} "
    hi = None if key.maximum is None else num(key.maximum)
    if key.maximum_ref is not None:
        ref = REFS[key.maximum_ref]
        hi = ref if hi is None else f"min({hi}, {ref})"
    hi = None if hi is None else f" {'<' if key.max_open else '<='} {hi}"
    return None if lo is None and hi is None else f"{lo or ''}{value}{hi or ''}"


def assertion(key) -> str | None:
    """The GRC assert of a key (None for a choice: GRC's enum already restricts it)."""
    f = key.field_id
    if key.choices:
        return None
    if key.kind == "interval":
        lo, hi = (bounded(key, f"{f}[{i}]") for i in (0, 1))
        order = "<=" if key.point_ok else "<"
        checks = [f"len({f}) == 2", lo, f"{f}[0] {order} {f}[1]", hi]
    elif key.kind == "list":
        limit = REFS[key.maximum_ref] if key.maximum_ref else num(key.maximum)
        checks = [f"all({bounded(key, 'v')} for v in {f})", f"len(set({f})) == len({f}) <= {limit}"]
    else:
        checks = [bounded(key, f)]
    checks = [c for c in checks if c]
    return "${ source == 'file' or (" + " and ".join(checks) + ") }" if checks else None


# --- the range asserts of the blocks' parameters -----------------------------------------------
BEGIN = "# range asserts generated by tools/gen_grc_scenario.py from config_schema.BLOCK_PARAMETER_RANGES: do not edit"
END = "# end of generated range asserts"


def number(x, integer: bool) -> str:
    return str(int(x)) if integer else num(float(x))


def parameter_assertion(p) -> str:
    """The GRC assert of a block parameter's range: a chained comparison (NaN and +-inf fail it)."""
    integer = p.kind in ("int", "pair")
    lo = "float('-inf') < " if p.minimum is None else f"{number(p.minimum, integer)} {'<' if p.min_open else '<='} "
    hi = " < float('inf')" if p.maximum is None else f" {'<' if p.max_open else '<='} {number(p.maximum, integer)}"
    if p.kind in ("int", "float"):
        return f"${{ {lo}{p.name}{hi} }}"
    each = f"all({lo}v{hi} for v in {p.name})"
    if p.kind == "floats":
        return f"${{ {each} }}"
    product = f" and {p.name}[0] * {p.name}[1] <= {p.product_max}" if p.product_max is not None else ""
    return f"${{ len({p.name}) == 2 and {each}{product} }}"


def block_asserts(block: str) -> list[str]:
    return [f"- {parameter_assertion(p)}" for p in SCHEMA.BLOCK_PARAMETERS_LIST if p.block == block]


def render_block(text: str, block: str) -> str:
    """The text of grc/<block>.block.yml with its generated range asserts brought up to date."""
    lines = text.split("\n")
    if BEGIN in lines:
        del lines[lines.index(BEGIN) : lines.index(END) + 1]
    if "asserts:" not in lines:
        at = lines.index("templates:")
        lines[at:at] = ["asserts:", ""]
    at = lines.index("asserts:") + 1
    lines[at:at] = [BEGIN, *block_asserts(block), END]
    return "\n".join(lines)


def block_files() -> dict:
    """grc/<block>.block.yml -> its text with the generated asserts, for each block with ranges."""
    out = {}
    for block in dict.fromkeys(p.block for p in SCHEMA.BLOCK_PARAMETERS_LIST):
        path = REPO / "grc" / f"{block}.block.yml"
        out[path] = render_block(path.read_text(), block)
    return out


def render() -> str:
    keys = list(SCHEMA.KEYS_LIST)
    lines = [
        "# GENERATED by tools/gen_grc_scenario.py from python/isac/config_schema.py: do not edit by hand.",
        "id: isac_scenario",
        "label: ISAC Scenario",
        "category: '[ISAC]'",
        "flags: [ show_id, python ]",
        "",
        "parameters:",
        "-   id: source",
        "    label: Source",
        "    dtype: enum",
        "    options: [fields, file]",
        "    option_labels: [these fields (defaults of Sec. V-A), a TOML file]",
        "    default: fields",
        "-   id: config_file",
        "    label: Scenario file (TOML)",
        "    dtype: file_open",
        "    default: ''",
        "    hide: ${ 'none' if source == 'file' else 'all' }",
    ]
    for key in keys:
        hide = "none" if key.key in ON_FACE else "part"
        lines += [
            f"-   id: {key.field_id}",
            f"    label: {quote(label(key))}",
            f"    category: {TABS[key.section]}",
            f"    dtype: {DTYPES[key.kind]}",
            f"    default: {quote(python_default(key))}",
        ]
        if key.choices:  # quoted: YAML 1.1 (GRC's loader) reads off / on / yes / no as booleans
            lines.append("    options: [" + ", ".join(quote(c) for c in key.choices) + "]")
        lines.append(f"    hide: ${{ 'all' if source == 'file' else '{hide}' }}")
    # the generated code: an enum renders as its bare option, quoted here
    fields = ", ".join(f'"{k.key}": ' + (f'"${{{k.field_id}}}"' if k.choices else f"${{{k.field_id}}}") for k in keys)
    value_fields = ", ".join(f'"{k.key}": {k.field_id}' for k in keys)
    make = f'isac.scenario_of_fields("${{source}}", ${{config_file}}, {{{fields}}})'
    lines += [
        "",
        "value: " + quote(f"${{ isac.scenario_of_fields(source, config_file, {{{value_fields}}}) }}"),
        "",
        "asserts:",
    ]
    lines += [f"- {a}" for a in (assertion(k) for k in keys) if a]
    lines += [
        "",
        "templates:",
        "    imports: from gnuradio import isac",
        "    var_make: |-",
        f"        self.${{id}} = ${{id}} = {make}",
        "    callbacks:",
        f"    - {quote(f'self.set_${{id}}({make})')}",
        "",
        "documentation: |-",
        "    The scenario of the flowgraph (gnuradio.isac.Scenario: docs/config.md lists every key with",
        "    its unit, default and range): the array (with its impairments), the OFDM numerology, the",
        "    scene, the transmitter and the receiver. Every gr-isac block takes it by id in its",
        "    'Scenario' parameter; a block that names none uses the paper's default scenario (Sec. V-A).",
        "",
        "    Source: these fields (each checked against its range by GRC; the cross-key rules, e.g. a",
        "    sector that holds an angle of the beam grid, when the scenario is built), or a TOML file",
        "    (the fields are then hidden and ignored).",
        "",
        "    A field may be a variable (e.g. a QT GUI Range): the precoder follows eta, phi, P and the",
        "    sectors at run time; the other keys apply when the flowgraph starts.",
        "",
        "file_format: 1",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    args = parser.parse_args(argv)
    files = {OUT: render(), **block_files()}
    if args.check:
        stale = [path for path, text in files.items() if not path.exists() or path.read_text() != text]
        for path in stale:
            print(f"{path.relative_to(REPO)} is out of date: run python3 tools/gen_grc_scenario.py", file=sys.stderr)
        return 1 if stale else 0
    for path, text in files.items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
