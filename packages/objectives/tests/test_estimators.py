"""The estimator modules: TensorDict plumbing, keys, gradients, against the naive references."""

from __future__ import annotations

import _references as ref
import pytest
import torch
from torch import nn

from rlbricks.modules import ProbabilisticActor
from rlbricks.modules import TensorDictModule
from rlbricks.modules import ValueOperator
from rlbricks.objectives import GAE
from rlbricks.objectives import TD0Estimator
from rlbricks.objectives import TD1Estimator
from rlbricks.objectives import TDLambdaEstimator
from rlbricks.objectives import ValueEstimatorBase
from rlbricks.objectives import ValueEstimatorError
from rlbricks.objectives import ValueEstimatorKeyError
from rlbricks.objectives import ValueEstimators
from rlbricks.objectives import VTrace
from rlbricks.objectives.value import make_value_estimator
from rlbricks.tensordict import TensorDict

OBS = 3


def critic(dtype=torch.float32, seed=0) -> ValueOperator:
    torch.manual_seed(seed)
    return ValueOperator(nn.Linear(OBS, 1).to(dtype))


def make_td(batch, steps, dtype=torch.float32, pattern="mixed", seed=0, log_probs=False):
    """Transitions ``[*batch, T]`` as collectors write them (time last)."""
    d = ref.make_data(batch, steps, dtype, pattern, seed)
    g = torch.Generator().manual_seed(seed + 100)
    shape = (*batch, steps)
    td = TensorDict(
        {
            "observation": torch.randn(*shape, OBS, generator=g).to(dtype),
            "next": {
                "observation": torch.randn(*shape, OBS, generator=g).to(dtype),
                "reward": d["reward"],
                "done": d["done"],
                "terminated": d["terminated"],
            },
        },
        batch_size=shape,
    )
    if log_probs:
        td["sample_log_prob"] = d["log_mu"].squeeze(-1)
        td["log_prob"] = d["log_pi"].squeeze(-1)
    return td


def flags(td):
    return td["next", "reward"], td["next", "done"], td["next", "terminated"]


def assert_matches(ours, expected, dtype):
    ref.assert_matches(ours, expected, dtype)


BATCHES = [(), (3,), (2, 2)]
DTYPES = [torch.float32, torch.float64]
PATTERNS = ["mixed", "all", "none"]


# --------------------------------------------------------------------------- #
# golden values: each module against the naive loops, fed the critic's values
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("steps", [1, 11])
def test_modules_match_references(batch, dtype, pattern, steps):
    net = critic(dtype)
    for gamma, lmbda in [(0.0, 0.0), (0.9, 0.7), (1.0, 1.0)]:
        estimators = {
            "td0": TD0Estimator(gamma, net),
            "td1": TD1Estimator(gamma, net),
            "tdl": TDLambdaEstimator(gamma, lmbda, net),
            "gae": GAE(gamma, lmbda, net),
        }
        for name, estimator in estimators.items():
            td = estimator(make_td(batch, steps, dtype, pattern, seed=steps))
            value, next_value = td["state_value"], td["next", "state_value"]
            reward, done, terminated = flags(td)
            if name == "td0":
                target = ref.ref_td0(gamma, next_value, reward, terminated)
            elif name == "td1":
                target = ref.ref_td_lambda(gamma, 1.0, next_value, reward, done, terminated)
            elif name == "tdl":
                target = ref.ref_td_lambda(gamma, lmbda, next_value, reward, done, terminated)
            else:
                _, target = ref.ref_gae(gamma, lmbda, value, next_value, reward, done, terminated)
            assert_matches(td["value_target"], target, dtype)
            assert_matches(td["advantage"], target - value.double(), dtype)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_vtrace_matches_reference(batch, dtype, pattern):
    net = critic(dtype)
    td = VTrace(0.9, net, rho_thresh=1.2, c_thresh=0.8)(
        make_td(batch, 9, dtype, pattern, log_probs=True)
    )
    expected_adv, expected_vs = ref.ref_vtrace(
        0.9,
        td["log_prob"].unsqueeze(-1),
        td["sample_log_prob"].unsqueeze(-1),
        td["state_value"],
        td["next", "state_value"],
        *flags(td),
        1.2,
        0.8,
    )
    assert_matches(td["value_target"], expected_vs, dtype)
    assert_matches(td["advantage"], expected_adv, dtype)


def test_vtrace_with_actor_network():
    logits = TensorDictModule(nn.Linear(OBS, 4), ["observation"], ["logits"])
    actor = ProbabilisticActor(
        logits, ["logits"], distribution_class=torch.distributions.Categorical
    )
    td = make_td((2,), 6, log_probs=True)
    td["action"] = torch.randint(4, (2, 6))
    with torch.no_grad():
        expected = actor.get_dist(td.clone()).log_prob(td["action"])
    td["log_prob"] = expected
    from_key = VTrace(0.9, critic())(td.clone())
    from_actor = VTrace(0.9, critic(), actor_network=actor)(td.exclude("log_prob"))
    torch.testing.assert_close(from_actor["advantage"], from_key["advantage"])
    torch.testing.assert_close(from_actor["value_target"], from_key["value_target"])
    assert not from_actor["advantage"].requires_grad


# --------------------------------------------------------------------------- #
# values: network, precomputed, skip_existing, params
# --------------------------------------------------------------------------- #


class CountingCritic(nn.Module):
    """A critic that counts its calls and writes ``observation.sum`` as the value."""

    def __init__(self):
        super().__init__()
        self.calls = 0
        self.in_keys = ["observation"]

    def forward(self, td):
        self.calls += 1
        td["state_value"] = td["observation"].sum(-1, keepdim=True)
        return td


def test_precomputed_values_without_network():
    td = make_td((2,), 5)
    net = critic()
    with torch.no_grad():
        net(td)
        net(td["next"])
    expected = GAE(0.9, 0.8, net)(td.clone())
    got = GAE(0.9, 0.8, None)(td)
    torch.testing.assert_close(got["advantage"], expected["advantage"])


def test_skip_existing_reuses_values():
    net = CountingCritic()
    td = make_td((2,), 5)
    td["state_value"] = torch.zeros(2, 5, 1)
    GAE(0.9, 0.8, net, skip_existing=True)(td)
    assert net.calls == 1  # only "next" had no value
    assert torch.equal(td["state_value"], torch.zeros(2, 5, 1))
    GAE(0.9, 0.8, net)(td)
    assert net.calls == 3  # recomputed by default
    assert not torch.equal(td["state_value"], torch.zeros(2, 5, 1))


def test_params_and_target_params():
    net, target = critic(seed=0), critic(seed=1)
    params = dict(net.named_parameters())
    target_params = dict(target.named_parameters())
    td = make_td((2,), 7)
    estimator = GAE(0.9, 0.9, net)
    got = estimator(td.clone(), target_params=target_params)
    with torch.no_grad():
        manual = td.clone()
        net(manual)
        target(manual["next"])
    expected = GAE(0.9, 0.9, None)(manual)
    torch.testing.assert_close(got["advantage"], expected["advantage"])
    same = estimator(td.clone(), params=params)
    torch.testing.assert_close(same["advantage"], estimator(td.clone())["advantage"])


def test_value_estimate_of_td_reads_only_next_values():
    td = make_td((2,), 5)
    td["next", "state_value"] = torch.randn(2, 5, 1)
    for estimator in (TD0Estimator(0.9, None), TD1Estimator(0.9, None)):
        target = estimator.value_estimate(td)
        assert target.shape == (2, 5, 1)
        assert "advantage" not in td.keys()
    with pytest.raises(ValueEstimatorKeyError, match="state_value"):
        GAE(0.9, 0.9, None).value_estimate(td)  # GAE needs the root values


def test_value_estimate_equals_forward_target():
    td = make_td((3,), 8, log_probs=True)
    for estimator in (
        TD0Estimator(0.9, critic()),
        TDLambdaEstimator(0.9, 0.5, critic()),
        GAE(0.9, 0.5, critic(), average_gae=True),
        VTrace(0.9, critic()),
    ):
        target = estimator.value_estimate(td.clone())
        torch.testing.assert_close(target, estimator(td.clone())["value_target"])


def test_flat_entries_get_a_feature_dim():
    td = make_td((2,), 4)
    td["next", "reward"] = td["next", "reward"].squeeze(-1)
    td["next", "done"] = td["next", "done"].squeeze(-1)
    out = GAE(0.9, 0.9, critic())(td)
    assert out["advantage"].shape == (2, 4, 1)


# --------------------------------------------------------------------------- #
# gradients
# --------------------------------------------------------------------------- #


def test_no_grad_by_default():
    net = critic()
    td = GAE(0.9, 0.9, net)(make_td((2,), 4))
    assert not td["advantage"].requires_grad
    assert not td["value_target"].requires_grad
    assert not td["state_value"].requires_grad


def test_differentiable_lets_gradients_reach_the_critic():
    net = critic()
    td = TDLambdaEstimator(0.9, 0.9, net, differentiable=True)(make_td((2,), 4))
    td["value_target"].sum().backward()
    assert net.module.weight.grad is not None
    assert net.module.weight.grad.abs().sum() > 0


# --------------------------------------------------------------------------- #
# keys
# --------------------------------------------------------------------------- #


def test_set_keys_reads_and_writes_custom_entries():
    td = make_td((2,), 5)
    td.rename_key_(("next", "reward"), ("next", "agent", "reward"))
    net = ValueOperator(nn.Linear(OBS, 1), out_keys=["v"])
    estimator = GAE(0.9, 0.9, net).set_keys(
        value="v", reward=("agent", "reward"), advantage=("agent", "adv"), value_target="ret"
    )
    assert estimator.tensor_keys["reward"] == ("agent", "reward")
    out = estimator(td)
    assert out["agent", "adv"].shape == (2, 5, 1)
    assert out["ret"].shape == (2, 5, 1)
    assert ("next", "v") in out.keys(include_nested=True)


def test_set_keys_rejects_unknown_roles():
    with pytest.raises(ValueEstimatorError, match=r"unknown role 'rewrd'.*'reward'"):
        GAE(0.9, 0.9, None).set_keys(rewrd="r")
    with pytest.raises(ValueEstimatorError, match="sample_log_prob"):
        GAE(0.9, 0.9, None).set_keys(sample_log_prob="lp")
    VTrace(0.9, None).set_keys(sample_log_prob="lp")


def test_terminated_from_done_when_not_distinguished():
    td = make_td((2,), 5, pattern="mixed")
    del td["next", "terminated"]
    with pytest.raises(ValueEstimatorKeyError, match=r"\('next', 'terminated'\).*available keys"):
        GAE(0.9, 0.9, critic())(td)
    out = GAE(0.9, 0.9, critic()).set_keys(terminated="done")(td)
    assert out["advantage"].shape == (2, 5, 1)


def test_in_and_out_keys():
    keys = GAE(0.9, 0.9, critic()).in_keys
    assert keys[:2] == ["observation", ("next", "observation")]
    assert ("next", "terminated") in keys
    assert GAE(0.9, 0.9, critic()).out_keys == [
        "advantage",
        "value_target",
        "state_value",
        ("next", "state_value"),
    ]
    assert "sample_log_prob" in VTrace(0.9, None).in_keys


# --------------------------------------------------------------------------- #
# errors
# --------------------------------------------------------------------------- #


def test_missing_next_lists_keys():
    td = TensorDict({"state_value": torch.zeros(3, 1)}, [3])
    with pytest.raises(ValueEstimatorKeyError, match=r"'next'.*\['state_value'\]"):
        TD0Estimator(0.9, None)(td)


def test_missing_values_without_network():
    td = make_td((2,), 3)
    with pytest.raises(ValueEstimatorKeyError, match="no value_network"):
        GAE(0.9, 0.9, None)(td)


def test_shape_mismatch_names_keys():
    td = make_td((2,), 3)
    td["next", "reward"] = torch.zeros(2, 3, 2)
    with pytest.raises(ValueEstimatorError, match=r"\('next', 'reward'\) has shape \(2, 3, 2\)"):
        GAE(0.9, 0.9, critic())(td)


def test_needs_a_time_dim():
    td = make_td((), 1)[0]
    with pytest.raises(ValueEstimatorError, match="unsqueeze"):
        GAE(0.9, 0.9, critic())(td)


def test_network_that_writes_elsewhere():
    net = ValueOperator(nn.Linear(OBS, 1), out_keys=["v"])
    with pytest.raises(ValueEstimatorError, match=r"set_keys\(value=...\)"):
        GAE(0.9, 0.9, net)(make_td((2,), 3))


def test_bad_hyperparameters():
    with pytest.raises(ValueEstimatorError, match=r"gamma=1.5 is outside \[0.0, 1.0\]"):
        GAE(1.5, 0.9, None)
    with pytest.raises(ValueEstimatorError, match="lmbda must be a number"):
        TDLambdaEstimator(0.9, "0.9", None)
    with pytest.raises(ValueEstimatorError, match="must be positive"):
        VTrace(0.9, None, rho_thresh=0.0)
    with pytest.raises(ValueEstimatorError, match="get_dist"):
        VTrace(0.9, None, actor_network=nn.Linear(2, 2))
    with pytest.raises(ValueEstimatorError, match="callable"):
        GAE(0.9, 0.9, value_network=3)


def test_tensor_gamma_is_a_buffer():
    estimator = TD0Estimator(torch.tensor(0.9), None)
    assert "gamma" in dict(estimator.named_buffers())
    estimator = estimator.double()
    assert estimator.gamma.dtype == torch.float64


def test_average_gae_standardises_the_advantage():
    td = make_td((4,), 16)
    plain = GAE(0.9, 0.9, critic())(td.clone())
    averaged = GAE(0.9, 0.9, critic(), average_gae=True)(td.clone())
    adv = averaged["advantage"]
    torch.testing.assert_close(adv.mean(), torch.tensor(0.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(adv.std(), torch.tensor(1.0))
    torch.testing.assert_close(averaged["value_target"], plain["value_target"])


# --------------------------------------------------------------------------- #
# factory
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("value_type", "cls"),
    [
        (ValueEstimators.TD0, TD0Estimator),
        ("td1", TD1Estimator),
        ("TDLambda", TDLambdaEstimator),
        ("GAE", GAE),
        ("vtrace", VTrace),
    ],
)
def test_make_value_estimator(value_type, cls):
    kwargs = {"gamma": 0.9, "value_network": None}
    if cls in (TDLambdaEstimator, GAE):
        kwargs["lmbda"] = 0.9
    estimator = make_value_estimator(value_type, **kwargs)
    assert type(estimator) is cls
    assert isinstance(estimator, ValueEstimatorBase)


def test_make_value_estimator_errors():
    with pytest.raises(ValueEstimatorError, match="choose one of"):
        make_value_estimator("td2", gamma=0.9, value_network=None)
    with pytest.raises(TypeError, match=r"GAE takes \['gamma', 'lmbda'"):
        make_value_estimator("gae", gamma=0.9, value_network=None, lam=0.9)


def test_repr_shows_hyperparameters():
    text = repr(GAE(0.99, 0.95, critic()))
    assert "gamma=0.99" in text
    assert "lmbda=0.95" in text
    assert "value_network" in text
