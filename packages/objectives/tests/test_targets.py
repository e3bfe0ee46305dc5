"""SoftUpdate / HardUpdate: exact Polyak and periodic-copy semantics."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from rlbricks.objectives import HardUpdate
from rlbricks.objectives import LossError
from rlbricks.objectives import LossModule
from rlbricks.objectives import SoftUpdate
from rlbricks.objectives import TargetNetUpdater


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.norm = nn.BatchNorm1d(2)  # float buffers and an integer counter


def _loss(**delays: bool) -> LossModule:
    loss = LossModule()
    loss.register_network("actor_network", _Net(), delay=delays.get("actor", True))
    loss.register_network("qvalue_network", _Net(), delay=delays.get("qvalue", True), copies=2)
    return loss


def _perturb(loss: LossModule, value: float) -> None:
    with torch.no_grad():
        for net, _ in loss.target_pairs():
            for p in net.parameters():
                p.fill_(value)
            for b in net.buffers():
                b.fill_(int(value) if not b.is_floating_point() else value)


def _snapshot(module: nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in list(module.parameters()) + list(module.buffers())]


def test_soft_update_is_polyak_on_every_target() -> None:
    loss = _loss()
    _perturb(loss, 2.0)
    before = [(_snapshot(n), _snapshot(t)) for n, t in loss.target_pairs()]
    updater = SoftUpdate(loss, tau=0.25)
    updater.step()
    for (net_before, tgt_before), (_, tgt) in zip(before, loss.target_pairs()):
        for src, old, new in zip(net_before, tgt_before, _snapshot(tgt)):
            if old.is_floating_point():
                torch.testing.assert_close(new, 0.75 * old + 0.25 * src)
            else:
                assert torch.equal(new, src)  # integer counters are copied


def test_soft_update_converges_geometrically() -> None:
    loss = _loss()
    target = loss.target_actor_network.linear.bias
    with torch.no_grad():
        target.zero_()
        loss.actor_network.linear.bias.fill_(1.0)
    updater = SoftUpdate(loss, eps=0.9)
    for _ in range(5):
        updater.step()
    torch.testing.assert_close(target, torch.full((2,), 1 - 0.9**5))
    assert updater.tau == pytest.approx(0.1)
    assert updater.eps == pytest.approx(0.9)


def test_soft_update_default_tau_and_errors() -> None:
    loss = _loss()
    assert SoftUpdate(loss).tau == 0.005
    with pytest.raises(LossError, match="not both"):
        SoftUpdate(loss, tau=0.1, eps=0.9)
    with pytest.raises(LossError, match="tau must be"):
        SoftUpdate(loss, tau=0.0)
    with pytest.raises(LossError, match="tau must be"):
        SoftUpdate(loss, eps=1.5)


def test_soft_update_leaves_networks_and_grads_alone() -> None:
    loss = _loss()
    _perturb(loss, 3.0)
    nets = [_snapshot(n) for n, _ in loss.target_pairs()]
    SoftUpdate(loss, tau=0.5).step()
    for before, (net, tgt) in zip(nets, loss.target_pairs()):
        for a, b in zip(before, _snapshot(net)):
            assert torch.equal(a, b)
        assert all(p.grad is None and not p.requires_grad for p in tgt.parameters())


def test_hard_update_copies_every_n_steps_exactly() -> None:
    loss = _loss()
    updater = HardUpdate(loss, value_network_update_interval=3)
    expected = [_snapshot(t) for _, t in loss.target_pairs()]
    for call in range(1, 10):
        _perturb(loss, float(call))  # the networks change before every step
        updater.step()
        if call % 3 == 0:  # copies happen at calls 3, 6, 9 with the networks of that moment
            expected = [_snapshot(n) for n, _ in loss.target_pairs()]
        for want, (_, tgt) in zip(expected, loss.target_pairs()):
            assert all(torch.equal(a, b) for a, b in zip(want, _snapshot(tgt))), call
    assert updater.counter == 9
    assert torch.equal(loss.target_actor_network.linear.bias, torch.full((2,), 9.0))


def test_hard_update_default_and_errors() -> None:
    loss = _loss()
    assert HardUpdate(loss).value_network_update_interval == 1000
    with pytest.raises(LossError, match="integer >= 1"):
        HardUpdate(loss, value_network_update_interval=0)
    with pytest.raises(LossError, match="integer >= 1"):
        HardUpdate(loss, value_network_update_interval=2.5)  # type: ignore[arg-type]


def test_updaters_need_target_networks() -> None:
    loss = _loss(actor=False, qvalue=False)
    with pytest.raises(LossError, match="no target network"):
        SoftUpdate(loss)
    with pytest.raises(LossError, match="LossModule"):
        HardUpdate(nn.Linear(2, 2))  # type: ignore[arg-type]


def test_only_delayed_networks_are_updated() -> None:
    loss = _loss(actor=False)
    assert [n for n, _ in loss.target_pairs()] == [loss.qvalue_network]
    assert loss.target_network("actor_network") is loss.actor_network
    _perturb(loss, 4.0)
    SoftUpdate(loss, tau=1.0).step()
    for net, tgt in zip(loss.qvalue_network, loss.target_qvalue_network):
        assert all(torch.equal(a, b) for a, b in zip(_snapshot(net), _snapshot(tgt)))


def test_init_copies_and_updater_follows_device_moves() -> None:
    loss = _loss()
    updater = TargetNetUpdater(loss)
    with pytest.raises(NotImplementedError):
        updater.step()
    _perturb(loss, 1.5)
    loss.to(torch.float64)  # replaces buffers: the updater must see the new tensors
    updater.init_()
    for net, tgt in loss.target_pairs():
        assert all(torch.equal(a, b) for a, b in zip(_snapshot(net), _snapshot(tgt)))
        assert next(tgt.parameters()).dtype == torch.float64


def test_mismatched_target_is_reported() -> None:
    loss = _loss()
    loss.target_actor_network = copy.deepcopy(nn.Linear(5, 5))
    with pytest.raises(LossError, match="does not match"):
        SoftUpdate(loss)
