"""rlbricks.tensordict: a dictionary of tensors sharing leading batch dimensions.

The data carrier of rlbricks.  Every brick reads and writes TensorDicts.

Example:
    >>> import torch
    >>> from rlbricks.tensordict import TensorDict
    >>> td = TensorDict({"observation": torch.randn(8, 4)}, batch_size=[8])
    >>> td["next", "reward"] = torch.zeros(8, 1)
    >>> td[:2].batch_size
    torch.Size([2])
"""

from rlbricks.tensordict._errors import BatchSizeError
from rlbricks.tensordict._errors import TensorDictAssertionError
from rlbricks.tensordict._errors import TensorDictError
from rlbricks.tensordict._errors import TensorDictFileExistsError
from rlbricks.tensordict._errors import TensorDictFileNotFoundError
from rlbricks.tensordict._errors import TensorDictIndexError
from rlbricks.tensordict._errors import TensorDictKeyError
from rlbricks.tensordict._errors import TensorDictTypeError
from rlbricks.tensordict._errors import TensorDictValueError
from rlbricks.tensordict._functional import cat
from rlbricks.tensordict._functional import stack
from rlbricks.tensordict._functional import where
from rlbricks.tensordict._keys import KeysView
from rlbricks.tensordict._keys import NestedKey
from rlbricks.tensordict._keys import unravel_key
from rlbricks.tensordict._memmap_tensor import MemoryMappedTensor
from rlbricks.tensordict._pytree import register as _register_pytree
from rlbricks.tensordict._td import TensorDict
from rlbricks.tensordict._testing import assert_close
from rlbricks.tensordict._testing import is_tensordict

__version__ = "0.1.1"

__all__ = [
    "TensorDict",
    "MemoryMappedTensor",
    "stack",
    "cat",
    "where",
    "is_tensordict",
    "assert_close",
    "unravel_key",
    "NestedKey",
    "KeysView",
    "TensorDictError",
    "TensorDictKeyError",
    "TensorDictValueError",
    "BatchSizeError",
    "TensorDictTypeError",
    "TensorDictIndexError",
    "TensorDictFileNotFoundError",
    "TensorDictFileExistsError",
    "TensorDictAssertionError",
]

_register_pytree()
