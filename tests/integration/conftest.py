import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import AIOSCOPE  # noqa: E402
from zoo import ZOO, usable  # noqa: E402


def pytest_configure(config):
    if not AIOSCOPE.exists():
        raise pytest.UsageError(f"aioscope binary not found at {AIOSCOPE} (build first or set AIOSCOPE_BIN)")


@pytest.fixture(scope="session", params=ZOO, ids=[i.name for i in ZOO])
def interp(request):
    """Each zoo interpreter in turn; missing ones are skipped with the reason."""
    return usable(request.param)



@pytest.fixture(scope="session", autouse=True)
def busy_machine():
    """AIOSCOPE_TEST_HOGS=N: N busy processes beside the whole run, the way a
    loaded CI runner or a busy service host runs the tool (timing-sensitive
    files are meant to pass like this too; tests/README.md)."""
    import os
    import subprocess

    n = int(os.environ.get("AIOSCOPE_TEST_HOGS", "0"))
    hogs = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(n)]
    yield
    for h in hogs:
        h.kill()
        h.wait()
