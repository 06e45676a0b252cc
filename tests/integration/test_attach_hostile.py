"""`aioscope attach` run as root against a process of a hostile user (issue
10.1): the user races aioscope with symbolic links planted where it writes
(fixtures/hostile_planter.py, running as that user the whole time) and with
bait for its clean-up of stale folders. Root's files the links point at must
stay exactly as they were (content, owner, mode, inode), files the links
name must never be created, and the attach must still work. On the host
(Debian's python3.11) and inside the sid chroot (3.14: absolute links there
would resolve against the host's root if aioscope followed them; both the
idle target, loaded with ptrace, and a busy one, loaded with PEP 768 and its
loader script).

The second user (aioscope-hostile, a system user without a home) is created
once by this test and reused; without root or useradd the test is skipped.
"""
import json
import os
import pwd
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from agent_helpers import aioscope_attach, staging_leftovers
from zoo import ZOO, usable

HOSTILE = "aioscope-hostile"
CASES = [("3.11-debian", "idle"), ("3.14", "idle"), ("3.14", "spin")]


@pytest.fixture(scope="session")
def hostile_user():
    if os.geteuid() != 0:
        pytest.skip("needs root: to create a second user, and to attach to its processes")
    try:
        pw = pwd.getpwnam(HOSTILE)
    except KeyError:
        r = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", HOSTILE],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot create the user {HOSTILE}: {r.stderr.strip()}")
        pw = pwd.getpwnam(HOSTILE)
    return pw.pw_uid, pw.pw_gid


def snapshot(path):
    st = os.lstat(path)
    content = Path(path).read_bytes() if os.path.isfile(path) and not os.path.islink(path) else None
    return (st.st_ino, st.st_uid, st.st_gid, st.st_mode, st.st_size, st.st_mtime_ns, content)


class Scene:
    """Root's victims (on the host and, for a chroot, inside it too), the
    hostile user's work folder, its target and its planter."""

    def __init__(self, interp, state, uid, gid):
        self.interp, self.uid, self.gid = interp, uid, gid
        self.root = interp.root
        tag = secrets.token_hex(6)
        self.names = {"victim": f"aioscope-victim-{tag}", "create": f"aioscope-created-{tag}",
                      "dir": f"aioscope-victimdir-{tag}"}
        self.roots = ["/"] + ([self.root] if self.root != "/" else [])
        self.victims = []
        for r in self.roots:
            base = Path(r) / "root"
            v = base / self.names["victim"]
            v.write_text("root's secret\n")
            v.chmod(0o600)
            d = base / self.names["dir"]
            d.mkdir()
            (d / "keep").write_text("keep\n")
            self.victims += [v, d, d / "keep"]
        self.before = {str(v): snapshot(v) for v in self.victims}
        # The user's own folder, in its /tmp (skipped by the planter: "hostile").
        self.work_in = f"/tmp/aioscope-hostile-test-{tag}"
        self.work = Path(self.outside(self.work_in))
        self.work.mkdir(mode=0o700)
        os.chown(self.work, uid, gid)
        self.procs = []

    def outside(self, inside):
        return inside if self.root == "/" else str(Path(self.root) / inside.lstrip("/"))

    def run_as_user(self, argv):
        if self.root == "/":
            return subprocess.Popen(argv, user=self.uid, group=self.gid, extra_groups=[],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        return subprocess.Popen(["chroot", f"--userspec={self.uid}:{self.gid}", "--groups=", self.root, *argv],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def start(self, state):
        fixtures = self.interp.argv("attach_wedged.py")[-1].rsplit("/", 1)[0]
        w = self.work_in
        self.target = self.run_as_user([self.interp.python, f"{fixtures}/attach_wedged.py", "--truth", f"{w}/truth",
                                        "--state", state, "--release", f"{w}/release", "--result", f"{w}/result"])
        self.procs.append(self.target)
        self.wait_file("truth", self.target)
        victims = [f"/root/{self.names['victim']}", f"/root/{self.names['dir']}/keep"]
        argv = [self.interp.python, f"{fixtures}/hostile_planter.py", "--tmp", "/tmp", "--stop", f"{w}/stop",
                "--report", f"{w}/report", "--ready", f"{w}/ready", "--victim-dir", f"/root/{self.names['dir']}",
                "--create", f"/root/{self.names['create']}"]
        for v in victims:
            argv += ["--victim", v]
        self.planter = self.run_as_user(argv)
        self.procs.append(self.planter)
        self.wait_file("ready", self.planter)

    def wait_file(self, name, proc, timeout=60):
        deadline = time.monotonic() + timeout
        while not (self.work / name).exists():
            if proc.poll() is not None:
                raise AssertionError(f"{name}: the process ended ({proc.returncode}): {proc.stderr.read()}")
            assert time.monotonic() < deadline, f"no {name} within {timeout} s"
            time.sleep(0.02)

    def stop_planter(self):
        (self.work / "stop").write_text("stop")
        os.chown(self.work / "stop", self.uid, self.gid)
        assert self.planter.wait(30) == 0, self.planter.stderr.read()
        return json.loads((self.work / "report").read_text())

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        shutil.rmtree(self.work, ignore_errors=True)
        for r in self.roots:
            base = Path(r) / "root"
            (base / self.names["victim"]).unlink(missing_ok=True)
            (base / self.names["create"]).unlink(missing_ok=True)
            shutil.rmtree(base / self.names["dir"], ignore_errors=True)
        tmp = Path(self.outside("/tmp"))
        for bait in tmp.glob("aioscope-*hostile*"):
            if bait.is_symlink() or bait.is_file():
                bait.unlink()
            elif bait.is_dir() and bait.name != self.work.name:
                shutil.rmtree(bait, ignore_errors=True)


@pytest.mark.parametrize("name, state", CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_planted_links_change_nothing_outside_the_staging_folder(hostile_user, name, state):
    interp = usable(next(i for i in ZOO if i.name == name))
    uid, gid = hostile_user
    scene = Scene(interp, state, uid, gid)
    try:
        scene.start(state)
        attaches = []
        for _ in range(4):
            s = aioscope_attach(scene.target.pid, "--duration", "0.3s", timeout=60)
            attaches.append(s)
            assert s.rc == 0 and s.of("hello"), s.summary()
        report = scene.stop_planter()
        summary = {k: v for k, v in report.items() if k != "seen"} | {"seen": len(report["seen"])}
        for v, before in scene.before.items():
            assert snapshot(v) == before, f"{v} changed (the planter: {summary})"
        for r in scene.roots:
            assert not (Path(r) / "root" / scene.names["create"]).exists(), \
                f"a file was created through a link (the planter: {summary})"
        # It did race: it saw aioscope's folders and tried, and every plant
        # inside them was refused (the folder is root's, 0711).
        assert report["seen"], f"the planter never saw aioscope's folder: {summary}"
        assert report["results"].get("planted", 0) == 0, f"a link was planted: {summary}"
        assert report["bait"] == {"planted": 5}, summary
        assert report["results"].get("EACCES", 0) > 0, summary
        # The bait is still the user's and intact: the clean-up of stale
        # folders did not enter it nor follow the links named like ours.
        tmp = Path(scene.outside("/tmp"))
        assert (tmp / "aioscope-stage-0000hostile0000").is_dir()
        assert len(list((tmp / "aioscope-stage-0000hostile0000").iterdir())) == 3
        assert (tmp / "aioscope-stage-1111hostile1111").is_symlink()
        assert not staging_leftovers(str(tmp)) - {"aioscope-stage-0000hostile0000", "aioscope-stage-1111hostile1111",
                                                  "aioscope-new-2222hostile2222"}
        (scene.work / "release").write_text("go")
        assert scene.target.wait(30) == 0, scene.target.stderr.read()
        result = json.loads((scene.work / "result").read_text())
        assert result["ok"], result["errors"]
    finally:
        scene.close()
