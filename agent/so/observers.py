"""aioscope's observers: run inside the program by its agent (this source is
embedded in aioscope-agent.so and executed once, with the GIL held, in a
private namespace). They report the asyncio bugs that leave no trace:

  unawaited_coroutine         a coroutine created and never awaited
  cancellation_swallowed      a CancelledError caught and not re-raised
  task_exception_unretrieved  a task's exception nobody retrieved
  task_destroyed_pending      a pending task garbage-collected

Under pytest every event names the running test (PYTEST_CURRENT_TEST), and
events about a task name the test the task was created in.

They observe and change nothing: every hook calls what it replaced with the
same arguments, so the program's own handlers, filters and output stay the
same. They depend on no module that interpreter shutdown may clear: the
events they are most needed for (tasks destroyed while pending) happen then.
"""

import sys
import _weakref

_emit = None        # the agent's C function: _emit(type, json_object_text)
_handling = None    # the agent's C function: _handling(task) -> a CancelledError is being handled
_trampoline = None  # the agent's C function: _trampoline(original, observer, method, after, timed) -> callable
_on_main = None     # the agent's C function: _on_main(fn) -> fn() queued for the main thread
_exiting = None     # the agent's C function: _exiting(status) -> its last words, now
# A C trampoline calls observer(*args), then original(*args) (or original(*r)
# if the observer returned a tuple r). Being C, it is no frame: the program's
# tracebacks and warning stack levels stay exactly as without aioscope.
_patched = []       # (owner, attribute, original, ours), undone by uninstall()
_origin = {"before": 0, "ours": 0, "armed": False}
_cancel = {}        # thread ident -> state of the cancellation step running there
# Per task (by id, with a weak reference: an id is reused once its task is
# freed): the cancel counts already reported as swallowed, and a
# cancellation caught at an earlier step whose handler had not ended then.
_reported = {}      # id(task) -> (weak reference, set of cancel counts)
_undecided = {}     # id(task) -> (weak reference, caught_at, message)
_created_in = {}    # id(task) -> (weak reference, test node id): under pytest only
_created_in_dead = {}  # the same, for tasks whose weak reference died (see _send)
_inherited_test = [None]  # PYTEST_CURRENT_TEST as inherited: a parent pytest's, not ours


# -- output ------------------------------------------------------------------

def _json(value):
    """JSON text for str, int, float, bool, None, list, tuple and dict."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        out = ['"']
        for ch in value:
            code = ord(ch)
            if ch == '"' or ch == "\\":
                out.append("\\" + ch)
            elif code < 0x20:
                out.append("\\u%04x" % code)
            elif 0xD800 <= code <= 0xDFFF:
                out.append("\\ufffd")
            else:
                out.append(ch)
        out.append('"')
        return "".join(out)
    if isinstance(value, dict):
        return "{" + ", ".join(_json(str(k)) + ": " + _json(v) for k, v in value.items()) + "}"
    return "[" + ", ".join(_json(v) for v in value) + "]"


def _current_test():
    """(node id, phase) of the test pytest is running, or None: pytest sets
    PYTEST_CURRENT_TEST = "path::name[params] (phase)" at each phase, in this
    process only if it imported pytest."""
    if "_pytest" not in sys.modules:
        return None  # a child of a pytest process inherits the variable: not its test
    try:
        value = sys.modules["os"].environ.get("PYTEST_CURRENT_TEST")
    except Exception:
        return None
    if not value or not value.endswith(")") or value == _inherited_test[0]:
        return None
    at = value.rfind(" (")
    if at <= 0:
        return None
    return value[:at], value[at + 2:-1]


def _send(kind, body, task=None):
    try:
        test = _current_test()
        if test is not None:
            body["test"], body["test_phase"] = test
        if task is not None and (_created_in or _created_in_dead):
            created = _of_task(_created_in, task)
            if created is None:
                # Freed by the garbage collector: it clears weak references
                # before it finalizes, and finalizing is what reports it.
                created = _created_in_dead.pop(id(task), None)
            body["task_created_in_test"] = created[1] if created is not None else None
        _emit(kind, _json(body))
    except Exception:
        pass


def _frame(code, line):
    return {"function": code.co_name, "qualname": getattr(code, "co_qualname", code.co_name),
            "file": code.co_filename, "line": line}


def _stack(frame, limit=32):
    out = []
    while frame is not None and len(out) < limit:
        out.append(_frame(frame.f_code, frame.f_lineno))
        frame = frame.f_back
    return out


def _traceback(tb, limit=64):
    """Frames of a traceback, innermost first, like every stack aioscope reports."""
    out = []
    while tb is not None and len(out) < limit:
        out.append(_frame(tb.tb_frame.f_code, tb.tb_lineno))
        tb = tb.tb_next
    out.reverse()
    return out


def _coroutine_stack(coro, limit=32):
    """The frames a suspended task waits in, innermost first: its coroutine,
    then what each awaits (cr_await, gi_yieldfrom), as in a snapshot."""
    frames = []
    while coro is not None and len(frames) < limit:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or getattr(coro, "ag_frame", None)
        if frame is None:
            break
        frames.append(_frame(frame.f_code, frame.f_lineno))
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) or getattr(coro, "ag_await", None)
    frames.reverse()
    return frames


def _per_task(table, task, value):
    """table[id(task)] = (weak reference to task, value), dropped when the task is freed."""
    key = id(task)

    def forget(ref):
        entry = table.get(key)
        if entry is not None and entry[0] is ref:
            del table[key]

    try:
        ref = _weakref.ref(task, forget)
    except TypeError:
        return None
    table[key] = (ref,) + value
    return table[key]


def _of_task(table, task):
    entry = table.get(id(task))
    return entry if entry is not None and entry[0]() is task else None


def _task_ref(task):
    if task is None:
        return None
    try:
        name = task.get_name() if hasattr(task, "get_name") else task.name  # asyncio's, or trio's
    except Exception:
        name = None
    return {"id": hex(id(task)), "name": name}


def _current_task():
    """The asyncio task running on this thread, else the trio task."""
    try:
        tasks = sys.modules.get("asyncio.tasks")
        task = tasks.current_task() if tasks is not None else None
        if task is not None:
            return task
    except Exception:
        pass
    try:
        lowlevel = sys.modules.get("trio.lowlevel")
        return lowlevel.current_task() if lowlevel is not None else None
    except Exception:  # RuntimeError outside a trio run
        return None


def _patch(owner, attribute, ours):
    original = owner.__dict__[attribute] if isinstance(owner, type) else getattr(owner, attribute)
    setattr(owner, attribute, ours)
    # What getattr() returns for it later (a method descriptor unwraps).
    _patched.append((owner, attribute, original, getattr(owner, attribute)))
    return original


# -- never-awaited coroutines --------------------------------------------------

def _on_main_thread(fn):
    """fn() on the main thread: now if this is it, else at its next check of
    the eval breaker (the agent installs from its own thread on attach)."""
    threading = sys.modules.get("threading")  # asyncio imports it
    main = getattr(threading, "main_thread", None)
    if main is not None and main().ident == _ident():
        fn()
    else:
        _on_main(fn)


def _set_origin_tracking():
    """Record where coroutines are created from now on (CPython's cr_origin).
    The depth is per thread: it is the main thread's that is set."""
    if _origin["armed"]:
        return
    _origin["armed"] = True
    _on_main_thread(_arm)


def _arm():
    if not _origin["armed"]:
        return  # detached before the main thread got here
    _origin["before"] = sys.get_coroutine_origin_tracking_depth()
    if _origin["before"] == 0:
        _origin["ours"] = 8
        sys.set_coroutine_origin_tracking_depth(8)


class _WithoutOrigin:
    """The coroutine as the warning must see it when its cr_origin exists
    only because aioscope turned origin tracking on."""
    __slots__ = ("__qualname__", "cr_origin")

    def __init__(self, coro):
        self.__qualname__ = coro.__qualname__
        self.cr_origin = None


def _install_unawaited(track_origins):
    warnings = sys.modules["warnings"]

    def observe(coro):
        try:
            _report_unawaited(coro, sys._getframe(1))
        except Exception:
            pass
        ours = _origin["ours"] and sys.get_coroutine_origin_tracking_depth() == _origin["ours"]
        if ours and coro.cr_origin is not None:
            return (_WithoutOrigin(coro),)
        return None

    if track_origins:
        _set_origin_tracking()  # queued for the main thread before it can see any hook
    _patch(warnings, "_warn_unawaited_coroutine", _trampoline(warnings._warn_unawaited_coroutine, observe, False))
    _install_exit_watch()


# -- os._exit -----------------------------------------------------------------

def _install_exit_watch():
    """os._exit ends the process without exit handlers: a bug seen just
    before it (a coroutine dropped on the way out) would be lost, and a
    --fail-on run would pass. The agent speaks first."""
    os = sys.modules.get("os")
    if os is None or _exiting is None:
        return

    def observe(*args, **kwargs):
        # Only a call that will end the process: os._exit(status) or
        # os._exit(status=status), with an int.
        if len(args) == 1 and not kwargs:
            status = args[0]
        elif not args and list(kwargs) == ["status"]:
            status = kwargs["status"]
        else:
            return
        if type(status) is int:
            _exiting(status)

    _patch(os, "_exit", _trampoline(os._exit, observe, False))


def _report_unawaited(coro, frame):
    code = coro.cr_code
    origin = coro.cr_origin
    body = {
        "coroutine": {"id": hex(id(coro)), "qualname": coro.__qualname__},
        "defined_at": _frame(code, code.co_firstlineno),
        "created_at": None,
        "creating_stack": None,
        "discarded_at": None,
        "discarding_stack": _stack(frame),
        "task": _task_ref(_current_task()),
    }
    if origin is not None:
        body["creating_stack"] = [{"function": fn, "qualname": fn, "file": fname, "line": line}
                                  for fname, line, fn in origin]
        body["created_at"] = body["creating_stack"][0] if origin else None
    if body["discarding_stack"]:
        body["discarded_at"] = body["discarding_stack"][0]
    if origin is None and not _origin["armed"]:
        body["note"] = "where it was created is known with --track-origins"
    _send("unawaited_coroutine", body)
    # Origin tracking is never turned on behind the program's back: CPython
    # computes cr_origin at every coroutine creation, and on a queue-heavy
    # workload (fixtures/bench_queues.py, 3.12) depth 1 costs 30% of the
    # throughput and depth 8 over 90%. The user opts in with --track-origins.


# -- swallowed cancellations --------------------------------------------------

def _cancelled_error():
    exceptions = sys.modules.get("asyncio.exceptions")
    return getattr(exceptions, "CancelledError", None)


def _cleanup_throw():
    """CLEANUP_THROW's opcode (3.12+), from the opcode module asyncio imported."""
    return getattr(sys.modules.get("opcode"), "opmap", {}).get("CLEANUP_THROW")


def _at(frame, op):
    try:
        return op is not None and frame.f_code.co_code[frame.f_lasti] == op
    except Exception:
        return False


def _taskgroup_exit():
    """The code of TaskGroup's exit (3.14+ runs it in TaskGroup._aexit)."""
    taskgroups = sys.modules.get("asyncio.taskgroups")
    group = getattr(taskgroups, "TaskGroup", None)
    return tuple(getattr(getattr(group, name, None), "__code__", None) for name in ("__aexit__", "_aexit"))


def cancel_step_begin(task):
    """Called by the agent's Handle._run wrapper before a task step that
    delivers (or follows) a cancellation: find where it is caught."""
    # Nothing here may outlive the step: a frame's f_trace, if left set,
    # would keep this state (and what it refers to) alive with the frame.
    state = {"handled_at": None, "handled_code": None, "exc_frame": None, "traced": False,
             "raised": False, "message": None, "frames": []}
    cancelled = _cancelled_error()
    if sys.gettrace() is None and cancelled is not None:
        cleanup_throw = _cleanup_throw()
        frames = state["frames"]

        # Tracing just this step, and only when no tracer (debugger, coverage)
        # is active: theirs is never replaced.
        def tracer(frame, event, arg):
            if event == "call":
                frames.append((frame, frame.f_trace))  # f_trace is put back when the step ends
            elif event == "exception" and isinstance(arg[1], cancelled):
                state["exc_frame"] = frame
                state["raised"] = True
                args = arg[1].args
                if args and isinstance(args[0], str):
                    state["message"] = args[0]  # cancel(msg): the task's own _cancel_message stays None
            elif event == "line" and frame is state["exc_frame"]:
                # 3.13+ first runs the await's own handler (CLEANUP_THROW, on
                # the await's line), which re-raises into the frame's handler.
                if _at(frame, cleanup_throw):
                    return tracer
                state["handled_at"] = _frame(frame.f_code, frame.f_lineno)
                state["handled_code"] = frame.f_code
                state["exc_frame"] = None
            return tracer

        state["traced"] = True
        sys.settrace(tracer)
    _cancel[_ident()] = state


def _ident():
    return sys.modules["_thread"].get_ident()


def cancel_step_end(task):
    state = _cancel.pop(_ident(), None)
    if state is None:
        return
    if state["traced"]:
        sys.settrace(None)
        for frame, before in reversed(state["frames"]):
            try:
                frame.f_trace = before
            except Exception:
                pass
        state["frames"].clear()
    try:
        _judge(task, state)
    except Exception:
        pass
    state.clear()


def _judge(task, state):
    earlier = _of_task(_undecided, task)
    if earlier is not None:
        del _undecided[id(task)]
    elif state["traced"] and not state["raised"]:
        # No CancelledError in this step: it follows a cancellation already
        # judged (e.g. the request a 3.11/3.12 TaskGroup leaves uncounted).
        return
    caught_at = state["handled_at"] or (earlier[1] if earlier else None)
    message = state["message"] or (earlier[2] if earlier else None)
    if state["handled_code"] is not None and state["handled_code"] in _taskgroup_exit():
        # TaskGroup.__aexit__ catches the cancellation it asked for to abort
        # its body (and uncancel()s it), or one from outside, re-raised later.
        return
    count = task.cancelling() if hasattr(task, "cancelling") else None
    if task.done():
        if task.cancelled():
            return  # the cancellation went through
        if count == 0:
            return  # uncancel()ed: asyncio.timeout() / TaskGroup turned it into their own outcome
        exc = task.exception()
        outcome = "finished normally" if exc is None else f"finished with {type(exc).__name__}"
    else:
        if count == 0:
            return
        if _handling(task):
            # Still in an except/finally handling it: judged at a later step.
            _per_task(_undecided, task, (caught_at, message))
            return
        outcome = "kept running"
    # 3.10 counts no requests: each step that delivered a CancelledError the
    # task swallowed is a swallow of its own.
    reported = None if count is None else _of_task(_reported, task) or _per_task(_reported, task, (set(),))
    if reported is not None:
        if count in reported[1]:
            return
        reported[1].add(count)
    if message is None:
        try:
            message = task._cancel_message  # cancel(msg) before the task ever waited
        except Exception:
            pass
    _send("cancellation_swallowed", {
        "task": _task_ref(task),
        "caught_at": caught_at,
        "cancel_requests": count,
        "cancel_message": message if isinstance(message, str) else None,
        "outcome": outcome,
        "task_stack": _coroutine_stack(task.get_coro()) if not task.done() else [],
    }, task)


# -- what asyncio itself only logs --------------------------------------------

def _install_loop_reports():
    loop_class = sys.modules["asyncio.base_events"].BaseEventLoop

    def observe(loop, context, *rest):
        try:
            _report_loop_context(context)
        except Exception:
            pass
        return None

    _patch(loop_class, "call_exception_handler", _trampoline(loop_class.call_exception_handler, observe, True, False, True))


def _report_loop_context(context):
    message = context.get("message") or ""
    if message.endswith("exception was never retrieved"):
        future = context.get("future")
        exc = context.get("exception")
        if future is None or not hasattr(future, "get_coro"):
            return  # a plain Future: not a task
        _send("task_exception_unretrieved", {
            "task": _task_ref(future),
            "exception": {
                "type": type(exc).__qualname__ if exc is not None else None,
                "module": type(exc).__module__ if exc is not None else None,
                "message": str(exc) if exc is not None else None,
                "traceback": _traceback(exc.__traceback__) if exc is not None else [],
            },
        }, future)
    elif message == "Task was destroyed but it is pending!":
        task = context.get("task")
        coro = task.get_coro() if task is not None else None
        _send("task_destroyed_pending", {"task": _task_ref(task), "stack": _coroutine_stack(coro)}, task)


_loop_classes = {}  # a foreign loop class -> whether its reports are observed


def loop_starts(loop):
    """A loop starts running (asyncio._set_running_loop, wrapped by the
    agent). A loop that is not asyncio's (uvloop's Loop) has a
    call_exception_handler of its own, which asyncio's Task and Future
    call when a task's exception was never retrieved or a pending task is
    destroyed: it is observed the same way, on the loop's own class.
    Returns None for asyncio's loops, else whether it is observed. At
    install, uvloop's Loop class if uvloop is imported already (attach: its
    loop runs, and started before the agent could see it)."""
    if loop is None:
        return None
    cls = loop if isinstance(loop, type) else type(loop)  # the class itself at attach
    known = _loop_classes.get(cls)
    if known is not None:
        return known
    if issubclass(cls, sys.modules["asyncio.base_events"].BaseEventLoop):
        return None
    observed = False
    try:
        original = getattr(cls, "call_exception_handler")

        def observe(loop, context, *rest):
            try:
                _report_loop_context(context)
            except Exception:
                pass
            return None

        # uninstall() puts back the class's own, or removes ours from a
        # class that inherited it.
        before = cls.__dict__.get("call_exception_handler")
        setattr(cls, "call_exception_handler", _trampoline(original, observe, True, False, True))
        _patched.append((cls, "call_exception_handler", before, getattr(cls, "call_exception_handler")))
        observed = True
    except Exception:
        pass  # an immutable class (a Cython loop used directly): not observed
    _loop_classes[cls] = observed
    return observed


# -- which test created a task (pytest only) ---------------------------------


def _install_task_origins():
    """Records the running test of each task created while one runs. Every
    task asyncio creates goes through its loop's create_task (asyncio.run,
    create_task, ensure_future, TaskGroup, gather). Installed only under
    pytest: elsewhere it would be a cost per task for nothing."""
    if "_pytest" not in sys.modules:
        return
    loop_class = sys.modules["asyncio.base_events"].BaseEventLoop

    def forget(ref, key):
        entry = _created_in.get(key)
        if entry is not None and entry[0] is ref:
            del _created_in[key]
            if len(_created_in_dead) > 10000:
                _created_in_dead.clear()
            _created_in_dead[key] = entry

    def observe(task, args):
        test = _current_test()
        if test is None:
            return
        key = id(task)
        _created_in_dead.pop(key, None)  # an earlier task's, freed: its id is this one's now
        try:
            _created_in[key] = (_weakref.ref(task, lambda ref: forget(ref, key)), test[0])
        except TypeError:
            pass

    _patch(loop_class, "create_task", _trampoline(loop_class.create_task, observe, True, True))


# -- life cycle ---------------------------------------------------------------

def install(emit, handling, trampoline, on_main, track_origins, inherited_test, unawaited_in=False):
    """Every observer; `unawaited_in`: the never-awaited one is in already
    (install_unawaited, a trio program that imported asyncio later)."""
    global _emit, _handling, _trampoline, _on_main
    _emit, _handling, _trampoline, _on_main = emit, handling, trampoline, on_main
    _inherited_test[0] = inherited_test or None
    if not unawaited_in:
        _install_unawaited(track_origins)
    _install_loop_reports()
    _install_task_origins()


def install_unawaited(emit, handling, trampoline, on_main, track_origins, inherited_test):
    """Only the never-awaited coroutines (CPython warns about them whatever
    runs the coroutines: a trio program has them too)."""
    global _emit, _handling, _trampoline, _on_main
    _emit, _handling, _trampoline, _on_main = emit, handling, trampoline, on_main
    _inherited_test[0] = inherited_test or None
    _install_unawaited(track_origins)


def _disarm():
    """On the main thread, after _arm (pending calls run in order)."""
    ours = _origin["ours"]
    _origin["ours"] = 0
    if ours and sys.get_coroutine_origin_tracking_depth() == ours:
        sys.set_coroutine_origin_tracking_depth(_origin["before"])


def uninstall():
    # The main thread puts its origin tracking depth back before it can see
    # the hooks gone (queued first; it runs at its next eval breaker check).
    if _origin["armed"]:
        _origin["armed"] = False
        _on_main_thread(_disarm)
    while _patched:
        owner, attribute, original, ours = _patched.pop()
        if getattr(owner, attribute, None) is ours:  # somebody wrapped ours meanwhile: leave theirs
            if original is None:
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, original)
    _loop_classes.clear()
    # A cancellation step in flight ends its own tracing (cancel_step_end).
