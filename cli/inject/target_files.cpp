#include "inject/target_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "errors.h"
#include "target/proc.h"

namespace aioscope::cli {

namespace fs = std::filesystem;

TargetIdentity targetIdentity(pid_t pid) {
    struct stat st;
    std::string p = "/proc/" + std::to_string(pid);
    if (stat(p.c_str(), &st) != 0) throw InspectError(Errc::no_such_process, "no process with pid " + std::to_string(pid));
    return {st.st_uid, st.st_gid};
}

TargetFiles::TargetFiles(pid_t pid) : m_pid(pid), m_root("/proc/" + std::to_string(pid) + "/root"), m_id(targetIdentity(pid)) {
    std::string tmp = m_root + "/tmp";
    if (access(tmp.c_str(), W_OK) != 0) {
        throw InspectError(Errc::permission_denied, "cannot write the target's /tmp (" + tmp + "): " + permissionAdvice());
    }
    m_server = std::make_unique<EventServer>(tmp, m_id.uid, m_id.gid);
}

std::string TargetFiles::inTarget(const std::string& ourPath) const {
    return ourPath.starts_with(m_root) ? ourPath.substr(m_root.size()) : ourPath;
}

std::string TargetFiles::stageFile(const std::string& name, const std::string& content) {
    std::string path = m_server->directory() + "/" + name;
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << content;
        if (!out) throw InspectError(Errc::internal, "cannot write " + path);
    }
    if (chown(path.c_str(), m_id.uid, m_id.gid) != 0 && geteuid() == 0) {
        throw InspectError(Errc::internal, "cannot hand " + path + " to the target's user");
    }
    chmod(path.c_str(), 0400);
    return inTarget(path);
}

std::string TargetFiles::stageAgent(const std::string& agentSo) {
    std::string path = m_server->directory() + "/aioscope-agent.so";
    std::error_code ec;
    fs::copy_file(agentSo, path, fs::copy_options::overwrite_existing, ec);
    if (ec) throw InspectError(Errc::internal, "cannot copy the agent to " + path + ": " + ec.message());
    if (chown(path.c_str(), m_id.uid, m_id.gid) != 0 && geteuid() == 0) {
        throw InspectError(Errc::internal, "cannot hand " + path + " to the target's user");
    }
    chmod(path.c_str(), 0500);
    return inTarget(path);
}

std::string loadedAgentPath(pid_t pid) {
    ProcFs proc(pid);
    std::error_code ec;
    // A chroot's directory as we see it ("/" for a process sharing our root).
    std::string rootOnHost = fs::read_symlink("/proc/" + std::to_string(pid) + "/root", ec).string();
    for (const auto& m : proc.maps()) {
        std::string clean = m.cleanPath();
        if (!clean.ends_with("/aioscope-agent.so")) continue;
        // maps names files as our root sees them: inside a chroot that is
        // ROOT/tmp/..., which the target knows as /tmp/... The target's own
        // name matters even after the file is gone: dlopen finds a loaded
        // library by the name it was loaded with.
        if (!ec && rootOnHost != "/" && clean.starts_with(rootOnHost + "/")) return clean.substr(rootOnHost.size());
        return clean;
    }
    return "";
}

bool writeTargetMemory(pid_t pid, std::uint64_t addr, const void* data, std::size_t len) {
    iovec local{const_cast<void*>(data), len};
    iovec remote{reinterpret_cast<void*>(addr), len};
    if (process_vm_writev(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(len)) return true;
    std::string mem = "/proc/" + std::to_string(pid) + "/mem";
    int fd = open(mem.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = pwrite(fd, data, len, static_cast<off_t>(addr)) == static_cast<ssize_t>(len);
    close(fd);
    return ok;
}

}  // namespace aioscope::cli
