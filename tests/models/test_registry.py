"""Contract tests that every registered model gets for free, plus the registry's own behaviour."""

import pytest
import torch

from ecgtune.errors import EcgtuneError
from ecgtune.models import create_model, list_models, register_model
from ecgtune.models._registry import model_inputs

# A few tiny example shapes for each set of inputs a model may take (every registered model is tested with
# those its registration names).
EXAMPLES = {
    ("signal",): [{"signal": (1, 128)}, {"signal": (1, 187)}, {"signal": (2, 360)}],
    ("windows", "spectrogram"): [{"windows": (6, 256), "spectrogram": (1, 48, 33)}],
    ("image",): [{"image": (9, 64, 64)}],
    ("signal", "image"): [{"signal": (3, 100), "image": (9, 64, 64)}],
    ("signal", "rhythm"): [{"signal": (1, 187), "rhythm": (6,)}],
    ("neighbours", "rhythm"): [{"neighbours": (4, 187), "rhythm": (6,)}],
}
OUTPUTS = (1, 5, 3)  # a binary head (one logit), five classes, three


def contract_cases():
    for name in list_models():
        for i, shapes in enumerate(EXAMPLES[model_inputs(name)]):
            yield pytest.param(name, shapes, OUTPUTS[i % len(OUTPUTS)], id=f"{name}-{i}")


@pytest.mark.parametrize("name,shapes,num_outputs", contract_cases())
def test_every_model_forward_backward_shape(name, shapes, num_outputs):
    model = create_model(name, inputs=shapes, num_outputs=num_outputs)
    out = model(*(torch.randn(3, *shape) for shape in shapes.values()))
    assert out.shape == (3, num_outputs)
    assert torch.isfinite(out).all()
    out.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", list_models())
def test_every_model_has_feature_parameters_excluding_the_head(name):
    model = create_model(name, inputs=EXAMPLES[model_inputs(name)][0], num_outputs=1)
    features = {id(p) for p in model.feature_parameters()}
    all_params = {id(p) for p in model.parameters()}
    head = {id(p) for n, p in model.named_parameters() if n.startswith("head.")}
    assert features and head and features == all_params - head


def test_a_model_refuses_inputs_it_does_not_take():
    with pytest.raises(EcgtuneError, match=r"takes the inputs \['signal'\].*\['windows', 'spectrogram'\]"):
        create_model("cnet", inputs={"windows": (80, 256), "spectrogram": (1, 563, 33)}, num_outputs=4)


def test_seed_cnn_has_the_published_parameter_count():
    model = create_model("cnn1d_residual", inputs={"signal": (1, 128)}, num_outputs=1)
    assert sum(p.numel() for p in model.parameters()) == 67_169


def test_unknown_model_names_the_known_ones():
    with pytest.raises(EcgtuneError, match="cnn1d_residual"):
        create_model("resnet9000", inputs={"signal": (1, 128)}, num_outputs=1)


def test_unknown_hyperparameter_is_a_clear_error():
    with pytest.raises(EcgtuneError, match="num_layers"):
        create_model("cnn1d_residual", inputs={"signal": (1, 128)}, num_outputs=1, num_layers=3)


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_model("cnn1d_residual")(lambda **kw: None)


def test_too_short_input_is_refused():
    with pytest.raises(ValueError, match="too short"):
        create_model("cnn1d_residual", inputs={"signal": (1, 20)}, num_outputs=1)


def test_list_models_pattern():
    assert list_models("cnn1d_*") == ["cnn1d_residual"]
    assert list_models("nothing*") == []


def test_hyperparameters_take_the_type_of_the_builders_default():
    """Tune's quantised domains hand integers over as floats; the registry casts them once for every model."""
    from ecgtune.models._registry import typed_like_defaults
    from ecgtune.models.heartbeat import CNet

    model = create_model("cnet", inputs={"signal": (1, 187)}, num_outputs=5, filters=8.0, dropout=0)
    assert model.stem.out_channels == 8 and isinstance(model.dropout.p, float)
    assert typed_like_defaults(CNet, {"filters": 16.0, "dropout": 1, "unknown": "x"}) == {
        "filters": 16, "dropout": 1.0, "unknown": "x"}
    assert typed_like_defaults(CNet, {"filters": True}) == {"filters": True}  # a flag is never re-typed


def test_the_head_makes_one_logit_for_two_classes_and_one_per_label_of_a_multi_label_task():
    from ecgtune.models._registry import outputs_for

    assert outputs_for(2, multi_label=False) == 1 and outputs_for(5, multi_label=False) == 5
    assert outputs_for(2, multi_label=True) == 2 and outputs_for(5, multi_label=True) == 5
