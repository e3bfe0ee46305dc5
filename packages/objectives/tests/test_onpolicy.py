"""The shared maths of the on-policy losses: shapes, entropy, KL and ESS estimates, key wiring."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from rlbricks.modules import Categorical
from rlbricks.modules import ProbabilisticActor
from rlbricks.modules import TanhNormal
from rlbricks.modules import TensorDictModule
from rlbricks.modules import TensorDictSequential
from rlbricks.modules import ValueOperator
from rlbricks.objectives import A2CLoss
from rlbricks.objectives import ClipPPOLoss
from rlbricks.objectives import LossError
from rlbricks.objectives import ReinforceLoss
from rlbricks.objectives._onpolicy import ZeroValue
from rlbricks.objectives._onpolicy import align_to
from rlbricks.objectives._onpolicy import effective_sample_size
from rlbricks.objectives._onpolicy import entropy_estimate
from rlbricks.objectives._onpolicy import kl_estimate
from rlbricks.objectives._onpolicy import normalize_advantage
from rlbricks.objectives._onpolicy import policy_head
from rlbricks.tensordict import TensorDict


def _categorical_actor(n: int = 3) -> ProbabilisticActor:
    net = TensorDictModule(nn.Linear(2, n), ["observation"], ["logits"])
    return ProbabilisticActor(net, ["logits"], distribution_class=Categorical)


# --------------------------------------------------------------------------- #
# pure helpers
# --------------------------------------------------------------------------- #
def test_align_to_adds_the_trailing_singleton() -> None:
    like = torch.zeros(4, 5, 1)
    assert align_to(torch.ones(4, 5), like, "x", "L").shape == (4, 5, 1)
    same = torch.ones(4, 5, 1)
    assert align_to(same, like, "x", "L") is same


def test_align_to_rejects_other_shapes() -> None:
    with pytest.raises(LossError, match=r"log_prob has shape \(4, 2\).*\(4, 1\)"):
        align_to(torch.zeros(4, 2), torch.zeros(4, 1), "log_prob", "PPOLoss")


def test_normalize_advantage_matches_formula() -> None:
    adv = torch.tensor([[1.0], [4.0], [-2.0], [0.5]], dtype=torch.float64)
    values = adv.flatten().tolist()
    mean = sum(values) / 4
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / 3)  # unbiased
    expected = torch.tensor([[(v - mean) / std] for v in values], dtype=torch.float64)
    torch.testing.assert_close(normalize_advantage(adv), expected)
    single = torch.tensor([3.0])
    assert normalize_advantage(single) is single
    flat = normalize_advantage(torch.ones(5))  # zero std: kept finite
    assert bool(torch.isfinite(flat).all())


def test_entropy_exact_for_categorical() -> None:
    probs = torch.tensor([[0.2, 0.3, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    expected = torch.tensor([-sum(p * math.log(p) for p in row) for row in probs.tolist()])
    torch.testing.assert_close(entropy_estimate(Categorical(probs=probs)), expected)


def _tanh_normal_entropy(loc: float, scale: float) -> float:
    """H[tanh(Z)], Z ~ N(loc, scale): H[Z] + E[log(1 - tanh(Z)^2)], by Gauss-Hermite quadrature."""
    nodes, weights = np.polynomial.hermite.hermgauss(200)
    z = loc + math.sqrt(2) * scale * nodes
    # log(1 - tanh(z)^2) = log(sech(z)^2), written without cancellation
    log_det = 2 * (math.log(2) - np.abs(z) - np.log1p(np.exp(-2 * np.abs(z))))
    expectation = float((weights * log_det).sum() / math.sqrt(math.pi))
    return 0.5 * math.log(2 * math.pi * math.e * scale**2) + expectation


def test_entropy_monte_carlo_for_tanh_normal() -> None:
    torch.manual_seed(0)
    loc = torch.tensor([[0.3], [-1.0]], dtype=torch.float64, requires_grad=True)
    scale = torch.tensor([[0.5], [1.2]], dtype=torch.float64)
    dist = TanhNormal(loc, scale)
    with pytest.raises(NotImplementedError):
        dist.entropy()
    estimate = entropy_estimate(dist, samples=40_000)
    assert estimate.shape == (2,)
    expected = [_tanh_normal_entropy(0.3, 0.5), _tanh_normal_entropy(-1.0, 1.2)]
    torch.testing.assert_close(
        estimate.detach(), torch.tensor(expected, dtype=torch.float64), atol=0.02, rtol=0
    )
    estimate.sum().backward()  # reparameterised samples: the gradient reaches loc
    assert loc.grad is not None
    assert bool(loc.grad.abs().gt(0).all())


def test_entropy_monte_carlo_without_rsample() -> None:
    class NoEntropy(torch.distributions.Poisson):
        def entropy(self) -> torch.Tensor:
            raise NotImplementedError

    torch.manual_seed(0)
    rate = torch.tensor([2.0])
    estimate = entropy_estimate(NoEntropy(rate), samples=20_000)
    k = torch.arange(0, 60, dtype=torch.float64)
    log_p = k * math.log(2.0) - 2.0 - torch.lgamma(k + 1)
    exact = float(-(log_p.exp() * log_p).sum())
    assert abs(estimate.item() - exact) < 0.03


def test_kl_estimate_is_nonnegative_and_matches_formula() -> None:
    log_weight = torch.tensor([-1.0, -0.1, 0.0, 0.2, 2.0])
    expected = torch.tensor([math.exp(x) - 1 - x for x in log_weight.tolist()])
    torch.testing.assert_close(kl_estimate(log_weight), expected)
    assert bool(kl_estimate(torch.randn(100)).ge(0).all())


def test_kl_estimate_is_unbiased() -> None:
    torch.manual_seed(0)
    old = Categorical(logits=torch.tensor([0.0, 1.0, -1.0]))
    new = Categorical(logits=torch.tensor([0.5, 0.2, 0.0]))
    actions = old.sample((200_000,))
    log_weight = new.log_prob(actions) - old.log_prob(actions)
    exact = torch.distributions.kl_divergence(old, new)
    assert abs(kl_estimate(log_weight).mean().item() - exact.item()) < 5e-3


def test_effective_sample_size_matches_naive() -> None:
    log_weight = torch.tensor([[0.1, -0.5], [1.0, 0.0]], dtype=torch.float64)
    w = [math.exp(x) for x in log_weight.flatten().tolist()]
    naive = sum(w) ** 2 / sum(x * x for x in w) / len(w)
    assert effective_sample_size(log_weight).item() == pytest.approx(naive, rel=1e-12)
    assert effective_sample_size(torch.zeros(7)).item() == pytest.approx(1.0)
    dominated = torch.tensor([50.0, 0.0, 0.0, 0.0])
    assert effective_sample_size(dominated).item() == pytest.approx(0.25, rel=1e-6)


def test_policy_head_walks_nested_sequences() -> None:
    actor = _categorical_actor()
    trunk = TensorDictModule(nn.Identity(), ["obs"], ["observation"])
    nested = TensorDictSequential(trunk, actor)
    assert policy_head(nested) is actor[-1]
    assert policy_head(actor) is actor[-1]
    assert policy_head(ValueOperator(nn.Linear(2, 1))) is None


def test_zero_value_writes_zeros_like_the_batch() -> None:
    out = ZeroValue("v")(TensorDict({}, [2, 3]))
    assert out["v"].shape == (2, 3, 1)
    assert float(out["v"].abs().sum()) == 0.0


# --------------------------------------------------------------------------- #
# construction and key wiring
# --------------------------------------------------------------------------- #
def test_actor_must_build_a_distribution() -> None:
    with pytest.raises(LossError, match="get_dist"):
        A2CLoss(ValueOperator(nn.Linear(2, 1)), ValueOperator(nn.Linear(2, 1)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"loss_critic_type": "huber"}, "loss_critic_type"),
        ({"samples_mc_entropy": 0}, "samples_mc_entropy"),
        ({"clip_value": 0.0}, "clip_value"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(LossError, match=match):
        ClipPPOLoss(_categorical_actor(), None, **kwargs)  # type: ignore[arg-type]


def test_delay_value_needs_a_critic() -> None:
    with pytest.raises(LossError, match="delay_value"):
        ReinforceLoss(_categorical_actor(), None, delay_value=True)


def test_default_estimators_and_hyperparameters() -> None:
    critic = ValueOperator(nn.Linear(2, 1))
    ppo = ClipPPOLoss(_categorical_actor(), critic)
    gae = ppo.value_estimator
    assert (type(gae).__name__, gae.gamma, gae.lmbda) == ("GAE", 0.99, 0.95)
    assert gae.value_network is critic
    reinforce = ReinforceLoss(_categorical_actor())
    td1 = reinforce.value_estimator
    assert (type(td1).__name__, td1.gamma) == ("TD1Estimator", 0.99)
    assert isinstance(td1.value_network, ZeroValue)
    delayed = ReinforceLoss(_categorical_actor(), critic, delay_value=True)
    assert delayed.value_estimator.value_network is delayed.target_critic_network
    vtrace = ClipPPOLoss(_categorical_actor(), critic).make_value_estimator("vtrace", gamma=0.9)
    assert vtrace.value_estimator.actor_network is vtrace.actor_network


def test_set_keys_reach_the_estimator() -> None:
    loss = A2CLoss(_categorical_actor(), ValueOperator(nn.Linear(2, 1), out_keys=["v"]))
    loss.set_keys(value="v", advantage="adv", reward=("next", "r"))
    keys = loss.value_estimator.tensor_keys
    assert (keys["value"], keys["advantage"], keys["reward"]) == ("v", "adv", "r")
    loss.set_keys(done=("next", "finished"))  # after the estimator exists
    assert loss.value_estimator.tensor_keys["done"] == "finished"
    with pytest.raises(LossError, match="under 'next'"):
        loss.set_keys(terminated="terminated")


def test_zero_value_follows_the_value_key() -> None:
    loss = ReinforceLoss(_categorical_actor())
    loss.set_keys(value="baseline")
    assert loss.value_estimator.value_network.out_keys == ["baseline"]
    loss.set_keys(value="other")
    assert loss.value_estimator.value_network.out_keys == ["other"]
