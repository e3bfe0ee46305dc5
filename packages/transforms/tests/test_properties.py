"""Property tests of transforms: specs describe what the transformed env outputs; inverses undo.

* For any chain of transforms on a test env of any batch shape, every entry
  a rollout writes lies in the transformed spec (``check_env_specs`` reports
  missing, extra and out-of-spec entries), and the forward spec has the shape
  and dtype of the forward output.
* An inverse followed by the forward transform gives the input back, and the
  base env receives the inverse's output.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from rlbricks.envs import check_env_specs
from rlbricks.envs.testing import ContinuousActionEnv
from rlbricks.envs.testing import CountingEnv
from rlbricks.tensordict import TensorDict
from rlbricks.transforms import ClipTransform
from rlbricks.transforms import Compose
from rlbricks.transforms import DTypeCastTransform
from rlbricks.transforms import InitTracker
from rlbricks.transforms import RewardClipping
from rlbricks.transforms import RewardScaling
from rlbricks.transforms import RewardSum
from rlbricks.transforms import StepCounter
from rlbricks.transforms import Transform
from rlbricks.transforms import TransformedEnv
from rlbricks.transforms import UnsqueezeTransform

SETTINGS = settings(max_examples=40, deadline=None)
BATCHES = st.sampled_from([(), (1,), (3,), (2, 2)])

#: transforms that fit any test env (observation key "observation", reward [*, 1])
FACTORIES: dict[str, Callable[[], Transform]] = {
    "reward_scaling": lambda: RewardScaling(1.0, 0.5),
    "reward_clipping": lambda: RewardClipping(-0.5, 0.5),
    "reward_sum": lambda: RewardSum(),
    "step_counter": lambda: StepCounter(max_steps=4),
    "init_tracker": lambda: InitTracker(),
    "clip_observation": lambda: ClipTransform(-1.0, 2.0),
    "unsqueeze": lambda: UnsqueezeTransform(-1, in_keys=["observation"], out_keys=["obs_u"]),
}


@SETTINGS
@given(
    names=st.lists(st.sampled_from(sorted(FACTORIES)), min_size=1, max_size=4, unique=True),
    batch=BATCHES,
    continuous=st.booleans(),
    max_steps=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_transformed_specs_hold_what_the_env_outputs(
    names: list[str], batch: tuple[int, ...], continuous: bool, max_steps: int, seed: int
) -> None:
    base = (ContinuousActionEnv if continuous else CountingEnv)(
        max_steps=max_steps, batch_size=batch
    )
    env = TransformedEnv(base, Compose(*(FACTORIES[n]() for n in names)))
    check_env_specs(env, steps=2 * max_steps + 1, seed=seed)
    torch.manual_seed(seed)
    td = env.rollout(max_steps + 1, break_when_any_done=False)
    for key in env.observation_spec.keys(include_nested=True, leaves_only=True):
        spec = env.observation_spec[key]
        value = td.get(("next", *((key,) if isinstance(key, str) else key)))
        assert value.dtype == spec.dtype, key
        assert value.shape == (*batch, max_steps + 1, *spec.shape[len(batch) :]), key


@SETTINGS
@given(
    values=st.lists(
        st.floats(allow_nan=False, allow_infinity=True, width=32), min_size=1, max_size=8
    ),
)
def test_a_dtype_cast_inverse_round_trips(values: list[float]) -> None:
    cast = DTypeCastTransform(torch.float64, torch.float32, in_keys=["x"], in_keys_inv=["action"])
    action = torch.tensor(values, dtype=torch.float32)
    env_side = cast.inv(TensorDict({"action": action}, batch_size=[len(values)]))
    assert env_side["action"].dtype == torch.float64
    back = cast(TensorDict({"x": env_side["action"]}, batch_size=[len(values)]))
    assert torch.equal(back["x"], action)


@SETTINGS
@given(
    values=st.lists(st.floats(-10, 10, allow_nan=False, width=32), min_size=1, max_size=8),
    low=st.floats(-2, 0, width=32),
    width=st.floats(0, 3, width=32),
)
def test_a_clip_inverse_is_idempotent_and_inside_the_bounds(
    values: list[float], low: float, width: float
) -> None:
    high = low + width
    clip = ClipTransform(low, high, in_keys=["x"], in_keys_inv=["action"])
    action = torch.tensor(values, dtype=torch.float32)
    once = clip.inv(TensorDict({"action": action}, batch_size=[len(values)]))["action"]
    twice = clip.inv(TensorDict({"action": once}, batch_size=[len(values)]))["action"]
    assert torch.equal(once, twice)
    assert bool((once >= low).all())
    assert bool((once <= high).all())
    inside = (action >= low) & (action <= high)
    assert torch.equal(once[inside], action[inside])
