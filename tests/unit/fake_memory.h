// A sparse, in-process stand-in for a target's address space, so readers and
// walkers can be tested on hand-built object graphs without a live process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string_view>
#include <utility>
#include <vector>

#include "mem/reader.h"

namespace aioscope::test {

class FakeMemory : public MemoryReader {
public:
    // Maps [addr, addr + size), zero-filled. Regions must not overlap.
    void map(Addr addr, std::size_t size);
    void unmap(Addr addr);  // removes the region starting at addr

    // Writes into mapped memory; writing outside it is a bug in the test and
    // throws std::logic_error.
    void write(Addr addr, const void* src, std::size_t len);
    template <class T>
    void put(Addr addr, T value) {
        write(addr, &value, sizeof value);
    }
    void putString(Addr addr, std::string_view s) { write(addr, s.data(), s.size()); }

    // Fresh zeroed pages holding at least `size` bytes, followed by an unmapped
    // page, so running off their end faults like a real torn read.
    Addr alloc(std::size_t size);

    // Makes every read return `r` (ReadResult::ok restores normal service),
    // e.g. gone for a process that exited, denied for a ptrace refusal.
    void failAll(ReadResult r) { m_forced = r; }

    ReadResult read(Addr addr, void* dst, std::size_t len) override;
    void readMany(std::span<Request> requests) override;
    // Like process_vm_readv: stops at the first unmapped byte.
    std::size_t readPrefix(Addr addr, void* dst, std::size_t len, ReadResult& why) override;

    // What reached this reader (read and readPrefix calls, in order): for
    // checking that a cache absorbs reads.
    std::size_t readCalls() const { return m_reads.size(); }
    std::size_t readManyCalls() const { return m_readManyCalls; }
    const std::vector<std::pair<Addr, std::size_t>>& reads() const { return m_reads; }
    void resetCounts() {
        m_reads.clear();
        m_readManyCalls = 0;
    }

private:
    std::size_t copyOut(Addr addr, std::uint8_t* out, std::size_t len) const;

    std::map<Addr, std::vector<std::uint8_t>> m_regions;
    Addr m_next = 0x10000000;
    ReadResult m_forced = ReadResult::ok;
    std::vector<std::pair<Addr, std::size_t>> m_reads;
    std::size_t m_readManyCalls = 0;
};

}  // namespace aioscope::test
