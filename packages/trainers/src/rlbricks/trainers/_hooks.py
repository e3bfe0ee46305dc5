"""The observer hooks (schedules, weight sync, target updates, exploration) and the hook base."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

import torch

from rlbricks.trainers._errors import TrainerStateError
from rlbricks.trainers._errors import TrainerTypeError
from rlbricks.trainers._errors import TrainerValueError

if TYPE_CHECKING:
    from rlbricks.trainers._trainer import Trainer

__all__ = [
    "ClearCudaCache",
    "ExplorationAnnealHook",
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
            raise TrainerTypeError(
                f"{type(self).__name__}: a hook with a stage implements __call__"
            )
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
            raise TrainerValueError(f"{type(self).__name__}: interval must be >= 1, got {interval}")
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
            raise TrainerValueError(f"LinearSchedule: frames must be >= 1, got {frames}")
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
            raise TrainerValueError(
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
            raise TrainerStateError("LinearSchedule: call register(trainer) first")
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
            raise TrainerValueError(
                "ExplorationAnnealHook needs at least one module with step(frames)"
            )
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
        """Register at ``post_steps`` (the hook reads the trainer's frame counters).

        Raises:
            TrainerError: ``trainer`` anneals exploration itself (an
                :class:`OffPolicyTrainer`: pass ``exploration=`` to it, so that
                the schedule moves before the weights go to the collector).
        """
        if callable(getattr(trainer, "anneal_exploration", None)):
            raise TrainerStateError(
                f"{type(trainer).__name__} anneals exploration itself, before it sends the "
                "weights to the collector: pass the modules as its exploration= argument "
                "instead of registering an ExplorationAnnealHook"
            )
        self._trainer = trainer
        super().register(trainer, name)


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
