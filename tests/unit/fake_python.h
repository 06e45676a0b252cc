// Builds CPython objects byte by byte in a FakeMemory, at the offsets of a
// given Layout and with the encodings CPython's headers define (PEP 393 state
// bits, dict keys formats, set tables). Tests of the readers check what they
// decode; test_layout_tables.cpp checks the offsets themselves.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "fake_memory.h"
#include "layout/layout.h"
#include "remote/objects.h"

namespace aioscope::test {

// PEP 393 state word: interned:2, kind:3, compact:1, ascii:1.
constexpr std::uint32_t unicodeState(unsigned kind, bool compact, bool ascii, std::uint32_t upperGarbage = 0) {
    return (kind << 2) | (compact ? 1u << 5 : 0) | (ascii ? 1u << 6 : 0) | (upperGarbage << 8);
}

class FakePython {
public:
    FakePython(FakeMemory& mem, const Layout& layout);

    FakeMemory& mem() { return m_mem; }

    Addr cString(std::string_view s);
    // A type object big enough for every field read (heap types included).
    Addr type(std::string_view name, std::uint64_t flags, Addr base = 0);
    // `size` bytes of object with ob_refcnt 1 and ob_type set; `preheader`
    // extra mapped bytes before it (managed dict/values pointers).
    Addr object(Addr type, std::size_t size, std::size_t preheader = 0);

    Addr str(std::string_view ascii);  // compact ASCII
    // Any PEP 393 form: kind 1/2/4, compact or legacy (data in a separate buffer).
    Addr unicode(unsigned kind, const std::vector<std::uint32_t>& codePoints, bool compact,
                 std::uint32_t upperGarbage = 0);
    Addr bytes(const std::vector<std::uint8_t>& data);
    Addr tuple(const std::vector<Addr>& items);
    Addr list(const std::vector<Addr>& items);

    struct Entry {
        Addr key;
        Addr value;
        std::int64_t hash = 0x1234;
    };
    // A PyDictKeysObject in the layout's format with 8 slots (more for more
    // than 5 entries, up to 128). unicodeKind:
    // 16-byte entries without hash (3.11+ DICT_KEYS_UNICODE/SPLIT).
    Addr dictKeys(const std::vector<Entry>& entries, bool unicodeKind = false);
    // A combined table of 2^log2Slots slots (at most 128: one-byte indices)
    // laid out as CPython inserts: each entry's index in the first free slot
    // of the probe sequence of its `hash` (dictobject.c's find_empty_slot).
    // `probes[i]`: the slots entry i's lookup visits, its own last.
    struct HashedKeys {
        Addr keys = 0;
        std::vector<std::vector<std::uint64_t>> probes;
    };
    HashedKeys hashedDictKeys(const std::vector<Entry>& entries, std::uint8_t log2Slots, bool unicodeKind);
    // The bytes before a keys object's indices (dk_indices' offset).
    std::size_t keysHeaderSize() const;
    Addr dict(Addr keys, Addr values = 0);
    // A split-table values array; 3.13+ gets the PyDictValues header.
    Addr dictValues(const std::vector<Addr>& values, std::uint8_t capacity = 8);
    // PySetObject with a table of (key, hash) slots; mask = slots - 1.
    Addr set(const std::vector<std::pair<Addr, std::int64_t>>& slots, std::int64_t used, std::int64_t mask);

    Addr strType, bytesType, intType, tupleType, listType, dictType, setType;

private:
    // A keys object of 2^log2Slots slots with one-byte indices, its header
    // written for `nentries` entries; indices and entries left to the caller.
    Addr allocKeys(std::uint8_t log2Slots, std::size_t nentries, bool unicodeKind);
    void putEntry(Addr at, const Entry& entry, bool unicodeKind);

    FakeMemory& m_mem;
    const Layout& m_L;
};

}  // namespace aioscope::test
