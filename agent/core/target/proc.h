// Facts the kernel publishes about a process under /proc: whether it exists,
// its threads, names and mappings, and how to open its files from our mount
// namespace (a target in a container or chroot sees a different "/").
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "target/maps.h"

namespace aioscope {

class ProcFs {
public:
    explicit ProcFs(pid_t pid) : m_pid(pid) {}

    pid_t pid() const { return m_pid; }

    // Throws InspectError (no_such_process / permission_denied).
    void requireAlive() const;
    std::vector<Mapping> maps() const;

    std::string comm() const;                     // process name, "" if unknown
    bool isKernelThread() const;
    std::string exe() const;                      // /proc/PID/exe target, "" if unknown
    std::vector<pid_t> threads() const;           // native thread ids
    std::string threadComm(pid_t tid) const;      // "" if unknown

    // Paths through which the target's file can be opened here, best first:
    // the exact mapped file (map_files), then the file under the target's root.
    std::vector<std::string> openablePaths(const Mapping& m) const;
    // The first of openablePaths() that opens as the mapped file (same
    // inode), read-only; -1 if none does. `path` gets the one used.
    int openMapped(const Mapping& m, std::string& path) const;
    // The same for the file mapped under `name` (a module's path as the
    // target names it: libdwfl asks so): the first mapping of it in `maps`.
    int openMappedNamed(const std::vector<Mapping>& maps, const std::string& name, std::string& path) const;

    std::string path(const std::string& rel) const;

private:
    pid_t m_pid;
};

std::optional<std::string> readSmallFile(const std::string& path, std::size_t cap = 1 << 22);

// The process's start time (clock ticks after boot, /proc/PID/stat field
// 22): with the pid, it names one process. 0 once it is gone.
std::uint64_t startTimeOf(pid_t pid);

// The scheduler state letter of a process (tid 0) or one of its threads from
// /proc (R, S, D, Z: ended but not reaped, ...); 0 once it is gone.
char procState(pid_t pid, pid_t tid = 0);

// Whether a thread is exiting: inside the kernel's exit path (its memory may
// already be gone while its state still says running), a zombie, or gone.
bool threadEnding(pid_t pid, pid_t tid);
// Every thread of the process ending (or none left): the process is ending,
// whatever a step that failed meanwhile said.
bool processEnding(pid_t pid);

// The parent of a process from /proc (0 when it is gone).
pid_t parentOf(pid_t pid);

// The process a thread id belongs to (its Tgid), 0 if there is no such task.
pid_t processOfThread(pid_t tid);

}  // namespace aioscope
