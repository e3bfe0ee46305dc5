"""SACLoss and DiscreteSACLoss: golden values, gradient isolation, temperature, tiny tasks."""

from __future__ import annotations

import math
from collections.abc import Iterator

import _tasks as tasks
import pytest
import torch
from torch import nn

from rlbricks.modules import ProbabilisticActor
from rlbricks.modules import QValueActor
from rlbricks.modules import TanhNormal
from rlbricks.modules import TensorDictModule
from rlbricks.modules import ValueOperator
from rlbricks.modules.recipes import ppo_models
from rlbricks.modules.recipes import sac_models
from rlbricks.objectives import DiscreteSACLoss
from rlbricks.objectives import LossError
from rlbricks.objectives import SACLoss
from rlbricks.objectives import SoftUpdate
from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict


@pytest.fixture
def one_thread() -> Iterator[None]:
    """The learning tests run torch on one thread (see ``_tasks.single_thread``)."""
    with tasks.single_thread():
        yield


def _linear(n_in: int, n_out: int, weight: list[list[float]]) -> nn.Linear:
    layer = nn.Linear(n_in, n_out, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
    return layer


class _Gaussian(nn.Module):
    """loc = w . s, scale = exp(log_scale)."""

    def __init__(self) -> None:
        super().__init__()
        self.loc = _linear(2, 1, [[0.5, -0.5]])
        self.log_scale = nn.Parameter(torch.tensor([math.log(0.5)]))

    def forward(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc = self.loc(observation)
        return loc, self.log_scale.exp().expand_as(loc)


def _actor() -> ProbabilisticActor:
    net = TensorDictModule(_Gaussian(), ["observation"], ["loc", "scale"])
    return ProbabilisticActor(net, ["loc", "scale"], distribution_class=TanhNormal)


class _CatLinear(nn.Module):
    def __init__(self, weight: list[float]) -> None:
        super().__init__()
        self.linear = _linear(3, 1, [weight])

    def forward(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.cat([observation, action], -1))


def _critics() -> list[ValueOperator]:
    return [
        ValueOperator(_CatLinear(w), ["observation", "action"])
        for w in ([1.0, 1.0, 2.0], [1.0, 0.0, -1.0])
    ]


def _batch(action: torch.Tensor | None = None) -> TensorDict:
    return TensorDict(
        {
            "observation": torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 2.0]]),
            "action": torch.tensor([[0.5], [-0.2], [0.1]]) if action is None else action,
            "next": {
                "observation": torch.tensor([[1.0, 1.0], [0.0, 0.0], [2.0, 0.0]]),
                "reward": torch.tensor([[1.0], [0.5], [-1.0]]),
                "done": torch.tensor([[False], [True], [False]]),
                "terminated": torch.tensor([[False], [True], [False]]),
            },
        },
        batch_size=[3],
    )


def _q(weight: list[float], obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    return torch.cat([obs, action], -1) @ torch.tensor(weight)


def _tanh_normal(
    loc: torch.Tensor, scale: float, eps: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    z = loc + scale * eps
    action = torch.tanh(z)
    normal = -0.5 * eps**2 - math.log(scale) - 0.5 * math.log(2 * math.pi)
    return action, (normal - torch.log(1 - action**2)).squeeze(-1)


# --------------------------------------------------------------------------- #
# SAC
# --------------------------------------------------------------------------- #
def test_sac_golden_values_against_reference() -> None:
    loss = SACLoss(_actor(), _critics(), alpha_init=0.5, target_entropy=-1.0)
    loss.make_value_estimator(gamma=0.9)
    td = _batch()
    torch.manual_seed(3)
    out = loss(td)
    torch.manual_seed(3)  # the loss draws the next-state actions first, then the actor's
    eps_next, eps_now = torch.randn(3, 1), torch.randn(3, 1)
    w1, w2 = [1.0, 1.0, 2.0], [1.0, 0.0, -1.0]
    obs, nobs = td["observation"], td["next", "observation"]
    a_next, logp_next = _tanh_normal(nobs @ torch.tensor([[0.5], [-0.5]]), 0.5, eps_next)
    q_next = torch.minimum(_q(w1, nobs, a_next), _q(w2, nobs, a_next)) - 0.5 * logp_next
    not_term = torch.tensor([1.0, 0.0, 1.0])
    target = td["next", "reward"].squeeze(-1) + 0.9 * not_term * q_next
    pred1, pred2 = _q(w1, obs, td["action"]), _q(w2, obs, td["action"])
    want_q = (pred1 - target).pow(2).mean() + (pred2 - target).pow(2).mean()
    a_now, logp_now = _tanh_normal(obs @ torch.tensor([[0.5], [-0.5]]), 0.5, eps_now)
    q_now = torch.minimum(_q(w1, obs, a_now), _q(w2, obs, a_now))
    tol = {"atol": 1e-4, "rtol": 1e-4}
    torch.testing.assert_close(out["loss_qvalue"], want_q, **tol)
    torch.testing.assert_close(out["loss_actor"], (0.5 * logp_now - q_now).mean(), **tol)
    torch.testing.assert_close(out["loss_alpha"], -math.log(0.5) * (logp_now - 1.0).mean(), **tol)
    torch.testing.assert_close(out["entropy"], -logp_now.mean(), **tol)
    torch.testing.assert_close(out["alpha"], torch.tensor(0.5))
    torch.testing.assert_close(
        td["td_error"], ((pred1 - target).abs() + (pred2 - target).abs()) / 2, **tol
    )


def test_sac_gradients_are_isolated() -> None:
    loss = SACLoss(_actor(), _critics())
    checks = {
        "loss_actor": [loss.actor_network],
        "loss_qvalue": [loss.qvalue_network],
        "loss_alpha": [],
    }
    for name, moved in checks.items():
        loss.zero_grad(set_to_none=True)
        loss(_batch())[name].backward()
        for module in (loss.actor_network, loss.qvalue_network):
            grads = [p.grad for p in module.parameters()]
            if module in moved:
                assert all(g is not None for g in grads), name
                assert any(bool(g.abs().sum() > 0) for g in grads if g is not None), name
            else:
                assert all(g is None for g in grads), (name, type(module).__name__)
        assert (loss.log_alpha.grad is not None) == (name == "loss_alpha"), name
        assert all(p.grad is None for p in loss.target_qvalue_network.parameters())
    assert loss.log_alpha.grad is not None
    assert float(loss.log_alpha.grad) != 0.0


def test_sac_alpha_moves_toward_target_entropy() -> None:
    loss = SACLoss(_actor(), _critics(), alpha_init=1.0, target_entropy=10.0)
    out = loss(_batch())
    out["loss_alpha"].backward()
    assert float(loss.log_alpha.grad) < 0  # entropy below target: descent raises alpha
    loss = SACLoss(_actor(), _critics(), alpha_init=1.0, target_entropy=-10.0)
    loss(_batch())["loss_alpha"].backward()
    assert float(loss.log_alpha.grad) > 0


def test_sac_fixed_alpha_and_target_entropy() -> None:
    loss = SACLoss(_actor(), _critics(), alpha_init=0.2, fixed_alpha=True)
    assert "log_alpha" not in dict(loss.named_parameters())
    assert "log_alpha" in loss.state_dict()
    out = loss(_batch())
    assert float(out["loss_alpha"]) == 0.0
    assert not out["loss_alpha"].requires_grad
    torch.testing.assert_close(out["alpha"], torch.tensor(0.2))
    # "auto" without an action spec: -prod(action shape), read from the first batch
    assert loss.target_entropy == -1.0
    auto = SACLoss(_actor(), _critics())
    assert auto.target_entropy is None
    auto(_batch())
    assert auto.target_entropy == -1.0
    obs = Composite(observation=Unbounded(shape=(2,)))
    actor, critic = sac_models(obs, Bounded(-1.0, 1.0, shape=(3,)), num_cells=(8,))
    assert SACLoss(actor, critic).target_entropy == -3.0
    with pytest.raises(LossError, match="target_entropy"):
        SACLoss(actor, critic, target_entropy="high")
    with pytest.raises(LossError, match="alpha_init"):
        SACLoss(actor, critic, alpha_init=0.0)


def test_sac_learns_continuous_bandit(one_thread: None) -> None:
    torch.manual_seed(0)
    task = tasks.ContinuousBandit(obs_dim=2, action_dim=1)
    actor, critic = sac_models(task.observation_spec, task.action_spec, num_cells=(32,))
    loss = SACLoss(actor, critic, alpha_init=0.1)
    loss.make_value_estimator(gamma=0.9)
    updater = SoftUpdate(loss, tau=0.05)
    optim = torch.optim.Adam(loss.parameters(), lr=1e-2)
    for _ in range(150):
        out = loss(tasks.transitions(task, 64))
        (out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]).backward()
        optim.step()
        optim.zero_grad()
        updater.step()
    probe = task.reset(256)
    mode = loss.actor_network.get_dist(probe).mode
    assert (mode - task.best_action(probe["observation"])).abs().mean() < 0.15


# --------------------------------------------------------------------------- #
# discrete SAC
# --------------------------------------------------------------------------- #
def _discrete_actor(weight: list[list[float]] | None = None) -> ProbabilisticActor:
    weight = weight or [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]
    net = TensorDictModule(_linear(2, 3, weight), ["observation"], ["logits"])
    return ProbabilisticActor(net, ["logits"], distribution_class=torch.distributions.Categorical)


_QW = ([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], [[0.5, 0.0], [0.0, 1.0], [2.0, -1.0]])


def _discrete_critics() -> list[QValueActor]:
    return [QValueActor(_linear(2, 3, w), action_space="categorical") for w in _QW]


def test_discrete_sac_golden_values_against_reference() -> None:
    loss = DiscreteSACLoss(
        _discrete_actor(), _discrete_critics(), num_actions=3, alpha_init=0.5, target_entropy=0.3
    )
    loss.make_value_estimator(gamma=0.9)
    action = torch.tensor([0, 2, 1])
    td = _batch(action)
    out = loss(td)
    obs, nobs = td["observation"], td["next", "observation"]
    w_pi = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    q1, q2 = (obs @ torch.tensor(w).T for w in _QW)
    nq = torch.minimum(*(nobs @ torch.tensor(w).T for w in _QW))
    nlogp = torch.log_softmax(nobs @ w_pi.T, -1)
    next_v = (nlogp.exp() * (nq - 0.5 * nlogp)).sum(-1)
    target = td["next", "reward"].squeeze(-1) + 0.9 * torch.tensor([1.0, 0.0, 1.0]) * next_v
    pred1, pred2 = q1[torch.arange(3), action], q2[torch.arange(3), action]
    torch.testing.assert_close(
        out["loss_qvalue"], (pred1 - target).pow(2).mean() + (pred2 - target).pow(2).mean()
    )
    logp = torch.log_softmax(obs @ w_pi.T, -1)
    probs = logp.exp()
    q_min = torch.minimum(q1, q2)
    torch.testing.assert_close(out["loss_actor"], (probs * (0.5 * logp - q_min)).sum(-1).mean())
    entropy = -(probs * logp).sum(-1)
    torch.testing.assert_close(out["entropy"], entropy.mean())
    torch.testing.assert_close(out["loss_alpha"], math.log(0.5) * (entropy - 0.3).mean())
    torch.testing.assert_close(
        td["td_error"], ((pred1 - target).abs() + (pred2 - target).abs()) / 2
    )


def test_discrete_sac_hand_checked_uniform_case() -> None:
    # zero networks: uniform policy, all Q = 0 -> V'(s') = alpha log 3; entropy = log 3
    zero = [[0.0, 0.0]] * 3
    loss = DiscreteSACLoss(
        _discrete_actor(zero),
        [QValueActor(_linear(2, 3, zero), action_space="categorical") for _ in range(2)],
        num_actions=3,
        alpha_init=1.0,
    )
    loss.make_value_estimator(gamma=0.5)
    out = loss(_batch(torch.tensor([0, 1, 2])))
    target = torch.tensor([1.0 + 0.5 * math.log(3), 0.5, -1.0 + 0.5 * math.log(3)])
    torch.testing.assert_close(out["loss_qvalue"], 2 * target.pow(2).mean())
    torch.testing.assert_close(out["loss_actor"], torch.tensor(-math.log(3)))
    torch.testing.assert_close(out["entropy"], torch.tensor(math.log(3)))
    assert loss.target_entropy == pytest.approx(0.98 * math.log(3))
    torch.testing.assert_close(out["loss_alpha"], torch.tensor(0.0))  # log_alpha = 0


def test_discrete_sac_gradients_are_isolated_and_masks_stay_finite() -> None:
    loss = DiscreteSACLoss(_discrete_actor(), _discrete_critics(), num_actions=3)
    for name, moved in (
        ("loss_actor", "actor"),
        ("loss_qvalue", "critic"),
        ("loss_alpha", "alpha"),
    ):
        loss.zero_grad(set_to_none=True)
        loss(_batch(torch.tensor([0, 2, 1])))[name].backward()
        actor_grads = [p.grad for p in loss.actor_network.parameters()]
        critic_grads = [p.grad for p in loss.qvalue_network.parameters()]
        assert all((g is not None) == (moved == "actor") for g in actor_grads), name
        assert all((g is not None) == (moved == "critic") for g in critic_grads), name
        assert (loss.log_alpha.grad is not None) == (moved == "alpha"), name
        assert all(p.grad is None for p in loss.target_qvalue_network.parameters())

    class Masked(nn.Module):  # action 2 is never allowed: its logit is -inf
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(1.0))

        def forward(self, observation: torch.Tensor) -> torch.Tensor:
            logits = observation.sum(-1, keepdim=True) * self.scale * torch.tensor([1.0, 0.5, 0.0])
            return logits + torch.tensor([0.0, 0.0, float("-inf")])

    masked_net = Masked()
    scale = masked_net.scale
    net = TensorDictModule(masked_net, ["observation"], ["logits"])
    actor = ProbabilisticActor(net, ["logits"], distribution_class=torch.distributions.Categorical)
    masked = DiscreteSACLoss(actor, _discrete_critics(), num_actions=3)
    out = masked(_batch(torch.tensor([0, 1, 1])))
    assert all(bool(v.isfinite()) for v in out.values())
    sum(v for k, v in out.items() if k.startswith("loss_")).backward()
    assert scale.grad is not None
    assert bool(scale.grad.isfinite())


def test_discrete_sac_errors_and_action_space() -> None:
    with pytest.raises(LossError, match="num_actions"):
        DiscreteSACLoss(_discrete_actor(), _discrete_critics(), num_actions=1)
    with pytest.raises(LossError, match="action space"):
        DiscreteSACLoss(_discrete_actor(), nn.Linear(2, 3), num_actions=3)
    obs = Composite(observation=Unbounded(shape=(2,)))
    actor, _ = ppo_models(obs, Categorical(3), num_cells=(8,))
    loss = DiscreteSACLoss(
        actor, QValueActor(nn.Linear(2, 3), action_space="categorical"), num_actions=3
    )
    assert loss.action_space == "categorical"
    wrong = DiscreteSACLoss(_discrete_actor(), _discrete_critics(), num_actions=4)
    with pytest.raises(LossError, match="num_actions=4"):
        wrong(_batch(torch.tensor([0, 2, 1])))


def test_discrete_sac_learns_bandit(one_thread: None) -> None:
    torch.manual_seed(0)
    task = tasks.DiscreteBandit(n_contexts=3, n_actions=3, one_hot=True)
    actor, _ = ppo_models(task.observation_spec, task.action_spec, num_cells=(32,))
    critic = QValueActor(
        nn.Sequential(nn.Linear(3, 32), nn.ReLU(), nn.Linear(32, 3)), spec=task.action_spec
    )
    loss = DiscreteSACLoss(actor, critic, num_actions=3, alpha_init=0.1)
    loss.make_value_estimator(gamma=0.9)
    updater = SoftUpdate(loss, tau=0.05)
    optim = torch.optim.Adam(loss.parameters(), lr=1e-2)
    for _ in range(200):
        out = loss(tasks.transitions(task, 64))
        (out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]).backward()
        optim.step()
        optim.zero_grad()
        updater.step()
    obs = torch.eye(3)
    probs = loss.actor_network.get_dist(TensorDict({"observation": obs}, [3])).probs
    assert torch.equal(probs.argmax(-1), task.best_action(obs))
    assert bool((probs.max(-1).values > 0.5).all())
