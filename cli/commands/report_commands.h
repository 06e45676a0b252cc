// `aioscope report` (one self-contained HTML file), `aioscope export` (other
// tools' formats) and the `--report FILE.html` option of run/attach. Kept
// apart from commands.h so main.cpp needs only a few lines for them.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "stream/event_stream.h"

namespace aioscope::cli {

struct ReportArgs {
    std::vector<std::string> inputs;
    std::string output;
};
int runReport(const ReportArgs& args);

struct ExportArgs {
    std::vector<std::string> inputs;
    std::string output;
    std::string format;  // speedscope, perfetto, folded
    std::string stacks = "stalls";  // stalls or tasks (speedscope, folded)
};
int runExport(const ExportArgs& args);

struct ReportCommands {
    CLI::App* report = nullptr;
    CLI::App* exportCmd = nullptr;
    ReportArgs reportArgs;
    ExportArgs exportArgs;
};
// Adds `report` and `export` to the command line.
void addReportCommands(CLI::App& app, ReportCommands& commands);
// The exit status of `report` or `export` if one of them was given.
std::optional<int> runReportCommands(const ReportCommands& commands);

// `--report FILE.html` for run/attach.
void addReportOption(CLI::App* cmd, std::string& htmlPath);
// Runs a session (run or attach) and, if `htmlPath` is set, writes the report
// of everything it streamed when it ends, however it ends (the program's exit,
// --timeout, Ctrl-C): the events go to --output's file, or to a temporary one.
// Returns the session's status, or 14 if it was 0 and the report could not
// be written.
int withReport(const std::string& htmlPath, StreamOptions& stream, const std::function<int()>& session);

}  // namespace aioscope::cli
