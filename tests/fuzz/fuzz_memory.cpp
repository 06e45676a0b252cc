// Fuzzes the memory reader and walkers: a memory image recorded from a real
// zoo process (tests/fuzz/images), torn the ways a live process tears it,
// goes through the whole pipeline a dump runs (resolve the runtime and its
// layout, read threads and tasks with retries, analyse, write JSON, render
// text) and a stall report runs (one thread and its task).
//
// Input: one byte choosing the image (its top bits: also render a table,
// also read one thread as a stall report does), then mutations, each an opcode byte
// and operands (offsets index the image's recorded bytes, see ImageReader):
//   0 write 1-16 bytes            4 point at junk (a freed block's bytes)
//   1 zero a block (freed)        5 copy bytes from elsewhere (stale data)
//   2 point at another object     6 add a small delta to a 64-bit field
//   3 unmap the page              7 write a 64-bit value
// Oracles: ASan/UBSan, no exception but the documented ones (InspectError,
// BadRead from resolving the runtime; nothing from a snapshot read or a
// stall report's thread read, which the agent runs inside the target), text
// output free of terminal control bytes, and a heap budget per run
// (heap_budget.h).
#include <algorithm>
#include <sstream>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <vector>

#include "errors.h"
#include "fuzz_input.h"
#include "heap_budget.h"
#include "layout/resolve.h"
#include "memory_image.h"
#include "model/snapshot_json.h"
#include "render/text.h"
#include "snapshot_reader.h"
#include "terminal_check.h"

using namespace aioscope;

namespace {

// No such process: the walkers' /proc lookups (thread names, pthread ids)
// find nothing, as for a process in another pid namespace.
constexpr pid_t kNoPid = 0x3ffffff0;

// The most one run may hold: reading, analysing and rendering an image of a
// few hundred kilobytes. The kept corpus (12,400 inputs) peaks at 7.6 MB;
// the rest is headroom for torn images that legitimately cost more.
constexpr std::size_t kHeapBudgetMb = 64;

std::vector<std::unique_ptr<fuzz::ImageReader>>& images() {
    static std::vector<std::unique_ptr<fuzz::ImageReader>> all;
    return all;
}

void loadImages() {
    const char* dir = std::getenv("AIOSCOPE_FUZZ_IMAGES");
    std::filesystem::path path = dir ? dir : AIOSCOPE_FUZZ_IMAGES_DIR;
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(path)) {
        if (e.path().extension() == ".img") files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());  // the image byte means the same in every run
    for (const auto& f : files) {
        std::ifstream in(f, std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        images().push_back(std::make_unique<fuzz::ImageReader>(fuzz::MemoryImage::parse(ss.str())));
    }
    if (images().empty()) {
        std::cerr << "fuzz_memory: no memory images (*.img) in " << path << "\n";
        std::abort();
    }
}

void mutate(fuzz::ImageReader& mem, fuzz::Input& in) {
    while (!in.empty()) {
        std::uint8_t op = in.u8() % 8;
        std::size_t at = in.u32();
        switch (op) {
            case 0: {
                std::size_t len = in.u8() % 16 + 1;
                auto bytes = in.bytes(len);
                mem.write(at, bytes.data(), bytes.size());
                break;
            }
            case 1:
                mem.zero(at, in.u16() % 4096 + 1);
                break;
            case 2: {
                Addr target = mem.addressOf(in.u32()) & ~Addr{7};
                mem.write(mem.align8(at), &target, sizeof target);
                break;
            }
            case 3:
                mem.unmapPage(at);
                break;
            case 4: {
                auto pattern = in.bytes(in.u8());
                Addr target = mem.junk(pattern.data(), pattern.size());
                mem.write(mem.align8(at), &target, sizeof target);
                break;
            }
            case 5:
                mem.copy(in.u32(), at, in.u8() % 64 + 1);
                break;
            case 6: {
                std::size_t field = mem.align8(at);
                std::uint64_t v = 0;
                mem.readAt(field, &v, sizeof v);
                v += static_cast<std::int8_t>(in.u8());
                mem.write(field, &v, sizeof v);
                break;
            }
            case 7: {
                std::uint64_t v = in.u64();
                mem.write(mem.align8(at), &v, sizeof v);
                break;
            }
        }
    }
}

void checkText(const Snapshot& snap, bool table) {
    std::ostringstream out;
    cli::renderText(snap, out, cli::Style(false), table);
    std::string text = out.str();
    if (auto at = test::firstTerminalHazard(text); at != std::string::npos) {
        std::cerr << "terminal control byte in text output at " << at << ": "
                  << text.substr(at > 40 ? at - 40 : 0, 80) << "\n";
        std::abort();
    }
}

void runPipeline(fuzz::ImageReader& mem, bool table, bool stallReport) {
    Remote remote(mem);
    ResolvedRuntime runtime;
    try {
        runtime = resolveRuntime(remote, mem.image().location);
    } catch (const InspectError&) {
        return;  // not Python / unsupported: a clear error for the user
    } catch (const BadRead&) {
        return;
    }
    PythonInfo python;
    python.executable = mem.image().location.executable;
    SnapshotReader reader(mem, std::move(runtime), python, kNoPid);
    // One attempt: a re-read of an image reads the same bytes (the retry
    // logic is the same code path with attempt == attempts).
    Snapshot snap = reader.read(1);
    std::ostringstream json;
    writeJson(snap, json);
    checkText(snap, false);
    if (table) checkText(snap, true);
    // The agent reads one thread for a stall report from its own thread,
    // where an exception escaping would terminate the target process: any
    // exception from readThread is a crash.
    if (stallReport) reader.readThread(snap.threads.empty() ? 0 : snap.threads.front().threadId);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    loadImages();
    fuzz::HeapBudget::install(kHeapBudgetMb);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    fuzz::Input in(data, size);
    std::uint8_t first = in.u8();
    fuzz::ImageReader& mem = *images()[(first & 0x3f) % images().size()];
    fuzz::HeapBudget::begin();
    mutate(mem, in);
    try {
        runPipeline(mem, first & 0x40, first & 0x80);
    } catch (const InspectError&) {
        // gone / denied cannot happen on an image; the others are user errors.
    }
    fuzz::HeapBudget::end();
    mem.reset();
    return 0;
}
