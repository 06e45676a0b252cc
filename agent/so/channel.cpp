#include "channel.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "agent_protocol.h"

namespace aioscope::agent {

namespace {

constexpr std::size_t kMaxIncoming = 1 << 16;  // commands are short lines
constexpr int kCloseFlushMs = 500;

double nowUnix() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::int64_t nowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// The CLI's uid (as its own user namespace names it, normally the parent of
// ours) as ours names it: through /proc/self/uid_map ("inside outside
// count"), or the overflow uid when it is not mapped here. The identity
// outside any user namespace.
uid_t cliUidHere(uid_t cliUid) {
    FILE* f = std::fopen("/proc/self/uid_map", "re");
    if (!f) return cliUid;
    unsigned long inside = 0, outside = 0, count = 0;
    bool mapped = false;
    uid_t here = cliUid;
    while (!mapped && std::fscanf(f, "%lu %lu %lu", &inside, &outside, &count) == 3) {
        if (cliUid >= outside && cliUid - outside < count) {
            here = static_cast<uid_t>(inside + (cliUid - outside));
            mapped = true;
        }
    }
    std::fclose(f);
    if (mapped) return here;
    unsigned long overflow = 65534;
    if (FILE* o = std::fopen("/proc/sys/kernel/overflowuid", "re")) {
        if (std::fscanf(o, "%lu", &overflow) != 1) overflow = 65534;
        std::fclose(o);
    }
    return static_cast<uid_t>(overflow);
}

std::string eventHead(const char* type) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "{\"schema\": \"aioscope/event/1\", \"type\": \"%s\", \"ts\": %.6f, \"pid\": %d", type,
                  nowUnix(), static_cast<int>(getpid()));
    return buf;
}

}  // namespace

Channel::~Channel() {
    flush(kCloseFlushMs);
    close();
}

bool Channel::connect(const Config& cfg) {
    close();
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (cfg.socket.size() >= sizeof addr.sun_path) {
        ::close(fd);
        return false;
    }
    std::memcpy(addr.sun_path, cfg.socket.c_str(), cfg.socket.size() + 1);
    // Non-blocking: a stopped CLI's full backlog makes this fail now (the
    // caller retries) instead of hanging the session thread.
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return false;
    }
    // Whoever listens there must be the CLI that started us: the same user
    // (as our user namespace names it), and the same process unless it is
    // outside our pid namespace (pid 0).
    // A path re-created by someone else after that CLI ended gets nothing.
    ucred peer{};
    socklen_t len = sizeof peer;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0 || peer.uid != cliUidHere(cfg.cliUid) ||
        (peer.pid != cfg.cliPid && peer.pid != 0)) {
        ::close(fd);
        return false;
    }
    std::lock_guard lock(m_mutex);
    m_fd = fd;
    m_broken = false;
    m_accepted = false;
    queueLocked(eventHead("connect") + ", \"token\": \"" + cfg.token + "\"}\n");
    drainLocked();
    return true;
}

bool Channel::connected() const {
    std::lock_guard lock(m_mutex);
    return m_fd >= 0 && !m_broken;
}

bool Channel::queueLocked(std::string line) {
    bool fits = m_queue.empty() ||
                (m_queuedBytes + line.size() <= kMaxQueuedBytes && m_queue.size() < kMaxQueuedLines);
    if (!fits) return false;
    m_queuedBytes += line.size();
    m_queue.push_back(std::move(line));
    return true;
}

void Channel::countDropsLocked(std::size_t lines) {
    if (!m_dropped) m_droppedSince = nowUnix();
    m_dropped += lines;
}

void Channel::reportDropsLocked() {
    // Once dropping, go on until the CLI has read half the queue: the gap is
    // one `dropped` event, not a trickle of them between the lines that fit.
    // Never in the middle of a line written in parts.
    if (!m_dropped || m_inLine || m_queuedBytes > kMaxQueuedBytes / 2 || m_queue.size() > kMaxQueuedLines / 2) return;
    std::string line = eventHead("dropped") + ", \"count\": " + std::to_string(m_dropped) + ", \"since\": ";
    char since[32];
    std::snprintf(since, sizeof since, "%.6f", m_droppedSince);
    line += since;
    line += "}\n";
    if (queueLocked(std::move(line))) m_dropped = 0;
}

bool Channel::send(std::string line) {
    std::lock_guard lock(m_mutex);
    if (m_fd < 0 || m_broken) return false;
    drainLocked();
    if (m_inLine) {
        // After the line in parts, in order; bounded as the queue is.
        if (m_held.size() < kMaxQueuedLines) {
            m_held.push_back(std::move(line));
        } else {
            countDropsLocked(1);
        }
        return true;
    }
    reportDropsLocked();
    if (m_dropped || !queueLocked(std::move(line))) countDropsLocked(1);
    drainLocked();
    return !m_broken;
}

bool Channel::beginLine() {
    std::lock_guard lock(m_mutex);
    if (m_fd < 0 || m_broken || m_inLine) return false;
    drainLocked();
    // Its size is not known yet: it goes only where a line of half the
    // queue's limit would.
    if (m_dropped || m_queuedBytes > kMaxQueuedBytes / 2 || m_queue.size() >= kMaxQueuedLines / 2) {
        countDropsLocked(1);
        return false;
    }
    m_inLine = true;
    m_pacedNs = 0;
    return true;
}

void Channel::linePart(std::string part) {
    {
        std::lock_guard lock(m_mutex);
        if (!m_inLine || m_broken || part.empty()) return;
        // Whatever the queue holds: a line begun is never cut.
        m_queuedBytes += part.size();
        m_queue.push_back(std::move(part));
        drainLocked();
    }
    pace();
}

// The owner thread's, between parts of its line: the lock is not held
// while waiting (other threads' lines are held meanwhile, as for any line
// in parts), and only the owner closes m_fd.
void Channel::pace() {
    constexpr std::int64_t budget = std::int64_t(kPaceMs) * 1'000'000;
    for (;;) {
        int fd;
        {
            std::lock_guard lock(m_mutex);
            if (m_fd < 0 || m_broken || m_queuedBytes <= kPaceBytes || m_pacedNs >= budget) return;
            fd = m_fd;
        }
        auto start = std::chrono::steady_clock::now();
        pollfd p{fd, POLLOUT, 0};
        int waitMs = static_cast<int>(std::max<std::int64_t>(1, (budget - m_pacedNs) / 1'000'000));
        ::poll(&p, 1, waitMs);
        m_pacedNs += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
        std::lock_guard lock(m_mutex);
        drainLocked();
    }
}

std::size_t Channel::queuedBytes() const {
    std::lock_guard lock(m_mutex);
    return m_queuedBytes;
}

std::string Channel::partBuffer() {
    std::lock_guard lock(m_mutex);
    if (m_spareParts.empty()) return std::string();
    std::string part = std::move(m_spareParts.back());
    m_spareParts.pop_back();
    return part;
}

void Channel::keepPartLocked(std::string written) {
    // Only a part's buffer: a whole line's (megabytes) is given back.
    if (written.capacity() < kPartBytes || written.capacity() > 2 * kPartBytes || m_spareParts.size() >= kSpareParts)
        return;
    written.clear();
    m_spareParts.push_back(std::move(written));
}

void Channel::endLine() {
    std::lock_guard lock(m_mutex);
    if (!m_inLine) return;
    m_inLine = false;
    reportDropsLocked();
    while (!m_held.empty()) {
        if (!m_broken && !m_dropped && queueLocked(std::move(m_held.front()))) {
            m_held.pop_front();
            continue;
        }
        countDropsLocked(m_held.size());
        m_held.clear();
    }
    drainLocked();
}

void Channel::drainLocked() {
    while (m_fd >= 0 && !m_broken && !m_queue.empty()) {
        const std::string& head = m_queue.front();
        ssize_t n = ::send(m_fd, head.data() + m_headSent, head.size() - m_headSent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) failLocked();
            return;
        }
        m_headSent += static_cast<std::size_t>(n);
        if (m_headSent == head.size()) {
            m_queuedBytes -= head.size();
            keepPartLocked(std::move(m_queue.front()));
            m_queue.pop_front();
            m_headSent = 0;
        }
    }
    reportDropsLocked();
}

void Channel::readLocked() {
    char buf[4096];
    while (m_fd >= 0 && !m_broken) {
        ssize_t n = ::recv(m_fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) {
            failLocked();
            return;
        }
        m_partial.append(buf, static_cast<std::size_t>(n));
        std::size_t nl;
        while ((nl = m_partial.find('\n')) != std::string::npos) {
            std::string line = m_partial.substr(0, nl + 1);
            m_partial.erase(0, nl + 1);
            if (line == protocol::kAcceptedLine) {
                m_accepted = true;
            } else if (m_inbox.size() < 64) {
                line.pop_back();
                m_inbox.push_back(std::move(line));
            }
        }
        if (m_partial.size() > kMaxIncoming) m_partial.clear();  // not a command stream
    }
}

void Channel::failLocked() {
    // Only the owner thread closes the descriptor (another may be polling it):
    // shutting it down wakes that poll.
    m_broken = true;
    if (m_fd >= 0) ::shutdown(m_fd, SHUT_RDWR);
    m_queue.clear();
    m_queuedBytes = 0;
    m_headSent = 0;
    m_held.clear();
}

bool Channel::receive(std::vector<std::string>& lines, int timeoutMs) {
    std::int64_t deadline = nowMs() + timeoutMs;
    for (;;) {
        int fd;
        short events = POLLIN;
        {
            std::lock_guard lock(m_mutex);
            if (m_fd < 0) return false;
            drainLocked();
            readLocked();
            for (auto& l : m_inbox) lines.push_back(std::move(l));
            m_inbox.clear();
            if (m_broken) break;
            if (!lines.empty()) return true;
            if (!m_queue.empty()) events |= POLLOUT;
            fd = m_fd;
        }
        std::int64_t left = deadline - nowMs();
        if (left <= 0) return true;
        pollfd p{fd, events, 0};
        ::poll(&p, 1, static_cast<int>(left));
    }
    close();
    return false;
}

void Channel::flush(int timeoutMs) {
    std::int64_t deadline = nowMs() + timeoutMs;
    for (;;) {
        int fd;
        short events = POLLIN;
        {
            std::lock_guard lock(m_mutex);
            if (m_fd < 0) return;
            drainLocked();
            readLocked();
            if (m_broken || (idleLocked() && m_accepted)) return;
            if (!m_queue.empty()) events |= POLLOUT;
            fd = m_fd;
        }
        std::int64_t left = deadline - nowMs();
        if (left <= 0) return;
        pollfd p{fd, events, 0};
        ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left, 50)));
    }
}

void Channel::close() {
    std::lock_guard lock(m_mutex);
    if (m_fd >= 0) ::close(m_fd);
    m_fd = -1;
    m_broken = false;
    m_accepted = false;
    m_queue.clear();
    m_queuedBytes = 0;
    m_headSent = 0;
    m_dropped = 0;
    m_inLine = false;
    m_held.clear();
    m_spareParts.clear();
    m_partial.clear();
    m_inbox.clear();
}

// Nothing here may throw: finish() runs from the destructor, and an
// exception there would end the program. Without memory for a part the
// stream fails (the writer's output stops) and the line is still ended.
void LineParts::start() noexcept {
    try {
        m_part = m_channel.partBuffer();
        m_part.resize(kPart);
    } catch (...) {
        m_part = std::string();
        setp(nullptr, nullptr);
        return;
    }
    setp(m_part.data(), m_part.data() + m_part.size());
}

void LineParts::hand(bool last) noexcept {
    if (pptr()) {
        m_part.resize(static_cast<std::size_t>(pptr() - pbase()));  // shrinks: no allocation
        if (!m_part.empty()) m_newline = m_part.back() == '\n';
        setp(nullptr, nullptr);
        try {
            m_channel.linePart(std::move(m_part));
        } catch (...) {
            // The part is lost: the CLI gets a line it cannot parse.
        }
        m_part = std::string();
    }
    if (!last) start();
}

LineParts::int_type LineParts::overflow(int_type c) {
    hand(false);
    if (!pptr()) return traits_type::eof();
    if (!traits_type::eq_int_type(c, traits_type::eof())) {
        *pptr() = traits_type::to_char_type(c);
        pbump(1);
    }
    return traits_type::not_eof(c);
}

void LineParts::finish() noexcept {
    if (m_done) return;
    m_done = true;
    bool ended = pptr() > pbase() ? pptr()[-1] == '\n' : m_newline;
    if (!ended && pptr() && pptr() < epptr()) {
        *pptr() = '\n';
        pbump(1);
        ended = true;
    }
    hand(true);
    try {
        if (!ended) m_channel.linePart(std::string(1, '\n'));
        m_channel.endLine();
    } catch (...) {
        // endLine() ends the line before anything in it can throw.
    }
}

}  // namespace aioscope::agent
