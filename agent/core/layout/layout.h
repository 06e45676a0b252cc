// Where every field aioscope reads lives, for one CPython minor version, plus
// the handful of behaviour switches that differ between versions. Walkers
// consult these switches; they never compare version numbers themselves.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

namespace aioscope {

using Off = std::int64_t;
constexpr Off kAbsent = std::numeric_limits<Off>::min();

enum class FrameModel {
    frameObject,       // 3.10: heap PyFrameObject linked by f_back
    interpreterFrame,  // 3.11+: _PyInterpreterFrame linked by previous
};
enum class InstrModel {
    lastiIndex,  // 3.10: int f_lasti, in code units
    prevInstr,   // 3.11/3.12: pointer to the last code unit started
    instrPtr,    // 3.13+: pointer to the current code unit
};
enum class LineTableFormat {
    pep626,     // 3.10 co_linetable: (bytes delta, line delta) pairs
    locations,  // 3.11+ location table
};
enum class CurrentFrameModel {
    direct,    // tstate->frame (3.10) or tstate->current_frame (3.13+)
    viaCFrame, // tstate->cframe->current_frame (3.11/3.12)
};
enum class GilModel {
    inRuntime,         // 3.10/3.11: one GIL inside _PyRuntime
    viaInterpPointer,  // 3.12+: interp->ceval.gil points at the GIL in use
};
enum class LongModel {
    signedSize,  // ob_size holds the signed digit count
    lvTag,       // 3.12+: lv_tag = ndigits << 3 | sign
};
enum class DictKeysModel {
    v310,  // dk_size, dk_nentries, index width from dk_size
    v311,  // dk_log2_size, dk_log2_index_bytes, dk_kind
};
// The algorithm of hash(str): the default of each version (a build
// configured with another is met by aioscope's check and read without it).
enum class StrHashModel {
    siphash24,  // 3.10
    siphash13,  // 3.11+
};
enum class YieldFromModel {
    opcode310,    // next opcode YIELD_FROM, value on f_valuestack
    resume311,    // next code unit is RESUME with oparg >= 2
    frameState,   // 3.13+: frame state SUSPENDED_YIELD_FROM
};
enum class InstanceDictModel {
    dictOffset,      // 3.10: dict pointer at tp_dictoffset
    managed311,      // 3.11: values at obj-32, dict at obj-24 (Py_TPFLAGS_MANAGED_DICT)
    dictOrValues,    // 3.12: tagged dict-or-values word at obj-24
    managedInline,   // 3.13+: dict at obj-24, else inline values at obj+tp_basicsize
};
enum class TaskRegistryModel {
    allTasksWeakSet,   // 3.10/3.11: _asyncio._all_tasks
    scheduledAndEager, // 3.12/3.13: _asyncio._scheduled_tasks + _eager_tasks
    linkedLists,       // 3.14+: per-thread and per-interpreter lists of TaskObj.task_node
};
enum class RunningLoopModel {
    threadDictHolder,  // 3.10/3.11: tstate->dict["__asyncio_running_event_loop__"].rl_loop
    threadDictLoop,    // 3.12: tstate->dict["__asyncio_running_event_loop__"]
    threadStateField,  // 3.13+: _PyThreadStateImpl.asyncio_running_loop
};
enum class StackModel {
    valueStack310,  // f_valuestack + f_stackdepth
    stackTop,       // int index into localsplus
    stackPointer,   // 3.14+: pointer to one past the top
};

struct Layout {
    int minor = 0;
    std::string source;  // human-readable: where these offsets came from

    FrameModel frameModel = FrameModel::interpreterFrame;
    InstrModel instrModel = InstrModel::instrPtr;
    LineTableFormat lineTable = LineTableFormat::locations;
    CurrentFrameModel currentFrame = CurrentFrameModel::direct;
    GilModel gilModel = GilModel::viaInterpPointer;
    LongModel longModel = LongModel::lvTag;
    DictKeysModel dictKeys = DictKeysModel::v311;
    StrHashModel strHash = StrHashModel::siphash13;
    YieldFromModel yieldFrom = YieldFromModel::frameState;
    StackModel stackModel = StackModel::stackTop;
    InstanceDictModel instanceDict = InstanceDictModel::managedInline;
    std::uint64_t stackRefTagMask = 0;  // low bits of _PyStackRef that are tags (3.14+)
    int firstEntryOwner = -1;           // frame owners >= this are C entry frames; -1: none
    bool callerStackSaved = true;       // frames calling or awaiting deeper save their stack pointer (3.12+)

    struct {
        Off interpretersHead = kAbsent;
        Off gil = kAbsent;  // _gil_runtime_state inside _PyRuntime (GilModel::inRuntime)
    } runtime;

    struct {
        Off next = kAbsent;
        Off id = kAbsent;
        Off threadsHead = kAbsent;
        Off threadsMain = kAbsent;  // 3.13+: interp->threads.main
        Off sysdict = kAbsent;
        Off modules = kAbsent;
        Off cevalGil = kAbsent;  // pointer to _gil_runtime_state (GilModel::viaInterpPointer)
    } interp;

    struct {
        Off lastHolder = kAbsent;  // offsets inside _gil_runtime_state
        Off locked = kAbsent;
    } gil;

    struct {
        Off size = kAbsent;
        Off next = kAbsent;
        Off interp = kAbsent;
        Off threadId = kAbsent;
        Off nativeThreadId = kAbsent;  // absent on 3.10
        Off dict = kAbsent;
        Off currentFrame = kAbsent;      // direct model
        Off cframe = kAbsent;            // viaCFrame model
        Off cframeCurrentFrame = kAbsent;
        Off datastackChunk = kAbsent;    // 3.11+: _PyStackChunk* (datastack_top follows it)
    } thread;

    struct {
        Off size = kAbsent;
        Off previous = kAbsent;   // f_back on 3.10
        Off code = kAbsent;       // f_code / f_executable
        Off instr = kAbsent;      // f_lasti / prev_instr / instr_ptr
        Off owner = kAbsent;      // absent on 3.10
        Off stack = kAbsent;      // stacktop / stackpointer / f_stackdepth
        Off localsplus = kAbsent;
        Off valueStack = kAbsent; // 3.10 f_valuestack
        Off gen = kAbsent;        // 3.10 f_gen
        Off state = kAbsent;      // 3.10 f_state (a signed char)
        // 3.10's block stack (f_iblock, f_blockstack of PyTryBlock {type,
        // handler, level}): the stack depth below the innermost block is
        // live in a running frame, whose stack pointer is not in memory.
        Off globals = kAbsent;    // f_globals
        Off iblock = kAbsent;
        Off blockstack = kAbsent;
        Off blockSize = 12;
        int ownerGenerator = 1;
    } frame;

    struct {
        Off size = kAbsent;
        Off flags = kAbsent;
        Off firstlineno = kAbsent;
        Off filename = kAbsent;
        Off name = kAbsent;
        Off qualname = kAbsent;  // absent on 3.10
        Off linetable = kAbsent;
        Off codeAdaptive = kAbsent;  // 3.11+: inline bytecode
        Off coCode = kAbsent;        // 3.10: bytes object
        Off firstTraceable = kAbsent;  // 3.11+: frames before this code unit are incomplete
        Off nlocalsplus = kAbsent;     // 3.11+: slots before the value stack
        // 3.11+: co_exceptiontable; the handler covering an instruction names
        // the stack depth that is live there (running frames save no stack
        // pointer, but `with` blocks keep __exit__ below that depth).
        Off exceptionTable = kAbsent;
        Off names = kAbsent;  // co_names: global and attribute names the code uses
        // Names of the frame's local slots: co_localsplusnames (3.11+), or on
        // 3.10 co_varnames then co_cellvars then co_freevars, in slot order.
        Off localsplusNames = kAbsent;
        Off varnames = kAbsent;
        Off cellvars = kAbsent;
        Off freevars = kAbsent;
    } code;

    struct {
        Off type = 8;
    } object;

    struct {
        Off name = 24;
        Off basicsize = 32;
        Off flags = 168;
        Off base = 256;
        Off dictoffset = 288;
        Off weaklistoffset = 208;  // where instances keep their weak reference list (negative: before the object)
        Off dict = 264;            // tp_dict (set for classes; built-in static types keep it elsewhere on 3.12+)
        Off cachedKeys = kAbsent;  // PyHeapTypeObject.ht_cached_keys
    } type;

    // __slots__ attributes: the class's member_descriptor points at a
    // PyMemberDef naming the slot's type and offset inside the instance.
    struct {
        Off descrType = 16;    // PyDescrObject.d_type: the class defining the slot
        Off descrMember = 40;  // PyMemberDescrObject.d_member
        Off defType = 8;       // PyMemberDef.type (int)
        Off defOffset = 16;    // PyMemberDef.offset
    } member;

    // threading.local (_thread._local): the dict holding every thread's
    // attribute dict as its values ({localdummy weakref -> dict} before 3.13,
    // {localdummy -> dict} since), and how a thread finds its own: before
    // 3.13 tstate->dict[local.key] is a localdummy whose localdict it is;
    // since, the key is the thread state's threading_local_key.
    struct {
        Off dicts = kAbsent;
        Off key = kAbsent;             // localobject.key, a str (before 3.13)
        Off dummyDict = kAbsent;       // localdummyobject.localdict (before 3.13)
        Off threadKey = kAbsent;       // PyThreadState.threading_local_key (3.13+)
    } threadLocal;

    struct {
        Off length = 16;
        Off hash = 24;              // the cached hash; -1 until computed
        Off state = 32;
        Off asciiData = kAbsent;    // sizeof(PyASCIIObject)
        Off compactData = kAbsent;  // sizeof(PyCompactUnicodeObject)
        Off legacyData = kAbsent;   // PyUnicodeObject.data.any
    } unicode;

    struct {
        Off size = 16;
        Off data = 32;
    } bytes;

    struct {
        Off size = 16;
        Off items = 24;
    } tuple;

    struct {
        Off size = 16;
        Off items = 24;
    } list;

    struct {
        Off sizeOrTag = 16;
        Off digits = 24;
    } pylong;

    struct {
        Off used = 16;
        Off keys = 32;
        Off values = 40;
        Off valuesHeader = 0;  // bytes before values[] in PyDictValues (3.13+: 8)
        Off managedDict = -24; // managed dict pointer, relative to the object
        Off managedValues = -32;  // 3.11 values pointer, relative to the object
    } dict;

    struct {
        Off used = 24;
        Off mask = 32;
        Off table = 40;
    } set;

    struct {
        Off dict = 16;   // PyModuleObject.md_dict
        Off state = 32;  // PyModuleObject.md_state
    } module;

    struct {
        Off frame = kAbsent;  // 3.10: gi_frame pointer; 3.11+: embedded gi_iframe
        Off name = kAbsent;
        Off qualname = kAbsent;
        Off frameState = kAbsent;  // absent on 3.10 (use the frame's f_state)
        Off excValue = kAbsent;    // gi_exc_state.exc_value: the exception being handled
        bool frameEmbedded = true;
    } gen;

    struct {
        Off closure = 72;   // PyFunctionObject.func_closure
        Off code = 48;      // PyFunctionObject.func_code
        Off cellRef = 16;   // PyCellObject.ob_ref
        Off methodFunc = 16;  // PyMethodObject.im_func
        Off methodSelf = 24;  // PyMethodObject.im_self
        Off cfuncDef = 16;    // PyCFunctionObject.m_ml (PyMethodDef*, ml_name first)
        Off cfuncSelf = 24;   // PyCFunctionObject.m_self
        Off partialFunc = 16; // functools.partial fn, args, kw
        Off partialArgs = 24;
        Off wrapped = 16;     // coroutine_wrapper.cw_coroutine, async_generator_asend.ags_gen,
                              // async_generator_athrow.agt_gen, anext_awaitable.wrapped
        Off asendState = 32;    // async_generator_asend.ags_state (an int)
        Off athrowState = 32;   // async_generator_athrow.agt_state (3.15: after typ, tb, val)
        Off weakrefObject = 16;
        Off descrName = 24;   // PyDescr_COMMON d_name (method_descriptor)
    } callable;

    // collections.deque (Modules/_collectionsmodule.c, the same 3.10-3.15):
    // blocks of 64 items linked both ways.
    struct {
        Off size = 16;       // ob_size
        Off leftblock = 24;
        Off leftindex = 40;
        Off blockData = 8;
        int blockLen = 64;
        Off rightlink = 8 + 64 * 8;
    } deque;

    // queue.SimpleQueue (Modules/_queuemodule.c), a thread pool's work
    // queue: a list read from an index (<= 3.12), or a ring buffer (3.13+).
    // Measured on every zoo version with ctypes.
    struct {
        Off list = kAbsent;     // simplequeueobject.lst
        Off listPos = kAbsent;  // lst_pos
        Off ringGet = kAbsent;  // RingBuf get_idx
        Off ringItems = kAbsent;
        Off ringCap = kAbsent;
        Off ringCount = kAbsent;
    } simpleQueue;

    // The threading module's C locks (Modules/_threadmodule.c), measured on
    // every zoo version with ctypes (tests/integration/test_boundary.py
    // checks them against live locks).
    struct {
        Off lockLocked = kAbsent;   // lockobject: `char locked` (<= 3.13) or PyMutex (3.14+), a byte
        std::uint8_t lockLockedMask = 1;
        Off rlockOwner = kAbsent;   // rlockobject: the owner's thread ident, 0 when free
    } threading;

    struct {
        int created = 0;
        int suspended = 0;
        int yieldFromFirst = 0;  // suspended in `await`/`yield from`: a range, since
        int yieldFromLast = 0;   // 3.15 adds SUSPENDED_YIELD_FROM_LOCKED
        int executing = 0;
        int cleared = 0;
    } frameState;
    int awaiteeSlot = -1;  // stack slot, from the top, holding what a suspended frame awaits

    // PEP 768 (3.14+): where a debugger asks a thread to run a script.
    struct {
        bool available = false;
        Off evalBreaker = kAbsent;        // PyThreadState.eval_breaker
        Off support = kAbsent;            // PyThreadState.remote_debugger_support
        Off enabled = kAbsent;            // PyInterpreterState.config.remote_debug (int)
        Off pendingCall = kAbsent;        // inside support (int32)
        Off scriptPath = kAbsent;         // inside support (char[])
        Off scriptPathSize = kAbsent;     // its size
        Off threadsMain = kAbsent;        // PyInterpreterState.threads.main
    } remoteDebug;

    // _asyncio's private Future/Task structures (Modules/_asynciomodule.c).
    struct {
        TaskRegistryModel registry = TaskRegistryModel::allTasksWeakSet;
        RunningLoopModel runningLoop = RunningLoopModel::threadDictHolder;
        bool available = false;  // false until the offsets are known (3.14+: .AsyncioDebug)
        Off futSize = kAbsent;
        Off futLoop = 16;
        Off futCallback0 = 24;
        Off futCallbacks = 40;
        Off futException = 48;
        Off futCancelMsg = 80;
        Off futState = kAbsent;
        Off futAwaitedBy = kAbsent;       // 3.14+
        Off futAwaitedByIsSet = kAbsent;  // 3.14+ (a char)
        Off taskSize = kAbsent;
        Off taskFutWaiter = kAbsent;
        Off taskCoro = kAbsent;
        Off taskName = kAbsent;
        Off taskNumCancels = kAbsent;     // absent on 3.10
        Off taskMustCancel = kAbsent;     // an int, or a byte holding a bit field (3.13+)
        std::uint8_t taskMustCancelBit = 0;  // 0: an int field; otherwise the bit's mask
        Off taskNode = kAbsent;           // 3.14+: llist_node {next, prev}
        Off futureIterFuture = 16;
        Off runningLoopHolderLoop = 16;   // 3.10/3.11 PyRunningLoopHolder.rl_loop
        Off threadRunningLoop = kAbsent;  // _PyThreadStateImpl fields (3.13+ / 3.14+)
        Off threadRunningTask = kAbsent;
        Off threadTasksHead = kAbsent;
        Off interpTasksHead = kAbsent;
        Off stateDebugOffsets = kAbsent;          // 3.14+ module state: pointer to .AsyncioDebug
        Off stateNonAsyncioTasks = kAbsent;       // 3.14+ module state: WeakSet of foreign tasks
        Off stateNonAsyncioEagerTasks = kAbsent;  // 3.14+ module state: set
    } asyncio;

    struct {
        int resume = 0;       // RESUME opcode (3.11/3.12 yield-from detection)
        int resumeAlt = -1;   // RESUME_QUICK (3.11) / INSTRUMENTED_RESUME (3.12)
        int yieldFrom = 0;    // 3.10 YIELD_FROM
    } opcodes;
};

}  // namespace aioscope
