#include "native/native_symbols.h"

#include <unistd.h>

#include <cstring>
#include <list>
#include <memory>

#include "errors.h"
#include "target/proc.h"

namespace aioscope::cli {

namespace {

// A few processes at once: `run` serves a program and its children, and a
// Dwfl with a libpython's debug info loaded holds tens of MB.
constexpr std::size_t kKept = 4;

// The symbols whose Dwfl is in use (libdwfl's find_elf callback carries no
// argument of ours; it is called lazily, when a module is first looked into).
thread_local const ProcessSymbols* t_current = nullptr;
thread_local const std::vector<Mapping>* t_maps = nullptr;

// A module's file as the target sees it: through /proc/PID/map_files or
// /proc/PID/root, checked by inode. The same path on the host may be another
// file (a target in a chroot or container): symbols from it would be wrong.
int findTargetElf(Dwfl_Module*, void**, const char* name, Dwarf_Addr, char** fileName, Elf** elfp) {
    *elfp = nullptr;
    if (!t_current || !t_maps || !name || name[0] != '/') return -1;
    std::string path;
    int fd = ProcFs(t_current->pid()).openMappedNamed(*t_maps, name, path);
    if (fd >= 0) *fileName = ::strdup(path.c_str());
    return fd;  // libdwfl owns it now
}

char* g_debuginfoPath = nullptr;
const Dwfl_Callbacks g_callbacks{findTargetElf, dwfl_standard_find_debuginfo, nullptr, &g_debuginfoPath};

std::list<std::unique_ptr<ProcessSymbols>>& kept() {
    static std::list<std::unique_ptr<ProcessSymbols>> list;  // most recently used first
    return list;
}

}  // namespace

ProcessSymbols::ProcessSymbols(pid_t pid, std::uint64_t startTime) : m_pid(pid), m_startTime(startTime) {}

ProcessSymbols::~ProcessSymbols() {
    if (m_dwfl) dwfl_end(m_dwfl);
    if (t_current == this) t_current = nullptr, t_maps = nullptr;
}

Dwfl* ProcessSymbols::refresh(std::string& error) {
    try {
        m_maps = ProcFs(m_pid).maps();
    } catch (const InspectError& e) {
        error = std::string("no symbols: ") + e.what();
        return nullptr;
    }
    t_current = this;
    t_maps = &m_maps;
    if (!m_dwfl) m_dwfl = dwfl_begin(&g_callbacks);
    if (!m_dwfl) {
        error = "no symbols: elfutils could not start";
        return nullptr;
    }
    // Modules reported again at the same addresses keep what they loaded;
    // those no longer mapped are dropped.
    dwfl_report_begin(m_dwfl);
    if (dwfl_linux_proc_report(m_dwfl, m_pid) != 0) {
        dwfl_report_end(m_dwfl, nullptr, nullptr);
        error = "no symbols: the process's mappings could not be read";
        return nullptr;
    }
    dwfl_report_end(m_dwfl, nullptr, nullptr);
    return m_dwfl;
}

ProcessSymbols* symbolsOf(pid_t pid) {
    std::uint64_t start = startTimeOf(pid);
    if (!start) return nullptr;
    auto& list = kept();
    for (auto it = list.begin(); it != list.end(); ++it) {
        if ((*it)->pid() != pid) continue;
        if ((*it)->startTime() != start) {
            list.erase(it);  // another process with the same pid
            break;
        }
        list.splice(list.begin(), list, it);
        return list.front().get();
    }
    list.push_front(std::make_unique<ProcessSymbols>(pid, start));
    if (list.size() > kKept) list.pop_back();
    return list.front().get();
}

std::size_t symbolsKept() { return kept().size(); }

void forgetSymbolsOf(pid_t pid) {
    kept().remove_if([pid](const auto& s) { return s->pid() == pid; });
}

}  // namespace aioscope::cli
