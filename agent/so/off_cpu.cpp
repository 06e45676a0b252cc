#include "off_cpu.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "stall_hook.h"

namespace aioscope::agent {

namespace {

std::string readSmall(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return {};
    char buf[8192];
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// "se.exec_start   :   3979928.604849" (milliseconds, 6 decimals) -> ns.
std::optional<std::int64_t> fieldNs(const std::string& text, const char* name) {
    std::size_t at = text.find(name);
    if (at == std::string::npos) return std::nullopt;
    std::size_t colon = text.find(':', at);
    if (colon == std::string::npos) return std::nullopt;
    const char* p = text.c_str() + colon + 1;
    char* end = nullptr;
    long long whole = std::strtoll(p, &end, 10);
    if (end == p) return std::nullopt;
    long long frac = 0;
    if (*end == '.') {
        const char* f = end + 1;
        int digits = 0;
        while (digits < 6 && f[digits] >= '0' && f[digits] <= '9') {
            frac = frac * 10 + (f[digits] - '0');
            ++digits;
        }
        for (; digits < 6; ++digits) frac *= 10;
    }
    return whole * 1'000'000 + frac;
}

std::optional<long long> count(const std::string& text, const char* name) {
    std::size_t at = text.find(name);
    if (at == std::string::npos) return std::nullopt;
    std::size_t colon = text.find(':', at);
    if (colon == std::string::npos) return std::nullopt;
    return std::strtoll(text.c_str() + colon + 1, nullptr, 10);
}

// S (sleeping) or D (uninterruptible): not on a CPU, not waiting for one.
bool asleep(pid_t tid) {
    std::string stat = readSmall("/proc/self/task/" + std::to_string(tid) + "/stat");
    std::size_t close = stat.rfind(')');
    return close != std::string::npos && close + 2 < stat.size() &&
           (stat[close + 2] == 'S' || stat[close + 2] == 'D');
}

constexpr std::int64_t kMarginNs = 1'000'000;  // the records' granularity, and more

std::optional<std::int64_t> lagHere() {
    auto start = fieldNs(readSmall("/proc/thread-self/sched"), "se.exec_start");
    std::int64_t now = monotonicNs();
    if (!start) return std::nullopt;
    return now - *start;
}

std::optional<std::int64_t> largestLag() {
    cpu_set_t original;
    if (sched_getaffinity(0, sizeof original, &original) != 0) return std::nullopt;
    std::optional<std::int64_t> largest;
    bool moved = false;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (!CPU_ISSET(cpu, &original)) continue;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        if (sched_setaffinity(0, sizeof one, &one) != 0) continue;
        moved = true;
        sched_yield();
        auto lag = lagHere();
        if (!lag) continue;
        largest = std::max(largest.value_or(*lag), *lag);
    }
    if (moved) sched_setaffinity(0, sizeof original, &original);
    return largest;
}

}  // namespace

std::optional<std::int64_t> offCpuSinceNs(pid_t tid) {
    if (tid <= 0) return std::nullopt;
    std::string path = "/proc/self/task/" + std::to_string(tid) + "/sched";
    std::string before = readSmall(path);
    bool sleeping = asleep(tid);
    std::string after = readSmall(path);
    auto execStart = fieldNs(before, "se.exec_start");
    auto switches = count(before, "nr_switches");
    if (!sleeping || !execStart || !switches || count(after, "nr_switches") != switches ||
        fieldNs(after, "se.exec_start") != execStart) {
        return std::nullopt;  // running, woken meanwhile, or no record
    }
    // The lag of the scheduler's clock behind CLOCK_MONOTONIC, now, on
    // every CPU (each CPU's clock loses its own interrupt and steal time):
    // the largest, which is at least the lag of the CPU that recorded it at
    // any earlier moment. Measured on this thread, moved to each CPU in turn
    // (where it has just been scheduled: its record is fresh).
    std::optional<std::int64_t> lag = largestLag();
    if (!lag) return std::nullopt;
    std::int64_t now = monotonicNs();
    std::int64_t since = *execStart + *lag + kMarginNs;
    // CLOCK_MONOTONIC is slewed by NTP (at most 500 ppm), the scheduler's
    // clock is not: over a long sleep the lag may have shrunk that much.
    since += (now - since) / 1000;
    if (since > now || since <= 0) return std::nullopt;
    return since;
}

}  // namespace aioscope::agent
