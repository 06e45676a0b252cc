// Putting aioscope's files where the target can use them: a private
// directory under the target's own /tmp (through /proc/PID/root, so a target
// in a container or chroot sees it too), owned by the target's user, holding
// the agent's socket and, when it must be loaded, a copy of the agent.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "stream/server.h"

namespace aioscope::cli {

struct TargetIdentity {
    uid_t uid = 0;
    gid_t gid = 0;
};
TargetIdentity targetIdentity(pid_t pid);

class TargetFiles {
public:
    explicit TargetFiles(pid_t pid);

    EventServer& server() { return *m_server; }
    // A path as the target names it.
    std::string inTarget(const std::string& ourPath) const;
    // Copies the agent into the private directory; returns its path as the
    // target names it.
    std::string stageAgent(const std::string& agentSo);
    // Writes a file there; returns its path as the target names it.
    std::string stageFile(const std::string& name, const std::string& content);

private:
    pid_t m_pid;
    std::string m_root;  // "/proc/PID/root"
    TargetIdentity m_id;
    std::unique_ptr<EventServer> m_server;
};

// Whether (and where, as the target names it) the agent is already loaded.
std::string loadedAgentPath(pid_t pid);

// Writes into the target's memory (process_vm_writev, then /proc/PID/mem).
bool writeTargetMemory(pid_t pid, std::uint64_t addr, const void* data, std::size_t len);

}  // namespace aioscope::cli
