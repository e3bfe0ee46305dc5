"""RenameTransform, ExcludeTransform, SelectTransform, CatTensors."""

from __future__ import annotations

import pytest
import torch

from rlbricks.envs import SerialEnv
from rlbricks.envs import check_env_specs
from rlbricks.envs.testing import ContinuousActionEnv
from rlbricks.envs.testing import CountingEnv
from rlbricks.envs.testing import NestedSpecEnv
from rlbricks.specs import Bounded
from rlbricks.specs import Composite
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict
from rlbricks.transforms import CatTensors
from rlbricks.transforms import Compose
from rlbricks.transforms import EnvSpecs
from rlbricks.transforms import ExcludeTransform
from rlbricks.transforms import RenameTransform
from rlbricks.transforms import SelectTransform
from rlbricks.transforms import TransformedEnv
from rlbricks.transforms import TransformError


def leaves(td: TensorDict) -> list[str]:
    return sorted(map(str, td.keys(include_nested=True, leaves_only=True)))


def sample() -> TensorDict:
    return TensorDict(
        {
            "a": torch.zeros(2, 1),
            "b": torch.ones(2, 3),
            "action": torch.zeros(2, 1),
            "done": torch.zeros(2, 1, dtype=torch.bool),
            "next": {
                "a": torch.full((2, 1), 2.0),
                "b": torch.full((2, 3), 3.0),
                "reward": torch.ones(2, 1),
                "done": torch.zeros(2, 1, dtype=torch.bool),
            },
        },
        batch_size=[2],
    )


# ---------------------------------------------------------------------------- #
# RenameTransform
# ---------------------------------------------------------------------------- #
def test_rename_plain_and_copy() -> None:
    out = RenameTransform(["a", "b"], ["x", ("nested", "y")])(sample())
    assert leaves(out) == sorted(
        ["x", "('nested', 'y')", "action", "done"]
        + ["('next', 'x')", "('next', 'nested', 'y')", "('next', 'reward')", "('next', 'done')"]
    )
    assert out["next", "nested", "y"][0].tolist() == [3.0, 3.0, 3.0]
    copied = RenameTransform("a", "x", create_copy=True)(sample())
    assert torch.equal(copied["a"], copied["x"])
    assert "create_copy=True" in repr(RenameTransform("a", "x", create_copy=True))


def test_rename_on_env() -> None:
    env = TransformedEnv(
        NestedSpecEnv(batch_size=[2]), RenameTransform(("data", "states"), "states")
    )
    check_env_specs(env)
    assert leaves(env.reset()) == sorted(
        ["states", "('data', 'step')", "done", "terminated", "truncated"]
    )
    assert env.rollout(2)["next", "states"].shape == (2, 2, 3)


def test_rename_errors() -> None:
    with pytest.raises(TransformError, match="cannot be renamed"):
        RenameTransform("reward", "r")
    with pytest.raises(TransformError, match="action"):
        RenameTransform([], [], in_keys_inv=["action"], out_keys_inv=["act"])
    with pytest.raises(ValueError, match="new names"):
        RenameTransform("a", None)
    with pytest.raises(TransformError, match="not an output"):
        TransformedEnv(CountingEnv(), RenameTransform("obs", "o"))
    with pytest.raises(TransformError, match="not a state input"):
        TransformedEnv(
            CountingEnv(), RenameTransform([], [], in_keys_inv=["goal"], out_keys_inv=["g"])
        )


def test_rename_inverse_on_plain_data() -> None:
    t = RenameTransform([], [], in_keys_inv=["goal"], out_keys_inv=["target"])
    td = TensorDict({"target": torch.ones(1)})
    out = t.inv(td)
    assert list(out.keys()) == ["goal"]
    assert list(td.keys()) == ["target"]


# ---------------------------------------------------------------------------- #
# ExcludeTransform / SelectTransform
# ---------------------------------------------------------------------------- #
def test_exclude_plain() -> None:
    out = ExcludeTransform("b", "missing")(sample())
    assert leaves(out) == sorted(
        ["a", "action", "done", "('next', 'a')", "('next', 'reward')", "('next', 'done')"]
    )


def test_exclude_on_env_and_errors() -> None:
    env = TransformedEnv(NestedSpecEnv(), ExcludeTransform(("data", "step")))
    check_env_specs(env)
    assert "step" not in env.rollout(2)["next", "data"].keys()
    with pytest.raises(TransformError, match="cannot be excluded"):
        ExcludeTransform("done")
    with pytest.raises(TransformError, match="not an output"):
        TransformedEnv(CountingEnv(), ExcludeTransform("pixels"))


def test_select_plain() -> None:
    out = SelectTransform("a")(sample())
    assert leaves(out) == sorted(
        ["a", "done", "('next', 'a')", "('next', 'reward')", "('next', 'done')"]
    )


def test_select_on_env_and_errors() -> None:
    env = TransformedEnv(
        NestedSpecEnv(batch_size=[2]), SelectTransform(("data", "states"), "reward")
    )
    check_env_specs(env)
    assert env.observation_spec.keys(include_nested=True, leaves_only=True) == [("data", "states")]
    with pytest.raises(TransformError, match="not an output"):
        TransformedEnv(CountingEnv(), SelectTransform("pixels"))
    assert "selected_keys" in repr(SelectTransform("a"))


# ---------------------------------------------------------------------------- #
# CatTensors
# ---------------------------------------------------------------------------- #
def test_cat_plain_golden_and_keep_keys() -> None:
    out = CatTensors(["b", "a"], "obs")(sample())
    assert out["obs"][0].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert out["next", "obs"][0].tolist() == [3.0, 3.0, 3.0, 2.0]
    assert "a" not in out.keys()
    assert "b" not in out.keys()
    kept = CatTensors(["a", "b"], "obs", del_keys=False)(sample())
    assert "a" in kept.keys()
    assert kept["obs"].shape == (2, 4)


def test_cat_on_other_dims() -> None:
    td = TensorDict({"x": torch.zeros(5, 2, 3), "y": torch.ones(5, 1, 3)}, batch_size=[5])
    out = CatTensors(["x", "y"], "z", dim=-2)(td)
    assert out["z"].shape == (5, 3, 3)
    assert out["z"][0, 2].tolist() == [1.0, 1.0, 1.0]


def test_cat_on_env_specs() -> None:
    env = TransformedEnv(
        NestedSpecEnv(batch_size=[3]), CatTensors([("data", "step"), ("data", "states")], "obs")
    )
    check_env_specs(env)
    assert isinstance(env.observation_spec["obs"], Unbounded)
    td = env.rollout(2)
    assert td["next", "obs"][0, 1].tolist() == [2.0, 2.0, 2.0, 2.0]
    # Bounded entries give Bounded bounds, concatenated
    specs = EnvSpecs.from_env(CountingEnv())
    specs.observation = Composite(p=Bounded(0.0, 1.0, shape=(2,)), q=Bounded(-1.0, 5.0, shape=(1,)))
    out = CatTensors(["p", "q"], "pq").transform_env_specs(specs).observation["pq"]
    assert isinstance(out, Bounded)
    assert out.low.tolist() == [0.0, 0.0, -1.0]
    assert out.high.tolist() == [1.0, 1.0, 5.0]


def test_cat_errors() -> None:
    with pytest.raises(ValueError, match="negative"):
        CatTensors(["a", "b"], "c", dim=0)
    with pytest.raises(ValueError, match="in_keys"):
        CatTensors([], "c")
    with pytest.raises(KeyError, match="missing"):
        CatTensors(["a", "zzz"], "c")(sample())
    td = TensorDict({"x": torch.zeros(2)})
    assert CatTensors(["p", "q"], "c")(td) is td  # none present: nothing to do
    specs = EnvSpecs.from_env(CountingEnv())
    specs.observation["n"] = Unbounded(shape=(1,), dtype=torch.int64)
    with pytest.raises(TransformError, match="different dtypes"):
        CatTensors(["observation", "n"], "c").transform_env_specs(specs)
    with pytest.raises(TransformError, match="not an output"):
        TransformedEnv(CountingEnv(), CatTensors(["observation", "velocity"], "c"))
    specs = EnvSpecs.from_env(ContinuousActionEnv())
    specs.observation["m"] = Unbounded(shape=(3, 3))
    with pytest.raises(TransformError, match="cannot concatenate"):
        CatTensors(["observation", "m"], "c").transform_env_specs(specs)


def test_key_transforms_compose_on_batched_env() -> None:
    env = TransformedEnv(
        SerialEnv(2, NestedSpecEnv),
        Compose(
            CatTensors([("data", "states"), ("data", "step")], "obs"),
            RenameTransform("obs", "observation"),
            ExcludeTransform("data"),
        ),
    )
    check_env_specs(env)
    assert env.observation_spec.keys() == ["observation"]


@pytest.mark.parametrize(
    ("shapes", "dim"),
    [([(2, 3), (2, 4)], -1), ([(2, 3), (5, 3)], 0), ([(1, 2, 3)] * 3, 1), ([(4,), (0,)], -1)],
)
def test_cat_shape_is_the_shape_torch_cat_gives(shapes: list[tuple[int, ...]], dim: int) -> None:
    from rlbricks.transforms._keys import _cat_shape

    expected = torch.cat([torch.zeros(s) for s in shapes], dim=dim).shape
    assert _cat_shape([torch.Size(s) for s in shapes], dim) == expected


def test_cat_shape_rejects_what_torch_cat_rejects() -> None:
    from rlbricks.transforms._keys import _cat_shape

    assert _cat_shape([torch.Size((2, 3)), torch.Size((3, 3))], -1) is None
    assert _cat_shape([torch.Size((2, 3)), torch.Size((2, 3, 1))], -1) is None
    assert _cat_shape([torch.Size((2, 3))], 2) is None
