// Errors that end an inspection. Each kind has its own documented process exit
// code (docs/guide.md#exit-codes), so scripts can tell "not Python" from
// "permission denied" without parsing text.
#pragma once

#include <stdexcept>
#include <string>

namespace aioscope {

enum class Errc : int {
    internal = 1,
    usage = 2,
    no_such_process = 3,
    permission_denied = 4,
    not_python = 5,
    unsupported_version = 6,
    process_exited = 7,
    bad_input = 8,
    output_failed = 14,   // stdout or -o could not be written (disk full, closed pipe)
    interrupted = 130,    // Ctrl-C (or SIGTERM/SIGHUP) before the command could finish, like a shell
};

// A fatal, user-facing error: its message is one complete line.
class InspectError : public std::runtime_error {
public:
    InspectError(Errc code, const std::string& message) : std::runtime_error(message), m_code(code) {}
    Errc code() const { return m_code; }

private:
    Errc m_code;
};

// Advice shown with every permission failure, in one place.
std::string permissionAdvice();

}  // namespace aioscope
