#include "stream/server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "agent_protocol.h"
#include "errors.h"
#include "stream/event_schema.h"

namespace aioscope::cli {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxConnectLine = 512;         // the first line, before we know who it is
constexpr std::size_t kMaxBuffered = 256u << 20;     // all partial lines together
constexpr std::size_t kMaxPending = 32;              // connections not yet authenticated
constexpr std::size_t kMaxAccepted = 1024;           // agents at once
constexpr auto kConnectWithin = std::chrono::seconds(5);
// Reading rate per connection: bytes and lines per second, and the burst.
constexpr double kBytesPerSecond = 64.0 * (1 << 20);
constexpr double kByteBurst = static_cast<double>(kMaxSnapshotLine) * 2;
constexpr double kLinesPerSecond = 5000;
constexpr double kLineBurst = 20000;

}  // namespace

EventServer::EventServer(const std::string& directory, uid_t uid, gid_t gid) {
    std::string tmpl = directory + "/aioscope-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) {
        throw InspectError(Errc::internal, "cannot create a directory in " + directory + ": " + std::strerror(errno));
    }
    m_dir = buf.data();
    m_socket = m_dir + "/agent.sock";
    m_listen = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (m_listen < 0 || m_socket.size() >= sizeof addr.sun_path) {
        throw InspectError(Errc::internal, "cannot create the agent socket " + m_socket);
    }
    std::memcpy(addr.sun_path, m_socket.c_str(), m_socket.size() + 1);
    mode_t old = umask(077);
    int rc = ::bind(m_listen, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    umask(old);
    if (rc != 0 || ::listen(m_listen, 64) != 0) {
        throw InspectError(Errc::internal, "cannot listen on " + m_socket + ": " + std::strerror(errno));
    }
    // The agent runs as the target's user: it must be able to connect, nobody
    // else. Once the folder is theirs, its entries are theirs to replace (a
    // link where the socket was): so the socket is handed over first, while
    // the folder is still ours, and the folder last, through a descriptor.
    m_owned = uid == geteuid();
    if (chmod(m_socket.c_str(), 0600) != 0 || chown(m_socket.c_str(), uid, gid) != 0) {
        if (geteuid() == 0) throw InspectError(Errc::internal, "cannot hand " + m_socket + " to the target's user");
    }
    int dir = ::open(m_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir < 0 || fchmod(dir, 0700) != 0 || fchown(dir, uid, gid) != 0) {
        if (dir >= 0) ::close(dir);
        if (geteuid() == 0) throw InspectError(Errc::internal, "cannot hand " + m_dir + " to the target's user");
    }
    if (dir >= 0) ::close(dir);
}

EventServer::~EventServer() {
    for (auto& [fd, c] : m_conns) ::close(fd);
    if (m_listen >= 0) ::close(m_listen);
    if (m_owned) {
        // Our own folder (run): nobody else could put anything in it.
        std::error_code ec;
        std::filesystem::remove_all(m_dir, ec);
    } else {
        // The target's user owns it and may have filled it with anything: only
        // the socket and the empty folder go here; the staging folder's
        // removal (which never follows a link) takes whatever else is left.
        ::unlink(m_socket.c_str());
        ::rmdir(m_dir.c_str());
    }
}

std::size_t EventServer::connections() const {
    return static_cast<std::size_t>(
        std::count_if(m_conns.begin(), m_conns.end(), [](const auto& kv) { return kv.second.accepted; }));
}

std::size_t EventServer::bufferedBytes() const {
    std::size_t n = 0;
    for (const auto& [fd, c] : m_conns) n += c.partial.size();
    return n;
}

void EventServer::refill(Conn& c, Clock::time_point now) {
    double s = std::chrono::duration<double>(now - c.refilled).count();
    c.refilled = now;
    c.byteCredit = std::min(kByteBurst, c.byteCredit + s * kBytesPerSecond);
    c.lineCredit = std::min(kLineBurst, c.lineCredit + s * kLinesPerSecond);
}

void EventServer::drop(int fd, const Handlers& h) {
    auto it = m_conns.find(fd);
    if (it == m_conns.end()) return;
    bool accepted = it->second.accepted;
    pid_t pid = it->second.pid;
    ::close(fd);
    m_conns.erase(it);
    if (accepted && h.closed) h.closed(fd, pid);
}

void EventServer::poll(int timeoutMs, const Handlers& h) {
    auto now = Clock::now();
    std::vector<pollfd> fds;
    fds.push_back({m_listen, POLLIN, 0});
    bool throttled = false;
    for (auto& [fd, c] : m_conns) {
        if (c.accepted) refill(c, now);
        bool readable = !c.accepted || (c.byteCredit > 0 && c.lineCredit > 0);
        throttled |= !readable;
        fds.push_back({fd, static_cast<short>(readable ? POLLIN : 0), 0});
    }
    if (throttled) timeoutMs = std::min(timeoutMs, 20);
    int ready = ::poll(fds.data(), fds.size(), timeoutMs);
    if (ready > 0 && (fds[0].revents & POLLIN)) {
        // Everyone waiting, within the limits; the rest are closed unheard.
        for (int i = 0; i < 64; ++i) {
            int c = ::accept4(m_listen, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (c < 0) break;
            ucred cred{};
            socklen_t len = sizeof cred;
            if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || connections() >= kMaxAccepted) {
                ::close(c);
                ++m_refused;
                continue;
            }
            // Too many that have not said who they are: the oldest goes, so
            // that idle connections cannot keep a real agent out.
            if (m_conns.size() - connections() >= kMaxPending) {
                auto oldest = std::min_element(m_conns.begin(), m_conns.end(), [](const auto& a, const auto& b) {
                    return !a.second.accepted && (b.second.accepted || a.second.opened < b.second.opened);
                });
                ++m_refused;
                if (h.refused) h.refused(oldest->second.pid, "too many connections waiting to authenticate");
                drop(oldest->first, h);
            }
            Conn conn;
            conn.pid = cred.pid;
            conn.opened = conn.refilled = Clock::now();
            m_conns.emplace(c, std::move(conn));
        }
    }
    for (std::size_t i = 1; ready > 0 && i < fds.size(); ++i) {
        if (!fds[i].revents) continue;
        auto it = m_conns.find(fds[i].fd);
        if (it == m_conns.end()) continue;  // dropped meanwhile (a duplicate's drain)
        readFrom(fds[i].fd, it->second, h);
    }
    // Connections that never said who they are.
    now = Clock::now();
    std::vector<int> stale;
    for (const auto& [fd, c] : m_conns) {
        if (!c.accepted && now - c.opened > kConnectWithin) stale.push_back(fd);
    }
    for (int fd : stale) {
        ++m_refused;
        if (h.refused) h.refused(m_conns[fd].pid, "it did not authenticate within 5 s");
        drop(fd, h);
    }
}

bool EventServer::readFrom(int fd, Conn& c, const Handlers& h) {
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n <= 0) {
        drop(fd, h);
        return false;
    }
    if (c.accepted) c.byteCredit -= static_cast<double>(n);
    std::size_t start = 0;
    const std::size_t len = static_cast<std::size_t>(n);
    while (start < len) {
        const char* nl = static_cast<const char*>(std::memchr(buf + start, '\n', len - start));
        std::size_t end = nl ? static_cast<std::size_t>(nl - buf) : len;
        if (!c.skipping) c.partial.append(buf + start, end - start);
        start = end + (nl ? 1 : 0);
        const std::size_t cap = c.accepted ? kMaxSnapshotLine : kMaxConnectLine;
        if (!c.skipping && (c.partial.size() > cap || bufferedBytes() > kMaxBuffered)) {
            if (!c.accepted) {  // not an agent
                ++m_refused;
                if (h.refused) h.refused(c.pid, "its first line is not a connect line");
                drop(fd, h);
                return false;
            }
            c.skipping = true;
            ++m_discarded;
            std::string().swap(c.partial);
        }
        if (!nl) break;
        if (c.skipping) {
            c.skipping = false;
            continue;
        }
        std::string line;
        line.swap(c.partial);
        if (!c.accepted) {
            if (!authenticate(fd, c, line, h)) return false;
            continue;
        }
        c.lineCredit -= 1;
        if (h.line) h.line(fd, c.pid, line);
    }
    return true;
}

bool EventServer::authenticate(int fd, Conn& c, const std::string& line, const Handlers& h) {
    auto refuse = [&](const std::string& why) {
        ++m_refused;
        if (h.refused) h.refused(c.pid, why);
        drop(fd, h);
        return false;
    };
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || j.value("schema", nlohmann::json()) != kEventSchema ||
        j.value("type", nlohmann::json()) != "connect" || !j.contains("token") || !j["token"].is_string()) {
        return refuse("its first line is not a connect line");
    }
    if (!sameToken(j["token"].get<std::string>(), sessionToken())) return refuse("it has the wrong token");
    if (auto why = m_policy.refuse(c.pid)) return refuse(*why);
    // One connection per process: an earlier one that is over (the process
    // exec'ed, its old descriptor closed) gives way once read to its end.
    for (auto it = m_conns.begin(); it != m_conns.end(); ++it) {
        if (it->first == fd || !it->second.accepted || it->second.pid != c.pid) continue;
        int other = it->first;
        for (int i = 0; i < 64 && m_conns.count(other); ++i) {
            char probe;
            ssize_t n = ::recv(other, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
            if (n > 0) {
                if (!readFrom(other, m_conns[other], h)) break;
                continue;
            }
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) drop(other, h);
            break;
        }
        if (m_conns.count(other)) return refuse("pid " + std::to_string(c.pid) + " is already connected");
        break;
    }
    c.accepted = true;
    c.byteCredit = kByteBurst;
    c.lineCredit = kLineBurst;
    c.refilled = Clock::now();
    ::send(fd, protocol::kAcceptedLine, std::strlen(protocol::kAcceptedLine), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (h.accepted) h.accepted(fd, c.pid);
    return true;
}

void EventServer::send(int conn, const std::string& line) {
    auto it = m_conns.find(conn);
    if (it != m_conns.end() && it->second.accepted) {
        ::send(conn, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
}

void EventServer::sendAll(const std::string& line) {
    for (const auto& [fd, c] : m_conns) {
        if (c.accepted) ::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
}

}  // namespace aioscope::cli
