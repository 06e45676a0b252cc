// `aioscope report INPUT... -o report.html` and `run/attach --report`.
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "commands/report_commands.h"
#include "errors.h"
#include "report/html.h"
#include "report/inputs.h"
#include "report/output.h"
#include "report/packed.h"

namespace aioscope::cli {

namespace {

void warnSkipped(const std::vector<report::Input>& inputs) {
    for (const auto& in : inputs) {
        if (in.skipped) {
            std::cerr << "aioscope: warning: " << in.name << ": " << in.skipped << " line(s) skipped ("
                      << in.problems.front() << ")\n";
        }
    }
}

void writeReport(std::vector<report::Input> inputs, const std::string& output) {
    nlohmann::json packed = report::pack(report::reportData(std::move(inputs)));
    report::writeOutput(output, [&](std::ostream& out) { report::writeReportHtml(out, packed); });
}

// A temporary JSON Lines file for a session's events, removed at the end.
struct TempEvents {
    std::string path;
    TempEvents() {
        const char* dir = getenv("TMPDIR");
        std::string tmpl = std::string(dir && *dir ? dir : "/tmp") + "/aioscope-events-XXXXXX.jsonl";
        int fd = mkstemps(tmpl.data(), 6);
        if (fd < 0) throw InspectError(Errc::output_failed, "--report: cannot create a temporary file in " + tmpl);
        close(fd);
        path = tmpl;
    }
    ~TempEvents() { unlink(path.c_str()); }
};

}  // namespace

int runReport(const ReportArgs& args) {
    auto inputs = report::readInputs(args.inputs);
    warnSkipped(inputs);
    writeReport(std::move(inputs), args.output);
    return 0;
}

void addReportOption(CLI::App* cmd, std::string& htmlPath) {
    cmd->add_option("--report", htmlPath,
                    "When the session ends (also on --timeout or Ctrl-C), write everything it saw as one HTML "
                    "file to open in a browser");
}

int withReport(const std::string& htmlPath, StreamOptions& stream, const std::function<int()>& session) {
    if (htmlPath.empty()) return session();
    std::optional<TempEvents> temp;
    if (stream.outputFile.empty()) {
        temp.emplace();
        stream.outputFile = temp->path;
    }
    int status = session();
    try {
        auto inputs = report::readInputs({stream.outputFile});
        if (temp) inputs.front().name = "events of this session";
        writeReport(std::move(inputs), htmlPath);
    } catch (const InspectError& e) {
        std::cerr << "aioscope: no report: " << e.what() << "\n";
        return status == 0 ? static_cast<int>(Errc::output_failed) : status;
    }
    // The text summary names it; JSON on stdout stays JSON.
    if (!stream.json && !stream.quiet && isatty(STDOUT_FILENO)) {
        std::cout << "Report: " << htmlPath << "\n" << std::flush;
    } else {
        std::cerr << "aioscope: report written to " << htmlPath << "\n";
    }
    return status;
}

void addReportCommands(CLI::App& app, ReportCommands& c) {
    c.report = app.add_subcommand("report", "Write one self-contained HTML report of snapshots and event streams");
    c.report->add_option("inputs", c.reportArgs.inputs,
                         "Snapshots (dump --json) and event streams (run/attach --output), - for standard input")
        ->required();
    c.report->add_option("-o,--output", c.reportArgs.output, "The HTML file to write (- for standard output)")->required();

    c.exportCmd = app.add_subcommand("export", "Convert snapshots and event streams for speedscope, Perfetto or FlameGraph");
    c.exportCmd->add_option("inputs", c.exportArgs.inputs, "Snapshots and event streams, - for standard input")->required();
    c.exportCmd->add_option("-o,--output", c.exportArgs.output, "The file to write (- for standard output)")->required();
    c.exportCmd->add_option("--format", c.exportArgs.format, "speedscope, perfetto (Chrome trace JSON) or folded")
        ->required()
        ->check(CLI::IsMember({"speedscope", "perfetto", "folded"}));
    c.exportCmd->add_option("--stacks", c.exportArgs.stacks,
                            "speedscope/folded: the stacks of stalls (default) or of every task in every snapshot")
        ->check(CLI::IsMember({"stalls", "tasks"}));
}

std::optional<int> runReportCommands(const ReportCommands& c) {
    if (c.report && c.report->parsed()) return runReport(c.reportArgs);
    if (c.exportCmd && c.exportCmd->parsed()) return runExport(c.exportArgs);
    return std::nullopt;
}

}  // namespace aioscope::cli
