"""Enforced style (issue: a module users trust keeps its code formatted): ruff lint and format
for Python (pyproject.toml), clang-format for the C++ kernels and bindings (.clang-format). The
pinned tools are installed by the set-up (tools/requirements.txt); a failure lists the files."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*args):
    return subprocess.run([str(a) for a in args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_lint_is_clean():
    out = run(BIN / "ruff", "check", "--no-cache", ".")
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_format_is_clean():
    out = run(BIN / "ruff", "format", "--no-cache", "--check", ".")
    assert out.returncode == 0, out.stdout + out.stderr


def cpp_files():
    files = [
        *ROOT.glob("lib/*.cc"),
        *ROOT.glob("lib/*.h"),
        *ROOT.glob("include/gnuradio/isac/*.h"),
        *ROOT.glob("python/isac/bindings/*.cc"),
        *ROOT.glob("python/isac/bindings/*.h"),
    ]
    return sorted(files)


def test_clang_format_is_clean():
    files = cpp_files()
    assert len(files) >= 8  # the kernels, their QA programs, headers and bindings
    out = run(BIN / "clang-format", "--dry-run", "--Werror", *files)
    assert out.returncode == 0, out.stderr[-4000:]


def test_the_checks_catch_a_badly_formatted_file(tmp_path):
    """The tools do fail on bad input (a check that cannot fail checks nothing)."""
    bad_py = tmp_path / "bad.py"
    bad_py.write_text("import os,sys\nx=1\n")
    assert run(BIN / "ruff", "format", "--no-cache", "--check", bad_py).returncode != 0
    assert run(BIN / "ruff", "check", "--no-cache", "--config", ROOT / "pyproject.toml", bad_py).returncode != 0
    bad_cc = tmp_path / "bad.cc"
    bad_cc.write_text("int f( int a ){return a;}\n")
    assert (
        run(BIN / "clang-format", f"--style=file:{ROOT / '.clang-format'}", "--dry-run", "--Werror", bad_cc).returncode
        != 0
    )
