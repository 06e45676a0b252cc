// What the exports need from the inputs, on one time axis: each process, its
// loop threads' stalls (a `stall` paired with its `stall_end`), snapshots,
// silent-bug events and messages. The same pairing and stack rules as the
// viewer (viewer/js/core/model.js, flame.js).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "report/inputs.h"

namespace aioscope::cli::report {

struct StackFrame {
    std::string name;
    std::string file;          // Python: co_filename; native: the module
    std::optional<long> line;  // Python frames only
    bool native = false;
    bool operator<(const StackFrame& o) const {
        return std::tie(native, name, file, line) < std::tie(o.native, o.name, o.file, o.line);
    }
};

struct Stall {
    long pid = 0;
    std::int64_t threadKey = 0;  // the native thread id, else the Python thread id
    std::string threadName;      // from a snapshot of the process, if any
    std::int64_t stallId = 0;
    double start = 0;            // Unix seconds
    double durationMs = 0;       // exact (stall_end) or at least (elapsed_ms)
    bool exact = false;
    const nlohmann::json* event = nullptr;  // the `stall` (null if only its end was seen)
};

struct Snapshot {
    long pid = 0;
    double ts = 0;
    const nlohmann::json* doc = nullptr;  // threads, tasks, findings
};

struct Moment {  // a silent-bug event or a message
    long pid = 0;
    double ts = 0;
    const nlohmann::json* event = nullptr;
};

struct Process {
    long pid = 0;
    std::string python;  // version
    std::string executable;
    double first = 0, last = 0;
    bool seen = false;
};

struct Activity {
    std::map<long, Process> processes;
    std::vector<Stall> stalls;  // by start time
    std::vector<Snapshot> snapshots;
    std::vector<Moment> bugs;
    std::vector<Moment> messages;
    double t0 = 0, t1 = 0;
};

// `inputs` must outlive the result (it points into them).
Activity collectActivity(const std::vector<Input>& inputs);

// A stall's stack, outermost first: the Python frames, then the native frames
// the innermost Python frame called (those above the eval loop, without the
// calling-convention glue between it and the C function).
std::vector<StackFrame> stallPath(const Stall& stall);
// A task's stack (a snapshot's Task), outermost first.
std::vector<StackFrame> taskPath(const nlohmann::json& task);

// "qualname (file:line)" / "function (module)"; file names shortened to their
// last component when `shortFiles`.
std::string frameLabel(const StackFrame& f, bool shortFiles);

}  // namespace aioscope::cli::report
