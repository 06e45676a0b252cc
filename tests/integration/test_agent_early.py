"""`aioscope run` from the program's first line, and a stream that is never
lost: the agent installs its observers on the program's own thread when it
imports asyncio (an audit hook added before the interpreter starts), says
hello at once, and its exit handler delivers what a program that ends within
milliseconds left unsaid.

Each test runs its program many times, in parallel batches: a race shows up
as a miss in some of them. Interpreters in the chroot run a copy of aioscope
placed inside it (agent_helpers.run_argv)."""
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
import pytest

from agent_helpers import inner_argv, out_path, run_argv

RUNS = int(os.environ.get("AIOSCOPE_EARLY_RUNS", "100"))
PARALLEL = 6
EXIT_ASYNCIO_BUG = 12


def run_many(interp, make_argv, runs=RUNS, parallel=PARALLEL):
    """make_argv(i) -> (argv, files to read afterwards); returns [(CompletedProcess, {name: text})]."""
    def one(i):
        argv, files = make_argv(i)
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
            texts = {name: (p.read_text() if p.exists() else None) for name, p in files.items()}
        finally:
            for p in files.values():
                p.unlink(missing_ok=True)
        return r, texts

    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(one, range(runs)))


def events_of(text):
    return [json.loads(line) for line in (text or "").splitlines() if line.strip()]


@pytest.mark.parametrize("case", ["module", "main", "os_exit"])
def test_run_catches_a_coroutine_dropped_at_the_first_line(interp, case):
    """A coroutine dropped on the first line that runs after `import asyncio`
    (module), or a forgotten await in main()'s first line (main; os_exit:
    and the program ends at once with os._exit(0), which runs no exit
    handler; every other run spells it os._exit(status=0)): --fail-on
    unawaited catches it every time, at the line Python itself names."""
    cli = run_argv(interp)

    def make(i):
        truth, events = out_path(interp, f"early-{case}-{i}"), out_path(interp, f"early-{case}-events-{i}")
        spelled = "os_exit_keyword" if case == "os_exit" and i % 2 else case
        argv = [*cli, "run", "--quiet", "--output", interp.inside(events), "--fail-on", "unawaited", "--",
                *inner_argv(interp, "early_unawaited.py", spelled, interp.inside(truth))]
        return argv, {"truth": truth, "events": events}

    misses = []
    for i, (r, files) in enumerate(run_many(interp, make)):
        problem = None
        truth = json.loads(files["truth"]) if files["truth"] else None
        events = events_of(files["events"])
        bugs = [e for e in events if e["type"] == "unawaited_coroutine"]
        if truth is None:
            problem = f"the fixture wrote no truth (rc {r.returncode}): {r.stderr[-500:]}"
        elif "coroutine 'save' was never awaited" not in r.stderr:
            problem = f"Python did not warn (premise): {r.stderr[-300:]}"
        elif r.returncode != EXIT_ASYNCIO_BUG:
            problem = f"rc {r.returncode}, events {[e['type'] for e in events]}, stderr {r.stderr[-300:]!r}"
        elif len(bugs) != 1:
            problem = f"{len(bugs)} unawaited_coroutine events"
        else:
            bug = bugs[0]
            where = bug["discarded_at"] or {}
            if (bug["pid"], bug["coroutine"]["qualname"]) != (truth["pid"], "save") or \
                    (where.get("function"), where.get("line")) != (truth["discarded_in"], truth["line"]) or \
                    bug["defined_at"]["line"] != truth["defined_line"]:
                problem = f"event {bug} against truth {truth}"
            elif [e["type"] for e in events if e["pid"] == truth["pid"]][0] != "hello":
                problem = "the agent's first event is not its hello"
            elif case == "os_exit" and not any(e["type"] == "goodbye" and "os._exit(0)" in e["message"]
                                               for e in events if e["pid"] == truth["pid"]):
                problem = f"no goodbye naming os._exit: {[e['type'] for e in events]}"
        if problem:
            misses.append(f"run #{i + 1}: {problem}")
    assert not misses, f"caught {RUNS - len(misses)}/{RUNS} on {interp.name}:\n" + "\n".join(misses[:10])


def hog_batch(interp):
    """Short programs while both cores are busy with other work (the agent's
    thread may not get the CPU before the program ends): every one still
    says hello and goodbye, the program ends as it would alone, and its
    output is untouched."""
    cli = run_argv(interp)
    hogs = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(os.cpu_count() or 2)]
    try:
        def make(i):
            events = out_path(interp, f"hog-events-{i}")
            argv = [*cli, "run", "--quiet", "--output", interp.inside(events), "--",
                    *inner_argv(interp, "agent_short.py")]
            return argv, {"events": events}

        results = run_many(interp, make, runs=RUNS, parallel=4)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    lost = []
    for i, (r, files) in enumerate(results):
        events = events_of(files["events"])
        ends = [e for e in events if e["type"] == "exit"]
        pid = ends[0]["pid"] if ends else None
        types = [e["type"] for e in events if e["pid"] == pid]
        if r.returncode != 0 or r.stdout.splitlines() != ["done"]:
            lost.append(f"run #{i + 1}: rc {r.returncode}, stdout {r.stdout[:200]!r}, stderr {r.stderr[-300:]!r}")
        elif not types or types[0] != "hello" or "goodbye" not in types:
            lost.append(f"run #{i + 1}: events of the program {types}, all: {[e['type'] for e in events]}")
        elif any(e["type"] in ("warning", "error") for e in events):
            lost.append(f"run #{i + 1}: {[e for e in events if e['type'] in ('warning', 'error')]}")
    return lost


def test_run_delivers_every_hello_under_a_cpu_hog(interp):
    """Short programs while both cores are busy with other work: every one
    still says hello and goodbye (one in a few hundred lost its goodbye when
    the agent's thread marked the session over while the exit handler
    waited for its lock)."""
    lost = hog_batch(interp)
    assert not lost, f"{len(lost)}/{RUNS} runs lost their agent's stream on {interp.name}:\n" + "\n".join(lost[:10])
