// aioscope: see README.md. Parses the command line, runs one command, and maps
// every failure to one line on stderr and a documented exit status. Options
// are checked here, before anything touches a target.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>

#include "agent_protocol.h"
#include "commands/commands.h"
#include "commands/durations.h"
#include "commands/report_commands.h"
#include "early_signals.h"
#include "errors.h"
#include "stream/peer_auth.h"

using namespace aioscope;
using namespace aioscope::cli;

namespace {

constexpr std::int64_t kLongestMs = 366LL * 24 * 3'600'000;  // --timeout, --duration: a year

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

void addStreamOptions(CLI::App* cmd, StreamFlags& f, StreamOptions& out, const char* where) {
    cmd->add_option("--stall-threshold", f.stall,
                    "Report the event loop blocked longer than this (default 100ms; 1ms to 1h)");
    cmd->add_option("--interval", f.interval, "Sampling interval of the agent (default 10ms, 100 Hz; 1ms to 1m)");
    cmd->add_option("--snapshot-every", f.snapshotEvery,
                    "Also stream a snapshot of all tasks this often (e.g. 5s; 0: never, the default; at most 24h)");
    cmd->add_option("-o,--output", out.outputFile, "Also write every event to this JSON Lines file");
    cmd->add_flag("--json", out.json, std::string("JSON Lines on ") + where + ", even on a terminal");
    cmd->add_flag("--track-origins", f.trackOrigins,
                  "Record where every coroutine is created, so a never-awaited one says where it came from "
                  "(CPython's origin tracking: it slows coroutine-heavy code several times)");
    cmd->add_flag("-q,--quiet", out.quiet, std::string("No events on ") + where + " (use with --output)");
    addColor(cmd, f.color);
}

void applyStreamFlags(const StreamFlags& f, AgentOptions& agent, StreamOptions& stream) {
    agent.stallMs = parseDurationMs(f.stall, "--stall-threshold", {protocol::kStallMinMs, protocol::kStallMaxMs});
    agent.intervalMs =
        parseDurationMs(f.interval, "--interval", {protocol::kIntervalMinMs, protocol::kIntervalMaxMs});
    agent.snapshotEveryMs =
        parseDurationMs(f.snapshotEvery, "--snapshot-every", {1, protocol::kSnapshotEveryMaxMs, "never"});
    agent.trackOrigins = f.trackOrigins;
    stream.color = parseColorMode(f.color);
    const char* gha = std::getenv("GITHUB_ACTIONS");
    stream.githubAnnotations = gha && std::string(gha) == "true";
}

// A process id as the kernel writes it: decimal digits, no sign, no spaces,
// no leading zero, no hex, and a process, not one of its threads.
pid_t parsePid(const std::string& text) {
    bool digits = !text.empty() && text.size() <= 10 && text[0] != '0' &&
                  std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
    long long pid = digits ? std::strtoll(text.c_str(), nullptr, 10) : 0;
    if (!digits || pid > INT32_MAX) {
        throw InspectError(Errc::usage, "\"" + text + "\" is not a process id (a decimal number, such as 1234)");
    }
    pid_t owner = processOfThread(static_cast<pid_t>(pid));
    if (owner && owner != pid) {
        throw InspectError(Errc::no_such_process, text + " is a thread of process " + std::to_string(owner) +
                                                      ", not a process: give " + std::to_string(owner));
    }
    return static_cast<pid_t>(pid);
}

// Standard output of dump, render, demo: everything written, or status 14.
int finishStdout(int status) {
    errno = 0;
    std::cout.flush();
    if (std::cout.good()) return status;
    int err = errno;
    std::cerr << "aioscope: cannot write standard output: " << (err ? std::strerror(err) : "write error") << "\n";
    return static_cast<int>(Errc::output_failed);
}

}  // namespace

int main(int argc, char** argv) {
    std::ios::sync_with_stdio(false);
    // `run` gives its program the default back.
    catchPipeSignals();
    CLI::App app{"aioscope: see what every thread and asyncio task of a Python process is doing"};
    app.set_version_flag("--version", std::string("aioscope ") + AIOSCOPE_VERSION);
    app.require_subcommand(1);

    DumpArgs dump;
    std::string dumpColor, dumpPid;
    auto* dumpCmd = app.add_subcommand("dump", "Read a running Python process from outside and print its threads");
    dumpCmd->add_option("pid", dumpPid, "Process id of the Python process")->required();
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
    auto* runCmd = app.add_subcommand("run", "Run a program with the agent loaded and stream what its event loops do "
                                             "(events on standard error)");
    runCmd->add_option("command", run.command, "The program and its arguments, after --")->required();
    runCmd->add_option("--timeout", runTimeout,
                       "Dump everything and stop the program after this long (e.g. 10m; 0: never, the default)");
    runCmd->add_option("--fail-on", runFailOn,
                       "Exit non-zero if any occurred (comma-separated): stall, deadlock, unawaited, "
                       "cancel-swallowed, unretrieved, destroyed-pending");
    addStreamOptions(runCmd, runFlags, run.stream, "standard error");
    std::string runReport;
    addReportOption(runCmd, runReport);

    AttachArgs attach;
    StreamFlags attachFlags;
    std::string attachDuration = "0", attachPid;
    auto* attachCmd = app.add_subcommand("attach", "Load the agent into a running Python process and stream events");
    attachCmd->add_option("pid", attachPid, "Process id of the Python process")->required();
    attachCmd->add_option("--duration", attachDuration, "Detach after this long (default: until exit or Ctrl-C)");
    addStreamOptions(attachCmd, attachFlags, attach.stream, "standard output");
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
        return finishStdout(app.exit(e));
    } catch (const CLI::CallForAllHelp& e) {
        return finishStdout(app.exit(e));
    } catch (const CLI::CallForVersion& e) {
        return finishStdout(app.exit(e));
    } catch (const CLI::ParseError& e) {
        std::cerr << "aioscope: " << e.what() << " (see aioscope --help)\n";
        return static_cast<int>(Errc::usage);
    }

    try {
        if (dumpCmd->parsed()) {
            dump.pid = parsePid(dumpPid);
            dump.color = parseColorMode(dumpColor);
            return finishStdout(runDump(dump));
        }
        if (renderCmd->parsed()) {
            render.color = parseColorMode(renderColor);
            return finishStdout(runRender(render));
        }
        if (runCmd->parsed()) {
            applyStreamFlags(runFlags, run.agent, run.stream);
            run.stream.fd = STDERR_FILENO;  // standard output is the program's
            run.timeoutMs = parseDurationMs(runTimeout, "--timeout", {1, kLongestMs, "never"});
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
                if (!what.empty() && std::find(run.failOn.begin(), run.failOn.end(), what) == run.failOn.end()) {
                    run.failOn.push_back(what);
                }
            }
            return withReport(runReport, run.stream, [&] { return runProgram(run); });
        }
        if (attachCmd->parsed()) {
            attach.pid = parsePid(attachPid);
            applyStreamFlags(attachFlags, attach.agent, attach.stream);
            attach.durationMs = parseDurationMs(attachDuration, "--duration", {1, kLongestMs, "no limit"});
            return withReport(attachReport, attach.stream, [&] { return runAttach(attach); });
        }
        if (auto status = runReportCommands(reportCommands)) return *status;
        if (demoCmd->parsed()) {
            demo.color = parseColorMode(demoColor);
            return finishStdout(runDemo(demo));
        }
    } catch (const InspectError& e) {
        std::cout.flush();
        std::cerr << "aioscope: " << e.what() << "\n";
        return static_cast<int>(e.code());
    } catch (const std::exception& e) {
        std::cout.flush();
        std::cerr << "aioscope: internal error: " << e.what() << "\n";
        return static_cast<int>(Errc::internal);
    }
    return static_cast<int>(Errc::usage);
}
