// Symbols for the native stacks of one process, kept between captures: an
// elfutils session (Dwfl) with the process's modules, reported again at each
// capture (a module still mapped where it was keeps what it loaded: symbol
// tables, line tables, unwind tables). Building it afresh for every stall
// cost 50-400 ms (a libpython with debug info), during which the next stall
// of the process waited unread, and its callback could end before the CLI
// stopped the thread.
#pragma once

#include <elfutils/libdwfl.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "target/maps.h"

namespace aioscope::cli {

class ProcessSymbols {
public:
    // Not copyable: owns the Dwfl.
    ProcessSymbols(pid_t pid, std::uint64_t startTime);
    ~ProcessSymbols();
    ProcessSymbols(const ProcessSymbols&) = delete;
    ProcessSymbols& operator=(const ProcessSymbols&) = delete;

    pid_t pid() const { return m_pid; }
    std::uint64_t startTime() const { return m_startTime; }

    // Reports the process's current modules; nullptr if its mappings cannot
    // be read (it exited), with `error` saying so. The Dwfl stays valid until
    // the next refresh() or the end of this object.
    Dwfl* refresh(std::string& error);

    // elfutils' unwinder is attached to a Dwfl once, with this as the
    // argument of its callbacks: each capture points it at its own copy.
    struct UnwindArg {
        void* copy = nullptr;
        pid_t tid = 0;
    };
    UnwindArg unwindArg;
    bool unwinderAttached = false;

private:
    pid_t m_pid;
    std::uint64_t m_startTime;
    Dwfl* m_dwfl = nullptr;
    std::vector<Mapping> m_maps;  // for the find_elf callback, kept with the Dwfl
};

// The symbols of `pid`, kept for the few processes that stalled last (a
// process reusing a pid gets fresh ones: keyed by its start time too).
// nullptr if the process is gone.
ProcessSymbols* symbolsOf(pid_t pid);
// Drops what is kept for `pid` (its agent has gone).
void forgetSymbolsOf(pid_t pid);
// How many processes' symbols are kept now.
std::size_t symbolsKept();

}  // namespace aioscope::cli
