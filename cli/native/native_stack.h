// The native (C) stack of one thread of another process, captured from
// outside: the thread is interrupted with ptrace (PTRACE_SEIZE + INTERRUPT: no
// signal, a system call in progress is restarted transparently), unwound with
// libunwind's ptrace accessors, resumed at once, then symbolized with
// elfutils (libdwfl) from the files the process has mapped.
#pragma once

#include <sys/types.h>

#include <cstdint>
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

NativeStack captureNativeStack(pid_t pid, pid_t tid);

}  // namespace aioscope::cli
