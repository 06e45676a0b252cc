// Code objects: names, file, first line and line table, read once per code
// object per snapshot (many frames and tasks share few code objects).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/snapshot.h"
#include "remote/objects.h"

namespace aioscope {

struct CodeInfo {
    std::string name;
    std::string qualname;
    std::string filename;
    int firstLine = 0;
    std::uint32_t flags = 0;
    std::int32_t firstTraceable = 0;  // 3.11+: code units of prologue
    std::int32_t nlocalsplus = 0;     // 3.11+: local, cell and free variable slots
    std::vector<std::uint8_t> lineTable;
    Addr bytecode = 0;  // first code unit (co_code_adaptive, or co_code's data on 3.10)
};

class CodeReader {
public:
    explicit CodeReader(Objects& objects) : m_objects(objects) {}

    // Throws BadRead if `code` is not a readable code object.
    const CodeInfo& get(Addr code);

    // Line of the instruction at code unit `lasti` (-1: not started).
    std::optional<int> line(const CodeInfo& info, std::int64_t lasti) const;

    // A frame for an instruction pointer into this code (3.11+) or an index.
    Frame frameAt(const CodeInfo& info, std::int64_t lasti) const;

    bool known(Addr code) const { return m_cache.count(code) != 0; }
    // Whether `type` is the interpreter's code type; once one is recognised
    // by name, by its address alone (a type object never moves).
    bool isCodeType(Addr type);
    void clear() { m_cache.clear(); }

private:
    Objects& m_objects;
    std::unordered_map<Addr, CodeInfo> m_cache;
    Addr m_codeType = 0;
};

}  // namespace aioscope
