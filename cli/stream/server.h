// The CLI's end of the agent connections: a Unix socket in a private
// directory (0700, socket 0600), owned by the target's user so the agent can
// connect. Several agents may connect (a program that starts Python
// subprocesses under `aioscope run`).
//
// Everything arriving here is untrusted (docs/security.md): a connection is
// heard only after it authenticated (its first line, `connect`, carries the
// session token, and SO_PEERCRED names a process the PeerPolicy allows; one
// connection per process); the others are closed unheard. Memory and CPU are
// bounded whatever peers send: lines are capped in length, all partial lines
// together in size, unauthenticated connections in number and time, and each
// connection is read at a bounded rate (a faster agent is simply not read
// for a while: its own queue fills and it counts what it drops).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "stream/peer_auth.h"

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

    // Who may connect (nobody until set).
    void setPolicy(const PeerPolicy& policy) { m_policy = policy; }

    struct Handlers {
        std::function<void(int conn, pid_t pid)> accepted;
        std::function<void(int conn, pid_t pid, std::string& line)> line;
        std::function<void(int conn, pid_t pid)> closed;  // an accepted connection ended
        std::function<void(pid_t pid, const std::string& why)> refused;
    };
    // Waits up to timeoutMs for connections and lines.
    void poll(int timeoutMs, const Handlers& handlers);

    void send(int conn, const std::string& line);
    void sendAll(const std::string& line);
    // Accepted (authenticated) connections.
    std::size_t connections() const;

    int refusedConnections() const { return m_refused; }
    int discardedLines() const { return m_discarded; }  // too long

private:
    struct Conn {
        pid_t pid = 0;
        bool accepted = false;
        bool skipping = false;  // discarding a too long line up to its end
        std::string partial;
        std::chrono::steady_clock::time_point opened;
        std::chrono::steady_clock::time_point refilled;
        double byteCredit = 0;
        double lineCredit = 0;
    };
    // False once the connection is closed.
    bool readFrom(int fd, Conn& c, const Handlers& h);
    bool authenticate(int fd, Conn& c, const std::string& line, const Handlers& h);
    void refill(Conn& c, std::chrono::steady_clock::time_point now);
    void drop(int fd, const Handlers& h);
    std::size_t bufferedBytes() const;

    std::string m_dir;
    std::string m_socket;
    bool m_owned = true;  // the folder stays ours (same user): removed whole
    int m_listen = -1;
    PeerPolicy m_policy;
    std::map<int, Conn> m_conns;
    int m_refused = 0;
    int m_discarded = 0;
};

}  // namespace aioscope::cli
