"""The installed packages are at or above pyproject's floors, and the security floors stay past their advisories."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
# The first version past every advisory known when issue #13 was closed (the comments in pyproject.toml say which).
SECURITY_FLOORS = {
    "streamlit": "1.54", "starlette": "1.3", "h11": "0.16", "python-multipart": "0.0.32", "protobuf": "6.33.5",
    "pydicom": "3.0.2", "pillow": "12.3", "pyarrow": "23.0.1",
}


def requirements(group: str | None = None) -> list[Requirement]:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    listed = project["dependencies"] if group is None else project["optional-dependencies"][group]
    return [Requirement(text) for text in listed]


def lowest_allowed(requirement: Requirement) -> Version | None:
    floors = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==", "~=")]
    return max(floors) if floors else None


@pytest.mark.parametrize("requirement", [*requirements(), *requirements("dev")], ids=str)
def test_the_installed_version_satisfies_pyproject(requirement):
    try:
        installed = version(requirement.name)
    except PackageNotFoundError:
        pytest.fail(f"{requirement.name} is required but not installed")
    assert requirement.specifier.contains(installed, prereleases=True), f"{requirement.name} {installed}"


@pytest.mark.parametrize(("name", "past"), sorted(SECURITY_FLOORS.items()))
def test_security_floors_exclude_every_version_with_an_advisory(name, past):
    found = {r.name.lower(): r for r in requirements()}
    assert name in found, f"{name} lost its floor in pyproject.toml"
    floor = lowest_allowed(found[name])
    assert floor is not None and floor >= Version(past), f"{name} floor {floor} admits versions with advisories"
    assert Version(version(name)) >= Version(past)
