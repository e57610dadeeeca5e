"""Fixtures the integration tests share (each real service keeps its own module next to its tests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from tests.integration.gpio_pins import mock_pins


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    """gpiozero's MockFactory as the pin factory for one test (the GPIO button and power backends)."""
    with mock_pins() as factory:
        yield factory
