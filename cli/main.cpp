// aioscope: see README.md. Parses the command line, runs one command, and maps
// every failure to one line on stderr and a documented exit status.
#include <CLI/CLI.hpp>
#include <iostream>

#include "commands/commands.h"
#include "errors.h"

using namespace aioscope;
using namespace aioscope::cli;

namespace {

void addColor(CLI::App* cmd, std::string& color) {
    cmd->add_option("--color", color, "Colour output: auto (on a terminal), always, never")
        ->check(CLI::IsMember({"auto", "always", "never"}))
        ->default_val("auto");
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
    dumpCmd->add_flag("--table", dump.table, "Show asyncio tasks as a table, one line per task");
    addColor(dumpCmd, dumpColor);

    RenderArgs render;
    std::string renderColor;
    auto* renderCmd = app.add_subcommand("render", "Print a snapshot saved with `dump --json` as text");
    renderCmd->add_option("file", render.input, "Snapshot JSON file, or - for standard input")->default_val("-");
    renderCmd->add_flag("--table", render.table, "Show asyncio tasks as a table, one line per task");
    addColor(renderCmd, renderColor);

    DemoArgs demo;
    std::string demoColor;
    auto* demoCmd = app.add_subcommand("demo", "Start a built-in example program, dump it and explain what it shows");
    demoCmd->add_option("--python", demo.python, "Python interpreter to run the example with");
    addColor(demoCmd, demoColor);

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
