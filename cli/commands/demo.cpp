// `aioscope demo`: runs fixtures/demo.py, reads it from outside exactly as
// `aioscope dump` would, and explains the result. The fixture is always
// stopped afterwards.
#include <signal.h>
#include <spawn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "commands/commands.h"
#include "errors.h"
#include "inspect.h"
#include "model/snapshot_json.h"
#include "render/terminal_safe.h"
#include "render/text.h"
#include "target/proc.h"

extern char** environ;

namespace aioscope::cli {

namespace fs = std::filesystem;

namespace {

std::string fixturesDir() {
    if (const char* env = std::getenv("AIOSCOPE_FIXTURES")) return env;
    fs::path self = fs::read_symlink("/proc/self/exe");
    for (fs::path candidate : {self.parent_path() / "../fixtures", self.parent_path() / "../share/aioscope/fixtures",
                               fs::path(AIOSCOPE_SOURCE_DIR) / "fixtures"}) {
        if (fs::exists(candidate / "demo.py")) return fs::canonical(candidate).string();
    }
    throw InspectError(Errc::internal, "cannot find the demo program (fixtures/demo.py); set AIOSCOPE_FIXTURES");
}

int run(const std::vector<std::string>& argv, bool quiet) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (quiet) {
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    }
    pid_t pid = -1;
    int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    return rc == 0 ? pid : -1;
}

// The first supported interpreter on PATH.
std::string pickPython() {
    for (const char* name : {"python3.14", "python3.13", "python3.12", "python3.11", "python3.10", "python3"}) {
        pid_t pid = run({name, "-c", "import sys; sys.exit(0 if (3,10) <= sys.version_info[:2] <= (3,15) else 1)"}, true);
        if (pid < 0) continue;
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return name;
    }
    throw InspectError(Errc::internal, "no CPython 3.10-3.15 on PATH; pass --python");
}

class DemoProcess {
public:
    DemoProcess(const std::string& python, const std::string& script, const std::string& ready) {
        m_pid = run({python, script, "--truth", ready}, false);
        if (m_pid < 0) throw InspectError(Errc::internal, "cannot start " + python);
    }
    ~DemoProcess() {
        kill(m_pid, SIGKILL);
        waitpid(m_pid, nullptr, 0);
    }
    pid_t pid() const { return m_pid; }
    bool alive() const { return waitpid(m_pid, nullptr, WNOHANG) == 0; }

private:
    pid_t m_pid;
};

void waitReady(const DemoProcess& proc, const std::string& ready) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!fs::exists(ready)) {
        if (!proc.alive()) throw InspectError(Errc::internal, "the demo program exited early");
        if (std::chrono::steady_clock::now() > deadline) {
            throw InspectError(Errc::internal, "the demo program did not get ready in 30 s");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    // The helper thread that wrote the file exits right after it: wait until
    // it is gone so the dump shows only the program's own threads.
    std::ifstream in(ready);
    auto doc = nlohmann::json::parse(in, nullptr, false);
    if (doc.is_object() && doc.contains("observer_native_id")) {
        std::string task = "/proc/" + std::to_string(proc.pid()) + "/task/" +
                           std::to_string(doc["observer_native_id"].get<long>());
        while (fs::exists(task) && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
}

void explain(const Snapshot& snap, std::ostream& out, const Style& st) {
    out << "\n" << st.bold("What this shows") << "\n";
    out << "aioscope read the process from outside: nothing ran inside it and it was not stopped.\n";
    std::size_t loopThreads = 0;
    for (const auto& t : snap.threads) {
        if (!t.frames.empty() && t.frames.front().qualname.find("select") != std::string::npos) ++loopThreads;
    }
    if (loopThreads) {
        out << "- The thread stack alone shows only the event loop waiting in select(): the process looks idle.\n";
    }
    out << "- " << snap.tasks.size() << " asyncio tasks, each with its stitched coroutine stack and what it waits on;\n"
        << "  identical idle tasks are folded into one line (x N).\n";
    for (const auto& f : snap.findings) {
        out << "- " << st.red(terminalSafe(f.kind)) << ": " << terminalSafe(f.message, 4000) << "\n";
    }
    if (!snap.findings.empty()) {
        out << "The two handlers each hold one asyncio.Lock (inferred from their `async with` blocks) and\n"
               "wait for the other's: no timeout, no exception, no log line, just two requests that never end.\n"
               "`aioscope dump` exits with status 10 when it finds tasks that can never finish.\n";
    }
}

}  // namespace

int runDemo(const DemoArgs& args) {
    std::string python = args.python.empty() ? pickPython() : args.python;
    std::string dir = fixturesDir();
    char tmpl[] = "/tmp/aioscope-demo-XXXXXX";
    if (!mkdtemp(tmpl)) throw InspectError(Errc::internal, "cannot create a temporary directory");
    std::string ready = std::string(tmpl) + "/ready.json";
    Style st = Style::forStdout(args.color);
    std::cout << st.dim("Starting " + dir + "/demo.py with " + python + " ...") << "\n\n";
    Snapshot snap;
    {
        DemoProcess proc(python, dir + "/demo.py", ready);
        waitReady(proc, ready);
        Inspector inspector(proc.pid());
        snap = inspector.snapshot(InspectOptions{});
    }
    fs::remove_all(tmpl);
    renderText(snap, std::cout, st);
    explain(snap, std::cout, st);
    return 0;
}

}  // namespace aioscope::cli
