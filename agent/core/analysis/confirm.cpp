#include "analysis/confirm.h"

#include <algorithm>
#include <set>
#include <tuple>

namespace aioscope {

namespace {

using Key = std::tuple<std::string, std::vector<std::uint64_t>, std::vector<std::uint64_t>, std::vector<std::uint64_t>>;

// A cycle found twice may start at another task: compare as sets.
Key keyOf(const Finding& f) {
    auto tasks = f.tasks;
    auto objects = f.objects;
    auto threads = f.threads;
    std::sort(tasks.begin(), tasks.end());
    std::sort(objects.begin(), objects.end());
    std::sort(threads.begin(), threads.end());
    return {f.kind, std::move(tasks), std::move(objects), std::move(threads)};
}

}  // namespace

void confirmFindings(const Snapshot& earlier, Snapshot& later) {
    std::set<Key> before;
    for (const auto& f : earlier.findings) before.insert(keyOf(f));
    std::size_t dropped = 0;
    std::erase_if(later.findings, [&](const Finding& f) {
        bool keep = before.count(keyOf(f)) != 0;
        if (!keep) ++dropped;
        return !keep;
    });
    for (const auto& f : earlier.findings) {
        if (!std::any_of(later.findings.begin(), later.findings.end(),
                         [&](const Finding& g) { return keyOf(g) == keyOf(f); })) {
            ++dropped;
        }
    }
    if (dropped) {
        later.warnings.push_back(std::to_string(dropped) +
                                 (dropped == 1 ? " finding was seen in only one of two reads (the process moved on) "
                                                 "and is not reported"
                                               : " findings were seen in only one of two reads (the process moved "
                                                 "on) and are not reported"));
    }
}

}  // namespace aioscope
