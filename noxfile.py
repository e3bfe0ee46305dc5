"""Every development task of the rlbricks monorepo.

``nox`` (no arguments) runs the full test suite: lint, each package tested in
isolation, all packages together, the wheel contents check and the strict docs
build, then prints one summary line of every test run.  ``nox -l`` lists the
sessions; ``nox -s bench`` runs the benchmarks.

Every session installs with ``-c constraints/<file>.txt`` so torch stays pinned
to the CPU build that lies on the project machines' disk.
"""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import nox
import tomllib

ROOT = Path(__file__).parent
PACKAGES_DIR = ROOT / "packages"
REPORTS = ROOT / ".reports"
META = "rlbricks"

nox.options.error_on_external_run = True
nox.options.reuse_existing_virtualenvs = False


# --------------------------------------------------------------------------- #
# Package graph, read from the packages' own pyproject files
# --------------------------------------------------------------------------- #
def _read_pyproject(name: str) -> dict:
    with open(PACKAGES_DIR / name / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _leaf_packages() -> list[str]:
    """Folders of packages/ that ship code (everything but the meta-package)."""
    return sorted(
        p.name
        for p in PACKAGES_DIR.iterdir()
        if (p / "pyproject.toml").exists() and (p / "src").is_dir() and p.name != META
    )


def _sibling_deps(name: str) -> list[str]:
    """Direct rlbricks-* dependencies of a package (folder names)."""
    deps = _read_pyproject(name)["project"].get("dependencies", [])
    out = []
    for dep in deps:
        m = re.match(r"rlbricks-([a-z_]+)", dep)
        if m:
            out.append(m.group(1))
    return out


def _closure(name: str) -> list[str]:
    """The package and every sibling it needs, transitively."""
    seen: list[str] = []
    stack = [name]
    while stack:
        cur = stack.pop()
        if cur in seen:
            continue
        seen.append(cur)
        stack.extend(_sibling_deps(cur))
    return seen


LEAVES = _leaf_packages()


def _pkg_path(name: str) -> str:
    return str(PACKAGES_DIR / name)


def _pkg_with_extras(name: str) -> str:
    """The package path with every extra it declares (so optional code paths are tested)."""
    extras = sorted(_read_pyproject(name)["project"].get("optional-dependencies", {}))
    return f"{_pkg_path(name)}[{','.join(extras)}]" if extras else _pkg_path(name)


def _pytest(session: nox.Session, report: str, *args: str) -> None:
    REPORTS.mkdir(exist_ok=True)
    session.run(
        "python",
        "-m",
        "pytest",
        f"--junitxml={REPORTS / (report + '.xml')}",
        "-p",
        "no:cacheprovider",
        *args,
        *session.posargs,
    )


def _dist_name(folder: str) -> str:
    return str(_read_pyproject(folder)["project"]["name"])


def _assert_only_rlbricks(session: nox.Session, allowed: list[str]) -> None:
    """Fail unless the venv's rlbricks distributions are exactly the packages ``allowed``."""
    expected = sorted(_dist_name(n) for n in allowed)
    code = (
        "import importlib.metadata as md, json, sys\n"
        "names = sorted({d.metadata['Name'] for d in md.distributions()"
        " if d.metadata['Name'].startswith('rlbricks')})\n"
        f"expected = {json.dumps(expected)}\n"
        "if names != expected:\n"
        "    sys.exit(f'isolation broken: installed {names}, expected {expected}')\n"
        "print('isolated:', ', '.join(names))\n"
    )
    session.run("python", "-c", code)


# --------------------------------------------------------------------------- #
# Sessions
# --------------------------------------------------------------------------- #
@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, mypy, and no brick using another brick's private names."""
    session.install("-c", "constraints/lint.txt", "ruff", "mypy", "torch", "numpy")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    session.run("python", "tools/check_private_names.py")


def _make_isolated(name: str):
    @nox.session(name=f"tests-{name}")
    def _session(session: nox.Session) -> None:
        closure = _closure(name)
        # one resolver call: the package, its sibling closure from local sources, test tools
        session.install(
            "-c",
            "constraints/test.txt",
            *(_pkg_with_extras(n) if n == name else _pkg_path(n) for n in closure),
            "pytest",
            "hypothesis",
        )
        _assert_only_rlbricks(session, closure)
        tests = PACKAGES_DIR / name / "tests"
        _pytest(session, f"tests-{name}", str(tests))
        # docstring examples, run against the installed (non-editable) package
        _pytest(
            session,
            f"doctest-{name}",
            "--doctest-modules",
            "--pyargs",
            f"rlbricks.{name}",
        )

    _session.__doc__ = f"Test rlbricks-{name} alone, in a venv holding only it and its deps."
    return _session


for _name in LEAVES:
    globals()[f"tests_{_name}"] = _make_isolated(_name)


@nox.session
def together(session: nox.Session) -> None:
    """Every package installed together, all package tests plus the integration tests."""
    session.install(
        "-c",
        "constraints/test.txt",
        *(_pkg_with_extras(n) for n in LEAVES),
        _pkg_path(META),
        "pytest",
        "hypothesis",
    )
    _assert_only_rlbricks(session, [*LEAVES, META])
    tests = [str(PACKAGES_DIR / n / "tests") for n in [*LEAVES, META]]
    _pytest(session, "together", *tests)


@nox.session
def wheels(session: nox.Session) -> None:
    """Build every wheel into dist/ and check each holds only its own rlbricks/<name>/."""
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.install("-c", "constraints/base.txt", "build")
    for name in [*LEAVES, META]:
        session.run("python", "-m", "build", "--wheel", "--outdir", str(dist), _pkg_path(name))
    for whl in sorted(dist.glob("*.whl")):
        with zipfile.ZipFile(whl) as zf:
            files = [f for f in zf.namelist() if ".dist-info/" not in f]
        dist_name = whl.name.split("-")[0]
        if dist_name == META:
            bad = files
        else:
            leaf = dist_name.removeprefix("rlbricks_")
            bad = [f for f in files if not f.startswith(f"rlbricks/{leaf}/")]
        if bad:
            session.error(f"{whl.name} ships files outside its portion: {bad}")
        session.log(f"{whl.name}: {len(files)} files, all inside its portion")


@nox.session
def docs(session: nox.Session) -> None:
    """Check the docs: API coverage, every code block, every docstring example, strict build.

    1. ``docs/check_api_coverage.py``: every name of every ``__all__`` is documented;
    2. ``docs/run_code_blocks.py``: every ``python`` block of ``docs/**/*.md`` runs;
    3. the docstring examples of every package (``pytest --doctest-modules``);
    4. ``mkdocs build --strict`` into ``site/``.

    The packages are installed (not editable) with all their extras, so that the
    pages' gymnasium, dm_control and Ray examples run.
    """
    session.install(
        "-c",
        "constraints/docs.txt",
        "-c",
        "constraints/test.txt",
        "-r",
        "constraints/docs-requirements.txt",
        *(_pkg_with_extras(n) for n in LEAVES),
        "pytest",
    )
    session.run("python", "docs/check_api_coverage.py")
    REPORTS.mkdir(exist_ok=True)
    session.run(
        "python",
        "docs/run_code_blocks.py",
        f"--junitxml={REPORTS / 'docs-code-blocks.xml'}",
        env={"OMP_NUM_THREADS": "1"},
    )
    session.run(
        "python",
        "-m",
        "pytest",
        f"--junitxml={REPORTS / 'docs-doctests.xml'}",
        "-p",
        "no:cacheprovider",
        "--doctest-modules",
        "--pyargs",
        *(f"rlbricks.{n}" for n in LEAVES),
        env={"OMP_NUM_THREADS": "1"},
    )
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", "site", env={"NO_MKDOCS_2_WARNING": "1"}
    )


@nox.session(name="docs-serve", default=False)
def docs_serve(session: nox.Session) -> None:
    """Serve the documentation site on http://127.0.0.1:8000 for local browsing."""
    session.install(
        "-c",
        "constraints/docs.txt",
        "-r",
        "constraints/docs-requirements.txt",
        *("-e" + _pkg_path(n) for n in LEAVES),
    )
    session.run("mkdocs", "serve", "--dev-addr", "127.0.0.1:8000")


#: the system packages the browser test drives (Debian names)
_BROWSER_INSTALL = "apt-get install -y chromium chromium-driver"


@nox.session(name="docs-browser", default=False)
def docs_browser(session: nox.Session) -> None:
    """Build the site, serve it on localhost and check it in headless Chromium.

    ``docs/browser_test.py`` checks the home page, the search box, an API page,
    the getting-started and results pages and the browser console, and saves
    screenshots to ``.reports/screenshots/``. Needs Chromium and chromedriver
    from the system (Debian: ``apt-get install -y chromium chromium-driver``).
    """
    missing = [
        name
        for name, candidates in (
            ("chromium", ("chromium", "chromium-browser", "google-chrome")),
            ("chromedriver", ("chromedriver",)),
        )
        if not any(shutil.which(c) for c in candidates)
    ]
    if missing:
        session.error(f"docs-browser needs {' and '.join(missing)}; install: {_BROWSER_INSTALL}")
    session.install(
        "-c", "constraints/browser.txt", "-r", "constraints/docs-requirements.txt", "selenium"
    )
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", "site", env={"NO_MKDOCS_2_WARNING": "1"}
    )
    session.run("python", "docs/browser_test.py", "--site", "site")


def _install_for_examples(session: nox.Session, *extras: str) -> None:
    """Every brick from the local sources, with the extras the examples use."""
    wanted = {
        "envs": [e for e in extras if e in ("gym", "atari", "mujoco", "dm_control")],
        "collectors": [e for e in extras if e == "ray"],
        "trainers": [e for e in extras if e in ("tensorboard", "plot")],
    }
    specs = [
        f"{_pkg_path(n)}[{','.join(wanted[n])}]" if wanted.get(n) else _pkg_path(n) for n in LEAVES
    ]
    session.install("-c", "constraints/test.txt", *specs)


@nox.session(default=False)
def demo(session: nox.Session) -> None:
    """Train PPO on CartPole from examples/ppo/configs/cartpole.txt; print the eval return.

    Extra arguments are flags of the example (e.g. ``nox -s demo -- --seed=1``).
    """
    _install_for_examples(session, "gym", "tensorboard", "plot")
    session.run(
        "python",
        "examples/ppo/ppo.py",
        "--config=examples/ppo/configs/cartpole.txt",
        *session.posargs,
        env={"OMP_NUM_THREADS": "1"},
    )


@nox.session(default=False)
def results(session: nox.Session) -> None:
    """Run the examples' configs over several seeds; write their JSON, curves and tables.

    ``examples/results.py``: every seed a fresh process, seeds in parallel up to
    the core count; ``examples/<algo>/results/<config>.{json,png}`` and the
    tables of the READMEs are written from the measured seeds only.
    ``nox -s results -- --only ppo/cartpole --seeds 0-9`` reruns a subset;
    ``-- --threads 1 2`` runs both torch thread settings; ``-- --report``
    rebuilds tables and figures from the JSON files.
    """
    _install_for_examples(session, "gym", "ray", "tensorboard", "plot")
    session.install("-c", "constraints/test.txt", "rliable")
    session.run("python", "examples/results.py", *session.posargs)


@nox.session(default=False)
def build(session: nox.Session) -> None:
    """Alias of ``wheels``: build every package's wheel into dist/."""
    wheels(session)


@nox.session(default=False, venv_backend="none")
def bench(session: nox.Session) -> None:
    """Run every benchmark (tables go to benchmarks/results/)."""
    session.notify("bench-tensordict")
    session.notify("bench-torchrl")


def _run_benchmarks(session: nox.Session, scripts: list[str]) -> None:
    env = {"OMP_NUM_THREADS": "1"}
    for name in scripts:
        session.run("python", str(ROOT / "benchmarks" / name), env=env)


@nox.session(name="bench-tensordict", default=False)
def bench_tensordict(session: nox.Session) -> None:
    """TensorDict ops beside the newest `tensordict` release."""
    session.install("-c", "constraints/bench-tensordict.txt", _pkg_path("tensordict"), "tensordict")
    _run_benchmarks(session, ["tensordict_ops.py"])


@nox.session(name="bench-torchrl", default=False)
def bench_torchrl(session: nox.Session) -> None:
    """The other benchmarks beside torchrl (with its tensordict), rlox and stable-baselines3."""
    session.install(
        "-c",
        "constraints/bench-torchrl.txt",
        *(_pkg_with_extras(n) for n in LEAVES),
        "torchrl",
        "rlox",
        "stable-baselines3",
    )
    scripts = sorted(
        p.name
        for p in (ROOT / "benchmarks").glob("*.py")
        if not p.name.startswith("_") and p.name != "tensordict_ops.py"
    )
    _run_benchmarks(session, scripts)


@nox.session(venv_backend="none")
def summary(session: nox.Session) -> None:
    """One closing line over every test report written by this run."""
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    for xml in sorted(REPORTS.glob("*.xml")):
        root = ET.parse(xml).getroot()
        suites = [root] if root.tag == "testsuite" else list(root)
        for s in suites:
            tests = int(s.get("tests", 0))
            failed = int(s.get("failures", 0)) + int(s.get("errors", 0))
            skipped = int(s.get("skipped", 0))
            totals["passed"] += tests - failed - skipped
            totals["failed"] += failed
            totals["skipped"] += skipped
    print(f"{totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")
    if totals["failed"]:
        session.error("some tests failed")


def _default_sessions() -> list[str]:
    return ["lint", *(f"tests-{n}" for n in LEAVES), "together", "wheels", "docs", "summary"]


nox.options.sessions = _default_sessions()

# Reports describe one nox run: start each run from a clean folder.
shutil.rmtree(REPORTS, ignore_errors=True)
