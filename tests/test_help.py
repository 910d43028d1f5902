"""Every command's ``--help`` is plain words: no reST markup from docstrings (double
backticks, ``:class:`` roles, directives) reaches a user's terminal."""

from __future__ import annotations

import importlib
import re

import pytest

from rssnet.cli import COMMANDS
from rssnet.cli import main as rssnet_main
from rssnet.daemon.main import main as rssnetd_main

# Backticks (``literal``, `interpreted`, `link`_), roles (:class:, :func:, ...), directives
# (.. note::) and literal-block markers (a line ending in ::).
REST = re.compile(r"`|:[a-z]+:(?=`|\w)|^\s*\.\. \w+::|::$", re.MULTILINE)


def _help(main: object, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main(argv)  # type: ignore[operator]  # each command's main(argv)
    assert exited.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", list(COMMANDS))
def test_subcommand_help_is_plain(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = importlib.import_module(COMMANDS[name][0])
    text = _help(module.main, ["--help"], capsys)
    assert text.startswith(f"usage: rssnet {name}")
    assert [line for line in text.splitlines() if REST.search(line)] == []


def test_rssnet_and_rssnetd_help_are_plain(capsys: pytest.CaptureFixture[str]) -> None:
    assert rssnet_main(["--help"]) == 0
    usage = capsys.readouterr().out
    daemon = _help(rssnetd_main, ["--help"], capsys)
    assert "78 for an invalid config" in " ".join(daemon.split())  # argparse wraps lines
    for text in (usage, daemon):
        assert [line for line in text.splitlines() if REST.search(line)] == []


def test_the_scan_finds_markup() -> None:
    # The test above must be able to fail: each kind of markup is caught.
    for line in ("see ``rssnet demo``", ":class:`Config`", ".. note::", "Example::"):
        assert REST.search(line), line
    assert not REST.search("dotted.key=<TOML value>; tcp://127.0.0.1:5560, 12:30")
