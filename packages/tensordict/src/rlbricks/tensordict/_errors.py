"""The exceptions of ``rlbricks.tensordict``."""

from __future__ import annotations

from typing import Any

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

    def __init__(
        self,
        message: str,
        key: Any = None,
        shape: tuple[int, ...] | None = None,
        batch_size: tuple[int, ...] | None = None,
        what: str = "shape",
    ) -> None:
        super().__init__(message)
        self.key = key
        self.shape = shape
        self.batch_size = batch_size
        self.what = what

    @classmethod
    def for_key(
        cls, key: Any, shape: tuple[int, ...], batch_size: tuple[int, ...], what: str = "shape"
    ) -> BatchSizeError:
        """The error for a value at ``key`` whose leading dims disagree with ``batch_size``."""
        return cls(
            f"key {key!r} has {what} {shape} but the TensorDict has batch_size "
            f"{batch_size}: a value's leading dims must equal batch_size",
            key,
            shape,
            batch_size,
            what,
        )

    def under(self, prefix: Any, batch_size: tuple[int, ...]) -> BatchSizeError:
        """The same error seen from a parent TensorDict: the key gains ``prefix``."""
        if self.key is None or self.shape is None:
            return self
        inner = self.key if isinstance(self.key, tuple) else (self.key,)
        outer = prefix if isinstance(prefix, tuple) else (prefix,)
        return BatchSizeError.for_key(outer + inner, self.shape, batch_size, self.what)
