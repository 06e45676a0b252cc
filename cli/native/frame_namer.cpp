#include "native/frame_namer.h"

#include <pthread.h>
#include <signal.h>

#include <exception>
#include <memory>

#include "native/native_symbols.h"

namespace aioscope::cli {

FrameNamer::~FrameNamer() {
    {
        std::lock_guard lock(m_mutex);
        m_stopping = true;
    }
    m_wake.notify_all();
    if (m_thread.joinable()) m_thread.join();
}

std::future<NativeStack> FrameNamer::name(ThreadCopyPtr copy) {
    // std::function needs a copyable callable: the copy and the promise are shared.
    auto promise = std::make_shared<std::promise<NativeStack>>();
    auto result = promise->get_future();
    std::shared_ptr<ThreadCopy> shared(copy.release(), ThreadCopyDeleter{});
    post([promise, shared] {
        // Every job answers: the relay waits for each answer in turn.
        NativeStack native;
        try {
            native = unwindCopy(*shared);
        } catch (const std::exception& e) {
            native = NativeStack{};
            native.error = e.what();  // e.g. the process ended meanwhile
        }
        promise->set_value(std::move(native));
    });
    return result;
}

void FrameNamer::forget(pid_t pid) {
    {
        std::lock_guard lock(m_mutex);
        if (!m_thread.joinable()) return;  // it never named a frame: it keeps nothing
    }
    post([pid] { forgetSymbolsOf(pid); });
}

void FrameNamer::post(std::function<void()> job) {
    {
        std::lock_guard lock(m_mutex);
        m_jobs.push_back(std::move(job));
        if (!m_thread.joinable()) {
            // Signals stay the main thread's: its waits end on them at once.
            sigset_t all, old;
            sigfillset(&all);
            pthread_sigmask(SIG_BLOCK, &all, &old);
            m_thread = std::thread([this] { run(); });
            pthread_sigmask(SIG_SETMASK, &old, nullptr);
        }
    }
    m_wake.notify_one();
}

void FrameNamer::run() {
    for (;;) {
        std::function<void()> job;
        {
            std::unique_lock lock(m_mutex);
            m_wake.wait(lock, [this] { return m_stopping || !m_jobs.empty(); });
            if (m_jobs.empty()) return;  // stopping, and nothing left
            job = std::move(m_jobs.front());
            m_jobs.pop_front();
        }
        job();
    }
}

}  // namespace aioscope::cli
