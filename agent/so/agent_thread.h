// The agent's own threads start with every signal blocked. A signal sent
// to the process (Ctrl-C passed on by `run`, a kill, a timer) goes to one of
// its threads that does not block it, and CPython runs the Python handler
// only on the main thread: when the kernel picked an agent thread, the
// handler waited until the main thread next took the GIL (an asyncio loop
// asleep in epoll_wait with nothing due: until its next timer, a minute in
// test_ctrl_c_in_the_programs_first_moments_is_never_lost). Blocked here,
// such signals reach the program's threads as if the agent were absent.
// Faults in the agent's own code are still delivered (the kernel forces
// them).
#pragma once

#include <signal.h>

#include <thread>
#include <utility>

namespace aioscope::agent {

template <class... Args>
void startAgentThread(Args&&... args) {
    sigset_t all, previous;
    sigfillset(&all);
    // The new thread inherits the mask of the one creating it.
    pthread_sigmask(SIG_BLOCK, &all, &previous);
    try {
        std::thread(std::forward<Args>(args)...).detach();
    } catch (...) {
        pthread_sigmask(SIG_SETMASK, &previous, nullptr);
        throw;
    }
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

}  // namespace aioscope::agent
