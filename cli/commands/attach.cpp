#include "commands/commands.h"
#include "errors.h"

namespace aioscope::cli {

int runAttach(const AttachArgs&) { throw InspectError(Errc::internal, "attach: not written yet"); }

}  // namespace aioscope::cli
