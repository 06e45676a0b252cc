"""CPython's own inspection tests, ported as live scenarios.

The scenarios of Lib/test/test_external_inspection.py (3.14 and 3.15) and
Lib/test/test_asyncio/test_tools.py that apply to aioscope, each built by
fixtures/cpython_scenarios.py (our port: the code is ours, the assertions of
those files are the reference). Every dump is compared with the ground truth
the fixture computed inside itself, and with what CPython's test asserts
(function names, who awaits whom, line numbers) where the version has it.

Not ported, because aioscope has no such output: thread status flags
(on-CPU, exception) and RemoteUnwinder's frame cache object identity; the
cache tests' observable behaviour (the right line and stack after the
target moved) is ported as the "steps" scenario. Where aioscope is
deliberately better (task names kept whole, chains deeper than any cap
keep their innermost frames), the test pins it.
"""
import json
import os
import signal
import time
from pathlib import Path

import pytest

from aio import (EXIT_OK, EXIT_STUCK, KilledOnFailure, assert_awaited_by, assert_awaiting, assert_same_task_set,
                 assert_stacks, dump_tasks, version)
from harness import run_aioscope
from test_dump_threads import assert_matches_truth


class Scenario:
    """A fixture process running one scenario, its truth and one dump."""

    def __init__(self, interp, name, *args, dump=True):
        self.interp = interp
        self.fx = KilledOnFailure(interp, "cpython_scenarios.py", "--scenario", name, *args)
        self.truth = self.fx.truth
        self.facts = self.truth.get("facts", {})
        self.want = {t["id"]: t for t in self.truth.get("tasks", [])}
        if dump:
            self.redump()

    def redump(self, *extra):
        try:
            self.doc, self.rc = dump_tasks(self.fx.pid, *extra)
        except BaseException:
            self.close()
            raise
        self.got = {t["id"]: t for t in self.doc["tasks"]}
        return self.doc

    def named(self, name):
        hits = [t for t in self.doc["tasks"] if t["name"] == name]
        assert len(hits) == 1, f"{len(hits)} tasks named {name!r} in the dump"
        return hits[0]

    def name(self, tid):
        t = self.want.get(tid) or self.got.get(tid)
        return f"{t['name']}({tid})" if t else tid

    def names_of(self, ids):
        return {self.got[i]["name"] for i in ids}

    def close(self):
        self.fx.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def needs(interp_truth_version, first, what):
    if interp_truth_version < first:
        pytest.skip(f"{what} unavailable: CPython {'.'.join(map(str, interp_truth_version))} predates "
                    f"{first[0]}.{first[1]}")


def functions(stack):
    return [f["function"] for f in stack]


def assert_tasks_match_truth(s):
    assert_same_task_set(s)
    assert_stacks(s)
    assert_awaiting(s, only=lambda t: t["awaiting"] is not None)
    assert_awaited_by(s)
    bad = [f"{t['name']}: {t['error']}" for t in s.doc["tasks"] if t["error"]]
    assert not bad, f"tasks marked unreadable in a process that does not move: {bad}"


def version_of(interp):
    from zoo import python_version
    return tuple(int(x) for x in python_version(interp).split(".")[:2])


# --- thread stacks ---------------------------------------------------------------------

def test_remote_stack_trace(interp):
    """test_remote_stack_trace: a worker thread foo < baz < bar < Thread.run ...,
    the main thread waiting in join()."""
    with Scenario(interp, "threads") as s:
        assert_matches_truth(s.doc, s.truth)
        worker = [t for t in s.doc["threads"] if t["frames"] and t["frames"][0]["function"] == "foo"]
        assert len(worker) == 1, "the thread blocked in foo"
        assert functions(worker[0]["frames"])[:6] == ["foo", "baz", "bar", "run", "_bootstrap_inner", "_bootstrap"]
        if version(s) >= (3, 11):
            assert [f["qualname"] for f in worker[0]["frames"][:6]] == \
                ["foo", "baz", "bar", "Thread.run", "Thread._bootstrap_inner", "Thread._bootstrap"]
        main = [t for t in s.doc["threads"] if t["name"] == "MainThread"][0]
        assert functions(main["frames"])[-1] == "<module>"
        assert "threads" in functions(main["frames"]), "the main thread waits in join() called by threads()"


def test_non_ascii_names(interp):
    """test_remote_stack_trace_non_ascii_names: file and function names in
    every str kind (Latin-1, BMP, astral)."""
    with Scenario(interp, "non-ascii") as s:
        assert_matches_truth(s.doc, s.truth)
        hits = [f for t in s.doc["threads"] for f in t["frames"] if f["function"] == s.facts["function"]]
        assert len(hits) == 1, f"no frame named {s.facts['function']!r}"
        assert hits[0]["file"] == s.facts["file"]


def test_large_linetable(interp):
    """test_self_trace_with_large_linetable: a code object whose line table
    is larger than 4096 bytes gives the right line."""
    with Scenario(interp, "large-linetable") as s:
        assert s.facts["linetable_bytes"] > 4096
        assert_matches_truth(s.doc, s.truth)
        hits = [f for t in s.doc["threads"] for f in t["frames"] if f["file"] == "large_linetable.py"]
        assert [f["line"] for f in hits] == [s.facts["expected_line"]]


def test_empty_native_thread_stack(interp):
    """test_empty_native_thread_stack: a C thread with a thread state and no
    Python frame is listed, with no frames and no error."""
    with Scenario(interp, "empty-c-thread") as s:
        known = {t["thread_id"] for t in s.truth["threads"]}
        extra = [t for t in s.doc["threads"] if t["thread_id"] not in known]
        assert len(extra) == s.facts["empty_threads"], f"threads not in sys._current_frames(): {extra}"
        assert extra[0]["frames"] == [] and extra[0]["error"] is None
        for t in s.truth["threads"]:
            got = [d for d in s.doc["threads"] if d["thread_id"] == t["thread_id"]]
            assert got and got[0]["frames"] == t["frames"], f"frames of {t['name']}"


def test_subinterpreters(interp):
    """test_subinterpreter_stack_trace, test_multiple_subinterpreters_with_threads
    and test_all_awaited_by_covers_every_interpreter: threads and asyncio
    tasks of subinterpreters are read, with their interpreter's id."""
    with Scenario(interp, "subinterpreters") as s:
        ids = {t["interpreter_id"] for t in s.doc["threads"]}
        assert 0 in ids and len(ids) >= 4, f"interpreters seen: {ids}"
        funcs = {f["function"] for t in s.doc["threads"] for f in t["frames"]}
        want = {"main_worker", "worker1", "nested_func"} | ({"worker2"} if version(s) >= (3, 12) else set())
        assert want <= funcs
        sub_threads = [t for t in s.doc["threads"] if t["interpreter_id"] > 0 and t["frames"]]
        # Two subinterpreters running two threads each, plus the threads that
        # run them (3.10/3.11 allow no thread in a subinterpreter).
        assert len(sub_threads) >= (7 if version(s) >= (3, 12) else 3)
        sub_tasks = [t for t in s.doc["tasks"] if t["interpreter_id"] > 0]
        assert [functions(t["stack"]) for t in sub_tasks] == [["sleep", "sub_worker"]]
        assert not s.doc["warnings"], s.doc["warnings"]


def test_only_active_thread(interp):
    """test_only_active_thread: one thread holds the GIL, the busy one."""
    with Scenario(interp, "gil", dump=False) as s:
        busy = s.facts["busy_thread"]
        holders = []
        for _ in range(20):
            doc = s.redump()
            held = [t["thread_id"] for t in doc["threads"] if t["holds_gil"]]
            assert len(held) <= 1, f"{len(held)} threads hold the GIL at once"
            holders += held
            if busy in holders:
                break
        assert busy in holders, "the busy thread was never seen holding the GIL"


def test_libpython_mapped_twice(interp):
    """test_self_trace_after_ctypes_import: libpython loaded a second time by
    ctypes (shared builds) does not confuse the reader."""
    with Scenario(interp, "ctypes") as s:
        assert_matches_truth(s.doc, s.truth)


def test_frames_follow_the_target(interp):
    """TestFrameCaching (line updates, stack shrinking and growing,
    recursion, new reader): each dump shows where the target is now."""
    with Scenario(interp, "steps", dump=False) as s:
        truth_path = s.fx.truth_path
        lines = []
        for n in range(1, 6):
            path = truth_path if n == 1 else Path(f"{truth_path}.step{n}")
            deadline = time.monotonic() + 30
            while not path.exists():
                assert time.monotonic() < deadline, f"step {n} never published"
                time.sleep(0.02)
            truth = json.loads(path.read_text())
            doc = s.redump()
            assert_matches_truth(doc, truth)
            main = [t for t in doc["threads"] if t["name"] == "MainThread"][0]
            names = functions(main["frames"])
            if n in (1, 2):
                at = names.index("step")  # under it: signal.sigwait's wrapper on some versions
                assert names[at:at + 4] == ["step", "level3", "level2", "level1"]
                lines.append(main["frames"][at + 1]["line"])
            elif n == 3:
                assert "deeper" in names and "level3" not in names
            elif n == 4:
                assert names.count("recurse") == 6
            if n > 1:
                path.unlink()
            os.kill(s.fx.pid, signal.SIGUSR1)
        assert lines[0] < lines[1], "same function, a later line"


# --- asyncio: test_external_inspection ----------------------------------------------------

@pytest.mark.parametrize("variant", ["taskgroup", "taskgroup-eager"])
def test_async_remote_stack_trace(interp, variant):
    """test_async_remote_stack_trace (both task factories): a TaskGroup whose
    c2_root runs c5 < c4 < c3 < c2 and whose sub_main tasks await it."""
    needs(version_of(interp), (3, 12) if variant.endswith("eager") else (3, 11),
          "eager task factory" if variant.endswith("eager") else "TaskGroup")
    with Scenario(interp, variant) as s:
        assert_tasks_match_truth(s)
        # asyncio.run()'s task is "Task-1" (3.13.0's eager factory names it
        # "None": what get_name() says is what is compared).
        main = [t["name"] for t in s.truth["tasks"] if t["stack"][-1]["function"] == "tg_main"]
        assert len(main) == 1
        rel = {t["name"]: s.names_of(t["awaited_by"]) for t in s.doc["tasks"]}
        assert rel == {"c2_root": {main[0], "sub_main_1", "sub_main_2"}, main[0]: set(),
                       "sub_main_1": {main[0]}, "sub_main_2": {main[0]}}
        aexit = ["_aexit", "__aexit__"] if version(s) >= (3, 14) else ["__aexit__"]
        assert functions(s.named(main[0])["stack"]) == aexit + ["tg_main"]
        root = s.named("c2_root")
        assert root["state"] == "running"
        assert functions(root["stack"]) == ["c5", "c4", "c3", "c2"]
        for sub in ("sub_main_1", "sub_main_2"):
            assert functions(s.named(sub)["stack"]) == ["c1"]
        assert s.doc["findings"] == [] and s.rc == EXIT_OK


def test_asyncgen_remote_stack_trace(interp):
    """test_asyncgen_remote_stack_trace: one task, running inside the async
    generator it iterates."""
    with Scenario(interp, "asyncgen") as s:
        assert_tasks_match_truth(s)
        assert len(s.doc["tasks"]) == 1
        t = s.named("Task-1")
        assert functions(t["stack"]) == ["gen_nested_call", "gen", "agen_main"]
        assert t["awaited_by"] == []


def test_async_gather_remote_stack_trace(interp):
    """test_async_gather_remote_stack_trace: Task-2 runs deep < c1, Task-1
    awaits it through gather."""
    with Scenario(interp, "gather") as s:
        assert_tasks_match_truth(s)
        rel = {t["name"]: s.names_of(t["awaited_by"]) for t in s.doc["tasks"]}
        assert rel == {"Task-1": set(), "Task-2": {"Task-1"}}
        assert functions(s.named("Task-1")["stack"]) == ["gather_main"]
        assert functions(s.named("Task-2")["stack"]) == ["deep", "g_c1"]


def test_async_staggered_race_remote_stack_trace(interp):
    """test_async_staggered_race_remote_stack_trace: the racer runs deep <
    c1 < run_one_coro; from 3.14, staggered_race records that Task-1 awaits it."""
    with Scenario(interp, "staggered") as s:
        assert_tasks_match_truth(s)
        t2 = s.named("Task-2")
        assert functions(t2["stack"]) == ["deep", "s_c1", "run_one_coro"]
        if version(s) >= (3, 14):
            assert [f["qualname"] for f in s.named("Task-1")["stack"]] == ["staggered_race", "staggered_main"]
            assert s.names_of(t2["awaited_by"]) == {"Task-1"}


def test_async_global_awaited_by(interp):
    """test_async_global_awaited_by: an echo server and 100 clients in a
    TaskGroup, each sleeping after its exchange."""
    needs(version_of(interp), (3, 11), "TaskGroup")
    with Scenario(interp, "echo-server") as s:
        assert_tasks_match_truth(s)
        assert len(s.doc["tasks"]) >= 100
        aexit = ["_aexit", "__aexit__"] if version(s) >= (3, 14) else ["__aexit__"]
        main = s.named("Task-1")
        assert functions(main["stack"]) == aexit + ["server_main"]
        server = s.named("server task")
        assert functions(server["stack"]) == ["serve_forever"]
        assert s.names_of(server["awaited_by"]) == {"Task-1"}
        spam = s.named("echo client spam")
        clients = [t for t in s.doc["tasks"] if spam["id"] in t["awaited_by"]]
        assert len(clients) >= s.facts["clients"] >= 100
        assert all(functions(t["stack"]) == ["sleep", "echo_client"] for t in clients)
        assert functions(spam["stack"])[:len(aexit) + 1] == aexit + ["echo_client_spam"]


def test_async_awaited_by_skips_set_tombstones(interp):
    """test_async_awaited_by_skips_set_tombstones (3.14+): a deleted slot of
    the awaited_by set is not an awaiter."""
    needs(version_of(interp), (3, 14), "asyncio.future_add_to_awaited_by")
    with Scenario(interp, "tombstones") as s:
        assert_tasks_match_truth(s)
        victim = s.named("victim")
        assert s.names_of(victim["awaited_by"]) == {"remaining"}


@pytest.mark.parametrize("variant", ["worker-thread-suspended", "worker-thread-running"])
def test_asyncio_on_another_thread(interp, variant):
    """test_async_global_awaited_by_from_non_main_thread and
    test_async_remote_stack_trace_from_non_main_thread: the loop runs on a
    thread that is not the main one."""
    with Scenario(interp, variant) as s:
        assert_tasks_match_truth(s)
        t = s.named("worker task")
        assert t["thread_id"] == s.facts["worker_thread"]
        if variant.endswith("running"):
            assert t["state"] == "running"
            assert functions(t["stack"]) == ["worker_blocking_call", "worker_task_running"]


def test_long_task_name_kept_whole(interp):
    """test_long_task_name_is_truncated: CPython cuts a 300-character name
    to 255; aioscope keeps it whole (up to 1024 characters)."""
    with Scenario(interp, "long-name") as s:
        assert_tasks_match_truth(s)
        assert s.named(s.facts["long_name"])["name"] == "x" * 300


def test_recursive_coroutine_stack_is_not_truncated(interp):
    """test_recursive_coroutine_stack_is_not_truncated: rec(3) awaiting
    rec(2)... all four are on the running task's stack."""
    with Scenario(interp, "recursive") as s:
        assert_tasks_match_truth(s)
        t = s.named("rec")
        assert t["state"] == "running"
        assert functions(t["stack"]) == ["rec"] * 4


# --- asyncio: what the port found -----------------------------------------------------------

def test_running_async_generator_wrappers(interp):
    """A task whose coroutine is anext(agen()), agen.aclose() or
    anext(agen, default), running inside the generator: its stack is the
    generator's frames (CPython reports the async generator)."""
    with Scenario(interp, "agen-wrappers-running") as s:
        assert_tasks_match_truth(s)
        for name, agen in (("anext-running", "agen_blocks"), ("aclose-running", "agen_closing"),
                           ("anext-default-running", "agen_blocks")):
            t = s.named(name)
            assert t["state"] == "running", f"{name} is {t['state']}"
            assert functions(t["stack"]) == [agen], f"{name}: {functions(t['stack'])}"


def test_suspended_async_generator_wrappers(interp):
    """The same wrappers suspended: the generator awaits asyncio.sleep()."""
    with Scenario(interp, "agen-wrappers-suspended") as s:
        assert_tasks_match_truth(s)
        assert functions(s.named("anext-suspended")["stack"]) == ["sleep", "agen_sleeps"]
        assert functions(s.named("anext-default-suspended")["stack"]) == ["sleep", "agen_sleeps"]
        assert functions(s.named("aclose-suspended")["stack"]) == ["sleep", "agen_closing_sleeps"]
        for name in ("anext-suspended", "anext-default-suspended", "aclose-suspended"):
            assert s.named(name)["awaiting"]["kind"] == "sleep"


def test_classes_named_like_wrappers_are_not_followed(interp):
    """A class defined in Python named async_generator_asend (or _athrow)
    whose first slot holds another task's coroutine: it is an awaitable like
    any other, not followed into that coroutine."""
    with Scenario(interp, "decoy") as s:
        assert_tasks_match_truth(s)
        for cls in ("async_generator_asend", "async_generator_athrow"):
            t = s.named(f"awaits-{cls}")
            assert functions(t["stack"]) == ["decoy_waiter"]
            assert t["awaiting"]["kind"] == "other" and t["awaiting"]["type"] == cls
        assert functions(s.named("victim")["stack"]) == ["wait", "victim_body"]


def test_await_cycles(interp):
    """test_tools' cycles: two await cycles sharing a task are two findings
    (asyncio's pstree prints both), and a task gathering itself is one."""
    with Scenario(interp, "cycles") as s:
        assert_tasks_match_truth(s)
        found = sorted(sorted(f["tasks"]) for f in s.doc["findings"] if f["kind"] == "await-cycle")
        assert found == sorted(s.facts["cycles"])
        assert s.rc == EXIT_STUCK
        assert [f for f in s.doc["findings"] if f["kind"] != "await-cycle"] == []


@pytest.mark.parametrize("depth", [5000, 50000])
def test_chain_deeper_than_the_cap_keeps_innermost_frames(interp, depth):
    """A coroutine chain deeper than aioscope reads (4096 coroutines): the
    innermost frames are kept, stack[0] is still what it awaits, and the
    outer ones are counted in omitted_frames."""
    with Scenario(interp, "deep-chain", "--depth", str(depth)) as s:
        t = s.named("deep")
        want = s.want[t["id"]]["stack"]
        assert len(want) == depth + 2  # level() depth+1 times, and sleep
        assert len(t["stack"]) == 4096
        assert t["omitted_frames"] == len(want) - 4096
        assert [(f["function"], f["line"]) for f in t["stack"]] == \
            [(f["function"], f["line"]) for f in want[:4096]]
        assert t["awaiting"]["kind"] == "sleep"
        assert t["error"] is None
        r = run_aioscope("dump", s.fx.pid, timeout=120)
        assert r.returncode == EXIT_OK, r.stderr
        assert f"\u2026 {len(want) - 4096} frames omitted" in r.stdout


# --- test_tools: trees ---------------------------------------------------------------------

def test_tools_tree(interp):
    """test_tools' first tree: a timer task awaited through awaiter3 <
    awaiter2 < awaiter by four tasks of two TaskGroups, under a third."""
    needs(version_of(interp), (3, 11), "TaskGroup")
    with Scenario(interp, "tools-tree") as s:
        assert_tasks_match_truth(s)
        timer = s.named("timer")
        assert s.names_of(timer["awaited_by"]) == {"child1_1", "child2_1", "child1_2", "child2_2"}
        for root in ("root1", "root2"):
            kids = {t["name"] for t in s.doc["tasks"] if s.named(root)["id"] in t["awaited_by"]}
            assert kids == {f"child1_{root[-1]}", f"child2_{root[-1]}"}
            assert s.names_of(s.named(root)["awaited_by"]) == {"Task-1"}
        for child in ("child1_1", "child2_1", "child1_2", "child2_2"):
            assert functions(s.named(child)["stack"]) == ["awaiter3", "awaiter2", "awaiter"]


def test_tools_roots_on_threads(interp):
    """test_tools' two roots (and a root without subtasks), each loop on its
    own thread."""
    with Scenario(interp, "tools-two-roots") as s:
        assert_tasks_match_truth(s)
        loops = s.truth["loops"]
        for t in s.doc["tasks"]:
            assert t["thread_id"] == loops[t["loop"]], f"{t['name']} on thread {t['thread_id']}"
        for prefix in ("main", "main2"):
            kids = [t for t in s.doc["tasks"] if t["name"].startswith(prefix + "-")]
            assert len(kids) == 3
            parents = {p for k in kids for p in k["awaited_by"]}
            assert len(parents) == 1, f"the {prefix} children are awaited by {parents}"
            parent = s.got[parents.pop()]
            assert {k["thread_id"] for k in kids} == {parent["thread_id"]}
            assert parent["awaited_by"] == []
        threads = {t["thread_id"] for t in s.doc["tasks"]}
        assert len(threads) == 3, "three loops, three threads"
