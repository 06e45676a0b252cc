// `aioscope run` observes from the program's first line: the hooks go in at
// the main thread's first safe point (a pending call), before the program can
// create and drop a coroutine.
#pragma once

#include <atomic>
#include <cstdint>

namespace aioscope {
class SnapshotReader;
}

namespace aioscope::agent {

class EarlyInstall {
public:
    enum State { idle, pending, retry, installed, failed };

    // Asks the main thread to install the hooks and waits for its answer.
    // Retries while asyncio is half imported (the call may land in the middle
    // of the program's own `import asyncio`), for at most `budgetMs`.
    // `wait(ms)` must sleep about ms and return false to give up.
    template <class Wait>
    // The reader is used by the main thread while this waits.
    // `withGil` runs on the main thread after a successful install.
    bool run(std::int64_t stallNs, bool trackOrigins, SnapshotReader& reader, int budgetMs, void (*withGil)(),
             Wait wait) {
        m_withGil = withGil;
        m_stallNs = stallNs;
        m_trackOrigins = trackOrigins;
        m_reader = &reader;
        for (int spent = 0; spent < budgetMs;) {
            m_state = pending;
            if (!schedule()) return false;
            while (m_state == pending && spent < budgetMs) {
                if (!wait(1)) return false;
                ++spent;
            }
            if (m_state != retry) break;
        }
        return m_state == installed;
    }

    static EarlyInstall& instance();

private:
    bool schedule();
    static int onMainThread(void* self);

    std::int64_t m_stallNs = 0;
    bool m_trackOrigins = false;
    SnapshotReader* m_reader = nullptr;
    void (*m_withGil)() = nullptr;
    std::atomic<int> m_state{idle};
};

}  // namespace aioscope::agent
