// Readers for the Python objects aioscope needs to understand, from raw target
// memory: str (every PEP 393 kind), bytes, int, tuple, list, dict (every keys
// format, split tables), set, instance attributes, and type names. Each checks
// the object's type first and caps every length (remote/limits.h). Readers
// return nullopt/empty for objects that are not what was expected; they throw
// BadRead only when memory that must be readable is not.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "layout/layout.h"
#include "mem/remote.h"
#include "remote/str_hash.h"

namespace aioscope {

class Objects {
public:
    Objects(Remote& mem, const Layout& layout) : m_mem(mem), m_layout(layout) {}

    Remote& mem() { return m_mem; }
    const Layout& layout() const { return m_layout; }

    Addr typeOf(Addr obj);
    std::uint64_t typeFlags(Addr type);
    // tp_name of a type, cached per type address; "" if unreadable.
    const std::string& typeName(Addr type);
    const std::string& typeNameOf(Addr obj) { return typeName(typeOf(obj)); }
    // A class defined in Python (a heap type without Py_TPFLAGS_IMMUTABLETYPE)
    // can take any name, "coroutine" or "_asyncio.Task" included: only types
    // the interpreter or an extension module defines are recognised by name.
    bool isPythonClass(Addr type);
    // tp_name of a type the interpreter or an extension defines; "" for a
    // class defined in Python.
    const std::string& builtinTypeName(Addr type);
    const std::string& builtinTypeNameOf(Addr obj) { return builtinTypeName(typeOf(obj)); }
    // True if obj's type or one of its bases has this tp_name. With
    // builtinOnly, classes defined in Python never match by name (their
    // bases still can: a Task subclass is a Task).
    bool isInstance(Addr obj, std::string_view tpName, bool builtinOnly = false);

    // Whether a reference count read from an object could belong to a live
    // object: freed memory holds allocator links (pointers) or 0 there.
    static bool plausibleRefcount(std::uint64_t rc);
    bool alive(Addr obj);

    std::optional<std::string> str(Addr obj, std::size_t maxChars = 4096);
    // Only an exact, live `str` (not a subclass, not something with the
    // unicode flag in torn memory); the type of `str` itself is learnt from
    // the first one met whose type the interpreter defines.
    std::optional<std::string> exactStr(Addr obj, std::size_t maxChars = 4096);
    bool isExactInt(Addr obj);
    std::optional<std::vector<std::uint8_t>> bytes(Addr obj, std::size_t maxLen);
    std::optional<std::int64_t> integer(Addr obj);

    std::vector<Addr> tupleItems(Addr obj);
    std::vector<Addr> listItems(Addr obj);
    std::vector<std::pair<Addr, Addr>> dictItems(Addr dict);
    std::optional<Addr> dictGet(Addr dict, std::string_view key);
    std::vector<Addr> setItems(Addr set);

    // The value of an attribute stored in obj's instance __dict__ (or inline
    // values), not descriptors or class attributes.
    std::optional<Addr> attr(Addr obj, std::string_view name);

    // Brings the pages of [a - before, a + after) for each address into the
    // page cache in one batch, for reads that follow: objects met together
    // but scattered over as many pages (one per thread, say). Decides
    // nothing: what does not read is met again by the reads.
    void prefetch(const std::vector<Addr>& addrs, std::size_t before, std::size_t after);

    // The address of the process's _Py_HashSecret (0: unknown), for
    // dictGet's lookups by hash in large dicts. Until a key read from the
    // target is seen to hash as the target hashed it, lookups scan.
    void useHashSecret(Addr at) {
        m_secretAt = at;
        m_hashing = at ? Hashing::unchecked : Hashing::off;
    }
    bool hashing() const { return m_hashing == Hashing::on; }

    // A new read begins: what was learnt of dicts' keys may be stale.
    void forget() {
        m_keys.clear();
        m_lookedUp.clear();
        m_freshTable = 0;
    }

private:
    // `count` records of `size` bytes at `at`, each passed to `each`.
    template <class Each>
    void forEachRecord(Addr at, std::size_t count, std::size_t size, const char* what, Each&& each);
    // A dict's keys object and, for a split table, its values (both 0 for
    // what is not a dict).
    struct DictTables {
        Addr keys = 0;
        Addr values = 0;
    };
    DictTables tablesOf(Addr dict);
    // A PyDictKeysObject's header, checked: where its parts are.
    struct KeysTable {
        std::uint64_t size = 0;      // slots of the index table
        std::uint64_t nentries = 0;  // entries used (some may be deleted)
        Addr indices = 0;
        std::size_t indexWidth = 0;  // bytes per index (0: torn)
        Addr entries = 0;
        std::size_t entrySize = 24, keyAt = 8, valueAt = 16;
        int hashAt = 0;              // -1: entries without a hash (unicode keys)
    };
    KeysTable keysTable(Addr keys);
    std::vector<std::pair<Addr, Addr>> keysEntries(Addr keys);
    // dictGet by the key's hash, as the target's own lookup probes
    // (remote/dict_probe.cpp). `known`: the answer is certain, found or
    // not; otherwise the dict is scanned.
    struct Probed {
        bool known = false;
        std::optional<Addr> value;
    };
    Probed probe(Addr dict, std::string_view name);
    bool checkHashing(const KeysTable& t);
    std::optional<Addr> lookupInKeys(Addr keys, Addr values, std::string_view name);
    struct Keys;
    Keys readKeys(const std::vector<std::pair<Addr, Addr>>& entries);
    const Keys& keysOf(Addr table, const std::vector<std::pair<Addr, Addr>>& entries);
    // The index of the entry whose key is the str `name`, among the first
    // `limit` entries.
    std::optional<std::size_t> findKey(Addr table, const std::vector<std::pair<Addr, Addr>>& entries,
                                       std::string_view name, std::size_t limit);

    Remote& m_mem;
    const Layout& m_layout;
    std::unordered_map<Addr, std::string> m_typeNames;
    std::unordered_map<Addr, std::uint64_t> m_typeFlags;
    // isInstance answers per type, for each name asked about (few), looked
    // up without building a string (it is asked for every object read).
    struct NameHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    using ByName = std::unordered_map<std::string, std::unordered_map<Addr, bool>, NameHash, std::equal_to<>>;
    ByName m_instanceOf;
    ByName m_builtinInstanceOf;
    std::unordered_map<Addr, bool> m_pythonClass;
    std::array<std::pair<Addr, const std::string*>, 16> m_recentBuiltin{};
    struct RecentAnswer {
        Addr type = 0;
        char name[40] = {};
        std::size_t len = 0;
        bool builtinOnly = false;
        bool result = false;
    };
    static constexpr std::size_t kRecentAnswers = 64;
    std::array<RecentAnswer, kRecentAnswers> m_recent{};
    Addr m_strType = 0;
    Addr m_intType = 0;
    // What the keys of tables looked up more than once are, per table, for
    // the rest of the read: sys.modules is looked up a dozen times per read
    // (hundreds of keys, each on its own page), a module's globals once per
    // name a blocked frame's code uses. Each key's length and, for a short
    // ASCII str, its characters, read in one batch. Kept with the key
    // addresses they were read for: a str never changes while a table holds
    // it. Large tables are kept from their first lookup; others from their
    // second (most, a task's attributes, are looked up once).
    struct Keys {
        std::vector<Addr> keys;
        std::vector<std::int64_t> lengths;  // kUnknownLength: unreadable
        std::vector<std::uint32_t> textAt;  // where in `text` its characters are; kNoText: not read
        std::string text;
    };
    std::unordered_map<Addr, Keys> m_keys;
    Keys m_freshKeys;  // a table's keys read for one lookup, not kept
    Addr m_freshTable = 0;  // whose they are (0: none)
    std::unordered_set<Addr> m_lookedUp;  // tables looked up once, up to kLookedUpCap
    enum class Hashing { off, unchecked, on };
    Hashing m_hashing = Hashing::off;
    Addr m_secretAt = 0;
    HashSecret m_secret;
};

// Python's tp_flags bits used to recognise built-in types and their subclasses.
namespace tpflags {
constexpr std::uint64_t kManagedDict = 1ull << 4;
constexpr std::uint64_t kImmutableType = 1ull << 8;
constexpr std::uint64_t kHeapType = 1ull << 9;
constexpr std::uint64_t kInlineValues = 1ull << 2;
constexpr std::uint64_t kLong = 1ull << 24;
constexpr std::uint64_t kList = 1ull << 25;
constexpr std::uint64_t kTuple = 1ull << 26;
constexpr std::uint64_t kBytes = 1ull << 27;
constexpr std::uint64_t kUnicode = 1ull << 28;
constexpr std::uint64_t kDict = 1ull << 29;
}  // namespace tpflags

// Appends code point cp to out as UTF-8 (lone surrogates become U+FFFD).
void appendUtf8(std::string& out, std::uint32_t cp);

// Whether every byte of s is ASCII: then its length in bytes is its length
// in characters, and its hash is that of its bytes.
bool isAscii(std::string_view s);

}  // namespace aioscope
