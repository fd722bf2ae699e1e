"""Experiments on disk: configs, checkpoints, model loading.

Layout (``root`` defaults to ``output``)::

    <root>/experiments/<NAME>/config.json
    <root>/training_checkpoints/<NAME>/checkpoint_ep{N}.pth          torch.save dict
    <root>/training_checkpoints/<NAME>/checkpoint_ep{N}.pth.sha256   "<hex>  checkpoint_ep{N}.pth"
    <root>/training_checkpoints/<NAME>/checkpoint_ep{N}.jit.pt       TorchScript export (cache)

``config.json`` keys (see :data:`CONFIG_KEYS`): EXPERIMENT_NAME, MODEL_ARCHITECTURE,
MODEL_PARAMS {d_state, hidden_channels, ...}, GRID_SIZE_TRAINING, GRID_SIZE_INFERENCE,
GAMMA_DECAY, INITIAL_STATE_MODE_INFERENCE, USE_NATIVE_ENGINE, CONFIG_VERSION; any other
key is kept verbatim in :attr:`Experiment.extra`.

Every write is atomic (temporary file in the same directory, fsync, ``os.replace``).
Checkpoints get a SHA-256 sidecar that loaders verify; a checkpoint without a
sidecar (older runs) loads with a logged warning, a mismatch is an error.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import re
import reprlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from ._atomic import atomic_write_bytes  # noqa: F401  (re-exported: part of this module's API)

logger = logging.getLogger(__name__)

__all__ = [
    "CONFIG_VERSION", "CHECKPOINT_FORMAT_VERSION", "CONFIG_KEYS", "Experiment",
    "ExperimentError", "ExperimentNotFoundError", "ConfigError", "CheckpointNotFoundError",
    "CheckpointError", "ChecksumMismatchError",
    "experiment_dir", "checkpoint_dir", "checkpoint_path", "validate_experiment_name",
    "load_experiment_config", "load_experiment", "save_experiment_config", "parse_config",
    "list_checkpoints", "find_latest_checkpoint", "save_checkpoint", "load_checkpoint",
    "load_model_from_checkpoint", "sha256_file", "atomic_write_bytes", "verify_checksum",
]

#: version written into config.json; configs without one are read as version 1
CONFIG_VERSION = 1
#: version of the checkpoint dict written by save_checkpoint
CHECKPOINT_FORMAT_VERSION = 1
#: key -> (required, description)
CONFIG_KEYS: Dict[str, Tuple[bool, str]] = {
    "EXPERIMENT_NAME": (True, "str, the directory name"),
    "MODEL_ARCHITECTURE": (True, "str, a name of atheria_core.models.available_architectures()"),
    "MODEL_PARAMS": (True, "object, constructor arguments; d_state (int >= 1) is required"),
    "GRID_SIZE_TRAINING": (True, "int >= 1, grid side used in training"),
    "GRID_SIZE_INFERENCE": (False, "int >= 1, grid side for simulation (default: GRID_SIZE_TRAINING)"),
    "GAMMA_DECAY": (False, "float >= 0, Lindblad decay (default 0.0)"),
    "INITIAL_STATE_MODE_INFERENCE": (False, "str, 'complex_noise' | 'zeros' | 'random' (default complex_noise)"),
    "USE_NATIVE_ENGINE": (False, "bool, prefer the native engine (default true)"),
    "CONFIG_VERSION": (False, f"int, format version (default 1, current {CONFIG_VERSION})"),
}
_INITIAL_MODES = ("complex_noise", "zeros", "random")
# Used with fullmatch only: "$" would accept a trailing newline ("X\n"), and \d any Unicode digit.
_CKPT_RE = re.compile(r"checkpoint_ep([0-9]+)\.pth", re.ASCII)
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", re.ASCII)
#: Largest config.json / .sha256 sidecar read (bytes): a bigger file is an error, not a read.
MAX_CONFIG_BYTES = 1 << 20
MAX_SIDECAR_BYTES = 4096
PathLike = Union[str, "os.PathLike[str]"]


# --------------------------------------------------------------------------- errors
class ExperimentError(Exception):
    """Base class of the experiment errors."""


class ExperimentNotFoundError(ExperimentError, FileNotFoundError):
    """The experiment directory or its config.json does not exist."""


class ConfigError(ExperimentError, ValueError):
    """config.json is unreadable, not valid JSON, lacks a key, or has a wrong value."""


class CheckpointNotFoundError(ExperimentError, FileNotFoundError):
    """No checkpoint file where one was required."""


class CheckpointError(ExperimentError, ValueError):
    """A checkpoint is truncated/corrupt, lacks model_state_dict, or does not fit the model."""


class ChecksumMismatchError(CheckpointError):
    """The checkpoint's SHA-256 differs from its sidecar (file changed or damaged)."""


# --------------------------------------------------------------------------- file helpers
def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _sidecar(path: str) -> str:
    return path + ".sha256"


def _write_sidecar(path: str, digest: str) -> None:
    atomic_write_bytes(_sidecar(path), f"{digest}  {os.path.basename(path)}\n".encode())


def verify_checksum(path: PathLike) -> Optional[str]:
    """Verifies ``path`` against its ``.sha256`` sidecar.

    Returns the file's SHA-256, or None when there is no sidecar (logged).
    Raises ChecksumMismatchError on mismatch, CheckpointError on an unreadable sidecar.
    """
    path = os.fspath(path)
    side = _sidecar(path)
    digest = sha256_file(path)
    if not os.path.exists(side):
        logger.warning("checkpoint %s has no .sha256 sidecar; integrity not verified", path)
        return None
    try:
        with open(side, "rb") as fh:
            raw = fh.read(MAX_SIDECAR_BYTES + 1)
    except OSError as exc:
        raise CheckpointError(f"unreadable checksum file {side}: {exc}") from exc
    expected = parse_sidecar(raw, side)
    if expected != digest:
        raise ChecksumMismatchError(
            f"checkpoint {path} is corrupt or was modified: sha256 {digest} != {expected} recorded in {side}")
    return digest


def parse_sidecar(raw: bytes, source: str = "checksum file") -> str:
    """The lower-case hex SHA-256 recorded in a ``.sha256`` sidecar's bytes
    (``"<hex>  <file name>"``, as ``sha256sum`` writes it).  CheckpointError if malformed."""
    if len(raw) > MAX_SIDECAR_BYTES:
        raise CheckpointError(f"{source}: malformed checksum file (more than {MAX_SIDECAR_BYTES} bytes)")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{source}: unreadable checksum file (not ASCII: {exc})") from None
    fields = text.split()
    expected = fields[0].lower() if fields else ""
    if not re.fullmatch(r"[0-9a-f]{64}", expected, flags=re.ASCII):
        raise CheckpointError(f"{source}: malformed checksum file (no 64-digit hex SHA-256 first)")
    return expected


def validate_experiment_name(name: Any) -> str:
    """Experiment names are directory names: letters, digits, '_', '-', '.', no path parts."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or ".." in name:
        raise ValueError(f"invalid experiment name {name!r}: use letters, digits, '_', '-', '.' "
                         "(no path separators, not starting with '.')")
    return name


def experiment_dir(name: str, root: PathLike = "output") -> str:
    """``<root>/experiments/<name>``."""
    return os.path.join(os.fspath(root), "experiments", validate_experiment_name(name))


def checkpoint_dir(name: str, root: PathLike = "output") -> str:
    """``<root>/training_checkpoints/<name>``."""
    return os.path.join(os.fspath(root), "training_checkpoints", validate_experiment_name(name))


def checkpoint_path(name: str, epoch: int, root: PathLike = "output") -> str:
    """``<root>/training_checkpoints/<name>/checkpoint_ep{epoch}.pth``."""
    return os.path.join(checkpoint_dir(name, root), f"checkpoint_ep{int(epoch)}.pth")


# --------------------------------------------------------------------------- config
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_finite_real(v: Any) -> bool:
    """A JSON number (not bool) that is a finite float64 (a 400-digit int is not)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


#: Bounded repr for error messages: a config value may be a 4000-digit int or nested 1000 deep.
_REPR = reprlib.Repr()
_REPR.maxlong = 40
_REPR.maxstring = 80
_REPR.maxother = 80


@dataclass
class Experiment:
    """A parsed ``config.json`` plus where the experiment lives.

    ``exp["GRID_SIZE_TRAINING"]`` style access reads the config dict (:meth:`to_config`).
    """

    name: str
    architecture: str
    model_params: Dict[str, Any]
    grid_size_training: int
    grid_size_inference: int
    gamma_decay: float = 0.0
    initial_state_mode: str = "complex_noise"
    use_native_engine: bool = True
    config_version: int = CONFIG_VERSION
    extra: Dict[str, Any] = field(default_factory=dict)
    root: str = "output"

    @property
    def d_state(self) -> int:
        return int(self.model_params["d_state"])

    @property
    def config_dir(self) -> str:
        return experiment_dir(self.name, self.root)

    @property
    def config_path(self) -> str:
        return os.path.join(self.config_dir, "config.json")

    @property
    def checkpoint_dir(self) -> str:
        return checkpoint_dir(self.name, self.root)

    def to_config(self) -> Dict[str, Any]:
        """The config.json dict (extra keys included)."""
        cfg = dict(self.extra)
        cfg.update({
            "EXPERIMENT_NAME": self.name, "MODEL_ARCHITECTURE": self.architecture,
            "MODEL_PARAMS": dict(self.model_params), "GRID_SIZE_TRAINING": self.grid_size_training,
            "GRID_SIZE_INFERENCE": self.grid_size_inference, "GAMMA_DECAY": self.gamma_decay,
            "INITIAL_STATE_MODE_INFERENCE": self.initial_state_mode,
            "USE_NATIVE_ENGINE": self.use_native_engine, "CONFIG_VERSION": self.config_version,
        })
        return cfg

    def __getitem__(self, key: str) -> Any:
        return self.to_config()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_config().get(key, default)

    def build_model(self):
        """A freshly initialised model of this architecture (torch required)."""
        from .models import build_model
        return build_model(self.architecture, self.model_params)

    def save(self) -> str:
        """Writes config.json atomically; returns its path."""
        return save_experiment_config(self, self.root)

    def latest_checkpoint(self) -> Optional[str]:
        return find_latest_checkpoint(self.name, self.root)

    def load_model(self, checkpoint: Optional[PathLike] = None, device: str = "cpu"):
        """The eager model with the latest (or given) checkpoint's weights, in eval mode."""
        return load_model_from_checkpoint(self, checkpoint, root=self.root, device=device)


def parse_config(cfg: Any, *, root: PathLike = "output", source: str = "config") -> Experiment:
    """Validates a config dict and returns an :class:`Experiment`. Raises ConfigError."""
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{source}: top level must be a JSON object, got {type(cfg).__name__}")
    missing = [k for k, (req, _) in CONFIG_KEYS.items() if req and k not in cfg]
    if missing:
        raise ConfigError(f"{source}: missing required key(s) {missing}")

    def want(key: str, ok: bool, what: str) -> None:
        if not ok:
            raise ConfigError(f"{source}: {key} must be {what}, got {_REPR.repr(cfg.get(key))}")

    version = cfg.get("CONFIG_VERSION", 1)
    want("CONFIG_VERSION", _is_int(version) and version >= 1, "an int >= 1")
    if version > CONFIG_VERSION:
        raise ConfigError(f"{source}: CONFIG_VERSION {version} is newer than this atheria_core supports "
                          f"({CONFIG_VERSION}); upgrade atheria_core")
    name = cfg["EXPERIMENT_NAME"]
    want("EXPERIMENT_NAME", isinstance(name, str) and bool(_NAME_RE.fullmatch(name)) and ".." not in name,
         "a valid experiment name (letters, digits, '_', '-', '.')")
    arch = cfg["MODEL_ARCHITECTURE"]
    want("MODEL_ARCHITECTURE", isinstance(arch, str) and bool(arch.strip()), "a non-empty string")
    params = cfg["MODEL_PARAMS"]
    want("MODEL_PARAMS", isinstance(params, Mapping), "an object")
    want("MODEL_PARAMS.d_state", _is_int(params.get("d_state")) and params["d_state"] >= 1, "an int >= 1")
    if "hidden_channels" in params:
        hc = params["hidden_channels"]
        if not (_is_int(hc) and hc >= 1):
            raise ConfigError(f"{source}: MODEL_PARAMS.hidden_channels must be an int >= 1, got {_REPR.repr(hc)}")
    gtrain = cfg["GRID_SIZE_TRAINING"]
    want("GRID_SIZE_TRAINING", _is_int(gtrain) and gtrain >= 1, "an int >= 1")
    ginf = cfg.get("GRID_SIZE_INFERENCE", gtrain)
    want("GRID_SIZE_INFERENCE", _is_int(ginf) and ginf >= 1, "an int >= 1")
    gamma = cfg.get("GAMMA_DECAY", 0.0)
    want("GAMMA_DECAY", _is_finite_real(gamma) and gamma >= 0, "a finite number >= 0")
    mode = cfg.get("INITIAL_STATE_MODE_INFERENCE", "complex_noise")
    want("INITIAL_STATE_MODE_INFERENCE", mode in _INITIAL_MODES, f"one of {list(_INITIAL_MODES)}")
    native = cfg.get("USE_NATIVE_ENGINE", True)
    want("USE_NATIVE_ENGINE", isinstance(native, bool), "true or false")
    try:
        from .models import UnknownArchitectureError, get_model_class
    except ImportError:  # torch not installed: architecture checked when the model is built
        arch_norm = arch.strip().upper()
    else:
        try:
            arch_norm = get_model_class(arch).architecture  # type: ignore[attr-defined]
        except UnknownArchitectureError as exc:
            raise ConfigError(f"{source}: {exc}") from exc
    extra = {k: v for k, v in cfg.items() if k not in CONFIG_KEYS}
    return Experiment(name=name, architecture=arch_norm, model_params=dict(params), grid_size_training=gtrain,
                      grid_size_inference=ginf, gamma_decay=float(gamma), initial_state_mode=mode,
                      use_native_engine=native, config_version=int(version), extra=extra,
                      root=os.fspath(root))


def load_experiment_config(name: str, root: PathLike = "output") -> Experiment:
    """Reads and validates ``<root>/experiments/<name>/config.json``.

    Raises:
        ValueError: invalid name.
        ExperimentNotFoundError: no such experiment directory / config.json.
        ConfigError: unreadable file, invalid JSON, missing key, wrong type/value,
            unknown architecture.
    """
    d = experiment_dir(name, root)
    if not os.path.isdir(d):
        raise ExperimentNotFoundError(f"experiment {name!r} not found: no directory {d}")
    path = os.path.join(d, "config.json")
    if not os.path.isfile(path):
        raise ExperimentNotFoundError(f"experiment {name!r} has no config.json ({path})")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    exp = parse_config_bytes(raw, root=root, source=path)
    if exp.name != name:
        logger.warning("%s: EXPERIMENT_NAME %r differs from the directory name %r; using %r",
                       path, exp.name, name, name)
        exp.extra.setdefault("ORIGINAL_EXPERIMENT_NAME", exp.name)
        exp.name = name
    return exp


def parse_config_bytes(raw: bytes, *, root: PathLike = "output", source: str = "config.json") -> Experiment:
    """Validates the bytes of a ``config.json``.  Every failure is a ConfigError naming ``source``:
    too big, not UTF-8, not JSON, nested too deeply, an integer too long to convert, or a
    missing / wrong-typed key (parse_config)."""
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: too large (more than {MAX_CONFIG_BYTES} bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {source}: not UTF-8 text: {exc}") from None
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source} is not valid JSON (truncated or corrupt?): {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: JSON nested too deeply") from None
    except ValueError as exc:   # e.g. an integer literal beyond sys.get_int_max_str_digits()
        raise ConfigError(f"{source}: invalid JSON value: {exc}") from None
    try:
        return parse_config(cfg, root=root, source=source)
    except RecursionError:
        raise ConfigError(f"{source}: JSON nested too deeply") from None


#: alias
load_experiment = load_experiment_config


def save_experiment_config(config: Union[Experiment, Mapping[str, Any]], root: PathLike = "output") -> str:
    """Validates and writes ``config.json`` atomically (with CONFIG_VERSION); returns the path."""
    if isinstance(config, Experiment):
        exp = parse_config(config.to_config(), root=root)
    else:
        cfg = dict(config)
        cfg.setdefault("CONFIG_VERSION", CONFIG_VERSION)
        exp = parse_config(cfg, root=root)
    exp.root = os.fspath(root)
    data = json.dumps(exp.to_config(), indent=2, sort_keys=True).encode("utf-8") + b"\n"
    atomic_write_bytes(exp.config_path, data)
    logger.info("wrote %s", exp.config_path)
    return exp.config_path


# --------------------------------------------------------------------------- checkpoints
def list_checkpoints(name: str, root: PathLike = "output") -> List[Tuple[int, str]]:
    """[(epoch, path)] of ``checkpoint_ep{N}.pth`` files, sorted by epoch (empty if none)."""
    d = checkpoint_dir(name, root)
    if not os.path.isdir(d):
        return []
    out = []
    for fn in os.listdir(d):
        m = _CKPT_RE.fullmatch(fn)
        if m and os.path.isfile(os.path.join(d, fn)):
            out.append((int(m.group(1)), os.path.join(d, fn)))
    return sorted(out)


def find_latest_checkpoint(name: str, root: PathLike = "output") -> Optional[str]:
    """Path of the highest-epoch ``checkpoint_ep{N}.pth``, or None if there is none."""
    cks = list_checkpoints(name, root)
    return cks[-1][1] if cks else None


def save_checkpoint(name: str, model: Any, epoch: int, root: PathLike = "output", *,
                    optimizer: Any = None, extra: Optional[Mapping[str, Any]] = None) -> str:
    """Saves ``checkpoint_ep{epoch}.pth`` atomically plus its ``.sha256`` sidecar; returns the path.

    The dict holds model_state_dict, epoch, architecture, model_params, format_version,
    torch_version, optimizer_state_dict (if given) and ``extra`` items (e.g. loss).
    """
    import torch

    if not _is_int(epoch) or epoch < 0:
        raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
    state = model.state_dict() if hasattr(model, "state_dict") else model
    if not isinstance(state, Mapping):
        raise TypeError("model must be an nn.Module or a state dict")
    ckpt: Dict[str, Any] = dict(extra or {})
    ckpt.update({
        "model_state_dict": {k: v.detach().cpu() for k, v in state.items()},
        "epoch": int(epoch),
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "torch_version": str(torch.__version__),
    })
    arch = getattr(model, "architecture", None)
    if arch is not None:
        ckpt["architecture"] = arch
    params = getattr(model, "model_params", None)
    if isinstance(params, Mapping):
        ckpt["model_params"] = dict(params)
    if optimizer is not None:
        ckpt["optimizer_state_dict"] = optimizer.state_dict()
    path = checkpoint_path(name, epoch, root)
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    _write_sidecar(path, hashlib.sha256(data).hexdigest())
    logger.info("saved checkpoint %s", path)
    return path


def load_checkpoint(path: PathLike, *, map_location: Any = "cpu", verify: bool = True,
                    weights_only: bool = True) -> Dict[str, Any]:
    """Loads a checkpoint dict after verifying its SHA-256 sidecar.

    ``weights_only=False`` allows arbitrary pickled objects: only for trusted files.
    Raises CheckpointNotFoundError, ChecksumMismatchError, CheckpointError
    (truncated/corrupt, not a dict, no ``model_state_dict``).
    """
    import torch

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointNotFoundError(f"checkpoint not found: {path}")
    if verify:
        verify_checksum(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, zipfile errors...
        text = str(exc)
        if weights_only and "Weights only load failed" in text:
            detail = [ln.strip() for ln in text.splitlines() if "WeightsUnpickler error" in ln]
            raise CheckpointError(
                f"checkpoint {path} holds objects that a weights-only load refuses "
                f"({detail[0] if detail else 'unsupported global'}); if the file is trusted, "
                "pass weights_only=False") from exc
        first = text.strip().splitlines()[0] if text.strip() else ""
        raise CheckpointError(f"cannot load checkpoint {path} (truncated or corrupt?): "
                              f"{type(exc).__name__}: {first}") from exc
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(ckpt).__name__}, expected a dict "
                              "with 'model_state_dict'")
    sd = ckpt.get("model_state_dict")
    if not isinstance(sd, Mapping):
        raise CheckpointError(f"checkpoint {path} has no 'model_state_dict' (keys: {sorted(map(str, ckpt))[:10]})")
    return dict(ckpt)


def _clean_state_dict(sd: Mapping[str, Any]) -> Dict[str, Any]:
    """Strips the prefixes added by torch.compile ('_orig_mod.') and DataParallel ('module.')."""
    out = {}
    for k, v in sd.items():
        for prefix in ("_orig_mod.", "module."):
            while k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def load_model_from_checkpoint(experiment: Union[str, Experiment], checkpoint: Optional[PathLike] = None, *,
                               root: PathLike = "output", device: str = "cpu", verify: bool = True,
                               weights_only: bool = True):
    """Builds the experiment's model and loads the weights of ``checkpoint`` (default: latest).

    Returns the eager ``nn.Module`` in eval mode on ``device``, with attributes
    ``checkpoint_path`` and ``checkpoint_epoch`` set.

    Raises ExperimentNotFoundError / ConfigError (config), CheckpointNotFoundError (no
    checkpoint), ChecksumMismatchError / CheckpointError (corrupt, no model_state_dict,
    weights that do not fit the architecture).
    """
    exp = experiment if isinstance(experiment, Experiment) else load_experiment_config(experiment, root)
    if checkpoint is None:
        checkpoint = find_latest_checkpoint(exp.name, exp.root)
        if checkpoint is None:
            raise CheckpointNotFoundError(
                f"experiment {exp.name!r} has no checkpoint_ep*.pth in {exp.checkpoint_dir}")
    checkpoint = os.fspath(checkpoint)
    from .models import ModelConfigError
    try:
        model = exp.build_model()
    except ModelConfigError as exc:
        raise ConfigError(f"{exp.config_path}: {exc}") from exc
    ckpt = load_checkpoint(checkpoint, verify=verify, weights_only=weights_only)
    sd = _clean_state_dict(ckpt["model_state_dict"])
    arch = ckpt.get("architecture")
    if isinstance(arch, str) and arch.upper() != exp.architecture:
        logger.warning("checkpoint %s was saved from %s but the config says %s", checkpoint, arch, exp.architecture)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"weights in {checkpoint} do not match {exp.architecture}"
                              f"({exp.model_params}): {exc}") from exc
    model = model.to(device).eval()
    model.checkpoint_path = checkpoint
    model.checkpoint_epoch = ckpt.get("epoch")
    return model
