// The CLI's end of the agent connections: a Unix socket in a private
// directory (0700, socket 0600), owned by the target's user so the agent can
// connect. Several agents may connect (a program that starts Python
// subprocesses under `aioscope run`). Lines from agents are untrusted input.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace aioscope::cli {

class EventServer {
public:
    // `directory`: where to create the private directory, as we see it;
    // `uid`/`gid`: the owner the agent's process runs as.
    EventServer(const std::string& directory, uid_t uid, gid_t gid);
    ~EventServer();
    EventServer(const EventServer&) = delete;
    EventServer& operator=(const EventServer&) = delete;

    const std::string& socketPath() const { return m_socket; }
    const std::string& directory() const { return m_dir; }

    // Waits up to timeoutMs for connections and lines; `onLine(conn, line)`
    // for each complete line, `onClose(conn)` when an agent disconnects.
    void poll(int timeoutMs, const std::function<void(int, std::string&)>& onLine,
              const std::function<void(int)>& onClose);

    void send(int conn, const std::string& line);
    void sendAll(const std::string& line);
    std::size_t connections() const { return m_clients.size(); }

private:
    std::string m_dir;
    std::string m_socket;
    int m_listen = -1;
    std::map<int, std::string> m_clients;  // fd -> partial line
};

}  // namespace aioscope::cli
