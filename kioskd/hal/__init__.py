"""The hardware abstraction layer: one contract per device kind, their state values and typed events.

This is the only thing policies know of hardware. It imports no hardware library, no driver and no policy;
backends (real ones in ``drivers/<kind>/``, simulated ones in ``drivers/sim/``) implement these contracts and
report changes as events through the ``DriverContext`` they are built with. One module per kind holds its state,
events and Protocol; ``base`` what they share; ``context`` what a backend is built with; ``loader`` builds them
from a profile (import it as ``kioskd.hal.loader``: it is not re-exported, so the profile can import the HAL)."""

from kioskd.hal.audio import Audio, AudioChanged, AudioState
from kioskd.hal.base import (
    DEVICE_KINDS,
    Clock,
    Device,
    DeviceError,
    DeviceFault,
    DeviceKind,
    DeviceUnsupported,
    Diagnosable,
    Diagnosis,
    DriverKind,
    Event,
    ProfileError,
    StateEvent,
    TimerHandle,
    Verdict,
)
from kioskd.hal.button import LED_CYCLES, Button, ButtonChanged, ButtonPressed, ButtonState, LedPattern
from kioskd.hal.camera import Camera, CameraChanged, CameraHealth, CameraState
from kioskd.hal.context import (
    CONTRACTS,
    Devices,
    DriverContext,
    DriverOptions,
    FaultReporter,
    OptionsT,
    Simulation,
    contract_of,
    options_model_of,
)
from kioskd.hal.displays import (
    DisplayLayout,
    Displays,
    DisplaysChanged,
    DisplaysState,
    Output,
    OutputConnected,
    OutputDisconnected,
    OutputRole,
)
from kioskd.hal.host import Host, InhibitLock, ShutdownPrepared
from kioskd.hal.inputs import (
    IDENTITY,
    InputDevice,
    InputKind,
    Inputs,
    InputsChanged,
    InputSide,
    InputsState,
    Matrix,
    output_matrix,
)
from kioskd.hal.modem import Modem, ModemChanged, ModemState, Registration, SignalChanged, SimStatus, Technology
from kioskd.hal.network import Uplink, UplinkKind, Uplinks
from kioskd.hal.power import IgnitionChanged, PowerChanged, PowerSource, PowerState, ShoreChanged
from kioskd.hal.printer import (
    JOB_FINISHED,
    JobState,
    JobStateChanged,
    Printer,
    PrinterChanged,
    PrinterState,
    PrinterStatus,
    PrintJob,
)
from kioskd.hal.scanner import (
    RawPage,
    ScanFinished,
    ScanMode,
    Scanner,
    ScannerChanged,
    ScannerState,
    ScanRequest,
    ScanResult,
    ScanSource,
)

DeviceState = (
    PowerState
    | ModemState
    | DisplaysState
    | ScannerState
    | PrinterState
    | ButtonState
    | AudioState
    | CameraState
    | InputsState
)

__all__ = [
    "CONTRACTS",
    "DEVICE_KINDS",
    "IDENTITY",
    "JOB_FINISHED",
    "LED_CYCLES",
    "Audio",
    "AudioChanged",
    "AudioState",
    "Button",
    "ButtonChanged",
    "ButtonPressed",
    "ButtonState",
    "Camera",
    "CameraChanged",
    "CameraHealth",
    "CameraState",
    "Clock",
    "Device",
    "DeviceError",
    "DeviceFault",
    "DeviceKind",
    "DeviceState",
    "DeviceUnsupported",
    "Devices",
    "Diagnosable",
    "Diagnosis",
    "DisplayLayout",
    "Displays",
    "DisplaysChanged",
    "DisplaysState",
    "DriverContext",
    "DriverKind",
    "DriverOptions",
    "Event",
    "FaultReporter",
    "Host",
    "IgnitionChanged",
    "InhibitLock",
    "InputDevice",
    "InputKind",
    "InputSide",
    "Inputs",
    "InputsChanged",
    "InputsState",
    "JobState",
    "JobStateChanged",
    "LedPattern",
    "Matrix",
    "Modem",
    "ModemChanged",
    "ModemState",
    "OptionsT",
    "Output",
    "OutputConnected",
    "OutputDisconnected",
    "OutputRole",
    "PowerChanged",
    "PowerSource",
    "PowerState",
    "PrintJob",
    "Printer",
    "PrinterChanged",
    "PrinterState",
    "PrinterStatus",
    "ProfileError",
    "RawPage",
    "Registration",
    "ScanFinished",
    "ScanMode",
    "ScanRequest",
    "ScanResult",
    "ScanSource",
    "Scanner",
    "ScannerChanged",
    "ScannerState",
    "ShoreChanged",
    "ShutdownPrepared",
    "SignalChanged",
    "SimStatus",
    "Simulation",
    "StateEvent",
    "Technology",
    "TimerHandle",
    "Uplink",
    "UplinkKind",
    "Uplinks",
    "Verdict",
    "contract_of",
    "options_model_of",
    "output_matrix",
]
