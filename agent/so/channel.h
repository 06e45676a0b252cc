// The agent's end of its Unix socket to the CLI: JSON lines out, command
// lines in. Sends never raise SIGPIPE in the target (MSG_NOSIGNAL).
#pragma once

#include <mutex>
#include <string>
#include <vector>

namespace aioscope::agent {

class Channel {
public:
    ~Channel();
    bool connect(const std::string& path);
    bool connected() const { return m_fd >= 0; }
    // False once the CLI is gone. Any thread.
    bool send(const std::string& line);
    // Complete lines received, waiting at most timeoutMs; false once closed.
    bool receive(std::vector<std::string>& lines, int timeoutMs);
    void close();

private:
    int m_fd = -1;
    std::string m_pending;
    std::mutex m_sendMutex;
};

}  // namespace aioscope::agent
