// terminalSafe(): what a target's strings look like on a terminal.
#include <catch2/catch.hpp>

#include <string>

#include "render/terminal_safe.h"
#include "terminal_check.h"

using namespace aioscope::cli;
using aioscope::test::firstTerminalHazard;

TEST_CASE("printable text, ASCII or not, is kept") {
    CHECK(terminalSafe("fetch_user") == "fetch_user");
    CHECK(terminalSafe("naïve 名前 🐍") == "naïve 名前 🐍");
    CHECK(terminalSafe("C:\\path\\x1b") == "C:\\path\\x1b");  // backslashes are kept
    CHECK(terminalSafe("") == "");
}

TEST_CASE("C0 controls and DEL are escaped") {
    CHECK(terminalSafe("a\x1b]0;pwned\x07z") == "a\\x1b]0;pwned\\x07z");
    CHECK(terminalSafe("line\nnext\r\t") == "line\\nnext\\r\\t");
    CHECK(terminalSafe(std::string("nul\0x", 5)) == "nul\\x00x");
    CHECK(terminalSafe("del\x7f") == "del\\x7f");
    CHECK(terminalSafe("\x1b[2J\x1b[1;1H") == "\\x1b[2J\\x1b[1;1H");
}

TEST_CASE("C1 controls, bidi overrides and line separators are escaped") {
    CHECK(terminalSafe("\xc2\x9b" "31m") == "\\u009b31m");             // CSI
    CHECK(terminalSafe("\xc2\x9d" "0;x\xc2\x9c") == "\\u009d0;x\\u009c");  // OSC ... ST
    CHECK(terminalSafe("\xc2\x85") == "\\u0085");                      // NEL
    CHECK(terminalSafe("admin\xe2\x80\xae" "txt.exe") == "admin\\u202etxt.exe");
    CHECK(terminalSafe("\xe2\x81\xa6x\xe2\x81\xa9") == "\\u2066x\\u2069");
    CHECK(terminalSafe("\xe2\x80\x8f\xd8\x9c") == "\\u200f\\u061c");
    CHECK(terminalSafe("a\xe2\x80\xa8" "b\xe2\x80\xa9") == "a\\u2028b\\u2029");
}

TEST_CASE("bytes that are not UTF-8 are escaped one by one") {
    CHECK(terminalSafe("\xff\xfe") == "\\xff\\xfe");
    CHECK(terminalSafe("cut \xe2\x82") == "cut \\xe2\\x82");          // truncated sequence
    CHECK(terminalSafe("\xc0\xaf") == "\\xc0\\xaf");                  // overlong '/'
    CHECK(terminalSafe("\xed\xa0\x80") == "\\xed\\xa0\\x80");         // UTF-16 surrogate
    CHECK(terminalSafe("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80"); // above U+10FFFF
    CHECK(terminalSafe("\xe2\x82\xac ok") == "\xe2\x82\xac ok");      // € resynchronizes
}

TEST_CASE("it is idempotent") {
    for (std::string s : {"a\x1b[31mred", "\xff\xc2\x9b", "x\\x1b", "\xe2\x80\xae"}) {
        std::string once = terminalSafe(s);
        CHECK(terminalSafe(once) == once);
        CHECK(firstTerminalHazard(once) == std::string::npos);
    }
}

TEST_CASE("long strings are cut at a character with the number of bytes left out") {
    std::string name(10000, 'n');
    CHECK(terminalSafe(name, 5) == "nnnnn…(+9995 bytes)");
    CHECK(terminalSafe("名前名前", 2) == "名前…(+6 bytes)");
    CHECK(terminalSafe("abc", 3) == "abc");
}

TEST_CASE("columns count characters, not bytes") {
    CHECK(displayChars("名前") == 2);
    CHECK(fitColumn("名前", 4) == "名前  ");
    CHECK(fitColumn("abcdef", 4) == "abc…");
    CHECK(fitColumn("名前名前名", 3) == "名前…");
}

TEST_CASE("JSON documents: every string and key is made safe, nesting is capped, iteratively") {
    nlohmann::json doc = {{"name\x1b", "t\x1b]0;x\x07"}, {"list", {1, "a\xc2\x9b", nullptr, true}}};
    nlohmann::json safe = terminalSafeJson(doc);
    CHECK(safe["name\\x1b"] == "t\\x1b]0;x\\x07");
    CHECK(safe["list"] == nlohmann::json({1, "a\\u009b", nullptr, true}));

    nlohmann::json deep = "leaf";
    for (int i = 0; i < 100000; ++i) deep = nlohmann::json::array({std::move(deep)});
    nlohmann::json capped = terminalSafeJson(deep, 3);
    CHECK(capped[0][0][0] == "(nested too deep)");
}
