#include "layout/resolve.h"

#include <cstring>
#include <vector>

#include "layout/debug_offsets.h"
#include "layout/tables.h"
#include "layout/validate.h"

namespace aioscope {

namespace {

InspectError unsupported(const PythonVersion& v, const std::string& extra = "") {
    return InspectError(Errc::unsupported_version,
                        "Python " + v.str() + extra + " is not supported: aioscope reads CPython 3." +
                            std::to_string(kOldestMinor) + " to 3." + std::to_string(kNewestMinor));
}

PythonVersion detectVersion(Remote& mem, const RuntimeLocation& loc, Addr runtime, bool& hasCookie) {
    char cookie[8] = {};
    hasCookie = mem.tryRead(runtime, cookie, sizeof cookie) &&
                std::memcmp(cookie, kDebugCookie, sizeof cookie) == 0;
    if (hasCookie) return PythonVersion::fromHex(mem.get<std::uint64_t>(runtime + 8, "debug version"));
    if (loc.pyVersion) {
        std::uint64_t hex = 0;
        if (mem.tryRead(*loc.pyVersion, &hex, sizeof hex) && (hex >> 24) == 3) {
            return PythonVersion::fromHex(hex);
        }
    }
    PythonVersion v;
    if (loc.minorFromName >= 0) {
        v.major = 3;
        v.minor = loc.minorFromName;
        return v;
    }
    throw InspectError(Errc::unsupported_version,
                       "cannot tell which Python version " + loc.file + " is");
}

// A runtime that has interpreters whose thread list is readable.
bool plausible(Remote& mem, const Layout& L, Addr runtime) {
    std::uint64_t interp = 0;
    if (!mem.tryRead(runtime + L.runtime.interpretersHead, &interp, 8) || interp == 0) return false;
    std::uint64_t threads = 0;
    return mem.tryRead(interp + L.interp.threadsHead, &threads, 8);
}

}  // namespace

ResolvedRuntime resolveRuntime(Remote& mem, const RuntimeLocation& loc) {
    std::string lastProblem = "its runtime has no interpreter (not initialized yet, or finalized)";
    for (Addr runtime : loc.candidates) {
        bool hasCookie = false;
        PythonVersion version = detectVersion(mem, loc, runtime, hasCookie);
        if (version.major != 3 || version.minor < kOldestMinor || version.minor > kNewestMinor) {
            throw unsupported(version);
        }
        auto layout = staticLayout(version.minor);
        if (!layout) throw unsupported(version);
        if (usesDebugOffsets(version.minor)) {
            if (!hasCookie) {
                lastProblem = "no _Py_DebugOffsets cookie at " + hexAddr(runtime);
                continue;  // e.g. an uninitialized duplicate load of libpython
            }
            std::vector<std::uint8_t> blob(debugOffsetsSize(version.minor));
            mem.read(runtime, blob.data(), blob.size(), "_Py_DebugOffsets");
            DebugOffsets d = decodeDebugOffsets(version.minor, blob);
            if (d.freeThreaded) throw unsupported(version, " (free-threaded build)");
            applyDebugOffsets(*layout, d);
        }
        if (auto problems = validateLayout(*layout); !problems.empty()) {
            throw InspectError(Errc::unsupported_version,
                               "layout for Python " + version.str() + " is unusable: " + problems.front());
        }
        if (!plausible(mem, *layout, runtime)) continue;
        Addr secret = loc.hashSecretFromRuntime ? runtime + static_cast<Addr>(*loc.hashSecretFromRuntime) : 0;
        return ResolvedRuntime{runtime, version, secret, std::move(*layout)};
    }
    throw InspectError(Errc::not_python, "found CPython in " + loc.file + " but " + lastProblem);
}

}  // namespace aioscope
