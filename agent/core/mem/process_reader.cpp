#include "mem/process_reader.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

namespace aioscope {

namespace {
constexpr std::size_t kMaxIov = 1024;  // IOV_MAX on Linux
}

ProcessReader::ProcessReader(pid_t pid) : m_pid(pid) {}

ProcessReader::~ProcessReader() {
    if (m_memFd >= 0) ::close(m_memFd);
}

ReadResult ProcessReader::classify(int err) const {
    switch (err) {
        case ESRCH: return ReadResult::gone;
        case EPERM:
        case EACCES: return ReadResult::denied;
        default: return ReadResult::fault;
    }
}

ReadResult ProcessReader::read(Addr addr, void* dst, std::size_t len) {
    if (len == 0) return ReadResult::ok;
    if (m_useProcMem) return readViaProcMem(addr, dst, len);
    iovec local{dst, len};
    iovec remote{reinterpret_cast<void*>(addr), len};
    ssize_t n = ::process_vm_readv(m_pid, &local, 1, &remote, 1, 0);
    if (n == static_cast<ssize_t>(len)) return ReadResult::ok;
    if (n >= 0) return ReadResult::fault;  // crossed into an unmapped page
    if (errno == ENOSYS) {
        m_useProcMem = true;
        return readViaProcMem(addr, dst, len);
    }
    return classify(errno);
}

std::size_t ProcessReader::readPrefix(Addr addr, void* dst, std::size_t len, ReadResult& why) {
    if (m_useProcMem) return MemoryReader::readPrefix(addr, dst, len, why);
    iovec local{dst, len};
    iovec remote{reinterpret_cast<void*>(addr), len};
    ssize_t n = ::process_vm_readv(m_pid, &local, 1, &remote, 1, 0);
    if (n >= 0) {
        why = static_cast<std::size_t>(n) == len ? ReadResult::ok : ReadResult::fault;
        return static_cast<std::size_t>(n);
    }
    if (errno == ENOSYS) return MemoryReader::readPrefix(addr, dst, len, why);
    why = classify(errno);
    return 0;
}

ReadResult ProcessReader::readViaProcMem(Addr addr, void* dst, std::size_t len) {
    if (m_memFd < 0) {
        std::string path = "/proc/" + std::to_string(m_pid) + "/mem";
        m_memFd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (m_memFd < 0) return errno == ENOENT ? ReadResult::gone : classify(errno);
    }
    ssize_t n = ::pread(m_memFd, dst, len, static_cast<off_t>(addr));
    if (n == static_cast<ssize_t>(len)) return ReadResult::ok;
    if (n >= 0) return ReadResult::fault;
    return errno == EIO ? ReadResult::fault : classify(errno);
}

void ProcessReader::readMany(std::span<Request> requests) {
    if (m_useProcMem) {
        MemoryReader::readMany(requests);
        return;
    }
    std::vector<iovec> local;
    std::vector<iovec> remote;
    std::size_t i = 0;
    while (i < requests.size()) {
        std::size_t end = std::min(requests.size(), i + kMaxIov);
        local.clear();
        remote.clear();
        std::size_t total = 0;
        for (std::size_t k = i; k < end; ++k) {
            local.push_back({requests[k].dst, requests[k].len});
            remote.push_back({reinterpret_cast<void*>(requests[k].addr), requests[k].len});
            total += requests[k].len;
        }
        ssize_t n = ::process_vm_readv(m_pid, local.data(), local.size(), remote.data(),
                                       remote.size(), 0);
        if (n < 0) {
            ReadResult r = classify(errno);
            if (r != ReadResult::fault) {
                for (std::size_t k = i; k < requests.size(); ++k) requests[k].result = r;
                return;
            }
            n = 0;
        }
        // The kernel stops at the first remote range it cannot read: everything
        // before it is complete, that one is classified alone, the rest retried.
        std::size_t done = static_cast<std::size_t>(n);
        std::size_t k = i;
        while (k < end && done >= requests[k].len) {
            done -= requests[k].len;
            requests[k].result = ReadResult::ok;
            ++k;
        }
        if (static_cast<std::size_t>(n) == total) {
            i = end;
            continue;
        }
        requests[k].result = read(requests[k].addr, requests[k].dst, requests[k].len);
        if (requests[k].result == ReadResult::gone || requests[k].result == ReadResult::denied) {
            for (std::size_t j = k + 1; j < requests.size(); ++j) requests[j].result = requests[k].result;
            return;
        }
        i = k + 1;
    }
}

}  // namespace aioscope
