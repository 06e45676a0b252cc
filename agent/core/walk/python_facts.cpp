#include "walk/python_facts.h"

#include <cstdlib>

namespace aioscope {

std::optional<std::string> sysVersion(Objects& objects, const InterpreterState& interp) {
    if (!interp.sysdict) return std::nullopt;
    auto v = objects.dictGet(interp.sysdict, "version");
    return v ? objects.str(*v, 512) : std::nullopt;
}

int microFromVersionString(const std::string& version) {
    auto dot1 = version.find('.');
    if (dot1 == std::string::npos) return -1;
    auto dot2 = version.find('.', dot1 + 1);
    if (dot2 == std::string::npos) return -1;
    char* end = nullptr;
    long micro = std::strtol(version.c_str() + dot2 + 1, &end, 10);
    if (end == version.c_str() + dot2 + 1 || micro < 0 || micro > 255) return -1;
    return static_cast<int>(micro);
}

std::optional<Addr> moduleDict(Objects& objects, const InterpreterState& interp, std::string_view name) {
    if (!interp.modules) return std::nullopt;
    auto module = objects.dictGet(interp.modules, name);
    if (!module) return std::nullopt;
    Addr dict = objects.mem().ptr(*module + objects.layout().module.dict, "module dict");
    return dict ? std::optional<Addr>(dict) : std::nullopt;
}

std::map<std::uint64_t, std::string> threadNames(Objects& objects, const InterpreterState& interp,
                                                 Witness* witness) {
    std::map<std::uint64_t, std::string> names;
    auto threading = moduleDict(objects, interp, "threading");
    if (!threading) return names;
    auto active = objects.dictGet(*threading, "_active");
    if (!active) return names;
    if (witness) {
        const Layout& L = objects.layout();
        // Threads come and go all the time; entries change in place, which
        // is fine. A table reallocated under the read is not.
        for (Off off : {L.dict.keys, L.dict.values}) {
            Addr at = *active + static_cast<Addr>(off);
            witness->expect(at, objects.mem().ptr(at, "_active"));
        }
    }
    for (const auto& [key, thread] : objects.dictItems(*active)) {
        auto ident = objects.integer(key);
        auto nameObj = objects.attr(thread, "_name");
        if (!ident || !nameObj) continue;
        // Thread.name is always an exact str; anything else is a Thread
        // being torn down (or memory reused) while it was read.
        if (auto name = objects.exactStr(*nameObj, 1024)) names[static_cast<std::uint64_t>(*ident)] = *name;
    }
    return names;
}

}  // namespace aioscope
