#include "audit_hook.h"

#include <dlfcn.h>
#include <link.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "early_install.h"

namespace aioscope::agent {

namespace {

thread_local bool t_inHook = false;  // our own import of asyncio raises events too
int g_cookie;                        // our userData: tells our entry from others'

// Reads our own memory without trusting the address (EFAULT, not SIGSEGV).
bool readSelf(const void* addr, void* out, std::size_t len) {
    iovec local{out, len};
    iovec remote{const_cast<void*>(addr), len};
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == static_cast<ssize_t>(len);
}

bool startsWith(const char* s, const char* prefix) { return std::strncmp(s, prefix, std::strlen(prefix)) == 0; }

// The module an "import" event is about (its first argument), or null.
const char* importedName(PyObject* args) {
    PyApi& py = python();
    if (!py.tupleGetItem || !py.unicodeAsUtf8) return nullptr;
    PyObject* name = args ? py.tupleGetItem(args, 0) : nullptr;  // borrowed
    const char* text = name ? py.unicodeAsUtf8(name) : nullptr;
    if (!text) py.clearError();
    return text;
}

bool importsAsyncio(PyObject* args) {
    const char* text = importedName(args);
    return text && (std::strcmp(text, "asyncio") == 0 || startsWith(text, "asyncio."));
}

bool importsTrio(PyObject* args) {
    const char* text = importedName(args);
    return text && std::strcmp(text, "trio") == 0;
}

}  // namespace

AuditHook& AuditHook::instance() {
    static AuditHook* hook = new AuditHook;  // never destroyed: see Agent::instance()
    return *hook;
}

bool AuditHook::add(Callbacks callbacks) {
    PyApi& py = python();
    void* runtime = dlsym(RTLD_DEFAULT, "_PyRuntime");
    if (!py.addAuditHook || !runtime || m_added) return false;
    m_callbacks = callbacks;
    // Where the runtime keeps the head of its hook list differs per version:
    // the one word of _PyRuntime that adding our hook changes is it (when we
    // are the first hook, as a preloaded library normally is).
    Dl_info info{};
    ElfW(Sym)* sym = nullptr;
    std::vector<unsigned char> before;
    std::size_t size = 0;
    if (dladdr1(runtime, &info, reinterpret_cast<void**>(&sym), RTLD_DL_SYMENT) && sym && sym->st_size >= 8 &&
        sym->st_size < (64u << 20)) {
        size = sym->st_size;
        before.assign(static_cast<unsigned char*>(runtime), static_cast<unsigned char*>(runtime) + size);
    }
    if (py.addAuditHook(&AuditHook::onEvent, &g_cookie) != 0) {
        py.clearError();
        return false;
    }
    m_added = true;
    std::size_t changed = 0, at = 0;
    for (std::size_t i = 0; i + 8 <= size; i += 8) {
        if (std::memcmp(before.data() + i, static_cast<unsigned char*>(runtime) + i, 8) != 0) {
            ++changed;
            at = i;
        }
    }
    if (changed == 1) {
        void** head = reinterpret_cast<void**>(static_cast<unsigned char*>(runtime) + at);
        void* entry[3] = {};
        // _Py_AuditHookEntry {next, hookCFunction, userData}, the same in 3.8-3.15.
        if (readSelf(*head, entry, sizeof entry) && entry[0] == nullptr &&
            entry[1] == reinterpret_cast<void*>(&AuditHook::onEvent) && entry[2] == &g_cookie) {
            m_head = head;
            m_entry = static_cast<void**>(*head);
        }
    }
    return true;
}

void AuditHook::retire() {
    if (m_retired.exchange(true)) return;
    m_waiting = false;
    // Unlinked, never freed: CPython's iteration in progress (we are called
    // from it) continues with our entry's next, which stays as it is.
    if (m_head && *m_head == m_entry) *m_head = m_entry[0];
}

int AuditHook::onEvent(const char* event, PyObject* args, void*) {
    AuditHook& self = instance();
    // Retired but still linked (another hook was first, so we could not
    // unlink ours): a no-op.
    if (t_inHook || self.m_retired.load(std::memory_order_relaxed)) return 0;
    t_inHook = true;
    self.handle(event, args);
    t_inHook = false;
    return 0;  // never abort what the program does
}

void AuditHook::handle(const char* event, PyObject* args) {
    PyApi& py = python();
    if (std::strcmp(event, "cpython._PySys_ClearAuditHooks") == 0) {
        retire();  // finalizing: before CPython frees the list
        return;
    }
    // Only the main interpreter is observed (subinterpreters share the hook).
    if (py.interpreterGet && py.interpreterMain && py.interpreterGet() != py.interpreterMain()) return;
    if (startsWith(event, "cpython.run_")) {
        if (!m_firstLineSeen) {
            m_firstLineSeen = true;
            if (m_callbacks.firstLine) m_callbacks.firstLine();
            tryInstall(false);  // site may have imported asyncio already
        }
        return;
    }
    if (std::strcmp(event, "import") == 0 && !m_trioSeen && importsTrio(args)) {
        // A trio program (asyncio is not imported yet, or the hook would be
        // retired): its task steps are timed from its first run.
        m_trioSeen = true;
        if (m_callbacks.trio) m_callbacks.trio();
        return;
    }
    if (std::strcmp(event, "import") == 0 && importsAsyncio(args)) {
        tryInstall(true);
    } else if (m_waiting) {
        tryInstall(false);  // any later event may be the first after asyncio's import ended
    }
}

void AuditHook::tryInstall(bool mayImport) {
    PyApi& py = python();
    AsyncioState state = asyncioState();
    if (state != AsyncioState::ready && mayImport) {
        // The program is importing asyncio now, on this thread: do it for it,
        // so that the statement returns with the observers in place. Its own
        // import then finds the modules in sys.modules, as after any import.
        // While the package itself is loading (importlib.import_module
        // raises no event for it), its first submodule, base_events, is all
        // the hooks need: a half-executed one is left to finish.
        PyObject* package = py.importedModule("asyncio");
        if (package) py.decRef(package);
        PyObject* base = package ? py.importedModule("asyncio.base_events") : nullptr;
        if (base) {
            py.decRef(base);  // being executed: wait for a later event
        } else if (PyObject* module = py.importModule(package ? "asyncio.base_events" : "asyncio")) {
            py.decRef(module);
        } else {
            py.clearError();  // its own import will fail the same way, and say why
            return;
        }
        state = asyncioState();
    }
    if (state == AsyncioState::importing) {
        m_waiting = true;  // a later event (or the agent's pending call) will find it ready
        return;
    }
    if (state != AsyncioState::ready) return;
    m_waiting = false;
    Install result = m_callbacks.install ? m_callbacks.install() : Install::failed;
    if (result != Install::later) retire();
}

}  // namespace aioscope::agent
