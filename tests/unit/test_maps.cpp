// /proc/PID/maps parsing and ELF load bias. The maps lines and program headers
// below were recorded from real processes on Debian bookworm:
//   /usr/bin/python3.11 (non-PIE ET_EXEC), `readelf -lW` and its own maps;
//   pyenv 3.13.0's libpython3.13.so.1.0 (shared, PIE) mapped by python3.13.
#include <catch2/catch.hpp>

#include "target/maps.h"

using aioscope::LoadSegment;
using aioscope::Mapping;
using aioscope::loadBias;
using aioscope::parseMaps;

namespace {

const char* kRealMaps =
    "00400000-0041f000 r--p 00000000 fe:00 247970                             /usr/bin/python3.11\n"
    "0041f000-006d2000 r-xp 0001f000 fe:00 247970                             /usr/bin/python3.11\n"
    "00a85000-00aca000 rw-p 00000000 00:00 0 \n"
    "127c7000-1286b000 rw-p 00000000 00:00 0                                  [heap]\n"
    "7f9053c43000-7f9053d99000 r-xp 00026000 fe:00 332835                     /usr/lib/x86_64-linux-gnu/libc.so.6\n"
    "7f9053f2d000-7f9053f34000 r--s 00000000 fe:00 332280                     /usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache\n"
    "7f9053f3c000-7f9053f3e000 r-xp 00000000 00:00 0                          [vdso]\n"
    "7f9053f80000-7f9053f81000 rw-p 00000000 08:01 91                         /tmp/my venv/lib/libfoo 2.so (deleted)\n"
    "7f9053f90000-7f9053f91000 rw-s 00000000 00:01 2055                       /memfd:wayland-shm (deleted)\n"
    "7ffff2701000-7ffff2722000 rw-p 00000000 00:00 0                          [stack]\n"
    "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]";  // no final newline

}  // namespace

TEST_CASE("parseMaps reads every field of real maps lines", "[maps]") {
    auto maps = parseMaps(kRealMaps);
    REQUIRE(maps.size() == 11);

    const Mapping& exe = maps[1];
    CHECK(exe.start == 0x41f000);
    CHECK(exe.end == 0x6d2000);
    CHECK(exe.perms == "r-xp");
    CHECK(exe.offset == 0x1f000);
    CHECK(exe.inode == 247970);
    CHECK(exe.path == "/usr/bin/python3.11");
    CHECK(exe.fileBacked());
    CHECK_FALSE(exe.deleted());
    CHECK(exe.cleanPath() == "/usr/bin/python3.11");

    const Mapping& anon = maps[2];
    CHECK(anon.start == 0xa85000);
    CHECK(anon.inode == 0);
    CHECK(anon.path.empty());  // the trailing space must not become a path
    CHECK_FALSE(anon.fileBacked());

    CHECK(maps[3].path == "[heap]");
    CHECK_FALSE(maps[3].fileBacked());
    CHECK(maps[5].perms == "r--s");
    CHECK(maps[6].path == "[vdso]");
    CHECK_FALSE(maps[6].fileBacked());
    CHECK(maps[9].path == "[stack]");
    CHECK(maps[9].end == 0x7ffff2722000);

    const Mapping& last = maps[10];
    CHECK(last.start == 0xffffffffff600000ull);
    CHECK(last.end == 0xffffffffff601000ull);
    CHECK(last.perms == "--xp");
    CHECK(last.path == "[vsyscall]");
}

TEST_CASE("parseMaps keeps spaces inside paths and recognises deleted files", "[maps]") {
    auto maps = parseMaps(kRealMaps);
    REQUIRE(maps.size() == 11);
    const Mapping& del = maps[7];
    CHECK(del.path == "/tmp/my venv/lib/libfoo 2.so (deleted)");
    CHECK(del.deleted());
    CHECK(del.cleanPath() == "/tmp/my venv/lib/libfoo 2.so");
    CHECK(del.fileBacked());
    CHECK(del.inode == 91);

    const Mapping& memfd = maps[8];
    CHECK(memfd.deleted());
    CHECK(memfd.cleanPath() == "/memfd:wayland-shm");
}

TEST_CASE("Mapping::deleted needs a real name before the suffix", "[maps]") {
    Mapping m;
    m.path = " (deleted)";
    CHECK_FALSE(m.deleted());
    CHECK(m.cleanPath() == " (deleted)");
    m.path = "/x (deleted) and more";
    CHECK_FALSE(m.deleted());
    m.path = "/x(deleted)";
    CHECK_FALSE(m.deleted());
}

TEST_CASE("parseMaps skips malformed lines and keeps the good ones", "[maps]") {
    const char* text =
        "garbage\n"
        "\n"
        "00400000 r--p 00000000 fe:00 1 /no/dash\n"
        "00500000-00400000 r--p 00000000 fe:00 1 /end/before/start\n"
        "00400000-00400000 r--p 00000000 fe:00 1 /empty/range\n"
        "0040zz00-00500000 r--p 00000000 fe:00 1 /bad/hex\n"
        "00400000-00500000 rwxpx 00000000 fe:00 1 /long/perms\n"
        "00400000-00500000 r--p 0000g000 fe:00 1 /bad/offset\n"
        "00400000-00500000 r--p 00000000 fe:00 12a /bad/inode\n"
        "00400000-00500000 r--p 00000000\n"
        "00400000-00500000 r--p 00000000 fe:00\n"
        "00600000-00601000 r--p 00001000 fe:00 7 /good\n"
        "  00700000-00701000 rw-p 00000000 00:00 0\n";
    auto maps = parseMaps(text);
    REQUIRE(maps.size() == 2);
    CHECK(maps[0].start == 0x600000);
    CHECK(maps[0].offset == 0x1000);
    CHECK(maps[0].inode == 7);
    CHECK(maps[0].path == "/good");
    CHECK(maps[1].start == 0x700000);
    CHECK(maps[1].path.empty());
    CHECK(parseMaps("").empty());
}

namespace {

Mapping mapping(std::uint64_t start, std::uint64_t end, std::uint64_t offset) {
    Mapping m;
    m.start = start;
    m.end = end;
    m.perms = "r--p";
    m.offset = offset;
    m.inode = 1;
    m.path = "/f";
    return m;
}

// `readelf -lW /usr/bin/python3.11` (Debian 3.11.2-6): ET_EXEC.
const std::vector<LoadSegment> kPython311 = {
    {0x400000, 0x000000, 0x01e3e8, 0x01e3e8},
    {0x41f000, 0x01f000, 0x2b2289, 0x2b2289},
    {0x6d2000, 0x2d2000, 0x272968, 0x272968},
    {0x945dc8, 0x544dc8, 0x13e4b0, 0x1832f0},
};

// `readelf -lW libpython3.13.so.1.0` (pyenv 3.13.0): ET_DYN.
const std::vector<LoadSegment> kLibpython313 = {
    {0x000000, 0x000000, 0x0853c8, 0x0853c8},
    {0x086000, 0x086000, 0x2ab3e9, 0x2ab3e9},
    {0x332000, 0x332000, 0x16b2b8, 0x16b2b8},
    {0x49e5e0, 0x49d5e0, 0x0d0198, 0x142488},
};
constexpr std::uint64_t kLibpythonBase = 0x7fa6c9e00000;

}  // namespace

TEST_CASE("loadBias of a non-PIE executable is zero", "[maps][bias]") {
    // Maps lines of that python3.11: 00400000-0041f000 r--p 00000000 ...
    CHECK(loadBias(mapping(0x400000, 0x41f000, 0x000000), kPython311) == 0u);
    CHECK(loadBias(mapping(0x41f000, 0x6d2000, 0x01f000), kPython311) == 0u);
    CHECK(loadBias(mapping(0x6d2000, 0x945000, 0x2d2000), kPython311) == 0u);
    // The writable part of the RW segment (after its RELRO page).
    CHECK(loadBias(mapping(0x946000, 0xa85000, 0x545000), kPython311) == 0u);
}

TEST_CASE("loadBias of a shared library is its load address", "[maps][bias]") {
    std::vector<LoadSegment> pie = {{0, 0, 0x1000, 0x1000}};
    CHECK(loadBias(mapping(0x7f0000000000, 0x7f0000001000, 0), pie) == 0x7f0000000000u);

    // Real mappings of libpython3.13 (base 0x7fa6c9e00000).
    CHECK(loadBias(mapping(0x7fa6c9e00000, 0x7fa6c9e86000, 0x000000), kLibpython313) == kLibpythonBase);
    CHECK(loadBias(mapping(0x7fa6c9e86000, 0x7fa6ca132000, 0x086000), kLibpython313) == kLibpythonBase);
    CHECK(loadBias(mapping(0x7fa6ca132000, 0x7fa6ca29e000, 0x332000), kLibpython313) == kLibpythonBase);
    // rw-p part of the data segment, where p_vaddr - p_offset is 0x1000.
    CHECK(loadBias(mapping(0x7fa6ca2eb000, 0x7fa6ca36f000, 0x4ea000), kLibpython313) == kLibpythonBase);
}

TEST_CASE("loadBias uses the segment's own vaddr-offset difference", "[maps][bias]") {
    const std::uint64_t base = 0x7f1200000000;
    std::vector<LoadSegment> loads = {
        {0x0000000, 0x0000000, 0x1000000, 0x1000000},
        {0x1000000, 0x1000000, 0x0511f00, 0x0511f00},
        {0x1513a00, 0x1512a00, 0x0040000, 0x0080000},  // p_vaddr - p_offset = 0x1000
    };
    // The kernel maps the RW segment from its page-aligned file offset.
    CHECK(loadBias(mapping(base + 0x1513000, base + 0x1554000, 0x1512000), loads) == base);
    CHECK(loadBias(mapping(base + 0x1000000, base + 0x1512000, 0x1000000), loads) == base);
}

TEST_CASE("loadBias without a covering segment is nullopt", "[maps][bias]") {
    CHECK_FALSE(loadBias(mapping(0x7f0000000000, 0x7f0000001000, 0x700000), kPython311).has_value());
    CHECK_FALSE(loadBias(mapping(0x7f0000000000, 0x7f0000001000, 0), {}).has_value());
    // Past the end of the file part of the last segment (its .bss is anonymous).
    CHECK_FALSE(loadBias(mapping(0xa85000, 0xaca000, 0x684000), kPython311).has_value());
}

// A segment that starts mid-page shares its first file page with the previous
// segment's tail: the RELRO mapping of the data segment (real maps lines
// below) is covered by both, and only the later segment gives the right bias
// (the earlier one would put it 0x1000 too high).
TEST_CASE("loadBias of a mapping that starts on a page shared with the previous segment",
          "[maps][bias]") {
    // 7fa6ca29e000-7fa6ca2eb000 r--p 0049d000 fe:00 82864 .../libpython3.13.so.1.0
    CHECK(loadBias(mapping(0x7fa6ca29e000, 0x7fa6ca2eb000, 0x49d000), kLibpython313) == kLibpythonBase);
    // 00945000-00946000 r--p 00544000 fe:00 247970 /usr/bin/python3.11
    CHECK(loadBias(mapping(0x945000, 0x946000, 0x544000), kPython311) == 0u);
}
