#include <iostream>

#include "commands/commands.h"
#include "errors.h"

namespace aioscope::cli {

int runDemo(const DemoArgs&) {
    throw InspectError(Errc::internal, "demo not written yet");
}

}  // namespace aioscope::cli
