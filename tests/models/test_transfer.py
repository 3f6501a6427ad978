"""Head replacement for transfer (Kachuee et al.): features kept, the last two FC layers new."""

import pytest
import torch

from ecgtune.errors import EcgtuneError
from ecgtune.models import create_model
from ecgtune.models.transfer import freeze_features, load_pretrained

HEARTBEAT = ["cnet", "seq2seq", "bilstm", "bigru"]


@pytest.mark.parametrize("name", HEARTBEAT)
def test_an_aami_model_becomes_an_mi_model_with_its_features_and_a_new_head(name):
    torch.manual_seed(0)
    source = create_model(name, inputs={"signal": (1, 187)}, num_outputs=5)
    with torch.no_grad():  # "trained" weights: anything but the initialisation
        for p in source.parameters():
            p.add_(0.5)
    target = create_model(name, inputs={"signal": (1, 187)}, num_outputs=1)
    fresh_head = {k: v.clone() for k, v in target.state_dict().items() if k.startswith("head.")}
    load_pretrained(target, source.state_dict(), replace_head=True)

    after = target.state_dict()
    for key, value in source.state_dict().items():
        if key.startswith("head."):
            continue
        assert torch.equal(after[key], value), key
    for key, value in fresh_head.items():
        assert torch.equal(after[key], value), key  # the new head, as initialised for two classes
    assert target(torch.randn(3, 1, 187)).shape == (3, 1)
    # The replaced layers are the last two fully connected ones.
    linears = [m for m in target.modules() if isinstance(m, torch.nn.Linear)]
    assert linears[-2:] == [target.head[0], target.head[2]]


def test_frozen_features_do_not_move_and_the_head_does():
    torch.manual_seed(0)
    model = create_model("cnet", inputs={"signal": (1, 187)}, num_outputs=1)
    freeze_features(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=1e-2)
    loss = model(torch.randn(8, 1, 187)).sum()
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before if not k.startswith("head."))
    assert any(not torch.equal(after[k], before[k]) for k in before if k.startswith("head."))


def test_weights_of_another_architecture_are_refused_with_the_names():
    source = create_model("bigru", inputs={"signal": (1, 187)}, num_outputs=5)
    target = create_model("bilstm", inputs={"signal": (1, 187)}, num_outputs=1)
    with pytest.raises(EcgtuneError, match="do not fit"):
        load_pretrained(target, source.state_dict(), replace_head=True)


def test_without_replace_head_the_whole_model_is_loaded_and_class_counts_must_match():
    source = create_model("cnet", inputs={"signal": (1, 187)}, num_outputs=5)
    same = create_model("cnet", inputs={"signal": (1, 187)}, num_outputs=5)
    load_pretrained(same, source.state_dict(), replace_head=False)
    assert all(torch.equal(same.state_dict()[k], v) for k, v in source.state_dict().items())
    other = create_model("cnet", inputs={"signal": (1, 187)}, num_outputs=1)
    with pytest.raises(EcgtuneError, match="replace_head"):
        load_pretrained(other, source.state_dict(), replace_head=False)
