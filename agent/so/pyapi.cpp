#include "pyapi.h"

#include <dlfcn.h>

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
    return isInitialized && isFinalizing && getVersion && gilStateEnsure && gilStateRelease && importGetModule &&
           unicodeFromString && getAttrString && setAttrString && cfunctionNewEx && instanceMethodNew && call &&
           decRef && incRef && errClear && atExit && runString && dictNew && dictSetItemString && dictGetItemString &&
           evalGetBuiltins && buildValue && argParseTuple && boolFromLong && errFetch && errRestore && importModule && addPendingCall &&
           isTrue && evalSaveThread && evalRestoreThread;
}

PyObject* PyApi::importedModule(const char* name) {
    PyObject* n = unicodeFromString(name);
    if (!n) {
        errClear();
        return nullptr;
    }
    PyObject* m = importGetModule(n);
    decRef(n);
    if (!m) errClear();
    return m;
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
