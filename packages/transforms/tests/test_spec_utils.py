"""The spec helpers: casts, reshapes, bounds and key routing."""

from __future__ import annotations

import pytest
import torch

from rlbricks.envs.testing import CountingEnv
from rlbricks.specs import Binary
from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import OneHot
from rlbricks.specs import Unbounded
from rlbricks.transforms import EnvSpecs
from rlbricks.transforms import TransformError
from rlbricks.transforms._spec_utils import bounded
from rlbricks.transforms._spec_utils import cast_spec
from rlbricks.transforms._spec_utils import reshape_spec
from rlbricks.transforms._spec_utils import route_specs


def test_cast_spec_leaves_and_composites() -> None:
    spec = Composite(a=Unbounded(shape=(2,)), b={"c": Bounded(0.0, 2.0, shape=(1,))})
    out = cast_spec(spec, torch.float64, "t")
    assert isinstance(out, Composite)
    assert out["a"].dtype == torch.float64
    assert out["b", "c"].dtype == torch.float64
    assert out["b", "c"].high.dtype == torch.float64  # type: ignore[attr-defined]
    assert spec["a"].dtype == torch.float32  # the input is left alone
    with pytest.raises(TransformError, match="OneHot"):
        cast_spec(OneHot(3), torch.float32, "t")


def test_reshape_spec_kinds() -> None:
    def unsq(x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(-2)

    cat = reshape_spec(Categorical(4, shape=(3,)), unsq, "t")
    assert isinstance(cat, Categorical)
    assert cat.shape == (1, 3)
    assert cat.n == 4
    binary = reshape_spec(Binary(3, shape=(2, 3)), lambda x: x.unsqueeze(0), "t")
    assert isinstance(binary, Binary)
    assert binary.shape == (1, 2, 3)
    with pytest.raises(TransformError, match="cannot reshape"):
        reshape_spec(OneHot(3), unsq, "t")
    with pytest.raises(TransformError, match="cannot reshape"):  # the flags' dim changes
        reshape_spec(Binary(3, shape=(2, 3)), lambda x: x.flatten(-2), "t")


def test_bounded_keeps_shape_dtype_device() -> None:
    out = bounded(Unbounded(shape=(2, 2), dtype=torch.float64), -1, 1)
    assert out.shape == (2, 2)
    assert out.dtype == torch.float64
    assert out.low.min().item() == -1.0


def test_route_specs_reward_and_observation() -> None:
    specs = EnvSpecs.from_env(CountingEnv())

    def to_bounded(spec: object) -> Bounded:
        return bounded(spec, 0.0, 1.0)  # type: ignore[arg-type]

    route_specs(specs, ["reward", "observation"], ["reward", "obs01"], to_bounded, "t")
    assert isinstance(specs.reward, Bounded)
    assert isinstance(specs.observation["obs01"], Bounded)
    assert isinstance(specs.observation["observation"], Unbounded)  # kept
    with pytest.raises(TransformError, match="reward cannot be written"):
        route_specs(specs, ["reward"], ["r2"], to_bounded, "t")
    with pytest.raises(TransformError, match="not an output"):
        route_specs(specs, ["nope"], ["nope"], to_bounded, "t")
