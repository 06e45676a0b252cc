"""The agent's shared object as the dynamic linker of a target sees it: it
needs nothing a minimal container lacks (the C library, and libgcc_s, which
glibc loads for pthread_exit anyway), exports one function, and unwinds with
the system's unwinder. The last matters at exit: CPython 3.10-3.13 end a
thread that asks for the GIL during finalization with pthread_exit(), and
that unwinding runs through the agent's frames. Built with its own copy of
the unwinder (-static-libgcc), the agent made it abort the process (a
standalone C++ thread built that way, calling PyGILState_Ensure during
finalization: SIGABRT 5 of 5; with the system's unwinder: exit 0)."""
import re
import subprocess
from pathlib import Path

from harness import AIOSCOPE

AGENT = Path(AIOSCOPE).parent / "aioscope-agent.so"


def readelf(*options):
    return subprocess.run(["readelf", "-W", *options, str(AGENT)], capture_output=True, text=True,
                          check=True).stdout


def dynamic_symbols():
    """(name, section index) of each dynamic symbol: UND when imported."""
    out = []
    for line in readelf("--dyn-syms").splitlines():
        cols = line.split()
        if len(cols) >= 8 and cols[0].endswith(":") and cols[0][:-1].isdigit():
            out.append((cols[7].split("@")[0], cols[6], cols[4]))
    return out


def test_agent_needs_only_libc_and_libgcc_s():
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf("-d")))
    assert needed <= {"libc.so.6", "libgcc_s.so.1", "ld-linux-x86-64.so.2"}, needed
    assert "libstdc++.so.6" not in needed


def test_agent_exports_one_function():
    exported = {name for name, ndx, bind in dynamic_symbols() if ndx != "UND" and bind == "GLOBAL"}
    assert exported == {"aioscope_agent_start"}, exported


def test_agent_unwinds_with_the_system_unwinder():
    symbols = dynamic_symbols()
    unwinder = {name: ndx for name, ndx, _ in symbols if name.startswith("_Unwind_")}
    assert unwinder, "the agent uses no unwinder at all? (it throws and catches C++ exceptions)"
    defined = sorted(name for name, ndx in unwinder.items() if ndx != "UND")
    assert not defined, f"the agent carries its own unwinder: {defined}"


PROBE = """
import ctypes, os, sys
so = os.path.realpath(sys.argv[1])
ctypes.CDLL(so)
base = min(int(line.split("-")[0], 16) for line in open("/proc/self/maps")
           if line.split()[-1] == so and int(line.split()[2], 16) == 0)
for arg in sys.argv[2:]:
    name, offset = arg.split("=")
    print(name, ctypes.string_at(base + int(offset, 16), 1)[0])
"""


def test_what_a_forked_child_reaches_is_built_at_load():
    """A child forked while another thread was building one of the agent's
    objects for the first time would wait on its guard for ever (a fork
    storm under a fresh attach did: the child's fork handler stuck in
    __cxa_guard_acquire for GilGate::instance()). So once the library is
    loaded, before any thread of the agent exists, every function-local
    static of the agent must be built: its guard set. PyApi::none() alone
    is built later, under the GIL, which a forking Python thread holds."""
    guards = {}
    for line in readelf("-s").splitlines():
        cols = line.split()
        if len(cols) >= 8 and cols[7].startswith("_ZGVZN8aioscope5agent"):
            guards[cols[7]] = cols[1]
    assert len(guards) >= 10, f"the agent's symbol table names too few guards: {guards}"
    late = {name for name in guards if "5PyApi4none" in name}
    assert len(late) == 1, guards
    out = subprocess.run(["/usr/bin/python3", "-c", PROBE, str(AGENT),
                          *(f"{name}={value}" for name, value in guards.items())],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    state = dict(line.split() for line in out.splitlines())
    assert set(state) == set(guards)
    unbuilt = sorted(subprocess.run(["c++filt", name], capture_output=True, text=True).stdout.strip()
                     for name, byte in state.items() if byte == "0" and name not in late)
    assert not unbuilt, "built lazily, so a fork can catch one half-built:\n" + "\n".join(unbuilt)
