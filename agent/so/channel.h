// The agent's end of its Unix socket to the CLI: JSON lines out, command
// lines in (docs/security.md#the-agents-connection).
//
// The target never waits on the CLI: the socket is non-blocking, lines go to
// a bounded queue that is written as far as the socket takes it, from
// whichever thread sends and from the session thread's receive(). When the
// queue is full (the CLI is stopped or slow) new lines are dropped, counted,
// and reported by a `dropped` event once there is room again. Lines are
// never split: a line is either queued whole or dropped whole, and the queue
// is written in order. Sends never raise SIGPIPE in the target.
//
// Before anything is sent, the server is checked with SO_PEERCRED against
// the CLI named in the configuration; the first line is `connect` with the
// session token.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "config.h"

namespace aioscope::agent {

class Channel {
public:
    Channel() = default;
    Channel(const Channel&) = delete;
    Channel& operator=(const Channel&) = delete;
    // Waits a little (bounded) for the queue to go out, then closes.
    ~Channel();

    // False, with nothing sent, when the socket cannot be reached now or is
    // not the CLI's (another user, another process: a stale path re-created).
    // Owner thread only.
    bool connect(const Config& cfg);
    bool connected() const;
    // Queues one whole line ("...\n") and writes what the socket takes now;
    // never blocks. False once the CLI is gone. Any thread.
    // Taken by value: a snapshot's line (megabytes) is moved in, not copied.
    bool send(std::string line);
    // Command lines received, waiting at most timeoutMs (and writing queued
    // lines meanwhile); false once closed. Owner thread only.
    bool receive(std::vector<std::string>& lines, int timeoutMs);
    // Writes queued lines for at most timeoutMs, until none are left and the
    // CLI has accepted the connection. Any thread.
    void flush(int timeoutMs);
    // Owner thread only.
    void close();

    // Limits of the queue (bytes of lines waiting, lines waiting). A single
    // line larger than the byte limit is queued only when the queue is empty.
    static constexpr std::size_t kMaxQueuedBytes = 16u << 20;
    static constexpr std::size_t kMaxQueuedLines = 20'000;

private:
    void drainLocked();
    void readLocked();
    void failLocked();
    bool queueLocked(std::string line);
    void reportDropsLocked();
    bool idleLocked() const { return m_queue.empty() && m_dropped == 0; }

    mutable std::mutex m_mutex;  // everything below
    int m_fd = -1;
    bool m_broken = false;        // the CLI is gone: closed by the owner thread
    bool m_accepted = false;      // the CLI authenticated us
    std::deque<std::string> m_queue;
    std::size_t m_queuedBytes = 0;
    std::size_t m_headSent = 0;   // bytes of m_queue.front() already written
    std::uint64_t m_dropped = 0;  // dropped since the last `dropped` event
    double m_droppedSince = 0;
    std::string m_partial;        // incoming bytes without a newline yet
    std::vector<std::string> m_inbox;
};

}  // namespace aioscope::agent
