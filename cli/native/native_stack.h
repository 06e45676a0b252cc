// The native (C) stack of one thread of another process, captured from
// outside: the thread is interrupted with ptrace (PTRACE_SEIZE + INTERRUPT: no
// signal, a system call in progress is restarted transparently), its
// registers and stack copied, and it is resumed at once; the copy is then
// unwound (libunwind, elfutils where libunwind cannot) and symbolized with
// elfutils (libdwfl) from the files the process has mapped.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace aioscope::cli {

struct NativeFrame {
    std::uint64_t address = 0;
    std::string function;  // "" when no symbol covers the address
    std::uint64_t offset = 0;
    std::string module;    // file of the mapping
    std::string file;      // source file, with debug info
    int line = 0;
};

struct NativeStack {
    std::vector<NativeFrame> frames;  // innermost first
    std::optional<std::string> error;
    double stoppedMs = 0;             // how long the thread was interrupted
};

// A stopped thread's registers and stack, copied; the thread is running
// again by the time the copy is returned. Opaque: unwound later.
struct ThreadCopy;
struct ThreadCopyDeleter {
    void operator()(ThreadCopy* c) const;
};
using ThreadCopyPtr = std::unique_ptr<ThreadCopy, ThreadCopyDeleter>;

// Stops the thread only to copy it. `stillWanted`, when given, is asked
// while the thread is stopped (after the copy): false means the moment has
// passed (the caller's condition no longer holds) and the copy is dropped
// with an error saying so (in `failed`). The copy is null on every error.
ThreadCopyPtr copyThread(pid_t pid, pid_t tid, NativeStack& failed, const std::function<bool()>& stillWanted = {},
                         const char* passedWhy = "the moment had passed");

// Unwinds and names a copy's frames (the slow part: symbol and line tables).
NativeStack unwindCopy(ThreadCopy& copy);

}  // namespace aioscope::cli
