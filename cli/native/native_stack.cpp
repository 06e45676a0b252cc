#include "native/native_stack.h"

#include "errors.h"
#include "native/native_symbols.h"
#include "native/thread_stop.h"
#include "target/proc.h"

#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <libunwind-ptrace.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

namespace aioscope::cli {

namespace {

constexpr int kMaxFrames = 256;

// libunwind reads the stopped thread's registers and stack from a copy taken
// while it was stopped, and everything else (code, unwind tables) live: the
// thread only stops for the copy, about a millisecond.
struct Copy {
    void* upt = nullptr;  // libunwind's ptrace context: finds unwind info from /proc/PID/maps
    pid_t pid = 0;
    user_regs_struct regs{};
    std::uint64_t stackLow = 0;
    std::vector<std::uint8_t> stack;
};

// Whether the target sees the host's files at their paths (not in a chroot
// or container of its own).
bool sharesRoot(pid_t pid) {
    struct stat mine, theirs;
    std::string root = "/proc/" + std::to_string(pid) + "/root/";
    return ::stat("/", &mine) == 0 && ::stat(root.c_str(), &theirs) == 0 && mine.st_dev == theirs.st_dev &&
           mine.st_ino == theirs.st_ino;
}

// libunwind's ptrace helpers call back into these accessors with their own
// argument, so the copy being unwound is found here, not through `arg`.
thread_local Copy* t_copy = nullptr;

int accessMem(unw_addr_space_t, unw_word_t addr, unw_word_t* val, int write, void*) {
    if (write) return -UNW_EINVAL;
    Copy* c = t_copy;
    if (addr >= c->stackLow && addr + sizeof *val <= c->stackLow + c->stack.size()) {
        std::memcpy(val, c->stack.data() + (addr - c->stackLow), sizeof *val);
        return 0;
    }
    iovec local{val, sizeof *val};
    iovec remote{reinterpret_cast<void*>(addr), sizeof *val};
    return process_vm_readv(c->pid, &local, 1, &remote, 1, 0) == sizeof *val ? 0 : -UNW_EINVAL;
}

int accessReg(unw_addr_space_t, unw_regnum_t reg, unw_word_t* val, int write, void*) {
    if (write) return -UNW_EINVAL;
    const user_regs_struct& r = t_copy->regs;
    const unsigned long long* map[] = {&r.rax, &r.rdx, &r.rcx, &r.rbx, &r.rsi, &r.rdi, &r.rbp, &r.rsp, &r.r8,
                                       &r.r9,  &r.r10, &r.r11, &r.r12, &r.r13, &r.r14, &r.r15, &r.rip};
    if (reg < 0 || reg > UNW_X86_64_RIP) return -UNW_EBADREG;
    *val = *map[reg];
    return 0;
}

int accessFpreg(unw_addr_space_t, unw_regnum_t, unw_fpreg_t*, int, void*) { return -UNW_EBADREG; }
int resume(unw_addr_space_t, unw_cursor_t*, void*) { return -UNW_EINVAL; }
int findProcInfo(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t* pi, int need, void*) {
    return _UPT_find_proc_info(as, ip, pi, need, t_copy->upt);
}
void putUnwindInfo(unw_addr_space_t as, unw_proc_info_t* pi, void*) { _UPT_put_unwind_info(as, pi, t_copy->upt); }
int getDynInfoListAddr(unw_addr_space_t as, unw_word_t* addr, void*) {
    return _UPT_get_dyn_info_list_addr(as, addr, t_copy->upt);
}
int getProcName(unw_addr_space_t as, unw_word_t addr, char* buf, size_t len, unw_word_t* off, void*) {
    return _UPT_get_proc_name(as, addr, buf, len, off, t_copy->upt);
}

// The part of the thread's stack above its stack pointer, up to the end of
// its mapping (or kStackCopy bytes).
constexpr std::size_t kStackCopy = 512 * 1024;

bool copyStack(Copy& c) {
    std::uint64_t sp = c.regs.rsp;
    std::uint64_t end = sp + kStackCopy;
    // A process that is exiting has no mappings left: then its stack cannot
    // be copied either (the caller reports that; it is no error of ours).
    std::vector<Mapping> maps;
    try {
        maps = ProcFs(c.pid).maps();
    } catch (const InspectError&) {
        return false;
    }
    for (const auto& m : maps) {
        if (sp >= m.start && sp < m.end) {
            end = std::min<std::uint64_t>(m.end, end);
            break;
        }
    }
    c.stackLow = sp & ~std::uint64_t{7};
    c.stack.resize(end - c.stackLow);
    iovec local{c.stack.data(), c.stack.size()};
    iovec remote{reinterpret_cast<void*>(c.stackLow), c.stack.size()};
    ssize_t n = process_vm_readv(c.pid, &local, 1, &remote, 1, 0);
    if (n <= 0) return false;
    c.stack.resize(static_cast<std::size_t>(n));
    return true;
}

// elfutils' unwinder over the same copy: the fallback where libunwind stops
// early (it does not understand some newer toolchains' unwind tables), and
// the unwinder of a target with a root of its own.
Copy& copyOf(void* arg) { return *static_cast<Copy*>(static_cast<ProcessSymbols::UnwindArg*>(arg)->copy); }

pid_t dwflNextThread(Dwfl*, void* arg, void** threadArg) {
    if (*threadArg) return 0;
    *threadArg = arg;
    return static_cast<ProcessSymbols::UnwindArg*>(arg)->tid;
}

bool dwflMemoryRead(Dwfl*, Dwarf_Addr addr, Dwarf_Word* result, void* arg) {
    Copy* saved = t_copy;
    t_copy = &copyOf(arg);
    unw_word_t v = 0;
    bool ok = accessMem(nullptr, addr, &v, 0, nullptr) == 0;
    t_copy = saved;
    *result = v;
    return ok;
}

bool dwflInitialRegisters(Dwfl_Thread* thread, void* threadArg) {
    const user_regs_struct& r = copyOf(threadArg).regs;
    // x86_64 DWARF numbering: rax rdx rcx rbx rsi rdi rbp rsp r8-r15, then the return address.
    Dwarf_Word regs[17] = {r.rax, r.rdx, r.rcx, r.rbx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8,
                           r.r9,  r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rip};
    return dwfl_thread_state_registers(thread, 0, 17, regs);
}

int dwflCollect(Dwfl_Frame* frame, void* arg) {
    auto* ips = static_cast<std::vector<std::uint64_t>*>(arg);
    Dwarf_Addr pc = 0;
    bool activation = false;
    if (!dwfl_frame_pc(frame, &pc, &activation) || !pc) return DWARF_CB_ABORT;
    ips->push_back(pc);
    return ips->size() < kMaxFrames ? DWARF_CB_OK : DWARF_CB_ABORT;
}

std::vector<std::uint64_t> unwindWithDwfl(Dwfl* dwfl, ProcessSymbols& symbols, Copy& copy, pid_t tid) {
    static const Dwfl_Thread_Callbacks callbacks{dwflNextThread, nullptr, dwflMemoryRead, dwflInitialRegisters,
                                                 nullptr,        nullptr};
    // Attached once per Dwfl, with an argument that outlives it: each
    // capture points it at its own copy.
    symbols.unwindArg = {&copy, tid};
    if (!symbols.unwinderAttached) {
        symbols.unwinderAttached = dwfl_attach_state(dwfl, nullptr, copy.pid, &callbacks, &symbols.unwindArg);
    }
    std::vector<std::uint64_t> ips;
    if (symbols.unwinderAttached) dwfl_getthread_frames(dwfl, tid, dwflCollect, &ips);
    symbols.unwindArg = {};
    return ips;
}

}  // namespace

struct ThreadCopy : Copy {
    pid_t tid = 0;
    double stoppedMs = 0;
};

void ThreadCopyDeleter::operator()(ThreadCopy* c) const { delete c; }

ThreadCopyPtr copyThread(pid_t pid, pid_t tid, NativeStack& failed, const std::function<bool()>& stillWanted,
                         const char* passedWhy) {
    ThreadCopyPtr copy(new ThreadCopy);
    copy->pid = pid;
    copy->tid = tid;
    auto t0 = std::chrono::steady_clock::now();
    ThreadStop stop(tid);
    if (!stop.stopped()) {
        failed.error = stop.error().empty() ? "the thread did not stop" : stop.error();
        return nullptr;
    }
    bool ok = ptrace(PTRACE_GETREGS, tid, nullptr, &copy->regs) == 0 && copyStack(*copy);
    copy->stoppedMs = failed.stoppedMs =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (!ok) {
        failed.error = "cannot read the thread's registers or stack";
        return nullptr;
    }
    if (stillWanted && !stillWanted()) {
        failed.error = passedWhy;
        return nullptr;
    }
    return copy;
}  // released here (ThreadStop's end): the unwinding works on the copy

NativeStack unwindCopy(ThreadCopy& copy) {
    NativeStack out;
    out.stoppedMs = copy.stoppedMs;
    const pid_t pid = copy.pid;
    const pid_t tid = copy.tid;
    std::vector<std::uint64_t> ips;
    // libunwind opens the modules by their paths on the host: only for a
    // target that shares the host's root; elfutils (below) reads the
    // target's own files.
    const bool hostFiles = sharesRoot(pid);
    unw_accessors_t accessors{findProcInfo, putUnwindInfo, getDynInfoListAddr, accessMem,
                              accessReg,    accessFpreg,   resume,             getProcName};
    unw_addr_space_t as = hostFiles ? unw_create_addr_space(&accessors, 0) : nullptr;
    copy.upt = hostFiles ? _UPT_create(tid) : nullptr;
    t_copy = &copy;
    unw_cursor_t cursor;
    if (!hostFiles) {
        out.error = "unwound with elfutils only (the target has a root of its own)";
    } else if (as && copy.upt && unw_init_remote(&cursor, as, copy.upt) == 0) {
        do {
            unw_word_t ip = 0;
            if (unw_get_reg(&cursor, UNW_REG_IP, &ip) != 0 || ip == 0) break;
            ips.push_back(ip);
        } while (ips.size() < kMaxFrames && unw_step(&cursor) > 0);
    } else {
        out.error = "libunwind could not start unwinding the thread";
    }
    t_copy = nullptr;
    if (copy.upt) _UPT_destroy(copy.upt);
    if (as) unw_destroy_addr_space(as);

    // The process may exit meanwhile (a stall at its very end): the
    // addresses are kept, without names.
    ProcessSymbols* symbols = symbolsOf(pid);
    Dwfl* dwfl = nullptr;
    if (symbols) {
        std::string why;
        dwfl = symbols->refresh(why);
        if (!dwfl) out.error = why;
    } else {
        out.error = "no symbols: the process has ended";
    }
    if (dwfl && ips.size() <= 2) {
        auto more = unwindWithDwfl(dwfl, *symbols, copy, tid);
        if (more.size() > ips.size()) {
            ips = std::move(more);
            out.error.reset();
        }
    }
    for (std::size_t i = 0; i < ips.size(); ++i) {
        NativeFrame f;
        f.address = ips[i];
        // A return address points after the call: look up the call itself.
        Dwarf_Addr pc = i == 0 ? ips[i] : ips[i] - 1;
        if (Dwfl_Module* mod = dwfl ? dwfl_addrmodule(dwfl, pc) : nullptr) {
            const char* modName = dwfl_module_info(mod, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
            if (modName) f.module = modName;
            GElf_Off offset = 0;
            GElf_Sym sym;
            if (const char* name = dwfl_module_addrinfo(mod, pc, &offset, &sym, nullptr, nullptr, nullptr)) {
                f.function = name;
                f.offset = offset;
            }
            if (Dwfl_Line* line = dwfl_module_getsrc(mod, pc)) {
                int lineNo = 0;
                if (const char* src = dwfl_lineinfo(line, nullptr, &lineNo, nullptr, nullptr, nullptr)) {
                    f.file = src;
                    f.line = lineNo;
                }
            }
        }
        out.frames.push_back(std::move(f));
    }
    return out;
}

}  // namespace aioscope::cli
