// Writing into another process's memory: data it will read (PEP 768's
// request, the stub's block below a stack).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace aioscope::cli {

// process_vm_writev, then /proc/PID/mem (which also reaches pages
// process_vm_writev refuses). False when neither wrote everything.
bool writeTargetMemory(pid_t pid, std::uint64_t addr, const void* data, std::size_t len);

}  // namespace aioscope::cli
