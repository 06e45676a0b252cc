#include "mem/frame_block.h"

#include <sys/mman.h>

#include <new>

namespace aioscope {

namespace {
constexpr std::size_t kHugePage = 2u << 20;
}

std::uint8_t* FrameBlock::reserve(std::size_t bytes, bool huge) {
    if (m_base && bytes <= m_bytes) return m_base;
    release();
    // One huge page more than asked, so that the frames can start on a huge
    // page boundary (the kernel only backs aligned 2 MiB ranges with one).
    std::size_t mapBytes = bytes + kHugePage;
    void* map = mmap(nullptr, mapBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED) throw std::bad_alloc();
    auto at = (reinterpret_cast<std::uintptr_t>(map) + kHugePage - 1) & ~(kHugePage - 1);
    m_map = map;
    m_mapBytes = mapBytes;
    m_base = reinterpret_cast<std::uint8_t*>(at);
    m_bytes = bytes;
    // Advice only: without transparent huge pages the frames are 4 KiB pages.
    if (huge && bytes >= kHugePage) madvise(m_base, bytes & ~(kHugePage - 1), MADV_HUGEPAGE);
    return m_base;
}

void FrameBlock::release() {
    if (m_map) munmap(m_map, m_mapBytes);
    m_map = nullptr;
    m_mapBytes = 0;
    m_base = nullptr;
    m_bytes = 0;
}

}  // namespace aioscope
