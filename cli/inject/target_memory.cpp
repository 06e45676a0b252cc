#include "inject/target_memory.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <string>

namespace aioscope::cli {

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
