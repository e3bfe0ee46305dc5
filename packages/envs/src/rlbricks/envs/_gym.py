"""``GymWrapper`` / ``GymEnv``: gymnasium envs (single or vector) as rlbricks envs.

Vector envs and episode boundaries: gymnasium 1.x vector envs auto-reset by
default on the *next* step (``AutoresetMode.NEXT_STEP``), which glues two
episodes into one transition. rlbricks never lets that happen: a wrapped
vector env uses either

* ``AutoresetMode.SAME_STEP`` (what :class:`GymEnv` builds for array
  observations): gymnasium resets a finished sub-env inside the step that
  finished it; the wrapper writes the true last observation (gymnasium's
  ``info["final_obs"]``) under ``"next"`` and keeps the new episode's first
  observation for the reset that follows (``maybe_reset`` /
  ``step_and_maybe_reset``), which then costs no gymnasium call; or
* ``AutoresetMode.DISABLED`` (pixels, info keys, dict observations): the
  reset that follows calls ``reset(options={"reset_mask": ...})``.

Either way ``step`` returns the last observation of an episode and the reset
the first one of the next: no observation is lost or shifted.
"""

from __future__ import annotations

import copy
import multiprocessing
import time
import warnings
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rlbricks.envs._base import DeviceLike
from rlbricks.envs._base import EnvBase
from rlbricks.envs._errors import EnvImportError
from rlbricks.envs._errors import EnvRuntimeError
from rlbricks.envs._errors import EnvTimeoutError
from rlbricks.envs._errors import EnvValueError
from rlbricks.envs._gym_autoreset import PendingResets
from rlbricks.envs._gym_spaces import action_converter
from rlbricks.envs._gym_spaces import box_converter
from rlbricks.envs._gym_spaces import space_to_spec
from rlbricks.envs._gym_spaces import space_value_to_tensor
from rlbricks.envs._gym_spaces import tensor_to_space_value
from rlbricks.envs._gym_spaces import torch_dtype
from rlbricks.envs._gym_state import gym_state
from rlbricks.envs._gym_state import restore_gym_state
from rlbricks.specs import Bounded
from rlbricks.specs import Composite
from rlbricks.specs import TensorSpec
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict

__all__ = ["GymEnv", "GymWrapper"]


def _import_gym(owner: str) -> Any:
    try:
        import gymnasium
    except ImportError:
        raise EnvImportError(f'{owner} needs gymnasium: pip install "rlbricks-envs[gym]"') from None
    return gymnasium


def _frame_skip_wrapper(gym: Any, env: Any, frame_skip: int) -> Any:
    """A gymnasium wrapper repeating the action ``frame_skip`` times (for vector sub-envs)."""

    class FrameSkip(gym.Wrapper):
        def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
            total = 0.0
            for _ in range(frame_skip):
                obs, reward, terminated, truncated, info = self.env.step(action)
                total += float(reward)
                if terminated or truncated:
                    break
            return obs, total, terminated, truncated, info

    return FrameSkip(env)


_DEADLINE_CLASS: Any = None


def _deadline_async_vector_env(gym: Any) -> Any:
    """``AsyncVectorEnv`` whose ``step`` and ``reset`` give up after ``timeout`` seconds.

    A sub-env worker that gives no answer in time is killed with the others
    and :class:`~rlbricks.envs.EnvTimeoutError` names it (index and pid), the
    phase and the time waited. Built on first use (gymnasium is imported lazily).
    """
    global _DEADLINE_CLASS
    if _DEADLINE_CLASS is not None:
        return _DEADLINE_CLASS

    class DeadlineAsyncVectorEnv(gym.vector.AsyncVectorEnv):
        def __init__(self, env_fns: Any, *, timeout: float | None, **kwargs: Any) -> None:
            self.timeout = timeout
            super().__init__(env_fns, **kwargs)

        def step(self, actions: Any) -> Any:
            self.step_async(actions)
            return self._wait("step", self.step_wait)

        def reset(self, *, seed: Any = None, options: Any = None) -> Any:
            self.reset_async(seed=seed, options=options)
            return self._wait("reset", self.reset_wait)

        def _wait(self, phase: str, wait: Callable[..., Any]) -> Any:
            start = time.monotonic()
            try:
                return wait(timeout=self.timeout)
            except multiprocessing.TimeoutError:
                elapsed = time.monotonic() - start
                hung = [i for i, pipe in enumerate(self.parent_pipes) if not pipe.poll()]
                who = ", ".join(f"{i} (pid {self.processes[i].pid})" for i in hung)
                self.close(terminate=True)
                raise EnvTimeoutError(
                    f"GymEnv async sub-env worker(s) {who} timed out during {phase!r}: no "
                    f"answer within timeout={self.timeout} s (waited {elapsed:.1f} s). Every "
                    "worker was killed and the env closed; create a new GymEnv. If one "
                    f"{phase} of this env legitimately takes this long, raise "
                    "GymEnv(..., timeout=...); timeout=None waits forever.",
                    worker=hung[0] if hung else None,
                    phase=phase,
                    elapsed=elapsed,
                ) from None

    _DEADLINE_CLASS = DeadlineAsyncVectorEnv
    return DeadlineAsyncVectorEnv


class GymWrapper(EnvBase):
    """Wrap a ``gymnasium.Env`` or a ``gymnasium.vector.VectorEnv``.

    Keys: a non-dict observation is written under ``"observation"``, a
    ``Dict`` observation keeps its keys (nested); ``"reward"`` is float32
    ``[*batch, 1]``; ``"terminated"``/``"truncated"`` come from gymnasium and
    ``done = terminated | truncated``. A vector env gives
    ``batch_size=[num_envs]``.

    Specs are complete after construction. When ``from_pixels`` or
    ``info_keys`` are given, the constructor probes the env once (a reset,
    plus one random step for ``info_keys``) to learn the image shape and the
    shape/dtype of each info entry; an info entry that the probe does not see
    is declared as a float32 scalar and written as 0 when absent.

    A wrapped vector env must use ``AutoresetMode.DISABLED`` (what
    :class:`GymEnv` builds): finished sub-envs are reset by ``reset`` with a
    ``"_reset"`` mask, so no transition spans two episodes.

    Args:
        env: the gymnasium env (single or vector).
        categorical_action_encoding: ``Discrete`` actions as indices
            (``Categorical``) instead of one-hot (``OneHot``).
        from_pixels: also write ``"pixels"`` (uint8 ``[*batch, H, W, 3]``)
            from ``env.render()``; the env needs ``render_mode="rgb_array"``.
        pixels_only: with ``from_pixels``, drop the state observation.
        frame_skip: repeat each action this many times (stopping at the end
            of an episode) and sum the rewards. For a vector env it must be
            applied per sub-env: use ``GymEnv(..., num_envs=n, frame_skip=k)``.
        info_keys: info entries copied as tensors into the observation.
        device: device of the output tensors.
        validate_actions: check the actions' values against the action spec
            (the default; shape and dtype are always checked), see
            :attr:`EnvBase.validate_actions`.

    Example:
        >>> import gymnasium as gym
        >>> from rlbricks.envs import GymWrapper
        >>> env = GymWrapper(gym.make("CartPole-v1"), categorical_action_encoding=True)
        >>> _ = env.set_seed(0)
        >>> td = env.rollout(5)
        >>> td["next", "observation"].shape, td["action"].shape
        (torch.Size([5, 4]), torch.Size([5]))
    """

    def __init__(
        self,
        env: Any,
        *,
        categorical_action_encoding: bool = False,
        from_pixels: bool = False,
        pixels_only: bool = False,
        frame_skip: int = 1,
        info_keys: Sequence[str] = (),
        device: DeviceLike = None,
        validate_actions: bool = True,
    ) -> None:
        gym = _import_gym(type(self).__name__)
        self._vector = isinstance(env, gym.vector.VectorEnv)
        batch_size = (env.num_envs,) if self._vector else ()
        super().__init__(batch_size=batch_size, device=device, validate_actions=validate_actions)
        if frame_skip < 1:
            raise EnvValueError(f"frame_skip must be >= 1, got {frame_skip}")
        if pixels_only and not from_pixels:
            raise EnvValueError("pixels_only=True needs from_pixels=True")
        modes = gym.vector.AutoresetMode
        self._same_step = False
        if self._vector:
            mode = env.metadata.get("autoreset_mode", modes.NEXT_STEP)
            if mode not in (modes.DISABLED, modes.SAME_STEP):
                raise EnvRuntimeError(
                    f"GymWrapper needs a vector env whose autoreset cannot glue two episodes "
                    f"together (AutoresetMode.DISABLED or AutoresetMode.SAME_STEP), got {mode}: "
                    "build it with gymnasium.make_vec(..., vector_kwargs={'autoreset_mode': "
                    "gymnasium.vector.AutoresetMode.DISABLED}) or use GymEnv(env_id, num_envs=n)"
                )
            self._same_step = mode == modes.SAME_STEP
            space = env.single_observation_space
            if self._same_step and (from_pixels or info_keys or _is_composite_space(space)):
                raise EnvRuntimeError(
                    "GymWrapper: with AutoresetMode.SAME_STEP the frames and infos of a step "
                    "that ends an episode belong to the next one; pixels, info_keys and Dict or "
                    "Tuple observations need a vector env built with AutoresetMode.DISABLED"
                )
            if frame_skip > 1:
                raise EnvValueError(
                    "frame_skip > 1 on a vector env must be applied per sub-env: "
                    "use GymEnv(env_id, num_envs=n, frame_skip=k)"
                )
        if from_pixels and env.render_mode != "rgb_array":
            raise EnvRuntimeError(
                f"from_pixels=True needs render_mode='rgb_array', the env has {env.render_mode!r}: "
                "pass render_mode='rgb_array' to gymnasium.make"
            )
        self.env = env
        self.from_pixels = from_pixels
        self.pixels_only = pixels_only
        self.frame_skip = frame_skip
        self.info_keys = tuple(info_keys)
        self._seed: int | None = None
        self._pending = PendingResets(type(self).__name__)
        self._obs_space = env.single_observation_space if self._vector else env.observation_space
        self._act_space = env.single_action_space if self._vector else env.action_space
        bs = self.batch_size
        dev = self.device
        self.action_spec = space_to_spec(
            self._act_space,
            batch_size=bs,
            categorical_action_encoding=categorical_action_encoding,
            device=dev,
        )
        self.reward_spec = Unbounded(shape=(*bs, 1), device=dev)
        obs_spec = Composite(shape=bs, device=dev)
        if not pixels_only:
            spec = space_to_spec(
                self._obs_space, batch_size=bs, categorical_action_encoding=True, device=dev
            )
            if _is_dict_space(self._obs_space):
                obs_spec.update(spec)  # type: ignore[arg-type]
            else:
                obs_spec["observation"] = spec
        if from_pixels or self.info_keys:
            self._probe(obs_spec)
        self.observation_spec = obs_spec
        self._cpu = self.device.type == "cpu"
        self._flag_shape = (*self.batch_size, 1)
        self._action_fn = action_converter(self._act_space, self.action_spec)
        self._obs_fn = None
        # a vector env built with copy=False returns its own observation buffers: copy them
        self._copy_obs = self._vector and not getattr(env, "copy", True)
        if not (from_pixels or self.info_keys or _is_dict_space(self._obs_space)):
            self._obs_fn = box_converter(self._obs_space, dev, copy=self._copy_obs)

    # ------------------------------------------------------------------ #
    # helpers
    # ------------------------------------------------------------------ #
    def _probe(self, obs_spec: Composite) -> None:
        """Learn the pixel shape and the info specs from one reset (and step)."""
        bs = self.batch_size
        _, info = self.env.reset()
        seen: dict[str, Any] = {}
        if self.from_pixels:
            pixels = self._render()
            obs_spec["pixels"] = Bounded(
                0, 255, shape=pixels.shape, device=self.device, dtype=torch.uint8
            )
        if self.info_keys:
            seen.update(self._info_arrays(info))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                *_, info = self.env.step(self.env.action_space.sample())
            seen.update(self._info_arrays(info))
        self._info_specs: dict[str, TensorSpec[Any]] = {}
        for key in self.info_keys:
            array = seen.get(key)
            if array is None:
                spec: TensorSpec[Any] = Unbounded(shape=bs, device=self.device)
            else:
                shape = array.shape if self._vector else (*bs, *array.shape)
                spec = Unbounded(shape=shape, device=self.device, dtype=torch_dtype(array.dtype))
            self._info_specs[key] = spec
            obs_spec[key] = spec

    def _info_arrays(self, info: dict[str, Any]) -> dict[str, np.ndarray]:
        return {k: np.asarray(info[k]) for k in self.info_keys if k in info}

    def _render(self) -> torch.Tensor:
        frames = self.env.render()
        if self._vector:
            frames = np.stack(frames)
        return torch.as_tensor(np.ascontiguousarray(frames), device=self.device)

    def _observation(self, obs: Any, info: dict[str, Any]) -> TensorDict:
        obs_fn = self._obs_fn
        if obs_fn is not None:  # a Box observation and nothing else
            observation = obs_fn(obs)
            bs = self._batch_size
            if observation.shape[: len(bs)] == bs:
                return TensorDict.from_trusted({"observation": observation}, bs, self._device)
        out = TensorDict(batch_size=self.batch_size, device=self.device)
        if not self.pixels_only:
            if self._copy_obs:  # torch.as_tensor below would share the env's buffers
                obs = copy.deepcopy(obs)
            value = space_value_to_tensor(obs, self._obs_space, self.device)
            if _is_dict_space(self._obs_space):
                out.update(value)
            else:
                out.set("observation", value)
        if self.from_pixels:
            out.set("pixels", self._render())
        for key in self.info_keys:
            spec = self._info_specs[key]
            value = info.get(key)
            if value is None:
                out.set(key, spec.zero())
                continue
            tensor = torch.as_tensor(np.asarray(value), device=self.device).to(spec.dtype)
            present = info.get("_" + key) if self._vector else None
            if present is not None:
                mask = torch.as_tensor(np.asarray(present), device=self.device)
                mask = mask.reshape(mask.shape + (1,) * (tensor.ndim - mask.ndim))
                tensor = torch.where(mask, tensor, torch.zeros((), dtype=spec.dtype))
            out.set(key, tensor.reshape(spec.shape))
        return out

    # ------------------------------------------------------------------ #
    # EnvBase
    # ------------------------------------------------------------------ #
    def _reset(self, tensordict: TensorDict | None) -> TensorDict:
        seed, self._seed = self._seed, None
        if self._vector and tensordict is not None and "_reset" in tensordict:
            reset = tensordict.get("_reset")
            mask = np.array(reset.cpu().numpy(), dtype=bool).reshape(self._batch_size[0])
            if True not in mask.tolist():
                return self.observation_spec.zero()
            if self._same_step:
                obs, info = self._pending.take(mask, self._masked_reset(seed)), {}
            else:
                obs, info = self.env.reset(seed=seed, options={"reset_mask": mask})
        else:
            obs, info = self.env.reset(seed=seed)
            self._pending.clear()
        out = self._observation(obs, info)
        if self._cpu:  # the done flags of a fresh episode, without three torch ops
            flags = out.entries
            zeros = np.zeros((3, *self._flag_shape), dtype=bool)  # one array, three views
            flags["done"] = torch.from_numpy(zeros[0])
            flags["terminated"] = torch.from_numpy(zeros[1])
            flags["truncated"] = torch.from_numpy(zeros[2])
        return out

    def maybe_reset(self, tensordict: TensorDict) -> TensorDict:
        """Reset the finished sub-envs of a vector env (see :meth:`EnvBase.maybe_reset`).

        For a vector env with a ``Box`` observation on the CPU, one gymnasium
        ``reset`` with the done mask and one numpy merge of the observations;
        anything else takes the generic path.

        Example:
            >>> from rlbricks.envs import GymEnv
            >>> env = GymEnv("CartPole-v1", num_envs=2)
            >>> root = env.reset()
            >>> env.maybe_reset(root) is root  # nothing is done
            True
            >>> env.close()
        """
        source = tensordict.entries
        observation = source.get("observation")
        done = source.get("done")
        cls = type(self)
        if (
            not self._vector
            or self._obs_fn is None
            or not self._cpu
            or self.is_closed
            or cls._reset is not GymWrapper._reset
            or cls.reset is not EnvBase.reset
            or tensordict.batch_size != self._batch_size
            or observation.__class__ is not torch.Tensor
            or done.__class__ is not torch.Tensor
            or observation.requires_grad
            or not observation.is_cpu
        ):
            return super().maybe_reset(tensordict)
        mask = np.array(done.numpy(), dtype=bool).reshape(self._batch_size[0])
        if True not in mask.tolist():
            return tensordict
        seed, self._seed = self._seed, None
        if self._same_step:
            obs = self._pending.take(mask, self._masked_reset(seed))
        else:
            obs, _ = self.env.reset(seed=seed, options={"reset_mask": mask})
        previous = observation.numpy()
        fresh = np.asarray(obs, dtype=previous.dtype)
        rows = mask.reshape(mask.shape + (1,) * (previous.ndim - 1))
        out = source.copy()
        out["observation"] = torch.from_numpy(np.where(rows, fresh, previous))
        zeros = np.zeros((3, *self._flag_shape), dtype=bool)  # sub-envs not reset were not done
        out["done"] = torch.from_numpy(zeros[0])
        out["terminated"] = torch.from_numpy(zeros[1])
        out["truncated"] = torch.from_numpy(zeros[2])
        return TensorDict.from_trusted(out, tensordict.batch_size, tensordict.device)

    def _masked_reset(self, seed: int | None) -> Any:
        """``mask -> observations``: gymnasium's reset of the sub-envs in ``mask``."""

        def reset(mask: np.ndarray) -> Any:
            return self.env.reset(seed=seed, options={"reset_mask": mask})[0]

        return reset

    def _step(self, tensordict: TensorDict) -> TensorDict:
        action = tensordict.get("action")
        if self._action_fn is not None:
            action = self._action_fn(action)
        else:
            action = tensor_to_space_value(action, self._act_space, self.action_spec)
        if self._vector:
            if self._same_step:
                self._pending.check_step()
            obs, reward, terminated, truncated, info = self.env.step(action)
            if self._same_step:
                finished = np.logical_or(terminated, truncated)
                if True in finished.tolist():
                    obs = self._pending.split(obs, finished, info)
        elif self.frame_skip == 1:
            obs, reward, terminated, truncated, info = self.env.step(action)
        else:
            reward = 0.0
            for _ in range(self.frame_skip):
                obs, r, terminated, truncated, info = self.env.step(action)
                reward += float(r)
                if terminated or truncated:
                    break
        obs_fn = self._obs_fn
        if obs_fn is not None and not self._vector:  # one env, a Box observation: no checks
            out = TensorDict.from_trusted(
                {"observation": obs_fn(obs)}, self._batch_size, self._device
            )
        else:
            out = self._observation(obs, info)
        # fresh arrays (the rollout keeps every step), shared with torch without a copy
        shape = self._flag_shape
        flags3 = None
        if not self._vector:  # one env: one array of flags, three views
            rew = np.array((reward,), dtype=np.float32)
            flags3 = np.array((terminated, truncated, terminated or truncated), dtype=bool)
        if flags3 is not None and flags3.shape == (3,) and rew.shape == shape:
            term, trunc, done = flags3[0:1], flags3[1:2], flags3[2:3]
        else:  # a vector env, or flags/reward given as arrays
            rew = np.array(reward, dtype=np.float32).reshape(shape)  # a copy: buffers may be reused
            term = np.array(terminated, dtype=bool).reshape(shape)
            trunc = np.array(truncated, dtype=bool).reshape(shape)
            done = term | trunc
        flags = out.entries
        if self._cpu:
            from_numpy = torch.from_numpy
            flags["reward"] = from_numpy(rew)
            flags["terminated"] = from_numpy(term)
            flags["truncated"] = from_numpy(trunc)
            flags["done"] = from_numpy(done)
        else:
            dev = self._device
            flags["reward"] = torch.as_tensor(rew, device=dev)
            flags["terminated"] = torch.as_tensor(term, device=dev)
            flags["truncated"] = torch.as_tensor(trunc, device=dev)
            flags["done"] = torch.as_tensor(done, device=dev)
        return out

    def _random_rollout(
        self, tensordict: TensorDict, max_steps: int, break_when_any_done: bool
    ) -> TensorDict | None:
        from rlbricks.envs._gym_rollout import random_rollout

        return random_rollout(self, tensordict, max_steps, break_when_any_done)

    def policy_rollout(
        self,
        tensordict: TensorDict,
        policy: Callable[[TensorDict], TensorDict],
        max_steps: int,
        break_when_any_done: bool,
    ) -> tuple[TensorDict, TensorDict] | None:
        """The gymnasium fast path of a policy rollout (see :meth:`EnvBase.policy_rollout`).

        It covers a plain wrapper (no subclass overriding its step or reset
        methods) with a ``Box`` observation only (no ``from_pixels``,
        ``info_keys`` or dict observation) on the CPU, ``frame_skip=1`` for a
        single env, and a root whose observation and done flags are CPU
        tensors and that holds no ``"next"`` entry.  The policy is called on a
        root TensorDict per step, gymnasium is stepped with numpy values and
        the env's outputs go straight into preallocated arrays, with the same
        action checks as :meth:`step`.  Anything else returns None (the
        generic loop).

        Example:
            >>> import torch
            >>> from rlbricks.envs import GymEnv
            >>> env = GymEnv("CartPole-v1", categorical_action_encoding=True)
            >>> policy = lambda td: td.set("action", torch.tensor(0))
            >>> steps, root = env.policy_rollout(env.reset(), policy, 4, False)
            >>> steps.batch_size, sorted(steps["next"].keys())
            (torch.Size([4]), ['done', 'observation', 'reward', 'terminated', 'truncated'])
            >>> env.close()
        """
        from rlbricks.envs._gym_policy_rollout import policy_rollout

        return policy_rollout(self, tensordict, policy, max_steps, break_when_any_done)

    def _set_seed(self, seed: int) -> None:
        self._seed = seed
        self.env.action_space.seed(seed)
        # every space gymnasium exposes gets a generator from the seed (never OS entropy),
        # so that the env's whole state (``state_dict``) repeats from run to run
        spaces = ["observation_space"]
        if self._vector:
            spaces += ["single_action_space", "single_observation_space"]
        for offset, name in enumerate(spaces, start=1):
            getattr(self.env, name).seed(seed + offset)

    def state_dict(self) -> dict[str, Any]:
        """The gymnasium env's state as plain data, for a checkpoint that resumes exactly.

        Holds every layer's attributes (the unwrapped env's physics and
        ``np_random``, wrapper counters such as ``TimeLimit``'s elapsed steps,
        the spaces' generators; for a ``SyncVectorEnv`` every sub-env and the
        vector env's own buffers), the seed of the next reset and the
        observations of episodes gymnasium's same-step autoreset started;
        MuJoCo's ``MjData`` as all of its array fields and its time.
        ``"exact"`` is False when some attribute is not data (a Box2D world,
        an ``AsyncVectorEnv``'s worker processes): ``"unsaved"`` names them,
        and a collector then restarts the episodes.

        Example:
            >>> from rlbricks.envs import GymEnv
            >>> env = GymEnv("CartPole-v1")
            >>> _ = env.set_seed(0)
            >>> _ = env.rollout(3)
            >>> state = env.state_dict()
            >>> state["exact"], state["gym"]["unsaved"]
            (True, [])
            >>> other = GymEnv("CartPole-v1")
            >>> other.load_state_dict(state)
            >>> bool((other.rand_step(env.reset().clone())["next", "observation"] == 0).all())
            False
        """
        gym = _import_gym(type(self).__name__)
        state = gym_state(self.env, gym)
        return {
            "gym": state,
            "exact": not state["unsaved"],
            "seed": self._seed,
            "pending_mask": self._pending.mask,
            "pending_observation": self._pending.observation,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` into this env, built the same way as the saved one.

        Warns with :class:`~rlbricks.envs.EnvStateWarning` when the saved state
        was incomplete (``state["exact"]`` False).

        Raises:
            EnvRuntimeError: the env has other wrappers or another number of sub-envs.
        """
        gym = _import_gym(type(self).__name__)
        restore_gym_state(self.env, state["gym"], gym)
        self._seed = state["seed"]
        self._pending.mask = state["pending_mask"]
        self._pending.observation = state["pending_observation"]

    def close(self) -> None:
        """Close the gymnasium env (idempotent)."""
        if not self.is_closed:
            self.env.close()
        super().close()


class GymEnv(GymWrapper):
    """Build a gymnasium env by id (``gymnasium.make`` / ``gymnasium.make_vec``) and wrap it.

    Args:
        env_id: a registered id, e.g. ``"CartPole-v1"``, ``"HalfCheetah-v5"``,
            ``"ALE/Pong-v5"`` (Atari ids register ``ale_py`` automatically).
        num_envs: build a vector env of that many sub-envs
            (``batch_size=[num_envs]``); ``None`` builds a single env.
        vectorization_mode: ``"sync"`` (sub-envs in this process) or
            ``"async"`` (one worker process per sub-env).
        timeout: with ``"async"``, seconds to wait for the workers' answer to
            a ``step`` or ``reset`` (default 60); a worker that does not answer
            in time is killed with the others and
            :class:`~rlbricks.envs.EnvTimeoutError` names it, the phase and the
            time waited. None waits forever.
        from_pixels: write ``"pixels"`` rendered with ``render_mode="rgb_array"``.
        pixels_only: drop the state observation.
        frame_skip: repeat each action (per sub-env for vector envs).
        categorical_action_encoding: ``Discrete`` actions as indices.
        info_keys: info entries copied into the observation.
        device: device of the output tensors.
        validate_actions: check the actions' values (bounds, categories) too;
            False skips them (shape and dtype are always checked).
        **make_kwargs: forwarded to ``gymnasium.make`` (per sub-env for vector envs).

    Raises:
        EnvImportError: gymnasium is not installed (the message names the extra).

    Example:
        >>> import torch
        >>> from rlbricks.envs import GymEnv
        >>> env = GymEnv("CartPole-v1", num_envs=2)
        >>> _ = env.set_seed(0)
        >>> td = env.rollout(10, break_when_any_done=False)
        >>> td.batch_size, td["next", "reward"].shape
        (torch.Size([2, 10]), torch.Size([2, 10, 1]))
        >>> env.step(env.reset().set("action", torch.tensor([[0, 1], [1, 1]])))
        Traceback (most recent call last):
            ...
        rlbricks.envs._errors.ActionError: GymEnv.step: the action 'action' is not in the env's action spec OneHot(shape=[2, 2], dtype=torch.bool, device=cpu, n=2): 1 of 2 rows do not hold exactly one 1; first at index (1,): 2 ones. Fix the policy's output: write one-hot rows, exactly one 1 per row (OneHot.to_one_hot(index), or action_spec.project(scores)); or pass validate_actions=False to the env (or the collector) to skip value checks.
        >>> env.close()
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int | None = None,
        vectorization_mode: str = "sync",
        *,
        from_pixels: bool = False,
        pixels_only: bool = False,
        frame_skip: int = 1,
        categorical_action_encoding: bool = False,
        info_keys: Sequence[str] = (),
        device: DeviceLike = None,
        validate_actions: bool = True,
        timeout: float | None = 60.0,
        **make_kwargs: Any,
    ) -> None:
        gym = _import_gym(type(self).__name__)
        if timeout is not None and not timeout > 0:
            raise EnvValueError(
                f"GymEnv: timeout must be a positive number of seconds or None, got {timeout!r}"
            )
        if env_id.startswith("ALE/"):
            try:
                import ale_py
            except ImportError:
                raise EnvImportError(f"{env_id} needs ale-py: pip install ale-py") from None
            gym.register_envs(ale_py)
        if from_pixels:
            make_kwargs.setdefault("render_mode", "rgb_array")
        self.env_id = env_id
        if num_envs is None:
            env = gym.make(env_id, **make_kwargs)
            skip = frame_skip
        else:
            if vectorization_mode not in ("sync", "async"):
                raise EnvValueError(
                    f"vectorization_mode must be 'sync' or 'async', got {vectorization_mode!r}"
                )
            wrappers = []
            if frame_skip > 1:
                wrappers.append(lambda e: _frame_skip_wrapper(gym, e, frame_skip))
            modes = gym.vector.AutoresetMode
            same_step = not (from_pixels or info_keys)

            def sub_env() -> Any:
                env = gym.make(env_id, **make_kwargs)
                for wrap in wrappers:
                    env = wrap(env)
                return env

            def make(mode: Any) -> Any:
                # copy=False: the wrapper copies the observations into its own tensors
                if vectorization_mode == "async":  # worker processes: with deadlines
                    return _deadline_async_vector_env(gym)(
                        [sub_env] * num_envs, timeout=timeout, autoreset_mode=mode, copy=False
                    )
                return gym.make_vec(
                    env_id,
                    num_envs=num_envs,
                    vectorization_mode=vectorization_mode,
                    vector_kwargs={"autoreset_mode": mode, "copy": False},
                    wrappers=wrappers or None,
                    **make_kwargs,
                )

            env = make(modes.SAME_STEP if same_step else modes.DISABLED)
            if same_step and _is_composite_space(env.single_observation_space):
                env.close()  # dict observations: resets go through gymnasium's reset_mask
                env = make(modes.DISABLED)
            skip = 1
        try:
            super().__init__(
                env,
                categorical_action_encoding=categorical_action_encoding,
                from_pixels=from_pixels,
                pixels_only=pixels_only,
                frame_skip=skip,
                info_keys=info_keys,
                device=device,
                validate_actions=validate_actions,
            )
        except BaseException:
            env.close()
            raise
        self.frame_skip = frame_skip

    def __repr__(self) -> str:
        return f"GymEnv({self.env_id!r}, batch_size={tuple(self.batch_size)}, device={self.device})"


def _is_dict_space(space: Any) -> bool:
    return any(cls.__name__ == "Dict" for cls in type(space).__mro__)


def _is_composite_space(space: Any) -> bool:
    return any(cls.__name__ in ("Dict", "Tuple") for cls in type(space).__mro__)
