#include "pytest_env.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "mem/page_cache.h"
#include "mem/process_reader.h"
#include "remote/objects.h"
#include "walk/interpreters.h"
#include "walk/python_facts.h"

namespace aioscope::agent {

namespace {
constexpr std::string_view kVariable = "PYTEST_CURRENT_TEST";
constexpr std::size_t kMaxValue = 4096;
}  // namespace

std::optional<TestRef> parsePytestCurrentTest(std::string_view value) {
    // The node id may itself contain " (" (parametrize ids): the phase is the last one.
    std::size_t open = value.rfind(" (");
    if (value.empty() || value.back() != ')' || open == std::string_view::npos || open == 0) return std::nullopt;
    TestRef t;
    t.id = std::string(value.substr(0, open));
    t.phase = std::string(value.substr(open + 2, value.size() - open - 3));
    return t;
}

const std::string& inheritedPytestCurrentTest() {
    static const std::string* value = [] {
        auto* v = new std::string;  // never destroyed: read at exit too
        int fd = ::open("/proc/self/environ", O_RDONLY | O_CLOEXEC);
        if (fd < 0) return v;
        std::string env;
        char buf[65536];
        ssize_t n;
        while ((n = ::read(fd, buf, sizeof buf)) > 0 && env.size() < (4u << 20)) env.append(buf, static_cast<std::size_t>(n));
        ::close(fd);
        std::string prefix = std::string(kVariable) + "=";
        for (std::size_t at = 0; at < env.size();) {
            std::size_t end = env.find('\0', at);
            if (end == std::string::npos) end = env.size();
            if (env.compare(at, prefix.size(), prefix) == 0) {
                *v = env.substr(at + prefix.size(), end - at - prefix.size());
                break;
            }
            at = end + 1;
        }
        return v;
    }();
    return *value;
}

std::optional<TestRef> readCurrentTest(const ResolvedRuntime& runtime) {
    try {
        ProcessReader self(getpid());
        PageCache cache(self, 64, 1);
        Remote mem(cache);
        Objects objects(mem, runtime.layout);
        objects.useHashSecret(runtime.hashSecret);
        auto interps = readInterpreters(mem, runtime.layout, runtime.runtime);
        if (interps.empty()) return std::nullopt;
        // os.environ._data: bytes -> bytes, what os.environ[...] = sets (with putenv).
        // Only a process that runs pytest itself: its children inherit the
        // variable, but they are not the test's process.
        const InterpreterState& main = interps.back();
        if (!main.modules || !objects.dictGet(main.modules, "_pytest")) return std::nullopt;
        auto os = moduleDict(objects, main, "os");
        auto environ = os ? objects.dictGet(*os, "environ") : std::nullopt;
        auto data = environ ? objects.attr(*environ, "_data") : std::nullopt;
        if (!data) return std::nullopt;
        for (const auto& [key, value] : objects.dictItems(*data)) {
            auto k = objects.bytes(key, kVariable.size() + 1);
            if (!k || k->size() != kVariable.size() || std::memcmp(k->data(), kVariable.data(), k->size()) != 0) {
                continue;
            }
            auto v = objects.bytes(value, kMaxValue);
            if (!v) return std::nullopt;
            std::string_view text(reinterpret_cast<const char*>(v->data()), v->size());
            if (text == inheritedPytestCurrentTest()) return std::nullopt;  // the parent pytest's
            return parsePytestCurrentTest(text);
        }
    } catch (const std::exception&) {
        // Torn or not there: no test to name.
    }
    return std::nullopt;
}

}  // namespace aioscope::agent
