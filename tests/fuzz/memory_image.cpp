#include "memory_image.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace aioscope::fuzz {

namespace {

constexpr char kMagic[8] = {'A', 'I', 'O', 'S', 'C', 'I', 'M', 'G'};
constexpr std::uint32_t kVersion = 1;
constexpr Addr kPage = 4096;

class Writer {
public:
    template <class T>
    void put(T v) {
        out.append(reinterpret_cast<const char*>(&v), sizeof v);
    }
    void str(const std::string& s) {
        put<std::uint32_t>(static_cast<std::uint32_t>(s.size()));
        out += s;
    }
    std::string out;
};

class Parser {
public:
    explicit Parser(std::string_view d) : data(d) {}
    template <class T>
    T get() {
        T v;
        need(sizeof v);
        std::memcpy(&v, data.data() + pos, sizeof v);
        pos += sizeof v;
        return v;
    }
    std::string str() {
        auto n = get<std::uint32_t>();
        need(n);
        std::string s(data.substr(pos, n));
        pos += n;
        return s;
    }
    void bytes(std::vector<std::uint8_t>& out, std::uint64_t n) {
        need(n);
        out.assign(data.begin() + pos, data.begin() + pos + n);
        pos += n;
    }
    void need(std::uint64_t n) const {
        if (n > data.size() - pos) throw std::runtime_error("memory image truncated");
    }
    std::string_view data;
    std::size_t pos = 0;
};

}  // namespace

void MemoryImage::add(Addr addr, const void* data, std::size_t len) {
    if (len == 0 || addr + len < addr) return;
    const auto* src = static_cast<const std::uint8_t*>(data);
    Addr end = addr + len;
    // Regions overlapping or touching [addr, end) are merged into one.
    auto first = std::lower_bound(regions.begin(), regions.end(), addr,
                                  [](const Region& r, Addr a) { return r.end() < a; });
    auto last = first;
    while (last != regions.end() && last->addr <= end) ++last;
    Region merged;
    merged.addr = first == last ? addr : std::min(addr, first->addr);
    Addr mergedEnd = first == last ? end : std::max(end, std::prev(last)->end());
    merged.bytes.assign(mergedEnd - merged.addr, 0);
    for (auto it = first; it != last; ++it) {
        std::copy(it->bytes.begin(), it->bytes.end(), merged.bytes.begin() + (it->addr - merged.addr));
    }
    std::copy(src, src + len, merged.bytes.begin() + (addr - merged.addr));  // the newest bytes win
    auto at = regions.erase(first, last);
    regions.insert(at, std::move(merged));
}

std::size_t MemoryImage::bytes() const {
    std::size_t n = 0;
    for (const auto& r : regions) n += r.bytes.size();
    return n;
}

std::string MemoryImage::serialize() const {
    Writer w;
    w.out.append(kMagic, sizeof kMagic);
    w.put(kVersion);
    w.str(label);
    w.str(location.file);
    w.str(location.executable);
    w.put<std::uint8_t>(location.sharedLibpython);
    w.put<std::int32_t>(location.minorFromName);
    w.put<std::uint8_t>(location.pyVersion.has_value());
    w.put<std::uint64_t>(location.pyVersion.value_or(0));
    w.put<std::uint32_t>(static_cast<std::uint32_t>(location.candidates.size()));
    for (Addr c : location.candidates) w.put<std::uint64_t>(c);
    w.put<std::uint32_t>(static_cast<std::uint32_t>(regions.size()));
    for (const auto& r : regions) {
        w.put<std::uint64_t>(r.addr);
        w.put<std::uint64_t>(r.bytes.size());
        w.out.append(reinterpret_cast<const char*>(r.bytes.data()), r.bytes.size());
    }
    return w.out;
}

MemoryImage MemoryImage::parse(std::string_view data) {
    Parser p(data);
    p.need(sizeof kMagic);
    if (std::memcmp(data.data(), kMagic, sizeof kMagic) != 0) throw std::runtime_error("not a memory image");
    p.pos = sizeof kMagic;
    if (p.get<std::uint32_t>() != kVersion) throw std::runtime_error("memory image version unknown");
    MemoryImage img;
    img.label = p.str();
    img.location.file = p.str();
    img.location.openedAs = img.location.file;
    img.location.executable = p.str();
    img.location.sharedLibpython = p.get<std::uint8_t>() != 0;
    img.location.minorFromName = p.get<std::int32_t>();
    bool hasPyVersion = p.get<std::uint8_t>() != 0;
    Addr pyVersion = p.get<std::uint64_t>();
    if (hasPyVersion) img.location.pyVersion = pyVersion;
    auto candidates = p.get<std::uint32_t>();
    for (std::uint32_t i = 0; i < candidates; ++i) img.location.candidates.push_back(p.get<std::uint64_t>());
    auto n = p.get<std::uint32_t>();
    Addr lastEnd = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
        Region r;
        r.addr = p.get<std::uint64_t>();
        auto len = p.get<std::uint64_t>();
        p.bytes(r.bytes, len);
        if (r.addr < lastEnd || r.end() < r.addr) throw std::runtime_error("memory image regions out of order");
        lastEnd = r.end();
        img.regions.push_back(std::move(r));
    }
    return img;
}

ReadResult RecordingReader::read(Addr addr, void* dst, std::size_t len) {
    ReadResult r = m_inner.read(addr, dst, len);
    if (r == ReadResult::ok) m_image.add(addr, dst, len);
    return r;
}

void RecordingReader::readMany(std::span<Request> requests) {
    for (auto& r : requests) {
        // The page cache's batch of whole pages: refused, so that it asks
        // for the exact ranges it needs (below, through read()).
        bool wholePage = r.len == kPage && (r.addr & (kPage - 1)) == 0;
        r.result = wholePage ? ReadResult::fault : read(r.addr, r.dst, r.len);
    }
}

std::size_t RecordingReader::readPrefix(Addr, void*, std::size_t, ReadResult& why) {
    // Only the page cache reads prefixes (whole pages and read-ahead):
    // refused, so that the image holds the bytes the walkers read, not the
    // pages around them (a few hundred kilobytes instead of megabytes).
    why = ReadResult::fault;
    return 0;
}

ImageReader::ImageReader(MemoryImage image) : m_image(std::move(image)) {
    for (const auto& r : m_image.regions) {
        m_starts.push_back(m_total);
        m_total += r.bytes.size();
        for (Addr p = r.addr & ~(kPage - 1); p < r.end(); p += kPage) m_touched.push_back(p);
    }
    std::sort(m_touched.begin(), m_touched.end());
    m_touched.erase(std::unique(m_touched.begin(), m_touched.end()), m_touched.end());
}

std::pair<std::size_t, std::size_t> ImageReader::locate(std::size_t offset) const {
    offset %= std::max<std::size_t>(1, m_total);
    auto it = std::upper_bound(m_starts.begin(), m_starts.end(), offset);
    std::size_t region = static_cast<std::size_t>(it - m_starts.begin()) - 1;
    return {region, offset - m_starts[region]};
}

Addr ImageReader::addressOf(std::size_t offset) const {
    if (m_total == 0) return 0;
    auto [region, at] = locate(offset);
    return m_image.regions[region].addr + at;
}

std::size_t ImageReader::align8(std::size_t offset) const {
    if (m_total == 0) return 0;
    auto [region, at] = locate(offset);
    Addr addr = m_image.regions[region].addr + at;
    std::size_t back = std::min<std::size_t>(addr & 7, at);
    return m_starts[region] + at - back;
}

void ImageReader::readAt(std::size_t offset, void* dst, std::size_t len) const {
    if (m_total == 0) return;
    auto [region, at] = locate(offset);
    const auto& b = m_image.regions[region].bytes;
    std::memcpy(dst, b.data() + at, std::min(len, b.size() - at));
}

void ImageReader::save(std::size_t region, std::size_t at, std::size_t len) {
    const auto& b = m_image.regions[region].bytes;
    m_undo.push_back({region, at, std::vector<std::uint8_t>(b.begin() + at, b.begin() + at + len)});
}

void ImageReader::write(std::size_t offset, const void* src, std::size_t len) {
    if (m_total == 0 || len == 0) return;
    auto [region, at] = locate(offset);
    auto& b = m_image.regions[region].bytes;
    len = std::min(len, b.size() - at);
    save(region, at, len);
    std::memcpy(b.data() + at, src, len);
}

void ImageReader::zero(std::size_t offset, std::size_t len) {
    if (m_total == 0) return;
    auto [region, at] = locate(offset);
    auto& b = m_image.regions[region].bytes;
    len = std::min(len, b.size() - at);
    save(region, at, len);
    std::memset(b.data() + at, 0, len);
}

void ImageReader::copy(std::size_t from, std::size_t to, std::size_t len) {
    if (m_total == 0) return;
    auto [fr, fa] = locate(from);
    const auto& src = m_image.regions[fr].bytes;
    len = std::min(len, src.size() - fa);
    std::vector<std::uint8_t> tmp(src.begin() + fa, src.begin() + fa + len);
    write(to, tmp.data(), tmp.size());
}

void ImageReader::unmapPage(std::size_t offset) {
    if (m_total == 0) return;
    m_unmapped.insert(addressOf(offset) & ~(kPage - 1));
}

Addr ImageReader::junk(const std::uint8_t* pattern, std::size_t len) {
    if (len == 0) return kJunkBase;
    Addr at = kJunkBase + m_junk.size();
    m_junk.insert(m_junk.end(), pattern, pattern + len);
    return at;
}

void ImageReader::reset() {
    for (auto it = m_undo.rbegin(); it != m_undo.rend(); ++it) {
        std::copy(it->bytes.begin(), it->bytes.end(), m_image.regions[it->region].bytes.begin() + it->at);
    }
    m_undo.clear();
    m_unmapped.clear();
    m_junk.clear();
}

std::size_t ImageReader::copyOut(Addr addr, std::uint8_t* dst, std::size_t len) const {
    if (addr >= kJunkBase && addr < kJunkBase + m_junk.size()) {
        std::size_t n = std::min<std::size_t>(len, kJunkBase + m_junk.size() - addr);
        std::memcpy(dst, m_junk.data() + (addr - kJunkBase), n);
        return n;
    }
    // Most reads lie inside one recorded region, on pages not unmapped.
    auto r0 = std::upper_bound(m_image.regions.begin(), m_image.regions.end(), addr,
                               [](Addr a, const Region& x) { return a < x.addr; });
    if (r0 != m_image.regions.begin() && m_unmapped.empty()) {
        const Region& r = *std::prev(r0);
        if (addr >= r.addr && addr < r.end() && len <= r.end() - addr) {
            std::memcpy(dst, r.bytes.data() + (addr - r.addr), len);
            return len;
        }
    }
    std::size_t done = 0;
    while (done < len) {
        Addr cur = addr + done;
        if (cur < addr) break;  // wrapped around
        Addr page = cur & ~(kPage - 1);
        if (!touched(page) || m_unmapped.count(page)) break;
        std::size_t chunk = std::min<std::size_t>(len - done, page + kPage - cur);
        // Bytes of a recorded page the read did not touch read as zeros
        // (the page was mapped; its other bytes were simply not needed).
        std::memset(dst + done, 0, chunk);
        auto r = std::lower_bound(m_image.regions.begin(), m_image.regions.end(), cur,
                                  [](const Region& x, Addr a) { return x.end() <= a; });
        for (; r != m_image.regions.end() && r->addr < cur + chunk; ++r) {
            Addr from = std::max(cur, r->addr), to = std::min<Addr>(cur + chunk, r->end());
            std::memcpy(dst + done + (from - cur), r->bytes.data() + (from - r->addr), to - from);
        }
        done += chunk;
    }
    return done;
}

ReadResult ImageReader::read(Addr addr, void* dst, std::size_t len) {
    if (len == 0) return ReadResult::ok;
    return copyOut(addr, static_cast<std::uint8_t*>(dst), len) == len ? ReadResult::ok : ReadResult::fault;
}

std::size_t ImageReader::readPrefix(Addr addr, void* dst, std::size_t len, ReadResult& why) {
    std::size_t n = len ? copyOut(addr, static_cast<std::uint8_t*>(dst), len) : 0;
    why = n == len ? ReadResult::ok : ReadResult::fault;
    return n;
}

}  // namespace aioscope::fuzz
