// dictGet's lookup by hash (remote/dict_probe.cpp) over tables laid out as
// CPython inserts (FakePython::hashedDictKeys), and the hash it relies on.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "fake_memory.h"
#include "fake_python.h"
#include "layout/tables.h"
#include "remote/objects.h"
#include "remote/str_hash.h"
#include "test_data.h"

using namespace aioscope;
using aioscope::test::FakeMemory;
using aioscope::test::FakePython;
using aioscope::test::recordedLayout;

TEST_CASE("str hashes are CPython's", "[objects][dict][hash]") {
    // hash(s) printed by CPython with PYTHONHASHSEED=0 (a secret of zeros):
    // 3.10.13 (SipHash-2-4), and 3.11.2, 3.12.1, 3.15 (SipHash-1-3).
    const std::vector<std::string> texts{"a", "abc", "_asyncio", "asyncio.base_events", "01234567"};
    const std::vector<std::int64_t> h24{-7583489610679606711, 4596069200710135518, -3075492300274305808,
                                        -5812908833670643448, 5448329059885170114};
    const std::vector<std::int64_t> h13{4644417185603328019, -4594863902769663758, 2257286823643571369,
                                        -4844814517479243124, -2720791140458926906};
    for (std::size_t i = 0; i < texts.size(); ++i) {
        CHECK(strHash(StrHashModel::siphash24, {}, texts[i]) == h24[i]);
        CHECK(strHash(StrHashModel::siphash13, {}, texts[i]) == h13[i]);
    }
    CHECK(strHash(StrHashModel::siphash13, {}, "") == 0);
    // The secret keys it: another secret, another hash.
    CHECK(strHash(StrHashModel::siphash13, {1, 2}, "abc") != h13[1]);
}

namespace {

template <class T>
T peek(FakeMemory& mem, Addr at) {
    T v{};
    mem.read(at, &v, sizeof v);
    return v;
}

const HashSecret kSecret{0x0123456789abcdefULL, 0xfedcba9876543210ULL};

struct World {
    explicit World(int minor) : L(recordedLayout(minor)), py(mem, L), remote(mem), objects(remote, L) {
        secret = mem.alloc(24);
        mem.put<std::uint64_t>(secret, kSecret.k0);
        mem.put<std::uint64_t>(secret + 8, kSecret.k1);
        objects.useHashSecret(secret);
    }
    // n keys "module0".. with values "v0"..., their str hashes cached in them
    // as the target's dict insertion leaves them, hashed with `key`.
    FakePython::HashedKeys table(int n, HashSecret key = kSecret) {
        std::vector<FakePython::Entry> entries;
        for (int i = 0; i < n; ++i) {
            std::string name = "module" + std::to_string(i);
            Addr k = py.str(name);
            std::int64_t h = strHash(L.strHash, key, name);
            mem.put<std::int64_t>(k + static_cast<Addr>(L.unicode.hash), h);
            values.push_back(py.str("v" + std::to_string(i)));
            entries.push_back({k, values.back(), h});
        }
        return py.hashedDictKeys(entries, 6, L.dictKeys != DictKeysModel::v310);
    }
    std::size_t header() const { return py.keysHeaderSize(); }
    Layout L;
    FakeMemory mem;
    FakePython py;
    Remote remote;
    Objects objects;
    Addr secret = 0;
    std::vector<Addr> values;
};

}  // namespace

TEST_CASE("a large dict is looked up by hash, as the target probes it", "[objects][dict][hash]") {
    for (int minor : {10, 11, 12, 13, 14, 15}) {
        CAPTURE(minor);
        World w(minor);
        auto t = w.table(40);
        Addr d = w.py.dict(t.keys);
        // Some keys sit past a collision: their lookup goes on along the sequence.
        std::size_t longest = 0;
        for (const auto& p : t.probes) longest = std::max(longest, p.size());
        REQUIRE(longest > 1);
        w.mem.resetCounts();
        for (int i = 0; i < 40; ++i) CHECK(w.objects.dictGet(d, "module" + std::to_string(i)) == w.values[i]);
        CHECK(w.objects.dictGet(d, "nope") == std::nullopt);
        CHECK(w.objects.dictGet(d, "module400") == std::nullopt);
        CHECK(w.objects.hashing());
        CHECK(w.mem.readManyCalls() == 0);  // no key read in a batch: no scan
    }
}

TEST_CASE("a deleted entry on the way does not end the probe", "[objects][dict][hash]") {
    for (int minor : {10, 12, 14}) {
        CAPTURE(minor);
        World w(minor);
        auto t = w.table(40);
        // A key whose lookup passes another's slot first: that other entry
        // deleted (DKIX_DUMMY, its key and value cleared, as delitem does).
        std::size_t far = 0;
        while (far < t.probes.size() && t.probes[far].size() < 2) ++far;
        REQUIRE(far < t.probes.size());
        std::uint64_t first = t.probes[far].front();
        std::int8_t gone = peek<std::int8_t>(w.mem, t.keys + w.header() + first);
        REQUIRE(gone >= 0);
        w.mem.put<std::int8_t>(t.keys + w.header() + first, -2);
        std::size_t entrySize = w.L.dictKeys == DictKeysModel::v310 ? 24 : 16;
        Addr entry = t.keys + w.header() + 64 + static_cast<Addr>(gone) * entrySize;
        for (std::size_t b = 0; b < entrySize; b += 8) w.mem.put<std::uint64_t>(entry + b, 0);
        Addr d = w.py.dict(t.keys);
        CHECK(w.objects.dictGet(d, "module" + std::to_string(far)) == w.values[far]);
        CHECK(w.objects.dictGet(d, "module" + std::to_string(gone)) == std::nullopt);
        CHECK(w.objects.hashing());
    }
}

TEST_CASE("hashes that are not the target's are never trusted", "[objects][dict][hash]") {
    SECTION("another secret: the check fails, the dict is scanned") {
        World w(12);
        auto t = w.table(40, HashSecret{1, 2});
        Addr d = w.py.dict(t.keys);
        CHECK(w.objects.dictGet(d, "module7") == w.values[7]);
        CHECK(w.objects.dictGet(d, "module33") == w.values[33]);
        CHECK(w.objects.dictGet(d, "nope") == std::nullopt);
        CHECK_FALSE(w.objects.hashing());
        CHECK(w.mem.readManyCalls() >= 1);
    }
    SECTION("a secret that does not read: scanned") {
        World w(14);
        auto t = w.table(40);
        w.objects.useHashSecret(0xdead0000);
        Addr d = w.py.dict(t.keys);
        CHECK(w.objects.dictGet(d, "module7") == w.values[7]);
        CHECK_FALSE(w.objects.hashing());
    }
    SECTION("keys without a cached hash: unchecked, scanned, until one has it") {
        World w(13);
        auto t = w.table(40);
        for (int i = 0; i < 40; ++i) {
            Addr entry = t.keys + w.header() + 64 + static_cast<Addr>(i) * 16;
            w.mem.put<std::int64_t>(peek<Addr>(w.mem, entry) + static_cast<Addr>(w.L.unicode.hash), -1);
        }
        Addr d = w.py.dict(t.keys);
        CHECK(w.objects.dictGet(d, "module7") == w.values[7]);
        CHECK_FALSE(w.objects.hashing());
        auto t2 = w.table(40);
        CHECK(w.objects.dictGet(w.py.dict(t2.keys), "module9") == w.values[49]);
        CHECK(w.objects.hashing());
    }
}

TEST_CASE("a torn table is left to the scan", "[objects][dict][hash]") {
    World w(14);
    auto t = w.table(40);
    Addr d = w.py.dict(t.keys);
    std::uint64_t slot = t.probes[7].back();
    SECTION("an index past the entries") {
        w.mem.put<std::int8_t>(t.keys + 32 + slot, 100);
        w.mem.resetCounts();
        CHECK(w.objects.dictGet(d, "module7") == w.values[7]);  // by the scan, over the entries
        CHECK(w.mem.readManyCalls() == 1);
    }
    SECTION("no empty slot anywhere: the probe gives up, the scan answers") {
        for (std::uint64_t s = 0; s < 64; ++s) {
            if (peek<std::int8_t>(w.mem, t.keys + 32 + s) == -1) w.mem.put<std::int8_t>(t.keys + 32 + s, -2);
        }
        w.mem.resetCounts();
        CHECK(w.objects.dictGet(d, "nope") == std::nullopt);
        CHECK(w.mem.readManyCalls() == 1);
    }
    SECTION("an unknown index value") {
        w.mem.put<std::int8_t>(t.keys + 32 + t.probes[7].front(), -7);
        w.mem.resetCounts();
        CHECK(w.objects.dictGet(d, "module7") == w.values[7]);
        CHECK(w.mem.readManyCalls() == 1);
    }
}
