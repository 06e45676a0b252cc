// The report's embedding and packing, and the exports' stack rules, on
// hand-made events (the integration tests run them on real fixtures).
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "report/activity.h"
#include "report/exports.h"
#include "report/html.h"
#include "report/inputs.h"
#include "report/packed.h"

using namespace aioscope::cli::report;
using nlohmann::json;

namespace {

json frame(const std::string& fn, const std::string& file, int line) {
    return {{"function", fn}, {"qualname", fn}, {"file", file}, {"line", line}};
}

json stallEvent(int id, double start, double elapsed) {
    return {{"schema", "aioscope/event/1"}, {"type", "stall"}, {"ts", start + 0.1}, {"pid", 42}, {"stall_id", id},
            {"thread_id", 7}, {"native_id", 43}, {"started_at", start}, {"elapsed_ms", elapsed}, {"captured", true},
            {"stack", json::array({frame("block; now", "/app/x.py", 3), frame("main", "/app/x.py", 9)})},
            {"native_stack", json::array({{{"function", "clock_nanosleep"}, {"module", "/lib/libc.so.6"}},
                                          {{"function", "time_sleep"}, {"module", "/lib/libpython3.12.so"}},
                                          {{"function", "cfunction_vectorcall_O"}, {"module", "/lib/libpython3.12.so"}},
                                          {{"function", "_PyEval_EvalFrameDefault"}, {"module", "/lib/libpython3.12.so"}},
                                          {{"function", "main"}, {"module", "/usr/bin/python3"}}})},
            {"task", {{"id", "0x1"}, {"name", "worker"}}}};
}

json stallEnd(int id, double start, double duration) {
    return {{"schema", "aioscope/event/1"}, {"type", "stall_end"}, {"ts", start + duration / 1000}, {"pid", 42},
            {"stall_id", id}, {"thread_id", 7}, {"native_id", 43}, {"started_at", start}, {"duration_ms", duration}};
}

std::vector<Input> streamOf(std::vector<json> events) {
    Input in;
    in.name = "test";
    in.events = std::move(events);
    return {std::move(in)};
}

}  // namespace

TEST_CASE("escapeForScript: nothing in the data can end the script element") {
    json doc = {{"name", "</script><script>alert(1)</script><!-- & \u2028\u2029"}};
    std::string text = escapeForScript(doc.dump());
    CHECK(text.find('<') == std::string::npos);
    CHECK(text.find('>') == std::string::npos);
    CHECK(text.find('&') == std::string::npos);
    CHECK(text.find("\u2028") == std::string::npos);
    CHECK(text.find("\u2029") == std::string::npos);
    CHECK(json::parse(text) == doc);
}

TEST_CASE("writeReportHtml inlines the viewer and embeds the data once") {
    std::ostringstream out;
    writeReportHtml(out, json{{"k", "</script>"}});
    std::string html = out.str();
    CHECK(html.find("<script src=") == std::string::npos);
    CHECK(html.find("<link rel=\"stylesheet\"") == std::string::npos);
    CHECK(html.find("id=\"aioscope-data\">{\"k\":\"\\u003c/script\\u003e\"}</script>") != std::string::npos);
    // Only the elements of the page end scripts: one per inlined file and the data.
    std::size_t ends = 0;
    for (std::size_t at = html.find("</script"); at != std::string::npos; at = html.find("</script", at + 1)) ++ends;
    std::size_t starts = 0;
    for (std::size_t at = html.find("<script"); at != std::string::npos; at = html.find("<script", at + 1)) ++starts;
    CHECK(ends == starts);
}

TEST_CASE("pack and unpack give back the document, repeated subtrees stored once") {
    json task = {{"name", "t"}, {"stack", json::array({frame("wait_for_work", "/srv/app/worker.py", 12),
                                                       frame("run", "/srv/app/worker.py", 30)})}};
    json doc = {{"tasks", json::array()}, {"__proto__", {{"x", 1}}}, {"odd keys", {{"", 1}, {"@", json::array({0, 1})}}},
                {"numbers", {1.5, -3, 18446744073709551615ULL, 0.1}}, {"text", "na\u00efve \u2028 \"quoted\""},
                {"empty", json::object()}, {"none", json::array()}, {"null", nullptr}};
    for (int i = 0; i < 1000; ++i) {
        json t = task;
        t["name"] = "task-" + std::to_string(i);
        doc["tasks"].push_back(t);
    }
    json packed = pack(doc);
    CHECK(unpack(packed) == doc);
    CHECK(packed.dump().size() * 3 < doc.dump().size());
    // Arrays whose first element is a small number are data, not tags.
    json tricky = {json::array({0, 1}), json::array({1, 0}), json::array({2, 3})};
    CHECK(unpack(pack(tricky)) == tricky);
}

TEST_CASE("stall paths: Python frames outermost first, then the native frames the innermost one called") {
    auto inputs = streamOf({stallEvent(1, 100.0, 150)});
    Activity a = collectActivity(inputs);
    REQUIRE(a.stalls.size() == 1);
    auto path = stallPath(a.stalls[0]);
    REQUIRE(path.size() == 4);
    CHECK(path[0].name == "main");
    CHECK(path[1].name == "block; now");
    CHECK(path[2].name == "time_sleep");
    CHECK(path[2].native);
    CHECK(path[3].name == "clock_nanosleep");
}

TEST_CASE("a stall is paired with its stall_end, whose duration is exact") {
    auto inputs = streamOf({stallEvent(1, 100.0, 150), stallEnd(1, 100.0, 412.5), stallEvent(2, 101.0, 120)});
    Activity a = collectActivity(inputs);
    REQUIRE(a.stalls.size() == 2);
    CHECK(a.stalls[0].exact);
    CHECK(a.stalls[0].durationMs == 412.5);
    CHECK_FALSE(a.stalls[1].exact);
    CHECK(a.stalls[1].durationMs == 120);
}

TEST_CASE("folded: one line per distinct stack, ';' and control characters escaped, weights in ms") {
    auto inputs = streamOf({stallEvent(1, 100.0, 150), stallEnd(1, 100.0, 412.4), stallEvent(2, 101.0, 120),
                            stallEnd(2, 101.0, 200)});
    Activity a = collectActivity(inputs);
    std::ostringstream out;
    CHECK(writeFolded(out, a, StackSource::stalls) == 2);
    std::string text = out.str();
    CHECK(text.find("block%3B now (/app/x.py:3)") != std::string::npos);
    CHECK(text.find(" 612\n") != std::string::npos);
    CHECK(std::count(text.begin(), text.end(), '\n') == 1);
    CHECK(foldedEscape("a;b%c\nd\x1b") == "a%3Bb%25c%0Ad%1B");
}

TEST_CASE("speedscope: the spec's required fields, one sampled profile per loop thread") {
    auto inputs = streamOf({stallEvent(1, 100.0, 150), stallEnd(1, 100.0, 412.4)});
    Activity a = collectActivity(inputs);
    std::ostringstream out;
    writeSpeedscope(out, a, StackSource::stalls, "t");
    json doc = json::parse(out.str());
    CHECK(doc["$schema"] == "https://www.speedscope.app/file-format-schema.json");
    REQUIRE(doc["profiles"].size() == 1);
    const json& p = doc["profiles"][0];
    CHECK(p["type"] == "sampled");
    CHECK(p["unit"] == "milliseconds");
    CHECK(p["samples"].size() == p["weights"].size());
    CHECK(p["weights"][0] == 412.4);
    for (const auto& i : p["samples"][0]) CHECK(i.get<std::size_t>() < doc["shared"]["frames"].size());
}

TEST_CASE("perfetto: a complete event per stall with its duration in microseconds") {
    auto inputs = streamOf({stallEvent(1, 100.0, 150), stallEnd(1, 100.0, 412.4)});
    Activity a = collectActivity(inputs);
    std::ostringstream out;
    writePerfetto(out, a);
    json doc = json::parse(out.str());
    int complete = 0;
    for (const auto& e : doc["traceEvents"]) {
        if (e["ph"] != "X") continue;
        ++complete;
        CHECK(e["dur"] == 412400);
        CHECK(e["tid"] == 43);
        CHECK(e["ts"] == 0);
    }
    CHECK(complete == 1);
}
