// The CLI's commands. main.cpp parses arguments into these structs and calls
// run*; each returns the process exit status (docs/guide.md#exit-codes) or
// throws InspectError.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "commands/agent_session.h"
#include "render/style.h"
#include "stream/event_stream.h"

namespace aioscope::cli {

// `run --fail-on ...`: the program exited 0 but no agent ever reported, so
// nothing was checked (a chroot or container hid the agent from it, or no
// CPython ran).
constexpr int kExitNotObserved = 9;
// `dump` found tasks that can never finish (await cycle, lock deadlock,
// orphaned wait); distinct from every error status.
constexpr int kExitDeadlock = 10;
// `run --fail-on stall` saw the event loop stall.
constexpr int kExitStall = 11;
// `run --fail-on` a silent asyncio bug (unawaited, cancel-swallowed,
// unretrieved, destroyed-pending) that occurred.
constexpr int kExitAsyncioBug = 12;
// `run/attach --fail-on X`: X could not be checked in at least one observed
// process (its hello said the capability was not active: an event loop
// aioscope cannot time, hooks that could not be installed). Never a pass.
constexpr int kExitNotActive = 13;
// `run --timeout` expired: the program was dumped and stopped.
constexpr int kExitTimeout = 124;

struct DumpArgs {
    pid_t pid = 0;
    bool json = false;
    bool pause = false;
    bool table = false;
    ColorMode color = ColorMode::automatic;
};
int runDump(const DumpArgs& args);

struct RenderArgs {
    std::string input = "-";
    bool table = false;
    ColorMode color = ColorMode::automatic;
};
int runRender(const RenderArgs& args);

struct RunArgs {
    std::vector<std::string> command;
    AgentOptions agent;
    StreamOptions stream;
    std::int64_t timeoutMs = 0;
    bool failOnStall = false;
    bool failOnDeadlock = false;
    std::vector<std::string> failOnBugs;  // event types
    std::vector<std::string> failOn;      // every condition, as written (stall, unawaited, ...)
};
int runProgram(const RunArgs& args);

struct AttachArgs {
    pid_t pid = 0;
    AgentOptions agent;
    StreamOptions stream;
    std::int64_t durationMs = 0;  // 0: until the target exits or Ctrl-C
};
int runAttach(const AttachArgs& args);

struct DemoArgs {
    std::string python;  // empty: pick one
    ColorMode color = ColorMode::automatic;
};
int runDemo(const DemoArgs& args);

}  // namespace aioscope::cli
