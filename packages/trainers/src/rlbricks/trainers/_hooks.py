"""The built-in trainer hooks: replay, weight sync, logging, target updates, exploration."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

import torch

from rlbricks.replay import PrioritizedSampler
from rlbricks.tensordict import TensorDict
from rlbricks.trainers._errors import TrainerError

if TYPE_CHECKING:
    from rlbricks.trainers._trainer import Trainer

__all__ = [
    "BatchSubSampler",
    "ClearCudaCache",
    "ExplorationAnnealHook",
    "ReplayBufferTrainer",
    "TargetNetUpdaterHook",
    "TrainerHookBase",
    "UpdateWeights",
]


class TrainerHookBase:
    """A hook object: registers its methods at trainer stages and is checkpointed by name.

    A hook that is one callable at one stage sets the class attributes
    ``stage`` (and ``checkpointed = True`` when its state goes into
    checkpoints, under its class name or ``register``'s ``name``); the default
    :meth:`register` does the rest. Hooks with several callables override
    :meth:`register`. Hooks that keep state implement :meth:`state_dict` and
    :meth:`load_state_dict`.

    Example:
        >>> from rlbricks.trainers import TrainerHookBase
        >>> class Count(TrainerHookBase):
        ...     stage = "post_steps"
        ...     def __init__(self):
        ...         self.n = 0
        ...     def __call__(self):
        ...         self.n += 1
        >>> Count().state_dict()
        {}
    """

    stage: ClassVar[str | None] = None
    checkpointed: ClassVar[bool] = False

    def register(self, trainer: Trainer, name: str | None = None) -> None:
        """Register the hook at its ``stage`` of ``trainer`` (and its state, if ``checkpointed``).

        Example:
            >>> import torch
            >>> from rlbricks.trainers import Trainer, TrainerHookBase
            >>> class Hello(TrainerHookBase):
            ...     stage = "post_steps"
            ...     def __call__(self):
            ...         print("hello")
            >>> trainer = Trainer([], 10, torch.nn.Linear(1, 1), None)
            >>> Hello().register(trainer)
            >>> len(trainer.hooks("post_steps"))
            1
        """
        if self.stage is None:
            raise NotImplementedError(
                f"{type(self).__name__}: set the class attribute stage or override register()"
            )
        if not callable(self):
            raise TypeError(f"{type(self).__name__}: a hook with a stage implements __call__")
        trainer.register_op(self.stage, self)
        if self.checkpointed:
            self._register_module(trainer, name)

    def _register_module(self, trainer: Trainer, name: str | None) -> None:
        trainer.register_module(name or type(self).__name__, self)

    def state_dict(self) -> dict[str, Any]:
        """The hook's state for checkpoints (default: nothing).

        Example:
            >>> from rlbricks.trainers import ClearCudaCache
            >>> ClearCudaCache().state_dict()
            {'count': 0}
        """
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (default: nothing to restore).

        Example:
            >>> from rlbricks.trainers import LogReward
            >>> LogReward().load_state_dict({})
        """


class _Counter(TrainerHookBase):
    """A hook that acts every ``interval`` calls."""

    def __init__(self, interval: int) -> None:
        if int(interval) < 1:
            raise TrainerError(f"{type(self).__name__}: interval must be >= 1, got {interval}")
        self.interval = int(interval)
        self.count = 0

    def _due(self) -> bool:
        self.count += 1
        return self.count % self.interval == 0

    def state_dict(self) -> dict[str, Any]:
        """The number of calls so far.

        Example:
            >>> from rlbricks.trainers import ClearCudaCache
            >>> ClearCudaCache().state_dict()
            {'count': 0}
        """
        return {"count": self.count}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the number of calls.

        Example:
            >>> from rlbricks.trainers import ClearCudaCache
            >>> hook = ClearCudaCache()
            >>> hook.load_state_dict({"count": 3})
            >>> hook.count
            3
        """
        self.count = int(state["count"])


class ReplayBufferTrainer(TrainerHookBase):
    """Extend a replay buffer with each batch, sample it for each optimiser step, update priorities.

    Stages: ``batch_process`` (:meth:`extend`, flattening the batch to rows),
    ``process_optim_batch`` (:meth:`sample`) and, for a prioritized buffer,
    ``post_loss`` (:meth:`update_priority`: the loss's ``"td_error"`` becomes
    the rows' priorities). A checkpoint dumps the whole buffer (``dumps``).

    Args:
        replay_buffer: a ``TensorDictReplayBuffer`` (or prioritized one).
        batch_size: rows per sample (None: the buffer's ``batch_size``).
        device: move samples there (None: leave them).

    Example:
        >>> import torch
        >>> from rlbricks.replay import LazyTensorStorage, TensorDictReplayBuffer
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.trainers import ReplayBufferTrainer
        >>> hook = ReplayBufferTrainer(TensorDictReplayBuffer(storage=LazyTensorStorage(10)), 4)
        >>> _ = hook.extend(TensorDict({"obs": torch.zeros(2, 3)}, batch_size=[2, 3]))
        >>> hook.sample(None).batch_size
        torch.Size([4])
    """

    def __init__(
        self,
        replay_buffer: Any,
        batch_size: int | None = None,
        *,
        device: torch.device | str | None = None,
    ) -> None:
        self.replay_buffer = replay_buffer
        self.batch_size = batch_size
        self.device = device

    def extend(self, batch: TensorDict) -> TensorDict:
        """Write the rows of ``batch`` (flattened) into the buffer; return ``batch`` unchanged.

        Example:
            >>> import torch
            >>> from rlbricks.replay import LazyTensorStorage, TensorDictPrioritizedReplayBuffer
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.trainers import ReplayBufferTrainer
            >>> buffer = TensorDictPrioritizedReplayBuffer(alpha=1.0, beta=1.0,
            ...                                            storage=LazyTensorStorage(10))
            >>> hook = ReplayBufferTrainer(buffer, batch_size=2)
            >>> _ = hook.extend(TensorDict({"obs": torch.zeros(2, 3)}, [2, 3]))
            >>> len(buffer)
            6
        """
        self.replay_buffer.extend(batch.reshape(-1) if batch.batch_dims != 1 else batch)
        return batch

    def sample(self, batch: TensorDict | None) -> TensorDict:
        """A sample of the buffer (the collected ``batch`` is not used).

        Example:
            >>> import torch
            >>> from rlbricks.replay import LazyTensorStorage, TensorDictPrioritizedReplayBuffer
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.trainers import ReplayBufferTrainer
            >>> buffer = TensorDictPrioritizedReplayBuffer(alpha=1.0, beta=1.0,
            ...                                            storage=LazyTensorStorage(10))
            >>> hook = ReplayBufferTrainer(buffer, batch_size=2)
            >>> _ = hook.extend(TensorDict({"obs": torch.zeros(4)}, [4]))
            >>> sorted(hook.sample(None).keys())
            ['_weight', 'index', 'obs']
        """
        sample = self.replay_buffer.sample(self.batch_size)
        return sample if self.device is None else sample.to(self.device)

    def update_priority(self, batch: TensorDict) -> None:
        """Send the sample's priorities (``priority_key``, e.g. ``"td_error"``) back.

        Example:
            >>> import torch
            >>> from rlbricks.replay import LazyTensorStorage, TensorDictPrioritizedReplayBuffer
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.trainers import ReplayBufferTrainer
            >>> buffer = TensorDictPrioritizedReplayBuffer(alpha=1.0, beta=1.0,
            ...                                            storage=LazyTensorStorage(10))
            >>> hook = ReplayBufferTrainer(buffer, batch_size=2)
            >>> _ = hook.extend(TensorDict({"obs": torch.zeros(4)}, [4]))
            >>> sample = hook.sample(None)
            >>> sample["td_error"] = torch.ones(2)
            >>> hook.update_priority(sample)
        """
        self.replay_buffer.update_tensordict_priority(batch)

    def register(self, trainer: Trainer, name: str | None = None) -> None:
        """Register at ``batch_process``, ``process_optim_batch`` and (prioritized) ``post_loss``.

        Example:
            >>> import torch
            >>> from rlbricks.replay import LazyTensorStorage, TensorDictPrioritizedReplayBuffer
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.trainers import ReplayBufferTrainer
            >>> buffer = TensorDictPrioritizedReplayBuffer(alpha=1.0, beta=1.0,
            ...                                            storage=LazyTensorStorage(10))
            >>> hook = ReplayBufferTrainer(buffer, batch_size=2)
            >>> from rlbricks.trainers import Trainer
            >>> trainer = Trainer([], 10, torch.nn.Linear(1, 1), None)
            >>> hook.register(trainer)
            >>> len(trainer.hooks("post_loss"))
            1
        """
        trainer.register_op("batch_process", self.extend)
        trainer.register_op("process_optim_batch", self.sample)
        if isinstance(getattr(self.replay_buffer, "sampler", None), PrioritizedSampler):
            trainer.register_op("post_loss", self.update_priority)
        self._register_module(trainer, name)

    def dump(self, folder: Path) -> None:
        """Save the buffer into ``folder`` (its ``dumps``).

        Example:
            >>> import torch
            >>> from rlbricks.replay import LazyTensorStorage, TensorDictPrioritizedReplayBuffer
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.trainers import ReplayBufferTrainer
            >>> buffer = TensorDictPrioritizedReplayBuffer(alpha=1.0, beta=1.0,
            ...                                            storage=LazyTensorStorage(10))
            >>> hook = ReplayBufferTrainer(buffer, batch_size=2)
            >>> import tempfile
            >>> from pathlib import Path
            >>> folder = Path(tempfile.mkdtemp())
            >>> hook.dump(folder)
            >>> (folder / "buffer.json").exists()
            True
        """
        self.replay_buffer.dumps(folder)

    def load(self, folder: Path) -> None:
        """Restore the buffer from ``folder`` (its ``loads``).

        Example:
            >>> import torch
            >>> from rlbricks.replay import LazyTensorStorage, TensorDictPrioritizedReplayBuffer
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.trainers import ReplayBufferTrainer
            >>> buffer = TensorDictPrioritizedReplayBuffer(alpha=1.0, beta=1.0,
            ...                                            storage=LazyTensorStorage(10))
            >>> hook = ReplayBufferTrainer(buffer, batch_size=2)
            >>> import tempfile
            >>> from pathlib import Path
            >>> folder = Path(tempfile.mkdtemp())
            >>> _ = hook.extend(TensorDict({"obs": torch.zeros(4)}, [4]))
            >>> hook.dump(folder)
            >>> other = ReplayBufferTrainer(TensorDictPrioritizedReplayBuffer(
            ...     alpha=1.0, beta=1.0, storage=LazyTensorStorage(10)))
            >>> other.load(folder)
            >>> len(other.replay_buffer)
            4
        """
        self.replay_buffer.loads(folder)


class AdvantageHook(TrainerHookBase):
    """Run a value estimator on each collected batch, before it is cut into minibatches.

    On-policy losses (PPO, A2C) need the advantage and the value target of
    each step computed over the whole ``[envs, time]`` batch, with the
    networks of the moment and without gradients; registered before a
    :class:`ReplayBufferTrainer`, this hook writes them into the batch the
    buffer then stores.

    Stage: ``batch_process``.

    Args:
        estimator: a value estimator module (e.g. ``loss.value_estimator``, a
            :class:`~rlbricks.objectives.GAE`) that writes into its input.

    Example:
        >>> import torch
        >>> from rlbricks.objectives import GAE
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.trainers import AdvantageHook
        >>> flags = torch.zeros(1, 3, 1, dtype=torch.bool)
        >>> batch = TensorDict({"state_value": torch.zeros(1, 3, 1), "next": {
        ...     "state_value": torch.zeros(1, 3, 1), "reward": torch.ones(1, 3, 1),
        ...     "done": flags, "terminated": flags}}, [1, 3])
        >>> out = AdvantageHook(GAE(gamma=1.0, lmbda=1.0, value_network=None))(batch)
        >>> out["advantage"].flatten().tolist()
        [3.0, 2.0, 1.0]
    """

    stage: ClassVar[str | None] = "batch_process"

    def __init__(self, estimator: Callable[[TensorDict], Any]) -> None:
        if not callable(estimator):
            raise TrainerError(f"AdvantageHook needs a callable value estimator, got {estimator!r}")
        self.estimator = estimator

    def __call__(self, batch: TensorDict) -> TensorDict:
        """Write the estimator's entries (``advantage``, ``value_target``) into ``batch``."""
        with torch.no_grad():
            out = self.estimator(batch)
        return batch if out is None else out


class LinearSchedule(TrainerHookBase):
    """Move a hyper-parameter linearly from its current value to ``end`` over ``frames`` frames.

    ``target`` is an optimiser (every param group's ``name`` entry, e.g.
    ``"lr"``) or any object (its attribute ``name``, e.g. a loss's
    ``clip_epsilon``). After each batch the value is
    ``start + (end - start) * min(1, collected_frames / frames)``, ``start``
    being the value when the hook was built; it is a function of the
    trainer's frame counter, so a resumed run follows the same schedule.

    Stage: ``post_steps``.

    Args:
        target: an optimiser or an object with the attribute ``name``.
        name: the param-group key or attribute.
        end: the value reached after ``frames`` frames.
        frames: the length of the schedule, in collected frames.

    Raises:
        TrainerError: ``frames`` is not positive or ``target`` has no such value.

    Example:
        >>> import torch
        >>> from rlbricks.trainers import LinearSchedule, Trainer
        >>> optimizer = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0)
        >>> trainer = Trainer([], 100, torch.nn.Linear(1, 1), optimizer)
        >>> LinearSchedule(optimizer, "lr", 0.0, frames=100).register(trainer)
        >>> trainer.collected_frames = 25
        >>> trainer.hooks("post_steps")[0]()
        >>> optimizer.param_groups[0]["lr"]
        0.75
    """

    stage: ClassVar[str | None] = "post_steps"

    def __init__(self, target: Any, name: str, end: float, frames: int) -> None:
        if int(frames) < 1:
            raise TrainerError(f"LinearSchedule: frames must be >= 1, got {frames}")
        self.target = target
        self.name = name
        self.end = float(end)
        self.frames = int(frames)
        self.start = float(self._read())
        self._trainer: Trainer | None = None

    def _groups(self) -> list[dict[str, Any]] | None:
        return self.target.param_groups if isinstance(self.target, torch.optim.Optimizer) else None

    def _read(self) -> float:
        groups = self._groups()
        try:
            return float(
                groups[0][self.name] if groups is not None else getattr(self.target, self.name)
            )
        except (KeyError, AttributeError):
            raise TrainerError(
                f"LinearSchedule: {type(self.target).__name__} has no {self.name!r} to schedule"
            ) from None

    def value(self, frames: int) -> float:
        """The scheduled value after ``frames`` collected frames.

        Example:
            >>> import torch
            >>> from rlbricks.trainers import LinearSchedule
            >>> optimizer = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0)
            >>> LinearSchedule(optimizer, "lr", 0.5, frames=10).value(20)
            0.5
        """
        progress = min(1.0, max(0, frames) / self.frames)
        return self.start + (self.end - self.start) * progress

    def __call__(self) -> None:
        """Set the value for the trainer's current frame count."""
        if self._trainer is None:
            raise TrainerError("LinearSchedule: call register(trainer) first")
        value = self.value(self._trainer.collected_frames)
        groups = self._groups()
        if groups is None:
            setattr(self.target, self.name, value)
        else:
            for group in groups:
                group[self.name] = value

    def register(self, trainer: Trainer, name: str | None = None) -> None:
        """Register at ``post_steps`` (the hook reads the trainer's frame counter)."""
        self._trainer = trainer
        super().register(trainer, name)


class UpdateWeights(_Counter):
    """Call ``collector.update_policy_weights_()`` every ``update_weights_interval`` batches.

    Stage: ``post_steps``.

    Example:
        >>> from rlbricks.collectors import SyncDataCollector
        >>> from rlbricks.envs.testing import CountingEnv
        >>> from rlbricks.trainers import UpdateWeights
        >>> hook = UpdateWeights(SyncDataCollector(CountingEnv(), frames_per_batch=2), 2)
        >>> hook(); hook()
        >>> hook.count
        2
    """

    stage: ClassVar[str | None] = "post_steps"
    checkpointed: ClassVar[bool] = True

    def __init__(self, collector: Any, update_weights_interval: int = 1) -> None:
        super().__init__(update_weights_interval)
        self.collector = collector

    def __call__(self) -> None:
        """Count one batch; sync the collector's policy weights when due."""
        if self._due():
            self.collector.update_policy_weights_()


class TargetNetUpdaterHook(TrainerHookBase):
    """Call ``updater.step()`` (``SoftUpdate``/``HardUpdate``) after every optimiser step.

    Stage: ``post_optim``. A ``HardUpdate``'s step counter is checkpointed.

    Example:
        >>> from torch import nn
        >>> from rlbricks.modules import QValueActor
        >>> from rlbricks.objectives import DQNLoss, HardUpdate
        >>> from rlbricks.trainers import TargetNetUpdaterHook
        >>> loss = DQNLoss(QValueActor(nn.Linear(3, 2), action_space="one_hot"))
        >>> hook = TargetNetUpdaterHook(HardUpdate(loss, value_network_update_interval=2))
        >>> hook()
        >>> hook.state_dict()
        {'counter': 1}
    """

    stage: ClassVar[str | None] = "post_optim"
    checkpointed: ClassVar[bool] = True

    def __init__(self, updater: Any) -> None:
        self.updater = updater

    def __call__(self) -> None:
        """One step of the updater."""
        self.updater.step()

    def state_dict(self) -> dict[str, Any]:
        """The updater's step counter, if it has one.

        Example:
            >>> from rlbricks.trainers import TargetNetUpdaterHook
            >>> TargetNetUpdaterHook(object()).state_dict()
            {}
        """
        counter = getattr(self.updater, "counter", None)
        return {} if counter is None else {"counter": int(counter)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the updater's step counter.

        Example:
            >>> from rlbricks.trainers import TargetNetUpdaterHook
            >>> TargetNetUpdaterHook(object()).load_state_dict({})
        """
        if "counter" in state:
            self.updater.counter = int(state["counter"])


class ExplorationAnnealHook(TrainerHookBase):
    """Advance exploration schedules (``EGreedyModule``...) by the frames of each batch.

    Stage: ``post_steps``; calls ``module.step(trainer.frames_last_batch)``. The
    modules' schedule is part of their ``state_dict`` (checkpointed with the
    policy by the collector).

    Example:
        >>> from rlbricks.modules import EGreedyModule
        >>> from rlbricks.specs import Categorical
        >>> from rlbricks.trainers import ExplorationAnnealHook
        >>> explore = EGreedyModule(Categorical(2), 1.0, 0.0, annealing_num_steps=10)
        >>> hook = ExplorationAnnealHook(explore)
        >>> hook.step(5)
        >>> float(explore.eps)
        0.5
    """

    stage: ClassVar[str | None] = "post_steps"

    def __init__(self, *modules: Any) -> None:
        if not modules:
            raise TrainerError("ExplorationAnnealHook needs at least one module with step(frames)")
        self.modules = modules
        self._trainer: Trainer | None = None

    def step(self, frames: int) -> None:
        """Advance every module's schedule by ``frames``.

        Example:
            >>> from rlbricks.modules import EGreedyModule
            >>> from rlbricks.specs import Categorical
            >>> from rlbricks.trainers import ExplorationAnnealHook
            >>> explore = EGreedyModule(Categorical(2), 1.0, 0.0, annealing_num_steps=4)
            >>> ExplorationAnnealHook(explore).step(1)
            >>> float(explore.eps)
            0.75
        """
        for module in self.modules:
            module.step(frames)

    def __call__(self) -> None:
        """Advance by the frames of the last batch."""
        if self._trainer is not None:
            self.step(self._trainer.frames_last_batch)

    def register(self, trainer: Trainer, name: str | None = None) -> None:
        """Register at ``post_steps`` (the hook reads the trainer's frame counters)."""
        self._trainer = trainer
        super().register(trainer, name)


class BatchSubSampler(TrainerHookBase):
    """Give each optimiser step ``batch_size`` random rows of the collected batch.

    Stage: ``process_optim_batch``; the batch is flattened to rows and rows are
    drawn uniformly with replacement (torch's global generator).

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.trainers import BatchSubSampler
        >>> batch = TensorDict({"obs": torch.arange(12.0).reshape(3, 4)}, batch_size=[3, 4])
        >>> BatchSubSampler(5)(batch).batch_size
        torch.Size([5])
    """

    stage: ClassVar[str | None] = "process_optim_batch"

    def __init__(self, batch_size: int) -> None:
        if batch_size < 1:
            raise TrainerError(f"BatchSubSampler: batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)

    def __call__(self, batch: TensorDict) -> TensorDict:
        """``batch_size`` random rows of ``batch``."""
        rows = batch.reshape(-1)
        index = torch.randint(rows.batch_size[0], (self.batch_size,), device=rows.device)
        return rows[index]


class ClearCudaCache(_Counter):
    """Empty the CUDA cache every ``interval`` optimiser steps (a no-op without CUDA).

    Stage: ``post_optim``.

    Example:
        >>> from rlbricks.trainers import ClearCudaCache
        >>> hook = ClearCudaCache(interval=2)
        >>> hook()
        >>> hook.count
        1
    """

    stage: ClassVar[str | None] = "post_optim"

    def __init__(self, interval: int = 1) -> None:
        super().__init__(interval)

    def __call__(self) -> None:
        """Count one step; empty the cache when due."""
        if self._due() and torch.cuda.is_available():
            torch.cuda.empty_cache()
