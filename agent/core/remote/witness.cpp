#include "remote/witness.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>

#include "remote/objects.h"

namespace aioscope {

namespace {

// The values are read as whole pages, each page once: a batch of hundreds of
// thousands of eight-byte reads costs the kernel far more than a few
// thousand pages. The pages are sorted (an index by binary search, and the
// target's page tables walked in order).
constexpr Addr kPage = 4096;

}  // namespace

std::vector<bool> Witness::check(MemoryReader& fresh, std::span<const Witness* const> witnesses) {
    std::vector<Addr> pages;
    // Pages met recently are not listed again: a record's values sit on a
    // few pages, met over and over (fewer to sort).
    std::array<Addr, 64> recent{};
    recent.fill(1);
    auto note = [&](Addr p) {
        Addr& seen = recent[(p >> 12) % recent.size()];
        if (seen != p) {
            pages.push_back(p);
            seen = p;
        }
    };
    for (const Witness* w : witnesses) {
        for (const Fact& f : w->m_facts) {
            Addr first = f.addr() & ~(kPage - 1);
            note(first);
            Addr end = (f.addr() + f.size() - 1) & ~(kPage - 1);
            if (end != first) note(end);  // a value across two pages
        }
    }
    std::sort(pages.begin(), pages.end());
    pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
    // Not zero-filled: every byte looked at was read (or its read failed).
    std::unique_ptr<std::uint8_t[]> buf(new std::uint8_t[pages.size() * kPage]);
    std::vector<MemoryReader::Request> requests;
    requests.reserve(pages.size());
    for (std::size_t i = 0; i < pages.size(); ++i) requests.push_back({pages[i], buf.get() + i * kPage, kPage});
    fresh.readMany(requests);

    std::vector<bool> out(witnesses.size(), true);
    Addr lastPage = 1;
    std::size_t lastIndex = 0;
    auto at = [&](Addr p) {
        if (p != lastPage) {
            lastPage = p;
            lastIndex = static_cast<std::size_t>(std::lower_bound(pages.begin(), pages.end(), p) - pages.begin());
        }
        return lastIndex;
    };
    for (std::size_t w = 0; w < witnesses.size(); ++w) {
        for (const Fact& f : witnesses[w]->m_facts) {
            std::uint64_t now = 0;
            bool ok = true;
            Addr addr = f.addr();
            std::uint8_t size = f.size();
            std::size_t i = at(addr & ~(kPage - 1));
            Addr off = addr & (kPage - 1);
            if (off + size <= kPage) {
                ok = requests[i].result == ReadResult::ok;
                if (ok) std::memcpy(&now, buf.get() + i * kPage + off, size);
            } else {
                for (std::size_t k = 0; k < size && ok; ++k) {
                    Addr a = addr + k;
                    std::size_t j = at(a & ~(kPage - 1));
                    ok = requests[j].result == ReadResult::ok;
                    if (ok) reinterpret_cast<std::uint8_t*>(&now)[k] = buf[j * kPage + (a & (kPage - 1))];
                }
            }
            if (!ok) {
                out[w] = false;
            } else if (f.alive()) {
                if (!Objects::plausibleRefcount(now)) out[w] = false;
            } else {
                std::uint64_t mask = size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
                if ((now & mask) != (f.value & mask)) out[w] = false;
            }
        }
    }
    return out;
}

bool Witness::holds(MemoryReader& fresh) const {
    const Witness* self = this;
    return check(fresh, std::span<const Witness* const>(&self, 1)).front();
}

}  // namespace aioscope
