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


# Small sizes for the contract test, by hyperparameter name (a new family that names its sizes the same way
# is built small for free): torch.export traces every time step of a recurrent layer, so size is its time.
SMALL = {"hidden_size": 8, "hidden": 8, "num_layers": 1, "filters": 4, "conv_filters": 4, "fc_units": 8, "frame_size": 8,
         "fc_sizes": (16, 16), "size": "xs", "heads": 2, "blocks": (1, 1, 1, 1),
         "branches": {"signal": {"name": "gru1d", "hparams": {"hidden_size": 8, "num_layers": 1}},
                      "image": {"name": "cnn2d", "hparams": {"filters": 4, "fc_sizes": (16, 16)}}}}
# The shortest examples first: the contract test takes the first shape a model accepts.
SHORT = {
    ("signal",): [{"signal": (1, 32)}, {"signal": (1, 64)}, {"signal": (1, 128)}, {"signal": (1, 187)}],
    ("windows", "spectrogram"): [{"windows": (2, 64), "spectrogram": (1, 32, 32)},
                                 {"windows": (6, 256), "spectrogram": (1, 48, 33)}],
    ("image",): [{"image": (9, 32, 32)}, {"image": (9, 64, 64)}],
    ("signal", "image"): [{"signal": (3, 32), "image": (9, 32, 32)}, {"signal": (3, 100), "image": (9, 64, 64)}],
    ("signal", "rhythm"): [{"signal": (1, 64), "rhythm": (6,)}, {"signal": (1, 187), "rhythm": (6,)}],
    ("neighbours", "rhythm"): [{"neighbours": (4, 64), "rhythm": (6,)}, {"neighbours": (4, 187), "rhythm": (6,)}],
}


def small_model(name: str, num_outputs: int):
    """Model ``name`` at a small size, for the shortest example it takes, and that example's shapes."""
    import inspect

    from ecgtune.models._registry import _MODELS

    defaults = {k: p.default for k, p in inspect.signature(_MODELS[name]).parameters.items()}
    # Only where the small value is of the default's kind (Ribeiro's filters are five widths, not one).
    hparams = {k: v for k, v in SMALL.items() if k in defaults and isinstance(v, tuple) == isinstance(defaults[k], tuple)}
    for shapes in SHORT[model_inputs(name)]:
        try:
            model = create_model(name, inputs=shapes, num_outputs=num_outputs, **hparams)
            model.eval()(*(torch.zeros(1, *shape) for shape in shapes.values()))
            return model, shapes
        except (ValueError, RuntimeError):
            continue  # too short or too small for it: the next, larger example
    raise AssertionError(f"{name} takes none of the example shapes {SHORT[model_inputs(name)]}")


# torch.export warns that nn.LSTM / nn.GRU reassign their ``_flat_weights`` list while being traced; it
# restores them afterwards and lifts the weights as parameters, so the warning is expected and harmless.
@pytest.mark.filterwarnings("ignore:The tensor attributes .*were assigned during export:UserWarning")
@pytest.mark.parametrize("name", list_models())
def test_every_model_keeps_the_contract_promotion_relies_on(name):
    """What a champion needs of its network, checked the day a model is registered instead of at promotion
    after a whole search: the head helper's split, and torch.export as MLflow's pt2 flavour calls it (the
    registry's example batch of two, the batch dimension left to the exporter: any batch size serves)."""
    from torch.export import Dim

    from ecgtune.models.head import HeadedModel
    from ecgtune.tuning.champion_model import tensor_signature

    torch.manual_seed(0)
    model, shapes = small_model(name, num_outputs=3)
    assert isinstance(model, HeadedModel), f"{name}: derive the model from ecgtune.models.head.HeadedModel"
    features = {id(p) for p in model.feature_parameters()}
    head = {id(p) for n, p in model.named_parameters() if n.startswith("head.")}
    assert features and head and features == {id(p) for p in model.parameters()} - head
    example = {k: torch.randn(2, *shape).numpy() for k, shape in shapes.items()}
    signature = tensor_signature(model, example)  # what promotion logs, from a forward pass on the example
    assert signature.outputs.inputs[0].shape == (-1, 3)
    program = torch.export.export(model, tuple(torch.from_numpy(a) for a in example.values()),
                                  dynamic_shapes=[{0: Dim.AUTO} for _ in example])
    # The weights travel as parameters, not baked into the graph (integer index tables may be constants).
    assert not [k for k, v in program.constants.items() if torch.is_tensor(v) and v.is_floating_point()]
    batch = [torch.randn(5, *shape) for shape in shapes.values()]  # another batch size than the traced one
    with torch.no_grad():
        assert torch.allclose(program.module()(*batch), model(*batch), atol=1e-4)


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
