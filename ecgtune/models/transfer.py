"""Transfer learning between tasks: keep a trained model's features, give it a new head.

Every registered model keeps its last two fully connected layers in ``model.head`` (names ``head.*``);
Kachuee et al. (2018) transfer the arrhythmia network to MI detection by replacing exactly those.
"""

from __future__ import annotations

from ecgtune.errors import EcgtuneError

HEAD_PREFIX = "head."
# Where starting weights go: the whole model, or the branch of a fusion model named by its input.
WHOLE_MODEL = "model"


def load_pretrained(model, state: dict, *, replace_head: bool) -> None:
    """Load ``state`` into ``model``; with ``replace_head`` every ``head.*`` weight of ``state`` is left
    out and ``model`` keeps its freshly initialised head (sized for its own classes).

    Raises:
        EcgtuneError: ``state`` does not fit the model's features (another architecture or other
            hyperparameters), naming the first parameters that differ.
    """
    if replace_head:
        state = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIX)}
    own = model.state_dict()
    expected = {k for k in own if not (replace_head and k.startswith(HEAD_PREFIX))}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    mismatched = sorted(k for k in expected & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or mismatched:
        raise EcgtuneError(
            f"the pre-trained weights do not fit {type(model).__name__}: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}, other shapes {mismatched[:3]} (same model and hyperparameters "
            "as the source are needed; a different number of classes needs replace_head)"
        )
    model.load_state_dict(state, strict=not replace_head)


def freeze_features(model) -> None:
    """Train the head alone: every parameter outside ``head`` stops receiving gradients."""
    for parameter in model.feature_parameters():
        parameter.requires_grad_(False)


def freeze_blocks(model, count: int) -> None:
    """Freeze the first ``count`` feature blocks of ``model.feature_blocks()`` (for Ribeiro's network the
    stem, then its residual units): autoECG's transfer keeps the pre-trained early layers as they are.

    Raises:
        EcgtuneError: the model does not name its blocks, or has fewer than ``count``.
    """
    if count <= 0:
        return
    blocks = model.feature_blocks() if hasattr(model, "feature_blocks") else None
    if blocks is None or count > len(blocks):
        have = "no feature blocks" if blocks is None else f"only {len(blocks)} feature blocks"
        raise EcgtuneError(f"freeze_blocks={count}: {type(model).__name__} has {have} to freeze")
    for block in blocks[:count]:
        for parameter in block.parameters():
            parameter.requires_grad_(False)
    # Frozen means their batch-norm statistics too: the model keeps these blocks in eval mode (its train()).
    model.frozen_blocks = count
    model.train(model.training)
