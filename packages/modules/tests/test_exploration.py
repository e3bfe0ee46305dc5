"""ExplorationType, set_exploration_type (context manager and decorator), exploration_type()."""

from __future__ import annotations

import threading

import pytest

from rlbricks.modules import ExplorationType
from rlbricks.modules import ModuleError
from rlbricks.modules import exploration_type
from rlbricks.modules import set_exploration_type
from rlbricks.modules._exploration import explicit_exploration_type


def test_default_is_random_and_unset():
    assert exploration_type() is ExplorationType.RANDOM
    assert explicit_exploration_type() is None


def test_context_manager_sets_and_restores():
    with set_exploration_type(ExplorationType.MODE) as ctx:
        assert exploration_type() is ExplorationType.MODE
        assert ctx.type is ExplorationType.MODE
    assert exploration_type() is ExplorationType.RANDOM
    assert explicit_exploration_type() is None


def test_nesting_restores_each_previous_value():
    seen = []
    with set_exploration_type("mean"):
        seen.append(exploration_type())
        with set_exploration_type("deterministic"):
            seen.append(exploration_type())
            with set_exploration_type("random"):
                seen.append(exploration_type())
            seen.append(exploration_type())
        seen.append(exploration_type())
    seen.append(exploration_type())
    assert [t.name for t in seen] == [
        "MEAN",
        "DETERMINISTIC",
        "RANDOM",
        "DETERMINISTIC",
        "MEAN",
        "RANDOM",
    ]
    assert explicit_exploration_type() is None


def test_decorator_sets_only_during_the_call():
    @set_exploration_type(ExplorationType.DETERMINISTIC)
    def evaluate():
        return exploration_type()

    assert evaluate() is ExplorationType.DETERMINISTIC
    assert exploration_type() is ExplorationType.RANDOM
    with set_exploration_type("mode"):
        assert evaluate() is ExplorationType.DETERMINISTIC
        assert exploration_type() is ExplorationType.MODE


def test_decorated_function_may_recurse():
    trace = []

    @set_exploration_type("mean")
    def outer(depth):
        trace.append(exploration_type())
        if depth:
            with set_exploration_type("mode"):
                inner(depth - 1)
            trace.append(exploration_type())

    @set_exploration_type("deterministic")
    def inner(depth):
        trace.append(exploration_type())
        outer(depth)

    outer(2)
    assert explicit_exploration_type() is None
    assert [t.name for t in trace] == [
        "MEAN",
        "DETERMINISTIC",
        "MEAN",
        "DETERMINISTIC",
        "MEAN",
        "MEAN",
        "MEAN",
    ]


def test_restored_when_the_block_raises():
    with pytest.raises(RuntimeError), set_exploration_type("mode"):
        raise RuntimeError("boom")
    assert explicit_exploration_type() is None


def test_same_instance_reused_as_context_twice():
    ctx = set_exploration_type("mean")
    with ctx:
        with ctx:
            assert exploration_type() is ExplorationType.MEAN
        assert exploration_type() is ExplorationType.MEAN
    assert explicit_exploration_type() is None


def test_setting_is_process_wide():
    seen = []
    with set_exploration_type("mode"):
        thread = threading.Thread(target=lambda: seen.append(exploration_type()))
        thread.start()
        thread.join()
    assert seen == [ExplorationType.MODE]


@pytest.mark.parametrize("name", ["RANDOM", "Mode", "mean", "deterministic"])
def test_names_are_case_insensitive(name):
    with set_exploration_type(name):
        assert exploration_type().value == name.lower()


@pytest.mark.parametrize("bad", ["greedy", 3, None])
def test_unknown_type_raises(bad):
    with pytest.raises(ModuleError, match="unknown exploration type"):
        set_exploration_type(bad)


def test_repr():
    assert repr(set_exploration_type("mode")) == "set_exploration_type(ExplorationType.MODE)"
