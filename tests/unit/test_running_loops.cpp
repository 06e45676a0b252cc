// Which loop and task each thread runs (walk/running), over hand-built
// thread states: a read that tears must say the task is unknown, never pass
// for a thread running no task (a stall's `task: null` means none ran).
#include <catch2/catch.hpp>

#include "fake_memory.h"
#include "fake_python.h"
#include "test_data.h"
#include "walk/running.h"

using namespace aioscope;
using aioscope::test::FakeMemory;
using aioscope::test::FakePython;
using aioscope::test::recordedLayout;

namespace {

constexpr Addr kUnmapped = 0xdead0000;
constexpr std::size_t kPage = 4096;

}  // namespace

TEST_CASE("readRunningLoops: a thread whose running task did not read is unknown, not taskless") {
    Layout L = recordedLayout(13);
    L.asyncio.threadRunningTask = L.asyncio.threadRunningLoop + 8;  // as 3.14's offsets place it
    FakeMemory mem;
    FakePython py(mem, L);
    Remote remote(mem);
    Objects objects(remote, L);
    const Addr loopType = py.type("_UnixSelectorEventLoop", 0);
    const Addr taskType = py.type("Task", 0);
    const Addr loop = py.object(loopType, 64);
    const Addr task = py.object(taskType, 64);
    const auto loopAt = static_cast<Addr>(L.asyncio.threadRunningLoop);
    const auto taskAt = static_cast<Addr>(L.asyncio.threadRunningTask);

    // 1: runs `task` on `loop`.
    Addr running = mem.alloc(kPage);
    mem.put<Addr>(running + loopAt, loop);
    mem.put<Addr>(running + taskAt, task);
    // 2: its loop reads, its task field lies past the end of what is mapped.
    Addr torn = mem.alloc(kPage) + kPage - taskAt;
    mem.put<Addr>(torn + loopAt, loop);
    // 3: nothing of it reads.
    // 4: no loop, no task.
    Addr idle = mem.alloc(kPage);

    InterpreterState interp;
    std::vector<ThreadState> threads{{.addr = running, .threadId = 1}, {.addr = torn, .threadId = 2},
                                     {.addr = kUnmapped, .threadId = 3}, {.addr = idle, .threadId = 4}};
    RunningLoops got = readRunningLoops(objects, interp, threads, 1234);

    CHECK(got.taskOfThread.at(1) == task);
    CHECK(got.loopOfThread.at(1) == loop);
    CHECK_FALSE(got.taskUnknown.contains(1));

    CHECK(got.loopOfThread.at(2) == loop);
    CHECK_FALSE(got.taskOfThread.contains(2));
    CHECK(got.taskUnknown.contains(2));

    CHECK_FALSE(got.taskOfThread.contains(3));
    CHECK(got.taskUnknown.contains(3));

    CHECK_FALSE(got.taskOfThread.contains(4));
    CHECK_FALSE(got.loopOfThread.contains(4));
    CHECK_FALSE(got.taskUnknown.contains(4));
}
