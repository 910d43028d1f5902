"""Copy a training checkpoint to the shipped default model (model/default.pt) and export it
to ONNX beside it (model/default.onnx).

Re-saves through ``save_checkpoint`` so the file holds only what serving needs (no
optimizer state) and its self-test reference is recomputed with the current code.  The ONNX
export carries the ``.pt``'s SHA-256 and that reference (engine/onnx_meta.py): the daemon
serves it on onnxruntime or TensorRT without torch, and tests/engine/test_shipped_onnx.py
checks it still matches the ``.pt``.  Needs the ``torch`` extra.

The hybrid's selector (model/default-selector.npz) is trained on the shipped model's
answers and names its SHA-256: after shipping a new model, rerun bench/hybrid_candidates.py
and ``bench/hybrid_selector.py --fit cls:10:3 --export model/default-selector.npz``
(docs/results.md, "The shipped selector"); until then the hybrid uses the gate rule.

usage: python scripts/ship_model.py runs/default/best.pt [model/default.pt]
       python scripts/ship_model.py --onnx-only [model/default.pt]   (re-export only)
"""

from __future__ import annotations

import sys
from pathlib import Path

from rssnet.engine.export import export_checkpoint
from rssnet.model.checkpoint import default_model_path, load_checkpoint, save_checkpoint


def ship(src: Path, dst: Path) -> None:
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


def export_beside(pt: Path) -> None:
    # fp32 only: it is what the CPU runs best and what the self-test tolerances were set
    # for; a GPU that wants fp16 gets it from `rssnet export --fp16` (needs torch there).
    report = export_checkpoint(load_checkpoint(pt), pt.with_suffix(".onnx"))
    sys.stdout.write(
        f"{report.path}: {report.path.stat().st_size / 1e6:.1f} MB, sha256={report.sha256[:16]}…"
        f", vs torch: max |Δ| {report.max_abs_err:.3g}, min SI-SNR {report.si_snr_db:.1f} dB\n"
    )


def main(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write(__doc__ or "")
        return 2
    if argv[0] == "--onnx-only":
        export_beside(Path(argv[1]) if len(argv) > 1 else default_model_path())
        return 0
    dst = Path(argv[1]) if len(argv) > 1 else default_model_path()
    ship(Path(argv[0]), dst)
    export_beside(dst)
    sys.stdout.write(
        "the hybrid's selector is trained for the previous model: retrain it (see --help)\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
