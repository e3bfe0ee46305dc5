"""ProbabilisticTensorDictModule: parameter routing, values per exploration type, log-probs."""

from __future__ import annotations

import pytest
import torch
from torch import distributions as D

from rlbricks.modules import Categorical
from rlbricks.modules import ExplorationType
from rlbricks.modules import ModuleError
from rlbricks.modules import ModuleKeyError
from rlbricks.modules import ProbabilisticTensorDictModule
from rlbricks.modules import set_exploration_type
from rlbricks.modules._probabilistic import sample_for
from rlbricks.tensordict import TensorDict

BATCHES = [(), (6,), (2, 3)]


def _normal_td(batch):
    torch.manual_seed(0)
    loc = torch.randn(*batch, 2)
    scale = torch.rand(*batch, 2) + 0.5
    return TensorDict({"loc": loc, "scale": scale}, batch), loc, scale


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("kind", ["mode", "mean", "deterministic"])
def test_deterministic_types_write_the_location_of_a_normal(batch, kind):
    td, loc, _ = _normal_td(batch)
    head = ProbabilisticTensorDictModule(["loc", "scale"], ["action"], D.Normal)
    with set_exploration_type(kind):
        head(td)
    torch.testing.assert_close(td["action"], loc)


@pytest.mark.parametrize("batch", BATCHES)
def test_random_uses_rsample_and_gradients_flow(batch):
    td, loc, scale = _normal_td(batch)
    loc.requires_grad_(True)
    head = ProbabilisticTensorDictModule(["loc", "scale"], "action", D.Normal, return_log_prob=True)
    head(td)
    action = td["action"]
    assert action.shape == loc.shape
    assert not torch.equal(action, loc)
    action.sum().backward()
    torch.testing.assert_close(loc.grad, torch.ones_like(loc))  # rsample: d(loc + s*eps)/dloc = 1
    expected = D.Normal(loc, scale).log_prob(action)
    torch.testing.assert_close(td["sample_log_prob"], expected)


def test_random_without_rsample_uses_sample():
    logits = torch.tensor([[0.0, 5.0, 0.0]]).expand(4000, 3)
    head = ProbabilisticTensorDictModule(["logits"], "action", D.Categorical)
    td = head(TensorDict({"logits": logits}, [4000]))
    counts = torch.bincount(td["action"], minlength=3).float() / 4000
    probs = torch.softmax(logits[0], -1)
    torch.testing.assert_close(counts, probs, atol=0.03, rtol=0)


def test_mode_of_a_categorical_is_the_argmax():
    logits = torch.randn(10, 5)
    head = ProbabilisticTensorDictModule(["logits"], "action", D.Categorical, return_log_prob=True)
    with set_exploration_type(ExplorationType.MODE):
        td = head(TensorDict({"logits": logits}, [10]))
    torch.testing.assert_close(td["action"], logits.argmax(-1))
    torch.testing.assert_close(
        td["sample_log_prob"],
        torch.log_softmax(logits, -1).gather(-1, logits.argmax(-1, keepdim=True))[:, 0],
    )


def test_default_interaction_type_applies_only_when_unset():
    td, loc, _ = _normal_td((4,))
    head = ProbabilisticTensorDictModule(
        ["loc", "scale"], "action", D.Normal, default_interaction_type="mode"
    )
    head(td)
    torch.testing.assert_close(td["action"], loc)
    with set_exploration_type("random"):
        head(td)
    assert not torch.equal(td["action"], loc)


def test_mapping_in_keys_route_nested_entries():
    td = TensorDict({"policy": {"mu": torch.ones(3), "sigma": torch.ones(3)}}, [3])
    head = ProbabilisticTensorDictModule(
        {"loc": ("policy", "mu"), "scale": ("policy", "sigma")}, ("agent", "action"), D.Normal
    )
    assert head.in_keys == [("policy", "mu"), ("policy", "sigma")]
    assert head.out_keys == [("agent", "action")]
    with set_exploration_type("mean"):
        head(td)
    torch.testing.assert_close(td["agent", "action"], torch.ones(3))


def test_list_in_keys_use_the_last_part_as_keyword():
    td = TensorDict({"params": {"loc": torch.zeros(2), "scale": torch.ones(2)}}, [2])
    head = ProbabilisticTensorDictModule(
        [("params", "loc"), ("params", "scale")], "action", D.Normal
    )
    assert head.get_dist(td).loc.shape == (2,)


def test_log_prob_key_and_distribution_kwargs():
    received = {}

    def factory(loc, scale, **kwargs):
        received.update(kwargs)
        return D.Normal(loc, scale)

    td, loc, scale = _normal_td((3,))
    head = ProbabilisticTensorDictModule(
        ["loc", "scale"],
        "action",
        factory,
        distribution_kwargs={"validate_args": False},
        return_log_prob=True,
        log_prob_key=("stats", "logp"),
    )
    assert head.out_keys == ["action", ("stats", "logp")]
    head(td)
    assert received == {"validate_args": False}
    torch.testing.assert_close(td["stats", "logp"], D.Normal(loc, scale).log_prob(td["action"]))


def test_default_distribution_is_delta():
    head = ProbabilisticTensorDictModule(["param"], "action", return_log_prob=True)
    param = torch.randn(4, 2)
    td = head(TensorDict({"param": param}, [4]))
    torch.testing.assert_close(td["action"], param)
    torch.testing.assert_close(td["sample_log_prob"], torch.zeros(4))


def test_masked_categorical_never_samples_a_masked_action():
    torch.manual_seed(0)
    logits = torch.randn(2000, 4)
    mask = torch.rand(2000, 4) > 0.5
    mask[torch.arange(2000), torch.randint(0, 4, (2000,))] = True  # one allowed action at least
    head = ProbabilisticTensorDictModule(
        {"logits": "logits", "mask": "action_mask"}, "action", Categorical
    )
    td = TensorDict({"logits": logits, "action_mask": mask}, [2000])
    head(td)
    assert bool(mask.gather(-1, td["action"].unsqueeze(-1)).all())
    with set_exploration_type("mode"):
        head(td)
    best_allowed = logits.masked_fill(~mask, float("-inf")).argmax(-1)
    torch.testing.assert_close(td["action"], best_allowed)


class _NoModeNoMean(D.Distribution):
    arg_constraints = {}  # noqa: RUF012

    def __init__(self, x):
        self.x = x
        super().__init__(x.shape, validate_args=False)

    def sample(self, sample_shape=torch.Size()):
        return self.x

    @property
    def mode(self):
        raise NotImplementedError

    @property
    def mean(self):
        raise NotImplementedError


@pytest.mark.parametrize(
    "kind", [ExplorationType.MODE, ExplorationType.MEAN, ExplorationType.DETERMINISTIC]
)
def test_a_distribution_without_the_value_raises(kind):
    with pytest.raises(ModuleError, match=f"has no {kind.value} value"):
        sample_for(_NoModeNoMean(torch.zeros(2)), kind)
    torch.testing.assert_close(
        sample_for(_NoModeNoMean(torch.ones(2)), ExplorationType.RANDOM), torch.ones(2)
    )


def test_mode_falls_back_to_argmax_for_categoricals():
    class NoModeCategorical(D.Categorical):
        @property
        def mode(self):
            raise NotImplementedError

    class NoModeOneHot(D.OneHotCategorical):
        @property
        def mode(self):
            raise NotImplementedError

    probs = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    torch.testing.assert_close(
        sample_for(NoModeCategorical(probs=probs), ExplorationType.MODE), torch.tensor([1, 0])
    )
    torch.testing.assert_close(
        sample_for(NoModeOneHot(probs=probs), ExplorationType.DETERMINISTIC),
        torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
    )


def test_deterministic_prefers_deterministic_sample():
    class WithDeterministic(D.Normal):
        @property
        def deterministic_sample(self):
            return torch.full_like(self.loc, 7.0)

    head = ProbabilisticTensorDictModule(["loc", "scale"], "action", WithDeterministic)
    td = TensorDict({"loc": torch.zeros(2), "scale": torch.ones(2)}, [2])
    with set_exploration_type("deterministic"):
        head(td)
    torch.testing.assert_close(td["action"], torch.full((2,), 7.0))
    with set_exploration_type("mode"):
        head(td)
    torch.testing.assert_close(td["action"], torch.zeros(2))


def test_missing_parameter_entry_raises():
    head = ProbabilisticTensorDictModule(["loc", "scale"], "action", D.Normal)
    with pytest.raises(ModuleKeyError, match=r"reads 'scale'.*available keys: \['loc'\]"):
        head(TensorDict({"loc": torch.zeros(2)}, [2]))


def test_wrong_keyword_gives_a_hint():
    head = ProbabilisticTensorDictModule(["mu", "sigma"], "action", D.Normal)
    with pytest.raises(ModuleError, match="pass a mapping"):
        head(TensorDict({"mu": torch.zeros(2), "sigma": torch.ones(2)}, [2]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"in_keys": ["loc"], "out_keys": ["a", "b"]}, "exactly one key"),
        ({"in_keys": [("x", "loc"), ("y", "loc")]}, "same name"),
        ({"in_keys": {}}, "in_keys is empty"),
        ({"in_keys": ["loc"], "default_interaction_type": "greedy"}, "unknown exploration type"),
    ],
)
def test_construction_errors(kwargs, match):
    with pytest.raises(ModuleError, match=match):
        ProbabilisticTensorDictModule(distribution_class=D.Normal, **kwargs)


def test_repr_names_the_distribution():
    assert "distribution_class=Normal" in repr(
        ProbabilisticTensorDictModule(["loc"], "a", D.Normal)
    )
