"""The strided encoder (``enc_stride``): shapes, coverage, gradients, old files, ONNX parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rssnet.engine.export import export_checkpoint, run_onnxruntime
from rssnet.model.checkpoint import default_axis, load_checkpoint, read_payload, save_checkpoint
from rssnet.model.config import RSSNetConfig, preset
from rssnet.model.rssnet import RSSNet

SHIPPED = Path(__file__).resolve().parents[2] / "model" / "default.pt"
# (kernel, stride): Conv-TasNet/TDANet-like pairs, an odd kernel, a kernel equal to the
# stride, and an even kernel at stride 1 (which the paper's padding could not keep at L).
SHAPES = [(4, 2), (8, 4), (16, 8), (5, 3), (8, 8), (4, 1)]


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)  # a shared 2-core machine: more threads only contend


@pytest.mark.parametrize(("kernel", "stride"), SHAPES)
@pytest.mark.parametrize("length", [1024, 333, 64])
def test_output_has_the_input_length(kernel: int, stride: int, length: int) -> None:
    cfg = preset("tiny", enc_kernel=kernel, enc_stride=stride)
    model = RSSNet(cfg).eval()
    with torch.inference_mode():
        h = model.encoder(torch.nn.functional.pad(torch.randn(2, 1, length), model._pads(length)))
        out = model(torch.randn(2, length))
    assert h.shape == (2, cfg.n_filters, cfg.frames(length)) == (2, 16, -(-length // stride))
    assert out.shape == (2, 2, length)


@pytest.mark.parametrize(("kernel", "stride"), [(8, 4), (16, 8), (5, 3)])
def test_every_point_reaches_the_output_and_every_parameter_learns(
    kernel: int, stride: int
) -> None:
    torch.manual_seed(0)
    model = RSSNet(preset("tiny", enc_kernel=kernel, enc_stride=stride, n_iters=2))
    x = torch.randn(2, 300, requires_grad=True)
    out = model(x)  # 2, 2, 300
    (out * torch.randn_like(out)).sum().backward()
    # A point no frame covers would get no gradient (and no output).
    assert x.grad is not None and bool((x.grad.abs() > 0).all())
    for name, p in model.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


def test_training_path_matches_inference_path_when_strided() -> None:
    torch.manual_seed(1)
    model = RSSNet(preset("tiny", enc_kernel=8, enc_stride=4))
    x = torch.randn(2, 512)
    with torch.no_grad():
        train_out = model.train()(x)  # depth-wise convs as shifted sums on CPU
    with torch.inference_mode():
        eval_out = model.eval()(x)
    torch.testing.assert_close(train_out, eval_out, atol=1e-4, rtol=1e-4)


def test_stride_beyond_the_kernel_is_rejected() -> None:
    with pytest.raises(ValueError, match="enc_stride"):
        RSSNetConfig(enc_kernel=4, enc_stride=8)
    with pytest.raises(ValueError, match="enc_stride"):
        RSSNetConfig(enc_stride=0)


def test_stride_one_keeps_the_papers_layers() -> None:
    model = RSSNet(preset("default"))
    assert model.cfg.enc_stride == 1
    assert model.encoder.padding == (1,) and model.encoder.stride == (1,)
    assert model.decoder.padding == (1,) and model.decoder.stride == (1,)


def test_shipped_checkpoint_loads_unchanged_and_reproduces_its_reference() -> None:
    # Written before enc_stride existed: no such field in its model_args.
    assert "enc_stride" not in read_payload(SHIPPED)["model_args"]
    ckpt = load_checkpoint(SHIPPED)
    assert ckpt.config.enc_stride == 1
    assert ckpt.reference_input is not None and ckpt.reference_output is not None
    with torch.inference_mode():
        out = ckpt.model.eval()(torch.from_numpy(np.asarray(ckpt.reference_input, np.float32)))
    # The reference was computed by the code that trained it, before this change.
    np.testing.assert_allclose(out.numpy(), ckpt.reference_output, rtol=1e-5, atol=1e-5)


def test_strided_checkpoint_round_trips_and_onnx_matches_torch(tmp_path: Path) -> None:
    torch.manual_seed(3)
    cfg = preset("tiny", enc_kernel=8, enc_stride=4)
    path = tmp_path / "strided.pt"
    save_checkpoint(path, RSSNet(cfg), default_axis(256), meta={"name": "strided-test"})
    ckpt = load_checkpoint(path)
    assert ckpt.config == cfg
    report = export_checkpoint(ckpt, tmp_path / "strided.onnx")
    assert report.si_snr_db > 80.0  # vs the checkpoint's torch reference output
    # A batch the export never saw, against torch directly.
    x = np.random.default_rng(4).standard_normal((5, 256)).cumsum(axis=1).astype(np.float32)
    with torch.inference_mode():
        want = ckpt.model.eval()(torch.from_numpy(x)).numpy()  # 5, 2, 256
    got = run_onnxruntime(report.path, x)
    assert got.shape == (5, 2, 256)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
