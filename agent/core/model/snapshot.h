// The snapshot: a plain value describing one moment of a Python process. The
// walkers produce it, analyses read it, renderers print it; nothing in it
// points back into the target. Serialized as "aioscope/snapshot/1"
// (docs/json-schema.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace aioscope {

inline constexpr const char* kSnapshotSchema = "aioscope/snapshot/1";

struct Frame {
    std::string function;  // co_name
    std::string qualname;  // co_qualname (co_name on 3.10)
    std::string file;      // co_filename
    std::optional<int> line;

    bool operator==(const Frame&) const = default;
};

struct Thread {
    std::int64_t interpreterId = 0;
    std::uint64_t threadId = 0;              // threading.get_ident()
    std::optional<std::int64_t> nativeId;    // threading.get_native_id()
    std::optional<std::string> name;
    bool holdsGil = false;
    std::vector<Frame> frames;               // innermost first
    bool truncated = false;                  // more frames than aioscope reads
    std::optional<std::string> error;        // why frames are incomplete
};

struct PythonInfo {
    std::string version;        // "3.12.1"
    std::uint64_t hexversion = 0;
    std::string implementation = "cpython";
    std::string executable;     // /proc/PID/exe as the target names it
    std::string runtimeFile;    // the ELF file holding _PyRuntime
    bool sharedLibpython = false;
    std::string layoutSource;
};

struct Snapshot {
    std::int64_t pid = 0;
    double capturedAt = 0;           // unix seconds
    double durationMs = 0;           // time spent reading
    std::optional<double> pausedMs;  // with --pause: how long the target was stopped
    int attempts = 1;                // reads needed for a consistent result
    PythonInfo python;
    std::vector<Thread> threads;
    std::vector<std::string> warnings;
};

}  // namespace aioscope
