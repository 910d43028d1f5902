"""Driver registry: built-ins by name, plugins through the ``rssnet.drivers`` entry points."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rssnet.drivers import registry
from rssnet.drivers.serial import SerialDriver
from rssnet.drivers.serial_options import SerialOptions
from rssnet.errors import ConfigError, PluginError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "rssnet-driver-example"


def _fake_dist(root: Path, name: str, entry: str, module: str | None = None) -> None:
    """A real installed-distribution layout (dist-info + module) on a sys.path entry."""
    info = root / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[rssnet.drivers]\n{entry}\n")
    if module is not None:
        (root / f"{name}.py").write_text(module)


def test_builtins_listed_and_created() -> None:
    names = {e.name: e for e in registry.discover()}
    assert names["serial"].origin == "builtin" and not names["serial"].error
    assert "replay" in names
    d = registry.create_driver("serial", {"port": "socket://127.0.0.1:9"})
    assert isinstance(d, SerialDriver)
    assert d.options == SerialOptions(port="socket://127.0.0.1:9")


def test_bad_options_and_unknown_names() -> None:
    with pytest.raises(ConfigError, match=r"instrument\.serial\.baudrate"):
        registry.create_driver("serial", {"port": "x", "baudrate": -1})
    with pytest.raises(PluginError, match=r"unknown driver 'nope'.*serial"):
        registry.create_driver("nope", {})


def test_broken_plugin_is_reported_loudly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_dist(tmp_path, "brokenvendor", "broken = brokenvendor:Driver",
               "raise RuntimeError('vendor SDK libfoo.so not found')\n")
    _fake_dist(tmp_path, "notadriver", "notadriver = notadriver:make",
               "def make(options):\n    return object()\n")
    _fake_dist(tmp_path, "shadow", "serial = shadow:X")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = {e.name: e for e in registry.discover()}
    assert "libfoo.so not found" in found["broken"].error
    assert found["broken"].origin == "brokenvendor 1.0"
    assert registry.main([]) == 1
    out, err = capsys.readouterr()
    assert "broken" in out and "ERROR" in out
    assert "libfoo.so not found" in err and "shadows a built-in" in err
    assert registry.main(["--json"]) == 1
    listed = {(e["name"], e["origin"]): e["error"] for e in json.loads(capsys.readouterr().out)}
    assert listed["serial", "builtin"] == "" and "shadows" in listed["serial", "shadow 1.0"]
    assert "libfoo" in listed["broken", "brokenvendor 1.0"]
    with pytest.raises(PluginError, match=r"failed to load.*libfoo"):
        registry.create_driver("broken", {})
    with pytest.raises(PluginError, match="lacks the Driver methods"):
        registry.create_driver("notadriver", {})
    # The built-in keeps its name.
    assert isinstance(registry.create_driver("serial", {"port": "x"}), SerialDriver)


@pytest.mark.slow
def test_out_of_tree_example_plugin_installs_and_loads(tmp_path: Path) -> None:
    src = tmp_path / "example"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", str(src)],
        check=True, capture_output=True, timeout=240,
    )
    # A fresh interpreter sees the new entry point exactly as the daemon would.
    code = (
        "from rssnet.drivers.registry import create_driver, discover\n"
        "e = {x.name: x for x in discover()}['example']\n"
        "assert not e.error and e.origin.startswith('rssnet-driver-example'), e\n"
        "d = create_driver('example', {'integration_ms': 20})\n"
        "d.open(timeout=1.0)\n"
        "s = next(iter(d.stream())); d.close()\n"
        "assert s.intensity.shape == (512,) and 900 < s.axis[s.intensity.argmax()] < 1100\n"
        "print('ok', d.describe().serial)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "ok FAKE-001" in run.stdout
    listing = subprocess.run(
        [sys.executable, "-m", "rssnet.cli", "drivers"], capture_output=True, text=True,
        timeout=120,
    )
    assert "example" in listing.stdout
