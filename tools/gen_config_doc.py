#!/usr/bin/env python3
"""Generate the key tables of docs/config.md from the configuration schema
(python/isac/config_schema.py, the one table of keys, defaults, units and ranges).

    python3 tools/gen_config_doc.py          # rewrite the generated part of docs/config.md
    python3 tools/gen_config_doc.py --check  # exit 1 if docs/config.md is out of date

Only the text between the BEGIN/END markers is generated; the rest of the page is
written by hand. The schema is loaded from the source tree (standard library only), so
this runs without a build.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from schema_source import REPO, load_schema  # noqa: E402

DOC = REPO / "docs" / "config.md"
BEGIN = "<!-- BEGIN GENERATED: python3 tools/gen_config_doc.py (from python/isac/config_schema.py) -->"
END = "<!-- END GENERATED -->"


SCHEMA = load_schema()


def _doc_number(x) -> str:
    """Docs spelling of an integer bound: 2^20, 2^53, 10^9, else the schema's short form."""
    if isinstance(x, int) and x in (SCHEMA.MAX_SIZE, SCHEMA.MAX_EXACT_INT):
        return f"2^{x.bit_length() - 1}"
    if isinstance(x, int) and x >= 10**6 and str(x).rstrip("0") == "1":
        return f"10^{len(str(x)) - 1}"
    return SCHEMA._num(x)


def _default(value) -> str:
    """A default as a --set / TOML value that reads back as the same type."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_default(v) for v in value) + "]"
    if isinstance(value, float) and abs(value) >= 1e5:  # engineering notation: 60e9, 120e3
        exponent = 3 * ((len(str(int(abs(value)))) - 1) // 3)
        return f"{SCHEMA._num(value / 10**exponent)}e{exponent}"
    text = SCHEMA._num(value)
    if isinstance(value, float) and not any(c in text for c in ".e"):
        text += ".0"
    return text


def _allowed(key) -> str:
    text = key.doc_range()
    if key.kind == "int" and key.maximum is not None:
        text = text.replace(f", {key.maximum}]", f", {_doc_number(key.maximum)}]")
    if key.name == "phi_rad":
        text = text.replace(SCHEMA._num(key.maximum), "2π").replace("-2π", "−2π")
    return text


def render() -> str:
    """The generated part of docs/config.md (between the markers, markers excluded)."""
    out = []
    for section, heading in SCHEMA.SECTIONS.items():
        out += [
            f"### `[{section}]`: {heading}",
            "",
            "| key | meaning | unit | default | allowed | paper | GRC field |",
            "|---|---|---|---|---|---|---|",
        ]
        for key in SCHEMA.KEYS_LIST:
            if key.section == section:
                out.append(
                    f"| `{key.name}` | {key.doc} | {key.unit} | `{_default(key.default)}` | {_allowed(key)} "
                    f"| {key.paper} | `{key.field_id}` |"
                )
        out.append("")
    out += ["### Why these ranges", ""]
    out += [f"- `{key.key}`: {key.why}." for key in SCHEMA.KEYS_LIST if key.why]
    out.append("")
    return "\n".join(out)


def splice(text: str, generated: str) -> str:
    """``text`` with the part between the markers replaced by ``generated``."""
    head, sep, rest = text.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise SystemExit(f"{DOC}: the markers {BEGIN!r} ... {END!r} are missing")
    return f"{head}{BEGIN}\n\n{generated}\n{END}{tail}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/config.md differs from the schema")
    args = parser.parse_args(argv)
    text = DOC.read_text(encoding="utf-8")
    new = splice(text, render())
    if args.check:
        if new != text:
            print(f"{DOC} is out of date: run python3 tools/gen_config_doc.py", file=sys.stderr)
            return 1
        return 0
    if new != text:
        DOC.write_text(new, encoding="utf-8")
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
