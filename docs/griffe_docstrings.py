"""Griffe extension of the docs build: show the public API as users see it.

mkdocstrings loads it (``extensions:`` in ``mkdocs.yml``) and so does
``docs/check_api_coverage.py``. It changes only what the site renders, never
the source files:

- **Docstring dialects.** An ``Example:`` section header becomes
  ``Examples:``. Griffe's Google parser knows only the plural form and would
  render the singular one as a plain admonition, with the ``>>>`` lines read
  as Markdown block quotes. Sphinx roles such as ``:meth:`from_tensor``` or
  ``:class:`torch.Tensor``` become inline code instead of showing the role
  markup.
- **Private base classes.** A public class may take methods from private
  mixins, e.g. ``TensorDict(StructureMixin, ValueOpsMixin, ShapeMixin)`` with
  the mixins defined in private modules. Those methods are part of the public
  class, so their members are added to it. Members of public bases (such as
  ``TensorSpec`` for the spec classes) stay on the base's own entry.
- **Inherited docstrings.** A method that overrides a documented method of a
  base class without a docstring of its own (``ListStorage.get`` implementing
  ``Storage.get``) shows the base's docstring, as ``inspect.getdoc`` and
  ``help()`` do.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from typing import Any

import griffe

_EXAMPLE_HEADER = re.compile(r"^(?P<indent>[ \t]*)Example:(?P<title>[ \t].*)?$", re.MULTILINE)
_SPHINX_ROLE = re.compile(
    r":(?:py:)?(?:meth|func|class|attr|mod|obj|data|exc|const|term|ref):`~?(?P<target>[^`]+)`"
)


def normalize(text: str) -> str:
    """Return ``text`` with ``Example:`` headers pluralised and Sphinx roles as code."""
    text = _EXAMPLE_HEADER.sub(lambda m: f"{m['indent']}Examples:{m['title'] or ''}", text)
    return _SPHINX_ROLE.sub(lambda m: f"`{m['target']}`", text)


def _is_private_path(path: str) -> bool:
    return any(part.startswith("_") for part in path.split("."))


def _walk(obj: griffe.Module | griffe.Class) -> Iterator[griffe.Module | griffe.Class]:
    """``obj`` and every module and class defined under it (aliases skipped)."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias and isinstance(member, (griffe.Module, griffe.Class)):
            yield from _walk(member)


def _exported_paths(objects: list[griffe.Module | griffe.Class]) -> set[str]:
    """Canonical paths of every name listed in ``__all__`` by a public module."""
    exported: set[str] = set()
    for obj in objects:
        if not isinstance(obj, griffe.Module) or _is_private_path(obj.path) or not obj.exports:
            continue
        for name in obj.exports:
            member = obj.members.get(str(name))
            if member is not None:
                exported.add(
                    member.target_path if isinstance(member, griffe.Alias) else member.path
                )
    return exported


def _private_bases(cls: griffe.Class, exported: set[str]) -> Iterator[griffe.Class]:
    """Bases of ``cls`` that users cannot reach, followed through private bases only."""
    for base in cls.resolved_bases:
        if (
            isinstance(base, griffe.Class)
            and _is_private_path(base.path)
            and base.path not in exported
        ):
            yield base
            yield from _private_bases(base, exported)


def _all_bases(cls: griffe.Class) -> Iterator[griffe.Class]:
    """Every resolvable base of ``cls``, nearest first."""
    for base in cls.resolved_bases:
        if isinstance(base, griffe.Class):
            yield base
            yield from _all_bases(base)


def _inherit_docstrings(cls: griffe.Class) -> None:
    """Give undocumented overrides the docstring of the method they override."""
    for name, member in cls.members.items():
        if member.is_alias or member.docstring is not None:
            continue
        for base in _all_bases(cls):
            parent = base.members.get(name)
            if parent is not None and parent.docstring is not None:
                member.docstring = griffe.Docstring(
                    parent.docstring.value, parent=member, parser=parent.docstring.parser
                )
                break


class DocstringDialect(griffe.Extension):
    """Normalise docstrings and fold private mixins into the public classes that use them."""

    def on_instance(
        self,
        *,
        node: ast.AST | griffe.ObjectNode,
        obj: griffe.Object,
        agent: griffe.Visitor | griffe.Inspector,
        **kwargs: Any,
    ) -> None:
        """Rewrite ``obj``'s docstring in place, before anything parses it."""
        if obj.docstring is not None:
            obj.docstring.value = normalize(obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Give each public class the members of its private bases, once the package is loaded."""
        objects = list(_walk(pkg))
        exported = _exported_paths(objects)
        for cls in objects:
            if not isinstance(cls, griffe.Class):
                continue
            if _is_private_path(cls.path) and cls.path not in exported:
                continue  # a private class: its own docs are never rendered
            _inherit_docstrings(cls)
            for base in _private_bases(cls, exported):
                for name, member in base.members.items():
                    if name not in cls.members:
                        cls.set_member(name, griffe.Alias(name, member, parent=cls))
