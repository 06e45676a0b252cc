// Installing from the program's main thread at its next safe point (a
// pending call): the fallback of `aioscope run` when the audit hook saw
// asyncio only half imported (an import it did not see start), and the way
// the agent's thread asks for the hooks when it cannot take the GIL itself.
#pragma once

#include <atomic>
#include <cstdint>

namespace aioscope::agent {

enum class AsyncioState { ready, importing, absent, busy };
// GIL held. `busy`: asyncio absent while some other module is being
// imported (importing asyncio from inside that import's pending call could
// hand back half-initialized modules).
AsyncioState asyncioState();

class EarlyInstall {
public:
    enum State { idle, pending, retry, installed, failed };
    // Installs, GIL held, once asyncio is imported: 1 installed, 0 not yet, -1 never.
    using InstallFn = int (*)();

    // Asks the main thread to install and waits for its answer, asking again
    // while asyncio is half imported, for at most `budgetMs`. `wait(ms)`
    // must sleep about ms and return false to give up. With `mayImport`, the
    // main thread imports asyncio itself when nothing imports anything.
    template <class Wait>
    bool run(InstallFn install, bool mayImport, int budgetMs, Wait wait) {
        m_install = install;
        m_mayImport = mayImport;
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

    InstallFn m_install = nullptr;
    bool m_mayImport = false;
    std::atomic<int> m_state{idle};
};

}  // namespace aioscope::agent
