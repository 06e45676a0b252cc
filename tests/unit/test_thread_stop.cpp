// ThreadStop (cli/native/thread_stop.h) against real child processes in
// the states that defeat a quick stop: a parent waiting in vfork() ignores
// the interrupt until its child execs or exits. The stop must never
// collect its own child's exit status (`aioscope run` then waited forever
// for an exit it could no longer see), and a thread it gave up on must be
// released once it stops (a thread left traced stays stopped while aioscope
// lives: the program hung).
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>

#include "native/thread_stop.h"

using namespace aioscope::cli;

namespace {

using Clock = std::chrono::steady_clock;

void sleepMs(long ms) {
    timespec t{ms / 1000, (ms % 1000) * 1'000'000L};
    nanosleep(&t, nullptr);
}

// A child that sits in vfork() for `vforkMs` (its vfork child sleeps, then
// kills it if `killParent`, else exits), then exits with status 7.
pid_t childInVfork(long vforkMs, bool killParent) {
    pid_t c = fork();
    if (c == 0) {
        pid_t v = vfork();
        if (v == 0) {
            timespec t{vforkMs / 1000, (vforkMs % 1000) * 1'000'000L};
            nanosleep(&t, nullptr);
            if (killParent) kill(getppid(), SIGKILL);
            _exit(0);
        }
        _exit(7);
    }
    sleepMs(100);  // in vfork by now
    return c;
}

// The child's exit status within `ms`, or -1.
int exitWithin(pid_t c, long ms) {
    auto deadline = Clock::now() + std::chrono::milliseconds(ms);
    while (Clock::now() < deadline) {
        int status = 0;
        if (waitpid(c, &status, WNOHANG) == c) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        sleepMs(10);
    }
    kill(c, SIGKILL);
    waitpid(c, nullptr, 0);
    return -1;
}

}  // namespace

TEST_CASE("a stop never reaps its own child that dies before stopping", "[thread_stop]") {
    pid_t c = childInVfork(300, true);
    {
        ThreadStop stop(c);
        CHECK_FALSE(stop.stopped());
    }
    siginfo_t info{};
    REQUIRE(waitid(P_PID, static_cast<id_t>(c), &info, WEXITED | WNOHANG | WNOWAIT) == 0);
    CHECK(info.si_pid == c);
    CHECK(info.si_code == CLD_KILLED);
    CHECK(exitWithin(c, 1000) == 128 + SIGKILL);
}

TEST_CASE("a thread that stops late is released by the stop's end", "[thread_stop]") {
    pid_t c = childInVfork(2000, false);  // past the stop's 1 s, within its 2 s release wait
    {
        ThreadStop stop(c);
        CHECK_FALSE(stop.stopped());
    }
    CHECK(strayStops() == 0);
    CHECK(exitWithin(c, 3000) == 7);
}

TEST_CASE("a thread that stops later still is released by releaseStrayStops", "[thread_stop]") {
    pid_t c = childInVfork(4500, false);  // past the stop's 1 s and its 2 s release wait
    {
        ThreadStop stop(c);
        CHECK_FALSE(stop.stopped());
    }
    CHECK(strayStops() == 1);
    auto deadline = Clock::now() + std::chrono::seconds(5);
    while (strayStops() && Clock::now() < deadline) {
        releaseStrayStops();
        sleepMs(10);
    }
    CHECK(strayStops() == 0);
    CHECK(exitWithin(c, 3000) == 7);
}

TEST_CASE("a running thread stops at once and goes on when released", "[thread_stop]") {
    pid_t c = fork();
    if (c == 0) {
        auto end = Clock::now() + std::chrono::milliseconds(600);
        while (Clock::now() < end) {
        }
        _exit(7);
    }
    sleepMs(50);
    {
        ThreadStop stop(c);
        CHECK(stop.stopped());
    }
    CHECK(exitWithin(c, 3000) == 7);
}
