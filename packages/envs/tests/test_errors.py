"""The exception family of rlbricks.envs: one root, and subclasses that are also a built-in."""

from __future__ import annotations

import warnings

import pytest
import torch

import rlbricks.envs as envs
from rlbricks.envs import ActionError
from rlbricks.envs import EnvError
from rlbricks.envs import EnvImportError
from rlbricks.envs import EnvKeyError
from rlbricks.envs import EnvRuntimeError
from rlbricks.envs import EnvTimeoutError
from rlbricks.envs import EnvTypeError
from rlbricks.envs import EnvValueError
from rlbricks.envs import SerialEnv
from rlbricks.envs import rollout
from rlbricks.envs import space_to_spec
from rlbricks.envs.testing import CountingEnv
from rlbricks.envs.testing import CrashingEnv

# EnvStateWarning is a warning (issued, not raised), outside the exception family.
EXCEPTIONS = [
    obj
    for obj in (getattr(envs, name) for name in envs.__all__)
    if isinstance(obj, type) and issubclass(obj, BaseException) and not issubclass(obj, Warning)
]


def test_the_root_is_a_plain_exception():
    assert EnvError.__bases__ == (Exception,)
    assert not issubclass(EnvError, (ValueError, RuntimeError))


def test_the_state_warning_stays_a_warning():
    assert issubclass(envs.EnvStateWarning, UserWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(envs.EnvStateWarning):
            warnings.warn("x", envs.EnvStateWarning, stacklevel=1)


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda cls: cls.__name__)
def test_every_exported_exception_derives_from_the_root(cls):
    assert issubclass(cls, EnvError)


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (EnvRuntimeError, RuntimeError),
        (EnvValueError, ValueError),
        (ActionError, ValueError),
        (EnvKeyError, KeyError),
        (EnvTypeError, TypeError),
        (EnvTimeoutError, TimeoutError),
        (EnvImportError, ImportError),
    ],
)
def test_each_subclass_is_also_the_builtin_callers_catch(cls, builtin):
    assert cls in EXCEPTIONS
    assert issubclass(cls, builtin)


def test_what_the_envs_raise_belongs_to_the_family():
    env = CountingEnv()
    with pytest.raises(ActionError, match="not in the env's action spec"):
        env.step(env.reset().set("action", torch.tensor([7])))
    with pytest.raises(EnvValueError, match="max_steps must be positive, got 0"):
        rollout(env, max_steps=0)
    with pytest.raises(EnvTypeError, match="unsupported gymnasium space"):
        space_to_spec(object())
    with pytest.raises(EnvRuntimeError, match="planned crash"):
        rollout(CrashingEnv(crash_after=1), max_steps=3)
    env.close()
    with pytest.raises(EnvRuntimeError, match="is closed: create a new env"):
        env.reset()
    serial = SerialEnv(2, CountingEnv)
    with pytest.raises(EnvKeyError, match="needs 'action'"):
        serial.step(serial.reset())
    serial.close()
