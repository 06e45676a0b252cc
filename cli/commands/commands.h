// The CLI's commands. main.cpp parses arguments into these structs and calls
// run*; each returns the process exit status (docs/guide.md#exit-codes) or
// throws InspectError.
#pragma once

#include <sys/types.h>

#include <string>

#include "render/style.h"

namespace aioscope::cli {

// `dump` found tasks that can never finish (await cycle, lock deadlock,
// orphaned wait); distinct from every error status.
constexpr int kExitDeadlock = 10;

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

struct DemoArgs {
    std::string python;  // empty: pick one
    ColorMode color = ColorMode::automatic;
};
int runDemo(const DemoArgs& args);

}  // namespace aioscope::cli
