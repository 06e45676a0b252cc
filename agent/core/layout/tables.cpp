// Offsets were computed with offsetof() against each version's headers and
// DWARF, then checked on live interpreters by the integration tests
// (tests/integration). Sources: Include/cpython/*.h, Include/internal/*.h,
// Objects/*.c of each tag.
#include "layout/tables.h"

#include <string>

namespace aioscope {

namespace {

// Blocks several versions share, set once here.

// 3.10-3.12: _thread.lock's `locked` byte and RLock's owner; SimpleQueue
// over a list; _threading_local's per-thread dicts.
void threadingBefore313(Layout& L) {
    L.threading.lockLocked = 32;
    L.threading.rlockOwner = 24;
    L.simpleQueue.list = 32;
    L.simpleQueue.listPos = 40;
    L.threadLocal.dicts = 48;
    L.threadLocal.key = 16;
    L.threadLocal.dummyDict = 16;
}

// 3.13+: SimpleQueue over a ring buffer.
void ringSimpleQueue(Layout& L) {
    L.simpleQueue.ringGet = 32;
    L.simpleQueue.ringItems = 40;
    L.simpleQueue.ringCap = 48;
    L.simpleQueue.ringCount = 56;
}

// 3.12+: the code object's locals names, exception table and names.
void codeLocals312(Layout& L) {
    L.code.nlocalsplus = 72;
    L.code.localsplusNames = 96;
    L.code.exceptionTable = 40;
    L.code.names = 32;
}

Layout v310() {
    Layout L;
    L.minor = 10;
    L.source = "static table for CPython 3.10";
    L.frameModel = FrameModel::frameObject;
    L.instrModel = InstrModel::lastiIndex;
    L.lineTable = LineTableFormat::pep626;
    L.currentFrame = CurrentFrameModel::direct;
    L.gilModel = GilModel::inRuntime;
    L.longModel = LongModel::signedSize;
    L.dictKeys = DictKeysModel::v310;
    L.strHash = StrHashModel::siphash24;
    L.yieldFrom = YieldFromModel::opcode310;
    L.stackModel = StackModel::valueStack310;
    L.callerStackSaved = false;  // f_stackdepth is only written when a generator yields
    L.instanceDict = InstanceDictModel::dictOffset;

    L.runtime.interpretersHead = 32;
    L.runtime.gil = 352;  // _PyRuntime.ceval.gil
    L.gil.lastHolder = 8;
    L.gil.locked = 16;

    L.interp.next = 0;
    L.interp.threadsHead = 8;
    L.interp.id = 24;
    L.interp.modules = 856;
    L.interp.sysdict = 872;

    L.thread.size = 280;
    L.thread.next = 8;
    L.thread.interp = 16;
    L.thread.currentFrame = 24;  // tstate->frame
    L.thread.dict = 152;
    L.thread.threadId = 176;

    L.frame.size = 360;
    L.frame.previous = 24;  // f_back
    L.frame.code = 32;
    L.frame.valueStack = 64;
    L.frame.stack = 80;     // f_stackdepth
    L.frame.gen = 88;
    L.frame.instr = 96;     // f_lasti
    L.frame.state = 108;
    L.frame.localsplus = 352;
    L.frame.globals = 48;
    L.frame.iblock = 104;
    L.frame.blockstack = 112;
    threadingBefore313(L);

    L.code.size = 176;
    L.code.flags = 36;
    L.code.firstlineno = 40;
    L.code.coCode = 48;
    L.code.filename = 104;
    L.code.name = 112;
    L.code.linetable = 120;
    L.code.varnames = 72;
    L.code.names = 64;
    L.code.freevars = 80;
    L.code.cellvars = 88;

    L.type.cachedKeys = 872;
    L.unicode.asciiData = 48;
    L.unicode.compactData = 72;
    L.unicode.legacyData = 72;

    L.gen.frame = 16;  // gi_frame, a PyFrameObject pointer
    L.gen.frameEmbedded = false;
    L.gen.name = 40;
    L.gen.qualname = 48;
    L.gen.excValue = 56 + 8;  // gi_exc_state {exc_type, exc_value, ...}

    L.asyncio.available = true;
    L.asyncio.registry = TaskRegistryModel::allTasksWeakSet;
    L.asyncio.runningLoop = RunningLoopModel::threadDictHolder;
    L.asyncio.futSize = 152;
    L.asyncio.futState = 88;
    L.asyncio.taskSize = 192;
    L.asyncio.taskFutWaiter = 152;
    L.asyncio.taskCoro = 160;
    L.asyncio.taskName = 168;
    L.asyncio.taskMustCancel = 184;
    L.frameState = {.created = -2, .suspended = -1, .yieldFromFirst = -1, .yieldFromLast = -1, .executing = 0, .cleared = 4};
    L.opcodes.yieldFrom = 72;
    return L;
}

Layout v311() {
    Layout L;
    L.minor = 11;
    L.source = "static table for CPython 3.11";
    L.instrModel = InstrModel::prevInstr;
    L.currentFrame = CurrentFrameModel::viaCFrame;
    L.gilModel = GilModel::inRuntime;
    L.longModel = LongModel::signedSize;
    L.yieldFrom = YieldFromModel::resume311;
    L.stackModel = StackModel::stackTop;
    L.instanceDict = InstanceDictModel::managed311;
    // `await` of a coroutine runs through C (PyIter_Send): the awaiting
    // frame's stack pointer is not saved, so stale slots would mislead.
    L.callerStackSaved = false;

    L.runtime.interpretersHead = 40;
    L.runtime.gil = 360;
    L.gil.lastHolder = 8;
    L.gil.locked = 16;

    L.interp.next = 0;
    L.interp.threadsHead = 16;
    L.interp.id = 48;
    L.interp.modules = 888;
    L.interp.sysdict = 904;

    L.thread.size = 360;
    L.thread.next = 8;
    L.thread.interp = 16;
    L.thread.cframe = 56;
    L.thread.cframeCurrentFrame = 8;
    L.thread.dict = 128;
    L.thread.threadId = 152;
    L.thread.nativeThreadId = 160;
    L.thread.datastackChunk = 296;

    L.frame.size = 80;
    L.frame.code = 32;
    L.frame.previous = 48;
    L.frame.globals = 8;
    L.frame.instr = 56;  // prev_instr
    L.frame.stack = 64;  // stacktop
    L.frame.owner = 69;
    L.frame.localsplus = 72;

    L.code.size = 192;
    L.code.flags = 48;
    L.code.firstlineno = 72;
    L.code.filename = 112;
    L.code.name = 120;
    L.code.qualname = 128;
    L.code.linetable = 136;
    L.code.codeAdaptive = 184;
    L.code.firstTraceable = 168;

    L.type.cachedKeys = 872;
    L.unicode.asciiData = 48;
    L.unicode.compactData = 72;
    L.unicode.legacyData = 72;

    L.gen.frame = 80;
    L.gen.name = 32;
    L.gen.qualname = 40;
    L.gen.frameState = 75;
    L.gen.excValue = 48;
    L.code.nlocalsplus = 76;
    L.code.localsplusNames = 96;
    L.code.exceptionTable = 40;
    L.code.names = 32;
    threadingBefore313(L);

    L.asyncio.available = true;
    L.asyncio.registry = TaskRegistryModel::allTasksWeakSet;
    L.asyncio.runningLoop = RunningLoopModel::threadDictHolder;
    L.asyncio.futSize = 128;
    L.asyncio.futState = 88;
    L.asyncio.taskSize = 176;
    L.asyncio.taskFutWaiter = 128;
    L.asyncio.taskCoro = 136;
    L.asyncio.taskName = 144;
    L.asyncio.taskMustCancel = 160;
    L.asyncio.taskNumCancels = 168;
    L.frameState = {.created = -2, .suspended = -1, .yieldFromFirst = -1, .yieldFromLast = -1, .executing = 0, .cleared = 4};
    L.opcodes.resume = 151;
    L.opcodes.resumeAlt = 150;  // RESUME_QUICK
    return L;
}

Layout v312() {
    Layout L;
    L.minor = 12;
    L.source = "static table for CPython 3.12";
    L.instrModel = InstrModel::prevInstr;
    L.currentFrame = CurrentFrameModel::viaCFrame;
    L.yieldFrom = YieldFromModel::resume311;
    L.stackModel = StackModel::stackTop;
    L.firstEntryOwner = 3;  // FRAME_OWNED_BY_CSTACK
    L.instanceDict = InstanceDictModel::dictOrValues;

    L.runtime.interpretersHead = 40;

    L.interp.next = 0;
    L.interp.id = 8;
    L.interp.threadsHead = 72;
    L.interp.sysdict = 352;
    L.interp.cevalGil = 384;
    L.interp.modules = 944;
    L.gil.lastHolder = 8;
    L.gil.locked = 16;

    L.thread.size = 288;
    L.thread.next = 8;
    L.thread.interp = 16;
    L.thread.cframe = 56;
    L.thread.cframeCurrentFrame = 0;
    L.thread.dict = 112;
    L.thread.threadId = 136;
    L.thread.nativeThreadId = 144;
    L.thread.datastackChunk = 232;

    L.frame.size = 80;
    L.frame.code = 0;
    L.frame.previous = 8;
    L.frame.globals = 24;
    L.frame.instr = 56;  // prev_instr
    L.frame.stack = 64;  // stacktop
    L.frame.owner = 70;
    L.frame.localsplus = 72;

    L.code.size = 200;
    L.code.flags = 48;
    L.code.firstlineno = 68;
    L.code.filename = 112;
    L.code.name = 120;
    L.code.qualname = 128;
    L.code.linetable = 136;
    L.code.codeAdaptive = 192;
    L.code.firstTraceable = 176;

    L.type.cachedKeys = 880;
    L.unicode.asciiData = 40;
    L.unicode.compactData = 56;
    L.unicode.legacyData = 56;

    L.gen.frame = 72;
    L.gen.name = 24;
    L.gen.qualname = 32;
    L.gen.frameState = 67;
    L.gen.excValue = 40;
    codeLocals312(L);
    threadingBefore313(L);
    L.frameState = {.created = -2, .suspended = -1, .yieldFromFirst = -1, .yieldFromLast = -1, .executing = 0, .cleared = 4};
    L.opcodes.resume = 151;
    L.opcodes.resumeAlt = 240;  // INSTRUMENTED_RESUME

    L.asyncio.available = true;
    L.asyncio.registry = TaskRegistryModel::scheduledAndEager;
    L.asyncio.runningLoop = RunningLoopModel::threadDictLoop;
    L.asyncio.futSize = 128;
    L.asyncio.futState = 88;
    L.asyncio.taskSize = 176;
    L.asyncio.taskFutWaiter = 128;
    L.asyncio.taskCoro = 136;
    L.asyncio.taskName = 144;
    L.asyncio.taskMustCancel = 160;
    L.asyncio.taskNumCancels = 168;
    return L;
}

// 3.13: only what _Py_DebugOffsets lacks; the rest is applied at run time.
Layout v313() {
    Layout L;
    L.minor = 13;
    L.source = "_Py_DebugOffsets of the target + static table for CPython 3.13";
    L.instrModel = InstrModel::instrPtr;
    L.yieldFrom = YieldFromModel::frameState;
    L.stackModel = StackModel::stackTop;
    L.firstEntryOwner = 3;  // FRAME_OWNED_BY_CSTACK

    L.instanceDict = InstanceDictModel::managedInline;
    L.dict.valuesHeader = 8;

    L.thread.dict = 128;
    L.frame.stack = 64;  // stacktop
    L.frame.globals = 24;
    L.code.flags = 48;
    L.code.firstTraceable = 184;
    L.type.cachedKeys = 880;
    L.unicode.compactData = 56;
    L.unicode.legacyData = 56;

    L.gen.frame = 72;
    L.gen.name = 24;
    L.gen.qualname = 32;
    L.gen.frameState = 67;
    L.gen.excValue = 40;
    codeLocals312(L);
    L.threading.lockLocked = 32;
    L.threading.rlockOwner = 24;
    ringSimpleQueue(L);
    L.threadLocal.dicts = 40;
    L.threadLocal.threadKey = 288;
    L.frameState = {.created = -3, .suspended = -2, .yieldFromFirst = -1, .yieldFromLast = -1, .executing = 0, .cleared = 4};

    L.asyncio.available = true;
    L.asyncio.registry = TaskRegistryModel::scheduledAndEager;
    L.asyncio.runningLoop = RunningLoopModel::threadStateField;
    L.asyncio.threadRunningLoop = 304;  // _PyThreadStateImpl.asyncio_running_loop
    L.asyncio.futSize = 104;
    L.asyncio.futState = 96;
    L.asyncio.taskSize = 144;
    L.asyncio.taskMustCancel = 100;  // bit field: log_tb, blocking, must_cancel, ...
    L.asyncio.taskMustCancelBit = 1 << 2;
    L.asyncio.taskNumCancels = 104;
    L.asyncio.taskFutWaiter = 112;
    L.asyncio.taskCoro = 120;
    L.asyncio.taskName = 128;
    return L;
}

// 3.14 and 3.15 share what _Py_DebugOffsets lacks, except where noted.
Layout v314plus(int minor) {
    Layout L;
    L.minor = minor;
    L.source = "_Py_DebugOffsets of the target + static table for CPython 3." + std::to_string(minor);
    L.instrModel = InstrModel::instrPtr;
    L.yieldFrom = YieldFromModel::frameState;
    L.stackModel = StackModel::stackPointer;
    L.frame.globals = 24;
    L.stackRefTagMask = 3;  // Py_TAG_BITS
    L.firstEntryOwner = 3;  // FRAME_OWNED_BY_INTERPRETER (and CSTACK on 3.14)
    L.instanceDict = InstanceDictModel::managedInline;
    L.dict.valuesHeader = 8;

    L.code.flags = 48;
    L.code.firstTraceable = 192;
    L.unicode.compactData = 56;
    L.unicode.legacyData = 56;
    L.gen.qualname = 32;
    L.gen.excValue = 40;
    codeLocals312(L);  // localsplusNames is also published by _Py_DebugOffsets
    L.threading.lockLocked = 16;  // PyMutex, _Py_LOCKED
    L.threading.rlockOwner = 24;  // _PyRecursiveMutex.thread
    ringSimpleQueue(L);
    L.threadLocal.dicts = 40;
    L.threadLocal.threadKey = minor == 14 ? 288 : 328;

    // Task offsets arrive with the _asyncio module's .AsyncioDebug section
    // (asyncio_offsets.h); these are the Future fields it does not publish.
    L.asyncio.registry = TaskRegistryModel::linkedLists;
    L.asyncio.runningLoop = RunningLoopModel::threadStateField;
    L.asyncio.futSize = 112;
    L.asyncio.stateDebugOffsets = 152;
    L.asyncio.stateNonAsyncioTasks = 48;
    L.asyncio.stateNonAsyncioEagerTasks = 56;
    if (minor == 14) {
        L.thread.dict = 128;
        L.type.cachedKeys = 880;
        L.module.state = 32;
        L.frameState = {.created = -3, .suspended = -2, .yieldFromFirst = -1, .yieldFromLast = -1,
                        .executing = 0, .cleared = 4};
    } else {
        L.thread.dict = 152;
        L.type.cachedKeys = 888;  // also published by 3.15's debug offsets
        L.module.state = 24;
        // 3.15 renumbered the states and added SUSPENDED_YIELD_FROM_LOCKED (3).
        L.frameState = {.created = 0, .suspended = 1, .yieldFromFirst = 2, .yieldFromLast = 3,
                        .executing = 4, .cleared = 5};
        // `await` pushes a NULL above the awaitable before SEND.
        L.awaiteeSlot = -2;
        // athrow keeps the exception as type, traceback and value.
        L.callable.athrowState = 48;
    }
    return L;
}

}  // namespace

bool usesDebugOffsets(int minor) { return minor >= 13; }

std::optional<Layout> staticLayout(int minor) {
    switch (minor) {
        case 10: return v310();
        case 11: return v311();
        case 12: return v312();
        case 13: return v313();
        case 14:
        case 15: return v314plus(minor);
        default: return std::nullopt;
    }
}

}  // namespace aioscope
