"""RSSNet architecture: parameter counts, shapes, batch independence, export-safe chunking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rssnet.model.config import RSSNetConfig, preset
from rssnet.model.rssnet import RSSNet, count_parameters


def test_paper_config_parameter_count_within_10_percent_of_paper() -> None:
    n = count_parameters(RSSNet(preset("paper")))
    # One shared RSSNet block iterated 6 times (docs/model.md): 5,000,709 parameters.
    assert n == 5_000_709
    assert abs(n - 5.25e6) / 5.25e6 < 0.10


def test_default_is_much_smaller_than_paper() -> None:
    assert count_parameters(RSSNet(preset("default"))) < 500_000


@pytest.mark.parametrize("c", [1, 2, 3])
def test_output_shape_follows_components(c: int) -> None:
    model = RSSNet(preset("tiny", n_components=c)).eval()
    with torch.inference_mode():
        out = model(torch.randn(2, 1024))
    assert out.shape == (2, c, 1024)


@pytest.mark.parametrize("length", [1024, 512, 333, 64])
def test_any_length_round_trips_through_chunking(length: int) -> None:
    model = RSSNet(preset("tiny"))
    h = torch.randn(2, model.cfg.n_filters, length)
    chunks, n = model._chunk(h)
    assert chunks.shape[2] == model.cfg.chunk
    # Overlap-add of the chunks gives each point exactly twice (50% overlap).
    assert torch.allclose(model._overlap_add(chunks, n), 2 * h, atol=1e-6)


def test_paper_chunking_gives_48_chunks_for_1024_points() -> None:
    assert preset("paper").n_chunks(1024) == 48


def test_output_of_a_sample_does_not_depend_on_the_batch() -> None:
    # TDANet's batch_first bug mixed samples across the batch (PAPER-NOTES item 4).
    torch.manual_seed(0)
    model = RSSNet(preset("tiny")).eval()
    x = torch.randn(4, 1024)
    with torch.inference_mode():
        alone = model(x[:1])
        together = model(x)[:1]
        other = model(torch.cat([x[:1], torch.randn(5, 1024) * 100]))[:1]
    assert torch.allclose(alone, together, atol=1e-4)
    assert torch.allclose(alone, other, atol=1e-4)


def test_scale_equivariance() -> None:
    model = RSSNet(preset("tiny")).eval()
    x = torch.rand(2, 1024)
    with torch.inference_mode():
        a, b = model(x), model(x * 1000.0)
    assert torch.allclose(a * 1000.0, b, rtol=1e-3, atol=1e-2)


def test_training_path_matches_inference_path() -> None:
    # Depth-wise convs use a shifted-sum form when training on CPU; results must agree.
    torch.manual_seed(1)
    model = RSSNet(preset("tiny"))
    x = torch.randn(2, 1024)
    model.train()
    with torch.no_grad():
        train_out = model(x)  # dropout is 0 in the tiny preset
    model.eval()
    with torch.inference_mode():
        eval_out = model(x)
    assert torch.allclose(train_out, eval_out, atol=1e-4)


def test_bad_input_shape_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="batch, length"):
        RSSNet(preset("tiny"))(torch.randn(1024))


def test_invalid_config_lists_problems() -> None:
    with pytest.raises(ValueError, match="chunk"):
        RSSNetConfig(chunk=45)
    with pytest.raises(ValueError, match="n_heads"):
        RSSNetConfig(tda_channels=100, n_heads=8)


def test_config_round_trip_and_unknown_fields() -> None:
    cfg = preset("default")
    assert RSSNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="bogus"):
        RSSNetConfig.from_dict({**cfg.to_dict(), "bogus": 1})


def test_gradients_reach_every_parameter() -> None:
    model = RSSNet(preset("tiny", n_iters=2))  # the recurrence conv runs from iteration 2
    out = model(torch.from_numpy(np.random.default_rng(0).random((2, 256), np.float32)))
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_components_are_oriented_like_the_mixture() -> None:
    # SI-SNR is blind to sign; the model must not hand out negated spectra.
    torch.manual_seed(3)
    model = RSSNet(preset("tiny")).eval()
    x = torch.rand(6, 1024) + 0.1
    with torch.inference_mode():
        out = model(x)
    corr = (out * x.unsqueeze(1)).sum(-1)
    assert (corr >= 0).all()
