#include "report/output.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>

#include "errors.h"

namespace aioscope::cli::report {

void writeOutput(const std::string& path, const std::function<void(std::ostream&)>& write) {
    struct stat st{};
    bool special = stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode);  // /dev/stdout, a FIFO
    if (path == "-" || special) {
        if (special) {
            std::ofstream out(path, std::ios::binary);
            if (!out) throw InspectError(Errc::output_failed, "cannot write " + path + ": " + std::strerror(errno));
            write(out);
            out.flush();
            if (!out) throw InspectError(Errc::output_failed, "cannot write " + path);
            return;
        }
        write(std::cout);
        std::cout.flush();
        if (!std::cout) throw InspectError(Errc::output_failed, "cannot write to standard output");
        return;
    }
    // Written beside the destination and renamed: a failed write never
    // leaves half a file under the name a CI job uploads.
    std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) throw InspectError(Errc::output_failed, "cannot write " + path + ": " + std::strerror(errno));
        write(out);
        out.flush();
        if (!out) {
            int err = errno;
            std::remove(tmp.c_str());
            throw InspectError(Errc::output_failed, "cannot write " + path + ": " + std::strerror(err));
        }
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        int err = errno;
        std::remove(tmp.c_str());
        throw InspectError(Errc::output_failed, "cannot write " + path + ": " + std::strerror(err));
    }
}

}  // namespace aioscope::cli::report
