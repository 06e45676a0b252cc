// The text renderers on shapes a live program can have but a recursive,
// quadratic printer cannot survive: await chains 100,000 tasks deep, 100,000
// siblings with 5,000 distinct stacks, cycles without a root, and names
// made to attack the terminal.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <sstream>
#include <string>

#include "errors.h"
#include "render/snapshot_input.h"
#include "render/text.h"
#include "model/snapshot_json.h"
#include "terminal_check.h"

using namespace aioscope;
using namespace aioscope::cli;
using aioscope::test::firstTerminalHazard;

namespace {

constexpr std::uint64_t kLoop = 0x7f0000001000;

std::uint64_t idOf(std::size_t i) { return 0x7f1000000000 + 0x100 * i; }

std::shared_ptr<const Stack> stack(const std::string& fn, int line, const std::string& file = "/srv/app.py") {
    return std::make_shared<Stack>(Stack{Frame{fn, fn, file, line}});
}

Snapshot base() {
    Snapshot s;
    s.pid = 42;
    s.python.version = "3.12.1";
    Thread t;
    t.threadId = 1;
    t.name = "MainThread";
    s.threads.push_back(t);
    return s;
}

Task task(std::size_t i, std::string name, std::shared_ptr<const Stack> st) {
    Task t;
    t.id = idOf(i);
    t.name = std::move(name);
    t.loop = kLoop;
    t.threadId = 1;
    t.stack = std::move(st);
    return t;
}

// Task i awaits task i + 1; the last one sleeps. With `cycle`, the last one
// awaits the first instead.
Snapshot chain(std::size_t n, bool cycle = false) {
    Snapshot s = base();
    auto link = stack("link", 7);
    for (std::size_t i = 0; i < n; ++i) {
        Task t = task(i, "link-" + std::to_string(i), link);
        t.awaiting = Awaiting{};
        if (i + 1 < n || cycle) {
            t.awaiting->kind = "task";
            t.awaiting->task = idOf((i + 1) % n);
        } else {
            t.awaiting->kind = "sleep";
            t.stack = stack("asyncio.sleep", 600);
        }
        if (i > 0) t.awaitedBy = {idOf(i - 1)};
        if (i == 0 && cycle) t.awaitedBy = {idOf(n - 1)};
        s.tasks.push_back(std::move(t));
    }
    return s;
}

std::string text(const Snapshot& s, bool table = false, bool color = false) {
    std::ostringstream out;
    renderText(s, out, Style(color), table);
    return out.str();
}

std::size_t count(const std::string& haystack, const std::string& needle) {
    std::size_t n = 0;
    for (auto p = haystack.find(needle); p != std::string::npos; p = haystack.find(needle, p + needle.size())) ++n;
    return n;
}

std::size_t longestLine(const std::string& s) {
    std::size_t best = 0, start = 0;
    for (std::size_t nl; (nl = s.find('\n', start)) != std::string::npos; start = nl + 1) best = std::max(best, nl - start);
    return best;
}

}  // namespace

TEST_CASE("a chain 100,000 tasks deep prints its ends and folds the middle") {
    for (std::size_t n : {20000u, 100000u}) {
        std::string out = text(chain(n));
        INFO(n);
        CHECK(out.size() < 20000);
        CHECK(out.find("Task 'link-0'") != std::string::npos);
        CHECK(out.find("Task 'link-" + std::to_string(n - 1) + "'") != std::string::npos);
        CHECK(out.find("… " + std::to_string(n - 16) + " tasks folded, each awaiting the next") != std::string::npos);
        CHECK(out.find("asyncio.sleep") != std::string::npos);
        CHECK(out.find("(shown above)") == std::string::npos);
    }
}

TEST_CASE("a chain just short of folding is printed whole") {
    std::string out = text(chain(17));
    CHECK(out.find("folded") == std::string::npos);
    for (int i = 0; i < 17; ++i) CHECK(out.find("Task 'link-" + std::to_string(i) + "'") != std::string::npos);
}

TEST_CASE("an await cycle without a root is printed, folded, and every separate cycle is shown") {
    Snapshot s = chain(50000, true);
    Snapshot other = chain(3, true);
    for (auto& t : other.tasks) {
        t.id += 0x1000000000;
        t.awaiting->task = *t.awaiting->task + 0x1000000000;
        for (auto& w : t.awaitedBy) w += 0x1000000000;
        t.name = "other-" + t.name;
        s.tasks.push_back(t);
    }
    std::string out = text(s);
    CHECK(out.size() < 20000);
    CHECK(out.find("(awaiting each other, no root:)") != std::string::npos);
    CHECK(out.find("Task 'link-0'") != std::string::npos);
    CHECK(out.find("tasks folded") != std::string::npos);
    CHECK(count(out, "(shown above)") == 2);  // each cycle closes on its first task
    CHECK(out.find("Task 'other-link-2'") != std::string::npos);
}

TEST_CASE("a deep tree that branches at every level is not indented without bound") {
    // Task i awaits a gather of task i + 1 and a leaf: no chain to fold.
    Snapshot s = base();
    constexpr std::size_t kDepth = 20000;
    auto st = stack("level", 3);
    for (std::size_t i = 0; i < kDepth; ++i) {
        Task t = task(2 * i, "level-" + std::to_string(i), st);
        t.awaiting = Awaiting{"gather"};
        t.awaiting->children = {idOf(2 * i + 2), idOf(2 * i + 1)};
        if (i > 0) t.awaitedBy = {idOf(2 * i - 2)};
        s.tasks.push_back(t);
        Task leaf = task(2 * i + 1, "leaf-" + std::to_string(i), stack("leaf", i));
        leaf.awaitedBy = {idOf(2 * i)};
        s.tasks.push_back(leaf);
    }
    std::string out = text(s);
    CHECK(longestLine(out) < 200);
    CHECK(out.find("[+19975] ") != std::string::npos);
    CHECK(out.find("Task 'leaf-19999'") != std::string::npos);
}

TEST_CASE("100,000 siblings with 5,000 distinct stacks are grouped") {
    Snapshot s = base();
    std::vector<std::shared_ptr<const Stack>> stacks;
    for (int k = 0; k < 5000; ++k) stacks.push_back(stack("worker_" + std::to_string(k), 10));
    for (std::size_t i = 0; i < 100000; ++i) {
        // Equal stacks in distinct objects too (the JSON reader does not share them).
        auto st = i % 2 ? stacks[i % 5000] : std::make_shared<Stack>(*stacks[i % 5000]);
        Task t = task(i, "t-" + std::to_string(i), st);
        t.awaiting = Awaiting{"event"};
        s.tasks.push_back(std::move(t));
    }
    auto start = std::chrono::steady_clock::now();
    std::string out = text(s);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK(count(out, "× 20 Task") == 5000);
    CHECK(count(out, "worker_") == 5000);
    CHECK(seconds < 30);  // quadratic grouping took minutes; linear takes well under a second
}

TEST_CASE("a deep recursion is folded as in Python's tracebacks, in threads and tasks") {
    Snapshot s = base();
    Frame rec{"walk", "Tree.walk", "/srv/tree.py", 12};
    Frame top{"leaf", "leaf", "/srv/tree.py", 3};
    s.threads[0].frames.push_back(top);
    for (int i = 0; i < 30000; ++i) s.threads[0].frames.push_back(rec);
    s.threads[0].frames.push_back(Frame{"main", "main", "/srv/main.py", 1});
    Stack taskStack{top, rec, rec, rec, rec, Frame{"run", "run", "/srv/main.py", 9}};
    s.tasks.push_back(task(0, "walker", std::make_shared<Stack>(taskStack)));
    std::string out = text(s);
    CHECK(out.size() < 2000);
    CHECK(count(out, "Tree.walk (/srv/tree.py:12)") == 6);  // 3 in the thread, 3 in the task
    CHECK(out.find("[previous frame repeated 29997 more times]") != std::string::npos);
    CHECK(out.find("[previous frame repeated 1 more time]") != std::string::npos);
    CHECK(out.find("main (/srv/main.py:1)") != std::string::npos);
}

TEST_CASE("identical siblings are not grouped with a task in a finding or holding a lock") {
    Snapshot s = base();
    auto st = stack("w", 1);
    for (std::size_t i = 0; i < 4; ++i) s.tasks.push_back(task(i, "t" + std::to_string(i), st));
    s.tasks[2].holds = {0x1234};
    s.findings.push_back(Finding{"orphaned-wait", {idOf(0)}, {}, "Task 't0' waits"});
    std::string out = text(s);
    CHECK(out.find("× 2 Task 't1'") != std::string::npos);
    CHECK(out.find("Task 't0'") != std::string::npos);
    CHECK(out.find("Task 't2'") != std::string::npos);
}

TEST_CASE("hostile names reach the terminal escaped, in trees, tables and findings") {
    const std::string evil[] = {
        "\x1b]0;pwned\x07",        // set the terminal title
        "\x1b[2J\x1b[H",           // clear the screen
        "ok\r\x1b[1Aoverwritten",  // overwrite a line
        "\xc2\x9b" "31mC1",        // CSI as a C1 control
        "rev\xe2\x80\xae" "esrever",  // bidi override
        "bad\xff\xfeutf8",
        "</script><script>alert(1)</script>",
        std::string(10000, 'L'),
    };
    Snapshot s = base();
    s.threads[0].name = evil[0];
    s.threads[0].frames.push_back(Frame{evil[1], evil[1], evil[5], 1});
    std::size_t i = 0;
    for (const auto& name : evil) {
        Task t = task(i, name, stack(name, 1, name));
        t.awaiting = Awaiting{name};
        t.awaiting->object = 0x99;
        t.awaiting->objectType = name;
        t.error = name;
        s.tasks.push_back(std::move(t));
        ++i;
    }
    s.tasks[1].awaiting = Awaiting{"task"};
    s.tasks[1].awaiting->task = idOf(0);
    s.tasks[0].awaitedBy = {idOf(1)};
    s.findings.push_back(Finding{evil[2], {idOf(2)}, {}, "Task '" + evil[3] + "' " + evil[4]});
    s.warnings.push_back(evil[6] + evil[0]);
    s.python.executable = evil[5];
    for (bool table : {false, true}) {
        for (bool color : {false, true}) {
            std::string out = text(s, table, color);
            INFO("table " << table << " color " << color);
            CHECK(firstTerminalHazard(out, color) == std::string::npos);
            CHECK(out.find("\\x1b]0;pwned\\x07") != std::string::npos);
            CHECK(out.size() < 40000);  // the 10,000-character name is cut
        }
    }
    CHECK(text(s).find("L…(+9800 bytes)") != std::string::npos);
    CHECK(text(s).find("</script>") != std::string::npos);  // printable: shown as is
}

TEST_CASE("render's input: nesting is refused before parsing, and errors quote the input safely") {
    CHECK(jsonNestingWithin("[[[]]]", 3));
    CHECK_FALSE(jsonNestingWithin("[[[[]]]]", 3));
    CHECK(jsonNestingWithin(R"(["[[[[[[", {"a": "\"[[[["}])", 3));
    std::string deep(1000000, '[');
    try {
        snapshotFromText(deep, "deep.json");
        FAIL("accepted");
    } catch (const InspectError& e) {
        CHECK(e.code() == Errc::bad_input);
        CHECK(std::string(e.what()).find("nested deeper than 64 levels") != std::string::npos);
    }
    try {
        snapshotFromText(R"({"schema": "\u001b]0;x\u0007"})", "evil.json");
        FAIL("accepted");
    } catch (const InspectError& e) {
        CHECK(e.code() == Errc::bad_input);
        CHECK(firstTerminalHazard(e.what()) == std::string::npos);
    }
}

TEST_CASE("render's input: integer fields take integers in range (found by fuzz_render: 1e300 as a pid was undefined behaviour)") {
    auto doc = [](const std::string& pid, const std::string& line) {
        return R"({"schema": "aioscope/snapshot/1", "pid": )" + pid +
               R"(, "python": {"version": "3.12.1"}, "threads": [{"thread_id": 1, "frames": [)" +
               R"({"function": "f", "qualname": "f", "file": "a.py", "line": )" + line + "}]}]}";
    };
    CHECK(snapshotFromText(doc("42", "7"), "ok.json").threads[0].frames[0].line == 7);
    for (auto [pid, line] : {std::pair{"1e300", "7"}, {"42", "1e40"}, {"42", "3.5"}, {"42", "4294967296"},
                              {"18446744073709551616", "7"}, {"42", "-2147483649"}}) {
        INFO(pid << " " << line);
        try {
            snapshotFromText(doc(pid, line), "bad.json");
            FAIL("accepted");
        } catch (const InspectError& e) {
            CHECK(e.code() == Errc::bad_input);
        }
    }
}

TEST_CASE("render of a 100,000-deep chain read back from JSON") {
    std::ostringstream json;
    writeJson(chain(100000), json);
    Snapshot back = snapshotFromText(json.str(), "chain.json");
    std::string out = text(back);
    CHECK(out.size() < 20000);
    CHECK(out.find("99984 tasks folded") != std::string::npos);
}
