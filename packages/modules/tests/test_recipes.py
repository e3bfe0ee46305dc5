"""Tests of ``rlbricks.modules.recipes``: every recipe builds from specs and acts inside them."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.nn.parameter import UninitializedParameter

from rlbricks.modules import ActorValueOperator
from rlbricks.modules import DistributionalQValueActor
from rlbricks.modules import ExplorationType
from rlbricks.modules import ModuleError
from rlbricks.modules import NoisyLinear
from rlbricks.modules import OneHotCategorical
from rlbricks.modules import QValueActor
from rlbricks.modules import TanhNormal
from rlbricks.modules import TruncatedNormal
from rlbricks.modules import reset_noise
from rlbricks.modules import set_exploration_type
from rlbricks.modules.recipes import ddpg_models
from rlbricks.modules.recipes import dqn_model
from rlbricks.modules.recipes import ppo_models
from rlbricks.modules.recipes import sac_models
from rlbricks.modules.recipes import td3_models
from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import MultiOneHot
from rlbricks.specs import OneHot
from rlbricks.specs import Unbounded

B = 5  # batch size of the forward passes


def cartpole_obs() -> Composite:
    return Composite(observation=Unbounded(shape=(4,)))


def pendulum_obs() -> Composite:
    low, high = torch.tensor([-1.0, -1.0, -8.0]), torch.tensor([1.0, 1.0, 8.0])
    return Composite(observation=Bounded(low, high))


def pixels_obs(shape=(3, 84, 84)) -> Composite:
    return Composite(pixels=Bounded(0, 255, shape=shape, dtype=torch.uint8))


DISCRETE = {"one_hot": lambda: OneHot(2), "categorical": lambda: Categorical(2)}
PIXELS = {"chw3": (3, 84, 84), "chw4": (4, 84, 84), "hwc": (84, 84, 3), "small": (3, 16, 16)}


def check_built(*modules: torch.nn.Module) -> None:
    for module in modules:
        for p in module.parameters():
            assert not isinstance(p, UninitializedParameter)


# --------------------------------------------------------------------------- #
# DQN
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("action", list(DISCRETE))
@pytest.mark.parametrize("variant", ["plain", "dueling", "noisy", "dueling_noisy"])
def test_dqn_on_cartpole_specs_acts_greedily_in_the_spec(action, variant):
    obs, spec = cartpole_obs(), DISCRETE[action]()
    actor = dqn_model(obs, spec, dueling="dueling" in variant, noisy="noisy" in variant)
    assert isinstance(actor, QValueActor)
    check_built(actor)
    td = actor(obs.rand((B,)))
    assert spec.is_in(td["action"])
    values = td["action_value"]
    assert values.shape == (B, 2)
    index = td["action"].long().argmax(-1) if action == "one_hot" else td["action"]
    torch.testing.assert_close(index, values.argmax(-1))
    torch.testing.assert_close(td["chosen_action_value"], values.gather(-1, index[:, None]))
    has_noise = any(isinstance(m, NoisyLinear) for m in actor.modules())
    assert has_noise == ("noisy" in variant)


def test_dqn_noisy_model_changes_only_on_reset_noise():
    obs = cartpole_obs()
    actor = dqn_model(obs, OneHot(2), noisy=True, num_cells=(16,))
    td = obs.rand((B,))
    first = actor(td.clone())["action_value"]
    torch.testing.assert_close(actor(td.clone())["action_value"], first)
    assert reset_noise(actor) == 2
    assert not torch.equal(actor(td.clone())["action_value"], first)


@pytest.mark.parametrize("dueling", [False, True])
def test_dqn_distributional_writes_atom_log_probs_and_the_best_expected_return(dueling):
    obs = cartpole_obs()
    actor = dqn_model(obs, Categorical(2), distributional=11, v_min=-5, v_max=5, dueling=dueling)
    assert isinstance(actor, DistributionalQValueActor)
    td = actor(obs.rand((B,)))
    log_probs = td["action_value"]
    assert log_probs.shape == (B, 2, 11)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(B, 2))
    q = (log_probs.exp() * torch.linspace(-5, 5, 11)).sum(-1)
    torch.testing.assert_close(td["action"], q.argmax(-1))
    assert Categorical(2).is_in(td["action"])


@pytest.mark.parametrize("layout", ["chw4", "hwc", "small"])
@pytest.mark.parametrize("dueling", [False, True])
def test_dqn_on_pixels_uses_a_convnet(layout, dueling):
    obs = pixels_obs(PIXELS[layout])
    actor = dqn_model(obs, OneHot(6), dueling=dueling, num_cells=(32,))
    check_built(actor)
    assert any(isinstance(m, torch.nn.Conv2d) for m in actor.modules())
    assert actor.in_keys == ["pixels"]
    td = actor(obs.rand((2,)))
    assert OneHot(6).is_in(td["action"])
    assert td["action_value"].shape == (2, 6)


def test_dqn_pixels_are_scaled_to_unit_range():
    obs = pixels_obs((3, 16, 16))
    actor = dqn_model(obs, OneHot(2), num_cells=(8,))
    pixels = obs.rand((2,))
    as_float = pixels.clone()
    as_float["pixels"] = pixels["pixels"].float() / 255
    float_actor = dqn_model(
        Composite(pixels=Unbounded(shape=(3, 16, 16))), OneHot(2), num_cells=(8,)
    )
    float_actor.load_state_dict(actor.state_dict())
    torch.testing.assert_close(actor(pixels)["action_value"], float_actor(as_float)["action_value"])


def test_dqn_flattens_images_without_cnn():
    obs = pixels_obs((2, 5, 5))
    actor = dqn_model(obs, OneHot(3), cnn=False, num_cells=(8,))
    assert not any(isinstance(m, torch.nn.Conv2d) for m in actor.modules())
    assert actor(obs.rand((B,)))["action_value"].shape == (B, 3)


def test_dqn_respects_an_action_mask():
    obs = Composite(observation=Unbounded(shape=(4,)), action_mask=OneHot(3))
    actor = dqn_model(obs, Categorical(3), action_mask_key="action_mask")
    td = obs.rand((64,))
    td["action_mask"] = torch.tensor([True, False, True]).expand(64, 3)
    assert bool((actor(td)["action"] != 1).all())


# --------------------------------------------------------------------------- #
# DDPG / TD3
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("recipe", [ddpg_models, td3_models])
def test_deterministic_models_on_pendulum_specs(recipe):
    obs, spec = pendulum_obs(), Bounded(-2.0, 2.0, shape=(1,))
    actor, critic = recipe(obs, spec, num_cells=(32, 32))
    td = critic(actor(obs.rand((B,))))
    assert spec.is_in(td["action"])
    assert td["state_action_value"].shape == (B, 1)
    assert critic.in_keys == ["observation", "action"]
    # the actor's gradient through the critic (the DDPG actor loss)
    actor.zero_grad()
    (-critic(actor(obs.rand((B,))))["state_action_value"].mean()).backward()
    assert all(p.grad is not None for p in actor.parameters())


def test_deterministic_actor_squashes_into_an_asymmetric_box():
    low, high = torch.tensor([0.0, -1.0]), torch.tensor([1.0, 3.0])
    spec = Bounded(low, high)
    actor, _ = ddpg_models(pendulum_obs(), spec, num_cells=(8,))
    td = pendulum_obs().rand((256,))
    td["observation"] = td["observation"] * 100  # saturate the tanh
    action = actor(td)["action"]
    assert spec.is_in(action)
    assert bool((action[:, 1] > -1).any() and (action[:, 1] < 3).any())
    mid = actor.module[1](actor.module[0](td["observation"]))  # the MLP's raw output
    torch.testing.assert_close(action, (high + low) / 2 + (high - low) / 2 * torch.tanh(mid))


@pytest.mark.parametrize("layout", ["chw3", "small"])
@pytest.mark.parametrize("recipe", [ddpg_models, td3_models])
def test_deterministic_models_on_pixels(recipe, layout):
    obs, spec = pixels_obs(PIXELS[layout]), Bounded(-1.0, 1.0, shape=(2,))
    actor, critic = recipe(obs, spec, num_cells=(16,))
    td = critic(actor(obs.rand((2,))))
    assert spec.is_in(td["action"])
    assert td["state_action_value"].shape == (2, 1)


def test_deterministic_models_with_unbounded_actions_do_not_squash():
    actor, critic = td3_models(cartpole_obs(), Unbounded(shape=(3,)), num_cells=(8,))
    td = critic(actor(cartpole_obs().rand((B,))))
    assert td["action"].shape == (B, 3)
    assert isinstance(actor.module[-1], torch.nn.Identity)


# --------------------------------------------------------------------------- #
# SAC
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("num_qvalue_nets", [1, 2])
def test_sac_on_pendulum_specs(num_qvalue_nets):
    obs, spec = pendulum_obs(), Bounded(-2.0, 2.0, shape=(1,))
    actor, *critics = sac_models(obs, spec, num_cells=(32, 32), num_qvalue_nets=num_qvalue_nets)
    assert len(critics) == num_qvalue_nets
    td = actor(obs.rand((B,)))
    assert spec.is_in(td["action"])
    dist = actor.get_dist(td)
    assert isinstance(dist, TanhNormal)
    assert float(dist.low) == -2.0
    assert float(dist.high) == 2.0
    assert dist.log_prob(td["action"]).isfinite().all()
    assert dist.log_prob(td["action"]).shape == (B,)
    for critic in critics:
        assert critic(td)["state_action_value"].shape == (B, 1)
    if num_qvalue_nets == 2:
        assert critics[0] is not critics[1]
        assert not torch.equal(
            critics[0](td)["state_action_value"], critics[1](td)["state_action_value"]
        )


def test_sac_deterministic_action_is_the_squashed_loc():
    obs, spec = pendulum_obs(), Bounded(torch.tensor([0.0, -1.0]), torch.tensor([1.0, 3.0]))
    actor, _ = sac_models(obs, spec, num_cells=(16,))
    td = obs.rand((B,))
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        out = actor(td)
    low, high = spec.low, spec.high
    expected = (high + low) / 2 + (high - low) / 2 * torch.tanh(out["loc"])
    torch.testing.assert_close(out["action"], expected)


def test_sac_action_is_reparameterised():
    obs = pendulum_obs()
    actor, critic = sac_models(obs, Bounded(-1.0, 1.0, shape=(2,)), num_cells=(16,))
    loss = critic(actor(obs.rand((B,))))["state_action_value"].mean()
    loss.backward()
    assert all(p.grad is not None for p in actor.parameters())


@pytest.mark.parametrize("layout", ["chw3", "chw4", "small"])
def test_sac_on_pixels(layout):
    obs, spec = pixels_obs(PIXELS[layout]), Bounded(-1.0, 1.0, shape=(2,))
    actor, critic = sac_models(obs, spec, num_cells=(16,))
    td = critic(actor(obs.rand((2,))))
    assert spec.is_in(td["action"])
    assert td["state_action_value"].shape == (2, 1)


def test_sac_on_unbounded_actions_uses_a_normal():
    actor, _ = sac_models(cartpole_obs(), Unbounded(shape=(2,)), num_cells=(8,))
    td = actor(cartpole_obs().rand((B,)))
    dist = actor.get_dist(td)
    assert isinstance(dist, TruncatedNormal)
    assert math.isinf(float(dist.high))
    normal = torch.distributions.Normal(td["loc"], td["scale"])
    torch.testing.assert_close(dist.log_prob(td["action"]), normal.log_prob(td["action"]).sum(-1))


# --------------------------------------------------------------------------- #
# PPO
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("shared_trunk", [False, True])
@pytest.mark.parametrize("action", list(DISCRETE))
def test_ppo_on_cartpole_specs(action, shared_trunk):
    obs, spec = cartpole_obs(), DISCRETE[action]()
    built = ppo_models(obs, spec, shared_trunk=shared_trunk)
    if shared_trunk:
        assert isinstance(built, ActorValueOperator)
        actor, critic = built.get_policy_operator(), built.get_value_operator()
    else:
        actor, critic = built
    td = actor(obs.rand((B,)))
    assert spec.is_in(td["action"])
    policy = built.get_policy_head() if shared_trunk else actor
    dist = policy.get_dist(td)
    expected_class = OneHotCategorical if action == "one_hot" else torch.distributions.Categorical
    assert isinstance(dist, expected_class)
    torch.testing.assert_close(td["sample_log_prob"], dist.log_prob(td["action"]))
    assert critic(td)["state_value"].shape == (B, 1)
    # the hot path skips torch's argument checks; only one-hot samples are projected (to bool)
    assert dist._validate_args is False
    assert policy.safe == (action == "one_hot")


@pytest.mark.parametrize("shared_trunk", [False, True])
def test_ppo_on_pendulum_specs(shared_trunk):
    obs, spec = pendulum_obs(), Bounded(-2.0, 2.0, shape=(1,))
    built = ppo_models(obs, spec, shared_trunk=shared_trunk, num_cells=(16, 16))
    td = built(obs.rand((B,))) if shared_trunk else built[1](built[0](obs.rand((B,))))
    assert spec.is_in(td["action"])
    assert td["sample_log_prob"].shape == (B,)
    assert td["sample_log_prob"].isfinite().all()
    assert td["state_value"].shape == (B, 1)


@pytest.mark.parametrize("layout", ["chw3", "hwc"])
@pytest.mark.parametrize("shared_trunk", [False, True])
def test_ppo_on_pixels(layout, shared_trunk):
    obs = pixels_obs(PIXELS[layout])
    built = ppo_models(obs, OneHot(4), shared_trunk=shared_trunk, num_cells=(16,))
    td = built(obs.rand((2,))) if shared_trunk else built[1](built[0](obs.rand((2,))))
    assert OneHot(4).is_in(td["action"])
    assert td["state_value"].shape == (2, 1)
    if shared_trunk:  # one ConvNet shared by the two heads
        assert sum(isinstance(m, torch.nn.Conv2d) for m in built.modules()) == 3


# --------------------------------------------------------------------------- #
# inputs: environments, batched specs, dtypes, copies
# --------------------------------------------------------------------------- #
class FakeEnv:
    """Anything with observation_spec and action_spec stands for an environment."""

    def __init__(self, batch: tuple[int, ...] = ()) -> None:
        self.observation_spec = Composite(observation=Unbounded(shape=(*batch, 4)), shape=batch)
        self.action_spec = OneHot(2).expand(*batch, 2)


def test_recipes_accept_an_environment_and_drop_its_batch_dims():
    env = FakeEnv(batch=(3,))
    actor = dqn_model(env)
    td = env.observation_spec.rand((2,))  # batch [2, 3]
    out = actor(td)
    assert env.action_spec.is_in(out["action"][0])
    assert out["action"].shape == (2, 3, 2)
    actor, _ = ppo_models(env)
    assert env.action_spec.is_in(actor(env.observation_spec.rand())["action"])
    bounded = Composite(observation=Unbounded(shape=(3, 4)), shape=(3,))
    actor, _ = sac_models(bounded, Bounded(-1.0, 1.0, shape=(3, 2)), num_cells=(8,))
    assert Bounded(-1.0, 1.0, shape=(3, 2)).is_in(actor(bounded.rand())["action"])


def test_observation_key_selection():
    obs = Composite(observation=Unbounded(shape=(4,)), pixels=pixels_obs((3, 16, 16))["pixels"])
    assert dqn_model(obs, OneHot(2)).in_keys == ["observation"]
    assert dqn_model(obs, OneHot(2), observation_key="pixels").in_keys == ["pixels"]
    nested = Composite(agent={"state": Unbounded(shape=(3,))})
    assert dqn_model(nested, OneHot(2)).in_keys == [("agent", "state")]


def test_float64_observations_are_cast():
    obs = Composite(observation=Unbounded(shape=(4,), dtype=torch.float64))
    actor, critic = ppo_models(obs, Categorical(3))
    td = critic(actor(obs.rand((B,))))
    assert td["state_value"].dtype == torch.float32


def test_models_can_be_copied_and_moved():
    obs = pixels_obs((3, 16, 16))
    actor = dqn_model(obs, OneHot(2), dueling=True, noisy=True, num_cells=(8,), device="cpu")
    target = copy.deepcopy(actor)
    td = obs.rand((2,))
    torch.testing.assert_close(
        target(td.clone())["action_value"], actor(td.clone())["action_value"]
    )


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_recipes_on_cuda():
    obs = pendulum_obs().to("cuda")
    actor, _ = sac_models(obs, Bounded(-1.0, 1.0, shape=(1,), device="cuda"), device="cuda")
    assert actor(obs.rand((2,)))["action"].device.type == "cuda"


def test_recipe_errors():
    with pytest.raises(ModuleError, match="discrete action spec"):
        dqn_model(pendulum_obs(), Bounded(-1.0, 1.0, shape=(1,)))
    with pytest.raises(ModuleError, match="continuous action spec"):
        ddpg_models(cartpole_obs(), OneHot(2))
    with pytest.raises(ModuleError, match="continuous action spec"):
        ppo_models(cartpole_obs(), MultiOneHot([2, 3]))
    with pytest.raises(ModuleError, match="num_qvalue_nets"):
        sac_models(pendulum_obs(), Bounded(-1.0, 1.0, shape=(1,)), num_qvalue_nets=3)
    with pytest.raises(ModuleError, match="atoms >= 2"):
        dqn_model(cartpole_obs(), OneHot(2), distributional=1)
    with pytest.raises(ModuleError, match="v_min must be < v_max"):
        dqn_model(cartpole_obs(), OneHot(2), distributional=5, v_min=1.0, v_max=1.0)
    with pytest.raises(ModuleError, match="pass the action spec"):
        dqn_model(cartpole_obs())
    with pytest.raises(ModuleError, match="not in the spec"):
        dqn_model(cartpole_obs(), OneHot(2), observation_key="pixels")
    with pytest.raises(ModuleError, match="vectors"):
        dqn_model(Composite(observation=Unbounded(shape=(4, 4))), OneHot(2))
    with pytest.raises(ModuleError, match="cnn=True"):
        dqn_model(cartpole_obs(), OneHot(2), cnn=True)
    with pytest.raises(ModuleError, match="cannot tell which observation"):
        dqn_model(Composite(a=Unbounded(shape=(1,)), b=Unbounded(shape=(1,))), OneHot(2))


# --------------------------------------------------------------------------- #
# a real environment
# --------------------------------------------------------------------------- #
def test_recipes_from_a_gym_cartpole():
    pytest.importorskip("gymnasium")
    envs = pytest.importorskip("rlbricks.envs")
    env = envs.GymEnv("CartPole-v1")
    try:
        env.set_seed(0)
        actor = dqn_model(env)
        rollout = env.rollout(10, actor)
        assert env.action_spec.is_in(rollout["action"])
        policy, critic = ppo_models(env)
        rollout = env.rollout(10, policy)
        assert env.action_spec.is_in(rollout["action"])
        assert critic(rollout)["state_value"].shape == (*rollout.batch_size, 1)
    finally:
        env.close()
