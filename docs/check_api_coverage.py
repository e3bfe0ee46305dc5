"""Check that the API reference covers every public name of every package.

Run from the repository root by ``nox -s docs`` before ``mkdocs build --strict``,
in a venv where the packages are installed::

    python docs/check_api_coverage.py

It fails (exit status 1, one line per problem) when:

- a package folder ``packages/<name>/`` (other than the meta-package) has no
  ``docs/api/<name>.md`` page;
- an API page does not render its package with ``::: rlbricks.<name>``, or its
  ``members:`` option leaves out a name of ``__all__``;
- ``rlbricks.<name>`` cannot be imported or has no ``__all__``;
- a name of ``__all__`` is missing or has no docstring (the site hides
  undocumented objects, so it would silently vanish from the reference);
- a public method or property of an exported class has no docstring;
- an ``Args:`` entry names a parameter that the runtime signature lacks.

Docstrings are read with Griffe and the docs' own Griffe extension
(``docs/griffe_docstrings.py``), exactly as mkdocstrings reads them, so the
check sees what the site shows; signatures are read from the imported objects.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import griffe
import yaml
from griffe_docstrings import DocstringDialect

ROOT = Path(__file__).resolve().parent.parent
PACKAGES_DIR = ROOT / "packages"
API_DIR = ROOT / "docs" / "api"
META = "rlbricks"

_DIRECTIVE = re.compile(r"^:::\s*(?P<ident>\S+)\s*$")
_ARGS_HEADER = re.compile(
    r"^(?P<indent>\s*)(Args|Arguments|Params|Parameters|Keyword Args|Keyword Arguments"
    r"|Other Parameters|Other Params):\s*$"
)
_ARG_ITEM = re.compile(r"^(?P<name>\*{0,2}[A-Za-z_]\w*)\s*(\([^)]*\))?\s*:")


def package_folders() -> list[str]:
    """Leaf packages: folders of packages/ holding a pyproject.toml and a src/ tree."""
    return sorted(
        p.name
        for p in PACKAGES_DIR.iterdir()
        if (p / "pyproject.toml").is_file() and (p / "src").is_dir() and p.name != META
    )


def api_pages() -> dict[str, Path]:
    """The API reference pages, by package name (docs/api/<name>.md)."""
    return {p.stem: p for p in sorted(API_DIR.glob("*.md"))}


def page_directives(page: Path) -> dict[str, dict[str, Any]]:
    """The ``::: identifier`` blocks of a page, mapped to their YAML options."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: dict[str, dict[str, Any]] = {}
    for i, line in enumerate(lines):
        match = _DIRECTIVE.match(line)
        if not match:
            continue
        block: list[str] = []
        for following in lines[i + 1 :]:
            if following.strip() and not following.startswith((" ", "\t")):
                break
            block.append(following)
        config = yaml.safe_load("\n".join(block)) if any(s.strip() for s in block) else None
        found[match["ident"]] = config if isinstance(config, dict) else {}
    return found


def documented_args(doc: str) -> Iterator[str]:
    """Parameter names listed in the Args-like sections of a Google docstring."""
    lines = inspect.cleandoc(doc).splitlines()
    i = 0
    while i < len(lines):
        header = _ARGS_HEADER.match(lines[i])
        i += 1
        if not header:
            continue
        base = len(header["indent"])
        item_indent: int | None = None
        while i < len(lines):
            line = lines[i]
            if line.strip():
                indent = len(line) - len(line.lstrip())
                if indent <= base:
                    break
                if item_indent is None:
                    item_indent = indent
                if indent == item_indent:
                    item = _ARG_ITEM.match(line.strip())
                    if item:
                        yield item["name"].lstrip("*")
            i += 1


def check_args(label: str, obj: Callable[..., Any], doc: str | None) -> list[str]:
    """Documented parameters that the runtime signature of ``obj`` does not have."""
    if not doc:
        return []
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return []  # builtins and C slots without a signature: nothing to compare
    params = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return []  # documented names may be forwarded keyword arguments
    return [
        f"{label}: docstring documents parameter {name!r}, which is not in the signature "
        f"{label.rsplit('.', 1)[-1]}{signature}"
        for name in documented_args(doc)
        if name not in params
    ]


def has_docstring(obj: griffe.Object | griffe.Alias) -> bool:
    """Whether Griffe (hence the rendered site) sees a non-empty docstring."""
    return obj.docstring is not None and bool(obj.docstring.value.strip())


def check_class(path: str, cls: type, node: griffe.Object | griffe.Alias) -> list[str]:
    """Docstrings and parameter names of a class and of its own public members."""
    problems = check_args(path, cls, "\n".join(filter(None, [cls.__doc__, _init_doc(cls)])))
    target = node.final_target if isinstance(node, griffe.Alias) else node
    for name, member in target.members.items():
        if name.startswith("_"):
            continue
        try:
            is_property = member.has_labels("property")
            is_function = member.is_function
            documented = has_docstring(member)
        except (griffe.AliasResolutionError, griffe.CyclicAliasError):
            continue  # an alias to something outside the loaded packages
        if not (is_function or is_property):
            continue  # plain attributes are documented in the class's Attributes section
        if not documented:
            kind = "property" if is_property else "method"
            problems.append(f"{path}.{name}: public {kind} has no docstring")
            continue
        runtime = inspect.getattr_static(cls, name, None)
        if isinstance(runtime, (staticmethod, classmethod)):
            runtime = getattr(cls, name)
        if inspect.isfunction(runtime) or inspect.ismethod(runtime):
            doc = member.docstring.value if member.docstring else None
            problems += check_args(f"{path}.{name}", runtime, doc)
    return problems


def _init_doc(cls: type) -> str | None:
    init = cls.__dict__.get("__init__")
    return getattr(init, "__doc__", None) if init is not None else None


def check_package(name: str, page: Path) -> list[str]:
    """Every problem of one package's API page and public names."""
    module_name = f"rlbricks.{name}"
    rel_page = page.relative_to(ROOT)
    problems: list[str] = []

    directives = page_directives(page)
    if module_name not in directives:
        problems.append(f"{rel_page}: does not render the package; add a line '::: {module_name}'")

    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        return [
            *problems,
            f"{module_name}: cannot be imported ({err}); install it first: "
            f"pip install ./packages/{name}",
        ]
    exported = getattr(module, "__all__", None)
    if not isinstance(exported, (list, tuple)) or not exported:
        return [*problems, f"{module_name}: defines no __all__; list its public names there"]
    public = [n for n in exported if not n.startswith("_")]

    members = directives.get(module_name, {}).get("options", {}).get("members")
    if members is False:
        problems.append(f"{rel_page}: 'members: false' hides every name of {module_name}")
    elif isinstance(members, list):
        left_out = [n for n in public if n not in members]
        if left_out:
            problems.append(f"{rel_page}: 'members:' leaves out {', '.join(left_out)}")

    search_paths = [str(p) for p in sorted(PACKAGES_DIR.glob("*/src"))] + sys.path
    tree = griffe.load(
        module_name,
        search_paths=search_paths,
        docstring_parser="google",
        extensions=griffe.load_extensions(DocstringDialect()),
        resolve_aliases=True,
        resolve_external=True,
    )
    for exported_name in public:
        path = f"{module_name}.{exported_name}"
        if not hasattr(module, exported_name):
            problems.append(f"{path}: listed in __all__ but not defined by the module")
            continue
        obj = getattr(module, exported_name)
        try:
            node = tree[exported_name]
            documented = has_docstring(node)
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            node, documented = None, bool(inspect.getdoc(obj))
        if not documented:
            problems.append(f"{path}: has no docstring, so the API page would not show it")
            continue
        if inspect.isclass(obj) and node is not None:
            problems += check_class(path, obj, node)
        elif callable(obj):
            problems += check_args(path, obj, inspect.getdoc(obj))
    return problems


def main() -> int:
    """Run every check and print the problems; return the exit status."""
    pages = api_pages()
    problems = [
        f"packages/{name}/: has no API page; create docs/api/{name}.md holding '::: rlbricks.{name}'"
        " and add it to the nav of mkdocs.yml"
        for name in package_folders()
        if name not in pages
    ]
    checked = 0
    for name, page in pages.items():
        problems += check_package(name, page)
        checked += 1
    if problems:
        print(f"API coverage check failed, {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"API coverage ok: {checked} package(s), every public name documented.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
