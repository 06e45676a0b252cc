#include "inject/safe_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#include "errors.h"

namespace aioscope::cli {

void Fd::reset() {
    if (m_fd >= 0) ::close(m_fd);
    m_fd = -1;
}

namespace {

// -1 with errno ENOSYS where the kernel (or a seccomp filter) has no openat2.
int openat2Call(int dir, const std::string& path, int flags, std::uint64_t resolve) {
    open_how how{};
    how.flags = static_cast<std::uint64_t>(flags);
    how.resolve = resolve;
    for (;;) {
        long fd = ::syscall(SYS_openat2, dir, path.c_str(), &how, sizeof how);
        // EAGAIN: a concurrent rename made the kernel unsure; just retry.
        if (fd >= 0 || errno != EAGAIN) return static_cast<int>(fd);
    }
}

// The fallback walk: every component opened with O_NOFOLLOW relative to the
// previous one, "." skipped, ".." and symbolic links refused (ELOOP from
// O_NOFOLLOW on a link). Conservative: it refuses what openat2 would follow.
Fd walk(int root, const std::string& relative, int flags) {
    std::vector<std::string> parts;
    for (std::size_t pos = 0; pos <= relative.size();) {
        std::size_t slash = relative.find('/', pos);
        if (slash == std::string::npos) slash = relative.size();
        std::string part = relative.substr(pos, slash - pos);
        pos = slash + 1;
        if (part.empty() || part == ".") continue;
        if (part == "..") {
            errno = EXDEV;
            return Fd();
        }
        parts.push_back(part);
    }
    Fd current(::fcntl(root, F_DUPFD_CLOEXEC, 0));
    if (!current) return Fd();
    if (parts.empty()) return Fd(::openat(current.get(), ".", flags | O_CLOEXEC));
    for (std::size_t i = 0; i < parts.size(); ++i) {
        bool last = i + 1 == parts.size();
        int f = last ? flags | O_NOFOLLOW | O_CLOEXEC : O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
        Fd next(::openat(current.get(), parts[i].c_str(), f));
        if (!next) return Fd();
        current = std::move(next);
    }
    return current;
}

}  // namespace

Fd openInRoot(int root, const std::string& relative, int flags, bool allowSymlinks) {
    std::uint64_t resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | (allowSymlinks ? 0 : RESOLVE_NO_SYMLINKS);
    int fd = openat2Call(root, relative, flags | O_CLOEXEC, resolve);
    if (fd >= 0) return Fd(fd);
    if (errno != ENOSYS && errno != EPERM) return Fd();  // EPERM: a seccomp filter may refuse openat2
    return walk(root, relative, flags);
}

namespace {

bool removeIn(int dir, std::size_t& budget, int depth, bool& truncated) {
    Fd listing(::openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!listing) return false;
    DIR* d = ::fdopendir(listing.get());
    if (!d) return false;
    listing.release();  // owned by d now
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        if (budget == 0) {
            truncated = true;
            break;
        }
        --budget;
        names.push_back(name);
    }
    ::closedir(d);
    bool empty = true;
    for (const auto& name : names) {
        if (::unlinkat(dir, name.c_str(), 0) == 0 || errno == ENOENT) continue;
        if (errno != EISDIR && errno != EPERM) {
            empty = false;
            continue;
        }
        // A directory: empty it through its own descriptor, never by path.
        Fd sub(::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub || depth >= 16 || !removeIn(sub.get(), budget, depth + 1, truncated) ||
            (::unlinkat(dir, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)) {
            empty = false;
        }
    }
    return empty && !truncated;
}

}  // namespace

bool removeContents(int dir, std::size_t maxEntries) {
    std::size_t budget = maxEntries;
    bool truncated = false;
    // Twice: entries removed while listing may hide others from readdir.
    return removeIn(dir, budget, 0, truncated) || (!truncated && removeIn(dir, budget, 0, truncated));
}

std::string randomHex16() {
    unsigned char bytes[8];
    std::size_t got = 0;
    while (got < sizeof bytes) {
        ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
        if (n > 0) got += static_cast<std::size_t>(n);
        else if (errno != EINTR) throw InspectError(Errc::internal, "no random numbers from the kernel (getrandom)");
    }
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (unsigned char b : bytes) {
        out += hex[b >> 4];
        out += hex[b & 15];
    }
    return out;
}

}  // namespace aioscope::cli
