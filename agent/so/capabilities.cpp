#include "capabilities.h"

namespace aioscope::agent {

namespace {

Capability active(std::string reason = "") { return {"active", std::move(reason)}; }
Capability pending(std::string reason) { return {"pending", std::move(reason)}; }
Capability inactive(std::string reason) { return {"inactive", std::move(reason)}; }

void writeOne(JsonWriter& w, const char* name, const Capability& c) {
    w.key(name).beginObject();
    w.key("state").value(c.state);
    w.key("reason").value(c.reason);
    w.endObject();
}

}  // namespace

Capabilities Capabilities::assess(const CapabilityFacts& f) {
    Capabilities c;
    c.usesAsyncio = f.asyncioImported;
    if (!f.runtimeFailure.empty()) {
        c.snapshots = inactive(f.runtimeFailure);
    } else if (f.runtimeReady) {
        c.snapshots = active();
    } else {
        c.snapshots = f.exiting ? inactive("the interpreter ended before it could be read")
                                : pending("waiting for the interpreter to start");
    }

    Capability hooks;  // what every asyncio check shares until its hook is in
    if (!f.runtimeFailure.empty()) {
        hooks = inactive(f.runtimeFailure);
    } else if (!f.installFailure.empty()) {
        hooks = inactive(f.installFailure);
    } else if (f.attached && !f.runtimeReady && !f.exiting) {
        hooks = pending("the agent is starting");
    } else if (f.trio && !f.asyncioImported) {
        hooks = f.exiting ? inactive("the program runs trio, not asyncio: its scheduler has no asyncio hooks to time "
                                     "or observe")
                          : pending("waiting for the program to import asyncio (it runs trio)");
    } else if (!f.asyncioImported) {
        hooks = f.exiting ? inactive("the program never imported asyncio")
                          : pending("waiting for the program to import asyncio");
    } else if (f.gilWaitMs >= 0) {
        hooks = f.exiting ? inactive("the hooks were never installed: the GIL was never free")
                          : pending("installing the hooks: waiting " + std::to_string(f.gilWaitMs) +
                                    " ms so far for the GIL");
    } else {
        hooks = f.exiting ? inactive("the interpreter ended before the hooks were installed")
                          : pending("installing the hooks");
    }
    c.stall = c.cancellation = c.unretrieved = c.destroyed = c.unawaited = hooks;

    if (f.hookInstalled) {
        c.stall = active();
        c.cancellation = f.observersActive && f.taskLayout ? active()
                         : f.observersActive ? inactive("the Task layout of this Python is unknown")
                                             : inactive("the observers could not be installed");
    }
    if (f.observersActive) {
        c.unawaited = c.unretrieved = c.destroyed = active();
    } else if (f.hookInstalled) {
        c.unawaited = c.unretrieved = c.destroyed = inactive("the observers could not be installed");
    }
    if (f.uvloop && f.hookInstalled) {
        // uvloop runs its callbacks in its own Handle._run (Cython); the
        // agent times them at the handle's context entry and exit instead.
        c.stall = f.uvloopTimed ? active(f.uvloopProtocols
                                             ? "uvloop: callbacks and protocol callbacks timed at their context "
                                               "entry and exit"
                                             : "uvloop: callbacks timed at their context entry and exit; protocol "
                                               "callbacks (data_received...) are not timed: " +
                                                   f.uvloopProtocolFailure)
                                : inactive("the event loop is uvloop's, whose callbacks could not be timed: " +
                                           (f.uvloopFailure.empty() ? std::string("its loop module was not found")
                                                                    : f.uvloopFailure));
        c.cancellation = inactive("the event loop is uvloop's: its task steps run in uvloop's own Handle, where "
                                  "cancellations are not traced");
        if (f.observersActive && !f.foreignReports) {
            std::string why = "uvloop's Loop class could not be observed";
            c.unretrieved = inactive(why);
            c.destroyed = inactive(why);
        }
    } else if (!f.foreignLoop.empty() && f.hookInstalled) {
        // Its callbacks never go through asyncio.events.Handle._run, and it
        // reports errors through its own call_exception_handler.
        std::string why = "the event loop is " + f.foreignLoop +
                          ", which runs its callbacks without asyncio.events.Handle._run";
        c.stall = inactive(why);
        c.cancellation = inactive(why);
        std::string own = "the event loop is " + f.foreignLoop + ", which reports lost task errors itself";
        c.unretrieved = inactive(own);
        c.destroyed = inactive(own);
    }
    if (f.trio && f.trioTimed && c.stall.state != "active") {
        // A trio program: its task steps are timed by an instrument, whatever
        // the asyncio checks wait for.
        c.stall = active("trio: task steps timed by an instrument");
    }
    if (f.unawaitedObserved && c.unawaited.state != "active") {
        // CPython warns about a never-awaited coroutine whatever runs it:
        // observed in a trio program too.
        c.unawaited = active(f.trio ? "trio: never-awaited coroutines observed through CPython's warning" : "");
    }
    return c;
}

void Capabilities::write(JsonWriter& w) const {
    w.key("uses_asyncio").value(usesAsyncio);
    w.key("capabilities").beginObject();
    writeOne(w, "stall_detection", stall);
    writeOne(w, "unawaited_coroutine", unawaited);
    writeOne(w, "cancellation_swallowed", cancellation);
    writeOne(w, "task_exception_unretrieved", unretrieved);
    writeOne(w, "task_destroyed_pending", destroyed);
    writeOne(w, "snapshots", snapshots);
    w.endObject();
    // The old single string, kept for readers of the first schema.
    w.key("stall_detection").value(stall.state == "active" ? "active"
                                   : stall.state == "pending" ? "waiting for asyncio"
                                                              : "inactive");
}

std::string Capabilities::summary() const {
    std::string s = "stall detection " + stall.state;
    if (!stall.reason.empty()) s += " (" + stall.reason + ")";
    return s;
}

}  // namespace aioscope::agent
