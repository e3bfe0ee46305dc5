"""DQNLoss and DistributionalDQNLoss: golden values, gradients, masks, tiny learning tasks."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import _tasks as tasks
import pytest
import torch
from torch import nn

from rlbricks.modules import DistributionalQValueActor
from rlbricks.modules import EGreedyModule
from rlbricks.modules import QValueActor
from rlbricks.modules import TensorDictSequential
from rlbricks.modules.recipes import dqn_model
from rlbricks.objectives import DiscreteSACLoss
from rlbricks.objectives import DistributionalDQNLoss
from rlbricks.objectives import DQNLoss
from rlbricks.objectives import HardUpdate
from rlbricks.objectives import LossError
from rlbricks.objectives import LossKeyError
from rlbricks.objectives import LossValueError
from rlbricks.objectives import SoftUpdate
from rlbricks.objectives._distributional_dqn import categorical_projection
from rlbricks.specs import Binary
from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import MultiCategorical
from rlbricks.specs import MultiOneHot
from rlbricks.specs import OneHot
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import assert_close
from rlbricks.tensordict import stack

Chain = tasks.Chain
DiscreteBandit = tasks.DiscreteBandit
transitions = tasks.transitions


@pytest.fixture
def one_thread() -> Iterator[None]:
    """The learning tests run torch on one thread (see ``_tasks.single_thread``)."""
    with tasks.single_thread():
        yield


# --------------------------------------------------------------------------- #
# DQN
# --------------------------------------------------------------------------- #
def _linear_q(weight: list[list[float]], **kwargs: object) -> QValueActor:
    net = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor(weight))
    return QValueActor(net, **kwargs)  # type: ignore[arg-type]


def _golden_batch(one_hot: bool = False) -> TensorDict:
    action = torch.tensor([1, 0, 0])
    if one_hot:
        action = nn.functional.one_hot(action, 2).bool()
    return TensorDict(
        {
            "observation": torch.tensor([[1.0, 1.0], [2.0, 0.0], [0.0, 1.0]]),
            "action": action,
            "next": {
                "observation": torch.tensor([[0.0, 1.0], [1.0, 1.0], [3.0, 0.0]]),
                "reward": torch.tensor([[1.0], [0.0], [-1.0]]),
                "done": torch.tensor([[False], [False], [True]]),
                "terminated": torch.tensor([[False], [False], [True]]),
            },
        },
        batch_size=[3],
    )


def _set_target(loss: DQNLoss, weight: list[list[float]]) -> None:
    with torch.no_grad():
        loss.target_value_network[0].module.weight.copy_(torch.tensor(weight))


@pytest.mark.parametrize("one_hot", [False, True])
def test_dqn_golden_value_by_hand(one_hot: bool) -> None:
    # Q(s) = [s0, 2 s1]; pred = [2, 2, 0]; max Q(s') = [2, 2, 3]
    # target = r + 0.5 (1 - term) max = [2, 1, -1]; errors [0, 1, 1]
    space = "one_hot" if one_hot else "categorical"
    loss = DQNLoss(_linear_q([[1.0, 0.0], [0.0, 2.0]], action_space=space))
    loss.make_value_estimator(gamma=0.5)
    td = _golden_batch(one_hot)
    out = loss(td)
    torch.testing.assert_close(out["loss_value"], torch.tensor(2.0 / 3.0))
    torch.testing.assert_close(out["pred_value"], torch.tensor(4.0 / 3.0))
    torch.testing.assert_close(out["target_value"], torch.tensor(2.0 / 3.0))
    torch.testing.assert_close(td["td_error"], torch.tensor([0.0, 1.0, 1.0]))
    assert "action_value" not in td.keys()  # the input only gains td_error


def test_dqn_target_network_double_dqn_and_smooth_l1_by_hand() -> None:
    online = [[1.0, 0.0], [0.0, 2.0]]
    target = [[2.0, 0.0], [0.0, 1.0]]  # Q_t(s') = [[0, 1], [2, 1], [6, 0]]
    loss = DQNLoss(_linear_q(online, action_space="categorical"))
    _set_target(loss, target)
    loss.make_value_estimator(gamma=0.5)
    # plain: max Q_t(s') = [1, 2, 6] -> target [1.5, 1, -1], errors [0.5, 1, 1]
    torch.testing.assert_close(loss(_golden_batch())["loss_value"], torch.tensor(2.25 / 3))
    # double: online argmax at s' = [1, 1, 0] -> Q_t = [1, 1, 6] -> target [1.5, 0.5, -1]
    double = DQNLoss(_linear_q(online, action_space="categorical"), double_dqn=True)
    _set_target(double, target)
    double.make_value_estimator(gamma=0.5)
    td = _golden_batch()
    torch.testing.assert_close(double(td)["loss_value"], torch.tensor(3.5 / 3))
    torch.testing.assert_close(td["td_error"], torch.tensor([0.5, 1.5, 1.0]))
    huber = DQNLoss(
        _linear_q(online, action_space="categorical"), double_dqn=True, loss_function="smooth_l1"
    )
    _set_target(huber, target)
    huber.make_value_estimator(gamma=0.5)
    torch.testing.assert_close(huber(_golden_batch())["loss_value"], torch.tensor(1.625 / 3))


def test_dqn_n_step_transitions_bootstrap_with_gamma_power_k() -> None:
    # regression: MultiStepTransform writes steps_to_next_obs = k (shorter at batch and
    # episode ends); the bootstrap must be discounted by gamma ** k, not gamma
    online = [[1.0, 0.0], [0.0, 2.0]]
    for double_dqn in (False, True):
        loss = DQNLoss(_linear_q(online, action_space="categorical"), double_dqn=double_dqn)
        loss.make_value_estimator(gamma=0.5)
        td = _golden_batch()
        td["steps_to_next_obs"] = torch.tensor([[3], [1], [2]])
        loss(td)
        # pred [2, 2, 0]; max Q(s') = [2, 2, 3]; target = r + 0.5**k (1 - term) max
        # = [1 + 0.125 * 2, 0 + 0.5 * 2, -1] = [1.25, 1, -1]
        torch.testing.assert_close(td["td_error"], torch.tensor([0.75, 1.0, 1.0]))
    # one-step batches are unchanged (k = 1 everywhere gives the plain target)
    loss = DQNLoss(_linear_q(online, action_space="categorical"))
    loss.make_value_estimator(gamma=0.5)
    td = _golden_batch()
    td["steps_to_next_obs"] = torch.ones(3, 1, dtype=torch.long)
    torch.testing.assert_close(loss(td)["loss_value"], torch.tensor(2.0 / 3.0))
    # only TD(0) knows how to bootstrap n-step transitions
    loss.make_value_estimator("td1", gamma=0.5)
    with pytest.raises(LossError, match="td0"):
        loss(td)


def test_dqn_without_delay_bootstraps_on_online_net() -> None:
    loss = DQNLoss(
        _linear_q([[1.0, 0.0], [0.0, 2.0]], action_space="categorical"), delay_value=False
    )
    loss.make_value_estimator(gamma=0.5)
    assert loss.target_pairs() == []
    torch.testing.assert_close(loss(_golden_batch())["loss_value"], torch.tensor(2.0 / 3.0))


def test_dqn_priority_weights() -> None:
    loss = DQNLoss(_linear_q([[1.0, 0.0], [0.0, 2.0]], action_space="categorical"))
    loss.make_value_estimator(gamma=0.5)
    td = _golden_batch()
    td["_weight"] = torch.tensor([5.0, 2.0, 0.5])
    torch.testing.assert_close(loss(td)["loss_value"], torch.tensor((0 + 2.0 + 0.5) / 3))


@pytest.mark.parametrize("double_dqn", [False, True])
def test_dqn_next_max_respects_action_mask(double_dqn: bool) -> None:
    net = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    actor = QValueActor(net, action_space="categorical", action_mask_key="action_mask")
    loss = DQNLoss(actor, double_dqn=double_dqn)
    loss.make_value_estimator(gamma=0.5)
    td = _golden_batch()
    td["action_mask"] = torch.ones(3, 2, dtype=torch.bool)
    # at s' only action 0 is allowed: Q(s', 0) = [0, 1, 3] -> target [1, 0.5, -1]
    td["next", "action_mask"] = torch.tensor([[True, False]] * 3)
    loss(td)
    torch.testing.assert_close(td["td_error"], torch.tensor([1.0, 1.5, 1.0]))


@pytest.mark.parametrize("double_dqn", [False, True])
def test_dqn_targets_ignore_an_exploration_module(double_dqn: bool) -> None:
    actor = _linear_q([[1.0, 0.0], [0.0, 2.0]], action_space="categorical")
    explore = EGreedyModule(Categorical(2), eps_init=1.0, eps_end=1.0)
    loss = DQNLoss(
        TensorDictSequential(actor, explore), double_dqn=double_dqn, action_space="categorical"
    )
    loss.make_value_estimator(gamma=0.5)
    for _ in range(5):  # random "action"s written by the explorer never change the target
        td = _golden_batch()
        loss(td)
        torch.testing.assert_close(td["td_error"], torch.tensor([0.0, 1.0, 1.0]))


def test_dqn_gradients_reach_online_network_only() -> None:
    loss = DQNLoss(dqn_model(DiscreteBandit().observation_spec, DiscreteBandit().action_spec))
    loss.make_value_estimator(gamma=0.9)
    out = loss(transitions(DiscreteBandit(), 16))
    out["loss_value"].backward()
    assert all(p.grad is not None for p in loss.value_network.parameters())
    assert any(bool(p.grad.abs().sum() > 0) for p in loss.value_network.parameters())
    assert all(p.grad is None for p in loss.target_value_network.parameters())


def test_dqn_default_estimator_and_keys() -> None:
    loss = DQNLoss(_linear_q([[1.0, 0.0], [0.0, 2.0]], action_space="categorical"))
    assert type(loss.value_estimator).__name__ == "TD0Estimator"
    td = _golden_batch()
    td["next", "r2"] = td["next", "reward"] * 2
    td["act"] = td.pop("action")
    loss.set_keys(reward=("next", "r2"), action="act", td_error="priority")
    loss.make_value_estimator(gamma=0.5)
    loss(td)
    # target = 2r + 0.5 (1 - term) max = [3, 1, -2]; pred [2, 2, 0]
    torch.testing.assert_close(td["priority"], torch.tensor([1.0, 1.0, 2.0]))
    with pytest.raises(LossKeyError, match="'act'"):
        loss(_golden_batch())


def test_dqn_batch_dims_and_errors() -> None:
    loss = DQNLoss(_linear_q([[1.0, 0.0], [0.0, 2.0]], action_space="categorical"))
    loss.make_value_estimator(gamma=0.5)
    flat = _golden_batch()
    two_d = stack([flat, flat.clone()], 0)
    out = loss(two_d)
    torch.testing.assert_close(out["loss_value"], torch.tensor(2.0 / 3.0))
    assert two_d["td_error"].shape == (2, 3)
    with pytest.raises(LossError, match="loss_function"):
        DQNLoss(_linear_q([[1.0, 0.0], [0.0, 1.0]], action_space="categorical"), loss_function="l3")
    with pytest.raises(LossError, match="action space"):
        DQNLoss(QValueActor(nn.Linear(2, 2), action_space="one_hot")[0])
    wrong = _golden_batch()
    wrong["action"] = torch.zeros(3, 5)
    with pytest.raises(LossError, match="does not fit"):
        loss(wrong)


def test_dqn_learns_contextual_bandit(one_thread: None) -> None:
    torch.manual_seed(0)
    task = DiscreteBandit(n_contexts=3, n_actions=3)
    loss = DQNLoss(dqn_model(task.observation_spec, task.action_spec, num_cells=(32,)))
    loss.make_value_estimator(gamma=0.9)
    updater = SoftUpdate(loss, tau=0.1)
    optim = torch.optim.Adam(loss.parameters(), lr=1e-2)
    for _ in range(200):
        loss(transitions(task, 64))["loss_value"].backward()
        optim.step()
        optim.zero_grad()
        updater.step()
    obs = torch.eye(3)
    q = loss.value_network(TensorDict({"observation": obs}, [3]))["action_value"]
    assert torch.equal(q.argmax(-1), task.best_action(obs))
    torch.testing.assert_close(q.max(-1).values, torch.ones(3), atol=0.1, rtol=0)


def test_double_dqn_learns_chain_values(one_thread: None) -> None:
    torch.manual_seed(0)
    task = Chain(n_states=4, one_hot=False)
    loss = DQNLoss(
        dqn_model(
            task.observation_spec, task.action_spec, observation_key="observation", num_cells=(32,)
        ),
        double_dqn=True,
    )
    loss.make_value_estimator(gamma=0.9)
    updater = HardUpdate(loss, value_network_update_interval=20)
    optim = torch.optim.Adam(loss.parameters(), lr=1e-2)
    for _ in range(400):
        loss(transitions(task, 64))["loss_value"].backward()
        optim.step()
        optim.zero_grad()
        updater.step()
    obs = torch.eye(4)[:3]
    q = loss.value_network(TensorDict({"observation": obs}, [3]))["action_value"]
    assert torch.equal(q.argmax(-1), torch.ones(3, dtype=torch.long))  # always go right
    expected = torch.tensor([0.81, 0.9, 1.0])  # Q(s, right) = 0.9 ** (steps to the goal - 1)
    torch.testing.assert_close(q[:, 1], expected, atol=0.08, rtol=0)


# --------------------------------------------------------------------------- #
# C51
# --------------------------------------------------------------------------- #
def _naive_projection(
    support: torch.Tensor, probs: torch.Tensor, reward: torch.Tensor, discount: torch.Tensor
) -> torch.Tensor:
    """The textbook per-atom loop: floor/ceil neighbours, mass split by distance."""
    v_min, v_max = float(support[0]), float(support[-1])
    n = support.numel()
    dz = (v_max - v_min) / (n - 1)
    out = torch.zeros_like(probs)
    for b in range(probs.shape[0]):
        for j in range(n):
            tz = min(max(float(reward[b]) + float(discount[b]) * float(support[j]), v_min), v_max)
            pos = (tz - v_min) / dz
            low, up = math.floor(pos), math.ceil(pos)
            if low == up:
                out[b, low] += probs[b, j]
            else:
                out[b, low] += probs[b, j] * (up - pos)
                out[b, up] += probs[b, j] * (pos - low)
    return out


def test_categorical_projection_matches_naive_loop() -> None:
    torch.manual_seed(0)
    support = torch.linspace(-2.0, 3.0, 11, dtype=torch.float64)
    probs = torch.softmax(torch.randn(64, 11, dtype=torch.float64), -1)
    reward = torch.randn(64, dtype=torch.float64) * 2
    discount = 0.9 * (torch.rand(64) > 0.2).double()
    reward[:4] = torch.tensor([0.5, -10.0, 10.0, 1.0])  # on an atom, clamped low, clamped high
    discount[:4] = torch.tensor([0.0, 0.9, 0.9, 1.0])
    got = categorical_projection(support, probs, reward.unsqueeze(-1), discount.unsqueeze(-1))
    want = _naive_projection(support, probs, reward, discount)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got.sum(-1), torch.ones(64, dtype=torch.float64))
    one = torch.ones((), dtype=torch.float64)
    torch.testing.assert_close(got[0, 5], one)  # r = 0.5 lands exactly on an atom, terminal
    torch.testing.assert_close(got[1, 0], one)  # everything clamped to the lowest atom
    torch.testing.assert_close(got[2, -1], one)  # and to the highest


# ---------------------------------------------------------------------- #
# action_space given as the env's action spec (TorchRL's DQNLoss(action_space=env.action_spec))
# ---------------------------------------------------------------------- #
SPEC_SPACES = [
    (OneHot(2), "one_hot"),
    (OneHot(2, dtype=torch.float32), "one_hot"),
    (Categorical(2), "categorical"),
    (Categorical(2, shape=(1,)), "categorical"),  # CountingEnv's layout
    (Composite(action=OneHot(2)), "one_hot"),  # a full input spec: its "action" entry
    (Composite(action=Categorical(2), observation=Unbounded(shape=(2,))), "categorical"),
    ("one_hot", "one_hot"),
    ("one-hot", "one_hot"),  # TorchRL's spelling
    ("categorical", "categorical"),
]
UNSUPPORTED_SPECS = [
    (MultiOneHot([2, 3]), r"got MultiOneHot; a MultiOneHot action .* is not supported"),
    (MultiCategorical([2, 3]), r"got MultiCategorical; a MultiCategorical action"),
    (Binary(3), r"got Binary; a Binary action"),
    (Bounded(-1.0, 1.0, shape=(2,)), r"must be OneHot or Categorical, got Bounded$"),
    (Unbounded(shape=(2,)), r"must be OneHot or Categorical, got Unbounded$"),
    (Composite(observation=OneHot(2)), r"Composite action_space has no 'action' entry"),
]
WRONG_TYPES = [
    ("discrete", r"must be one of \['one_hot', 'categorical'\].*got 'discrete'$"),
    (3, r"got 3 \(int\)$"),
    (torch.zeros(2), r"action spec \(OneHot or Categorical, e\.g\. env\.action_spec\), got tensor"),
    (OneHot, r"got <class .*OneHot'> \(ABCMeta\)"),  # the class, not a spec
]


@pytest.mark.parametrize(("action_space", "expected"), SPEC_SPACES)
def test_dqn_losses_take_the_action_spec_as_action_space(action_space, expected) -> None:
    net = _linear_q([[1.0, 0.0], [0.0, 2.0]], action_space="categorical")[0]  # no spec of its own
    loss = DQNLoss(net, action_space=action_space)
    assert loss.action_space == expected
    reference = DQNLoss(copy.deepcopy(net), action_space=expected)
    batches = [_golden_batch(one_hot=expected == "one_hot")]
    if expected == "categorical":  # index actions [B], and [B, 1] as Categorical(2, shape=(1,))
        batches.append(batches[0].clone().set("action", batches[0]["action"].unsqueeze(-1)))
    for batch in batches:
        assert_close(loss(batch.clone()), reference(batch.clone()))
    assert DistributionalDQNLoss(_c51(), 0.9, action_space=action_space).action_space == expected
    critics = [QValueActor(nn.Linear(2, 2), action_space="one_hot") for _ in range(2)]
    actor = QValueActor(nn.Linear(2, 2), action_space="one_hot")
    sac = DiscreteSACLoss(actor, critics, num_actions=2, action_space=action_space)
    assert sac.action_space == expected


@pytest.mark.parametrize(("action_space", "match"), UNSUPPORTED_SPECS + WRONG_TYPES)
def test_dqn_losses_refuse_other_action_spaces_clearly(action_space, match) -> None:
    net = _linear_q([[1.0, 0.0], [0.0, 2.0]], action_space="categorical")
    for make in (
        lambda: DQNLoss(net, action_space=action_space),
        lambda: DistributionalDQNLoss(_c51(), 0.9, action_space=action_space),
    ):
        with pytest.raises(LossValueError, match=match) as info:
            make()
        assert isinstance(info.value, LossError)
        assert isinstance(info.value, ValueError)
        assert str(info.value).startswith(("DQNLoss", "DistributionalDQNLoss"))


def test_dqn_loss_reads_the_spec_of_its_network() -> None:
    assert DQNLoss(_linear_q([[1.0, 0.0], [0.0, 1.0]], spec=Categorical(2))).action_space == (
        "categorical"
    )
    # a network whose spec is not discrete: the loss cannot tell, and says how to tell it
    net = QValueActor(nn.Linear(2, 2), action_space="one_hot")[0]
    net.spec = Bounded(-1.0, 1.0, shape=(2,))  # type: ignore[assignment]
    with pytest.raises(LossValueError, match=r"cannot tell the action space.*env\.action_spec"):
        DQNLoss(net)


def _c51(n_atoms: int = 5) -> DistributionalQValueActor:
    net = nn.Sequential(nn.Linear(2, 2 * n_atoms), nn.Unflatten(-1, (2, n_atoms)))
    return DistributionalQValueActor(
        net, torch.linspace(-1.0, 1.0, n_atoms), action_space="categorical"
    )


def test_distributional_loss_matches_reference() -> None:
    torch.manual_seed(0)
    actor = _c51()
    loss = DistributionalDQNLoss(actor, gamma=0.8)
    with torch.no_grad():  # a different target network
        for p in loss.target_value_network.parameters():
            p.add_(torch.randn_like(p))
    td = _golden_batch()
    out = loss(td)
    support = torch.linspace(-1.0, 1.0, 5)
    log_p = torch.log_softmax(actor[0].module(td["observation"]), -1)
    chosen = log_p[torch.arange(3), td["action"]]
    with torch.no_grad():
        next_p = torch.softmax(loss.target_value_network[0].module(td["next", "observation"]), -1)
        greedy = (next_p * support).sum(-1).argmax(-1)
        target = _naive_projection(
            support,
            next_p[torch.arange(3), greedy],
            td["next", "reward"].squeeze(-1),
            0.8 * (~td["next", "terminated"]).float().squeeze(-1),
        )
    ce = -(target * chosen).sum(-1)
    torch.testing.assert_close(out["loss_value"], ce.mean())
    torch.testing.assert_close(td["td_error"], ce.detach())
    out["loss_value"].backward()
    assert all(p.grad is not None for p in loss.value_network.parameters())
    assert all(p.grad is None for p in loss.target_value_network.parameters())


def test_distributional_double_dqn_and_n_step_discount() -> None:
    # regression: Rainbow's C51 target uses the online network's greedy next action
    # (double_dqn=True) and n-step transitions discounted by gamma ** steps_to_next_obs
    torch.manual_seed(0)
    actor = _c51()
    loss = DistributionalDQNLoss(actor, gamma=0.8, double_dqn=True)
    with torch.no_grad():  # a different target network
        for p in loss.target_value_network.parameters():
            p.add_(torch.randn_like(p))
    td = _golden_batch()
    td["steps_to_next_obs"] = torch.tensor([[3], [1], [2]])
    out = loss(td)
    support = torch.linspace(-1.0, 1.0, 5)
    log_p = torch.log_softmax(actor[0].module(td["observation"]), -1)
    chosen = log_p[torch.arange(3), td["action"]]
    with torch.no_grad():
        next_obs = td["next", "observation"]
        online_p = torch.softmax(actor[0].module(next_obs), -1)
        target_p = torch.softmax(loss.target_value_network[0].module(next_obs), -1)
        greedy = (online_p * support).sum(-1).argmax(-1)
        discount = 0.8 ** td["steps_to_next_obs"].squeeze(-1).float()
        target = _naive_projection(
            support,
            target_p[torch.arange(3), greedy],
            td["next", "reward"].squeeze(-1),
            discount * (~td["next", "terminated"]).float().squeeze(-1),
        )
    torch.testing.assert_close(out["loss_value"], -(target * chosen).sum(-1).mean())
    # the online and target networks disagree on the greedy action somewhere
    assert not torch.equal(greedy, (target_p * support).sum(-1).argmax(-1))


def test_distributional_greedy_next_action_respects_mask() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 2 * 5), nn.Unflatten(-1, (2, 5)))
    support = torch.linspace(-1.0, 1.0, 5)
    actor = DistributionalQValueActor(
        net, support, action_space="categorical", action_mask_key="action_mask"
    )
    loss = DistributionalDQNLoss(actor, gamma=0.8)
    td = _golden_batch()
    td["action_mask"] = torch.ones(3, 2, dtype=torch.bool)
    for allowed in (0, 1):
        td["next", "action_mask"] = nn.functional.one_hot(torch.full((3,), allowed), 2).bool()
        out = loss(td)
        log_p = torch.log_softmax(net(td["observation"]), -1)[torch.arange(3), td["action"]]
        with torch.no_grad():
            next_p = torch.softmax(net(td["next", "observation"]), -1)[:, allowed]
            target = _naive_projection(
                support,
                next_p,
                td["next", "reward"].squeeze(-1),
                0.8 * (~td["next", "terminated"]).float().squeeze(-1),
            )
        torch.testing.assert_close(out["loss_value"], -(target * log_p).sum(-1).mean())


def test_distributional_errors() -> None:
    with pytest.raises(LossError, match="gamma"):
        DistributionalDQNLoss(_c51(), gamma=1.5)
    with pytest.raises(LossError, match="no 'support'"):
        DistributionalDQNLoss(
            _linear_q([[1.0, 0.0], [0.0, 1.0]], action_space="one_hot"), gamma=0.9
        )
    uneven = DistributionalQValueActor(
        nn.Sequential(nn.Linear(2, 6), nn.Unflatten(-1, (2, 3))),
        torch.tensor([0.0, 1.0, 3.0]),
        action_space="categorical",
    )
    with pytest.raises(LossError, match="evenly spaced"):
        DistributionalDQNLoss(uneven, gamma=0.9)
    with pytest.raises(LossError, match="no value estimator"):
        DistributionalDQNLoss(_c51(), gamma=0.9).make_value_estimator()


def test_distributional_learns_bandit(one_thread: None) -> None:
    torch.manual_seed(0)
    task = DiscreteBandit(n_contexts=3, n_actions=3, one_hot=False)
    net = dqn_model(
        task.observation_spec,
        task.action_spec,
        num_cells=(32,),
        distributional=11,
        v_min=-0.5,
        v_max=1.5,
    )
    loss = DistributionalDQNLoss(net, gamma=0.9)
    updater = SoftUpdate(loss, tau=0.1)
    optim = torch.optim.Adam(loss.parameters(), lr=1e-2)
    first = None
    for _ in range(200):
        value = loss(transitions(task, 64))["loss_value"]
        first = value.item() if first is None else first
        value.backward()
        optim.step()
        optim.zero_grad()
        updater.step()
    obs = torch.eye(3)
    td = loss.value_network(TensorDict({"observation": obs}, [3]))
    assert torch.equal(td["action"], task.best_action(obs))
    assert value.item() < 0.5 * first
