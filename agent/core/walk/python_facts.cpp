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

std::map<std::uint64_t, std::string> threadNames(Objects& objects, const InterpreterState& interp) {
    std::map<std::uint64_t, std::string> names;
    auto threading = moduleDict(objects, interp, "threading");
    if (!threading) return names;
    auto active = objects.dictGet(*threading, "_active");
    if (!active) return names;
    for (const auto& [key, thread] : objects.dictItems(*active)) {
        auto ident = objects.integer(key);
        auto nameObj = objects.attr(thread, "_name");
        if (!ident || !nameObj) continue;
        if (auto name = objects.str(*nameObj, 1024)) names[static_cast<std::uint64_t>(*ident)] = *name;
    }
    return names;
}

}  // namespace aioscope
