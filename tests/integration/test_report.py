"""`aioscope report`, `run --report` and `aioscope export`, on real fixtures,
opened in a real browser (Debian's headless Chromium, driven over the
DevTools pipe: tests/integration/browser.py). Assertions are on the rendered
DOM; screenshots go to each test's tmp_path.

One interpreter is enough here (what is tested is the rendering of what the
agent and `dump` report, which the other test files check per interpreter):
the first usable of PREFERRED.
"""
import copy
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from agent_helpers import Stream, aioscope_run, host_only, match_stalls, out_path, read_json
from browser import Browser, chromium_path, dump_dom
from harness import AIOSCOPE, ROOT, Fixture, dump_json, run_aioscope
from zoo import ZOO

PREFERRED = ["3.12", "3.13", "3.11", "3.10", "3.11-debian"]
EXIT_BAD_INPUT = 8
EXIT_OUTPUT_FAILED = 14
EXIT_TIMEOUT = 124
SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"


@pytest.fixture(scope="module")
def interp():
    for name in PREFERRED:
        i = next(z for z in ZOO if z.name == name)
        if i.unavailable() is None and i.root == "/":
            i.prepare()
            return i
    pytest.skip("no host CPython of the zoo is available: " + ", ".join(PREFERRED))


@pytest.fixture(scope="module")
def browser():
    if not chromium_path():
        pytest.skip("chromium is not installed (tests/viewer/setup.sh installs Debian's chromium)")
    with Browser() as b:
        yield b


def url(path, view="overview"):
    return Path(path).resolve().as_uri() + "#" + view


def open_view(browser, path, view):
    browser.open(url(path, view))
    assert not browser.console_errors(), browser.console_errors()
    return browser.text("#view")


# --------------------------------------------------------------------------------------
# The lock-order deadlock (dump --json) and the stall fixture (run --output)

@pytest.fixture(scope="module")
def deadlock(interp, tmp_path_factory):
    d = tmp_path_factory.mktemp("deadlock")
    with Fixture(interp, "aio_deadlock_locks.py", "--variant", "deadlock") as fx:
        r = run_aioscope("dump", "--json", fx.pid)
        assert r.returncode == 10, f"dump of a deadlock exits 10, got {r.returncode}: {r.stderr}"
        (d / "deadlock.json").write_text(r.stdout)
        names = sorted(t["name"] for t in fx.truth["tasks"] if t["name"].startswith("lock-"))
    assert names == ["lock-ab", "lock-ba"], names
    return {"path": d / "deadlock.json", "names": names, "doc": json.loads(r.stdout)}


@pytest.fixture(scope="module")
def stalls(interp, tmp_path_factory):
    host_only(interp)
    d = tmp_path_factory.mktemp("stalls")
    truth_path = out_path(interp, "agent_stalls")
    events = d / "stalls.jsonl"
    s = aioscope_run(interp.argv("agent_stalls.py", "--truth", truth_path, "--episodes", "2", "--bursts", "0"),
                     "--stall-threshold", "100ms", "--snapshot-every", "500ms", "--output", events)
    truth = read_json(truth_path)
    truth_path.unlink()
    assert "error" not in truth, truth["error"]
    written = Stream(s.argv, s.rc, "", events.read_text(), s.seconds, events_on="stderr")
    pairs, extra, missed = match_stalls(written, truth["episodes"])
    assert not missed and all(end for _, end, _ in pairs), written.summary()
    # A starved machine makes other callbacks slow too (real stalls, but not
    # the fixture's): the report's tests judge the episodes only.
    ours = {st["stall_id"] for st, _, _ in pairs}
    lines = [e for e in (json.loads(x) for x in events.read_text().splitlines())
             if e["type"] not in ("stall", "stall_end") or e["stall_id"] in ours]
    events.write_text("".join(json.dumps(e) + "\n" for e in lines))
    ends = {e["stall_id"]: e for e in lines if e["type"] == "stall_end"}
    assert len(ends) == len(truth["episodes"]), s.summary()
    # The stalling function, as the fixture's own sampler saw it.
    functions = {ep["stack"][0]["function"] for ep in truth["episodes"]}
    assert functions == {"block_for"}, functions
    return {"path": events, "truth": truth, "ends": ends, "events": lines, "function": "block_for"}


@pytest.fixture(scope="module")
def report(deadlock, stalls, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    r = run_aioscope("report", deadlock["path"], stalls["path"], "-o", out)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    return out


def test_report_is_one_file_that_needs_nothing_else(report):
    html = report.read_text()
    assert "<script src=" not in html and "<link " not in html
    assert not re.search(r"(?i)(src|href)=\"?(https?:)?//", html), "the report refers to the network"
    # Every script element that starts also ends where the page says: the
    # data (which names a '</script>'-free JSON) did not end one early.
    assert html.count("<script") == html.count("</script>")


def test_report_shows_the_deadlock_and_the_stall(report, browser, deadlock, stalls, tmp_path):
    overview = open_view(browser, report, "overview")
    assert "lock-deadlock" in overview
    assert stalls["function"] in overview
    browser.screenshot(tmp_path / "overview.png")

    tasks = open_view(browser, report, "tasks")
    for name in deadlock["names"]:
        assert name in tasks
    finding = deadlock["doc"]["findings"][0]
    assert finding["kind"] == "lock-deadlock"
    assert finding["message"] in tasks
    # The cycle is drawn: both tasks in the diagram, an arrow each way.
    labels = browser.eval("[...document.querySelectorAll('svg.cycle .cycle-node text')].map(t => t.textContent).sort()")
    assert labels == deadlock["names"]
    assert browser.eval("document.querySelectorAll('svg.cycle path.edge').length") == 2
    flagged = browser.eval("[...document.querySelectorAll('.task.flagged .task-name')].map(e => e.textContent).sort()")
    assert flagged == deadlock["names"]
    browser.screenshot(tmp_path / "tasks.png")
    if os.environ.get("AIOSCOPE_DOCS_SCREENSHOT"):
        # The README's picture: the page down to the end of the task tree.
        bottom = browser.eval("Math.ceil(document.querySelector('#forest').getBoundingClientRect().bottom) + 12")
        browser.screenshot(ROOT / "docs" / "report.png", height=min(bottom, 900))

    view = open_view(browser, report, "stalls")
    rows = browser.eval("document.querySelectorAll('#stall-table tr.stall-row').length")
    assert rows == len(stalls["ends"])
    assert stalls["function"] in browser.text("#stall-table")
    assert stalls["function"] in browser.text("#flame")
    durations = sorted(round(e["duration_ms"]) for e in stalls["ends"].values())
    shown = sorted(int(m) for m in re.findall(r"\t(\d+) ms\t", view))
    assert shown == durations, view
    browser.screenshot(tmp_path / "stalls.png")


def test_stall_rows_say_when_the_task_is_not_known(browser, stalls, tmp_path):
    """A stall's task cell names its task; says "(task unknown)" when the
    task did not read (`task_error`, shown on hover), "(not read)" for a
    stall never read, and "(a callback, no task)" only when the read found
    none. The fixture's real events, three stalls' tasks taken out."""
    events = [copy.deepcopy(e) for e in stalls["events"]]
    ours = [e for e in events if e["type"] == "stall"]
    assert len(ours) == 2 and all(st["task"] for st in ours), ours
    torn, unread = ours
    plain = copy.deepcopy(torn)
    plain_end = copy.deepcopy(stalls["ends"][torn["stall_id"]])
    plain["stall_id"] = plain_end["stall_id"] = 99
    plain["task"] = None
    torn["task"] = None
    torn["task_error"] = "its running task did not read: a torn read"
    unread.update(task=None, captured=False, stack=[], stack_at=None)
    path = tmp_path / "tasks_unknown.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in [*events, plain, plain_end]))
    out = tmp_path / "report.html"
    r = run_aioscope("report", path, "-o", out)
    assert r.returncode == 0, r.stderr
    open_view(browser, out, "stalls")
    rows = browser.eval("[...document.querySelectorAll('#stall-table tr.stall-row')]"
                        ".map(r => [r.cells[0].textContent, r.textContent])")
    cells = {int(k): text for k, text in rows}
    assert "(task unknown)" in cells[torn["stall_id"]], rows
    assert "(not read)" in cells[unread["stall_id"]], rows
    assert "(a callback, no task)" in cells[99], rows
    assert sum("(a callback, no task)" in text for _, text in rows) == 1, rows
    hover = browser.eval("[...document.querySelectorAll('#stall-table span[title]')].map(s => s.title)")
    assert torn["task_error"] in hover, hover


def test_report_with_dump_dom(report, deadlock, stalls):
    """The same facts through `chromium --dump-dom`, without the DevTools driver."""
    if not chromium_path():
        pytest.skip("chromium is not installed")
    dom = dump_dom(url(report, "tasks"))
    for name in deadlock["names"]:
        assert f">{name}<" in dom
    assert "lock-deadlock" in dom
    dom = dump_dom(url(report, "stalls"))
    assert stalls["function"] in dom


def test_viewer_opens_files_from_disk(browser, deadlock, stalls):
    """viewer/index.html straight from the source tree (file://, its scripts
    as separate files): files chosen with its file input are shown."""
    open_view(browser, ROOT / "viewer" / "index.html", "overview")
    assert "Open a snapshot" in browser.text("#view")
    browser.set_files("#file-input", [deadlock["path"], stalls["path"]])
    browser.wait_for("document.querySelector('#problems')")
    text = browser.text("#view")
    assert "lock-deadlock" in text and stalls["function"] in text
    assert "2 processes" in text
    assert not browser.console_errors()


def test_viewer_interaction(report, browser, stalls, tmp_path):
    """Real clicks: a tab, a flame graph frame (zooms and narrows the table to
    its stalls), a stall row (opens its stacks), a task name (its stack), the
    search box."""
    open_view(browser, report, "overview")
    browser.click("#tab-stalls")
    browser.wait_for("document.querySelector('#flame .frame')")
    n = len(stalls["ends"])
    browser.click(f'#flame .frame[title^="{stalls["function"]} "]')
    browser.wait_for("document.querySelector('.filter-note')")
    assert "Showing the" in browser.text(".filter-note")
    assert browser.eval("document.querySelectorAll('#stall-table tr.stall-row').length") == n
    browser.click("#stall-table tr.stall-row")
    detail = browser.text("tr.stall-detail")
    assert "Native stack" in detail and "time_sleep" in detail, detail

    browser.click("#tab-tasks")
    browser.wait_for("document.querySelector('#forest')")
    browser.click(".task:not(.flagged) .task-name")
    assert browser.eval("document.querySelectorAll('.task .details').length") >= 3  # 2 flagged + the one clicked
    browser.eval("(() => { const s = document.querySelector('#task-search'); s.value = 'lock-ab'; "
                 "s.dispatchEvent(new Event('input')); })()")
    browser.wait_for("location.hash.includes('q=lock-ab')")
    browser.wait_for("document.querySelector('#task-count') && document.querySelector('#task-count').textContent.startsWith('1 of')")
    browser.click("#tab-timeline")
    browser.wait_for("document.querySelectorAll('.timeline-svg rect.stall-bar').length > 0")
    assert browser.eval("document.querySelectorAll('.timeline-svg rect.stall-bar').length") == n
    # Hovering a stall shows its stacks; the wheel zooms (the time axis changes).
    browser.hover(".timeline-svg rect.stall-bar")
    browser.wait_for("!document.querySelector('#tooltip').hidden")
    tip = browser.text("#tooltip")
    assert stalls["function"] in tip and "native:" in tip, tip
    ticks = browser.eval("[...document.querySelectorAll('.timeline-svg .tick')].map(t => t.textContent).join(' ')")
    browser.wheel(".timeline-svg rect.stall-bar", -300)
    browser.wait_for(f"[...document.querySelectorAll('.timeline-svg .tick')].map(t => t.textContent).join(' ') !== {json.dumps(ticks)}")
    browser.screenshot(tmp_path / "timeline.png")
    assert not browser.console_errors()


# --------------------------------------------------------------------------------------
# Hostile names: from a real process (aio_hostile_names.py), in a dump and a stream

@pytest.fixture(scope="module")
def hostile(interp, tmp_path_factory):
    host_only(interp)
    d = tmp_path_factory.mktemp("hostile")
    with Fixture(interp, "aio_hostile_names.py", "--mode", "wait") as fx:
        (d / "dump.json").write_text(json.dumps(dump_json(fx.pid)))
        facts = fx.truth["facts"]
    truth_path = out_path(interp, "aio_hostile_names")
    # -q: the events are read from the file, split at "\n" only (a name holds U+2028).
    s = aioscope_run(interp.argv("aio_hostile_names.py", "--mode", "stall", "--truth", truth_path),
                     "-q", "--output", d / "stream.jsonl")
    stall_truth = read_json(truth_path)
    truth_path.unlink()
    types = [json.loads(x)["type"] for x in (d / "stream.jsonl").read_text().split("\n") if x]
    assert stall_truth["hooked"], s.stderr
    assert "stall" in types and "task_exception_unretrieved" in types, types
    out = d / "report.html"
    r = run_aioscope("report", d / "dump.json", d / "stream.jsonl", "-o", out)
    assert r.returncode == 0, r.stderr
    return {"report": out, "facts": facts, "stall": stall_truth}


def printable(s):
    """What the viewer shows for a name (viewer/js/core/dom.js printable)."""
    def esc(c):
        o = ord(c)
        return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"
    return re.sub("[\u0000-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]",
                  lambda m: esc(m.group()), s)


def test_hostile_names_render_as_text(hostile, browser, tmp_path):
    html = hostile["report"].read_text()
    assert html.count("<script") == html.count("</script>")
    assert "\u2028" not in html and "\u2029" not in html
    names = hostile["facts"]["names"]
    for view in ["overview", "timeline", "tasks", "stalls", "events"]:
        open_view(browser, hostile["report"], view)
        assert browser.eval("window.__pwned") is None, view
        assert browser.eval("document.querySelectorAll('img, [onerror]').length") == 0, view
        assert browser.eval("document.querySelectorAll('script').length") == html.count("<script"), view
        # A 10,000-character name does not widen the page.
        assert browser.eval("document.documentElement.scrollWidth <= innerWidth + 1"), view
        browser.screenshot(tmp_path / f"{view}.png")
        if view == "tasks":
            # The folded tasks list their names: all four, as text.
            # The fold's own name (the main task may come first).
            assert browser.eval("document.querySelector('.task .head .fold') !== null"), "no folded group"
            browser.eval("document.querySelector('.task .head .fold').parentElement.querySelector('.task-name').click()")
            text = browser.text("#forest")
            for name in names:
                shown = printable(name)
                assert shown[:60] in text, (view, shown[:60])
            assert "\\x1b[31m\\x00\\x07\\u202eevil\\u2028line\\u2029para" in text
            assert ("x" * 10000) not in text
        if view == "stalls":
            browser.click("#stall-table tr.stall-row")
            assert printable(hostile["facts"]["function"]) in browser.text("tr.stall-detail")
        if view == "events":
            text = browser.text("#event-list")
            assert hostile["stall"]["message"] in text and hostile["stall"]["lost_task"] in text


def test_hostile_report_data_round_trips(hostile, browser):
    """The names in the page's model are exactly the process's names."""
    open_view(browser, hostile["report"], "tasks")
    got = browser.eval("aioscope.app.model.snapshots[0].tasks.map(t => t.name).sort()")
    dumped = json.loads((hostile["report"].parent / "dump.json").read_text())
    assert got == sorted(t["name"] for t in dumped["tasks"])
    # What the dump holds is the process's names (a very long one cut, and marked).
    for name in hostile["facts"]["names"]:
        assert name in got or any(n.endswith("\u2026") and name.startswith(n[:-1]) for n in got), name[:40]
    fn = browser.eval("aioscope.app.model.stalls[0].ev.stack[0].qualname")
    assert fn == hostile["facts"]["function"] or fn == hostile["stall"]["function"]


# --------------------------------------------------------------------------------------
# Exports

def validate_speedscope(doc):
    """The required fields of speedscope's file format (src/lib/file-format-spec.ts)."""
    assert doc["$schema"] == SPEEDSCOPE_SCHEMA
    frames = doc["shared"]["frames"]
    assert isinstance(frames, list)
    for f in frames:
        assert isinstance(f["name"], str)
        assert set(f) <= {"name", "file", "line", "col"}
        if "line" in f:
            assert isinstance(f["line"], int)
    assert isinstance(doc["profiles"], list) and doc["profiles"]
    for p in doc["profiles"]:
        assert p["type"] in ("sampled", "evented")
        assert isinstance(p["name"], str)
        assert p["unit"] in ("none", "nanoseconds", "microseconds", "milliseconds", "seconds", "bytes")
        assert isinstance(p["startValue"], (int, float)) and isinstance(p["endValue"], (int, float))
        assert p["endValue"] >= p["startValue"]
        if p["type"] == "sampled":
            assert len(p["samples"]) == len(p["weights"])
            for stack in p["samples"]:
                assert all(isinstance(i, int) and 0 <= i < len(frames) for i in stack)
            assert all(isinstance(w, (int, float)) and w >= 0 for w in p["weights"])
        else:
            at, depth = p["startValue"], []
            for e in p["events"]:
                assert e["type"] in ("O", "C") and e["at"] >= at and 0 <= e["frame"] < len(frames)
                at = e["at"]
                if e["type"] == "O":
                    depth.append(e["frame"])
                else:
                    assert depth.pop() == e["frame"]
            assert not depth


def test_export_speedscope(stalls, tmp_path):
    out = tmp_path / "stalls.speedscope.json"
    r = run_aioscope("export", "--format", "speedscope", stalls["path"], "-o", out)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    validate_speedscope(doc)
    weights = sorted(w for p in doc["profiles"] for w in p["weights"])
    assert weights == pytest.approx(sorted(e["duration_ms"] for e in stalls["ends"].values()))
    frames = doc["shared"]["frames"]
    for p in doc["profiles"]:
        for stack in p["samples"]:
            names = [frames[i]["name"] for i in stack]
            assert stalls["function"] in names
            # Root first: the innermost Python frame comes after its callers, then native frames.
            assert names.index(stalls["function"]) > names.index("stall_episodes")


def test_export_speedscope_tasks(deadlock, tmp_path):
    out = tmp_path / "tasks.speedscope.json"
    r = run_aioscope("export", "--format", "speedscope", "--stacks", "tasks", deadlock["path"], "-o", out)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    validate_speedscope(doc)
    assert sum(len(p["samples"]) for p in doc["profiles"]) == len(deadlock["doc"]["tasks"])


def test_export_perfetto(stalls, deadlock, tmp_path):
    out = tmp_path / "trace.json"
    r = run_aioscope("export", "--format", "perfetto", stalls["path"], deadlock["path"], "-o", out)
    assert r.returncode == 0, r.stderr
    trace = json.loads(out.read_text())
    events = trace["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    assert len(complete) == len(stalls["ends"])
    t0 = trace["otherData"]["t0"]
    for e in complete:
        end = stalls["ends"][e["args"]["stall_id"]]
        assert e["dur"] == pytest.approx(end["duration_ms"] * 1000, abs=1)
        assert e["ts"] == pytest.approx((end["started_at"] - t0) * 1e6, abs=1)
        assert e["tid"] == end["native_id"] and e["pid"] == end["pid"]
        assert stalls["function"] in e["name"]
    # Task lifetimes: async slices, one id per task, begun and ended once.
    begins = [e for e in events if e["ph"] == "b"]
    ends = [e for e in events if e["ph"] == "e"]
    assert len({e["id"] for e in begins}) == len(begins) == len(ends)
    assert {e["name"] for e in begins} >= set(deadlock["names"])
    for b in begins:
        e = next(x for x in ends if x["id"] == b["id"])
        assert e["ts"] > b["ts"]
    names = {e["args"]["name"] for e in events if e["ph"] == "M"}
    assert any(n.startswith("python ") for n in names)


def test_export_folded(stalls, hostile, tmp_path):
    out = tmp_path / "stalls.folded"
    r = run_aioscope("export", "--format", "folded", stalls["path"], "-o", out)
    assert r.returncode == 0, r.stderr
    lines = out.read_text().splitlines()
    total = 0
    for line in lines:
        stack, count = line.rsplit(" ", 1)
        total += int(count)
        assert stalls["function"] in stack
    assert total == sum(max(1, round(e["duration_ms"])) for e in stalls["ends"].values())
    # A name with ';' or a newline cannot split a frame or a line.
    stream = hostile["report"].parent / "stream.jsonl"
    out2 = tmp_path / "hostile.folded"
    r = run_aioscope("export", "--format", "folded", stream, "-o", out2)
    assert r.returncode == 0, r.stderr
    text = out2.read_text()
    assert text.count("\n") == 1
    assert "%3Bframe%0Aline (" in text


def test_export_nothing_to_export_warns(deadlock, tmp_path):
    out = tmp_path / "empty.folded"
    r = run_aioscope("export", "--format", "folded", deadlock["path"], "-o", out)
    assert r.returncode == 0
    assert "nothing to export" in r.stderr
    assert out.read_text() == ""


# --------------------------------------------------------------------------------------
# run --report: written at the end, also on --timeout and Ctrl-C

def test_run_report_on_timeout(interp, browser, tmp_path):
    """A hung program (the lock deadlock) under `run --timeout --report`: the
    report holds the timeout's dump, with the deadlock."""
    host_only(interp)
    out = tmp_path / "hung.html"
    truth = out_path(interp, "aio_deadlock_locks")
    r = subprocess.run([str(AIOSCOPE), "run", "--json", "--timeout", "3s", "--report", str(out), "--",
                        *interp.argv("aio_deadlock_locks.py", "--variant", "deadlock", "--truth", str(truth))],
                       capture_output=True, text=True, timeout=120)
    truth.unlink(missing_ok=True)
    assert r.returncode == EXIT_TIMEOUT, r.stderr
    assert f"report written to {out}" in r.stderr
    tasks = open_view(browser, out, "tasks")
    assert "lock-ab" in tasks and "lock-ba" in tasks and "lock-deadlock" in tasks
    assert "timeout" in browser.text("#snapshot-select")


def test_run_report_on_ctrl_c(interp, browser, tmp_path):
    host_only(interp)
    out = tmp_path / "interrupted.html"
    truth = out_path(interp, "agent_stalls")
    # run's events are on its standard error, read by a thread: a reader that
    # waits for a line that never comes must not hang the test (nor a full
    # pipe hold aioscope).
    p = subprocess.Popen([str(AIOSCOPE), "run", "--json", "--report", str(out), "--",
                          *interp.argv("agent_stalls.py", "--truth", str(truth), "--episodes", "100")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(p.stderr.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while not any('"type":"stall_end"' in l for l in list(lines)) and time.monotonic() < deadline:
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        reader.join(timeout=10)
        truth.unlink(missing_ok=True)
    stderr = "".join(lines)
    assert '"type":"stall_end"' in stderr, stderr[-2000:]
    assert out.exists(), stderr
    assert f"report written to {out}" in stderr
    open_view(browser, out, "stalls")
    assert browser.eval("document.querySelectorAll('#stall-table tr.stall-row').length") >= 1
    assert "block_for" in browser.text("#stall-table")


def test_attach_report(interp, browser, tmp_path):
    """`attach --duration --report` to the hung deadlock: its snapshots, with the finding."""
    out = tmp_path / "attached.html"
    with Fixture(interp, "aio_deadlock_locks.py", "--variant", "deadlock") as fx:
        r = run_aioscope("attach", "--json", "--snapshot-every", "500ms", "--duration", "2s", "--report", out, fx.pid,
                         timeout=120)
        assert r.returncode == 0, r.stderr
        assert fx.alive()
    assert f"report written to {out}" in r.stderr
    tasks = open_view(browser, out, "tasks")
    assert "lock-ab" in tasks and "lock-ba" in tasks and "lock-deadlock" in tasks
    browser.click("#threads summary")
    assert "MainThread" in browser.text("#threads")


def test_run_report_says_stall_detection_missed_part_of_the_run(interp, browser, tmp_path):
    """A loop the agent could not see start (fixtures/agent_unseen_loop.py,
    no stall): the report does not pass it as clean. The Overview lists the
    gap as a problem and the Stalls view says that stall detection missed part
    of the run, not that no callback was ever slow."""
    host_only(interp)
    out = tmp_path / "gap.html"
    truth = out_path(interp, "agent_unseen_loop")
    r = subprocess.run([str(AIOSCOPE), "run", "--json", "--report", str(out), "--",
                        *interp.argv("agent_unseen_loop.py", "--block-ms", "0", "--truth", str(truth))],
                       capture_output=True, text=True, timeout=120)
    truth.unlink(missing_ok=True)
    assert r.returncode == 0, r.stderr
    gaps = [json.loads(l) for l in r.stderr.splitlines() if '"capability_gap"' in l]
    assert gaps, r.stderr[-2000:]
    overview = open_view(browser, out, "overview")
    assert "Not checked for part of the run" in overview, overview
    assert gaps[0]["message"] in overview
    stalls = open_view(browser, out, "stalls")
    assert "stall detection missed part of the run" in stalls, stalls
    assert "No stall: the event loop never ran" not in stalls, stalls


def test_run_report_text_summary_names_it(interp, tmp_path):
    """On a terminal, the summary names the report (script(1) gives a tty)."""
    host_only(interp)
    out = tmp_path / "tty.html"
    cmd = " ".join(f"'{a}'" for a in [str(AIOSCOPE), "run", "--report", str(out), "--",
                                      *interp.argv("agent_short.py")])
    r = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True, timeout=120)
    assert out.exists(), r.stdout + r.stderr
    assert f"Report: {out}" in r.stdout


# --------------------------------------------------------------------------------------
# Bad input and output

def test_report_bad_input(tmp_path):
    junk = tmp_path / "junk.json"
    junk.write_text('{"schema": "something/else"}')
    r = run_aioscope("report", junk, "-o", tmp_path / "r.html")
    assert r.returncode == EXIT_BAD_INPUT
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("aioscope: ") and "junk.json" in r.stderr
    assert not (tmp_path / "r.html").exists()
    r = run_aioscope("report", tmp_path / "missing.jsonl", "-o", tmp_path / "r.html")
    assert r.returncode == EXIT_BAD_INPUT and "cannot open" in r.stderr


def test_report_cut_off_stream_is_kept(stalls, tmp_path):
    text = stalls["path"].read_text()
    cut = tmp_path / "cut.jsonl"
    cut.write_text(text[: len(text) - 40])
    r = run_aioscope("report", cut, "-o", tmp_path / "r.html")
    assert r.returncode == 0
    assert "cut off" in r.stderr
    assert (tmp_path / "r.html").exists()


def test_report_unwritable_output(deadlock, tmp_path):
    r = run_aioscope("report", deadlock["path"], "-o", tmp_path / "no" / "such" / "dir.html")
    assert r.returncode == EXIT_OUTPUT_FAILED
    assert r.stderr.startswith("aioscope: cannot write")


# --------------------------------------------------------------------------------------
# Scale: 100,000 tasks

def test_report_of_100k_tasks(interp, browser, tmp_path):
    """A real snapshot of 100,001 tasks (aio_many.py): the report stays under
    20 MB and the viewer shows the folded forest. How fast it becomes
    interactive is measured by tests/bench/report_scale.py; the bound here
    only catches a viewer that hangs."""
    with Fixture(interp, "aio_many.py", "--tasks", "100000", truth_timeout=180) as fx:
        r = run_aioscope("dump", "--json", fx.pid, timeout=180)
        assert r.returncode == 0, r.stderr
        snap = tmp_path / "many.json"
        snap.write_text(r.stdout)
    del r
    out = tmp_path / "many.html"
    r = run_aioscope("report", snap, "-o", out, timeout=300)
    assert r.returncode == 0, r.stderr
    size = out.stat().st_size
    assert size < 20_000_000, f"{size / 1e6:.1f} MB"
    t = time.monotonic()
    browser.open(url(out, "tasks"), timeout=120)
    wall = time.monotonic() - t
    ready_ms = float(browser.eval("document.body.dataset.readyMs"))
    print(f"100k tasks: report {size / 1e6:.1f} MB (dump {snap.stat().st_size / 1e6:.1f} MB), "
          f"interactive after {ready_ms:.0f} ms in the page, {wall:.2f} s from navigation")
    assert "100001 tasks" in browser.text("#task-count")
    folds = browser.eval("[...document.querySelectorAll('.fold')].map(e => e.textContent)")
    assert sorted(folds) == ["\u00d725000"] * 4
    assert ready_ms < 15000
    snap.unlink()  # 100+ MB: not kept for pytest's last three runs
    out.unlink()


def test_report_of_an_hour_of_events(stalls, hostile, browser, tmp_path):
    """10,000 events over an hour: the real stall/stall_end pairs and
    silent-bug event of the fixtures, repeated with shifted times (and stall
    ids), with a snapshot a minute. Every view renders; the timeline draws
    every stall that is a pixel apart and the tables page."""
    evs = stalls["events"]
    hello = next(e for e in evs if e["type"] == "hello")
    pair = [next(e for e in evs if e["type"] == "stall"), next(e for e in evs if e["type"] == "stall_end")]
    snap = next((e for e in evs if e["type"] == "snapshot"), None)
    bug = next(json.loads(x) for x in (hostile["report"].parent / "stream.jsonl").read_text().split("\n")
               if x and json.loads(x)["type"] == "task_exception_unretrieved")
    t0 = hello["ts"]
    out = [hello]
    n_stalls, n_bugs = 4000, 1999
    for i in range(n_stalls):
        shift = 1 + i * 3599 / n_stalls
        for e in pair:
            e = dict(e, stall_id=i + 1, ts=t0 + shift + (e["ts"] - pair[0]["started_at"]),
                     started_at=t0 + shift, pid=hello["pid"])
            out.append(e)
    for i in range(n_bugs):
        out.append(dict(bug, ts=t0 + 2 + i * 3590 / n_bugs, pid=hello["pid"]))
    if snap:
        for i in range(60):
            out.append(dict(snap, ts=t0 + i * 60, pid=hello["pid"]))
    out.sort(key=lambda e: e["ts"])
    out = out[:10_000]
    assert len(out) == 10_000
    stream = tmp_path / "hour.jsonl"
    stream.write_text("".join(json.dumps(e) + "\n" for e in out))
    report = tmp_path / "hour.html"
    r = run_aioscope("report", stream, "-o", report)
    assert r.returncode == 0, r.stderr
    stalls_in = len([e for e in out if e["type"] == "stall"])
    for view in ["overview", "timeline", "stalls", "events", "tasks"]:
        text = open_view(browser, report, view)
        if view == "overview":
            assert f"{stalls_in} stalls" in text
        if view == "timeline":
            bars = browser.eval("document.querySelectorAll('.timeline-svg rect.stall-bar').length")
            assert 0 < bars <= stalls_in
            # Zooming in shows them apart.
            browser.click(".toolbar button")  # zoom in
            assert browser.eval("document.querySelectorAll('.timeline-svg rect.stall-bar').length") > 0
        if view == "stalls":
            assert browser.eval("document.querySelectorAll('#stall-table tr.stall-row').length") == 500
            browser.click("#stall-table tr.more button")
            assert browser.eval("document.querySelectorAll('#stall-table tr.stall-row').length") == 1000
        if view == "events":
            assert browser.eval("document.querySelectorAll('#event-list .event').length") == 300
    assert float(browser.eval("document.body.dataset.readyMs")) < 15000


def test_malformed_structure_renders(browser, tmp_path):
    """A crafted stream whose events have the right schema and type but wrong
    types everywhere else: every view renders (no view fails, no script
    error) and every export is written."""
    E = "aioscope/event/1"
    junk = [
        {"schema": E, "type": "hello", "ts": 1000.0, "pid": 5, "python": "3.12", "options": [1], "capabilities": {"x": None, "stall_detection": "active"}},
        {"schema": E, "type": "stall", "ts": 1001.0, "pid": 5, "stall_id": "one", "started_at": "soon", "elapsed_ms": None,
         "stack": "not a list", "native_stack": [None, 5, {"function": 7}], "task": "a string"},
        {"schema": E, "type": "stall", "ts": 1002.0, "pid": 5, "stall_id": 2, "native_id": 9, "started_at": 1002.0,
         "elapsed_ms": 150, "stack": [None, 3, {"qualname": ["x"], "file": {"a": 1}, "line": "7"}], "task": {"name": None}},
        {"schema": E, "type": "stall_end", "ts": 1003.0, "pid": 5, "stall_id": 2, "native_id": 9, "duration_ms": "long"},
        {"schema": E, "type": "snapshot", "ts": 1004.0, "pid": 5, "threads": [None, {"frames": "x", "name": 3}],
         "tasks": [None, 1, {"id": 5}, {"id": "0x1", "name": ["n"], "awaited_by": "0x1", "stack": [None], "awaiting": "lock", "holds": [None]},
                   {"id": "0x2", "awaited_by": ["0x2", "0x1", None], "awaiting": {"kind": "task", "task": 5, "children": "x"}}],
         "findings": [None, {"tasks": "x", "kind": 3}, {"kind": "await-cycle", "tasks": ["0x1", "0x2", "0x9"], "message": None}],
         "warnings": "none"},
        {"schema": E, "type": "task_exception_unretrieved", "ts": 1005.0, "pid": 5, "task": 7, "exception": {"traceback": [None, "x"]}},
        {"schema": E, "type": "cancellation_swallowed", "ts": 1005.5, "pid": "five", "caught_at": "here", "task_stack": {"a": 1}},
        {"schema": E, "type": "unawaited_coroutine", "ts": None, "pid": 5, "coroutine": None, "creating_stack": [1, 2]},
        {"schema": E, "type": "dropped", "ts": 1006.0, "pid": 5, "count": "many"},
        {"schema": E, "type": "exit", "ts": 1007.0, "pid": 5, "status": "bad", "timed_out": "yes"},
    ]
    stream = tmp_path / "junk.jsonl"
    stream.write_text("".join(json.dumps(e) + "\n" for e in junk))
    report = tmp_path / "junk.html"
    r = run_aioscope("report", stream, "-o", report)
    assert r.returncode == 0, r.stderr
    for view in ["overview", "timeline", "tasks", "stalls", "events"]:
        text = open_view(browser, report, view)
        assert "This view failed" not in text, (view, text[:500])
        if view == "stalls":
            assert browser.eval("document.querySelectorAll('#stall-table tr.stall-row').length") == 2
            browser.click("#stall-table tr.stall-row")
            browser.click("#flame .frame")
        if view == "tasks":
            browser.click(".task .task-name")
        assert not browser.console_errors(), view
    for fmt in ["speedscope", "perfetto", "folded"]:
        r = run_aioscope("export", "--format", fmt, stream, "-o", tmp_path / f"junk.{fmt}")
        assert r.returncode == 0, (fmt, r.stderr)
    validate_speedscope(json.loads((tmp_path / "junk.speedscope").read_text()))


def test_report_shows_thread_waits_holders_and_workers(interp, browser, tmp_path):
    """The cross-deadlock of aio_boundary.py (issue 12): in the report's
    threads panel each thread blocked in a threading wait says what it waits
    on and, for a lock, which thread holds it; held locks and executor
    workers are named, as the fixture built them."""
    with Fixture(interp, "aio_boundary.py", "--variant", "cross") as fx:
        r = run_aioscope("dump", "--json", fx.pid)
        facts = fx.truth["facts"]
    assert r.returncode == 10, f"dump of the cross deadlock exits 10, got {r.returncode}: {r.stderr}"
    (tmp_path / "cross.json").write_text(r.stdout)
    out = tmp_path / "cross.html"
    rr = run_aioscope("report", tmp_path / "cross.json", "-o", out)
    assert rr.returncode == 0, rr.stderr
    open_view(browser, out, "tasks")
    browser.click("#threads summary")
    text = browser.text("#threads")
    waits = 0
    for ident, fact in facts["threads"].items():
        w = fact.get("wait")
        if w:
            waits += 1
            assert f"[{w['kind']}]" in text and (w.get("object") or "") in text, (ident, w, text)
            if w.get("owner"):
                assert f"held by thread {w['owner']}" in text, (ident, w, text)
        for lock in fact.get("holds", []):
            assert f"holds {lock}" in text or f", {lock}" in text, (ident, lock, text)
    assert waits >= 2, facts["threads"]  # the loader waits for the lock, the refresher for reload's result
    assert "worker of executor" in text and "awaited by task \u2018handler\u2019" in text, text
    browser.screenshot(tmp_path / "threads.png")
