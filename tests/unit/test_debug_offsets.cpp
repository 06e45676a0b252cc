// _Py_DebugOffsets decoding against tables recorded from real interpreters
// (tests/data/README.md). Expected values are those listed in the shared notes
// (blobs/debug_offsets_*.decoded.txt, layouts-3.14-3.15.md §1b), which were
// cross-checked there against offsetof() and DWARF of each build.
#include <catch2/catch.hpp>

#include <cstring>
#include <limits>
#include <vector>

#include "error_code.h"
#include "errors.h"
#include "layout/asyncio_offsets.h"
#include "layout/debug_offsets.h"
#include "layout/tables.h"
#include "layout/validate.h"
#include "test_data.h"

using namespace aioscope;
using aioscope::test::debugOffsetsBlob;
using aioscope::test::errorCode;
using aioscope::test::putU64;

TEST_CASE("the recorded blobs have the sizes the shapes predict", "[debug_offsets]") {
    CHECK(debugOffsetsSize(13) == 584);
    CHECK(debugOffsetsSize(14) == 760);
    CHECK(debugOffsetsSize(15) == 888);
    CHECK(debugOffsetsBlob(13).size() == 584);
    CHECK(debugOffsetsBlob(14).size() == 760);
    CHECK(debugOffsetsBlob(15).size() == 888);
    CHECK(debugOffsetsShape(12).empty());
    CHECK(debugOffsetsShape(16).empty());
}

TEST_CASE("decode the 3.13.0 table", "[debug_offsets]") {
    DebugOffsets d = decodeDebugOffsets(13, debugOffsetsBlob(13));
    CHECK(d.version == 0x30d00f0);
    CHECK_FALSE(d.freeThreaded);
    CHECK(d.at("runtime_state.interpreters_head") == 632);
    CHECK(d.at("interpreter_state.threads_head") == 7344);
    CHECK(d.at("thread_state.size") == 304);
    CHECK(d.at("thread_state.current_frame") == 72);
    CHECK(d.at("interpreter_frame.owner") == 70);
    CHECK(d.at("code_object.co_code_adaptive") == 200);
    CHECK(d.at("tuple_object.ob_item") == 24);
    CHECK(d.at("gc.collecting") == 200);
    CHECK_FALSE(d.has("interpreter_frame.stackpointer"));
    CHECK_FALSE(d.has("set_object.used"));
    CHECK(d.values.size() == 70);
}

TEST_CASE("decode the 3.14.10 table", "[debug_offsets]") {
    DebugOffsets d = decodeDebugOffsets(14, debugOffsetsBlob(14));
    CHECK(d.version == 0x30e0af0);
    CHECK(d.at("thread_state.current_frame") == 72);
    CHECK(d.at("thread_state.native_thread_id") == 160);
    CHECK(d.at("interpreter_frame.owner") == 74);
    CHECK(d.at("interpreter_frame.stackpointer") == 64);
    CHECK(d.at("code_object.co_code_adaptive") == 208);
    CHECK(d.at("interpreter_state.gil_runtime_state") == 7784);
    CHECK(d.at("interpreter_state.gil_runtime_state_holder") == 7792);
    CHECK(d.at("set_object.mask") == 32);
    CHECK(d.at("gen_object.gi_frame_state") == 67);
    CHECK(d.at("debugger_support.remote_debugging_enabled") == 8076);
    CHECK(d.values.size() == (760 - 24) / 8);
}

TEST_CASE("decode the 3.15.2 table", "[debug_offsets]") {
    DebugOffsets d = decodeDebugOffsets(15, debugOffsetsBlob(15));
    CHECK(d.version == 0x30f02f0);
    CHECK(d.at("thread_state.thread_id") == 176);
    CHECK(d.at("thread_state.native_thread_id") == 184);
    CHECK(d.at("thread_state.holds_gil") == 36);
    CHECK(d.at("err_stackitem.exc_value") == 0);
    CHECK(d.at("type_object.tp_basicsize") == 32);
    CHECK(d.at("heap_type_object.ht_cached_keys") == 888);
    CHECK(d.at("unicode_object.compactunicodeobject_size") == 56);
    CHECK(d.at("gc.generation_stats_size") == 1120);  // a size, so larger than gc.size is fine
    CHECK(d.values.size() == (888 - 24) / 8);
}

TEST_CASE("DebugOffsets::at names a missing key", "[debug_offsets]") {
    DebugOffsets d = decodeDebugOffsets(13, debugOffsetsBlob(13));
    CHECK(errorCode([&] { d.at("set_object.used"); }) == Errc::unsupported_version);
}

TEST_CASE("applyDebugOffsets onto the 3.13 static table", "[debug_offsets][layout]") {
    Layout L = staticLayout(13).value();
    applyDebugOffsets(L, decodeDebugOffsets(13, debugOffsetsBlob(13)));
    CHECK(L.runtime.interpretersHead == 632);
    CHECK(L.interp.cevalGil == 16);
    CHECK(L.gil.lastHolder == 8);  // 7760 - 7752
    CHECK(L.gil.locked == 16);     // 7768 - 7752
    CHECK(L.thread.size == 304);
    CHECK(L.frame.size == 80);
    CHECK(L.frame.owner == 70);
    CHECK(L.frame.stack == 64);  // stacktop: not published by 3.13, kept from the table
    CHECK(L.code.codeAdaptive == 200);
    CHECK(L.tuple.items == 24);
    CHECK(L.set.table == 40);  // not published by 3.13: defaults stay
    CHECK(validateLayout(L).empty());
}

TEST_CASE("applyDebugOffsets onto the 3.14 static table", "[debug_offsets][layout]") {
    Layout L = staticLayout(12).value();
    L.thread.size = 360;  // what the table's thread state must be at least (3.14's comes from the interpreter)
    applyDebugOffsets(L, decodeDebugOffsets(14, debugOffsetsBlob(14)));
    CHECK(L.runtime.interpretersHead == 808);
    CHECK(L.interp.threadsHead == 7344);
    CHECK(L.interp.modules == 7688);
    CHECK(L.interp.sysdict == 7672);
    CHECK(L.gil.lastHolder == 8);
    CHECK(L.gil.locked == 16);
    CHECK(L.thread.currentFrame == 72);
    CHECK(L.thread.threadId == 152);
    CHECK(L.thread.nativeThreadId == 160);
    CHECK(L.frame.size == 88);
    CHECK(L.frame.owner == 74);
    CHECK(L.frame.stack == 64);  // stackpointer
    CHECK(L.frame.localsplus == 80);
    CHECK(L.code.codeAdaptive == 208);
    CHECK(L.tuple.items == 32);  // 3.14 added ob_hash before ob_item
    CHECK(L.unicode.asciiData == 40);
    CHECK(L.unicode.compactData == 56);
    CHECK(L.gen.frame == 72);
    CHECK(L.gen.frameState == 67);
    CHECK(validateLayout(L).empty());
}

TEST_CASE("applyDebugOffsets onto the 3.15 static table", "[debug_offsets][layout]") {
    Layout L = staticLayout(15).value();
    applyDebugOffsets(L, decodeDebugOffsets(15, debugOffsetsBlob(15)));
    CHECK(L.runtime.interpretersHead == 936);
    CHECK(L.gil.lastHolder == 8);  // 7744 - 7736
    CHECK(L.gil.locked == 16);     // 7752 - 7736
    CHECK(L.thread.size == 888);
    CHECK(L.thread.threadId == 176);
    CHECK(L.thread.nativeThreadId == 184);
    CHECK(L.type.basicsize == 32);
    CHECK(L.type.dictoffset == 288);
    CHECK(L.type.cachedKeys == 888);
    CHECK(L.unicode.compactData == 56);
    CHECK(validateLayout(L).empty());
}

TEST_CASE("unusable tables are rejected as unsupported versions", "[debug_offsets][negative]") {
    auto blob = debugOffsetsBlob(14);
    auto rejects = [](int minor, const std::vector<std::uint8_t>& b) {
        return errorCode([&] { decodeDebugOffsets(minor, b); }) == Errc::unsupported_version;
    };

    SECTION("bad cookie") {
        blob[0] = 'X';
        CHECK(rejects(14, blob));
    }
    SECTION("a blob of another minor version") {
        CHECK(rejects(15, debugOffsetsBlob(14)));  // too short for the 3.15 shape
        CHECK(rejects(14, debugOffsetsBlob(15)));  // long enough, but says 3.15
        CHECK(rejects(13, debugOffsetsBlob(14)));
    }
    SECTION("a version of another major") {
        putU64(blob, 8, 0x40e0af0);
        CHECK(rejects(14, blob));
    }
    SECTION("an offset at or past the end of its structure") {
        putU64(blob, 208, 832);  // thread_state.current_frame == thread_state.size
        CHECK(rejects(14, blob));
        putU64(blob, 208, 831);
        CHECK_FALSE(rejects(14, blob));
    }
    SECTION("a header larger than its str, a length field outside its object") {
        putU64(blob, 640, 65);  // unicode_object.asciiobject_size > unicode_object.size (64)
        CHECK(rejects(14, blob));
        putU64(blob, 640, 64);
        CHECK_FALSE(rejects(14, blob));
        putU64(blob, 464, 40);  // tuple_object.ob_size == tuple_object.size: an offset, not a size
        CHECK(rejects(14, blob));
    }
    SECTION("a structure of size zero") {
        putU64(blob, 176, 0);  // thread_state.size
        CHECK(rejects(14, blob));
    }
    SECTION("an absurd value in a section without a size") {
        putU64(blob, 696, 1ull << 40);  // llist_node.next
        CHECK(rejects(14, blob));
    }
    SECTION("truncated") {
        blob.pop_back();
        CHECK(rejects(14, blob));
        CHECK(rejects(14, {}));
    }
    SECTION("a version without a table") {
        CHECK(rejects(12, blob));
    }
}

TEST_CASE("applyDebugOffsets rejects GIL fields before the GIL", "[debug_offsets][negative]") {
    auto blob = debugOffsetsBlob(14);
    putU64(blob, 152, 7700);  // gil_runtime_state_holder < gil_runtime_state (7784)
    DebugOffsets d = decodeDebugOffsets(14, blob);
    Layout L = staticLayout(12).value();
    L.thread.size = 360;  // what the table's thread state must be at least (3.14's comes from the interpreter)
    CHECK(errorCode([&] { applyDebugOffsets(L, d); }) == Errc::unsupported_version);
}

TEST_CASE("the .AsyncioDebug table: any 64-bit value is refused, none overflows", "[debug_offsets][asyncio]") {
    Layout L = staticLayout(12).value();
    L.thread.size = 360;  // what the table's thread state must be at least (3.14's comes from the interpreter)
    // A table that passes: the Task's fields next to each other as in 3.14.
    auto good = [&] {
        std::int64_t threadSize = static_cast<std::int64_t>(L.thread.size) + 64;
        return std::vector<std::int64_t>{256, 48, 56, 68, 69, 40, 200,  // Task: size, name, awaited_by, is_task, is_set, coro, node
                                         1024, 512,                     // interpreter: size, tasks head
                                         threadSize, threadSize - 48, threadSize - 40, threadSize - 32};
    };
    auto apply = [&](const std::vector<std::int64_t>& v) {
        std::vector<std::uint8_t> blob(kAsyncioDebugSize);
        std::memcpy(blob.data(), v.data(), v.size() * 8);
        Layout copy = L;
        return applyAsyncioDebugOffsets(copy, blob);
    };
    REQUIRE(apply(good()) == std::nullopt);
    for (std::size_t field = 0; field < good().size(); ++field) {
        for (std::int64_t bad : {std::numeric_limits<std::int64_t>::max(), std::numeric_limits<std::int64_t>::min(),
                                 std::numeric_limits<std::int64_t>::max() - 7, std::int64_t{-1}}) {
            auto v = good();
            v[field] = bad;
            INFO("field " << field << " = " << bad);
            CHECK(apply(v).has_value());
        }
    }
}
