"""The state of a gymnasium env as plain data, for checkpoints that resume exactly.

A gymnasium env keeps its state in Python attributes spread over its wrapper
chain: the unwrapped env's physics (CartPole's ``state``, Pendulum's
``last_u``), its ``np_random`` generator, wrapper counters (``TimeLimit``'s
elapsed steps, ``OrderEnforcing``'s reset flag), the random generators of its
spaces and, for a ``SyncVectorEnv``, its buffers and autoreset flags.

:func:`gym_state` walks every layer and records each attribute as data:

* numbers, strings, booleans, None, numpy arrays and scalars, and
  lists/tuples/dicts/deques of those are copied;
* numpy ``Generator``/``RandomState`` objects are saved as their bit
  generator's state;
* gymnasium spaces are walked like layers (their generator decides
  ``space.sample()``);
* code (functions, classes, modules), enums, the registry's ``EnvSpec``,
  ``MjModel`` and rendering objects (pygame, gymnasium's MuJoCo renderer) are
  constant or do not decide the next step: they are left alone;
* MuJoCo's ``MjData`` is saved as every one of its array fields (positions,
  velocities, activations, warm-start accelerations, contacts, derived
  quantities) and its time, and written back in place;
* anything else is listed under ``"unsaved"``: an env holding such state
  (a Box2D world, a process-backed vector env) cannot be resumed exactly, and :func:`restore_gym_state` warns with
  :class:`~rlbricks.envs.EnvStateWarning` naming those attributes.

:func:`restore_gym_state` writes the values back into an env built the same
way (same wrapper classes, same number of sub-envs); any other env raises.
The result holds only data, so a checkpoint never needs pickle to load it.
"""

from __future__ import annotations

import collections
import enum
import types
import warnings
from typing import Any

import numpy as np

from rlbricks.envs._errors import EnvError
from rlbricks.envs._errors import EnvRuntimeError
from rlbricks.envs._errors import EnvStateWarning

__all__ = ["gym_state", "restore_gym_state"]

_PLAIN = (bool, int, float, str, type(None))
# types whose module marks them as rendering-only or constant model data
_SKIP_MODULES = ("pygame", "gymnasium.envs.mujoco.mujoco_rendering")
_SKIP_NAMES = {"MjModel", "EnvSpec", "Renderer"}


class _Unsaved(EnvError):
    """An attribute value that is not data (caught while saving the state)."""


def _is_constant(value: Any) -> bool:
    """Code, enums, specs, models and renderers: nothing a step changes."""
    if isinstance(value, (types.FunctionType, types.MethodType, types.BuiltinFunctionType)):
        return True
    if isinstance(value, (type, types.ModuleType, enum.Enum, np.dtype)):
        return True
    cls = type(value)
    return cls.__name__ in _SKIP_NAMES or cls.__module__.startswith(_SKIP_MODULES)


def _is_mjdata(value: Any) -> bool:
    cls = type(value)
    return cls.__name__ == "MjData" and cls.__module__.startswith("mujoco")


def _encode(value: Any, spaces: type) -> Any:
    """``value`` as tagged data; raises ``_Unsaved`` for what is not data."""
    if _is_constant(value):  # e.g. an enum in a metadata dict: the current value stays
        return {"kind": "keep"}
    if isinstance(value, np.generic):
        return {"kind": "scalar", "dtype": value.dtype.str, "value": value.item()}
    if isinstance(value, _PLAIN):
        return {"kind": "value", "value": value}
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            return {"kind": "objects", "shape": list(value.shape),
                    "items": [_encode(v, spaces) for v in value.reshape(-1).tolist()]}  # fmt: skip
        return {"kind": "array", "value": np.array(value, copy=True)}
    if isinstance(value, np.random.Generator):
        return {"kind": "generator", "state": value.bit_generator.state}
    if isinstance(value, np.random.RandomState):
        return {"kind": "random_state", "state": value.get_state()}
    if isinstance(value, spaces):
        return {"kind": "space", "attrs": _attrs(value, spaces, skip=())}
    if _is_mjdata(value):  # MuJoCo's simulation state: every array field and the time
        arrays = {
            name: np.array(field, copy=True)
            for name in dir(value)
            if not name.startswith("_") and isinstance(field := getattr(value, name), np.ndarray)
        }
        return {"kind": "mjdata", "arrays": arrays, "time": float(value.time)}
    if isinstance(value, collections.deque):
        return {"kind": "deque", "maxlen": value.maxlen,
                "items": [_encode(v, spaces) for v in value]}  # fmt: skip
    if isinstance(value, (list, tuple)):
        return {"kind": type(value).__name__, "items": [_encode(v, spaces) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"kind": "dict", "items": {k: _encode(v, spaces) for k, v in value.items()}}
    raise _Unsaved(type(value).__qualname__)


def _decode(tree: dict[str, Any], current: Any) -> Any:
    """The value ``_encode`` recorded; spaces are restored into ``current`` in place."""
    kind = tree["kind"]
    if kind == "keep":
        return current
    if kind == "value":
        return tree["value"]
    if kind == "scalar":
        return np.dtype(tree["dtype"]).type(tree["value"])
    if kind == "array":
        return np.array(tree["value"], copy=True)
    if kind == "objects":
        out = np.empty(len(tree["items"]), dtype=object)
        out[:] = [_decode(v, None) for v in tree["items"]]
        return out.reshape(tree["shape"])
    if kind == "generator":
        generator = current if isinstance(current, np.random.Generator) else None
        if generator is None or type(generator.bit_generator).__name__ != tree["state"].get(
            "bit_generator"
        ):
            generator = np.random.Generator(getattr(np.random, tree["state"]["bit_generator"])())
        generator.bit_generator.state = tree["state"]
        return generator
    if kind == "random_state":
        random_state = current if isinstance(current, np.random.RandomState) else None
        random_state = random_state or np.random.RandomState()
        random_state.set_state(tree["state"])
        return random_state
    if kind == "space":
        if current is None:
            raise EnvRuntimeError(
                "the env differs from the saved one: a space is missing; build the env the same "
                "way as the saved run"
            )
        _restore_attrs(current, tree["attrs"], "space")
        return current
    if kind == "mjdata":
        if not _is_mjdata(current):
            raise EnvRuntimeError(
                "the env differs from the saved one: it has no MuJoCo MjData here; build the env "
                "the same way as the saved run"
            )
        for name, array in tree["arrays"].items():
            field = getattr(current, name, None)
            if isinstance(field, np.ndarray) and field.shape == array.shape and field.size:
                field[...] = array  # in place: MuJoCo owns the memory
        current.time = tree["time"]
        return current
    if kind == "deque":
        return collections.deque((_decode(v, None) for v in tree["items"]), tree["maxlen"])
    if kind in ("list", "tuple"):
        previous = list(current) if isinstance(current, (list, tuple)) else []
        previous += [None] * (len(tree["items"]) - len(previous))
        items = [_decode(v, old) for v, old in zip(tree["items"], previous)]
        return items if kind == "list" else tuple(items)
    if kind == "dict":
        known = current if isinstance(current, dict) else {}
        return {k: _decode(v, known.get(k)) for k, v in tree["items"].items()}
    raise EnvRuntimeError(
        f"unknown entry kind {kind!r} in a saved gymnasium env state: it was not saved by "
        "this version of rlbricks-envs (or is corrupted); save the state again"
    )


def _attrs(obj: Any, spaces: type, skip: tuple[str, ...], where: str = "",
           unsaved: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """The data attributes of ``obj`` (``unsaved`` collects the others' names)."""
    out: dict[str, Any] = {}
    for name, value in vars(obj).items():
        if name in skip or _is_constant(value):
            continue
        try:
            out[name] = _encode(value, spaces)
        except _Unsaved as err:
            if unsaved is not None:
                unsaved.append(f"{where}{type(obj).__name__}.{name} ({err})")
    return out


def _restore_attrs(obj: Any, saved: dict[str, Any], where: str) -> None:
    for name, tree in saved.items():
        setattr(obj, name, _decode(tree, getattr(obj, name, None)))


def _layers(env: Any, gym: Any) -> list[Any]:
    """The wrapper chain of a gymnasium env, outermost first."""
    layers = [env]
    while isinstance(layers[-1], gym.Wrapper):
        layers.append(layers[-1].env)
    return layers


def _chain_state(env: Any, gym: Any, where: str, unsaved: list[str]) -> list[Any]:
    return [
        [type(layer).__qualname__,
         _attrs(layer, gym.Space, ("env", "_env"), where, unsaved)]
        for layer in _layers(env, gym)
    ]  # fmt: skip


def _restore_chain(env: Any, saved: list[Any], gym: Any, where: str) -> None:
    layers = _layers(env, gym)
    names = [type(layer).__qualname__ for layer in layers]
    if names != [name for name, _ in saved]:
        raise EnvRuntimeError(
            f"cannot restore {where or 'the env'}: its wrappers are {names}, the saved env's "
            f"were {[name for name, _ in saved]}; build the env the same way as the saved run"
        )
    for layer, (_, attrs) in zip(layers, saved):
        _restore_attrs(layer, attrs, where)


def gym_state(env: Any, gym: Any) -> dict[str, Any]:
    """The state of a gymnasium env or ``SyncVectorEnv`` as plain data (see the module doc).

    Returns:
        ``{"layers": ..., "envs": ..., "unsaved": [...]}``: ``envs`` (the
        sub-envs' chains) only for a vector env; ``unsaved`` names the
        attributes that are not data (empty: the state is complete).
    """
    unsaved: list[str] = []
    if isinstance(env, gym.vector.VectorEnv):
        if not isinstance(env, gym.vector.SyncVectorEnv):
            return {"layers": [], "envs": None,
                    "unsaved": [f"{type(env).__name__}: the sub-envs live in worker processes"]}  # fmt: skip
        skip = ("envs", "env_fns")
        layers = [[type(env).__qualname__, _attrs(env, gym.Space, skip, "", unsaved)]]
        envs = [_chain_state(sub, gym, f"envs[{i}].", unsaved) for i, sub in enumerate(env.envs)]
        return {"layers": layers, "envs": envs, "unsaved": unsaved}
    return {"layers": _chain_state(env, gym, "", unsaved), "envs": None, "unsaved": unsaved}


def restore_gym_state(env: Any, state: dict[str, Any], gym: Any) -> None:
    """Write a :func:`gym_state` back into ``env`` (built the same way).

    Warns with :class:`~rlbricks.envs.EnvStateWarning` when the saved state
    was incomplete (``state["unsaved"]``): the episodes in progress will not
    continue exactly.

    Raises:
        EnvRuntimeError: ``env`` has other wrappers or another number of sub-envs.
    """
    if state["unsaved"]:
        warnings.warn(
            "the env's state was saved without "
            + ", ".join(state["unsaved"])
            + ": a resumed run does not continue its episodes exactly (reset the env, or "
            "use an env whose state is plain data)",
            EnvStateWarning,
            stacklevel=3,
        )
    if state["envs"] is None:
        if state["layers"]:
            _restore_chain(env, state["layers"], gym, "")
        return
    subs = env.envs
    if len(subs) != len(state["envs"]):
        raise EnvRuntimeError(
            f"cannot restore a vector env of {len(subs)} sub-envs from one of "
            f"{len(state['envs'])}; build it with the saved run's num_envs"
        )
    _restore_chain(env, state["layers"], gym, "")
    for i, (sub, saved) in enumerate(zip(subs, state["envs"])):
        _restore_chain(sub, saved, gym, f"envs[{i}]")
