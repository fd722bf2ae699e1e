"""Export of trained rules to model files (the contract of docs/torchscript.md).

:func:`export_model` writes the TorchScript file and, with ``aoti=True``, an AOTInductor
``.pt2`` package for one grid size (:func:`export_aoti_module`); the loader prefers the package
for a DenseEngine of that size (atheria_core._model_loader).

:func:`export_model_to_jit` turns a checkpoint (or an experiment's latest
checkpoint, or an ``nn.Module``) into a ``.pt`` file that the native engines
load: traced first, scripted when tracing fails or the traced copy disagrees
with the eager model; saved with the ``atheria_meta.json`` extra file;
verified by reloading it and comparing with the eager model (on the example
size and on a second size, so a trace that baked in the shape is caught).

The file is cached next to the checkpoint (``checkpoint_ep10.pth`` ->
``checkpoint_ep10.jit.pt``) and re-exported when the checkpoint's SHA-256
(recorded in the metadata), the metadata version or the torch version changes.
"""
from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import nn

from . import _route_speed
from . import experiments as _exp
from ._metadata import AOTI_FORMAT
from ._model_loader import (META_FORMAT, META_NAME, META_VERSION, ModelLoadError, aoti_path_for,
                            quiet_jit_deprecation, read_metadata)

logger = logging.getLogger(__name__)

__all__ = ["ExportError", "AotiUnavailableError", "ExportResult", "export_model", "export_model_to_jit",
           "export_aoti_module", "jit_path_for_checkpoint", "aoti_path_for", "build_metadata", "export_module"]

#: default comparison tolerance (absolute, on δ) between the eager and the exported model
DEFAULT_ATOL = 1e-5


class ExportError(RuntimeError):
    """The model could not be exported, or the exported file does not reproduce the eager model."""


class AotiUnavailableError(ExportError):
    """AOTInductor cannot compile here (no C++ compiler, torch without torch.export / inductor)."""


def jit_path_for_checkpoint(checkpoint: str) -> str:
    """``.../checkpoint_ep10.pth`` -> ``.../checkpoint_ep10.jit.pt``."""
    base = checkpoint[:-4] if checkpoint.endswith(".pth") else checkpoint
    return base + ".jit.pt"


def _size_multiple(model: nn.Module) -> int:
    m = getattr(model, "size_multiple", 1)
    return int(m) if isinstance(m, int) and m >= 1 else 1


def _example_sizes(model: nn.Module, grid_size: int) -> List[Tuple[int, int]]:
    """The export size (rounded up to the model's size multiple) and a second, rectangular one."""
    m = _size_multiple(model)
    g = max(m, -(-int(grid_size) // m) * m)
    return [(g, g), (g + m, 2 * m if g != 2 * m else 3 * m)]


def _zero_preserving(model: nn.Module, d: int, size: Tuple[int, int], device: torch.device) -> bool:
    x = torch.zeros(1, 2 * d, *size, device=device)
    out = model(x, *model.init_memory(x)) if getattr(model, "has_memory", False) else model(x)
    delta = out[0] if isinstance(out, tuple) else out
    return bool((delta == 0).all())


def build_metadata(model: nn.Module, *, checkpoint_sha256: Optional[str], d_state: int,
                   example_size: Tuple[int, int], device: torch.device, **extra: Any) -> Dict[str, Any]:
    """The ``atheria_meta.json`` dict for ``model`` (docs/torchscript.md) plus ``extra`` keys.

    ``zero_preserving`` is measured: the model's output on an all-zero input is exactly 0.
    """
    rr = getattr(model, "receptive_radius", None)
    meta: Dict[str, Any] = {
        "format": META_FORMAT, "version": META_VERSION,
        "architecture": getattr(model, "architecture", type(model).__name__),
        "d_state": int(d_state),
        "has_memory": bool(getattr(model, "has_memory", False)),
        "unitary": bool(getattr(model, "unitary", False)),
        "receptive_radius": None if rr is None else int(rr),
        "zero_preserving": _zero_preserving(model, d_state, example_size, device),
        "checkpoint_sha256": checkpoint_sha256,
        "torch_version": str(torch.__version__),
    }
    params = getattr(model, "model_params", None)
    if isinstance(params, dict):
        meta["model_params"] = dict(params)
    spec_fn = getattr(model, "conv_model_spec", None)
    if callable(spec_fn):
        # The native engines may run this model with their built-in C conv stack
        # (atheria_core.ConvModel) instead of the TorchScript forward; the weights
        # are the file's conv parameters in order (_model_loader.native_conv_model).
        spec = spec_fn()
        meta["native_equivalent"] = {"kind": "conv_stack", "activation": spec["activation"],
                                     "n_layers": len(spec["weights"]), "bias": spec["biases"] is not None}
    meta.update(extra)
    return meta


def _run(module: Any, model_has_memory: bool, x: torch.Tensor, steps: int = 2) -> List[torch.Tensor]:
    """Outputs of ``steps`` consecutive calls (memory carried) on the same input."""
    if not model_has_memory:
        return [module(x)]
    h, c = module.init_memory(x)
    outs = [h, c]
    for _ in range(steps):
        delta, h, c = module(x, h, c)
        outs += [delta, h, c]
    return outs


def _compare(eager: nn.Module, candidate: Any, d: int, sizes: List[Tuple[int, int]], device: torch.device,
             atol: float, seed: int = 1234) -> float:
    """Max |eager − candidate| over random inputs of the given sizes; raises ExportError above atol."""
    gen = torch.Generator().manual_seed(seed)
    mem = bool(getattr(eager, "has_memory", False))
    worst = 0.0
    for (h, w) in sizes:
        x = torch.randn(1, 2 * d, h, w, generator=gen).to(device)
        a = _run(eager, mem, x)
        b = _run(candidate, mem, x)
        for i, (ta, tb) in enumerate(zip(a, b)):
            if tuple(ta.shape) != tuple(tb.shape):
                raise ExportError(f"output {i} shape {tuple(tb.shape)} != eager {tuple(ta.shape)} at size {h}x{w}")
            err = float((ta - tb).abs().max()) if ta.numel() else 0.0
            worst = max(worst, err)
            if not err <= atol:
                raise ExportError(f"output {i} differs from the eager model by {err:.3g} (> {atol:g}) "
                                  f"at size {h}x{w}")
    return worst


def _to_script(model: nn.Module, d: int, size: Tuple[int, int], device: torch.device, method: str):
    if method == "script":
        return torch.jit.script(model)
    x = torch.randn(1, 2 * d, *size, device=device)
    if getattr(model, "has_memory", False):
        h, c = model.init_memory(x)
        traced = torch.jit.trace(model, (x, h, c), check_trace=False)
        if not hasattr(traced, "init_memory"):  # init_memory not decorated with @torch.jit.export
            traced = torch.jit.trace_module(model, {"forward": (x, h, c), "init_memory": (x,)},
                                            check_trace=False)
        return traced
    return torch.jit.trace(model, x, check_trace=False)


def export_module(model: nn.Module, output_path: str, *, d_state: Optional[int] = None, grid_size: int = 32,
                  checkpoint_sha256: Optional[str] = None, atol: float = DEFAULT_ATOL,
                  device: Union[str, torch.device] = "cpu", extra_meta: Optional[Dict[str, Any]] = None) -> str:
    """Exports an eager model to ``output_path`` (atomically) and verifies it; returns the path.

    Args:
        model: an atheria_core.models network (or any module with the same contract).
        d_state: complex channels; default ``model.d_state``.
        grid_size: side of the example input (rounded up to the model's size multiple).
        checkpoint_sha256: recorded in the metadata (cache key).
        atol: max abs difference on δ (and h, c) between eager and exported outputs.
        device: where tracing and verification run.
    Raises:
        ExportError: neither tracing nor scripting gives a module matching the eager one.
    """
    dev = torch.device(device)
    d = int(d_state if d_state is not None else getattr(model, "d_state"))
    was_training = model.training
    model = model.to(dev).eval()
    sizes = _example_sizes(model, grid_size)
    errors = []
    try:
        with torch.no_grad(), quiet_jit_deprecation():
            meta = build_metadata(model, checkpoint_sha256=checkpoint_sha256, d_state=d, example_size=sizes[0],
                                  device=dev, **(extra_meta or {}))
            for method in ("trace", "script"):
                try:
                    sm = _to_script(model, d, sizes[0], dev, method)
                    _compare(model, sm, d, sizes, dev, atol)
                except Exception as exc:  # noqa: BLE001 - any failure moves on to the next method
                    logger.info("export by %s failed: %s", method, exc)
                    errors.append(f"{method}: {type(exc).__name__}: {exc}")
                    continue
                meta["export_method"] = method
                buf = io.BytesIO()
                torch.jit.save(sm, buf, _extra_files={META_NAME: json.dumps(meta, sort_keys=True)})
                data = buf.getvalue()
                # reload from the bytes before publishing the file
                reloaded = torch.jit.load(io.BytesIO(data), map_location=dev)
                worst = _compare(model, reloaded, d, sizes, dev, atol)
                _exp.atomic_write_bytes(output_path, data)
                logger.info("exported %s by %s to %s (max |diff| %.2g)", meta["architecture"], method,
                            output_path, worst)
                return output_path
    finally:
        model.train(was_training)
    raise ExportError(f"could not export {type(model).__name__} to {output_path}: " + "; ".join(errors))


def _cxx_compiler() -> Optional[str]:
    """The C++ compiler AOTInductor would use (its config, $CXX, or g++/clang++ on PATH), or None."""
    try:
        from torch._inductor import config as ind_config
        cand = ind_config.cpp.cxx[-1] if isinstance(getattr(ind_config.cpp, "cxx", None), tuple) else None
    except Exception:  # noqa: BLE001 - old torch: fall back to the usual names
        cand = None
    for name in (cand, os.environ.get("CXX"), "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def aoti_unavailable_reason() -> Optional[str]:
    """Why this machine cannot write .pt2 packages (None when it can)."""
    if not hasattr(torch, "export") or not hasattr(torch._inductor, "aoti_compile_and_package"):
        return f"torch {torch.__version__} has no torch.export / aoti_compile_and_package"
    if _cxx_compiler() is None:
        return "no C++ compiler (AOTInductor compiles with g++/clang++; set CXX)"
    return None


def export_aoti_module(model: nn.Module, output_path: str, *, d_state: Optional[int] = None, grid_size: int,
                       checkpoint_sha256: Optional[str] = None, atol: float = DEFAULT_ATOL,
                       device: Union[str, torch.device] = "cpu",
                       extra_meta: Optional[Dict[str, Any]] = None) -> Tuple[str, float]:
    """Compiles ``model`` for inputs (1, 2·d, grid_size, grid_size) into a .pt2 package at
    ``output_path`` (atomically) and verifies it against the eager model; returns (path, compile seconds).

    Memory models are exported as ``forward(x, h, c)``; their ``init_memory`` must give zeros
    (recorded as ``memory_shape``).  The package's ``atheria_meta`` (docs/torchscript.md) holds
    the metadata of the TorchScript file plus ``input_shape``, ``memory_shape``, ``device``.

    Raises:
        AotiUnavailableError: no compiler / no torch.export here.
        ExportError: the model cannot be exported at this size, or the package disagrees with the
            eager model by more than ``atol``.
    """
    why = aoti_unavailable_reason()
    if why is not None:
        raise AotiUnavailableError(f"cannot write {output_path}: {why}")
    dev = torch.device(device)
    d = int(d_state if d_state is not None else getattr(model, "d_state"))
    g = int(grid_size)
    if g % _size_multiple(model):
        raise ExportError(f"cannot write {output_path}: grid size {g} is not a multiple of the model's "
                          f"size multiple {_size_multiple(model)}")
    mem = bool(getattr(model, "has_memory", False))
    was_training = model.training
    model = model.to(dev).eval()
    try:
        with torch.no_grad():
            x = torch.randn(1, 2 * d, g, g, generator=torch.Generator().manual_seed(99)).to(dev)
            args: Tuple[torch.Tensor, ...] = (x,)
            mem_shape = None
            if mem:
                h, c = model.init_memory(x)
                if bool(h.any()) or bool(c.any()) or h.shape != c.shape:
                    raise ExportError(f"cannot write {output_path}: init_memory(x) is not zeros of one shape")
                mem_shape = [int(v) for v in h.shape]
                args = (x, h, c)
            meta = build_metadata(model, checkpoint_sha256=checkpoint_sha256, d_state=d, example_size=(g, g),
                                  device=dev, **(extra_meta or {}))
            meta.update(format=AOTI_FORMAT, input_shape=[1, 2 * d, g, g], memory_shape=mem_shape,
                        device=dev.type, grid_size=g)
            meta.pop("native_equivalent", None)
            try:
                with quiet_jit_deprecation():  # torch.export's own internals call torch.jit.*
                    ep = torch.export.export(model, args)
            except Exception as exc:  # noqa: BLE001 - reported with the cause
                raise ExportError(f"cannot write {output_path}: torch.export failed ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
        out_dir = os.path.dirname(os.path.abspath(output_path))
        fd, tmp = tempfile.mkstemp(prefix=".aoti-", suffix=".pt2", dir=out_dir)
        os.close(fd)
        try:
            t0 = time.perf_counter()
            try:
                with quiet_jit_deprecation():
                    torch._inductor.aoti_compile_and_package(
                        ep, package_path=tmp,
                        inductor_configs={"aot_inductor.metadata": {"atheria_meta": json.dumps(meta, sort_keys=True)}})
            except Exception as exc:  # noqa: BLE001
                raise ExportError(f"cannot write {output_path}: AOTInductor compile failed "
                                  f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
            compile_s = time.perf_counter() - t0
            runner = torch._inductor.aoti_load_package(tmp)
            worst = 0.0
            with torch.no_grad():
                for trial in range(2):
                    xt = torch.randn(1, 2 * d, g, g, generator=torch.Generator().manual_seed(7 + trial)).to(dev)
                    a = _run(model, mem, xt)
                    if mem:
                        hh, cc = torch.zeros(mem_shape, device=dev), torch.zeros(mem_shape, device=dev)
                        b = [hh, cc]
                        for _ in range(2):
                            delta, hh, cc = runner(xt, hh, cc)
                            b += [delta, hh, cc]
                    else:
                        b = [runner(xt)]
                    for ta, tb in zip(a, b):
                        err = float((ta - tb).abs().max())
                        worst = max(worst, err)
                        if not err <= atol:
                            raise ExportError(f"cannot write {output_path}: the package differs from the eager "
                                              f"model by {err:.3g} (> {atol:g})")
            os.replace(tmp, output_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    finally:
        model.train(was_training)
    logger.info("compiled %s for %dx%d to %s in %.1f s (max |diff| %.2g)", meta["architecture"], g, g,
                output_path, compile_s, worst)
    return output_path, compile_s


@dataclass
class ExportResult:
    """What :func:`export_model` wrote: the TorchScript file, the .pt2 package (or why not),
    and the AOTInductor compile time in seconds (0 when a cached package was reused)."""

    jit_path: str
    pt2_path: Optional[str]
    compile_seconds: float
    aoti_skipped: Optional[str]


def _aoti_cache_valid(path: str, sha: Optional[str], grid: int, d: int) -> bool:
    if not os.path.isfile(path):
        return False
    try:
        meta = read_metadata(path)
    except ModelLoadError as exc:
        logger.warning("cached package %s is unusable (%s); recompiling", path, exc)
        return False
    return (meta is not None and meta.is_aoti and meta.checkpoint_sha256 == sha
            and meta.torch_version == str(torch.__version__) and meta.input_shape == (1, 2 * d, grid, grid))


def export_model(source: Union[str, "os.PathLike[str]", _exp.Experiment], *, root: str = "output",
                 aoti: bool = True, grid_size: Optional[int] = None, device: str = "cpu", force: bool = False,
                 atol: float = DEFAULT_ATOL) -> ExportResult:
    """Exports an experiment's (or checkpoint's) rule: the TorchScript file (:func:`export_model_to_jit`)
    and, with ``aoti``, the .pt2 package for ``grid_size`` (default the experiment's
    GRID_SIZE_INFERENCE) next to it (``checkpoint_ep3.jit.pt`` -> ``checkpoint_ep3.g128.pt2``).

    The package is cached by checkpoint sha256 + torch version + grid size.  When AOTInductor
    cannot run here (no compiler, old torch) or the model does not export, the TorchScript file
    is still written and ``aoti_skipped`` says why (logged).
    """
    jit = export_model_to_jit(source, root=root, device=device, force=force, atol=atol)
    if not aoti:
        return ExportResult(jit, None, 0.0, "aoti=False")
    meta = read_metadata(jit)
    if isinstance(source, _exp.Experiment):
        exp = source
        ckpt = _exp.find_latest_checkpoint(exp.name, exp.root)
    elif not os.path.isfile(os.fspath(source)):
        exp = _exp.load_experiment_config(os.fspath(source), root)
        ckpt = _exp.find_latest_checkpoint(exp.name, exp.root)
    else:
        ckpt = os.path.abspath(os.fspath(source))
        ck_dir = os.path.dirname(ckpt)
        exp = _exp.load_experiment_config(os.path.basename(ck_dir), os.path.dirname(os.path.dirname(ck_dir)))
    if meta is None or ckpt is None:
        return ExportResult(jit, None, 0.0, "no metadata or checkpoint")
    g = int(grid_size or exp.grid_size_inference)
    pt2 = aoti_path_for(jit, g)
    if not force and _aoti_cache_valid(pt2, meta.checkpoint_sha256, g, exp.d_state):
        logger.info("using cached AOTInductor package %s", pt2)
        if _route_speed.read(pt2) is None:
            record_route_speed(pt2, jit, device)
        return ExportResult(jit, pt2, 0.0, None)
    model = _exp.load_model_from_checkpoint(exp, ckpt, device=device)
    extra = {"experiment": exp.name, "grid_size_training": exp.grid_size_training,
             "gamma_decay": exp.gamma_decay, "checkpoint_epoch": getattr(model, "checkpoint_epoch", None)}
    try:
        path, secs = export_aoti_module(model, pt2, d_state=exp.d_state, grid_size=g,
                                        checkpoint_sha256=meta.checkpoint_sha256, atol=atol, device=device,
                                        extra_meta=extra)
    except ExportError as exc:
        logger.warning("no .pt2 package for %s: %s", exp.name, exc)
        return ExportResult(jit, None, 0.0, str(exc))
    record_route_speed(path, jit, device)
    return ExportResult(jit, path, secs, None)


def record_route_speed(pt2: str, jit: str, device: str = "cpu") -> Optional[str]:
    """Times the package's forward against the TorchScript route's (frozen + optimised when that
    is exact, as the loader runs it) on one input of the package's shape, in lock-step, and
    writes ``<pt2>.speed.json`` (:mod:`._route_speed`); returns its path, or None when the timing
    could not run (logged: the loader then keeps its fixed preference, the package first)."""
    try:
        from ._model_loader import optimize_script_module
        pmeta = read_metadata(pt2)
        shape = list(pmeta.input_shape)
        dev = torch.device(device)
        runner = torch._inductor.aoti_load_package(pt2)
        with quiet_jit_deprecation():
            module = torch.jit.load(jit, map_location=dev).eval()
            module, _ = optimize_script_module(torch, module, pmeta.memory_shape is not None, shape, dev)
        args: Tuple[torch.Tensor, ...] = (torch.randn(*shape, generator=torch.Generator().manual_seed(11)).to(dev),)
        if pmeta.memory_shape is not None:
            args += (torch.zeros(list(pmeta.memory_shape), device=dev), torch.zeros(list(pmeta.memory_shape), device=dev))
        with torch.no_grad():
            ms = _route_speed.median_ms({"aoti": lambda: runner(*args), "torchscript": lambda: module(*args)})
        path = _route_speed.write(pt2, ms["aoti"], ms["torchscript"], torch.get_num_threads(), torch.__version__)
    except Exception as exc:  # noqa: BLE001 - timing is advice; the export itself succeeded
        logger.warning("could not time %s against TorchScript (%s: %s); the loader keeps the package first",
                       pt2, type(exc).__name__, exc)
        return None
    logger.info("route speed of %s: package %.3g ms, frozen TorchScript %.3g ms per forward", pt2, ms["aoti"],
                ms["torchscript"])
    return path


def _cache_valid(path: str, sha: Optional[str]) -> bool:
    if not os.path.isfile(path):
        return False
    try:
        meta = read_metadata(path)
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()                 # CRC of every member
        if bad is not None:
            raise ModelLoadError(f"CRC error in member {bad}", kind="corrupt", path=path)
    except (ModelLoadError, zipfile.BadZipFile, OSError) as exc:
        logger.warning("cached export %s is unusable (%s); re-exporting", path, exc)
        return False
    return (meta is not None and meta.checkpoint_sha256 == sha and meta.version == META_VERSION
            and meta.torch_version == str(torch.__version__))


def export_model_to_jit(source: Union[str, "os.PathLike[str]", _exp.Experiment, nn.Module],
                        output_path: Optional[str] = None, *, experiment: Optional[Union[str, _exp.Experiment]] = None,
                        root: str = "output", device: str = "cpu", grid_size: Optional[int] = None,
                        force: bool = False, atol: float = DEFAULT_ATOL) -> str:
    """Exports a trained rule to a TorchScript file and returns its path.

    Args:
        source: a checkpoint path (``.../training_checkpoints/<NAME>/checkpoint_epN.pth``),
            an experiment name or :class:`~atheria_core.experiments.Experiment` (its latest
            checkpoint), or an ``nn.Module`` (then ``output_path`` is required; no cache).
        output_path: where to write; default next to the checkpoint (``checkpoint_epN.jit.pt``).
        experiment: the experiment of a checkpoint path; default: inferred from the path
            (``<root>/training_checkpoints/<NAME>/...``) and its config.
        root: experiments root for names.
        device: device used for tracing and verification ('cpu' gives portable files).
        grid_size: example input side; default the config's GRID_SIZE_TRAINING (32 for modules).
        force: re-export even if the cached file is current.
        atol: tolerance of the eager-vs-exported check.

    Returns:
        Path of the ``.pt`` file.  An up-to-date cached file (same checkpoint SHA-256,
        metadata version and torch version) is returned without re-exporting.

    Raises:
        ExperimentNotFoundError / ConfigError / CheckpointNotFoundError / CheckpointError
        (see atheria_core.experiments), ExportError.
    """
    if isinstance(source, nn.Module):
        if output_path is None:
            raise ValueError("output_path is required when exporting an nn.Module")
        return export_module(source, os.fspath(output_path), grid_size=grid_size or 32, device=device, atol=atol)

    if isinstance(source, _exp.Experiment) or (isinstance(source, str) and not os.path.exists(source)
                                               and not source.endswith((".pth", ".pt"))):
        exp = source if isinstance(source, _exp.Experiment) else _exp.load_experiment_config(source, root)
        ckpt = _exp.find_latest_checkpoint(exp.name, exp.root)
        if ckpt is None:
            raise _exp.CheckpointNotFoundError(f"experiment {exp.name!r} has no checkpoint_ep*.pth in "
                                               f"{exp.checkpoint_dir}")
    else:
        ckpt = os.fspath(source)
        if not os.path.isfile(ckpt):
            raise _exp.CheckpointNotFoundError(f"checkpoint not found: {ckpt}")
        if experiment is None:
            ck_dir = os.path.dirname(os.path.abspath(ckpt))
            parent = os.path.dirname(ck_dir)
            if os.path.basename(parent) != "training_checkpoints":
                raise ValueError(f"cannot infer the experiment of {ckpt}: it is not under "
                                 "<root>/training_checkpoints/<NAME>/; pass experiment=")
            exp = _exp.load_experiment_config(os.path.basename(ck_dir), os.path.dirname(parent))
        elif isinstance(experiment, _exp.Experiment):
            exp = experiment
        else:
            exp = _exp.load_experiment_config(experiment, root)

    out = os.fspath(output_path) if output_path is not None else jit_path_for_checkpoint(ckpt)
    sha = _exp.verify_checksum(ckpt) or _exp.sha256_file(ckpt)
    if not force and _cache_valid(out, sha):
        logger.info("using cached TorchScript export %s", out)
        return out
    model = _exp.load_model_from_checkpoint(exp, ckpt, device=device)
    extra = {"experiment": exp.name, "grid_size_training": exp.grid_size_training,
             "gamma_decay": exp.gamma_decay, "checkpoint_epoch": getattr(model, "checkpoint_epoch", None)}
    return export_module(model, out, d_state=exp.d_state, grid_size=grid_size or exp.grid_size_training,
                         checkpoint_sha256=sha, atol=atol, device=device, extra_meta=extra)
