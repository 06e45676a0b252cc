// A recorded memory image of a live CPython process: the bytes one snapshot
// read touched and where the runtime was located. record_image.cpp
// makes one from a zoo process; fuzz_memory.cpp replays it, mutated, through
// the real resolve -> read -> walk -> analyse pipeline.
//
// File format (little-endian), "AIOSCIMG" then version 1:
//   str label, str file, str executable, u8 shared, i32 minorFromName,
//   u8 hasPyVersion, u64 pyVersion, u32 n, n x u64 candidate,
//   u32 regions, then per region u64 addr, u64 length, bytes.
// str is u32 length + bytes.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <unordered_set>
#include <string>
#include <string_view>
#include <vector>

#include "mem/reader.h"
#include "target/runtime_location.h"

namespace aioscope::fuzz {

struct Region {
    Addr addr = 0;
    std::vector<std::uint8_t> bytes;
    Addr end() const { return addr + bytes.size(); }
};

struct MemoryImage {
    std::string label;  // "3.12.1 aio_shapes.py": what was recorded
    RuntimeLocation location;
    std::vector<Region> regions;  // sorted by address, disjoint, not adjacent

    // Adds bytes read at addr (merged with what overlaps or touches them).
    void add(Addr addr, const void* data, std::size_t len);
    std::size_t bytes() const;

    std::string serialize() const;
    // Throws std::runtime_error on a malformed file.
    static MemoryImage parse(std::string_view data);
};

// Wraps a live reader and records every successful read into an image. The
// page cache's page reads are refused (it then reads the exact ranges it was
// asked for), so the image holds the bytes the walkers read.
class RecordingReader final : public MemoryReader {
public:
    RecordingReader(MemoryReader& inner, MemoryImage& image) : m_inner(inner), m_image(image) {}
    ReadResult read(Addr addr, void* dst, std::size_t len) override;
    void readMany(std::span<Request> requests) override;
    std::size_t readPrefix(Addr addr, void* dst, std::size_t len, ReadResult& why) override;

private:
    MemoryReader& m_inner;
    MemoryImage& m_image;
};

// Serves reads from an image (the bytes of a recorded page that were not
// recorded read as zeros: the page was mapped), with the mutations a live process can show
// between two reads: bytes overwritten, blocks zeroed (freed and cleared),
// pages unmapped (returned to the OS), pointers to other objects or to
// freed junk. Every mutation is undone by reset(), so one image serves
// millions of fuzzer runs without being copied.
class ImageReader final : public MemoryReader {
public:
    explicit ImageReader(MemoryImage image);

    const MemoryImage& image() const { return m_image; }
    // Offsets below index the image's bytes as if its regions were
    // concatenated (so any fuzzer number names a recorded byte).
    std::size_t size() const { return m_total; }
    Addr addressOf(std::size_t offset) const;
    // The offset of the 8-byte aligned address at or below `offset`'s (in
    // its region): where a pointer or a size can be.
    std::size_t align8(std::size_t offset) const;
    // Copies up to len bytes at `offset` (fewer at a region's end; the rest
    // of dst is left as is).
    void readAt(std::size_t offset, void* dst, std::size_t len) const;

    void write(std::size_t offset, const void* src, std::size_t len);
    void zero(std::size_t offset, std::size_t len);
    void copy(std::size_t from, std::size_t to, std::size_t len);
    void unmapPage(std::size_t offset);
    // A mapped block of junk (a freed object's memory) and its address.
    Addr junk(const std::uint8_t* pattern, std::size_t len);
    void reset();

    ReadResult read(Addr addr, void* dst, std::size_t len) override;
    std::size_t readPrefix(Addr addr, void* dst, std::size_t len, ReadResult& why) override;

private:
    // Region index and offset in it of a concatenated offset.
    std::pair<std::size_t, std::size_t> locate(std::size_t offset) const;
    void save(std::size_t region, std::size_t at, std::size_t len);
    // Copies what is readable from addr on (stopping at a page that was
    // not recorded or was unmapped); returns how much.
    std::size_t copyOut(Addr addr, std::uint8_t* dst, std::size_t len) const;

    struct Undo {
        std::size_t region;
        std::size_t at;
        std::vector<std::uint8_t> bytes;
    };
    MemoryImage m_image;
    std::vector<std::size_t> m_starts;  // concatenated offset of each region
    std::size_t m_total = 0;
    std::vector<Undo> m_undo;
    // Pages holding recorded bytes, sorted (a flat list: a lookup is a few
    // comparisons, on the path of every read of a run).
    std::vector<Addr> m_touched;
    std::unordered_set<Addr> m_unmapped;  // pages unmapped by a mutation
    bool touched(Addr page) const { return std::binary_search(m_touched.begin(), m_touched.end(), page); }
    std::vector<std::uint8_t> m_junk;
    static constexpr Addr kJunkBase = 0x7ffff0000000;
};

}  // namespace aioscope::fuzz
