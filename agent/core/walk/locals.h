// A frame's local variables by name: the code object's local names
// (co_localsplusnames on 3.11+, co_varnames + co_cellvars + co_freevars on
// 3.10) give each name's slot. A variable captured by a closure lives in a
// cell, which is looked through.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "walk/frames.h"

namespace aioscope {

class FrameLocals {
public:
    explicit FrameLocals(Objects& objects) : m_objects(objects) {}

    // False when this layout does not say where local names are.
    bool available() const;

    // The value of `name` in the frame; nullopt when unset or not a local.
    std::optional<Addr> get(const RawFrame& frame, std::string_view name);

    // Slot names of a code object, in slot order (cached).
    const std::vector<std::string>& names(Addr code);

private:
    void appendNames(Addr tuple, std::vector<std::string>& out);

    Objects& m_objects;
    std::unordered_map<Addr, std::vector<std::string>> m_names;
};

}  // namespace aioscope
