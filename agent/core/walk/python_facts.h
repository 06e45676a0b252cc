// Facts the program itself keeps in Python objects: sys.version, the modules
// it imported, and the names the threading module gave its threads.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "remote/objects.h"
#include "remote/witness.h"
#include "walk/interpreters.h"

namespace aioscope {

std::optional<std::string> sysVersion(Objects& objects, const InterpreterState& interp);

// The __dict__ of an imported module, if it is in sys.modules.
std::optional<Addr> moduleDict(Objects& objects, const InterpreterState& interp, std::string_view name);

// threading._active: thread ident -> Thread.name. With `witness`, records
// the dict's table (threads starting and ending resize it).
std::map<std::uint64_t, std::string> threadNames(Objects& objects, const InterpreterState& interp,
                                                 Witness* witness = nullptr);

// "3.10.13 (main, ...)" -> 13; -1 if it does not parse.
int microFromVersionString(const std::string& version);

}  // namespace aioscope
