"""Fixtures the integration tests share (each real service keeps its own module next to its tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from tests.integration.gpio_pins import mock_pins
from tests.integration.mosquitto_service import Broker, running_broker


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    """gpiozero's MockFactory as the pin factory for one test (the GPIO button and power backends)."""
    with mock_pins() as factory:
        yield factory


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A private mosquitto (TLS, its own CA) in the test's directory, stopped by PID after the test."""
    directory = tmp_path / "broker"
    directory.mkdir()
    with running_broker(directory) as running:
        yield running
