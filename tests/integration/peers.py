"""Other parties on the machine, for the tests of aioscope's agent socket
(docs/security.md#the-agents-connection): a second, unprivileged user
(created if missing), commands run as that user, a victim process of root
whose thread a fake agent names, and where a CLI's socket and token are."""
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness import ROOT

FIXTURES = ROOT / "fixtures"
PEER_USER = "aioscope-peer"
# The interpreter the second user can run: pyenv's live under /root (0700).
SYSTEM_PYTHON = "/usr/bin/python3.11"


def require_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: the tests act as root (aioscope's operator) and as a second user")
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) not installed")
    if not Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"{SYSTEM_PYTHON} not installed (the second user cannot run pyenv's interpreters)")


def peer_user():
    """(uid, gid) of an unprivileged user that is not root, created if missing."""
    require_root()
    try:
        pw = pwd.getpwnam(PEER_USER)
    except KeyError:
        r = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PEER_USER],
                           capture_output=True, text=True)
        try:
            pw = pwd.getpwnam(PEER_USER)  # another test run may have created it meanwhile
        except KeyError:
            pytest.skip(f"cannot create the user {PEER_USER}: {r.stderr.strip()}")
    assert pw.pw_uid != 0
    return pw.pw_uid, pw.pw_gid


def as_user(uid, gid):
    """argv prefix running a command as uid:gid with no supplementary groups."""
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]


def shared_dir():
    """A fresh directory every user can write (results of the other user's processes)."""
    d = Path(tempfile.mkdtemp(prefix="stream-test-"))
    d.chmod(0o1777)
    return d


def fake_agent(prefix, *args, env=None):
    """fixtures/fake_agent.py run with the system interpreter, after `prefix`
    (as_user(...) or [] for root), to completion."""
    cmd = [*prefix, SYSTEM_PYTHON, str(FIXTURES / "fake_agent.py"), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


class Victim:
    """A process of root busy in pure computation: its only thread never
    sleeps by itself, so the kernel's count of its voluntary context switches
    stays put unless something stops it (a ptrace stop counts one)."""

    def __init__(self):
        self.proc = subprocess.Popen([SYSTEM_PYTHON, "-c", "while True: pass"])
        self.tid = self.proc.pid
        time.sleep(0.2)

    def stops(self):
        status = Path(f"/proc/{self.proc.pid}/task/{self.tid}/status").read_text()
        return int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))

    def close(self):
        self.proc.kill()
        self.proc.wait()


def listening_socket_of(pid):
    """The path of the Unix socket process `pid` listens on (its agent socket)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            m = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(fd))
        except OSError:
            continue
        if m:
            inodes.add(m.group(1))
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        parts = line.split()
        # Num RefCount Protocol Flags Type St Inode Path; St 01: listening
        if len(parts) >= 8 and parts[6] in inodes and parts[5] == "01":
            # attach binds through its staging folder's descriptor
            # (/proc/self/fd/N/...): the folder's path as seen from here,
            # which a fake agent of another user can reach as the agent does.
            m = re.match(r"^/proc/self/fd/(\d+)(/.*)$", parts[7])
            return os.readlink(f"/proc/{pid}/fd/{m.group(1)}") + m.group(2) if m else parts[7]
    raise AssertionError(f"pid {pid} listens on no Unix socket")


TOKEN = re.compile(rb"token=([0-9a-f]{32})")


def token_in_memory(pid):
    """The session token as a process holding the agent's configuration has it
    (what anyone able to read that process's memory can learn)."""
    found = set()
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5].startswith("[v")):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if end - start > (256 << 20):
                continue
            try:
                mem.seek(start)
                found.update(m.group(1).decode() for m in TOKEN.finditer(mem.read(end - start)))
            except OSError:
                continue
    return found


def token_in_environ(pid):
    env = Path(f"/proc/{pid}/environ").read_bytes()
    m = TOKEN.search(env)
    return m.group(1).decode() if m else None


def max_rss_kib(pid):
    """Peak resident memory of a running process (VmHWM)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1))
