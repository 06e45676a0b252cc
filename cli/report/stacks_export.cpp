// speedscope and folded stacks: the same samples (stalls or tasks), two formats.
#include <cmath>
#include <ctime>
#include <map>

#include "report/exports.h"

namespace aioscope::cli::report {

using nlohmann::json;

namespace {

struct Sample {
    std::string profile;  // what the sample belongs to: a loop thread, a snapshot
    std::vector<StackFrame> path;
    double weight;
};

std::string isoTime(double ts) {
    std::time_t secs = static_cast<std::time_t>(ts);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[40];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    char ms[8];
    std::snprintf(ms, sizeof ms, ".%03d", static_cast<int>((ts - std::floor(ts)) * 1000) % 1000);
    return std::string(buf) + ms + " UTC";
}

std::string threadLabel(const Stall& s) {
    return "thread " + std::to_string(s.threadKey) + (s.threadName.empty() ? "" : " " + s.threadName);
}

// In a stable order: profiles by first appearance, samples in time order.
std::vector<Sample> samples(const Activity& a, StackSource what) {
    std::vector<Sample> out;
    if (what == StackSource::stalls) {
        for (const auto& s : a.stalls) {
            out.push_back({"pid " + std::to_string(s.pid) + " \u00b7 " + threadLabel(s) + " \u00b7 event loop stalls",
                           stallPath(s), s.durationMs});
        }
    } else {
        for (const auto& snap : a.snapshots) {
            const json& doc = *snap.doc;
            if (!doc.contains("tasks") || !doc["tasks"].is_array()) continue;
            std::string name = "pid " + std::to_string(snap.pid) + " \u00b7 tasks at " + isoTime(snap.ts);
            for (const auto& t : doc["tasks"]) out.push_back({name, taskPath(t), 1});
        }
    }
    return out;
}

}  // namespace

std::string foldedEscape(const std::string& name) {
    std::string out;
    for (unsigned char c : name) {
        if (c == ';' || c == '%' || c < 0x20 || c == 0x7f) {
            char buf[4];
            std::snprintf(buf, sizeof buf, "%%%02X", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

std::size_t writeSpeedscope(std::ostream& out, const Activity& a, StackSource what, const std::string& name) {
    std::vector<Sample> all = samples(a, what);
    json frames = json::array();
    std::map<StackFrame, std::size_t> frameIndex;
    std::vector<std::string> order;
    std::map<std::string, json> profiles;
    for (const auto& s : all) {
        json stack = json::array();
        for (const auto& f : s.path) {
            auto [it, fresh] = frameIndex.try_emplace(f, frames.size());
            if (fresh) {
                json fr = {{"name", f.name}};
                if (!f.file.empty()) fr["file"] = f.file;
                if (f.line) fr["line"] = *f.line;
                frames.push_back(std::move(fr));
            }
            stack.push_back(it->second);
        }
        auto [p, fresh] = profiles.try_emplace(s.profile);
        if (fresh) {
            order.push_back(s.profile);
            p->second = {{"type", "sampled"}, {"name", s.profile},
                         {"unit", what == StackSource::stalls ? "milliseconds" : "none"},
                         {"startValue", 0}, {"endValue", 0.0}, {"samples", json::array()}, {"weights", json::array()}};
        }
        p->second["samples"].push_back(std::move(stack));
        p->second["weights"].push_back(s.weight);
        p->second["endValue"] = p->second["endValue"].get<double>() + s.weight;
    }
    json list = json::array();
    for (const auto& n : order) list.push_back(std::move(profiles[n]));
    json doc = {{"$schema", "https://www.speedscope.app/file-format-schema.json"},
                {"version", "0.0.1"},
                {"exporter", std::string("aioscope@") + AIOSCOPE_VERSION},
                {"name", name},
                {"activeProfileIndex", 0},
                {"shared", {{"frames", std::move(frames)}}},
                {"profiles", std::move(list)}};
    out << doc.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    return all.size();
}

std::size_t writeFolded(std::ostream& out, const Activity& a, StackSource what) {
    std::vector<Sample> all = samples(a, what);
    std::map<std::string, long long> lines;
    for (const auto& s : all) {
        std::string line = foldedEscape(s.profile);
        for (const auto& f : s.path) {
            line += ';';
            line += foldedEscape(frameLabel(f, false));
        }
        // Integer weights: milliseconds blocked (at least 1), or 1 per task.
        lines[line] += std::max<long long>(1, std::llround(s.weight));
    }
    for (const auto& [stack, count] : lines) out << stack << " " << count << "\n";
    return all.size();
}

}  // namespace aioscope::cli::report
