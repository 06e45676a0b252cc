// The agent's pure parts: pytest's PYTEST_CURRENT_TEST, the test fields added
// to an event line, and what the capabilities say in each situation.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <sstream>

#include "capabilities.h"
#include "events.h"
#include "pytest_env.h"

using namespace aioscope;
using namespace aioscope::agent;
using nlohmann::json;

namespace {

json capabilitiesOf(const Capabilities& c) {
    std::ostringstream out;
    {
        JsonWriter w(out, 0);
        w.beginObject();
        c.write(w);
        w.endObject();
    }
    return json::parse(out.str());
}

}  // namespace

TEST_CASE("PYTEST_CURRENT_TEST: the node id and the phase") {
    auto t = parsePytestCurrentTest("tests/test_a.py::TestX::test_y[a (b) c] (call)");
    REQUIRE(t);
    CHECK(t->id == "tests/test_a.py::TestX::test_y[a (b) c]");
    CHECK(t->phase == "call");
    t = parsePytestCurrentTest("t.py::test_z (teardown)");
    REQUIRE(t);
    CHECK(t->phase == "teardown");
    CHECK_FALSE(parsePytestCurrentTest(""));
    CHECK_FALSE(parsePytestCurrentTest("t.py::test_z"));
    CHECK_FALSE(parsePytestCurrentTest(" (call)"));
}

TEST_CASE("An event line gains the test, escaped, and stays one JSON object") {
    std::string line = messageEvent("info", "hello");
    std::string named = withTest(line, TestRef{"t.py::test_q[\"x\" \\ y]", "setup"});
    REQUIRE(named.back() == '\n');
    json e = json::parse(named);
    CHECK(e["type"] == "info");
    CHECK(e["message"] == "hello");
    CHECK(e["test"] == "t.py::test_q[\"x\" \\ y]");
    CHECK(e["test_phase"] == "setup");
    CHECK(withTest(line, TestRef{}) == line);
}

TEST_CASE("Capabilities: pending while waiting, with what for") {
    CapabilityFacts f;
    json c = capabilitiesOf(Capabilities::assess(f));
    CHECK(c["capabilities"]["snapshots"]["state"] == "pending");
    CHECK(c["capabilities"]["stall_detection"]["state"] == "pending");
    CHECK(c["capabilities"]["stall_detection"]["reason"] == "waiting for the program to import asyncio");
    CHECK(c["stall_detection"] == "waiting for asyncio");
    f.runtimeReady = f.asyncioImported = true;
    f.gilWaitMs = 1500;
    c = capabilitiesOf(Capabilities::assess(f));
    CHECK(c["capabilities"]["task_destroyed_pending"]["reason"] ==
          "installing the hooks: waiting 1500 ms so far for the GIL");
}

TEST_CASE("Capabilities: active once installed; inactive under an unknown loop class, with the reason") {
    CapabilityFacts f;
    f.runtimeReady = f.asyncioImported = f.hookInstalled = f.observersActive = f.taskLayout = true;
    json c = capabilitiesOf(Capabilities::assess(f));
    for (const char* name : {"stall_detection", "unawaited_coroutine", "cancellation_swallowed",
                             "task_exception_unretrieved", "task_destroyed_pending", "snapshots"}) {
        CHECK(c["capabilities"][name]["state"] == "active");
    }
    CHECK(c["stall_detection"] == "active");
    f.foreignLoop = "HomemadeLoop";
    c = capabilitiesOf(Capabilities::assess(f));
    CHECK(c["capabilities"]["stall_detection"]["state"] == "inactive");
    CHECK(c["capabilities"]["stall_detection"]["reason"].get<std::string>().find("HomemadeLoop") != std::string::npos);
    CHECK(c["capabilities"]["unawaited_coroutine"]["state"] == "active");
    CHECK(c["capabilities"]["task_exception_unretrieved"]["state"] == "inactive");
    CHECK(c["stall_detection"] == "inactive");
}

TEST_CASE("Capabilities under uvloop: stalls active once its handles are timed, cancellations inactive") {
    CapabilityFacts f;
    f.runtimeReady = f.asyncioImported = f.hookInstalled = f.observersActive = f.taskLayout = true;
    f.uvloop = true;
    f.uvloopFailure = "uvloop's global offset table could not be written";
    json c = capabilitiesOf(Capabilities::assess(f));
    CHECK(c["capabilities"]["stall_detection"]["state"] == "inactive");
    CHECK(c["capabilities"]["stall_detection"]["reason"].get<std::string>().find("offset table") != std::string::npos);
    CHECK(c["capabilities"]["task_exception_unretrieved"]["state"] == "inactive");  // its Loop class not observed
    f.uvloopTimed = f.foreignReports = true;
    f.uvloopFailure.clear();
    c = capabilitiesOf(Capabilities::assess(f));
    CHECK(c["capabilities"]["stall_detection"]["state"] == "active");
    CHECK(c["capabilities"]["stall_detection"]["reason"].get<std::string>().find("uvloop") != std::string::npos);
    CHECK(c["stall_detection"] == "active");
    CHECK(c["capabilities"]["cancellation_swallowed"]["state"] == "inactive");
    CHECK(c["capabilities"]["cancellation_swallowed"]["reason"].get<std::string>().find("uvloop") != std::string::npos);
    for (const char* name : {"unawaited_coroutine", "task_exception_unretrieved", "task_destroyed_pending"}) {
        CHECK(c["capabilities"][name]["state"] == "active");
    }
    // Protocol callbacks (Context.run) not timed: still active for handles,
    // and the reason says what is not timed and why.
    f.uvloopProtocolFailure = "contextvars.Context.run is not the method this agent knows";
    std::string reason = capabilitiesOf(Capabilities::assess(f))["capabilities"]["stall_detection"]["reason"];
    CHECK(reason.find("protocol callbacks (data_received...) are not timed") != std::string::npos);
    CHECK(reason.find("Context.run is not the method") != std::string::npos);
    f.uvloopProtocols = true;
    f.uvloopProtocolFailure.clear();
    reason = capabilitiesOf(Capabilities::assess(f))["capabilities"]["stall_detection"]["reason"];
    CHECK(reason == "uvloop: callbacks and protocol callbacks timed at their context entry and exit");
}

TEST_CASE("Capabilities in a trio program: stalls and never-awaited coroutines active, asyncio's checks not") {
    CapabilityFacts f;
    f.runtimeReady = f.trio = f.trioTimed = f.unawaitedObserved = true;
    f.exiting = true;
    json c = capabilitiesOf(Capabilities::assess(f));
    CHECK(c["capabilities"]["stall_detection"]["state"] == "active");
    CHECK(c["capabilities"]["unawaited_coroutine"]["state"] == "active");
    CHECK(c["capabilities"]["unawaited_coroutine"]["reason"].get<std::string>().find("trio") != std::string::npos);
    for (const char* name : {"cancellation_swallowed", "task_exception_unretrieved", "task_destroyed_pending"}) {
        CHECK(c["capabilities"][name]["state"] == "inactive");
    }
    f.unawaitedObserved = false;
    CHECK(capabilitiesOf(Capabilities::assess(f))["capabilities"]["unawaited_coroutine"]["state"] == "inactive");
}

TEST_CASE("Capabilities: what was still pending at exit is inactive") {
    CapabilityFacts f;
    f.runtimeReady = true;
    f.exiting = true;
    json c = capabilitiesOf(Capabilities::assess(f));
    CHECK(c["capabilities"]["stall_detection"]["state"] == "inactive");
    CHECK(c["capabilities"]["stall_detection"]["reason"] == "the program never imported asyncio");
    CHECK(c["uses_asyncio"] == false);
    f.trio = true;
    c = capabilitiesOf(Capabilities::assess(f));
    CHECK(c["capabilities"]["cancellation_swallowed"]["reason"].get<std::string>().find("trio") != std::string::npos);
}
