// Fuzzes the CLI's handling of what an agent sends: bytes as they arrive on
// the agent socket, cut into lines as the event server cuts them, each line
// parsed as an event and emitted to a terminal (text; inputs of odd length)
// or to a pipe (JSON Lines with GitHub annotations; even length): one
// stream per run halves the cost of a run, and a mutation of one byte's
// length moves an input from one to the other.
// Oracles: ASan/UBSan; no exception escapes; the terminal never receives a
// control byte (colour codes aside).
//
// The code under test is reached through feedLine() only: when the relay's
// entry point changes, point feedLine() at the new one.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <sstream>
#include <sys/mman.h>

#include "fuzz_input.h"
#include "stream/event_stream.h"
#include "terminal_check.h"

using namespace aioscope;
using namespace aioscope::cli;

namespace {

// EventServer::poll: lines end at '\n'; a partial line longer than this is
// dropped (not an agent).
constexpr std::size_t kMaxLine = 256u << 20;

// AgentRelay::onLine (cli/commands/agent_session.cpp) as it is, minus what
// needs a live peer: the pid comes from the socket's credentials, a stall's
// native stack from ptrace (not done here: it would stop threads of the
// fuzzer itself).
void feedLine(EventStream& stream, std::string& line) {
    auto checked = checkAgentLine(line);
    if (!checked.event) return;
    auto event = std::move(checked.event);
    (*event)["pid"] = 4242;
    event->erase("_slot");
    stream.emit(*event);
}

// EventStream renders text only when its fd is a terminal (decided when
// it is made): make it on a pseudo-terminal, then put `into` in that fd's
// place, so that its text lands in the memory file.
std::unique_ptr<EventStream> terminalStream(StreamOptions options, int into) {
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) std::abort();
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    if (slave < 0) std::abort();
    options.fd = slave;
    auto stream = std::make_unique<EventStream>(options);
    if (!stream->text() || dup2(into, slave) < 0) std::abort();
    close(master);
    return stream;
}

struct Streams {
    std::unique_ptr<EventStream> text, json;
    int fd = -1;
};

std::string takeOutput(int fd) {
    std::string out;
    off_t size = lseek(fd, 0, SEEK_END);
    if (size > 0) {
        out.resize(static_cast<std::size_t>(size));
        if (pread(fd, out.data(), out.size(), 0) != size) std::abort();
    }
    if (ftruncate(fd, 0) != 0) std::abort();
    lseek(fd, 0, SEEK_SET);
    return out;
}

Streams& streams() {
    static Streams s;
    return s;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    Streams& s = streams();
    s.fd = memfd_create("fuzz_events", 0);
    if (s.fd < 0) std::abort();
    StreamOptions text;
    text.color = ColorMode::never;
    s.text = terminalStream(text, s.fd);
    StreamOptions json;
    json.json = true;
    json.githubAnnotations = true;
    json.fd = s.fd;
    s.json = std::make_unique<EventStream>(json);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Streams& s = streams();
    std::string pending(reinterpret_cast<const char*>(data), size);
    {
        EventStream* stream = size % 2 ? s.text.get() : s.json.get();
        takeOutput(s.fd);
        std::size_t start = 0, nl;
        while ((nl = pending.find('\n', start)) != std::string::npos) {
            std::string line = pending.substr(start, nl - start);
            start = nl + 1;
            feedLine(*stream, line);
        }
        if (pending.size() - start > kMaxLine) std::abort();  // cannot happen at fuzzer sizes
        if (stream == s.text.get()) {
            std::string shown = takeOutput(s.fd);
            auto at = test::firstTerminalHazard(shown);
            if (at != std::string::npos) {
                std::cerr << "terminal control byte in event text at " << at << ": "
                          << shown.substr(at > 40 ? at - 40 : 0, 80) << "\n";
                std::abort();
            }
        }
    }
    return 0;
}
