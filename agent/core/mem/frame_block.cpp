#include "mem/frame_block.h"

#include <sys/mman.h>

#include <algorithm>
#include <new>

namespace aioscope {

namespace {
constexpr std::size_t kHugePage = 2u << 20;
// Frames backed by one call of back(): a stacks-only dump writes about 120.
constexpr std::size_t kBackChunk = 32 * 4096;
}

std::uint8_t* FrameBlock::reserve(std::size_t bytes, bool huge) {
    if (m_base && bytes <= m_bytes) return m_base;
    release();
    // For huge pages, one more than asked, so that the frames can start on a
    // huge page boundary (the kernel only backs aligned 2 MiB ranges with one).
    bool aligned = huge && bytes >= kHugePage;
    std::size_t align = aligned ? kHugePage : 1;
    std::size_t mapBytes = std::max<std::size_t>(bytes + (aligned ? kHugePage : 0), 4096);  // mmap of 0 fails
    void* map = mmap(nullptr, mapBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED) throw std::bad_alloc();
    auto at = (reinterpret_cast<std::uintptr_t>(map) + align - 1) & ~(align - 1);
    m_map = map;
    m_mapBytes = mapBytes;
    m_base = reinterpret_cast<std::uint8_t*>(at);
    m_bytes = bytes;
    m_huge = huge;
    // Advice only: without transparent huge pages the frames are 4 KiB pages.
    // The first huge page's worth stays in 4 KiB pages: a dump of a few
    // stacks touches a hundred frames, and zeroing a whole huge page for
    // them cost more than faulting them in one by one (measured: 0.26 ms
    // against 0.24 ms at 150 pages, 0.33 ms against 0.004 ms at one).
    if (aligned && bytes > kHugePage) madvise(m_base + kHugePage, (bytes & ~(kHugePage - 1)) - kHugePage, MADV_HUGEPAGE);
    return m_base;
}

void FrameBlock::back(std::size_t bytes) {
    // Only the first huge page's worth: past it the kernel backs the frames
    // with huge pages, a fault each 2 MiB.
    bytes = std::min({bytes, m_bytes, kHugePage});
    if (!m_huge || !m_canBack || bytes <= m_backed) return;
    std::size_t to = std::min({(bytes + kBackChunk - 1) / kBackChunk * kBackChunk, m_bytes, kHugePage});
    to = (to + 4095) & ~std::size_t{4095};
    if (madvise(m_base + m_backed, to - m_backed, MADV_POPULATE_WRITE) != 0) {
        m_canBack = false;
        return;
    }
    m_backed = to;
}

void FrameBlock::release() {
    m_backed = 0;
    if (m_map) munmap(m_map, m_mapBytes);
    m_map = nullptr;
    m_mapBytes = 0;
    m_base = nullptr;
    m_bytes = 0;
}

}  // namespace aioscope
