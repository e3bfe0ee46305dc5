"""Property tests of checkpoints: any state a state_dict may hold comes back equal.

States are nested dicts (string or integer keys), lists and tuples of tensors
(any dtype a model or RNG uses, any shape, including empty), numpy arrays
(``uint32`` as numpy's RNG state has it), Python numbers (big integers such as
PCG64 states, NaN and infinities), strings, booleans, None and torch dtypes.
``write_checkpoint`` then ``read_checkpoint`` must give back an equal tree, with
the same types and dtypes, bit for bit.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from rlbricks.trainers._checkpoint import read_checkpoint
from rlbricks.trainers._checkpoint import write_checkpoint

SETTINGS = settings(max_examples=60, deadline=None)
TORCH_DTYPES = [torch.float32, torch.float64, torch.float16, torch.int64, torch.int32,
                torch.uint8, torch.bool]  # fmt: skip
NUMPY_DTYPES = [np.float32, np.float64, np.int64, np.uint32, np.uint8, np.bool_]


@st.composite
def tensors(draw: st.DrawFn) -> torch.Tensor:
    dtype = draw(st.sampled_from(TORCH_DTYPES))
    shape = draw(st.lists(st.integers(0, 3), max_size=3))
    seed = draw(st.integers(0, 2**31))
    values = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 100
    return values.to(dtype)


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(st.sampled_from(NUMPY_DTYPES))
    shape = draw(st.lists(st.integers(0, 3), max_size=2))
    seed = draw(st.integers(0, 2**31))
    values = np.random.default_rng(seed).uniform(0, 2**31, size=shape)
    return values.astype(dtype)


LEAVES = (
    tensors()
    | arrays()
    | st.integers(-(2**130), 2**130)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=5)
    | st.booleans()
    | st.none()
    | st.sampled_from(TORCH_DTYPES)
)
KEYS = st.text(min_size=1, max_size=4) | st.integers(-5, 5)
STATES = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(KEYS, inner, max_size=3)
    ),
    max_leaves=12,
)


def assert_same(got: Any, want: Any, where: str = "state") -> None:
    assert type(got) is type(want), f"{where}: {type(got).__name__} != {type(want).__name__}"
    if isinstance(want, torch.Tensor):
        assert (got.dtype, got.shape) == (want.dtype, want.shape), where
        assert torch.equal(got, want), where
    elif isinstance(want, np.ndarray):
        assert (got.dtype, got.shape) == (want.dtype, want.shape), where
        assert np.array_equal(got, want), where
    elif isinstance(want, float) and math.isnan(want):
        assert math.isnan(got), where
    elif isinstance(want, dict):
        assert list(got) == list(want), where
        for key in want:
            assert_same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want)):
            assert_same(a, b, f"{where}[{i}]")
    else:
        assert got == want, where


@SETTINGS
@given(state=st.dictionaries(st.text(min_size=1, max_size=4), STATES, max_size=4))
def test_a_checkpoint_gives_back_what_was_saved(state: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = write_checkpoint(Path(folder) / "ckpt", state)
        assert_same(read_checkpoint(path), state)
