#include "target/locate.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <regex>

#include "errors.h"
#include "target/elf_file.h"

namespace aioscope {

int minorFromFileName(const std::string& path) {
    std::string base = path.substr(path.rfind('/') + 1);
    static const std::regex re(R"((?:^|lib)python3\.(\d+))");
    std::smatch m;
    if (!std::regex_search(base, m, re)) return -1;
    return std::stoi(m[1]);
}

namespace {

std::string baseName(const std::string& p) { return p.substr(p.rfind('/') + 1); }

struct MappedFile {
    std::string path;
    std::uint64_t inode = 0;
    std::vector<const Mapping*> mappings;
};

// File-backed mappings grouped by file, in address order of first appearance.
std::vector<MappedFile> mappedFiles(const std::vector<Mapping>& maps) {
    std::vector<MappedFile> files;
    std::map<std::pair<std::string, std::uint64_t>, std::size_t> index;
    for (const auto& m : maps) {
        if (!m.fileBacked()) continue;
        auto key = std::make_pair(m.path, m.inode);
        auto [it, fresh] = index.emplace(key, files.size());
        if (fresh) files.push_back({m.path, m.inode, {}});
        files[it->second].mappings.push_back(&m);
    }
    return files;
}

struct OpenedElf {
    ElfFacts facts;
    std::string openedAs;
};

std::optional<OpenedElf> openMapped(const ProcFs& proc, const MappedFile& f,
                                    const std::vector<std::string>& sections,
                                    const std::vector<std::string>& symbols) {
    for (const auto& path : proc.openablePaths(*f.mappings.front())) {
        auto facts = readElfFacts(path, sections, symbols);
        // The same path outside the target's root may be a different file.
        if (facts && facts->inode == f.inode) return OpenedElf{std::move(*facts), path};
    }
    return std::nullopt;
}

std::vector<std::uint64_t> biases(const MappedFile& f, const ElfFacts& elf) {
    std::vector<std::uint64_t> out;
    for (const Mapping* m : f.mappings) {
        if (m->offset != 0) continue;
        if (auto b = loadBias(*m, elf.loads)) out.push_back(*b);
    }
    if (out.empty() && !f.mappings.empty()) {
        if (auto b = loadBias(*f.mappings.front(), elf.loads)) out.push_back(*b);
    }
    return out;
}

const std::vector<std::string> kRuntimeSections{".PyRuntime"};
const std::vector<std::string> kRuntimeSymbols{"_PyRuntime", "Py_Version", "_Py_HashSecret"};

}  // namespace

RuntimeLocation locateRuntime(const ProcFs& proc, const std::vector<Mapping>& maps) {
    return locateRuntimes(proc, maps).front();
}

std::vector<RuntimeLocation> locateRuntimes(const ProcFs& proc, const std::vector<Mapping>& maps) {
    std::vector<RuntimeLocation> found;
    auto files = mappedFiles(maps);
    std::string exe = proc.exe();
    // Likely holders first: libpython, then anything named python, then the
    // executable (a renamed or embedding binary), then every other file.
    auto rank = [&](const MappedFile& f) {
        std::string b = baseName(f.path);
        if (b.starts_with("libpython")) return 0;
        if (b.find("python") != std::string::npos && b.find(".cpython-") == std::string::npos) return 1;
        if (f.path == exe) return 2;
        return 3;
    };
    std::stable_sort(files.begin(), files.end(),
                     [&](const MappedFile& a, const MappedFile& b) { return rank(a) < rank(b); });

    for (const auto& f : files) {
        if (rank(f) == 3 && (baseName(f.path).find(".so") == std::string::npos)) continue;
        auto elf = openMapped(proc, f, kRuntimeSections, kRuntimeSymbols);
        if (!elf) continue;
        std::optional<std::uint64_t> runtimeVaddr;
        if (auto s = elf->facts.sections.find(".PyRuntime"); s != elf->facts.sections.end()) {
            runtimeVaddr = s->second.addr;
        } else if (auto y = elf->facts.symbols.find("_PyRuntime"); y != elf->facts.symbols.end()) {
            runtimeVaddr = y->second;
        }
        if (!runtimeVaddr) continue;
        RuntimeLocation loc;
        loc.file = f.path;
        loc.openedAs = elf->openedAs;
        loc.executable = exe;
        loc.sharedLibpython = baseName(f.path).starts_with("libpython");
        loc.minorFromName = minorFromFileName(f.path);
        if (loc.minorFromName < 0) loc.minorFromName = minorFromFileName(exe);
        auto pyv = elf->facts.symbols.find("Py_Version");
        if (auto h = elf->facts.symbols.find("_Py_HashSecret"); h != elf->facts.symbols.end()) {
            loc.hashSecretFromRuntime = static_cast<std::int64_t>(h->second - *runtimeVaddr);
        }
        for (std::uint64_t bias : biases(f, elf->facts)) {
            loc.candidates.push_back(bias + *runtimeVaddr);
            if (!loc.pyVersion && pyv != elf->facts.symbols.end()) loc.pyVersion = bias + pyv->second;
        }
        if (!loc.candidates.empty()) found.push_back(std::move(loc));
    }
    if (!found.empty()) return found;
    // An interpreter too old to have _PyRuntime (2.x, 3.6) is still Python.
    static const std::regex old(R"((?:^|lib)python(\d)\.(\d+))");
    for (const auto& f : files) {
        std::smatch m;
        std::string b = baseName(f.path);
        if (std::regex_search(b, m, old)) {
            throw InspectError(Errc::unsupported_version,
                               "Python " + m[1].str() + "." + m[2].str() +
                                   " is not supported: aioscope reads CPython 3.10 to 3.15");
        }
    }
    std::string name = proc.comm();
    throw InspectError(Errc::not_python, "process " + std::to_string(proc.pid()) + " (" + name +
                                             ") is not a CPython process: no _PyRuntime in any "
                                             "of its mapped files");
}

}  // namespace aioscope
