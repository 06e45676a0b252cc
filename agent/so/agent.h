// The agent: one session per connection to the CLI. Starting one does
// nothing but start its thread; the thread connects and says hello at once,
// waits for the interpreter, samples without the GIL, and goes idle on
// detach, on a lost connection, or when the interpreter shuts down. The
// hooks go in on whatever thread can take the GIL: under `run`, the
// program's own thread at `import asyncio` (AuditHook); under `attach`, an
// installer thread, so that sampling never waits for the GIL.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "config.h"
#include "fork_safe.h"

namespace aioscope::agent {

class Agent {
public:
    static Agent& instance();
    // The library's constructor, before any thread of the agent exists:
    // creates every object that a forked child's handler, its new session
    // or its exit reaches. Created lazily, one could be half-built by
    // another thread at the fork, and the child would wait on its guard for
    // ever (a fork storm under a fresh attach did).
    static void createSharedObjects();

    // Returns 0, or -1 for a malformed configuration. A session already
    // running is asked to stop: a new `aioscope attach` takes over.
    int start(const std::string& configText);
    // `aioscope run` (the library's constructor, before Py_Initialize): also
    // adds the audit hook that installs from the program's first line.
    int startFromEnvironment(const std::string& configText);

    // In a forked child, after fork (GIL held): the parent's session thread
    // does not exist here; start a fresh one if the parent had one.
    void afterForkInChild();

    // The interpreter's last exit handler (Py_AtExit, main thread): stop
    // touching it, and deliver now what is still to be said (the hello if
    // the session's thread never got to run, the stall ends, what the
    // observers saw during shutdown, goodbye) before the process ends.
    void interpreterExiting();
    // The library's destructor (exit() without Py_FinalizeEx: `python
    // --version`, a program that never started its interpreter): the same.
    void processExiting();
    // os._exit(status) is about to end the process (GIL held): the same.
    void programExiting(long status);
    bool exiting() const { return m_exiting; }

    struct Session;

private:
    void run(std::shared_ptr<Session> session);
    void lastWords(const char* goodbye);
    void installer(std::shared_ptr<Session> session);
    // One attempt, on a thread of its own: the trio instrument for a program
    // that imported trio after asyncio (anyio), whose import no hook saw.
    void trioInstaller(std::shared_ptr<Session> session);
    bool current(std::uint64_t generation) const { return m_generation.load() == generation; }
    std::shared_ptr<Session> session();
    static int installForRun();
    // The audit hook, when the program imports trio (GIL held).
    static void installTrioForRun();

    ForkSafeMutex m_mutex;
    std::atomic<std::uint64_t> m_generation{0};
    std::atomic<bool> m_exiting{false};
    std::atomic<bool> m_sessionActive{false};
    std::string m_lastConfig;
    Config m_runConfig;  // under `run`: what the program's thread installs with
    ForkSafeMutex m_sessionMutex;
    std::shared_ptr<Session> m_session;  // the running one, for the exit handler
};

}  // namespace aioscope::agent
