// Whether a stopped thread may call dlopen right where it is. dlopen (and
// the agent's start) takes libc's and the dynamic loader's own locks and
// allocates memory: a thread interrupted while holding one of those locks
// would wait for itself forever. So the thread's stack is unwound (elfutils,
// CFI only, the target's own files opened through /proc/PID/map_files or
// /proc/PID/root so that containers work) and judged:
//  - the unwinding must reach the thread's start (_start or clone), through
//    frames that all have unwind information (no guessing through JIT code,
//    signal trampolines without CFI or aioscope's own stub);
//  - no frame in the dynamic loader, in a malloc replacement (jemalloc,
//    tcmalloc, mimalloc) or in aioscope's agent (a thread inside the agent's
//    start, from an earlier attach or a PEP 768 loader, holds its lock);
//  - no libc frame between frames of the program (libc calling the program
//    back: a signal handler, a qsort comparator, a dl_iterate_phdr or
//    pthread_once callback, all with libc state half-done below), except the
//    thread's start frames at the bottom;
//  - at the top, either no libc frame at all, or libc entered through one of
//    the functions of the allow-list (allowedLibcEntry): blocking calls that
//    hold no process-wide libc lock while they wait (a futex wait inside
//    sem_clockwait or pthread_cond_wait, a sleep, a read, epoll_wait...).
//    Which function was entered is read from the caller's call instruction
//    (through the PLT), else from libc's .dynsym/.symtab; libc's internal
//    helpers (__lll_lock_wait_private, malloc's insides) are never entries;
//  - room left on the thread's stack for dlopen.
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace aioscope::cli {

struct Verdict {
    bool safe = false;
    std::string why;  // when not safe, for the user: "it is inside malloc"
};

class SafePointJudge {
public:
    // Reads the target's mappings and libc's symbols. Throws InspectError.
    explicit SafePointJudge(pid_t pid);
    ~SafePointJudge();
    SafePointJudge(const SafePointJudge&) = delete;
    SafePointJudge& operator=(const SafePointJudge&) = delete;

    // `tid` must be stopped, with these registers.
    Verdict judge(pid_t tid, const user_regs_struct& regs);

    // aioscope's stub in the target: a thread inside it is never a safe point.
    void setStubRange(std::uint64_t begin, std::uint64_t end);

    struct Impl;  // public for the elfutils callbacks only

private:
    std::unique_ptr<Impl> m;
};

// The libc functions through which a thread may be found waiting, safely.
bool allowedLibcEntry(std::string_view name);

}  // namespace aioscope::cli
