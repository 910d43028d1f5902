"""The README starts with the two set-up commands, and CI runs exactly the second one;
the first installs no torch."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    lines = (REPO / "README.md").read_text().splitlines()
    assert lines[0] == "```sh", "the README must open with the set-up commands"
    end = lines.index("```", 1)
    return lines[1:end]


def test_readme_opens_with_exactly_two_commands() -> None:
    commands = _readme_commands()
    assert len(commands) == 2
    assert commands[0].endswith("rssnet demo")
    # The demo needs no torch (it runs on onnxruntime); the tests do, the CPU build of it.
    assert "torch" not in commands[0]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu torch==2.13.0" in commands[1]


def test_a_plain_install_brings_no_torch() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = [re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0] for dep in project["dependencies"]]
    assert "onnxruntime" in core
    assert "torch" not in core
    extras = project["optional-dependencies"]
    assert any(dep.startswith("torch") for dep in extras["torch"])
    own = [dep for dep in extras["dev"] if dep.startswith("rssnet[")]
    assert own and "torch" in own[0][len("rssnet[") : -1].split(",")


def test_ci_runs_the_readme_test_command() -> None:
    script = (REPO / ".ci" / "run").read_text().splitlines()
    commands = [line for line in script if line and not line.startswith(("#", "set ", "cd "))]
    assert commands == [_readme_commands()[1]]
