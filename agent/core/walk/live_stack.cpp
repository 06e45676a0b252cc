#include "walk/live_stack.h"

namespace aioscope {

namespace {
constexpr std::size_t kMaxTable = 1 << 16;
constexpr std::int64_t kMaxDepth = 1024;
constexpr int kMaxBlocks = 20;  // CO_MAXBLOCKS (3.10)

// Objects/exception_handling_notes.txt: 6-bit chunks, 0x40 continues.
bool varint(const std::vector<std::uint8_t>& b, std::size_t& i, std::int64_t& out) {
    if (i >= b.size()) return false;
    std::uint8_t c = b[i++];
    out = c & 63;
    while (c & 64) {
        if (i >= b.size() || out > (std::int64_t{1} << 40)) return false;
        c = b[i++];
        out = (out << 6) | (c & 63);
    }
    return true;
}
}  // namespace

const std::vector<LiveStack::Entry>& LiveStack::table(Addr code) {
    if (auto it = m_tables.find(code); it != m_tables.end()) return it->second;
    const Layout& L = m_objects.layout();
    std::vector<Entry> out;
    Addr obj = m_objects.mem().ptr(code + L.code.exceptionTable, "co_exceptiontable");
    if (auto bytes = m_objects.bytes(obj, kMaxTable)) {
        std::size_t i = 0;
        while (i < bytes->size()) {
            std::int64_t start, size, target, depthLasti;
            if (!varint(*bytes, i, start) || !varint(*bytes, i, size) || !varint(*bytes, i, target) ||
                !varint(*bytes, i, depthLasti)) {
                break;
            }
            out.push_back({start, start + size, depthLasti >> 1});
        }
    }
    return m_tables.emplace(code, std::move(out)).first->second;
}

std::vector<Addr> LiveStack::slots(const RawFrame& frame) {
    const Layout& L = m_objects.layout();
    Remote& mem = m_objects.mem();
    std::int64_t depth = 0;
    if (L.code.exceptionTable != kAbsent && frame.code) {
        for (const auto& e : table(frame.code)) {
            if (frame.lasti >= e.start && frame.lasti < e.end) {
                depth = e.depth;
                break;
            }
        }
    } else if (L.frame.iblock != kAbsent) {
        auto n = mem.get<std::int32_t>(frame.addr + L.frame.iblock, "f_iblock");
        if (n < 0 || n > kMaxBlocks) throw BadRead("implausible f_iblock");
        if (n > 0) {
            // PyTryBlock {b_type, b_handler, b_level}: the innermost block's level.
            Addr at = frame.addr + static_cast<Addr>(L.frame.blockstack + (n - 1) * L.frame.blockSize) + 8;
            depth = mem.get<std::int32_t>(at, "b_level");
        }
    }
    if (depth <= 0) return {};
    if (depth > kMaxDepth) throw BadRead("implausible live stack depth");
    std::vector<Addr> out(static_cast<std::size_t>(depth));
    if (!mem.tryRead(frame.stackBase, out.data(), out.size() * 8)) throw BadRead("value stack unreadable");
    return out;
}

}  // namespace aioscope
