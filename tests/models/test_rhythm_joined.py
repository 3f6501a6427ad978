"""Beat networks with the beat's R-R features as a second input: the rhythm reaches the logits, the
beat network is the beat-only model's, and the head is the part transfer replaces."""

from __future__ import annotations

import pytest
import torch

from ecgtune.models import create_model

INPUTS = {"signal": (1, 187), "rhythm": (6,)}


@pytest.mark.parametrize("name,beat_only", [("cnet_rr", "cnet"), ("bigru_rr", "bigru")])
def test_the_rhythm_changes_the_prediction_of_the_same_beat(name, beat_only):
    torch.manual_seed(0)
    model = create_model(name, inputs=INPUTS, num_outputs=5, **({"frame_size": 11} if "gru" in name else {})).eval()
    beat = torch.rand(4, 1, 187)
    regular = torch.tensor([[0.8, 0.8, 0.8, 0.8, 1.0, 1.0]]).repeat(4, 1)
    premature = torch.tensor([[0.5, 1.1, 0.77, 0.8, 0.65, 0.62]]).repeat(4, 1)
    assert model(beat, regular).shape == (4, 5)
    assert not torch.allclose(model(beat, regular), model(beat, premature))
    # The beat network is the beat-only model's, head removed: the same parameters but the head's.
    plain = create_model(beat_only, inputs={"signal": (1, 187)}, num_outputs=5, **({"frame_size": 11} if "gru" in name else {}))
    beat_params = {k[len("beat."):]: v.shape for k, v in model.state_dict().items() if k.startswith("beat.")}
    assert beat_params == {k: v.shape for k, v in plain.state_dict().items() if not k.startswith("head.")}
    head = {id(p) for p in model.head.parameters()}
    assert {id(p) for p in model.feature_parameters()} == {id(p) for p in model.parameters()} - head


def test_the_neighbours_model_reads_every_beat_it_is_shown():
    """cnet_neighbours_rr: the previous beats, the beat and the next beat are channels of one CNet; a change
    in any of them (here the preceding beat) changes the prediction."""
    torch.manual_seed(0)
    inputs = {"neighbours": (4, 187), "rhythm": (6,)}  # two preceding beats, the beat, the next beat
    model = create_model("cnet_neighbours_rr", inputs=inputs, num_outputs=5).eval()
    beats, rhythm = torch.rand(3, 4, 187), torch.rand(3, 6)
    assert model(beats, rhythm).shape == (3, 5)
    other = beats.clone()
    other[:, 1] = torch.rand(3, 187)  # another preceding beat
    assert not torch.allclose(model(beats, rhythm), model(other, rhythm))
    assert model.beat.stem.in_channels == 4
