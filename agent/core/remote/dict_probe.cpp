// A lookup in a large dict the way the target's own dict looks it up: the
// name's hash (as the target computes it, keyed with its _Py_HashSecret)
// picks a slot of the index table, and the probe sequence of CPython's
// dictobject.c goes on from there until the key or an empty slot. Scanning
// instead compares every key, each a str on its own page: a lookup in
// sys.modules of a service read some 250 pages, where the probe reads two
// or three.
//
// Nothing is decided on the hash alone: a key found is one whose characters
// are the name's, as the scan requires. "Not there" is decided by an empty
// slot, which is certain only if the hash is the target's: hashing is on
// only once a key read from the target hashed, here, to the hash the
// target cached in it. Anything that does not read or make sense (a torn
// table, an index past the entries, a probe that does not end) leaves the
// answer to the scan.
#include <algorithm>
#include <cstring>

#include "remote/objects.h"

namespace aioscope {

namespace {

// Smaller tables are scanned: their keys are read in one batch.
constexpr std::uint64_t kProbeFrom = 32;
// The keys looked at for the check of the hash (one suffices).
constexpr std::uint64_t kCheckKeys = 8;
constexpr std::size_t kCheckChars = 64;
// CPython's dictobject.c: DKIX_EMPTY, DKIX_DUMMY, PERTURB_SHIFT.
constexpr std::int64_t kEmpty = -1;
constexpr std::int64_t kDummy = -2;
constexpr int kPerturbShift = 5;

std::int64_t signedIndex(const std::uint8_t* p, std::size_t width) {
    switch (width) {
        case 1: return static_cast<std::int8_t>(p[0]);
        case 2: { std::int16_t v; std::memcpy(&v, p, 2); return v; }
        case 4: { std::int32_t v; std::memcpy(&v, p, 4); return v; }
        default: { std::int64_t v; std::memcpy(&v, p, 8); return v; }
    }
}

}  // namespace

bool Objects::checkHashing(const KeysTable& t) {
    if (m_hashing != Hashing::unchecked) return m_hashing == Hashing::on;
    if (!m_mem.tryRead(m_secretAt, &m_secret, sizeof m_secret)) {
        m_hashing = Hashing::off;
        return false;
    }
    for (std::uint64_t i = 0; i < std::min(t.nentries, kCheckKeys); ++i) {
        Addr key = 0;
        if (!m_mem.tryRead(t.entries + i * t.entrySize + t.keyAt, &key, 8) || !key) continue;
        std::int64_t cached = -1;
        if (!m_mem.tryRead(key + static_cast<Addr>(m_layout.unicode.hash), &cached, 8) || cached == -1) continue;
        auto text = exactStr(key, kCheckChars + 1);
        if (!text || text->size() > kCheckChars || !isAscii(*text)) continue;
        m_hashing = strHash(m_layout.strHash, m_secret, *text) == cached ? Hashing::on : Hashing::off;
        return m_hashing == Hashing::on;
    }
    return false;  // no key to check with here: unchecked still
}

Objects::Probed Objects::probe(Addr dict, std::string_view name) try {
    if (m_hashing == Hashing::off || name.empty() || !isAscii(name)) return {};
    auto [keys, values] = tablesOf(dict);
    if (!keys || values) return {};  // split tables (an instance's) are scanned
    KeysTable t = keysTable(keys);
    if (t.nentries < kProbeFrom || t.indexWidth == 0 || t.indexWidth > 8 || !checkHashing(t)) return {};
    std::int64_t hash = strHash(m_layout.strHash, m_secret, name);
    std::uint64_t mask = t.size - 1;
    auto perturb = static_cast<std::uint64_t>(hash);
    std::uint64_t i = perturb & mask;
    // Within 13 steps the perturbation is spent and i = 5i + 1 visits every
    // slot: a table with no empty slot (torn) ends here.
    for (std::uint64_t step = 0; step < t.size + 14; ++step) {
        std::uint8_t raw[8];
        if (!m_mem.tryRead(t.indices + i * t.indexWidth, raw, t.indexWidth)) return {};
        std::int64_t ix = signedIndex(raw, t.indexWidth);
        if (ix == kEmpty) return {true, std::nullopt};
        if (ix >= 0) {
            if (static_cast<std::uint64_t>(ix) >= t.nentries) return {};
            std::uint8_t entry[24];
            if (!m_mem.tryRead(t.entries + static_cast<Addr>(ix) * t.entrySize, entry, t.entrySize)) return {};
            Addr key = 0, value = 0;
            std::int64_t entryHash = hash;
            std::memcpy(&key, entry + t.keyAt, 8);
            std::memcpy(&value, entry + t.valueAt, 8);
            if (t.hashAt >= 0) std::memcpy(&entryHash, entry + t.hashAt, 8);
            if (key && entryHash == hash) {
                if (auto s = str(key, name.size() + 1); s && *s == name) {
                    if (!value) return {};  // a key without its value: torn
                    return {true, value};
                }
            }
        } else if (ix != kDummy) {
            return {};
        }
        perturb >>= kPerturbShift;
        i = (i * 5 + perturb + 1) & mask;
    }
    return {};
} catch (const BadRead&) {
    return {};
}

}  // namespace aioscope
