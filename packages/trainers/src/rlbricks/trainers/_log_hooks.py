"""Logging hooks: scalars computed from each collected batch."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import ClassVar

from rlbricks.tensordict import TensorDict
from rlbricks.trainers._errors import TrainerKeyError
from rlbricks.trainers._errors import TrainerStateError
from rlbricks.trainers._errors import TrainerValueError
from rlbricks.trainers._hooks import TrainerHookBase

if TYPE_CHECKING:
    from rlbricks.trainers._trainer import Trainer

__all__ = ["CountFramesLog", "LogReward", "LogScalar"]


_REDUCTIONS = ("mean", "sum", "max", "min", "last")


class LogScalar(TrainerHookBase):
    """Log a reduction (mean, sum, max, min, last) of one entry of each collected batch.

    Stage: ``pre_steps_log``; returns ``{name: value}``.

    Args:
        key: the entry of the batch.
        name: the scalar's name (default: the key joined with ``/``).
        reduction: ``"mean"``, ``"sum"``, ``"max"``, ``"min"`` or ``"last"``.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.trainers import LogScalar
        >>> batch = TensorDict({"next": {"reward": torch.tensor([[1.0], [3.0]])}}, batch_size=[2])
        >>> LogScalar(("next", "reward"), "r", "max")(batch)
        {'r': 3.0}
    """

    stage: ClassVar[str | None] = "pre_steps_log"

    def __init__(
        self, key: str | tuple[str, ...], name: str | None = None, reduction: str = "mean"
    ) -> None:
        if reduction not in _REDUCTIONS:
            raise TrainerValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.key = key
        self.name = name or (key if isinstance(key, str) else "/".join(key))
        self.reduction = reduction

    def __call__(self, batch: TensorDict) -> dict[str, float]:
        """``{name: reduction(batch[key])}``."""
        try:
            value = batch.get(self.key).float()
        except KeyError:
            keys = sorted(map(str, batch.keys(include_nested=True, leaves_only=True)))
            raise TrainerKeyError(
                f"{type(self).__name__}: the batch has no {self.key!r}; available: {keys}"
            ) from None
        if self.reduction == "last":
            return {self.name: float(value.reshape(-1)[-1])}
        return {self.name: float(getattr(value, self.reduction)())}


class LogReward(LogScalar):
    """Log the mean ``("next", "reward")`` of each collected batch as ``"reward"``.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.trainers import LogReward
        >>> LogReward()(TensorDict({"next": {"reward": torch.ones(4, 1)}}, batch_size=[4]))
        {'reward': 1.0}
    """

    def __init__(
        self, name: str = "reward", reward_key: str | tuple[str, ...] = ("next", "reward")
    ) -> None:
        super().__init__(reward_key, name, "mean")


class CountFramesLog(TrainerHookBase):
    """Log the frames collected so far as ``"n_frames"``.

    Stage: ``pre_steps_log``.

    Example:
        >>> from rlbricks.trainers import CountFramesLog
        >>> CountFramesLog().name
        'n_frames'
    """

    stage: ClassVar[str | None] = "pre_steps_log"

    def __init__(self, name: str = "n_frames") -> None:
        self.name = name
        self._trainer: Trainer | None = None

    def __call__(self, batch: TensorDict) -> dict[str, float]:
        """``{name: trainer.collected_frames}``."""
        if self._trainer is None:
            raise TrainerStateError("CountFramesLog: call register(trainer) first")
        return {self.name: float(self._trainer.collected_frames)}

    def register(self, trainer: Trainer, name: str | None = None) -> None:
        """Register at ``pre_steps_log`` (the hook reads the trainer's frame counters)."""
        self._trainer = trainer
        super().register(trainer, name)
