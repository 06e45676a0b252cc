// Where events go (docs/guide.md#where-events-go): one stream, rendered as
// text when it is a terminal and as JSON Lines otherwise (or with --json), and
// a JSON Lines file (--output). `attach` streams on standard output; `run`
// on standard error, since the program shares standard output (strace's
// convention). Every event is written with one write(2), whole: lines of
// aioscope never split or interleave with each other. A write that fails
// (disk full, closed pipe) stops that output and is reported at the end
// (exit status 14). GitHub Actions annotations go with the events, for every
// event that has a place in the code. Also counts what CI mode fails on.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "render/style.h"
#include "stream/capabilities.h"
#include "stream/event_schema.h"

namespace aioscope::cli {

// The agent's events for asyncio bugs that leave no trace otherwise.
inline constexpr const char* kBugEventTypes[] = {"unawaited_coroutine", "cancellation_swallowed",
                                                 "task_exception_unretrieved", "task_destroyed_pending"};

struct StreamOptions {
    ColorMode color = ColorMode::automatic;
    bool json = false;               // JSON Lines even on a terminal
    std::string outputFile;          // also write JSON Lines here
    bool quiet = false;              // nothing on the terminal stream (annotations aside)
    bool githubAnnotations = false;  // ::error file=...,line=...:: for events with a place
    int fd = STDOUT_FILENO;          // the terminal stream: stdout (attach), stderr (run)
    // Set by a command's signal handler (Ctrl-C, SIGTERM): a write blocked on
    // a reader that does not read gives up then, so the command can act on
    // the signal instead of waiting on the pipe forever.
    const volatile sig_atomic_t* interrupted = nullptr;
};

class EventStream {
public:
    explicit EventStream(const StreamOptions& options);
    ~EventStream();
    EventStream(const EventStream&) = delete;
    EventStream& operator=(const EventStream&) = delete;

    void emit(const nlohmann::json& event);
    // An event made by the CLI itself (exit, warnings).
    nlohmann::json make(const char* type, long pid);
    // A warning of aioscope's own, about `pid` (0: about aioscope itself).
    void warn(const std::string& message, long pid = 0);

    int stalls() const { return m_stalls; }
    int deadlocks() const { return m_deadlocks; }
    // Silent asyncio bugs seen, by event type (unawaited_coroutine, ...).
    int bugs(const std::string& type) const { auto it = m_bugs.find(type); return it == m_bugs.end() ? 0 : it->second; }
    const Capabilities& capabilities() const { return m_caps; }
    bool text() const { return m_text; }
    const Style& style() const { return m_style; }

    // Why an output could not be written ("" when all went well).
    const std::string& outputError() const { return m_outputError; }

private:
    std::string renderText(const nlohmann::json& e);
    std::string annotations(const nlohmann::json& e);
    // Writes all of `data` to fd with as few write(2) calls as the kernel
    // allows (one, unless a pipe is full); false on an error.
    bool writeAll(int fd, const std::string& data, const char* what);

    StreamOptions m_options;
    Style m_style;
    bool m_text;
    int m_file = -1;
    bool m_streamFailed = false;
    bool m_fileFailed = false;
    std::string m_outputError;
    std::map<long, nlohmann::json> m_python;  // pid -> python info from hello
    int m_stalls = 0;
    int m_deadlocks = 0;
    std::map<std::string, int> m_bugs;
    Capabilities m_caps;
    std::set<std::string> m_annotated;  // deadlock annotations already made
};

}  // namespace aioscope::cli
