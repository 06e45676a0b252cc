#include "inject/target_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

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

TargetFiles::TargetFiles(pid_t pid) : m_pid(pid), m_id(targetIdentity(pid)) {
    std::string rootPath = "/proc/" + std::to_string(pid) + "/root";
    Fd root(::open(rootPath.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root) {
        if (errno == ENOENT || errno == ESRCH) throw InspectError(Errc::no_such_process, "no process with pid " + std::to_string(pid));
        throw InspectError(Errc::permission_denied, "cannot open the target's root (" + rootPath + "): " + permissionAdvice());
    }
    // The target's /tmp, resolved inside its root only. A /tmp that is a link
    // (to /var/tmp, say) is followed inside that root, never out of it.
    Fd tmp = openInRoot(root.get(), "tmp", O_RDONLY | O_DIRECTORY, false);
    if (!tmp && errno == ELOOP) tmp = openInRoot(root.get(), "tmp", O_RDONLY | O_DIRECTORY, true);
    if (!tmp) {
        Errc code = errno == EACCES || errno == EPERM ? Errc::permission_denied : Errc::internal;
        throw InspectError(code, "cannot open the target's /tmp (" + rootPath + "/tmp): " + std::strerror(errno));
    }
    removeStaleStaging(tmp.get());
    Fd ours(::open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    struct stat a, b;
    if (ours && ::fstat(ours.get(), &a) == 0 && ::fstat(tmp.get(), &b) == 0 && (a.st_dev != b.st_dev || a.st_ino != b.st_ino)) {
        removeStaleStaging(ours.get());
    }
    m_staging = std::make_unique<StagingDir>(tmp.get(), "/tmp");
    // The socket's folder inside ours, named through our descriptor: the
    // target's user cannot see its random name before it is theirs.
    m_server = std::make_unique<EventServer>(m_staging->here(), m_id.uid, m_id.gid);
}

TargetFiles::~TargetFiles() {
    // Emptied through descriptors first: the socket's folder belongs to the
    // target's user by now, and anything may have been planted in it.
    m_staging->clear();
    m_server.reset();
    m_staging.reset();
}

std::string TargetFiles::inTarget(const std::string& ourPath) const {
    std::string here = m_staging->here();
    if (ourPath == here || ourPath.starts_with(here + "/")) return m_staging->inTarget() + ourPath.substr(here.size());
    return ourPath;
}

std::string TargetFiles::stageAgent(const std::string& agentSo) {
    auto content = readSmallFile(agentSo, std::size_t{1} << 30);
    if (!content) throw InspectError(Errc::internal, "cannot read the agent " + agentSo + ": " + std::strerror(errno));
    return m_staging->writeFile("aioscope-agent.so", *content, m_id.uid, m_id.gid, 0500);
}

std::string TargetFiles::stageScript(const std::string& content) {
    return m_staging->writeFile("loader-" + randomHex16() + ".py", content, m_id.uid, m_id.gid, 0400);
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

}  // namespace aioscope::cli
