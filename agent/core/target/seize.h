// Taking a thread as a ptrace tracee, telling an exiting thread apart from a
// real refusal: the kernel answers EPERM both to "you may not" and to "this
// thread is already a zombie", and a target that ends while aioscope attaches
// must read as "it exited", never as a permission problem.
#pragma once

#include <sys/types.h>

namespace aioscope {

enum class Seize {
    seized,  // traced by us now
    gone,    // the thread exited (or is exiting) meanwhile
    denied,  // a real refusal: errno-style reason in `err`
};

// PTRACE_SEIZE of `tid` (a thread of `pid`) with `options`; on EPERM the
// thread is watched for up to ~20 ms before the refusal is believed. `err`
// receives the last errno when the answer is `denied`.
Seize seizeThread(pid_t pid, pid_t tid, long options, int& err);

}  // namespace aioscope
