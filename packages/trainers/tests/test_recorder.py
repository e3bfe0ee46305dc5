"""The evaluation hook."""

from __future__ import annotations

import pytest
import torch

from rlbricks.envs.testing import CountingEnv
from rlbricks.modules import EGreedyModule
from rlbricks.modules import TensorDictSequential
from rlbricks.modules.recipes import dqn_model
from rlbricks.tensordict import TensorDict
from rlbricks.trainers import Recorder
from rlbricks.trainers import TrainerError


def greedy_policy() -> TensorDictSequential:
    torch.manual_seed(0)
    env = CountingEnv()
    actor = dqn_model(env, num_cells=(8,))
    return TensorDictSequential(actor, EGreedyModule(env.action_spec, eps_init=1.0, eps_end=1.0))


def test_evaluation_is_deterministic_despite_exploration() -> None:
    policy = greedy_policy()
    first = Recorder(CountingEnv(max_steps=20, batch_size=[3]), policy, max_steps=30)
    second = Recorder(CountingEnv(max_steps=20, batch_size=[3]), policy, max_steps=30)
    returns = {first.evaluate() for _ in range(3)} | {second.evaluate() for _ in range(3)}
    assert len(returns) == 1
    # the greedy action of the network, every step (reward = action), for the 20 steps
    env = CountingEnv(max_steps=20, batch_size=[3])
    td, total = env.reset(), torch.zeros(3)
    for _ in range(20):
        obs = td["observation"]
        q = policy[0](TensorDict({"observation": obs}, batch_size=[3]))["action_value"]
        action = q.argmax(-1, keepdim=True)
        total += action.squeeze(-1).float()
        td = TensorDict({"observation": obs + 1}, batch_size=[3])
    assert returns == {float(total.mean())}


def test_record_interval_and_state() -> None:
    def ones(td: TensorDict) -> TensorDict:
        td["action"] = torch.ones_like(td["observation"], dtype=torch.long)
        return td

    recorder = Recorder(CountingEnv(max_steps=4), ones, record_interval=2, name="ev")
    assert [recorder() for _ in range(4)] == [None, {"ev": 4.0}, None, {"ev": 4.0}]
    assert recorder.state_dict() == {"count": 4}
    recorder.load_state_dict({"count": 1})
    assert recorder() == {"ev": 4.0}


def test_policy_mode_is_restored() -> None:
    policy = greedy_policy()
    policy.train()
    Recorder(CountingEnv(), policy).evaluate()
    assert policy.training


class _StepsEnv(CountingEnv):
    """Sub-env i ends its episodes after i + 1 steps; reward 1 per step."""

    def __init__(self, width: int) -> None:
        super().__init__(max_steps=100, batch_size=[width])
        self.lengths = torch.arange(1, width + 1).unsqueeze(-1)

    def _step(self, tensordict: TensorDict) -> TensorDict:
        out = super()._step(tensordict)
        out["reward"] = torch.ones_like(out["reward"])
        out["terminated"] = out["observation"] >= self.lengths.to(out["observation"].dtype)
        return out


def test_episodes_are_dealt_round_robin_so_short_ones_are_not_favoured() -> None:
    def zeros(td: TensorDict) -> TensorDict:
        td["action"] = torch.zeros_like(td["observation"], dtype=torch.long)
        return td

    recorder = Recorder(_StepsEnv(3), zeros, max_steps=50)
    # episode k runs on sub-env k % 3, whose episodes last k % 3 + 1 steps
    assert recorder.evaluate_episodes(7) == [1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0]
    assert recorder.evaluate() == 2.0  # one episode per sub-env by default
    # episodes longer than max_steps are cut there
    assert Recorder(_StepsEnv(3), zeros, max_steps=2).evaluate_episodes(3) == [1.0, 2.0, 2.0]


def test_bad_episode_counts_raise() -> None:
    with pytest.raises(TrainerError, match="num_episodes"):
        Recorder(CountingEnv(), lambda td: td, num_episodes=0)
    with pytest.raises(TrainerError, match="max_steps"):
        Recorder(CountingEnv(), lambda td: td, max_steps=0)
