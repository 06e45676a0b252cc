// Who may talk to the CLI's socket (docs/security.md#the-agents-connection).
// The socket's directory is the target user's, so any process of that user
// can connect: a connection counts only once its first line carries this
// CLI's random session token and the kernel (SO_PEERCRED) says it comes from
// a process the CLI observes: the attached pid, or `run`'s program and its
// descendants.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "target/proc.h"  // parentOf, processOfThread

namespace aioscope::cli {

// Random per CLI process (getrandom), as the agent's configuration carries it.
const std::string& sessionToken();

// "cli_pid=...;cli_uid=...;token=..." for the agent's configuration: what the
// agent checks its server against before sending anything.
std::string cliIdentityConfig();

// Constant-time comparison (the time taken says nothing about the token).
bool sameToken(const std::string& a, const std::string& b);

class PeerPolicy {
public:
    // Nobody (until the command says whom it observes).
    PeerPolicy() = default;
    // `attach`: the target process only.
    static PeerPolicy process(pid_t pid);
    // `run`: the program and its descendants, including those reparented to
    // the CLI (it is their subreaper).
    static PeerPolicy descendantsOf(pid_t root);

    // nullopt when `pid` may connect, else why not (for the operator).
    std::optional<std::string> refuse(pid_t pid) const;

private:
    enum class Kind { nobody, process, descendants } m_kind = Kind::nobody;
    pid_t m_pid = 0;
};

}  // namespace aioscope::cli
