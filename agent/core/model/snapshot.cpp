#include "model/snapshot.h"

namespace aioscope {

const Stack& Task::frames() const {
    static const Stack kEmpty;
    return stack ? *stack : kEmpty;
}

const Frame* Task::where() const {
    const Stack& f = frames();
    if (f.empty()) return nullptr;
    // A blocked trio task's innermost frame is in trio's own files: they and
    // anyio's beside them are the library's.
    auto at = runtime == "trio" ? f.front().file.rfind("/trio/") : std::string::npos;
    if (at == std::string::npos) return &f.front();
    std::string trio = f.front().file.substr(0, at + 6);
    std::string anyio = f.front().file.substr(0, at + 1) + "anyio/";
    for (const auto& frame : f) {
        if (!frame.file.starts_with(trio) && !frame.file.starts_with(anyio)) return &frame;
    }
    return &f.back();  // trio's own task (its root, its system tasks): what it runs
}

const char* taskStateName(TaskState s) {
    switch (s) {
        case TaskState::pending: return "pending";
        case TaskState::running: return "running";
        case TaskState::done: return "done";
        case TaskState::cancelled: return "cancelled";
    }
    return "pending";
}

}  // namespace aioscope
