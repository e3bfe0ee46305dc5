"""The Atari-style pixel pipeline: ToTensorImage → GrayScale → Resize(84, 84) → CatFrames(4).

Checked on gymnasium pixel envs (CartPole rendered, Pong from ale-py) and on a
deterministic fake pixel env: inside ParallelEnv workers, on the batched
output, and offline on stored raw frames, the three give the same stacks.
"""

from __future__ import annotations

import functools

import pytest
import torch

from rlbricks.envs import EnvBase
from rlbricks.envs import ParallelEnv
from rlbricks.envs import SerialEnv
from rlbricks.envs import check_env_specs
from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict
from rlbricks.transforms import CatFrames
from rlbricks.transforms import Compose
from rlbricks.transforms import GrayScale
from rlbricks.transforms import NoopResetEnv
from rlbricks.transforms import Resize
from rlbricks.transforms import ToTensorImage
from rlbricks.transforms import TransformedEnv


def pipeline(key: str = "pixels", size: int = 84) -> Compose:
    keys = [key]
    return Compose(
        ToTensorImage(in_keys=keys),
        GrayScale(in_keys=keys),
        Resize(size, size, in_keys=keys),
        CatFrames(4, dim=-3, in_keys=keys),
    )


class FakePixelEnv(EnvBase):
    """uint8 RGB frames [H, W, 3] that are a function of the step count; done at max_steps."""

    def __init__(self, max_steps: int = 3, hw: tuple[int, int] = (30, 20)) -> None:
        super().__init__()
        self.hw = hw
        self.max_steps = max_steps
        self.count = 0
        self.observation_spec = Composite(pixels=Bounded(0, 255, shape=(*hw, 3), dtype=torch.uint8))
        self.action_spec = Categorical(3, shape=(1,))
        self.reward_spec = Unbounded(shape=(1,))

    def _frame(self) -> torch.Tensor:
        h, w = self.hw
        grid = torch.arange(h * w * 3).reshape(h, w, 3)
        return ((grid * (self.count + 1) + 41 * self.count) % 256).to(torch.uint8)

    def _reset(self, td: TensorDict | None) -> TensorDict:
        self.count = 0
        return TensorDict({"pixels": self._frame()})

    def _step(self, td: TensorDict) -> TensorDict:
        self.count += 1
        return TensorDict(
            {
                "pixels": self._frame(),
                "reward": td["action"].float(),
                "terminated": torch.tensor([self.count >= self.max_steps]),
            }
        )

    def _set_seed(self, seed: int) -> None:
        pass


def zero_action(td: TensorDict) -> TensorDict:
    return td.set("action", torch.zeros((*td.batch_size, 1), dtype=torch.long))


def test_cartpole_from_pixels_passes_check_env_specs() -> None:
    pytest.importorskip("gymnasium")
    from rlbricks.envs import GymEnv

    env = TransformedEnv(GymEnv("CartPole-v1", from_pixels=True, pixels_only=True), pipeline())
    spec = env.observation_spec["pixels"]
    assert spec.shape == (4, 84, 84)
    assert spec.dtype == torch.float32
    check_env_specs(env, steps=3, seed=0)
    td = env.rollout(3)
    stacks = td["next", "pixels"]
    assert stacks.shape == (td.batch_size[0], 4, 84, 84)
    # frame stacking: the last frame of step t is the second to last of step t + 1
    assert torch.equal(stacks[0, -1], stacks[1, -2])
    env.close()


def test_pong_from_ale_passes_check_env_specs() -> None:
    pytest.importorskip("gymnasium")
    pytest.importorskip("ale_py")
    from rlbricks.envs import GymEnv

    # Pong's RGB frames come under "observation"; the no-op (one-hot index 0) is NOOP
    transforms = pipeline("observation")
    transforms.insert(0, NoopResetEnv(3, seed=0))
    env = TransformedEnv(GymEnv("ALE/Pong-v5"), transforms)
    assert env.observation_spec["observation"].shape == (4, 84, 84)
    check_env_specs(env, steps=3, seed=0)
    env.close()


def test_offline_pipeline_on_raw_frames_equals_the_env() -> None:
    fns = [functools.partial(FakePixelEnv, max_steps=m) for m in (2, 3)]
    online = TransformedEnv(SerialEnv(2, fns), pipeline(size=12))
    check_env_specs(online)
    td_online = online.rollout(7, policy=zero_action, break_when_any_done=False)
    td_raw = SerialEnv(2, fns).rollout(7, policy=zero_action, break_when_any_done=False)
    td_offline = pipeline(size=12)(td_raw)
    assert td_online["pixels"].shape == (2, 7, 4, 12, 12)
    assert torch.equal(td_offline["pixels"], td_online["pixels"])
    assert torch.equal(td_offline["next", "pixels"], td_online["next", "pixels"])
    # an episode's first stack is its first gray frame repeated
    first = td_online["pixels"][0, 0]
    assert all(torch.equal(first[i], first[0]) for i in range(4))


def test_pipeline_inside_workers_equals_on_the_batched_output() -> None:
    inside = ParallelEnv(
        2,
        [lambda m=m: TransformedEnv(FakePixelEnv(max_steps=m), pipeline(size=12)) for m in (2, 3)],
        mp_start_method="fork",
    )
    outside = TransformedEnv(
        ParallelEnv(
            2,
            [functools.partial(FakePixelEnv, max_steps=m) for m in (2, 3)],
            mp_start_method="fork",
        ),
        pipeline(size=12),
    )
    with inside, outside:
        check_env_specs(inside)
        a = inside.rollout(6, policy=zero_action, break_when_any_done=False)
        b = outside.rollout(6, policy=zero_action, break_when_any_done=False)
    assert torch.equal(a["pixels"], b["pixels"])
    assert torch.equal(a["next", "pixels"], b["next", "pixels"])
