"""Seed 000's 2D image networks and 1D recurrent networks: the seed's sizes (counted on the meta device,
without allocating the large ones), the representation a fusion model takes, and bad hyperparameters."""

from __future__ import annotations

import pytest
import torch

from ecgtune.models import create_model

IMAGE = {"image": (9, 256, 256)}
SIGNAL = {"signal": (3, 1000)}


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name,hparams,expected", [
    ("alexnet2d", {"filters": 8}, 46_334_468),  # the seed's file (f = 8): 46.3 M
    ("alexnet2d", {}, 46_569_476),  # its tuned f = 16
    ("vgg2d", {}, 285_347_124),  # the seed's "VGG16": 285 M
    ("cnn2d", {}, 504_395_140),  # the seed's custom CNN, 246,016 -> 2,048: 506 M there (its second dense layer differs)
    ("resnet2d", {}, 1_650_420),  # bottleneck [3, 4, 6, 3] at 16-128: 1.49 M in the seed, plus our two-layer head
])
def test_image_networks_have_the_seeds_sizes(name, hparams, expected):
    with torch.device("meta"):
        model = create_model(name, inputs=IMAGE, num_outputs=4, **hparams)
    assert _count(model) == expected


@pytest.mark.parametrize("name,hparams,expected,features", [
    ("gru1d", {}, 249_732, 128),  # GRU 3 x 128: 0.25 M
    ("gru1d", {"bidirectional": True, "num_layers": 2, "dropout": 0.5}, 399_620, 256),  # the best biGRU: 0.40 M
    ("lstm1d", {}, 794_628, 256),
    ("cnn_gru1d", {}, 219_536, 256),  # CNN front + GRU 256: 0.22 M
])
def test_recurrent_networks_have_the_seeds_sizes_and_feature_widths(name, hparams, expected, features):
    model = create_model(name, inputs=SIGNAL, num_outputs=4, **hparams)
    assert _count(model) == expected and model.feature_size == features


def test_a_bidirectional_representation_is_each_directions_end_of_the_record():
    torch.manual_seed(0)
    model = create_model("gru1d", inputs={"signal": (2, 30)}, num_outputs=3, hidden_size=5, num_layers=1,
                         bidirectional=True).eval()
    x = torch.randn(4, 2, 30)
    out, _ = model.rnn(x.transpose(1, 2))
    expected = torch.cat([out[:, -1, :5], out[:, 0, 5:]], dim=1)
    torch.testing.assert_close(model.features(x), expected)
    # The backward direction's step 0 is the one that has just read the record's first sample.
    changed = x.clone()
    changed[:, :, 0] += 3.0
    moved = (model.features(changed) - expected).abs()
    assert moved[:, 5:].min() > 1e-4


@pytest.mark.parametrize("name,inputs", [("alexnet2d", {"image": (9, 64, 64)}), ("resnet2d", {"image": (9, 64, 64)}),
                                         ("cnn_gru1d", {"signal": (3, 200)}), ("lstm1d", {"signal": (3, 50)})])
def test_features_are_what_enters_the_head(name, inputs):
    model = create_model(name, inputs=inputs, num_outputs=4, **({"filters": 4} if "2d" in name else {})).eval()
    x = torch.randn(2, *next(iter(inputs.values())))
    features = model.features(x)
    assert features.shape == (2, model.feature_size)
    torch.testing.assert_close(model(x), model.head(features))


@pytest.mark.parametrize("name,hparams,message", [
    ("gru1d", {"bidirectional": "false"}, "bidirectional must be true or false"),
    ("alexnet2d", {"fc_sizes": [64]}, "fc_sizes must be two positive widths"),
    ("resnet2d", {"blocks": [1, 1]}, "blocks must be four positive counts"),
    ("vgg2d", {"dropout": 1.0}, "dropout in"),
])
def test_bad_hyperparameters_are_refused(name, hparams, message):
    inputs = SIGNAL if name == "gru1d" else {"image": (9, 64, 64)}
    with pytest.raises(ValueError, match=message):
        create_model(name, inputs=inputs, num_outputs=4, **hparams)
