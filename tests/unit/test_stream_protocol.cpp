// The agent<->CLI protocol's pure parts: the agent's configuration (its CLI's
// identity and the option ranges it shares with the CLI), the CLI's check of
// every line an agent sends, and the CLI's durations. The integration tests
// (test_agent_security.py, test_cli_options.py) attack the running programs.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <string>

#include "agent_protocol.h"
#include "commands/durations.h"
#include "config.h"
#include "error_code.h"
#include "errors.h"
#include "stream/capabilities.h"
#include "stream/event_schema.h"

using namespace aioscope;
using aioscope::test::errorCode;
using nlohmann::json;

namespace {

const std::string kToken(32, 'a');
const std::string kIdentity = ";cli_pid=42;cli_uid=0;token=" + kToken;

json event(const char* type) {
    return {{"schema", "aioscope/event/1"}, {"type", type}, {"ts", 1.5}, {"pid", 7}};
}

json frame() { return {{"function", "f"}, {"qualname", "f"}, {"file", "a.py"}, {"line", 3}}; }

json stall() {
    json e = event("stall");
    e.update({{"stall_id", 1}, {"thread_id", 2}, {"native_id", 3}, {"started_at", 1.0}, {"elapsed_ms", 120.0},
              {"captured", true}, {"stack", json::array({frame()})}, {"task", nullptr}});
    return e;
}

std::string why(const std::string& line) {
    auto c = cli::checkAgentLine(line);
    return c.event ? "" : c.why;
}

}  // namespace

TEST_CASE("the agent's configuration names its CLI, or the agent connects nowhere") {
    auto c = agent::parseConfig("socket=/tmp/x/agent.sock;interval_ms=5;stall_ms=100;snapshot_ms=0" + kIdentity);
    REQUIRE(c);
    CHECK(c->cliPid == 42);
    CHECK(c->cliUid == 0);
    CHECK(c->token == kToken);
    CHECK(c->intervalNs == 5'000'000);
    // Without the CLI's identity: refused (a stale or foreign configuration).
    CHECK_FALSE(agent::parseConfig("socket=/tmp/x/agent.sock"));
    CHECK_FALSE(agent::parseConfig("socket=/tmp/x/agent.sock;cli_pid=42;cli_uid=0"));
    CHECK_FALSE(agent::parseConfig("socket=/tmp/x/agent.sock;cli_pid=42;token=" + kToken));
    // A token of the wrong shape.
    CHECK_FALSE(agent::parseConfig("socket=/s;cli_pid=42;cli_uid=0;token=" + std::string(31, 'a')));
    CHECK_FALSE(agent::parseConfig("socket=/s;cli_pid=42;cli_uid=0;token=" + std::string(32, 'A')));
    CHECK_FALSE(agent::parseConfig("socket=/s;cli_pid=42;cli_uid=0;token=" + std::string(32, 'g')));
    // Numbers are digits only.
    for (const char* bad : {"cli_pid=+42", "cli_pid= 42", "cli_pid=0x2a", "cli_pid=0", "cli_uid=-1"}) {
        INFO(bad);
        std::string text = std::string("socket=/s;cli_pid=42;cli_uid=0;token=") + kToken + ";" + bad;
        CHECK_FALSE(agent::parseConfig(text));
    }
}

TEST_CASE("the agent's option ranges are the CLI's") {
    auto with = [](const std::string& kv) { return agent::parseConfig("socket=/s;" + kv + kIdentity); };
    CHECK(with("interval_ms=" + std::to_string(protocol::kIntervalMaxMs)));
    CHECK_FALSE(with("interval_ms=" + std::to_string(protocol::kIntervalMaxMs + 1)));
    CHECK_FALSE(with("interval_ms=0"));
    CHECK(with("stall_ms=" + std::to_string(protocol::kStallMaxMs)));
    CHECK_FALSE(with("stall_ms=" + std::to_string(protocol::kStallMaxMs + 1)));
    CHECK(with("snapshot_ms=0"));
    CHECK(with("snapshot_ms=" + std::to_string(protocol::kSnapshotEveryMaxMs)));
    CHECK_FALSE(with("snapshot_ms=" + std::to_string(protocol::kSnapshotEveryMaxMs + 1)));

    using cli::parseDurationMs;
    const cli::DurationRange interval{protocol::kIntervalMinMs, protocol::kIntervalMaxMs};
    CHECK(parseDurationMs("1m", "--interval", interval) == protocol::kIntervalMaxMs);
    CHECK(parseDurationMs("1.4ms", "--interval", interval) == 1);
    CHECK(parseDurationMs("0.25s", "--interval", interval) == 250);
    for (const char* bad : {"61s", "1h", "0", "0.5ms", "-1s", "1e3", "0x10", " 5", "5 ", "+5", "nan", "inf", "1d",
                            ".", ""}) {
        INFO(bad);
        CHECK(errorCode([&] { parseDurationMs(bad, "--interval", interval); }) == Errc::usage);
    }
    const cli::DurationRange timeout{1, 1000, "never"};
    CHECK(parseDurationMs("0", "--timeout", timeout) == 0);
    CHECK(parseDurationMs("0ms", "--timeout", timeout) == 0);
    CHECK(errorCode([&] { parseDurationMs("0.001ms", "--timeout", timeout); }) == Errc::usage);
}

TEST_CASE("a valid event passes, with its fields intact") {
    auto c = cli::checkAgentLine(stall().dump());
    REQUIRE(c.event);
    CHECK((*c.event)["native_id"] == 3);
    CHECK(c.shortened == 0);
    CHECK(why(event("goodbye").dump()) == "goodbye has no \"message\"");
    json bye = event("goodbye");
    bye["message"] = "bye";
    CHECK(why(bye.dump()).empty());
    json dropped = event("dropped");
    dropped.update({{"count", 12}, {"since", 1.0}});
    CHECK(why(dropped.dump()).empty());
    json caps = event("capabilities");
    caps["capabilities"] = {{"stall_detection", {{"state", "inactive"}, {"reason", "uvloop"}}}};
    CHECK(why(caps.dump()).empty());
}

TEST_CASE("lines that are not events are refused, saying why") {
    CHECK(why("not json") == "not JSON");
    CHECK(why("[1, 2]") == "not a JSON object");
    CHECK(why(R"({"schema": "other/1", "type": "hello"})") == "schema is not aioscope/event/1");
    CHECK(why(event("exit").dump()) == "unknown event type \"exit\"");      // only the CLI writes exit
    CHECK(why(event("connect").dump()) == "unknown event type \"connect\"");  // only as the first line

    json e = stall();
    e["native_id"] = "3";
    CHECK(why(e.dump()) == "stall.native_id has the wrong type");
    e = stall();
    e["captured"] = 1;
    CHECK(why(e.dump()) == "stall.captured has the wrong type");
    e = stall();
    e["stack"][0]["line"] = "3";
    CHECK(why(e.dump()) == "stall.stack.line has the wrong type");
    e = stall();
    e["task"] = {{"id", "0x1"}};  // a task must be a whole snapshot task
    CHECK_FALSE(why(e.dump()).empty());
    e = stall();
    e["task_error"] = 7;  // why the task is unknown: a string
    CHECK(why(e.dump()) == "stall.task_error has the wrong type");
    e["task_error"] = "its running task did not read";
    CHECK(why(e.dump()).empty());
    json d = event("dropped");
    d.update({{"count", -1}, {"since", 1.0}});
    CHECK(why(d.dump()) == "dropped.count is negative");
}

TEST_CASE("parsing a hostile line is bounded") {
    // Nesting: refused while parsing, at the limit.
    std::string deep = std::string(100000, '[') + std::string(100000, ']');
    CHECK(why(deep) == "nested deeper than 24");
    // Arrays in an ordinary event.
    json wide = event("warning");
    wide["message"] = "m";
    wide["padding"] = json::array();
    for (int i = 0; i < 5000; ++i) wide["padding"].push_back(i);
    CHECK(why(wide.dump()) == "an array or object too long");
    // A big line is allowed only for a snapshot, and refused at its type.
    json big = event("warning");
    big["message"] = std::string(cli::kMaxEventLine + 10, 'x');
    CHECK(why(big.dump()).find("that is not a snapshot") != std::string::npos);
    // Long strings are cut, at a character boundary, and counted.
    json longMsg = event("warning");
    longMsg["message"] = std::string(cli::kMaxString - 1, 'x') + "é" + "tail";
    auto c = cli::checkAgentLine(longMsg.dump());
    REQUIRE(c.event);
    CHECK(c.shortened == 1);
    const std::string msg = (*c.event)["message"];
    CHECK(msg == std::string(cli::kMaxString - 1, 'x') + "…");
}

TEST_CASE("a check that missed part of the run fails --fail-on as one that was not active") {
    json hello = event("hello");
    hello.update({{"agent_version", "x"}, {"mode", "run"}, {"python", {{"version", "3.12.1"}}},
                  {"capabilities", {{"stall_detection", {{"state", "active"}}}, {"snapshots", {{"state", "active"}}}}}});
    json gap = event("warning");
    gap.update({{"message", "an event loop started on thread 9 ..."}, {"capability_gap", "stall_detection"},
                {"thread_id", 9}});
    CHECK(why(gap.dump()).empty());
    json bad = gap;
    bad["capability_gap"] = 1;
    CHECK(why(bad.dump()) == "warning.capability_gap has the wrong type");

    cli::Capabilities caps;
    caps.observe(7, gap);  // before the hello: nothing reported yet, ignored
    caps.observe(7, hello);
    CHECK(caps.notActive("stall_detection").empty());
    json plain = event("warning");
    plain["message"] = "a plain warning";
    caps.observe(7, plain);
    CHECK(caps.notActive("stall_detection").empty());
    caps.observe(7, gap);
    auto missing = caps.notActive("stall_detection");
    REQUIRE(missing.size() == 1);
    CHECK(missing[0] == "pid 7 (active, but not for part of the run: an event loop started on thread 9 ...)");
    CHECK(caps.notActive("snapshots").empty());
}
