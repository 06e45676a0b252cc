#include "layout/validate.h"

namespace aioscope {

namespace {

class Checker {
public:
    void present(const char* name, Off v) {
        if (v == kAbsent) m_problems.push_back(std::string(name) + " is missing");
    }
    void inside(const char* name, Off v, Off structSize, std::size_t width = 8) {
        present(name, v);
        if (v == kAbsent || structSize == kAbsent) return;
        if (v < 0 || v + static_cast<Off>(width) > structSize) {
            m_problems.push_back(std::string(name) + " = " + std::to_string(v) +
                                 " lies outside its " + std::to_string(structSize) + "-byte structure");
        }
    }
    void size(const char* name, Off v, Off maxSize) {
        present(name, v);
        if (v != kAbsent && (v <= 0 || v > maxSize)) {
            m_problems.push_back(std::string(name) + " = " + std::to_string(v) + " is implausible");
        }
    }
    std::vector<std::string> take() { return std::move(m_problems); }

private:
    std::vector<std::string> m_problems;
};

}  // namespace

std::vector<std::string> validateLayout(const Layout& L) {
    Checker c;
    c.present("runtime.interpreters_head", L.runtime.interpretersHead);
    c.present("interp.next", L.interp.next);
    c.present("interp.threads_head", L.interp.threadsHead);
    c.present("interp.sysdict", L.interp.sysdict);
    c.present("interp.modules", L.interp.modules);
    if (L.gilModel == GilModel::inRuntime) {
        c.present("runtime.gil", L.runtime.gil);
    } else {
        c.present("interp.ceval_gil", L.interp.cevalGil);
    }
    c.present("gil.last_holder", L.gil.lastHolder);
    c.present("gil.locked", L.gil.locked);

    c.size("thread.size", L.thread.size, 1 << 16);
    c.inside("thread.next", L.thread.next, L.thread.size);
    c.inside("thread.thread_id", L.thread.threadId, L.thread.size);
    c.inside("thread.dict", L.thread.dict, L.thread.size);
    if (L.thread.nativeThreadId != kAbsent) {
        c.inside("thread.native_thread_id", L.thread.nativeThreadId, L.thread.size);
    }
    if (L.currentFrame == CurrentFrameModel::direct) {
        c.inside("thread.current_frame", L.thread.currentFrame, L.thread.size);
    } else {
        c.inside("thread.cframe", L.thread.cframe, L.thread.size);
        c.present("cframe.current_frame", L.thread.cframeCurrentFrame);
    }

    c.size("frame.size", L.frame.size, 4096);
    c.inside("frame.previous", L.frame.previous, L.frame.size);
    c.inside("frame.code", L.frame.code, L.frame.size);
    if (L.instrModel == InstrModel::lastiIndex) {
        c.inside("frame.f_lasti", L.frame.instr, L.frame.size, 4);
        c.inside("frame.f_gen", L.frame.gen, L.frame.size);
        c.inside("frame.f_state", L.frame.state, L.frame.size, 1);
        c.inside("frame.f_valuestack", L.frame.valueStack, L.frame.size);
        c.inside("frame.f_stackdepth", L.frame.stack, L.frame.size, 4);
    } else {
        c.inside("frame.instr", L.frame.instr, L.frame.size);
        c.inside("frame.owner", L.frame.owner, L.frame.size, 1);
        c.inside("frame.stack", L.frame.stack, L.frame.size, 4);
        c.inside("frame.localsplus", L.frame.localsplus, L.frame.size + 1, 0);
    }

    c.size("code.size", L.code.size, 4096);
    c.inside("code.flags", L.code.flags, L.code.size, 4);
    c.inside("code.firstlineno", L.code.firstlineno, L.code.size, 4);
    c.inside("code.filename", L.code.filename, L.code.size);
    c.inside("code.name", L.code.name, L.code.size);
    c.inside("code.linetable", L.code.linetable, L.code.size);
    if (L.lineTable == LineTableFormat::locations) {
        c.inside("code.qualname", L.code.qualname, L.code.size);
        c.inside("code.co_code_adaptive", L.code.codeAdaptive, L.code.size + 1, 0);
    } else {
        c.inside("code.co_code", L.code.coCode, L.code.size);
    }

    // Header sizes of a str (40 and 56 bytes from 3.12, 48 and 72 before):
    // the reader reads that much per dict key it compares.
    c.size("unicode.ascii_data", L.unicode.asciiData, 256);
    c.size("unicode.compact_data", L.unicode.compactData, 256);
    c.present("gen.frame", L.gen.frame);
    c.present("gen.name", L.gen.name);
    c.present("gen.qualname", L.gen.qualname);
    if (L.yieldFrom != YieldFromModel::opcode310) c.present("gen.frame_state", L.gen.frameState);
    return c.take();
}

}  // namespace aioscope
