// File operations in directories that another user can write to, or that
// lie inside another process's root (/proc/PID/root, a chroot or container),
// made so that nobody can redirect them with a symbolic link: everything is
// relative to directory file descriptors, the last component is never
// followed, and a path inside a foreign root never leaves that root.
#pragma once

#include <cstddef>
#include <string>

namespace aioscope::cli {

// An owned file descriptor (-1 when empty), closed on destruction.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : m_fd(fd) {}
    ~Fd() { reset(); }
    Fd(Fd&& o) noexcept : m_fd(o.release()) {}
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) {
            reset();
            m_fd = o.release();
        }
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;

    int get() const { return m_fd; }
    explicit operator bool() const { return m_fd >= 0; }
    int release() {
        int fd = m_fd;
        m_fd = -1;
        return fd;
    }
    void reset();

private:
    int m_fd = -1;
};

// Opens `relative` (no leading "/") below the directory `root` as the target
// process would, but inside `root` only: "..", absolute symbolic links and
// /proc magic links cannot lead out of it. `flags` are open(2) flags
// (O_CLOEXEC is added). With openat2 (Linux 5.6+): RESOLVE_IN_ROOT |
// RESOLVE_NO_MAGICLINKS, and RESOLVE_NO_SYMLINKS unless `allowSymlinks`;
// without it, a walk one component at a time with O_NOFOLLOW that refuses
// every symbolic link. Returns an empty Fd with errno set on failure.
Fd openInRoot(int root, const std::string& relative, int flags, bool allowSymlinks);

// Removes every entry below the directory `dir` without following links
// (unlinkat on the directory's descriptor; subdirectories are opened with
// O_NOFOLLOW). At most `maxEntries` entries and 16 levels: a hostile owner
// of a subdirectory cannot keep us busy. True when it is empty afterwards.
bool removeContents(int dir, std::size_t maxEntries = 100000);

// 16 random lowercase hex characters (getrandom).
std::string randomHex16();

}  // namespace aioscope::cli
