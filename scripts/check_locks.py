"""Fail when pyproject.toml asks for a dependency that its lock in requirements/ lacks or pins
outside the range: the sign that someone edited pyproject.toml and forgot `make lock`."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==(\S+)", re.MULTILINE)
ENV = {"python_version": "3.11", "sys_platform": "linux", "platform_system": "Linux"}


def pins(lock: Path) -> dict[str, str]:
    return {canonicalize_name(n): v for n, v in PIN.findall(lock.read_text())}


def problems() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"base": project["dependencies"]}
    for extra, reqs in project["optional-dependencies"].items():
        groups[extra] = project["dependencies"] + reqs
    found = []
    for group, reqs in groups.items():
        locked = pins(ROOT / "requirements" / f"{group}.txt")
        for line in reqs:
            req = Requirement(line)
            if req.marker and not req.marker.evaluate(ENV):
                continue
            version = locked.get(canonicalize_name(req.name))
            if version is None or not req.specifier.contains(version, prereleases=True):
                found.append(f"requirements/{group}.txt: {line!r} locked at {version}")
    return found


if __name__ == "__main__":
    bad = problems()
    for line in bad:
        print(line, file=sys.stderr)
    if bad:
        sys.exit("the locks are stale: run `make lock` and commit requirements/")
