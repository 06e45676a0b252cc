#include "errors.h"

#include <fstream>

namespace aioscope {

std::string permissionAdvice() {
    std::string advice =
        "run aioscope as the same user as the target, as root, or with CAP_SYS_PTRACE";
    std::ifstream yama("/proc/sys/kernel/yama/ptrace_scope");
    int scope = -1;
    if (yama >> scope && scope > 0) {
        advice += "; Yama ptrace_scope is " + std::to_string(scope) +
                  " (/proc/sys/kernel/yama/ptrace_scope): set it to 0 to read non-child "
                  "processes of the same user";
    }
    return advice;
}

}  // namespace aioscope
