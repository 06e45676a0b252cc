// A lock that the program's threads and the agent's own share, in an object
// that lives as long as the process. fork() copies only the thread that
// calls it: a lock another thread held at that moment stays locked in the
// child for ever (a child calling os._exit hung in the agent's goodbye,
// waiting for a lock the parent's session thread held at the fork).
#pragma once

#include <mutex>
#include <new>

namespace aioscope::agent {

class ForkSafeMutex {
public:
    void lock() { m_mutex.lock(); }
    void unlock() { m_mutex.unlock(); }
    bool try_lock() { return m_mutex.try_lock(); }

    // In a forked child, on its only thread, before anything else locks it:
    // makes the lock usable again. Returns false if another thread held it
    // at the fork, when what it guards may be half-written.
    bool afterFork() {
        bool wasFree = m_mutex.try_lock();
        if (wasFree) m_mutex.unlock();
        new (&m_mutex) std::mutex;
        return wasFree;
    }

private:
    std::mutex m_mutex;
};

}  // namespace aioscope::agent
