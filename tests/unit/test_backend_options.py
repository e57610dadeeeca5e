"""Every backend declares its options on its class (``options_model``), so ``kioskctl profile schema`` and
``profile check`` read them without building the backend; the model declared is the one it validates with."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest

from kioskd.clock import ManualClock
from kioskd.hal import DriverOptions, options_model_of
from kioskd.hal.loader import GROUP, build_backend
from kioskd.profile import SIM_PROFILE, load_profile

BACKENDS = sorted(entry_points(group=GROUP), key=lambda ep: ep.name)


@pytest.mark.parametrize("entry", BACKENDS, ids=[ep.name for ep in BACKENDS])
def test_each_backend_declares_its_options_model_on_its_class(entry: EntryPoint) -> None:
    cls = entry.load()
    declared = getattr(cls, "options_model", None)  # a class attribute: no instance is built
    assert isinstance(declared, type) and issubclass(declared, DriverOptions), cls
    assert options_model_of(cls) is declared


def test_a_built_backend_validates_its_section_with_the_model_its_class_declares(tmp_path: Path) -> None:
    profile = load_profile(SIM_PROFILE)
    shared: dict[str, object] = {}
    for kind in ("power", "modem", "displays", "scanner", "printer", "button", "audio", "camera", "host"):
        backend, ctx = build_backend(profile, kind, ManualClock(), lambda _: None, tmp_path, shared)  # type: ignore[arg-type]
        assert ctx.options_model is options_model_of(type(backend)), kind


def test_a_class_without_options_model_takes_no_options() -> None:
    class Bare:
        pass

    assert options_model_of(Bare) is DriverOptions
    assert not options_model_of(Bare).model_fields
