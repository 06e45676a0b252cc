// Kernel thread ids from glibc's struct pthread on 3.10: the tid offset is
// found by matching the live thread ids, not assumed.
#include <catch2/catch.hpp>

#include <map>
#include <vector>

#include "fake_memory.h"
#include "mem/remote.h"
#include "walk/native_ids.h"

using namespace aioscope;
using aioscope::test::FakeMemory;
using Ids = std::map<std::uint64_t, std::int64_t>;

namespace {

// A struct pthread (1024 bytes scanned) with `tid` at `offset` and noise
// elsewhere that is not a live tid.
Addr pthreadWithTid(FakeMemory& mem, std::size_t offset, std::int32_t tid) {
    Addr p = mem.alloc(2304);  // sizeof(struct pthread) on glibc 2.36 x86_64
    mem.put<Addr>(p, p);      // header.self, as glibc sets it
    mem.put<std::int32_t>(p + offset, tid);
    return p;
}

}  // namespace

TEST_CASE("tids at glibc's usual offset 720", "[native_ids]") {
    FakeMemory mem;
    Remote remote(mem);
    Addr t1 = pthreadWithTid(mem, 720, 4101);
    Addr t2 = pthreadWithTid(mem, 720, 4102);
    CHECK(nativeIdsFromPthreads(remote, {t1, t2}, {4100, 4101, 4102}) == Ids{{t1, 4101}, {t2, 4102}});
}

TEST_CASE("tids at another offset are found by scanning", "[native_ids]") {
    FakeMemory mem;
    Remote remote(mem);
    Addr t1 = pthreadWithTid(mem, 728, 301);
    Addr t2 = pthreadWithTid(mem, 728, 302);
    Addr t3 = pthreadWithTid(mem, 728, 303);
    // A live tid also sits at 720 of one struct: 720 must not fit for all.
    mem.put<std::int32_t>(t1 + 720, 302);
    CHECK(nativeIdsFromPthreads(remote, {t1, t2, t3}, {300, 301, 302, 303}) ==
          Ids{{t1, 301}, {t2, 302}, {t3, 303}});
}

TEST_CASE("an offset only fits when every thread has a distinct live tid", "[native_ids]") {
    FakeMemory mem;
    Remote remote(mem);
    SECTION("no offset fits") {
        Addr t1 = pthreadWithTid(mem, 728, 301);
        Addr t2 = pthreadWithTid(mem, 728, 999);  // not a live thread
        CHECK(nativeIdsFromPthreads(remote, {t1, t2}, {300, 301, 302}).empty());
    }
    SECTION("two threads claiming one tid") {
        Addr t1 = pthreadWithTid(mem, 728, 301);
        Addr t2 = pthreadWithTid(mem, 728, 301);
        CHECK(nativeIdsFromPthreads(remote, {t1, t2}, {300, 301}).empty());
    }
    SECTION("nothing to match") {
        Addr t1 = pthreadWithTid(mem, 720, 301);
        CHECK(nativeIdsFromPthreads(remote, {t1}, {}).empty());
        CHECK(nativeIdsFromPthreads(remote, {}, {301}).empty());
    }
}

TEST_CASE("unreadable pthreads are left out", "[native_ids]") {
    FakeMemory mem;
    Remote remote(mem);
    Addr t1 = pthreadWithTid(mem, 720, 501);
    Addr gone = 0xdead0000;
    CHECK(nativeIdsFromPthreads(remote, {0, gone, t1}, {501}) == Ids{{t1, 501}});
    CHECK(nativeIdsFromPthreads(remote, {0, gone}, {501}).empty());
}
