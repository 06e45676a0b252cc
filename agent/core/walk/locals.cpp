#include "walk/locals.h"

namespace aioscope {

namespace {
constexpr std::size_t kMaxLocals = 4096;
}

bool FrameLocals::available() const {
    const Layout& L = m_objects.layout();
    return L.code.localsplusNames != kAbsent || (L.code.varnames != kAbsent && L.code.cellvars != kAbsent);
}

void FrameLocals::appendNames(Addr tuple, std::vector<std::string>& out) {
    for (Addr item : m_objects.tupleItems(tuple)) {
        if (out.size() >= kMaxLocals) throw BadRead("implausibly many local variables");
        auto s = m_objects.str(item, 256);
        if (!s) throw BadRead("a local variable name is not a string");
        out.push_back(std::move(*s));
    }
}

const std::vector<std::string>& FrameLocals::names(Addr code) {
    if (auto it = m_names.find(code); it != m_names.end()) return it->second;
    const Layout& L = m_objects.layout();
    Remote& mem = m_objects.mem();
    std::vector<std::string> out;
    if (L.code.localsplusNames != kAbsent) {
        appendNames(mem.ptr(code + L.code.localsplusNames, "co_localsplusnames"), out);
    } else if (available()) {
        // 3.10's f_localsplus: locals, then cells, then free variables.
        appendNames(mem.ptr(code + L.code.varnames, "co_varnames"), out);
        appendNames(mem.ptr(code + L.code.cellvars, "co_cellvars"), out);
        if (L.code.freevars != kAbsent) appendNames(mem.ptr(code + L.code.freevars, "co_freevars"), out);
    }
    return m_names.emplace(code, std::move(out)).first->second;
}

std::optional<Addr> FrameLocals::get(const RawFrame& frame, std::string_view name) {
    if (!available() || !frame.code || !frame.locals) return std::nullopt;
    const Layout& L = m_objects.layout();
    const auto& slots = names(frame.code);
    for (std::size_t i = 0; i < slots.size(); ++i) {
        if (slots[i] != name) continue;
        Addr v = 0;
        if (!m_objects.mem().tryRead(frame.locals + 8 * i, &v, 8)) return std::nullopt;
        if ((v & L.stackRefTagMask) == 3 && L.stackRefTagMask) return std::nullopt;  // a tagged int
        v &= ~L.stackRefTagMask;
        // 3.10 leaves an argument's own slot empty once it moved into its cell,
        // which comes later under the same name.
        if (!v) continue;
        if (m_objects.typeNameOf(v) == "cell") {
            v = m_objects.mem().ptr(v + L.callable.cellRef, "cell contents");
            if (!v) return std::nullopt;
        }
        return v;
    }
    return std::nullopt;
}

}  // namespace aioscope
