"""Tests of memory-mapped tensors and of TensorDicts saved to / loaded from memory-mapped folders."""

from __future__ import annotations

import copy
import io
import json
import multiprocessing
import os
import pickle
import tempfile

import pytest
import torch
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from rlbricks.tensordict._memmap import is_memmap
from rlbricks.tensordict._memmap import load_memmap
from rlbricks.tensordict._memmap import memmap_like
from rlbricks.tensordict._memmap import memmap_td
from rlbricks.tensordict._memmap_tensor import MemoryMappedTensor
from rlbricks.tensordict._td import TensorDict

DTYPES = [
    getattr(torch, name)
    for name in "bool uint8 int8 int16 int32 int64 float16 bfloat16 float32 float64 complex64".split()
]


def _sample(shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    if dtype is torch.bool:
        return torch.randint(0, 2, shape, generator=gen).bool()
    if dtype.is_floating_point or dtype.is_complex:
        return (torch.randn(shape, generator=gen) * 100).to(dtype)
    return torch.randint(-100 if dtype.is_signed else 0, 100, shape, generator=gen).to(dtype)


def _assert_same(a: TensorDict, b: TensorDict) -> None:
    """Same keys, nesting, batch sizes, dtypes, shapes and values, recursively."""
    assert a.batch_size == b.batch_size
    assert list(a._tensordict) == list(b._tensordict)
    for key, va in a._tensordict.items():
        vb = b._tensordict[key]
        if isinstance(va, TensorDict):
            assert isinstance(vb, TensorDict), key
            _assert_same(va, vb)
        else:
            assert (va.dtype, va.shape) == (vb.dtype, vb.shape), key
            assert torch.equal(va.cpu(), vb.cpu()), key


def _nested_td() -> TensorDict:
    return TensorDict(
        {
            "obs": _sample((4, 3, 2), torch.float32),
            "action": _sample((4, 3), torch.int64, 1),
            "next": {
                "reward": _sample((4, 3, 1), torch.float16, 2),
                "done": _sample((4, 3, 1), torch.bool, 3),
                "agent": TensorDict({"h": _sample((4, 3, 5, 0), torch.float64)}, [4, 3, 5]),
            },
        },
        batch_size=[4, 3],
    )


# ---------------------------------------------------------------------------- MemoryMappedTensor
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_from_tensor_writes_file_of_raw_bytes(tmp_path, dtype):
    src = _sample((3, 4), dtype)
    path = tmp_path / "x.memmap"
    mmt = MemoryMappedTensor.from_tensor(src, filename=path)
    assert type(mmt) is MemoryMappedTensor
    assert mmt.filename == str(path)
    assert os.path.isabs(mmt.filename)
    assert torch.equal(mmt, src)
    assert mmt.dtype == dtype
    assert path.stat().st_size == src.numel() * src.element_size()
    again = MemoryMappedTensor.from_filename(path, dtype, (3, 4))
    assert torch.equal(again, src)


def test_writes_reach_the_file(tmp_path):
    path = tmp_path / "x.memmap"
    mmt = MemoryMappedTensor.zeros((3, 2), dtype=torch.int32, filename=path)
    mmt[1] = 7  # through __setitem__
    mmt[2].fill_(5)  # through a plain view
    mmt.add_(1)
    reopened = MemoryMappedTensor.from_filename(path, torch.int32, [3, 2])
    assert reopened.tolist() == [[1, 1], [8, 8], [6, 6]]
    reopened[0, 0] = -1
    assert mmt[0, 0].item() == -1


def test_behaves_like_a_tensor():
    mmt = MemoryMappedTensor.from_tensor(torch.arange(6.0).view(2, 3))
    assert type(mmt[0]) is type(mmt + 1) is torch.Tensor
    assert type(mmt.mul_(2)) is MemoryMappedTensor
    stacked = torch.stack([mmt, mmt])
    assert stacked.shape == (2, 2, 3)
    assert type(stacked) is torch.Tensor
    assert torch.equal(mmt.sum(0), torch.tensor([6.0, 10.0, 14.0]))
    assert mmt.is_shared()
    assert not mmt.requires_grad
    assert repr(mmt).startswith("MemoryMappedTensor(")


def test_anonymous_shared_memory():
    src = torch.arange(12).view(3, 4)
    mmt = MemoryMappedTensor.from_tensor(src)
    assert mmt.filename is None
    assert mmt.is_shared()
    assert torch.equal(mmt, src)
    src[0, 0] = 100  # a copy, not an alias of the input
    assert mmt[0, 0].item() == 0


@pytest.mark.parametrize("anonymous", [True, False])
def test_non_contiguous_and_grad_inputs(tmp_path, anonymous):
    base = torch.randn(4, 5, requires_grad=True)
    for i, src in enumerate([base.t(), base[:, ::2], torch.zeros(3).expand(4, 3)]):
        filename = None if anonymous else tmp_path / f"{i}.memmap"
        mmt = MemoryMappedTensor.from_tensor(src, filename=filename)
        assert mmt.is_contiguous()
        assert not mmt.requires_grad
        assert torch.equal(mmt, src.detach())


@pytest.mark.parametrize("shape", [(0,), (3, 0, 2), (0, 0)])
def test_zero_element_tensors(tmp_path, shape):
    path = tmp_path / "empty.memmap"
    mmt = MemoryMappedTensor.from_tensor(torch.zeros(shape), filename=path)
    assert (mmt.shape, mmt.filename, path.stat().st_size) == (shape, str(path), 0)
    assert MemoryMappedTensor.from_filename(path, torch.float32, shape).shape == shape
    assert MemoryMappedTensor.zeros(shape).shape == shape
    assert MemoryMappedTensor.full(shape, 1, dtype=torch.bool).shape == shape


def test_factories(tmp_path):
    assert MemoryMappedTensor.empty(3).shape == (3,)
    assert MemoryMappedTensor.empty(torch.Size([2, 2]), dtype=torch.int8).dtype == torch.int8
    assert MemoryMappedTensor.zeros([2, 3], dtype=torch.float64).sum().item() == 0
    ones = MemoryMappedTensor.ones((2,), dtype=torch.bool, filename=tmp_path / "o.memmap")
    assert ones.tolist() == [True, True]
    assert ones.filename is not None
    full = MemoryMappedTensor.full((2, 2), -3, dtype=torch.int64)
    assert full.tolist() == [[-3, -3], [-3, -3]]
    with pytest.raises(ValueError, match="negative"):
        MemoryMappedTensor.empty((2, -1))
    with pytest.raises(TypeError, match="from_tensor"):
        MemoryMappedTensor([1.0, 2.0])


def test_existsok(tmp_path):
    path = tmp_path / "x.memmap"
    MemoryMappedTensor.full((4,), 9, dtype=torch.int64, filename=path)
    with pytest.raises(FileExistsError, match="existsok=True"):
        MemoryMappedTensor.zeros(4, filename=path)
    # overwriting zero-fills even though the file held data, also when the size changes
    assert MemoryMappedTensor.zeros(4, dtype=torch.int64, filename=path, existsok=True).eq(0).all()
    MemoryMappedTensor.full((6,), 9, dtype=torch.int64, filename=path, existsok=True)
    assert MemoryMappedTensor.zeros(2, dtype=torch.int64, filename=path, existsok=True).eq(0).all()
    assert path.stat().st_size == 16
    fresh = MemoryMappedTensor.from_tensor(torch.ones(3), filename=tmp_path / "y", copy_data=False)
    assert fresh.eq(0).all()


def test_from_filename_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.memmap"):
        MemoryMappedTensor.from_filename(tmp_path / "missing.memmap", torch.float32, (2,))
    path = tmp_path / "x.memmap"
    MemoryMappedTensor.zeros(3, filename=path)
    with pytest.raises(ValueError, match=r"holds 12 bytes but shape \(4,\)"):
        MemoryMappedTensor.from_filename(path, torch.float32, 4)


def test_pickle_and_torch_save_copy_the_data(tmp_path):
    mmt = MemoryMappedTensor.from_tensor(torch.arange(4.0), filename=tmp_path / "x.memmap")
    for restored in [pickle.loads(pickle.dumps(mmt)), copy.deepcopy(mmt)]:
        assert type(restored) is torch.Tensor
        assert torch.equal(restored, mmt)
        restored[0] = 42
        assert mmt[0].item() == 0
    buf = io.BytesIO()
    torch.save({"x": mmt, "y": MemoryMappedTensor.ones(2)}, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    assert type(loaded["x"]) is torch.Tensor
    assert torch.equal(loaded["x"], mmt)


_CHILD_CODE = """
import torch
from rlbricks.tensordict._memmap import load_memmap, memmap_td
from rlbricks.tensordict._td import TensorDict
assert file_mmt.filename == expected_filename, file_mmt.filename
file_mmt[0] = 7
anon_mmt[1] = 8
td = load_memmap(prefix)
assert td["a"].tolist() == list(range(6)) and td["nested", "b"].dtype == torch.bool
td["a"][3] = 70
memmap_td(TensorDict({"c": torch.full((2,), 5)}, batch_size=[2]), child_prefix)
"""


def test_shared_with_a_spawned_process(tmp_path):
    """Pickled to a child: both kinds of memmaps share memory; folders cross processes both ways."""
    file_mmt = MemoryMappedTensor.zeros(3, filename=tmp_path / "x.memmap")
    anon_mmt = MemoryMappedTensor.zeros(3, dtype=torch.int64)
    td = TensorDict(
        {"a": torch.arange(6), "nested": {"b": torch.ones(6, 2, dtype=torch.bool)}}, batch_size=[6]
    )
    memmap_td(td, tmp_path / "td", inplace=True)
    ns = {
        "file_mmt": file_mmt,
        "anon_mmt": anon_mmt,
        "expected_filename": file_mmt.filename,
        "prefix": str(tmp_path / "td"),
        "child_prefix": str(tmp_path / "child"),
    }
    proc = multiprocessing.get_context("spawn").Process(target=exec, args=(_CHILD_CODE, ns))
    proc.start()
    try:
        proc.join(timeout=120)
    finally:
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == 0
    assert file_mmt.tolist() == [7.0, 0.0, 0.0]
    assert anon_mmt.tolist() == [0, 8, 0]
    assert td["a"][3].item() == 70  # the parent's own mapping sees the child's write
    assert load_memmap(tmp_path / "td")["a"][3].item() == 70
    assert load_memmap(tmp_path / "child")["c"].tolist() == [5, 5]


# ---------------------------------------------------------------------------- memmap_td / load_memmap
@pytest.mark.parametrize("batch_size", [(), (5,), (2, 3)])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_round_trip_dtypes_and_batch_sizes(tmp_path, dtype, batch_size):
    td = TensorDict(
        {"x": _sample((*batch_size, 2), dtype), "y": {"z": _sample(batch_size, dtype, 1)}},
        batch_size=batch_size,
    )
    mm = memmap_td(td, tmp_path)
    _assert_same(mm, td)
    loaded = load_memmap(tmp_path)
    _assert_same(loaded, td)
    assert is_memmap(mm)
    assert is_memmap(loaded)


def test_round_trip_nested_and_zero_size(tmp_path):
    td = _nested_td()
    mm = memmap_td(td, str(tmp_path / "p"))
    assert mm is not td
    assert not is_memmap(td)
    assert mm["next", "agent", "h"].filename == str(tmp_path / "p" / "next" / "agent" / "h.memmap")
    _assert_same(load_memmap(tmp_path / "p"), td)
    empty = TensorDict({"a": torch.zeros(0, 4)}, batch_size=[0])
    memmap_td(empty, tmp_path / "e")
    _assert_same(load_memmap(tmp_path / "e"), empty)


def test_meta_json_layout(tmp_path):
    td = TensorDict({"obs": torch.zeros(2, 3), "next": {"r": torch.ones(2, 1)}}, [2], device="cpu")
    memmap_td(td, tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert (meta["batch_size"], meta["device"], meta["version"]) == ([2], "cpu", 1)
    assert meta["entries"] == {
        "obs": {"type": "tensor", "dtype": "float32", "shape": [2, 3], "filename": "obs.memmap"},
        "next": {"type": "tensordict", "dirname": "next"},
    }
    nested = json.loads((tmp_path / "next" / "meta.json").read_text())
    assert nested["entries"]["r"]["filename"] == "r.memmap"
    assert sorted(os.listdir(tmp_path)) == ["meta.json", "next", "obs.memmap"]
    assert load_memmap(tmp_path).device == torch.device("cpu")
    memmap_td(TensorDict({"a": torch.zeros(1)}), tmp_path / "n")
    assert load_memmap(tmp_path / "n").device is None


def test_writes_to_loaded_td_persist(tmp_path):
    memmap_td(TensorDict({"a": torch.zeros(5)}, batch_size=[5]), tmp_path)
    td = load_memmap(tmp_path)
    td["a"][3] = 7
    td["a"][:2] += 1
    assert load_memmap(tmp_path)["a"].tolist() == [1, 1, 0, 7, 0]


def test_inplace(tmp_path):
    td = _nested_td()
    nested, expected = td["next"], td.clone()
    assert memmap_td(td, tmp_path, inplace=True) is td
    assert td["next"] is nested
    assert is_memmap(td)
    _assert_same(td, expected)
    _assert_same(load_memmap(tmp_path), expected)


def test_anonymous_td_writes_nothing(tmp_path):
    td = _nested_td()
    mm = memmap_td(td)
    assert is_memmap(mm)
    assert mm["obs"].filename is None
    assert mm["obs"].is_shared()
    _assert_same(mm, td)
    assert memmap_td(mm)["obs"] is mm["obs"]  # already shared: reused
    like = memmap_like(td)
    assert is_memmap(like)
    assert like["next", "done"].dtype == torch.bool


def test_existing_memmaps(tmp_path):
    td = memmap_td(
        TensorDict({"a": torch.arange(3), "n": {"b": torch.ones(3)}}, [3]), tmp_path / "first"
    )
    # the same location: reused, no copy, no error
    assert memmap_td(td, tmp_path / "first")["a"] is td["a"]
    # somewhere else: refuse to copy silently
    with pytest.raises(ValueError, match=r"key 'a' is already memory-mapped to .*copy_existing"):
        memmap_td(td, tmp_path / "second")
    with pytest.raises(ValueError, match=r"key \('n', 'b'\) is already memory-mapped"):
        memmap_td(td.exclude("a"), tmp_path / "second")
    copied = memmap_td(td, tmp_path / "second", copy_existing=True)
    assert copied["a"].filename == str(tmp_path / "second" / "a.memmap")
    assert torch.equal(copied["a"], td["a"])
    # an anonymous memmap is not stored anywhere: it is copied to the folder
    anon = memmap_td(TensorDict({"a": torch.arange(3)}, [3]))
    assert memmap_td(anon, tmp_path / "third")["a"].filename is not None
    with pytest.raises(FileExistsError, match=r"a\.memmap"):
        memmap_td(anon, tmp_path / "third", existsok=False)


def test_unsafe_keys_are_escaped(tmp_path):
    keys = ["a/b", "..", ".", "", "meta.json", "x.memmap", "x", "A", "a", "ü 🙂", "k" * 300]
    td = TensorDict({k: torch.full((2,), i) for i, k in enumerate(keys)}, batch_size=[2])
    td["meta.json%2E"] = TensorDict({"..": torch.ones(2, 1)}, [2])  # dir named like the escape
    memmap_td(td, tmp_path)
    names = os.listdir(tmp_path)
    assert len(names) == len(keys) + 2  # one file each, the folder, meta.json: no clash
    assert all(len(n) < 120 and "/" not in n for n in names)
    assert len({n.lower() for n in names}) == len(names)  # safe on case-insensitive disks
    _assert_same(load_memmap(tmp_path), td)


def test_cpu_device_and_cuda(tmp_path):
    td = TensorDict({"a": torch.ones(2)}, [2], device="cpu")
    mm = memmap_td(td, tmp_path)
    assert mm.device == torch.device("cpu")
    if not torch.cuda.is_available():
        return
    cuda_td = TensorDict({"a": torch.ones(2)}, [2], device="cuda")
    mm = memmap_td(cuda_td, tmp_path / "c")
    assert mm.device == torch.device("cpu")
    assert mm["a"].device.type == "cpu"
    assert json.loads((tmp_path / "c" / "meta.json").read_text())["device"].startswith("cuda")


def test_memmap_like_preallocates(tmp_path):
    example = TensorDict({"obs": torch.ones(3), "next": {"done": torch.ones(1, dtype=torch.bool)}})
    template = TensorDict(
        {
            "obs": example["obs"].expand(100, 3),
            "next": {"done": example["next", "done"].expand(100, 1)},
        },
        batch_size=[100],
    )
    buf = memmap_like(template, tmp_path)
    assert buf["obs"].shape == (100, 3)
    assert buf["obs"].eq(0).all()
    assert buf["next", "done"].dtype == torch.bool
    assert not buf["next", "done"].any()
    assert (tmp_path / "obs.memmap").stat().st_size == 100 * 3 * 4
    buf["obs"][10] = 1.5
    assert load_memmap(tmp_path)["obs"][10].tolist() == [1.5, 1.5, 1.5]
    # re-preallocating over the same folder zero-fills again
    assert memmap_like(template, tmp_path)["obs"].eq(0).all()
    with pytest.raises(FileExistsError):
        memmap_like(template, tmp_path, existsok=False)


def test_is_memmap():
    td = TensorDict({"a": torch.zeros(2), "n": {"b": torch.zeros(2)}}, [2])
    assert not is_memmap(td)
    mm = memmap_td(td)
    assert is_memmap(mm)
    mm["n"]._tensordict["b"] = torch.zeros(2)
    assert not is_memmap(mm)
    assert is_memmap(TensorDict())


def test_rejects_non_tensordicts(tmp_path):
    with pytest.raises(TypeError, match="memmap_td expects a TensorDict, got dict"):
        memmap_td({"a": torch.zeros(1)}, tmp_path)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="memmap_like expects a TensorDict"):
        memmap_like(torch.zeros(1))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- load errors
def _saved(tmp_path):
    memmap_td(TensorDict({"a": torch.zeros(2, 3), "n": {"b": torch.ones(2)}}, [2]), tmp_path)
    return json.loads((tmp_path / "meta.json").read_text())


def test_load_missing_folder_or_meta(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere.*meta\.json does not exist"):
        load_memmap(tmp_path / "nowhere")
    _saved(tmp_path)
    (tmp_path / "n" / "meta.json").unlink()
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "n" / "meta.json")):
        load_memmap(tmp_path)


def test_load_missing_or_truncated_leaf(tmp_path):
    _saved(tmp_path)
    with open(tmp_path / "a.memmap", "r+b") as f:
        f.truncate(8)
    with pytest.raises(ValueError, match=r"a\.memmap holds 8 bytes"):
        load_memmap(tmp_path)
    (tmp_path / "a.memmap").unlink()
    with pytest.raises(FileNotFoundError, match=r"a\.memmap does not exist"):
        load_memmap(tmp_path)


@pytest.mark.parametrize(
    ("corrupt", "match"),
    [
        (lambda m: "{not json", "not valid JSON"),
        (lambda m: [1, 2], "not a memory-mapped TensorDict"),
        (lambda m: {**m, "version": 99}, "format version 99"),
        (lambda m: {**m, "byteorder": "middle"}, "middle-endian"),
        (lambda m: {k: v for k, v in m.items() if k != "entries"}, "missing field 'entries'"),
        (lambda m: {**m, "batch_size": [-1]}, "batch_size must be a list of non-negative"),
        (
            lambda m: {**m, "batch_size": [3]},
            r"\(entry 'a'\): shape \(2, 3\) does not start with batch_size \(3,\)",
        ),
        (lambda m: _set(m, "a", "dtype", "float99"), r"\(entry 'a'\): unknown dtype 'float99'"),
        (lambda m: _set(m, "a", "type", "blob"), "unknown type 'blob'"),
        (lambda m: _set(m, "a", "filename", "../a.memmap"), "not a plain file name"),
        (lambda m: _set(m, "n", "dirname", ".."), "not a plain file name"),
        (
            lambda m: _set(m, "a", "shape", "2x3"),
            r"\(entry 'a'\): field 'shape' has the wrong type",
        ),
    ],
)
def test_load_corrupted_meta(tmp_path, corrupt, match):
    meta = corrupt(_saved(tmp_path))
    text = meta if isinstance(meta, str) else json.dumps(meta)
    (tmp_path / "meta.json").write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        load_memmap(tmp_path)
    assert "meta.json" in str(info.value)


def _set(meta, key, field, value):
    meta["entries"][key][field] = value
    return meta


# ---------------------------------------------------------------------------- property test
_KEYS = st.text(alphabet="ab/.%~ Aé", min_size=0, max_size=4)


@st.composite
def _tensordicts(draw, batch_size=None, depth=0):
    if batch_size is None:
        batch_size = tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
    keys = draw(st.lists(_KEYS, max_size=4, unique=True))
    source = {}
    for key in keys:
        if depth < 2 and draw(st.booleans()):
            extra = tuple(draw(st.lists(st.integers(0, 2), max_size=1)))
            source[key] = draw(_tensordicts(batch_size + extra, depth + 1))
        else:
            shape = batch_size + tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
            dtype = draw(st.sampled_from(DTYPES))
            source[key] = _sample(shape, dtype, draw(st.integers(0, 2**16)))
    return TensorDict(source, batch_size=batch_size)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(td=_tensordicts(), anonymous=st.booleans())
def test_round_trip_property(td, anonymous):
    if anonymous:
        _assert_same(memmap_td(td), td)
        return
    with tempfile.TemporaryDirectory() as tmp:
        mm = memmap_td(td, tmp)
        _assert_same(mm, td)
        assert is_memmap(mm)
        _assert_same(load_memmap(tmp), td)
        like = memmap_like(td, os.path.join(tmp, "like"))
        _assert_same(load_memmap(os.path.join(tmp, "like")), like)
        _assert_same(like, td.apply(torch.zeros_like))
