#!/usr/bin/env python3
"""Benchmark: the agent's stream under load (issue 8: "the stream is never
lost or corrupted").

Runs fixtures/stream_short.py (a short asyncio program with output of its own
that waits until its agent hooked asyncio) --runs times under `aioscope run
--json`, spread over the host interpreters, while one busy process per core
holds the CPU, and counts:
  lost hellos     runs whose agent hooked asyncio (the fixture says so) but
                  whose hello never reached the stream
  corrupted       lines of the event stream (stderr) that start like an event
                  but are not one whole JSON object (cut or glued)
  lost events     runs without the agent's goodbye or run's exit event last
  stdout differs  runs whose stdout is not byte-identical to a bare run's
  stderr differs  runs whose own stderr lines (events taken out) differ
  status          runs whose exit status is not 0
Every --quiet-every-th run uses -q -o FILE instead: then stderr must be
byte-identical too. Also prints the median wall time of a run against a bare
run of the same program measured in the same loop (the peer).

Usage: tests/bench/stream_under_load.py [--runs 1000] [--python 3.12,3.13] [--no-hog]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

from harness import AIOSCOPE  # noqa: E402
from zoo import FIXTURES, prepared  # noqa: E402


def bare(interp, d):
    t0 = time.monotonic()
    r = subprocess.run([interp.python, str(FIXTURES / "stream_short.py"), "--truth", str(d / "bare.json")],
                       capture_output=True, timeout=120)
    return r, time.monotonic() - t0


def under_run(interp, d, quiet):
    truth, events = d / "truth.json", d / "events.jsonl"
    truth.unlink(missing_ok=True)
    opts = ["-q", "-o", str(events)] if quiet else ["--json"]
    t0 = time.monotonic()
    r = subprocess.run([str(AIOSCOPE), "run", *opts, "--", interp.python, str(FIXTURES / "stream_short.py"),
                        "--truth", str(truth)], capture_output=True, timeout=120)
    took = time.monotonic() - t0
    stream = events.read_bytes() if quiet else r.stderr
    return r, took, (json.loads(truth.read_text()) if truth.exists() else None), stream


def judge(r, truth, stream, want, quiet, counts):
    counts["runs"] += 1
    if r.returncode != 0:
        counts["status"] += 1
    if r.stdout != want.stdout:
        counts["stdout differs"] += 1
    events, own = [], []
    for line in stream.decode("utf-8", "replace").splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                counts["corrupted"] += 1
        else:
            own.append(line)
    if quiet:
        if r.stderr != want.stderr:
            counts["stderr differs"] += 1
    elif "".join(l + "\n" for l in own) != want.stderr.decode():
        counts["stderr differs"] += 1
    if truth is None or not truth["hooked"]:
        counts["agent never hooked"] += 1
        return
    pid = truth["pid"]
    if not [e for e in events if e.get("type") == "hello" and e.get("pid") == pid]:
        counts["lost hellos"] += 1
    if not [e for e in events if e.get("type") == "goodbye" and e.get("pid") == pid] or \
            not events or events[-1].get("type") != "exit":
        counts["lost events"] += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--python", default="3.10,3.11,3.11-debian,3.12,3.13")
    ap.add_argument("--quiet-every", type=int, default=5)
    ap.add_argument("--no-hog", action="store_true")
    args = ap.parse_args()
    interps = list(prepared(args.python, width=12, host_only=True))
    if not interps:
        sys.exit("no host interpreter available")
    hogs = [] if args.no_hog else [subprocess.Popen(["sh", "-c", "while :; do :; done"])
                                   for _ in range(os.cpu_count() or 2)]
    counts = {i.name: Counter() for i in interps}
    times = {i.name: ([], []) for i in interps}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            wants = {i.name: bare(i, d)[0] for i in interps}
            for n in range(args.runs):
                interp = interps[n % len(interps)]
                quiet = n % args.quiet_every == 0
                r, took, truth, stream = under_run(interp, d, quiet)
                judge(r, truth, stream, wants[interp.name], quiet, counts[interp.name])
                times[interp.name][0].append(took)
                times[interp.name][1].append(bare(interp, d)[1])  # the peer, interleaved
                if (n + 1) % 100 == 0:
                    bad = sum(sum(v for k, v in c.items() if k != "runs") for c in counts.values())
                    print(f"{n + 1} runs, {bad} problems so far", file=sys.stderr, flush=True)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    keys = ["runs", "lost hellos", "corrupted", "lost events", "stdout differs", "stderr differs", "status",
            "agent never hooked"]
    print(f"{'python':<12}" + "".join(f"{k:>19}" for k in keys) + f"{'run/bare (median)':>19}")
    total = Counter()
    for name, c in counts.items():
        total.update(c)
        ratio = statistics.median(times[name][0]) / statistics.median(times[name][1])
        print(f"{name:<12}" + "".join(f"{c[k]:>19}" for k in keys) + f"{ratio:>18.2f}x")
    print(f"{'all':<12}" + "".join(f"{total[k]:>19}" for k in keys))
    print(f"{'CPU hog on every core' if hogs else 'no CPU hog'}; every {args.quiet_every}th run with -q -o FILE "
          f"(stderr compared byte for byte); bare runs interleaved as the peer")
    bad = sum(total[k] for k in keys[1:])
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
