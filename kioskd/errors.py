"""The error hierarchy of kioskd: what failed, where, and what the agent or technician should do.

Errors carry no citizen data (no paths inside a workspace, no document names, no URLs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class KioskError(Exception):
    """Base of every error kioskd raises on purpose.

    ``what`` says what went wrong, ``where`` names the place (a profile key, a device, a handler), ``action`` what a
    person should do about it. ``key`` is an entry of the message catalogue when an agent must read it, with its
    ``params``."""

    def __init__(
        self,
        what: str,
        *,
        where: str = "",
        action: str = "",
        key: str = "",
        params: Mapping[str, object] | None = None,
    ) -> None:
        self.what = what
        self.params = dict(params or {})
        self.where = where
        self.action = action
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.action:
            text += f" ({self.action})"
        return text


class ProfileError(KioskError):
    """A vehicle profile that cannot be read or does not validate; the daemon refuses to start on it.

    ``problems`` lists every (dotted key, what was expected) found, for ``kioskctl profile check``; the message
    itself leads with the first."""

    def __init__(
        self,
        what: str,
        *,
        where: str = "",
        action: str = "",
        key: str = "",
        params: Mapping[str, object] | None = None,
        problems: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(what, where=where, action=action, key=key, params=params)
        self.problems = tuple(problems)


class DeviceError(KioskError):
    """A device that failed, vanished or refused a command; the daemon keeps running."""


class DeviceUnsupported(DeviceError):
    """A backend asked for something its hardware cannot do (a contract's optional feature it does not offer), as
    gpiozero's ``PinUnsupported``: the caller may fall back; it is not a fault of the device."""


class DriverNotFound(ProfileError):
    """A profile names a backend that no installed package provides."""


class TransitionRefused(KioskError):
    """The station refused a command in its current state (e.g. a new session while a wipe runs)."""


class UpdateRefused(TransitionRefused):
    """An update the van did not take (kioskd.update): a bundle whose signature or format RAUC refused, another
    system's bundle, an install already running, or an install that failed; nothing was written for a refused one."""


class WipeError(KioskError):
    """A wipe handler or its verification failed; no new session opens until it is resolved."""


class StorageError(KioskError):
    """The state disk or the runtime dir refused what a command needs (a full disk, a deleted directory): the
    citizen's data is wiped all the same; what could not be done (a new session) is refused with this."""


class ScenarioError(KioskError):
    """A scenario file that cannot be read or played."""
