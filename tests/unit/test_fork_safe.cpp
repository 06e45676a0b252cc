#include <catch2/catch.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "fork_safe.h"

using aioscope::agent::ForkSafeMutex;

namespace {

// Forks while another thread holds `m` (or not), and in the child takes the
// lock after afterFork(). The child's exit status: 0 if it got the lock and
// afterFork said the lock had been held, 1 if it said free; killed by
// SIGALRM if taking the lock hung.
int childStatus(ForkSafeMutex& m, bool heldByAnotherThread) {
    std::atomic<bool> locked{false}, release{false};
    std::thread holder;
    if (heldByAnotherThread) {
        holder = std::thread([&] {
            m.lock();
            locked = true;
            while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
            m.unlock();
        });
        while (!locked) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    pid_t pid = fork();
    if (pid == 0) {
        alarm(5);
        bool wasFree = m.afterFork();
        m.lock();
        m.unlock();
        _exit(wasFree ? 1 : 0);
    }
    release = true;
    if (holder.joinable()) holder.join();
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

}  // namespace

TEST_CASE("a lock held by another thread at fork is usable in the child", "[agent][fork]") {
    ForkSafeMutex m;
    int held = childStatus(m, true);
    REQUIRE(WIFEXITED(held));  // not SIGALRM: the child got the lock
    CHECK(WEXITSTATUS(held) == 0);  // and was told its data may be half-written
    int free = childStatus(m, false);
    REQUIRE(WIFEXITED(free));
    CHECK(WEXITSTATUS(free) == 1);
    // The parent's lock works as before.
    CHECK(m.try_lock());
    m.unlock();
}
