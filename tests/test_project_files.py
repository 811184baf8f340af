"""The files people look for beside the code (issue 30): LICENSE, CITATION.cff and CHANGELOG.md, each consistent
with pyproject.toml and with the one version of the package."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own dependency there
    import tomli as tomllib

import advnets

ROOT = Path(__file__).resolve().parents[1]
PAPER_AUTHORS = ["Goodfellow", "Pouget-Abadie", "Mirza", "Xu", "Warde-Farley", "Ozair", "Courville", "Bengio"]
# The types the Citation File Format 1.2.0 schema allows for a reference (preferred-citation's type).
CFF_REFERENCE_TYPES = {"article", "conference-paper", "proceedings", "software", "generic", "report", "thesis"}


def test_licence_is_the_mit_licence_pyproject_names():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == {"text": "MIT"}
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 the advnets authors" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text


def test_citation_cff_has_what_github_reads():
    """GitHub's "Cite this repository" needs cff-version, message, title and authors (each with a name or
    family/given names); the preferred citation is the paper, with all eight authors in the paper's order."""
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert cff["message"] and cff["title"] and cff["type"] == "software"
    assert cff["version"] == advnets.__version__
    assert cff["license"] == "MIT"
    for person in cff["authors"] + cff["preferred-citation"]["authors"]:
        assert person.get("name") or (person.get("family-names") and person.get("given-names")), person
    paper = cff["preferred-citation"]
    assert paper["type"] in CFF_REFERENCE_TYPES
    assert paper["title"] == "Generative Adversarial Nets"
    assert [a["family-names"] for a in paper["authors"]] == PAPER_AUTHORS
    assert paper["year"] == 2014 and "Neural Information Processing Systems 27" in paper["collection-title"]
    assert isinstance(paper["start"], int) and isinstance(paper["end"], int) and paper["start"] < paper["end"]


def released_versions(changelog: str) -> list[str]:
    """The version headings of a Keep a Changelog file, newest first, without [Unreleased]."""
    return re.findall(r"^## \[(\d+\.\d+\.\d+(?:[-.\w]*)?)\]", changelog, flags=re.M)


def test_changelog_newest_release_is_the_package_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert changelog.startswith("# Changelog\n")
    headings = re.findall(r"^## \[([^\]]+)\]", changelog, flags=re.M)
    assert headings[0] == "Unreleased"  # changes land there first
    assert released_versions(changelog)[0] == advnets.__version__
    sections = set(re.findall(r"^### (\w+)", changelog, flags=re.M))
    assert sections <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def test_version_lives_in_one_place():
    """pyproject reads the version from advnets/__init__.py; no other file of the package states it."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in pyproject["project"]["dynamic"] and "version" not in pyproject["project"]
    assert pyproject["tool"]["hatch"]["version"]["path"] == "src/advnets/__init__.py"
    stated = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "src" / "advnets").rglob("*.py")
        if re.search(r"^__version__\s*=", p.read_text(), flags=re.M)
    ]
    assert stated == ["src/advnets/__init__.py"]
