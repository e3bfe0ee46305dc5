"""Run every Python code block of the documentation, so that the pages cannot rot.

Run from the repository root by ``nox -s docs``, in a venv where the packages
and their extras are installed::

    python docs/run_code_blocks.py                      # every page of docs/
    python docs/run_code_blocks.py docs/tutorials/*.md  # some pages
    python docs/run_code_blocks.py --list               # the blocks and their markers

Each page runs in its own fresh interpreter, in an empty temporary working
folder: its ```` ```python ```` blocks run in page order in one namespace, so a
block can use the names defined by the blocks above it. Blocks indented under
a list item, an admonition or a tab run too. A failing block stops its page and
is reported with the page, the block's first line and the traceback, whose
line numbers are the page's own. The exit status is 1 when any block fails.

Three HTML comments, alone on the line right above a block's opening fence,
change how it runs (they do not show on the site):

``<!-- raises: Name -->``
    The block must raise an exception whose class, or one of its base
    classes, is called ``Name``. The raising statement should be the block's
    last one. Use it for the pages that show an error message.
``<!-- no-run: reason -->``
    The block is not run; the reason is printed. Only for code that cannot
    run on a CPU machine in seconds (e.g. it needs a Ray cluster), or that is
    a fragment on purpose (the body of a function shown alone).
``<!-- run-in: name -->``
    The page's blocks run in namespaces called ``name`` instead of the
    page's default namespace; a fresh namespace starts on a name's first use.

``--junitxml FILE`` writes one test case per block, for ``nox -s summary``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import linecache
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
import types
import xml.etree.ElementTree as ET
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGE_TIMEOUT_S = 600

_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<kind>raises|no-run|run-in)\s*(?::\s*(?P<arg>.*?))?\s*-->\s*$")
_PYTHON = {"python", "py", "python3"}


@dataclass
class Block:
    """One fenced Python block of a page."""

    page: str  # path relative to the repository root
    line: int  # 1-based line of the first code line
    code: str  # dedented source
    raises: str | None = None
    no_run: str | None = None
    namespace: str = "page"


@dataclass
class Outcome:
    """What happened to one block."""

    page: str
    line: int
    status: str  # "passed", "failed", "skipped"
    seconds: float = 0.0
    message: str = ""
    output: str = ""  # what the block printed (shown with --verbose)


def _display(page: Path) -> str:
    """The page's path relative to the repository root (absolute outside of it)."""
    page = page.resolve()
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)


def _language(info: str) -> str:
    """The language of a fence's info string: ``python title="x"`` and ``{.python}`` give python."""
    info = info.strip()
    if info.startswith("{"):
        match = re.search(r"\.([\w+-]+)", info)
        return match.group(1).lower() if match else ""
    return info.split()[0].lower() if info else ""


def extract_blocks(page: Path) -> list[Block]:
    """The Python blocks of a Markdown page, with the marker found above each."""
    rel = _display(page)
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    namespace = "page"
    i = 0
    while i < len(lines):
        match = _FENCE_OPEN.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence = match.group("indent"), match.group("fence")
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = i + 1
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        if _language(match.group("info")) in _PYTHON:
            body = [
                line[len(indent) :] if line.startswith(indent) else line
                for line in lines[i + 1 : end]
            ]
            block = Block(page=rel, line=i + 2, code=textwrap.dedent("\n".join(body)) + "\n")
            above = i - 1
            while above >= 0 and not lines[above].strip():
                above -= 1
            marker = _MARKER.match(lines[above]) if above >= 0 else None
            if marker:
                kind, arg = marker.group("kind"), (marker.group("arg") or "").strip()
                if kind == "raises":
                    if not arg:
                        raise SystemExit(f"{rel}:{above + 1}: <!-- raises: Name --> needs a name")
                    block.raises = arg
                elif kind == "no-run":
                    if not arg:
                        raise SystemExit(
                            f"{rel}:{above + 1}: <!-- no-run: reason --> needs a reason"
                        )
                    block.no_run = arg
                else:
                    namespace = arg or "page"
            block.namespace = namespace
            blocks.append(block)
        i = end + 1
    return blocks


def _exception_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def run_page(page: Path) -> list[Outcome]:
    """Run a page's blocks in this process (called in a fresh interpreter per page)."""
    blocks = extract_blocks(page)
    namespaces: dict[str, types.ModuleType] = {}
    outcomes: list[Outcome] = []
    failed = False
    for block in blocks:
        if failed:
            outcomes.append(
                Outcome(block.page, block.line, "skipped", message="an earlier block failed")
            )
            continue
        if block.no_run is not None:
            outcomes.append(
                Outcome(block.page, block.line, "skipped", message=f"no-run: {block.no_run}")
            )
            continue
        module = namespaces.setdefault(block.namespace, types.ModuleType("__main__"))
        # The block runs as the __main__ module of a script file holding the block, so that
        # worker processes started with the "spawn" method find the functions it defines.
        script = Path.cwd() / f"block_{block.line}.py"
        script.write_text(block.code, encoding="utf-8")
        module.__file__, module.__spec__ = str(script), None
        sys.modules["__main__"] = module
        # Pad with blank lines so that tracebacks give the line numbers of the page itself.
        source = "\n" * (block.line - 1) + block.code
        filename = str((ROOT / block.page).resolve())
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        start = time.perf_counter()
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                exec(compile(source, filename, "exec", dont_inherit=True), module.__dict__)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            seconds = time.perf_counter() - start
            if block.raises and block.raises in _exception_names(exc):
                message = f"raised {type(exc).__name__}: {exc}"
                outcomes.append(
                    Outcome(block.page, block.line, "passed", seconds, message, printed.getvalue())
                )
                continue
            failed = True
            expected = f"expected {block.raises}, got:\n" if block.raises else ""
            message = expected + "".join(traceback.format_exception(exc))
            outcomes.append(
                Outcome(block.page, block.line, "failed", seconds, message, printed.getvalue())
            )
            continue
        seconds = time.perf_counter() - start
        if block.raises:
            failed = True
            message = (
                f"the block should raise {block.raises} (<!-- raises: ... -->) but ran through"
            )
            outcomes.append(
                Outcome(block.page, block.line, "failed", seconds, message, printed.getvalue())
            )
        else:
            outcomes.append(
                Outcome(block.page, block.line, "passed", seconds, output=printed.getvalue())
            )
    return outcomes


def _run_page_in_subprocess(page: Path) -> list[Outcome]:
    """Run one page in a fresh interpreter with an empty working folder."""
    rel = _display(page)
    with tempfile.TemporaryDirectory(prefix="rlbricks-docs-") as cwd:
        env = {
            **os.environ,
            "MPLBACKEND": "Agg",
            "MUJOCO_GL": os.environ.get("MUJOCO_GL", "disable"),
        }
        env.setdefault("OMP_NUM_THREADS", "1")
        try:
            done = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--child", str(page.resolve())],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=PAGE_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return [
                Outcome(rel, 0, "failed", PAGE_TIMEOUT_S, f"the page took over {PAGE_TIMEOUT_S} s")
            ]
    result_lines = [line for line in done.stdout.splitlines() if line.startswith("@@outcomes@@")]
    if done.returncode or not result_lines:
        tail = (done.stdout[-3000:] + "\n" + done.stderr[-3000:]).strip()
        return [
            Outcome(
                rel,
                0,
                "failed",
                0.0,
                f"the page's interpreter exited with {done.returncode}:\n{tail}",
            )
        ]
    return [Outcome(**o) for o in json.loads(result_lines[-1].removeprefix("@@outcomes@@"))]


def _write_junit(path: Path, outcomes: list[Outcome], seconds: float) -> None:
    suite = ET.Element(
        "testsuite",
        name="docs-code-blocks",
        tests=str(len(outcomes)),
        failures=str(sum(o.status == "failed" for o in outcomes)),
        errors="0",
        skipped=str(sum(o.status == "skipped" for o in outcomes)),
        time=f"{seconds:.3f}",
    )
    for o in outcomes:
        case = ET.SubElement(
            suite, "testcase", classname=o.page, name=f"line {o.line}", time=f"{o.seconds:.3f}"
        )
        if o.status == "failed":
            ET.SubElement(
                case, "failure", message=o.message.splitlines()[-1] if o.message else ""
            ).text = o.message
        elif o.status == "skipped":
            ET.SubElement(case, "skipped", message=o.message)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "pages", nargs="*", type=Path, help="Markdown pages (default: docs/**/*.md)"
    )
    parser.add_argument("--list", action="store_true", help="list the blocks and their markers")
    parser.add_argument("--junitxml", type=Path, help="write a JUnit XML report")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every block's time")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        outcomes = run_page(args.child)
        print("@@outcomes@@" + json.dumps([asdict(o) for o in outcomes]), flush=True)
        return 0

    pages = sorted(p.resolve() for p in args.pages) if args.pages else sorted(DOCS.rglob("*.md"))
    if args.list:
        for page in pages:
            for b in extract_blocks(page):
                mark = (
                    f"raises {b.raises}" if b.raises else f"no-run: {b.no_run}" if b.no_run else ""
                )
                ns = f"[{b.namespace}] " if b.namespace != "page" else ""
                print(f"{b.page}:{b.line}: {ns}{len(b.code.splitlines())} lines {mark}")
        return 0

    start = time.perf_counter()
    outcomes: list[Outcome] = []
    for page in pages:
        if not extract_blocks(page):
            continue
        page_start = time.perf_counter()
        page_outcomes = _run_page_in_subprocess(page)
        outcomes += page_outcomes
        rel = _display(page)
        counts = {
            s: sum(o.status == s for o in page_outcomes) for s in ("passed", "failed", "skipped")
        }
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        print(f"{rel}: {summary} ({time.perf_counter() - page_start:.1f} s)", flush=True)
        for o in page_outcomes:
            if args.verbose:
                why = f", {o.message}" if o.status == "skipped" else ""
                print(f"  {o.status} {o.page}:{o.line} ({o.seconds:.1f} s{why})")
                shown = (o.output + (o.message if o.status == "passed" else "")).rstrip()
                if shown:
                    print(textwrap.indent(shown, "      | "))
            if o.status == "failed":
                print(
                    f"\nFAILED {o.page}:{o.line}\n{textwrap.indent(o.message.rstrip(), '    ')}\n",
                    flush=True,
                )
            elif o.status == "skipped" and o.message.startswith("no-run") and not args.verbose:
                print(f"  skipped {o.page}:{o.line} ({o.message})")
    seconds = time.perf_counter() - start
    if args.junitxml:
        _write_junit(args.junitxml, outcomes, seconds)
    failed = [o for o in outcomes if o.status == "failed"]
    passed = sum(o.status == "passed" for o in outcomes)
    skipped = sum(o.status == "skipped" for o in outcomes)
    print(
        f"code blocks: {passed} passed, {len(failed)} failed, {skipped} skipped in {seconds:.0f} s"
    )
    for o in failed:
        print(f"  failed: {o.page}:{o.line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
