"""Modules driving envs: recipes built from real env specs, recurrent policies in rollouts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rlbricks.envs import GymEnv
from rlbricks.envs.testing import CountingEnv
from rlbricks.modules import Actor
from rlbricks.modules import ExplorationType
from rlbricks.modules import LSTMModule
from rlbricks.modules import TensorDictSequential
from rlbricks.modules import set_exploration_type
from rlbricks.modules.recipes import dqn_model
from rlbricks.modules.recipes import ppo_models
from rlbricks.modules.recipes import sac_models
from rlbricks.tensordict import TensorDict

pytest.importorskip("gymnasium")


@pytest.mark.parametrize("num_envs", [None, 3])
def test_dqn_recipe_drives_cartpole(num_envs: int | None) -> None:
    env = GymEnv("CartPole-v1", num_envs=num_envs)
    try:
        actor = dqn_model(env)
        env.set_seed(0)
        with torch.no_grad():
            td = env.rollout(20, actor, break_when_any_done=False)
        assert td.batch_size == (*env.batch_size, 20)
        assert bool(env.action_spec.is_in(td["action"][..., 0, :]))
        chosen = td["action_value"].argmax(-1)
        assert torch.equal(td["action"].long().argmax(-1), chosen)
    finally:
        env.close()


def test_continuous_recipes_drive_pendulum() -> None:
    env = GymEnv("Pendulum-v1")
    try:
        ppo_actor, critic = ppo_models(env)
        sac_actor, qvalue = sac_models(env)
        for actor in (ppo_actor, sac_actor):
            with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
                td = env.rollout(10, actor)
            assert bool((td["action"].abs() <= 2.0).all())
        with torch.no_grad():
            assert critic(td)["state_value"].shape == (10, 1)
            assert qvalue(td)["state_action_value"].shape == (10, 1)
    finally:
        env.close()


def test_lstm_memory_survives_env_steps_in_a_rollout() -> None:
    torch.manual_seed(0)
    env = CountingEnv(max_steps=6, batch_size=[2])
    lstm = LSTMModule(input_size=1, hidden_size=4, in_key="observation", out_key="embed")
    network = TensorDictSequential(
        lstm, Actor(nn.Linear(4, 2), in_keys=["embed"], out_keys=["logits"])
    )

    def policy(td: TensorDict) -> TensorDict:
        return env.rand_action(network(td))

    with torch.no_grad():
        td = env.rollout(4, policy, break_when_any_done=False)
    # the state written to ("next", ...) by the LSTM reaches the root of the next step
    assert torch.equal(td["recurrent_state_h"][:, 1:], td["next", "recurrent_state_h"][:, :-1])
    assert bool(td["recurrent_state_h"][:, 1:].abs().sum() > 0)
    # and the same steps replayed in sequence mode give the same outputs
    sequence = TensorDictSequential(lstm.set_recurrent_mode(True))
    replay = TensorDict(
        {
            "observation": td["observation"],
            "recurrent_state_h": td["recurrent_state_h"],
            "recurrent_state_c": td["recurrent_state_c"],
            "is_init": torch.zeros(2, 4, 1, dtype=torch.bool),
        },
        batch_size=[2, 4],
    )
    with torch.no_grad():
        sequence(replay)
    torch.testing.assert_close(replay["embed"], td["embed"])
