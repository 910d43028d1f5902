"""docs/engines.md names only ``[engine]`` keys that exist, and lists every one of them."""

from __future__ import annotations

import re
from pathlib import Path

from rssnet.config.schema import EngineConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "engines.md"


def test_engine_keys_in_the_doc_exist() -> None:
    text = DOC.read_text()
    named = set(re.findall(r"\[engine\] `?([a-z_0-9]+)", text))
    section = text.split("## Configuration (`[engine]`)", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"`([a-z_0-9]+)`", section.split("Precision")[0])
    fields = set(EngineConfig.model_fields)
    assert named and named <= fields, named - fields
    # The key list: every field, nothing else (values are quoted: `"block"`, not matched).
    assert set(listed) == fields, (set(listed) - fields, fields - set(listed))
