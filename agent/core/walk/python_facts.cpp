#include "walk/python_facts.h"

#include <cstdlib>

namespace aioscope {

namespace {

// Around an object, what attr() and exactStr() read of it: a managed dict
// pointer up to 32 bytes before it (3.11-3.12), a short name's characters
// and inline values after it.
constexpr std::size_t kObjectBefore = 32;
constexpr std::size_t kObjectAfter = 128;

}  // namespace

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
    // Each thread's ident and object (with its managed dict before it and
    // inline values after it), then the names: two batched reads, not a few
    // page misses per thread.
    auto items = objects.dictItems(*active);
    std::vector<Addr> at;
    for (const auto& [key, thread] : items) {
        at.push_back(key);
        at.push_back(thread);
    }
    objects.prefetch(at, kObjectBefore, kObjectAfter);
    std::vector<std::pair<std::uint64_t, Addr>> found;
    for (const auto& [key, thread] : items) {
        auto ident = objects.integer(key);
        auto nameObj = objects.attr(thread, "_name");
        if (ident && nameObj) found.emplace_back(static_cast<std::uint64_t>(*ident), *nameObj);
    }
    at.clear();
    for (const auto& f : found) at.push_back(f.second);
    objects.prefetch(at, 0, kObjectAfter);
    for (const auto& [ident, nameObj] : found) {
        // Thread.name is always an exact str; anything else is a Thread
        // being torn down (or memory reused) while it was read.
        if (auto name = objects.exactStr(nameObj, 1024)) names[ident] = *name;
    }
    return names;
}

}  // namespace aioscope
