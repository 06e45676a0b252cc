#include "layout/debug_offsets.h"

#include <cstring>

#include "errors.h"

namespace aioscope {

namespace {

using Shape = std::vector<DebugOffsetsSection>;

// Include/internal/pycore_runtime.h, CPython 3.13.
const Shape kShape313 = {
    {"runtime_state", {"size", "finalizing", "interpreters_head"}},
    {"interpreter_state",
     {"size", "id", "next", "threads_head", "gc", "imports_modules", "sysdict", "builtins",
      "ceval_gil", "gil_runtime_state", "gil_runtime_state_enabled", "gil_runtime_state_locked",
      "gil_runtime_state_holder"}},
    {"thread_state",
     {"size", "prev", "next", "interp", "current_frame", "thread_id", "native_thread_id",
      "datastack_chunk", "status"}},
    {"interpreter_frame", {"size", "previous", "executable", "instr_ptr", "localsplus", "owner"}},
    {"code_object",
     {"size", "filename", "name", "qualname", "linetable", "firstlineno", "argcount",
      "localsplusnames", "localspluskinds", "co_code_adaptive"}},
    {"pyobject", {"size", "ob_type"}},
    {"type_object", {"size", "tp_name", "tp_repr", "tp_flags"}},
    {"tuple_object", {"size", "ob_item", "ob_size"}},
    {"list_object", {"size", "ob_item", "ob_size"}},
    {"dict_object", {"size", "ma_keys", "ma_values"}},
    {"float_object", {"size", "ob_fval"}},
    {"long_object", {"size", "lv_tag", "ob_digit"}},
    {"bytes_object", {"size", "ob_size", "ob_sval"}},
    {"unicode_object", {"size", "state", "length", "asciiobject_size"}},
    {"gc", {"size", "collecting"}},
};

// Include/internal/pycore_debug_offsets.h, CPython 3.14.
const Shape kShape314 = {
    {"runtime_state", {"size", "finalizing", "interpreters_head"}},
    {"interpreter_state",
     {"size", "id", "next", "threads_head", "threads_main", "gc", "imports_modules", "sysdict",
      "builtins", "ceval_gil", "gil_runtime_state", "gil_runtime_state_enabled",
      "gil_runtime_state_locked", "gil_runtime_state_holder", "code_object_generation",
      "tlbc_generation"}},
    {"thread_state",
     {"size", "prev", "next", "interp", "current_frame", "thread_id", "native_thread_id",
      "datastack_chunk", "status"}},
    {"interpreter_frame",
     {"size", "previous", "executable", "instr_ptr", "localsplus", "owner", "stackpointer",
      "tlbc_index"}},
    {"code_object",
     {"size", "filename", "name", "qualname", "linetable", "firstlineno", "argcount",
      "localsplusnames", "localspluskinds", "co_code_adaptive", "co_tlbc"}},
    {"pyobject", {"size", "ob_type"}},
    {"type_object", {"size", "tp_name", "tp_repr", "tp_flags"}},
    {"tuple_object", {"size", "ob_item", "ob_size"}},
    {"list_object", {"size", "ob_item", "ob_size"}},
    {"set_object", {"size", "used", "table", "mask"}},
    {"dict_object", {"size", "ma_keys", "ma_values"}},
    {"float_object", {"size", "ob_fval"}},
    {"long_object", {"size", "lv_tag", "ob_digit"}},
    {"bytes_object", {"size", "ob_size", "ob_sval"}},
    {"unicode_object", {"size", "state", "length", "asciiobject_size"}},
    {"gc", {"size", "collecting"}},
    {"gen_object", {"size", "gi_name", "gi_iframe", "gi_frame_state"}},
    {"llist_node", {"next", "prev"}},
    {"debugger_support",
     {"eval_breaker", "remote_debugger_support", "remote_debugging_enabled",
      "debugger_pending_call", "debugger_script_path", "debugger_script_path_size"}},
};

// Include/internal/pycore_debug_offsets.h, CPython 3.15.
const Shape kShape315 = {
    {"runtime_state", {"size", "finalizing", "interpreters_head"}},
    {"interpreter_state",
     {"size", "id", "next", "threads_head", "threads_main", "gc", "imports_modules", "sysdict",
      "builtins", "ceval_gil", "gil_runtime_state", "gil_runtime_state_enabled",
      "gil_runtime_state_locked", "gil_runtime_state_holder", "code_object_generation",
      "tlbc_generation"}},
    {"thread_state",
     {"size", "prev", "next", "interp", "current_frame", "base_frame", "last_profiled_frame",
      "last_profiled_frame_seq", "thread_id", "native_thread_id", "datastack_chunk", "status",
      "holds_gil", "gil_requested", "current_exception", "exc_state"}},
    {"err_stackitem", {"exc_value"}},
    {"interpreter_frame",
     {"size", "previous", "executable", "instr_ptr", "localsplus", "owner", "stackpointer",
      "tlbc_index"}},
    {"code_object",
     {"size", "filename", "name", "qualname", "linetable", "firstlineno", "argcount",
      "localsplusnames", "localspluskinds", "co_code_adaptive", "co_tlbc"}},
    {"pyobject", {"size", "ob_type"}},
    {"type_object", {"size", "tp_name", "tp_repr", "tp_flags", "tp_basicsize", "tp_dictoffset"}},
    {"heap_type_object", {"size", "ht_cached_keys"}},
    {"tuple_object", {"size", "ob_item", "ob_size"}},
    {"list_object", {"size", "ob_item", "ob_size"}},
    {"set_object", {"size", "used", "table", "mask"}},
    {"dict_object", {"size", "ma_keys", "ma_values"}},
    {"float_object", {"size", "ob_fval"}},
    {"long_object", {"size", "lv_tag", "ob_digit"}},
    {"bytes_object", {"size", "ob_size", "ob_sval"}},
    {"unicode_object", {"size", "state", "length", "asciiobject_size", "compactunicodeobject_size"}},
    {"gc", {"size", "collecting", "frame", "generation_stats_size", "generation_stats"}},
    {"gen_object", {"size", "gi_name", "gi_iframe", "gi_frame_state"}},
    {"llist_node", {"next", "prev"}},
    {"debugger_support",
     {"eval_breaker", "remote_debugger_support", "remote_debugging_enabled",
      "debugger_pending_call", "debugger_script_path", "debugger_script_path_size"}},
};

const Shape kNoShape = {};

constexpr std::size_t kHeader = 24;  // cookie, version, free_threaded
constexpr std::uint64_t kMaxStructSize = 1 << 22;

// Fields that are sizes, not offsets into the structure (ob_size is the
// offset of a length field). The sizes of a str's headers are sizes of a
// prefix of the str: no larger than it (a torn table's 4 MB header was read
// once per dict key).
bool isSizeField(const std::string& f) { return f == "size" || (f.ends_with("_size") && f != "ob_size"); }
bool isPrefixSize(const std::string& f) { return f == "asciiobject_size" || f == "compactunicodeobject_size"; }

}  // namespace

std::uint64_t DebugOffsets::at(const std::string& key) const {
    auto it = values.find(key);
    if (it == values.end()) {
        throw InspectError(Errc::unsupported_version, "_Py_DebugOffsets lacks " + key);
    }
    return it->second;
}

const std::vector<DebugOffsetsSection>& debugOffsetsShape(int minor) {
    switch (minor) {
        case 13: return kShape313;
        case 14: return kShape314;
        case 15: return kShape315;
        default: return kNoShape;
    }
}

std::size_t debugOffsetsSize(int minor) {
    std::size_t n = kHeader;
    for (const auto& s : debugOffsetsShape(minor)) n += 8 * s.fields.size();
    return n;
}

DebugOffsets decodeDebugOffsets(int minor, std::span<const std::uint8_t> blob) {
    const Shape& shape = debugOffsetsShape(minor);
    auto fail = [&](const std::string& why) {
        return InspectError(Errc::unsupported_version,
                            "the target's _Py_DebugOffsets table is not usable: " + why);
    };
    if (shape.empty()) throw fail("no known table shape for 3." + std::to_string(minor));
    if (blob.size() < debugOffsetsSize(minor)) throw fail("table truncated");
    if (std::memcmp(blob.data(), kDebugCookie, sizeof kDebugCookie) != 0) throw fail("bad cookie");

    DebugOffsets out;
    auto u64 = [&](std::size_t pos) {
        std::uint64_t v;
        std::memcpy(&v, blob.data() + pos, 8);
        return v;
    };
    out.version = u64(8);
    out.freeThreaded = u64(16) != 0;
    if (((out.version >> 24) & 0xff) != 3 || static_cast<int>((out.version >> 16) & 0xff) != minor) {
        throw fail("it describes version " + std::to_string((out.version >> 24) & 0xff) + "." +
                   std::to_string((out.version >> 16) & 0xff) + ", not 3." + std::to_string(minor));
    }
    std::size_t pos = kHeader;
    for (const auto& section : shape) {
        std::uint64_t size = 0;
        bool hasSize = false;
        for (const auto& field : section.fields) {
            std::uint64_t v = u64(pos);
            pos += 8;
            if (field == "size") {
                if (v == 0 || v > kMaxStructSize) {
                    throw fail(section.name + ".size is " + std::to_string(v));
                }
                size = v;
                hasSize = true;
            } else if (hasSize && !isSizeField(field) && v >= size) {
                throw fail(section.name + "." + field + " (" + std::to_string(v) +
                           ") lies outside its " + std::to_string(size) + "-byte structure");
            } else if (hasSize && isPrefixSize(field) && v > size) {
                throw fail(section.name + "." + field + " (" + std::to_string(v) +
                           ") is larger than its " + std::to_string(size) + "-byte structure");
            } else if (v > kMaxStructSize) {
                throw fail(section.name + "." + field + " is " + std::to_string(v));
            }
            out.values[section.name + "." + field] = v;
        }
    }
    return out;
}

void applyDebugOffsets(Layout& L, const DebugOffsets& d) {
    auto off = [&](const char* key) { return static_cast<Off>(d.at(key)); };
    L.runtime.interpretersHead = off("runtime_state.interpreters_head");

    L.interp.next = off("interpreter_state.next");
    L.interp.id = off("interpreter_state.id");
    L.interp.threadsHead = off("interpreter_state.threads_head");
    // 3.13 keeps threads.main right after threads.head but does not publish it.
    L.interp.threadsMain = d.has("interpreter_state.threads_main") ? off("interpreter_state.threads_main")
                                                                   : L.interp.threadsHead + 8;
    L.interp.sysdict = off("interpreter_state.sysdict");
    L.interp.modules = off("interpreter_state.imports_modules");
    L.interp.cevalGil = off("interpreter_state.ceval_gil");
    Off gilBase = off("interpreter_state.gil_runtime_state");
    Off holder = off("interpreter_state.gil_runtime_state_holder");
    Off locked = off("interpreter_state.gil_runtime_state_locked");
    if (holder < gilBase || locked < gilBase) {
        throw InspectError(Errc::unsupported_version,
                           "the target's _Py_DebugOffsets table is not usable: GIL fields precede "
                           "the GIL structure");
    }
    L.gil.lastHolder = holder - gilBase;
    L.gil.locked = locked - gilBase;

    L.thread.size = off("thread_state.size");
    L.thread.next = off("thread_state.next");
    L.thread.interp = off("thread_state.interp");
    L.thread.currentFrame = off("thread_state.current_frame");
    L.thread.threadId = off("thread_state.thread_id");
    L.thread.nativeThreadId = off("thread_state.native_thread_id");
    if (d.has("thread_state.datastack_chunk")) L.thread.datastackChunk = off("thread_state.datastack_chunk");

    L.frame.size = off("interpreter_frame.size");
    L.frame.previous = off("interpreter_frame.previous");
    L.frame.code = off("interpreter_frame.executable");
    L.frame.instr = off("interpreter_frame.instr_ptr");
    L.frame.localsplus = off("interpreter_frame.localsplus");
    L.frame.owner = off("interpreter_frame.owner");
    if (d.has("interpreter_frame.stackpointer")) L.frame.stack = off("interpreter_frame.stackpointer");

    L.code.size = off("code_object.size");
    L.code.filename = off("code_object.filename");
    L.code.name = off("code_object.name");
    L.code.qualname = off("code_object.qualname");
    L.code.linetable = off("code_object.linetable");
    L.code.firstlineno = off("code_object.firstlineno");
    L.code.codeAdaptive = off("code_object.co_code_adaptive");
    if (d.has("code_object.localsplusnames")) L.code.localsplusNames = off("code_object.localsplusnames");

    L.object.type = off("pyobject.ob_type");
    L.type.name = off("type_object.tp_name");
    L.type.flags = off("type_object.tp_flags");
    L.tuple.items = off("tuple_object.ob_item");
    L.tuple.size = off("tuple_object.ob_size");
    L.list.items = off("list_object.ob_item");
    L.list.size = off("list_object.ob_size");
    L.dict.keys = off("dict_object.ma_keys");
    L.dict.values = off("dict_object.ma_values");
    L.pylong.sizeOrTag = off("long_object.lv_tag");
    L.pylong.digits = off("long_object.ob_digit");
    L.bytes.size = off("bytes_object.ob_size");
    L.bytes.data = off("bytes_object.ob_sval");
    L.unicode.state = off("unicode_object.state");
    L.unicode.length = off("unicode_object.length");
    L.unicode.asciiData = off("unicode_object.asciiobject_size");
    if (d.has("unicode_object.compactunicodeobject_size")) {
        L.unicode.compactData = off("unicode_object.compactunicodeobject_size");
    }
    if (d.has("type_object.tp_basicsize")) L.type.basicsize = off("type_object.tp_basicsize");
    if (d.has("type_object.tp_dictoffset")) L.type.dictoffset = off("type_object.tp_dictoffset");
    if (d.has("heap_type_object.ht_cached_keys")) L.type.cachedKeys = off("heap_type_object.ht_cached_keys");

    if (d.has("set_object.used")) {
        L.set.used = off("set_object.used");
        L.set.mask = off("set_object.mask");
        L.set.table = off("set_object.table");
    }
    if (d.has("debugger_support.remote_debugger_support")) {
        auto& R = L.remoteDebug;
        R.evalBreaker = off("debugger_support.eval_breaker");
        R.support = off("debugger_support.remote_debugger_support");
        R.enabled = off("debugger_support.remote_debugging_enabled");
        R.pendingCall = off("debugger_support.debugger_pending_call");
        R.scriptPath = off("debugger_support.debugger_script_path");
        R.scriptPathSize = off("debugger_support.debugger_script_path_size");
        R.threadsMain = off("interpreter_state.threads_main");
        R.available = R.scriptPathSize > 1 && R.scriptPathSize <= 4096 &&
                      R.support + R.scriptPath + R.scriptPathSize <= L.thread.size;
    }
    if (d.has("gen_object.gi_iframe")) {
        L.gen.frame = off("gen_object.gi_iframe");
        L.gen.name = off("gen_object.gi_name");
        L.gen.frameState = off("gen_object.gi_frame_state");
    }
}

}  // namespace aioscope
