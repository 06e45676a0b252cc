"""Text output of dump and render on what a hostile or huge program holds.

- Hostile names (fixtures/aio_hostile_terminal.py): task, thread, function and
  file names made of escape sequences, C1 controls, bidi overrides, HTML,
  NUL, a lone surrogate, 10,000 characters, and a kernel thread name cut
  mid-character. Text output (trees, table, colours on and off, and render
  of the JSON) must not contain one byte a terminal would act on, and must
  show the names escaped; JSON keeps them exactly.
- An await chain 20,000 and 100,000 tasks deep (fixtures/aio_deep_chain.py)
  and 100,000 tasks in 5,000 distinct stacks (fixtures/aio_many_stacks.py):
  dump and render finish, with output bounded by what is worth reading (the
  chain folded, identical tasks grouped) while JSON has every task.
  tests/bench/text_vs_json.py measures the time.
"""
import json
import re
import subprocess

import pytest

from harness import AIOSCOPE, Fixture, dump_json, run_aioscope

# What aioscope writes itself with --color always.
COLOR = re.compile(rb"\x1b\[[0-9;]*m")
# Code points a terminal acts on: C0 but newline, DEL, C1, bidi and line controls.
HAZARD = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def assert_terminal_safe(raw: bytes, colors=False):
    if colors:
        raw = COLOR.sub(b"", raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise AssertionError(f"text output is not UTF-8 at byte {e.start}: {raw[max(0, e.start - 40):e.start + 20]!r}")
    m = HAZARD.search(text)
    assert m is None, f"raw control character {m.group()!r} in text output: {text[max(0, m.start() - 60):m.start() + 20]!r}"


def escaped(s: str) -> str:
    """A name as terminalSafe() shows it (docs/security.md)."""
    out = []
    for ch in s:
        cp = ord(ch)
        if ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif cp < 0x20 or cp == 0x7F:
            out.append(f"\\x{cp:02x}")
        elif 0x80 <= cp <= 0x9F or cp in (0x061C, 0x200E, 0x200F, 0x2028, 0x2029) or 0x202A <= cp <= 0x202E \
                or 0x2066 <= cp <= 0x2069:
            out.append(f"\\u{cp:04x}")
        elif 0xD800 <= cp <= 0xDFFF:
            out.append("\ufffd")  # the reader replaces lone surrogates
        else:
            out.append(ch)
    return "".join(out)


def text(*args, timeout=300):
    r = subprocess.run([str(AIOSCOPE), *map(str, args)], capture_output=True, timeout=timeout)
    assert r.returncode in (0, 10), f"aioscope {' '.join(map(str, args))} exited {r.returncode}: {r.stderr[-500:]!r}"
    assert_terminal_safe(r.stderr)
    return r.stdout


# --- hostile names -------------------------------------------------------------------

@pytest.fixture(scope="module")
def hostile(interp, tmp_path_factory):
    with Fixture(interp, "aio_hostile_terminal.py") as fx:
        doc = dump_json(fx.pid)
        outputs = {
            "tree": text("dump", "--color", "never", fx.pid),
            "tree-color": text("dump", "--color", "always", fx.pid),
            "table": text("dump", "--table", "--color", "never", fx.pid),
            "table-color": text("dump", "--table", "--color", "always", fx.pid),
        }
        saved = tmp_path_factory.mktemp("hostile") / "snapshot.json"
        saved.write_text(json.dumps(doc))
        outputs["render"] = text("render", "--color", "never", saved)
        outputs["render-table"] = text("render", "--table", "--color", "always", saved)
        yield fx.truth, doc, outputs


@pytest.mark.parametrize("view", ["tree", "tree-color", "table", "table-color", "render", "render-table"])
def test_hostile_names_never_reach_the_terminal_raw(hostile, view):
    _, _, outputs = hostile
    assert_terminal_safe(outputs[view], colors=view.endswith("color") or view == "render-table")


def test_hostile_names_are_shown_escaped(hostile):
    truth, _, outputs = hostile
    facts = truth["facts"]
    tree = outputs["tree"].decode()
    assert escaped(facts["hostile_thread"]) in tree
    assert escaped(facts["hostile_code"]["co_filename"]) in tree
    qualname = facts["hostile_code"].get("co_qualname", facts["hostile_code"]["co_name"])
    assert escaped(qualname) in tree
    assert f"awaits task '{escaped(facts['hostile_tasks']['title'])}'" in tree
    # The thread Python did not start shows its kernel name: ESC and BEL
    # escaped, the character cut in half shown as the bytes it is.
    assert "\\x1b]0;t\\x07名\\xe5\\x89" in tree
    # Every task name, in the table (cut to its 24-character column).
    table = outputs["table"].decode()
    for name in facts["hostile_tasks"].values():
        shown = escaped(name)
        assert (shown if len(shown) <= 24 else shown[:23] + "…") in table, name
    # The 10,000-character name (1,024 characters and "…" as the reader
    # keeps it) is cut in trees, saying how much is left out.
    kept = len(("L" * 1024 + "…").encode())
    for view in ("tree", "render"):
        assert "Task '" + "L" * 200 + f"…(+{kept - 200} bytes)'" in outputs[view].decode()


def test_hostile_names_stay_exact_in_json(hostile):
    truth, doc, _ = hostile
    names = {t["name"] for t in doc["tasks"]}
    for name in truth["facts"]["hostile_tasks"].values():
        # Exact, but for what the reader documents: a lone surrogate becomes
        # U+FFFD, names are read up to 1,024 characters (then "…").
        want = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in name)
        want = want if len(want) <= 1024 else want[:1024] + "…"
        assert want in names, f"task name {name[:40]!r} not exact in JSON"
    threads = {t["name"] for t in doc["threads"]}
    assert truth["facts"]["hostile_thread"] in threads


def run_on_terminal(argv, timeout):
    """Runs argv with a pseudo-terminal as its standard error (aioscope
    renders events as text only for a terminal, and `run` writes them to
    standard error); returns what was written there."""
    import os
    import pty
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:
        # Standard output elsewhere (what aioscope prints there is checked by
        # the dump tests); standard error, where `run` writes its events, stays
        # the terminal.
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.execv(argv[0], argv)
    out, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # the other end closed
                    break
                if not data:
                    break
                out += data
    finally:
        if time.monotonic() >= deadline:
            os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)
    return out.replace(b"\r\n", b"\n")  # the terminal's own line ends


def test_hostile_names_in_run_events_on_a_terminal(interp, tmp_path):
    """The agent's events about the hostile fixture, rendered as text on a
    terminal with colours: a never-awaited coroutine of the hostile code
    object, an unretrieved exception with a hostile message in a task with a
    hostile name, and the snapshot at --timeout."""
    if interp.root != "/":
        pytest.skip("run cannot load its agent into a program in a chroot (guide: run)")
    truth = tmp_path / "truth.json"
    # run writes its events to standard error, which the program shares: its
    # own (Python's warnings and tracebacks quote the hostile names raw, and
    # are not aioscope's output) goes elsewhere through a shell.
    program = interp.argv("aio_hostile_terminal.py", "--truth", str(truth), "--events")
    argv = [str(AIOSCOPE), "run", "--timeout", "4s", "--", "/bin/sh", "-c", 'exec "$@" 2>/dev/null', "sh", *program]
    out = run_on_terminal(argv, timeout=120)
    assert b"snapshot" in out, f"no snapshot shown at the timeout: {out[-2000:]!r}"
    assert_terminal_safe(out, colors=True)
    shown = COLOR.sub(b"", out).decode()
    assert "NEVER AWAITED" in shown and "EXCEPTION NEVER RETRIEVED" in shown, shown[-3000:]
    assert "\\x1b]0;pwned by a task name\\x07 dies" in shown
    assert "\\x1b]0;exception title\\x07\\x1b[2Jgone" in shown


# --- deep chains and many stacks ------------------------------------------------------

def test_deep_await_chain_dump_and_render(interp, tmp_path):
    # 20,000 once crashed the text renderer (one recursion per level); the
    # 100,000 here covers it.
    depth = 100000
    with Fixture(interp, "aio_deep_chain.py", "--depth", str(depth), truth_timeout=300) as fx:
        chain = fx.truth["facts"]["chain"]
        tree = text("dump", "--color", "never", fx.pid)
        r = run_aioscope("dump", "--json", fx.pid, timeout=300)
        assert r.returncode == 0, r.stderr
        saved = tmp_path / "deep.json"
        saved.write_text(r.stdout)
    doc = json.loads(r.stdout)
    by_id = {t["id"]: t for t in doc["tasks"]}
    assert all(i in by_id for i in chain), "JSON lists every task of the chain"
    for outer, inner in zip(chain, chain[1:]):
        assert by_id[inner]["awaited_by"] == [outer]
    for out in (tree, text("render", "--color", "never", saved)):
        assert len(out) < 20000, f"{len(out)} bytes of text for a {depth}-deep chain"
        shown = out.decode()
        assert f"… {depth - 16} tasks folded, each awaiting the next" in shown
        assert f"Task 'link-0' {chain[0]}" in shown and f"Task 'link-{depth - 1}' {chain[-1]}" in shown


def test_deep_await_cycle_dump(interp):
    """100,000 tasks awaiting each other in one cycle: a deadlock finding
    whose sentence names every task (kept whole in JSON, cut in text), and a
    tree without a root, folded."""
    depth = 100000
    with Fixture(interp, "aio_deep_chain.py", "--depth", str(depth), "--cycle", truth_timeout=300) as fx:
        r = subprocess.run([str(AIOSCOPE), "dump", "--color", "never", str(fx.pid)], capture_output=True, timeout=300)
    assert r.returncode == 10, r.stderr
    assert_terminal_safe(r.stdout)
    out = r.stdout.decode()
    assert len(out) < 20000, f"{len(out)} characters of text for a {depth}-task cycle"
    finding = next(line for line in out.splitlines() if line.startswith("DEADLOCK await-cycle: Await cycle: "))
    assert re.search(r"…\(\+\d+ bytes\)$", finding), "the finding's sentence is cut, saying how much is left out"
    assert "(awaiting each other, no root:)" in out
    assert f"… {depth - 16} tasks folded, each awaiting the next ({depth - 16} of them in findings)" in out


def test_many_tasks_in_few_stacks_are_grouped(interp):
    with Fixture(interp, "aio_many_stacks.py", "--tasks", "100000", "--stacks", "5000", truth_timeout=300) as fx:
        tree = text("dump", "--color", "never", fx.pid).decode()
    assert tree.count("× 20 Task 't-") == 5000
    assert len(tree) < 3_000_000, f"{len(tree)} characters of text for 5,000 groups"
