/* Records the offsetof() values test_layout_tables.cpp checks for 3.10-3.12
 * (not built by CMake). For each pyenv version v in 3.10.13 3.11.7 3.12.1:
 *   gcc -w -I/root/.pyenv/versions/$v/include/python${v%.*} \
 *       -I/root/.pyenv/versions/$v/include/python${v%.*}/internal offsets.c && ./a.out
 */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#include "internal/pycore_runtime.h"
#include "internal/pycore_interp.h"
#if PY_MINOR_VERSION >= 11
#include "internal/pycore_frame.h"
#include "internal/pycore_dict.h"
#else
#include "frameobject.h"
#endif
#include "internal/pycore_gil.h"
#define P(s, m) printf("%-28s %-28s %zu\n", #s, #m, offsetof(s, m))
#define S(s) printf("%-28s %-28s %zu\n", #s, "sizeof", sizeof(s))
int main(void) {
    P(_PyRuntimeState, interpreters.head);
#if PY_MINOR_VERSION <= 11
    P(_PyRuntimeState, ceval.gil);
#else
    P(PyInterpreterState, ceval.gil);
#endif
    P(struct _gil_runtime_state, last_holder);
    P(struct _gil_runtime_state, locked);
    P(PyInterpreterState, next);
    P(PyInterpreterState, id);
#if PY_MINOR_VERSION >= 12
    P(PyInterpreterState, threads.head);
    P(PyInterpreterState, imports.modules);
#elif PY_MINOR_VERSION == 11
    P(PyInterpreterState, threads.head);
    P(PyInterpreterState, modules);
#else
    P(PyInterpreterState, tstate_head);
    P(PyInterpreterState, modules);
#endif
    P(PyInterpreterState, sysdict);
    S(PyThreadState);
    P(PyThreadState, next);
    P(PyThreadState, interp);
    P(PyThreadState, dict);
    P(PyThreadState, thread_id);
#if PY_MINOR_VERSION >= 11
    P(PyThreadState, native_thread_id);
    P(PyThreadState, cframe);
    P(_PyCFrame, current_frame);
    S(_PyInterpreterFrame);
#if PY_MINOR_VERSION == 11
    P(_PyInterpreterFrame, f_code);
#else
    P(_PyInterpreterFrame, f_code);
#endif
    P(_PyInterpreterFrame, previous);
    P(_PyInterpreterFrame, prev_instr);
    P(_PyInterpreterFrame, stacktop);
    P(_PyInterpreterFrame, owner);
    P(_PyInterpreterFrame, localsplus);
    P(PyCodeObject, co_qualname);
    P(PyCodeObject, co_code_adaptive);
    P(PyCodeObject, _co_firsttraceable);
    P(PyGenObject, gi_iframe);
    P(PyGenObject, gi_frame_state);
#else
    P(PyThreadState, frame);
    S(PyFrameObject);
    P(PyFrameObject, f_back);
    P(PyFrameObject, f_code);
    P(PyFrameObject, f_valuestack);
    P(PyFrameObject, f_stackdepth);
    P(PyFrameObject, f_gen);
    P(PyFrameObject, f_lasti);
    P(PyFrameObject, f_state);
    P(PyCodeObject, co_code);
    P(PyGenObject, gi_frame);
#endif
    S(PyCodeObject);
    P(PyCodeObject, co_flags);
    P(PyCodeObject, co_firstlineno);
    P(PyCodeObject, co_filename);
    P(PyCodeObject, co_name);
    P(PyCodeObject, co_linetable);
    P(PyGenObject, gi_name);
    P(PyGenObject, gi_qualname);
    P(PyHeapTypeObject, ht_cached_keys);
    S(PyASCIIObject);
    S(PyCompactUnicodeObject);
    P(PyUnicodeObject, data.any);
    P(PyTypeObject, tp_name);
    P(PyTypeObject, tp_basicsize);
    P(PyTypeObject, tp_flags);
    P(PyTypeObject, tp_base);
    P(PyTypeObject, tp_dictoffset);
    P(PyDictObject, ma_used);
    P(PyDictObject, ma_keys);
    P(PyDictObject, ma_values);
    P(PySetObject, used);
    P(PySetObject, mask);
    P(PySetObject, table);
#if PY_MINOR_VERSION >= 12
    P(PyLongObject, long_value.ob_digit);
    P(PyLongObject, long_value.lv_tag);
#else
    P(PyLongObject, ob_digit);
#endif
    P(PyBytesObject, ob_sval);
    P(PyTupleObject, ob_item);
    P(PyListObject, ob_item);
    P(PyASCIIObject, length);
    P(PyASCIIObject, state);
    return 0;
}
