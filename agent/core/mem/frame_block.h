// Memory for a page cache's frames: one reservation of address space, made
// at first use and backed by the kernel only as frames are written, in
// 2 MiB huge pages where the kernel can. Faulting fresh 4 KiB pages in one
// by one was most of a 10,000-task dump's time (measured here: 32 MiB
// written took 88 ms as 4 KiB pages, 2 ms as huge pages), and growing a
// heap block by doubling also copied everything cached so far.
#pragma once

#include <cstddef>
#include <cstdint>

namespace aioscope {

class FrameBlock {
public:
    FrameBlock() = default;
    FrameBlock(const FrameBlock&) = delete;
    FrameBlock& operator=(const FrameBlock&) = delete;
    ~FrameBlock() { release(); }

    // Frames [0, bytes) at a fixed place until release(): reserves on the
    // first call, never moves. `huge`: ask for huge pages. Throws
    // std::bad_alloc if no address space is left.
    std::uint8_t* reserve(std::size_t bytes, bool huge);
    // Backs frames [0, bytes) before they are written, a chunk at a time:
    // one system call instead of a page fault per frame (on this VM a fault
    // costs about 2 us, and a stacks-only dump writes over a hundred
    // frames). Advice only: where the kernel cannot (before Linux 5.14),
    // the frames fault in as they are written. Only for a block reserved
    // `huge` (dump's): the agent's, inside the program, makes no system
    // call a sandbox of the program might not expect, and grows by the page.
    void back(std::size_t bytes);
    // Gives the memory back (the next reserve() maps it again).
    void release();

private:
    void* m_map = nullptr;       // what mmap returned
    std::size_t m_mapBytes = 0;
    std::uint8_t* m_base = nullptr;  // m_map rounded up to a huge page
    std::size_t m_bytes = 0;
    bool m_huge = false;
    std::size_t m_backed = 0;    // [0, m_backed) populated by back()
    bool m_canBack = true;       // false once the kernel refused
};

}  // namespace aioscope
