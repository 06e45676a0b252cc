#include "remote/fields.h"

#include "remote/limits.h"

namespace aioscope {

namespace {
constexpr int kObjectExSlot = 16;  // Py_T_OBJECT_EX: what __slots__ creates
constexpr int kObjectSlot = 6;     // Py_T_OBJECT
}  // namespace

bool Fields::isSubclass(Addr type, Addr cls) {
    const Layout& L = m_objects.layout();
    for (std::size_t depth = 0; type && depth < limits::kMaxTypeDepth; ++depth) {
        if (type == cls) return true;
        if (!m_objects.mem().tryRead(type + L.type.base, &type, sizeof type)) return false;
    }
    return false;
}

bool Fields::isInstanceOf(Addr obj, Addr cls) {
    if (!obj || !cls) return false;
    Addr type = 0;
    if (!m_objects.mem().tryRead(obj + m_objects.layout().object.type, &type, sizeof type)) return false;
    return isSubclass(type, cls);
}

std::optional<std::int64_t> Fields::slotOffset(Addr type, std::string_view name) {
    auto key = std::make_pair(type, std::string(name));
    if (auto it = m_slots.find(key); it != m_slots.end()) return it->second;
    const Layout& L = m_objects.layout();
    Remote& mem = m_objects.mem();
    std::optional<std::int64_t> found;
    auto basicsize = mem.get<std::int64_t>(type + L.type.basicsize, "tp_basicsize");
    Addr t = type;
    for (std::size_t depth = 0; t && depth < limits::kMaxTypeDepth; ++depth) {
        Addr dict = mem.ptr(t + L.type.dict, "tp_dict");
        auto descr = dict ? m_objects.dictGet(dict, name) : std::nullopt;
        if (descr) {
            // Anything else of that name in a class (a property, a method, a
            // class attribute) means the instance does not keep it in a slot.
            if (m_objects.typeNameOf(*descr) == "member_descriptor" &&
                mem.ptr(*descr + L.member.descrType, "d_type") == t) {
                Addr def = mem.ptr(*descr + L.member.descrMember, "d_member");
                auto kind = mem.get<std::int32_t>(def + L.member.defType, "PyMemberDef.type");
                auto off = mem.get<std::int64_t>(def + L.member.defOffset, "PyMemberDef.offset");
                if ((kind == kObjectExSlot || kind == kObjectSlot) && off >= 16 && off % 8 == 0 &&
                    off + 8 <= basicsize && basicsize < (1 << 20)) {
                    found = off;
                }
            }
            break;
        }
        t = mem.ptr(t + L.type.base, "tp_base");
    }
    m_slots.emplace(std::move(key), found);
    return found;
}

std::optional<Addr> Fields::get(Addr obj, std::string_view name) {
    if (!obj) return std::nullopt;
    Addr type = m_objects.typeOf(obj);
    std::optional<Addr> v;
    if (auto off = slotOffset(type, name)) {
        Addr slot = m_objects.mem().ptr(obj + static_cast<Addr>(*off), "slot");
        if (slot) v = slot;
    } else {
        v = m_objects.attr(obj, name);
    }
    if (v && m_objects.typeNameOf(*v) == "NoneType") return std::nullopt;
    return v;
}

bool Fields::hasWeakReferences(Addr obj) {
    const Layout& L = m_objects.layout();
    Addr type = m_objects.typeOf(obj);
    auto off = m_objects.mem().get<std::int64_t>(type + L.type.weaklistoffset, "tp_weaklistoffset");
    if (off == 0) return false;  // the type cannot be weakly referenced
    if (off < -64 || off > (1 << 20) || off % 8) throw BadRead("implausible tp_weaklistoffset");
    return m_objects.mem().ptr(obj + static_cast<Addr>(off), "weak reference list") != 0;
}

}  // namespace aioscope
