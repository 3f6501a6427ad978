"""The model contract's head: every registered model keeps its last layers in ``self.head`` (parameters
``head.*``). Transfer learning replaces exactly those (`ecgtune.models.transfer`); fine-tuning may freeze the
rest, its features. A family's model class derives from `HeadedModel` instead of writing the split again.
"""

from __future__ import annotations

from torch import nn

from ecgtune.models.transfer import HEAD_PREFIX


class HeadedModel(nn.Module):
    """Base of every registered model: a module with a ``head`` submodule (its last layers)."""

    def feature_parameters(self) -> list[nn.Parameter]:
        """Everything but the head: what fine-tuning may freeze (``freeze_features``)."""
        return [p for name, p in self.named_parameters() if not name.startswith(HEAD_PREFIX)]
