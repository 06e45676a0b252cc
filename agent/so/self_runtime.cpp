#include "self_runtime.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>

#include "errors.h"
#include "mem/process_reader.h"
#include "pyapi.h"

namespace aioscope::agent {

namespace {

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

RuntimeLocation locateSelf() {
    RuntimeLocation loc;
    void* runtime = dlsym(RTLD_DEFAULT, "_PyRuntime");
    if (!runtime) throw InspectError(Errc::not_python, "_PyRuntime is not exported by this interpreter");
    loc.candidates.push_back(reinterpret_cast<Addr>(runtime));
    if (void* v = dlsym(RTLD_DEFAULT, "Py_Version")) loc.pyVersion = reinterpret_cast<Addr>(v);
    Dl_info info{};
    if (dladdr(runtime, &info) && info.dli_fname) loc.file = info.dli_fname;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) loc.executable.assign(exe, static_cast<std::size_t>(n));
    loc.sharedLibpython = loc.file.find("libpython") != std::string::npos;
    PythonVersion v = versionFromString(python().getVersion ? python().getVersion() : nullptr);
    if (v.major == 3) loc.minorFromName = v.minor;
    return loc;
}

}  // namespace

PythonInfo earlyPythonInfo() {
    PythonInfo info;
    const RuntimeLocation& loc = SelfRuntime::instance().location();
    info.executable = loc.executable;
    info.runtimeFile = loc.file;
    info.sharedLibpython = loc.sharedLibpython;
    PythonVersion v;
    if (loc.pyVersion) v = PythonVersion::fromHex(*reinterpret_cast<const unsigned long*>(*loc.pyVersion));
    if (v.major != 3) v = versionFromString(python().getVersion ? python().getVersion() : nullptr);
    info.version = v.str();
    info.hexversion = v.hex;
    return info;
}

SelfRuntime& SelfRuntime::instance() {
    static SelfRuntime* self = new SelfRuntime;  // never destroyed: see Agent::instance()
    return *self;
}

const RuntimeLocation& SelfRuntime::location() {
    std::lock_guard lock(m_mutex);
    if (!m_location) {
        try {
            m_location = locateSelf();
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

std::string SelfRuntime::failure() {
    std::lock_guard lock(m_mutex);
    return m_failure;
}

}  // namespace aioscope::agent
