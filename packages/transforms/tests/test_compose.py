"""Compose: order of outputs and inverses, sequence protocol, ownership, nesting."""

from __future__ import annotations

import pytest
import torch

from rlbricks.envs.testing import CountingEnv
from rlbricks.tensordict import TensorDict
from rlbricks.transforms import Compose
from rlbricks.transforms import RewardClipping
from rlbricks.transforms import RewardScaling
from rlbricks.transforms import StepCounter
from rlbricks.transforms import Transform
from rlbricks.transforms import TransformedEnv
from rlbricks.transforms import TransformError


class Affine(Transform):
    """x -> a * x + b on the outputs, the exact inverse on the inputs."""

    def __init__(self, a: float, b: float, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.a, self.b = a, b

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return value * self.a + self.b

    def _inv_apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return (value - self.b) / self.a


def test_outputs_in_order_inverses_in_reverse_order() -> None:
    t = Compose(
        Affine(2.0, 1.0, in_keys=["x"], in_keys_inv=["u"]),
        Affine(3.0, 0.0, in_keys=["x"], in_keys_inv=["u"]),
    )
    out = t(TensorDict({"x": torch.tensor([1.0])}))
    assert out["x"].item() == (1.0 * 2 + 1) * 3  # first transform first
    back = t.inv(TensorDict({"u": torch.tensor([9.0])}))
    assert back["u"].item() == ((9.0 / 3) - 1) / 2  # last transform's inverse first


def test_sequence_protocol() -> None:
    a, b, c = RewardScaling(0.0, 2.0), RewardClipping(-1.0, 1.0), StepCounter()
    t = Compose(a, b)
    assert len(t) == 2
    assert t[0] is a
    assert t[-1] is b
    assert list(t) == [a, b]
    t.append(c)
    assert list(t) == [a, b, c]
    d = RewardScaling(1.0, 1.0)
    t.insert(1, d)
    assert list(t) == [a, d, b, c]
    view = t[1:3]
    assert isinstance(view, Compose)
    assert list(view) == [d, b]
    assert d.container is t  # a slice does not take the transforms over


def test_a_transform_belongs_to_one_compose() -> None:
    t = StepCounter()
    Compose(t)
    with pytest.raises(TransformError, match="clone"):
        Compose(t)
    Compose(t.clone())  # a clone is free
    with pytest.raises(TypeError, match="Transform instances"):
        Compose(lambda td: td)  # type: ignore[arg-type]


def test_nested_compose_on_env_and_data() -> None:
    inner = Compose(RewardScaling(0.0, 2.0), RewardScaling(1.0, 1.0))
    outer = Compose(inner, RewardClipping(-10.0, 4.0))
    td = TensorDict({"next": {"reward": torch.tensor([[1.0], [5.0]])}}, batch_size=[2])
    assert outer(td)["next", "reward"].squeeze(-1).tolist() == [3.0, 4.0]
    env = TransformedEnv(CountingEnv(), outer)
    rewards = env.rollout(3, policy=lambda x: x.set("action", torch.ones(1, dtype=torch.long)))
    assert rewards["next", "reward"].squeeze(-1).tolist() == [3.0, 3.0, 3.0]
    assert env.reward_spec.high.item() == 4.0  # type: ignore[attr-defined]
    # the inner transforms see the base env as their parent
    assert inner[0].parent is env.base_env
    assert isinstance(inner[1].parent, TransformedEnv)


def test_append_to_env_compose_rebuilds_specs() -> None:
    env = TransformedEnv(CountingEnv())
    assert "step_count" not in env.observation_spec
    env.transform.append(StepCounter())
    assert "step_count" in env.observation_spec


def test_clone_of_compose_relinks_children() -> None:
    t = Compose(StepCounter(), RewardScaling(0.0, 3.0))
    TransformedEnv(CountingEnv(), t)
    c = t.clone()
    assert isinstance(c, Compose)
    assert c.container is None
    assert all(x.container is c for x in c)
    assert c[1].scale is not t[1].scale  # type: ignore[union-attr]


def test_compose_spec_hooks_chain() -> None:
    t = Compose(RewardScaling(0.0, -2.0), RewardClipping(-1.0, 1.0))
    env = TransformedEnv(CountingEnv(), t)
    assert env.reward_spec.low.item() == -1.0  # type: ignore[attr-defined]
    assert t.transform_reward_spec(CountingEnv().reward_spec).high.item() == 1.0  # type: ignore[attr-defined]
