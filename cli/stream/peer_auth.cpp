#include "stream/peer_auth.h"

#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "agent_protocol.h"
#include "errors.h"
#include "target/proc.h"

namespace aioscope::cli {

namespace {

std::string makeToken() {
    unsigned char raw[protocol::kTokenHexChars / 2];
    std::size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw InspectError(Errc::internal, std::string("no random numbers: ") + std::strerror(errno));
        got += static_cast<std::size_t>(n);
    }
    std::string hex;
    for (unsigned char c : raw) {
        char b[3];
        std::snprintf(b, sizeof b, "%02x", c);
        hex += b;
    }
    return hex;
}

}  // namespace

const std::string& sessionToken() {
    static const std::string token = makeToken();
    return token;
}

std::string cliIdentityConfig() {
    return "cli_pid=" + std::to_string(getpid()) + ";cli_uid=" + std::to_string(geteuid()) +
           ";token=" + sessionToken();
}

bool sameToken(const std::string& a, const std::string& b) {
    if (a.size() != b.size()) return false;
    unsigned char diff = 0;
    for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}

PeerPolicy PeerPolicy::process(pid_t pid) {
    PeerPolicy p;
    p.m_kind = Kind::process;
    p.m_pid = pid;
    return p;
}

PeerPolicy PeerPolicy::descendantsOf(pid_t root) {
    PeerPolicy p;
    p.m_kind = Kind::descendants;
    p.m_pid = root;
    return p;
}

std::optional<std::string> PeerPolicy::refuse(pid_t pid) const {
    std::string who = "pid " + std::to_string(pid);
    switch (m_kind) {
        case Kind::nobody:
            return who + " connected before aioscope was ready";
        case Kind::process:
            if (pid == m_pid) return std::nullopt;
            return who + " is not the attached process " + std::to_string(m_pid);
        case Kind::descendants: {
            // Up the parent chain: the program, or the CLI itself (orphans of
            // the program are reparented to it, its subreaper).
            const pid_t self = getpid();
            pid_t p = pid;
            for (int depth = 0; depth < 4096 && p > 1; ++depth) {
                if (p == m_pid) return std::nullopt;
                pid_t parent = parentOf(p);
                // The CLI's only other children are the program's orphans.
                if (parent == self) return std::nullopt;
                p = parent;
            }
            return who + " is not the program started by `aioscope run` nor one of its descendants";
        }
    }
    return who + " is not observed";
}

}  // namespace aioscope::cli
