#include <cstdio>
#include <fstream>
#include <iostream>

#include "commands/commands.h"
#include "errors.h"
#include "render/snapshot_input.h"
#include "render/text.h"

namespace aioscope::cli {

namespace {

// No snapshot aioscope writes comes near this (100,000 tasks take about
// 40 MB); anything larger is not one, and reading it would only fill memory.
constexpr std::size_t kMaxInput = 1u << 30;

std::string readCapped(std::istream& in, const std::string& name) {
    std::string text;
    char buf[1 << 16];
    bool started = false;
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        std::size_t from = text.size();
        text.append(buf, static_cast<std::size_t>(in.gcount()));
        if (text.size() > kMaxInput) {
            throw InspectError(Errc::bad_input, name + " is larger than 1 GiB: not an aioscope snapshot");
        }
        // A snapshot is a JSON object: reject anything else at once
        // (`render /dev/zero` need not read a gigabyte to say so).
        std::size_t start = started ? std::string::npos : text.find_first_not_of(" \t\r\n", from);
        if (start != std::string::npos) {
            if (text[start] != '{') throw InspectError(Errc::bad_input, name + " is not valid JSON");
            started = true;
        }
    }
    if (in.bad()) throw InspectError(Errc::bad_input, "cannot read " + name);
    return text;
}

}  // namespace

int runRender(const RenderArgs& args) {
    const std::string name = args.input == "-" ? std::string("standard input") : args.input;
    std::string text;
    if (args.input == "-") {
        text = readCapped(std::cin, name);
    } else {
        std::ifstream in(args.input, std::ios::binary);
        if (!in) throw InspectError(Errc::bad_input, "cannot open " + args.input);
        text = readCapped(in, name);
    }
    // snapshotFromText refuses nesting deeper than any snapshot has before parsing.
    Snapshot snap = snapshotFromText(text, name);
    renderText(snap, std::cout, Style::forStdout(args.color), args.table);
    return 0;
}

}  // namespace aioscope::cli
