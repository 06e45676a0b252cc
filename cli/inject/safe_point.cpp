#include "inject/safe_point.h"

#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <gelf.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <iterator>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string_view>
#include <vector>

#include "agent_protocol.h"
#include "errors.h"
#include "inject/safe_fs.h"
#include "target/elf_file.h"
#include "target/proc.h"

namespace aioscope::cli {

namespace {

constexpr std::size_t kMaxFrames = 4096;
constexpr std::uint64_t kStackRoom = 64 * 1024;  // for dlopen and the agent's constructors

// The allow-list, sorted. Every name is an exported glibc function (or an
// exported alias) that, while it waits, holds no lock dlopen or
// pthread_create could need: it blocks in one system call, or in a futex
// wait on the program's own object (a user mutex, condition variable,
// semaphore, thread to join).
constexpr std::string_view kAllowed[] = {
    "__clock_nanosleep", "__close", "__connect", "__fcntl", "__nanosleep", "__open", "__open64",
    "__poll", "__pread64", "__pthread_mutex_lock", "__pwrite64", "__read", "__recv", "__recvfrom", "__recvmsg",
    "__sched_yield", "__select", "__send", "__sendmsg", "__sendto", "__sigsuspend", "__wait4", "__waitpid",
    "__write", "accept", "accept4", "clock_gettime", "clock_nanosleep", "close", "connect", "epoll_pwait",
    "epoll_pwait2", "epoll_wait", "fcntl", "fcntl64", "fdatasync", "flock", "fsync", "getrandom", "gettimeofday",
    "ioctl", "lockf", "lockf64", "mq_receive", "mq_send", "mq_timedreceive", "mq_timedsend", "msgrcv", "msgsnd",
    "nanosleep", "open", "open64", "openat", "openat64", "pause", "poll", "ppoll", "pread", "pread64", "preadv",
    "preadv2", "preadv64", "pselect", "pthread_barrier_wait", "pthread_clockjoin_np", "pthread_cond_clockwait",
    "pthread_cond_timedwait", "pthread_cond_wait", "pthread_join", "pthread_mutex_clocklock", "pthread_mutex_lock",
    "pthread_mutex_timedlock", "pthread_rwlock_clockrdlock", "pthread_rwlock_clockwrlock", "pthread_rwlock_rdlock",
    "pthread_rwlock_timedrdlock", "pthread_rwlock_timedwrlock", "pthread_rwlock_wrlock", "pthread_timedjoin_np",
    "pwrite", "pwrite64", "pwritev", "pwritev2", "read", "readv", "recv", "recvfrom", "recvmmsg", "recvmsg",
    "sched_yield", "select", "sem_clockwait", "sem_timedwait", "sem_wait", "semop", "semtimedop", "send",
    "sendmmsg", "sendmsg", "sendto", "sigsuspend", "sigtimedwait", "sigwait", "sigwaitinfo", "sleep", "syscall",
    "time", "usleep", "wait", "wait3", "wait4", "waitid", "waitpid", "write", "writev",
};

// libc's internals that hold its locks; seen by name inside a libc call
// (with symbols), the call is never safe whatever it was entered through.
constexpr std::string_view kDeniedInside[] = {
    "__lll_lock_wait_private", "_IO_", "_dl_", "__libc_malloc", "__libc_free", "_int_malloc",
    "_int_free", "malloc", "free", "realloc", "calloc", "__libc_dlopen_mode", "__pthread_create", "fork",
};

static_assert(std::is_sorted(std::begin(kAllowed), std::end(kAllowed)), "binary search needs the allow-list sorted");

enum class Kind { program, libc, loader, allocator, agent };

struct Module {
    std::uint64_t start, end;
    Kind kind;
    std::string name;
};

Kind kindOf(const std::string& path) {
    std::string base = path.substr(path.rfind('/') + 1);
    if (base.starts_with("ld-linux") || base.starts_with("ld-") || base.starts_with("ld.so")) return Kind::loader;
    if (base.starts_with("libc.so") || base.starts_with("libc-") || base.starts_with("libpthread") ||
        base.starts_with("libdl") || base.starts_with("librt") || base == "[vdso]") {
        return Kind::libc;
    }
    if (base.starts_with("libjemalloc") || base.starts_with("libtcmalloc") || base.starts_with("libmimalloc")) {
        return Kind::allocator;
    }
    // Our own agent: its start takes a lock that a second start on the same
    // thread would wait for forever.
    if (base == "aioscope-agent.so") return Kind::agent;
    return Kind::program;
}

struct Symbol {
    std::uint64_t lo, hi;
    std::string name;
};

// Function symbols (.dynsym and .symtab) of an ELF file, at `bias`.
void readFunctions(const std::string& path, std::uint64_t bias, std::vector<Symbol>& out) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return;
    elf_version(EV_CURRENT);
    Elf* e = elf_begin(fd.get(), ELF_C_READ_MMAP, nullptr);
    if (!e) return;
    for (Elf_Scn* scn = elf_nextscn(e, nullptr); scn; scn = elf_nextscn(e, scn)) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || (sh.sh_type != SHT_DYNSYM && sh.sh_type != SHT_SYMTAB) || !sh.sh_entsize) continue;
        Elf_Data* data = elf_getdata(scn, nullptr);
        std::size_t n = sh.sh_size / sh.sh_entsize;
        for (std::size_t i = 0; data && i < n && i < 1000000; ++i) {
            GElf_Sym sym;
            if (!gelf_getsym(data, static_cast<int>(i), &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
                !sym.st_value) {
                continue;
            }
            const char* name = elf_strptr(e, sh.sh_link, sym.st_name);
            if (!name || !*name) continue;
            std::string clean = name;
            if (auto at = clean.find('@'); at != std::string::npos) clean.resize(at);
            out.push_back({bias + sym.st_value, bias + sym.st_value + sym.st_size, clean});
        }
    }
    elf_end(e);
}

// Where the section `name` of an ELF file is, before relocation.
std::optional<std::pair<std::uint64_t, std::uint64_t>> sectionBounds(const std::string& path, std::string_view name) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return std::nullopt;
    elf_version(EV_CURRENT);
    Elf* e = elf_begin(fd.get(), ELF_C_READ_MMAP, nullptr);
    if (!e) return std::nullopt;
    std::optional<std::pair<std::uint64_t, std::uint64_t>> out;
    std::size_t names = 0;
    if (elf_getshdrstrndx(e, &names) == 0) {
        for (Elf_Scn* scn = elf_nextscn(e, nullptr); scn && !out; scn = elf_nextscn(e, scn)) {
            GElf_Shdr sh;
            if (!gelf_getshdr(scn, &sh)) continue;
            const char* n = elf_strptr(e, names, sh.sh_name);
            if (n && n == name && sh.sh_size) out.emplace(sh.sh_addr, sh.sh_addr + sh.sh_size);
        }
    }
    elf_end(e);
    return out;
}

bool readBytes(pid_t pid, std::uint64_t addr, void* buf, std::size_t len) {
    iovec local{buf, len};
    iovec remote{reinterpret_cast<void*>(addr), len};
    return process_vm_readv(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(len);
}

std::int32_t le32(const std::uint8_t* p) {
    std::int32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

struct Frame {
    std::uint64_t pc;
    bool activation;  // the interrupted instruction itself, not a return address
    std::uint64_t lookup() const { return activation ? pc : pc - 1; }
};

}  // namespace

bool allowedLibcEntry(std::string_view name) { return std::binary_search(std::begin(kAllowed), std::end(kAllowed), name); }

struct SafePointJudge::Impl {
    pid_t pid;
    std::vector<Mapping> maps;
    std::vector<Module> modules;
    std::vector<Symbol> libc;  // sorted by lo
    std::uint64_t stubBegin = 0, stubEnd = 0;
    // The agent's calls out to the program's Python code (agent/so/callout.h).
    std::uint64_t calloutBegin = 0, calloutEnd = 0;
    Dwfl* dwfl = nullptr;
    bool attached = false;
    // The thread being unwound.
    pid_t tid = 0;
    user_regs_struct regs{};

    const Module* moduleAt(std::uint64_t addr) const {
        auto it = std::upper_bound(modules.begin(), modules.end(), addr,
                                   [](std::uint64_t a, const Module& m) { return a < m.start; });
        if (it == modules.begin()) return nullptr;
        --it;
        return addr < it->end ? &*it : nullptr;
    }
    Kind kindAt(std::uint64_t addr) const {
        const Module* m = moduleAt(addr);
        return m ? m->kind : Kind::program;
    }
    std::vector<std::string> namesAt(std::uint64_t addr, bool exact) const {
        std::vector<std::string> out;
        for (const auto& s : libc) {
            if (s.lo > addr) break;
            if (exact ? s.lo == addr : addr < s.hi) out.push_back(s.name);
        }
        return out;
    }
    std::uint64_t followPlt(std::uint64_t target) const;
    std::uint64_t callTarget(std::uint64_t returnAddress) const;
    std::uint64_t calledFrom(std::uint64_t returnAddress) const;
    bool callingOut(const Frame& f) const;
    bool hasCfi(const Frame& f) const;
};

namespace {

thread_local SafePointJudge::Impl* t_judge = nullptr;

int findElf(Dwfl_Module* mod, void** userdata, const char* name, Dwarf_Addr base, char** fileName, Elf** elfp) {
    SafePointJudge::Impl* j = t_judge;
    if (!j || !name || name[0] != '/') return dwfl_linux_proc_find_elf(mod, userdata, name, base, fileName, elfp);
    std::string path;
    int fd = ProcFs(j->pid).openMappedNamed(j->maps, name, path);
    if (fd >= 0) *fileName = ::strdup(path.c_str());
    *elfp = nullptr;
    return fd;  // libdwfl owns it now
}

// Unwinding from the target's own files only: no separate debug files
// (whether they are installed must not change the verdict).
int noDebuginfo(Dwfl_Module*, void**, const char*, Dwarf_Addr, const char*, const char*, GElf_Word, char**) {
    return -1;
}

pid_t nextThread(Dwfl*, void* arg, void** threadArg) {
    if (*threadArg) return 0;
    *threadArg = arg;
    return static_cast<SafePointJudge::Impl*>(arg)->tid;
}

bool memoryRead(Dwfl*, Dwarf_Addr addr, Dwarf_Word* result, void* arg) {
    return readBytes(static_cast<SafePointJudge::Impl*>(arg)->pid, addr, result, sizeof *result);
}

bool initialRegisters(Dwfl_Thread* thread, void* arg) {
    const user_regs_struct& r = static_cast<SafePointJudge::Impl*>(arg)->regs;
    // x86-64 DWARF numbering: rax rdx rcx rbx rsi rdi rbp rsp r8-r15, then the return address.
    Dwarf_Word regs[17] = {r.rax, r.rdx, r.rcx, r.rbx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8,
                           r.r9,  r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rip};
    return dwfl_thread_state_registers(thread, 0, 17, regs);
}

int collect(Dwfl_Frame* frame, void* arg) {
    auto* frames = static_cast<std::vector<Frame>*>(arg);
    Dwarf_Addr pc = 0;
    bool activation = false;
    if (!dwfl_frame_pc(frame, &pc, &activation)) return DWARF_CB_ABORT;
    frames->push_back({pc, activation});
    return frames->size() < kMaxFrames ? DWARF_CB_OK : DWARF_CB_ABORT;
}

}  // namespace

// A PLT entry jumps through its GOT slot: where it really goes (0 if `target`
// is not a PLT entry we know).
std::uint64_t SafePointJudge::Impl::followPlt(std::uint64_t target) const {
    std::uint8_t c[16];
    if (!readBytes(pid, target, c, sizeof c)) return 0;
    std::size_t at = 0;
    if (c[0] == 0xf3 && c[1] == 0x0f && c[2] == 0x1e && c[3] == 0xfa) at = 4;  // endbr64
    if (c[at] == 0xf2) ++at;  // bnd jmp
    if (c[at] != 0xff || c[at + 1] != 0x25) return 0;  // jmp *disp32(%rip)
    std::uint64_t slot = target + (at + 2 + 4) + static_cast<std::int64_t>(le32(c + at + 2));
    std::uint64_t dest = 0;
    return readBytes(pid, slot, &dest, sizeof dest) ? dest : 0;
}

// What the call instruction before `returnAddress` called (0 when it called
// through a register).
std::uint64_t SafePointJudge::Impl::callTarget(std::uint64_t returnAddress) const {
    std::uint8_t c[6];
    if (returnAddress < sizeof c || !readBytes(pid, returnAddress - sizeof c, c, sizeof c)) return 0;
    std::uint64_t target = 0;
    if (c[1] == 0xe8) {  // call rel32
        target = returnAddress + static_cast<std::int64_t>(le32(c + 2));
    } else if (c[0] == 0xff && c[1] == 0x15) {  // call *disp32(%rip): -fno-plt
        std::uint64_t slot = returnAddress + static_cast<std::int64_t>(le32(c + 2));
        if (!readBytes(pid, slot, &target, sizeof target)) return 0;
    }
    return target;
}

// The libc function the call before `returnAddress` entered (through its PLT
// entry or directly), or 0.
std::uint64_t SafePointJudge::Impl::calledFrom(std::uint64_t returnAddress) const {
    std::uint64_t target = callTarget(returnAddress);
    if (!target) return 0;
    if (kindAt(target) == Kind::libc) return target;
    std::uint64_t viaPlt = followPlt(target);
    return kindAt(viaPlt) == Kind::libc ? viaPlt : 0;
}

// A frame of the agent suspended in a call out to the program's Python code:
// inside a call-out function, or at a call of one. Anything else of the
// agent's on the stack is its own code under way (its locks may be held).
bool SafePointJudge::Impl::callingOut(const Frame& f) const {
    if (f.activation || calloutBegin == calloutEnd) return false;
    auto inside = [&](std::uint64_t a) { return a >= calloutBegin && a < calloutEnd; };
    return inside(f.lookup()) || inside(callTarget(f.pc));
}

bool SafePointJudge::Impl::hasCfi(const Frame& f) const {
    Dwfl_Module* mod = dwfl_addrmodule(dwfl, f.lookup());
    if (!mod) return false;
    Dwarf_Addr bias = 0;
    Dwarf_CFI* cfi = dwfl_module_eh_cfi(mod, &bias);
    Dwarf_Frame* frame = nullptr;
    if (!cfi || dwarf_cfi_addrframe(cfi, f.lookup() - bias, &frame) != 0) return false;
    std::free(frame);
    return true;
}

SafePointJudge::SafePointJudge(pid_t pid) : m(std::make_unique<Impl>()) {
    m->pid = pid;
    ProcFs proc(pid);
    m->maps = proc.maps();
    // Files read below: libc (its functions) and the agent (its call-out section).
    std::map<std::string, const Mapping*> readFiles;
    for (const auto& map : m->maps) {
        std::string name = map.path.empty() ? "" : map.cleanPath();
        if (name.empty() || (!map.fileBacked() && name != "[vdso]")) continue;
        Kind kind = kindOf(name);
        if (!m->modules.empty() && m->modules.back().name == name && m->modules.back().end == map.start) {
            m->modules.back().end = map.end;
        } else {
            m->modules.push_back({map.start, map.end, kind, name});
        }
        if ((kind == Kind::libc || kind == Kind::agent) && map.fileBacked() && map.offset == 0) {
            readFiles.emplace(map.path, &map);
        }
    }
    std::sort(m->modules.begin(), m->modules.end(), [](const Module& a, const Module& b) { return a.start < b.start; });
    for (const auto& [path, map] : readFiles) {
        for (const auto& candidate : proc.openablePaths(*map)) {
            Fd fd(::open(candidate.c_str(), O_RDONLY | O_CLOEXEC));
            struct stat st;
            if (!fd || ::fstat(fd.get(), &st) != 0 || st.st_ino != map->inode) continue;
            auto elf = readElfFacts(candidate, {}, {});
            auto bias = elf ? loadBias(*map, elf->loads) : std::nullopt;
            if (!bias) break;
            if (kindOf(map->cleanPath()) == Kind::libc) {
                readFunctions(candidate, *bias, m->libc);
            } else if (auto callout = sectionBounds(candidate, protocol::kCalloutSection)) {
                m->calloutBegin = *bias + callout->first;
                m->calloutEnd = *bias + callout->second;
            }
            break;
        }
    }
    std::sort(m->libc.begin(), m->libc.end(), [](const Symbol& a, const Symbol& b) { return a.lo < b.lo; });

    static char* debuginfoPath = nullptr;
    static const Dwfl_Callbacks callbacks{findElf, noDebuginfo, nullptr, &debuginfoPath};
    m->dwfl = dwfl_begin(&callbacks);
    if (!m->dwfl) throw InspectError(Errc::internal, "elfutils could not start");
    dwfl_report_begin(m->dwfl);
    int rc = dwfl_linux_proc_report(m->dwfl, pid);
    dwfl_report_end(m->dwfl, nullptr, nullptr);
    if (rc != 0) throw InspectError(Errc::process_exited, "cannot read the mappings of process " + std::to_string(pid));
}

SafePointJudge::~SafePointJudge() {
    if (m->dwfl) dwfl_end(m->dwfl);
}

void SafePointJudge::setStubRange(std::uint64_t begin, std::uint64_t end) {
    m->stubBegin = begin;
    m->stubEnd = end;
}

Verdict SafePointJudge::judge(pid_t tid, const user_regs_struct& regs) {
    Impl& j = *m;
    j.tid = tid;
    j.regs = regs;
    Verdict v;

    // Room on the stack: thread stacks are fixed-size mappings; the main
    // thread's grows on demand.
    for (const auto& map : j.maps) {
        if (regs.rsp < map.start || regs.rsp >= map.end) continue;
        if (map.path != "[stack]" && regs.rsp - map.start < kStackRoom) {
            v.why = "it is too close to the end of its stack";
            return v;
        }
        break;
    }

    static const Dwfl_Thread_Callbacks threadCallbacks{nextThread, nullptr, memoryRead, initialRegisters, nullptr,
                                                       nullptr};
    t_judge = &j;
    if (!j.attached) j.attached = dwfl_attach_state(j.dwfl, nullptr, j.pid, &threadCallbacks, &j);
    std::vector<Frame> frames;
    int rc = j.attached ? dwfl_getthread_frames(j.dwfl, tid, collect, &frames) : -1;
    std::string unwindError = rc == -1 ? dwfl_errmsg(-1) : "";
    bool complete = rc == 0;
    std::vector<bool> cfi;
    for (std::size_t i = 0; i + 1 < frames.size(); ++i) cfi.push_back(j.hasCfi(frames[i]));
    t_judge = nullptr;

    if (frames.empty()) {
        v.why = "its stack could not be unwound (" + unwindError + ")";
        return v;
    }
    std::vector<Kind> kinds;
    for (const auto& f : frames) {
        if (j.stubEnd && f.lookup() >= j.stubBegin && f.lookup() < j.stubEnd) {
            v.why = "it is running aioscope's loader already";
            return v;
        }
        Kind k = j.kindAt(f.lookup());
        if (k == Kind::loader) {
            v.why = "it is inside the dynamic loader";
            return v;
        }
        if (k == Kind::allocator) {
            v.why = "it is inside a memory allocator (" + j.moduleAt(f.lookup())->name + ")";
            return v;
        }
        if (k == Kind::agent) {
            if (!j.callingOut(f)) {
                v.why = "it is running aioscope's agent";
                return v;
            }
            k = Kind::program;  // the program's code runs under the agent's wrapper
        }
        kinds.push_back(k);
    }
    if (!complete) {
        v.why = "its stack could not be unwound to its start" + (unwindError.empty() ? "" : " (" + unwindError + ")");
        return v;
    }
    for (std::size_t i = 0; i < cfi.size(); ++i) {
        if (!cfi[i]) {
            v.why = "its stack has code without unwind information";
            return v;
        }
    }

    // The innermost run of libc frames, and the function it was entered by.
    std::size_t top = 0;
    while (top < kinds.size() && kinds[top] == Kind::libc) ++top;
    // Below the program's frames, libc only as the thread's start (the last
    // run, then at most the executable's _start).
    std::size_t i = top;
    while (i < kinds.size() && kinds[i] == Kind::program) ++i;
    while (i < kinds.size() && kinds[i] == Kind::libc) ++i;
    bool startOk = i == kinds.size() || (i + 1 == kinds.size() && kinds[i] == Kind::program);
    if (top == kinds.size() || !startOk) {
        v.why = top == kinds.size() ? "it runs libc code only (a libc helper thread)"
                                    : "libc called back into the program (a signal handler or a callback)";
        return v;
    }
    if (top == 0) {
        v.safe = true;
        return v;
    }
    for (std::size_t k = 0; k < top; ++k) {
        for (const auto& name : j.namesAt(frames[k].lookup(), false)) {
            for (auto denied : kDeniedInside) {
                if (name == denied || (denied.back() == '_' && name.starts_with(denied))) {
                    v.why = "it is inside libc (" + name + ")";
                    return v;
                }
            }
        }
    }
    std::vector<std::string> entry;
    if (std::uint64_t called = j.calledFrom(frames[top].pc)) entry = j.namesAt(called, true);
    if (entry.empty()) entry = j.namesAt(frames[top - 1].lookup(), false);
    for (const auto& name : entry) {
        if (allowedLibcEntry(name)) {
            v.safe = true;
            return v;
        }
    }
    v.why = entry.empty() ? "it is inside a libc function aioscope cannot name"
                          : "it is inside libc (" + entry.front() + ")";
    return v;
}

}  // namespace aioscope::cli
