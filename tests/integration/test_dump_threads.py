"""aioscope dump of thread stacks equals what the interpreter reports itself."""
import json

from harness import Fixture, dump_json, run_aioscope


def by_id(threads):
    return {t["thread_id"]: t for t in threads}


def assert_matches_truth(dump, truth):
    dumped = by_id(dump["threads"])
    expected = by_id(truth["threads"])
    assert set(dumped) == set(expected), "thread ids differ"
    for tid, want in expected.items():
        got = dumped[tid]
        assert got["native_id"] == want["native_id"], f"native id of {want['name']}"
        assert got["name"] == want["name"]
        assert got["frames"] == want["frames"], f"frames of thread {want['name']}"
        assert got["error"] is None and not got["truncated"]


def test_three_threads_match_ground_truth(interp):
    with Fixture(interp, "threads_known.py") as fx:
        assert len(fx.truth["threads"]) == 3
        dump = dump_json(fx.pid)
        assert dump["schema"] == "aioscope/snapshot/1"
        assert dump["pid"] == fx.pid
        assert dump["python"]["version"] == fx.truth["version"]
        assert dump["warnings"] == []
        assert_matches_truth(dump, fx.truth)
        # Every thread is blocked: nobody holds the GIL.
        assert not any(t["holds_gil"] for t in dump["threads"])


def test_pause_gives_same_stacks_and_resumes(interp):
    with Fixture(interp, "threads_known.py") as fx:
        dump = dump_json(fx.pid, "--pause")
        assert dump["paused_ms"] is not None and dump["paused_ms"] >= 0
        assert_matches_truth(dump, fx.truth)
        assert fx.alive()
        assert fx.state() in "SR", "the target must run normally after --pause"
        assert "TracerPid:\t0" in open(f"/proc/{fx.pid}/status").read()


def test_text_output_lists_frames_like_a_traceback(interp):
    with Fixture(interp, "threads_known.py") as fx:
        r = run_aioscope("dump", fx.pid)
        assert r.returncode == 0, r.stderr
        assert "\x1b[" not in r.stdout, "no colours when stdout is not a terminal"
        for t in fx.truth["threads"]:
            assert f'"{t["name"]}"' in r.stdout
            for f in t["frames"]:
                assert f'{f["qualname"]} ({f["file"]}:{f["line"]})' in r.stdout


def test_render_reproduces_dump_text(interp, tmp_path):
    with Fixture(interp, "threads_known.py") as fx:
        dump = dump_json(fx.pid)
    saved = tmp_path / "snap.json"
    saved.write_text(json.dumps(dump))
    r = run_aioscope("render", saved)
    assert r.returncode == 0, r.stderr
    for t in fx.truth["threads"]:
        for f in t["frames"]:
            assert f'{f["qualname"]} ({f["file"]}:{f["line"]})' in r.stdout
