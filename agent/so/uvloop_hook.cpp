#include "uvloop_hook.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <mutex>

#include "context_run_hook.h"
#include "pyapi.h"
#include "stall_hook.h"

namespace aioscope::agent {

namespace {

using ContextFn = int (*)(PyObject*);

// The functions uvloop's GOT pointed at before us, kept for the life of the
// process (a callback in flight returns through them).
std::atomic<ContextFn> g_enter{nullptr};
std::atomic<ContextFn> g_exit{nullptr};

int contextEnter(PyObject* ctx) {
    int r = g_enter.load(std::memory_order_relaxed)(ctx);
    if (r == 0 && StallHook::instance().enterNested()) {
        UvloopHook::instance().markTimed();
        markUvloopThread();
    }
    return r;
}

int contextExit(PyObject* ctx) {
    StallHook::instance().leaveNested();
    return g_exit.load(std::memory_order_relaxed)(ctx);
}

// uvloop's loop module: .../uvloop/loop.cpython-311-x86_64-linux-gnu.so
bool isUvloopLoop(const char* path) {
    if (!path) return false;
    const char* at = std::strstr(path, "/uvloop/loop.");
    return at && std::strstr(at, ".so");
}

bool isJumpOrGlobal(std::uint32_t type) {
#if defined(__x86_64__)
    return type == R_X86_64_JUMP_SLOT || type == R_X86_64_GLOB_DAT;
#elif defined(__aarch64__)
    return type == R_AARCH64_JUMP_SLOT || type == R_AARCH64_GLOB_DAT;
#else
    (void)type;
    return false;
#endif
}

struct Scan {
    int patched = 0;   // objects whose two slots are ours
    std::string failure;
};

// glibc relocates most d_ptr values in place; some targets leave them relative.
ElfW(Addr) absolute(ElfW(Addr) ptr, ElfW(Addr) base) { return ptr < base ? ptr + base : ptr; }

// Points one GOT slot at `ours`; the page goes back to read-only if the
// loader made it so (RELRO, as BIND_NOW objects have).
bool writeSlot(void** slot, void* ours, ElfW(Addr) relroStart, ElfW(Addr) relroEnd) {
    long page = sysconf(_SC_PAGESIZE);
    auto addr = reinterpret_cast<ElfW(Addr)>(slot);
    ElfW(Addr) pageStart = addr & ~static_cast<ElfW(Addr)>(page - 1);
    bool relro = pageStart >= relroStart && pageStart < relroEnd;
    if (relro && mprotect(reinterpret_cast<void*>(pageStart), page, PROT_READ | PROT_WRITE) != 0) return false;
    __atomic_store_n(slot, ours, __ATOMIC_RELEASE);
    if (relro) mprotect(reinterpret_cast<void*>(pageStart), page, PROT_READ);
    return true;
}

void patchObject(dl_phdr_info* info, Scan& scan) {
    ElfW(Addr) base = info->dlpi_addr;
    const ElfW(Dyn)* dyn = nullptr;
    ElfW(Addr) relroStart = 0, relroEnd = 0;
    long page = sysconf(_SC_PAGESIZE);
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        if (ph.p_type == PT_DYNAMIC) dyn = reinterpret_cast<const ElfW(Dyn)*>(base + ph.p_vaddr);
        if (ph.p_type == PT_GNU_RELRO) {
            // As the loader protects it: whole pages only.
            relroStart = (base + ph.p_vaddr) & ~static_cast<ElfW(Addr)>(page - 1);
            relroEnd = (base + ph.p_vaddr + ph.p_memsz) & ~static_cast<ElfW(Addr)>(page - 1);
        }
    }
    if (!dyn) {
        scan.failure = "uvloop's loop module has no dynamic section";
        return;
    }
    const ElfW(Sym)* symtab = nullptr;
    const char* strtab = nullptr;
    const ElfW(Rela)* tables[2] = {};
    std::size_t sizes[2] = {};
    for (const ElfW(Dyn)* d = dyn; d->d_tag != DT_NULL; ++d) {
        switch (d->d_tag) {
        case DT_SYMTAB: symtab = reinterpret_cast<const ElfW(Sym)*>(absolute(d->d_un.d_ptr, base)); break;
        case DT_STRTAB: strtab = reinterpret_cast<const char*>(absolute(d->d_un.d_ptr, base)); break;
        case DT_JMPREL: tables[0] = reinterpret_cast<const ElfW(Rela)*>(absolute(d->d_un.d_ptr, base)); break;
        case DT_PLTRELSZ: sizes[0] = d->d_un.d_val; break;
        case DT_RELA: tables[1] = reinterpret_cast<const ElfW(Rela)*>(absolute(d->d_un.d_ptr, base)); break;
        case DT_RELASZ: sizes[1] = d->d_un.d_val; break;
        default: break;
        }
    }
    if (!symtab || !strtab) {
        scan.failure = "uvloop's loop module has no symbol table";
        return;
    }
    void** enterSlot = nullptr;
    void** exitSlot = nullptr;
    for (int t = 0; t < 2; ++t) {
        if (!tables[t]) continue;
        std::size_t n = sizes[t] / sizeof(ElfW(Rela));
        for (std::size_t i = 0; i < n && i < 1'000'000; ++i) {
            const ElfW(Rela)& r = tables[t][i];
            if (!isJumpOrGlobal(ELF64_R_TYPE(r.r_info))) continue;
            const char* name = strtab + symtab[ELF64_R_SYM(r.r_info)].st_name;
            if (std::strcmp(name, "PyContext_Enter") == 0) enterSlot = reinterpret_cast<void**>(base + r.r_offset);
            if (std::strcmp(name, "PyContext_Exit") == 0) exitSlot = reinterpret_cast<void**>(base + r.r_offset);
        }
    }
    if (!enterSlot || !exitSlot) {
        scan.failure = "uvloop's loop module does not call PyContext_Enter/PyContext_Exit (a uvloop this agent does "
                       "not know)";
        return;
    }
    void* oursEnter = reinterpret_cast<void*>(&contextEnter);
    void* oursExit = reinterpret_cast<void*>(&contextExit);
    if (*enterSlot == oursEnter && *exitSlot == oursExit) {
        ++scan.patched;
        return;
    }
    // The real functions (a lazily bound slot still points into the module's
    // own PLT: resolving through it would overwrite our slot).
    auto realEnter = reinterpret_cast<ContextFn>(dlsym(RTLD_DEFAULT, "PyContext_Enter"));
    auto realExit = reinterpret_cast<ContextFn>(dlsym(RTLD_DEFAULT, "PyContext_Exit"));
    if (!realEnter || !realExit) {
        scan.failure = "PyContext_Enter/PyContext_Exit not found in this Python";
        return;
    }
    // Bound already to something else than CPython's (another tool's
    // wrapper): call that, it calls CPython's.
    auto bound = [&](void* current, ContextFn real) {
        Dl_info di{};
        bool ownPlt = dladdr(current, &di) && di.dli_fbase == reinterpret_cast<void*>(base);
        return current && !ownPlt ? reinterpret_cast<ContextFn>(current) : real;
    };
    ContextFn enterTarget = bound(*enterSlot, realEnter);
    ContextFn exitTarget = bound(*exitSlot, realExit);
    ContextFn expected = nullptr;
    // One pair of originals for the process: a second uvloop module (a rare
    // second copy) is patched only if it calls the same functions.
    if (!g_enter.compare_exchange_strong(expected, enterTarget) && expected != enterTarget) {
        scan.failure = "a second uvloop loop module, bound to other functions";
        return;
    }
    g_exit.store(exitTarget);
    // The exit first: a callback entered through CPython's own function may
    // leave through ours (a slot that is idle ignores it), never the reverse.
    if (!writeSlot(exitSlot, oursExit, relroStart, relroEnd) ||
        !writeSlot(enterSlot, oursEnter, relroStart, relroEnd)) {
        scan.failure = "uvloop's global offset table could not be written";
        return;
    }
    ++scan.patched;
}

int onObject(dl_phdr_info* info, std::size_t, void* data) {
    if (isUvloopLoop(info->dlpi_name)) patchObject(info, *static_cast<Scan*>(data));
    return 0;
}

int loaderAdds() {
    int adds = -1;
    dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t size, void* data) {
            if (size >= offsetof(dl_phdr_info, dlpi_adds) + sizeof info->dlpi_adds) {
                *static_cast<int*>(data) = static_cast<int>(info->dlpi_adds);
            }
            return 1;  // the first object tells
        },
        &adds);
    return adds;
}

}  // namespace

UvloopHook& UvloopHook::instance() {
    static UvloopHook* hook = new UvloopHook;  // never destroyed: see Agent::instance()
    return *hook;
}

bool UvloopHook::patchLoaded() {
    int adds = loaderAdds();
    if (adds >= 0 && adds == m_adds.load()) return m_patched;  // nothing loaded since
    m_adds = adds;
    Scan scan;
    dl_iterate_phdr(&onObject, &scan);
    if (scan.patched) {
        m_patched = true;
        std::string why = patchContextRun();
        std::lock_guard lock(m_textMutex);
        m_protocolFailure = why;
        m_protocolsTimed = why.empty();
    }
    if (!scan.failure.empty()) {
        std::lock_guard lock(m_textMutex);
        m_failure = scan.failure;
    }
    return m_patched;
}

void UvloopHook::afterForkInChild() {
    if (m_textMutex.afterFork()) return;
    // Being written at the fork: left as they are (not freed); the next
    // scan of the loaded modules says them again.
    new (&m_failure) std::string;
    new (&m_protocolFailure) std::string("uvloop's loop module is not patched");
    m_adds = -1;
}

std::string UvloopHook::failure() const {
    std::lock_guard lock(m_textMutex);
    return m_patched ? std::string() : m_failure;
}

std::string UvloopHook::protocolFailure() const {
    std::lock_guard lock(m_textMutex);
    return m_protocolsTimed ? std::string() : m_protocolFailure;
}

}  // namespace aioscope::agent
