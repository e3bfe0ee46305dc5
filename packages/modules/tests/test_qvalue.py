"""QValueActor and DistributionalQValueActor: argmax, encodings, masks, C51 expectations."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from rlbricks.modules import DistributionalQValueActor
from rlbricks.modules import ModuleError
from rlbricks.modules import ModuleValueError
from rlbricks.modules import QValueActor
from rlbricks.modules import TensorDictModule
from rlbricks.modules import action_space_of
from rlbricks.specs import Binary
from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import MultiCategorical
from rlbricks.specs import MultiOneHot
from rlbricks.specs import OneHot
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict

BATCHES = [(), (7,), (2, 3)]


def _naive_argmax(values, mask=None):
    """Loop over rows: the first index of the largest allowed value."""
    flat = values.reshape(-1, values.shape[-1])
    flat_mask = None if mask is None else mask.reshape(-1, values.shape[-1])
    out = []
    for i, row in enumerate(flat.tolist()):
        allowed = (
            range(len(row))
            if flat_mask is None
            else [j for j in range(len(row)) if flat_mask[i, j]]
        )
        best = max(allowed, key=lambda j: (row[j], -j))
        out.append(best)
    return torch.tensor(out).reshape(values.shape[:-1])


def _random_mask(shape, generator):
    mask = torch.rand(shape, generator=generator) > 0.5
    flat = mask.reshape(-1, shape[-1])
    flat[
        torch.arange(flat.shape[0]),
        torch.randint(0, shape[-1], (flat.shape[0],), generator=generator),
    ] = True
    return flat.reshape(shape)


@pytest.mark.parametrize("batch", BATCHES)
def test_one_hot_argmax(batch):
    torch.manual_seed(0)
    net = nn.Linear(4, 5)
    actor = QValueActor(net, spec=OneHot(5))
    assert actor.action_space == "one_hot"
    assert actor.in_keys == ["observation"]
    assert actor.out_keys == ["action_value", "action", "chosen_action_value"]
    obs = torch.randn(*batch, 4)
    td = actor(TensorDict({"observation": obs}, batch))
    values = net(obs)
    index = _naive_argmax(values)
    torch.testing.assert_close(td["action_value"], values)
    assert td["action"].dtype == torch.bool
    torch.testing.assert_close(td["action"], torch.nn.functional.one_hot(index, 5).bool())
    torch.testing.assert_close(td["chosen_action_value"], values.gather(-1, index.unsqueeze(-1)))
    assert OneHot(5).is_in(td["action"])


@pytest.mark.parametrize("batch", BATCHES)
def test_categorical_argmax(batch):
    torch.manual_seed(0)
    net = nn.Linear(4, 3)
    actor = QValueActor(net, spec=Categorical(3))
    assert actor.action_space == "categorical"
    obs = torch.randn(*batch, 4)
    td = actor(TensorDict({"observation": obs}, batch))
    values = net(obs)
    torch.testing.assert_close(td["action"], _naive_argmax(values))
    assert td["chosen_action_value"].shape == (*batch, 1)


def test_ties_pick_the_first_action():
    actor = QValueActor(lambda x: x, action_space="categorical")
    td = actor(TensorDict({"observation": torch.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])}, [2]))
    torch.testing.assert_close(td["action"], torch.tensor([1, 0]))


@pytest.mark.parametrize(("space", "batch"), itertools.product(["one_hot", "categorical"], BATCHES))
def test_masked_actions_are_never_picked(space, batch):
    gen = torch.Generator().manual_seed(1)
    values = torch.randn(*batch, 6, generator=gen)
    values[..., 0] = 100.0  # the best action is often masked
    mask = _random_mask((*batch, 6), gen)
    actor = QValueActor(lambda v: v, in_keys=["values"], action_space=space, action_mask_key="mask")
    assert actor.in_keys == ["values", "mask"]
    td = actor(TensorDict({"values": values, "mask": mask}, batch))
    expected = _naive_argmax(values, mask)
    index = td["action"].long().argmax(-1) if space == "one_hot" else td["action"]
    torch.testing.assert_close(index, expected)
    assert bool(mask.gather(-1, index.unsqueeze(-1)).all())
    torch.testing.assert_close(td["chosen_action_value"], values.gather(-1, expected.unsqueeze(-1)))


def test_mask_under_a_nested_key():
    actor = QValueActor(lambda v: v, action_space="one_hot", action_mask_key=("env", "mask"))
    td = TensorDict(
        {
            "observation": torch.tensor([5.0, 1.0, 2.0]),
            "env": {"mask": torch.tensor([False, False, True])},
        }
    )
    torch.testing.assert_close(actor(td)["action"], torch.tensor([False, False, True]))


def test_action_space_read_from_specs():
    assert QValueActor(nn.Linear(1, 2), spec=Composite(action=OneHot(2))).action_space == "one_hot"
    assert (
        QValueActor(nn.Linear(1, 2), spec=Categorical(2, shape=(1,))).action_space == "categorical"
    )
    # an explicit action space wins over the spec
    assert (
        QValueActor(nn.Linear(1, 2), spec=OneHot(2), action_space="categorical").action_space
        == "categorical"
    )


def test_spec_dtype_and_trailing_singleton_dim():
    # Categorical(n, shape=(1,)): actions carry a trailing dim of size 1 (CountingEnv layout)
    spec = Categorical(2, shape=(1,), dtype=torch.int32)
    actor = QValueActor(nn.Linear(1, 2), spec=spec)
    td = actor(TensorDict({"observation": torch.randn(5, 1)}, [5]))
    assert td["action"].shape == (5, 1)
    assert td["action"].dtype == torch.int32
    assert spec.is_in(td["action"])
    # batched spec, as a batched env declares it: shape (*batch, 1)
    batched = Categorical(2, shape=(3, 1))
    td = QValueActor(nn.Linear(1, 2), spec=batched)(
        TensorDict({"observation": torch.randn(3, 1)}, [3])
    )
    assert batched.is_in(td["action"])
    # batch of one env with a scalar-per-env spec: no extra dim
    single = Categorical(2, shape=(1,))
    td = QValueActor(nn.Linear(1, 2), spec=single)(
        TensorDict({"observation": torch.randn(1, 1)}, [1])
    )
    assert td["action"].shape == (1,)
    # one-hot in the spec's dtype
    td = QValueActor(nn.Linear(1, 3), spec=OneHot(3, dtype=torch.float32))(
        TensorDict({"observation": torch.randn(2, 1)}, [2])
    )
    assert td["action"].dtype == torch.float32
    assert OneHot(3, dtype=torch.float32).is_in(td["action"])


def test_value_network_is_the_first_module():
    net = nn.Linear(2, 3)
    actor = QValueActor(net, action_space="one_hot")
    assert isinstance(actor[0], TensorDictModule)
    assert actor[0].module is net
    assert list(actor.parameters()) == list(net.parameters())
    assert actor.spec is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "give the action spec"),
        ({"spec": Bounded(-1.0, 1.0)}, "must be OneHot or Categorical, got Bounded"),
        ({"action_space": "discrete"}, "action_space must be one of"),
        ({"spec": Composite(observation=OneHot(2))}, "give the action spec"),
    ],
)
def test_qvalue_errors(kwargs, match):
    with pytest.raises(ModuleError, match=match):
        QValueActor(nn.Linear(1, 2), **kwargs)


# ---------------------------------------------------------------- action_space as a spec
@pytest.mark.parametrize(
    ("action_space", "expected"),
    [
        (OneHot(3), "one_hot"),
        (Categorical(3), "categorical"),
        (Composite(action=OneHot(3)), "one_hot"),
        (Composite(action=Categorical(3, shape=(1,))), "categorical"),
        ("one_hot", "one_hot"),
        ("one-hot", "one_hot"),  # TorchRL's spelling
        ("categorical", "categorical"),
    ],
)
def test_action_space_of_names_and_specs(action_space, expected):
    assert action_space_of(action_space) == expected


@pytest.mark.parametrize(
    ("action_space", "match"),
    [
        (MultiOneHot([2, 3]), r"^QValueActor picks one of n actions: .*got MultiOneHot; a Multi"),
        (MultiCategorical([2, 3]), r"got MultiCategorical; a MultiCategorical action .* joint"),
        (Binary(3), r"got Binary; a Binary action \(several sub-actions, or bits\)"),
        (Bounded(-1.0, 1.0, shape=(2,)), r"must be OneHot or Categorical, got Bounded$"),
        (Unbounded(shape=(3,)), r"must be OneHot or Categorical, got Unbounded$"),
        (Composite(observation=OneHot(3)), r"no 'action' entry \(keys \['observation'\]\)"),
        ("discrete", r"action_space must be one of \['one_hot', 'categorical'\]"),
        (3, r"got 3 \(int\)$"),
        (OneHot, r"got <class .*OneHot'> \(ABCMeta\)$"),
    ],
)
def test_action_space_of_refuses_the_rest_clearly(action_space, match):
    with pytest.raises(ModuleValueError, match=match):
        action_space_of(action_space, "QValueActor")
    with pytest.raises(ModuleError, match=match.lstrip("^")):
        QValueActor(nn.Linear(1, 3), action_space=action_space)


def test_qvalue_actors_take_the_spec_as_action_space():
    """TorchRL's ``QValueActor(net, action_space=env.action_spec)``: the spec is the spec too."""
    spec = Categorical(3, shape=(1,), dtype=torch.int32)
    actor = QValueActor(nn.Linear(2, 3), action_space=spec)
    assert actor.action_space == "categorical"
    assert actor.spec["action"] == spec
    td = actor(TensorDict({"observation": torch.randn(5, 2)}, [5]))
    assert td["action"].shape == (5, 1)  # the spec's layout and dtype
    assert td["action"].dtype == torch.int32
    assert spec.is_in(td["action"])
    # the same spec passed twice is fine; two different ones are refused
    assert QValueActor(nn.Linear(2, 3), spec=spec, action_space=spec).spec["action"] == spec
    same = Composite(action=Categorical(3, shape=(1,), dtype=torch.int32))
    assert QValueActor(nn.Linear(2, 3), spec=same, action_space=spec).action_space == "categorical"
    with pytest.raises(ModuleError, match=r"are different specs; pass the action spec once"):
        QValueActor(nn.Linear(2, 3), spec=OneHot(3), action_space=spec)
    support = torch.linspace(-1.0, 1.0, 5)
    net = nn.Sequential(nn.Linear(2, 15), nn.Unflatten(-1, (3, 5)))
    c51 = DistributionalQValueActor(net, support, action_space=OneHot(3, dtype=torch.float32))
    assert c51.action_space == "one_hot"
    action = c51(TensorDict({"observation": torch.randn(4, 2)}, [4]))["action"]
    assert action.dtype == torch.float32
    assert OneHot(3, dtype=torch.float32).is_in(action)


# ---------------------------------------------------------------- distributional
def _naive_c51(logits, support, mask=None):
    probs = torch.softmax(logits, -1)
    q = (probs * support).sum(-1)
    return torch.log_softmax(logits, -1), _naive_argmax(q, mask)


@pytest.mark.parametrize(("space", "batch"), itertools.product(["one_hot", "categorical"], BATCHES))
def test_distributional_matches_the_expected_return_argmax(space, batch):
    torch.manual_seed(0)
    n_actions, n_atoms = 4, 7
    support = torch.linspace(-5.0, 5.0, n_atoms)
    logits = torch.randn(*batch, n_actions, n_atoms) * 3
    mask = _random_mask((*batch, n_actions), torch.Generator().manual_seed(2))
    actor = DistributionalQValueActor(
        lambda x: x, support, in_keys=["logits"], action_space=space, action_mask_key="mask"
    )
    td = actor(TensorDict({"logits": logits, "mask": mask}, batch))
    log_probs, index = _naive_c51(logits, support, mask)
    torch.testing.assert_close(td["action_value"], log_probs)
    got = td["action"].long().argmax(-1) if space == "one_hot" else td["action"]
    torch.testing.assert_close(got, index)


def test_distributional_without_mask_and_with_spec():
    torch.manual_seed(0)
    support = torch.linspace(0.0, 1.0, 3)
    net = nn.Sequential(nn.Linear(2, 2 * 3), nn.Unflatten(-1, (2, 3)))
    actor = DistributionalQValueActor(net, support, spec=OneHot(2))
    assert actor.out_keys == ["action_value", "action"]
    obs = torch.randn(6, 2)
    td = actor(TensorDict({"observation": obs}, [6]))
    _, index = _naive_c51(net(obs), support)
    torch.testing.assert_close(td["action"], torch.nn.functional.one_hot(index, 2).bool())


def test_distributional_support_is_a_buffer():
    actor = DistributionalQValueActor(
        lambda x: x, torch.linspace(-1, 1, 5), action_space="categorical"
    )
    assert any(k.endswith("support") for k in actor.state_dict())
    actor.to(torch.float64)
    logits = torch.randn(2, 3, 5, dtype=torch.float64)
    td = actor(TensorDict({"observation": logits}, [2]))
    assert td["action_value"].dtype == torch.float64


def test_distributional_errors():
    with pytest.raises(ModuleError, match="1-d tensor"):
        DistributionalQValueActor(lambda x: x, torch.zeros(2, 3), action_space="categorical")
    actor = DistributionalQValueActor(
        lambda x: x, torch.linspace(-1, 1, 5), action_space="categorical"
    )
    with pytest.raises(ModuleError, match=r"n_atoms=5\], got shape \(2, 4\)"):
        actor(TensorDict({"observation": torch.zeros(2, 4)}, [2]))
