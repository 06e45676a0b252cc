#include "inject/staging.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "errors.h"

namespace aioscope::cli {

namespace {

constexpr const char* kFreshPrefix = "aioscope-new-";
// A folder is renamed to its final name once locked; one still under its
// first name this long after its creation was left by an aioscope that died
// in between.
constexpr time_t kFreshGraceSeconds = 10;

bool sameFile(const struct stat& a, const struct stat& b) { return a.st_dev == b.st_dev && a.st_ino == b.st_ino; }

// Whether `name` in `dir` is still the directory `fd` refers to.
bool stillNamed(int dir, const std::string& name, int fd) {
    struct stat byName, byFd;
    return ::fstatat(dir, name.c_str(), &byName, AT_SYMLINK_NOFOLLOW) == 0 && ::fstat(fd, &byFd) == 0 &&
           sameFile(byName, byFd);
}

void writeAll(int fd, const std::string& content, const std::string& what) {
    std::size_t done = 0;
    while (done < content.size()) {
        ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw InspectError(Errc::internal, "cannot write " + what + ": " + std::strerror(n < 0 ? errno : ENOSPC));
        done += static_cast<std::size_t>(n);
    }
}

// Reads the file back through the same descriptor: what the target will
// open is exactly what we meant to write (a full disk or a short write
// would otherwise load half an agent).
void verify(int fd, const std::string& content, const std::string& what) {
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
        static_cast<std::size_t>(st.st_size) != content.size()) {
        throw InspectError(Errc::internal, "the staged " + what + " is not what was written");
    }
    std::vector<char> buf(1 << 20);
    std::size_t at = 0;
    while (at < content.size()) {
        ssize_t n = ::pread(fd, buf.data(), std::min(buf.size(), content.size() - at), static_cast<off_t>(at));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || std::memcmp(buf.data(), content.data() + at, static_cast<std::size_t>(n)) != 0) {
            throw InspectError(Errc::internal, "the staged " + what + " is not what was written");
        }
        at += static_cast<std::size_t>(n);
    }
}

}  // namespace

StagingDir::StagingDir(int tmp, const std::string& tmpInTarget) : m_tmp(::fcntl(tmp, F_DUPFD_CLOEXEC, 0)) {
    if (!m_tmp) throw InspectError(Errc::internal, std::string("cannot duplicate a descriptor: ") + std::strerror(errno));
    for (int attempt = 0; attempt < 16 && !m_dir; ++attempt) {
        std::string random = randomHex16();
        std::string fresh = kFreshPrefix + random;
        if (::mkdirat(tmp, fresh.c_str(), 0700) != 0) {
            if (errno == EEXIST) continue;
            Errc code = errno == EACCES || errno == EPERM || errno == EROFS ? Errc::permission_denied : Errc::internal;
            throw InspectError(code, "cannot create a folder in the target's " + tmpInTarget + ": " + std::strerror(errno) +
                                         (code == Errc::permission_denied ? " (" + permissionAdvice() + ")" : ""));
        }
        Fd dir(::openat(tmp, fresh.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        struct stat st;
        if (!dir || ::fstat(dir.get(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() ||
            ::flock(dir.get(), LOCK_EX | LOCK_NB) != 0 || ::fchmod(dir.get(), 0711) != 0) {
            // Not the folder we made (only possible where others may rename
            // in /tmp): leave that name alone and try another.
            if (dir && stillNamed(tmp, fresh, dir.get())) ::unlinkat(tmp, fresh.c_str(), AT_REMOVEDIR);
            continue;
        }
        std::string name = kStagingPrefix + random;
        if (::renameat2(tmp, fresh.c_str(), tmp, name.c_str(), RENAME_NOREPLACE) != 0 || !stillNamed(tmp, name, dir.get())) {
            if (stillNamed(tmp, fresh, dir.get())) ::unlinkat(tmp, fresh.c_str(), AT_REMOVEDIR);
            continue;
        }
        m_dir = std::move(dir);
        m_name = name;
        m_inTarget = (tmpInTarget == "/" ? "" : tmpInTarget) + "/" + name;
    }
    if (!m_dir) throw InspectError(Errc::internal, "cannot create a private folder in the target's " + tmpInTarget);
}

StagingDir::~StagingDir() {
    clear();
    if (stillNamed(m_tmp.get(), m_name, m_dir.get())) ::unlinkat(m_tmp.get(), m_name.c_str(), AT_REMOVEDIR);
}

std::string StagingDir::here() const { return "/proc/self/fd/" + std::to_string(m_dir.get()); }

void StagingDir::clear() { removeContents(m_dir.get()); }

std::string StagingDir::writeFile(const std::string& name, const std::string& content, uid_t uid, gid_t gid,
                                  mode_t mode) {
    std::string what = m_inTarget + "/" + name;
    Fd file(::openat(m_dir.get(), name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!file) throw InspectError(Errc::internal, "cannot create " + what + ": " + std::strerror(errno));
    writeAll(file.get(), content, what);
    verify(file.get(), content, what);
    // Handed over only now, on the descriptor. Without the right to give
    // files away (not root) the file stays ours, readable by everyone (the
    // folder cannot be listed and the names are random where it matters).
    bool given = ::fchown(file.get(), uid, gid) == 0;
    if (!given && ::geteuid() == 0) throw InspectError(Errc::internal, "cannot hand " + what + " to the target's user");
    if (::fchmod(file.get(), given ? mode : mode | ((mode & 0500) >> 3) | ((mode & 0500) >> 6)) != 0) {
        throw InspectError(Errc::internal, "cannot set the mode of " + what + ": " + std::strerror(errno));
    }
    return what;
}

void removeStaleStaging(int tmp) {
    Fd listing(::openat(tmp, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!listing) return;
    DIR* d = ::fdopendir(listing.get());
    if (!d) return;
    listing.release();
    std::vector<std::string> names;
    std::size_t seen = 0;
    while (dirent* e = ::readdir(d)) {
        if (++seen > 100000) break;  // a /tmp flooded on purpose: the next start tries again
        std::string name = e->d_name;
        if (name.starts_with(kStagingPrefix) || name.starts_with(kFreshPrefix)) names.push_back(name);
    }
    ::closedir(d);
    for (const auto& name : names) {
        Fd dir(::openat(tmp, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        struct stat st;
        if (!dir || ::fstat(dir.get(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) continue;
        if (name.starts_with(kFreshPrefix) && ::time(nullptr) - st.st_ctime < kFreshGraceSeconds) continue;
        if (::flock(dir.get(), LOCK_EX | LOCK_NB) != 0) continue;  // its aioscope is still running
        if (removeContents(dir.get()) && stillNamed(tmp, name, dir.get())) ::unlinkat(tmp, name.c_str(), AT_REMOVEDIR);
    }
}

}  // namespace aioscope::cli
