// The symbols kept for a process's native stacks (cli/native/native_symbols.h),
// against real child processes: the same process keeps its elfutils session
// and its modules across captures (a module rebuilt at each capture reloads
// its debug info: 50-400 ms during which the next stall of the process
// waited unread), another process gets its own, and an ended one none.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "child_processes.h"
#include "native/native_symbols.h"

using namespace aioscope::cli;

namespace {

// Something in our executable's code, which the child maps at the same address.
int codeMarker() { return 7; }
const auto kCode = reinterpret_cast<Dwarf_Addr>(&codeMarker);

}  // namespace

TEST_CASE("a process's symbols are kept, with their modules, from one capture to the next") {
    pid_t c = sleepingChild();
    ProcessSymbols* first = symbolsOf(c);
    REQUIRE(first != nullptr);
    std::string error;
    Dwfl* dwfl = first->refresh(error);
    REQUIRE(dwfl != nullptr);
    Dwfl_Module* mod = dwfl_addrmodule(dwfl, kCode);
    REQUIRE(mod != nullptr);
    GElf_Off offset = 0;
    GElf_Sym sym;
    const char* name = dwfl_module_addrinfo(mod, kCode, &offset, &sym, nullptr, nullptr, nullptr);
    REQUIRE(name != nullptr);
    CHECK(std::string(name).find("codeMarker") != std::string::npos);

    ProcessSymbols* again = symbolsOf(c);
    CHECK(again == first);
    Dwfl* dwfl2 = again->refresh(error);
    CHECK(dwfl2 == dwfl);
    // The same module object: what it loaded (its symbol table) is kept.
    CHECK(dwfl_addrmodule(dwfl2, kCode) == mod);

    forgetSymbolsOf(c);
    CHECK(symbolsKept() == 0);
    reap(c);
    CHECK(symbolsOf(c) == nullptr);  // ended: nothing to report
}

TEST_CASE("each process has symbols of its own, and only the last few are kept") {
    std::vector<pid_t> children;
    for (int i = 0; i < 6; ++i) children.push_back(sleepingChild());
    std::vector<ProcessSymbols*> symbols;
    for (pid_t c : children) {
        ProcessSymbols* s = symbolsOf(c);
        REQUIRE(s != nullptr);
        CHECK(s->pid() == c);
        symbols.push_back(s);
    }
    // The most recent ones are still kept; the oldest were let go.
    CHECK(symbolsKept() == 4);
    CHECK(symbolsOf(children.back()) == symbols.back());
    ProcessSymbols* oldest = symbolsOf(children.front());
    REQUIRE(oldest != nullptr);
    CHECK(oldest->pid() == children.front());
    std::string error;
    CHECK(oldest->refresh(error) != nullptr);
    for (pid_t c : children) {
        forgetSymbolsOf(c);
        reap(c);
    }
    CHECK(symbolsKept() == 0);
}

TEST_CASE("a process that has ended gets no symbols and says why") {
    pid_t c = sleepingChild();
    ProcessSymbols* s = symbolsOf(c);
    REQUIRE(s != nullptr);
    reap(c);
    std::string error;
    CHECK(s->refresh(error) == nullptr);
    CHECK(error.rfind("no symbols", 0) == 0);
    forgetSymbolsOf(c);
}
