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
#include <streambuf>
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
    // A line too large to be held whole (a snapshot of many tasks:
    // megabytes), queued and written in parts as it is made: beginLine(),
    // then linePart() for each part, the last one ending with "\n", then
    // endLine(). Lines sent meanwhile by other threads are held until it
    // ends. beginLine() is false when nothing is to be written: the CLI is
    // gone, or the queue is behind (the line is dropped and counted, as
    // send() does). One such line at a time, from the owner thread.
    bool beginLine();
    // Queues a part and writes what the socket takes; while more than
    // kPaceBytes wait, waits for the socket to take them, at most kPaceMs in
    // all per line (the line is made faster than the CLI reads it: unpaced,
    // a snapshot of 10,000 tasks piled up to 5 MB in the program). Past
    // that, a CLI that reads slowly or not at all costs memory, not time.
    void linePart(std::string part);
    void endLine();
    // An empty string to write the next part into: a part the socket has
    // written, kept for this (its capacity stays), or a new one. A part is a
    // mapping of its own (agent_heap.cpp); reusing one saves a mmap, a munmap
    // and its pages' first faults. Any thread.
    std::string partBuffer();
    // Bytes of lines waiting to be written. Any thread.
    std::size_t queuedBytes() const;
    static constexpr std::size_t kPartBytes = 64 * 1024;
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
    static constexpr std::size_t kPaceBytes = 256 * 1024;
    static constexpr int kPaceMs = 250;

private:
    void drainLocked();
    void pace();
    void readLocked();
    void failLocked();
    bool queueLocked(std::string line);
    void countDropsLocked(std::size_t lines);
    void keepPartLocked(std::string written);
    void reportDropsLocked();
    bool idleLocked() const { return m_queue.empty() && m_dropped == 0 && !m_inLine && m_held.empty(); }

    mutable std::mutex m_mutex;  // everything below
    int m_fd = -1;
    bool m_broken = false;        // the CLI is gone: closed by the owner thread
    bool m_accepted = false;      // the CLI authenticated us
    std::deque<std::string> m_queue;
    std::size_t m_queuedBytes = 0;
    std::size_t m_headSent = 0;   // bytes of m_queue.front() already written
    std::uint64_t m_dropped = 0;  // dropped since the last `dropped` event
    bool m_inLine = false;        // between beginLine() and endLine()
    std::int64_t m_pacedNs = 0;   // this line's waits for the socket
    std::deque<std::string> m_held;  // lines sent meanwhile
    double m_droppedSince = 0;
    std::vector<std::string> m_spareParts;  // written parts, for partBuffer()
    static constexpr std::size_t kSpareParts = 4;
    std::string m_partial;        // incoming bytes without a newline yet
    std::vector<std::string> m_inbox;
};

// A stream over Channel::linePart(): what is written goes to the channel
// in parts of kPart bytes, written straight into the part's buffer (one of
// the channel's spare parts when it has one); finish() sends the rest and
// ends the line, with a "\n" if the writer left it unterminated (an
// exception): the CLI gets one line it cannot parse, never two lines run
// together.
class LineParts : public std::streambuf {
public:
    static constexpr std::size_t kPart = Channel::kPartBytes;
    explicit LineParts(Channel& channel) : m_channel(channel) { start(); }
    ~LineParts() override { finish(); }
    void finish() noexcept;

protected:
    int_type overflow(int_type c) override;

private:
    void start() noexcept;
    void hand(bool last) noexcept;
    Channel& m_channel;
    std::string m_part;
    bool m_newline = false;  // what was handed ends a line
    bool m_done = false;
};

}  // namespace aioscope::agent
