"""Options are checked before anything touches a target, and outputs that
cannot be written are an exit status (docs/guide.md#options-and-their-ranges,
docs/guide.md#exit-codes).

- A value out of an option's range, or one that would round into another
  meaning (0.0001ms is not "never"), is one line on stderr and status 2; the
  target is untouched (no agent mapped, no program started).
- The agent's own limits are the CLI's: values at the limits are accepted
  and reach the agent as given (its hello says so).
- Process ids are decimal numbers as the kernel writes them; a thread id is
  refused with the process it belongs to.
- A write error on standard output or --output is status 14, one line.
- `render` gives up on input that is not a snapshot without reading it all,
  and on more than 1 GiB.
"""
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from agent_helpers import Target, agent_mappings
from harness import AIOSCOPE, run_aioscope
from zoo import ZOO

EXIT_USAGE, EXIT_NO_PROCESS, EXIT_BAD_INPUT, EXIT_OUTPUT, EXIT_TIMEOUT = 2, 3, 8, 14, 124


def host_interp():
    for it in sorted((i for i in ZOO if i.root == "/"), key=lambda i: i.name != "3.12"):
        if not it.unavailable():
            return it
    pytest.skip("no host CPython available")


@pytest.fixture(scope="module")
def target():
    with Target(host_interp(), "agent_parked.py") as t:
        yield t


def one_line(r, code, *words):
    assert r.returncode == code, f"exit {r.returncode}, expected {code}: {r.stderr!r}"
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("aioscope: "), f"not one line: {r.stderr!r}"
    for w in words:
        assert w in lines[0], f"{w!r} not in {lines[0]!r}"
    return lines[0]


ATTACH_BAD = [
    (["--duration", "0.0001ms"], ["--duration", "out of range"]),
    (["--duration", "0.5ms"], ["--duration", "out of range"]),
    (["--interval", "1h"], ["--interval", "1ms to 1m"]),
    (["--interval", "61s"], ["--interval", "out of range"]),
    (["--interval", "0"], ["--interval", "out of range"]),
    (["--interval", "0.3ms"], ["--interval", "out of range"]),
    (["--stall-threshold", "2h"], ["--stall-threshold", "1ms to 1h"]),
    (["--stall-threshold", "0ms"], ["--stall-threshold", "out of range"]),
    (["--snapshot-every", "25h"], ["--snapshot-every", "24h"]),
    (["--snapshot-every", "0.0001s"], ["--snapshot-every", "out of range"]),
    (["--snapshot-every", "1e3"], ["--snapshot-every", "not a duration"]),
    (["--duration", "0x10"], ["--duration", "not a duration"]),
    (["--duration", " 5"], ["--duration", "not a duration"]),
    (["--duration", "5 s"], ["--duration", "not a duration"]),
    (["--duration", "+5s"], ["--duration", "not a duration"]),
    (["--duration", "nan"], ["--duration", "not a duration"]),
    (["--duration", "inf"], ["--duration", "not a duration"]),
    (["--duration", "1d"], ["--duration", "not a duration"]),
    (["--duration", "."], ["--duration", "not a duration"]),
]


@pytest.mark.parametrize("options, words", ATTACH_BAD, ids=[" ".join(o) for o, _ in ATTACH_BAD])
def test_attach_option_out_of_range_touches_nothing(target, options, words):
    r = run_aioscope("attach", "--json", *options, target.pid, timeout=30)
    one_line(r, EXIT_USAGE, *words)
    assert r.stdout == ""
    assert agent_mappings(target.pid) == set(), "the agent was loaded despite the bad option"
    assert target.alive()


RUN_BAD = [
    (["--timeout", "0.001ms"], ["--timeout", "out of range"]),
    (["--timeout", "1e3"], ["--timeout", "not a duration"]),
    (["--timeout", "-1"], []),
    (["--interval", "1h"], ["--interval", "out of range"]),
    (["--stall-threshold", "2h"], ["--stall-threshold", "out of range"]),
    (["--snapshot-every", "25h"], ["--snapshot-every", "out of range"]),
    (["--fail-on", "stalls"], ["--fail-on", "stalls"]),
]


@pytest.mark.parametrize("options, words", RUN_BAD, ids=[" ".join(o) for o, _ in RUN_BAD])
def test_run_option_out_of_range_starts_nothing(tmp_path, options, words):
    marker = tmp_path / "ran"
    r = run_aioscope("run", *options, "--", "sh", "-c", f"touch {marker}", timeout=30)
    one_line(r, EXIT_USAGE, *words)
    assert not marker.exists(), "the program was started despite the bad option"


def test_limits_reach_the_agent_as_given():
    """The largest values the agent takes are accepted, and the agent uses them."""
    interp = host_interp()
    r = run_aioscope("run", "--json", "--interval", "1m", "--stall-threshold", "1h", "--snapshot-every", "24h",
                     "--", interp.python, "-c", "import asyncio; asyncio.run(asyncio.sleep(0.5))", timeout=60)
    assert r.returncode == 0, r.stderr
    hello = [json.loads(l) for l in r.stderr.splitlines() if '"hello"' in l]
    assert len(hello) == 1, r.stderr
    assert hello[0]["options"] == {"interval_ms": 60000, "stall_threshold_ms": 3600000,
                                   "snapshot_interval_ms": 86400000}, hello[0]
    r = run_aioscope("run", "--json", "--interval", "1.4ms", "--stall-threshold", "0.25s", "--",
                     interp.python, "-c", "import asyncio; asyncio.run(asyncio.sleep(0.3))", timeout=60)
    hello = [json.loads(l) for l in r.stderr.splitlines() if '"hello"' in l]
    assert r.returncode == 0 and hello[0]["options"]["interval_ms"] == 1 and \
        hello[0]["options"]["stall_threshold_ms"] == 250, r.stderr


def test_smallest_timeout_still_stops_the_program():
    """1ms is the smallest timeout, and it is a timeout (not "never")."""
    interp = host_interp()
    t0 = time.monotonic()
    r = run_aioscope("run", "--json", "--timeout", "1ms", "--", interp.python, "-c", "import time; time.sleep(60)",
                     timeout=60)
    assert r.returncode == EXIT_TIMEOUT, r.stderr
    assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("pid", ["0x10", "+1", "1e3", " 5", "5 ", "05", "0", "1.0", "١٢", "99999999999"])
def test_pids_are_decimal_numbers(pid):
    for command in ("dump", "attach"):
        r = run_aioscope(command, pid, timeout=30)
        one_line(r, EXIT_USAGE, "not a process id")


@pytest.mark.parametrize("command", ["dump", "attach"])
def test_a_thread_id_is_not_a_process(command):
    interp = host_interp()
    p = subprocess.Popen([interp.python, "-c", "import threading, time\n"
                          "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
                          "time.sleep(60)"])
    try:
        deadline = time.monotonic() + 10
        while len(os.listdir(f"/proc/{p.pid}/task")) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        tid = max(int(t) for t in os.listdir(f"/proc/{p.pid}/task"))
        r = run_aioscope(command, tid, timeout=30)
        one_line(r, EXIT_NO_PROCESS, f"{tid} is a thread of process {p.pid}", f"give {p.pid}")
        assert agent_mappings(p.pid) == set()
    finally:
        p.kill()
        p.wait()


# --------------------------------------------------------------------------------------
# Outputs that cannot be written

def full(*args, stdout="/dev/full", **kw):
    with open(stdout, "w") as out:
        return subprocess.run([str(AIOSCOPE), *map(str, args)], stdout=out, stderr=subprocess.PIPE, text=True,
                              timeout=60, **kw)


@pytest.mark.parametrize("extra", [[], ["--json"]], ids=["text", "json"])
def test_dump_to_a_full_disk(target, extra):
    one_line(full("dump", *extra, target.pid), EXIT_OUTPUT, "cannot write standard output")


def test_dump_to_a_closed_pipe(target):
    p = subprocess.Popen([str(AIOSCOPE), "dump", "--json", str(target.pid)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    p.stdout.close()  # nobody reads: `aioscope dump PID | head -0`
    err = p.stderr.read()
    assert p.wait(timeout=60) == EXIT_OUTPUT, err
    assert err.startswith("aioscope: cannot write standard output") and err.count("\n") == 1, err


def test_render_and_help_to_a_full_disk(target, tmp_path):
    snap = tmp_path / "snap.json"
    r = run_aioscope("dump", "--json", target.pid)
    snap.write_text(r.stdout)
    one_line(full("render", snap), EXIT_OUTPUT, "cannot write standard output")
    assert full("--help").returncode == EXIT_OUTPUT


def test_run_output_file_on_a_full_disk():
    interp = host_interp()
    r = subprocess.run([str(AIOSCOPE), "run", "-q", "-o", "/dev/full", "--", interp.python, "-c",
                        "import asyncio; asyncio.run(asyncio.sleep(0.2))"], capture_output=True, text=True, timeout=60)
    one_line(r, EXIT_OUTPUT, "cannot write /dev/full")


def test_run_events_on_a_full_stderr():
    """run's events go to stderr: if it is full, the status says so (the
    reason line cannot be written there)."""
    interp = host_interp()
    with open("/dev/full", "w") as err:
        r = subprocess.run([str(AIOSCOPE), "run", "--json", "--", interp.python, "-c", "print('out')"],
                           stdout=subprocess.PIPE, stderr=err, text=True, timeout=60)
    assert r.returncode == EXIT_OUTPUT
    assert r.stdout == "out\n", "the program's output is its own"


@pytest.mark.parametrize("where", ["stdout", "output file"])
def test_attach_to_a_full_disk(target, where):
    if where == "stdout":
        r = full("attach", "--json", "--duration", "1s", target.pid)
        assert r.returncode == EXIT_OUTPUT, r.stderr
        assert r.stderr.strip().endswith("cannot write standard output: No space left on device"), r.stderr
    else:
        r = run_aioscope("attach", "-q", "-o", "/dev/full", "--duration", "1s", target.pid, timeout=60)
        one_line(r, EXIT_OUTPUT, "cannot write /dev/full")
    assert target.alive()


# --------------------------------------------------------------------------------------
# render's input

def test_render_dev_zero_is_refused_at_once():
    t0 = time.monotonic()
    r = run_aioscope("render", "/dev/zero", timeout=30)
    one_line(r, EXIT_BAD_INPUT, "not valid JSON")
    assert time.monotonic() - t0 < 10


def test_render_input_is_capped():
    """More than 1 GiB (of blanks, which could begin a JSON document) is refused."""
    p = subprocess.Popen([str(AIOSCOPE), "render", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)

    def feed():
        chunk = b" " * (1 << 20)
        try:
            for _ in range(1100):
                p.stdin.write(chunk)
            p.stdin.write(b"{}")
            p.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
    t = threading.Thread(target=feed, daemon=True)
    t.start()
    err = p.stderr.read()
    p.stdout.read()
    assert p.wait(timeout=120) == EXIT_BAD_INPUT, err
    t.join(10)
    assert err.decode().strip() == "aioscope: standard input is larger than 1 GiB: not an aioscope snapshot"
