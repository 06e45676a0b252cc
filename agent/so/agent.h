// The agent: one session thread per connection to the CLI. Starting it does
// nothing but start that thread; the thread waits for the interpreter,
// streams events, samples without the GIL, and goes idle on detach, on a
// lost connection, or when the interpreter shuts down.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "config.h"

namespace aioscope::agent {

class Agent {
public:
    static Agent& instance();

    // Returns 0, or -1 for a malformed configuration. A session already
    // running is asked to stop: a new `aioscope attach` takes over.
    int start(const std::string& configText);

    // In a forked child, after fork (GIL held): the parent's session thread
    // does not exist here; start a fresh one if the parent had one.
    void afterForkInChild();

    // The interpreter's last exit handler (Py_AtExit, main thread): stop
    // touching it, and send the stall ends and what the observers saw during
    // shutdown now, before the process ends.
    void interpreterExiting();
    bool exiting() const { return m_exiting; }

private:
    void run(Config cfg, std::uint64_t generation);
    bool current(std::uint64_t generation) const { return m_generation.load() == generation; }

    std::mutex m_mutex;
    std::atomic<std::uint64_t> m_generation{0};
    std::atomic<bool> m_exiting{false};
    std::atomic<bool> m_sessionActive{false};
    std::string m_lastConfig;
    std::mutex m_channelMutex;
    class Channel* m_channel = nullptr;  // the running session's, for the exit flush
    std::function<void()> m_flushEnded;  // reports callbacks that ended past the threshold
};

}  // namespace aioscope::agent
