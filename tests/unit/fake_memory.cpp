#include "fake_memory.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <stdexcept>

namespace aioscope::test {

void FakeMemory::map(Addr addr, std::size_t size) {
    auto next = m_regions.lower_bound(addr);
    bool overlapsNext = next != m_regions.end() && next->first < addr + size;
    bool overlapsPrev = next != m_regions.begin() &&
                        std::prev(next)->first + std::prev(next)->second.size() > addr;
    if (size == 0 || overlapsNext || overlapsPrev) throw std::logic_error("FakeMemory::map: bad region");
    m_regions.emplace(addr, std::vector<std::uint8_t>(size));
}

void FakeMemory::unmap(Addr addr) {
    if (m_regions.erase(addr) == 0) throw std::logic_error("FakeMemory::unmap: no region there");
}

void FakeMemory::write(Addr addr, const void* src, std::size_t len) {
    const auto* in = static_cast<const std::uint8_t*>(src);
    while (len > 0) {
        auto it = m_regions.upper_bound(addr);
        if (it == m_regions.begin()) throw std::logic_error("FakeMemory::write: unmapped");
        --it;
        std::size_t off = addr - it->first;
        if (off >= it->second.size()) throw std::logic_error("FakeMemory::write: unmapped");
        std::size_t n = std::min(len, it->second.size() - off);
        std::memcpy(it->second.data() + off, in, n);
        in += n;
        addr += n;
        len -= n;
    }
}

Addr FakeMemory::alloc(std::size_t size) {
    // Whole pages, as the kernel maps them: reading a little past an object
    // works, reading past its last page faults.
    std::size_t pages = std::max<std::size_t>((size + 4095) / 4096, 1);
    Addr a = m_next;
    map(a, pages * 4096);
    m_next += (pages + 1) * 4096;
    return a;
}

// Copies the mapped prefix of [addr, addr + len); adjacent regions behave like
// one mapping, any gap stops the copy.
std::size_t FakeMemory::copyOut(Addr addr, std::uint8_t* out, std::size_t len) const {
    std::size_t done = 0;
    while (done < len) {
        auto it = m_regions.upper_bound(addr);
        if (it == m_regions.begin()) break;
        --it;
        std::size_t off = addr - it->first;
        if (off >= it->second.size()) break;
        std::size_t n = std::min(len - done, it->second.size() - off);
        std::memcpy(out + done, it->second.data() + off, n);
        done += n;
        addr += n;
    }
    return done;
}

ReadResult FakeMemory::read(Addr addr, void* dst, std::size_t len) {
    m_reads.emplace_back(addr, len);
    if (m_forced != ReadResult::ok) return m_forced;
    if (addr + len < addr) return ReadResult::fault;
    return copyOut(addr, static_cast<std::uint8_t*>(dst), len) == len ? ReadResult::ok : ReadResult::fault;
}

std::size_t FakeMemory::readPrefix(Addr addr, void* dst, std::size_t len, ReadResult& why) {
    m_reads.emplace_back(addr, len);
    if (m_forced != ReadResult::ok) {
        why = m_forced;
        return 0;
    }
    std::size_t n = addr + len < addr ? 0 : copyOut(addr, static_cast<std::uint8_t*>(dst), len);
    why = n == len ? ReadResult::ok : ReadResult::fault;
    return n;
}

void FakeMemory::readMany(std::span<Request> requests) {
    ++m_readManyCalls;
    MemoryReader::readMany(requests);
}

}  // namespace aioscope::test
