"""Fail when a brick uses a private name of another brick.

Every package ``P`` of ``packages/*/src/rlbricks/P`` may use its own private
names freely, but only the public names of the other bricks.  The check reads
the sources with :mod:`ast` (nothing is imported) and reports two kinds of
violation in ``P``'s sources:

(a) an import of a private module or name of another brick:
    ``from rlbricks.Q._m import x``, ``from rlbricks.Q import _x``,
    ``import rlbricks.Q._m``;
(b) an attribute access ``obj._name`` (also ``getattr(obj, "_name")`` and
    ``setattr``/``hasattr``/``delattr`` with a literal name) where ``_name`` is
    a private name *defined* in another brick and defined nowhere in ``P``;
    or any private attribute of a name imported from another brick
    (``TensorDict._x`` after ``from rlbricks.tensordict import TensorDict``,
    ``envs._x`` after ``from rlbricks import envs``).

A private name has one leading underscore and is not a dunder.  A brick
defines the names of its functions, classes and methods (at any depth), of
its module- and class-level assignments, of its ``__slots__`` entries, and of
the attributes it assigns on ``self`` or ``cls``.  Private module names are
caught by the import check.

The attribute check goes by name, not by type, for ``obj`` a local value:
``obj._x`` is allowed in ``P`` as soon as ``P`` defines some ``_x`` of its own.
Attributes of names imported from third-party modules (``torch._C``,
``np._x``) are not the bricks' business and are skipped, and so are the
private attributes of ``torch.nn.Module`` that the bricks' modules inherit
(:data:`INHERITED_PRIVATES`): a brick that reuses such a name for its own
attribute does not make it its private.

Usage::

    python tools/check_private_names.py [ROOT]

``ROOT`` is the repository root (default: the parent of this file's folder).
Prints ``path:line: P uses private name _x of rlbricks.Q`` per violation and
exits with status 1 if there is any, 0 otherwise.  Only ``src`` folders are
checked: tests may use their own package's privates.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

NAMESPACE = "rlbricks"
_ATTR_FUNCTIONS = frozenset({"getattr", "setattr", "hasattr", "delattr"})

#: private attributes of ``torch.nn.Module``, inherited by the bricks' modules and
#: transforms (the tests check that torch has each of them)
INHERITED_PRIVATES = frozenset(
    {
        "_apply",
        "_backward_hooks",
        "_buffers",
        "_call_impl",
        "_forward_hooks",
        "_forward_pre_hooks",
        "_get_name",
        "_load_from_state_dict",
        "_load_state_dict_pre_hooks",
        "_modules",
        "_named_members",
        "_non_persistent_buffers_set",
        "_parameters",
        "_save_to_state_dict",
        "_state_dict_hooks",
        "_version",
    }
)


def is_private(name: str) -> bool:
    """True for ``_x`` (one leading underscore, not a dunder, not ``_`` alone)."""
    return name.startswith("_") and not name.startswith("__") and name != "_"


@dataclass(frozen=True)
class Violation:
    """One use of another brick's private name."""

    path: Path
    line: int
    package: str
    name: str
    owner: str

    def format(self, root: Path) -> str:
        try:
            shown = self.path.relative_to(root)
        except ValueError:
            shown = self.path
        return (
            f"{shown}:{self.line}: {self.package} uses private name {self.name} "
            f"of {NAMESPACE}.{self.owner}"
        )


def find_packages(root: Path) -> dict[str, Path]:
    """Every brick's name and source folder: ``packages/*/src/rlbricks/<name>``."""
    found: dict[str, Path] = {}
    for src in sorted((root / "packages").glob(f"*/src/{NAMESPACE}/*")):
        if src.is_dir() and src.name.isidentifier() and any(src.rglob("*.py")):
            found[src.name] = src
    return found


def _sources(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*.py")):
        if "__pycache__" not in path.parts:
            yield path


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _target_names(target: ast.expr) -> Iterator[str]:
    """Names bound by an assignment target at module or class level."""
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, ast.Tuple | ast.List):
        for elt in target.elts:
            yield from _target_names(elt)
    elif isinstance(target, ast.Starred):
        yield from _target_names(target.value)


def _self_attr(target: ast.expr) -> Iterator[str]:
    """Attribute names assigned on ``self``/``cls`` by a target (any depth of tuples)."""
    if isinstance(target, ast.Attribute):
        if isinstance(target.value, ast.Name) and target.value.id in ("self", "cls"):
            yield target.attr
    elif isinstance(target, ast.Tuple | ast.List):
        for elt in target.elts:
            yield from _self_attr(elt)
    elif isinstance(target, ast.Starred):
        yield from _self_attr(target.value)


def _assign_targets(node: ast.stmt) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return list(node.targets)
    if isinstance(node, ast.AnnAssign | ast.AugAssign):
        return [node.target]
    return []


def _slots(node: ast.stmt) -> Iterator[str]:
    """The string entries of a ``__slots__ = (...)`` assignment."""
    targets = _assign_targets(node)
    value = getattr(node, "value", None)
    if not any(isinstance(t, ast.Name) and t.id == "__slots__" for t in targets):
        return
    if isinstance(value, ast.Tuple | ast.List | ast.Set):
        for elt in value.elts:
            if isinstance(elt, ast.Constant) and isinstance(elt.value, str):
                yield elt.value
    elif isinstance(value, ast.Constant) and isinstance(value.value, str):
        yield value.value


def _scope_names(body: list[ast.stmt]) -> Iterator[str]:
    """Names bound by plain assignments in a module or class body (including if/try blocks)."""
    for node in body:
        for target in _assign_targets(node):
            yield from _target_names(target)
        yield from _slots(node)
        if isinstance(node, ast.If | ast.Try | ast.With):
            for block in ("body", "orelse", "finalbody"):
                yield from _scope_names(getattr(node, block, []))
            for handler in getattr(node, "handlers", []):
                yield from _scope_names(handler.body)


def defined_names(tree: ast.Module) -> set[str]:
    """The private names a module defines (see the module docstring)."""
    names = set(_scope_names(tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
            if isinstance(node, ast.ClassDef):
                names.update(_scope_names(node.body))
        for target in _assign_targets(node) if isinstance(node, ast.stmt) else []:
            names.update(_self_attr(target))
    return {n for n in names if is_private(n)}


def package_definitions(src: Path) -> set[str]:
    """Every private name a brick's sources define (see :func:`defined_names`)."""
    names: set[str] = set()
    for path in _sources(src):
        names |= defined_names(_parse(path))
    return names - INHERITED_PRIVATES


def _private_part(module: str, package: str) -> tuple[str, str] | None:
    """``(owner, first private component)`` of ``rlbricks.Q...`` when Q is another brick."""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != NAMESPACE or parts[1] == package:
        return None
    for part in parts[2:]:
        if is_private(part):
            return parts[1], part
    return parts[1], ""


def _import_violations(tree: ast.Module, package: str) -> Iterator[tuple[int, str, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                hit = _private_part(alias.name, package)
                if hit is not None and hit[1]:
                    yield node.lineno, hit[1], hit[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            hit = _private_part(node.module, package)
            if hit is None:
                continue
            owner, private_module = hit
            if private_module:
                yield node.lineno, private_module, owner
                continue
            for alias in node.names:
                if is_private(alias.name):
                    yield node.lineno, alias.name, owner


def imported_names(tree: ast.Module, package: str) -> dict[str, str]:
    """Local name -> the dotted path it was imported as, for every import of a module.

    ``import a.b`` binds ``a``; ``import a.b as c`` binds ``c`` to ``a.b``;
    ``from a import b as c`` binds ``c`` to ``a.b``; a relative import binds to
    ``rlbricks.<package>...``.  Imports inside functions count too.
    """
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname is None:
                    top = alias.name.split(".")[0]
                    names[top] = top
                else:
                    names[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            base = f"{NAMESPACE}.{package}" if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            for alias in node.names:
                if alias.name != "*":
                    names[alias.asname or alias.name] = f"{module}.{alias.name}"
    return names


def _resolve(value: ast.expr, imports: dict[str, str]) -> str | None:
    """The dotted path of ``a.b.c`` when ``a`` is an imported name, else None."""
    chain: list[str] = []
    while isinstance(value, ast.Attribute):
        chain.append(value.attr)
        value = value.value
    if not isinstance(value, ast.Name) or value.id not in imports:
        return None
    return ".".join([imports[value.id], *reversed(chain)])


def _attribute_uses(
    tree: ast.Module, imports: dict[str, str]
) -> Iterator[tuple[int, str, str | None]]:
    """``(line, private name, dotted path of the object or None)`` of every private access."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            yield node.lineno, node.attr, _resolve(node.value, imports)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _ATTR_FUNCTIONS
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and is_private(node.args[1].value)
        ):
            yield node.lineno, node.args[1].value, _resolve(node.args[0], imports)


def _brick_of(dotted: str, packages: dict[str, Path]) -> str | None:
    """The brick ``Q`` of a dotted path ``rlbricks.Q...``, or None outside the bricks."""
    parts = dotted.split(".")
    if parts[0] == NAMESPACE and len(parts) > 1 and parts[1] in packages:
        return parts[1]
    return None


def check(root: Path) -> list[Violation]:
    """Every violation under ``root``, sorted by file and line."""
    packages = find_packages(root)
    definitions = {name: package_definitions(src) for name, src in packages.items()}
    owners: dict[str, list[str]] = {}
    for name in sorted(definitions):
        for private in definitions[name]:
            owners.setdefault(private, []).append(name)
    found: list[Violation] = []
    for package, src in packages.items():
        own = definitions[package]
        for path in _sources(src):
            tree = _parse(path)
            for line, name, owner in _import_violations(tree, package):
                found.append(Violation(path, line, package, name, owner))
            imports = imported_names(tree, package)
            for line, name, origin in _attribute_uses(tree, imports):
                if origin is not None:  # an attribute of an imported module or object
                    owner = _brick_of(origin, packages)
                    if owner is not None and owner != package:
                        found.append(Violation(path, line, package, name, owner))
                    continue  # this package's own objects, or a third-party library's
                if name in own or name not in owners:
                    continue
                found.append(Violation(path, line, package, name, owners[name][0]))
    return sorted(set(found), key=lambda v: (str(v.path), v.line, v.name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "root",
        nargs="?",
        type=Path,
        default=Path(__file__).resolve().parents[1],
        help="repository root holding packages/ (default: this file's repository)",
    )
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if not find_packages(root):
        print(f"no packages/*/src/{NAMESPACE}/* folder under {root}", file=sys.stderr)
        return 2
    violations = check(root)
    for violation in violations:
        print(violation.format(root))
    if violations:
        print(f"{len(violations)} use(s) of another brick's private names", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
