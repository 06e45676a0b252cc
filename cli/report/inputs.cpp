#include "report/inputs.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "errors.h"

namespace aioscope::cli::report {

using nlohmann::json;

namespace {

constexpr const char* kSnapshotSchema = "aioscope/snapshot/1";
constexpr const char* kEventSchema = "aioscope/event/1";
constexpr std::size_t kMaxProblems = 5;

std::string readAll(const std::string& path) {
    if (path == "-") {
        std::ostringstream ss;
        ss << std::cin.rdbuf();
        return ss.str();
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InspectError(Errc::bad_input, "cannot open " + path + ": " + std::strerror(errno));
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) throw InspectError(Errc::bad_input, "cannot read " + path);
    return ss.str();
}

bool isEvent(const json& e) {
    return e.is_object() && e.contains("schema") && e["schema"] == kEventSchema && e.contains("type") && e["type"].is_string();
}

Input fromLines(const std::string& name, const std::string& text) {
    Input in;
    in.name = name;
    std::vector<std::pair<std::size_t, std::string_view>> lines;
    std::size_t lineNo = 0;
    for (std::size_t pos = 0; pos < text.size();) {
        std::size_t nl = text.find('\n', pos);
        std::size_t end = nl == std::string::npos ? text.size() : nl;
        ++lineNo;
        std::string_view line(text.data() + pos, end - pos);
        if (line.find_first_not_of(" \t\r") != std::string_view::npos) lines.emplace_back(lineNo, line);
        pos = end + 1;
    }
    for (std::size_t i = 0; i < lines.size(); ++i) {
        json e = json::parse(lines[i].second, nullptr, /*allow_exceptions=*/false);
        if (isEvent(e)) {
            in.events.push_back(std::move(e));
            continue;
        }
        ++in.skipped;
        if (in.problems.size() < kMaxProblems) {
            bool last = i + 1 == lines.size();
            in.problems.push_back(e.is_discarded() && last
                                      ? "the last line is cut off (the stream was interrupted)"
                                      : "line " + std::to_string(lines[i].first) + " is not an aioscope event");
        }
    }
    return in;
}

}  // namespace

std::vector<Input> readInputs(const std::vector<std::string>& paths) {
    std::vector<Input> out;
    for (const auto& path : paths) {
        std::string text = readAll(path);
        const std::string name = path == "-" ? "standard input" : path;
        if (text.find_first_not_of(" \t\r\n") == std::string::npos) throw InspectError(Errc::bad_input, name + " is empty");
        json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
        if (!doc.is_discarded()) {
            if (doc.is_object() && doc.value("schema", json()) == kSnapshotSchema) {
                if (!doc.contains("threads") || !doc["threads"].is_array()) {
                    throw InspectError(Errc::bad_input, name + " is not a complete aioscope snapshot (no threads)");
                }
                Input in;
                in.name = path;
                in.snapshot = true;
                in.doc = std::move(doc);
                out.push_back(std::move(in));
                continue;
            }
            if (isEvent(doc)) {
                Input in;
                in.name = path;
                in.events.push_back(std::move(doc));
                out.push_back(std::move(in));
                continue;
            }
            std::string schema = doc.is_object() && doc.contains("schema") && doc["schema"].is_string()
                                     ? " (its schema is \"" + doc["schema"].get<std::string>().substr(0, 60) + "\")"
                                     : "";
            throw InspectError(Errc::bad_input, name + " is not an aioscope snapshot or event stream" + schema);
        }
        Input in = fromLines(path, text);
        if (in.events.empty()) {
            throw InspectError(Errc::bad_input, name + " is neither an aioscope snapshot nor an event stream (" +
                                                    (in.problems.empty() ? "no events" : in.problems.front()) + ")");
        }
        out.push_back(std::move(in));
    }
    return out;
}

json reportData(std::vector<Input> inputs) {
    json sources = json::array();
    for (auto& in : inputs) {
        if (in.snapshot) {
            sources.push_back({{"name", in.name}, {"kind", "snapshot"}, {"doc", std::move(in.doc)}});
        } else {
            sources.push_back({{"name", in.name}, {"kind", "events"}, {"events", std::move(in.events)}, {"skipped", in.skipped},
                               {"errors", in.problems}});
        }
    }
    double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    return {{"format", "aioscope/report/1"}, {"generator", std::string("aioscope ") + AIOSCOPE_VERSION},
            {"created_at", now}, {"sources", std::move(sources)}};
}

}  // namespace aioscope::cli::report
