"""Run nox on a fresh machine that has only python3.

``python3 noxw.py [nox arguments]`` creates ``.nox-bootstrap/`` (a venv holding
the pinned nox) on first use, then runs nox from it with your arguments.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

NOX_VERSION = "2026.10.20"
ROOT = Path(__file__).resolve().parent
BOOT = ROOT / ".nox-bootstrap"


def _python() -> Path:
    return BOOT / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _ensure_nox() -> None:
    py = _python()
    if py.exists():
        probe = subprocess.run(
            [
                str(py),
                "-c",
                f"import nox, importlib.metadata as m; assert m.version('nox') == '{NOX_VERSION}'",
            ],
            capture_output=True,
        )
        if probe.returncode == 0:
            return
    print(f"noxw: installing nox {NOX_VERSION} into {BOOT}", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(BOOT)
    subprocess.run(
        [str(_python()), "-m", "pip", "install", "--quiet", f"nox=={NOX_VERSION}"], check=True
    )


def main() -> int:
    _ensure_nox()
    os.chdir(ROOT)
    return subprocess.call([str(_python()), "-m", "nox", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
