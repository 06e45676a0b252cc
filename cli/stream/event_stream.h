// Where events go: standard output (rendered as text on a terminal, JSON
// Lines otherwise or with --json), a JSON Lines file (--output), or both;
// GitHub Actions annotations for stalls. Also counts what CI mode fails on.
// Lines from agents are untrusted: anything that is not an aioscope event is
// dropped with a warning.
#pragma once

#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "render/style.h"

namespace aioscope::cli {

// The agent's events for asyncio bugs that leave no trace otherwise.
inline constexpr const char* kBugEventTypes[] = {"unawaited_coroutine", "cancellation_swallowed",
                                                 "task_exception_unretrieved", "task_destroyed_pending"};

struct StreamOptions {
    ColorMode color = ColorMode::automatic;
    bool json = false;               // JSON Lines on stdout even on a terminal
    std::string outputFile;          // also (or only, with --quiet) write JSON Lines here
    bool quiet = false;              // nothing on stdout but the final summary
    bool githubAnnotations = false;  // ::error file=...,line=...:: for stalls
};

class EventStream {
public:
    explicit EventStream(const StreamOptions& options);

    // Parses an agent's line; nullopt (and a warning) if it is not an event.
    std::optional<nlohmann::json> parse(const std::string& line);
    void emit(const nlohmann::json& event);
    // An event made by the CLI itself (exit, warnings).
    nlohmann::json make(const char* type, long pid);
    void warn(const std::string& message);

    int stalls() const { return m_stalls; }
    int deadlocks() const { return m_deadlocks; }
    // Silent asyncio bugs seen, by event type (unawaited_coroutine, ...).
    int bugs(const std::string& type) const { auto it = m_bugs.find(type); return it == m_bugs.end() ? 0 : it->second; }
    bool text() const { return m_text; }
    const Style& style() const { return m_style; }

private:
    void renderText(const nlohmann::json& e);

    StreamOptions m_options;
    Style m_style;
    bool m_text;
    std::unique_ptr<std::ofstream> m_file;
    std::map<long, nlohmann::json> m_python;  // pid -> python info from hello
    int m_stalls = 0;
    int m_deadlocks = 0;
    int m_dropped = 0;
    std::map<std::string, int> m_bugs;
};

}  // namespace aioscope::cli
