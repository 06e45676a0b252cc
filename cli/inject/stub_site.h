// Where the return stub lives in the target: the unused end of the last page
// of an executable file mapping, past the end of its ELF segment. Nothing
// there belongs to the program (the bytes are whatever follows the segment
// in the file, mapped but never used through this mapping), other threads
// never execute it, and the write makes a private copy of that one page: the
// file on disk is untouched.
//
// A site is used only if its bytes are exactly the file's (nobody put
// anything there) or exactly our stub (an earlier attach put it there; the
// same bytes again, so a thread of an earlier attach still inside it is not
// disturbed). The stub stays there afterwards, never executed again unless
// a later attach uses it.
#pragma once

#include <cstdint>
#include <string>

#include "inject/hijack.h"

namespace aioscope::cli {

// Returns the stub's address in the target, written through `thread` if
// needed. Throws InspectError when no executable mapping has room.
std::uint64_t placeStub(pid_t pid, HijackedThread& thread);

}  // namespace aioscope::cli
