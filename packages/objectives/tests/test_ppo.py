"""PPOLoss, ClipPPOLoss, KLPENPPOLoss: golden values, gradient routing, beta rule, bandits."""

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
from rlbricks.modules import TensorDictSequential
from rlbricks.modules import ValueOperator
from rlbricks.modules.recipes import ppo_models
from rlbricks.objectives import GAE
from rlbricks.objectives import ClipPPOLoss
from rlbricks.objectives import KLPENPPOLoss
from rlbricks.objectives import LossError
from rlbricks.objectives import LossKeyError
from rlbricks.objectives import PPOLoss
from rlbricks.specs import Bounded
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


# --------------------------------------------------------------------------- #
# hand-computable setting: the logits are a bias, the same for every sample
# --------------------------------------------------------------------------- #
LOGITS = [0.0, math.log(2.0), math.log(3.0)]  # probabilities 1/6, 2/6, 3/6
PROBS = [1 / 6, 2 / 6, 3 / 6]


def _bias_actor(logits: list[float] = LOGITS) -> ProbabilisticActor:
    net = nn.Linear(1, len(logits))
    with torch.no_grad():
        net.weight.zero_()
        net.bias.copy_(torch.tensor(logits))
    module = TensorDictModule(net, ["observation"], ["logits"])
    return ProbabilisticActor(
        module, ["logits"], distribution_class=Categorical, return_log_prob=True
    )


def _golden_batch(actions: list[int], ratios: list[float], advantages: list[float]) -> TensorDict:
    """Samples whose importance ratio pi/pi_old is ``ratios`` under the bias actor."""
    n = len(actions)
    old = [math.log(PROBS[a] / r) for a, r in zip(actions, ratios)]
    return TensorDict(
        {
            "observation": torch.zeros(n, 1),
            "action": torch.tensor(actions),
            "sample_log_prob": torch.tensor(old),
            "advantage": torch.tensor(advantages).unsqueeze(-1),
        },
        [n],
    )


ACTIONS = [0, 1, 2, 0, 1, 2, 2, 0]
RATIOS = [0.5, 0.9, 1.0, 1.1, 1.5, 0.7, 1.3, 1.25]
ADVANTAGES = [1.0, -2.0, 0.5, 3.0, 1.0, -1.0, -0.5, 2.0]


def test_ppo_plain_surrogate_golden() -> None:
    loss = PPOLoss(_bias_actor(), entropy_bonus=False)
    out = loss(_golden_batch(ACTIONS, RATIOS, ADVANTAGES))
    expected = -sum(r * a for r, a in zip(RATIOS, ADVANTAGES)) / len(RATIOS)
    assert out["loss_objective"].item() == pytest.approx(expected, rel=1e-5)
    kl = sum(r - 1 - math.log(r) for r in RATIOS) / len(RATIOS)
    assert out["kl_approx"].item() == pytest.approx(kl, rel=1e-5)
    ess = sum(RATIOS) ** 2 / sum(r * r for r in RATIOS) / len(RATIOS)
    assert out["ESS"].item() == pytest.approx(ess, rel=1e-5)
    assert set(out.keys()) == {"loss_objective", "kl_approx", "ESS"}
    assert not out["kl_approx"].requires_grad
    assert not out["ESS"].requires_grad


def _clip_reference(ratio: float, advantage: float, eps: float) -> float:
    """The clipped surrogate by case analysis (Schulman et al. 2017, figure 1)."""
    if advantage >= 0:
        return min(ratio, 1 + eps) * advantage
    return max(ratio, 1 - eps) * advantage


@pytest.mark.parametrize("eps", [0.05, 0.2, 0.4])
def test_clip_objective_golden(eps: float) -> None:
    loss = ClipPPOLoss(_bias_actor(), clip_epsilon=eps, entropy_bonus=False)
    out = loss(_golden_batch(ACTIONS, RATIOS, ADVANTAGES))
    per_sample = [_clip_reference(r, a, eps) for r, a in zip(RATIOS, ADVANTAGES)]
    assert out["loss_objective"].item() == pytest.approx(-sum(per_sample) / 8, rel=1e-5)
    outside = sum(abs(r - 1) > eps + 1e-6 for r in RATIOS) / len(RATIOS)
    assert out["clip_fraction"].item() == pytest.approx(outside)


def test_clip_gradient_vanishes_where_clipped() -> None:
    """Gradient of the clipped loss = gradient of a direct formula where clipped terms are constant."""
    eps = 0.2
    actor = _bias_actor()
    batch = _golden_batch(ACTIONS, RATIOS, ADVANTAGES)
    ClipPPOLoss(actor, clip_epsilon=eps, entropy_bonus=False)(batch)["loss_objective"].backward()
    bias = actor[0].module.bias
    got = bias.grad.clone()
    # reference: log-probs as a function of the bias, clipped samples contribute a constant
    logits = bias.detach().clone().requires_grad_(True)
    log_p = torch.log_softmax(logits, -1)
    total = torch.zeros(())
    for a, r, adv, old in zip(ACTIONS, RATIOS, ADVANTAGES, batch["sample_log_prob"].tolist()):
        ratio = torch.exp(log_p[a] - old)
        clipped = (adv >= 0 and r > 1 + eps) or (adv < 0 and r < 1 - eps)
        total = total + (ratio.detach() if clipped else ratio) * adv
    (-total / len(ACTIONS)).backward()
    torch.testing.assert_close(got, logits.grad)


def test_normalize_advantage_golden() -> None:
    loss = PPOLoss(_bias_actor(), entropy_bonus=False, normalize_advantage=True)
    out = loss(_golden_batch(ACTIONS, RATIOS, ADVANTAGES))
    adv = torch.tensor(ADVANTAGES, dtype=torch.float64)
    norm = ((adv - adv.mean()) / adv.std()).tolist()
    expected = -sum(r * a for r, a in zip(RATIOS, norm)) / len(RATIOS)
    assert out["loss_objective"].item() == pytest.approx(expected, rel=1e-5)


def test_entropy_bonus_golden() -> None:
    loss = ClipPPOLoss(_bias_actor(), entropy_coef=0.3)
    out = loss(_golden_batch(ACTIONS, RATIOS, ADVANTAGES))
    entropy = -sum(p * math.log(p) for p in PROBS)
    assert out["entropy"].item() == pytest.approx(entropy, rel=1e-5)
    assert out["loss_entropy"].item() == pytest.approx(-0.3 * entropy, rel=1e-5)
    assert out["loss_entropy"].requires_grad
    assert not out["entropy"].requires_grad


# --------------------------------------------------------------------------- #
# critic loss
# --------------------------------------------------------------------------- #
def _fixed_critic(weight: float, bias: float) -> ValueOperator:
    net = nn.Linear(1, 1)
    with torch.no_grad():
        net.weight.fill_(weight)
        net.bias.fill_(bias)
    return ValueOperator(net)


def _critic_batch() -> TensorDict:
    batch = _golden_batch([0, 1, 2, 1], [1.0] * 4, [0.0] * 4)
    batch["observation"] = torch.tensor([[0.0], [1.0], [2.0], [-1.0]])
    batch["value_target"] = torch.tensor([[0.5], [4.0], [1.0], [-1.0]])
    batch["state_value"] = torch.tensor([[0.3], [1.0], [4.0], [-1.5]])  # before the update
    return batch


def _huber(d: float) -> float:
    return 0.5 * d * d if abs(d) < 1 else abs(d) - 0.5


@pytest.mark.parametrize("kind", ["l2", "smooth_l1"])
def test_critic_loss_golden(kind: str) -> None:
    critic = _fixed_critic(2.0, 0.5)  # V(x) = 2x + 0.5
    loss = PPOLoss(
        _bias_actor(), critic, entropy_bonus=False, critic_coef=0.7, loss_critic_type=kind
    )
    out = loss(_critic_batch())
    values = [0.5, 2.5, 4.5, -1.5]
    targets = [0.5, 4.0, 1.0, -1.0]
    dist = (lambda d: d * d) if kind == "l2" else _huber
    expected = 0.7 * sum(dist(v - t) for v, t in zip(values, targets)) / 4
    assert out["loss_critic"].item() == pytest.approx(expected, rel=1e-5)


def test_clip_value_golden() -> None:
    critic = _fixed_critic(2.0, 0.5)
    loss = ClipPPOLoss(
        _bias_actor(), critic, entropy_bonus=False, loss_critic_type="l2", clip_value=0.5
    )
    out = loss(_critic_batch())
    values = [0.5, 2.5, 4.5, -1.5]
    old = [0.3, 1.0, 4.0, -1.5]
    targets = [0.5, 4.0, 1.0, -1.0]
    per_sample = []
    for v, o, t in zip(values, old, targets):
        clipped = o + max(-0.5, min(0.5, v - o))
        per_sample.append(max((v - t) ** 2, (clipped - t) ** 2))
    assert out["loss_critic"].item() == pytest.approx(sum(per_sample) / 4, rel=1e-5)
    moved = sum(abs(v - o) > 0.5 for v, o in zip(values, old)) / 4
    assert out["value_clip_fraction"].item() == pytest.approx(moved)


def test_clip_value_needs_the_old_value() -> None:
    loss = PPOLoss(_bias_actor(), _fixed_critic(1.0, 0.0), clip_value=0.2)
    batch = _critic_batch().exclude("state_value")
    with pytest.raises(LossKeyError, match="state_value"):
        loss(batch)


def test_critic_shape_mismatch_is_reported() -> None:
    loss = PPOLoss(_bias_actor(), _fixed_critic(1.0, 0.0))
    batch = _critic_batch()
    batch["value_target"] = torch.zeros(4)
    with pytest.raises(LossError, match="value target has shape"):
        loss(batch)


# --------------------------------------------------------------------------- #
# KL penalty
# --------------------------------------------------------------------------- #
OLD_LOGITS = [0.5, 0.0, -0.5]


def _kl_batch(n: int = 6) -> TensorDict:
    """Data collected by a policy with OLD_LOGITS (stored under "logits"), scored by LOGITS."""
    actions = torch.arange(n) % 3
    old_logits = torch.tensor(OLD_LOGITS).expand(n, 3)
    return TensorDict(
        {
            "observation": torch.zeros(n, 1),
            "action": actions,
            "logits": old_logits,
            "sample_log_prob": torch.log_softmax(old_logits, -1).gather(-1, actions[:, None])[:, 0],
            "advantage": torch.linspace(-1.0, 2.0, n).unsqueeze(-1),
        },
        [n],
    )


def _exact_kl() -> float:
    old = torch.softmax(torch.tensor(OLD_LOGITS, dtype=torch.float64), -1).tolist()
    return sum(p * math.log(p / q) for p, q in zip(old, PROBS))


def test_klpen_objective_golden_exact_kl() -> None:
    loss = KLPENPPOLoss(_bias_actor(), beta=0.7, dtarg=1.0, entropy_bonus=False)
    batch = _kl_batch()
    out = loss(batch)
    kl = _exact_kl()
    ratios = [
        PROBS[a] / math.exp(lp)
        for a, lp in zip(batch["action"].tolist(), batch["sample_log_prob"].tolist())
    ]
    adv = batch["advantage"].flatten().tolist()
    surrogate = sum(r * a for r, a in zip(ratios, adv)) / len(adv)
    assert out["kl"].item() == pytest.approx(kl, rel=1e-5)
    assert out["beta"].item() == pytest.approx(0.7)
    assert out["loss_objective"].item() == pytest.approx(-surrogate + 0.7 * kl, rel=1e-5)


def test_klpen_falls_back_to_the_sample_estimate() -> None:
    loss = KLPENPPOLoss(_bias_actor(), beta=1.0, dtarg=1.0, entropy_bonus=False)
    batch = _kl_batch().exclude("logits")  # the old distribution cannot be rebuilt
    out = loss(batch)
    log_w = [
        math.log(PROBS[a]) - lp
        for a, lp in zip(batch["action"].tolist(), batch["sample_log_prob"].tolist())
    ]
    expected = sum(math.exp(x) - 1 - x for x in log_w) / len(log_w)
    assert out["kl"].item() == pytest.approx(expected, rel=1e-5)


def test_klpen_tanh_normal_uses_the_sample_estimate() -> None:
    obs = Composite(observation=Unbounded(shape=(2,)))
    actor, _ = ppo_models(obs, Bounded(-1.0, 1.0, shape=(1,)), num_cells=(8,))
    with torch.no_grad():
        batch = actor(TensorDict({"observation": torch.randn(16, 2)}, [16]))
    batch["sample_log_prob"] = batch["sample_log_prob"] + 0.1 * torch.randn(16)
    batch["advantage"] = torch.randn(16, 1)
    out = KLPENPPOLoss(actor, entropy_bonus=False)(batch)
    with torch.no_grad():
        new = actor.get_dist(batch.copy()).log_prob(batch["action"])
    log_w = new - batch["sample_log_prob"]
    expected = (log_w.exp() - 1 - log_w).mean()
    assert out["kl"].item() == pytest.approx(expected.item(), rel=1e-4)


def _beta_rule(beta: float, kl: float, dtarg: float, inc: float, dec: float) -> float:
    """Schulman et al. 2017, section 4, with the factors as parameters."""
    if kl > 1.5 * dtarg:
        return beta * inc
    if kl < dtarg / 1.5:
        return beta * dec
    return beta


@pytest.mark.parametrize(
    ("dtarg", "steps"),
    [(0.001, 3), (0.05, 3), (10.0, 3)],  # KL ~ 0.08: too large, within, too small
)
def test_klpen_beta_update_rule(dtarg: float, steps: int) -> None:
    kl = _exact_kl()
    loss = KLPENPPOLoss(_bias_actor(), dtarg=dtarg, beta=0.8, increment=3.0, decrement=0.25)
    beta = 0.8
    for _ in range(steps):
        out = loss(_kl_batch())
        assert out["beta"].item() == pytest.approx(beta)  # the coefficient used in this call
        beta = _beta_rule(beta, kl, dtarg, 3.0, 0.25)
        assert loss.beta.item() == pytest.approx(beta)
    assert torch.equal(loss.state_dict()["beta"], loss.beta)


@pytest.mark.parametrize(
    "kwargs",
    [{"dtarg": 0.0}, {"beta": -1.0}, {"increment": 0.5}, {"decrement": 0.0}, {"decrement": 2.0}],
)
def test_klpen_bad_hyperparameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(LossError, match="KLPENPPOLoss"):
        KLPENPPOLoss(_bias_actor(), **kwargs)  # type: ignore[arg-type]


def test_clip_epsilon_must_be_positive() -> None:
    with pytest.raises(LossError, match="clip_epsilon"):
        ClipPPOLoss(_bias_actor(), clip_epsilon=0.0)


# --------------------------------------------------------------------------- #
# advantage computed by the estimator, keys, shapes
# --------------------------------------------------------------------------- #
def _trajectories(actor: nn.Module, n: int = 3, t: int = 5) -> TensorDict:
    torch.manual_seed(1)
    with torch.no_grad():
        batch = actor(TensorDict({"observation": torch.randn(n, t, 3)}, [n, t]))
    done = torch.zeros(n, t, 1, dtype=torch.bool)
    done[0, 2] = True
    batch["next"] = {
        "observation": torch.randn(n, t, 3),
        "reward": torch.randn(n, t, 1),
        "done": done,
        "terminated": done.clone(),
    }
    return batch


@pytest.mark.parametrize("cls", [PPOLoss, ClipPPOLoss, KLPENPPOLoss])
def test_missing_advantage_runs_gae(cls: type[PPOLoss]) -> None:
    obs = Composite(observation=Unbounded(shape=(3,)))
    actor, critic = ppo_models(obs, CategoricalSpec(4), num_cells=(8,))
    batch = _trajectories(actor)
    keys_before = set(batch.keys(include_nested=True))
    out = cls(actor, critic)(batch)
    assert set(batch.keys(include_nested=True)) == keys_before  # the input is left alone
    reference = GAE(gamma=0.99, lmbda=0.95, value_network=critic)(batch.clone())
    with_adv = cls(actor, critic)(reference)
    for key in ("loss_objective", "loss_critic"):
        torch.testing.assert_close(out[key], with_adv[key])


def test_gamma_and_lambda_from_make_value_estimator() -> None:
    obs = Composite(observation=Unbounded(shape=(3,)))
    actor, critic = ppo_models(obs, CategoricalSpec(4), num_cells=(8,))
    batch = _trajectories(actor)
    loss = ClipPPOLoss(actor, critic).make_value_estimator(gamma=0.5, lmbda=0.3)
    reference = GAE(gamma=0.5, lmbda=0.3, value_network=critic)(batch.clone())
    torch.testing.assert_close(loss(batch)["loss_critic"], loss(reference)["loss_critic"])


def test_custom_keys() -> None:
    batch = _golden_batch(ACTIONS, RATIOS, ADVANTAGES)
    batch.rename_key_("sample_log_prob", "behaviour_log_prob")
    batch.rename_key_("advantage", "adv")
    batch.rename_key_("action", "act")
    loss = ClipPPOLoss(_bias_actor(), entropy_bonus=False)
    loss.set_keys(advantage="adv", action="act")
    with pytest.raises(LossKeyError, match="sample_log_prob"):
        loss(batch)
    loss.set_keys(sample_log_prob="behaviour_log_prob")
    per_sample = [_clip_reference(r, a, 0.2) for r, a in zip(RATIOS, ADVANTAGES)]
    assert loss(batch)["loss_objective"].item() == pytest.approx(-sum(per_sample) / 8, rel=1e-5)


def test_log_prob_with_action_dims_is_rejected() -> None:
    """A Normal without an event dim gives [B, d] log-probs: an error, not a silent broadcast."""
    net = TensorDictModule(nn.Linear(2, 4), ["observation"], ["param"])
    split = TensorDictModule(lambda p: p.chunk(2, -1), ["param"], ["loc", "raw"])
    scale = TensorDictModule(nn.functional.softplus, ["raw"], ["scale"])
    actor = ProbabilisticActor(
        TensorDictSequential(net, split, scale),
        ["loc", "scale"],
        distribution_class=torch.distributions.Normal,
    )
    batch = TensorDict(
        {
            "observation": torch.randn(5, 2),
            "action": torch.randn(5, 2),
            "sample_log_prob": torch.zeros(5),
            "advantage": torch.ones(5, 1),
        },
        [5],
    )
    with pytest.raises(LossError, match="sum over the action dims"):
        PPOLoss(actor)(batch)


# --------------------------------------------------------------------------- #
# which parameters each loss moves
# --------------------------------------------------------------------------- #
def _moved(loss_value: torch.Tensor, parts: dict[str, nn.Module]) -> dict[str, bool]:
    for part in parts.values():
        part.zero_grad(set_to_none=True)
    loss_value.backward(retain_graph=True)
    return {
        name: any(p.grad is not None and bool(p.grad.abs().gt(0).any()) for p in part.parameters())
        for name, part in parts.items()
    }


@pytest.mark.parametrize("cls", [PPOLoss, ClipPPOLoss, KLPENPPOLoss])
def test_gradients_separate_networks(cls: type[PPOLoss]) -> None:
    obs = Composite(observation=Unbounded(shape=(3,)))
    actor, critic = ppo_models(obs, CategoricalSpec(4), num_cells=(8,))
    batch = _trajectories(actor)
    batch["sample_log_prob"] = batch["sample_log_prob"] - 0.1  # ratios != 1
    out = cls(actor, critic)(batch)
    parts = {"actor": actor, "critic": critic}
    assert _moved(out["loss_objective"], parts) == {"actor": True, "critic": False}
    assert _moved(out["loss_entropy"], parts) == {"actor": True, "critic": False}
    assert _moved(out["loss_critic"], parts) == {"actor": False, "critic": True}


@pytest.mark.parametrize("cls", [PPOLoss, ClipPPOLoss, KLPENPPOLoss])
def test_gradients_shared_trunk(cls: type[PPOLoss]) -> None:
    obs = Composite(observation=Unbounded(shape=(3,)))
    agent = ppo_models(obs, CategoricalSpec(4), shared_trunk=True, num_cells=(8,))
    batch = _trajectories(agent.get_policy_operator())
    batch["sample_log_prob"] = batch["sample_log_prob"] - 0.1
    loss = cls(agent.get_policy_operator(), agent.get_value_operator())
    out = loss(batch)
    parts = {"trunk": agent[0], "policy": agent.get_policy_head(), "value": agent.get_value_head()}
    assert _moved(out["loss_objective"], parts) == {"trunk": True, "policy": True, "value": False}
    assert _moved(out["loss_critic"], parts) == {"trunk": True, "policy": False, "value": True}
    shared = {id(p) for p in agent[0].parameters()}
    assert shared <= {id(p) for p in loss.parameters()}
    assert len(list(loss.parameters())) == len(list(agent.parameters()))  # each one once


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.cuda
def test_runs_on_cuda() -> None:
    loss = ClipPPOLoss(_bias_actor()).to("cuda")
    out = loss(_golden_batch(ACTIONS, RATIOS, ADVANTAGES).to("cuda"))
    assert out["loss_objective"].device.type == "cuda"


# --------------------------------------------------------------------------- #
# learning tiny bandits
# --------------------------------------------------------------------------- #
def _train(loss: PPOLoss, task: object, iterations: int, num_envs: int, epochs: int = 2) -> None:
    optimizer = torch.optim.Adam(loss.parameters(), lr=1e-2)
    for _ in range(iterations):
        batch = tasks.rollout(task, loss.actor_network, num_envs, 1)
        for _ in range(epochs):
            out = loss(batch)
            total = sum(v for k, v in out.items() if k.startswith("loss_"))
            optimizer.zero_grad()
            total.backward()
            optimizer.step()


def _best_action_probability(actor: nn.Module) -> float:
    observation = torch.eye(3)  # the three contexts; the best action of context c is c
    with torch.no_grad():
        probs = actor.get_dist(TensorDict({"observation": observation}, [3])).probs
    return float(probs[torch.arange(3), torch.arange(3)].mean())


@pytest.mark.parametrize("cls", [PPOLoss, ClipPPOLoss, KLPENPPOLoss])
@pytest.mark.usefixtures("one_thread")
def test_learns_a_three_armed_bandit(cls: type[PPOLoss]) -> None:
    torch.manual_seed(0)
    task = tasks.DiscreteBandit(n_contexts=3, n_actions=3, one_hot=False, seed=0)
    actor, critic = ppo_models(task.observation_spec, task.action_spec, num_cells=(16,))
    before = _best_action_probability(actor)
    _train(cls(actor, critic), task, iterations=60, num_envs=32)
    after = _best_action_probability(actor)
    assert before < 0.45
    assert after > 0.9


@pytest.mark.usefixtures("one_thread")
def test_learns_a_continuous_bandit_with_tanh_normal() -> None:
    torch.manual_seed(0)
    task = tasks.ContinuousBandit(obs_dim=2, action_dim=1, bounded=True, seed=0)
    actor, critic = ppo_models(task.observation_spec, task.action_spec, num_cells=(16,))
    loss = ClipPPOLoss(actor, critic, samples_mc_entropy=4, entropy_coef=1e-3)

    def expected_reward() -> float:
        return float(tasks.rollout(task, actor, 1024, 1)["next", "reward"].mean())

    before = expected_reward()
    _train(loss, task, iterations=120, num_envs=64)
    after = expected_reward()
    assert before < -0.2
    assert after > -0.05
