"""The focal loss (focal_gamma > 0): gamma 0 is the plain loss, easy examples lose weight, class weights
still apply; in the three settings (classes, one logit, labels)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ecgtune.training.loop import focal_loss, loss_fn


def test_gamma_zero_is_the_plain_loss_in_every_setting():
    torch.manual_seed(0)
    logits, y = torch.randn(8, 5), torch.randint(0, 5, (8,))
    weights = torch.rand(5) + 0.5
    torch.testing.assert_close(focal_loss(logits, y, weights, 0.0), F.cross_entropy(logits, y, weight=weights))
    binary, yb = torch.randn(8, 1), torch.randint(0, 2, (8,))
    torch.testing.assert_close(focal_loss(binary, yb, None, 0.0), loss_fn(binary, yb))
    labels, yl = torch.randn(8, 3), (torch.rand(8, 3) > 0.5).float()
    torch.testing.assert_close(focal_loss(labels, yl, None, 0.0), loss_fn(labels, yl))


def test_easy_examples_weigh_less_than_hard_ones():
    y = torch.tensor([0, 0])
    easy, hard = torch.tensor([[5.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    ratio_plain = loss_fn(hard, y[:1]) / loss_fn(easy, y[:1])
    ratio_focal = loss_fn(hard, y[:1], focal_gamma=2.0) / loss_fn(easy, y[:1], focal_gamma=2.0)
    assert ratio_focal > 100 * ratio_plain  # (1 - p)^2: nearly nothing left of a confident right answer
    # By hand: p_true = softmax([0, 1])[0]; loss = -(1 - p)^2 log p.
    p = torch.softmax(hard, 1)[0, 0]
    assert loss_fn(hard, y[:1], focal_gamma=2.0).item() == pytest.approx((-(1 - p) ** 2 * torch.log(p)).item(), rel=1e-5)


def test_class_weights_still_weigh_each_example_by_its_class():
    logits = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    y = torch.tensor([0, 1])
    only_first = focal_loss(logits, y, torch.tensor([1.0, 1e-9]), 2.0)
    p = torch.softmax(logits, 1)[0, 0]
    assert only_first.item() == pytest.approx((-(1 - p) ** 2 * torch.log(p)).item(), rel=1e-5)
