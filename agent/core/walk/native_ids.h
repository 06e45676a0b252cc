// CPython 3.10 does not record a thread's kernel id. Its thread id is a
// pthread_t, which on glibc points at struct pthread, whose `tid` field holds
// the kernel id at an offset that depends on the glibc build. We find that
// offset by matching the process's real thread ids, so no glibc is assumed.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <vector>

#include "mem/remote.h"

namespace aioscope {

std::map<std::uint64_t, std::int64_t> nativeIdsFromPthreads(Remote& mem,
                                                            const std::vector<std::uint64_t>& pthreads,
                                                            const std::vector<pid_t>& tids);

}  // namespace aioscope
