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

