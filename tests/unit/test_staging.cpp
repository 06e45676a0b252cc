// The staging folder and the file operations under it (cli/inject/staging.h,
// safe_fs.h), in a scratch folder standing in for a target's /tmp and root:
// links planted where aioscope writes, resolves or deletes must never make
// it touch anything outside.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "errors.h"
#include "inject/safe_fs.h"
#include "inject/staging.h"

using namespace aioscope;
using namespace aioscope::cli;
namespace fs = std::filesystem;

namespace {

struct Scratch {
    fs::path dir;
    Scratch() {
        char tmpl[] = "/tmp/aioscope-unit-XXXXXX";
        REQUIRE(mkdtemp(tmpl));
        dir = tmpl;
    }
    ~Scratch() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    Fd open(const fs::path& p, int flags = O_RDONLY | O_DIRECTORY) const { return Fd(::open(p.c_str(), flags | O_CLOEXEC)); }
};

void writeText(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }
std::string readText(const fs::path& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("openInRoot keeps absolute links and .. inside the root", "[staging]") {
    Scratch s;
    fs::create_directories(s.dir / "root/etc");
    fs::create_directories(s.dir / "outside");
    fs::create_directories(s.dir / "root/outside");
    writeText(s.dir / "root/etc/marker", "inside");
    writeText(s.dir / "root/outside/marker", "inside");
    fs::create_directory_symlink("/etc", s.dir / "root/tmp");        // absolute: resolves in the root
    fs::create_directory_symlink("../../outside", s.dir / "root/up");  // climbs out
    Fd root = s.open(s.dir / "root", O_PATH | O_DIRECTORY);
    REQUIRE(root);

    Fd strict = openInRoot(root.get(), "tmp", O_RDONLY | O_DIRECTORY, false);
    CHECK_FALSE(strict);
    CHECK(errno == ELOOP);

    Fd followed = openInRoot(root.get(), "tmp", O_RDONLY | O_DIRECTORY, true);
    REQUIRE(followed);
    Fd marker(::openat(followed.get(), "marker", O_RDONLY | O_CLOEXEC));
    CHECK(marker);  // root/etc, not the host's /etc

    Fd up = openInRoot(root.get(), "up", O_RDONLY | O_DIRECTORY, true);
    REQUIRE(up);
    struct stat a, b;
    REQUIRE(fstat(up.get(), &a) == 0);
    REQUIRE(stat((s.dir / "root/outside").c_str(), &b) == 0);
    CHECK((a.st_ino == b.st_ino && a.st_dev == b.st_dev));  // ".." stops at the root: root/outside
    Fd above = openInRoot(root.get(), "../outside", O_RDONLY | O_DIRECTORY, false);
    if (above) {  // openat2 clamps ".." at the root; the fallback walk refuses it
        REQUIRE(fstat(above.get(), &a) == 0);
        CHECK((a.st_ino == b.st_ino && a.st_dev == b.st_dev));
    }
}

TEST_CASE("a staging folder is ours, private, and files in it are handed over only after they are checked", "[staging]") {
    Scratch s;
    Fd tmp = s.open(s.dir);
    std::string inTarget;
    {
        StagingDir staging(tmp.get(), "/tmp");
        inTarget = staging.inTarget();
        CHECK(inTarget.starts_with(std::string("/tmp/") + kStagingPrefix));
        fs::path here = s.dir / inTarget.substr(5);
        struct stat st;
        REQUIRE(stat(here.c_str(), &st) == 0);
        CHECK(st.st_uid == geteuid());
        CHECK((st.st_mode & 0777) == 0711);
        // Locked while it lives: another aioscope must not think it stale.
        Fd other(::open(here.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        CHECK(flock(other.get(), LOCK_EX | LOCK_NB) != 0);
        removeStaleStaging(tmp.get());
        CHECK(fs::exists(here));

        std::string path = staging.writeFile("agent.so", std::string(100000, 'a'), 65534, 65534, 0500);
        CHECK(path == inTarget + "/agent.so");
        REQUIRE(stat((here / "agent.so").c_str(), &st) == 0);
        CHECK(st.st_uid == 65534);
        CHECK((st.st_mode & 0777) == 0500);
        CHECK(st.st_size == 100000);

        // An existing name (or a link planted there) is never written through.
        writeText(s.dir / "victim", "untouched");
        fs::create_symlink(s.dir / "victim", here / "planted");
        CHECK_THROWS_AS(staging.writeFile("planted", "evil", 65534, 65534, 0400), InspectError);
        CHECK_THROWS_AS(staging.writeFile("agent.so", "again", 65534, 65534, 0400), InspectError);
        CHECK(readText(s.dir / "victim") == "untouched");
        struct stat v;
        REQUIRE(stat((s.dir / "victim").c_str(), &v) == 0);
        CHECK(v.st_uid == geteuid());
    }
    // Gone with everything in it; what the links pointed to is still there.
    CHECK_FALSE(fs::exists(s.dir / inTarget.substr(5)));
    CHECK(readText(s.dir / "victim") == "untouched");
}

TEST_CASE("removeContents deletes links, never what they point to", "[staging]") {
    Scratch s;
    fs::create_directories(s.dir / "keep/deep");
    writeText(s.dir / "keep/deep/file", "keep");
    fs::create_directories(s.dir / "doomed/sub");
    fs::create_directory_symlink(s.dir / "keep", s.dir / "doomed/dirlink");
    fs::create_symlink(s.dir / "keep/deep/file", s.dir / "doomed/sub/filelink");
    writeText(s.dir / "doomed/sub/own", "x");
    Fd doomed = s.open(s.dir / "doomed");
    CHECK(removeContents(doomed.get()));
    CHECK(fs::is_empty(s.dir / "doomed"));
    CHECK(readText(s.dir / "keep/deep/file") == "keep");
}

TEST_CASE("stale staging folders of ended aioscopes are removed; others' and live ones are not", "[staging]") {
    Scratch s;
    Fd tmp = s.open(s.dir);
    fs::create_directories(s.dir / (std::string(kStagingPrefix) + "dead/sub"));
    writeText(s.dir / (std::string(kStagingPrefix) + "dead/sub/agent.so"), "x");
    fs::create_directories(s.dir / (std::string(kStagingPrefix) + "alive"));
    Fd alive = s.open(s.dir / (std::string(kStagingPrefix) + "alive"));
    REQUIRE(flock(alive.get(), LOCK_EX) == 0);
    fs::create_directories(s.dir / (std::string(kStagingPrefix) + "someone-else"));
    REQUIRE(chown((s.dir / (std::string(kStagingPrefix) + "someone-else")).c_str(), 65534, 65534) == 0);
    fs::create_directory_symlink(s.dir, s.dir / (std::string(kStagingPrefix) + "link"));

    removeStaleStaging(tmp.get());
    CHECK_FALSE(fs::exists(s.dir / (std::string(kStagingPrefix) + "dead")));
    CHECK(fs::exists(s.dir / (std::string(kStagingPrefix) + "alive")));
    CHECK(fs::exists(s.dir / (std::string(kStagingPrefix) + "someone-else")));
    CHECK(fs::is_symlink(s.dir / (std::string(kStagingPrefix) + "link")));
}
