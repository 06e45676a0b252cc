// A page-granular cache in front of any MemoryReader, valid for one snapshot.
// Objects that asyncio allocates together share pymalloc pools, so serving
// reads from whole pages turns tens of thousands of small reads into a few
// thousand system calls (see docs/how-it-works.md#reading-memory).
#pragma once

#include <array>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "mem/frame_block.h"
#include "mem/reader.h"

namespace aioscope {

class PageCache final : public MemoryReader {
public:
    static constexpr std::size_t kPageSize = 4096;

    // maxPages bounds memory use; when full the cache starts over. A miss
    // reads `readahead` pages at once: consecutive tasks, coroutines and
    // futures sit in consecutive pages of the same pymalloc arena.
    explicit PageCache(MemoryReader& inner, std::size_t maxPages = 8192, std::size_t readahead = 8);

    ReadResult read(Addr addr, void* dst, std::size_t len) override;
    void readMany(std::span<Request> requests) override;
    void readManyPast(std::span<Request> requests) override { m_inner.readMany(requests); }

    // Forget everything: call between snapshots of a live process.
    void clear();
    // clear(), and give the pages' memory back (a one-shot dump does not
    // read again; up to maxPages * 4 KiB otherwise stays resident while
    // 100,000 tasks are analysed and written).
    void release();
    void forget() override { clear(); }
    void forget(Addr addr, std::size_t len) override;

    std::size_t pagesCached() const { return m_live; }
    // Frames written since they were allocated: what the cache holds resident.
    std::size_t framesTouched() const { return m_touched; }

private:
    using Page = std::array<std::uint8_t, kPageSize>;
    // Where a page's bytes are: an index into the frame block. Pages live in one
    // block of frames handed out in order and taken back all at once by
    // clear(), so a dump of 100,000 tasks, which starts the cache over
    // every thousand tasks, allocates (and faults in) its frames once.
    struct Slot {
        Addr page = 0;       // 0: empty
        std::uint32_t frame = 0;
        std::uint32_t generation = 0;  // a slot of an older generation is empty
        bool dead = false;   // forgotten (kept so probing goes on past it)
    };
    static constexpr std::uint32_t kNoFrame = ~0u;

    const Page* page(Addr pageAddr, ReadResult& why);
    Slot* find(Addr pageAddr);
    void insert(Addr pageAddr, std::uint32_t frame);
    void growSlots();  // doubles m_slots (keeping this generation's slots)
    bool cached(Addr pageAddr) { return find(pageAddr) != nullptr; }
    // `count` consecutive free frames (starting over if the cache is full).
    std::uint8_t* takeFrames(std::size_t count, std::uint32_t& first);
    Page* frames() { return reinterpret_cast<Page*>(m_block); }
    bool copyCached(Addr addr, void* dst, std::size_t len);

    MemoryReader& m_inner;
    std::size_t m_maxPages;
    std::size_t m_readahead;
    Addr m_lastAddr = 1;  // the page most recently served (1: none)
    const Page* m_last = nullptr;
    // Reserved at the first miss for maxPages frames, backed as they are
    // written: a dump of a small process touches a few hundred pages.
    FrameBlock m_frameBlock;
    std::uint8_t* m_block = nullptr;   // m_frameBlock's frames, null until reserved
    std::size_t m_used = 0;            // frames handed out since the last clear()
    std::size_t m_touched = 0;         // the most frames ever handed out at once
    std::size_t m_live = 0;            // pages cached and not forgotten
    std::size_t m_maxSlots;
    std::vector<Slot> m_slots;         // open addressing, size a power of two, at most half full
    std::size_t m_occupied = 0;        // slots of this generation, dead ones included
    std::uint32_t m_generation = 1;
    std::unordered_map<Addr, ReadResult> m_badPages;
};

}  // namespace aioscope
