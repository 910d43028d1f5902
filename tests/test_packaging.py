"""The package as it installs: the card's top-level folders mapped to rssnet.* subpackages.

pyproject's `[tool.setuptools] package-dir` maps daemon/ to rssnet.daemon and so on; nothing
links them.  These tests build the real wheel and import from it, so a folder left out of the
mapping, or a source file that would not ship, fails here rather than on a user's machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONF = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
PACKAGE_DIR: dict[str, str] = CONF["package-dir"]


def source_folder(package: str) -> Path:
    """Where a package's files are in the checkout, by the longest mapped prefix."""
    parts = package.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in PACKAGE_DIR:
            return REPO / PACKAGE_DIR[prefix] / Path(*parts[i:])
    raise AssertionError(f"{package} is under no mapped package")


def test_no_symlinks_inside_the_package() -> None:
    links = [p for p in (REPO / "rssnet").rglob("*") if p.is_symlink()]
    assert links == [], f"symlinks give files a second path: {links}"


def test_every_folder_with_python_files_is_a_listed_package() -> None:
    listed = {source_folder(name) for name in CONF["packages"]}
    for folder in PACKAGE_DIR.values():
        for init in (REPO / folder).rglob("__init__.py"):
            assert init.parent in listed, f"{init.parent} has an __init__.py but is not in packages"
    for package in CONF["packages"]:
        assert source_folder(package).is_dir(), f"packages lists {package}, which has no folder"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)]
    # An isolated build fetches setuptools first (~30 s); the venv's own is used when it is
    # recent enough for pyproject's build requirement.
    try:
        import setuptools

        if int(setuptools.__version__.split(".")[0]) >= 68:
            command.append("--no-build-isolation")
    except ImportError:
        pass
    subprocess.run(command, check=True, timeout=300)
    (path,) = out.glob("rssnet-*.whl")
    return path


def test_the_wheel_ships_every_source_file_at_its_package_path(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for package in CONF["packages"]:
        folder = source_folder(package)
        for path in folder.glob("*.py"):
            expected.add("/".join([*package.split("."), path.name]))
    assert expected, "no source files found"
    assert not expected - names, f"missing from the wheel: {sorted(expected - names)}"
    for data in (
        "rssnet/model/default.onnx",
        "rssnet/model/default-selector.npz",
        "rssnet/config/demo.toml",
        "rssnet/py.typed",
    ):
        assert data in names
    # Resume states are for a checkout, not for the service.
    assert not [n for n in names if "checkpoints" in n]


def test_the_installed_wheel_imports_from_its_own_files(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps"]
    subprocess.run([*pip, "--target", str(target), str(wheel)], check=True, timeout=300)
    probe = (
        "import rssnet.daemon.main, rssnet.drivers.registry, rssnet.training.configs as c\n"
        "from importlib.resources import files\n"
        "print(rssnet.daemon.main.__file__)\n"
        "print(sorted(p.name for p in files(c).iterdir() if p.name.endswith('.toml'))[0])\n"
    )
    env = dict(os.environ, PYTHONPATH=str(target))
    # Not from the checkout's root: `python -c` puts the current folder first on sys.path.
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    module_file, first_preset = out.stdout.split()
    assert Path(module_file).is_relative_to(target)
    assert first_preset == "default.toml"
