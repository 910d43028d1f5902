"""Copy a training checkpoint to the shipped default model (model/default.pt).

Re-saves through ``save_checkpoint`` so the file holds only what serving needs (no
optimizer state) and its self-test reference is recomputed with the current code.

usage: python scripts/ship_model.py runs/default/best.pt [model/default.pt]
"""

from __future__ import annotations

import sys
from pathlib import Path

from rssnet.model.checkpoint import default_model_path, load_checkpoint, save_checkpoint


def main(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write(__doc__ or "")
        return 2
    src = Path(argv[0])
    dst = Path(argv[1]) if len(argv) > 1 else default_model_path()
    ck = load_checkpoint(src)
    meta = dict(ck.meta)
    meta.pop("train_state", None)
    meta["name"] = "rssnet-default"
    meta["source_checkpoint_sha256"] = ck.sha256
    save_checkpoint(dst, ck.model, ck.axis, meta, ck.reference_input)
    shipped = load_checkpoint(dst)
    sys.stdout.write(
        f"{dst}: {shipped.name} sha256={shipped.sha256[:16]}… "
        f"val_si_snri={meta.get('metrics', {}).get('val_si_snri')}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
