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
