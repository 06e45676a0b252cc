// Finding trio in a process without running code in it: its classes (by
// identity, through sys.modules) and every Runner of a trio.run in progress.
// A runner is found two ways, each validated by the Runner class's identity:
// the `runner` local of trio.run's frame (which also names the thread), and
// trio's thread-local run context (which also finds guest-mode runs, whose
// thread has no trio.run frame).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "layout/trio_layout.h"
#include "remote/fields.h"
#include "walk/interpreters.h"
#include "walk/locals.h"

namespace aioscope {

struct TrioClasses {
    Addr runner = 0, task = 0, nursery = 0;                                   // required
    Addr cancelStatus = 0, lockImpl = 0, capacityLimiter = 0, cancelled = 0;  // 0: not checked
    Addr runCode = 0;                                                         // trio.run's code object
    Addr runContext = 0;  // the threading.local holding each thread's runner
};

struct TrioRuntime {
    std::optional<TrioClasses> classes;                    // nullopt: trio is not imported
    std::map<Addr, std::optional<std::uint64_t>> runners;  // runner -> the thread in trio.run, if known
    std::vector<std::string> libraryDirs;                  // ".../trio/", ".../anyio/": where the libraries' files are
    std::vector<std::string> warnings;
    bool torn = false;
};

TrioRuntime findTrio(Fields& fields, FrameWalker& frames, FrameLocals& locals, const TrioLayout& layout,
                     const InterpreterState& interp, const std::vector<ThreadState>& threads,
                     const std::unordered_map<std::uint64_t, WalkedStack>& stacks);

}  // namespace aioscope
