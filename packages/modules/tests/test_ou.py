"""OrnsteinUhlenbeckProcessModule: the recursion, per-env state in the TensorDict, resets, schedules."""

from __future__ import annotations

import io
import math

import pytest
import torch

from rlbricks.modules import ModuleError
from rlbricks.modules import OrnsteinUhlenbeckProcessModule
from rlbricks.modules import set_exploration_type
from rlbricks.specs import Bounded
from rlbricks.tensordict import TensorDict

WIDE = Bounded(-1e6, 1e6, shape=(2,))


def _next_root(td):
    """What step_mdp does for the keys that matter here: root entries carry over."""
    return TensorDict(
        {k: td[k] for k in ("_ou_prev_noise", "_ou_steps")}
        | {"action": torch.zeros_like(td["action"])},
        td.batch_size,
    )


def _reference(n_envs, n_steps, resets, theta, mu, sigma, sigma_min, n_anneal, dt, eps, x0):
    """Naive per-env loops reproducing the random draws of the module (one randn per call)."""
    torch.manual_seed(0)
    noise = [[x0] * 2 for _ in range(n_envs)]
    count = [0] * n_envs
    outputs = []
    for t in range(n_steps):
        draws = torch.randn(n_envs, 2).tolist()
        row = []
        for e in range(n_envs):
            if t == 0 or resets[t][e]:
                noise[e], count[e] = [x0] * 2, 0
            if sigma_min is None:
                s = sigma
            else:
                s = max(sigma_min, sigma - (sigma - sigma_min) * count[e] / n_anneal)
            noise[e] = [
                x + theta * (mu - x) * dt + s * math.sqrt(dt) * z
                for x, z in zip(noise[e], draws[e])
            ]
            count[e] += 1
            row.append([eps * x for x in noise[e]])
        outputs.append(row)
    return torch.tensor(outputs)


@pytest.mark.parametrize("sigma_min", [None, 0.05])
def test_matches_a_naive_reference_with_resets(sigma_min):
    n_envs, n_steps = 3, 12
    resets = [[False] * n_envs for _ in range(n_steps)]
    resets[4][1] = True
    resets[7][0] = resets[7][2] = True
    params = dict(
        theta=0.3, mu=0.5, sigma=0.4, sigma_min=sigma_min, n_anneal=5, dt=0.1, eps=1.0, x0=0.2
    )
    expected = _reference(n_envs, n_steps, resets, **params)

    ou = OrnsteinUhlenbeckProcessModule(
        WIDE,
        theta=0.3,
        mu=0.5,
        sigma=0.4,
        sigma_min=sigma_min,
        n_steps_annealing=5,
        dt=0.1,
        x0=0.2,
        eps_init=1.0,
        eps_end=1.0,
    )
    torch.manual_seed(0)
    td = TensorDict({"action": torch.zeros(n_envs, 2)}, [n_envs])
    got = []
    for t in range(n_steps):
        if t:
            td = _next_root(td)
            td["is_init"] = torch.tensor(resets[t]).unsqueeze(-1)
        ou(td)
        got.append(td["action"].clone())
    torch.testing.assert_close(torch.stack(got), expected, rtol=1e-5, atol=1e-6)


def test_noise_restarts_only_where_is_init():
    ou = OrnsteinUhlenbeckProcessModule(
        WIDE, theta=0.0, sigma=1.0, dt=1.0, eps_init=1.0, eps_end=1.0
    )
    td = TensorDict({"action": torch.zeros(4, 2)}, [4])
    for _ in range(3):
        ou(td)
        td = _next_root(td)
    before = td["_ou_prev_noise"].clone()
    td["is_init"] = torch.tensor([[True], [False], [True], [False]])
    torch.manual_seed(5)
    ou(td)
    torch.manual_seed(5)
    draw = torch.randn(4, 2)
    # theta = 0, dt = 1: noise = previous (or x0 = 0 after a reset) + draw
    expected = torch.stack([draw[0], before[1] + draw[1], draw[2], before[3] + draw[3]])
    torch.testing.assert_close(td["_ou_prev_noise"], expected)
    torch.testing.assert_close(td["_ou_steps"].view(-1), torch.tensor([1, 4, 1, 4]))


@pytest.mark.parametrize("batch", [(), (5,), (2, 3)])
def test_state_lives_in_the_tensordict_for_any_batch(batch):
    ou = OrnsteinUhlenbeckProcessModule(Bounded(-1.0, 1.0, shape=(2,)))
    td = ou(TensorDict({"action": torch.zeros(*batch, 2)}, batch))
    assert td["_ou_prev_noise"].shape == (*batch, 2)
    assert td["_ou_steps"].shape == (*batch, 1)
    assert bool((td["_ou_steps"] == 1).all())
    td["is_init"] = torch.zeros(*batch, 1, dtype=torch.bool)
    ou(td)
    assert bool((td["_ou_steps"] == 2).all())


def test_output_is_projected_into_the_spec():
    torch.manual_seed(0)
    spec = Bounded(-0.01, 0.01, shape=(2,))
    ou = OrnsteinUhlenbeckProcessModule(spec, sigma=5.0, dt=1.0)
    td = TensorDict({"action": torch.zeros(500, 2)}, [500])
    for _ in range(3):
        ou(td)
        assert spec.is_in(td["action"])
        td = _next_root(td)


def test_eps_scales_the_noise_and_anneals():
    ou = OrnsteinUhlenbeckProcessModule(WIDE, eps_init=1.0, eps_end=0.0, annealing_num_steps=10)
    ou.step(5)
    assert float(ou.eps) == pytest.approx(0.5)
    td = ou(TensorDict({"action": torch.zeros(3, 2)}, [3]))
    torch.testing.assert_close(td["action"], 0.5 * td["_ou_prev_noise"])
    ou.step(100)
    assert float(ou.eps) == 0.0


def test_sigma_at_is_the_linear_episode_schedule():
    ou = OrnsteinUhlenbeckProcessModule(WIDE, sigma=0.3, sigma_min=0.1, n_steps_annealing=4)
    torch.testing.assert_close(
        ou.sigma_at(torch.tensor([0, 1, 2, 4, 9])), torch.tensor([0.3, 0.25, 0.2, 0.1, 0.1])
    )
    flat = OrnsteinUhlenbeckProcessModule(WIDE, sigma=0.3)
    torch.testing.assert_close(flat.sigma_at(torch.tensor([0, 100])), torch.tensor([0.3, 0.3]))


@pytest.mark.parametrize("kind", ["mode", "mean", "deterministic"])
def test_off_outside_random(kind):
    ou = OrnsteinUhlenbeckProcessModule(WIDE)
    with set_exploration_type(kind):
        td = ou(TensorDict({"action": torch.ones(2, 2)}, [2]))
    assert sorted(td.keys()) == ["action"]
    torch.testing.assert_close(td["action"], torch.ones(2, 2))


def test_state_dict_round_trip():
    ou = OrnsteinUhlenbeckProcessModule(WIDE, x0=torch.tensor([0.1, -0.1]), annealing_num_steps=100)
    ou.step(30)
    buffer = io.BytesIO()
    torch.save(ou.state_dict(), buffer)
    buffer.seek(0)
    fresh = OrnsteinUhlenbeckProcessModule(WIDE, annealing_num_steps=100)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert set(fresh.state_dict()) == {"eps", "steps"}  # x0 is configuration, not state
    assert float(fresh.eps) == pytest.approx(1.0 + (0.1 - 1.0) * 0.3)
    assert int(fresh.steps) == 30
    ou.to(torch.float64)
    assert ou.x0.dtype == torch.float64  # x0 still follows the module


def test_keys_and_repr():
    ou = OrnsteinUhlenbeckProcessModule(WIDE, is_init_key=("env", "is_init"), action_key="act")
    assert ou.in_keys == ["act", "_ou_prev_noise", "_ou_steps", ("env", "is_init")]
    assert ou.out_keys == ["act", "_ou_prev_noise", "_ou_steps"]
    assert "theta=0.15" in repr(ou)


def test_errors():
    with pytest.raises(ModuleError, match="n_steps_annealing must be a positive int"):
        OrnsteinUhlenbeckProcessModule(WIDE, n_steps_annealing=0)
    with pytest.raises(KeyError, match="reads 'action'"):
        OrnsteinUhlenbeckProcessModule(WIDE)(TensorDict({"act": torch.zeros(2)}))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sigma": -0.2}, r"sigma must be a number >= 0 .*got -0\.2"),
        ({"theta": -1.0}, r"theta must be a number >= 0 .*got -1\.0"),
        ({"dt": 0.0}, r"dt must be a number > 0 .*got 0\.0"),
        ({"mu": float("inf")}, r"mu must be a finite number .*got inf"),
        ({"sigma_min": -0.1}, r"sigma_min must be a number >= 0 .*got -0\.1"),
        ({"sigma_min": 0.5}, r"sigma_min=0\.5 must be <= sigma=0\.2"),
        ({"eps_init": -1.0}, r"eps_init must be a number >= 0 .*got -1\.0"),
        ({"n_steps_annealing": 2.5}, r"n_steps_annealing must be a positive int, got 2\.5"),
        ({"x0": float("nan")}, r"x0 must hold finite numbers"),
    ],
)
def test_refuses_invalid_numbers(kwargs, match):
    with pytest.raises(ModuleError, match=rf"^OrnsteinUhlenbeckProcessModule: {match}"):
        OrnsteinUhlenbeckProcessModule(WIDE, **kwargs)
