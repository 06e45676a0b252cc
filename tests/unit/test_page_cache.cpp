// PageCache over a FakeMemory that records every read reaching it. Most cases
// use a readahead of 1 so the exact inner reads can be checked; readahead
// has its own cases.
#include <catch2/catch.hpp>

#include <sys/mman.h>

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "fake_memory.h"
#include "mem/frame_block.h"
#include "mem/page_cache.h"

using namespace aioscope;
using aioscope::test::FakeMemory;
using Reads = std::vector<std::pair<Addr, std::size_t>>;

namespace {

constexpr Addr kBase = 0x100000;
constexpr std::size_t kPage = 4096;
constexpr std::size_t kMany = 16384;

std::uint8_t pattern(Addr a) { return static_cast<std::uint8_t>((a * 7 + 3) >> 2); }

// Maps `bytes` bytes at `at`, filled with pattern().
void mapPattern(FakeMemory& mem, Addr at, std::size_t bytes) {
    mem.map(at, bytes);
    std::vector<std::uint8_t> fill(bytes);
    for (std::size_t i = 0; i < bytes; ++i) fill[i] = pattern(at + i);
    mem.write(at, fill.data(), fill.size());
}

bool matches(const std::uint8_t* got, Addr at, std::size_t len) {
    for (std::size_t i = 0; i < len; ++i) {
        if (got[i] != pattern(at + i)) return false;
    }
    return true;
}

}  // namespace

TEST_CASE("a read spanning two pages fetches both, then hits the cache", "[page_cache]") {
    FakeMemory mem;
    mapPattern(mem, kBase, 2 * kPage);
    PageCache cache(mem, kMany, 1);
    std::array<std::uint8_t, 8> buf{};

    REQUIRE(cache.read(kBase + kPage - 4, buf.data(), buf.size()) == ReadResult::ok);
    CHECK(matches(buf.data(), kBase + kPage - 4, buf.size()));
    CHECK(mem.reads() == Reads{{kBase, kPage}, {kBase + kPage, kPage}});
    CHECK(cache.pagesCached() == 2);

    mem.resetCounts();
    std::array<std::uint8_t, 64> more{};
    REQUIRE(cache.read(kBase + 100, more.data(), more.size()) == ReadResult::ok);
    CHECK(matches(more.data(), kBase + 100, more.size()));
    REQUIRE(cache.read(kBase + kPage + 7, more.data(), more.size()) == ReadResult::ok);
    CHECK(matches(more.data(), kBase + kPage + 7, more.size()));
    CHECK(mem.readCalls() == 0);

    CHECK(cache.read(kBase, buf.data(), 0) == ReadResult::ok);
    CHECK(mem.readCalls() == 0);
}

TEST_CASE("a miss reads ahead up to the end of the mapping", "[page_cache][readahead]") {
    FakeMemory mem;
    mapPattern(mem, kBase, 3 * kPage);
    PageCache cache(mem, kMany, 8);
    std::uint64_t v = 0;

    REQUIRE(cache.read(kBase + 8, &v, 8) == ReadResult::ok);
    CHECK(matches(reinterpret_cast<std::uint8_t*>(&v), kBase + 8, 8));
    CHECK(mem.reads() == Reads{{kBase, 8 * kPage}});
    CHECK(cache.pagesCached() == 3);  // only the mapped part is kept

    mem.resetCounts();
    REQUIRE(cache.read(kBase + 2 * kPage + 16, &v, 8) == ReadResult::ok);
    CHECK(matches(reinterpret_cast<std::uint8_t*>(&v), kBase + 2 * kPage + 16, 8));
    CHECK(mem.readCalls() == 0);

    // Past the mapping: the readahead finds nothing, the exact read faults.
    CHECK(cache.read(kBase + 3 * kPage, &v, 8) == ReadResult::fault);
    CHECK(mem.reads() == Reads{{kBase + 3 * kPage, 8 * kPage}, {kBase + 3 * kPage, 8}});
}

TEST_CASE("readahead stops before a page already cached", "[page_cache][readahead]") {
    FakeMemory mem;
    mapPattern(mem, kBase, 4 * kPage);
    PageCache cache(mem, kMany, 8);
    std::uint64_t v = 0;
    REQUIRE(cache.read(kBase + 2 * kPage, &v, 8) == ReadResult::ok);
    REQUIRE(cache.read(kBase, &v, 8) == ReadResult::ok);
    CHECK(matches(reinterpret_cast<std::uint8_t*>(&v), kBase, 8));
    CHECK(mem.reads() == Reads{{kBase + 2 * kPage, 8 * kPage}, {kBase, 2 * kPage}});
    CHECK(cache.pagesCached() == 4);
}

TEST_CASE("clear() forgets every page", "[page_cache]") {
    FakeMemory mem;
    mapPattern(mem, kBase, kPage);
    PageCache cache(mem, kMany, 1);
    std::uint64_t v = 0;
    REQUIRE(cache.read(kBase + 8, &v, 8) == ReadResult::ok);
    mem.put<std::uint64_t>(kBase + 8, 0x1122334455667788);  // the target moved on
    REQUIRE(cache.read(kBase + 8, &v, 8) == ReadResult::ok);
    CHECK(v != 0x1122334455667788);  // still the snapshot's view

    cache.clear();
    CHECK(cache.pagesCached() == 0);
    mem.resetCounts();
    REQUIRE(cache.read(kBase + 8, &v, 8) == ReadResult::ok);
    CHECK(v == 0x1122334455667788);  // not the page last served before clear()
    CHECK(mem.readCalls() == 1);
}

TEST_CASE("release() forgets every page and the cache still works after it", "[page_cache]") {
    FakeMemory mem;
    mapPattern(mem, kBase, 2 * kPage);
    PageCache cache(mem, kMany, 1);
    std::uint8_t buf[64];
    REQUIRE(cache.read(kBase + kPage - 32, buf, sizeof buf) == ReadResult::ok);  // two pages
    mem.put<std::uint64_t>(kBase + 8, 0x1122334455667788);
    cache.release();
    CHECK(cache.pagesCached() == 0);
    mem.resetCounts();
    std::uint64_t v = 0;
    REQUIRE(cache.read(kBase + 8, &v, 8) == ReadResult::ok);
    CHECK(v == 0x1122334455667788);  // read again, into frames allocated anew
    CHECK(mem.readCalls() == 1);
    REQUIRE(cache.read(kBase + kPage - 32, buf, sizeof buf) == ReadResult::ok);
    CHECK(matches(buf, kBase + kPage - 32, sizeof buf));
}

TEST_CASE("large reads bypass the cache", "[page_cache]") {
    FakeMemory mem;
    mapPattern(mem, kBase, 8 * kPage);
    PageCache cache(mem);
    std::vector<std::uint8_t> big(5 * kPage);
    REQUIRE(cache.read(kBase + 3, big.data(), big.size()) == ReadResult::ok);
    CHECK(matches(big.data(), kBase + 3, big.size()));
    CHECK(mem.reads() == Reads{{kBase + 3, 5 * kPage}});
    CHECK(cache.pagesCached() == 0);
}

TEST_CASE("a partly mapped page still serves exact reads inside the mapping", "[page_cache]") {
    FakeMemory mem;
    mapPattern(mem, kBase, 0x800);  // half a page, as at the edge of a mapping
    PageCache cache(mem, kMany, 1);
    std::array<std::uint8_t, 16> buf{};

    REQUIRE(cache.read(kBase + 0x100, buf.data(), buf.size()) == ReadResult::ok);
    CHECK(matches(buf.data(), kBase + 0x100, buf.size()));
    CHECK(mem.reads() == Reads{{kBase, kPage}, {kBase + 0x100, 16}});

    // The failed page is remembered: later reads go straight to the exact range.
    mem.resetCounts();
    REQUIRE(cache.read(kBase + 0x7f8, buf.data(), 8) == ReadResult::ok);
    CHECK(matches(buf.data(), kBase + 0x7f8, 8));
    CHECK(mem.reads() == Reads{{kBase + 0x7f8, 8}});

    CHECK(cache.read(kBase + 0x7fc, buf.data(), 8) == ReadResult::fault);  // crosses the edge
    CHECK(cache.read(kBase + 0x900, buf.data(), 8) == ReadResult::fault);
    CHECK(cache.read(0x900000, buf.data(), 8) == ReadResult::fault);
}

TEST_CASE("gone and denied are passed on, not retried as faults", "[page_cache]") {
    FakeMemory mem;
    mapPattern(mem, kBase, kPage);
    PageCache cache(mem);
    std::uint64_t v = 0;
    mem.failAll(ReadResult::gone);
    CHECK(cache.read(kBase, &v, 8) == ReadResult::gone);
    CHECK(mem.readCalls() == 1);

    PageCache other(mem);
    mem.failAll(ReadResult::denied);
    CHECK(other.read(kBase, &v, 8) == ReadResult::denied);
}

TEST_CASE("maxPages bounds the cache on single reads", "[page_cache]") {
    FakeMemory mem;
    mapPattern(mem, kBase, 12 * kPage);
    for (std::size_t readahead : {1, 2, 4}) {
        INFO("readahead " << readahead);
        PageCache cache(mem, 4, readahead);
        std::uint64_t v = 0;
        for (Addr p = 0; p < 12; p += 3) {
            REQUIRE(cache.read(kBase + p * kPage + 16, &v, 8) == ReadResult::ok);
            CHECK(matches(reinterpret_cast<std::uint8_t*>(&v), kBase + p * kPage + 16, 8));
            CHECK(cache.pagesCached() <= 4);
        }
    }
}

TEST_CASE("readMany fetches the missing pages in one batch", "[page_cache]") {
    FakeMemory mem;
    mapPattern(mem, kBase, 4 * kPage);
    PageCache cache(mem);
    std::array<std::uint8_t, 16> a{}, b{}, c{}, bad{};
    std::vector<MemoryReader::Request> reqs = {
        {kBase + kPage + 8, a.data(), a.size()},
        {kBase + 3 * kPage - 8, b.data(), b.size()},  // spans pages 2 and 3
        {kBase + kPage + 100, c.data(), c.size()},    // same page as the first
        {0x900000, bad.data(), bad.size()},
    };
    cache.readMany(reqs);

    CHECK(mem.readManyCalls() == 1);
    // Each missing page once, in address order; then the unmapped request alone.
    CHECK(mem.reads() == Reads{{kBase + kPage, kPage}, {kBase + 2 * kPage, kPage}, {kBase + 3 * kPage, kPage},
                               {0x900000, kPage}, {0x900000, 16}});
    CHECK(reqs[0].result == ReadResult::ok);
    CHECK(reqs[1].result == ReadResult::ok);
    CHECK(reqs[2].result == ReadResult::ok);
    CHECK(reqs[3].result == ReadResult::fault);
    CHECK(matches(a.data(), kBase + kPage + 8, a.size()));
    CHECK(matches(b.data(), kBase + 3 * kPage - 8, b.size()));
    CHECK(matches(c.data(), kBase + kPage + 100, c.size()));

    mem.resetCounts();
    std::array<std::uint8_t, 16> again{};
    std::vector<MemoryReader::Request> cached = {{kBase + 2 * kPage, again.data(), again.size()}};
    cache.readMany(cached);
    CHECK(cached[0].result == ReadResult::ok);
    CHECK(matches(again.data(), kBase + 2 * kPage, again.size()));
    CHECK(mem.readCalls() == 0);
}

// One batch touching more distinct pages than maxPages must not leave the
// cache above its bound.
TEST_CASE("readMany respects maxPages", "[page_cache]") {
    FakeMemory mem;
    mapPattern(mem, kBase, 4 * kPage);
    PageCache cache(mem, 2);
    std::array<std::array<std::uint8_t, 8>, 3> bufs{};
    std::vector<MemoryReader::Request> reqs;
    for (std::size_t i = 0; i < 3; ++i) reqs.push_back({kBase + i * kPage, bufs[i].data(), 8});
    cache.readMany(reqs);
    for (const auto& r : reqs) CHECK(r.result == ReadResult::ok);
    CHECK(cache.pagesCached() <= 2);
}

// The readahead (8 pages by default) never takes a small cache
// (PageCache(inner, 2)) above maxPages.
TEST_CASE("a cache smaller than its readahead respects maxPages", "[page_cache]") {
    FakeMemory mem;
    mapPattern(mem, kBase, 8 * kPage);
    PageCache cache(mem, 2);
    std::uint64_t v = 0;
    REQUIRE(cache.read(kBase, &v, 8) == ReadResult::ok);
    CHECK(cache.pagesCached() <= 2);
}

// The cache's frames and slots start small and grow as pages come in: what
// was cached before a growth is still served, from the cache, unchanged.
TEST_CASE("pages cached before the cache grows are still served", "[page_cache]") {
    constexpr std::size_t kPages = 1000;  // several doublings of frames and slots
    FakeMemory mem;
    mapPattern(mem, kBase, kPages * kPage);
    for (std::size_t readahead : {1, 8}) {
        INFO("readahead " << readahead);
        PageCache cache(mem, kMany, readahead);
        std::uint64_t v = 0;
        for (std::size_t p = 0; p < kPages; ++p) {
            REQUIRE(cache.read(kBase + p * kPage + 40, &v, 8) == ReadResult::ok);
            REQUIRE(matches(reinterpret_cast<std::uint8_t*>(&v), kBase + p * kPage + 40, 8));
        }
        CHECK(cache.pagesCached() == kPages);
        mem.resetCounts();
        for (std::size_t p = 0; p < kPages; ++p) {
            REQUIRE(cache.read(kBase + p * kPage + 8, &v, 8) == ReadResult::ok);
            REQUIRE(matches(reinterpret_cast<std::uint8_t*>(&v), kBase + p * kPage + 8, 8));
        }
        CHECK(mem.readCalls() == 0);
    }
    SECTION("one batch larger than the first frames") {
        PageCache cache(mem);
        std::vector<std::array<std::uint8_t, 16>> bufs(kPages);
        std::vector<MemoryReader::Request> reqs;
        for (std::size_t p = 0; p < kPages; ++p) reqs.push_back({kBase + p * kPage + 16, bufs[p].data(), 16});
        cache.readMany(reqs);
        for (std::size_t p = 0; p < kPages; ++p) {
            REQUIRE(reqs[p].result == ReadResult::ok);
            REQUIRE(matches(bufs[p].data(), kBase + p * kPage + 16, 16));
        }
        CHECK(cache.pagesCached() == kPages);
    }
}

TEST_CASE("a cache as large as dump's serves every page of a full cache, twice over", "[page_cache]") {
    // dump's default size: its frames are one reservation backed by huge
    // pages; filling it, starting over and filling it again must serve the
    // same bytes as a small cache.
    constexpr std::size_t kPages = 8192;
    FakeMemory mem;
    mapPattern(mem, kBase, (kPages + 64) * kPage);
    PageCache cache(mem, kPages, 1);
    for (int round = 0; round < 2; ++round) {
        for (std::size_t i = 0; i < kPages + 64; i += 7) {
            std::array<std::uint8_t, 24> got{};
            Addr at = kBase + i * kPage + kPage - 8;  // spans two pages
            if (i + 1 >= kPages + 64) at = kBase + i * kPage;
            REQUIRE(cache.read(at, got.data(), got.size()) == ReadResult::ok);
            REQUIRE(matches(got.data(), at, got.size()));
        }
        CHECK(cache.pagesCached() <= kPages);
    }
    cache.release();
    std::array<std::uint8_t, 16> got{};
    REQUIRE(cache.read(kBase + 5, got.data(), got.size()) == ReadResult::ok);
    CHECK(matches(got.data(), kBase + 5, got.size()));
}

TEST_CASE("ranges in the last page of the address space end (a torn pointer)", "[page_cache]") {
    // A `pa < addr + len` walk over pages wraps to 0 there and never ends
    // (found by fuzz_memory: a frame pointer read as 0xffff...ffa0).
    FakeMemory mem;
    mapPattern(mem, kBase, kPage);
    PageCache cache(mem, kMany, 1);
    std::array<std::uint8_t, 8> got{};
    REQUIRE(cache.read(kBase, got.data(), got.size()) == ReadResult::ok);
    constexpr Addr kTop = ~static_cast<Addr>(0) - 0x5f;  // 80 bytes below the end, in its last page
    cache.forget(kTop, 80);
    cache.forget(kTop & ~static_cast<Addr>(kPage - 1), kPage);
    cache.forget(kBase, ~static_cast<std::size_t>(0) / 2);  // more than the cache holds: all of it
    CHECK(cache.pagesCached() == 0);
    std::array<std::uint8_t, 80> top{};
    std::vector<MemoryReader::Request> requests{{kTop, top.data(), top.size()}, {kBase, got.data(), got.size()}};
    cache.readMany(requests);
    CHECK(requests[0].result != ReadResult::ok);
    CHECK(requests[1].result == ReadResult::ok);
    CHECK(matches(got.data(), kBase, got.size()));
}

TEST_CASE("dump's frames are backed a batch ahead of their first write", "[page_cache][frames]") {
    // mincore() says which pages of ours are resident: backed without having
    // been written is what back() is for.
    auto resident = [](const std::uint8_t* at, std::size_t pages) {
        std::vector<unsigned char> v(pages);
        REQUIRE(mincore(const_cast<std::uint8_t*>(at), pages * 4096, v.data()) == 0);
        std::size_t n = 0;
        for (unsigned char c : v) n += c & 1;
        return n;
    };
    SECTION("a huge block: the first frame backs its batch of 32") {
        FrameBlock block;
        std::uint8_t* base = block.reserve(std::size_t{16} << 20, true);
        CHECK(resident(base, 64) == 0);
        block.back(4096);
        CHECK(resident(base, 32) == 32);
        CHECK(resident(base + 32 * 4096, 32) == 0);
        block.back(33 * 4096);
        CHECK(resident(base, 64) == 64);
        // Past the first 2 MiB the kernel's huge pages back them: not asked.
        block.back(std::size_t{4} << 20);
        CHECK(resident(base + (std::size_t{2} << 20), 16) == 0);
    }
    SECTION("the agent's (not huge): nothing until written") {
        FrameBlock block;
        std::uint8_t* base = block.reserve(128 * 4096, false);
        block.back(4096);
        CHECK(resident(base, 32) == 0);
    }
}
