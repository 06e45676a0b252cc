#!/usr/bin/env python3
"""Benchmark: the report of a snapshot of many tasks (default 100,000, from
fixtures/aio_many.py): its size against the `dump --json` it was made from,
how long `aioscope report` takes, and how long headless Chromium takes until
the viewer is interactive (the page's own body[data-ready-ms], navigation
start to the first view on screen), for the Overview and the Tasks view.

The peer, measured in the same browser in the same run: a page that does
nothing but JSON.parse the plain snapshot text, embedded the same way. The
ratio says what the viewer costs beyond reading the data at all.

Usage: tests/bench/report_scale.py [--tasks N] [--runs N]   (after tests/run or cli/build.sh)
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

from browser import Browser, chromium_path  # noqa: E402
from harness import AIOSCOPE, Fixture  # noqa: E402
from zoo import prepared  # noqa: E402

PEER_PAGE = """<!DOCTYPE html><meta charset="utf-8"><body>
<script type="application/json" id="d">{data}</script>
<script>
const t0 = performance.now();
const doc = JSON.parse(document.getElementById("d").textContent);
document.body.dataset.parseMs = String(performance.now() - t0);
document.body.dataset.readyMs = String(performance.now());
document.body.dataset.ready = "1";
document.body.textContent = doc.tasks.length + " tasks";
</script>"""


def ready_ms(browser, url):
    browser.call("Page.navigate", session=True, url="about:blank")
    time.sleep(0.2)
    browser.open(url, timeout=300)
    return float(browser.eval("document.body.dataset.readyMs"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if not chromium_path():
        sys.exit("chromium is not installed (tests/viewer/setup.sh)")
    interp = next(prepared("3.11,3.12,3.13"), None)  # the first of them this machine has
    if interp is None:
        sys.exit("none of CPython 3.11, 3.12, 3.13 is available")
    with tempfile.TemporaryDirectory(prefix="aioscope-bench-") as tmp:
        tmp = Path(tmp)
        with Fixture(interp, "aio_many.py", "--tasks", str(args.tasks), truth_timeout=300) as fx:
            r = subprocess.run([str(AIOSCOPE), "dump", "--json", str(fx.pid)], capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, r.stderr
        snap = tmp / "snap.json"
        snap.write_text(r.stdout)
        compact = json.dumps(json.loads(r.stdout), separators=(",", ":"))
        peer = tmp / "peer.html"
        peer.write_text(PEER_PAGE.format(data=compact.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")))
        report = tmp / "report.html"
        t0 = time.monotonic()
        r = subprocess.run([str(AIOSCOPE), "report", str(snap), "-o", str(report)], capture_output=True, text=True, timeout=600)
        build_s = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        print(f"{args.tasks} tasks, CPython {interp.name}")
        print(f"  dump --json {snap.stat().st_size / 1e6:.1f} MB (compact {len(compact) / 1e6:.1f} MB), "
              f"report {report.stat().st_size / 1e6:.1f} MB, `aioscope report` {build_s:.2f} s")
        with Browser() as b:
            peer_ms = statistics.median(ready_ms(b, peer.as_uri()) for _ in range(args.runs))
            for view in ("overview", "tasks"):
                ms = statistics.median(ready_ms(b, report.as_uri() + "#" + view) for _ in range(args.runs))
                print(f"  interactive ({view}): {ms:.0f} ms; peer (JSON.parse of the plain snapshot): "
                      f"{peer_ms:.0f} ms; ratio {ms / peer_ms:.2f}")


if __name__ == "__main__":
    main()
