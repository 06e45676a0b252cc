// aioscope's private folder in a target's /tmp, for the files the target must
// open itself: the agent library, the PEP 768 loader script, the folder of
// the agent's socket. The target's user (perhaps hostile, while aioscope
// runs as root) can read what it needs and change nothing:
//  - the folder is created by us under a random name, owned by us, mode
//    0711 (the target's user may enter it, not list or change it), and only
//    ever used through its file descriptor;
//  - files are created in it with O_CREAT|O_EXCL|O_NOFOLLOW, written, read
//    back and compared, and only then given to the target's user (fchown and
//    fchmod on the descriptor, never by path);
//  - it is locked (flock) while we live: a later aioscope removes folders
//    whose owner died without cleaning up (SIGKILL).
#pragma once

#include <sys/types.h>

#include <string>

#include "inject/safe_fs.h"

namespace aioscope::cli {

inline constexpr const char* kStagingPrefix = "aioscope-stage-";

class StagingDir {
public:
    // `tmp`: the target's /tmp (a directory descriptor); `tmpInTarget`: its
    // name as the target sees it. Throws InspectError (permission_denied when
    // we may not create folders there).
    StagingDir(int tmp, const std::string& tmpInTarget);
    ~StagingDir();  // removes the folder and everything in it
    StagingDir(const StagingDir&) = delete;
    StagingDir& operator=(const StagingDir&) = delete;

    int fd() const { return m_dir.get(); }
    // The folder as the target names it, and as we can name it here (through
    // our descriptor: no path lookup an attacker could influence).
    const std::string& inTarget() const { return m_inTarget; }
    std::string here() const;

    // Creates the file `name`, writes and checks `content`, then hands it to
    // uid/gid with `mode`. Returns its path as the target names it.
    std::string writeFile(const std::string& name, const std::string& content, uid_t uid, gid_t gid, mode_t mode);

    // Removes everything inside (the folder itself stays until destruction).
    void clear();

private:
    Fd m_tmp;
    Fd m_dir;
    std::string m_name;
    std::string m_inTarget;
};

// Removes the staging folders in `tmp` whose aioscope has ended (their lock
// is free), if they belong to our effective user; never follows a link.
void removeStaleStaging(int tmp);

}  // namespace aioscope::cli
