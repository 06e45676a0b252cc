// Writing a command's output file ("-": standard output) so that a full disk
// or a closed pipe is an error (exit status 14), not a silently short file.
#pragma once

#include <functional>
#include <ostream>
#include <string>

namespace aioscope::cli::report {

void writeOutput(const std::string& path, const std::function<void(std::ostream&)>& write);

}  // namespace aioscope::cli::report
