// The values a record (a task, a thread's stack) was built from, kept so they
// can be read again straight from the target, past the page cache. A live
// process changes while it is read: if every value still holds at the second
// look, the record describes one moment of the process, not a splice of
// several (a coroutine freed and reused by another task's, a task recycled
// under its name). Witnesses of many records are checked in one batch of
// reads (docs/how-it-works.md#consistency).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "mem/reader.h"

namespace aioscope {

class Witness {
public:
    // `size` bytes (1, 2, 4 or 8) at `addr` had `value` (little-endian).
    void expect(Addr addr, std::uint64_t value, std::uint8_t size = 8) {
        if (!addr) return;
        if (m_facts.empty()) m_facts.reserve(32);  // a task has about that many
        m_facts.push_back(Fact::make(addr, value, size, false));
    }
    // The object at `obj` is still alive: its reference count (which moves
    // all the time, so is not compared) is still a plausible one.
    void expectAlive(Addr obj) {
        if (obj) m_facts.push_back(Fact::make(obj, 0, 8, true));
    }
    void clear() { m_facts.clear(); }
    // Gives its memory back (a record whose second look is done).
    void release() { std::vector<Fact>().swap(m_facts); }
    void append(const Witness& other) { m_facts.insert(m_facts.end(), other.m_facts.begin(), other.m_facts.end()); }
    std::size_t size() const { return m_facts.size(); }

    // For each witness: whether all its values still hold. One batched read
    // of every value; `fresh` must not be a cache.
    static std::vector<bool> check(MemoryReader& fresh, std::span<const Witness* const> witnesses);
    bool holds(MemoryReader& fresh) const;

    // Drops from a cache the pages these values live on, so that reading
    // the record again sees the target as it is now.
    void forgetPages(MemoryReader& cache) const {
        for (const Fact& f : m_facts) cache.forget(f.addr(), f.size());
    }

private:
    // 16 bytes: a dump of 100,000 tasks keeps millions of them. User-space
    // addresses fit in 56 bits; the top byte holds the size and the flag.
    struct Fact {
        std::uint64_t where;
        std::uint64_t value;
        static Fact make(Addr addr, std::uint64_t value, std::uint8_t size, bool alive) {
            // An address beyond 56 bits is not a user-space one: keep it
            // unreadable (all ones) rather than truncate it to another.
            Addr a = addr >> 56 ? (Addr(1) << 56) - 1 - 8 : addr;
            return {a | (std::uint64_t(size & 15) << 56) | (std::uint64_t(alive) << 60), value};
        }
        Addr addr() const { return where & ((Addr(1) << 56) - 1); }
        std::uint8_t size() const { return static_cast<std::uint8_t>((where >> 56) & 15); }
        bool alive() const { return (where >> 60) & 1; }
    };
    std::vector<Fact> m_facts;
};

}  // namespace aioscope
