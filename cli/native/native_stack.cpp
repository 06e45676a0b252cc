#include "native/native_stack.h"

#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <libunwind-ptrace.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace aioscope::cli {

namespace {

constexpr int kMaxFrames = 256;

// Interrupts one thread and guarantees it is released again.
class ThreadStop {
public:
    explicit ThreadStop(pid_t tid) : m_tid(tid) {
        if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) {
            m_error = std::string("cannot attach to thread: ") + std::strerror(errno);
            return;
        }
        m_seized = true;
        ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr);
        for (int waited = 0; waited < 1000; ++waited) {  // up to ~1 s
            int status = 0;
            pid_t r = waitpid(tid, &status, __WALL | WNOHANG);
            if (r == tid) {
                if (WIFSTOPPED(status) && (status >> 16) != PTRACE_EVENT_STOP && WSTOPSIG(status) != SIGTRAP) {
                    m_signal = WSTOPSIG(status);  // arrived meanwhile: deliver it on release
                }
                m_stopped = WIFSTOPPED(status);
                return;
            }
            if (r < 0 && errno != EINTR) break;
            timespec ms{0, 1'000'000};
            nanosleep(&ms, nullptr);
        }
        m_error = "the thread did not stop";
    }
    ~ThreadStop() {
        if (m_seized) ptrace(PTRACE_DETACH, m_tid, nullptr, reinterpret_cast<void*>(static_cast<long>(m_signal)));
    }
    bool stopped() const { return m_stopped; }
    const std::string& error() const { return m_error; }

private:
    pid_t m_tid;
    bool m_seized = false;
    bool m_stopped = false;
    int m_signal = 0;
    std::string m_error;
};

}  // namespace

NativeStack captureNativeStack(pid_t pid, pid_t tid) {
    NativeStack out;
    std::vector<std::uint64_t> ips;
    {
        auto t0 = std::chrono::steady_clock::now();
        ThreadStop stop(tid);
        if (!stop.stopped()) {
            out.error = stop.error().empty() ? "the thread did not stop" : stop.error();
            return out;
        }
        unw_addr_space_t as = unw_create_addr_space(&_UPT_accessors, 0);
        void* upt = _UPT_create(tid);
        unw_cursor_t cursor;
        if (as && upt && unw_init_remote(&cursor, as, upt) == 0) {
            do {
                unw_word_t ip = 0;
                if (unw_get_reg(&cursor, UNW_REG_IP, &ip) != 0 || ip == 0) break;
                ips.push_back(ip);
            } while (ips.size() < kMaxFrames && unw_step(&cursor) > 0);
        } else {
            out.error = "libunwind could not start unwinding the thread";
        }
        if (upt) _UPT_destroy(upt);
        if (as) unw_destroy_addr_space(as);
        out.stoppedMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }

    static char* debuginfoPath = nullptr;
    Dwfl_Callbacks callbacks{};
    callbacks.find_elf = dwfl_linux_proc_find_elf;
    callbacks.find_debuginfo = dwfl_standard_find_debuginfo;
    callbacks.debuginfo_path = &debuginfoPath;
    Dwfl* dwfl = dwfl_begin(&callbacks);
    if (dwfl) {
        dwfl_report_begin(dwfl);
        if (dwfl_linux_proc_report(dwfl, pid) != 0) {
            dwfl_end(dwfl);
            dwfl = nullptr;
        } else {
            dwfl_report_end(dwfl, nullptr, nullptr);
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
    if (dwfl) dwfl_end(dwfl);
    return out;
}

}  // namespace aioscope::cli
