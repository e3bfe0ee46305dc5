"""TensorDictSequential: key bookkeeping, chaining, selection, indexing, nesting."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rlbricks.modules import ModuleError
from rlbricks.modules import TensorDictModule
from rlbricks.modules import TensorDictSequential
from rlbricks.tensordict import TensorDict

BATCHES = [(), (5,), (2, 3)]


def _parts():
    torch.manual_seed(0)
    body = nn.Linear(3, 4)
    head = nn.Linear(4 + 2, 2)
    m1 = TensorDictModule(body, ["observation"], [("hidden", "h")])
    m2 = TensorDictModule(
        lambda h, e: head(torch.cat([h, e], -1)), [("hidden", "h"), "extra"], ["action"]
    )
    return body, head, m1, m2


def test_keys_read_before_written_are_in_keys():
    _, _, m1, m2 = _parts()
    seq = TensorDictSequential(m1, m2)
    assert seq.in_keys == ["observation", "extra"]
    assert seq.out_keys == [("hidden", "h"), "action"]


def test_key_written_then_rewritten_counts_once():
    first = TensorDictModule(torch.neg, ["x"], ["a"])
    again = TensorDictModule(torch.neg, ["a"], ["a"])
    reads_x_again = TensorDictModule(torch.neg, ["x"], ["b"])
    seq = TensorDictSequential(first, again, reads_x_again)
    assert seq.in_keys == ["x"]
    assert seq.out_keys == ["a", "b"]


@pytest.mark.parametrize("batch", BATCHES)
def test_forward_equals_manual_composition(batch):
    body, head, m1, m2 = _parts()
    obs, extra = torch.randn(*batch, 3), torch.randn(*batch, 2)
    td = TensorDict({"observation": obs, "extra": extra}, batch)
    out = TensorDictSequential(m1, m2)(td)
    assert out is td
    expected = head(torch.cat([body(obs), extra], -1))
    torch.testing.assert_close(td["action"], expected)
    torch.testing.assert_close(td["hidden", "h"], body(obs))


@pytest.mark.parametrize("batch", BATCHES)
def test_selected_out_keys_drop_intermediates(batch):
    _, _, m1, m2 = _parts()
    obs, extra = torch.randn(*batch, 3), torch.randn(*batch, 2)
    full = TensorDictSequential(m1, m2)(TensorDict({"observation": obs, "extra": extra}, batch))
    seq = TensorDictSequential(m1, m2, selected_out_keys=["action"])
    assert seq.out_keys == ["action"]
    assert seq.in_keys == ["observation", "extra"]
    td = TensorDict({"observation": obs, "extra": extra}, batch)
    assert seq(td) is td
    assert sorted(td.keys()) == ["action", "extra", "observation"]
    torch.testing.assert_close(td["action"], full["action"])


def test_select_out_keys_method_and_reset():
    _, _, m1, m2 = _parts()
    seq = TensorDictSequential(m1, m2)
    assert seq.select_out_keys(("hidden", "h")) is seq
    assert seq.out_keys == [("hidden", "h")]
    seq.select_out_keys()
    assert seq.out_keys == [("hidden", "h"), "action"]


def test_select_unknown_key_raises():
    _, _, m1, m2 = _parts()
    with pytest.raises(ModuleError, match=r"\['value'\] are not written by any module"):
        TensorDictSequential(m1, m2, selected_out_keys=["value"])


def test_tensordict_out_gets_every_output():
    seq = TensorDictSequential(
        TensorDictModule(torch.exp, ["x"], ["ex"]), TensorDictModule(torch.neg, ["ex"], ["y"])
    )
    td = TensorDict({"x": torch.zeros(2)}, [2])
    out = seq(td, tensordict_out=TensorDict(batch_size=[2]))
    assert sorted(out.keys()) == ["ex", "y"]
    assert sorted(td.keys()) == ["x"]
    torch.testing.assert_close(out["y"], -torch.ones(2))


def test_indexing_len_and_iteration():
    _, _, m1, m2 = _parts()
    seq = TensorDictSequential(m1, m2)
    assert len(seq) == 2
    assert seq[0] is m1
    assert seq[-1] is m2
    assert list(seq) == [m1, m2]
    tail = seq[1:]
    assert isinstance(tail, TensorDictSequential)
    assert tail.in_keys == [("hidden", "h"), "extra"]
    assert tail[0] is m2  # shares the module


@pytest.mark.parametrize("batch", BATCHES)
def test_nested_sequences_behave_like_a_flat_one(batch):
    a = TensorDictModule(lambda x: x + 1, ["x"], ["a"])
    b = TensorDictModule(lambda x: x * 2, ["a"], ["b"])
    c = TensorDictModule(torch.sub, ["b", "y"], ["c"])
    flat = TensorDictSequential(a, b, c)
    nested = TensorDictSequential(TensorDictSequential(a, b, selected_out_keys=["b"]), c)
    assert nested.in_keys == ["x", "y"]
    assert nested.out_keys == ["b", "c"]
    x, y = torch.randn(*batch, 2), torch.randn(*batch, 2)
    t1 = flat(TensorDict({"x": x, "y": y}, batch))
    t2 = nested(TensorDict({"x": x, "y": y}, batch))
    torch.testing.assert_close(t1["c"], (x + 1) * 2 - y)
    torch.testing.assert_close(t2["c"], t1["c"])
    assert "a" not in t2.keys()


def test_parameters_of_every_module_are_registered():
    body, head, m1, _m2 = _parts()
    seq = TensorDictSequential(m1, TensorDictModule(head, ["h2"], ["y"]))
    assert {id(p) for p in seq.parameters()} == {
        id(p) for p in [*body.parameters(), *head.parameters()]
    }


def test_missing_input_is_reported_by_the_module_that_reads_it():
    _, _, m1, m2 = _parts()
    with pytest.raises(KeyError, match="reads 'extra'"):
        TensorDictSequential(m1, m2)(TensorDict({"observation": torch.zeros(3)}))


def test_errors():
    with pytest.raises(ModuleError, match="at least one module"):
        TensorDictSequential()
    with pytest.raises(ModuleError, match="module 1 \\(Linear\\) is not a TensorDict module"):
        TensorDictSequential(TensorDictModule(torch.neg, ["x"], ["y"]), nn.Linear(1, 1))


def test_get_dist_needs_a_probabilistic_last_module():
    seq = TensorDictSequential(TensorDictModule(torch.neg, ["x"], ["y"]))
    with pytest.raises(ModuleError, match="builds no distribution"):
        seq.get_dist(TensorDict({"x": torch.zeros(1)}))
