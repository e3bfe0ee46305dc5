"""TensorDictModule and TensorDictModuleBase: key routing, outputs, errors, nn.Module behaviour."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rlbricks.modules import ModuleError
from rlbricks.modules import ModuleKeyError
from rlbricks.modules import TensorDictModule
from rlbricks.modules import TensorDictModuleBase
from rlbricks.tensordict import TensorDict

BATCHES = [(), (4,), (2, 3)]


@pytest.mark.parametrize("batch", BATCHES)
def test_single_output_matches_the_wrapped_module(batch):
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    obs = torch.randn(*batch, 3)
    td = TensorDict({"observation": obs}, batch_size=batch)
    out = TensorDictModule(net, in_keys=["observation"], out_keys=["action"])(td)
    assert out is td  # in place
    torch.testing.assert_close(td["action"], net(obs))
    assert td.batch_size == torch.Size(batch)


@pytest.mark.parametrize("batch", BATCHES)
def test_nested_keys_and_several_outputs(batch):
    td = TensorDict(
        {
            "agent": {"obs": torch.arange(6.0).expand(*batch, 6).clone()},
            "bias": torch.ones(*batch, 3),
        },
        batch_size=batch,
    )

    def split_add(x, b):
        first, second = x.chunk(2, -1)
        return first + b, second - b

    module = TensorDictModule(split_add, [("agent", "obs"), "bias"], [("out", "a"), ("out", "b")])
    module(td)
    expected = torch.arange(6.0).expand(*batch, 6)
    torch.testing.assert_close(td["out", "a"], expected[..., :3] + 1)
    torch.testing.assert_close(td["out", "b"], expected[..., 3:] - 1)
    assert module.in_keys == [("agent", "obs"), "bias"]
    assert module.out_keys == [("out", "a"), ("out", "b")]


def test_single_string_keys_and_nested_tuple_keys_are_normalised():
    module = TensorDictModule(torch.neg, "x", ("a", ("b", "c")))
    assert module.in_keys == ["x"]
    assert module.out_keys == [("a", "b", "c")]
    td = module(TensorDict({"x": torch.ones(2)}, [2]))
    torch.testing.assert_close(td["a", "b", "c"], -torch.ones(2))


def test_positional_arguments_follow_the_in_keys_order():
    module = TensorDictModule(torch.sub, ["b", "a"], ["diff"])
    td = module(TensorDict({"a": torch.tensor([1.0]), "b": torch.tensor([5.0])}, [1]))
    torch.testing.assert_close(td["diff"], torch.tensor([4.0]))


def test_tensordict_out_receives_outputs_and_input_is_untouched():
    module = TensorDictModule(lambda x: x * 3, ["x"], ["y"])
    td = TensorDict({"x": torch.ones(2)}, [2])
    out = TensorDict(batch_size=[2])
    result = module(td, tensordict_out=out)
    assert result is out
    assert "y" not in td.keys()
    torch.testing.assert_close(out["y"], torch.full((2,), 3.0))


def test_select_out_keys_writes_only_the_selection():
    module = TensorDictModule(lambda x: (x + 1, x + 2, x + 3), ["x"], ["a", "b", "c"])
    assert module.select_out_keys("c", "a") is module
    assert module.out_keys == ["a", "c"]  # module order, not call order
    td = module(TensorDict({"x": torch.zeros(1)}, [1]))
    assert sorted(td.keys()) == ["a", "c", "x"]
    torch.testing.assert_close(td["c"], torch.full((1,), 3.0))
    module.select_out_keys()
    assert module.out_keys == ["a", "b", "c"]
    assert sorted(module(TensorDict({"x": torch.zeros(1)}, [1])).keys()) == ["a", "b", "c", "x"]


def test_select_unknown_out_key_raises():
    module = TensorDictModule(torch.neg, ["x"], ["y"])
    with pytest.raises(ModuleError, match=r"\['z'\] not among the outputs \['y'\]"):
        module.select_out_keys("z")


def test_missing_key_error_names_the_key_and_the_available_keys():
    module = TensorDictModule(torch.neg, [("agent", "obs")], ["y"])
    td = TensorDict({"agent": {"observation": torch.zeros(2)}, "reward": torch.zeros(2)}, [2])
    with pytest.raises(ModuleKeyError) as info:
        module(td)
    message = str(info.value)
    assert "TensorDictModule reads ('agent', 'obs')" in message
    assert "('agent', 'observation')" in message
    assert "'reward'" in message
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, ModuleError)


def test_output_count_mismatch_raises():
    with pytest.raises(ModuleError, match="returned 2 outputs but has 1 out_keys"):
        TensorDictModule(lambda x: (x, x), ["x"], ["y"])(TensorDict({"x": torch.zeros(1)}, [1]))
    with pytest.raises(ModuleError, match="returned 1 output but has 2 out_keys"):
        TensorDictModule(torch.neg, ["x"], ["y", "z"])(TensorDict({"x": torch.zeros(1)}, [1]))


def test_non_tensor_output_raises():
    module = TensorDictModule(lambda x: {"y": x}, ["x"], ["y"])
    with pytest.raises(ModuleError, match="returned dict"):
        module(TensorDict({"x": torch.zeros(1)}, [1]))


def test_output_with_wrong_batch_size_is_rejected_by_the_tensordict():
    module = TensorDictModule(lambda x: x.sum(0), ["x"], ["y"])
    with pytest.raises(ValueError, match="batch_size"):
        module(TensorDict({"x": torch.zeros(3, 2)}, [3]))


@pytest.mark.parametrize(
    ("in_keys", "out_keys", "match"),
    [
        (["x", "x"], ["y"], "lists a key twice"),
        (["x"], [], "out_keys is empty"),
        ([1], ["y"], "in_keys"),
        (3, ["y"], "must be a key or a list of keys"),
    ],
)
def test_bad_keys_raise(in_keys, out_keys, match):
    with pytest.raises(ModuleError, match=match):
        TensorDictModule(torch.neg, in_keys, out_keys)


def test_non_callable_raises():
    with pytest.raises(ModuleError, match="wraps a callable"):
        TensorDictModule(3, ["x"], ["y"])  # type: ignore[arg-type]


def test_it_is_an_nn_module():
    net = nn.Linear(3, 2)
    module = TensorDictModule(net, ["x"], ["y"])
    assert list(module.parameters()) == list(net.parameters())
    assert set(module.state_dict()) == {"module.weight", "module.bias"}
    module.to(torch.float64)
    assert net.weight.dtype == torch.float64
    td = module(TensorDict({"x": torch.ones(2, 3, dtype=torch.float64)}, [2]))
    assert td["y"].dtype == torch.float64
    # a plain callable has no parameters
    assert list(TensorDictModule(torch.neg, ["x"], ["y"]).parameters()) == []


def test_state_dict_round_trip():
    torch.manual_seed(0)
    a = TensorDictModule(nn.Linear(3, 2), ["x"], ["y"])
    b = TensorDictModule(nn.Linear(3, 2), ["x"], ["y"])
    b.load_state_dict(a.state_dict())
    x = TensorDict({"x": torch.randn(5, 3)}, [5])
    torch.testing.assert_close(a(x.clone())["y"], b(x.clone())["y"])


def test_gradients_flow_through_the_module():
    net = nn.Linear(3, 1)
    module = TensorDictModule(net, ["x"], ["y"])
    module(TensorDict({"x": torch.ones(4, 3)}, [4]))["y"].sum().backward()
    torch.testing.assert_close(net.weight.grad, torch.full((1, 3), 4.0))


def test_repr_shows_the_keys():
    text = repr(TensorDictModule(nn.Linear(1, 1), ["x"], ["y"]))
    assert "in_keys=['x'], out_keys=['y']" in text


def test_base_forward_must_be_implemented():
    class Incomplete(TensorDictModuleBase):
        def __init__(self):
            super().__init__()
            self.in_keys, self.out_keys = ["x"], ["y"]

    with pytest.raises(NotImplementedError, match="Incomplete must implement forward"):
        Incomplete()(TensorDict({"x": torch.zeros(1)}, [1]))
