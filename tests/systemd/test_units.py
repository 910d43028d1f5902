"""The systemd units pass scripts/check-systemd (systemd-analyze verify with no warning
output, security --offline under the threshold, sysusers/tmpfiles applied to a scratch
root).  Skipped where systemd-analyze is absent; .ci/run installs it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_check_systemd_passes() -> None:
    done = subprocess.run(
        [str(REPO / "scripts" / "check-systemd")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "systemd units OK" in done.stdout


def test_unit_has_what_operations_rely_on() -> None:
    unit = (REPO / "systemd" / "rssnetd@.service").read_text()
    lines = {line.strip() for line in unit.splitlines()}
    for required in (
        "Type=notify",
        "NotifyAccess=main",
        "Restart=on-failure",
        "RestartPreventExitStatus=78",
        "SupplementaryGroups=dialout",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "DeviceAllow=char-nvidia-frontend rw",
        "DeviceAllow=char-nvidia-uvm rw",
        "DeviceAllow=char-ttyUSB rw",
    ):
        assert required in lines, required
    assert any(line.startswith("WatchdogSec=") for line in lines)
    # Nothing that hides the GPU.
    for forbidden in ("PrivateDevices=yes", "ProcSubset=pid", "MemoryDenyWriteExecute=yes"):
        assert forbidden not in lines, forbidden
