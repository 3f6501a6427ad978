"""Seed 000's fusion models: two inputs, branches built and loaded from the champions they start from,
frozen (early, late) or trained (joint), and rebuilt from the spec a checkpoint keeps."""

from __future__ import annotations

import io

import pytest
import torch

from ecgtune.models import create_model
from ecgtune.models.transfer import WHOLE_MODEL
from ecgtune.training.checkpoint import build_model, write_weights
from ecgtune.training.trainable import starting_model

INPUTS = {"signal": (3, 100), "image": (9, 64, 64)}
SIGNAL_SPEC = {"name": "gru1d", "inputs": {"signal": [3, 100]}, "num_outputs": 4,
               "hparams": {"hidden_size": 8, "num_layers": 1, "bidirectional": True}}
IMAGE_SPEC = {"name": "alexnet2d", "inputs": {"image": [9, 64, 64]}, "num_outputs": 4,
              "hparams": {"filters": 4, "fc_sizes": (32, 16)}}
BRANCHES = {"signal": SIGNAL_SPEC, "image": IMAGE_SPEC}


def _batch(n=2):
    return torch.randn(n, *INPUTS["signal"]), torch.rand(n, *INPUTS["image"])


@pytest.mark.parametrize("way", ["fusion_early", "fusion_late", "fusion_joint"])
def test_each_fusion_takes_the_signal_and_the_image(way):
    model = create_model(way, inputs=INPUTS, num_outputs=4, branches=BRANCHES, hidden_size=8)
    assert model(*_batch(3)).shape == (3, 4)
    # Every fusion layer is the head; the branches are the features.
    head = {id(p) for p in model.head.parameters()}
    features = {id(p) for p in model.feature_parameters()}
    assert head.isdisjoint(features) and head | features == {id(p) for p in model.parameters()}


def test_early_and_late_fusion_keep_their_branches_frozen_and_in_eval_mode_joint_trains_them():
    for way, trained in (("fusion_early", False), ("fusion_late", False), ("fusion_joint", True)):
        model = create_model(way, inputs=INPUTS, num_outputs=4, branches=BRANCHES, hidden_size=8).train()
        assert all(p.requires_grad == trained for n, p in model.branches.named_parameters() if way == "fusion_late" or ".head." not in n)
        assert all(p.requires_grad for p in model.head.parameters())
        assert all(m.training == trained for branch in model.branches.values() for m in branch.modules())
    with pytest.raises(ValueError, match="train_branches"):
        create_model("fusion_early", inputs=INPUTS, num_outputs=4, branches=BRANCHES, train_branches="no")


def test_a_branch_trained_on_other_inputs_or_labels_is_refused():
    other = {**BRANCHES, "image": {**IMAGE_SPEC, "inputs": {"image": [9, 32, 32]}}}
    with pytest.raises(ValueError, match="image branch alexnet2d was trained on image"):
        create_model("fusion_late", inputs=INPUTS, num_outputs=4, branches=other)
    with pytest.raises(ValueError, match="makes 5 outputs"):
        create_model("fusion_late", inputs=INPUTS, num_outputs=4, branches={**BRANCHES, "signal": {**SIGNAL_SPEC, "num_outputs": 5}})


def test_fusion_starts_from_the_branch_champions_and_its_spec_rebuilds_it(tmp_path):
    """What a fusion trial does with its starting weights (ecgtune.training.trainable.starting_model)."""
    champions = {}
    for branch, spec in BRANCHES.items():
        champion = build_model(spec)
        location = str(tmp_path / f"{branch}.pt")
        write_weights(location, champion.state_dict(), spec)
        champions[branch] = (champion, location)
    spec = {"name": "fusion_early", "inputs": {k: list(v) for k, v in INPUTS.items()}, "num_outputs": 4,
            "hparams": {"hidden_size": 8}}
    model, kept = starting_model(spec, {b: loc for b, (_, loc) in champions.items()})
    for branch, (champion, _) in champions.items():
        mine = model.branches[branch].state_dict()
        assert all(torch.equal(mine[k], v) for k, v in champion.state_dict().items())
    assert kept["hparams"]["branches"] == BRANCHES and spec["hparams"] == {"hidden_size": 8}  # not changed in place
    rebuilt = build_model(kept)
    rebuilt.load_state_dict(model.state_dict())  # strict: the same architecture
    signal, image = _batch()
    torch.testing.assert_close(rebuilt.eval()(signal, image), model.eval()(signal, image))


def test_a_whole_model_start_replaces_the_head_only_when_asked(tmp_path):
    spec = {**SIGNAL_SPEC, "inputs": {"signal": [3, 100]}}
    source = build_model(spec)
    location = str(tmp_path / "source.pt")
    write_weights(location, source.state_dict(), spec)
    same, _ = starting_model(spec, {WHOLE_MODEL: location})
    assert all(torch.equal(same.state_dict()[k], v) for k, v in source.state_dict().items())
    fresh, _ = starting_model(spec, {WHOLE_MODEL: location}, replace_head=True)
    heads = [k for k in source.state_dict() if k.startswith("head.") and k.endswith("weight")]
    assert heads and not all(torch.equal(fresh.state_dict()[k], source.state_dict()[k]) for k in heads)


def test_a_search_resumed_across_the_upgrade_reads_its_old_starting_weights(tmp_path):
    """Before fusion models, starting weights were the state alone and init_weights one location."""
    from ecgtune.paths import write_bytes

    spec = dict(SIGNAL_SPEC)
    source = build_model(spec)
    location = str(tmp_path / "old.pt")
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    write_bytes(location, buffer.getvalue())
    model, _ = starting_model(spec, location)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in source.state_dict().items())
