#include "channel.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace aioscope::agent {

Channel::~Channel() { close(); }

bool Channel::connect(const std::string& path) {
    close();
    m_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (m_fd < 0) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) {
        close();
        return false;
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (::connect(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        close();
        return false;
    }
    return true;
}

bool Channel::send(const std::string& line) {
    std::lock_guard lock(m_sendMutex);
    if (m_fd < 0) return false;
    std::size_t off = 0;
    while (off < line.size()) {
        ssize_t n = ::send(m_fd, line.data() + off, line.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            close();
            return false;
        }
        off += static_cast<std::size_t>(n);
    }
    return true;
}

bool Channel::receive(std::vector<std::string>& lines, int timeoutMs) {
    if (m_fd < 0) return false;
    pollfd p{m_fd, POLLIN, 0};
    int r = ::poll(&p, 1, timeoutMs);
    if (r <= 0) return true;
    char buf[4096];
    ssize_t n = ::recv(m_fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        close();
        return false;
    }
    if (n > 0) m_pending.append(buf, static_cast<std::size_t>(n));
    if (m_pending.size() > (1 << 16)) m_pending.clear();  // not a command stream
    std::size_t nl;
    while ((nl = m_pending.find('\n')) != std::string::npos) {
        lines.push_back(m_pending.substr(0, nl));
        m_pending.erase(0, nl + 1);
    }
    return true;
}

void Channel::close() {
    if (m_fd >= 0) ::close(m_fd);
    m_fd = -1;
    m_pending.clear();
}

}  // namespace aioscope::agent
