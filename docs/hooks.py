"""MkDocs hooks of the rlbricks site (``hooks:`` in mkdocs.yml): the results page.

The examples' results live outside ``docs/``: each ``examples/<algo>/README.md``
holds a table between ``<!-- results:start -->`` and ``<!-- results:end -->``
(rewritten by ``examples/results.py``), and ``examples/<algo>/results/*.png``
are the learning curves; ``benchmarks/results/*.md`` are the benchmark tables.
Nothing is copied into ``docs/``:

- ``on_files`` adds every learning-curve PNG that exists to the site, as
  ``results/<algo>/<name>.png``, so mkdocs copies it and validates links to it;
- ``on_serve`` makes ``mkdocs serve`` rebuild when they change;
- ``on_page_markdown`` fills the placeholders of ``docs/results.md``:
  ``<!-- rlbricks:results-summary -->`` (the table of the top-level README),
  ``<!-- rlbricks:results-examples -->`` (one section per example: its table
  and its curves) and ``<!-- rlbricks:benchmarks -->`` (every benchmark table).

A missing README, marker, table or PNG is not an error: the page says that
the result has not been produced yet, and links only to PNGs that exist, so
``mkdocs build --strict`` passes before and after ``nox -s results``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File
from mkdocs.structure.files import Files

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BENCHMARKS = ROOT / "benchmarks" / "results"
RESULTS_PAGE = "results.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
#: the examples in the order of the README; folders not listed come after, sorted
EXAMPLE_ORDER = ["dqn", "ddpg", "ppo", "sac", "impala"]
TITLES = {"dqn": "DQN", "ddpg": "DDPG", "ppo": "PPO", "sac": "SAC", "impala": "IMPALA"}


def _examples() -> list[str]:
    found = {p.name for p in EXAMPLES.iterdir() if p.is_dir()} if EXAMPLES.is_dir() else set()
    found = {name for name in found if (EXAMPLES / name / f"{name}.py").is_file()}
    return [n for n in EXAMPLE_ORDER if n in found] + sorted(found - set(EXAMPLE_ORDER))


def _curves(algo: str) -> list[Path]:
    return sorted((EXAMPLES / algo / "results").glob("*.png"))


def _table(path: Path) -> list[str]:
    """The rows between the results markers of ``path`` (header included), or []."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    if START not in text or END not in text:
        return []
    body = text.split(START, 1)[1].split(END, 1)[0]
    rows = [line for line in body.strip().splitlines() if line.strip().startswith("|")]
    return rows if len(rows) > 2 else []  # a header and its rule only: no result yet


def on_files(files: Files, config: Any) -> Files:
    """Add the learning curves that exist to the site as ``results/<algo>/<name>.png``."""
    for algo in _examples():
        for png in _curves(algo):
            files.append(
                File.generated(config, f"results/{algo}/{png.name}", abs_src_path=str(png))
            )
    return files


def _summary() -> str:
    rows = _table(ROOT / "README.md")
    if not rows:
        return (
            "*No result yet: `python3 noxw.py -s results` runs the examples and fills this table.*"
        )
    # [ppo](examples/ppo/README.md) -> [ppo](#ppo): the section of this page
    rows = [re.sub(r"\]\(examples/(\w+)/README\.md\)", r"](#\1)", row) for row in rows]
    return "\n".join(rows)


def _example_section(algo: str) -> str:
    title = TITLES.get(algo, algo)
    lines = [f"### {title} {{#{algo}}}", ""]
    lines.append(
        f"Script `examples/{algo}/{algo}.py`, configs in `examples/{algo}/configs/`; "
        f"`examples/{algo}/README.md` explains them."
    )
    lines.append("")
    curves = {png.name: png for png in _curves(algo)}
    rows = _table(EXAMPLES / algo / "README.md")
    if rows:

        def link(match: re.Match[str]) -> str:
            name = match.group(2)
            return f"[{match.group(1)}](results/{algo}/{name})" if name in curves else "—"

        lines += [re.sub(r"\[([^\]]*)\]\(results/([^)/]+\.png)\)", link, row) for row in rows]
    else:
        lines.append(
            f"*No result yet: `python3 noxw.py -s results -- --only {algo}/<config>` runs one.*"
        )
    for name in curves:
        config = name.removesuffix(".png")
        lines += [
            "",
            '<figure markdown="span">',
            f"  ![{title} on {config}: mean evaluation return over seeds against frames, "
            f"with a min-max band](results/{algo}/{name})",
            f"  <figcaption>{title}, <code>configs/{config}.txt</code>: evaluation return"
            " against frames collected, mean over seeds (line) and min-max over seeds"
            " (band), per torch-thread setting</figcaption>",
            "</figure>",
        ]
    return "\n".join(lines)


def _benchmarks() -> str:
    tables = sorted(BENCHMARKS.glob("*.md")) if BENCHMARKS.is_dir() else []
    if not tables:
        return "*No benchmark table yet: `python3 noxw.py -s bench` writes them.*"
    parts = []
    for table in tables:
        text = table.read_text(encoding="utf-8").strip()
        # the tables' own headings go two levels down, under this page's "Benchmarks"
        text = re.sub(r"^(#{1,4}) ", lambda m: "#" * (len(m.group(1)) + 2) + " ", text, flags=re.M)
        parts.append(f"{text}\n\n*From `benchmarks/results/{table.name}`.*")
    return "\n\n".join(parts)


def on_serve(server: Any, config: Any, builder: Any) -> Any:
    """``mkdocs serve`` also rebuilds when a result changes (watching only what exists)."""
    for path in (EXAMPLES, BENCHMARKS, ROOT / "README.md"):
        if path.exists():
            server.watch(str(path))
    return server


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Fill the placeholders of the results page."""
    if page.file.src_uri != RESULTS_PAGE:
        return markdown
    examples = "\n\n".join(_example_section(algo) for algo in _examples())
    return (
        markdown.replace("<!-- rlbricks:results-summary -->", _summary())
        .replace("<!-- rlbricks:results-examples -->", examples)
        .replace("<!-- rlbricks:benchmarks -->", _benchmarks())
    )
