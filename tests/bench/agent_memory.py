#!/usr/bin/env python3
"""Benchmark: the memory the agent adds to a program it is attached to.

Starts fixtures/aio_bench.py with --tasks (default 10,000) suspended tasks
under each available interpreter, reads the target's resident set
(/proc/PID/status: VmRSS, and its anonymous part RssAnon, the memory the
agent allocates; the rest is mapped files, mostly the agent's own code,
shared with the page cache), then attaches with `aioscope attach
--snapshot-every 1s --duration 4s` (the agent loaded, the stall hook and
observers in, one snapshot of every task per second) and reads it again
while attached (after the hello and a few snapshots) and after the detach.
The peer is the same process before the attach, measured in the same run.
Goal: less than 10 MB added.

Usage: tests/bench/agent_memory.py [--tasks 10000] [--python 3.12,3.14]
"""
import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

from harness import AIOSCOPE, Fixture  # noqa: E402
from zoo import prepared  # noqa: E402

GOAL_MB = 10


def proc_status(pid):
    """/proc/PID/status's sizes, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def rss(pid):
    """(VmRSS, RssAnon) in MB."""
    fields = proc_status(pid)
    return fields["VmRSS"], fields["RssAnon"]


def reset_peak(pid):
    """Starts the kernel's record of the peak resident set (VmHWM) over from
    now: a snapshot's peak lasts milliseconds, which sampling misses."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def bench(interp, tasks, snapshot_every):
    with Fixture(interp, "aio_bench.py", "--tasks", str(tasks), truth_timeout=300) as fx:
        time.sleep(0.5)
        before = rss(fx.pid)
        reset_peak(fx.pid)
        attach = subprocess.Popen([str(AIOSCOPE), "attach", "--json", *(["--snapshot-every", snapshot_every] if snapshot_every != "never" else []), "--duration", "4s",
                                   str(fx.pid)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        peak = list(before)
        snapshots = [0]

        def read():
            for line in attach.stdout:
                if '"type": "snapshot"' in line or '"type":"snapshot"' in line:
                    snapshots[0] += 1
        reader = threading.Thread(target=read)
        reader.start()
        while attach.poll() is None:
            now = rss(fx.pid)
            peak = [max(a, b) for a, b in zip(peak, now)]
            time.sleep(0.05)
        reader.join()
        # The kernel's peak of the whole resident set; the anonymous part
        # has no such record, only the samples above.
        peak[0] = max(peak[0], proc_status(fx.pid)["VmHWM"])
        time.sleep(0.5)
        after = rss(fx.pid)
        return before, peak, after, snapshots[0], attach.returncode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=10000)
    ap.add_argument("--python", default="3.12,3.14")
    ap.add_argument("--snapshot-every", default="1s", help="'never': the agent loaded and hooked, no snapshot")
    args = ap.parse_args()
    print(f"{'python':<11} {'tasks':>6} {'RSS before':>10} {'added peak':>10} {'anon added':>10} "
          f"{'after detach':>12} {'anon after':>10} {'snapshots':>9}")
    for interp in prepared(args.python, width=11):
        before, peak, after, snaps, status = bench(interp, args.tasks, args.snapshot_every)
        flag = "" if status == 0 and (snaps or args.snapshot_every == "never") else f"  (attach exit {status}, {snaps} snapshots: not measured)"
        print(f"{interp.name:<11} {args.tasks:6} {before[0]:8.1f}MB {peak[0] - before[0]:8.1f}MB "
              f"{peak[1] - before[1]:8.1f}MB {after[0] - before[0]:+10.1f}MB {after[1] - before[1]:+8.1f}MB {snaps:9}{flag}")
    print(f"added = peak resident set while attached (the kernel's VmHWM, reset at the attach) - before the "
          f"attach (same process); goal < {GOAL_MB} MB; anon = the part that is not mapped files (the agent's "
          "allocations; sampled every 50 ms, so a lower bound of its peak; the rest of what stays after "
          "the detach is the agent's code, which stays loaded)")


if __name__ == "__main__":
    main()
