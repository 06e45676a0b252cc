// Object readers over hand-built objects in a FakeMemory. Values are encoded
// here from CPython's definitions (PEP 393, longintrepr.h, dict-common.h,
// setobject.h) and decoded by the code under test.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "errors.h"
#include "failing_alloc.h"
#include "fake_memory.h"
#include "fake_python.h"
#include "layout/tables.h"
#include "remote/objects.h"
#include "test_data.h"

using namespace aioscope;
using aioscope::test::FakeMemory;
using aioscope::test::FakePython;
using aioscope::test::recordedLayout;
using aioscope::test::unicodeState;

namespace {

constexpr Addr kUnmapped = 0xdead0000;
const std::string kEllipsis = "\xE2\x80\xA6";

struct World {
    explicit World(Layout layout) : L(std::move(layout)), py(mem, L), remote(mem), objects(remote, L) {}
    Layout L;
    FakeMemory mem;
    FakePython py;
    Remote remote;
    Objects objects;
};

// A torn pointer may be reported either way, as long as nothing crashes.
template <class F>
bool emptyOrBadRead(F&& f) {
    try {
        auto r = f();
        if constexpr (requires { r.has_value(); }) {
            return !r.has_value();
        } else {
            return r.empty();
        }
    } catch (const BadRead&) {
        return true;
    }
}

}  // namespace

TEST_CASE("type names and isinstance through tp_base", "[objects][types]") {
    World w(staticLayout(12).value());
    Addr base = w.py.type("Base", 0);
    Addr sub = w.py.type("Sub", 0, base);
    Addr obj = w.py.object(sub, 16);
    CHECK(w.objects.typeName(sub) == "Sub");
    CHECK(w.objects.typeNameOf(obj) == "Sub");
    CHECK(w.objects.typeOf(obj) == sub);
    CHECK(w.objects.isInstance(obj, "Base"));
    CHECK(w.objects.isInstance(obj, "Sub"));
    CHECK_FALSE(w.objects.isInstance(obj, "int"));
    CHECK_FALSE(w.objects.isInstance(kUnmapped, "Sub"));

    // A corrupt tp_base cycle must end.
    Addr a = w.py.type("A", 0);
    Addr b = w.py.type("B", 0, a);
    w.mem.put<Addr>(a + 256, b);
    CHECK_FALSE(w.objects.isInstance(w.py.object(a, 16), "C"));

    CHECK(w.objects.typeName(0).empty());
    CHECK(w.objects.typeName(kUnmapped).empty());
    CHECK(w.objects.typeName(w.py.type(std::string(300, 'n'), 0)) == std::string(256, 'n'));
}

TEST_CASE("a type name ending at the end of a mapping", "[objects][types]") {
    World w(staticLayout(12).value());
    Addr page = w.mem.alloc(4096);  // followed by an unmapped page
    Addr t1 = w.py.type("x", 0);
    w.mem.putString(page + 4096 - 6, std::string_view("edge!\0", 6));
    w.mem.put<Addr>(t1 + 24, page + 4096 - 6);
    CHECK(w.objects.typeName(t1) == "edge!");

    Addr page2 = w.mem.alloc(4096);
    Addr t2 = w.py.type("x", 0);
    w.mem.putString(page2 + 4096 - 4, "open");  // no NUL before the unmapped page
    w.mem.put<Addr>(t2 + 24, page2 + 4096 - 4);
    CHECK(w.objects.typeName(t2).empty());
}

TEST_CASE("str: compact ASCII", "[objects][str]") {
    for (int minor : {10, 12, 14}) {
        INFO("3." << minor);
        World w(recordedLayout(minor));
        CHECK(w.objects.str(w.py.str("hello")) == "hello");
        CHECK(w.objects.str(w.py.str("")) == "");
        // Bits above the PEP 393 fields (3.12's statically_allocated, padding) are noise.
        Addr noisy = w.py.unicode(1, {'o', 'k'}, true, 0xABCDEF);
        CHECK(w.objects.str(noisy) == "ok");
    }
}

TEST_CASE("str: compact latin-1, UCS-2 and UCS-4", "[objects][str]") {
    for (int minor : {10, 12, 15}) {
        INFO("3." << minor);
        World w(recordedLayout(minor));
        CHECK(w.objects.str(w.py.unicode(1, {'c', 'a', 'f', 0xE9}, true, 0xFFFFFF)) == "caf\xC3\xA9");
        CHECK(w.objects.str(w.py.unicode(2, {0xE9, 0x20AC, 'A'}, true, 0x123456)) == "\xC3\xA9\xE2\x82\xAC" "A");
        CHECK(w.objects.str(w.py.unicode(4, {0x1F600, 'A'}, true, 0xFFFF00)) == "\xF0\x9F\x98\x80" "A");
        // Lone surrogates and values past U+10FFFF are not UTF-8: U+FFFD instead.
        CHECK(w.objects.str(w.py.unicode(2, {0xD800, 'x'}, true)) == "\xEF\xBF\xBD" "x");
        CHECK(w.objects.str(w.py.unicode(4, {0x110000}, true)) == "\xEF\xBF\xBD");
        CHECK(w.objects.str(w.py.unicode(2, {0x7FF, 0x800}, true)) == "\xDF\xBF\xE0\xA0\x80");
    }
}

TEST_CASE("str: legacy strings keep their data elsewhere", "[objects][str]") {
    for (int minor : {10, 12}) {
        INFO("3." << minor);
        World w(staticLayout(minor).value());
        Addr s = w.py.unicode(2, {0x100, 'B'}, false);
        CHECK(w.objects.str(s) == "\xC4\x80" "B");
        CHECK(w.objects.str(w.py.unicode(1, {'l', 'e', 'g'}, false, 0x77)) == "leg");
        // A ready legacy string of ASCII has the ascii bit but is still not compact.
        Addr asciiLegacy = w.py.unicode(1, {'o', 'l', 'd'}, false);
        w.mem.put<std::uint32_t>(asciiLegacy + static_cast<Addr>(w.L.unicode.state), unicodeState(1, false, true));
        CHECK(w.objects.str(asciiLegacy) == "old");

        w.mem.put<Addr>(s + static_cast<Addr>(w.L.unicode.legacyData), 0);  // not ready (3.10)
        CHECK(w.objects.str(s) == std::nullopt);
        w.mem.put<Addr>(s + static_cast<Addr>(w.L.unicode.legacyData), kUnmapped);
        CHECK(w.objects.str(s) == std::nullopt);
    }
}

TEST_CASE("str: long strings are cut with an ellipsis", "[objects][str]") {
    World w(staticLayout(12).value());
    Addr s = w.py.str("abcdefghij");
    CHECK(w.objects.str(s, 4) == "abcd" + kEllipsis);
    CHECK(w.objects.str(s, 10) == "abcdefghij");
    CHECK(w.objects.str(s, 0) == kEllipsis);
    CHECK(w.objects.str(w.py.unicode(2, {0xE9, 0xE9, 0xE9}, true), 2) == "\xC3\xA9\xC3\xA9" + kEllipsis);

    // Whatever the caller asks, at most 65536 characters are read: only that
    // many are mapped here although the length claims 100000.
    Addr big = w.py.object(w.py.strType, 40 + 65536);
    w.mem.put<std::int64_t>(big + 16, 100000);
    w.mem.put<std::uint32_t>(big + 32, unicodeState(1, true, true));
    std::vector<char> as(65536, 'a');
    w.mem.write(big + 40, as.data(), as.size());
    CHECK(w.objects.str(big, 1 << 20) == std::string(65536, 'a') + kEllipsis);
}

TEST_CASE("str: what is not a readable str is nullopt", "[objects][str]") {
    World w(staticLayout(12).value());
    Addr s = w.py.str("abc");
    SECTION("negative length") {
        w.mem.put<std::int64_t>(s + 16, -1);
        CHECK(w.objects.str(s) == std::nullopt);
    }
    SECTION("invalid kinds") {
        w.mem.put<std::uint32_t>(s + 32, unicodeState(0, true, true));
        CHECK(w.objects.str(s) == std::nullopt);
        w.mem.put<std::uint32_t>(s + 32, unicodeState(3, true, false));
        CHECK(w.objects.str(s) == std::nullopt);
    }
    SECTION("not a str") {
        CHECK(w.objects.str(w.py.bytes({'a', 'b'})) == std::nullopt);
        CHECK(w.objects.str(0) == std::nullopt);
        CHECK(w.objects.str(kUnmapped) == std::nullopt);
        w.mem.put<Addr>(s + 8, kUnmapped);  // type pointer torn
        CHECK(w.objects.str(s) == std::nullopt);
    }
    SECTION("length past the mapped data") {
        w.mem.put<std::int64_t>(s + 16, 5000);
        CHECK(w.objects.str(s, 8000) == std::nullopt);
    }
    SECTION("a subclass of str is a str") {
        Addr sub = w.py.type("MyStr", tpflags::kUnicode, w.py.strType);
        w.mem.put<Addr>(s + 8, sub);
        CHECK(w.objects.str(s) == "abc");
    }
}

TEST_CASE("bytes", "[objects][bytes]") {
    World w(staticLayout(12).value());
    using V = std::vector<std::uint8_t>;
    Addr b = w.py.bytes({0x00, 0x01, 0xff, 'a'});
    CHECK(w.objects.bytes(b, 16) == V{0x00, 0x01, 0xff, 'a'});
    CHECK(w.objects.bytes(b, 4) == V{0x00, 0x01, 0xff, 'a'});
    CHECK(w.objects.bytes(b, 3) == std::nullopt);  // longer than allowed
    CHECK(w.objects.bytes(w.py.bytes({}), 16) == V{});
    CHECK(w.objects.bytes(w.py.str("ab"), 16) == std::nullopt);
    CHECK(w.objects.bytes(0, 16) == std::nullopt);
    w.mem.put<std::int64_t>(b + 16, -4);
    CHECK(w.objects.bytes(b, 16) == std::nullopt);
    CHECK(emptyOrBadRead([&] { return w.objects.bytes(kUnmapped, 16); }));
}

namespace {

Addr makeInt(World& w, std::uint64_t sizeOrTag, const std::vector<std::uint32_t>& digits) {
    Addr o = w.py.object(w.py.intType, 24 + 4 * std::max<std::size_t>(digits.size(), 1));
    w.mem.put<std::uint64_t>(o + 16, sizeOrTag);
    for (std::size_t i = 0; i < digits.size(); ++i) w.mem.put<std::uint32_t>(o + 24 + 4 * i, digits[i]);
    return o;
}

// lv_tag = ndigits << 3 | sign; sign 0 positive, 1 zero, 2 negative.
std::uint64_t tag(std::uint64_t ndigits, unsigned sign) { return ndigits << 3 | sign; }

constexpr std::uint32_t kDigitMax = (1u << 30) - 1;

}  // namespace

TEST_CASE("int with lv_tag (3.12+)", "[objects][int]") {
    World w(staticLayout(12).value());
    CHECK(w.objects.integer(makeInt(w, tag(0, 1), {})) == 0);
    CHECK(w.objects.integer(makeInt(w, tag(1, 0), {5})) == 5);
    CHECK(w.objects.integer(makeInt(w, tag(1, 2), {5})) == -5);
    CHECK(w.objects.integer(makeInt(w, tag(2, 0), {0, 1})) == 1073741824);
    CHECK(w.objects.integer(makeInt(w, tag(2, 0), {640742222, 114978094})) == 123456789012345678);
    CHECK(w.objects.integer(makeInt(w, tag(3, 0), {kDigitMax, kDigitMax, 7})) == INT64_MAX);
    CHECK(w.objects.integer(makeInt(w, tag(3, 2), {kDigitMax, kDigitMax, 7})) == -INT64_MAX);
    CHECK(w.objects.integer(makeInt(w, tag(3, 0), {0, 0, 8})) == std::nullopt);  // 2**63
    CHECK(w.objects.integer(makeInt(w, tag(4, 0), {1, 0, 0, 1})) == std::nullopt);
    CHECK(w.objects.integer(w.py.str("5")) == std::nullopt);
    CHECK(w.objects.integer(0) == std::nullopt);
    CHECK(emptyOrBadRead([&] { return w.objects.integer(kUnmapped); }));
}

TEST_CASE("int with signed ob_size (3.10/3.11)", "[objects][int]") {
    for (int minor : {10, 11}) {
        INFO("3." << minor);
        World w(staticLayout(minor).value());
        auto size = [](std::int64_t n) { return static_cast<std::uint64_t>(n); };
        CHECK(w.objects.integer(makeInt(w, size(0), {})) == 0);
        CHECK(w.objects.integer(makeInt(w, size(1), {5})) == 5);
        CHECK(w.objects.integer(makeInt(w, size(-1), {5})) == -5);
        CHECK(w.objects.integer(makeInt(w, size(-2), {0, 1})) == -1073741824);
        CHECK(w.objects.integer(makeInt(w, size(3), {kDigitMax, kDigitMax, 7})) == INT64_MAX);
        CHECK(w.objects.integer(makeInt(w, size(4), {1, 0, 0, 1})) == std::nullopt);
        CHECK(w.objects.integer(makeInt(w, size(-4), {1, 0, 0, 1})) == std::nullopt);
        // A torn ob_size. (agent/core/remote/objects.cpp:153 negates it, which
        // is undefined for INT64_MIN: a -fsanitize=undefined build reports it.)
        CHECK(w.objects.integer(makeInt(w, size(INT64_MIN), {1})) == std::nullopt);
    }
}

TEST_CASE("tuple and list items", "[objects][sequences]") {
    for (int minor : {12, 14}) {  // 3.14 moved ob_item to 32
        INFO("3." << minor);
        World w(recordedLayout(minor));
        Addr a = w.py.str("a"), b = w.py.str("b"), c = w.py.str("c");
        CHECK(w.objects.tupleItems(w.py.tuple({a, b, c})) == std::vector<Addr>{a, b, c});
        CHECK(w.objects.tupleItems(w.py.tuple({})).empty());
        CHECK(w.objects.listItems(w.py.list({c, a})) == std::vector<Addr>{c, a});
        CHECK(w.objects.listItems(w.py.list({})).empty());
        CHECK(w.objects.tupleItems(w.py.list({a})).empty());  // wrong type
        CHECK(w.objects.listItems(w.py.tuple({a})).empty());

        Addr huge = w.py.tuple({a});
        w.mem.put<std::int64_t>(huge + 16, (1 << 16) + 1);
        CHECK(w.objects.tupleItems(huge).empty());
        Addr negative = w.py.list({a});
        w.mem.put<std::int64_t>(negative + 16, -1);
        CHECK(w.objects.listItems(negative).empty());

        Addr torn = w.py.list({a, b});
        w.mem.put<Addr>(torn + 24, kUnmapped);
        CHECK_THROWS_AS(w.objects.listItems(torn), BadRead);
    }
}

TEST_CASE("dict with 3.10 keys", "[objects][dict]") {
    World w(staticLayout(10).value());
    Addr alpha = w.py.str("alpha"), beta = w.py.str("beta"), v1 = w.py.str("v1"), v2 = w.py.str("v2");
    Addr intKey = w.py.object(w.py.intType, 32);

    SECTION("combined table; deleted entries are skipped") {
        Addr d = w.py.dict(w.py.dictKeys({{alpha, v1}, {0, 0}, {intKey, v2}, {beta, v2}}));
        using Items = std::vector<std::pair<Addr, Addr>>;
        CHECK(w.objects.dictItems(d) == Items{{alpha, v1}, {intKey, v2}, {beta, v2}});
        CHECK(w.objects.dictGet(d, "beta") == v2);
        CHECK(w.objects.dictGet(d, "alpha") == v1);
        CHECK(w.objects.dictGet(d, "alph") == std::nullopt);
        CHECK(w.objects.dictGet(d, "alphabet") == std::nullopt);
        CHECK(w.objects.dictGet(d, "gamma") == std::nullopt);
    }
    SECTION("split table: values in their own array") {
        Addr keys = w.py.dictKeys({{alpha, 0}, {beta, 0}, {intKey, 0}});
        Addr d = w.py.dict(keys, w.py.dictValues({v1, 0, v2}));
        using Items = std::vector<std::pair<Addr, Addr>>;
        CHECK(w.objects.dictItems(d) == Items{{alpha, v1}, {intKey, v2}});
        CHECK(w.objects.dictGet(d, "beta") == std::nullopt);
    }
    SECTION("index width follows dk_size") {
        // 256 slots need 2-byte indices: entries start at 40 + 512.
        Addr keys = w.mem.alloc(40 + 512 + 24);
        w.mem.put<std::int64_t>(keys + 8, 256);
        w.mem.put<std::int64_t>(keys + 32, 1);
        w.mem.put<Addr>(keys + 40 + 512 + 8, beta);
        w.mem.put<Addr>(keys + 40 + 512 + 16, v2);
        CHECK(w.objects.dictGet(w.py.dict(keys), "beta") == v2);
    }
    SECTION("implausible keys") {
        Addr keys = w.py.dictKeys({{alpha, v1}});
        w.mem.put<std::int64_t>(keys + 8, 6);  // not a power of two
        CHECK_THROWS_AS(w.objects.dictItems(w.py.dict(keys)), BadRead);
        w.mem.put<std::int64_t>(keys + 8, 8);
        w.mem.put<std::int64_t>(keys + 32, 9);  // more entries than slots
        CHECK_THROWS_AS(w.objects.dictItems(w.py.dict(keys)), BadRead);
    }
    SECTION("not a dict") {
        CHECK(w.objects.dictItems(w.py.str("x")).empty());
        CHECK(w.objects.dictItems(0).empty());
        CHECK(w.objects.dictItems(w.py.dict(0)).empty());
    }
}

TEST_CASE("dict with 3.11+ keys", "[objects][dict]") {
    World w(staticLayout(12).value());
    Addr alpha = w.py.str("alpha"), beta = w.py.str("beta"), v1 = w.py.str("v1"), v2 = w.py.str("v2");
    using Items = std::vector<std::pair<Addr, Addr>>;

    SECTION("general entries carry a hash") {
        Addr d = w.py.dict(w.py.dictKeys({{alpha, v1}, {0, 0}, {beta, v2}}, false));
        CHECK(w.objects.dictItems(d) == Items{{alpha, v1}, {beta, v2}});
    }
    SECTION("unicode entries do not") {
        Addr d = w.py.dict(w.py.dictKeys({{alpha, v1}, {0, 0}, {beta, v2}}, true));
        CHECK(w.objects.dictItems(d) == Items{{alpha, v1}, {beta, v2}});
        CHECK(w.objects.dictGet(d, "alpha") == v1);
    }
    SECTION("split table") {
        Addr d = w.py.dict(w.py.dictKeys({{alpha, 0}, {beta, 0}}, true), w.py.dictValues({v1, v2}));
        CHECK(w.objects.dictItems(d) == Items{{alpha, v1}, {beta, v2}});
    }
    SECTION("entries follow 2^dk_log2_index_bytes bytes of indices") {
        Addr keys = w.mem.alloc(32 + 512 + 16);
        w.mem.put<std::uint8_t>(keys + 8, 8);   // 256 slots
        w.mem.put<std::uint8_t>(keys + 9, 9);   // 2-byte indices
        w.mem.put<std::uint8_t>(keys + 10, 1);  // DICT_KEYS_UNICODE
        w.mem.put<std::int64_t>(keys + 24, 1);
        w.mem.put<Addr>(keys + 32 + 512, beta);
        w.mem.put<Addr>(keys + 32 + 512 + 8, v2);
        CHECK(w.objects.dictGet(w.py.dict(keys), "beta") == v2);
    }
    SECTION("implausible keys") {
        Addr keys = w.py.dictKeys({{alpha, v1}});
        w.mem.put<std::uint8_t>(keys + 8, 31);
        CHECK_THROWS_AS(w.objects.dictItems(w.py.dict(keys)), BadRead);
        w.mem.put<std::uint8_t>(keys + 8, 3);
        w.mem.put<std::uint8_t>(keys + 9, 7);  // index bytes beyond 8 bytes per slot
        CHECK_THROWS_AS(w.objects.dictItems(w.py.dict(keys)), BadRead);
        w.mem.put<std::uint8_t>(keys + 9, 3);
        w.mem.put<std::int64_t>(keys + 24, 9);
        CHECK_THROWS_AS(w.objects.dictItems(w.py.dict(keys)), BadRead);
    }
    SECTION("torn keys pointer") {
        CHECK_THROWS_AS(w.objects.dictItems(w.py.dict(kUnmapped)), BadRead);
    }
    SECTION("a table larger than one read of entries") {
        constexpr std::size_t kEntries = 5000;  // more than 4096, the entries copied at a time
        Addr keys = w.mem.alloc(32 + 16384 + kEntries * 16);
        w.mem.put<std::uint8_t>(keys + 8, 13);  // 8192 slots, 5461 usable
        w.mem.put<std::uint8_t>(keys + 9, 14);  // 2-byte indices
        w.mem.put<std::uint8_t>(keys + 10, 1);
        w.mem.put<std::int64_t>(keys + 16, 5461 - kEntries);
        w.mem.put<std::int64_t>(keys + 24, kEntries);
        for (std::size_t i = 0; i < kEntries; ++i) {
            Addr e = keys + 32 + 16384 + i * 16;
            w.mem.put<Addr>(e, i + 1 == kEntries ? beta : alpha);
            w.mem.put<Addr>(e + 8, i + 1 == kEntries ? v2 : v1);
        }
        Items items = w.objects.dictItems(w.py.dict(keys));
        REQUIRE(items.size() == kEntries);
        CHECK(items.front() == std::pair{alpha, v1});
        CHECK(items.back() == std::pair{beta, v2});
    }
}

TEST_CASE("a torn dict keys header costs no more memory than is there", "[objects][dict]") {
    World w(GENERATE(staticLayout(10).value(), staticLayout(12).value()));
    bool v310 = w.L.dictKeys == DictKeysModel::v310;
    // A header of a table of 2^20 slots (v310: dk_size; else log2 sizes),
    // on a page of its own: its entries would be megabytes past the page.
    Addr keys = w.mem.alloc(64);
    auto header = [&](std::int64_t usable, std::int64_t nentries) {
        if (v310) {
            w.mem.put<std::int64_t>(keys + 8, std::int64_t{1} << 20);
            w.mem.put<std::int64_t>(keys + 24, usable);
            w.mem.put<std::int64_t>(keys + 32, nentries);
        } else {
            w.mem.put<std::uint8_t>(keys + 8, 20);
            w.mem.put<std::uint8_t>(keys + 9, 20);
            w.mem.put<std::uint8_t>(keys + 10, 1);
            w.mem.put<std::int64_t>(keys + 16, usable);
            w.mem.put<std::int64_t>(keys + 24, nentries);
        }
    };
    Addr d = w.py.dict(keys);
    // Anything that allocates as much as a megabyte fails the test with
    // bad_alloc instead of the BadRead a torn table is.
    std::size_t refusedBefore = test::FailAllocations::refused();
    test::FailAllocations noLargeBuffers(std::size_t{1} << 20);
    SECTION("more entries than the table's usable slots") {
        header(0, std::int64_t{1} << 20);
        CHECK_THROWS_AS(w.objects.dictItems(d), BadRead);
        header(-1, 5);
        CHECK_THROWS_AS(w.objects.dictItems(d), BadRead);
        header(699050, 10);
        CHECK_THROWS_AS(w.objects.dictItems(d), BadRead);
    }
    SECTION("a plausible count whose entries are not mapped") {
        header(0, 600000);
        CHECK_THROWS_AS(w.objects.dictItems(d), BadRead);
    }
    CHECK(test::FailAllocations::refused() == refusedBefore);
}

TEST_CASE("key lengths are read once per table and read", "[objects][dict]") {
    World w(staticLayout(12).value());
    std::vector<FakePython::Entry> entries;
    std::vector<Addr> values;
    for (int i = 0; i < 40; ++i) {
        values.push_back(w.py.str("v" + std::to_string(i)));
        entries.push_back({w.py.str("module" + std::to_string(i)), values.back()});
    }
    Addr d = w.py.dict(w.py.dictKeys(entries, true));
    w.mem.resetCounts();
    CHECK(w.objects.dictGet(d, "module7") == values[7]);
    CHECK(w.objects.dictGet(d, "module33") == values[33]);
    CHECK(w.objects.dictGet(d, "nope") == std::nullopt);
    CHECK(w.mem.readManyCalls() == 1);

    // A new table in which one key changed: the lengths are read again, and
    // the new key, of another length, is found.
    Addr x = w.py.str("x");
    entries[5].key = x;
    w.mem.put<Addr>(d + static_cast<Addr>(w.L.dict.keys), w.py.dictKeys(entries, true));
    CHECK(w.objects.dictGet(d, "x") == values[5]);
    CHECK(w.objects.dictGet(d, "module5") == std::nullopt);
    CHECK(w.mem.readManyCalls() == 2);

    // A new read learns them again.
    w.objects.forget();
    CHECK(w.objects.dictGet(d, "module6") == values[6]);
    CHECK(w.mem.readManyCalls() == 3);

    // A smaller table (a module's globals) is kept from its second lookup,
    // with the keys its first lookup read: one read for all four.
    entries.resize(10);
    Addr small = w.py.dict(w.py.dictKeys(entries, true));
    CHECK(w.objects.dictGet(small, "module2") == values[2]);
    CHECK(w.objects.dictGet(small, "module3") == values[3]);
    CHECK(w.objects.dictGet(small, "module4") == values[4]);
    CHECK(w.objects.dictGet(small, "x") == values[5]);
    CHECK(w.mem.readManyCalls() == 4);
}

TEST_CASE("short ASCII keys are compared as read in the batch; others are read as str", "[objects][dict]") {
    World w(staticLayout(12).value());
    std::vector<FakePython::Entry> entries;
    std::vector<Addr> values;
    auto add = [&](Addr key) {
        values.push_back(w.py.str("v" + std::to_string(values.size())));
        entries.push_back({key, values.back()});
    };
    for (int i = 0; i < 40; ++i) add(w.py.str("module" + std::to_string(i)));
    const std::string longName(50, 'x');
    add(w.py.str(longName));                              // 40: longer than what the batch reads
    add(w.py.unicode(1, {'c', 'a', 'f', 0xe9}, true));    // 41: latin-1, 4 characters in 5 UTF-8 bytes
    // 42: a short key whose header ends its mapping (the batch's read of it
    // fails; the str alone reads).
    Addr page = w.mem.alloc(4096);
    Addr edge = page + 4096 - static_cast<Addr>(w.L.unicode.asciiData) - 4;
    w.mem.put<Addr>(edge + static_cast<Addr>(w.L.object.type), w.py.strType);
    w.mem.put<std::int64_t>(edge, 1);  // ob_refcnt
    w.mem.put<std::int64_t>(edge + static_cast<Addr>(w.L.unicode.length), 3);
    w.mem.put<std::uint32_t>(edge + static_cast<Addr>(w.L.unicode.state), test::unicodeState(1, true, true, 0));
    w.mem.putString(edge + static_cast<Addr>(w.L.unicode.asciiData), "end");
    add(edge);
    Addr d = w.py.dict(w.py.dictKeys(entries, true));

    CHECK(w.objects.dictGet(d, "module7") == values[7]);  // learns the keys
    w.mem.resetCounts();
    auto keyReads = [&](Addr key) {
        return std::count_if(w.mem.reads().begin(), w.mem.reads().end(),
                             [&](const auto& r) { return key <= r.first && r.first < key + 128; });
    };
    CHECK(w.objects.dictGet(d, "module33") == values[33]);
    CHECK(w.objects.dictGet(d, "module3") == values[3]);
    CHECK(w.objects.dictGet(d, "moduleX") == std::nullopt);
    for (int i = 0; i < 40; ++i) CHECK(keyReads(entries[i].key) == 0);
    CHECK(w.mem.readManyCalls() == 0);

    CHECK(w.objects.dictGet(d, longName) == values[40]);
    CHECK(keyReads(entries[40].key) > 0);
    CHECK(w.objects.dictGet(d, "caf\xC3\xA9") == values[41]);
    CHECK(w.objects.dictGet(d, "end") == values[42]);
    CHECK(w.objects.dictGet(d, "xyz") == std::nullopt);
}

TEST_CASE("a small table's keys are read once for two lookups in a row", "[objects][dict]") {
    // Instances of one class share their keys table: the second thread's
    // name is looked up where the first one's was. Kept on that second
    // lookup, without reading the keys again.
    World w(staticLayout(12).value());
    std::vector<FakePython::Entry> entries;
    for (int i = 0; i < 6; ++i) entries.push_back({w.py.str("attr" + std::to_string(i)), w.py.str("v")});
    Addr d = w.py.dict(w.py.dictKeys(entries, true));
    w.mem.resetCounts();
    CHECK(w.objects.dictGet(d, "attr4") == entries[4].value);
    CHECK(w.mem.readManyCalls() == 1);  // the keys' headers, in one batch
    CHECK(w.objects.dictGet(d, "attr2") == entries[2].value);
    CHECK(w.objects.dictGet(d, "attr5") == entries[5].value);
    CHECK(w.mem.readManyCalls() == 1);
    // Another table looked up in between: the first one's keys are read
    // again on its second lookup (only the last table's are at hand).
    std::vector<FakePython::Entry> other;
    for (int i = 0; i < 6; ++i) other.push_back({w.py.str("other" + std::to_string(i)), w.py.str("w")});
    Addr d2 = w.py.dict(w.py.dictKeys(other, true));
    Addr d3 = w.py.dict(w.py.dictKeys(entries, true));
    CHECK(w.objects.dictGet(d3, "attr1") == entries[1].value);
    CHECK(w.objects.dictGet(d2, "other1") == other[1].value);
    CHECK(w.objects.dictGet(d3, "attr3") == entries[3].value);
    CHECK(w.mem.readManyCalls() == 4);
}

TEST_CASE("dict split values behind the 3.13 PyDictValues header", "[objects][dict]") {
    World w(recordedLayout(13));
    Addr alpha = w.py.str("alpha"), beta = w.py.str("beta"), v1 = w.py.str("v1"), v2 = w.py.str("v2");
    Addr d = w.py.dict(w.py.dictKeys({{alpha, 0}, {beta, 0}}, true), w.py.dictValues({v1, v2}, 4));
    CHECK(w.objects.dictItems(d) == std::vector<std::pair<Addr, Addr>>{{alpha, v1}, {beta, v2}});
}

TEST_CASE("set: live slots only", "[objects][set]") {
    World w(staticLayout(12).value());
    Addr a = w.py.str("a"), b = w.py.str("b"), dummy = w.py.str("<dummy>");
    std::vector<std::pair<Addr, std::int64_t>> slots = {{0, 0}, {a, 77}, {dummy, -1}, {0, 0},
                                                        {0, 0}, {b, -2}, {0, 0}, {0, 0}};
    CHECK(w.objects.setItems(w.py.set(slots, 2, 7)) == std::vector<Addr>{a, b});
    CHECK(w.objects.setItems(0).empty());

    CHECK_THROWS_AS(w.objects.setItems(w.py.set(slots, 2, 6)), BadRead);   // mask + 1 not a power of 2
    CHECK_THROWS_AS(w.objects.setItems(w.py.set(slots, 2, -1)), BadRead);
    CHECK_THROWS_AS(w.objects.setItems(w.py.set(slots, 9, 7)), BadRead);   // more used than slots
    CHECK_THROWS_AS(w.objects.setItems(w.py.set(slots, -1, 7)), BadRead);
    CHECK_THROWS_AS(w.objects.setItems(w.py.set(slots, 2, (1 << 24) - 1)), BadRead);  // too big

    Addr torn = w.py.set(slots, 2, 7);
    w.mem.put<Addr>(torn + 40, kUnmapped);
    CHECK_THROWS_AS(w.objects.setItems(torn), BadRead);
    // CPython grows a table before it is three fifths full.
    CHECK_THROWS_AS(w.objects.setItems(w.py.set(slots, 6, 7)), BadRead);
    // A torn `used` is refused without overflowing (the unit tests run
    // without UBSan: fuzz_memory replays the input that found it).
    CHECK_THROWS_AS(w.objects.setItems(w.py.set(slots, INT64_MAX / 4, 7)), BadRead);
}

TEST_CASE("set: a table larger than one read of slots", "[objects][set]") {
    World w(staticLayout(12).value());
    Addr a = w.py.str("a"), b = w.py.str("b");
    std::vector<std::pair<Addr, std::int64_t>> slots(8192, {0, 0});
    slots[1] = {a, 1};
    slots[8190] = {b, 2};  // in the second chunk of 4096
    CHECK(w.objects.setItems(w.py.set(slots, 2, 8191)) == std::vector<Addr>{a, b});
}

TEST_CASE("torn lengths of sets and lists cost no more memory than is there", "[objects][set][sequences]") {
    World w(staticLayout(12).value());
    std::vector<std::pair<Addr, std::int64_t>> slots = {{w.py.str("a"), 77}};
    // A set of 2^23 slots, four million used, whose table is one page.
    Addr set = w.py.set(slots, 4000000, (1 << 23) - 1);
    // A list of four million items whose array is one page.
    Addr list = w.py.list({w.py.str("x")});
    w.mem.put<std::int64_t>(list + static_cast<Addr>(w.L.list.size), 4000000);
    std::size_t refusedBefore = test::FailAllocations::refused();
    {
        test::FailAllocations noLargeBuffers(std::size_t{1} << 20);
        CHECK_THROWS_AS(w.objects.setItems(set), BadRead);
        CHECK_THROWS_AS(w.objects.listItems(list), BadRead);
    }
    CHECK(test::FailAllocations::refused() == refusedBefore);
}

TEST_CASE("attr: 3.10 instance dict at tp_dictoffset", "[objects][attr]") {
    World w(staticLayout(10).value());
    Addr name = w.py.str("name"), value = w.py.str("value");
    Addr cls = w.py.type("C", tpflags::kManagedDict);  // bit 4 means nothing on 3.10
    w.mem.put<std::int64_t>(cls + 288, 16);
    Addr obj = w.py.object(cls, 24);
    w.mem.put<Addr>(obj + 16, w.py.dict(w.py.dictKeys({{name, value}})));
    CHECK(w.objects.attr(obj, "name") == value);
    CHECK(w.objects.attr(obj, "other") == std::nullopt);

    w.mem.put<Addr>(obj + 16, 0);
    CHECK(w.objects.attr(obj, "name") == std::nullopt);
    w.mem.put<Addr>(obj + 16, kUnmapped);
    CHECK(emptyOrBadRead([&] { return w.objects.attr(obj, "name"); }));

    w.mem.put<std::int64_t>(cls + 288, 0);
    CHECK(w.objects.attr(obj, "name") == std::nullopt);
    w.mem.put<std::int64_t>(cls + 288, -8);  // negative offsets (var-sized objects) are not followed
    CHECK(w.objects.attr(obj, "name") == std::nullopt);
}

TEST_CASE("attr: 3.11 managed values before the object", "[objects][attr]") {
    World w(staticLayout(11).value());
    Addr a = w.py.str("a"), b = w.py.str("b"), va = w.py.str("va"), vb = w.py.str("vb");
    Addr cls = w.py.type("C", tpflags::kManagedDict);
    w.mem.put<Addr>(cls + 872, w.py.dictKeys({{a, 0}, {b, 0}}, true));  // ht_cached_keys
    Addr obj = w.py.object(cls, 16, 32);
    w.mem.put<Addr>(obj - 32, w.py.dictValues({va, vb}));

    CHECK(w.objects.attr(obj, "a") == va);
    CHECK(w.objects.attr(obj, "b") == vb);
    CHECK(w.objects.attr(obj, "c") == std::nullopt);

    w.mem.put<Addr>(obj - 32, w.py.dictValues({va, 0}));  // `del obj.b`
    CHECK(w.objects.attr(obj, "b") == std::nullopt);

    // Once materialized, the dict at obj-24 is the truth.
    Addr vd = w.py.str("vd");
    w.mem.put<Addr>(obj - 24, w.py.dict(w.py.dictKeys({{a, vd}}, true)));
    CHECK(w.objects.attr(obj, "a") == vd);
}

TEST_CASE("attr: 3.12 tagged dict-or-values word", "[objects][attr]") {
    World w(staticLayout(12).value());
    Addr a = w.py.str("a"), b = w.py.str("b"), va = w.py.str("va"), vb = w.py.str("vb");
    Addr cls = w.py.type("C", tpflags::kManagedDict);
    w.mem.put<Addr>(cls + 880, w.py.dictKeys({{a, 0}, {b, 0}}, true));
    Addr obj = w.py.object(cls, 16, 24);

    Addr values = w.py.dictValues({va, vb});
    w.mem.put<Addr>(obj - 24, values - 1);  // odd: values pointer minus one
    CHECK(w.objects.attr(obj, "b") == vb);
    CHECK(w.objects.attr(obj, "a") == va);

    Addr vd = w.py.str("vd");
    w.mem.put<Addr>(obj - 24, w.py.dict(w.py.dictKeys({{b, vd}}, true)));  // even: a dict
    CHECK(w.objects.attr(obj, "b") == vd);

    w.mem.put<Addr>(obj - 24, 0);
    CHECK(w.objects.attr(obj, "b") == std::nullopt);
    w.mem.put<Addr>(obj - 24, kUnmapped - 1);
    CHECK(emptyOrBadRead([&] { return w.objects.attr(obj, "b"); }));
}

TEST_CASE("attr: 3.13+ inline values after the object", "[objects][attr]") {
    int minor = GENERATE(13, 14, 15);
    INFO("3." << minor);
    {
        World w(recordedLayout(minor));
        Addr a = w.py.str("a"), b = w.py.str("b"), c = w.py.str("c"), d = w.py.str("d");
        Addr va = w.py.str("va"), vb = w.py.str("vb"), vd = w.py.str("vd");
        Addr cls = w.py.type("C", tpflags::kManagedDict | tpflags::kInlineValues);
        w.mem.put<std::int64_t>(cls + 32, 16);  // tp_basicsize: just the object header
        Addr keys = w.py.dictKeys({{a, 0}, {b, 0}, {c, 0}, {d, 0}}, true);
        w.mem.put<Addr>(cls + static_cast<Addr>(w.L.type.cachedKeys), keys);
        Addr obj = w.py.object(cls, 16 + 8 + 8 * 4, 32);
        Addr values = obj + 16;
        // PyDictValues {capacity 3, size 2, embedded 1, valid 1}, then the values.
        w.mem.put<std::uint8_t>(values, 3);
        w.mem.put<std::uint8_t>(values + 1, 2);
        w.mem.put<std::uint8_t>(values + 2, 1);
        w.mem.put<std::uint8_t>(values + 3, 1);
        w.mem.put<Addr>(values + 8, va);
        w.mem.put<Addr>(values + 16, vb);
        w.mem.put<Addr>(values + 32, vd);  // slot 3: beyond capacity, must not be used

        CHECK(w.objects.attr(obj, "a") == va);
        CHECK(w.objects.attr(obj, "b") == vb);
        CHECK(w.objects.attr(obj, "c") == std::nullopt);
        CHECK(w.objects.attr(obj, "d") == std::nullopt);

        SECTION("a materialized dict sharing the inline values") {
            w.mem.put<Addr>(obj - 24, w.py.dict(keys, values));
            CHECK(w.objects.attr(obj, "b") == vb);
        }
        SECTION("values no longer valid") {
            w.mem.put<std::uint8_t>(values + 3, 0);
            CHECK(w.objects.attr(obj, "a") == std::nullopt);
        }
        SECTION("a type without inline values") {
            Addr plain = w.py.type("D", tpflags::kManagedDict);
            w.mem.put<std::int64_t>(plain + 32, 16);
            w.mem.put<Addr>(plain + static_cast<Addr>(w.L.type.cachedKeys), keys);
            w.mem.put<Addr>(obj + 8, plain);
            CHECK(w.objects.attr(obj, "a") == std::nullopt);
        }
        SECTION("an implausible tp_basicsize") {
            w.mem.put<std::int64_t>(cls + 32, 0);
            CHECK(w.objects.attr(obj, "a") == std::nullopt);
        }
        SECTION("torn cached keys") {
            w.mem.put<Addr>(cls + static_cast<Addr>(w.L.type.cachedKeys), kUnmapped);
            CHECK(emptyOrBadRead([&] { return w.objects.attr(obj, "a"); }));
        }
    }
}

TEST_CASE("attr: torn objects never crash", "[objects][attr]") {
    for (int minor : {10, 11, 12, 13}) {
        INFO("3." << minor);
        World w(recordedLayout(minor));
        CHECK(emptyOrBadRead([&] { return w.objects.attr(kUnmapped, "x"); }));
        Addr obj = w.py.object(kUnmapped, 16, 32);  // its type pointer is torn
        CHECK(emptyOrBadRead([&] { return w.objects.attr(obj, "x"); }));
    }
}

TEST_CASE("a vanished or forbidden process is fatal, not a torn read", "[objects][remote]") {
    World w(staticLayout(12).value());
    Addr s = w.py.str("abc");
    auto codeOf = [&] {
        try {
            w.objects.str(s);
        } catch (const InspectError& e) {
            return e.code();
        }
        return Errc::internal;
    };
    w.mem.failAll(ReadResult::gone);
    CHECK(codeOf() == Errc::process_exited);
    w.mem.failAll(ReadResult::denied);
    CHECK(codeOf() == Errc::permission_denied);
    w.mem.failAll(ReadResult::ok);
    CHECK(w.objects.str(s) == "abc");
}
