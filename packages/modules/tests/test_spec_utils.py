"""fit_spec / project: environment-batched specs applied to values with other leading dims."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rlbricks.modules import Actor
from rlbricks.modules import AdditiveGaussianModule
from rlbricks.modules import EGreedyModule
from rlbricks.modules import ModuleError
from rlbricks.modules._spec_utils import fit_spec
from rlbricks.modules._spec_utils import project
from rlbricks.specs import Binary
from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import MultiCategorical
from rlbricks.specs import OneHot
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict


def test_matching_values_keep_the_spec_itself():
    spec = Bounded(-1.0, 1.0, shape=(4, 2))
    assert fit_spec(spec, torch.Size([4, 2]), "t") is spec
    assert fit_spec(spec, torch.Size([7, 4, 2]), "t") is spec


@pytest.mark.parametrize(
    ("batched", "single"),
    [
        (Bounded(-1.0, 2.0, shape=(4, 2)), Bounded(-1.0, 2.0, shape=(2,))),
        (Unbounded(shape=(4, 3), dtype=torch.float64), Unbounded(shape=(3,), dtype=torch.float64)),
        (Categorical(5, shape=(4, 1)), Categorical(5, shape=(1,))),
        (OneHot(3, shape=(4, 3)), OneHot(3)),
        (Binary(shape=(4, 2)), Binary(2)),
        (
            Categorical(3, shape=(4,), mask=torch.tensor([True, False, True])),
            Categorical(3, mask=torch.tensor([True, False, True])),
        ),
    ],
)
def test_environment_dims_are_dropped(batched, single):
    fitted = fit_spec(batched, torch.Size([256, *single.shape]), "t")
    assert fitted == single


def test_project_with_per_dim_bounds():
    low, high = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.5])
    spec = Bounded(low.expand(3, 2), high.expand(3, 2))
    value = torch.randn(3, 10, 2) * 4  # trajectories of 3 envs: [n_envs, T, 2]
    torch.testing.assert_close(project(spec, value, "t"), torch.clamp(value, low, high))


def test_different_environments_cannot_be_merged():
    spec = Bounded(torch.tensor([[-1.0], [-2.0]]), torch.tensor([[1.0], [2.0]]))
    with pytest.raises(ModuleError, match="bounds differ between its leading"):
        fit_spec(spec, torch.Size([8, 1]), "Actor")
    masked = Categorical(
        3, shape=(2,), mask=torch.tensor([[True, False, True], [True, True, True]])
    )
    with pytest.raises(ModuleError, match="masks differ"):
        fit_spec(masked, torch.Size([5]), "EGreedyModule")


def test_unsupported_spec_class_raises():
    spec = MultiCategorical([2, 3]).expand(4, 2)
    with pytest.raises(ModuleError, match="MultiCategorical spec of shape \\(4, 2\\) does not fit"):
        fit_spec(spec, torch.Size([9, 2]), "t")


def test_safe_actor_with_a_batched_env_spec_on_replay_samples():
    torch.manual_seed(0)
    spec = Bounded(-0.5, 0.5, shape=(8, 2))  # 8 envs
    net = nn.Linear(3, 2)
    actor = Actor(net, spec=spec, safe=True)
    obs = torch.randn(64, 3) * 5  # a replay batch of 64
    action = actor(TensorDict({"observation": obs}, [64]))["action"]
    torch.testing.assert_close(action, net(obs).clamp(-0.5, 0.5))


def test_exploration_modules_with_a_batched_env_spec_on_other_batches():
    torch.manual_seed(0)
    explore = EGreedyModule(Categorical(4, shape=(8, 1)), eps_init=1.0)
    td = explore(TensorDict({"action": torch.zeros(1, 1, dtype=torch.long)}, [1]))  # 1 eval env
    assert Categorical(4, shape=(1,)).is_in(td["action"][0])
    noise = AdditiveGaussianModule(Bounded(-1.0, 1.0, shape=(8, 2)), sigma_init=10.0)
    out = noise(TensorDict({"action": torch.zeros(5, 3, 2)}, [5, 3]))["action"]
    assert bool(out.abs().max() <= 1.0)
