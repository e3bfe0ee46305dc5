"""``DMControlEnv`` / ``DMControlWrapper``: DeepMind Control Suite tasks as ``EnvBase``.

dm_control is an optional dependency (``pip install "rlbricks-envs[dm_control]"``):
it is imported only when a task is built by name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from rlbricks.envs._base import DeviceLike
from rlbricks.envs._base import EnvBase
from rlbricks.envs._errors import EnvImportError
from rlbricks.envs._errors import EnvRuntimeError
from rlbricks.envs._errors import EnvValueError
from rlbricks.specs import Bounded
from rlbricks.specs import Composite
from rlbricks.specs import TensorSpec
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict

__all__ = ["DMControlEnv", "DMControlWrapper"]

#: height and width of the ``"pixels"`` observation (``from_pixels=True``)
PIXELS_SIZE = 84


def _load_suite() -> Any:
    try:
        from dm_control import suite
    except ImportError as err:
        raise EnvImportError(
            'DMControlEnv needs dm_control: pip install "rlbricks-envs[dm_control]"'
        ) from err
    return suite


def _entry_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """dm_control scalars (shape ``()``) become vectors of one entry."""
    return tuple(shape) if len(shape) else (1,)


class DMControlWrapper(EnvBase):
    """Wrap a built dm_control environment (``dm_control.rl.control.Environment``).

    Observations keep their dm_control names, each an ``Unbounded`` float32
    spec (scalars become shape ``[1]``); with ``concat_observations=True`` they
    are flattened and concatenated, in dm_control's order, into one
    ``"observation"`` vector.  The action is ``Bounded`` by the task's
    ``minimum``/``maximum`` (float32), the reward is float32 ``[1]``.  A last
    step with ``discount == 0`` is ``terminated``; a last step with a positive
    discount (the time limit) is ``truncated``.

    Args:
        env: the dm_control environment, e.g. from ``dm_control.suite.load``.
        from_pixels: add a ``"pixels"`` observation, uint8 ``[84, 84, 3]``
            rendered from camera 0 (needs an OpenGL backend: ``MUJOCO_GL=egl``
            set before dm_control is first imported).
        pixels_only: with ``from_pixels``, keep ``"pixels"`` only.
        concat_observations: one ``"observation"`` vector instead of one entry per name.
        frame_skip: repeat each action this many times (rewards are summed; it
            stops early at the end of an episode).
        device: device of the returned tensors.

    Raises:
        EnvValueError: ``frame_skip < 1``, or ``pixels_only`` without ``from_pixels``.
        EnvRuntimeError: ``from_pixels`` but the environment cannot render.

    Example:
        >>> import os
        >>> _ = os.environ.setdefault("MUJOCO_GL", "disable")  # headless: no rendering
        >>> from dm_control import suite
        >>> from rlbricks.envs import DMControlWrapper
        >>> env = DMControlWrapper(suite.load("cartpole", "balance"))
        >>> sorted(env.observation_spec.keys())
        ['position', 'velocity']
        >>> env.rollout(3)["next", "position"].shape
        torch.Size([3, 3])
    """

    def __init__(
        self,
        env: Any,
        *,
        from_pixels: bool = False,
        pixels_only: bool = False,
        concat_observations: bool = False,
        frame_skip: int = 1,
        device: DeviceLike = None,
    ) -> None:
        super().__init__(device=device)
        if frame_skip < 1:
            raise EnvValueError(f"frame_skip must be at least 1, got {frame_skip}")
        if pixels_only and not from_pixels:
            raise EnvValueError("pixels_only=True needs from_pixels=True")
        self.from_pixels = from_pixels
        self.pixels_only = pixels_only
        self.concat_observations = concat_observations
        self.frame_skip = frame_skip
        self._set_env(env)

    # ------------------------------------------------------------------ #
    # specs
    # ------------------------------------------------------------------ #
    def _set_env(self, env: Any) -> None:
        self._env = env
        dev = self.device
        self._obs_shapes = {
            name: _entry_shape(spec.shape) for name, spec in env.observation_spec().items()
        }
        specs: dict[str, TensorSpec[Any]] = {}
        if not self.pixels_only:
            if self.concat_observations:
                size = sum(int(np.prod(shape)) for shape in self._obs_shapes.values())
                specs["observation"] = Unbounded(shape=(size,), device=dev)
            else:
                for name, shape in self._obs_shapes.items():
                    specs[name] = Unbounded(shape=shape, device=dev)
        if self.from_pixels:
            self._render()  # fail now, with a clear message, if rendering is impossible
            shape = (PIXELS_SIZE, PIXELS_SIZE, 3)
            specs["pixels"] = Bounded(0, 255, shape=shape, device=dev, dtype=torch.uint8)
        self.observation_spec = Composite(specs)
        action = env.action_spec()
        self.action_spec = Bounded(
            np.broadcast_to(action.minimum, action.shape).astype(np.float32),
            np.broadcast_to(action.maximum, action.shape).astype(np.float32),
            shape=tuple(action.shape),
            device=dev,
        )
        self.reward_spec = Unbounded(shape=(1,), device=dev)
        self._action_dtype = action.dtype

    # ------------------------------------------------------------------ #
    # EnvBase
    # ------------------------------------------------------------------ #
    def _render(self) -> np.ndarray:
        try:
            return np.asarray(
                self._env.physics.render(height=PIXELS_SIZE, width=PIXELS_SIZE, camera_id=0)
            )
        except Exception as err:
            raise EnvRuntimeError(
                f"{type(self).__name__}(from_pixels=True) cannot render ({type(err).__name__}: "
                f"{err}). Rendering headless needs an OpenGL backend chosen before dm_control "
                "is first imported: export MUJOCO_GL=egl (or osmesa)."
            ) from err

    def _observation(self, observation: Mapping[str, Any]) -> TensorDict:
        dev = self.device
        out = TensorDict(device=dev)
        if not self.pixels_only:
            arrays = {
                name: np.asarray(observation[name], dtype=np.float32).reshape(shape)
                for name, shape in self._obs_shapes.items()
            }
            if self.concat_observations:
                flat = np.concatenate([a.reshape(-1) for a in arrays.values()])
                out.set("observation", torch.as_tensor(flat, device=dev))
            else:
                for name, array in arrays.items():
                    out.set(name, torch.as_tensor(array, device=dev))
        if self.from_pixels:
            out.set("pixels", torch.as_tensor(self._render().copy(), device=dev))
        return out

    def _reset(self, tensordict: TensorDict | None) -> TensorDict:
        return self._observation(self._env.reset().observation)

    def _step(self, tensordict: TensorDict) -> TensorDict:
        action = tensordict.get("action").detach().cpu().numpy().astype(self._action_dtype)
        reward = 0.0
        for _ in range(self.frame_skip):
            timestep = self._env.step(action)
            reward += float(timestep.reward or 0.0)
            if timestep.last():
                break
        out = self._observation(timestep.observation)
        last = timestep.last()
        discount = 1.0 if timestep.discount is None else float(timestep.discount)
        dev = self.device
        out.set("reward", torch.tensor([reward], dtype=torch.float32, device=dev))
        out.set("terminated", torch.tensor([last and discount == 0.0], device=dev))
        out.set("truncated", torch.tensor([last and discount > 0.0], device=dev))
        return out

    def _set_seed(self, seed: int) -> None:
        random = getattr(self._env.task, "random", None)
        if not isinstance(random, np.random.RandomState):
            raise EnvRuntimeError(
                f"{type(self).__name__}: the task has no numpy RandomState to seed; seed it when "
                "building the env (task_kwargs={'random': seed})"
            )
        random.seed(seed)

    def close(self) -> None:
        """Close the dm_control environment (idempotent)."""
        if not self.is_closed:
            self._env.close()
        super().close()


class DMControlEnv(DMControlWrapper):
    """A DeepMind Control Suite task built by name (``dm_control.suite.load``).

    ``MUJOCO_GL`` defaults to ``"disable"`` (no rendering) or, with
    ``from_pixels``, to ``"egl"``; it must be chosen before dm_control is first
    imported in the process.  See :class:`DMControlWrapper` for the specs and
    the other arguments.

    Args:
        domain: the suite domain, e.g. ``"cheetah"``.
        task: the task of that domain, e.g. ``"run"``.
        task_kwargs: passed to the task (e.g. ``{"time_limit": 1.0}``);
            ``set_seed`` rebuilds the task with ``random=seed``.

    Raises:
        EnvImportError: dm_control is not installed (the message names the extra).

    Example:
        >>> from rlbricks.envs import DMControlEnv, check_env_specs
        >>> env = DMControlEnv("cheetah", "run", concat_observations=True)
        >>> env.observation_spec["observation"].shape, env.action_spec.shape
        (torch.Size([17]), torch.Size([6]))
        >>> _ = env.set_seed(0)
        >>> check_env_specs(env)
    """

    def __init__(
        self,
        domain: str,
        task: str,
        *,
        from_pixels: bool = False,
        pixels_only: bool = False,
        concat_observations: bool = False,
        frame_skip: int = 1,
        device: DeviceLike = None,
        task_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        os.environ.setdefault("MUJOCO_GL", "egl" if from_pixels else "disable")
        self._suite = _load_suite()
        self.domain = domain
        self.task = task
        self.task_kwargs = dict(task_kwargs or {})
        super().__init__(
            self._load(self.task_kwargs),
            from_pixels=from_pixels,
            pixels_only=pixels_only,
            concat_observations=concat_observations,
            frame_skip=frame_skip,
            device=device,
        )

    def _load(self, task_kwargs: Mapping[str, Any]) -> Any:
        return self._suite.load(self.domain, self.task, task_kwargs=dict(task_kwargs))

    def _set_seed(self, seed: int) -> None:
        self._env.close()
        self._set_env(self._load({**self.task_kwargs, "random": seed}))

    def __repr__(self) -> str:
        return (
            f"DMControlEnv(domain={self.domain!r}, task={self.task!r}, "
            f"from_pixels={self.from_pixels}, device={self.device})"
        )
