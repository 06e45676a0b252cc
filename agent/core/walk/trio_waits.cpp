#include "walk/trio_waits.h"

namespace aioscope {

bool TrioWaitClassifier::isLibraryFile(const std::string& filename) const {
    for (const auto& dir : m_dirs) {
        if (filename.starts_with(dir)) return true;
    }
    return false;
}

bool TrioWaitClassifier::matches(const TrioWait& w, const CodeInfo& code, const RawFrame& frame) {
    if (code.name != w.function || !code.filename.ends_with(w.file)) return false;
    if (!w.selfType) return true;
    auto self = m_locals.get(frame, "self");
    return self && m_walker.objects().typeNameOf(*self) == w.selfType;
}

std::optional<TrioWaitTarget> TrioWaitClassifier::classify(const CoroutineChain& chain) {
    Objects& objects = m_walker.objects();
    std::optional<TrioWaitTarget> out;
    std::optional<std::int64_t> fd;
    // The library's frames sit innermost; one wait is often built on another
    // (Lock.acquire on ParkingLot.park): the outermost match names it.
    for (std::size_t i = chain.links.size(); i-- > 0;) {
        const RawFrame& frame = chain.links[i].frame;
        const CodeInfo& code = m_walker.frames().codes().get(frame.code);
        if (!isLibraryFile(code.filename)) break;
        for (const auto& w : m_layout.waits) {
            if (!matches(w, code, frame)) continue;
            if (w.fd && !fd) {
                if (auto v = m_locals.get(frame, w.fd)) fd = objects.integer(*v);
            }
            if (!w.kind) continue;
            TrioWaitTarget t;
            t.kind = w.kind;
            t.link = i;
            if (w.object) {
                if (auto v = m_locals.get(frame, w.object)) {
                    // A file descriptor passed as a number is not an object.
                    if (auto n = objects.integer(*v); n && objects.typeNameOf(*v) == "int") {
                        if (!fd) fd = n;
                    } else {
                        t.object = *v;
                    }
                }
            }
            out = std::move(t);
            break;
        }
    }
    if (out && (out->kind == "wait-readable" || out->kind == "wait-writable")) out->fd = fd;
    return out;
}

}  // namespace aioscope
