"""A2CLoss and ReinforceLoss: golden values, baselines and target critics, gradients, bandits."""

from __future__ import annotations

import math
from collections.abc import Iterator

import _tasks as tasks
import pytest
import torch
from torch import nn

from rlbricks.modules import Categorical
from rlbricks.modules import ProbabilisticActor
from rlbricks.modules import TensorDictModule
from rlbricks.modules import ValueOperator
from rlbricks.modules.recipes import ppo_models
from rlbricks.objectives import A2CLoss
from rlbricks.objectives import LossKeyError
from rlbricks.objectives import ReinforceLoss
from rlbricks.objectives import SoftUpdate
from rlbricks.specs import Categorical as CategoricalSpec
from rlbricks.specs import Composite
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Learning tests run single-threaded: tiny networks are slower with thread contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


LOGITS = [0.0, math.log(2.0), math.log(3.0)]  # probabilities 1/6, 2/6, 3/6
PROBS = [1 / 6, 2 / 6, 3 / 6]


def _bias_actor(n_obs: int = 1) -> ProbabilisticActor:
    net = nn.Linear(n_obs, 3)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.copy_(torch.tensor(LOGITS))
    module = TensorDictModule(net, ["observation"], ["logits"])
    return ProbabilisticActor(module, ["logits"], distribution_class=Categorical)


def _fixed_critic(weight: float, bias: float) -> ValueOperator:
    net = nn.Linear(1, 1)
    with torch.no_grad():
        net.weight.fill_(weight)
        net.bias.fill_(bias)
    return ValueOperator(net)


ACTIONS = [0, 1, 2, 2]
ADVANTAGES = [1.0, -2.0, 0.5, 3.0]
OBSERVATIONS = [0.0, 1.0, 2.0, -1.0]
TARGETS = [0.5, 4.0, 1.0, -1.0]


def _batch() -> TensorDict:
    return TensorDict(
        {
            "observation": torch.tensor(OBSERVATIONS).unsqueeze(-1),
            "action": torch.tensor(ACTIONS),
            "advantage": torch.tensor(ADVANTAGES).unsqueeze(-1),
            "value_target": torch.tensor(TARGETS).unsqueeze(-1),
        },
        [4],
    )


def _huber(d: float) -> float:
    return 0.5 * d * d if abs(d) < 1 else abs(d) - 0.5


# --------------------------------------------------------------------------- #
# A2C
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("kind", ["l2", "smooth_l1"])
def test_a2c_golden(kind: str) -> None:
    critic = _fixed_critic(2.0, 0.5)  # V(x) = 2x + 0.5
    loss = A2CLoss(_bias_actor(), critic, entropy_coef=0.1, critic_coef=0.5, loss_critic_type=kind)
    out = loss(_batch())
    objective = -sum(math.log(PROBS[a]) * adv for a, adv in zip(ACTIONS, ADVANTAGES)) / 4
    assert out["loss_objective"].item() == pytest.approx(objective, rel=1e-5)
    entropy = -sum(p * math.log(p) for p in PROBS)
    assert out["entropy"].item() == pytest.approx(entropy, rel=1e-5)
    assert out["loss_entropy"].item() == pytest.approx(-0.1 * entropy, rel=1e-5)
    dist = (lambda d: d * d) if kind == "l2" else _huber
    values = [2 * x + 0.5 for x in OBSERVATIONS]
    critic_loss = 0.5 * sum(dist(v - t) for v, t in zip(values, TARGETS)) / 4
    assert out["loss_critic"].item() == pytest.approx(critic_loss, rel=1e-5)


def test_a2c_without_entropy_and_critic() -> None:
    out = A2CLoss(_bias_actor(), entropy_bonus=False)(_batch())
    assert set(out.keys()) == {"loss_objective"}


def test_a2c_missing_action_is_reported() -> None:
    with pytest.raises(LossKeyError, match="'action'"):
        A2CLoss(_bias_actor())(_batch().exclude("action"))


def _moved(loss_value: torch.Tensor, parts: dict[str, nn.Module]) -> dict[str, bool]:
    for part in parts.values():
        part.zero_grad(set_to_none=True)
    loss_value.backward(retain_graph=True)
    return {
        name: any(p.grad is not None and bool(p.grad.abs().gt(0).any()) for p in part.parameters())
        for name, part in parts.items()
    }


def _trajectories(actor: nn.Module, n: int = 3, t: int = 5, obs_dim: int = 3) -> TensorDict:
    torch.manual_seed(1)
    with torch.no_grad():
        batch = actor(TensorDict({"observation": torch.randn(n, t, obs_dim)}, [n, t]))
    done = torch.zeros(n, t, 1, dtype=torch.bool)
    done[0, 2] = True
    batch["next"] = {
        "observation": torch.randn(n, t, obs_dim),
        "reward": torch.randn(n, t, 1),
        "done": done,
        "terminated": done.clone(),
    }
    return batch


def test_a2c_gradients_separate_networks() -> None:
    obs = Composite(observation=Unbounded(shape=(3,)))
    actor, critic = ppo_models(obs, CategoricalSpec(4), num_cells=(8,))
    out = A2CLoss(actor, critic)(_trajectories(actor))
    parts = {"actor": actor, "critic": critic}
    assert _moved(out["loss_objective"], parts) == {"actor": True, "critic": False}
    assert _moved(out["loss_entropy"], parts) == {"actor": True, "critic": False}
    assert _moved(out["loss_critic"], parts) == {"actor": False, "critic": True}


def test_a2c_gradients_shared_trunk() -> None:
    obs = Composite(observation=Unbounded(shape=(3,)))
    agent = ppo_models(obs, CategoricalSpec(4), shared_trunk=True, num_cells=(8,))
    loss = A2CLoss(agent.get_policy_operator(), agent.get_value_operator())
    out = loss(_trajectories(agent.get_policy_operator()))
    parts = {"trunk": agent[0], "policy": agent.get_policy_head(), "value": agent.get_value_head()}
    assert _moved(out["loss_objective"], parts) == {"trunk": True, "policy": True, "value": False}
    assert _moved(out["loss_critic"], parts) == {"trunk": True, "policy": False, "value": True}


# --------------------------------------------------------------------------- #
# REINFORCE
# --------------------------------------------------------------------------- #
def _returns(
    reward: torch.Tensor,
    done: torch.Tensor,
    terminated: torch.Tensor,
    next_value: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """Discounted return-to-go by a plain loop; bootstraps on V(s') where a trajectory stops."""
    n, t = reward.shape[:2]
    out = torch.zeros(n, t, 1, dtype=torch.float64)
    for i in range(n):
        running = 0.0
        for j in reversed(range(t)):
            r = float(reward[i, j])
            stop = bool(done[i, j]) or j == t - 1
            if stop:
                bootstrap = 0.0 if bool(terminated[i, j]) else float(next_value[i, j])
                running = r + gamma * bootstrap
            else:
                running = r + gamma * running
            out[i, j] = running
    return out


def _chain_data(n: int = 4, t: int = 9) -> TensorDict:
    """Chain trajectories with terminations and truncations (random actions)."""
    task = tasks.Chain(n_states=4, max_steps=3, one_hot=False, seed=3)
    torch.manual_seed(3)
    data = tasks.rollout(task, None, n, t)
    assert bool(data["next", "terminated"].any())
    assert bool((data["next", "done"] & ~data["next", "terminated"]).any())  # truncations
    return data


def _chain_actor() -> ProbabilisticActor:
    torch.manual_seed(0)
    module = TensorDictModule(nn.Linear(4, 2), ["observation"], ["logits"])
    return ProbabilisticActor(module, ["logits"], distribution_class=Categorical)


def test_reinforce_without_baseline_golden() -> None:
    actor = _chain_actor()
    data = _chain_data()
    loss = ReinforceLoss(actor).make_value_estimator(gamma=0.9)
    out = loss(data)
    nxt = data["next"]
    zeros = torch.zeros_like(nxt["reward"])
    returns = _returns(nxt["reward"], nxt["done"], nxt["terminated"], zeros, 0.9)
    with torch.no_grad():
        log_prob = actor.get_dist(data.copy()).log_prob(data["action"]).double()
    expected = -(log_prob.unsqueeze(-1) * returns).mean()
    assert out["loss_objective"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert set(out.keys()) == {"loss_objective"}


def test_reinforce_with_baseline_golden() -> None:
    actor = _chain_actor()
    critic = ValueOperator(nn.Linear(4, 1))
    data = _chain_data()
    loss = ReinforceLoss(actor, critic, loss_critic_type="l2").make_value_estimator(gamma=0.8)
    out = loss(data)
    nxt = data["next"]
    with torch.no_grad():
        value = critic(data.copy())["state_value"].double()
        next_value = critic(nxt.copy())["state_value"].double()
        log_prob = actor.get_dist(data.copy()).log_prob(data["action"]).double()
    returns = _returns(nxt["reward"], nxt["done"], nxt["terminated"], next_value, 0.8)
    expected = -(log_prob.unsqueeze(-1) * (returns - value)).mean()
    assert out["loss_objective"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert out["loss_critic"].item() == pytest.approx(
        ((value - returns) ** 2).mean().item(), rel=1e-5
    )


def test_reinforce_delay_value_uses_the_target_critic() -> None:
    actor = _chain_actor()
    critic = ValueOperator(nn.Linear(4, 1))
    data = _chain_data()
    loss = ReinforceLoss(actor, critic, delay_value=True, loss_critic_type="l2")
    loss.make_value_estimator(gamma=0.8)
    target = loss.target_critic_network
    assert all(not p.requires_grad for p in target.parameters())
    with torch.no_grad():
        for p in critic.parameters():
            p.add_(0.5)  # the online critic moves away from its target copy
    out = loss(data)
    nxt = data["next"]
    with torch.no_grad():
        value = critic(data.copy())["state_value"].double()
        t_value = target(data.copy())["state_value"].double()
        t_next = target(nxt.copy())["state_value"].double()
        log_prob = actor.get_dist(data.copy()).log_prob(data["action"]).double()
    returns = _returns(nxt["reward"], nxt["done"], nxt["terminated"], t_next, 0.8)
    expected = -(log_prob.unsqueeze(-1) * (returns - t_value)).mean()
    assert out["loss_objective"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert out["loss_critic"].item() == pytest.approx(
        ((value - returns) ** 2).mean().item(), rel=1e-5
    )
    parts = {"actor": actor, "critic": critic, "target": target}
    assert _moved(out["loss_objective"], parts) == {"actor": True, "critic": False, "target": False}
    assert _moved(out["loss_critic"], parts) == {"actor": False, "critic": True, "target": False}
    assert all(p.grad is None for p in target.parameters())
    before = [p.clone() for p in target.parameters()]
    SoftUpdate(loss, tau=0.5).step()
    for old, new, online in zip(before, target.parameters(), critic.parameters()):
        torch.testing.assert_close(new, 0.5 * old + 0.5 * online)


def test_reinforce_given_advantage() -> None:
    loss = ReinforceLoss(_bias_actor())
    out = loss(_batch())
    objective = -sum(math.log(PROBS[a]) * adv for a, adv in zip(ACTIONS, ADVANTAGES)) / 4
    assert out["loss_objective"].item() == pytest.approx(objective, rel=1e-5)


# --------------------------------------------------------------------------- #
# learning a 3-armed contextual bandit
# --------------------------------------------------------------------------- #
def _best_action_probability(actor: nn.Module) -> float:
    observation = torch.eye(3)  # the three contexts; the best action of context c is c
    with torch.no_grad():
        probs = actor.get_dist(TensorDict({"observation": observation}, [3])).probs
    return float(probs[torch.arange(3), torch.arange(3)].mean())


def _train(loss: A2CLoss | ReinforceLoss, task: object, iterations: int) -> None:
    optimizer = torch.optim.Adam(loss.parameters(), lr=1e-2)
    for _ in range(iterations):
        batch = tasks.rollout(task, loss.actor_network, 32, 1)
        out = loss(batch)
        total = sum(v for k, v in out.items() if k.startswith("loss_"))
        optimizer.zero_grad()
        total.backward()
        optimizer.step()


@pytest.mark.parametrize("which", ["a2c", "reinforce", "reinforce_baseline"])
@pytest.mark.usefixtures("one_thread")
def test_learns_a_three_armed_bandit(which: str) -> None:
    torch.manual_seed(0)
    task = tasks.DiscreteBandit(n_contexts=3, n_actions=3, one_hot=False, seed=0)
    actor, critic = ppo_models(task.observation_spec, task.action_spec, num_cells=(16,))
    if which == "a2c":
        loss: A2CLoss | ReinforceLoss = A2CLoss(actor, critic)
    elif which == "reinforce":
        loss = ReinforceLoss(actor)
    else:
        loss = ReinforceLoss(actor, critic)
    before = _best_action_probability(actor)
    _train(loss, task, iterations=120)
    assert before < 0.45
    assert _best_action_probability(actor) > 0.9
