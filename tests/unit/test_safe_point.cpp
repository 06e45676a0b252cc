// The safe-point judge (cli/inject/safe_point.h) on this machine's C library:
// a child of the test starts a thread that blocks in one known place, and the
// judge must say whether dlopen may be called there. Allowed: waits that
// hold no lock of the C library (a user semaphore, mutex, condition variable,
// a read, a sleep, user code). Refused: a thread waiting for a stdio lock
// inside printf, a thread inside a signal handler, a thread inside dlopen.
#include <catch2/catch.hpp>

#include <dlfcn.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "inject/hijack.h"
#include "inject/safe_point.h"
#include "target/proc.h"

using namespace aioscope;
using namespace aioscope::cli;

namespace {

int g_report[2];
sem_t g_sem;
pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
int g_pipe[2];
volatile int g_spin = 1;

void reportTid() {
    pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
    if (write(g_report[1], &tid, sizeof tid) != sizeof tid) _exit(3);
}

void* semWait(void*) { reportTid(); sem_wait(&g_sem); return nullptr; }
void* mutexLock(void*) { reportTid(); pthread_mutex_lock(&g_mutex); return nullptr; }
void* condWait(void*) {
    pthread_mutex_lock(&g_mutex);
    reportTid();
    for (;;) pthread_cond_wait(&g_cond, &g_mutex);
}
void* readPipe(void*) {
    reportTid();
    char c;
    for (;;) (void)!read(g_pipe[0], &c, 1);
}
void* sleepLong(void*) {
    reportTid();
    timespec t{3600, 0};
    nanosleep(&t, nullptr);
    return nullptr;
}
void* spinUser(void*) {
    reportTid();
    while (g_spin) {
    }
    return nullptr;
}
void* printfLocked(void*) {
    reportTid();
    printf("blocked until the main thread lets stdout go\n");  // waits for the stdio lock
    return nullptr;
}
void onUsr2(int) {
    for (;;) pause();  // a handler that never returns
}
void* inHandler(void*) {
    signal(SIGUSR2, onUsr2);
    reportTid();
    raise(SIGUSR2);
    return nullptr;
}
void* inDlopen(void*) {
    reportTid();
    setenv("AIOSCOPE_PROBE_BLOCK_IN_CONSTRUCTOR", "1", 1);
    dlopen(AIOSCOPE_INJECT_PROBE, RTLD_NOW);
    return nullptr;
}

struct Scene {
    pid_t pid = -1;
    pid_t tid = 0;
    Scene(void* (*thread)(void*), bool lockStdout = false, bool holdMutex = false) {
        REQUIRE(pipe(g_report) == 0);
        REQUIRE(pipe(g_pipe) == 0);
        pid = fork();
        if (pid == 0) {
            sem_init(&g_sem, 0, 0);
            if (holdMutex) pthread_mutex_lock(&g_mutex);
            if (lockStdout) flockfile(stdout);
            pthread_t t;
            pthread_create(&t, nullptr, thread, nullptr);
            for (;;) pause();
        }
        REQUIRE(pid > 0);
        REQUIRE(read(g_report[0], &tid, sizeof tid) == sizeof tid);
        // Let it get where it blocks.
        for (int i = 0; i < 200 && procState(pid, tid) != 'S' && thread != spinUser; ++i) usleep(5000);
        usleep(100000);
    }
    ~Scene() {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        for (int fd : {g_report[0], g_report[1], g_pipe[0], g_pipe[1]}) close(fd);
    }
    Verdict judge() {
        HijackedThread thread(pid, tid);
        SafePointJudge judge(pid);
        return judge.judge(tid, thread.registers());
    }
};

}  // namespace

TEST_CASE("the allow-list is sorted and names what a waiting Python thread is in", "[safepoint]") {
    for (const char* name : {"sem_clockwait", "sem_wait", "pthread_cond_wait", "pthread_mutex_lock", "clock_nanosleep",
                             "epoll_wait", "recv", "read", "select", "poll"}) {
        CHECK(allowedLibcEntry(name));
    }
    for (const char* name : {"malloc", "free", "printf", "fwrite", "dlopen", "__lll_lock_wait_private",
                             "pthread_create", "fork", "getaddrinfo"}) {
        CHECK_FALSE(allowedLibcEntry(name));
    }
}

TEST_CASE("waits on the program's own objects, reads, sleeps and user code are safe points", "[safepoint]") {
    struct Case {
        const char* what;
        void* (*thread)(void*);
        bool holdMutex;
    };
    for (const Case& c : {Case{"sem_wait", semWait, false}, Case{"pthread_mutex_lock", mutexLock, true},
                          Case{"pthread_cond_wait", condWait, false}, Case{"read", readPipe, false},
                          Case{"nanosleep", sleepLong, false}, Case{"user code", spinUser, false}}) {
        Scene scene(c.thread, false, c.holdMutex);
        Verdict v = scene.judge();
        INFO(c.what << ": " << v.why);
        CHECK(v.safe);
    }
}

TEST_CASE("a stdio lock, a signal handler and dlopen are not safe points", "[safepoint]") {
    {
        Scene scene(printfLocked, true);
        Verdict v = scene.judge();
        INFO(v.why);
        CHECK_FALSE(v.safe);
    }
    {
        Scene scene(inHandler);
        Verdict v = scene.judge();
        INFO(v.why);
        CHECK_FALSE(v.safe);
        CHECK(v.why.find("called back") != std::string::npos);
    }
    {
        Scene scene(inDlopen);
        Verdict v = scene.judge();
        INFO(v.why);
        CHECK_FALSE(v.safe);
        CHECK(v.why.find("dynamic loader") != std::string::npos);
    }
}
