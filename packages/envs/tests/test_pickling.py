"""CloudpickleWrapper: lambdas and closures travel, shared tensors stay shared, clear refusals."""

from __future__ import annotations

import functools
import pickle
import threading
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import pytest
import torch

from rlbricks.envs import CloudpickleWrapper
from rlbricks.envs import EnvError
from rlbricks.envs import EnvTypeError
from rlbricks.envs.testing import CountingEnv


def roundtrip(obj: object, pickler: type[pickle.Pickler] = pickle.Pickler) -> object:
    """What a worker receives: ``obj`` wrapped, pickled by ``pickler`` and loaded."""
    data = ForkingPickler.dumps(obj) if pickler is ForkingPickler else pickle.dumps(obj)
    return pickle.loads(data)


def test_lambda_closure_and_local_function_arrive_as_themselves() -> None:
    steps = 4

    def closure() -> CountingEnv:
        return CountingEnv(max_steps=steps)

    class LocalEnv(CountingEnv):
        pass

    for fn, expected in [
        (lambda: CountingEnv(max_steps=2), 2),
        (closure, 4),
        (LocalEnv, 5),
        (functools.partial(lambda n: CountingEnv(max_steps=n), 3), 3),
    ]:
        with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
            pickle.dumps(fn)  # what multiprocessing's pickler would say
        got = roundtrip(CloudpickleWrapper(fn))
        assert not isinstance(got, CloudpickleWrapper)
        env = got()  # type: ignore[operator]
        assert isinstance(env, CountingEnv)
        assert env.max_steps == expected


def test_importable_objects_go_by_reference_and_data_by_value() -> None:
    assert roundtrip(CloudpickleWrapper(CountingEnv)) is CountingEnv
    kwargs = {"max_steps": 3, "batch_size": [2]}
    assert roundtrip(CloudpickleWrapper(kwargs)) == kwargs
    assert roundtrip(CloudpickleWrapper(None)) is None


def test_shared_tensors_stay_shared() -> None:
    """The reducers torch registers with multiprocessing are kept (a policy's shared weights)."""
    weights = torch.zeros(3).share_memory_()
    layer = torch.nn.Linear(2, 1).share_memory()
    got = roundtrip(CloudpickleWrapper((lambda: weights, layer)), ForkingPickler)
    fn, got_layer = got  # type: ignore[misc]
    fn()[0] = 5.0
    assert weights.tolist() == [5.0, 0.0, 0.0]
    with torch.no_grad():
        got_layer.bias.fill_(2.0)
    assert layer.bias.item() == 2.0
    assert isinstance(got_layer.weight, torch.nn.Parameter)


def test_the_wrapper_calls_its_object_here() -> None:
    wrapper = CloudpickleWrapper(lambda n: CountingEnv(max_steps=n))
    assert wrapper(6).max_steps == 6
    assert repr(CloudpickleWrapper(CountingEnv)).startswith("CloudpickleWrapper(<class ")


def test_a_lock_is_refused_with_the_name_and_the_fix() -> None:
    lock = threading.Lock()

    def make_env() -> CountingEnv:
        with lock:
            return CountingEnv()

    with pytest.raises(EnvTypeError) as info:
        pickle.dumps(CloudpickleWrapper(make_env, "the env factory"))
    message = str(info.value)
    assert message.startswith("the env factory (")
    assert (
        "test_a_lock_is_refused_with_the_name_and_the_fix.<locals>.make_env) cannot be sent"
        in message
    )
    assert "TypeError: cannot pickle '_thread.lock' object" in message
    assert "create such objects inside the factory" in message
    assert "mp_start_method='fork'" in message
    assert isinstance(info.value, EnvError)
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value.__cause__, TypeError)


def test_a_file_open_for_writing_is_refused(tmp_path: Path) -> None:
    with (tmp_path / "log.txt").open("w") as log:
        with pytest.raises(EnvTypeError, match=r"a logger \(.*<lambda>\) cannot be sent"):
            pickle.dumps(CloudpickleWrapper(lambda: log.write("x"), "a logger"))


def test_a_nested_refusal_is_reported_once() -> None:
    inner = CloudpickleWrapper(threading.Lock(), "the inner lock")
    with pytest.raises(EnvTypeError) as info:
        pickle.dumps(CloudpickleWrapper([inner], "the outer list"))
    assert str(info.value).startswith("the inner lock (")
    assert "outer" not in str(info.value)


def test_the_wrapper_is_public() -> None:
    import rlbricks.envs as envs

    assert "CloudpickleWrapper" in envs.__all__
