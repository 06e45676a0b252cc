// Static layout tables and the layout validator. Expected offsets are recorded
// data, not copies of tables.cpp: 3.10-3.13 from offsetof() against the pyenv
// 3.10.13 / 3.11.7 / 3.12.1 / 3.13.0 headers (recorders/offsets*.c), 3.14/3.15
// from the shared notes (compiled/offsets_table.md: offsetof and DWARF of the
// Debian sid builds).
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "layout/tables.h"
#include "layout/validate.h"
#include "test_data.h"

using namespace aioscope;
using aioscope::test::recordedLayout;

namespace {

bool mentions(const std::vector<std::string>& problems, const std::string& text) {
    return std::any_of(problems.begin(), problems.end(),
                       [&](const std::string& p) { return p.find(text) != std::string::npos; });
}

}  // namespace

TEST_CASE("static tables exist for 3.10 to 3.15 only", "[layout]") {
    for (int minor = kOldestMinor; minor <= kNewestMinor; ++minor) {
        INFO("3." << minor);
        auto L = staticLayout(minor);
        REQUIRE(L.has_value());
        CHECK(L->minor == minor);
        CHECK_FALSE(L->source.empty());
        CHECK(usesDebugOffsets(minor) == (minor >= 13));
    }
    CHECK(kOldestMinor == 10);
    CHECK(kNewestMinor == 15);
    CHECK_FALSE(staticLayout(9).has_value());
    CHECK_FALSE(staticLayout(16).has_value());
    CHECK_FALSE(staticLayout(0).has_value());
    CHECK_FALSE(staticLayout(-1).has_value());
}

TEST_CASE("3.10 to 3.12 tables validate on their own", "[layout][validate]") {
    for (int minor : {10, 11, 12}) {
        INFO("3." << minor);
        auto problems = validateLayout(staticLayout(minor).value());
        CHECK(problems.empty());
        for (const auto& p : problems) UNSCOPED_INFO(p);
    }
}

TEST_CASE("3.13+ tables need the target's debug offsets", "[layout][validate]") {
    for (int minor : {13, 14, 15}) {
        INFO("3." << minor);
        auto bare = validateLayout(staticLayout(minor).value());
        CHECK(mentions(bare, "runtime.interpreters_head is missing"));
        CHECK(mentions(bare, "thread.size is missing"));
        CHECK(validateLayout(recordedLayout(minor)).empty());
    }
}

TEST_CASE("a str header larger than any CPython's is refused", "[layout][validate]") {
    // A torn _Py_DebugOffsets table once gave a 4 MB header, read once per
    // dict key compared (445 MB for one lookup in a fuzzed image).
    Layout L = recordedLayout(14);
    L.unicode.asciiData = 1 << 22;
    CHECK(mentions(validateLayout(L), "unicode.ascii_data = 4194304 is implausible"));
    L = recordedLayout(14);
    L.unicode.compactData = 257;
    CHECK(mentions(validateLayout(L), "unicode.compact_data = 257 is implausible"));
    for (int minor : {10, 11, 12}) CHECK(validateLayout(staticLayout(minor).value()).empty());
}

TEST_CASE("3.10 table matches the 3.10.13 headers", "[layout][recorded]") {
    Layout L = staticLayout(10).value();
    CHECK(L.runtime.interpretersHead == 32);
    CHECK(L.runtime.gil == 352);
    CHECK(L.interp.threadsHead == 8);
    CHECK(L.interp.id == 24);
    CHECK(L.interp.modules == 856);
    CHECK(L.interp.sysdict == 872);
    CHECK(L.thread.size == 280);
    CHECK(L.thread.currentFrame == 24);
    CHECK(L.thread.dict == 152);
    CHECK(L.thread.threadId == 176);
    CHECK(L.thread.nativeThreadId == kAbsent);
    CHECK(L.frame.size == 360);
    CHECK(L.frame.previous == 24);
    CHECK(L.frame.code == 32);
    CHECK(L.frame.instr == 96);
    CHECK(L.frame.state == 108);
    CHECK(L.code.size == 176);
    CHECK(L.code.firstlineno == 40);
    CHECK(L.code.coCode == 48);
    CHECK(L.code.linetable == 120);
    CHECK(L.gen.frame == 16);
    CHECK(L.type.cachedKeys == 872);
    CHECK(L.unicode.asciiData == 48);
    CHECK(L.unicode.compactData == 72);
    CHECK(L.unicode.legacyData == 72);
}

TEST_CASE("3.11 table matches the 3.11.7 headers", "[layout][recorded]") {
    Layout L = staticLayout(11).value();
    CHECK(L.runtime.interpretersHead == 40);
    CHECK(L.runtime.gil == 360);
    CHECK(L.interp.threadsHead == 16);
    CHECK(L.interp.id == 48);
    CHECK(L.interp.modules == 888);
    CHECK(L.interp.sysdict == 904);
    CHECK(L.thread.size == 360);
    CHECK(L.thread.cframe == 56);
    CHECK(L.thread.cframeCurrentFrame == 8);
    CHECK(L.thread.nativeThreadId == 160);
    CHECK(L.frame.code == 32);
    CHECK(L.frame.previous == 48);
    CHECK(L.frame.owner == 69);
    CHECK(L.code.size == 192);
    CHECK(L.code.firstlineno == 72);
    CHECK(L.code.codeAdaptive == 184);
    CHECK(L.code.firstTraceable == 168);
    CHECK(L.gen.frame == 80);
    CHECK(L.gen.frameState == 75);
    CHECK(L.gen.name == 32);
}

TEST_CASE("3.12 table matches the 3.12.1 headers", "[layout][recorded]") {
    Layout L = staticLayout(12).value();
    CHECK(L.interp.id == 8);
    CHECK(L.interp.threadsHead == 72);
    CHECK(L.interp.sysdict == 352);
    CHECK(L.interp.cevalGil == 384);
    CHECK(L.interp.modules == 944);
    CHECK(L.thread.size == 288);
    CHECK(L.thread.cframeCurrentFrame == 0);
    CHECK(L.thread.dict == 112);
    CHECK(L.thread.threadId == 136);
    CHECK(L.frame.code == 0);
    CHECK(L.frame.previous == 8);
    CHECK(L.frame.owner == 70);
    CHECK(L.code.size == 200);
    CHECK(L.code.firstlineno == 68);
    CHECK(L.code.codeAdaptive == 192);
    CHECK(L.code.firstTraceable == 176);
    CHECK(L.type.cachedKeys == 880);
    CHECK(L.unicode.asciiData == 40);
    CHECK(L.unicode.compactData == 56);
    CHECK(L.pylong.sizeOrTag == 16);
    CHECK(L.pylong.digits == 24);
    CHECK(L.gen.frameState == 67);
}

TEST_CASE("3.13-3.15 static parts match the recorded builds", "[layout][recorded]") {
    Layout v13 = staticLayout(13).value();
    CHECK(v13.thread.dict == 128);
    CHECK(v13.code.firstTraceable == 184);
    CHECK(v13.type.cachedKeys == 880);
    CHECK(v13.dict.valuesHeader == 8);  // offsetof(PyDictValues, values)
    CHECK(v13.frameState.created == -3);
    CHECK(v13.frameState.suspended == -2);
    CHECK(v13.frameState.cleared == 4);

    Layout v14 = staticLayout(14).value();
    CHECK(v14.thread.dict == 128);
    CHECK(v14.code.firstTraceable == 192);
    CHECK(v14.type.cachedKeys == 880);
    CHECK(v14.module.state == 32);
    CHECK(v14.stackRefTagMask == 3);  // Py_TAG_BITS

    Layout v15 = staticLayout(15).value();
    CHECK(v15.thread.dict == 152);
    CHECK(v15.code.firstTraceable == 192);
    CHECK(v15.type.cachedKeys == 888);
    CHECK(v15.module.state == 24);
    CHECK(v15.frameState.created == 0);
    CHECK(v15.frameState.suspended == 1);
    CHECK(v15.frameState.yieldFromFirst == 2);
    CHECK(v15.frameState.yieldFromLast == 3);  // FRAME_SUSPENDED_YIELD_FROM_LOCKED
    CHECK(v15.frameState.executing == 4);
    CHECK(v15.frameState.cleared == 5);
}

TEST_CASE("validateLayout names what is missing or misplaced", "[layout][validate]") {
    Layout L = staticLayout(12).value();

    SECTION("a missing field") {
        L.thread.next = kAbsent;
        auto problems = validateLayout(L);
        REQUIRE(problems.size() == 1);
        CHECK(problems[0] == "thread.next is missing");
    }
    SECTION("a field past the end of its structure") {
        L.frame.owner = 80;  // _PyInterpreterFrame is 80 bytes
        auto problems = validateLayout(L);
        REQUIRE(problems.size() == 1);
        CHECK(problems[0] == "frame.owner = 80 lies outside its 80-byte structure");
    }
    SECTION("one-byte and four-byte fields may end exactly at the end") {
        L.frame.owner = 79;
        L.code.firstlineno = 196;  // 4 bytes inside a 200-byte code object
        CHECK(validateLayout(L).empty());
        L.code.firstlineno = 197;
        CHECK(mentions(validateLayout(L), "code.firstlineno = 197"));
    }
    SECTION("a negative offset") {
        L.thread.dict = -8;
        CHECK(mentions(validateLayout(L), "thread.dict = -8 lies outside"));
    }
    SECTION("an implausible structure size") {
        L.frame.size = 0;
        CHECK(mentions(validateLayout(L), "frame.size = 0 is implausible"));
        L.frame.size = 5000;
        CHECK(mentions(validateLayout(L), "frame.size = 5000 is implausible"));
    }
    SECTION("fields only the selected models need") {
        L.thread.currentFrame = kAbsent;  // 3.12 reaches the frame through cframe
        CHECK(validateLayout(L).empty());
        L.thread.cframe = kAbsent;
        CHECK(mentions(validateLayout(L), "thread.cframe is missing"));
    }
    SECTION("the 3.10 model checks its own frame fields") {
        Layout old = staticLayout(10).value();
        old.frame.state = 360;  // f_state is one byte in a 360-byte frame
        CHECK(mentions(validateLayout(old), "frame.f_state = 360"));
        old.frame.state = 359;
        CHECK(validateLayout(old).empty());
    }
}
