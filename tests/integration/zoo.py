"""The interpreter zoo: every CPython build the integration tests run against.

An interpreter that is not on this machine is reported as skipped, by name,
with the reason, never silently passed.
"""
import contextlib
import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ZOO_DIR = Path(os.environ.get("AIOSCOPE_ZOO", "/var/cache/aioscope/zoo"))
PYENV_ROOT = Path(os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv")))
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
# Where fixtures are copied inside a chroot (its "/" is not ours): one folder
# per checkout, so that test runs of two checkouts sharing the cached chroot
# do not overwrite each other's fixtures.
CHROOT_FIXTURES = "/aioscope-fixtures-" + hashlib.sha1(str(FIXTURES).encode()).hexdigest()[:10]


@dataclass
class Interpreter:
    name: str            # test id, e.g. "3.12" or "3.11-debian"
    python: str          # path as the interpreter itself sees it
    root: str = "/"      # chroot directory, "/" for the host
    description: str = ""

    @property
    def host_python(self) -> Path:
        return Path(self.root) / self.python.lstrip("/")

    def unavailable(self):
        """None if usable, else the reason it is skipped."""
        if self.root != "/":
            reason = ZOO_DIR / "sid.unavailable"
            if reason.exists():
                return reason.read_text().strip()
            if not (Path(self.root) / "proc/self").exists():
                return f"{self.root}/proc is not mounted (run tests/zoo/provision.sh as root)"
        if not self.host_python.exists():
            return f"{self.description} not found at {self.host_python}"
        return None

    def argv(self, script: str, *args: str):
        """Command line running a fixture under this interpreter."""
        if self.root == "/":
            return [self.python, str(FIXTURES / script), *args]
        return ["chroot", self.root, self.python, f"{CHROOT_FIXTURES}/{script}", *args]

    def fixture_dir(self) -> Path:
        """Where fixtures live, from our side of the chroot."""
        if self.root == "/":
            return FIXTURES
        return Path(self.root) / CHROOT_FIXTURES.lstrip("/")

    def outside(self, inside_path: str) -> Path:
        """A path the interpreter names, seen from here."""
        return Path(self.root) / inside_path.lstrip("/") if self.root != "/" else Path(inside_path)

    def inside(self, outside_path: Path) -> str:
        if self.root == "/":
            return str(outside_path)
        return "/" + str(Path(outside_path).relative_to(self.root))

    def prepare(self):
        """Makes the fixtures visible to the interpreter (copies them into a
        chroot). Synced file by file, never replaced: another run from this
        checkout (a benchmark beside the tests) may be using the folder and
        its out/ at that moment."""
        if self.root == "/":
            return
        dst = self.fixture_dir()
        want = set()
        for folder, dirs, files in os.walk(FIXTURES):
            here = Path(folder).relative_to(FIXTURES)
            # The host's out/ is its runs' own (and holds links into trio's library).
            dirs[:] = [d for d in dirs if d != "__pycache__" and (here.parts or d != "out")]
            want.update(here / name for name in dirs + files)
        (dst / "out").mkdir(parents=True, exist_ok=True)
        for rel in sorted(want):
            src, to = FIXTURES / rel, dst / rel
            if src.is_dir():
                to.mkdir(parents=True, exist_ok=True)
            elif not to.is_file() or to.read_bytes() != src.read_bytes():
                staged = to.with_name(f".{to.name}.{os.getpid()}")
                shutil.copy2(src, staged)
                os.replace(staged, to)
        for p in sorted(dst.iterdir()):
            # .aioscope-bin: run_argv()'s copy of aioscope, perhaps in use.
            if p.name not in ("out", "__pycache__", ".aioscope-bin") and p.relative_to(dst) not in want:
                _remove(p)
        # What runs left in out/ (the chroot is cached across runs) goes once
        # it is a day old: no run still using it is that old.
        for p in (dst / "out").iterdir():
            with contextlib.suppress(OSError):
                if time.time() - p.lstat().st_mtime > 86400:
                    _remove(p)


def _remove(path: Path):
    """A file, link or folder, gone (a link's target left alone)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _pyenv(version: str) -> Interpreter:
    minor = ".".join(version.split(".")[:2])
    return Interpreter(
        name=minor,
        python=str(PYENV_ROOT / "versions" / version / "bin" / f"python{minor}"),
        description=f"pyenv CPython {version} (shared libpython)",
    )


SID = str(ZOO_DIR / "sid")

ZOO = [
    _pyenv("3.10.13"),
    _pyenv("3.11.7"),
    Interpreter("3.11-debian", "/usr/bin/python3.11",
                description="Debian's python3.11 (static, stripped)"),
    _pyenv("3.12.1"),
    _pyenv("3.13.0"),
    Interpreter("3.14", "/usr/bin/python3.14", root=SID,
                description="Debian sid python3.14 in a chroot (static, non-PIE)"),
    Interpreter("3.15", "/usr/bin/python3.15", root=SID,
                description="Debian sid python3.15 in a chroot (static, non-PIE)"),
]


def python_version(interp: Interpreter) -> str:
    cmd = interp.argv("_version.py")
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def excused():
    """Interpreters this machine cannot have, with the reason, as
    tests/zoo/provision.sh found ({name: reason})."""
    path = ZOO_DIR / "excused"
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, _, reason = line.partition(": ")
            out[name.strip()] = reason.strip()
    for name in os.environ.get("AIOSCOPE_ZOO_OPTIONAL", "").replace(",", " ").split():
        out.setdefault(name, "AIOSCOPE_ZOO_OPTIONAL")
    return out


def required(interp):
    """Whether a missing interpreter fails the run instead of being skipped:
    under tests/run (AIOSCOPE_ZOO_STRICT=1), every interpreter this machine
    can have (tests/zoo/README.md)."""
    return os.environ.get("AIOSCOPE_ZOO_STRICT") == "1" and interp.name not in excused()


def usable(interp):
    """The interpreter, prepared; the calling test is skipped, with the
    reason, when it cannot be had (fails, when tests/run requires it)."""
    import pytest  # the benchmarks use this module without pytest

    why = interp.unavailable()
    if why:
        if required(interp):
            pytest.fail(f"CPython {interp.name} is required by tests/run on this machine but unavailable: {why}",
                        pytrace=False)
        pytest.skip(f"CPython {interp.name} unavailable: {why}")
    interp.prepare()
    return interp


def prepared(names=None, *, width=12, report=print, host_only=False):
    """usable() for the benchmarks and scripts, which run without pytest:
    the zoo's interpreters named in `names` (comma-separated; None or "":
    all), in the zoo's order, each prepared. One that cannot be had is
    reported, `NAME skipped: why` with NAME padded to `width` (the caller's
    table column), through report(), never silently left out; with
    host_only, so is one that lives in a chroot. A name the zoo does not
    have ends the script with a message (a misspelled one was ignored)."""
    wanted = names.split(",") if names else None
    unknown = sorted(set(wanted or ()) - {i.name for i in ZOO})
    if unknown:
        raise SystemExit(f"unknown interpreter(s): {', '.join(unknown)} (the zoo has {', '.join(i.name for i in ZOO)})")
    for interp in ZOO:
        if wanted is not None and interp.name not in wanted:
            continue
        if host_only and interp.root != "/":
            why = f"it lives in the chroot {interp.root}, and this runs host interpreters only"
        else:
            why = interp.unavailable()
        if why:
            report(f"{interp.name:<{width}} skipped: {why}")
            continue
        interp.prepare()
        yield interp


def main():
    """`python3 tests/integration/zoo.py`: the zoo on this machine; exit 1 if
    an interpreter required here is missing."""
    missing = 0
    excuses = excused()
    for interp in ZOO:
        why = interp.unavailable()
        if not why:
            print(f"  {interp.name:12} ok        {interp.host_python}")
        elif interp.name in excuses:
            print(f"  {interp.name:12} excused   {why} ({excuses[interp.name]})")
        else:
            print(f"  {interp.name:12} MISSING   {why}")
            missing += 1
    if missing:
        print(f"{missing} interpreter(s) this machine should have are missing (tests/zoo/README.md)")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
