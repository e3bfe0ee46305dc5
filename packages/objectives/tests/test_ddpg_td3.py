"""DDPGLoss and TD3Loss: golden values, gradient isolation, target smoothing, a tiny task."""

from __future__ import annotations

from collections.abc import Iterator

import _tasks as tasks
import pytest
import torch
from torch import nn

from rlbricks.modules import Actor
from rlbricks.modules import ValueOperator
from rlbricks.modules.recipes import ddpg_models
from rlbricks.modules.recipes import td3_models
from rlbricks.objectives import DDPGLoss
from rlbricks.objectives import LossError
from rlbricks.objectives import SoftUpdate
from rlbricks.objectives import TD3Loss
from rlbricks.specs import Bounded
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict


@pytest.fixture
def one_thread() -> Iterator[None]:
    """The learning tests run torch on one thread (see ``_tasks.single_thread``)."""
    with tasks.single_thread():
        yield


class _CatLinear(nn.Module):
    """Q(s, a) = w . [s, a] (no bias)."""

    def __init__(self, weight: list[float]) -> None:
        super().__init__()
        self.linear = nn.Linear(len(weight), 1, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([weight]))

    def forward(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.cat([observation, action], -1))


def _critic(weight: list[float]) -> ValueOperator:
    return ValueOperator(_CatLinear(weight), in_keys=["observation", "action"])


def _actor(weight: list[float], spec: object = None) -> Actor:
    net = nn.Linear(len(weight), 1, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([weight]))
    return Actor(net, spec=spec)  # type: ignore[arg-type]


def _batch() -> TensorDict:
    return TensorDict(
        {
            "observation": torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
            "action": torch.tensor([[0.5], [-1.0]]),
            "next": {
                "observation": torch.tensor([[1.0, 1.0], [0.0, 0.0]]),
                "reward": torch.tensor([[1.0], [0.5]]),
                "done": torch.tensor([[False], [True]]),
                "terminated": torch.tensor([[False], [True]]),
            },
        },
        batch_size=[2],
    )


def _grads(module: nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in module.parameters()]


def _has_grad(module: nn.Module) -> bool:
    return all(g is not None for g in _grads(module)) and any(
        bool(g.abs().sum() > 0) for g in _grads(module) if g is not None
    )


def _no_grad(module: nn.Module) -> bool:
    return all(g is None for g in _grads(module))


# --------------------------------------------------------------------------- #
# DDPG
# --------------------------------------------------------------------------- #
def test_ddpg_golden_values_by_hand() -> None:
    # pi(s) = s0 + 2 s1; Q(s, a) = s0 + s1 + 2a
    loss = DDPGLoss(_actor([1.0, 2.0]), _critic([1.0, 1.0, 2.0]))
    loss.make_value_estimator(gamma=0.5)
    td = _batch()
    out = loss(td)
    # pred = [2, -1]; pi(s') = [3, 0]; Q(s', pi(s')) = [8, 0]; target = [1 + 4, 0.5] = [5, 0.5]
    torch.testing.assert_close(out["loss_value"], torch.tensor((9.0 + 2.25) / 2))
    torch.testing.assert_close(td["td_error"], torch.tensor([3.0, 1.5]))
    # actor: -Q(s, pi(s)) = -[1 + 2, 1 + 4]
    torch.testing.assert_close(out["loss_actor"], torch.tensor(-4.0))
    torch.testing.assert_close(out["pred_value"], torch.tensor(0.5))
    torch.testing.assert_close(out["target_value"], torch.tensor(2.75))
    assert set(td.keys()) == {"observation", "action", "next", "td_error"}
    torch.testing.assert_close(td["action"], torch.tensor([[0.5], [-1.0]]))


def test_ddpg_uses_target_networks() -> None:
    loss = DDPGLoss(_actor([1.0, 2.0]), _critic([1.0, 1.0, 2.0]), delay_actor=True)
    loss.make_value_estimator(gamma=0.5)
    with torch.no_grad():
        loss.target_actor_network.module.weight.copy_(
            torch.tensor([[0.0, 1.0]])
        )  # pi'(s') = [1, 0]
        loss.target_value_network.module.linear.weight.copy_(torch.tensor([[1.0, 0.0, 1.0]]))
    td = _batch()
    loss(td)
    # Q'(s', pi'(s')) = [1 + 1, 0] -> target = [1 + 1, 0.5]; pred = [2, -1]
    torch.testing.assert_close(td["td_error"], torch.tensor([0.0, 1.5]))


def test_ddpg_gradients_are_isolated() -> None:
    loss = DDPGLoss(_actor([1.0, 2.0]), _critic([1.0, 1.0, 2.0]), delay_actor=True)
    out = loss(_batch())
    out["loss_actor"].backward()
    assert _has_grad(loss.actor_network)
    assert _no_grad(loss.value_network)
    loss.zero_grad(set_to_none=True)
    out = loss(_batch())
    out["loss_value"].backward()
    assert _has_grad(loss.value_network)
    assert _no_grad(loss.actor_network)
    assert _no_grad(loss.target_actor_network)
    assert _no_grad(loss.target_value_network)


def test_ddpg_errors_and_keys() -> None:
    with pytest.raises(LossError, match="loss_function"):
        DDPGLoss(_actor([1.0, 2.0]), _critic([1.0, 1.0, 2.0]), loss_function="mse")
    loss = DDPGLoss(_actor([1.0, 2.0]), _critic([1.0, 1.0, 2.0]))
    loss.make_value_estimator(gamma=0.5)
    td = _batch()
    td["next", "scaled"] = td["next", "reward"] * 0
    loss.set_keys(reward=("next", "scaled"))
    loss(td)
    torch.testing.assert_close(td["td_error"], torch.tensor([2.0, 1.0]))  # targets [4, 0]


def test_ddpg_learns_continuous_bandit(one_thread: None) -> None:
    torch.manual_seed(0)
    task = tasks.ContinuousBandit(obs_dim=2, action_dim=1)
    actor, critic = ddpg_models(task.observation_spec, task.action_spec, num_cells=(64,))
    loss = DDPGLoss(actor, critic)
    loss.make_value_estimator(gamma=0.9)
    updater = SoftUpdate(loss, tau=0.1)
    optim = torch.optim.Adam(loss.parameters(), lr=5e-3)
    for _ in range(200):
        out = loss(tasks.transitions(task, 64))
        (out["loss_actor"] + out["loss_value"]).backward()
        optim.step()
        optim.zero_grad()
        updater.step()
    probe = task.reset(256)
    error = (loss.actor_network(probe)["action"] - task.best_action(probe["observation"])).abs()
    assert error.mean() < 0.1


# --------------------------------------------------------------------------- #
# TD3
# --------------------------------------------------------------------------- #
def test_td3_golden_values_by_hand() -> None:
    q1, q2 = _critic([1.0, 1.0, 2.0]), _critic([1.0, 1.0, 1.0])
    loss = TD3Loss(_actor([1.0, 2.0]), [q1, q2], policy_noise=0.0)
    loss.make_value_estimator(gamma=0.5)
    td = _batch()
    out = loss(td)
    # pi'(s') = [3, 0]; Q1' = [8, 0], Q2' = [5, 0] -> min [5, 0]; target = [3.5, 0.5]
    # pred1 = [2, -1], pred2 = [1.5, 0]
    torch.testing.assert_close(out["loss_qvalue"], torch.tensor((2.25 + 2.25) / 2 + (4 + 0.25) / 2))
    torch.testing.assert_close(td["td_error"], torch.tensor([1.75, 1.0]))
    torch.testing.assert_close(out["next_state_value"], torch.tensor(2.5))
    torch.testing.assert_close(out["loss_actor"], torch.tensor(-4.0))  # uses the first critic
    assert loss.qvalue_network[0] is q1
    assert loss.qvalue_network[1] is q2


def test_td3_gradients_are_isolated() -> None:
    loss = TD3Loss(_actor([1.0, 2.0]), _critic([1.0, 1.0, 2.0]))
    assert not torch.equal(
        loss.qvalue_network[0].module.linear.weight, loss.qvalue_network[1].module.linear.weight
    )  # the twin is re-initialised
    out = loss(_batch())
    out["loss_actor"].backward()
    assert _has_grad(loss.actor_network)
    assert _no_grad(loss.qvalue_network)
    loss.zero_grad(set_to_none=True)
    loss(_batch())["loss_qvalue"].backward()
    assert _has_grad(loss.qvalue_network[0])
    assert _has_grad(loss.qvalue_network[1])
    assert _no_grad(loss.actor_network)
    assert _no_grad(loss.target_actor_network)
    assert _no_grad(loss.target_qvalue_network)


def test_td3_target_smoothing_is_clipped_and_projected() -> None:
    torch.manual_seed(0)
    spec = Bounded(-1.0, 1.0, shape=(1,))
    loss = TD3Loss(
        _actor([1.0, 2.0], spec=spec), _critic([1.0, 1.0, 2.0]), policy_noise=1.0, noise_clip=0.3
    )
    base = torch.zeros(20000, 1)
    noise = loss.smoothed_target_action(base)
    assert noise.abs().max() <= 0.3 + 1e-6
    assert (noise.abs() > 0.2999).float().mean() > 0.6  # most N(0, 1) draws are clipped
    near_edge = loss.smoothed_target_action(torch.full((2000, 1), 0.95))
    assert near_edge.max() <= 1.0
    assert near_edge.min() >= 0.65
    assert (near_edge == 1.0).any()
    # explicit action_spec beats the actor's; an unbounded spec does not project
    wide = TD3Loss(
        _actor([1.0, 2.0], spec=spec),
        _critic([1.0, 1.0, 2.0]),
        action_spec=Unbounded(shape=(1,)),
        policy_noise=1.0,
        noise_clip=0.3,
    )
    assert wide.smoothed_target_action(torch.full((2000, 1), 0.95)).max() > 1.0
    small = TD3Loss(_actor([1.0, 2.0]), _critic([1.0, 1.0, 2.0]), policy_noise=0.2, noise_clip=10.0)
    torch.testing.assert_close(
        small.smoothed_target_action(base).std(), torch.tensor(0.2), atol=0.01, rtol=0
    )


def test_td3_smoothing_reaches_the_target() -> None:
    torch.manual_seed(0)
    loss = TD3Loss(
        _actor([1.0, 2.0]),
        [_critic([1.0, 1.0, 2.0]), _critic([1.0, 1.0, 2.0])],
        policy_noise=0.5,
        noise_clip=0.1,
    )
    loss.make_value_estimator(gamma=0.5)
    td = _batch()
    loss(td)
    # target = 1 + 0.5 * (2 + 2 (3 + noise)) with |noise| <= 0.1 -> td_error in 3 +- 0.1
    assert abs(float(td["td_error"][0]) - 3.0) <= 0.1 + 1e-6
    assert float(td["td_error"][1]) == pytest.approx(1.5)


def test_td3_errors() -> None:
    with pytest.raises(LossError, match="num_qvalue_nets=3"):
        TD3Loss(_actor([1.0, 2.0]), [_critic([1.0, 1.0, 1.0])] * 2, num_qvalue_nets=3)
    critic = _critic([1.0, 1.0, 1.0])
    with pytest.raises(LossError, match="distinct"):
        TD3Loss(_actor([1.0, 2.0]), [critic, critic])
    with pytest.raises(LossError, match=">= 0"):
        TD3Loss(_actor([1.0, 2.0]), critic, policy_noise=-1.0)
    with pytest.raises(LossError, match="num_qvalue_nets must be"):
        TD3Loss(_actor([1.0, 2.0]), critic, num_qvalue_nets=0)


def test_td3_learns_continuous_bandit(one_thread: None) -> None:
    torch.manual_seed(0)
    task = tasks.ContinuousBandit(obs_dim=2, action_dim=1)
    actor, critic = td3_models(task.observation_spec, task.action_spec, num_cells=(64,))
    loss = TD3Loss(actor, critic, policy_noise=0.1, noise_clip=0.2)
    loss.make_value_estimator(gamma=0.9)
    updater = SoftUpdate(loss, tau=0.1)
    optim = torch.optim.Adam(loss.parameters(), lr=5e-3)
    for step in range(200):
        out = loss(tasks.transitions(task, 64))
        total = out["loss_qvalue"] + (out["loss_actor"] if step % 2 == 0 else 0.0)
        total.backward()
        optim.step()
        optim.zero_grad()
        updater.step()
    probe = task.reset(256)
    error = (loss.actor_network(probe)["action"] - task.best_action(probe["observation"])).abs()
    assert error.mean() < 0.1
