"""The engine session: one simulation owned by one worker thread.

Every engine call (step, read-outs, tools, loading) happens on the worker
thread, so the engine is never used from two threads at once.  The asyncio
side talks to it only through :meth:`EngineSession.submit` (a bounded command
queue answered through ``concurrent.futures.Future``), :meth:`status` (a copy
taken under a lock) and :meth:`set_view` / :meth:`remove_view`.

The worker steps one step at a time and looks at its command queue between
steps, so a ``pause`` takes effect after at most the step in progress.  The
native step releases the GIL (DESIGN §5), so the event loop keeps serving
HTTP and WebSocket traffic while the engine computes.
"""
from __future__ import annotations

import collections
import concurrent.futures
import logging
import math
import os
import queue
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

import numpy as np

from .protocol import MAX_FRAME_SIDE, Command, View, as_frame_array, encode_frame, max_channel

logger = logging.getLogger(__name__)

__all__ = ["EngineSession", "SessionBusy", "list_experiments", "viz_types"]

#: pending commands at most; a full queue answers "busy" instead of growing
COMMAND_QUEUE_SIZE = 64
#: points kept for the analysis plot (energy and coherence over time)
ANALYSIS_POINTS = 600
#: seconds between two analysis points while the simulation runs
ANALYSIS_INTERVAL_S = 0.25
#: seconds between two updates of the FPS / ms-per-step figures
RATE_WINDOW_S = 0.5

FrameCallback = Callable[[View, bytes], None]


class SessionBusy(RuntimeError):
    """The command queue is full; the command was not queued."""


def viz_types() -> Tuple[str, ...]:
    """The visualisations the engines know (``atheria_core.motor.VIZ_TYPES``, read at call time
    so new ones such as ``holographic`` appear without changes here)."""
    from .. import motor
    return tuple(getattr(motor, "VIZ_TYPES", ("density", "phase", "energy")))


def list_experiments(root: str) -> List[str]:
    """Names of the experiments under ``<root>/experiments`` that have a config.json (sorted).

    Only names that pass :func:`atheria_core.experiments.validate_experiment_name` are listed,
    and the server loads nothing else, so a request cannot name a path."""
    from ..experiments import validate_experiment_name

    base = os.path.join(os.fspath(root), "experiments")
    try:
        entries = os.listdir(base)
    except OSError:
        return []
    out = []
    for name in entries:
        try:
            validate_experiment_name(name)
        except ValueError:
            continue
        d = os.path.join(base, name)
        if os.path.isdir(d) and not os.path.islink(d) and os.path.isfile(os.path.join(d, "config.json")):
            out.append(name)
    return sorted(out)


def _analyze_kwargs(motor: Any) -> Dict[str, Any]:
    """``record=False`` where analyze() would otherwise keep its own history of every call."""
    import inspect

    analyze = getattr(motor, "analyze", None)
    if not callable(analyze):
        return {}
    try:
        return {"record": False} if "record" in inspect.signature(analyze).parameters else {}
    except (TypeError, ValueError):
        return {}


class EngineSession:
    """One simulation stepped by a worker thread.

    Args:
        root: experiments root (``<root>/experiments/<NAME>/config.json``).
        experiment: experiment loaded at start, or None.
        engine: 'native' (create_motor picks the native engine, or falls back with a logged
            reason) or 'python' (AetheriaMotor).
        max_steps_per_s: cap on the step rate while playing (0 = as fast as the engine goes).
        max_fps: frames per second per view at most.
        grid_size: overrides the experiment's ``GRID_SIZE_INFERENCE``.
        device: torch device for the model.
        on_frame: called on the worker thread with (view, frame bytes) for every rendered frame.
        snapshot_dir: where ``snapshot_save`` writes (``<dir>/<experiment>/<name>.snap``);
            default ``<root>/snapshots``.
        history_bytes: memory bound of the rewind history (``atheria_core.History``).
        history_every: the history keeps the state every this many steps (and before a tool).
    """

    def __init__(self, root: str, experiment: Optional[str] = None, *, engine: str = "native",
                 max_steps_per_s: float = 0.0, max_fps: float = 30.0, grid_size: Optional[int] = None,
                 device: str = "cpu", on_frame: Optional[FrameCallback] = None,
                 snapshot_dir: Optional[str] = None, history_bytes: int = 64 << 20,
                 history_every: int = 10) -> None:
        if engine not in ("native", "python"):
            raise ValueError(f"engine must be 'native' or 'python', got {engine!r}")
        if not math.isfinite(max_steps_per_s) or max_steps_per_s < 0:
            raise ValueError(f"max_steps_per_s must be >= 0, got {max_steps_per_s!r}")
        if not math.isfinite(max_fps) or max_fps <= 0:
            raise ValueError(f"max_fps must be > 0, got {max_fps!r}")
        self.root = os.fspath(root)
        self._initial = (experiment, engine)
        self.max_steps_per_s = float(max_steps_per_s)
        self.max_fps = float(max_fps)
        self.grid_size_override = grid_size
        self.device = device
        self.on_frame = on_frame
        self.snapshot_dir = os.fspath(snapshot_dir) if snapshot_dir else os.path.join(self.root, "snapshots")
        if isinstance(history_bytes, bool) or not isinstance(history_bytes, int) or history_bytes < 1:
            raise ValueError(f"history_bytes must be a positive int, got {history_bytes!r}")
        if isinstance(history_every, bool) or not isinstance(history_every, int) or history_every < 1:
            raise ValueError(f"history_every must be an int >= 1, got {history_every!r}")
        self.history_bytes = history_bytes
        self.history_every = history_every
        self._history: Any = None
        self._at_history_head = False
        self._analyze_kw: Dict[str, Any] = {}
        self._queue: "queue.Queue[Tuple[Command, concurrent.futures.Future]]" = queue.Queue(COMMAND_QUEUE_SIZE)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        # ---- worker-thread state (only the worker touches these)
        self._motor: Any = None
        self._running = False
        self._step_base = 0          # steps before the last engine switch (the count continues)
        self._version = 0            # bumped on every change of the field
        self._rendered: Dict[View, Tuple[int, float]] = {}
        self._seq = 0
        self._step_times: Deque[float] = collections.deque(maxlen=4096)
        self._rate_t0 = time.perf_counter()
        self._rate_steps = 0
        self._next_step_at = 0.0
        self._last_analysis = 0.0
        # ---- shared state (under _lock)
        self._views: Dict[Any, View] = {}
        self._status: Dict[str, Any] = self._empty_status()
        self._analysis: Deque[Dict[str, float]] = collections.deque(maxlen=ANALYSIS_POINTS)
        self._analysis_seq = 0
        self.worker_error: Optional[str] = None
        #: set once the worker has tried to load the initial experiment
        self.ready = threading.Event()
        if experiment is not None:
            self._status["loading"] = True

    # ------------------------------------------------------------------ public (any thread)
    def start(self) -> None:
        """Starts the worker thread (which loads the initial experiment, if any)."""
        if self._thread is not None:
            raise RuntimeError("session already started")
        self._thread = threading.Thread(target=self._run, name="atheria-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stops the worker after the step in progress and releases the engine; True if it ended."""
        self._stop.set()
        self._wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def experiments(self) -> List[str]:
        return list_experiments(self.root)

    def submit(self, cmd: Command) -> "concurrent.futures.Future[Dict[str, Any]]":
        """Queues a validated command; the future resolves to its reply dict (or its exception).

        Raises:
            SessionBusy: the queue is full (nothing was queued).
        """
        fut: "concurrent.futures.Future[Dict[str, Any]]" = concurrent.futures.Future()
        if self._stop.is_set():
            raise SessionBusy("server is shutting down")
        if self._thread is not None and not self._thread.is_alive():
            raise SessionBusy(f"the engine worker has stopped: {self.worker_error}")
        try:
            self._queue.put_nowait((cmd, fut))
        except queue.Full:
            raise SessionBusy(f"server busy: {COMMAND_QUEUE_SIZE} commands pending") from None
        self._wake.set()
        return fut

    def status(self) -> Dict[str, Any]:
        """A copy of the current status (experiment, engine, reason, route, step, fps, ...)."""
        with self._lock:
            st = dict(self._status)
            st["compare"] = {k: dict(v) for k, v in self._status["compare"].items()}
        return st

    def analysis_since(self, seq: int) -> Tuple[int, List[Dict[str, float]]]:
        """(latest seq, points with a sequence number > seq) of the analysis series."""
        with self._lock:
            latest = self._analysis_seq
            n_new = min(latest - seq, len(self._analysis)) if seq < latest else 0
            pts = list(self._analysis)[len(self._analysis) - n_new:] if n_new > 0 else []
        return latest, pts

    def set_view(self, key: Any, view: View) -> None:
        with self._lock:
            self._views[key] = view
        self._wake.set()

    def remove_view(self, key: Any) -> None:
        with self._lock:
            self._views.pop(key, None)

    # ------------------------------------------------------------------ worker
    def _empty_status(self) -> Dict[str, Any]:
        return {"experiment": None, "engine": None, "requested_engine": self._initial[1],
                "fallback_reason": None, "engine_kind": None, "model_route": None, "step": 0,
                "fps": 0.0, "ms_per_step": 0.0, "matter_count": 0, "running": False, "grid_size": 0,
                "d_state": 0, "viz_types": list(viz_types()), "loading": False, "error": None,
                "features": {"analysis": False, "snapshots": False, "history": False},
                "snapshots": [], "history_len": 0,
                "compare": {"native": {"fps": 0.0, "ms_per_step": 0.0},
                            "python": {"fps": 0.0, "ms_per_step": 0.0}}}

    def _set_status(self, **kw: Any) -> None:
        with self._lock:
            self._status.update(kw)

    def _run(self) -> None:
        try:
            name, engine = self._initial
            if name is not None:
                try:
                    self._load(name, engine)
                except Exception as exc:  # noqa: BLE001 - reported in the status, server keeps running
                    logger.error("cannot load experiment %r: %s", name, exc)
                    self._set_status(error=f"cannot load {name!r}: {exc}", loading=False)
            self.ready.set()
            while not self._stop.is_set():
                self._loop_once()
        except Exception as exc:  # noqa: BLE001 - a dead worker is reported, never silent
            logger.exception("engine worker stopped by an error")
            self.worker_error = str(exc)
            self._set_status(error=f"engine worker stopped: {exc}", running=False)
        finally:
            self.ready.set()
            self._fail_pending("server is shutting down")
            self._release_motor()

    def _loop_once(self) -> None:
        now = time.perf_counter()
        if self._running and self._motor is not None:
            wait = max(0.0, self._next_step_at - now)
        else:
            wait = 0.05
        self._drain_commands(wait)
        if self._stop.is_set():
            return
        now = time.perf_counter()
        if self._running and self._motor is not None and now >= self._next_step_at:
            try:
                self._step_once()
            except Exception as exc:  # noqa: BLE001 - a failing step pauses, the server stays up
                # (the engines change nothing on a failed step, e.g. a model returning NaN)
                logger.error("step failed, paused: %s", exc)
                self._running = False
                self._set_status(running=False, error=f"step failed, paused: {exc}")
            if self.max_steps_per_s > 0:
                self._next_step_at = max(self._next_step_at + 1.0 / self.max_steps_per_s,
                                         now - 1.0 / self.max_steps_per_s)
        for task in (self._update_rates, self._maybe_analyse, self._render_due):
            try:
                task()
            except Exception as exc:  # noqa: BLE001 - a read-out failure must not stop the worker
                logger.error("%s failed: %s", task.__name__, exc)

    def _drain_commands(self, wait: float) -> None:
        if wait > 0 and self._queue.empty():
            self._wake.clear()
            if self._queue.empty():
                self._wake.wait(wait)
        while not self._stop.is_set():
            try:
                cmd, fut = self._queue.get_nowait()
            except queue.Empty:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(self._execute(cmd))
            except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller
                fut.set_exception(exc)

    def _fail_pending(self, why: str) -> None:
        while True:
            try:
                _cmd, fut = self._queue.get_nowait()
            except queue.Empty:
                return
            if fut.set_running_or_notify_cancel():
                fut.set_exception(SessionBusy(why))

    # ------------------------------------------------------------------ commands
    def _execute(self, cmd: Command) -> Dict[str, Any]:
        a = cmd.action
        if a == "load":
            self._load(cmd.args["experiment"], cmd.args.get("engine", self._status["requested_engine"]))
            return {"loaded": cmd.args["experiment"]}
        if a == "engine":
            self._switch_engine(cmd.args["engine"])
            return {"engine": self._status["engine"]}
        motor = self._require_motor()
        if a == "play":
            self._set_status(error=None)
            self._running = True
            self._next_step_at = time.perf_counter()
            self._rate_t0, self._rate_steps = time.perf_counter(), 0
        elif a == "pause":
            self._running = False
        elif a == "step":
            self._running = False
            for _ in range(cmd.args["n"]):
                self._step_once()
        elif a == "reset":
            motor.regenerate_initial_state()
            self._step_base = 0
            self._changed()
            self._new_history()
            with self._lock:
                self._analysis.clear()
        elif a == "tool":
            # all-or-nothing in every engine (docs/tools.md): a ValueError leaves the field as it was
            self._history_push()  # so a rewind undoes the tool
            motor.apply_tool(cmd.args["tool"], cmd.args["params"])
            self._at_history_head = False
            self._changed()
        elif a == "snapshot_save":
            return self._snapshot_save()
        elif a == "snapshot_load":
            self._snapshot_load(cmd.args["name"])
        elif a == "rewind":
            self._rewind(cmd.args["n"])
        else:  # parse_control only lets known actions through
            raise RuntimeError(f"unhandled action {a!r}")
        self._set_status(running=self._running, step=self._step())
        return {"step": self._step(), "running": self._running}

    def _require_motor(self) -> Any:
        if self._motor is None:
            raise RuntimeError("no experiment loaded: send {\"action\": \"load\", \"experiment\": NAME}")
        return self._motor

    def _step(self) -> int:
        return self._step_base + int(self._motor.get_step_count()) if self._motor is not None else 0

    def _changed(self) -> None:
        self._version += 1

    def _step_once(self) -> None:
        t0 = time.perf_counter()
        self._motor.evolve_step(1)
        dt = time.perf_counter() - t0
        self._step_times.append(dt)
        self._rate_steps += 1
        self._at_history_head = False
        self._changed()
        if self._history is not None and self._step() % self.history_every == 0:
            self._history_push()

    # ------------------------------------------------------------------ engines
    def _create(self, name: str, engine: str) -> Any:
        from ..wrapper import create_motor

        # create_motor logs "Native engine (C) loaded: ..." or the fallback reason
        return create_motor(name, root=self.root, device=self.device, use_native=(engine == "native"),
                            grid_size=self.grid_size_override)

    def _engine_fields(self, motor: Any, engine: str) -> Dict[str, Any]:
        native = bool(getattr(motor, "is_native", False))
        reason = getattr(motor, "fallback_reason", None)
        if not native and engine == "python":
            reason = "Python engine requested"
        return {"engine": "native" if native else "python", "requested_engine": engine,
                "fallback_reason": None if native else reason,
                "engine_kind": getattr(motor, "engine_kind", None) if native else "dense",
                "model_route": getattr(motor, "model_route", None) if native else "torch (AetheriaMotor)",
                "grid_size": int(motor.grid_size), "d_state": int(motor.d_state),
                "viz_types": list(viz_types()),
                "features": {"analysis": callable(getattr(motor, "analyze", None)),
                             "snapshots": callable(getattr(motor, "snapshot", None)),
                             "history": callable(getattr(motor, "snapshot", None))}}

    def _load(self, name: str, engine: str) -> None:
        if name not in self.experiments():
            raise ValueError(f"unknown experiment {name!r}")
        self._set_status(loading=True)
        try:
            motor = self._create(name, engine)
        finally:
            self._set_status(loading=False)
        self._install(motor, name, engine, step_base=0)
        with self._lock:
            self._analysis.clear()

    def _switch_engine(self, engine: str) -> None:
        """Same experiment on the other engine; the field is carried over and the step count continues
        (a memory model's ConvLSTM memory starts afresh)."""
        self._require_motor()
        name = self._status["experiment"]
        old = self._motor
        self._set_status(loading=True)
        try:
            motor = self._create(name, engine)
        finally:
            self._set_status(loading=False)
        step = self._step()
        try:
            if (motor.grid_size, motor.d_state) == (old.grid_size, old.d_state):
                motor.set_state(old.get_dense_state())
        except (ValueError, TypeError, RuntimeError) as exc:
            logger.warning("engine switch: the field could not be carried over (%s); starting afresh", exc)
            step = 0
        if int(motor.get_step_count()) != 0:
            step -= int(motor.get_step_count())
        self._install(motor, name, engine, step_base=step)

    def _install(self, motor: Any, name: str, engine: str, *, step_base: int) -> None:
        self._release_motor()
        self._motor = motor
        self._step_base = step_base
        self._step_times.clear()
        self._rate_t0, self._rate_steps = time.perf_counter(), 0
        self._rendered.clear()
        self._changed()
        self._analyze_kw = _analyze_kwargs(motor)
        self._new_history()
        fields = self._engine_fields(motor, engine)
        if fields["engine"] == "native":
            logger.info("engine: native (%s, route %s) for %s", fields["engine_kind"], fields["model_route"], name)
        else:
            logger.warning("engine: python (AetheriaMotor) for %s: %s", name, fields["fallback_reason"])
        with self._lock:
            g = fields["grid_size"]
            for key, v in list(self._views.items()):
                roi_ok = v.roi is None or (v.roi[2] <= g and v.roi[3] <= g)
                self._views[key] = View(v.viz if v.viz in fields["viz_types"] else "density",
                                        v.roi if roi_ok else None,
                                        v.channel if v.channel <= max_channel(v.viz, fields["d_state"]) else 0)
        self._set_status(experiment=name, step=self._step(), running=self._running, error=None,
                         matter_count=self._matter_count(), snapshots=self._list_snapshots(name),
                         history_len=len(self._history) if self._history is not None else 0, **fields)

    # ------------------------------------------------------------------ history and snapshots
    def _new_history(self) -> None:
        """A fresh rewind history for the current motor, holding its present state."""
        self._history = None
        m = self._motor
        if m is None or not callable(getattr(m, "snapshot", None)):
            return
        from .. import History
        self._history = History(m, self.history_bytes)
        self._history_push()

    def _history_push(self) -> None:
        if self._history is None:
            return
        self._history.push()
        self._at_history_head = True
        self._set_status(history_len=len(self._history))

    def _rewind(self, n: int) -> None:
        """Back ``n`` history entries from the current state (the newest entry, when it is the
        current state, does not count), then paused."""
        if self._history is None:
            raise RuntimeError("rewind: this engine has no snapshots, so no history")
        k = n + 1 if self._at_history_head else n
        if k > len(self._history):
            raise ValueError(f"rewind: the history holds {len(self._history) - (1 if self._at_history_head else 0)} "
                             f"earlier state(s), asked for {n}")
        self._running = False
        self._history.rewind(k)
        self._at_history_head = True
        self._changed()
        step = self._step()
        with self._lock:
            while self._analysis and self._analysis[-1]["step"] > step:
                self._analysis.pop()
        self._set_status(history_len=len(self._history))

    def _experiment_snapshot_dir(self) -> str:
        from ..experiments import validate_experiment_name
        return os.path.join(self.snapshot_dir, validate_experiment_name(self._status["experiment"]))

    def _list_snapshots(self, name: Optional[str] = None) -> List[str]:
        """Snapshot names (file names without ``.snap``) saved for the experiment, newest last (at most 200)."""
        name = name or self._status["experiment"]
        if name is None:
            return []
        d = os.path.join(self.snapshot_dir, name)
        try:
            files = [f for f in os.listdir(d) if f.endswith(".snap") and os.path.isfile(os.path.join(d, f))]
        except OSError:
            return []
        return sorted(f[:-5] for f in files)[-200:]

    def _snapshot_save(self) -> Dict[str, Any]:
        m = self._require_motor()
        if not callable(getattr(m, "save_snapshot", None)):
            raise RuntimeError("snapshot_save: this engine has no snapshots")
        d = self._experiment_snapshot_dir()
        os.makedirs(d, exist_ok=True)
        base = f"step{self._step():08d}_{self._status['engine']}"
        name, k = base, 1
        while os.path.exists(os.path.join(d, name + ".snap")):
            k += 1
            name = f"{base}_{k}"
        path = m.save_snapshot(os.path.join(d, name + ".snap"))
        logger.info("snapshot saved: %s", path)
        self._set_status(snapshots=self._list_snapshots())
        return {"step": self._step(), "running": self._running, "snapshot": name}

    def _snapshot_load(self, name: str) -> None:
        """Restores a saved snapshot into the running engine (it must be of the same engine kind)."""
        from ..snapshot import read_snapshot_file

        m = self._require_motor()
        if name not in self._list_snapshots():
            raise ValueError(f"snapshot_load: no snapshot {name!r} for {self._status['experiment']!r}")
        path = os.path.join(self._experiment_snapshot_dir(), name + ".snap")
        snap = read_snapshot_file(path)  # SnapshotError (a ValueError) names the file and the cause
        m.restore(snap, _source=path)    # checks the engine kind and shapes before changing anything
        self._running = False
        self._step_base = 0
        self._changed()
        self._new_history()
        with self._lock:
            self._analysis.clear()
        logger.info("snapshot loaded: %s (step %d)", path, self._step())

    def _release_motor(self) -> None:
        m, self._motor = self._motor, None
        if m is not None:
            try:
                m.cleanup()
            except Exception as exc:  # noqa: BLE001 - releasing must not stop the server
                logger.warning("engine cleanup failed: %s", exc)

    # ------------------------------------------------------------------ measurements
    def _matter_count(self) -> int:
        m = self._motor
        if m is None:
            return 0
        getter = getattr(m, "get_matter_count", None)
        if callable(getter):
            return int(getter())
        # AetheriaMotor has no particle list: every cell with a non-zero state is matter
        psi = m.get_dense_state()
        return int(np.count_nonzero(np.any(psi != 0, axis=2)))

    def _update_rates(self) -> None:
        now = time.perf_counter()
        dt = now - self._rate_t0
        if dt < RATE_WINDOW_S or self._motor is None:
            return
        fps = self._rate_steps / dt if self._running or self._rate_steps else 0.0
        recent = list(self._step_times)[-max(self._rate_steps, 1):] if self._step_times else []
        ms = 1000.0 * float(np.mean(recent)) if recent else 0.0
        engine = self._status["engine"]
        with self._lock:
            self._status["fps"] = round(fps, 2)
            if recent:
                self._status["ms_per_step"] = round(ms, 4)
            if self._rate_steps and engine in self._status["compare"]:
                self._status["compare"][engine] = {"fps": round(fps, 2), "ms_per_step": round(ms, 4)}
            self._status["step"] = self._step()
            self._status["running"] = self._running
        self._set_status(matter_count=self._matter_count())
        self._rate_t0, self._rate_steps = now, 0

    def _maybe_analyse(self) -> None:
        m = self._motor
        if m is None:
            return
        now = time.perf_counter()
        with self._lock:
            last_step = self._analysis[-1]["step"] if self._analysis else None
        step = self._step()
        if step == last_step or now - self._last_analysis < ANALYSIS_INTERVAL_S:
            return
        self._last_analysis = now
        point = self._analysis_point(m)
        if point is None:
            return
        point["step"] = step
        with self._lock:
            self._analysis.append(point)
            self._analysis_seq += 1

    def _analysis_point(self, motor: Any) -> Optional[Dict[str, float]]:
        analyze = getattr(motor, "analyze", None)
        if not callable(analyze):
            return None
        a = analyze(**self._analyze_kw)
        return {"energy": float(a["energy"]), "coherence": float(a["phase_coherence"]),
                "matter": int(a["matter_count"])}

    # ------------------------------------------------------------------ frames
    def _render_due(self) -> None:
        m = self._motor
        if m is None or self.on_frame is None:
            return
        with self._lock:
            views = set(self._views.values())
        now = time.perf_counter()
        period = 1.0 / self.max_fps
        for v in list(self._rendered):
            if v not in views:
                del self._rendered[v]
        for v in views:
            version, t = self._rendered.get(v, (-1, -math.inf))
            if version == self._version or now - t < period:
                continue
            frame = self._render(m, v)
            self._rendered[v] = (self._version, now)
            if frame is not None:
                self.on_frame(v, frame)

    def _render(self, motor: Any, view: View) -> Optional[bytes]:
        try:
            # holographic_bulk: the view's channel is the layer of the stack, not a state channel
            state_channel = 0 if view.viz == "holographic_bulk" else view.channel
            vd = motor.get_visualization_data(view.viz, roi=view.roi, channel=state_channel)
        except (ValueError, TypeError) as exc:
            logger.warning("cannot render %s: %s", view, exc)
            return None
        try:
            # layered maps (L, h, w): the view's channel picks the layer
            data = as_frame_array(vd["data"], view.channel)
        except ValueError as exc:
            logger.warning("cannot render %s: %s", view, exc)
            return None
        h, w = data.shape[0], data.shape[1]
        stride = max(1, math.ceil(max(h, w) / MAX_FRAME_SIDE))
        if stride > 1:
            data = data[::stride, ::stride]
        x0, y0 = (view.roi[0], view.roi[1]) if view.roi is not None else (0, 0)
        names = self._status["viz_types"]
        self._seq += 1
        return encode_frame(data, step=self._step(), x0=x0, y0=y0,
                            viz_index=names.index(view.viz) if view.viz in names else 255,
                            stride=stride, seq=self._seq)
