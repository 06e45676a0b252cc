// Attributes of Python instances by name, wherever the class keeps them: in
// a __slots__ slot (a member_descriptor in the class or a base names the
// offset) or in the instance __dict__. Pure-Python libraries (trio, attrs
// classes with slots=True) keep their state this way; the offsets are read
// from the classes themselves, so no table lists them.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "remote/objects.h"

namespace aioscope {

class Fields {
public:
    explicit Fields(Objects& objects) : m_objects(objects) {}

    // obj.name as stored (no descriptors, no class attributes); nullopt if
    // absent, unset or None.
    std::optional<Addr> get(Addr obj, std::string_view name);

    // The byte offset of slot `name` in instances of `type`, if it is a slot.
    std::optional<std::int64_t> slotOffset(Addr type, std::string_view name);

    // True when `cls` is obj's type or one of its tp_base ancestors (identity).
    bool isInstanceOf(Addr obj, Addr cls);
    bool isSubclass(Addr type, Addr cls);

    // The object's weak reference list is not empty: something can reach it
    // without counting as a reference.
    bool hasWeakReferences(Addr obj);

    Objects& objects() { return m_objects; }

private:
    Objects& m_objects;
    std::map<std::pair<Addr, std::string>, std::optional<std::int64_t>> m_slots;
};

}  // namespace aioscope
