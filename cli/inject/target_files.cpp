#include "inject/target_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <sstream>
#include <vector>
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
    m_root = std::move(root);
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

namespace {

// The target's supplementary groups (/proc/PID/status "Groups:").
std::vector<gid_t> groupsOf(pid_t pid) {
    std::vector<gid_t> out;
    auto status = readSmallFile("/proc/" + std::to_string(pid) + "/status", 1 << 16);
    if (!status) return out;
    auto at = status->find("\nGroups:");
    if (at == std::string::npos) return out;
    std::istringstream in(status->substr(at + 8, status->find('\n', at + 1) - at - 8));
    for (long g; in >> g;) out.push_back(static_cast<gid_t>(g));
    return out;
}

bool permits(const struct stat& st, const TargetIdentity& id, const std::vector<gid_t>& groups, mode_t what) {
    if (id.uid == 0) return true;
    if (st.st_uid == id.uid) return (st.st_mode & (what << 6)) == (what << 6);
    bool inGroup = st.st_gid == id.gid || std::find(groups.begin(), groups.end(), st.st_gid) != groups.end();
    if (inGroup) return (st.st_mode & (what << 3)) == (what << 3);
    return (st.st_mode & what) == what;
}

}  // namespace

std::optional<std::string> TargetFiles::agentInPlace(const std::string& agentSo) const {
    struct stat ours;
    if (agentSo.empty() || agentSo[0] != '/' || ::stat(agentSo.c_str(), &ours) != 0) return std::nullopt;
    auto groups = groupsOf(m_pid);
    std::string prefix;
    for (std::size_t pos = 1; pos <= agentSo.size();) {
        std::size_t slash = agentSo.find('/', pos);
        if (slash == std::string::npos) slash = agentSo.size();
        prefix = agentSo.substr(0, slash);
        pos = slash + 1;
        bool last = slash == agentSo.size();
        // Seen inside the target's root, links followed there only.
        Fd f = openInRoot(m_root.get(), prefix.substr(1), O_PATH, true);
        struct stat st;
        if (!f || ::fstat(f.get(), &st) != 0) return std::nullopt;
        if (!last && (!S_ISDIR(st.st_mode) || !permits(st, m_id, groups, 01))) return std::nullopt;
        if (last) {
            struct statvfs vfs;
            Fd file = openInRoot(m_root.get(), prefix.substr(1), O_RDONLY, true);
            if (!file || ::fstatvfs(file.get(), &vfs) != 0 || (vfs.f_flag & ST_NOEXEC)) return std::nullopt;
            if (st.st_dev != ours.st_dev || st.st_ino != ours.st_ino || !S_ISREG(st.st_mode) ||
                !permits(st, m_id, groups, 04)) {
                return std::nullopt;
            }
        }
    }
    return agentSo;
}

std::string TargetFiles::stageAgent(const std::string& agentSo) {
    if (auto here = agentInPlace(agentSo)) return *here;
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
