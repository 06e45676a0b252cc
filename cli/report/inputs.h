// What `aioscope report` and `aioscope export` read: snapshots written by
// `dump --json` (aioscope/snapshot/1) and event streams written by `run` or
// `attach` (aioscope/event/1, JSON Lines), any number, from any processes.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace aioscope::cli::report {

struct Input {
    std::string name;  // the path as given ("-": standard input)
    bool snapshot = false;
    nlohmann::json doc;                // snapshot
    std::vector<nlohmann::json> events;  // event stream
    std::size_t skipped = 0;           // lines that were not events
    std::vector<std::string> problems;  // what was skipped, one sentence each
};

// Reads every file. A file that cannot be opened or holds no snapshot and
// no event throws InspectError(bad_input); a stream with a few bad lines (a
// cut-off last line, an interrupted write) is kept, its problems recorded.
std::vector<Input> readInputs(const std::vector<std::string>& paths);

// The report's data document: {"format": "aioscope/report/1", "sources": [...]}
// (viewer/js/core/load.js reads it).
nlohmann::json reportData(std::vector<Input> inputs);

}  // namespace aioscope::cli::report
