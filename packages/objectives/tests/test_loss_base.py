"""LossModule: networks and target copies, keys, value estimator plumbing, helpers."""

from __future__ import annotations

from typing import Any
from typing import ClassVar

import pytest
import torch
from torch import nn

from rlbricks.modules import QValueActor
from rlbricks.modules import ValueOperator
from rlbricks.objectives import DQNLoss
from rlbricks.objectives import LossError
from rlbricks.objectives import LossKeyError
from rlbricks.objectives import LossKeys
from rlbricks.objectives import LossModule
from rlbricks.objectives._loss_base import reset_copy
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict


class _Regress(LossModule):
    default_keys: ClassVar[dict[str, NestedKey]] = {
        "value": "state_value",
        "value_target": "value_target",
        "td_error": "td_error",
        "priority_weight": "_weight",
    }
    default_value_type: ClassVar[Any] = "td0"

    def __init__(self, critic: nn.Module, delay: bool = True) -> None:
        super().__init__()
        self.register_network("critic_network", critic, delay=delay)
        self.keys_changed_calls = 0

    def _keys_changed(self) -> None:
        self.keys_changed_calls += 1

    def forward(self, tensordict: TensorDict) -> TensorDict:
        value = self.critic_network(tensordict.copy())[self.tensor_keys.value].squeeze(-1)
        target = self._get(tensordict, "value_target").squeeze(-1)
        self._write_td_error(tensordict, (value - target).abs())
        return TensorDict({"loss_value": self._reduce((value - target).pow(2), tensordict)})


def _batch(n: int = 6) -> TensorDict:
    return TensorDict(
        {"observation": torch.randn(n, 3), "value_target": torch.randn(n, 1)}, batch_size=[n]
    )


def test_target_copy_is_frozen_deep_copy_and_in_state_dict() -> None:
    critic = ValueOperator(nn.Linear(3, 1))
    loss = _Regress(critic)
    target = loss.target_critic_network
    assert target is not critic
    assert all(not p.requires_grad for p in target.parameters())
    assert all(p.requires_grad for p in critic.parameters())
    for a, b in zip(critic.parameters(), target.parameters()):
        assert torch.equal(a, b)
        assert a.data_ptr() != b.data_ptr()
    names = set(loss.state_dict())
    assert {"critic_network.module.weight", "target_critic_network.module.weight"} <= names
    # parameters() holds both; only the online ones are trainable
    trainable = [p for p in loss.parameters() if p.requires_grad]
    assert len(trainable) == 2
    assert len(list(loss.parameters())) == 4


def test_targets_never_receive_gradients_and_optimiser_skips_them() -> None:
    loss = _Regress(ValueOperator(nn.Linear(3, 1)))
    before = [p.clone() for p in loss.target_critic_network.parameters()]
    optim = torch.optim.Adam(loss.parameters(), lr=0.1)
    loss(_batch())["loss_value"].backward()
    assert all(p.grad is None for p in loss.target_critic_network.parameters())
    assert all(p.grad is not None for p in loss.critic_network.parameters())
    optim.step()
    for a, b in zip(before, loss.target_critic_network.parameters()):
        assert torch.equal(a, b)


def test_not_delayed_target_is_the_network() -> None:
    loss = _Regress(ValueOperator(nn.Linear(3, 1)), delay=False)
    assert loss.target_network("critic_network") is loss.critic_network
    assert loss.target_pairs() == []
    assert not hasattr(loss, "target_critic_network")
    with pytest.raises(LossError, match="no network named"):
        loss.target_network("actor_network")


def test_copies_have_separate_reinitialised_parameters() -> None:
    torch.manual_seed(0)
    loss = LossModule()
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    loss.register_network("qvalue_network", net, delay=True, copies=3)
    assert loss.qvalue_network[0] is net
    weights = [q[0].weight for q in loss.qvalue_network]
    assert not torch.equal(weights[0], weights[1])
    assert not torch.equal(weights[1], weights[2])
    assert len({w.data_ptr() for w in weights}) == 3
    for q, tq in zip(loss.qvalue_network, loss.target_qvalue_network):
        assert torch.equal(q[0].weight, tq[0].weight)
    with pytest.raises(LossError, match="copies must be >= 1"):
        loss.register_network("x", net, copies=0)
    with pytest.raises(LossError, match=r"must be an nn\.Module"):
        loss.register_network("x", lambda x: x)  # type: ignore[arg-type]


def test_reset_copy_keeps_parameters_without_reset() -> None:
    class Scale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.s = nn.Parameter(torch.tensor(3.0))

    net = nn.Sequential(nn.Linear(2, 2), Scale())
    clone = reset_copy(net)
    assert torch.equal(clone[1].s, net[1].s)
    assert not torch.equal(clone[0].weight, net[0].weight)


def test_keys_table_set_keys_and_errors() -> None:
    loss = _Regress(ValueOperator(nn.Linear(3, 1)))
    assert isinstance(loss.tensor_keys, LossKeys)
    assert dict(loss.tensor_keys) == _Regress.default_keys
    assert loss.set_keys(value_target=("next", "target")) is loss
    assert loss.tensor_keys.value_target == ("next", "target")
    assert loss.tensor_keys["value_target"] == ("next", "target")
    assert loss.keys_changed_calls == 1
    with pytest.raises(LossError) as info:
        loss.set_keys(valu="v")
    msg = str(info.value)
    assert "'valu'" in msg
    assert "['priority_weight', 'td_error', 'value', 'value_target']" in msg
    with pytest.raises(LossError, match="set_keys"):
        loss.set_keys(value=3)  # type: ignore[arg-type]
    with pytest.raises(AttributeError, match="the names are"):
        _ = loss.tensor_keys.nope
    # the class table is untouched
    assert _Regress.default_keys["value_target"] == "value_target"
    assert _Regress(ValueOperator(nn.Linear(3, 1))).tensor_keys.value_target == "value_target"


def test_set_keys_changes_what_forward_reads() -> None:
    loss = _Regress(ValueOperator(nn.Linear(3, 1)))
    td = _batch()
    td["returns"] = td.pop("value_target")
    with pytest.raises(LossKeyError) as info:
        loss(td)
    msg = str(info.value)
    assert "'value_target'" in msg
    assert "returns" in msg
    assert "set_keys(value_target=...)" in msg
    assert isinstance(info.value, KeyError)
    loss.set_keys(value_target="returns")
    assert loss(td)["loss_value"].shape == ()


def test_reduce_weights_and_td_error() -> None:
    torch.manual_seed(1)
    loss = _Regress(ValueOperator(nn.Linear(3, 1)))
    td = _batch(5)
    plain = loss(td)["loss_value"]
    value = loss.critic_network(td.copy())["state_value"].squeeze(-1)
    err = (value - td["value_target"].squeeze(-1)).detach()
    torch.testing.assert_close(plain, err.pow(2).mean())
    torch.testing.assert_close(td["td_error"], err.abs())
    assert not td["td_error"].requires_grad
    weight = torch.tensor([0.0, 1.0, 2.0, 0.5, 1.5])
    td["_weight"] = weight
    torch.testing.assert_close(loss(td)["loss_value"], (err.pow(2) * weight).mean())


def test_forward_must_be_implemented() -> None:
    with pytest.raises(NotImplementedError, match="LossModule must implement"):
        LossModule()(_batch())


def _dqn_batch(n: int = 8) -> TensorDict:
    action = torch.nn.functional.one_hot(torch.arange(n) % 2, 2).bool()
    nxt = {
        "observation": torch.randn(n, 3),
        "reward": torch.ones(n, 1),
        "done": torch.zeros(n, 1, dtype=torch.bool),
        "terminated": torch.zeros(n, 1, dtype=torch.bool),
    }
    return TensorDict({"observation": torch.randn(n, 3), "action": action, "next": nxt}, [n])


def _dqn_loss() -> DQNLoss:
    return DQNLoss(QValueActor(nn.Linear(3, 2), action_space="one_hot"))


def test_non_finite_loss_from_a_non_finite_reward_names_the_key() -> None:
    td = _dqn_batch()
    td["next", "reward"][[2, 5]] = torch.tensor([[float("nan")], [float("inf")]])
    expected = (
        r"DQNLoss: loss_value is nan because the input holds non-finite values under "
        r"\('next', 'reward'\) \(2 of 8 entries, first at index \(2, 0\): nan\)"
    )
    with pytest.raises(LossError, match=expected):
        _dqn_loss()(td)


def test_non_finite_loss_from_finite_inputs_is_returned() -> None:
    loss = _dqn_loss()
    with torch.no_grad():
        for param in loss.value_network.parameters():
            param.fill_(float("nan"))  # a diverged network
    assert loss(_dqn_batch())["loss_value"].isnan()


def test_non_finite_input_check_can_be_turned_off() -> None:
    td = _dqn_batch()
    td["next", "reward"][0] = float("nan")
    loss = _dqn_loss()
    loss.check_nonfinite_inputs = False
    assert loss(td)["loss_value"].isnan()


def test_make_value_estimator_without_default_raises() -> None:
    with pytest.raises(LossError, match="uses no value estimator"):
        LossModule().make_value_estimator()


class _Recorder:
    def __init__(self) -> None:
        self.keys: dict[str, object] = {}

    def set_keys(self, **keys: object) -> None:
        self.keys.update(keys)


def test_estimator_keys_are_forwarded_on_make_and_on_set_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[tuple[object, dict[str, object]]] = []

    def fake_factory(value_type: object, **kwargs: object) -> _Recorder:
        made.append((value_type, kwargs))
        return _Recorder()

    import rlbricks.objectives.value as value_pkg

    monkeypatch.setattr(value_pkg, "make_value_estimator", fake_factory, raising=False)

    class WithEstimator(_Regress):
        def _value_estimator_defaults(self) -> dict[str, object]:
            return {"value_network": self.critic_network, "gamma": 0.5}

        def _value_estimator_keys(self) -> dict[str, object]:
            return {"value": self.tensor_keys.value}

    loss = WithEstimator(ValueOperator(nn.Linear(3, 1)))
    estimator = loss.value_estimator  # made on first use with the defaults
    assert made[0][0] == "td0"
    assert made[0][1]["gamma"] == 0.5
    assert made[0][1]["value_network"] is loss.critic_network
    assert estimator.keys == {"value": "state_value"}
    loss.set_keys(value="v")
    assert estimator.keys == {"value": "v"}
    loss.make_value_estimator("gae", gamma=0.9, lmbda=0.95)
    assert made[1] == ("gae", {"value_network": loss.critic_network, "gamma": 0.9, "lmbda": 0.95})
    # the estimator is not a submodule: the state dict holds each parameter once
    assert all(not k.startswith("_value_estimator") for k in loss.state_dict())


def test_to_moves_registered_estimator_module(monkeypatch: pytest.MonkeyPatch) -> None:
    class Est(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("gamma", torch.tensor(0.9))

        def set_keys(self, **keys: object) -> None:
            pass

    import rlbricks.objectives.value as value_pkg

    monkeypatch.setattr(value_pkg, "make_value_estimator", lambda *_a, **_k: Est(), raising=False)
    loss = _Regress(ValueOperator(nn.Linear(3, 1)))
    loss.make_value_estimator()
    loss.to(torch.float64)
    assert loss.value_estimator.gamma.dtype == torch.float64
    assert loss.critic_network.module.weight.dtype == torch.float64
