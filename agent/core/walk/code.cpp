#include "walk/code.h"

#include "remote/limits.h"
#include "remote/linetable.h"

namespace aioscope {

bool CodeReader::isCodeType(Addr type) {
    if (m_codeType) return type == m_codeType;
    if (!type || m_objects.builtinTypeName(type) != "code") return false;
    m_codeType = type;
    return true;
}

const CodeInfo& CodeReader::get(Addr code) {
    if (auto it = m_cache.find(code); it != m_cache.end()) return it->second;
    const Layout& L = m_objects.layout();
    Remote& mem = m_objects.mem();
    if (!code || !isCodeType(m_objects.typeOf(code))) {
        throw BadRead("not a code object at " + hexAddr(code));
    }
    Block b = mem.block(code, static_cast<std::size_t>(L.code.size), "code object");
    CodeInfo info;
    auto name = m_objects.str(b.ptr(L.code.name));
    auto file = m_objects.str(b.ptr(L.code.filename));
    if (!name || !file) throw BadRead("unreadable names in code object at " + hexAddr(code));
    info.name = *name;
    info.filename = *file;
    info.qualname = info.name;
    if (L.code.qualname != kAbsent) {
        if (auto q = m_objects.str(b.ptr(L.code.qualname))) info.qualname = *q;
    }
    info.firstLine = b.at<std::int32_t>(L.code.firstlineno);
    info.flags = b.at<std::uint32_t>(L.code.flags);
    if (L.code.firstTraceable != kAbsent) info.firstTraceable = b.at<std::int32_t>(L.code.firstTraceable);
    if (L.code.nlocalsplus != kAbsent) {
        info.nlocalsplus = b.at<std::int32_t>(L.code.nlocalsplus);
        if (info.nlocalsplus < 0 || info.nlocalsplus > (1 << 16)) throw BadRead("implausible co_nlocalsplus");
    }
    if (auto t = m_objects.bytes(b.ptr(L.code.linetable), limits::kMaxBytes)) info.lineTable = std::move(*t);
    if (L.code.codeAdaptive != kAbsent) {
        info.bytecode = code + static_cast<Addr>(L.code.codeAdaptive);
    } else if (L.code.coCode != kAbsent) {
        Addr coCode = b.ptr(L.code.coCode);
        if (coCode) info.bytecode = coCode + static_cast<Addr>(L.bytes.data);
    }
    return m_cache.emplace(code, std::move(info)).first->second;
}

std::optional<int> CodeReader::line(const CodeInfo& info, std::int64_t lasti) const {
    if (m_objects.layout().lineTable == LineTableFormat::pep626) {
        return lineFromPep626(info.lineTable, info.firstLine, lasti < 0 ? -1 : lasti * 2);
    }
    return lineFromLocations(info.lineTable, info.firstLine, lasti);
}

Frame CodeReader::frameAt(const CodeInfo& info, std::int64_t lasti) const {
    return Frame{info.name, info.qualname, info.filename, line(info, lasti)};
}

}  // namespace aioscope
