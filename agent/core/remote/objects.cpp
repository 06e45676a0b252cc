#include "remote/objects.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "remote/limits.h"

namespace aioscope {

namespace {

// A NUL-terminated C string that may end near the end of a mapping: read it in
// chunks that never cross a page boundary.
std::optional<std::string> cString(Remote& mem, Addr addr, std::size_t max) {
    std::string out;
    while (out.size() < max) {
        std::size_t toPageEnd = 4096 - (addr & 4095);
        std::size_t n = std::min({toPageEnd, max - out.size(), std::size_t{64}});
        char buf[64];
        if (!mem.tryRead(addr, buf, n)) return std::nullopt;
        for (std::size_t i = 0; i < n; ++i) {
            if (buf[i] == '\0') return out;
            out.push_back(buf[i]);
        }
        addr += n;
    }
    return out;
}

}  // namespace

bool isAscii(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

void appendUtf8(std::string& out, std::uint32_t cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
    if (cp > 0x10FFFF) cp = 0xFFFD;
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

Addr Objects::typeOf(Addr obj) { return m_mem.ptr(obj + m_layout.object.type, "object type"); }

std::uint64_t Objects::typeFlags(Addr type) {
    if (auto it = m_typeFlags.find(type); it != m_typeFlags.end()) return it->second;
    std::uint64_t flags = 0;
    if (!m_mem.tryRead(type + m_layout.type.flags, &flags, sizeof flags)) flags = 0;
    m_typeFlags.emplace(type, flags);
    return flags;
}

const std::string& Objects::typeName(Addr type) {
    if (auto it = m_typeNames.find(type); it != m_typeNames.end()) return it->second;
    std::string name;
    std::uint64_t namePtr = 0;
    if (type && m_mem.tryRead(type + m_layout.type.name, &namePtr, sizeof namePtr) && namePtr) {
        name = cString(m_mem, namePtr, limits::kMaxTypeName).value_or("");
    }
    return m_typeNames.emplace(type, std::move(name)).first->second;
}

bool Objects::isPythonClass(Addr type) {
    if (auto it = m_pythonClass.find(type); it != m_pythonClass.end()) return it->second;
    std::uint64_t flags = typeFlags(type);
    bool python = (flags & tpflags::kHeapType) && !(flags & tpflags::kImmutableType);
    m_pythonClass.emplace(type, python);
    return python;
}

const std::string& Objects::builtinTypeName(Addr type) {
    static const std::string kNone;
    // Asked for every object a walker meets, of a handful of types: the
    // last answers per slot, before the hash maps (whose entries never move).
    auto& recent = m_recentBuiltin[(type >> 4) % m_recentBuiltin.size()];
    if (recent.first == type && recent.second) return *recent.second;
    const std::string& name = isPythonClass(type) ? kNone : typeName(type);
    recent = {type, &name};
    return name;
}

bool Objects::isInstance(Addr obj, std::string_view tpName, bool builtinOnly) {
    std::uint64_t type = 0;
    if (!m_mem.tryRead(obj + m_layout.object.type, &type, sizeof type)) return false;
    // Most questions repeat the last few (the same literal name about the
    // same type, once per object read): answered without a hash lookup.
    std::size_t slot = ((type >> 4) ^ (tpName.size() * 31) ^ (tpName.empty() ? 0 : tpName.back()) ^ builtinOnly) %
                       kRecentAnswers;
    RecentAnswer& recent = m_recent[slot];
    if (type && recent.type == type && recent.len == tpName.size() && recent.builtinOnly == builtinOnly &&
        std::memcmp(recent.name, tpName.data(), tpName.size()) == 0) {
        return recent.result;
    }
    ByName& byName = builtinOnly ? m_builtinInstanceOf : m_instanceOf;
    auto named = byName.find(tpName);
    if (named == byName.end()) named = byName.emplace(std::string(tpName), std::unordered_map<Addr, bool>{}).first;
    auto& known = named->second;
    auto remember = [&](bool result) {
        if (tpName.size() <= sizeof recent.name) {
            recent.type = type;
            recent.len = tpName.size();
            std::memcpy(recent.name, tpName.data(), tpName.size());
            recent.builtinOnly = builtinOnly;
            recent.result = result;
        }
        return result;
    };
    if (auto it = known.find(type); it != known.end()) return remember(it->second);
    bool result = false;
    std::uint64_t t = type;
    for (std::size_t depth = 0; t && depth < limits::kMaxTypeDepth; ++depth) {
        if ((builtinOnly ? builtinTypeName(t) : typeName(t)) == tpName) {
            result = true;
            break;
        }
        if (!m_mem.tryRead(t + m_layout.type.base, &t, sizeof t)) break;
    }
    known.emplace(type, result);
    return remember(result);
}

bool Objects::plausibleRefcount(std::uint64_t rc) {
    // Low 32 bits: the count (3.12+ immortal objects keep a large value
    // there). Bits 32-47 are 0 in every version (3.14 keeps flags in 48-63);
    // a freed block's allocator link, a user-space pointer, sets them.
    return static_cast<std::uint32_t>(rc) != 0 && ((rc >> 32) & 0xffff) == 0;
}

bool Objects::alive(Addr obj) {
    std::uint64_t rc = 0;
    return obj && m_mem.tryRead(obj, &rc, sizeof rc) && plausibleRefcount(rc);
}

std::optional<std::string> Objects::exactStr(Addr obj, std::size_t maxChars) {
    if (!obj || !alive(obj)) return std::nullopt;
    Addr type = typeOf(obj);
    if (!m_strType) {
        if (!(typeFlags(type) & tpflags::kUnicode) || builtinTypeName(type) != "str") return std::nullopt;
        m_strType = type;
    }
    if (type != m_strType) return std::nullopt;
    return str(obj, maxChars);
}

bool Objects::isExactInt(Addr obj) {
    if (!obj || !alive(obj)) return false;
    Addr type = typeOf(obj);
    if (!m_intType) {
        if (!(typeFlags(type) & tpflags::kLong) || builtinTypeName(type) != "int") return false;
        m_intType = type;
    }
    return type == m_intType;
}

namespace {

// PEP 393 state bits: interned:2, kind:3, compact:1, ascii:1.
struct UnicodeState {
    unsigned kind;
    bool compact;
    bool ascii;
};
UnicodeState unicodeState(std::uint32_t state) {
    return {(state >> 2) & 7, ((state >> 5) & 1) != 0, ((state >> 6) & 1) != 0};
}

}  // namespace

std::optional<std::string> Objects::str(Addr obj, std::size_t maxChars) {
    if (!obj) return std::nullopt;
    std::uint64_t type = 0;
    if (!m_mem.tryRead(obj + m_layout.object.type, &type, sizeof type)) return std::nullopt;
    if (!(typeFlags(type) & tpflags::kUnicode)) return std::nullopt;
    std::int64_t length = 0;
    std::uint32_t state = 0;
    if (!m_mem.tryRead(obj + m_layout.unicode.length, &length, sizeof length) ||
        !m_mem.tryRead(obj + m_layout.unicode.state, &state, sizeof state) || length < 0) {
        return std::nullopt;
    }
    auto [kind, compact, ascii] = unicodeState(state);
    if (kind != 1 && kind != 2 && kind != 4) return std::nullopt;
    Addr data = 0;
    if (compact) {
        data = obj + static_cast<Addr>(ascii ? m_layout.unicode.asciiData : m_layout.unicode.compactData);
    } else if (m_layout.unicode.legacyData == kAbsent ||
               !m_mem.tryRead(obj + m_layout.unicode.legacyData, &data, sizeof data) || !data) {
        return std::nullopt;
    }
    std::size_t cap = std::min(maxChars, limits::kMaxStringChars);
    std::size_t n = std::min(static_cast<std::size_t>(length), cap);
    std::vector<std::uint8_t> raw(n * kind);
    if (n && !m_mem.tryRead(data, raw.data(), raw.size())) return std::nullopt;
    std::string out;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        std::uint32_t cp = 0;
        if (kind == 1) {
            cp = raw[i];
        } else if (kind == 2) {
            cp = raw[2 * i] | (raw[2 * i + 1] << 8);
        } else {
            cp = raw[4 * i] | (raw[4 * i + 1] << 8) | (raw[4 * i + 2] << 16) |
                 (static_cast<std::uint32_t>(raw[4 * i + 3]) << 24);
        }
        appendUtf8(out, cp);
    }
    if (static_cast<std::size_t>(length) > n) out += "\xE2\x80\xA6";  // "…": truncated
    return out;
}

std::optional<std::vector<std::uint8_t>> Objects::bytes(Addr obj, std::size_t maxLen) {
    if (!obj || !(typeFlags(typeOf(obj)) & tpflags::kBytes)) return std::nullopt;
    std::int64_t size = m_mem.get<std::int64_t>(obj + m_layout.bytes.size, "bytes size");
    if (size < 0 || static_cast<std::size_t>(size) > std::min(maxLen, limits::kMaxBytes)) {
        return std::nullopt;
    }
    // Its last byte first: a torn size (up to 4 MB) allocates nothing.
    std::uint8_t last = 0;
    Addr data = obj + static_cast<Addr>(m_layout.bytes.data);
    if (size && !m_mem.tryRead(data + static_cast<Addr>(size) - 1, &last, 1)) return std::nullopt;
    std::vector<std::uint8_t> out(static_cast<std::size_t>(size));
    if (size && !m_mem.tryRead(data, out.data(), out.size())) return std::nullopt;
    return out;
}

std::optional<std::int64_t> Objects::integer(Addr obj) {
    if (!obj || !(typeFlags(typeOf(obj)) & tpflags::kLong)) return std::nullopt;
    std::uint64_t word = m_mem.get<std::uint64_t>(obj + m_layout.pylong.sizeOrTag, "int size");
    std::uint64_t ndigits = 0;
    bool negative = false;
    if (m_layout.longModel == LongModel::signedSize) {
        auto size = static_cast<std::int64_t>(word);
        negative = size < 0;
        ndigits = negative ? 0 - word : word;  // unsigned: INT64_MIN from a torn read is no UB
    } else {
        ndigits = word >> 3;
        negative = (word & 3) == 2;
        if ((word & 3) == 1) return 0;
    }
    if (ndigits > 3) return std::nullopt;  // beyond 64 bits: not an id or a count
    std::uint32_t digits[3] = {};
    if (ndigits && !m_mem.tryRead(obj + m_layout.pylong.digits, digits, 4 * ndigits)) return std::nullopt;
    unsigned __int128 v = 0;
    for (std::uint64_t i = ndigits; i-- > 0;) v = (v << 30) | (digits[i] & 0x3FFFFFFF);
    if (v > static_cast<unsigned __int128>(INT64_MAX)) return std::nullopt;
    auto s = static_cast<std::int64_t>(v);
    return negative ? -s : s;
}

std::vector<Addr> Objects::tupleItems(Addr obj) {
    if (!obj || !(typeFlags(typeOf(obj)) & tpflags::kTuple)) return {};
    std::int64_t n = m_mem.get<std::int64_t>(obj + m_layout.tuple.size, "tuple size");
    if (n <= 0 || static_cast<std::size_t>(n) > limits::kMaxTupleItems) return {};
    std::vector<Addr> items(static_cast<std::size_t>(n));
    m_mem.read(obj + m_layout.tuple.items, items.data(), items.size() * 8, "tuple items");
    return items;
}

// Arrays whose length the target gives (a dict's entries, a set's slots, a
// list's items) are read only once their last byte is found mapped, and
// records are copied a chunk at a time: a torn length claiming millions
// costs no more than the memory that is really there.
template <class Each>
void Objects::forEachRecord(Addr at, std::size_t count, std::size_t size, const char* what, Each&& each) {
    constexpr std::size_t kRecordsPerRead = 4096;
    if (count == 0) return;
    std::uint8_t last = 0;
    if (!m_mem.tryRead(at + count * size - 1, &last, 1)) {
        throw BadRead(std::string(what) + " past their mapping at " + hexAddr(at));
    }
    std::vector<std::uint8_t> raw(std::min(count, kRecordsPerRead) * size);
    for (std::size_t from = 0; from < count; from += kRecordsPerRead) {
        std::size_t n = std::min(kRecordsPerRead, count - from);
        m_mem.read(at + from * size, raw.data(), n * size, what);
        for (std::size_t i = 0; i < n; ++i) each(raw.data() + i * size);
    }
}

std::vector<Addr> Objects::listItems(Addr obj) {
    if (!obj || !(typeFlags(typeOf(obj)) & tpflags::kList)) return {};
    std::int64_t n = m_mem.get<std::int64_t>(obj + m_layout.list.size, "list size");
    if (n <= 0 || static_cast<std::size_t>(n) > limits::kMaxListItems) return {};
    Addr array = m_mem.ptr(obj + m_layout.list.items, "list items");
    std::vector<Addr> items;
    items.reserve(std::min<std::size_t>(static_cast<std::size_t>(n), 4096));
    forEachRecord(array, static_cast<std::size_t>(n), 8, "list items", [&](const std::uint8_t* item) {
        Addr a = 0;
        std::memcpy(&a, item, 8);
        items.push_back(a);
    });
    return items;
}

namespace {

// CPython's USABLE_FRACTION: a table of `size` slots holds at most this many
// entries. Every insertion takes one from dk_usable and adds one to
// dk_nentries (popitem lowers dk_nentries only), so their sum never exceeds
// it; one more is allowed for a read between the two stores.
bool plausibleCounts(std::uint64_t size, std::int64_t usable, std::uint64_t nentries) {
    return usable >= 0 && static_cast<std::uint64_t>(usable) + nentries <= (size << 1) / 3 + 1;
}

}  // namespace

Objects::KeysTable Objects::keysTable(Addr keys) {
    KeysTable t;
    if (m_layout.dictKeys == DictKeysModel::v310) {
        Block h = m_mem.block(keys, 40, "dict keys");
        t.size = h.at<std::uint64_t>(8);
        t.nentries = h.at<std::uint64_t>(32);
        if (t.size == 0 || (t.size & (t.size - 1)) || t.size > (1ull << 30) || t.nentries > t.size ||
            !plausibleCounts(t.size, h.at<std::int64_t>(24), t.nentries)) {
            throw BadRead("implausible dict keys at " + hexAddr(keys));
        }
        t.indexWidth = t.size <= 0xff ? 1 : t.size <= 0xffff ? 2 : t.size <= 0xffffffffull ? 4 : 8;
        t.indices = keys + 40;
        t.entries = t.indices + t.size * t.indexWidth;
        return t;
    }
    Block h = m_mem.block(keys, 32, "dict keys");
    auto log2Size = h.at<std::uint8_t>(8);
    auto log2IndexBytes = h.at<std::uint8_t>(9);
    auto kind = h.at<std::uint8_t>(10);
    t.nentries = h.at<std::uint64_t>(24);
    if (log2Size > 30 || log2IndexBytes > log2Size + 3 || t.nentries > (1ull << log2Size) ||
        !plausibleCounts(1ull << log2Size, h.at<std::int64_t>(16), t.nentries)) {
        throw BadRead("implausible dict keys at " + hexAddr(keys));
    }
    t.size = 1ull << log2Size;
    // 0 when the index bytes are fewer than the slots (torn): probe() gives up.
    t.indexWidth = log2IndexBytes >= log2Size ? std::size_t{1} << (log2IndexBytes - log2Size) : 0;
    t.indices = keys + 32;
    t.entries = t.indices + (1ull << log2IndexBytes);
    if (kind != 0) {  // unicode-keyed entries carry no hash
        t.entrySize = 16;
        t.keyAt = 0;
        t.valueAt = 8;
        t.hashAt = -1;
    }
    return t;
}

// The entries of a PyDictKeysObject in insertion order, as (key, value)
// pairs; slots of deleted entries have key 0. Split tables keep their values
// elsewhere, so their values here are 0.
std::vector<std::pair<Addr, Addr>> Objects::keysEntries(Addr keys) {
    KeysTable t = keysTable(keys);
    std::uint64_t nentries = std::min<std::uint64_t>(t.nentries, limits::kMaxDictEntries);
    std::vector<std::pair<Addr, Addr>> out;
    out.reserve(std::min<std::size_t>(nentries, 4096));
    forEachRecord(t.entries, nentries, t.entrySize, "dict entries", [&](const std::uint8_t* e) {
        Addr key = 0, value = 0;
        std::memcpy(&key, e + t.keyAt, 8);
        std::memcpy(&value, e + t.valueAt, 8);
        out.emplace_back(key, value);
    });
    return out;
}

Objects::DictTables Objects::tablesOf(Addr dict) {
    if (!dict || !(typeFlags(typeOf(dict)) & tpflags::kDict)) return {};
    return {m_mem.ptr(dict + m_layout.dict.keys, "dict keys"), m_mem.ptr(dict + m_layout.dict.values, "dict values")};
}

std::vector<std::pair<Addr, Addr>> Objects::dictItems(Addr dict) {
    auto [keys, values] = tablesOf(dict);
    if (!keys) return {};
    auto entries = keysEntries(keys);
    if (values && !entries.empty()) {
        std::size_t i = 0;
        forEachRecord(values + static_cast<Addr>(m_layout.dict.valuesHeader), entries.size(), 8, "dict values",
                      [&](const std::uint8_t* v) { std::memcpy(&entries[i++].second, v, 8); });
    }
    std::erase_if(entries, [](const auto& e) { return !e.first || !e.second; });
    return entries;
}

namespace {
constexpr std::int64_t kUnknownLength = std::numeric_limits<std::int64_t>::min();
constexpr std::uint32_t kNoText = std::numeric_limits<std::uint32_t>::max();
constexpr std::size_t kKeyChars = 40;          // a key this short is read with its length
constexpr std::size_t kKeptFrom = 32;          // kept from the first lookup
constexpr std::size_t kLookedUpCap = 1 << 14;  // tables remembered as looked up once
}  // namespace

// The keys' headers, and the characters of short ASCII ones, read in one
// batch past the page cache: a lookup in sys.modules compares hundreds of
// keys, each on its own page, which read through the cache would be a page
// per key of the right length. A key read only in part (the end of a
// mapping) is left to the ordinary read.
Objects::Keys Objects::readKeys(const std::vector<std::pair<Addr, Addr>>& entries) {
    const auto& U = m_layout.unicode;
    const std::size_t header = static_cast<std::size_t>(U.asciiData);
    const std::size_t size = header + kKeyChars;
    Keys out;
    out.keys.reserve(entries.size());
    out.lengths.assign(entries.size(), kUnknownLength);
    out.textAt.assign(entries.size(), kNoText);
    std::vector<std::uint8_t> raw(entries.size() * size);
    std::vector<MemoryReader::Request> requests;
    std::vector<std::size_t> which;
    requests.reserve(entries.size());
    for (std::size_t i = 0; i < entries.size(); ++i) {
        out.keys.push_back(entries[i].first);
        if (!entries[i].first) continue;
        requests.push_back({entries[i].first, raw.data() + i * size, size});
        which.push_back(i);
    }
    m_mem.reader().readManyPast(requests);
    for (std::size_t k = 0; k < requests.size(); ++k) {
        const auto& r = requests[k];
        if (r.result == ReadResult::gone || r.result == ReadResult::denied) Remote::raiseFatal(r.result, r.addr);
        if (r.result != ReadResult::ok) continue;
        const std::uint8_t* p = raw.data() + which[k] * size;
        std::int64_t length;
        std::uint32_t state;
        Addr type;
        std::memcpy(&length, p + U.length, sizeof length);
        std::memcpy(&state, p + U.state, sizeof state);
        std::memcpy(&type, p + m_layout.object.type, sizeof type);
        out.lengths[which[k]] = length;
        // As str() reads it: any str, a subclass too.
        auto [kind, compact, ascii] = unicodeState(state);
        if (kind != 1 || !compact || !ascii || length < 0 || static_cast<std::size_t>(length) > kKeyChars ||
            !(typeFlags(type) & tpflags::kUnicode)) {
            continue;
        }
        out.textAt[which[k]] = static_cast<std::uint32_t>(out.text.size());
        out.text.append(reinterpret_cast<const char*>(p + header), static_cast<std::size_t>(length));
    }
    return out;
}

const Objects::Keys& Objects::keysOf(Addr table, const std::vector<std::pair<Addr, Addr>>& entries) {
    auto same = [&](const Keys& k) {
        return k.keys.size() == entries.size() &&
               std::equal(k.keys.begin(), k.keys.end(), entries.begin(), [](Addr a, const auto& e) { return a == e.first; });
    };
    if (auto kept = m_keys.find(table); kept != m_keys.end() && same(kept->second)) return kept->second;
    if (entries.size() >= kKeptFrom || m_lookedUp.count(table)) {
        // Looked up a second time: kept from now on. The keys read for the
        // last lookup are this table's still (instances of one class share
        // it: each thread's name is looked up in it).
        if (m_freshTable == table && same(m_freshKeys)) {
            m_freshTable = 0;
            return m_keys[table] = std::move(m_freshKeys);
        }
        return m_keys[table] = readKeys(entries);
    }
    if (m_lookedUp.size() < kLookedUpCap) m_lookedUp.insert(table);
    m_freshKeys = readKeys(entries);
    m_freshTable = table;
    return m_freshKeys;
}

// Only the keys of the right length (one or two) are compared: a key of
// another length, or not a str, cannot match either way. A short ASCII key's
// characters are at hand; any other is read as a str.
std::optional<std::size_t> Objects::findKey(Addr table, const std::vector<std::pair<Addr, Addr>>& entries,
                                            std::string_view name, std::size_t limit) {
    limit = std::min(limit, entries.size());
    // A length counts characters, name.size() UTF-8 bytes: they agree for
    // ASCII only (an identifier may be any letters).
    const Keys* known = entries.size() < 4 || !isAscii(name) ? nullptr : &keysOf(table, entries);
    for (std::size_t i = 0; i < limit; ++i) {
        if (!entries[i].first) continue;
        if (known && known->lengths[i] != kUnknownLength) {
            if (known->lengths[i] != static_cast<std::int64_t>(name.size())) continue;
            if (known->textAt[i] != kNoText) {
                if (std::string_view(known->text).substr(known->textAt[i], name.size()) == name) return i;
                continue;
            }
        }
        if (auto s = str(entries[i].first, name.size() + 1); s && *s == name) return i;
    }
    return std::nullopt;
}

std::optional<Addr> Objects::dictGet(Addr dict, std::string_view key) {
    if (Probed p = probe(dict, key); p.known) return p.value;
    auto items = dictItems(dict);
    if (auto i = findKey(dict, items, key, items.size())) return items[*i].second;
    return std::nullopt;
}

std::vector<Addr> Objects::setItems(Addr set) {
    std::vector<Addr> out;
    if (!set || !(isInstance(set, "set") || isInstance(set, "frozenset"))) return out;
    Block h = m_mem.block(set, static_cast<std::size_t>(m_layout.set.table) + 8, "set");
    auto mask = h.at<std::int64_t>(m_layout.set.mask);
    auto used = h.at<std::int64_t>(m_layout.set.used);
    Addr table = h.ptr(m_layout.set.table);
    // CPython grows a set's table before it is three fifths full (set_add_entry:
    // fill * 5 >= mask * 3 resizes), and `used` never exceeds `fill`. `used`
    // is bounded by the slots before it is multiplied (a torn one overflowed:
    // found by fuzz_memory).
    if (mask < 0 || static_cast<std::uint64_t>(mask) + 1 > limits::kMaxSetSlots || used < 0 || used > mask + 1 ||
        used * 5 > mask * 3 + 5 || ((mask + 1) & mask) != 0) {
        throw BadRead("implausible set at " + hexAddr(set));
    }
    forEachRecord(table, static_cast<std::size_t>(mask) + 1, 16, "set slots", [&](const std::uint8_t* slot) {
        Addr key;
        std::int64_t hash;
        std::memcpy(&key, slot, 8);
        std::memcpy(&hash, slot + 8, 8);
        // A deleted slot keeps the dummy key with hash -1; real hashes never are.
        if (key && hash != -1) out.push_back(key);
    });
    return out;
}

std::optional<Addr> Objects::lookupInKeys(Addr keys, Addr values, std::string_view name) {
    std::size_t header = static_cast<std::size_t>(m_layout.dict.valuesHeader);
    std::uint8_t capacity = 0xff;
    if (header > 0 && !m_mem.tryRead(values, &capacity, 1)) return std::nullopt;
    auto entries = keysEntries(keys);
    auto i = findKey(keys, entries, name, capacity);
    if (!i) return std::nullopt;
    Addr v = m_mem.ptr(values + header + 8 * *i, "instance value");
    return v ? std::optional<Addr>(v) : std::nullopt;
}

void Objects::prefetch(const std::vector<Addr>& addrs, std::size_t before, std::size_t after) {
    std::vector<std::uint8_t> scratch((before + after) * addrs.size());
    std::vector<MemoryReader::Request> requests;
    requests.reserve(addrs.size());
    for (std::size_t i = 0; i < addrs.size(); ++i) {
        if (addrs[i] < before || addrs[i] + after < addrs[i]) continue;
        requests.push_back({addrs[i] - before, scratch.data() + i * (before + after), before + after});
    }
    m_mem.reader().readMany(requests);
}

std::optional<Addr> Objects::attr(Addr obj, std::string_view name) {
    Addr type = typeOf(obj);
    std::uint64_t flags = typeFlags(type);
    const auto& L = m_layout;
    bool managed = (flags & tpflags::kManagedDict) && L.instanceDict != InstanceDictModel::dictOffset;
    if (!managed) {
        auto off = m_mem.get<std::int64_t>(type + L.type.dictoffset, "tp_dictoffset");
        if (off <= 0 || off > (1 << 20)) return std::nullopt;
        Addr dict = m_mem.ptr(obj + static_cast<Addr>(off), "instance dict");
        return dict ? dictGet(dict, name) : std::nullopt;
    }
    Addr cachedKeys = L.type.cachedKeys == kAbsent ? 0 : m_mem.ptr(type + L.type.cachedKeys, "ht_cached_keys");
    switch (L.instanceDict) {
        case InstanceDictModel::managed311: {
            Addr dict = m_mem.ptr(obj + L.dict.managedDict, "managed dict");
            if (dict) return dictGet(dict, name);
            Addr values = m_mem.ptr(obj + L.dict.managedValues, "managed values");
            if (values && cachedKeys) return lookupInKeys(cachedKeys, values, name);
            return std::nullopt;
        }
        case InstanceDictModel::dictOrValues: {
            Addr word = m_mem.ptr(obj + L.dict.managedDict, "dict-or-values");
            if (word & 1) return cachedKeys ? lookupInKeys(cachedKeys, word + 1, name) : std::nullopt;
            return word ? dictGet(word, name) : std::nullopt;
        }
        case InstanceDictModel::managedInline: {
            Addr dict = m_mem.ptr(obj + L.dict.managedDict, "managed dict");
            if (dict) return dictGet(dict, name);
            if (!(flags & tpflags::kInlineValues) || !cachedKeys) return std::nullopt;
            auto basicsize = m_mem.get<std::int64_t>(type + L.type.basicsize, "tp_basicsize");
            if (basicsize <= 0 || basicsize > (1 << 16)) return std::nullopt;
            Addr values = obj + static_cast<Addr>(basicsize);
            std::uint8_t valid = m_mem.get<std::uint8_t>(values + 3, "inline values");
            return valid ? lookupInKeys(cachedKeys, values, name) : std::nullopt;
        }
        case InstanceDictModel::dictOffset: break;
    }
    return std::nullopt;
}

}  // namespace aioscope
