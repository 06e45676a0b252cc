// aioscope: see README.md. Parses the command line, runs one command, and maps
// every failure to one line on stderr and a documented exit status.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <map>
#include <iostream>

#include "commands/commands.h"
#include "commands/durations.h"
#include "commands/report_commands.h"
#include "errors.h"

using namespace aioscope;
using namespace aioscope::cli;

namespace {

void addColor(CLI::App* cmd, std::string& color) {
    cmd->add_option("--color", color, "Colour output: auto (on a terminal), always, never")
        ->check(CLI::IsMember({"auto", "always", "never"}))
        ->default_val("auto");
}

struct StreamFlags {
    std::string stall = "100ms";
    std::string interval = "10ms";
    std::string snapshotEvery = "0";
    std::string color;
    bool trackOrigins = false;
};

void addStreamOptions(CLI::App* cmd, StreamFlags& f, StreamOptions& out) {
    cmd->add_option("--stall-threshold", f.stall, "Report the event loop blocked longer than this (default 100ms)");
    cmd->add_option("--interval", f.interval, "Sampling interval of the agent (default 10ms, 100 Hz)");
    cmd->add_option("--snapshot-every", f.snapshotEvery, "Also stream a snapshot of all tasks this often (e.g. 5s)");
    cmd->add_option("-o,--output", out.outputFile, "Write every event to this JSON Lines file");
    cmd->add_flag("--json", out.json, "JSON Lines on standard output, even on a terminal");
    cmd->add_flag("--track-origins", f.trackOrigins,
                  "Record where every coroutine is created, so a never-awaited one says where it came from "
                  "(CPython's origin tracking: it slows coroutine-heavy code several times)");
    cmd->add_flag("-q,--quiet", out.quiet, "Nothing on standard output (use with --output)");
    addColor(cmd, f.color);
}

void applyStreamFlags(const StreamFlags& f, AgentOptions& agent, StreamOptions& stream) {
    agent.stallMs = std::max<std::int64_t>(1, parseDurationMs(f.stall, "--stall-threshold"));
    agent.intervalMs = std::max<std::int64_t>(1, parseDurationMs(f.interval, "--interval"));
    agent.snapshotEveryMs = parseDurationMs(f.snapshotEvery, "--snapshot-every");
    agent.trackOrigins = f.trackOrigins;
    stream.color = parseColorMode(f.color);
    const char* gha = std::getenv("GITHUB_ACTIONS");
    stream.githubAnnotations = gha && std::string(gha) == "true";
}

}  // namespace

int main(int argc, char** argv) {
    std::ios::sync_with_stdio(false);
    CLI::App app{"aioscope: see what every thread and asyncio task of a Python process is doing"};
    app.set_version_flag("--version", std::string("aioscope ") + AIOSCOPE_VERSION);
    app.require_subcommand(1);

    DumpArgs dump;
    std::string dumpColor;
    auto* dumpCmd = app.add_subcommand("dump", "Read a running Python process from outside and print its threads");
    dumpCmd->add_option("pid", dump.pid, "Process id of the Python process")->required();
    dumpCmd->add_flag("--json", dump.json, "Print one JSON document (schema aioscope/snapshot/1)");
    dumpCmd->add_flag("--pause", dump.pause, "Stop the process while reading, for a consistent snapshot");
    dumpCmd->add_flag("--table", dump.table, "Show asyncio and trio tasks as a table, one line per task");
    addColor(dumpCmd, dumpColor);

    RenderArgs render;
    std::string renderColor;
    auto* renderCmd = app.add_subcommand("render", "Print a snapshot saved with `dump --json` as text");
    renderCmd->add_option("file", render.input, "Snapshot JSON file, or - for standard input")->default_val("-");
    renderCmd->add_flag("--table", render.table, "Show asyncio and trio tasks as a table, one line per task");
    addColor(renderCmd, renderColor);

    RunArgs run;
    StreamFlags runFlags;
    std::string runTimeout = "0", runFailOn;
    auto* runCmd = app.add_subcommand("run", "Run a program with the agent loaded and stream what its event loops do");
    runCmd->add_option("command", run.command, "The program and its arguments, after --")->required();
    runCmd->add_option("--timeout", runTimeout, "Dump everything and stop the program after this long (e.g. 10m)");
    runCmd->add_option("--fail-on", runFailOn,
                       "Exit non-zero if any occurred (comma-separated): stall, deadlock, unawaited, "
                       "cancel-swallowed, unretrieved, destroyed-pending");
    addStreamOptions(runCmd, runFlags, run.stream);
    std::string runReport;
    addReportOption(runCmd, runReport);

    AttachArgs attach;
    StreamFlags attachFlags;
    std::string attachDuration = "0";
    auto* attachCmd = app.add_subcommand("attach", "Load the agent into a running Python process and stream events");
    attachCmd->add_option("pid", attach.pid, "Process id of the Python process")->required();
    attachCmd->add_option("--duration", attachDuration, "Detach after this long (default: until exit or Ctrl-C)");
    addStreamOptions(attachCmd, attachFlags, attach.stream);
    std::string attachReport;
    addReportOption(attachCmd, attachReport);

    DemoArgs demo;
    std::string demoColor;
    auto* demoCmd = app.add_subcommand("demo", "Start a built-in example program, dump it and explain what it shows");
    demoCmd->add_option("--python", demo.python, "Python interpreter to run the example with");
    addColor(demoCmd, demoColor);

    ReportCommands reportCommands;
    addReportCommands(app, reportCommands);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::cerr << "aioscope: " << e.what() << " (see aioscope --help)\n";
        return static_cast<int>(Errc::usage);
    }

    try {
        if (dumpCmd->parsed()) {
            dump.color = parseColorMode(dumpColor);
            return runDump(dump);
        }
        if (renderCmd->parsed()) {
            render.color = parseColorMode(renderColor);
            return runRender(render);
        }
        if (runCmd->parsed()) {
            applyStreamFlags(runFlags, run.agent, run.stream);
            run.timeoutMs = parseDurationMs(runTimeout, "--timeout");
            for (std::size_t pos = 0; pos < runFailOn.size();) {
                std::size_t comma = runFailOn.find(',', pos);
                std::string what = runFailOn.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
                pos = comma == std::string::npos ? runFailOn.size() : comma + 1;
                static const std::map<std::string, std::string> bugs{
                    {"unawaited", "unawaited_coroutine"}, {"cancel-swallowed", "cancellation_swallowed"},
                    {"unretrieved", "task_exception_unretrieved"}, {"destroyed-pending", "task_destroyed_pending"}};
                if (what == "stall") run.failOnStall = true;
                else if (what == "deadlock") run.failOnDeadlock = true;
                else if (bugs.count(what)) run.failOnBugs.push_back(bugs.at(what));
                else if (!what.empty()) {
                    throw InspectError(Errc::usage, "--fail-on: unknown condition \"" + what +
                                                        "\" (stall, deadlock, unawaited, cancel-swallowed, "
                                                        "unretrieved, destroyed-pending)");
                }
            }
            return withReport(runReport, run.stream, [&] { return runProgram(run); });
        }
        if (attachCmd->parsed()) {
            applyStreamFlags(attachFlags, attach.agent, attach.stream);
            attach.durationMs = parseDurationMs(attachDuration, "--duration");
            return withReport(attachReport, attach.stream, [&] { return runAttach(attach); });
        }
        if (auto status = runReportCommands(reportCommands)) return *status;
        if (demoCmd->parsed()) {
            demo.color = parseColorMode(demoColor);
            return runDemo(demo);
        }
    } catch (const InspectError& e) {
        std::cerr << "aioscope: " << e.what() << "\n";
        return static_cast<int>(e.code());
    } catch (const std::exception& e) {
        std::cerr << "aioscope: internal error: " << e.what() << "\n";
        return static_cast<int>(Errc::internal);
    }
    return static_cast<int>(Errc::usage);
}
