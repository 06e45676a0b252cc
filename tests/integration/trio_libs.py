"""Where each zoo interpreter gets trio and anyio from.

An interpreter that has them installed uses its own: Debian's python3.11
(bookworm's python3-trio 0.22 and python3-anyio 3.6), the sid chroot's 3.14
and 3.15 (sid's python3-trio 0.34 and python3-anyio 4.15, installed by
tests/zoo/provision.sh), and pyenv 3.11.7 where that build has trio.

These Debian packages and their dependencies are pure Python. A host
interpreter without them imports them, unchanged, from a directory of links
to one Debian release's packages put on its PYTHONPATH (for the fixture
processes only): bookworm's first, then sid's, the first with which the
imports work. So pyenv 3.10 and 3.12 run bookworm's trio 0.22 and 3.13 (which
trio 0.22 predates) runs sid's trio 0.34. Where none works the test is
skipped with the reasons.
"""
import contextlib
import os
import subprocess
from pathlib import Path

import pytest

from zoo import FIXTURES, ZOO_DIR

BOOKWORM = Path("/usr/lib/python3/dist-packages")
SID = ZOO_DIR / "sid/usr/lib/python3/dist-packages"
SOURCES = [("Debian bookworm's trio 0.22 and anyio 3.6", [BOOKWORM]),
           ("Debian sid's trio 0.34 and anyio 4.15", [SID, BOOKWORM])]  # 3.10 needs bookworm's exceptiongroup
PACKAGES = ["trio", "anyio", "attr", "attrs", "sortedcontainers", "idna", "outcome", "sniffio", "exceptiongroup",
            "async_generator", "typing_extensions.py"]

_found = {}


def _overlay(name, dirs):
    """A directory of links to the packages, each from the first dir that has it."""
    out = FIXTURES / "out" / ("trio-libs-" + name.split("'")[0].split()[-1].lower())
    out.mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        link = out / package
        if link.is_symlink() or link.exists():
            continue
        for d in dirs:
            if (d / package).exists():
                link.symlink_to(d / package)
                break
    return out


def _imports(interp, modules, env=None):
    code = "; ".join(f"import {m}" for m in modules)
    probe = subprocess.run(interp.argv("_version.py")[:-1] + ["-W", "ignore", "-c", code],
                           capture_output=True, text=True, env=env)
    return None if probe.returncode == 0 else (probe.stderr.strip().splitlines() or ["?"])[-1]


def library_env(interp, *modules):
    """(PYTHONPATH for the fixture or None, where the libraries come from); skips the test if none works."""
    key = (interp.name, modules)
    if key not in _found:
        why = _imports(interp, modules)
        if why is None:
            _found[key] = (None, "installed")
        elif interp.root != "/":
            _found[key] = why
        else:
            reasons = [f"installed: {why}"]
            for name, dirs in SOURCES:
                if not dirs[0].exists():
                    reasons.append(f"{name}: not on this machine")
                    continue
                path = str(_overlay(name, dirs))
                env = dict(os.environ, PYTHONPATH=path)
                why = _imports(interp, modules, env)
                if why is None:
                    _found[key] = (path, name)
                    break
                reasons.append(f"{name}: {why}")
            else:
                _found[key] = "; ".join(reasons)
    found = _found[key]
    if isinstance(found, str):
        pytest.skip(f"{' and '.join(modules)} unavailable for CPython {interp.name}: {found}")
    return found


@contextlib.contextmanager
def pythonpath(path):
    """Processes started inside see PYTHONPATH=path (None: unchanged)."""
    old = os.environ.get("PYTHONPATH")
    if path is not None:
        os.environ["PYTHONPATH"] = path
    try:
        yield
    finally:
        if path is not None:
            if old is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = old
