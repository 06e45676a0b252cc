#include "mem/page_cache.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace aioscope {

namespace {
constexpr Addr pageOf(Addr a) { return a & ~static_cast<Addr>(PageCache::kPageSize - 1); }
// Reads larger than this bypass the cache: they are rare (line tables, big
// strings) and would evict many useful pages.
constexpr std::size_t kBypassLen = 4 * PageCache::kPageSize;
}  // namespace

PageCache::PageCache(MemoryReader& inner, std::size_t maxPages, std::size_t readahead)
    : m_inner(inner), m_maxPages(maxPages), m_readahead(std::max<std::size_t>(1, readahead)) {}

void PageCache::clear() {
    m_pages.clear();
    m_badPages.clear();
    m_lastAddr = 1;
    m_last = nullptr;
}

const PageCache::Page* PageCache::page(Addr pageAddr, ReadResult& why) {
    if (pageAddr == m_lastAddr) return m_last;
    if (auto it = m_pages.find(pageAddr); it != m_pages.end()) {
        m_lastAddr = pageAddr;
        m_last = it->second.get();
        return m_last;
    }
    if (auto it = m_badPages.find(pageAddr); it != m_badPages.end()) {
        why = it->second;
        return nullptr;
    }
    std::size_t readahead = std::max<std::size_t>(1, std::min(m_readahead, m_maxPages));
    if (m_pages.size() + readahead > m_maxPages) {
        m_pages.clear();
        m_lastAddr = 1;
    }
    if (m_badPages.size() >= m_maxPages) m_badPages.clear();
    // Read ahead, stopping before pages already cached or past the mapping.
    std::size_t count = 1;
    while (count < readahead && !m_pages.count(pageAddr + count * kPageSize)) ++count;
    std::vector<std::uint8_t> buf(count * kPageSize);
    std::size_t got = m_inner.readPrefix(pageAddr, buf.data(), buf.size(), why);
    if (got < kPageSize) {
        if (why == ReadResult::ok) why = ReadResult::fault;
        m_badPages.emplace(pageAddr, why);
        return nullptr;
    }
    why = ReadResult::ok;
    for (std::size_t i = 0; i < got / kPageSize; ++i) {
        auto p = std::unique_ptr<Page>(new Page);  // no zero-fill: overwritten at once
        std::memcpy(p->data(), buf.data() + i * kPageSize, kPageSize);
        m_pages.emplace(pageAddr + i * kPageSize, std::move(p));
    }
    m_lastAddr = pageAddr;
    m_last = m_pages.at(pageAddr).get();
    return m_last;
}

ReadResult PageCache::read(Addr addr, void* dst, std::size_t len) {
    if (len == 0) return ReadResult::ok;
    if (len > kBypassLen || addr + len < addr) return m_inner.read(addr, dst, len);
    auto* out = static_cast<std::uint8_t*>(dst);
    Addr cur = addr;
    std::size_t left = len;
    while (left > 0) {
        Addr pa = pageOf(cur);
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

bool PageCache::copyCached(Addr addr, void* dst, std::size_t len) const {
    auto* out = static_cast<std::uint8_t*>(dst);
    while (len > 0) {
        Addr pa = pageOf(addr);
        auto it = m_pages.find(pa);
        if (it == m_pages.end()) return false;
        std::size_t off = addr - pa;
        std::size_t n = std::min(len, kPageSize - off);
        std::memcpy(out, it->second->data() + off, n);
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
        for (Addr pa = pageOf(r.addr); pa < r.addr + r.len; pa += kPageSize) {
            if (!m_pages.count(pa) && !m_badPages.count(pa)) missing.push_back(pa);
        }
    }
    std::sort(missing.begin(), missing.end());
    missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
    // What does not fit is read page by page below, through the usual path.
    if (missing.size() > m_maxPages) missing.resize(m_maxPages);
    if (m_pages.size() + missing.size() > m_maxPages) {
        m_pages.clear();
        m_lastAddr = 1;
    }
    if (m_badPages.size() + missing.size() > m_maxPages) m_badPages.clear();
    std::vector<std::unique_ptr<Page>> buffers;
    std::vector<Request> batch;
    buffers.reserve(missing.size());
    batch.reserve(missing.size());
    for (Addr pa : missing) {
        buffers.push_back(std::unique_ptr<Page>(new Page));
        batch.push_back({pa, buffers.back()->data(), kPageSize});
    }
    m_inner.readMany(batch);
    for (std::size_t i = 0; i < batch.size(); ++i) {
        if (batch[i].result == ReadResult::ok) {
            m_pages.emplace(batch[i].addr, std::move(buffers[i]));
        } else {
            m_badPages.emplace(batch[i].addr, batch[i].result);
        }
    }
    for (auto& r : requests) {
        r.result = copyCached(r.addr, r.dst, r.len) ? ReadResult::ok : read(r.addr, r.dst, r.len);
    }
}

}  // namespace aioscope
