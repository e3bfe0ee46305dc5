"""The two training loops of model-free RL, each step a named method.

On-policy (PPO, A2C, IMPALA), for each collected batch::

    batch = compute_advantages(batch)           # GAE, V-trace... without gradients
    for epoch in range(epochs):
        for minibatch in minibatches(batch):    # a fresh permutation of the rows
            update(minibatch)                   # loss, backward, clip, step
    update_collector_weights()

Off-policy (DQN, DDPG, TD3, SAC), for each collected batch::

    extend_buffer(batch)
    for _ in range(updates_per_batch):          # once learning_starts frames were collected
        update()                                # sample, loss, backward, clip, step,
                                                # write priorities, update target networks
    anneal_exploration()                        # epsilon, action noise
    update_collector_weights()

Hooks observe this loop (logging, evaluation, schedules, checkpoints): they run
after each update (``post_optim``) and after each batch (the log stages and
``post_steps``), never between the algorithm's steps.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any
from typing import ClassVar

import torch
from torch import nn

from rlbricks.replay import PrioritizedSampler
from rlbricks.tensordict import TensorDict
from rlbricks.trainers._algo_hooks import ReplayBufferTrainer
from rlbricks.trainers._errors import TrainerStateError
from rlbricks.trainers._errors import TrainerTypeError
from rlbricks.trainers._hooks import TargetNetUpdaterHook
from rlbricks.trainers._loggers import Logger
from rlbricks.trainers._settings import OffPolicyConfig
from rlbricks.trainers._settings import OnPolicyConfig
from rlbricks.trainers._trainer import Trainer

__all__ = ["OBSERVER_STAGES", "OffPolicyTrainer", "OnPolicyTrainer"]

#: The hook stages of :class:`OnPolicyTrainer` and :class:`OffPolicyTrainer`.
OBSERVER_STAGES = ("post_optim", "pre_steps_log", "post_steps_log", "post_steps")
"""The stages at which hooks observe the on- and off-policy loops (no algorithm stage)."""


class _TemplateTrainer(Trainer):
    """The common part of the two loops: observer-only hooks and the weight sync."""

    #: which method replaces each algorithm stage of the generic Trainer, for the error message
    _instead: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        collector: Iterable[TensorDict | None],
        loss_module: nn.Module,
        optimizer: torch.optim.Optimizer,
        config: OnPolicyConfig | OffPolicyConfig,
        logger: Logger | None,
    ) -> None:
        super().__init__(
            collector,
            config.total_frames,
            loss_module,
            optimizer,
            logger,
            **config.trainer_kwargs(),
        )
        self.config = config
        self.device = None if config.device is None else torch.device(config.device)
        self.update_weights_interval = config.update_weights_interval

    def register_op(self, stage: str, hook: Callable[..., Any], **kwargs: Any) -> None:
        """Run ``hook`` at an observer stage (see :data:`OBSERVER_STAGES`).

        Raises:
            TrainerError: ``stage`` is one of the generic :class:`Trainer`'s
                algorithm stages; the message names the method to override instead.

        Example:
            >>> import torch
            >>> from rlbricks.trainers import OnPolicyConfig, OnPolicyTrainer
            >>> trainer = OnPolicyTrainer([], torch.nn.Linear(1, 1), None,
            ...                           OnPolicyConfig(total_frames=8))
            >>> trainer.register_op("post_steps", lambda: None)
            >>> trainer.register_op("batch_process", lambda batch: batch)
            Traceback (most recent call last):
            ...
            rlbricks.trainers._errors.TrainerStateError: OnPolicyTrainer runs its algorithm's steps itself ...
        """
        if stage in self._instead:
            raise TrainerStateError(
                f"{type(self).__name__} runs its algorithm's steps itself and takes hooks only "
                f"at {', '.join(OBSERVER_STAGES)}; to change what happens at {stage!r}, "
                f"subclass it and override {self._instead[stage]}"
            )
        super().register_op(stage, hook, **kwargs)

    def compute_loss(self, sample: TensorDict) -> TensorDict:
        """The loss module's output on ``sample`` (its ``loss_*`` entries are minimised).

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.trainers import OnPolicyConfig, OnPolicyTrainer
            >>> loss = torch.nn.Module()
            >>> loss.forward = lambda td: TensorDict({"loss_x": td["x"].sum()}, [])
            >>> trainer = OnPolicyTrainer([], loss, None, OnPolicyConfig(total_frames=8))
            >>> trainer.compute_loss(TensorDict({"x": torch.ones(3)}, [3]))["loss_x"].item()
            3.0
        """
        return self.loss_module(sample)

    def update_collector_weights(self) -> None:
        """Send the policy's weights to the collector every ``update_weights_interval`` batches.

        A no-op for collectors without ``update_policy_weights_`` (a list of batches).

        Example:
            >>> import torch
            >>> from rlbricks.trainers import OnPolicyConfig, OnPolicyTrainer
            >>> OnPolicyTrainer([], torch.nn.Linear(1, 1), None,
            ...                 OnPolicyConfig(total_frames=8)).update_collector_weights()
        """
        if (self.batches + 1) % self.update_weights_interval:
            return
        update = getattr(self.collector, "update_policy_weights_", None)
        if callable(update):
            update()

    def _to_device(self, td: TensorDict) -> TensorDict:
        return td if self.device is None else td.to(self.device)


class OnPolicyTrainer(_TemplateTrainer):
    """Collect with the current policy, compute advantages, optimise epochs x minibatches.

    For each collected batch (:meth:`train_on_batch`)::

        batch = self.compute_advantages(batch)          # no gradients
        for epoch in range(self.epochs):
            for minibatch in self.minibatches(batch):
                self.update(minibatch)                  # loss, backward, clip, step
        self.update_collector_weights()

    Every step is a method to override in a subclass. Hooks observe at
    :data:`OBSERVER_STAGES` only. With ``minibatch_size`` set, each epoch
    draws one permutation of the rows from torch's global generator.

    Args:
        collector: an iterable of batches with ``frames`` (e.g. ``SyncDataCollector``).
        loss_module: returns a TensorDict whose ``loss_*`` entries are summed.
        optimizer: steps the parameters (its param groups are clipped).
        config: epochs, minibatch size, length of the run, clipping, checkpoints.
        value_estimator: writes ``advantage`` and ``value_target`` into each
            batch (e.g. ``loss.value_estimator`` after
            ``loss.make_value_estimator("gae", ...)``). None: the loss computes
            what it needs itself.
        logger: where scalars go (None: nowhere).

    Example:
        >>> import torch
        >>> from rlbricks.collectors import SyncDataCollector
        >>> from rlbricks.envs.testing import ContinuousActionEnv
        >>> from rlbricks.modules.recipes import ppo_models
        >>> from rlbricks.objectives import ClipPPOLoss
        >>> from rlbricks.trainers import OnPolicyConfig, OnPolicyTrainer
        >>> env = ContinuousActionEnv()
        >>> actor, critic = ppo_models(env, num_cells=(8,))
        >>> loss = ClipPPOLoss(actor, critic)
        >>> _ = loss.make_value_estimator("gae", gamma=0.99, lmbda=0.95)
        >>> collector = SyncDataCollector(env, actor, frames_per_batch=16, total_frames=32)
        >>> config = OnPolicyConfig(total_frames=32, epochs=2, minibatch_size=8,
        ...                         progress_bar=False)
        >>> trainer = OnPolicyTrainer(collector, loss, torch.optim.Adam(loss.parameters()),
        ...                           config, value_estimator=loss.value_estimator)
        >>> trainer.train()
        >>> trainer.collected_frames, trainer.optim_steps  # 2 batches x 2 epochs x 2 minibatches
        (32, 8)
    """

    _instead: ClassVar[dict[str, str]] = {
        "batch_process": "compute_advantages() or train_on_batch()",
        "pre_optim_steps": "train_on_batch()",
        "process_optim_batch": "minibatches()",
        "post_loss": "update()",
    }

    def __init__(
        self,
        collector: Iterable[TensorDict | None],
        loss_module: nn.Module,
        optimizer: torch.optim.Optimizer,
        config: OnPolicyConfig,
        *,
        value_estimator: Callable[[TensorDict], Any] | None = None,
        logger: Logger | None = None,
    ) -> None:
        if not isinstance(config, OnPolicyConfig):
            raise TrainerTypeError(
                f"OnPolicyTrainer needs an OnPolicyConfig, got {type(config).__name__}"
            )
        if value_estimator is not None and not callable(value_estimator):
            raise TrainerTypeError(
                f"value_estimator must be callable (e.g. loss.value_estimator), got {value_estimator!r}"
            )
        super().__init__(collector, loss_module, optimizer, config, logger)
        self.value_estimator = value_estimator
        self.epochs = config.epochs
        self.minibatch_size = config.minibatch_size

    def train_on_batch(self, batch: TensorDict) -> None:
        """Advantages, then ``epochs`` passes of minibatch updates, then the weight sync."""
        batch = self.compute_advantages(batch)
        for _epoch in range(self.epochs):
            for minibatch in self.minibatches(batch):
                self.update(minibatch)
        self.update_collector_weights()

    def compute_advantages(self, batch: TensorDict) -> TensorDict:
        """Move the batch to ``device``, run the value estimator on it without gradients; return it.

        Example:
            >>> import torch
            >>> from rlbricks.objectives import GAE
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.trainers import OnPolicyConfig, OnPolicyTrainer
            >>> flags = torch.zeros(1, 3, 1, dtype=torch.bool)
            >>> batch = TensorDict({"state_value": torch.zeros(1, 3, 1), "next": {
            ...     "state_value": torch.zeros(1, 3, 1), "reward": torch.ones(1, 3, 1),
            ...     "done": flags, "terminated": flags}}, [1, 3])
            >>> trainer = OnPolicyTrainer([], torch.nn.Linear(1, 1), None,
            ...     OnPolicyConfig(total_frames=8),
            ...     value_estimator=GAE(gamma=1.0, lmbda=1.0, value_network=None))
            >>> trainer.compute_advantages(batch)["advantage"].flatten().tolist()
            [3.0, 2.0, 1.0]
        """
        batch = self._to_device(batch)
        if self.value_estimator is None:
            return batch
        with torch.no_grad():
            out = self.value_estimator(batch)
        return batch if out is None else out

    def minibatches(self, batch: TensorDict) -> Iterator[TensorDict]:
        """The minibatches of one epoch: a random permutation of the rows, cut in ``minibatch_size``.

        With ``minibatch_size=None``, the whole batch once, as collected.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.trainers import OnPolicyConfig, OnPolicyTrainer
            >>> trainer = OnPolicyTrainer([], torch.nn.Linear(1, 1), None,
            ...     OnPolicyConfig(total_frames=8, minibatch_size=4))
            >>> batch = TensorDict({"x": torch.arange(10.0).reshape(2, 5)}, [2, 5])
            >>> [len(mb) for mb in trainer.minibatches(batch)]
            [4, 4, 2]
            >>> sorted(torch.cat([mb["x"] for mb in trainer.minibatches(batch)]).tolist())[:3]
            [0.0, 1.0, 2.0]
        """
        if self.minibatch_size is None:
            yield batch
            return
        rows = batch.reshape(-1) if batch.batch_dims != 1 else batch
        n = rows.batch_size[0]
        order = torch.randperm(n)
        for start in range(0, n, self.minibatch_size):
            yield rows[order[start : start + self.minibatch_size]]

    def update(self, minibatch: TensorDict) -> dict[str, float]:
        """One optimiser step on ``minibatch``: loss, backward, clip, step; then ``post_optim`` hooks.

        Returns:
            The ``loss_*`` values (and ``grad_norm``) of the step.
        """
        out = self.optimizer_step(self.compute_loss(minibatch))
        self._call("post_optim")
        return out


class OffPolicyTrainer(_TemplateTrainer):
    """Store each batch in a replay buffer, then take ``updates_per_batch`` sampled updates.

    For each collected batch (:meth:`train_on_batch`)::

        self.extend_buffer(batch)
        if self.collected_frames >= learning_starts:
            for _ in range(self.updates_per_batch):
                self.update()       # sample, loss, backward, clip, step,
                                    # write priorities, update target networks
        self.anneal_exploration()   # epsilon-greedy, action noise
        self.update_collector_weights()

    Every step is a method to override in a subclass. Hooks observe at
    :data:`OBSERVER_STAGES` only. The replay buffer and the target updater's
    counter are part of the checkpoints.

    Args:
        collector: an iterable of batches with ``frames`` (built without ``replay_buffer=``).
        loss_module: returns a TensorDict whose ``loss_*`` entries are summed;
            with a prioritized buffer it writes ``"td_error"`` into the sample.
        optimizer: steps the parameters (its param groups are clipped).
        replay_buffer: a ``TensorDictReplayBuffer`` or prioritized one; each
            batch is stored flattened to rows.
        config: sample size, updates per batch, length of the run, clipping, checkpoints.
        target_updater: a ``SoftUpdate``/``HardUpdate`` stepped after every update (None: none).
        exploration: modules with ``step(frames)`` (``EGreedyModule``,
            ``AdditiveGaussianModule``...) advanced by the frames of each batch,
            before the weights go to the collector.
        logger: where scalars go (None: nowhere).

    Example:
        >>> import torch
        >>> from rlbricks.collectors import SyncDataCollector
        >>> from rlbricks.envs.testing import CountingEnv
        >>> from rlbricks.modules.recipes import dqn_model
        >>> from rlbricks.objectives import DQNLoss, SoftUpdate
        >>> from rlbricks.replay import LazyTensorStorage, TensorDictReplayBuffer
        >>> from rlbricks.trainers import OffPolicyConfig, OffPolicyTrainer
        >>> env = CountingEnv()
        >>> actor = dqn_model(env, num_cells=(8,))
        >>> loss = DQNLoss(actor)
        >>> _ = loss.make_value_estimator(gamma=0.9)
        >>> collector = SyncDataCollector(env, actor, frames_per_batch=8, total_frames=32)
        >>> buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(100))
        >>> config = OffPolicyConfig(total_frames=32, batch_size=4, updates_per_batch=2,
        ...                          progress_bar=False)
        >>> trainer = OffPolicyTrainer(collector, loss, torch.optim.Adam(loss.parameters()),
        ...                            buffer, config, target_updater=SoftUpdate(loss, tau=0.1))
        >>> trainer.train()
        >>> trainer.collected_frames, trainer.optim_steps, len(buffer)
        (32, 8, 32)
    """

    _instead: ClassVar[dict[str, str]] = {
        "batch_process": "extend_buffer() or train_on_batch()",
        "pre_optim_steps": "train_on_batch()",
        "process_optim_batch": "sample()",
        "post_loss": "write_priorities() or update()",
    }

    def __init__(
        self,
        collector: Iterable[TensorDict | None],
        loss_module: nn.Module,
        optimizer: torch.optim.Optimizer,
        replay_buffer: Any,
        config: OffPolicyConfig,
        *,
        target_updater: Any | None = None,
        exploration: Any | Sequence[Any] = (),
        logger: Logger | None = None,
    ) -> None:
        if not isinstance(config, OffPolicyConfig):
            raise TrainerTypeError(
                f"OffPolicyTrainer needs an OffPolicyConfig, got {type(config).__name__}"
            )
        if target_updater is not None and not callable(getattr(target_updater, "step", None)):
            raise TrainerTypeError(
                "target_updater must have a step() method (SoftUpdate, HardUpdate), "
                f"got {target_updater!r}"
            )
        modules = tuple(exploration) if isinstance(exploration, (list, tuple)) else (exploration,)
        for module in modules:
            if not callable(getattr(module, "step", None)):
                raise TrainerTypeError(
                    f"exploration modules need a step(frames) method (EGreedyModule, "
                    f"AdditiveGaussianModule...), got {type(module).__name__}"
                )
        super().__init__(collector, loss_module, optimizer, config, logger)
        self.exploration = modules
        self.replay_buffer = replay_buffer
        self.target_updater = target_updater
        self.updates_per_batch = config.updates_per_batch
        self.learning_starts = config.learning_starts
        self.prioritized = isinstance(getattr(replay_buffer, "sampler", None), PrioritizedSampler)
        # the checkpoint adapters: the buffer is dumped beside the checkpoint, the
        # updater's step counter goes into it
        self._buffer = ReplayBufferTrainer(replay_buffer, config.batch_size, device=self.device)
        self.register_module("replay_buffer", self._buffer)
        if target_updater is not None:
            self.register_module("target_updater", TargetNetUpdaterHook(target_updater))

    def train_on_batch(self, batch: TensorDict) -> None:
        """Store the batch; ``updates_per_batch`` updates (after ``learning_starts``); weight sync."""
        self.extend_buffer(batch)
        if self.collected_frames >= self.learning_starts:
            for _ in range(self.updates_per_batch):
                self.update()
        self.anneal_exploration()
        self.update_collector_weights()

    def extend_buffer(self, batch: TensorDict) -> None:
        """Write the rows of ``batch`` (flattened) into the replay buffer."""
        self._buffer.extend(batch)

    def sample(self) -> TensorDict:
        """``batch_size`` transitions of the buffer (moved to ``device`` when set)."""
        return self._buffer.sample(None)

    def update(self) -> dict[str, float]:
        """Sample, loss, backward, clip, step, write priorities, update targets; ``post_optim`` hooks.

        Returns:
            The ``loss_*`` values (and ``grad_norm``) of the step.
        """
        sample = self.sample()
        out = self.optimizer_step(self.compute_loss(sample))
        self.write_priorities(sample)
        self.update_targets()
        self._call("post_optim")
        return out

    def write_priorities(self, sample: TensorDict) -> None:
        """A prioritized buffer takes the sample's new ``"td_error"`` as priorities (else nothing)."""
        if self.prioritized:
            self.replay_buffer.update_tensordict_priority(sample)

    def anneal_exploration(self) -> None:
        """Advance every exploration module's schedule by the frames of the last batch.

        Example:
            >>> import torch
            >>> from rlbricks.modules import EGreedyModule
            >>> from rlbricks.specs import Categorical
            >>> from rlbricks.trainers import OffPolicyConfig, OffPolicyTrainer
            >>> explore = EGreedyModule(Categorical(2), 1.0, 0.0, annealing_num_steps=10)
            >>> trainer = OffPolicyTrainer([], torch.nn.Linear(1, 1), None, None,
            ...     OffPolicyConfig(total_frames=8), exploration=explore)
            >>> trainer.frames_last_batch = 5
            >>> trainer.anneal_exploration()
            >>> float(explore.eps)
            0.5
        """
        for module in self.exploration:
            module.step(self.frames_last_batch)

    def update_targets(self) -> None:
        """One step of the target updater (Polyak averaging or a periodic copy)."""
        if self.target_updater is not None:
            self.target_updater.step()
