"""Indexing along the batch dims: ``td[idx]`` and ``td[idx] = value`` for every index form,
checked leaf by leaf against the same index applied to each plain tensor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlbricks.tensordict import TensorDict

BS = (4, 3)


def make_td() -> TensorDict:
    g = torch.Generator().manual_seed(0)
    traj = TensorDict({"t": torch.randn(*BS, 2, 5, generator=g)}, batch_size=[*BS, 2])
    return TensorDict(
        {
            "obs": torch.randn(*BS, 6, generator=g),
            "action": torch.randint(0, 9, BS, generator=g),
            "done": torch.randint(0, 2, (*BS, 1), generator=g).bool(),
            "next": {"reward": torch.randn(*BS, 1, generator=g), "deep": {"s": torch.randn(BS)}},
            "traj": traj,  # a nested TensorDict with one extra batch dim
        },
        batch_size=BS,
    )


def _consumed(item) -> int:
    if item is None:
        return 0
    if isinstance(item, (list, np.ndarray)) or isinstance(item, torch.Tensor):
        t = torch.as_tensor(item)
        return t.ndim if t.dtype is torch.bool else 1
    return 1


def expand_ellipsis(idx, nd: int):
    """The naive reference: ``idx`` as a tuple with ``...`` replaced by full slices."""
    items = idx if isinstance(idx, tuple) else (idx,)
    if not any(i is Ellipsis for i in items):
        return items
    used = sum(_consumed(i) for i in items if i is not Ellipsis)
    pos = next(p for p, i in enumerate(items) if i is Ellipsis)
    return items[:pos] + (slice(None),) * (nd - used) + items[pos + 1 :]


def leaves(td: TensorDict) -> dict:
    return dict(td.items(include_nested=True, leaves_only=True))


M4 = torch.tensor([True, False, True, True])
M3 = torch.tensor([False, True, True])
M43 = torch.arange(12).reshape(BS) % 3 == 0

INDICES = {
    "int": 1,
    "int-last": 3,
    "neg-int": -1,
    "neg-int-first": -4,
    "slice": slice(1, 3),
    "slice-all": slice(None),
    "slice-step": slice(None, None, 2),
    "slice-start-step": slice(1, None, 2),
    "slice-neg": slice(-2, None),
    "slice-empty": slice(3, 1),
    "slice-past-end": slice(0, 100),
    "ellipsis": Ellipsis,
    "none": None,
    "empty-tuple": (),
    "mask-1d": M4,
    "mask-2d": M43,
    "mask-all-false": torch.zeros(4, dtype=torch.bool),
    "mask-dim1": (slice(None), M3),
    "tensor": torch.tensor([0, 2, 2]),
    "tensor-neg": torch.tensor([-1, 0]),
    "tensor-2d": torch.tensor([[0, 1], [3, 2]]),
    "tensor-0d": torch.tensor(2),
    "list-int": [0, 2],
    "list-bool": [True, False, False, True],
    "range": range(2),
    "numpy-int": np.array([3, 1]),
    "numpy-bool": np.array([False, True, True, False]),
    "numpy-scalar": np.int64(2),
    "int-int": (1, 2),
    "int-slice": (2, slice(0, 2)),
    "slice-list": (slice(1, 3), [0, 2]),
    "tensor-tensor": (torch.tensor([0, 1]), torch.tensor([1, 2])),
    "tensor-slice-step": (torch.tensor([0, 3]), slice(None, None, 2)),
    "ellipsis-int": (Ellipsis, 0),
    "int-ellipsis": (0, Ellipsis),
    "none-int": (None, 0),
    "int-none": (0, None),
    "ellipsis-none": (Ellipsis, None),
    "none-ellipsis-int": (None, Ellipsis, 1),
    "none-slice-none-int": (None, slice(None), None, 2),
    "mask-int": (M4, 1),
    "int-mask": (1, M3),
    "mask2d-none": (M43, None),
    "list-ellipsis": ([1, 3], Ellipsis),
    "empty-list": [],
}


@pytest.mark.parametrize("idx", list(INDICES.values()), ids=list(INDICES))
def test_getitem_matches_each_leaf(idx):
    td = make_td()
    out = td[idx]
    ref = expand_ellipsis(idx, len(BS))
    expected_bs = torch.zeros(BS)[ref].shape
    assert isinstance(out, TensorDict)
    assert out.batch_size == expected_bs
    assert out["traj"].batch_size == expected_bs + (2,)
    assert out["next", "deep"].batch_size == expected_bs
    assert list(out.keys(True)) == list(td.keys(True))
    for key, leaf in leaves(td).items():
        expected = leaf[ref]
        assert out[key].dtype == leaf.dtype, key
        assert torch.equal(out[key], expected), key


@pytest.mark.parametrize("idx", list(INDICES.values()), ids=list(INDICES))
def test_getitem_on_tensordict_without_leaves(idx):
    td = TensorDict({"n": TensorDict(batch_size=[*BS, 2])}, batch_size=BS)
    ref = expand_ellipsis(idx, len(BS))
    expected_bs = torch.zeros(BS)[ref].shape
    out = td[idx]
    assert out.batch_size == expected_bs
    assert out["n"].batch_size == expected_bs + (2,)


@pytest.mark.parametrize("idx", list(INDICES.values()), ids=list(INDICES))
def test_setitem_scalar_matches_each_leaf(idx):
    td = make_td()
    expected = {k: v.clone() for k, v in leaves(td).items()}
    ref = expand_ellipsis(idx, len(BS))
    td[idx] = 1
    for key, leaf in expected.items():
        leaf[ref] = 1
        assert torch.equal(td[key], leaf), key


@pytest.mark.parametrize("idx", list(INDICES.values()), ids=list(INDICES))
def test_setitem_tensordict_matches_each_leaf(idx):
    td = make_td()
    ref = expand_ellipsis(idx, len(BS))
    value = td[idx].apply(lambda x: (x + 7).to(x.dtype))  # duplicates in idx get equal values
    expected = {k: v.clone() for k, v in leaves(td).items()}
    td[idx] = value
    for key, leaf in expected.items():
        leaf[ref] = value[key]
        assert torch.equal(td[key], leaf), key


@pytest.mark.parametrize("idx", [1, slice(0, 2), M4, (slice(None), 0), [2, 0]])
def test_setitem_dict_value(idx):
    td = make_td()
    sub = td[idx]
    value = {
        "obs": torch.zeros_like(sub["obs"]),
        "next": {"reward": torch.ones_like(sub["next", "reward"])},
    }
    td[idx] = value
    assert torch.equal(td[idx]["obs"], value["obs"])
    assert torch.equal(td[idx]["next", "reward"], value["next"]["reward"])
    assert torch.equal(td[idx]["action"], sub["action"])  # untouched keys keep their values


def test_setitem_broadcast_tensor():
    td = TensorDict({"a": torch.zeros(4, 3), "b": torch.zeros(4, 3, 2)}, BS)
    td[1] = torch.tensor(5.0)
    assert (td["a"][1] == 5).all()
    assert (td["b"][1] == 5).all()
    assert (td["a"][0] == 0).all()


def test_setitem_missing_key_creates_zero_filled_entry():
    td = make_td()
    value = TensorDict(
        {
            "obs": torch.ones(3, 6),
            "new": torch.full((3, 2), 5, dtype=torch.int32),
            "next": {"extra": torch.ones(3, 4)},
            "fresh": TensorDict({"z": torch.ones(3, 7, 2)}, batch_size=[3, 7]),
        },
        batch_size=[3],
    )
    td[2] = value
    assert td["new"].shape == (*BS, 2)
    assert td["new"].dtype == torch.int32
    assert torch.equal(td["new"][2], value["new"])
    assert not td["new"][[0, 1, 3]].any()
    assert td["next", "extra"].shape == (*BS, 4)
    assert torch.equal(td["next", "extra"][2], torch.ones(3, 4))
    assert td["fresh"].batch_size == torch.Size([*BS, 7])
    assert td["fresh", "z"].shape == (*BS, 7, 2)
    assert torch.equal(td["fresh", "z"][2], torch.ones(3, 7, 2))
    assert not td["fresh", "z"][:2].any()


def test_setitem_dict_missing_key_lists_keys():
    td = make_td()
    with pytest.raises(KeyError, match=r"'zz'.*available keys"):
        td[0] = {"zz": torch.zeros(3)}


# --------------------------------------------------------------------------- #
# semantics: shallow copies, views, iteration
# --------------------------------------------------------------------------- #
def test_ellipsis_returns_shallow_copy():
    td = make_td()
    out = td[...]
    assert out is not td
    assert out["obs"] is td["obs"]
    out["extra"] = torch.zeros(BS)
    assert "extra" not in td.keys()
    out["next", "more"] = torch.zeros(BS)
    assert ("next", "more") not in td


def test_basic_index_gives_views():
    td = make_td()
    td[1:3]["obs"].zero_()
    assert not td["obs"][1:3].any()
    td[0]["traj", "t"].fill_(2.0)
    assert (td["traj", "t"][0] == 2).all()


def test_iteration_yields_td_i():
    td = make_td()
    items = list(td)
    assert len(items) == BS[0] == len(td)
    for i, sub in enumerate(items):
        assert sub.batch_size == torch.Size(BS[1:])
        for key, leaf in leaves(td).items():
            assert torch.equal(sub[key], leaf[i])


def test_iteration_over_zero_dim_raises():
    with pytest.raises(TypeError):
        iter(TensorDict({"a": torch.zeros(2)}))


# --------------------------------------------------------------------------- #
# errors
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "idx", [(0, 0, 0), (M43, 0), (Ellipsis, 0, 0, 0), (slice(None), slice(None), 1), (M4, M3, 0)]
)
def test_too_many_indices(idx):
    td = make_td()
    with pytest.raises(IndexError, match="too many indices"):
        td[idx]
    with pytest.raises(IndexError, match="too many indices"):
        td[idx] = 0


def test_too_many_indices_message_names_batch_size():
    with pytest.raises(IndexError, match=r"\(4, 3\)"):
        make_td()[0, 0, 0]


@pytest.mark.parametrize("idx", [4, -5, 100, (0, 3), (0, -4), (5, 0)])
def test_out_of_range_int(idx):
    td = make_td()
    with pytest.raises(IndexError):
        td[idx]
    with pytest.raises(IndexError):
        td[idx] = 0


def test_out_of_range_int_message():
    with pytest.raises(IndexError, match=r"index 4 .*size 4"):
        make_td()[4]


@pytest.mark.parametrize("idx", [4, -5, (0, 3)])
def test_out_of_range_int_without_leaves(idx):
    td = TensorDict(batch_size=BS)
    with pytest.raises(IndexError):
        td[idx]
    with pytest.raises(IndexError):
        td[idx] = 0


def test_two_ellipses():
    with pytest.raises(IndexError, match="ellipsis"):
        make_td()[..., 0, ...]


@pytest.mark.parametrize("idx", [1.5, [0.5, 1.0], object()])
def test_unsupported_index(idx):
    with pytest.raises(IndexError):
        make_td()[idx]


def test_mask_of_wrong_shape():
    with pytest.raises(IndexError):
        make_td()[torch.ones(3, dtype=torch.bool)]


def test_index_zero_dim_td():
    td = TensorDict({"a": torch.zeros(5)})
    with pytest.raises(IndexError, match="empty batch_size"):
        td[0]
    with pytest.raises(IndexError, match="empty batch_size"):
        td[0:1]
    assert td[...]["a"] is td["a"]
    out = td[None]
    assert out.batch_size == torch.Size([1])
    assert out["a"].shape == (1, 5)


def test_negative_step_slice_raises_like_torch():
    with pytest.raises(ValueError):
        make_td()[::-1]
