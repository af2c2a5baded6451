"""The layering of docs/architecture.md is the code's: its table of layers places every module
of python/isac/, and every import (module level or inside a function) points to a lower layer.
A new module must be placed in the table; an import up or sideways fails here."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "python" / "isac"
DOC = REPO / "docs" / "architecture.md"


def layers() -> dict[str, int]:
    """unit (a top-level module name or a subpackage name) -> its layer's rank (0 = top)."""
    rows = [ln for ln in DOC.read_text().splitlines() if re.match(r"\| [a-z]+ \| `", ln)]
    out = {}
    for rank, row in enumerate(rows):
        for path in re.findall(r"`([\w./]+)`", row.split("|")[2]):
            unit = path.rstrip("/").removesuffix(".py")
            assert unit not in out, f"{path} is placed twice"
            out[unit] = rank
    return out


def unit_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _unit(name: str) -> str:
    """A name imported from the package root: its module or subpackage, else the root itself
    (the compiled module and the lazy attributes)."""
    return name if (PACKAGE / f"{name}.py").exists() or (PACKAGE / name).is_dir() else "__init__"


def imports(path: Path) -> list[tuple[str, int]]:
    """The package units ``path`` imports (relative imports), with their line numbers."""
    package = list(path.relative_to(PACKAGE).parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = package[: len(package) - (node.level - 1)]
            full = base + (node.module.split(".") if node.module else [])
            if full:
                out.append((_unit(full[0]), node.lineno))
            else:  # from .. import name: a module of the package, or an attribute of its root
                out += [(_unit(a.name), node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gnuradio.isac"):
            parts = node.module.split(".")[2:]
            out += [(_unit(parts[0]), node.lineno)] if parts else [(_unit(a.name), node.lineno) for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("gnuradio.isac."):
                    out.append((_unit(a.name.split(".")[2]), node.lineno))
    return out


def sources() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if "bindings" not in p.parts and not p.name.startswith("qa_")]


def test_every_module_has_a_layer():
    rank = layers()
    assert len(set(rank.values())) >= 8
    missing = sorted({unit_of(p) for p in sources()} - set(rank))
    assert not missing, f"not placed in docs/architecture.md's table of layers: {missing}"
    stale = sorted(
        u for u in rank if u != "__init__" and not (PACKAGE / f"{u}.py").exists() and not (PACKAGE / u).is_dir()
    )
    assert not stale, f"docs/architecture.md places modules that do not exist: {stale}"


def test_every_import_points_down():
    rank = layers()
    wrong = []
    for path in sources():
        unit = unit_of(path)
        for target, line in imports(path):
            if target == unit:
                continue
            if rank[target] <= rank[unit]:
                where = f"{path.relative_to(PACKAGE)}:{line}"
                wrong.append(f"{where}: {unit} (layer {rank[unit]}) imports {target} (layer {rank[target]})")
    assert not wrong, "imports that do not point down:\n" + "\n".join(wrong)


def test_the_check_sees_lazy_imports():
    """The walk finds imports inside functions (a lazy upward import would count)."""
    found = imports(PACKAGE / "cli" / "train.py")
    assert ("trainer", next(n for t, n in found if t == "trainer")) in found
    src = (PACKAGE / "cli" / "train.py").read_text().splitlines()
    line = next(n for t, n in found if t == "trainer")
    assert src[line - 1].startswith("    ")  # an import inside main()
