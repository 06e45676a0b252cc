// Putting aioscope's files where the target can use them: a private staging
// folder in the target's own /tmp (reached through /proc/PID/root without
// following the target's links out of it, so a target in a container or
// chroot sees it too; see staging.h for why nobody can redirect it) holding
// the folder of the agent's socket and, when it must be loaded, a copy of
// the agent and the PEP 768 loader script.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include "inject/staging.h"
#include "inject/target_memory.h"
#include "stream/server.h"

namespace aioscope::cli {

struct TargetIdentity {
    uid_t uid = 0;
    gid_t gid = 0;
};
TargetIdentity targetIdentity(pid_t pid);

class TargetFiles {
public:
    // Also removes staging folders that ended aioscope processes left in the
    // target's /tmp (and ours). Throws InspectError.
    explicit TargetFiles(pid_t pid);
    ~TargetFiles();
    TargetFiles(const TargetFiles&) = delete;
    TargetFiles& operator=(const TargetFiles&) = delete;

    EventServer& server() { return *m_server; }
    // A path of ours (in the staging folder) as the target names it.
    std::string inTarget(const std::string& ourPath) const;
    // The agent as the target can load it: where it is installed when the
    // target sees that same file at the same path and its user may read it
    // (a process of the host, a container mounting it), else a copy in the
    // staging folder. Returns its path as the target names it.
    std::string stageAgent(const std::string& agentSo);
    // Writes a script there under a random name; returns its path as the
    // target names it. Only the target's user can read it (when we may give
    // it away): it carries the session's token.
    std::string stageScript(const std::string& content);

private:
    std::optional<std::string> agentInPlace(const std::string& agentSo) const;

    pid_t m_pid;
    Fd m_root;  // the target's root directory
    TargetIdentity m_id;
    std::unique_ptr<StagingDir> m_staging;
    std::unique_ptr<EventServer> m_server;
};

// Whether (and where, as the target names it) the agent is already loaded.
std::string loadedAgentPath(pid_t pid);

}  // namespace aioscope::cli
