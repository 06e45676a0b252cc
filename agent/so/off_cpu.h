// Since when a thread of this process has been off the CPU, from the
// scheduler's own record (/proc/self/task/TID/sched, se.exec_start: the last
// time the scheduler accounted it running). A callback that is still running
// on a thread asleep since T was already running at T: for a loop wedged in
// time.sleep, a futex or a blocking read before the agent arrived, that is a
// far better lower bound of the stall's length than the agent's arrival.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>

namespace aioscope::agent {

// A monotonic time (ns) at or after which the thread last ran, when it is
// asleep now and stayed asleep while it was read; nullopt when it runs, or
// when the kernel does not publish the record. The scheduler's clock runs
// behind CLOCK_MONOTONIC by the time spent in interrupts and stolen by the
// hypervisor, each CPU's by its own amount; the conversion uses the largest
// lag measured now over the CPUs (the calling thread visits each), which is
// at least the lag of any CPU at any earlier moment: the result is never
// earlier than the truth.
std::optional<std::int64_t> offCpuSinceNs(pid_t tid);

}  // namespace aioscope::agent
