// The agent's end of the socket, against a listening socket of the test's
// own (the CLI's end): a line written in parts is never cut or interleaved,
// is begun only when the queue has room, and always ends with a newline.
#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "agent_protocol.h"
#include "channel.h"
#include "failing_alloc.h"

using namespace aioscope::agent;

namespace {

// A listening socket and the channel connected to it, as the CLI's end.
struct Cli {
    std::string path;
    int listener = -1;
    int conn = -1;
    Config cfg;

    Cli() {
        char dir[] = "/tmp/aioscope-channel-XXXXXX";
        REQUIRE(mkdtemp(dir));
        path = std::string(dir) + "/s";
        listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
        REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(listener, 4) == 0);
        cfg.socket = path;
        cfg.cliPid = getpid();
        cfg.cliUid = getuid();
        cfg.token = std::string(32, 'a');
    }
    ~Cli() {
        if (conn >= 0) ::close(conn);
        ::close(listener);
        ::unlink(path.c_str());
        ::rmdir(path.substr(0, path.rfind('/')).c_str());
    }
    // Accepted as the CLI does, so that the channel's flush ends once its
    // queue is empty.
    void accept() {
        conn = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        REQUIRE(conn >= 0);
        std::string accepted = aioscope::protocol::kAcceptedLine;
        REQUIRE(::send(conn, accepted.data(), accepted.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(accepted.size()));
    }

    // Lines read until `want` of them came (the channel is drained meanwhile
    // through flush, as the agent's thread does), the connect line left out.
    std::vector<std::string> lines(Channel& ch, std::size_t want) {
        std::vector<std::string> out;
        std::string buf;
        std::size_t connect = connectRead ? 0 : 1;
        for (int rounds = 0; out.size() < want + connect && rounds < 2000; ++rounds) {
            ch.flush(1);
            pollfd p{conn, POLLIN, 0};
            if (::poll(&p, 1, 10) <= 0) continue;
            char chunk[1 << 16];
            ssize_t n = ::recv(conn, chunk, sizeof chunk, 0);
            if (n <= 0) break;
            buf.append(chunk, static_cast<std::size_t>(n));
            std::size_t nl;
            while ((nl = buf.find('\n')) != std::string::npos) {
                out.push_back(buf.substr(0, nl));
                buf.erase(0, nl + 1);
            }
        }
        if (connect && !out.empty()) {
            out.erase(out.begin());
            connectRead = true;
        }
        return out;
    }
    bool connectRead = false;
};

// A channel connected to it and accepted. The channel goes first.
struct Connected {
    Cli cli;
    Channel ch;
    Connected() {
        REQUIRE(ch.connect(cli.cfg));
        cli.accept();
    }
};

}  // namespace

TEST_CASE("a line written in parts goes out whole, before the lines sent meanwhile", "[channel]") {
    Connected c;
    Cli& cli = c.cli;
    Channel& ch = c.ch;
    REQUIRE(ch.beginLine());
    CHECK_FALSE(ch.beginLine());  // one at a time
    ch.linePart("{\"part\": ");
    // Another thread sends while the line is being written: held, not cut in.
    std::thread([&] { ch.send("{\"other\": 1}\n"); }).join();
    ch.linePart(std::string(200'000, '7'));
    ch.linePart("}\n");
    ch.endLine();
    ch.send("{\"after\": 1}\n");
    auto got = cli.lines(ch, 3);
    REQUIRE(got.size() == 3);
    CHECK(got[0] == "{\"part\": " + std::string(200'000, '7') + "}");
    CHECK(got[1] == "{\"other\": 1}");
    CHECK(got[2] == "{\"after\": 1}");
}

TEST_CASE("a line in parts waits for the CLI that reads it: its parts do not pile up in the program", "[channel]") {
    Connected c;
    Cli& cli = c.cli;
    Channel& ch = c.ch;
    const std::size_t parts = 64;  // 4 MB: far more than the socket holds
    std::string part(Channel::kPartBytes, 'q');
    std::vector<std::string> got;
    std::thread reader([&] { got = cli.lines(ch, 1); });
    REQUIRE(ch.beginLine());
    std::size_t most = 0;
    for (std::size_t i = 0; i < parts; ++i) {
        ch.linePart(part);
        most = std::max(most, ch.queuedBytes());
    }
    ch.linePart("\n");
    ch.endLine();
    reader.join();
    CHECK(most <= Channel::kPaceBytes);
    REQUIRE(got.size() == 1);
    CHECK(got[0].size() == parts * part.size());
}

TEST_CASE("a CLI that does not read costs a line in parts a bounded wait, and the line stays whole", "[channel]") {
    Connected c;
    Cli& cli = c.cli;
    Channel& ch = c.ch;
    std::string part(Channel::kPartBytes, 'w');
    auto start = std::chrono::steady_clock::now();
    REQUIRE(ch.beginLine());
    for (int i = 0; i < 32; ++i) ch.linePart(part);
    ch.linePart("\n");
    ch.endLine();
    double waitedMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    CHECK(waitedMs >= Channel::kPaceMs * 0.9);
    CHECK(waitedMs < Channel::kPaceMs + 2000);
    CHECK(ch.queuedBytes() > Channel::kPaceBytes);  // queued, as before pacing
    auto got = cli.lines(ch, 1);
    REQUIRE(got.size() == 1);
    CHECK(got[0].size() == 32 * part.size());
}

TEST_CASE("a line in parts is not begun while the queue is behind, and the drop is said", "[channel]") {
    Connected c;
    Cli& cli = c.cli;
    Channel& ch = c.ch;
    // Nobody reads: the socket's buffer fills and the rest waits queued.
    std::string big = "{\"big\": \"" + std::string(Channel::kMaxQueuedBytes / 2 + 1, 'x') + "\"}\n";
    REQUIRE(ch.send(big));
    CHECK_FALSE(ch.beginLine());
    auto got = cli.lines(ch, 2);
    REQUIRE(got.size() == 2);
    CHECK(got[0].size() + 1 == big.size());
    CHECK(got[1].find("\"type\": \"dropped\"") != std::string::npos);
    CHECK(got[1].find("\"count\": 1") != std::string::npos);
}

TEST_CASE("a line left unterminated by its writer is ended: never two lines run together", "[channel]") {
    Connected c;
    Cli& cli = c.cli;
    Channel& ch = c.ch;
    REQUIRE(ch.beginLine());
    try {
        LineParts parts(ch);
        std::ostream out(&parts);
        out << "{\"cut\": ";
        throw std::runtime_error("the writer failed");
    } catch (const std::runtime_error&) {
    }
    ch.send("{\"next\": 1}\n");
    auto got = cli.lines(ch, 2);
    REQUIRE(got.size() == 2);
    CHECK(got[0] == "{\"cut\": ");
    CHECK(got[1] == "{\"next\": 1}");
}

TEST_CASE("a line written through LineParts arrives in one piece, whatever its size", "[channel]") {
    Connected c;
    Cli& cli = c.cli;
    Channel& ch = c.ch;
    REQUIRE(ch.beginLine());
    std::string body;
    for (int i = 0; i < 50'000; ++i) body += std::to_string(i) + ",";
    {
        LineParts parts(ch);
        std::ostream out(&parts);
        out << "[" << body << "0]\n";
        parts.finish();
    }
    auto got = cli.lines(ch, 1);
    REQUIRE(got.size() == 1);
    CHECK(got[0] == "[" + body + "0]");
}

TEST_CASE("the buffers of written parts are reused, a whole line's are not", "[channel]") {
    Connected c;
    Cli& cli = c.cli;
    Channel& ch = c.ch;
    CHECK(ch.partBuffer().capacity() < Channel::kPartBytes);  // none written yet
    REQUIRE(ch.beginLine());
    {
        LineParts parts(ch);
        std::ostream out(&parts);
        out << std::string(3 * LineParts::kPart, 'p') << "\n";
        parts.finish();
    }
    REQUIRE(cli.lines(ch, 1).size() == 1);
    std::string reused = ch.partBuffer();
    CHECK(reused.empty());
    CHECK(reused.capacity() >= Channel::kPartBytes);
    while (ch.partBuffer().capacity() >= Channel::kPartBytes) {
    }
    REQUIRE(ch.send(std::string(4 * Channel::kPartBytes, 'w') + "\n"));
    REQUIRE(cli.lines(ch, 1).size() == 1);
    CHECK(ch.partBuffer().capacity() < Channel::kPartBytes);
}

TEST_CASE("without memory for a part, the line's stream fails and the line still ends", "[channel]") {
    Connected c;
    Cli& cli = c.cli;
    Channel& ch = c.ch;
    REQUIRE(ch.beginLine());
    std::size_t refusedBefore = aioscope::test::FailAllocations::refused();
    bool bad = false;
    {
        // A part's buffer (64 KiB) cannot be had; the channel's own small
        // allocations still can. Nothing may throw, the destructor included.
        aioscope::test::FailAllocations noParts(LineParts::kPart);
        LineParts parts(ch);
        std::ostream out(&parts);
        out << "{\"lost\": " << std::string(100, 'x') << "}\n";
        bad = out.bad();
    }
    CHECK(aioscope::test::FailAllocations::refused() > refusedBefore);
    CHECK(bad);
    ch.send("{\"next\": 1}\n");
    auto got = cli.lines(ch, 2);
    REQUIRE(got.size() == 2);
    CHECK(got[0].empty());  // the line the CLI cannot parse: ended, not run into the next
    CHECK(got[1] == "{\"next\": 1}");
}
