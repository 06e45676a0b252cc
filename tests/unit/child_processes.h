// Child processes for the tests that stop, seize or inspect a real process.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

// A child that sleeps until killed: a fork, so it maps what the test maps.
inline pid_t sleepingChild() {
    pid_t c = fork();
    if (c == 0) {
        for (;;) pause();
    }
    return c;
}

inline void reap(pid_t c) {
    kill(c, SIGKILL);
    waitpid(c, nullptr, 0);
}
