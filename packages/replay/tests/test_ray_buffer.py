"""RayReplayBuffer: a buffer served by a Ray actor, written by remote tasks, read by the driver."""

from __future__ import annotations

import pickle
import sys
import types
from typing import Any

import pytest
import torch

from rlbricks.replay import EmptyBufferError
from rlbricks.replay import LazyTensorStorage
from rlbricks.replay import ListStorage
from rlbricks.replay import RayReplayBuffer
from rlbricks.replay import ReplayBuffer
from rlbricks.replay import ReplayError
from rlbricks.replay import TensorDictPrioritizedReplayBuffer
from rlbricks.replay import TensorDictReplayBuffer
from rlbricks.tensordict import TensorDict


def rows(start: int, n: int) -> TensorDict:
    ids = torch.arange(start, start + n)
    return TensorDict({"id": ids, "obs": ids[:, None].float().expand(n, 3).clone()}, batch_size=[n])


def same_state(a: Any, b: Any) -> bool:
    """Exact equality of nested state dicts holding tensors."""
    if isinstance(a, dict):
        return (
            isinstance(b, dict) and a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
        )
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    return bool(a == b)


# --------------------------------------------------------------------------- #
# without a Ray cluster: the import error and who starts/stops Ray
# --------------------------------------------------------------------------- #
def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # "import ray" raises ImportError
    with pytest.raises(ImportError, match=r'pip install "rlbricks-replay\[ray\]"'):
        RayReplayBuffer()


class _FakeRay(types.ModuleType):
    """Just enough of ``ray`` to follow the init/shutdown decisions, in this process."""

    def __init__(self, initialised: bool) -> None:
        super().__init__("ray")
        self.calls: list[tuple[str, Any]] = []
        self.initialised = initialised
        self.exceptions = types.SimpleNamespace(
            RayError=RuntimeError, RayTaskError=RuntimeError, RayActorError=RuntimeError
        )

    def is_initialized(self) -> bool:
        return self.initialised

    def init(self, **kwargs: Any) -> None:
        self.calls.append(("init", kwargs))
        self.initialised = True

    def shutdown(self) -> None:
        self.calls.append(("shutdown", None))
        self.initialised = False

    def kill(self, actor: Any, no_restart: bool) -> None:
        self.calls.append(("kill", no_restart))

    def get(self, value: Any) -> Any:
        return value

    def remote(self, cls: type) -> Any:
        fake = self

        class Handle:
            def __init__(self, obj: Any) -> None:
                self.obj = obj

            def __getattr__(self, name: str) -> Any:
                method = getattr(self.obj, name)
                return types.SimpleNamespace(remote=method)

        class Options:
            def options(self, **options: Any) -> Any:
                fake.calls.append(("options", options))
                return types.SimpleNamespace(remote=lambda *a: Handle(cls(*a)))

        return Options()


@pytest.mark.parametrize("running", [False, True])
def test_starts_and_stops_ray_only_when_it_started_it(
    monkeypatch: pytest.MonkeyPatch, running: bool
) -> None:
    fake = _FakeRay(initialised=running)
    monkeypatch.setitem(sys.modules, "ray", fake)
    rb = RayReplayBuffer(
        storage=ListStorage(4),
        ray_init_config={"address": "auto"},
        remote_config={"resources": {"buffer": 1}},
    )
    rb.shutdown()
    rb.shutdown()
    options = ("options", {"num_cpus": 0, "resources": {"buffer": 1}})
    if running:
        assert fake.calls == [options, ("kill", True)]
    else:
        assert fake.calls == [
            ("init", {"address": "auto"}),
            options,
            ("kill", True),
            ("shutdown", None),
        ]


# --------------------------------------------------------------------------- #
# on a local Ray instance
# --------------------------------------------------------------------------- #
def test_server_names_a_missing_method() -> None:
    from rlbricks.replay._ray_buffer import _BufferServer

    server = _BufferServer(ReplayBuffer, (), {"storage": ListStorage(4)})
    assert server.call("add", ("row",), {}) == 0
    assert server.length() == 1
    assert server.describe() == ("ReplayBuffer", None)
    with pytest.raises(AttributeError, match="ReplayBuffer has no method 'update_tensordict"):
        server.call("update_tensordict_priority", (None,), {})


@pytest.fixture(scope="module")
def ray_session() -> Any:
    ray = pytest.importorskip("ray")
    # the remote function below is shipped by value: Ray workers cannot import this test file
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def served(ray_session: Any) -> Any:
    """One served TensorDictReplayBuffer for the module (an actor takes seconds to start)."""
    buffer = RayReplayBuffer(
        replay_buffer_cls=TensorDictReplayBuffer, storage=LazyTensorStorage(64), batch_size=5
    )
    yield buffer
    buffer.shutdown()
    assert ray_session.is_initialized()  # the buffer did not start Ray, so it leaves it running


@pytest.fixture
def remote(served: RayReplayBuffer) -> RayReplayBuffer:
    served.empty()
    return served


def test_matches_a_local_buffer(remote: RayReplayBuffer) -> None:
    """The served buffer holds exactly what a local buffer holds after the same writes."""
    local = TensorDictReplayBuffer(storage=LazyTensorStorage(64), batch_size=5)
    for buffer in (local, remote):
        assert buffer.extend(rows(0, 8)).tolist() == list(range(8))
        assert buffer.add(rows(100, 1)[0]) == 8
        assert buffer.extend(rows(8, 15)).tolist() == list(range(9, 24))
    assert len(remote) == len(local) == 24
    assert remote.batch_size == 5
    assert same_state(remote.state_dict(), local.state_dict())
    batch, info = remote.sample(return_info=True)
    assert batch.batch_size == (5,)
    assert torch.equal(batch["index"], info["index"])
    assert torch.equal(batch["id"], local.storage.get(info["index"])["id"])
    assert torch.equal(batch["obs"], batch["id"][:, None].float().expand(5, 3))
    assert repr(remote) == "RayReplayBuffer(TensorDictReplayBuffer)"
    remote.empty()
    assert len(remote) == 0


def test_remote_errors_keep_their_type(remote: RayReplayBuffer) -> None:
    with pytest.raises(EmptyBufferError, match="empty buffer"):
        remote.sample()
    remote.extend(rows(0, 4))
    sample = remote.sample()
    sample["td_error"] = torch.ones(5)
    with pytest.raises(TypeError, match="RandomSampler has no priorities"):
        remote.update_tensordict_priority(sample)
    assert len(remote) == 4  # the actor survives its callers' errors


def test_a_failed_build_names_the_remote_error(ray_session: Any) -> None:
    with pytest.raises(
        ReplayError, match=r"(?s)building ReplayBuffer .*batch_size must be a positive int, got -1"
    ):
        RayReplayBuffer(batch_size=-1)


def test_checkpoints_round_trip(remote: RayReplayBuffer, tmp_path: Any) -> None:
    source = TensorDictReplayBuffer(storage=LazyTensorStorage(64), batch_size=5)
    source.extend(rows(0, 6))
    remote.load_state_dict(source.state_dict())
    assert len(remote) == 6
    remote.add(rows(50, 1)[0])
    remote.dumps(tmp_path / "rb")
    restored = TensorDictReplayBuffer(storage=LazyTensorStorage(64), batch_size=5)
    restored.loads(tmp_path / "rb")
    assert restored.storage.get(torch.arange(7))["id"].tolist() == [0, 1, 2, 3, 4, 5, 50]
    remote.empty()
    remote.loads(tmp_path / "rb")
    assert len(remote) == 7
    assert same_state(remote.state_dict(), restored.state_dict())


def _write(buffer: RayReplayBuffer, start: int, n: int) -> int:
    """Runs in a Ray task: extend the (pickled) buffer handle with rows ``start..start+n``."""
    for offset in range(0, n, 5):
        buffer.extend(rows(start + offset, 5))
    return len(buffer)


def test_remote_writers_and_a_driver_reader(ray_session: Any, remote: RayReplayBuffer) -> None:
    """Two Ray tasks extend the buffer through their copy of the handle; the driver samples."""
    writer = ray_session.remote(num_cpus=0.5)(_write)
    done = ray_session.get([writer.remote(remote, 0, 20), writer.remote(remote, 1000, 20)])
    assert max(done) == 40
    assert len(remote) == 40
    stored = remote.state_dict()["storage"]["data"]["tensordict"]["id"][:40]
    assert sorted(stored.tolist()) == [*range(20), *range(1000, 1020)]
    batch = remote.sample()
    assert batch.batch_size == (5,)
    assert torch.equal(batch["obs"], batch["id"][:, None].float().expand(5, 3))
    assert bool(((batch["id"] < 20) | ((batch["id"] >= 1000) & (batch["id"] < 1020))).all())
    copy = pickle.loads(pickle.dumps(remote))
    assert repr(copy) == repr(remote)
    copy.shutdown()  # a copy only stops using the actor
    assert len(remote) == 40
    with pytest.raises(ReplayError, match="shut down"):
        copy.sample()


def test_priorities_are_updated_in_the_actor(ray_session: Any) -> None:
    remote = RayReplayBuffer(
        replay_buffer_cls=TensorDictPrioritizedReplayBuffer,
        alpha=1.0,
        beta=1.0,
        storage=LazyTensorStorage(8),
        batch_size=16,
    )
    try:
        remote.extend(rows(0, 8))
        remote.update_priority(torch.arange(8), torch.tensor([0, 0, 0, 0, 0, 1.0, 0, 0]))
        sample = remote.sample()
        assert sample["id"].tolist() == [5] * 16
        # naive reference: w_i = (N P_i)^-beta / max_j (N P_j)^-beta, P = p / sum(p), p += eps
        prio = torch.tensor([0, 0, 0, 0, 0, 1.0, 0, 0], dtype=torch.float64) + 1e-8
        weight = (8 * prio / prio.sum()) ** -1.0
        expected = (weight[5] / weight.max()).expand(16)
        assert torch.allclose(sample["_weight"].double(), expected, rtol=1e-4, atol=0)

        remote.update_priority(torch.arange(8), torch.zeros(8))  # uniform (eps) again
        sample = remote.sample()
        sample["td_error"] = (sample["id"] == sample["id"][0]).double()
        remote.update_tensordict_priority(sample)
        assert remote.sample()["id"].tolist() == [int(sample["id"][0])] * 16
    finally:
        remote.shutdown()
    with pytest.raises(ReplayError, match="shut down"):
        len(remote)
    assert "shut down" in repr(remote)
