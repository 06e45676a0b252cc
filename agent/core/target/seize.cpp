#include "target/seize.h"

#include <sys/ptrace.h>
#include <time.h>

#include <cerrno>

#include "target/proc.h"

namespace aioscope {

Seize seizeThread(pid_t pid, pid_t tid, long options, int& err) {
    auto attempt = [&] { return ptrace(PTRACE_SEIZE, tid, nullptr, reinterpret_cast<void*>(options)) == 0; };
    if (attempt()) return Seize::seized;
    err = errno;
    if (err == ESRCH) return Seize::gone;
    if (err != EPERM) return Seize::denied;
    for (int i = 0; i < 20; ++i) {
        if (threadEnding(pid, tid)) return Seize::gone;
        timespec ms{0, 1'000'000};
        nanosleep(&ms, nullptr);
        if (attempt()) return Seize::seized;
        err = errno;
        if (err == ESRCH) return Seize::gone;
    }
    return threadEnding(pid, tid) ? Seize::gone : Seize::denied;
}

}  // namespace aioscope
