#include "stream/server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "errors.h"

namespace aioscope::cli {

namespace {
constexpr std::size_t kMaxLine = 256u << 20;  // a snapshot of 100k tasks fits
}

EventServer::EventServer(const std::string& directory, uid_t uid, gid_t gid) {
    std::string tmpl = directory + "/aioscope-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) {
        throw InspectError(Errc::internal, "cannot create a directory in " + directory + ": " + std::strerror(errno));
    }
    m_dir = buf.data();
    m_socket = m_dir + "/agent.sock";
    m_listen = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (m_listen < 0 || m_socket.size() >= sizeof addr.sun_path) {
        throw InspectError(Errc::internal, "cannot create the agent socket " + m_socket);
    }
    std::memcpy(addr.sun_path, m_socket.c_str(), m_socket.size() + 1);
    mode_t old = umask(077);
    int rc = ::bind(m_listen, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    umask(old);
    if (rc != 0 || ::listen(m_listen, 16) != 0) {
        throw InspectError(Errc::internal, "cannot listen on " + m_socket + ": " + std::strerror(errno));
    }
    // The agent runs as the target's user: it must be able to connect, nobody else.
    if (chown(m_dir.c_str(), uid, gid) != 0 || chown(m_socket.c_str(), uid, gid) != 0) {
        if (geteuid() == 0) throw InspectError(Errc::internal, "cannot hand " + m_dir + " to the target's user");
    }
    chmod(m_dir.c_str(), 0700);
    chmod(m_socket.c_str(), 0600);
}

EventServer::~EventServer() {
    for (auto& [fd, pending] : m_clients) ::close(fd);
    if (m_listen >= 0) ::close(m_listen);
    std::error_code ec;
    std::filesystem::remove_all(m_dir, ec);
}

void EventServer::poll(int timeoutMs, const std::function<void(int, std::string&)>& onLine,
                       const std::function<void(int)>& onClose) {
    std::vector<pollfd> fds{{m_listen, POLLIN, 0}};
    for (const auto& [fd, pending] : m_clients) fds.push_back({fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), timeoutMs) <= 0) return;
    if (fds[0].revents & POLLIN) {
        int c = ::accept4(m_listen, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) m_clients.emplace(c, std::string());
    }
    for (std::size_t i = 1; i < fds.size(); ++i) {
        if (!fds[i].revents) continue;
        int fd = fds[i].fd;
        char buf[65536];
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            ::close(fd);
            m_clients.erase(fd);
            onClose(fd);
            continue;
        }
        std::string& pending = m_clients[fd];
        pending.append(buf, static_cast<std::size_t>(n));
        std::size_t start = 0, nl;
        while ((nl = pending.find('\n', start)) != std::string::npos) {
            std::string line = pending.substr(start, nl - start);
            start = nl + 1;
            onLine(fd, line);
        }
        pending.erase(0, start);
        if (pending.size() > kMaxLine) pending.clear();  // not an agent
    }
}

void EventServer::send(int conn, const std::string& line) {
    if (m_clients.count(conn)) ::send(conn, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

void EventServer::sendAll(const std::string& line) {
    for (const auto& [fd, pending] : m_clients) send(fd, line);
}

}  // namespace aioscope::cli
