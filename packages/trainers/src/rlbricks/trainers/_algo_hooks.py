"""The hooks that add algorithm steps to the generic :class:`Trainer`'s stages.

:class:`OnPolicyTrainer` and :class:`OffPolicyTrainer` take these steps
themselves (they refuse these hooks); the generic loop builds other
algorithms from them: a replay buffer (:class:`ReplayBufferTrainer`),
advantages before the minibatches (:class:`AdvantageHook`), random rows of the
batch (:class:`BatchSubSampler`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

import torch

from rlbricks.replay import PrioritizedSampler
from rlbricks.tensordict import TensorDict
from rlbricks.trainers._errors import TrainerTypeError
from rlbricks.trainers._errors import TrainerValueError
from rlbricks.trainers._hooks import TrainerHookBase

if TYPE_CHECKING:
    from rlbricks.trainers._trainer import Trainer

__all__ = ["AdvantageHook", "BatchSubSampler", "ReplayBufferTrainer"]


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
            raise TrainerTypeError(
                f"AdvantageHook needs a callable value estimator, got {estimator!r}"
            )
        self.estimator = estimator

    def __call__(self, batch: TensorDict) -> TensorDict:
        """Write the estimator's entries (``advantage``, ``value_target``) into ``batch``."""
        with torch.no_grad():
            out = self.estimator(batch)
        return batch if out is None else out


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
            raise TrainerValueError(f"BatchSubSampler: batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)

    def __call__(self, batch: TensorDict) -> TensorDict:
        """``batch_size`` random rows of ``batch``."""
        rows = batch.reshape(-1)
        index = torch.randint(rows.batch_size[0], (self.batch_size,), device=rows.device)
        return rows[index]
