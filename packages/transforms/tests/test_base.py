"""Transform: keys, the plain-TensorDict path, inverses, reset masks, cloning, parents."""

from __future__ import annotations

import pickle

import pytest
import torch

from rlbricks.envs.testing import CountingEnv
from rlbricks.specs import Composite
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict
from rlbricks.transforms import Compose
from rlbricks.transforms import EnvSpecs
from rlbricks.transforms import Transform
from rlbricks.transforms import TransformedEnv


class AddOne(Transform):
    """Adds 1 to its entries; the inverse subtracts 1."""

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return value + 1

    def _inv_apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return value - 1


def test_keys_are_normalised_and_out_keys_default_to_in_keys() -> None:
    t = AddOne(in_keys="a", in_keys_inv=[("x", ("y",))])
    assert t.in_keys == ["a"]
    assert t.out_keys == ["a"]
    assert t.in_keys_inv == [("x", "y")]
    assert t.out_keys_inv == [("x", "y")]
    assert "in_keys=['a']" in repr(t)


def test_mismatched_key_lengths_raise() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        AddOne(in_keys=["a", "b"], out_keys=["c"])
    with pytest.raises(ValueError, match="out_key_inv per in_key_inv"):
        AddOne(in_keys_inv=["a"], out_keys_inv=["b", "c"])


def test_forward_transforms_root_and_next_and_skips_missing_keys() -> None:
    td = TensorDict(
        {"a": torch.zeros(3, 1), "next": {"a": torch.ones(3, 1), "r": torch.ones(3, 1)}},
        batch_size=[3],
    )
    out = AddOne(in_keys=["a", "missing"], out_keys=["b", "missing2"])(td)
    assert out is td
    assert torch.equal(out["b"], torch.ones(3, 1))
    assert torch.equal(out["next", "b"], torch.full((3, 1), 2.0))
    assert torch.equal(out["a"], torch.zeros(3, 1))  # a new key: the input stays
    assert "missing2" not in out.keys()


def test_apply_transform_must_be_overridden() -> None:
    with pytest.raises(NotImplementedError, match="_apply_transform"):
        Transform(in_keys=["a"])(TensorDict({"a": torch.zeros(1)}))


def test_inverse_works_on_a_copy_and_is_skipped_without_inverse_keys() -> None:
    td = TensorDict({"action": torch.ones(2)})
    t = AddOne(in_keys_inv=["action"])
    out = t.inv(td)
    assert out is not td
    assert torch.equal(out["action"], torch.zeros(2))
    assert torch.equal(td["action"], torch.ones(2))
    assert AddOne(in_keys=["a"]).inv(td) is td


def test_inverse_renames_user_key_to_env_key() -> None:
    t = AddOne(in_keys_inv=["action"], out_keys_inv=["my_action"])
    out = t.inv(TensorDict({"my_action": torch.ones(2)}))
    assert torch.equal(out["action"], torch.zeros(2))


def test_inverse_without_override_raises() -> None:
    class NoInverse(Transform):
        pass

    with pytest.raises(NotImplementedError, match="_inv_apply_transform"):
        NoInverse(in_keys_inv=["action"]).inv(TensorDict({"action": torch.ones(1)}))


def test_reset_mask_shapes() -> None:
    td = TensorDict({"_reset": torch.tensor([[True], [False], [True]])}, batch_size=[3])
    mask = Transform.reset_mask(td, torch.Size([3]))
    assert mask is not None
    assert mask.shape == (3, 1)
    assert mask.squeeze(-1).tolist() == [True, False, True]
    flat = TensorDict({"_reset": torch.tensor([True, False])}, batch_size=[2])
    assert Transform.reset_mask(flat, torch.Size([2])).shape == (2, 1)  # type: ignore[union-attr]
    assert Transform.reset_mask(TensorDict({}), torch.Size([])) is None
    assert Transform.reset_mask(None, torch.Size([3])) is None


def test_default_spec_hooks_are_identity() -> None:
    specs = EnvSpecs.from_env(CountingEnv(batch_size=[2]))
    before = specs.observation.clone()
    out = AddOne(in_keys=["observation"]).transform_env_specs(specs)
    assert out.observation == before
    assert out.batch_size == torch.Size([2])


def test_clone_is_detached_and_independent() -> None:
    env = TransformedEnv(CountingEnv(), AddOne(in_keys=["observation"]))
    t = env.transform[0]
    assert t.container is env.transform
    c = t.clone()
    assert c.container is None
    assert c.parent is None
    assert c is not t
    assert c.in_keys == t.in_keys
    c.in_keys.append("other")
    assert t.in_keys == ["observation"]


def test_pickle_drops_the_attachment() -> None:
    env = TransformedEnv(CountingEnv(), Compose(AddOne(in_keys=["observation"])))
    copy = pickle.loads(pickle.dumps(env.transform))
    assert copy.container is None
    assert copy[0].container is copy  # the copy's children belong to the copy


def test_parent_is_the_env_before_the_transform() -> None:
    first, second = AddOne(in_keys=["observation"]), AddOne(in_keys=["observation"])
    base = CountingEnv(max_steps=3)
    env = TransformedEnv(base, Compose(first, second))
    assert first.parent is base
    parent = second.parent
    assert isinstance(parent, TransformedEnv)
    assert parent.base_env is base
    assert parent.transform[0] is first
    assert first.container is env.transform  # the view did not adopt the transform
    assert second.parent is parent  # cached
    # the parent's outputs stop before the transform: obs + 1, env's obs + 2
    assert parent.reset()["observation"].item() == 1.0
    assert env.reset()["observation"].item() == 2.0
    parent.close()
    assert not base.is_closed  # a view never closes the shared base env


def test_parent_cache_follows_insertions() -> None:
    a, b = AddOne(in_keys=["observation"]), AddOne(in_keys=["observation"])
    env = TransformedEnv(CountingEnv(), Compose(b))
    assert b.parent is env.base_env
    env.insert_transform(0, a)
    parent = b.parent
    assert isinstance(parent, TransformedEnv)
    assert parent.transform[0] is a


def test_transform_without_container_has_no_parent() -> None:
    assert AddOne(in_keys=["a"]).parent is None


def test_buffers_follow_to_and_state_dict() -> None:
    class Shift(Transform):
        def __init__(self) -> None:
            super().__init__(in_keys=["a"])
            self.register_buffer("shift", torch.tensor(3.0))

        def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
            return value + self.shift

    t = Shift()
    other = Shift()
    other.shift.fill_(5.0)
    t.load_state_dict(other.state_dict())
    assert t(TensorDict({"a": torch.zeros(1)}))["a"].item() == 5.0
    assert t.clone().shift.item() == 5.0


def test_spec_hooks_receive_composites() -> None:
    class AddEntry(Transform):
        def transform_observation_spec(self, observation_spec: Composite) -> Composite:
            observation_spec["extra"] = Unbounded(shape=(*observation_spec.shape, 2))
            return observation_spec

        def _call(self, tensordict: TensorDict) -> TensorDict:
            return tensordict.set("extra", torch.zeros(*tensordict.batch_size, 2))

    env = TransformedEnv(CountingEnv(batch_size=[3]), AddEntry())
    assert env.observation_spec["extra"].shape == (3, 2)
    assert env.rollout(2)["next", "extra"].shape == (3, 2, 2)
