"""EGreedyModule and AdditiveGaussianModule: spec respect, masks, schedules, checkpoints."""

from __future__ import annotations

import io

import pytest
import torch

from rlbricks.modules import AdditiveGaussianModule
from rlbricks.modules import EGreedyModule
from rlbricks.modules import ModuleError
from rlbricks.modules import QValueActor
from rlbricks.modules import TensorDictSequential
from rlbricks.modules import set_exploration_type
from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import MultiOneHot
from rlbricks.specs import OneHot
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict


def _linear(init, end, n, k):
    """The reference schedule: linear from init to end over n frames, then flat."""
    return init + (end - init) * min(k, n) / n


def _round_trip(module, fresh):
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    return fresh


# ---------------------------------------------------------------- EGreedy
@pytest.mark.parametrize(
    "spec",
    [Categorical(4), OneHot(4), Categorical(3, shape=(2,)), Bounded(-2.0, 2.0, shape=(3,))],
    ids=["categorical", "one_hot", "categorical_2d", "bounded"],
)
@pytest.mark.parametrize("batch", [(), (500,), (20, 25)])
def test_eps_one_gives_random_actions_inside_the_spec(spec, batch):
    torch.manual_seed(0)
    explore = EGreedyModule(spec, eps_init=1.0, eps_end=1.0)
    greedy = spec.zero(batch)
    td = explore(TensorDict({"action": greedy.clone()}, batch))
    assert spec.is_in(td["action"])
    assert td["action"].shape == greedy.shape
    assert td["action"].dtype == greedy.dtype
    if batch:
        assert not torch.equal(td["action"], greedy)


def test_eps_zero_keeps_the_action():
    explore = EGreedyModule(Categorical(4), eps_init=0.0, eps_end=0.0)
    action = torch.randint(0, 4, (100,))
    torch.testing.assert_close(
        explore(TensorDict({"action": action.clone()}, [100]))["action"], action
    )


def test_replacement_rate_matches_eps():
    torch.manual_seed(0)
    eps, n, size = 0.3, 5, 40_000
    explore = EGreedyModule(Categorical(n), eps_init=eps, eps_end=eps)
    td = explore(TensorDict({"action": torch.zeros(size, dtype=torch.long)}, [size]))
    changed = (td["action"] != 0).float().mean().item()
    assert changed == pytest.approx(eps * (n - 1) / n, abs=0.01)
    counts = torch.bincount(td["action"][td["action"] != 0], minlength=n)[1:].float()
    assert (counts / counts.sum() - 1 / (n - 1)).abs().max() < 0.02  # uniform among the others


def test_each_batch_element_draws_independently():
    torch.manual_seed(0)
    spec = Categorical(2, shape=(4, 1))  # a batched env's spec: shape (*batch, 1)
    explore = EGreedyModule(spec, eps_init=0.5, eps_end=0.5)
    replaced = torch.zeros(4)
    for _ in range(400):
        td = explore(TensorDict({"action": torch.full((4, 1), 7)}, [4]))  # 7: never a spec value
        kept_or_random = (td["action"] == 7) | (td["action"] == 0) | (td["action"] == 1)
        assert bool(kept_or_random.all())
        replaced += (td["action"][:, 0] != 7).float()
    torch.testing.assert_close(replaced / 400, torch.full((4,), 0.5), atol=0.08, rtol=0)


@pytest.mark.parametrize("spec", [Categorical(5), OneHot(5)], ids=["categorical", "one_hot"])
def test_masked_random_actions_are_allowed_ones(spec):
    torch.manual_seed(0)
    mask = torch.rand(3000, 5) > 0.6
    mask[torch.arange(3000), torch.randint(0, 5, (3000,))] = True
    explore = EGreedyModule(spec, eps_init=1.0, eps_end=1.0, action_mask_key="mask")
    assert explore.in_keys == ["action", "mask"]
    td = TensorDict({"action": spec.zero((3000,)), "mask": mask}, [3000])
    action = explore(td)["action"]
    index = action.long().argmax(-1) if isinstance(spec, OneHot) else action
    assert bool(mask.gather(-1, index.unsqueeze(-1)).all())
    # every allowed action of the first row comes up: uniform among allowed
    row = torch.tensor([True, False, True, True, False])
    td = TensorDict({"action": spec.zero((2000,)), "mask": row.expand(2000, 5)}, [2000])
    picked = explore(td)["action"]
    picked = picked.long().argmax(-1) if isinstance(spec, OneHot) else picked
    freq = torch.bincount(picked, minlength=5).float() / 2000
    torch.testing.assert_close(freq, row.float() / 3, atol=0.04, rtol=0)


def test_mask_with_trailing_singleton_action_dim():
    explore = EGreedyModule(Categorical(3, shape=(1,)), eps_init=1.0, action_mask_key="mask")
    mask = torch.tensor([[False, False, True]]).expand(50, 3)
    td = explore(TensorDict({"action": torch.zeros(50, 1, dtype=torch.long), "mask": mask}, [50]))
    torch.testing.assert_close(td["action"], torch.full((50, 1), 2))


def test_spec_mask_is_respected_without_a_mask_key():
    spec = Categorical(4, mask=torch.tensor([False, True, False, True]))
    explore = EGreedyModule(spec, eps_init=1.0)
    td = explore(TensorDict({"action": torch.ones(500, dtype=torch.long)}, [500]))
    assert bool((td["action"] % 2 == 1).all())


@pytest.mark.parametrize("k", [0, 1, 250, 999, 1000, 5000])
def test_eps_follows_the_linear_schedule(k):
    explore = EGreedyModule(Categorical(2), eps_init=0.9, eps_end=0.05, annealing_num_steps=1000)
    for frames in [k // 3, k // 3, k - 2 * (k // 3)]:
        explore.step(frames)
    assert float(explore.eps) == pytest.approx(_linear(0.9, 0.05, 1000, k), abs=1e-6)
    assert int(explore.steps) == k


def test_step_default_is_one_frame():
    explore = EGreedyModule(Categorical(2), eps_init=1.0, eps_end=0.0, annealing_num_steps=4)
    values = []
    for _ in range(6):
        explore.step()
        values.append(round(float(explore.eps), 6))
    assert values == [0.75, 0.5, 0.25, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("kind", ["mode", "mean", "deterministic"])
def test_egreedy_is_off_outside_random(kind):
    explore = EGreedyModule(Categorical(4), eps_init=1.0, eps_end=1.0)
    with set_exploration_type(kind):
        td = explore(TensorDict({"action": torch.zeros(200, dtype=torch.long)}, [200]))
    assert bool((td["action"] == 0).all())


def test_egreedy_state_dict_round_trip():
    explore = EGreedyModule(Categorical(2), eps_init=1.0, eps_end=0.1, annealing_num_steps=100)
    explore.step(37)
    fresh = _round_trip(
        explore, EGreedyModule(Categorical(2), eps_init=1.0, eps_end=0.1, annealing_num_steps=100)
    )
    assert set(explore.state_dict()) == {"eps", "steps"}
    assert float(fresh.eps) == float(explore.eps)
    assert int(fresh.steps) == 37
    fresh.step(13)
    explore.step(13)
    assert float(fresh.eps) == pytest.approx(_linear(1.0, 0.1, 100, 50))


def test_egreedy_after_a_qvalue_actor_with_composite_spec():
    torch.manual_seed(0)
    spec = Composite(action=OneHot(3))
    policy = TensorDictSequential(
        QValueActor(lambda x: x, spec=spec), EGreedyModule(spec, eps_init=1.0, eps_end=1.0)
    )
    assert policy.in_keys == ["observation"]
    td = policy(TensorDict({"observation": torch.tensor([[0.0, 0.0, 9.0]]).expand(300, 3)}, [300]))
    assert OneHot(3).is_in(td["action"])
    assert bool(td["action"][:, :2].any())  # some random actions differ from the greedy one
    with set_exploration_type("mode"):
        td = policy(TensorDict({"observation": torch.tensor([0.0, 0.0, 9.0])}))
    torch.testing.assert_close(td["action"], torch.tensor([False, False, True]))


def test_egreedy_errors():
    with pytest.raises(ModuleError, match="annealing_num_steps must be a positive int"):
        EGreedyModule(Categorical(2), annealing_num_steps=0)
    with pytest.raises(ModuleError, match="action masks need a OneHot or Categorical"):
        EGreedyModule(MultiOneHot([2, 2]), action_mask_key="mask")
    with pytest.raises(ModuleError, match="needs the action spec"):
        EGreedyModule(None)  # type: ignore[arg-type]
    with pytest.raises(ModuleError, match="has no entry 'action'"):
        EGreedyModule(Composite(observation=Unbounded(shape=(2,))))
    masked = EGreedyModule(Categorical(3), eps_init=1.0, action_mask_key="mask")
    with pytest.raises(ModuleError, match="does not match the action"):
        masked(
            TensorDict(
                {
                    "action": torch.zeros(4, dtype=torch.long),
                    "mask": torch.ones(4, 2, 3, dtype=torch.bool),
                },
                [4],
            )
        )
    with pytest.raises(KeyError, match="reads 'mask'"):
        masked(TensorDict({"action": torch.zeros(4, dtype=torch.long)}, [4]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eps_init": 2}, r"eps_init must be a number in \[0, 1\] \(.*\), got 2$"),
        ({"eps_end": -0.1}, r"eps_end must be a number in \[0, 1\] .*got -0\.1"),
        ({"eps_init": float("nan")}, r"eps_init must be a number in \[0, 1\] .*got nan"),
        ({"eps_end": "0.1"}, r"eps_end must be a number in \[0, 1\] .*got '0\.1'"),
        ({"annealing_num_steps": -3}, r"annealing_num_steps must be a positive int, got -3"),
        ({"annealing_num_steps": 2.5}, r"annealing_num_steps must be a positive int, got 2\.5"),
        ({"annealing_num_steps": "9"}, r"annealing_num_steps must be a positive int, got '9'"),
    ],
)
def test_egreedy_refuses_invalid_numbers(kwargs, match):
    with pytest.raises(ModuleError, match=rf"^EGreedyModule: {match}"):
        EGreedyModule(Categorical(2), **kwargs)


def test_egreedy_accepts_the_bounds_and_whole_float_steps():
    explore = EGreedyModule(Categorical(2), eps_init=1, eps_end=0, annealing_num_steps=1e3)
    assert explore.annealing_num_steps == 1000


def test_egreedy_repr():
    assert "eps_init=1.0, eps_end=0.1, annealing_num_steps=1000" in repr(
        EGreedyModule(Categorical(2))
    )


# ---------------------------------------------------------------- Gaussian
@pytest.mark.parametrize("batch", [(), (300,), (10, 30)])
def test_gaussian_noise_is_projected_into_the_bounds(batch):
    torch.manual_seed(0)
    spec = Bounded(low=torch.tensor([-1.0, 0.0]), high=torch.tensor([1.0, 0.2]))
    noise = AdditiveGaussianModule(spec, sigma_init=3.0, sigma_end=3.0)
    td = noise(TensorDict({"action": torch.zeros(*batch, 2)}, batch))
    assert spec.is_in(td["action"])
    if batch:
        assert bool((td["action"][..., 0] == 1.0).any())
        assert bool((td["action"][..., 0] == -1.0).any())


def test_gaussian_noise_statistics_match_sigma_mean_std():
    torch.manual_seed(0)
    spec = Bounded(-1e6, 1e6, shape=(4,))
    noise = AdditiveGaussianModule(spec, sigma_init=0.5, sigma_end=0.5, mean=2.0, std=3.0)
    action = torch.randn(50_000, 4)
    out = noise(TensorDict({"action": action.clone()}, [50_000]))["action"]
    delta = out - action
    assert delta.mean().item() == pytest.approx(0.5 * 2.0, abs=0.03)
    assert delta.std().item() == pytest.approx(0.5 * 3.0, abs=0.03)


@pytest.mark.parametrize("k", [0, 10, 500, 1000, 3000])
def test_sigma_follows_the_linear_schedule(k):
    noise = AdditiveGaussianModule(
        Bounded(-1.0, 1.0), sigma_init=1.0, sigma_end=0.1, annealing_num_steps=1000
    )
    noise.step(k)
    assert float(noise.sigma) == pytest.approx(_linear(1.0, 0.1, 1000, k), abs=1e-6)


def test_gaussian_noise_scale_follows_sigma():
    torch.manual_seed(0)
    noise = AdditiveGaussianModule(
        Bounded(-1e6, 1e6), sigma_init=2.0, sigma_end=0.0, annealing_num_steps=10
    )
    noise.step(5)  # sigma = 1
    out = noise(TensorDict({"action": torch.zeros(20_000)}, [20_000]))["action"]
    assert out.std().item() == pytest.approx(1.0, abs=0.03)
    noise.step(5)  # sigma = 0
    torch.testing.assert_close(
        noise(TensorDict({"action": torch.ones(3)}, [3]))["action"], torch.ones(3)
    )


@pytest.mark.parametrize("kind", ["mode", "mean", "deterministic"])
def test_gaussian_is_off_outside_random(kind):
    noise = AdditiveGaussianModule(Bounded(-1.0, 1.0, shape=(2,)))
    action = torch.full((5, 2), 3.0)  # outside the box: not even projected
    with set_exploration_type(kind):
        out = noise(TensorDict({"action": action.clone()}, [5]))["action"]
    torch.testing.assert_close(out, action)


def test_gaussian_state_dict_round_trip_and_keys():
    noise = AdditiveGaussianModule(Composite(act=Bounded(-1.0, 1.0)), action_key="act")
    assert noise.in_keys == ["act"]
    assert noise.out_keys == ["act"]
    noise.step(400)
    fresh = _round_trip(
        noise, AdditiveGaussianModule(Composite(act=Bounded(-1.0, 1.0)), action_key="act")
    )
    assert set(fresh.state_dict()) == {"sigma", "steps"}
    assert float(fresh.sigma) == pytest.approx(_linear(1.0, 0.1, 1000, 400))
    assert "sigma_init=1.0, sigma_end=0.1" in repr(fresh)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sigma_init": -1.0}, r"sigma_init must be a number >= 0 .*got -1\.0"),
        ({"sigma_end": float("inf")}, r"sigma_end must be a number >= 0 .*got inf"),
        ({"std": -0.5}, r"std must be a number >= 0 .*got -0\.5"),
        ({"mean": float("nan")}, r"mean must be a finite number .*got nan"),
        ({"annealing_num_steps": 0}, r"annealing_num_steps must be a positive int, got 0"),
    ],
)
def test_gaussian_refuses_invalid_numbers(kwargs, match):
    with pytest.raises(ModuleError, match=rf"^AdditiveGaussianModule: {match}"):
        AdditiveGaussianModule(Bounded(-1.0, 1.0, shape=(2,)), **kwargs)
