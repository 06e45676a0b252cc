#include "inject/tracer.h"

#include <sstream>

#include "errors.h"
#include "target/proc.h"

namespace aioscope::cli {

namespace {

pid_t tracerPid(const std::string& statusFile) {
    auto status = readSmallFile(statusFile, 1 << 16);
    if (!status) return 0;
    std::istringstream in(*status);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("TracerPid:", 0) == 0) return static_cast<pid_t>(std::strtol(line.c_str() + 10, nullptr, 10));
    }
    return 0;
}

}  // namespace

std::string describeTracer(pid_t pid, pid_t tid) {
    std::string base = "/proc/" + std::to_string(pid);
    pid_t tracer = tracerPid(base + "/task/" + std::to_string(tid) + "/status");
    if (!tracer) tracer = tracerPid(base + "/status");
    if (!tracer) return "";
    std::string comm = ProcFs(tracer).comm();
    return "process " + std::to_string(tracer) + (comm.empty() ? "" : " (" + comm + ")");
}

std::string ptraceRefusedMessage(pid_t pid, pid_t tid) {
    std::string tracer = describeTracer(pid, tid);
    if (!tracer.empty()) {
        return "process " + std::to_string(pid) + " is already traced by " + tracer +
               ": a process can have only one tracer; detach it (or end it) and try again";
    }
    return "permission denied attaching to process " + std::to_string(pid) + " with ptrace: " + permissionAdvice();
}

}  // namespace aioscope::cli
