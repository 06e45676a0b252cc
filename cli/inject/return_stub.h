// The code aioscope runs in a hijacked thread of the target to load the
// agent, and that puts the thread back by itself, so the thread is never left
// on a bad return address whatever happens to aioscope (SIGKILL included).
//
// The stub is position-independent x86-64 code placed in the unused end of
// the last page of an executable mapping of the target (after its segment's
// end: no code or data of the program lives there). It works on a block that
// aioscope writes below the thread's stack pointer (past the red zone)
// before pointing the thread at the stub:
//   1. saves the extended register state (XSAVE with the kernel's mask and
//      size for this process, or FXSAVE),
//   2. calls dlopen(path, mode); on failure dlerror(); else
//      dlsym(handle, "aioscope_agent_start") and that function (which only
//      starts the agent's thread and returns),
//   3. stores the results in the block and makes a harmless system call,
//      getpid: aioscope follows the thread with PTRACE_SYSCALL, stops there
//      and reads the results; if nobody traces the thread it just returns,
//   4. restores the extended state and every general register, and resumes
//      the original context, as the kernel would have: a system call that
//      was interrupted (-ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND) is
//      re-executed with its number, -ERESTART_RESTARTBLOCK goes on with
//      restart_syscall. A thread stopped in a system call comes back through
//      rcx (which that `syscall` instruction clobbered anyway); any other
//      thread through rt_sigreturn on a signal frame built in the block,
//      which restores all registers, the extended state and the signal
//      mask atomically.
// From the moment its registers point at the stub, the thread's state is a
// valid continuation on its own: aioscope may detach or die at any instant.
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace aioscope::cli {

struct StubCode {
    const std::uint8_t* bytes;
    std::size_t size;
    std::size_t markerOffset;  // the instruction after the getpid `syscall`
};
const StubCode& stubCode();

// The system call the stub reports at (x86-64 getpid).
constexpr long kStubMarkerSyscall = 39;

// How the target saves its extended registers: the mask and size of the
// XSAVE area, the same on every process of this machine (computed from
// CPUID and XCR0). AMX tile data (dynamically enabled per process) is left
// out; everything else the kernel exposes is saved.
struct XstateFormat {
    bool xsave = false;       // false: FXSAVE (512 bytes)
    std::uint64_t mask = 0;   // components saved by XSAVE
    std::uint32_t size = 512; // bytes of the save area (standard format)
};
XstateFormat hostXstateFormat();

// What the stub calls.
struct StubCall {
    std::uint64_t dlopen = 0, dlsym = 0, dlerror = 0, mode = 0;
    std::string path, symbol, config;
};

// What the thread resumes with once the stub is done, as the kernel would
// have resumed it from `saved`. nullopt when that cannot be reproduced (a
// system call entered other than through `syscall`).
struct Resume {
    user_regs_struct regs{};
    bool throughRcx = false;  // in a system call: back through rcx, else rt_sigreturn
};
std::optional<Resume> resumeFrom(const user_regs_struct& saved);

// The block written below the thread's stack, and the registers that start
// the stub. Pure: built from values, unit-tested.
struct StubPlan {
    std::uint64_t blockAddr = 0;
    std::vector<std::uint8_t> block;
    user_regs_struct entry{};
};
StubPlan planStub(const user_regs_struct& saved, const Resume& resume, const XstateFormat& xstate,
                  const StubCall& call, std::uint64_t stubAddr);

// The stub's results, read from the block at the marker.
struct StubResults {
    std::uint64_t handle = 0;  // dlopen
    std::uint64_t start = 0;   // dlsym
    std::uint64_t rc = 0;      // aioscope_agent_start (an int in eax)
    std::uint64_t error = 0;   // dlerror() when dlopen failed
};
constexpr std::size_t kStubResultsOffset = 96;  // where StubResults sits in the block

}  // namespace aioscope::cli
