#include "target/proc.h"

#include <fcntl.h>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <cstdlib>
#include <sstream>

#include "errors.h"

namespace aioscope {

std::optional<std::string> readSmallFile(const std::string& path, std::size_t cap) {
    std::FILE* f = std::fopen(path.c_str(), "re");
    if (!f) return std::nullopt;
    std::string out;
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0 && out.size() < cap) out.append(buf, n);
    bool err = std::ferror(f);
    std::fclose(f);
    if (err) return std::nullopt;
    return out;
}

namespace {

// The fields of /proc/PID[/task/TID]/stat after the command name (state
// first), which is in parentheses and may itself hold spaces and ')':
// split after the last ')'. Nullopt once the task is gone.
std::optional<std::istringstream> statFields(pid_t pid, pid_t tid) {
    std::string file = "/proc/" + std::to_string(pid) + (tid ? "/task/" + std::to_string(tid) : "") + "/stat";
    auto stat = readSmallFile(file, 4096);
    if (!stat) return std::nullopt;
    auto close = stat->rfind(')');
    if (close == std::string::npos) return std::nullopt;
    return std::istringstream(stat->substr(close + 1));
}

}  // namespace

std::uint64_t startTimeOf(pid_t pid) {
    auto fields = statFields(pid, 0);
    std::string field;
    // Fields 3..22 follow the command's closing parenthesis.
    for (int i = 3; fields && i <= 22 && *fields >> field; ++i) {
        if (i == 22) return std::strtoull(field.c_str(), nullptr, 10);
    }
    return 0;
}

char procState(pid_t pid, pid_t tid) {
    auto fields = statFields(pid, tid);
    std::string state;
    return fields && *fields >> state ? state[0] : 0;
}

bool threadEnding(pid_t pid, pid_t tid) {
    auto fields = statFields(pid, tid);
    if (!fields) return true;
    std::string state;
    unsigned long skipped = 0, flags = 0;
    *fields >> state;  // then ppid, pgrp, session, tty_nr, tpgid, flags
    for (int i = 0; i < 5 && *fields >> skipped; ++i) {
    }
    if (!(*fields >> flags)) return state == "Z" || state == "X";
    constexpr unsigned long kPfExiting = 0x4;  // the kernel's PF_EXITING: inside do_exit()
    return state == "Z" || state == "X" || (flags & kPfExiting) != 0;
}

namespace {

// "Name:\tvalue" of /proc/PID/status (or a task's), as a number; -1 if absent.
long statusField(const std::string& path, const char* name) {
    auto text = readSmallFile(path, 1 << 16);
    if (!text) return -1;
    std::string key = std::string("\n") + name + ":";
    std::size_t at = ("\n" + *text).find(key);
    if (at == std::string::npos) return -1;
    return std::strtol(text->c_str() + at + key.size() - 1, nullptr, 10);
}

}  // namespace

pid_t parentOf(pid_t pid) {
    long ppid = statusField("/proc/" + std::to_string(pid) + "/status", "PPid");
    return ppid > 0 ? static_cast<pid_t>(ppid) : 0;
}

pid_t processOfThread(pid_t tid) {
    long tgid = statusField("/proc/" + std::to_string(tid) + "/status", "Tgid");
    return tgid > 0 ? static_cast<pid_t>(tgid) : 0;
}

std::string ProcFs::path(const std::string& rel) const {
    return "/proc/" + std::to_string(m_pid) + "/" + rel;
}

void ProcFs::requireAlive() const {
    if (m_pid <= 0) throw InspectError(Errc::no_such_process, "invalid pid " + std::to_string(m_pid));
    struct stat st;
    if (::stat(path("").c_str(), &st) != 0) {
        throw InspectError(Errc::no_such_process, "no process with pid " + std::to_string(m_pid));
    }
    // A zombie has no memory left to read.
    if (procState(m_pid) == 'Z') {
        throw InspectError(Errc::process_exited, "process " + std::to_string(m_pid) + " has exited (zombie)");
    }
}

std::vector<Mapping> ProcFs::maps() const {
    std::FILE* f = std::fopen(path("maps").c_str(), "re");
    if (!f) {
        if (errno == ENOENT || errno == ESRCH) {
            throw InspectError(Errc::no_such_process, "no process with pid " + std::to_string(m_pid));
        }
        throw InspectError(Errc::permission_denied, "permission denied reading " + path("maps") +
                                                         ": " + permissionAdvice());
    }
    std::string text;
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    bool err = std::ferror(f);
    int e = errno;
    std::fclose(f);
    if (err) {
        if (e == EACCES || e == EPERM) {
            throw InspectError(Errc::permission_denied, "permission denied reading " + path("maps") +
                                                             ": " + permissionAdvice());
        }
        throw InspectError(Errc::process_exited,
                           "process " + std::to_string(m_pid) + " exited while its maps were read");
    }
    if (text.empty()) {
        // Only kernel threads and exiting processes have no mappings.
        if (isKernelThread()) {
            throw InspectError(Errc::not_python,
                               "process " + std::to_string(m_pid) + " (" + comm() + ") is a kernel thread");
        }
        throw InspectError(Errc::process_exited, "process " + std::to_string(m_pid) + " is exiting");
    }
    return parseMaps(text);
}

bool ProcFs::isKernelThread() const {
    constexpr unsigned long kPfKthread = 0x00200000;
    auto stat = readSmallFile(path("stat"), 4096);
    if (!stat) return false;
    auto close = stat->rfind(')');
    if (close == std::string::npos) return false;
    // Fields after the command: state ppid pgrp session tty_nr tpgid flags ...
    std::istringstream rest(stat->substr(close + 2));
    std::string field;
    for (int i = 0; i < 7 && rest >> field; ++i) {
    }
    return (std::strtoul(field.c_str(), nullptr, 10) & kPfKthread) != 0;
}

std::string ProcFs::comm() const {
    auto s = readSmallFile(path("comm"), 256);
    if (!s) return "";
    while (!s->empty() && s->back() == '\n') s->pop_back();
    return *s;
}

std::string ProcFs::exe() const {
    char buf[4096];
    ssize_t n = ::readlink(path("exe").c_str(), buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

std::vector<pid_t> ProcFs::threads() const {
    std::vector<pid_t> out;
    DIR* d = ::opendir(path("task").c_str());
    if (!d) return out;
    while (dirent* e = ::readdir(d)) {
        char* endp = nullptr;
        long tid = std::strtol(e->d_name, &endp, 10);
        if (endp && *endp == '\0' && tid > 0) out.push_back(static_cast<pid_t>(tid));
    }
    ::closedir(d);
    return out;
}

bool processEnding(pid_t pid) {
    for (pid_t tid : ProcFs(pid).threads()) {
        if (!threadEnding(pid, tid)) return false;
    }
    return true;
}

std::string ProcFs::threadComm(pid_t tid) const {
    auto s = readSmallFile(path("task/" + std::to_string(tid) + "/comm"), 256);
    if (!s) return "";
    while (!s->empty() && s->back() == '\n') s->pop_back();
    return *s;
}

std::vector<std::string> ProcFs::openablePaths(const Mapping& m) const {
    char range[64];
    std::snprintf(range, sizeof range, "%llx-%llx", static_cast<unsigned long long>(m.start),
                  static_cast<unsigned long long>(m.end));
    std::vector<std::string> out{path("map_files/") + range};
    std::string clean = m.cleanPath();
    if (!clean.empty() && clean[0] == '/') {
        out.push_back(path("root") + clean);
        if (!m.deleted()) out.push_back(clean);
    }
    return out;
}

int ProcFs::openMapped(const Mapping& m, std::string& path) const {
    for (const auto& p : openablePaths(m)) {
        int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd >= 0 && ::fstat(fd, &st) == 0 && st.st_ino == m.inode) {
            path = p;
            return fd;
        }
        if (fd >= 0) ::close(fd);
    }
    return -1;
}

int ProcFs::openMappedNamed(const std::vector<Mapping>& maps, const std::string& name, std::string& path) const {
    for (const auto& m : maps) {
        if (m.path == name || m.cleanPath() == name) return openMapped(m, path);
    }
    return -1;
}

}  // namespace aioscope
