#include "mem/page_cache.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <vector>

namespace aioscope {

namespace {
constexpr Addr pageOf(Addr a) { return a & ~static_cast<Addr>(PageCache::kPageSize - 1); }
// Reads larger than this bypass the cache: they are rare (line tables, big
// strings) and would evict many useful pages.
constexpr std::size_t kBypassLen = 4 * PageCache::kPageSize;
// A cache that may hold this much (dump's) is backed by huge pages; the
// agent's smaller one, inside the program, grows 4 KiB at a time and adds
// only what it uses to the program's memory.
constexpr std::size_t kHugeFrom = 16u << 20;
// Slots at first use (the table then doubles as pages are cached).
constexpr std::size_t kFirstSlots = 256;

// How many pages [addr, addr + len) touches (len > 0, no overflow). Counted,
// never walked by comparing addresses: a range in the last page of the
// address space (a torn pointer) would wrap a `pa < end` loop to 0 and run
// for ever.
std::size_t pagesTouched(Addr addr, std::size_t len) {
    return static_cast<std::size_t>((pageOf(addr + len - 1) - pageOf(addr)) / PageCache::kPageSize) + 1;
}

std::size_t hashPage(Addr page) { return static_cast<std::size_t>((page >> 12) * 0x9E3779B97F4A7C15ull >> 20); }
}  // namespace

PageCache::PageCache(MemoryReader& inner, std::size_t maxPages, std::size_t readahead)
    : m_inner(inner),
      m_maxPages(std::max<std::size_t>(1, maxPages)),
      m_readahead(std::max<std::size_t>(1, readahead)),
      // At most maxPages slots are ever occupied: at most half full at
      // full size. Grown from a small table as pages are cached.
      m_maxSlots(std::bit_ceil(2 * m_maxPages)),
      m_slots(std::min<std::size_t>(m_maxSlots, kFirstSlots)) {}

void PageCache::growSlots() {
    std::vector<Slot> old(m_slots.size() * 2);
    old.swap(m_slots);
    std::size_t mask = m_slots.size() - 1;
    for (const Slot& s : old) {
        if (s.generation != m_generation) continue;
        std::size_t i = hashPage(s.page) & mask;
        while (m_slots[i].generation == m_generation) i = (i + 1) & mask;
        m_slots[i] = s;
    }
}

void PageCache::clear() {
    m_badPages.clear();
    m_lastAddr = 1;
    m_last = nullptr;
    m_used = 0;
    m_live = 0;
    m_occupied = 0;
    if (++m_generation == 0) {  // wrapped: slots of generation 1 would look current
        std::fill(m_slots.begin(), m_slots.end(), Slot{});
        m_generation = 1;
    }
}

void PageCache::release() {
    clear();
    m_frameBlock.release();
    m_block = nullptr;  // reserved again at the next read
    m_touched = 0;
}

PageCache::Slot* PageCache::find(Addr pageAddr) {
    std::size_t mask = m_slots.size() - 1;
    for (std::size_t i = hashPage(pageAddr) & mask;; i = (i + 1) & mask) {
        Slot& s = m_slots[i];
        if (s.generation != m_generation) return nullptr;
        if (s.page == pageAddr) return s.dead ? nullptr : &s;
    }
}

void PageCache::insert(Addr pageAddr, std::uint32_t frame) {
    if (2 * (m_occupied + 1) > m_slots.size() && m_slots.size() < m_maxSlots) growSlots();
    std::size_t mask = m_slots.size() - 1;
    for (std::size_t i = hashPage(pageAddr) & mask;; i = (i + 1) & mask) {
        Slot& s = m_slots[i];
        if (s.generation != m_generation) {
            s = Slot{pageAddr, frame, m_generation, false};
            ++m_occupied;
            ++m_live;
            return;
        }
        if (s.page == pageAddr) {
            if (s.dead) ++m_live;
            s.frame = frame;
            s.dead = false;
            return;
        }
    }
}

std::uint8_t* PageCache::takeFrames(std::size_t count, std::uint32_t& first) {
    if (m_used + count > m_maxPages) clear();
    if (!m_block) {
        std::size_t bytes = m_maxPages * kPageSize;
        m_block = m_frameBlock.reserve(bytes, bytes >= kHugeFrom);
    }
    first = static_cast<std::uint32_t>(m_used);
    m_used += count;
    m_frameBlock.back(m_used * kPageSize);
    m_touched = std::max(m_touched, m_used);
    return m_block + first * kPageSize;
}

void PageCache::forget(Addr addr, std::size_t len) {
    if (len == 0) return;
    std::size_t pages = addr + len < addr ? m_maxPages + 1 : pagesTouched(addr, len);
    if (pages > m_maxPages) {
        clear();  // more than the cache can hold: forgetting everything is as right
        return;
    }
    Addr pa = pageOf(addr);
    for (; pages > 0; --pages, pa += kPageSize) {
        if (Slot* s = find(pa)) {
            s->dead = true;  // its frame is taken back at the next clear()
            --m_live;
        }
        m_badPages.erase(pa);
    }
    m_lastAddr = 1;
    m_last = nullptr;
}

const PageCache::Page* PageCache::page(Addr pageAddr, ReadResult& why) {
    if (pageAddr == m_lastAddr) return m_last;
    if (const Slot* s = find(pageAddr)) {
        m_lastAddr = pageAddr;
        m_last = &frames()[s->frame];
        return m_last;
    }
    if (!m_badPages.empty()) {
        if (auto it = m_badPages.find(pageAddr); it != m_badPages.end()) {
            why = it->second;
            return nullptr;
        }
    }
    if (m_badPages.size() >= m_maxPages) m_badPages.clear();
    std::size_t readahead = std::min(m_readahead, m_maxPages);
    if (m_used + readahead > m_maxPages) clear();
    // Read ahead, stopping before pages already cached or past the mapping,
    // straight into the frames that will hold them.
    std::size_t count = 1;
    while (count < readahead && !cached(pageAddr + count * kPageSize)) ++count;
    std::uint32_t first = 0;
    std::uint8_t* buf = takeFrames(count, first);
    std::size_t got = m_inner.readPrefix(pageAddr, buf, count * kPageSize, why);
    std::size_t pages = got / kPageSize;
    m_used = first + pages;  // frames not filled go back
    if (pages == 0) {
        if (why == ReadResult::ok) why = ReadResult::fault;
        m_badPages.emplace(pageAddr, why);
        return nullptr;
    }
    why = ReadResult::ok;
    for (std::size_t i = 0; i < pages; ++i) insert(pageAddr + i * kPageSize, first + static_cast<std::uint32_t>(i));
    m_lastAddr = pageAddr;
    m_last = &frames()[first];
    return m_last;
}

ReadResult PageCache::read(Addr addr, void* dst, std::size_t len) {
    if (len == 0) return ReadResult::ok;
    if (len > kBypassLen || addr + len < addr) return m_inner.read(addr, dst, len);
    auto* out = static_cast<std::uint8_t*>(dst);
    Addr pa = pageOf(addr);
    // The common case: within the page served last.
    if (pa == m_lastAddr && (addr - pa) + len <= kPageSize) {
        std::memcpy(out, m_last->data() + (addr - pa), len);
        return ReadResult::ok;
    }
    Addr cur = addr;
    std::size_t left = len;
    while (left > 0) {
        pa = pageOf(cur);
        ReadResult why = ReadResult::ok;
        const Page* p = page(pa, why);
        if (!p) {
            // A page may be partly unreadable only at mapping edges; the exact
            // range can still be valid, so ask the inner reader directly.
            if (why == ReadResult::fault) return m_inner.read(addr, dst, len);
            return why;
        }
        std::size_t off = cur - pa;
        std::size_t n = std::min(left, kPageSize - off);
        std::memcpy(out, p->data() + off, n);
        out += n;
        cur += n;
        left -= n;
    }
    return ReadResult::ok;
}

bool PageCache::copyCached(Addr addr, void* dst, std::size_t len) {
    auto* out = static_cast<std::uint8_t*>(dst);
    while (len > 0) {
        Addr pa = pageOf(addr);
        const Slot* s = find(pa);
        if (!s) return false;
        std::size_t off = addr - pa;
        std::size_t n = std::min(len, kPageSize - off);
        std::memcpy(out, frames()[s->frame].data() + off, n);
        out += n;
        addr += n;
        len -= n;
    }
    return true;
}

void PageCache::readMany(std::span<Request> requests) {
    // Gather the missing pages of all requests and fetch them in one batch.
    std::vector<Addr> missing;
    for (const auto& r : requests) {
        if (r.len == 0 || r.len > kBypassLen || r.addr + r.len < r.addr) continue;
        Addr pa = pageOf(r.addr);
        for (std::size_t i = pagesTouched(r.addr, r.len); i > 0; --i, pa += kPageSize) {
            if (!cached(pa) && !m_badPages.count(pa)) missing.push_back(pa);
        }
    }
    std::sort(missing.begin(), missing.end());
    missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
    // What does not fit is read page by page below, through the usual path.
    if (missing.size() > m_maxPages) missing.resize(m_maxPages);
    if (m_badPages.size() + missing.size() > m_maxPages) m_badPages.clear();
    if (!missing.empty()) {
        std::uint32_t first = 0;
        std::uint8_t* frames = takeFrames(missing.size(), first);
        std::vector<Request> batch;
        batch.reserve(missing.size());
        for (std::size_t i = 0; i < missing.size(); ++i) batch.push_back({missing[i], frames + i * kPageSize, kPageSize});
        m_inner.readMany(batch);
        for (std::size_t i = 0; i < batch.size(); ++i) {
            if (batch[i].result == ReadResult::ok) {
                insert(batch[i].addr, first + static_cast<std::uint32_t>(i));
            } else {
                m_badPages.emplace(batch[i].addr, batch[i].result);
            }
        }
        m_lastAddr = 1;
        m_last = nullptr;
    }
    for (auto& r : requests) {
        r.result = copyCached(r.addr, r.dst, r.len) ? ReadResult::ok : read(r.addr, r.dst, r.len);
    }
}

}  // namespace aioscope
