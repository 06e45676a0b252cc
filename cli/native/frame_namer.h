// A thread of the CLI that unwinds and names the native stacks it is given
// (copies of stopped threads), one at a time, in order. Naming can take tens
// to hundreds of milliseconds (symbol and line tables); done where the
// agents' lines are read, it kept the next stall's line unread that long,
// and its callback could end before its thread was stopped.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "native/native_stack.h"

namespace aioscope::cli {

class FrameNamer {
public:
    FrameNamer() = default;
    ~FrameNamer();  // finishes what was given, then joins
    FrameNamer(const FrameNamer&) = delete;
    FrameNamer& operator=(const FrameNamer&) = delete;

    std::future<NativeStack> name(ThreadCopyPtr copy);
    // Drops the symbols kept for `pid` (after what was given before).
    void forget(pid_t pid);

private:
    void post(std::function<void()> job);
    void run();

    std::mutex m_mutex;
    std::condition_variable m_wake;
    std::deque<std::function<void()>> m_jobs;
    bool m_stopping = false;
    std::thread m_thread;  // started with the first job
};

}  // namespace aioscope::cli
