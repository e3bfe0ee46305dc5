"""Integration: specs produce and check TensorDicts; TensorDict ops keep them in spec."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
import torch

from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import OneHot
from rlbricks.specs import SpecError
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import assert_close


def transition_spec(batch: tuple[int, ...] = (4,)) -> Composite:
    """A spec shaped like one environment step (DESIGN.md §3 keys)."""
    return Composite(
        observation=Bounded(low=-1.0, high=1.0, shape=(*batch, 3)),
        action=OneHot(2, shape=(*batch, 2)),
        next=Composite(
            observation=Bounded(low=-1.0, high=1.0, shape=(*batch, 3)),
            reward=Unbounded(shape=(*batch, 1)),
            done=Categorical(2, shape=(*batch, 1), dtype=torch.bool),
            shape=batch,
        ),
        shape=batch,
    )


def test_meta_package_pins_every_leaf() -> None:
    requires = importlib.metadata.requires("rlbricks") or []
    names = {r.split(">")[0].split("=")[0].split("<")[0].strip() for r in requires}
    assert {"rlbricks-tensordict", "rlbricks-specs"} <= names


def test_rand_is_a_tensordict_in_spec() -> None:
    spec = transition_spec()
    td = spec.rand()
    assert isinstance(td, TensorDict)
    assert td.batch_size == torch.Size([4])
    assert td["next", "reward"].shape == (4, 1)
    assert spec.is_in(td)


def test_rand_with_extra_batch_dims() -> None:
    spec = transition_spec()
    td = spec.rand((5,))
    assert td.batch_size == torch.Size([5, 4])
    assert spec.expand(5, 4).is_in(td)


def test_indexing_and_stacking_stay_in_spec() -> None:
    spec = transition_spec(())
    steps = [spec.rand() for _ in range(6)]
    traj = torch.stack(steps, 0)
    assert traj.batch_size == torch.Size([6])
    stacked_spec = spec.expand(6)
    assert stacked_spec.is_in(traj)
    for i, step in enumerate(traj.unbind(0)):
        assert_close(step, steps[i])
        assert spec.is_in(step)


def test_assert_is_in_names_nested_key_after_td_edit() -> None:
    spec = transition_spec()
    td = spec.rand()
    td["next", "observation"][0, 0] = 5.0
    with pytest.raises(SpecError, match="observation"):
        spec.assert_is_in(td)
    fixed = spec.project(td)
    assert spec.is_in(fixed)


def test_memmap_round_trip_of_spec_sample(tmp_path: Path) -> None:
    spec = transition_spec()
    td = spec.rand()
    saved = td.memmap(tmp_path / "td")
    loaded = TensorDict.load_memmap(tmp_path / "td")
    assert_close(loaded, td)
    assert spec.is_in(loaded)
    assert saved.is_memmap()


def test_update_from_env_like_dict_stays_in_spec() -> None:
    spec = transition_spec()
    td = spec.rand()
    td.update({"next": {"reward": torch.ones(4, 1)}})
    assert (td["next", "reward"] == 1).all()
    assert spec.is_in(td)


def test_state_dict_round_trip_through_torch_save(tmp_path: Path) -> None:
    td = transition_spec().rand()
    path = tmp_path / "state.pt"
    torch.save(td.state_dict(), path)
    restored = TensorDict().load_state_dict(torch.load(path, weights_only=True))
    assert_close(restored, td)
