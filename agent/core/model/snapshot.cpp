#include "model/snapshot.h"

namespace aioscope {

const Stack& Task::frames() const {
    static const Stack kEmpty;
    return stack ? *stack : kEmpty;
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
