"""Actor, ProbabilisticActor, ValueOperator, ActorValueOperator, ActorCriticWrapper."""

from __future__ import annotations

import pytest
import torch
from torch import distributions as D
from torch import nn

from rlbricks.modules import MLP
from rlbricks.modules import Actor
from rlbricks.modules import ActorCriticWrapper
from rlbricks.modules import ActorValueOperator
from rlbricks.modules import ModuleError
from rlbricks.modules import ProbabilisticActor
from rlbricks.modules import TensorDictModule
from rlbricks.modules import TensorDictSequential
from rlbricks.modules import ValueOperator
from rlbricks.modules import set_exploration_type
from rlbricks.specs import Bounded
from rlbricks.specs import Composite
from rlbricks.tensordict import TensorDict

BATCHES = [(), (4,), (2, 3)]


class _LocScale(nn.Module):
    def __init__(self, n_in=3, n_out=2):
        super().__init__()
        self.linear = nn.Linear(n_in, 2 * n_out)

    def forward(self, obs):
        loc, log_scale = self.linear(obs).chunk(2, -1)
        return loc, log_scale.exp()


# ---------------------------------------------------------------- Actor
@pytest.mark.parametrize("batch", BATCHES)
def test_actor_defaults_and_output(batch):
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    actor = Actor(net)
    assert actor.in_keys == ["observation"]
    assert actor.out_keys == ["action"]
    assert actor.spec is None
    obs = torch.randn(*batch, 3)
    torch.testing.assert_close(actor(TensorDict({"observation": obs}, batch))["action"], net(obs))


@pytest.mark.parametrize("batch", BATCHES)
def test_safe_actor_projects_into_the_box(batch):
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    spec = Bounded(low=torch.tensor([-0.1, 0.0]), high=torch.tensor([0.1, 0.05]))
    actor = Actor(net, spec=spec, safe=True)
    obs = torch.randn(*batch, 3) * 10
    action = actor(TensorDict({"observation": obs}, batch))["action"]
    expected = torch.maximum(torch.minimum(net(obs), spec.high), spec.low)
    torch.testing.assert_close(action, expected)
    assert spec.is_in(action.detach())


def test_unsafe_actor_keeps_raw_output_and_stores_spec():
    spec = Bounded(-1.0, 1.0, shape=(2,))
    actor = Actor(lambda obs: obs * 100, spec=spec)
    assert isinstance(actor.spec, Composite)
    assert actor.spec["action"] is spec
    out = actor(TensorDict({"observation": torch.ones(2)}))["action"]
    torch.testing.assert_close(out, torch.full((2,), 100.0))


def test_actor_with_composite_spec_and_custom_keys():
    spec = Composite({("agent", "action"): Bounded(0.0, 1.0, shape=(1,))})
    actor = Actor(lambda x: x, in_keys=["x"], out_keys=[("agent", "action")], spec=spec, safe=True)
    td = actor(TensorDict({"x": torch.tensor([[3.0], [-2.0], [0.5]])}, [3]))
    torch.testing.assert_close(td["agent", "action"], torch.tensor([[1.0], [0.0], [0.5]]))
    assert actor.spec is spec


def test_actor_errors():
    with pytest.raises(ModuleError, match="safe=True"):
        Actor(nn.Linear(1, 1), safe=True)
    with pytest.raises(ModuleError, match="must be a TensorSpec"):
        Actor(nn.Linear(1, 1), spec="box")  # type: ignore[arg-type]


# ---------------------------------------------------------------- ProbabilisticActor
@pytest.mark.parametrize("batch", BATCHES)
def test_probabilistic_actor_is_module_then_distribution(batch):
    torch.manual_seed(0)
    net = _LocScale()
    actor = ProbabilisticActor(
        TensorDictModule(net, ["observation"], ["loc", "scale"]),
        ["loc", "scale"],
        distribution_class=D.Normal,
        return_log_prob=True,
    )
    assert isinstance(actor, TensorDictSequential)
    assert actor.in_keys == ["observation"]
    assert actor.out_keys == ["loc", "scale", "action", "sample_log_prob"]
    obs = torch.randn(*batch, 3)
    loc, scale = net(obs)
    with set_exploration_type("mode"):
        td = actor(TensorDict({"observation": obs}, batch))
    torch.testing.assert_close(td["action"], loc)
    torch.testing.assert_close(td["sample_log_prob"], D.Normal(loc, scale).log_prob(loc))
    dist = actor.get_dist(TensorDict({"observation": obs}, batch))
    torch.testing.assert_close(dist.scale, scale)


def test_probabilistic_actor_default_distribution_is_delta():
    actor = ProbabilisticActor(TensorDictModule(torch.tanh, ["observation"], ["param"]), ["param"])
    obs = torch.randn(5, 2)
    torch.testing.assert_close(
        actor(TensorDict({"observation": obs}, [5]))["action"], torch.tanh(obs)
    )


def test_probabilistic_actor_safe_projection_and_spec():
    spec = Bounded(-0.5, 0.5, shape=(2,))
    actor = ProbabilisticActor(
        TensorDictModule(lambda o: (o, torch.ones_like(o)), ["observation"], ["loc", "scale"]),
        ["loc", "scale"],
        spec=spec,
        distribution_class=D.Normal,
        safe=True,
    )
    assert actor.spec["action"] is spec
    td = actor(TensorDict({"observation": torch.randn(200, 2) * 3}, [200]))
    assert spec.is_in(td["action"])


def test_probabilistic_actor_errors():
    with pytest.raises(ModuleError, match="must be a TensorDict module"):
        ProbabilisticActor(nn.Linear(2, 2), ["loc"])  # type: ignore[arg-type]
    with pytest.raises(ModuleError, match="safe=True"):
        ProbabilisticActor(TensorDictModule(torch.neg, ["o"], ["p"]), ["p"], safe=True)


# ---------------------------------------------------------------- ValueOperator
def test_value_operator_default_out_keys():
    assert ValueOperator(nn.Linear(3, 1)).out_keys == ["state_value"]
    assert ValueOperator(nn.Linear(3, 1), in_keys=["observation", "action"]).out_keys == [
        "state_action_value"
    ]
    assert ValueOperator(nn.Linear(3, 1), out_keys=["v"]).out_keys == ["v"]


@pytest.mark.parametrize("batch", BATCHES)
def test_value_operator_on_state_and_action(batch):
    torch.manual_seed(0)
    linear = nn.Linear(5, 1)
    critic = ValueOperator(
        lambda o, a: linear(torch.cat([o, a], -1)), in_keys=["observation", "action"]
    )
    obs, action = torch.randn(*batch, 3), torch.randn(*batch, 2)
    td = critic(TensorDict({"observation": obs, "action": action}, batch))
    torch.testing.assert_close(td["state_action_value"], linear(torch.cat([obs, action], -1)))


@pytest.mark.parametrize("batch", BATCHES)
def test_torchrl_critic_mlp_with_two_in_keys(batch):
    """TorchRL's ``ValueOperator(MLP(out_features=1, num_cells=[64, 64]), in_keys=[obs, action])``."""
    torch.manual_seed(0)
    mlp = MLP(out_features=1, num_cells=[64, 64])  # lazy: in_features = 3 + 2
    critic = ValueOperator(mlp, in_keys=["observation", "action"])
    obs = torch.randn(*batch, 3)
    action = torch.randn(*batch, 2, requires_grad=True)
    td = critic(TensorDict({"observation": obs, "action": action}, batch))
    value = td["state_action_value"]
    assert value.shape == (*batch, 1)
    assert mlp[0].in_features == 5
    torch.testing.assert_close(value, mlp(torch.cat([obs, action], -1)))
    value.sum().backward()  # reaches the action (an actor loss needs it) and every weight
    assert action.grad is not None
    assert action.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mlp.parameters())


def test_tensordict_module_mlp_with_two_in_keys_and_a_state_value_critic():
    torch.manual_seed(0)
    q = TensorDictModule(MLP(out_features=1, num_cells=(8,)), ["observation", "action"], ["q"])
    td = TensorDict({"observation": torch.randn(4, 3), "action": torch.randn(4, 2)}, [4])
    assert q(td)["q"].shape == (4, 1)
    v = ValueOperator(MLP(in_features=3, out_features=1, num_cells=(8,)))  # one in_key, unchanged
    assert v(td)["state_value"].shape == (4, 1)


# ---------------------------------------------------------------- ActorValueOperator
def _shared_agent(probabilistic=False):
    torch.manual_seed(0)
    trunk_net, value_net = nn.Linear(3, 4), nn.Linear(4, 1)
    trunk = TensorDictModule(trunk_net, ["observation"], ["hidden"])
    if probabilistic:
        policy_net = _LocScale(4, 2)
        policy = ProbabilisticActor(
            TensorDictModule(policy_net, ["hidden"], ["loc", "scale"]),
            ["loc", "scale"],
            distribution_class=D.Normal,
        )
    else:
        policy_net = nn.Linear(4, 2)
        policy = Actor(policy_net, ["hidden"])
    value = ValueOperator(value_net, ["hidden"])
    return trunk_net, policy_net, value_net, ActorValueOperator(trunk, policy, value)


@pytest.mark.parametrize("batch", BATCHES)
def test_actor_value_operator_forward_and_getters(batch):
    trunk_net, policy_net, value_net, agent = _shared_agent()
    obs = torch.randn(*batch, 3)
    td = agent(TensorDict({"observation": obs}, batch))
    hidden = trunk_net(obs)
    torch.testing.assert_close(td["action"], policy_net(hidden))
    torch.testing.assert_close(td["state_value"], value_net(hidden))

    policy_op = agent.get_policy_operator()
    value_op = agent.get_value_operator()
    assert policy_op.in_keys == ["observation"]
    assert policy_op.out_keys == ["hidden", "action"]
    assert value_op.out_keys == ["hidden", "state_value"]
    td2 = policy_op(TensorDict({"observation": obs}, batch))
    assert "state_value" not in td2.keys()
    torch.testing.assert_close(td2["action"], td["action"])
    torch.testing.assert_close(
        value_op(TensorDict({"observation": obs}, batch))["state_value"], td["state_value"]
    )
    assert agent.get_policy_head() is agent[1]
    assert agent.get_value_head() is agent[2]
    # shared parameters: the operators see the same tensors
    trunk_param = next(iter(policy_op.parameters()))
    assert trunk_param is next(iter(value_op.parameters()))
    assert trunk_param is trunk_net.weight


def test_actor_value_operator_with_probabilistic_policy_gives_dist():
    trunk_net, policy_net, _, agent = _shared_agent(probabilistic=True)
    obs = torch.randn(4, 3)
    dist = agent.get_policy_operator().get_dist(TensorDict({"observation": obs}, [4]))
    loc, scale = policy_net(trunk_net(obs))
    torch.testing.assert_close(dist.loc, loc)
    torch.testing.assert_close(dist.scale, scale)


def test_actor_value_operator_checks_its_parts():
    ok = TensorDictModule(torch.neg, ["x"], ["y"])
    with pytest.raises(ModuleError, match="value_operator must be a TensorDict module"):
        ActorValueOperator(ok, ok, nn.Linear(1, 1))  # type: ignore[arg-type]


# ---------------------------------------------------------------- ActorCriticWrapper
@pytest.mark.parametrize("batch", BATCHES)
def test_actor_critic_wrapper_runs_policy_then_critic(batch):
    torch.manual_seed(0)
    policy_net, q_linear = nn.Linear(3, 2), nn.Linear(5, 1)
    policy = Actor(policy_net)
    critic = ValueOperator(lambda o, a: q_linear(torch.cat([o, a], -1)), ["observation", "action"])
    agent = ActorCriticWrapper(policy, critic)
    assert agent.in_keys == ["observation"]
    assert agent.out_keys == ["action", "state_action_value"]
    obs = torch.randn(*batch, 3)
    td = agent(TensorDict({"observation": obs}, batch))
    action = policy_net(obs)
    torch.testing.assert_close(td["state_action_value"], q_linear(torch.cat([obs, action], -1)))
    assert agent.get_policy_operator() is policy
    assert agent.get_policy_head() is policy
    assert agent.get_value_operator() is critic
    assert agent.get_value_head() is critic


def test_actor_critic_wrapper_checks_its_parts():
    with pytest.raises(ModuleError, match="policy_operator must be a TensorDict module"):
        ActorCriticWrapper(nn.Linear(1, 1), ValueOperator(nn.Linear(1, 1)))  # type: ignore[arg-type]


def test_agents_state_dict_round_trip():
    _, _, _, a = _shared_agent()
    torch.manual_seed(1)
    _, _, _, b = _shared_agent()
    for p in b.parameters():
        nn.init.zeros_(p)
    b.load_state_dict(a.state_dict())
    obs = torch.randn(3, 3)
    torch.testing.assert_close(
        a(TensorDict({"observation": obs}, [3]))["action"],
        b(TensorDict({"observation": obs}, [3]))["action"],
    )
