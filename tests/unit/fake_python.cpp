#include "fake_python.h"

#include <stdexcept>

namespace aioscope::test {

namespace {
constexpr std::size_t kTypeSize = 1024;  // past ht_cached_keys (at most 888)
}

FakePython::FakePython(FakeMemory& mem, const Layout& layout) : m_mem(mem), m_L(layout) {
    strType = type("str", tpflags::kUnicode);
    bytesType = type("bytes", tpflags::kBytes);
    intType = type("int", tpflags::kLong);
    tupleType = type("tuple", tpflags::kTuple);
    listType = type("list", tpflags::kList);
    dictType = type("dict", tpflags::kDict);
    setType = type("set", 0);
}

Addr FakePython::cString(std::string_view s) {
    Addr a = m_mem.alloc(s.size() + 1);
    m_mem.putString(a, s);
    return a;
}

Addr FakePython::type(std::string_view name, std::uint64_t flags, Addr base) {
    Addr t = m_mem.alloc(kTypeSize);
    m_mem.put<std::uint64_t>(t, 1);
    m_mem.put<Addr>(t + static_cast<Addr>(m_L.type.name), cString(name));
    m_mem.put<std::uint64_t>(t + static_cast<Addr>(m_L.type.flags), flags);
    m_mem.put<Addr>(t + static_cast<Addr>(m_L.type.base), base);
    return t;
}

Addr FakePython::object(Addr type, std::size_t size, std::size_t preheader) {
    Addr o = m_mem.alloc(preheader + size) + preheader;
    m_mem.put<std::uint64_t>(o, 1);
    m_mem.put<Addr>(o + static_cast<Addr>(m_L.object.type), type);
    return o;
}

Addr FakePython::str(std::string_view ascii) {
    std::vector<std::uint32_t> cps(ascii.begin(), ascii.end());
    return unicode(1, cps, true);
}

Addr FakePython::unicode(unsigned kind, const std::vector<std::uint32_t>& cps, bool compact,
                         std::uint32_t upperGarbage) {
    bool ascii = kind == 1 && compact;
    for (std::uint32_t cp : cps) ascii = ascii && cp < 0x80;
    Off header = compact ? (ascii ? m_L.unicode.asciiData : m_L.unicode.compactData) : m_L.unicode.legacyData + 8;
    std::size_t dataSize = (cps.size() + 1) * kind;
    Addr o = object(strType, static_cast<std::size_t>(header) + (compact ? dataSize : 0));
    m_mem.put<std::int64_t>(o + static_cast<Addr>(m_L.unicode.length), static_cast<std::int64_t>(cps.size()));
    m_mem.put<std::int64_t>(o + static_cast<Addr>(m_L.unicode.hash), -1);  // not computed
    m_mem.put<std::uint32_t>(o + static_cast<Addr>(m_L.unicode.state),
                             unicodeState(kind, compact, ascii, upperGarbage));
    Addr data = o + static_cast<Addr>(header);
    if (!compact) {
        data = m_mem.alloc(dataSize);
        m_mem.put<Addr>(o + static_cast<Addr>(m_L.unicode.legacyData), data);
    }
    for (std::size_t i = 0; i < cps.size(); ++i) {
        std::uint32_t cp = cps[i];
        m_mem.write(data + i * kind, &cp, kind);  // little-endian: the low `kind` bytes
    }
    return o;
}

Addr FakePython::bytes(const std::vector<std::uint8_t>& data) {
    Addr o = object(bytesType, static_cast<std::size_t>(m_L.bytes.data) + data.size() + 1);
    m_mem.put<std::int64_t>(o + static_cast<Addr>(m_L.bytes.size), static_cast<std::int64_t>(data.size()));
    if (!data.empty()) m_mem.write(o + static_cast<Addr>(m_L.bytes.data), data.data(), data.size());
    return o;
}

Addr FakePython::tuple(const std::vector<Addr>& items) {
    Addr o = object(tupleType, static_cast<std::size_t>(m_L.tuple.items) + 8 * items.size() + 8);
    m_mem.put<std::int64_t>(o + static_cast<Addr>(m_L.tuple.size), static_cast<std::int64_t>(items.size()));
    for (std::size_t i = 0; i < items.size(); ++i) m_mem.put<Addr>(o + static_cast<Addr>(m_L.tuple.items) + 8 * i, items[i]);
    return o;
}

Addr FakePython::list(const std::vector<Addr>& items) {
    Addr o = object(listType, 40);
    Addr array = m_mem.alloc(8 * items.size() + 8);
    m_mem.put<std::int64_t>(o + static_cast<Addr>(m_L.list.size), static_cast<std::int64_t>(items.size()));
    m_mem.put<Addr>(o + static_cast<Addr>(m_L.list.items), array);
    for (std::size_t i = 0; i < items.size(); ++i) m_mem.put<Addr>(array + 8 * i, items[i]);
    return o;
}

void FakePython::putEntry(Addr e, const Entry& entry, bool unicodeKind) {
    if (unicodeKind) {
        m_mem.put<Addr>(e, entry.key);
        m_mem.put<Addr>(e + 8, entry.value);
    } else {
        m_mem.put<std::int64_t>(e, entry.hash);
        m_mem.put<Addr>(e + 8, entry.key);
        m_mem.put<Addr>(e + 16, entry.value);
    }
}

std::size_t FakePython::keysHeaderSize() const { return m_L.dictKeys == DictKeysModel::v310 ? 40 : 32; }

Addr FakePython::allocKeys(std::uint8_t log2Slots, std::size_t nentries, bool unicodeKind) {
    std::uint64_t slots = std::uint64_t{1} << log2Slots;
    std::int64_t usable = static_cast<std::int64_t>(slots * 2 / 3) - static_cast<std::int64_t>(nentries);
    std::size_t entrySize = unicodeKind ? 16 : 24;
    Addr k = m_mem.alloc(keysHeaderSize() + slots + slots * entrySize);  // one-byte indices
    m_mem.put<std::int64_t>(k, 1);  // dk_refcnt
    if (m_L.dictKeys == DictKeysModel::v310) {
        m_mem.put<std::int64_t>(k + 8, static_cast<std::int64_t>(slots));                // dk_size
        m_mem.put<std::int64_t>(k + 24, usable);                                          // dk_usable
        m_mem.put<std::int64_t>(k + 32, static_cast<std::int64_t>(nentries));            // dk_nentries
    } else {
        m_mem.put<std::uint8_t>(k + 8, log2Slots);             // dk_log2_size
        m_mem.put<std::uint8_t>(k + 9, log2Slots);             // dk_log2_index_bytes
        m_mem.put<std::uint8_t>(k + 10, unicodeKind ? 1 : 0);  // dk_kind
        m_mem.put<std::int64_t>(k + 16, usable);
        m_mem.put<std::int64_t>(k + 24, static_cast<std::int64_t>(nentries));
    }
    return k;
}

Addr FakePython::dictKeys(const std::vector<Entry>& entries, bool unicodeKind) {
    // 8 slots, or as many as CPython would give (two thirds usable), up to
    // 128: one byte per index, so a larger table would be built wrong.
    if (entries.size() > 128 * 2 / 3) throw std::length_error("FakePython::dictKeys: more than 85 entries");
    std::uint8_t log2Slots = 3;
    while ((std::size_t{1} << log2Slots) * 2 / 3 < entries.size() && log2Slots < 7) ++log2Slots;
    std::uint64_t slots = std::uint64_t{1} << log2Slots;
    std::size_t entrySize = unicodeKind ? 16 : 24;
    std::size_t header = keysHeaderSize();
    std::size_t indices = slots;
    Addr k = allocKeys(log2Slots, entries.size(), unicodeKind);
    Addr e = k + header + indices;
    for (std::size_t i = 0; i < entries.size(); ++i, e += entrySize) {
        m_mem.put<std::int8_t>(k + header + i, static_cast<std::int8_t>(i));
        putEntry(e, entries[i], unicodeKind);
    }
    return k;
}

FakePython::HashedKeys FakePython::hashedDictKeys(const std::vector<Entry>& entries, std::uint8_t log2Slots,
                                                  bool unicodeKind) {
    if (log2Slots > 7 || entries.size() > (std::size_t{1} << log2Slots) * 2 / 3) {
        throw std::length_error("FakePython::hashedDictKeys: too many entries for the slots");
    }
    HashedKeys out;
    std::uint64_t slots = std::uint64_t{1} << log2Slots;
    std::size_t entrySize = unicodeKind ? 16 : 24;
    std::size_t header = keysHeaderSize();
    Addr k = allocKeys(log2Slots, entries.size(), unicodeKind);
    std::vector<bool> taken(slots, false);
    for (std::uint64_t s = 0; s < slots; ++s) m_mem.put<std::int8_t>(k + header + s, -1);  // DKIX_EMPTY
    Addr e = k + header + slots;
    for (std::size_t i = 0; i < entries.size(); ++i, e += entrySize) {
        auto perturb = static_cast<std::uint64_t>(entries[i].hash);
        std::uint64_t slot = perturb & (slots - 1);
        std::vector<std::uint64_t> path{slot};
        while (taken[slot]) {
            perturb >>= 5;
            slot = (slot * 5 + perturb + 1) & (slots - 1);
            path.push_back(slot);
        }
        taken[slot] = true;
        m_mem.put<std::int8_t>(k + header + slot, static_cast<std::int8_t>(i));
        out.probes.push_back(std::move(path));
        putEntry(e, entries[i], unicodeKind);
    }
    out.keys = k;
    return out;
}

Addr FakePython::dict(Addr keys, Addr values) {
    Addr d = object(dictType, 48);
    m_mem.put<Addr>(d + static_cast<Addr>(m_L.dict.keys), keys);
    m_mem.put<Addr>(d + static_cast<Addr>(m_L.dict.values), values);
    return d;
}

Addr FakePython::dictValues(const std::vector<Addr>& values, std::uint8_t capacity) {
    auto header = static_cast<std::size_t>(m_L.dict.valuesHeader);
    Addr v = m_mem.alloc(header + 8 * capacity);
    if (header) {
        // PyDictValues (3.13+): capacity, size, embedded, valid, then values[].
        m_mem.put<std::uint8_t>(v, capacity);
        m_mem.put<std::uint8_t>(v + 1, static_cast<std::uint8_t>(values.size()));
        m_mem.put<std::uint8_t>(v + 2, 0);
        m_mem.put<std::uint8_t>(v + 3, 1);
    }
    for (std::size_t i = 0; i < values.size(); ++i) m_mem.put<Addr>(v + header + 8 * i, values[i]);
    return v;
}

Addr FakePython::set(const std::vector<std::pair<Addr, std::int64_t>>& slots, std::int64_t used, std::int64_t mask) {
    Addr s = object(setType, 200);
    Addr table = m_mem.alloc(16 * slots.size());
    m_mem.put<std::int64_t>(s + static_cast<Addr>(m_L.set.used), used);
    m_mem.put<std::int64_t>(s + static_cast<Addr>(m_L.set.mask), mask);
    m_mem.put<Addr>(s + static_cast<Addr>(m_L.set.table), table);
    for (std::size_t i = 0; i < slots.size(); ++i) {
        m_mem.put<Addr>(table + 16 * i, slots[i].first);
        m_mem.put<std::int64_t>(table + 16 * i + 8, slots[i].second);
    }
    return s;
}

}  // namespace aioscope::test
