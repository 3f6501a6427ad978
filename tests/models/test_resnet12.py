"""Ribeiro et al.'s 12-lead ResNet: the published configuration's size, Keras' "same" padding, shapes at
other input lengths, and autoECG's transfer with the first blocks frozen through a real training epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ecgtune.errors import EcgtuneError
from ecgtune.models import create_model
from ecgtune.models.resnet12 import SameConv1d, same_padding
from ecgtune.models.transfer import freeze_blocks, load_pretrained


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_the_published_configuration_has_the_published_parameter_count():
    # antonior92/automatic-ecg-diagnosis's model.py: 4,096 x 12 in, six abnormalities out; Keras counts
    # 6,421,910 trainable parameters and 3,728 non-trainable (the batch-norm statistics: buffers here).
    model = create_model("ribeiro_resnet", inputs={"signal": (12, 4096)}, num_outputs=6)
    buffers = sum(b.numel() for name, b in model.named_buffers() if "running" in name)
    assert _count(model) == 6_421_910 and buffers == 3_728
    assert model(torch.randn(2, 12, 4096)).shape == (2, 6)


def test_dropout_is_a_drop_rate():
    model = create_model("ribeiro_resnet", inputs={"signal": (12, 256)}, num_outputs=1)
    rates = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
    assert rates == {0.2}  # not 0.8, as a popular port has it (nn.Dropout takes the rate dropped)


@pytest.mark.parametrize("length, kernel, stride, expected", [
    (4096, 16, 1, (7, 8)),  # even kernel: the extra zero on the right, as TensorFlow
    (4096, 16, 4, (6, 6)),
    (10, 16, 4, (7, 7)),
    (11, 16, 4, (6, 7)),
    (1000, 3, 1, (1, 1)),
    (8, 4, 4, (0, 0)),
])
def test_same_padding_is_keras(length, kernel, stride, expected):
    assert same_padding(length, kernel, stride) == expected


def test_same_conv_keeps_or_divides_the_length():
    conv = SameConv1d(1, 1, 16, stride=4)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 6] = 1.0  # the tap over the first sample of each stride when left padding is 6
    x = torch.arange(1, 1025, dtype=torch.float32)[None, None]
    out = conv(x)
    assert out.shape[-1] == 256
    assert torch.equal(out[0, 0, :3], torch.tensor([1.0, 5.0, 9.0]))


@pytest.mark.parametrize("length", [1024, 1000, 4096])
def test_any_input_length_gives_one_output_per_label(length):
    model = create_model("ribeiro_resnet", inputs={"signal": (12, length)}, num_outputs=5, filters=[8, 16, 24, 32, 40])
    assert model(torch.randn(3, 12, length)).shape == (3, 5)


def test_filters_need_five_widths():
    with pytest.raises(ValueError, match="five widths"):
        create_model("ribeiro_resnet", inputs={"signal": (12, 1024)}, num_outputs=5, filters=[8, 16])


def test_frozen_blocks_are_unchanged_after_a_training_epoch_and_the_rest_learns():
    """autoECG: the pre-trained network, a new one-unit head, the stem and the first unit frozen (their
    batch-norm statistics too); one epoch of the real training step moves only what is not frozen."""
    from ecgtune.training.batches import TensorSplit
    from ecgtune.training.loop import run_epoch

    torch.manual_seed(0)
    kwargs = {"inputs": {"signal": (12, 256)}, "filters": [8, 16, 24, 32, 40]}
    source = create_model("ribeiro_resnet", num_outputs=5, **kwargs)
    target = create_model("ribeiro_resnet", num_outputs=1, **kwargs)
    load_pretrained(target, source.state_dict(), replace_head=True)
    freeze_blocks(target, 2)
    before = {k: v.clone() for k, v in target.state_dict().items()}

    rng = np.random.default_rng(0)
    split = TensorSplit({"signal": rng.standard_normal((32, 12, 256)).astype(np.float32)},
                        rng.integers(0, 2, 32), ("normal", "abnormal"), torch.device("cpu"))
    optimizer = torch.optim.Adam([p for p in target.parameters() if p.requires_grad], lr=1e-2)
    run_epoch(target, split, "train", batch_size=8, optimizer=optimizer)

    after = target.state_dict()
    frozen = [k for k in before if k.startswith(("stem.", "units.0."))]
    moving = [k for k in before if k.startswith(("units.1.", "units.3.", "head.")) and "num_batches" not in k]
    assert any("running_mean" in k for k in frozen)
    assert all(torch.equal(after[k], before[k]) for k in frozen)
    assert all(not torch.equal(after[k], before[k]) for k in moving if "weight" in k or "running" in k)
    assert target.stem.training is False and target.units[1].training is True


def test_freezing_more_blocks_than_there_are_is_refused():
    model = create_model("ribeiro_resnet", inputs={"signal": (12, 256)}, num_outputs=1, filters=[8, 16, 24, 32, 40])
    with pytest.raises(EcgtuneError, match="has only 5 feature blocks"):
        freeze_blocks(model, 6)
    with pytest.raises(EcgtuneError, match="CNet has no feature blocks"):
        freeze_blocks(create_model("cnet", inputs={"signal": (1, 187)}, num_outputs=1), 1)
