"""The busy guard of the fallback engines, matching the C extension's.

While a call on an engine is in flight, any other call on the same engine —
from the model it runs, from an argument's ``__index__``/``__array__``, from
``__init__`` invoked on the live engine, or from a second thread — raises
``RuntimeError`` and changes nothing (``src/python/py_engine_base.h``).
A failed ``__init__`` on a live engine leaves it as it was.
"""
from __future__ import annotations

import functools
import threading
from typing import Any, Callable, Iterable, TypeVar

T = TypeVar("T")


def _busy_error(obj: Any) -> RuntimeError:
    return RuntimeError(
        f"{obj._GUARD_NAME} is busy (another call on it is in flight: a step or bulk call in another "
        "thread, or a call from the model or from an argument's conversion)")


class Guarded:
    """Base of the fallback engines: a per-object non-reentrant lock."""

    _GUARD_NAME = "Engine"

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = super().__new__(cls)
        obj.__dict__["_guard_lock"] = threading.Lock()
        return obj

    def _enter(self) -> None:
        if not self._guard_lock.acquire(blocking=False):
            raise _busy_error(self)

    def _leave(self) -> None:
        self._guard_lock.release()


def _wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def guarded(self: Guarded, *args: Any, **kwargs: Any) -> Any:
        self._enter()
        try:
            return fn(self, *args, **kwargs)
        finally:
            self._leave()
    return guarded


def _wrap_init(init: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(init)
    def guarded_init(self: Guarded, *args: Any, **kwargs: Any) -> None:
        self._enter()
        try:
            # configure a fresh object, then adopt its state: a failure leaves self unchanged
            fresh = object.__new__(type(self))
            fresh.__dict__["_guard_lock"] = threading.Lock()
            init(fresh, *args, **kwargs)
            state = dict(fresh.__dict__)
            state.pop("_guard_lock")
            self.__dict__.update(state)
        finally:
            self._leave()
    return guarded_init


def guard_methods(names: Iterable[str]) -> Callable[[type], type]:
    """Class decorator: ``__init__`` and the named methods run under the busy guard.

    The unguarded original of each method stays available as ``_unguarded_<name>``
    for calls from inside another guarded method."""
    def deco(cls: type) -> type:
        if "__init__" in cls.__dict__:
            cls.__init__ = _wrap_init(cls.__dict__["__init__"])
        for name in names:
            fn = getattr(cls, name)
            setattr(cls, "_unguarded_" + name, fn)
            setattr(cls, name, _wrap(fn))
        return cls
    return deco
