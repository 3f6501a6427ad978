"""The heartbeat models: Kachuee's parameter count, the transferable head, framing, learning (export:
tests/models/test_registry.py, for every registered model)."""

import pytest
import torch
from torch import nn

from ecgtune.errors import EcgtuneError
from ecgtune.models import create_model
from ecgtune.models.heartbeat import frames

HEARTBEAT_MODELS = ["cnet", "bilstm", "bigru", "seq2seq"]
BEAT = dict(inputs={"signal": (1, 187)}, num_outputs=5)  # Kachuee's MIT-BIH beats, five classes



def test_cnet_has_the_papers_parameter_count():
    # stem conv 1->32, k5:                       1*32*5 + 32 =  192
    # 5 blocks x 2 convs 32->32, k5:    10 * (32*32*5 + 32) = 51,520
    # length 187 -> 92 -> 44 -> 20 -> 8 -> 2 after the pools, so 32 * 2 = 64 features
    # dense 64->32:                               64*32 + 32 = 2,080
    # head 32->32 and 32->5:             32*32 + 32 + 32*5 + 5 = 1,221
    # total                                                   = 55,013
    model = create_model("cnet", **BEAT)
    assert sum(p.numel() for p in model.parameters()) == 55_013


@pytest.mark.parametrize("name", HEARTBEAT_MODELS)
def test_head_is_exactly_the_last_two_linear_layers(name):
    model = create_model(name, **BEAT)
    linears = [(prefix, m) for prefix, m in model.named_modules() if isinstance(m, nn.Linear)]
    (second_last_name, second_last), (last_name, last) = linears[-2:]
    assert second_last is model.head[0] and last is model.head[2]
    expected = {f"{prefix}.{p}" for prefix in (second_last_name, last_name) for p in ("weight", "bias")}
    assert {n for n, _ in model.named_parameters() if n.startswith("head.")} == expected


@pytest.mark.parametrize("name", HEARTBEAT_MODELS)
def test_feature_and_head_parameters_partition_the_model(name):
    model = create_model(name, **BEAT)
    features = {id(p) for p in model.feature_parameters()}
    head = {id(p) for p in model.head.parameters()}
    assert features.isdisjoint(head)
    assert features | head == {id(p) for p in model.parameters()}


def test_frames_cuts_steps_of_frame_size_and_drops_the_remainder():
    x = torch.arange(2 * 7, dtype=torch.float32).reshape(1, 2, 7).expand(3, 2, 7)
    out = frames(x, 3)
    assert out.shape == (3, 2, 6)  # 7 // 3 steps of 2 channels * 3 samples; the 7th sample is dropped
    # Step 1 holds samples 3..5 of channel 0, then samples 3..5 of channel 1.
    assert out[0, 1].tolist() == [3.0, 4.0, 5.0, 10.0, 11.0, 12.0]
    assert torch.equal(frames(x, 1), x.transpose(1, 2))


def test_bilstm_with_frames_of_four_sees_46_steps():
    model = create_model("bilstm", **BEAT, frame_size=4)
    seen = []
    model.rnn.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape))
    out = model(torch.randn(2, 1, 187))
    assert out.shape == (2, 5)
    assert seen == [torch.Size([2, 46, 4])]


@pytest.mark.parametrize("name", HEARTBEAT_MODELS)
def test_unknown_hyperparameter_is_refused(name):
    with pytest.raises(EcgtuneError, match="kernel_sizes"):
        create_model(name, **BEAT, kernel_sizes=3)


def test_stacked_recurrent_layers_with_dropout_summarise_the_last_layer():
    model = create_model("bigru", **BEAT, num_layers=2, dropout=0.3, hidden=8, frame_size=11)
    assert model.rnn.dropout == 0.3
    assert model(torch.randn(2, 1, 187)).shape == (2, 5)


def test_cnet_refuses_a_beat_too_short_for_its_pools():
    with pytest.raises(ValueError, match="input_length=40"):
        create_model("cnet", inputs={"signal": (1, 40)}, num_outputs=5)


def bump_problem(n: int = 64, length: int = 187) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy beats with one bump: class 1 has it in the first half, class 0 in the second."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 2
    half = length // 2
    offset = torch.randint(10, half - 10, (n,), generator=generator)
    centres = torch.where(labels == 1, offset, half + offset)
    t = torch.arange(length).unsqueeze(0)
    bumps = torch.exp(-(((t - centres.unsqueeze(1)) / 4.0) ** 2))
    x = bumps + 0.1 * torch.randn(n, length, generator=generator)
    return x.unsqueeze(1), labels.float()


@pytest.mark.parametrize(
    "name,hparams",
    [
        # Both shrunk to keep the test to a couple of seconds on a busy two-core CPU: half of cnet's
        # filters, and a small GRU stepping through 17 frames of 11 samples rather than 187 samples.
        pytest.param("cnet", dict(filters=16), id="cnet"),
        pytest.param("bigru", dict(hidden=16, frame_size=11), id="bigru"),
    ],
)
def test_model_learns_where_the_bump_is(name, hparams):
    torch.manual_seed(0)
    x, y = bump_problem()
    model = create_model(name, inputs={"signal": (1, 187)}, num_outputs=1, **hparams)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        optimiser.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(1), y)
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        accuracy = ((model(x).squeeze(1) > 0).float() == y).float().mean().item()
    assert accuracy >= 0.9
