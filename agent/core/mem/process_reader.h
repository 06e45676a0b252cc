// Reads another process's memory with process_vm_readv (batched), falling back to
// /proc/PID/mem where cross-memory attach is unavailable. The same class reads
// the agent's own process: process_vm_readv on getpid() returns EFAULT instead of
// crashing on a torn pointer.
#pragma once

#include <sys/types.h>

#include "mem/reader.h"

namespace aioscope {

class ProcessReader final : public MemoryReader {
public:
    explicit ProcessReader(pid_t pid);
    ~ProcessReader() override;
    ProcessReader(const ProcessReader&) = delete;
    ProcessReader& operator=(const ProcessReader&) = delete;

    ReadResult read(Addr addr, void* dst, std::size_t len) override;
    void readMany(std::span<Request> requests) override;
    std::size_t readPrefix(Addr addr, void* dst, std::size_t len, ReadResult& why) override;

    pid_t pid() const { return m_pid; }

private:
    ReadResult readViaProcMem(Addr addr, void* dst, std::size_t len);
    ReadResult classify(int err) const;

    pid_t m_pid;
    int m_memFd = -1;
    bool m_useProcMem = false;
};

}  // namespace aioscope
