#include "heap_pages.h"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

namespace aioscope::cli {

namespace {
constexpr std::size_t kHugePage = 2u << 20;
constexpr std::size_t kHeapStep = 64u << 20;
}  // namespace

void preferHugeHeapPages() {
    // Large blocks from the heap too (not each its own fresh mmap), the heap
    // grown 64 MiB at a time and never trimmed back: so that one advice
    // below covers what a dump allocates. Address space only: what is never
    // written is never backed.
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TOP_PAD, static_cast<int>(kHeapStep));
    mallopt(M_TRIM_THRESHOLD, static_cast<int>(2 * kHeapStep));
    // More than the heap has free: it grows by this plus the step.
    void* first = std::malloc(2 * kHugePage);
    auto* end = static_cast<std::uint8_t*>(sbrk(0));
    auto start = (reinterpret_cast<std::uintptr_t>(first) + kHugePage - 1) & ~(kHugePage - 1);
    auto stop = reinterpret_cast<std::uintptr_t>(end) & ~(kHugePage - 1);
    if (stop > start) madvise(reinterpret_cast<void*>(start), stop - start, MADV_HUGEPAGE);
    std::free(first);
}

}  // namespace aioscope::cli
