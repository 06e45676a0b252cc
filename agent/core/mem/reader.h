// The one interface through which every byte of the inspected interpreter is
// read: a remote process now, the agent's own process and core files later.
// Implementations never fault on bad addresses; they report it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace aioscope {

using Addr = std::uint64_t;

enum class ReadResult {
    ok,
    fault,   // address not mapped (torn pointer, freed object): recoverable
    gone,    // the process no longer exists
    denied,  // the OS refused access
};

class MemoryReader {
public:
    struct Request {
        Addr addr;
        void* dst;
        std::size_t len;
        ReadResult result = ReadResult::fault;
    };

    virtual ~MemoryReader() = default;

    // Reads exactly len bytes or reports why not.
    virtual ReadResult read(Addr addr, void* dst, std::size_t len) = 0;

    // Reads many ranges; implementations batch them into few system calls.
    virtual void readMany(std::span<Request> requests);
    // The same, past any cache: for many small reads scattered over pages
    // that will not be read again (a cache would fetch each whole page).
    virtual void readManyPast(std::span<Request> requests) { readMany(requests); }

    // Reads as much of [addr, addr+len) as is readable from the start; returns
    // the number of bytes read and why it stopped short.
    virtual std::size_t readPrefix(Addr addr, void* dst, std::size_t len, ReadResult& why);

    // Drop anything cached, so that what is read next comes from the target
    // as it is now (a cache in front of a live process goes stale).
    virtual void forget() {}
    // Only what covers [addr, addr + len).
    virtual void forget(Addr addr, std::size_t len) {
        (void)addr;
        (void)len;
    }
};

}  // namespace aioscope
