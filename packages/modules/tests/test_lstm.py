"""LSTMModule: step mode against nn.LSTM, state carrying and resets, sequence mode == step by step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rlbricks.modules import LSTMModule
from rlbricks.modules import ModuleError
from rlbricks.modules import ModuleKeyError
from rlbricks.modules import TensorDictModule
from rlbricks.modules import TensorDictSequential
from rlbricks.tensordict import TensorDict

H_KEY, C_KEY = "recurrent_state_h", "recurrent_state_c"


def _step_mdp(td):
    """The part of step_mdp that matters here: ("next", state) becomes the root state."""
    return TensorDict({H_KEY: td["next", H_KEY], C_KEY: td["next", C_KEY]}, td.batch_size)


def _reference_step(lstm: nn.LSTM, x, h, c):
    """nn.LSTM on one step; x [n, F], h/c [n, layers, hidden]."""
    y, (hn, cn) = lstm(
        x.unsqueeze(1), (h.transpose(0, 1).contiguous(), c.transpose(0, 1).contiguous())
    )
    return y[:, 0], hn.transpose(0, 1), cn.transpose(0, 1)


@pytest.mark.parametrize("batch", [(), (4,), (2, 3)])
@pytest.mark.parametrize("layers", [1, 2])
def test_step_mode_matches_nn_lstm(batch, layers):
    torch.manual_seed(0)
    module = LSTMModule(3, 5, num_layers=layers)
    x = torch.randn(*batch, 3)
    h, c = torch.randn(*batch, layers, 5), torch.randn(*batch, layers, 5)
    td = module(TensorDict({"observation": x, H_KEY: h, C_KEY: c}, batch))
    n = torch.Size(batch).numel()
    y, hn, cn = _reference_step(
        module.lstm, x.reshape(n, 3), h.reshape(n, layers, 5), c.reshape(n, layers, 5)
    )
    torch.testing.assert_close(td["embed"], y.reshape(*batch, 5))
    torch.testing.assert_close(td["next", H_KEY], hn.reshape(*batch, layers, 5))
    torch.testing.assert_close(td["next", C_KEY], cn.reshape(*batch, layers, 5))
    torch.testing.assert_close(td[H_KEY], h)  # the input state is not overwritten


def test_missing_state_is_zeros_and_is_written_at_the_root():
    torch.manual_seed(0)
    module = LSTMModule(3, 4, num_layers=2)
    x = torch.randn(6, 3)
    td = module(TensorDict({"observation": x}, [6]))
    torch.testing.assert_close(td[H_KEY], torch.zeros(6, 2, 4))
    torch.testing.assert_close(td[C_KEY], torch.zeros(6, 2, 4))
    y, _, _ = _reference_step(module.lstm, x, torch.zeros(6, 2, 4), torch.zeros(6, 2, 4))
    torch.testing.assert_close(td["embed"], y)


def test_is_init_resets_the_state_per_env():
    torch.manual_seed(0)
    module = LSTMModule(2, 3)
    x = torch.randn(4, 2)
    h, c = torch.randn(4, 1, 3), torch.randn(4, 1, 3)
    is_init = torch.tensor([[True], [False], [False], [True]])
    td = module(TensorDict({"observation": x, H_KEY: h, C_KEY: c, "is_init": is_init}, [4]))
    keep = (~is_init).float().unsqueeze(-1)
    y, hn, _ = _reference_step(module.lstm, x, h * keep, c * keep)
    torch.testing.assert_close(td["embed"], y)
    torch.testing.assert_close(td["next", H_KEY], hn)


def test_state_carried_over_steps_equals_a_sequence():
    torch.manual_seed(0)
    module = LSTMModule(3, 4)
    xs = torch.randn(5, 7, 3)  # 5 envs, 7 steps
    td = TensorDict({"observation": xs[:, 0]}, [5])
    outs = []
    for t in range(7):
        module(td)
        outs.append(td["embed"])
        td = _step_mdp(td)
        if t + 1 < 7:
            td["observation"] = xs[:, t + 1]
    expected, _ = module.lstm(xs)
    torch.testing.assert_close(torch.stack(outs, 1), expected)


def _step_by_step(module, xs, h0, c0, is_init):
    """Feed [*lead, T] data one step at a time, carrying the state like a rollout does."""
    lead, steps = xs.shape[:-2], xs.shape[-2]
    td = TensorDict({H_KEY: h0, C_KEY: c0}, lead)
    outs, hs, cs = [], [], []
    for t in range(steps):
        td["observation"] = xs[..., t, :]
        td["is_init"] = is_init[..., t, :]
        module(td)
        outs.append(td["embed"])
        hs.append(td["next", H_KEY])
        cs.append(td["next", C_KEY])
        td = _step_mdp(td)
    return torch.stack(outs, len(lead)), torch.stack(hs, len(lead)), torch.stack(cs, len(lead))


@pytest.mark.parametrize("lead", [(3,), (2, 2)])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("with_resets", [False, True])
def test_sequence_mode_equals_step_by_step(lead, layers, with_resets):
    torch.manual_seed(0)
    steps, hidden = 9, 4
    step_module = LSTMModule(3, hidden, num_layers=layers)
    seq_module = step_module.set_recurrent_mode(True)
    xs = torch.randn(*lead, steps, 3)
    h0, c0 = torch.randn(*lead, layers, hidden), torch.randn(*lead, layers, hidden)
    is_init = torch.zeros(*lead, steps, 1, dtype=torch.bool)
    if with_resets:
        flat = is_init.view(-1, steps)
        flat[0, 4] = True  # in the middle
        flat[0, 5] = True  # two in a row
        flat[-1, 0] = True  # at the start: the stored state is ignored
        flat[-1, steps - 1] = True  # at the end
    expected_y, expected_h, expected_c = _step_by_step(step_module, xs, h0, c0, is_init)

    # the stored root state at t > 0 is whatever the rollout stored; only t = 0 is used
    stored_h = torch.randn(*lead, steps, layers, hidden)
    stored_c = torch.randn(*lead, steps, layers, hidden)
    stored_h[..., 0, :, :], stored_c[..., 0, :, :] = h0, c0
    td = TensorDict(
        {"observation": xs, "is_init": is_init, H_KEY: stored_h, C_KEY: stored_c}, (*lead, steps)
    )
    seq_module(td)
    torch.testing.assert_close(td["embed"], expected_y, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        td["next", H_KEY][..., -1, :, :], expected_h[..., -1, :, :], rtol=1e-5, atol=1e-6
    )
    torch.testing.assert_close(
        td["next", C_KEY][..., -1, :, :], expected_c[..., -1, :, :], rtol=1e-5, atol=1e-6
    )
    assert bool((td["next", H_KEY][..., :-1, :, :] == 0).all())  # documented: zeros before the end


def test_sequence_mode_without_state_or_is_init_starts_from_zeros():
    torch.manual_seed(0)
    module = LSTMModule(2, 3, recurrent_mode=True)
    xs = torch.randn(4, 6, 2)
    td = module(TensorDict({"observation": xs}, [4, 6]))
    expected, (hn, _) = module.lstm(xs)
    torch.testing.assert_close(td["embed"], expected)
    torch.testing.assert_close(td["next", H_KEY][:, -1], hn.transpose(0, 1))
    assert H_KEY not in td.keys()  # sequence mode does not write the root state


def test_sequence_mode_gradients_reach_the_weights_and_the_input():
    torch.manual_seed(0)
    module = LSTMModule(2, 3, recurrent_mode=True)
    xs = torch.randn(3, 5, 2, requires_grad=True)
    is_init = torch.zeros(3, 5, 1, dtype=torch.bool)
    is_init[1, 2] = True
    td = module(TensorDict({"observation": xs, "is_init": is_init}, [3, 5]))
    td["embed"].sum().backward()
    assert xs.grad is not None
    assert bool(xs.grad.abs().sum() > 0)
    assert all(p.grad is not None for p in module.parameters())
    # the reset cuts the dependency: the output after the reset ignores earlier inputs
    xs.grad = None
    module(TensorDict({"observation": xs, "is_init": is_init}, [3, 5]))["embed"][
        1, 3
    ].sum().backward()
    assert bool((xs.grad[1, :2] == 0).all())
    assert bool(xs.grad[1, 2:4].abs().sum() > 0)


def test_set_recurrent_mode_shares_weights_and_leaves_self_unchanged():
    module = LSTMModule(2, 3)
    seq = module.set_recurrent_mode()
    assert seq.recurrent_mode
    assert not module.recurrent_mode
    assert seq.lstm is module.lstm
    assert list(seq.parameters()) == list(module.parameters())
    assert set(seq.state_dict()) == set(module.state_dict())
    back = seq.set_recurrent_mode(False)
    assert not back.recurrent_mode
    assert seq.recurrent_mode
    seq.extra = nn.Linear(1, 1)  # registering on the copy does not leak into the original
    assert "extra" not in dict(module.named_children())


def test_custom_keys_and_sequential_keys():
    module = LSTMModule(
        2,
        3,
        in_keys=["x", "hx", "cx"],
        out_keys=["y", ("next", "hx"), ("next", "cx")],
        is_init_key=("env", "first"),
    )
    assert module.in_keys == ["x", "hx", "cx", ("env", "first")]
    assert module.out_keys == ["y", ("next", "hx"), ("next", "cx")]
    policy = TensorDictSequential(module, TensorDictModule(nn.Linear(3, 1), ["y"], ["action"]))
    assert policy.in_keys == ["x", "hx", "cx", ("env", "first")]
    td = policy(
        TensorDict(
            {"x": torch.randn(4, 2), "env": {"first": torch.ones(4, 1, dtype=torch.bool)}}, [4]
        )
    )
    assert td["action"].shape == (4, 1)
    assert td["next", "hx"].shape == (4, 1, 3)
    assert "extra_repr" not in repr(module)
    assert "recurrent_mode=False" in repr(module)


def test_errors():
    with pytest.raises(ModuleError, match="in_keys must be \\[input, h, c\\]"):
        LSTMModule(2, 3, in_keys=["x", "h"])
    module = LSTMModule(2, 3)
    with pytest.raises(
        ModuleError, match=r"must be \[\*batch_size, 2\] with batch_size \(4,\), got shape \(4, 3\)"
    ):
        module(TensorDict({"observation": torch.zeros(4, 3)}, [4]))
    with pytest.raises(ModuleKeyError, match="reads 'observation'"):
        module(TensorDict({"obs": torch.zeros(4, 2)}, [4]))
    with pytest.raises(ModuleError, match="sequence mode needs a TensorDict of batch size"):
        module.set_recurrent_mode(True)(TensorDict({"observation": torch.zeros(2)}))
