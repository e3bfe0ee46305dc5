"""DTypeCastTransform and DoubleToFloat: outputs, inverse inputs, specs."""

from __future__ import annotations

import pytest
import torch

from rlbricks.envs import EnvBase
from rlbricks.envs import SerialEnv
from rlbricks.envs import check_env_specs
from rlbricks.envs.testing import CountingEnv
from rlbricks.specs import Bounded
from rlbricks.specs import Composite
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict
from rlbricks.transforms import DoubleToFloat
from rlbricks.transforms import DTypeCastTransform
from rlbricks.transforms import TransformedEnv
from rlbricks.transforms import TransformError

F64 = torch.float64


class DoubleEnv(EnvBase):
    """float64 observation, action, reward and state; counts the int64 steps."""

    def __init__(self, with_state: bool = True) -> None:
        super().__init__()
        self.observation_spec = Composite(
            observation=Unbounded(shape=(2,), dtype=F64),
            count=Unbounded(shape=(1,), dtype=torch.int64),
        )
        self.action_spec = Bounded(-1.0, 1.0, shape=(2,), dtype=F64)
        self.reward_spec = Unbounded(shape=(1,), dtype=F64)
        if with_state:
            self.state_spec = Composite(offset=Unbounded(shape=(2,), dtype=F64))
        self.received: list[torch.Tensor] = []

    def _reset(self, tensordict: TensorDict | None) -> TensorDict:
        self.x = torch.zeros(2, dtype=F64)
        self.n = torch.zeros(1, dtype=torch.int64)
        return TensorDict({"observation": self.x.clone(), "count": self.n.clone()})

    def _step(self, tensordict: TensorDict) -> TensorDict:
        action = tensordict["action"]
        self.received.append(action)
        self.x = self.x + action
        self.n = self.n + 1
        return TensorDict(
            {
                "observation": self.x.clone(),
                "count": self.n.clone(),
                "reward": self.x.sum(-1, keepdim=True),
            }
        )

    def _set_seed(self, seed: int) -> None:
        torch.manual_seed(seed)


def test_plain_tensordict_all_entries_of_the_dtype() -> None:
    td = TensorDict(
        {
            "a": torch.tensor([1.5], dtype=F64),
            "b": torch.tensor([2], dtype=torch.int64),
            "next": {"a": torch.tensor([2.5], dtype=F64), "r": torch.tensor([1.0])},
        }
    )
    out = DoubleToFloat()(td)
    assert out["a"].dtype == torch.float32
    assert out["next", "a"].dtype == torch.float32
    assert out["a"].item() == 1.5
    assert out["next", "a"].item() == 2.5
    assert out["b"].dtype == torch.int64


def test_plain_tensordict_explicit_keys_and_out_keys() -> None:
    td = TensorDict({"a": torch.tensor([1.0], dtype=F64), "b": torch.tensor([2.0], dtype=F64)})
    out = DTypeCastTransform(F64, torch.float16, in_keys=["a"], out_keys=["a16"])(td)
    assert out["a16"].dtype == torch.float16
    assert out["a"].dtype == F64
    assert out["b"].dtype == F64
    with pytest.raises(ValueError, match="explicit in_keys"):
        DTypeCastTransform(F64, torch.float32, out_keys=["x"])


def test_env_outputs_inputs_and_specs() -> None:
    base = DoubleEnv()
    env = TransformedEnv(base, DoubleToFloat())
    assert env.observation_spec["observation"].dtype == torch.float32
    assert env.observation_spec["count"].dtype == torch.int64
    assert env.reward_spec.dtype == torch.float32
    assert env.action_spec.dtype == torch.float32
    assert env.action_spec.high.dtype == torch.float32  # type: ignore[attr-defined]
    assert env.state_spec["offset"].dtype == torch.float32
    assert env.transform[0].in_keys_inv == ["action", "offset"]
    td = env.rollout(3, policy=lambda x: x.set("action", torch.full((2,), 0.5)))
    assert td["next", "observation"].dtype == torch.float32
    assert td["next", "observation"][-1].tolist() == [1.5, 1.5]
    assert td["action"].dtype == torch.float32  # the user's action is untouched
    assert all(a.dtype == F64 for a in base.received)  # the env got float64


def test_check_env_specs_batched() -> None:
    env = TransformedEnv(SerialEnv(2, lambda: DoubleEnv(with_state=False)), DoubleToFloat())
    check_env_specs(env)
    td = env.rollout(3)
    assert td["next", "observation"].dtype == torch.float32
    assert td["action"].dtype == torch.float32
    assert td["next", "count"][:, -1].squeeze(-1).tolist() == [3, 3]


def test_explicit_inverse_keys_only() -> None:
    env = TransformedEnv(
        DoubleEnv(), DoubleToFloat(in_keys=["observation"], in_keys_inv=["action"])
    )
    assert env.reward_spec.dtype == F64  # not listed: unchanged
    assert env.action_spec.dtype == torch.float32
    assert env.state_spec["offset"].dtype == F64


def test_float_to_double_on_counting_env() -> None:
    env = TransformedEnv(CountingEnv(max_steps=3), DTypeCastTransform(torch.float32, F64))
    check_env_specs(env)
    td = env.rollout(3)
    assert td["next", "observation"].dtype == F64
    assert td["next", "reward"].dtype == F64
    assert td["next", "observation"].squeeze(-1).tolist() == [1.0, 2.0, 3.0]


def test_errors() -> None:
    with pytest.raises(TransformError, match="Categorical"):
        TransformedEnv(CountingEnv(), DTypeCastTransform(torch.int64, torch.float32))  # the action
    with pytest.raises(TransformError, match="not an output"):
        TransformedEnv(DoubleEnv(), DoubleToFloat(in_keys=["obs"]))
    with pytest.raises(TransformError, match="not an input"):
        TransformedEnv(DoubleEnv(), DoubleToFloat(in_keys=[], in_keys_inv=["goal"]))
    with pytest.raises(TransformError, match="dtype_in"):
        TransformedEnv(CountingEnv(), DoubleToFloat(in_keys=[], in_keys_inv=["action"]))


def test_state_dict_is_empty_and_clone_keeps_dtypes() -> None:
    t = DTypeCastTransform(F64, torch.float16)
    assert dict(t.state_dict()) == {}
    c = t.clone()
    assert isinstance(c, DTypeCastTransform)
    assert (c.dtype_in, c.dtype_out) == (F64, torch.float16)
