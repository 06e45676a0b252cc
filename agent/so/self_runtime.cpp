#include "self_runtime.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>

#include "errors.h"
#include "mem/process_reader.h"
#include "pyapi.h"
#include "remote/objects.h"
#include "walk/interpreters.h"
#include "walk/python_facts.h"

namespace aioscope::agent {

namespace {

// The agent calls Py_GetVersion() once at most, from the library's
// constructor before Py_Initialize (captureVersionBeforeInit), and never from
// its own threads: Py_GetVersion() formats its text into a static buffer at
// every call, and glibc's snprintf first writes a NUL at the buffer's start.
// Py_Initialize copies that buffer into sys.version (strlen, then a second
// pass), so an agent thread saying hello while the program starts could give
// the program a sys.version of "\0.10.13 (main, ...)": a CI run saw a
// fixture's own sys.version.split()[0] begin with NUL under `aioscope run`
// (3.10). Other C code reads the buffer too (every Cython module compares it
// with its own version at import). Afterwards the version comes from
// Py_Version (3.11+, a constant) or from sys.version read in memory (3.10).

// "libpython3.10.so.1.0", "python3.10" -> 10; -1 if the name does not say.
int minorFromFileName(const std::string& path) {
    std::string base = path.substr(path.rfind('/') + 1);
    std::size_t at = base.find("python3.");
    if (at == std::string::npos) return -1;
    const char* digits = base.c_str() + at + 8;
    char* end = nullptr;
    long minor = std::strtol(digits, &end, 10);
    return end != digits && minor >= 0 && minor < 100 ? static_cast<int>(minor) : -1;
}

// "3.10.13 (main, ...)" -> 3.10.13 (3.10 publishes no Py_Version).
PythonVersion versionFromString(const char* text) {
    PythonVersion v;
    if (!text) return v;
    char* end = nullptr;
    v.major = static_cast<int>(std::strtol(text, &end, 10));
    if (*end != '.') return PythonVersion{};
    v.minor = static_cast<int>(std::strtol(end + 1, &end, 10));
    if (*end != '.') return v;
    v.micro = static_cast<int>(std::strtol(end + 1, &end, 10));
    // Release level: a1, b2, rc1, or final.
    unsigned level = 0xF, serial = 0;
    if (end[0] == 'a' || end[0] == 'b') {
        level = end[0] == 'a' ? 0xA : 0xB;
        serial = static_cast<unsigned>(std::strtoul(end + 1, nullptr, 10));
    } else if (end[0] == 'r' && end[1] == 'c') {
        level = 0xC;
        serial = static_cast<unsigned>(std::strtoul(end + 2, nullptr, 10));
    }
    v.hex = (static_cast<std::uint64_t>(v.major) << 24) | (static_cast<std::uint64_t>(v.minor) << 16) |
            (static_cast<std::uint64_t>(v.micro) << 8) | (level << 4) | (serial & 0xF);
    return v;
}

RuntimeLocation locateSelf(const std::string& versionText) {
    RuntimeLocation loc;
    void* runtime = dlsym(RTLD_DEFAULT, "_PyRuntime");
    if (!runtime) throw InspectError(Errc::not_python, "_PyRuntime is not exported by this interpreter");
    loc.candidates.push_back(reinterpret_cast<Addr>(runtime));
    if (void* v = dlsym(RTLD_DEFAULT, "Py_Version")) loc.pyVersion = reinterpret_cast<Addr>(v);
    if (void* h = dlsym(RTLD_DEFAULT, "_Py_HashSecret")) {
        loc.hashSecretFromRuntime = static_cast<std::int64_t>(reinterpret_cast<Addr>(h) - reinterpret_cast<Addr>(runtime));
    }
    Dl_info info{};
    if (dladdr(runtime, &info) && info.dli_fname) loc.file = info.dli_fname;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) loc.executable.assign(exe, static_cast<std::size_t>(n));
    loc.sharedLibpython = loc.file.find("libpython") != std::string::npos;
    PythonVersion v = versionFromString(versionText.empty() ? nullptr : versionText.c_str());
    if (v.major != 3 && loc.pyVersion) v = PythonVersion::fromHex(*reinterpret_cast<const unsigned long*>(*loc.pyVersion));
    if (v.major == 3) {
        loc.minorFromName = v.minor;
    } else {
        loc.minorFromName = minorFromFileName(loc.file);
        if (loc.minorFromName < 0) loc.minorFromName = minorFromFileName(loc.executable);
    }
    return loc;
}

// sys.version, read in memory (no call into the interpreter), or "".
std::string sysVersionInMemory(const ResolvedRuntime& runtime) {
    try {
        ProcessReader self(getpid());
        Remote mem(self);
        Objects objects(mem, runtime.layout);
        auto interps = readInterpreters(mem, runtime.layout, runtime.runtime);
        if (interps.empty()) return {};
        return sysVersion(objects, interps.back()).value_or("");  // the main interpreter
    } catch (const std::exception&) {
        return {};
    }
}

}  // namespace

void captureVersionBeforeInit() {
    PyApi& py = python();
    if (!py.getVersion || !py.isInitialized || py.isInitialized()) return;
    std::string text = py.getVersion();
    SelfRuntime& self = SelfRuntime::instance();
    std::lock_guard lock(self.m_mutex);
    if (self.m_versionText.empty()) self.m_versionText = std::move(text);
}

PythonInfo earlyPythonInfo() {
    PythonInfo info;
    SelfRuntime& self = SelfRuntime::instance();
    const RuntimeLocation& loc = self.location();
    info.executable = loc.executable;
    info.runtimeFile = loc.file;
    info.sharedLibpython = loc.sharedLibpython;
    PythonVersion v;
    if (loc.pyVersion) v = PythonVersion::fromHex(*reinterpret_cast<const unsigned long*>(*loc.pyVersion));
    if (v.major != 3) v = versionFromString(self.versionText().c_str());
    if (v.major != 3 && loc.minorFromName >= 0) {
        // Without the micro (3.10 attached, sys.version not readable).
        v = PythonVersion{};
        v.major = 3;
        v.minor = loc.minorFromName;
        v.hex = (3u << 24) | (static_cast<std::uint64_t>(v.minor) << 16);
    }
    info.version = v.str();
    info.hexversion = v.hex;
    return info;
}

SelfRuntime& SelfRuntime::instance() {
    static SelfRuntime* self = new SelfRuntime;  // never destroyed: see Agent::instance()
    return *self;
}

void SelfRuntime::afterForkInChild() {
    if (m_mutex.afterFork()) return;
    // Written under the lock when the process forked: left as they are
    // (their memory is lost, not freed), and resolved again.
    new (&m_runtime) std::optional<ResolvedRuntime>;
    new (&m_location) std::optional<RuntimeLocation>;
    new (&m_failure) std::string;
}

const RuntimeLocation& SelfRuntime::location() {
    std::lock_guard lock(m_mutex);
    if (!m_location) {
        try {
            m_location = locateSelf(m_versionText);
        } catch (const InspectError& e) {
            m_failure = e.what();
            m_location = RuntimeLocation{};
        }
    }
    return *m_location;
}

std::optional<ResolvedRuntime> SelfRuntime::get() {
    const RuntimeLocation& loc = location();
    std::lock_guard lock(m_mutex);
    if (m_runtime || !m_failure.empty()) return m_runtime;
    try {
        ProcessReader self(getpid());  // process_vm_readv on ourselves: a torn pointer returns EFAULT
        Remote mem(self);
        m_runtime = resolveRuntime(mem, loc);
    } catch (const InspectError& e) {
        // No interpreter state yet is worth another try; anything else is final.
        if (e.code() != Errc::not_python) m_failure = e.what();
    }
    return m_runtime;
}

std::string SelfRuntime::versionText() {
    {
        std::lock_guard lock(m_mutex);
        if (!m_versionText.empty()) return m_versionText;
    }
    // Not captured before Py_Initialize (attached): read once the
    // interpreter runs, never asked of it.
    PyApi& py = python();
    if (!py.isInitialized || !py.isInitialized()) return {};
    auto runtime = get();
    std::string text = runtime ? sysVersionInMemory(*runtime) : std::string();
    std::lock_guard lock(m_mutex);
    if (m_versionText.empty()) m_versionText = text;
    return m_versionText;
}

std::string SelfRuntime::failure() {
    std::lock_guard lock(m_mutex);
    return m_failure;
}

}  // namespace aioscope::agent
