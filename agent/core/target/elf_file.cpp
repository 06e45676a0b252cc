#include "target/elf_file.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace aioscope {

namespace {

struct Fd {
    int fd;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

struct ElfHandle {
    Elf* e;
    ~ElfHandle() {
        if (e) elf_end(e);
    }
};

bool wanted(const std::vector<std::string>& list, const char* name) {
    return name && std::find(list.begin(), list.end(), name) != list.end();
}

void collectSymbols(Elf* e, Elf_Scn* scn, const GElf_Shdr& sh,
                    const std::vector<std::string>& names, std::map<std::string, std::uint64_t>& out) {
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (!data || sh.sh_entsize == 0) return;
    std::size_t count = sh.sh_size / sh.sh_entsize;
    for (std::size_t i = 0; i < count; ++i) {
        GElf_Sym sym;
        if (!gelf_getsym(data, static_cast<int>(i), &sym)) break;
        if (sym.st_shndx == SHN_UNDEF || sym.st_value == 0) continue;
        const char* name = elf_strptr(e, sh.sh_link, sym.st_name);
        if (wanted(names, name)) out.emplace(name, sym.st_value);
    }
}

}  // namespace

std::optional<ElfFacts> readElfFacts(const std::string& path,
                                     const std::vector<std::string>& wantedSections,
                                     const std::vector<std::string>& wantedSymbols) {
    elf_version(EV_CURRENT);
    Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (fd.fd < 0) return std::nullopt;
    struct stat st;
    if (::fstat(fd.fd, &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    ElfHandle h{elf_begin(fd.fd, ELF_C_READ_MMAP, nullptr)};
    if (!h.e || elf_kind(h.e) != ELF_K_ELF || gelf_getclass(h.e) != ELFCLASS64) return std::nullopt;

    GElf_Ehdr eh;
    if (!gelf_getehdr(h.e, &eh)) return std::nullopt;
    ElfFacts facts;
    facts.executable = eh.e_type == ET_EXEC;
    facts.inode = st.st_ino;

    std::size_t nph = 0;
    if (elf_getphdrnum(h.e, &nph) != 0) return std::nullopt;
    for (std::size_t i = 0; i < nph; ++i) {
        GElf_Phdr ph;
        if (gelf_getphdr(h.e, static_cast<int>(i), &ph) && ph.p_type == PT_LOAD) {
            facts.loads.push_back({ph.p_vaddr, ph.p_offset, ph.p_filesz, ph.p_memsz});
        }
    }

    std::size_t shstrndx = 0;
    if (elf_getshdrstrndx(h.e, &shstrndx) != 0) return facts;
    for (Elf_Scn* scn = elf_nextscn(h.e, nullptr); scn; scn = elf_nextscn(h.e, scn)) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh)) continue;
        const char* name = elf_strptr(h.e, shstrndx, sh.sh_name);
        if (wanted(wantedSections, name)) facts.sections.emplace(name, ElfSection{sh.sh_addr, sh.sh_size});
        if ((sh.sh_type == SHT_DYNSYM || sh.sh_type == SHT_SYMTAB) && !wantedSymbols.empty()) {
            collectSymbols(h.e, scn, sh, wantedSymbols, facts.symbols);
        }
    }
    return facts;
}

}  // namespace aioscope
