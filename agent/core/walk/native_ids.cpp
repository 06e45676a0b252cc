#include "walk/native_ids.h"

#include <cstring>
#include <set>

namespace aioscope {

namespace {
constexpr std::size_t kScan = 1024;
constexpr std::size_t kGlibcTidOffset = 720;  // glibc 2.3x on x86_64: tried first
}  // namespace

std::map<std::uint64_t, std::int64_t> nativeIdsFromPthreads(Remote& mem,
                                                            const std::vector<std::uint64_t>& pthreads,
                                                            const std::vector<pid_t>& tids) {
    std::set<std::int32_t> live(tids.begin(), tids.end());
    std::vector<std::vector<std::uint8_t>> blocks;
    std::vector<std::uint64_t> ids;
    for (std::uint64_t p : pthreads) {
        std::vector<std::uint8_t> b(kScan);
        if (p && mem.tryRead(p, b.data(), b.size())) {
            blocks.push_back(std::move(b));
            ids.push_back(p);
        }
    }
    if (ids.empty()) return {};
    auto tidAt = [&](std::size_t i, std::size_t off) {
        std::int32_t v;
        std::memcpy(&v, blocks[i].data() + off, 4);
        return v;
    };
    // An offset is right when every thread maps to a distinct live thread id.
    auto fits = [&](std::size_t off) {
        std::set<std::int32_t> used;
        for (std::size_t i = 0; i < ids.size(); ++i) {
            std::int32_t t = tidAt(i, off);
            if (!live.count(t) || !used.insert(t).second) return false;
        }
        return true;
    };
    std::vector<std::size_t> order{kGlibcTidOffset};
    for (std::size_t off = 0; off + 4 <= kScan; off += 4) order.push_back(off);
    for (std::size_t off : order) {
        if (!fits(off)) continue;
        std::map<std::uint64_t, std::int64_t> out;
        for (std::size_t i = 0; i < ids.size(); ++i) out[ids[i]] = tidAt(i, off);
        return out;
    }
    return {};
}

}  // namespace aioscope
