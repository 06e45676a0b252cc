// Seizing a thread that is exiting (target/seize.h, inject/hijack.h): the
// kernel refuses a zombie with EPERM, the same errno as a real permission
// problem. A target ending while aioscope attaches must read as "exited";
// before, attach told root to "run as the same user" (a CI failure).
#include <catch2/catch.hpp>

#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <string>

#include "child_processes.h"
#include "errors.h"
#include "inject/hijack.h"
#include "target/proc.h"
#include "target/seize.h"

using namespace aioscope;

namespace {

// A child that has exited and is left unreaped: a zombie, as a target is
// between its exit and its parent's wait.
pid_t zombieChild() {
    pid_t c = fork();
    if (c == 0) _exit(0);
    siginfo_t info{};
    waitid(P_PID, static_cast<id_t>(c), &info, WEXITED | WNOWAIT);
    return c;
}

}  // namespace

TEST_CASE("seizing a zombie is 'gone', never 'denied'") {
    pid_t c = zombieChild();
    REQUIRE(procState(c) == 'Z');
    errno = 0;
    REQUIRE(ptrace(PTRACE_SEIZE, c, nullptr, nullptr) != 0);
    CHECK(errno == EPERM);  // the kernel's answer this test is about
    int err = 0;
    CHECK(seizeThread(c, c, 0, err) == Seize::gone);
    reap(c);
}

TEST_CASE("seizing a live thread takes it") {
    pid_t c = sleepingChild();
    int err = 0;
    REQUIRE(seizeThread(c, c, 0, err) == Seize::seized);
    auto status = readSmallFile("/proc/" + std::to_string(c) + "/status", 1 << 16);
    REQUIRE(status);
    CHECK(status->find("TracerPid:\t" + std::to_string(getpid()) + "\n") != std::string::npos);
    reap(c);
}

TEST_CASE("hijacking the thread of a target that has exited says it exited") {
    pid_t c = zombieChild();
    try {
        cli::HijackedThread thread(c, c);
        FAIL("a zombie was hijacked");
    } catch (const InspectError& e) {
        CHECK(e.code() == Errc::process_exited);
    }
    reap(c);
}

TEST_CASE("a zombie process is ending, a sleeping one is not") {
    pid_t z = zombieChild();
    pid_t s = sleepingChild();
    CHECK(threadEnding(z, z));
    CHECK(processEnding(z));
    CHECK_FALSE(threadEnding(s, s));
    CHECK_FALSE(processEnding(s));
    reap(z);
    reap(s);
    CHECK(processEnding(z));  // gone altogether
}
