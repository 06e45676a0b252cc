#!/usr/bin/env python3
"""Records the fuzzers' seeds from real processes of the interpreter zoo:

  images/<fixture>-<interp>.img   memory images for fuzz_memory (what one
                                  snapshot read of the fixture touched)
  corpus/render/<fixture>-<interp>.json
                                  `aioscope dump --json` of small fixtures
  corpus/events/<fixture>-<interp>.jsonl
                                  what agents sent under `aioscope run`
                                  (hello, stalls, bug events, snapshots)

Run as root after cli/build.sh (it needs build/tests/record_image and
build/aioscope); the seeds are committed, so this is only rerun when the
fixtures or the interpreters change. Interpreters missing here are skipped,
by name.

Usage: tests/fuzz/record_seeds.py [--only 3.12,3.14]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from harness import AIOSCOPE, Fixture  # noqa: E402
from zoo import prepared  # noqa: E402

RECORD = Path(os.environ.get("AIOSCOPE_BUILD", ROOT / "build")) / "tests" / "record_image"

# Small fixtures covering the walkers' paths: every shape of await chain and
# a second loop thread, lock deadlocks and holders, await cycles, orphaned
# waits, swallowed cancellations, named threads, hostile names.
IMAGE_FIXTURES = {
    "aio_shapes.py": [],
    "aio_deadlock_locks.py": ["--variant", "deadlock"],
    "aio_await_cycle.py": ["--variant", "cycle"],
    "aio_hostile_terminal.py": [],
}
# On one interpreter per layout family only (they add paths, not layouts).
EXTRA_FIXTURES = {
    "aio_orphan.py": ["--variant", "orphan"],
    "aio_cancel_ignored.py": ["--variant", "ignored"],
    "threads_known.py": [],
    "aio_primitives.py": [],
}
EXTRA_ON = {"3.10", "3.12", "3.14"}
RENDER_FIXTURES = {"aio_deadlock_locks.py": ["--variant", "deadlock"], "aio_hostile_terminal.py": []}
EVENT_FIXTURES = {
    "agent_stalls.py": [],
    "agent_deadlock.py": [],
    "bugs_tasks.py": ["--case", "unretrieved"],
    "bugs_tasks.py ": ["--case", "destroyed"],
    "bugs_unawaited.py": ["--case", "deep"],
    "bugs_cancel.py": ["--case", "kept"],
}


def record_image(interp, script, args):
    out = HERE / "images" / f"{Path(script).stem}-{interp.name}.img"
    with Fixture(interp, script, *args) as fx:
        r = subprocess.run([str(RECORD), str(fx.pid), str(out), f"{interp.name} {script}"],
                           capture_output=True, text=True, timeout=120)
        print(" ", (r.stdout or r.stderr).strip())
        if r.returncode != 0:
            out.unlink(missing_ok=True)


def record_render(interp, script, args):
    with Fixture(interp, script, *args) as fx:
        r = subprocess.run([str(AIOSCOPE), "dump", "--json", str(fx.pid)], capture_output=True, timeout=120)
        if r.returncode in (0, 10):
            (HERE / "corpus" / "render" / f"{Path(script).stem}-{interp.name}.json").write_bytes(r.stdout)


def record_events(interp, script, args):
    """Runs the fixture under `aioscope run`: its JSON Lines are the agents'
    events as the CLI passed them on. One seed per event (one of each type
    per fixture): the fuzzer works best on small inputs."""
    script = script.strip()
    with tempfile.TemporaryDirectory(dir=interp.fixture_dir() / "out") as tmp:
        r = subprocess.run([str(AIOSCOPE), "run", "--json", "--snapshot-every", "300ms", "--timeout", "4s", "--",
                            *interp.argv(script, "--truth", interp.inside(Path(tmp) / "truth.json"), *args)],
                           capture_output=True, timeout=120, cwd=tmp)
    seen = set()
    stem = Path(script).stem + "".join("-" + a.lstrip("-") for a in args if not a.startswith("--"))
    for line in r.stdout.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("type") in seen or len(line) > 8192:
            continue
        seen.add(e.get("type"))
        (HERE / "corpus" / "events" / f"{stem}-{e.get('type')}-{interp.name}.json").write_bytes(line + b"\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    for d in ("images", "corpus/render", "corpus/events", "corpus/memory"):
        (HERE / d).mkdir(parents=True, exist_ok=True)
    for interp in prepared(args.only, width=0):
        print(f"CPython {interp.name}")
        fixtures = dict(IMAGE_FIXTURES)
        if interp.name in EXTRA_ON:
            fixtures.update(EXTRA_FIXTURES)
        for script, fargs in fixtures.items():
            record_image(interp, script, fargs)
        if interp.name in EXTRA_ON:
            for script, fargs in RENDER_FIXTURES.items():
                record_render(interp, script, fargs)
            for script, fargs in EVENT_FIXTURES.items():
                record_events(interp, script, fargs)
    # fuzz_memory's seeds: each image untouched (the first input byte picks it).
    images = sorted(p.name for p in (HERE / "images").glob("*.img"))
    for i, name in enumerate(images):
        (HERE / "corpus" / "memory" / f"{Path(name).stem}.bin").write_bytes(bytes([i]))


if __name__ == "__main__":
    main()
