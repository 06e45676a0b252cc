// The few CPython C-API functions the agent calls, resolved at run time with
// dlsym: the agent links against no libpython and works with whichever
// CPython 3.10-3.15 it finds itself in. Only stable-ABI functions and
// layouts are used. Every call here needs the GIL unless noted.
#pragma once

#include <cstddef>
#include <cstdint>

namespace aioscope::agent {

struct PyObject;
using PyCFunction = PyObject* (*)(PyObject*, PyObject*);

// PyMethodDef is part of the stable ABI.
struct PyMethodDef {
    const char* ml_name;
    void* ml_meth;
    int ml_flags;
    const char* ml_doc;
};
constexpr int kMethVarargs = 0x0001;
constexpr int kMethKeywords = 0x0002;
constexpr int kMethFastcall = 0x0080;
constexpr int kFileInput = 257;  // Py_file_input

struct PyApi {
    // No GIL needed.
    int (*isInitialized)() = nullptr;
    int (*isFinalizing)() = nullptr;
    // Rewrites a static buffer that the interpreter and extensions read:
    // called only before Py_Initialize (captureVersionBeforeInit).
    const char* (*getVersion)() = nullptr;
    int (*gilStateEnsure)() = nullptr;
    void (*gilStateRelease)(int) = nullptr;
    // GIL needed.
    PyObject* (*importGetModule)(PyObject*) = nullptr;
    PyObject* (*unicodeFromString)(const char*) = nullptr;
    PyObject* (*getAttrString)(PyObject*, const char*) = nullptr;
    int (*setAttrString)(PyObject*, const char*, PyObject*) = nullptr;
    PyObject* (*cfunctionNewEx)(PyMethodDef*, PyObject*, PyObject*) = nullptr;
    PyObject* (*instanceMethodNew)(PyObject*) = nullptr;
    PyObject* (*call)(PyObject*, PyObject*, PyObject*) = nullptr;
    PyObject* (*vectorcall)(PyObject*, PyObject* const*, std::size_t, PyObject*) = nullptr;  // 3.11+
    void (*decRef)(PyObject*) = nullptr;
    void (*incRef)(PyObject*) = nullptr;
    void (*errClear)() = nullptr;
    int (*atExit)(void (*)()) = nullptr;
    PyObject* (*runString)(const char*, int, PyObject*, PyObject*) = nullptr;
    PyObject* (*dictNew)() = nullptr;
    int (*dictSetItemString)(PyObject*, const char*, PyObject*) = nullptr;
    PyObject* (*dictGetItemString)(PyObject*, const char*) = nullptr;  // borrowed
    PyObject* (*evalGetBuiltins)() = nullptr;                          // borrowed
    PyObject* (*buildValue)(const char*, ...) = nullptr;
    int (*argParseTuple)(PyObject*, const char*, ...) = nullptr;
    PyObject* (*boolFromLong)(long) = nullptr;
    void (*errFetch)(PyObject**, PyObject**, PyObject**) = nullptr;
    PyObject* (*importModule)(const char*) = nullptr;
    int (*addPendingCall)(int (*)(void*), void*) = nullptr;  // no GIL needed
    void (*errRestore)(PyObject*, PyObject*, PyObject*) = nullptr;
    int (*isTrue)(PyObject*) = nullptr;
    void* (*evalSaveThread)() = nullptr;         // releases the GIL, returns the thread state
    void (*evalRestoreThread)(void*) = nullptr;  // takes it back
    // Optional (the agent works without them, with less).
    int (*addAuditHook)(int (*)(const char*, PyObject*, void*), void*) = nullptr;  // also before Py_Initialize
    PyObject* (*tupleGetItem)(PyObject*, std::ptrdiff_t) = nullptr;               // borrowed
    std::ptrdiff_t (*tupleSize)(PyObject*) = nullptr;
    const char* (*unicodeAsUtf8)(PyObject*) = nullptr;
    void* (*interpreterGet)() = nullptr;   // the calling thread's interpreter
    void* (*interpreterMain)() = nullptr;  // the main interpreter
    // A method descriptor of `type` (PyDescr_NewMethod): a method the
    // interpreter calls without creating a bound method first.
    PyObject* (*descrNewMethod)(PyObject* type, PyMethodDef*) = nullptr;
    // 3.10's way to call a Python function with an argument vector (its
    // PyObject_Vectorcall is an inline function, not exported).
    PyObject* (*functionVectorcall)(PyObject*, PyObject* const*, std::size_t, PyObject*) = nullptr;
    int (*givenExceptionMatches)(PyObject*, PyObject*) = nullptr;
    PyObject** excKeyboardInterrupt = nullptr;  // the variables PyExc_*: their values are the classes
    PyObject** excSystemExit = nullptr;
    int (*setInterrupt)() = nullptr;  // PyErr_SetInterrupt: as if SIGINT arrived

    // True when every function above that every version has was found.
    bool resolve();
    // The module if already imported (never imports: importing asyncio from
    // the agent's thread would make it threading's "main thread" on 3.10-3.12).
    PyObject* importedModule(const char* name);
    // None (borrowed; taken once, with the GIL).
    PyObject* none();
    // Drops the error the agent's own Python work left (the agent's trouble
    // is not the program's), except what stops the program: a
    // KeyboardInterrupt or SystemExit raised on the main thread, where the
    // program's signal handlers run (a Ctrl-C that landed inside the
    // agent's work). That one is raised again in the program's own code at
    // its next safe point, never lost.
    void clearError();
};

PyApi& python();

}  // namespace aioscope::agent
