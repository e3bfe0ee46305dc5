"""``tools/check_private_names.py``: no brick uses another brick's private names.

The checker runs on the real tree (no violation allowed, no package skipped)
and on small synthetic trees, where every kind of violation must be reported
and a package's use of its own private names must not be.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]
CHECKER = ROOT / "tools" / "check_private_names.py"


def _run(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECKER), str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _load_checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_private_names", CHECKER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def _write(root: Path, package: str, files: dict[str, str]) -> None:
    src = root / "packages" / package / "src" / "rlbricks" / package
    for name, text in files.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_tree_uses_only_public_names_of_other_bricks() -> None:
    result = _run(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_the_checker_sees_every_brick() -> None:
    checker = _load_checker()
    found = set(checker.find_packages(ROOT))
    folders = {p.parent.parent.parent.name for p in ROOT.glob("packages/*/src/rlbricks/*")}
    assert found == folders
    assert {"tensordict", "envs", "collectors", "trainers"} <= found


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Brick ``b`` defines private names; brick ``a`` uses some of them, and its own."""
    _write(
        tmp_path,
        "b",
        {
            "__init__.py": "from rlbricks.b._impl import Thing\n__all__ = ['Thing']\n",
            "_impl.py": """
                _LIMIT = 3


                def _helper():
                    return 1


                class _Hidden:
                    pass


                class Thing:
                    __slots__ = ("_slot",)
                    _flag = True

                    def __init__(self):
                        self._state = 0

                    def _compute(self):
                        return self._state
                """,
            "tools.py": "def _tool():\n    return 2\n",
        },
    )
    _write(
        tmp_path,
        "a",
        {
            "__init__.py": "",
            "_use.py": """
                import numpy as np
                import rlbricks.b._impl
                from rlbricks.b import Thing
                from rlbricks.b._impl import Thing as Same
                from rlbricks.b.tools import _tool
                from rlbricks import b


                class Own:
                    def __init__(self):
                        self._mine = 1
                        self._state = 2  # a's own _state: thing._state below is allowed


                def run(thing, own, module):
                    thing._compute()
                    getattr(thing, "_slot")
                    hasattr(thing, "_flag")
                    own._mine
                    thing._state
                    Thing._anything
                    b._LIMIT
                    np._unrelated
                    module._buffers
                    module._helper_of_nobody
                    return _tool, Same
                """,
        },
    )
    return tmp_path


def test_each_violation_kind_is_reported(tree: Path) -> None:
    result = _run(tree)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    path = Path("packages/a/src/rlbricks/a/_use.py")
    source = (tree / path).read_text().splitlines()

    def at(code: str, name: str) -> str:
        line = next(i for i, text in enumerate(source, 1) if text.strip() == code)
        return f"{path}:{line}: a uses private name {name} of rlbricks.b"

    expected = [
        at("import rlbricks.b._impl", "_impl"),
        at("from rlbricks.b._impl import Thing as Same", "_impl"),
        at("from rlbricks.b.tools import _tool", "_tool"),
        at("thing._compute()", "_compute"),  # a method defined in b
        at('getattr(thing, "_slot")', "_slot"),  # a literal name; a __slots__ entry of b
        at('hasattr(thing, "_flag")', "_flag"),  # a class-level assignment of b
        at("Thing._anything", "_anything"),  # any private attribute of a name imported from b
        at("b._LIMIT", "_LIMIT"),  # a private attribute of the module b
    ]
    assert lines == expected, result.stdout
    assert "8 use(s)" in result.stderr


def test_same_package_and_third_party_uses_are_not_flagged(tree: Path) -> None:
    out = _run(tree).stdout
    assert "rlbricks.a" not in out  # a's privates, used in a
    for allowed in ("_mine", "_state", "_unrelated", "_buffers", "_helper_of_nobody"):
        assert f" {allowed} " not in out
    # b uses its own privates freely
    assert "b/_impl.py" not in out
    assert "b/__init__.py" not in out


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    _write(tmp_path, "b", {"_impl.py": "def _helper():\n    return 1\n"})
    _write(
        tmp_path, "a", {"_use.py": "from rlbricks.b import helper\n\n\ndef _helper():\n    pass\n"}
    )
    result = _run(tmp_path)
    assert result.returncode == 0, result.stdout
    assert result.stdout == ""


def test_a_tree_without_packages_is_an_error(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert result.returncode == 2
    assert "no packages/" in result.stderr


def test_inherited_privates_are_torch_module_attributes() -> None:
    torch = pytest.importorskip("torch")
    module = torch.nn.Module()
    missing = sorted(n for n in _load_checker().INHERITED_PRIVATES if not hasattr(module, n))
    assert missing == []
