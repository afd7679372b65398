"""The top costs of a pyinstrument session: self time by function, idle time apart.

pyinstrument samples the main thread's stack on the wall clock; time spent
waiting in the event loop's `select`/`epoll` is idle, not a cost, so it is
reported as `idle_share` and left out of the ranking.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from aioupstage_ocr._atomic import atomic_write_text

if TYPE_CHECKING:  # pyinstrument loads only in a profiled run
    from pyinstrument.frame import Frame
    from pyinstrument.session import Session

__all__ = ["Profiled", "top_frames"]

_IDLE = frozenset({"select", "poll", "epoll", "wait"})


def _module(frame: Frame) -> str:
    """The library a frame's code belongs to: its top-level package, or the stdlib module."""
    path = frame.file_path_short or "?"
    if path.startswith("<"):
        return path  # <built-in>: C functions (socket calls, locks, queues)
    head = path.split("/", 1)[0]
    return head.removesuffix(".py")


def _label(frame: Frame) -> str:
    where = frame.file_path_short or "?"
    return f"{frame.function} ({where}:{frame.line_no})"


def _is_idle(frame: Frame) -> bool:
    return frame.function in _IDLE and (frame.file_path_short or "").endswith(
        ("selectors.py", "threading.py", "<built-in>")
    )


def top_frames(session: Session, limit: int = 12) -> dict[str, Any]:
    """Self time by function and by library, and inclusive package time, as shares of busy time."""
    root = session.root_frame()
    if root is None:
        return {"total_s": 0.0, "idle_share": 0.0, "self": [], "package": [], "modules": []}
    own: defaultdict[str, float] = defaultdict(float)
    modules: defaultdict[str, float] = defaultdict(float)
    package: defaultdict[str, float] = defaultdict(float)
    idle = 0.0
    stack: list[tuple[Frame, frozenset[str]]] = [(root, frozenset())]
    while stack:
        frame, seen = stack.pop()
        if frame.is_synthetic:  # "[self]", "[await]": already in the parent's self time
            continue
        label = _label(frame)
        if _is_idle(frame):
            idle += frame.time
            continue
        own[label] += frame.total_self_time
        modules[_module(frame)] += frame.total_self_time
        path = frame.file_path or ""
        if "aioupstage_ocr" in path and label not in seen:  # inclusive, counted once per stack
            package[label] += frame.time
            seen = seen | {label}
        stack.extend((child, seen) for child in frame.children)
    total = root.time
    busy = max(total - idle, 1e-9)

    def ranked(table: dict[str, float], count: int = limit) -> list[dict[str, Any]]:
        items = sorted(table.items(), key=lambda kv: kv[1], reverse=True)[:count]
        return [{"frame": k, "seconds": round(v, 4), "share": round(v / busy, 4)} for k, v in items]

    return {
        "total_s": round(total, 3),
        "idle_share": round(idle / total, 4) if total else 0.0,
        "self": ranked(own),
        "package": ranked(package),
        "modules": ranked(modules, 40),
    }


class Profiled:
    """`with Profiled(path) as p:` profiles the block (when `path` is set) into `p.figures`.

    The whole text profile goes to `path`; the top costs to `figures["profile"]`.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.figures: dict[str, Any] = {}
        self._profiler: Any = None

    def __enter__(self) -> Profiled:
        if self.path:
            from pyinstrument import Profiler

            self._profiler = Profiler(interval=0.001, async_mode="disabled")
            self._profiler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._profiler is None:
            return
        self._profiler.stop()
        session = self._profiler.last_session
        if session is not None:
            self.figures["profile"] = top_frames(session)
        assert self.path is not None
        text = self._profiler.output_text(unicode=False, color=False, show_all=False)
        atomic_write_text(self.path, text)
