#include "inject/stub_site.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "errors.h"
#include "inject/safe_fs.h"
#include "target/elf_file.h"
#include "target/proc.h"

namespace aioscope::cli {

namespace {

constexpr std::uint64_t kPage = 4096;

struct Site {
    std::uint64_t addr = 0;
    std::uint64_t room = 0;
    std::vector<std::uint8_t> original;  // the file's bytes there
    bool libc = false;
};

bool readMemory(pid_t pid, std::uint64_t addr, std::vector<std::uint8_t>& out) {
    iovec local{out.data(), out.size()};
    iovec remote{reinterpret_cast<void*>(addr), out.size()};
    return process_vm_readv(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(out.size());
}

// The file's bytes at `offset` (zeros past its end, as the mapping shows them).
bool readFile(const std::string& path, std::uint64_t offset, std::vector<std::uint8_t>& out) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return false;
    std::fill(out.begin(), out.end(), 0);
    std::size_t got = 0;
    while (got < out.size()) {
        ssize_t n = ::pread(fd.get(), out.data() + got, out.size() - got, static_cast<off_t>(offset + got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return false;
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    return true;
}

// The tail of `m`'s last page past the end of the segment it maps, if any.
std::optional<Site> tailOf(const ProcFs& proc, const Mapping& m, std::size_t need) {
    for (const auto& path : proc.openablePaths(m)) {
        auto elf = readElfFacts(path, {}, {});
        if (!elf || elf->inode != m.inode) continue;
        auto bias = loadBias(m, elf->loads);
        if (!bias) return std::nullopt;
        // The end of the last segment that reaches into this mapping.
        std::uint64_t segEnd = 0;
        for (const auto& seg : elf->loads) {
            std::uint64_t begin = *bias + seg.vaddr, end = begin + seg.memsz;
            if (begin < m.end && end > m.start) segEnd = std::max(segEnd, end);
        }
        if (segEnd <= m.start || segEnd > m.end || m.end - segEnd >= kPage) return std::nullopt;
        Site s;
        s.addr = (segEnd + 15) & ~std::uint64_t{15};
        if (s.addr >= m.end || m.end - s.addr < need) return std::nullopt;
        s.room = m.end - s.addr;
        s.original.resize(need);
        if (!readFile(path, m.offset + (s.addr - m.start), s.original)) return std::nullopt;
        return s;
    }
    return std::nullopt;
}

}  // namespace

std::uint64_t placeStub(pid_t pid, HijackedThread& thread) {
    const StubCode& code = stubCode();
    std::vector<std::uint8_t> stub(code.bytes, code.bytes + code.size);
    ProcFs proc(pid);
    std::vector<Site> sites;
    for (const auto& m : proc.maps()) {
        if (m.perms != "r-xp" || !m.fileBacked() || m.deleted()) continue;
        auto site = tailOf(proc, m, stub.size());
        if (!site) continue;
        std::string base = m.cleanPath().substr(m.cleanPath().rfind('/') + 1);
        site->libc = base.starts_with("libc.so") || base.starts_with("libc-");
        std::vector<std::uint8_t> now(stub.size());
        if (!readMemory(pid, site->addr, now)) continue;
        if (now == stub) return site->addr;  // put there by an earlier attach
        if (now == site->original) sites.push_back(std::move(*site));
    }
    // libc first (every target has it), then the most room.
    std::stable_sort(sites.begin(), sites.end(), [](const Site& a, const Site& b) {
        return a.libc != b.libc ? a.libc : a.room > b.room;
    });
    for (const auto& site : sites) {
        std::vector<std::uint8_t> check(stub.size());
        if (thread.poke(site.addr, stub.data(), stub.size()) && readMemory(pid, site.addr, check) && check == stub) {
            return site.addr;
        }
        // A partial write is harmless: no thread is pointed at it. It is not
        // undone either (another aioscope may be running the same bytes).
    }
    throw InspectError(Errc::internal, "no executable mapping of the target has room for the loader stub (" +
                                           std::to_string(stub.size()) + " bytes)");
}

}  // namespace aioscope::cli
