// Records the seed memory image of a live CPython process for fuzz_memory:
//
//   record_image PID OUT.img LABEL
//
// Stops the process (ptrace, as `dump --pause`), locates and resolves its
// runtime and reads one snapshot through a RecordingReader, resumes it, then
// replays the image through the same pipeline and checks that the replay
// gives the same threads and tasks (so the image holds everything a
// snapshot read needs). Run by tests/fuzz/record_seeds.py on zoo fixtures.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "errors.h"
#include "layout/resolve.h"
#include "mem/process_reader.h"
#include "memory_image.h"
#include "model/snapshot_json.h"
#include "snapshot_reader.h"
#include "target/locate.h"
#include "target/pause.h"
#include "target/proc.h"

using namespace aioscope;

namespace {

// What must survive the replay: everything the walkers produced. (Thread
// names from /proc and native ids from pthreads come from the live process,
// not its memory, and are left out.)
std::string essence(Snapshot s) {
    s.capturedAt = 0;
    s.durationMs = 0;
    s.pausedMs.reset();
    s.python.executable.clear();
    s.python.runtimeFile.clear();
    for (auto& t : s.threads) {
        t.name.reset();
        t.nativeId.reset();
    }
    s.pid = 0;
    return toJson(s).dump();
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::cerr << "usage: record_image PID OUT.img LABEL\n";
        return 2;
    }
    pid_t pid = static_cast<pid_t>(std::atoi(argv[1]));
    try {
        ProcFs proc(pid);
        proc.requireAlive();
        ProcessReader process(pid);
        fuzz::MemoryImage image;
        image.label = argv[3];
        image.location = locateRuntime(proc, proc.maps());
        PythonInfo python;
        Snapshot live;
        {
            ProcessPause pause(pid);
            fuzz::RecordingReader recorder(process, image);
            Remote mem(recorder);
            ResolvedRuntime runtime = resolveRuntime(mem, image.location);
            SnapshotReader reader(recorder, std::move(runtime), python, pid);
            live = reader.read(1);
            pause.resume();
        }
        std::string data = image.serialize();
        fuzz::ImageReader replayMemory(fuzz::MemoryImage::parse(data));
        Remote mem(replayMemory);
        ResolvedRuntime runtime = resolveRuntime(mem, replayMemory.image().location);
        SnapshotReader reader(replayMemory, std::move(runtime), python, pid);
        Snapshot replay = reader.read(1);
        if (essence(live) != essence(replay)) {
            std::cerr << "record_image: the replay differs from the live read\n";
            return 1;
        }
        std::ofstream out(argv[2], std::ios::binary | std::ios::trunc);
        out << data;
        if (!out.flush()) {
            std::cerr << "record_image: cannot write " << argv[2] << "\n";
            return 1;
        }
        std::printf("%s: %zu regions, %zu bytes; %zu threads, %zu tasks, %zu findings, %zu warnings\n", argv[3],
                    image.regions.size(), image.bytes(), live.threads.size(), live.tasks.size(),
                    live.findings.size(), live.warnings.size());
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "record_image: " << e.what() << "\n";
        return 1;
    }
}
