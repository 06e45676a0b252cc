// A page-granular cache in front of any MemoryReader, valid for one snapshot.
// Objects that asyncio allocates together share pymalloc pools, so serving
// reads from whole pages turns tens of thousands of small reads into a few
// thousand system calls (see docs/how-it-works.md#reading-memory).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <unordered_map>

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

    // Forget everything: call between snapshots of a live process.
    void clear();

    std::size_t pagesCached() const { return m_pages.size(); }

private:
    using Page = std::array<std::uint8_t, kPageSize>;
    const Page* page(Addr pageAddr, ReadResult& why);
    bool copyCached(Addr addr, void* dst, std::size_t len) const;

    MemoryReader& m_inner;
    std::size_t m_maxPages;
    std::size_t m_readahead;
    Addr m_lastAddr = 1;  // the page most recently served (1: none)
    const Page* m_last = nullptr;
    std::unordered_map<Addr, std::unique_ptr<Page>> m_pages;
    std::unordered_map<Addr, ReadResult> m_badPages;
};

}  // namespace aioscope
