"""Project files of the module: LICENSE, CITATION.cff, CHANGELOG.md, one version everywhere,
a quiet CMake configure of a fresh clone, and documentation that stands alone (no references
to files outside the repository)."""

import datetime
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_GPL3 = Path("/usr/share/common-licenses/GPL-3")  # base-files (Essential) on Debian
LICENSE_ID = "GPL-3.0-or-later"
SPDX_TAG = "SPDX-License-" + "Identifier"  # split so this file does not match its own search
CHANGE_TYPES = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def text(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def flat(s: str) -> str:
    """All runs of whitespace as one space (the docs wrap their lines anywhere)."""
    return " ".join(s.split())


def project_version() -> str:
    """The version of project() in the top-level CMakeLists.txt (the one definition)."""
    m = re.search(r"^project\(\s*gr-isac\s+VERSION\s+([0-9.]+)\s", text("CMakeLists.txt"), re.M)
    assert m, "CMakeLists.txt: project(gr-isac VERSION x.y.z ...) not found"
    return m.group(1)


def citation() -> dict:
    return yaml.safe_load(text("CITATION.cff"))


def changelog_releases() -> list[tuple[str, str | None]]:
    """(version, date) of each '## [...]' heading of CHANGELOG.md, in file order."""
    heads = re.findall(r"^## \[([^\]]+)\](?: - (\S+))?\s*$", text("CHANGELOG.md"), re.M)
    return [(v, d or None) for v, d in heads]


# --- LICENSE ---------------------------------------------------------------------------


def test_license_is_the_verbatim_gpl3_text():
    lic = text("LICENSE")
    assert lic.lstrip().startswith("GNU GENERAL PUBLIC LICENSE")
    assert "Version 3, 29 June 2007" in lic.splitlines()[1]
    assert "END OF TERMS AND CONDITIONS" in lic
    assert "How to Apply These Terms to Your New Programs" in lic
    assert DEBIAN_GPL3.is_file(), f"{DEBIAN_GPL3} missing (Debian's base-files ships it)"
    assert (ROOT / "LICENSE").read_bytes() == DEBIAN_GPL3.read_bytes()


def test_spdx_headers_name_the_license_of_license_and_citation():
    out = subprocess.run(
        ["git", "grep", "--untracked", "-h", "-I", "-e", SPDX_TAG + ":"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ids = set(re.findall(SPDX_TAG + r":\s*([A-Za-z0-9.+-]+)", out))
    assert ids == {LICENSE_ID}, f"SPDX identifiers in the tree: {sorted(ids)}"
    assert citation()["license"] == LICENSE_ID


# --- CITATION.cff ----------------------------------------------------------------------


def check_authors(authors, where):
    assert isinstance(authors, list) and authors, f"{where}: authors must be a non-empty list"
    for a in authors:
        assert isinstance(a, dict), f"{where}: each author is a mapping, got {a!r}"
        named = isinstance(a.get("name"), str) and a["name"].strip()
        person = isinstance(a.get("family-names"), str) and isinstance(a.get("given-names"), str)
        assert named or person, f"{where}: author {a!r} needs 'name' or 'given-names' + 'family-names'"


def test_citation_has_the_required_cff_keys():
    cff = citation()
    assert isinstance(cff, dict)
    for key in ("cff-version", "message", "title", "authors"):
        assert key in cff, f"CITATION.cff: required key '{key}' missing"
    assert cff["cff-version"] == "1.2.0"
    assert isinstance(cff["message"], str) and cff["message"].strip()
    assert cff["title"] == "gr-isac"
    assert cff["type"] == "software"
    check_authors(cff["authors"], "CITATION.cff")
    assert {"name": "The gr-isac developers"} in cff["authors"]


def test_citation_version_and_date_match_cmake_and_changelog():
    cff = citation()
    assert isinstance(cff["version"], str), "CITATION.cff: quote the version (YAML would make 1.0 a float)"
    assert cff["version"] == project_version()
    released = dict(changelog_releases())
    assert cff["version"] in released, "CHANGELOG.md has no entry for the CITATION.cff version"
    date = cff["date-released"]
    assert isinstance(date, datetime.date), "CITATION.cff: date-released must be a YYYY-MM-DD date"
    assert date.isoformat() == released[cff["version"]]


def test_citation_references_the_implemented_paper():
    refs = citation()["references"]
    assert isinstance(refs, list) and refs
    paper = refs[0]
    for key in ("type", "title", "authors"):
        assert key in paper, f"CITATION.cff references[0]: '{key}' missing"
    check_authors(paper["authors"], "CITATION.cff references[0]")
    assert [a["family-names"] for a in paper["authors"]] == [
        "Mateos-Ramos",
        "Häger",
        "Keskin",
        "Le Magoarou",
        "Wymeersch",
    ]
    title = flat(paper["title"])
    # The README and the model page name the same paper.
    for doc in ("README.md", "docs/model.md"):
        assert title in flat(text(doc)), f"{doc} does not name the paper '{title}'"


# --- CHANGELOG.md ----------------------------------------------------------------------


def test_changelog_follows_keep_a_changelog():
    log = text("CHANGELOG.md")
    releases = changelog_releases()
    assert releases[0] == ("Unreleased", None), "the first section must be [Unreleased]"
    dates = []
    for version, date in releases[1:]:
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"CHANGELOG.md: version '{version}' is not x.y.z"
        assert date, f"CHANGELOG.md: release {version} has no date"
        dates.append(datetime.date.fromisoformat(date))
    assert dates == sorted(dates, reverse=True), "CHANGELOG.md: releases must be newest first"
    assert project_version() in dict(releases), "CHANGELOG.md: no entry for the CMake project version"
    kinds = re.findall(r"^### (.+?)\s*$", log, re.M)
    assert kinds and set(kinds) <= CHANGE_TYPES, f"CHANGELOG.md: unknown change types {set(kinds) - CHANGE_TYPES}"
    unreleased = log.split("## [Unreleased]", 1)[1].split("\n## [", 1)[0]
    assert "### Changed" in unreleased and re.search(r"^- \S", unreleased, re.M)


# --- CMake: a fresh clone (no tags) configures without git errors -----------------------


def fresh_clone(dest: Path) -> None:
    """git clone --no-tags of the repository, with the working tree's uncommitted state
    (modified, deleted and untracked non-ignored files) laid over it, so the test sees the
    files as they are now, in a clone that has no tags."""
    subprocess.run(["git", "clone", "--quiet", "--no-tags", str(ROOT), str(dest)], check=True)
    assert not subprocess.run(["git", "tag"], cwd=dest, capture_output=True, text=True).stdout.strip()

    def ls(*flags):
        out = subprocess.run(["git", "ls-files", "-z", *flags], cwd=ROOT, capture_output=True, check=True).stdout
        return [p for p in out.decode().split("\0") if p]

    for rel in ls("--deleted"):
        (dest / rel).unlink(missing_ok=True)
    for rel in ls("--modified", "--others", "--exclude-standard"):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def test_fresh_clone_configures_without_git_describe_errors(tmp_path):
    src, build = tmp_path / "src", tmp_path / "build"
    fresh_clone(src)
    venv_python = ROOT / ".venv" / "bin" / "python"
    python = venv_python if venv_python.exists() else Path(sys.executable)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    run = subprocess.run(
        [
            "cmake",
            "-S",
            str(src),
            "-B",
            str(build),
            f"-DPYTHON_EXECUTABLE={python}",
            f"-DCMAKE_INSTALL_PREFIX={tmp_path / 'prefix'}",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert "No names found" not in output
    assert "fatal:" not in output
    # GNU Radio's version variables (library VERSION / SOVERSION) come from project().
    v = project_version()
    assert f"Building for version: {v}.0 / {v}" in run.stdout


# --- documentation stands alone --------------------------------------------------------


def checked_docs() -> list[str]:
    """README.md and every page of docs/ (new pages included)."""
    return ["README.md"] + sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))


@pytest.mark.parametrize("page", checked_docs())
def test_docs_do_not_point_outside_the_repository(page):
    body = text(page)
    for needle in ("shared/", "../shared", "reading notes", "paper-notes"):
        assert needle not in body, f"{page} refers to '{needle}' (outside the repository)"


def test_model_page_states_the_code_s_values():
    """docs/model.md states its readings with the numbers the code uses."""
    from gnuradio.isac.config import DEFAULTS, Scenario
    from gnuradio.isac.model.array import nominal_array
    from gnuradio.isac.model.dictionaries import domp_dictionaries
    from gnuradio.isac.model.domp import DEFAULT_TEMPERATURE, window_half_widths

    page = flat(text("docs/model.md"))
    s = Scenario.default()
    d = domp_dictionaries(s, nominal_array(s.array["antennas"], s.wavelength_m))
    wa, wd = window_half_widths(
        s.array["antennas"], s.ofdm["subcarriers"], s.ofdm["spacing_hz"], d.angles_rad, d.delays_s
    )
    rx, tx = DEFAULTS["receiver"], DEFAULTS["transmitter"]
    r_min, r_max = DEFAULTS["scene"]["range_m"]
    assert rx["gospa_c_m"] == (r_max - r_min) / 2
    for claim in (
        f"{wa} angle and {wd} delay pixels",
        f"temperature (default {DEFAULT_TEMPERATURE:g};",
        f"`transmitter.beam_grid` ({tx['beam_grid']})",
        f"(R_max − R_min)/2 = {rx['gospa_c_m']:g} m",
        f"order p = `receiver.gospa_p` = {rx['gospa_p']:g}",
        f"μ = `receiver.gospa_mu` = {rx['gospa_mu']:g}",
        f"`transmitter.beam_rcond` (default {tx['beam_rcond']:g})",
        f"`array.spacing_std_m` ({DEFAULTS['array']['spacing_std_m'] * 1e3:g} mm",
        "d_k = λ/2 + σ_λ N(0, 1)",
    ):
        assert claim in page, f"docs/model.md does not state '{claim}'"
