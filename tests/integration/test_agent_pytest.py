"""Under `aioscope run -- pytest`, every event names the test it happened
in, and an event about a task names the test that created it, compared with
pytest's own node ids (fixtures/agent_pytest_attr.py records them).

Debian's python3.11 with its pytest and pytest-asyncio packages."""
import json
import os
import subprocess
from pathlib import Path

import pytest

from agent_helpers import THRESHOLD_MS, INTERVAL_MS, aioscope_run, read_json

DEBIAN_PYTHON = "/usr/bin/python3.11"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
OPTS = ["--stall-threshold", f"{THRESHOLD_MS}ms", "--interval", f"{INTERVAL_MS}ms"]


def debian_pytest_asyncio():
    if not Path(DEBIAN_PYTHON).exists():
        pytest.skip(f"CPython 3.11-debian unavailable: {DEBIAN_PYTHON} not found")
    probe = subprocess.run([DEBIAN_PYTHON, "-c", "import pytest, pytest_asyncio"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("pytest-asyncio unavailable for Debian's python3.11 (apt install python3-pytest-asyncio)")


@pytest.fixture(scope="module")
def pytest_run(tmp_path_factory):
    debian_pytest_asyncio()
    tmp = tmp_path_factory.mktemp("pytest-attr")
    truth_path, events = tmp / "truth.json", tmp / "events.jsonl"
    env = dict(os.environ, AGENT_PYTEST_TRUTH=str(truth_path))
    s = aioscope_run([DEBIAN_PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", FIXTURES,
                      "-W", "ignore::pytest.PytestUnraisableExceptionWarning", FIXTURES / "agent_pytest_attr.py"],
                     *OPTS, "--snapshot-every", "50ms", "--quiet", "--output", events, env=env, json_=False,
                     timeout=120)
    s.events = [json.loads(line) for line in events.read_text().splitlines()]
    truth = read_json(truth_path)
    assert "6 passed" in s.stdout, s.stdout + s.stderr
    assert truth["hooked"], "the agent's hooks never went in"
    return s, truth


def only(s, type_, pid):
    hits = s.of(type_, pid)
    assert len(hits) == 1, f"{len(hits)} {type_} events:\n{s.summary()}"
    return hits[0]


def test_run_pytest_lost_exception_names_both_tests(pytest_run):
    s, truth = pytest_run
    tests = truth["tests"]
    e = only(s, "task_exception_unretrieved", truth["pid"])
    assert e["task"]["name"] == "failing-task"
    assert (e["test"], e["test_phase"]) == (tests["test_frees_the_failing_task"], "call"), e
    assert e["task_created_in_test"] == tests["test_creates_a_failing_task"], e


def test_run_pytest_destroyed_task_names_both_tests(pytest_run):
    s, truth = pytest_run
    tests = truth["tests"]
    e = only(s, "task_destroyed_pending", truth["pid"])
    assert e["task"]["name"] == "pending-task"
    # A parametrized test: the node id has its parameters, spaces included.
    assert tests["test_drops_the_pending_task[by gc]"].endswith("[by gc]")
    assert (e["test"], e["test_phase"]) == (tests["test_drops_the_pending_task[by gc]"], "call"), e
    assert e["task_created_in_test"] == tests["test_creates_a_pending_task"], e


def test_run_pytest_unawaited_and_stall_name_their_test(pytest_run):
    s, truth = pytest_run
    tests = truth["tests"]
    e = only(s, "unawaited_coroutine", truth["pid"])
    assert (e["test"], e["test_phase"]) == (tests["test_forgets_an_await"], "call"), e
    # The stall and its end come from the agent's own thread (os.environ read
    # from memory), not from the observers.
    stall = only(s, "stall", truth["pid"])
    end = only(s, "stall_end", truth["pid"])
    assert stall["stack"][0]["function"] == "spin" and stall["stack"][1]["function"] == "test_stalls"
    for x in (stall, end):
        assert (x["test"], x["test_phase"]) == (tests["test_stalls"], "call"), x


def test_run_pytest_events_outside_tests_name_none(pytest_run):
    """Before the first test (hello, capabilities) there is no test to name."""
    s, truth = pytest_run
    hello = only(s, "hello", truth["pid"])
    assert "test" not in hello
    named = {e["test"] for e in s.events if "test" in e}
    assert named <= set(truth["tests"].values()), named - set(truth["tests"].values())


def test_run_pytest_snapshots_name_their_test(pytest_run):
    """A snapshot's line is written in parts as it is made (the test fields
    last): the ones taken while test_stalls runs (half a second) name it."""
    s, truth = pytest_run
    tests = truth["tests"]
    snapshots = s.of("snapshot", truth["pid"])
    named = [x for x in snapshots if x.get("test") == tests["test_stalls"]]
    assert named, f"{len(snapshots)} snapshots, none names test_stalls:\n{s.summary()}"
    assert all(x["test_phase"] in ("setup", "call", "teardown") for x in named), named
