"""image-build/build.py loaded as a module for the tests that check its decisions without mkosi, and the extra tree it
stages for a profile. Test support only: it builds no image."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def build_module() -> ModuleType:
    """build.py, loaded once per test session (it is a script, not a package)."""
    name = "kioskd_image_build"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "image-build" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def staged(tmp_path: Path, profile_path: Path) -> Path:
    """build.py's extra tree for ``profile_path`` (no wheels: only the files matter here)."""
    tree, wheels = tmp_path / "tree", tmp_path / "wheels"
    wheels.mkdir()
    wheel = tmp_path / "kioskd-0-py3-none-any.whl"
    wheel.write_bytes(b"")
    build_module().stage_tree(tree, profile_path, wheels, wheel, {})
    return tree
