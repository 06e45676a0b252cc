// What the agent can check in this process, said honestly: "active",
// "pending" (with what it waits for) or "inactive" (with why). Sent in the
// hello and, on every change, in a `capabilities` event; the CLI's --fail-on
// fails loudly for a check that was not active.
#pragma once

#include <cstdint>
#include <string>

#include "model/json_writer.h"

namespace aioscope::agent {

struct Capability {
    std::string state = "pending";  // active, pending, inactive
    std::string reason;
    bool operator==(const Capability&) const = default;
};

// What is known when the capabilities are assessed.
struct CapabilityFacts {
    bool attached = false;          // `attach` (the program runs already), not `run`
    bool runtimeReady = false;      // the layout is resolved: snapshots and stacks can be read
    std::string runtimeFailure;     // it never will be, and why
    bool asyncioImported = false;
    bool hookInstalled = false;     // Handle._run is timed
    bool observersActive = false;   // the silent-bug observers are in place
    bool unawaitedObserved = false; // the never-awaited coroutine observer is (alone, in a trio program)
    bool taskLayout = false;        // Task fields known (cancellations are judged from them)
    std::string installFailure;     // installing failed for good, and why
    std::int64_t gilWaitMs = -1;    // an installer waits for the GIL this long; -1: none
    std::string foreignLoop;        // every running loop is of this class, not an asyncio BaseEventLoop
    bool uvloop = false;            // a running loop is uvloop's
    bool uvloopTimed = false;       // uvloop's callbacks are timed (its GOT is patched)
    std::string uvloopFailure;      // why they are not
    bool uvloopProtocols = false;   // its protocol callbacks (Context.run) are timed too
    std::string uvloopProtocolFailure;  // why they are not
    bool foreignReports = false;    // the foreign loop class's call_exception_handler is observed
    bool trioTimed = false;         // trio's task steps are timed (its instrument is registered)
    bool trio = false;              // trio is imported
    bool exiting = false;           // final: what is still pending will never be
};

class Capabilities {
public:
    static Capabilities assess(const CapabilityFacts& facts);

    Capability stall, unawaited, cancellation, unretrieved, destroyed, snapshots;
    bool usesAsyncio = false;

    // "capabilities": {...}, plus the old top-level "stall_detection" string.
    void write(JsonWriter& w) const;
    // One line for people: "stall detection active", ...
    std::string summary() const;
    bool operator==(const Capabilities&) const = default;
};

}  // namespace aioscope::agent
