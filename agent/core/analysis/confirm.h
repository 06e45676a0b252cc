// Confirming findings with a second read. A live process read for a few
// milliseconds can look stuck for that instant (a task between two steps, a
// waiter whose future was just set): a finding is reported only when a
// second, independent read finds it again, the same tasks on the same
// objects. With --pause one read is enough: the process did not move.
#pragma once

#include "model/snapshot.h"

namespace aioscope {

// Keeps in `later` only the findings `earlier` also has; says in `later`'s
// warnings how many were dropped.
void confirmFindings(const Snapshot& earlier, Snapshot& later);

}  // namespace aioscope
