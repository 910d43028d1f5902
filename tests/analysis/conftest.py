"""Fixtures of the analysis tests; the helpers live in analysis_helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from analysis_helpers import SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA
