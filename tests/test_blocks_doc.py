"""docs/blocks.md against the code: its constructor-parameter table lists every parameter of
every block with its default and nothing else, its scenario section names exactly the blocks
that take a scenario (first, default None) and those that take none, its method / receiver /
kernel table lists the registries' values, and its Python examples that use gr-isac run."""

import ast
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from gnuradio import isac

from gnuradio.isac.blocks import BLOCKS

DOC = Path(__file__).resolve().parents[1] / "docs" / "blocks.md"


def section(title: str) -> str:
    """The text of the '## title' section of docs/blocks.md (up to the next '## ')."""
    text = DOC.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def split_top_level(text: str) -> list[str]:
    """'a=1, b=(2, 3)' -> ['a=1', 'b=(2, 3)']: commas outside brackets and quotes."""
    parts, depth, quote, cur = [], 0, None, ""
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
            continue
        cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def documented_parameters() -> dict[str, dict[str, object]]:
    """block name -> {parameter: default} from the table of '## Constructor parameters'; a row
    whose first cell is empty continues the block above. A parameter listed twice fails."""
    lines = section("Constructor parameters").splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.startswith("| Block |"))
    rows = []
    for ln in lines[first:]:  # the table: up to its first non-table line
        if not ln.startswith("|"):
            break
        rows.append(ln)
    header, rows = rows[0], rows[2:]  # header, |---|, data
    assert header.split("|")[1].strip() == "Block" and "Parameters" in header.split("|")[-2]
    table: dict[str, dict[str, object]] = {}
    block = None
    for row in rows:
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if cells[0]:
            m = re.fullmatch(r"`isac\.(\w+)`", cells[0])
            assert m, f"first cell is not `isac.<block>`: {row}"
            block = m.group(1)
            assert block not in table, f"{block} has rows in two places"
            table[block] = {}
        assert block is not None, row
        code = re.fullmatch(r"`(.*)`", cells[-1])
        if code is None:
            assert cells[-1] == "none", row
            continue
        for item in split_top_level(code.group(1)):
            name, sep, default = item.partition("=")
            assert sep, f"{block}: '{item}' is not name=default"
            assert name not in table[block], f"{block}.{name} is listed twice"
            table[block][name] = ast.literal_eval(default)
    return table


def signature_defaults(name: str) -> dict[str, object]:
    params = inspect.signature(getattr(isac, name).__init__).parameters
    return {p: v.default for p, v in params.items() if p != "self"}


def expected_row(name: str) -> str:
    """The table row a block should have (for the failure message)."""
    args = ", ".join(f"{k}={v!r}" for k, v in signature_defaults(name).items())
    return f"| `isac.{name}` | | `{args}` |" if args else f"| `isac.{name}` | | none |"


def test_table_lists_every_block_once():
    assert set(documented_parameters()) == set(BLOCKS)


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_table_rows_equal_the_constructor_signature(name):
    doc = documented_parameters()[name]
    sig = signature_defaults(name)
    hint = f"\nexpected (in any grouping/order): {expected_row(name)}"
    assert set(doc) == set(sig), f"only in docs: {set(doc) - set(sig)}, missing: {set(sig) - set(doc)}" + hint
    for param, default in sig.items():
        assert default is not inspect.Parameter.empty, f"{name}.{param} has no default"
        got = doc[param]
        assert type(got) is type(default) and got == default, (
            f"{name}.{param}: docs say {got!r}, the constructor has {default!r}" + hint
        )


def paragraph(text: str, marker: str) -> str:
    """The one paragraph (blank-line separated) of ``text`` that contains ``marker``."""
    found = [p for p in re.split(r"\n\s*\n", text) if marker in p]
    assert len(found) == 1, f"{len(found)} paragraphs contain {marker!r}"
    return found[0]


def test_scenario_lists_name_the_blocks_that_take_one_and_those_that_take_none():
    text = section("The scenario")
    listed_with = re.findall(r"`isac\.(\w+)`", paragraph(text, "take `scenario` first"))
    listed_without = re.findall(r"`isac\.(\w+)`", paragraph(text, "take no `scenario`"))
    assert len(listed_with) == len(set(listed_with)) and len(listed_without) == len(set(listed_without))
    take = {n for n in BLOCKS if "scenario" in signature_defaults(n)}
    for listed, want in ((set(listed_with), take), (set(listed_without), set(BLOCKS) - take)):
        assert listed == want, f"only in docs: {listed - want}, missing: {want - listed}"
    for name in take:  # the doc says: first, default None (the paper's scenario)
        assert next(iter(signature_defaults(name))) == "scenario", f"{name}: scenario is not its first parameter"
        assert signature_defaults(name)["scenario"] is None, f"{name}: scenario's default is not None"


def python_examples() -> list[str]:
    """The ```python blocks of docs/blocks.md that use gr-isac (the others, e.g. a ZeroMQ client
    that waits for a publisher, only show a client)."""
    blocks = re.findall(r"^ *```python\n(.*?)^ *```", DOC.read_text(), flags=re.S | re.M)
    return [inspect.cleandoc("\n" + b) for b in blocks if "isac" in b]


def test_the_document_has_python_examples():
    assert len(python_examples()) >= 4


@pytest.mark.parametrize("index", range(len(python_examples())))
def test_python_example_runs(index):
    """Each example runs as written, from the repository root (paths like data/weights/...)."""
    code = python_examples()[index]
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=DOC.parents[1],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, f"example {index}:\n{code}\n--- stderr:\n{proc.stderr[-3000:]}"


def test_words_list_the_registered_methods_receivers_and_kernels():
    from gnuradio.isac import transceiver

    rows = {
        ln.split("|")[1].strip(): ln for ln in section("Method, receiver, kernel").splitlines() if ln.startswith("| `")
    }
    for word, values in (
        ("method", transceiver.methods()),
        ("receiver", transceiver.receivers()),
        ("kernel", transceiver.KERNELS),
    ):
        cell = rows[f"`{word}`"].split("|")[2]
        assert re.findall(r"`(\w+)`", cell) == list(values), word
