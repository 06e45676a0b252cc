#include "pyapi.h"

#include <dlfcn.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <initializer_list>

namespace aioscope::agent {

namespace {

template <class F>
void find(F& fn, const char* name) {
    fn = reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}

}  // namespace

bool PyApi::resolve() {
    find(isInitialized, "Py_IsInitialized");
    find(isFinalizing, "Py_IsFinalizing");  // 3.13+
    if (!isFinalizing) find(isFinalizing, "_Py_IsFinalizing");
    find(getVersion, "Py_GetVersion");
    find(gilStateEnsure, "PyGILState_Ensure");
    find(gilStateRelease, "PyGILState_Release");
    find(importGetModule, "PyImport_GetModule");
    find(unicodeFromString, "PyUnicode_FromString");
    find(getAttrString, "PyObject_GetAttrString");
    find(setAttrString, "PyObject_SetAttrString");
    find(cfunctionNewEx, "PyCFunction_NewEx");
    find(instanceMethodNew, "PyInstanceMethod_New");
    find(call, "PyObject_Call");
    find(vectorcall, "PyObject_Vectorcall");
    find(decRef, "Py_DecRef");
    find(incRef, "Py_IncRef");
    find(errClear, "PyErr_Clear");
    find(atExit, "Py_AtExit");
    find(runString, "PyRun_String");
    find(dictNew, "PyDict_New");
    find(dictSetItemString, "PyDict_SetItemString");
    find(dictGetItemString, "PyDict_GetItemString");
    find(evalGetBuiltins, "PyEval_GetBuiltins");
    find(buildValue, "Py_BuildValue");
    find(argParseTuple, "PyArg_ParseTuple");
    find(boolFromLong, "PyBool_FromLong");
    find(errFetch, "PyErr_Fetch");
    find(errRestore, "PyErr_Restore");
    find(importModule, "PyImport_ImportModule");
    find(addPendingCall, "Py_AddPendingCall");
    find(isTrue, "PyObject_IsTrue");
    find(evalSaveThread, "PyEval_SaveThread");
    find(evalRestoreThread, "PyEval_RestoreThread");
    find(addAuditHook, "PySys_AddAuditHook");
    find(tupleGetItem, "PyTuple_GetItem");
    find(tupleSize, "PyTuple_Size");
    find(unicodeAsUtf8, "PyUnicode_AsUTF8");
    find(interpreterGet, "PyInterpreterState_Get");
    find(interpreterMain, "PyInterpreterState_Main");
    find(descrNewMethod, "PyDescr_NewMethod");
    find(functionVectorcall, "_PyFunction_Vectorcall");
    find(givenExceptionMatches, "PyErr_GivenExceptionMatches");
    find(excKeyboardInterrupt, "PyExc_KeyboardInterrupt");
    find(excSystemExit, "PyExc_SystemExit");
    find(setInterrupt, "PyErr_SetInterrupt");
    return isInitialized && isFinalizing && getVersion && gilStateEnsure && gilStateRelease && importGetModule &&
           unicodeFromString && getAttrString && setAttrString && cfunctionNewEx && instanceMethodNew && call &&
           decRef && incRef && errClear && atExit && runString && dictNew && dictSetItemString && dictGetItemString &&
           evalGetBuiltins && buildValue && argParseTuple && boolFromLong && errFetch && errRestore && importModule && addPendingCall &&
           isTrue && evalSaveThread && evalRestoreThread;
}

PyObject* PyApi::importedModule(const char* name) {
    PyObject* n = unicodeFromString(name);
    if (!n) {
        clearError();
        return nullptr;
    }
    PyObject* m = importGetModule(n);
    decRef(n);
    if (!m) clearError();
    return m;
}

namespace {

// The interrupt to raise again (main thread, GIL held: no lock needed).
PyObject* g_interruptType = nullptr;
PyObject* g_interruptValue = nullptr;
PyObject* g_interruptTraceback = nullptr;

// A pending call, run by the main thread between two bytecodes of the
// program: failing with the exception set raises it there.
int raiseInterruptAgain(void*) {
    if (!g_interruptType) return 0;
    python().errRestore(g_interruptType, g_interruptValue, g_interruptTraceback);
    g_interruptType = g_interruptValue = g_interruptTraceback = nullptr;
    return -1;
}

bool onMainThread() { return syscall(SYS_gettid) == getpid(); }

}  // namespace

void PyApi::clearError() {
    PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
    errFetch(&type, &value, &tb);
    if (!type) return;
    bool stops = givenExceptionMatches && excKeyboardInterrupt && excSystemExit &&
                 (givenExceptionMatches(type, *excKeyboardInterrupt) || givenExceptionMatches(type, *excSystemExit));
    if (stops && onMainThread()) {
        if (g_interruptType) {
            // One is on its way already: the program stops at the first.
        } else if (addPendingCall(&raiseInterruptAgain, nullptr) == 0) {
            g_interruptType = type;
            g_interruptValue = value;
            g_interruptTraceback = tb;
            return;
        } else if (setInterrupt && givenExceptionMatches(type, *excKeyboardInterrupt)) {
            setInterrupt();  // the queue is full: SIGINT's handler runs again
        }
    }
    for (PyObject* o : {type, value, tb}) {
        if (o) decRef(o);
    }
}

PyObject* PyApi::none() {
    static PyObject* value = buildValue("");  // a reference kept for the process
    return value;
}

PyApi& python() {
    static PyApi api;
    return api;
}

}  // namespace aioscope::agent
