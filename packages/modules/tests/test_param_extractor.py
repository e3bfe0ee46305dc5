"""Tests of ``NormalParamExtractor`` and its scale mappings."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from rlbricks.modules import ModuleError
from rlbricks.modules import NormalParamExtractor

X = torch.linspace(-6.0, 6.0, 25)


@pytest.mark.parametrize("bias", [0.1, 0.5, 1.0, 3.0])
@pytest.mark.parametrize("lb", [0.0, 1e-4, 0.05])
def test_biased_softplus_maps_zero_to_the_bias(bias, lb):
    extractor = NormalParamExtractor(f"biased_softplus_{bias}", scale_lb=lb)
    assert extractor.map_scale(torch.zeros(3, dtype=torch.float64)).tolist() == pytest.approx(
        [bias] * 3, rel=1e-12
    )
    # a shifted softplus: softplus(x + c) + lb with c = log(exp(bias - lb) - 1)
    c = math.log(math.exp(bias - lb) - 1.0)
    torch.testing.assert_close(extractor.map_scale(X), F.softplus(X + c) + lb)
    assert bool((extractor.map_scale(X) > lb).all())


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("softplus", lambda x, lb: torch.log1p(torch.exp(x)) + lb),
        ("exp", lambda x, lb: torch.exp(x) + lb),
        ("relu", lambda x, lb: torch.where(x > 0, x, 0.0) + lb),
        ("none", lambda x, lb: torch.where(x > lb, x, lb)),
    ],
)
def test_named_mappings_match_their_formulas(name, reference):
    lb = 0.01
    extractor = NormalParamExtractor(name, scale_lb=lb)
    torch.testing.assert_close(extractor.map_scale(X), reference(X, lb))


def test_default_is_biased_softplus_one():
    _, scale = NormalParamExtractor()(torch.zeros(4))
    torch.testing.assert_close(scale, torch.ones(2))
    assert NormalParamExtractor("biased_softplus").map_scale(torch.zeros(1)).item() == (
        pytest.approx(1.0)
    )


def test_forward_splits_the_last_dim():
    x = torch.randn(5, 2, 6)
    loc, scale = NormalParamExtractor("exp", scale_lb=0.0)(x)
    torch.testing.assert_close(loc, x[..., :3])
    torch.testing.assert_close(scale, x[..., 3:].exp())


def test_callable_mapping():
    extractor = NormalParamExtractor(lambda x: x.abs() + 2.0)
    _, scale = extractor(torch.tensor([1.0, -3.0]))
    assert scale.tolist() == [5.0]


def test_gradients_flow_to_both_halves():
    x = torch.randn(3, 4, requires_grad=True)
    loc, scale = NormalParamExtractor()(x)
    (loc.sum() + scale.sum()).backward()
    assert x.grad is not None
    assert bool((x.grad != 0).all())


def test_unknown_mapping_lists_the_valid_ones():
    with pytest.raises(ModuleError, match="unknown scale_mapping 'sigmoid'") as err:
        NormalParamExtractor("sigmoid")
    for name in ("biased_softplus_", "softplus", "exp", "relu", "none"):
        assert name in str(err.value)
    with pytest.raises(ValueError, match="cannot read the bias"):
        NormalParamExtractor("biased_softplus_abc")
    with pytest.raises(ModuleError, match="must exceed scale_lb"):
        NormalParamExtractor("biased_softplus_0.001", scale_lb=0.01)
    with pytest.raises(ModuleError, match="name or a callable"):
        NormalParamExtractor(3)  # type: ignore[arg-type]


def test_odd_last_dim_is_refused():
    with pytest.raises(ModuleError, match=r"must be even.*\[2, 3\]"):
        NormalParamExtractor()(torch.zeros(2, 3))


def test_repr_names_the_mapping():
    assert "biased_softplus_2.0" in repr(NormalParamExtractor("biased_softplus_2.0"))
