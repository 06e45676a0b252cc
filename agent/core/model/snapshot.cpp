#include "model/snapshot.h"

namespace aioscope {

const Stack& Task::frames() const {
    static const Stack kEmpty;
    return stack ? *stack : kEmpty;
}

const Frame* Task::where() const {
    const Stack& f = frames();
    if (f.empty()) return nullptr;
    if (runtime == "trio") {
        for (const auto& frame : f) {
            if (frame.file.find("/trio/") == std::string::npos && frame.file.find("/anyio/") == std::string::npos) {
                return &frame;
            }
        }
    }
    return &f.front();
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
