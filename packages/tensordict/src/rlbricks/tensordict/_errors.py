"""The exceptions of ``rlbricks.tensordict``."""

from __future__ import annotations

__all__ = ["BatchSizeError", "TensorDictKeyError"]


class TensorDictKeyError(KeyError):
    """A key is missing from a TensorDict; the message lists the keys that exist.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict, TensorDictKeyError
        >>> td = TensorDict({"obs": torch.zeros(2)}, batch_size=[2])
        >>> try:
        ...     td["observation"]
        ... except TensorDictKeyError as err:
        ...     print(err)
        key 'observation' not found; available keys: ['obs']
    """

    def __str__(self) -> str:  # KeyError quotes its message; ours reads as a sentence
        return str(self.args[0]) if self.args else ""


class BatchSizeError(ValueError):
    """A value's leading dimensions disagree with the TensorDict's ``batch_size``.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict, BatchSizeError
        >>> td = TensorDict(batch_size=[4])
        >>> try:
        ...     td["reward"] = torch.zeros(3, 1)
        ... except BatchSizeError as err:
        ...     print(err)
        key 'reward' has shape (3, 1) but the TensorDict has batch_size (4,): a value's leading dims must equal batch_size
    """
