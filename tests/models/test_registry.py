"""Contract tests that every registered model gets for free, plus the registry's own behaviour."""

import pytest
import torch

from ecgtune.errors import EcgtuneError
from ecgtune.models import create_model, list_models, register_model

SHAPES = [  # (in_channels, num_classes, input_length)
    (1, 2, 128),
    (1, 5, 187),
    (2, 3, 360),
]


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("in_channels,num_classes,length", SHAPES)
def test_every_model_forward_backward_shape(name, in_channels, num_classes, length):
    model = create_model(name, in_channels=in_channels, num_classes=num_classes, input_length=length)
    x = torch.randn(3, in_channels, length)
    out = model(x)
    assert out.shape == (3, 1 if num_classes == 2 else num_classes)
    assert torch.isfinite(out).all()
    out.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", list_models())
def test_every_model_has_feature_parameters_excluding_the_head(name):
    model = create_model(name, in_channels=1, num_classes=2, input_length=128)
    features = {id(p) for p in model.feature_parameters()}
    all_params = {id(p) for p in model.parameters()}
    assert features and features < all_params


def test_seed_cnn_has_the_published_parameter_count():
    model = create_model("cnn1d_residual", in_channels=1, num_classes=2, input_length=128)
    assert sum(p.numel() for p in model.parameters()) == 67_169


def test_unknown_model_names_the_known_ones():
    with pytest.raises(EcgtuneError, match="cnn1d_residual"):
        create_model("resnet9000", in_channels=1, num_classes=2, input_length=128)


def test_unknown_hyperparameter_is_a_clear_error():
    with pytest.raises(EcgtuneError, match="num_layers"):
        create_model("cnn1d_residual", in_channels=1, num_classes=2, input_length=128, num_layers=3)


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_model("cnn1d_residual")(lambda **kw: None)


def test_too_short_input_is_refused():
    with pytest.raises(ValueError, match="too short"):
        create_model("cnn1d_residual", in_channels=1, num_classes=2, input_length=20)


def test_list_models_pattern():
    assert list_models("cnn1d_*") == ["cnn1d_residual"]
    assert list_models("nothing*") == []


def test_hyperparameters_take_the_type_of_the_builders_default():
    """Tune's quantised domains hand integers over as floats; the registry casts them once for every model."""
    from ecgtune.models._registry import typed_like_defaults
    from ecgtune.models.heartbeat import CNet

    model = create_model("cnet", in_channels=1, num_classes=5, input_length=187, filters=8.0, dropout=0)
    assert model.stem.out_channels == 8 and isinstance(model.dropout.p, float)
    assert typed_like_defaults(CNet, {"filters": 16.0, "dropout": 1, "unknown": "x"}) == {
        "filters": 16, "dropout": 1.0, "unknown": "x"}
    assert typed_like_defaults(CNet, {"filters": True}) == {"filters": True}  # a flag is never re-typed
