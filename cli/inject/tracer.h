// Who already traces a process: Linux allows one tracer per thread, so a
// process under strace or gdb refuses ptrace even to root. Saying so beats
// "permission denied".
#pragma once

#include <sys/types.h>

#include <string>

namespace aioscope::cli {

// "process 123 (strace)" when `tid` of `pid` (or the process) is traced,
// "" when it is not (or /proc does not say).
std::string describeTracer(pid_t pid, pid_t tid);

// The message for a refused PTRACE_SEIZE of `tid` in `pid` (errno EPERM):
// names the tracer when there is one, else the usual permission advice.
std::string ptraceRefusedMessage(pid_t pid, pid_t tid);

}  // namespace aioscope::cli
