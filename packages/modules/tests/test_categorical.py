"""Tests of the masked ``Categorical`` and ``OneHotCategorical`` distributions."""

from __future__ import annotations

import math

import pytest
import torch

from rlbricks.modules import Categorical
from rlbricks.modules import ModuleError
from rlbricks.modules import OneHotCategorical

LOGITS = torch.tensor([[0.0, 3.0, 1.0, -1.0], [2.0, 0.0, 0.5, 4.0], [1.0, 1.0, 1.0, 1.0]])
MASK = torch.tensor(
    [[True, False, True, True], [False, True, True, False], [False, False, False, True]]
)


def masked_probs_reference(logits, mask):
    """Softmax over the allowed actions only, zero elsewhere (naive loop)."""
    out = torch.zeros_like(logits)
    for i in range(logits.shape[0]):
        allowed = mask[i].nonzero().squeeze(-1)
        weights = logits[i, allowed].exp()
        out[i, allowed] = weights / weights.sum()
    return out


@pytest.mark.parametrize("cls", [Categorical, OneHotCategorical])
def test_masked_probabilities_match_the_reference(cls):
    expected = masked_probs_reference(LOGITS, MASK)
    torch.testing.assert_close(cls(logits=LOGITS, mask=MASK).probs, expected)
    torch.testing.assert_close(cls(probs=LOGITS.softmax(-1), mask=MASK).probs, expected)


def test_categorical_never_samples_masked_actions():
    torch.manual_seed(0)
    dist = Categorical(logits=LOGITS, mask=MASK)
    samples = dist.sample((20_000,))
    assert samples.shape == (20_000, 3)
    picked = torch.nn.functional.one_hot(samples, 4).sum(0).bool()
    assert not bool((picked & ~MASK).any())
    assert bool(picked[MASK].all())  # every allowed action shows up
    freq = torch.nn.functional.one_hot(samples, 4).float().mean(0)
    torch.testing.assert_close(freq, masked_probs_reference(LOGITS, MASK), atol=0.015, rtol=0)


def test_one_hot_categorical_never_samples_masked_actions():
    torch.manual_seed(1)
    samples = OneHotCategorical(logits=LOGITS, mask=MASK).sample((20_000,))
    assert samples.shape == (20_000, 3, 4)
    assert bool((samples.sum(-1) == 1).all())
    assert not bool((samples.bool() & ~MASK).any())


@pytest.mark.parametrize("cls", [Categorical, OneHotCategorical])
def test_masked_log_prob_is_minus_inf_and_matches_reference_elsewhere(cls):
    dist = cls(logits=LOGITS, mask=MASK)
    log_ref = masked_probs_reference(LOGITS, MASK).log()
    for action in range(4):
        index = torch.full((3,), action)
        value = index if cls is Categorical else torch.nn.functional.one_hot(index, 4).float()
        torch.testing.assert_close(dist.log_prob(value), log_ref[:, action])


def test_mode_and_deterministic_sample_respect_the_mask():
    # the largest logit of rows 0 and 1 is masked
    cat = Categorical(logits=LOGITS, mask=MASK)
    assert cat.mode.tolist() == [2, 2, 3]
    assert cat.deterministic_sample.tolist() == [2, 2, 3]
    one_hot = OneHotCategorical(logits=LOGITS, mask=MASK)
    expected = torch.nn.functional.one_hot(torch.tensor([2, 2, 3]), 4).float()
    torch.testing.assert_close(one_hot.mode, expected)
    torch.testing.assert_close(one_hot.deterministic_sample, expected)


def test_mask_broadcasts_over_the_batch():
    mask = torch.tensor([False, True, True, False])
    dist = Categorical(logits=torch.randn(5, 2, 4), mask=mask)
    samples = dist.sample((500,))
    assert bool(((samples == 1) | (samples == 2)).all())


def test_entropy_with_mask_is_the_entropy_of_the_allowed_actions():
    dist = Categorical(logits=LOGITS, mask=MASK)
    p = masked_probs_reference(LOGITS, MASK)
    expected = -(torch.where(p > 0, p * p.log(), torch.zeros_like(p))).sum(-1)
    torch.testing.assert_close(dist.entropy(), expected)
    assert dist.entropy()[2].item() == 0.0  # one allowed action


def test_without_mask_it_is_torch_categorical():
    logits = torch.randn(3, 5)
    ours, theirs = Categorical(logits=logits), torch.distributions.Categorical(logits=logits)
    torch.testing.assert_close(ours.probs, theirs.probs)
    x = torch.tensor([0, 4, 2])
    torch.testing.assert_close(ours.log_prob(x), theirs.log_prob(x))
    assert ours.mask is None


def test_one_hot_log_prob_accepts_bool_and_int_values():
    dist = OneHotCategorical(logits=LOGITS[:1])
    value = torch.tensor([[False, True, False, False]])
    expected = LOGITS[0].log_softmax(-1)[1]
    torch.testing.assert_close(dist.log_prob(value), expected.reshape(1))
    torch.testing.assert_close(dist.log_prob(value.long()), expected.reshape(1))


def test_one_hot_rsample_values_are_exact_one_hots():
    torch.manual_seed(3)
    logits = torch.randn(64, 5, requires_grad=True)
    x = OneHotCategorical(logits=logits).rsample((10,))
    assert bool(((x == 0) | (x == 1)).all())
    assert bool((x.sum(-1) == 1).all())
    assert OneHotCategorical(logits=logits.detach()).support.check(x.detach()).all()


def test_one_hot_rsample_is_straight_through():
    torch.manual_seed(2)
    logits = torch.tensor([[0.5, -0.2, 1.0]], requires_grad=True)
    dist = OneHotCategorical(logits=logits)
    x = dist.rsample()
    assert bool(((x == 0) | (x == 1)).all())
    assert x.sum().item() == 1.0
    weights = torch.tensor([1.0, 2.0, 3.0])
    (x * weights).sum().backward()
    # the value is the one-hot sample; the gradient is that of (probs * weights).sum()
    expected_logits = logits.detach().clone().requires_grad_(True)
    (expected_logits.softmax(-1) * weights).sum().backward()
    torch.testing.assert_close(logits.grad, expected_logits.grad)


@pytest.mark.parametrize("cls", [Categorical, OneHotCategorical])
def test_bad_arguments(cls):
    with pytest.raises(ModuleError, match="exactly one of logits or probs"):
        cls()
    with pytest.raises(ModuleError, match="exactly one of logits or probs"):
        cls(logits=LOGITS, probs=LOGITS.softmax(-1))
    with pytest.raises(ModuleError, match="bool"):
        cls(logits=LOGITS, mask=MASK.long())
    empty_row = MASK.clone()
    empty_row[1] = False
    with pytest.raises(ModuleError, match="allows no action"):
        cls(logits=LOGITS, mask=empty_row)


def test_log_prob_of_every_masked_action_is_minus_inf():
    dist = Categorical(logits=LOGITS, mask=MASK)
    for row, col in (~MASK).nonzero().tolist():
        value = torch.zeros(3, dtype=torch.long)
        value[row] = col
        assert dist.log_prob(value)[row].item() == -math.inf
