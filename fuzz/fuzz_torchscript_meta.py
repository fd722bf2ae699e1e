"""Fuzz target: the ``atheria_meta.json`` member of a TorchScript archive, read through the
public entry point ``atheria_core._model_loader.read_metadata`` -> ModelMetadata, None or ModelLoadError.

Each execution writes a small zip shaped like a TorchScript file (``<prefix>/code/...``,
``<prefix>/extra/atheria_meta.json`` = the fuzz input) to a temporary file: the reader
opens files, and its size cap and error messages are part of what is tested."""
from __future__ import annotations

import io
import os
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import atheris
    with atheris.instrument_imports():
        from atheria_core import _model_loader as loader
except ImportError:
    from atheria_core import _model_loader as loader

ALLOWED = (loader.ModelLoadError,)
_DIR = tempfile.mkdtemp(prefix="atheria_fuzz_meta_")
_PATH = os.path.join(_DIR, "model.pt")


def archive(meta: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model/code/__torch__.py", "# fuzz\n")
        zf.writestr("model/data.pkl", b"\x80\x02}q\x00.")
        zf.writestr("model/extra/" + loader.META_NAME, meta)
    return buf.getvalue()


def check(data: bytes) -> None:
    with open(_PATH, "wb") as fh:
        fh.write(archive(data))
    try:
        meta = loader.read_metadata(_PATH)
    except ALLOWED as exc:
        assert _PATH in str(exc), f"error does not name the file: {exc}"
        return
    assert meta is None or isinstance(meta, loader.ModelMetadata), type(meta)


if __name__ == "__main__":
    from _harness import main
    main(check)
