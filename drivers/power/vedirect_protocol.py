"""The VE.Direct text protocol of Victron devices as pure code: bytes in, checked blocks and typed readings out.

It does no I/O and keeps no clock, so it can be fed any byte string (the fuzz test does): malformed input is counted
and dropped, never raised, and memory stays bounded whatever arrives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Real devices send labels of at most 8 bytes, values of at most 32 and blocks of about 20 fields under 300 bytes
# (Victron's reference frame handler uses 9/33-byte buffers); the margins only bound memory on garbage.
MAX_LABEL = 16
MAX_VALUE = 64
MAX_FIELDS = 48
MAX_BLOCK = 1024
MAX_HEX = 512

_IDLE, _BEGIN, _NAME, _VALUE, _CHECKSUM, _HEX = range(6)
_CR, _LF, _TAB, _COLON = 0x0D, 0x0A, 0x09, 0x3A

# AR, the alarm reason bitmask (battery monitors, inverters); the names are catalogue suffixes (power.alarm.<name>).
ALARMS: dict[int, str] = {
    0x0001: "low-voltage",
    0x0002: "high-voltage",
    0x0004: "low-soc",
    0x0008: "low-starter-voltage",
    0x0010: "high-starter-voltage",
    0x0020: "low-temperature",
    0x0040: "high-temperature",
    0x0080: "mid-voltage",
    0x0100: "overload",
    0x0200: "dc-ripple",
    0x0400: "low-ac-out-voltage",
    0x0800: "high-ac-out-voltage",
    0x1000: "short-circuit",
    0x2000: "bms-lockout",
}

# CS, the state of operation of chargers, MPPTs and inverters.
CHARGER_STATES: dict[int, str] = {
    0: "off",
    1: "low-power",
    2: "fault",
    3: "bulk",
    4: "absorption",
    5: "float",
    6: "storage",
    7: "equalize",
    9: "inverting",
    11: "power-supply",
    245: "starting-up",
    246: "repeated-absorption",
    247: "recondition",
    248: "battery-safe",
    252: "external-control",
}
CHARGING_STATES = frozenset({3, 4, 5, 6, 7, 246, 247, 248, 252})

# ERR, the error code of MPPT solar chargers and chargers (Victron's VE.Direct protocol document), grouped by what the
# agent can do about it; the names are catalogue suffixes (power.fault.<name>). A code not listed is "charger-fault".
CHARGER_ERRORS: dict[int, str] = {
    2: "battery-voltage-high",  # battery voltage too high
    38: "battery-voltage-high",  # input shutdown (excessive battery voltage)
    17: "charger-hot",  # charger temperature too high
    26: "charger-hot",  # terminals overheated
    18: "charger-fault",  # charger over current
    19: "charger-fault",  # charger current reversed
    21: "charger-fault",  # current sensor issue
    28: "charger-fault",  # converter issue
    39: "charger-fault",  # input shutdown (current flow during off mode)
    116: "charger-fault",  # factory calibration data lost
    117: "charger-fault",  # invalid or incompatible firmware
    119: "charger-fault",  # user settings invalid
    20: "bulk-time",  # bulk time limit exceeded
    33: "solar-input",  # input voltage too high (solar panel)
    34: "solar-input",  # input current too high (solar panel)
    65: "charger-network",  # lost communication with one of the devices
    66: "charger-network",  # synchronised charging device configuration issue
    67: "charger-network",  # BMS connection lost
    68: "charger-network",  # network misconfigured
}

# OR, the off reason bitmask of inverters, chargers and MPPTs; names are catalogue suffixes (power.off.<name>).
# "No input power" (0x01: an MPPT at night, a charger unplugged) and "analysing input voltage" (0x100) are the
# ordinary life of a charger, not faults, and are left out.
OFF_REASONS: dict[int, str] = {
    0x0002: "switch",  # switched off by the power switch
    0x0004: "switch",  # switched off by the device mode register
    0x0008: "remote",  # remote input
    0x0010: "protection",  # protection active
    0x0040: "bms",  # the BMS switched it off
    0x0080: "engine",  # engine shutdown detection
}

# EN 50160's ±10 % around 230 V: an inverter's AC output outside it harms what is plugged in.
AC_OUT_MIN, AC_OUT_MAX = 207.0, 253.0


@dataclass
class Counters:
    """What the parser met since it was created; a technician reads these when a monitor looks unreliable."""

    blocks: int = 0  # valid blocks delivered
    bad_checksums: int = 0  # complete blocks whose bytes did not sum to 0 mod 256
    malformed: int = 0  # blocks dropped for an over-long label or value, too many fields or an empty label
    hex_frames: int = 0  # HEX-protocol frames skipped
    garbage: int = 0  # bytes outside any block or frame
    unsynced: int = 0  # the partial block a stream starts in (not an error: we joined mid-block)


@dataclass
class TextParser:
    """Victron's text-frame state machine, fed any chunking of the byte stream.

    A block runs from the ``\\r\\n`` before its first label to the one byte after ``Checksum<TAB>``; that byte may be
    anything (even ``\\n`` or ``:``), which is why this is a byte state machine and not a line reader. A ``:`` outside
    the checksum byte starts a HEX frame that lasts until ``\\n``: it is skipped, left out of the sum, and the text
    block around it resumes, as in Victron's reference frame handler."""

    counters: Counters = field(default_factory=Counters)
    _state: int = _IDLE
    _resume: int = _IDLE  # the state a HEX frame interrupted
    _sum: int = 0
    _cr: bool = False  # the byte before, in idle, was \r (the start of the next block's \r\n)
    _label: bytearray = field(default_factory=bytearray)
    _value: bytearray = field(default_factory=bytearray)
    _fields: dict[str, str] = field(default_factory=dict)
    _broken: bool = False  # this block overflowed a bound; drop it at its end
    _length: int = 0  # bytes in this block so far
    _hex_length: int = 0
    _synced: bool = False

    def feed(self, data: bytes) -> list[dict[str, str]]:
        """The valid blocks completed by ``data``, in order (label → value, as sent)."""
        blocks: list[dict[str, str]] = []
        for byte in data:
            block = self._byte(byte)
            if block is not None:
                blocks.append(block)
        return blocks

    def _byte(self, byte: int) -> dict[str, str] | None:
        state = self._state
        if byte == _COLON and state != _CHECKSUM and state != _HEX:
            self._resume = state
            self._state = _HEX
            self._hex_length = 0
            return None
        if state == _HEX:
            self._hex(byte)
            return None
        if state == _IDLE:
            if byte == _LF:
                self._open_block(_CR + _LF if self._cr else _LF)
            else:
                self._cr = byte == _CR
                if not self._cr:
                    self.counters.garbage += 1
            return None
        self._sum = (self._sum + byte) & 0xFF
        self._length += 1
        if self._length > MAX_BLOCK:
            self.counters.malformed += 1
            self._reset()
            return None
        if state == _BEGIN:
            if byte == _TAB:
                self._broken = True  # an empty label: not a line of this protocol
                self._value.clear()
                self._state = _VALUE
            elif byte in (_CR, _LF):
                self._broken = True  # an empty line inside a block
            else:
                self._label.clear()
                self._label.append(byte)
                self._state = _NAME
        elif state == _NAME:
            if byte == _TAB:
                if self._label.lower() == b"checksum":
                    self._state = _CHECKSUM
                else:
                    self._value.clear()
                    self._state = _VALUE
            elif byte == _LF:
                self._broken = True  # a label without a value
                self._state = _BEGIN
            elif len(self._label) < MAX_LABEL:
                self._label.append(byte)
            else:
                self._broken = True
        elif state == _VALUE:
            if byte == _LF:
                self._store_field()
                self._state = _BEGIN
            elif byte == _CR:
                pass  # part of the line end, already in the sum
            elif len(self._value) < MAX_VALUE:
                self._value.append(byte)
            else:
                self._broken = True
        else:  # _CHECKSUM: this byte only balances the sum
            return self._close_block()
        return None

    def _hex(self, byte: int) -> None:
        if byte == _LF:
            self.counters.hex_frames += 1
            self._state = self._resume
            if self._state == _IDLE:
                self._cr = False
            return
        self._hex_length += 1
        if self._hex_length > MAX_HEX:
            # No end in sight: this was noise, not a frame; whatever block it interrupted is lost with it.
            self.counters.garbage += self._hex_length
            if self._resume != _IDLE:
                self.counters.malformed += 1
            self._reset()

    def _open_block(self, start_sum: int) -> None:
        self._state = _BEGIN
        self._sum = start_sum
        self._length = 2 if start_sum != _LF else 1
        self._fields = {}
        self._broken = False
        self._cr = False

    def _store_field(self) -> None:
        if self._broken:
            return
        if len(self._fields) >= MAX_FIELDS:
            self._broken = True
            return
        label = self._label.decode("ascii", "replace")
        self._fields[label] = self._value.decode("ascii", "replace")

    def _close_block(self) -> dict[str, str] | None:
        valid = self._sum == 0
        fields, broken, synced = self._fields, self._broken, self._synced
        self._reset()
        self._synced = True
        if valid and not broken:
            self.counters.blocks += 1
            return fields
        if not synced:
            self.counters.unsynced += 1
        elif not valid:
            self.counters.bad_checksums += 1
        else:
            self.counters.malformed += 1
        return None

    def _reset(self) -> None:
        self._state = _IDLE
        self._sum = 0
        self._length = 0
        self._cr = False
        self._fields = {}
        self._broken = False
        self._label.clear()
        self._value.clear()


def checksum_byte(body: bytes) -> int:
    """The byte that completes ``body`` (a block up to and including ``Checksum<TAB>``) to a sum of 0 mod 256."""
    return (-sum(body)) & 0xFF


def encode_block(fields: Mapping[str, str]) -> bytes:
    """A valid block as a device sends it (for simulators and tests)."""
    body = b"".join(b"\r\n" + label.encode("ascii") + b"\t" + value.encode("ascii") for label, value in fields.items())
    body += b"\r\nChecksum\t"
    return body + bytes([checksum_byte(body)])


def parse_int(value: str | None) -> int | None:
    """A decimal or ``0x`` hexadecimal integer as VE.Direct writes them; ``None`` for anything else (``---`` …)."""
    if value is None:
        return None
    text = value.strip()
    try:
        if text[:2].lower() == "0x":
            return int(text[2:], 16)
        return int(text, 10)
    except ValueError:
        return None


@dataclass(frozen=True)
class Reading:
    """The fields kioskd uses, in SI units; ``None`` where the device does not send the field or sent nonsense."""

    voltage: float | None = None  # V (label V, mV)
    current: float | None = None  # A, positive while charging (label I, mA)
    power: float | None = None  # W (label P; else V × I)
    soc: float | None = None  # % (label SOC, ‰)
    time_to_go: float | None = None  # s (label TTG, minutes; -1, infinite, gives None)
    charger_state: int | None = None  # CS
    alarm_bits: int | None = None  # AR
    warning_bits: int | None = None  # WARN (the same bits as AR, a warning before the alarm)
    error_code: int | None = None  # ERR (chargers, MPPTs)
    off_bits: int | None = None  # OR (inverters, chargers, MPPTs)
    ac_out_voltage: float | None = None  # V (label AC_OUT_V, 0.01 V; inverters)
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def alarms(self) -> tuple[str, ...]:
        """AR and WARN together (power.alarm.<name>), and an AC output out of range (AC_OUT_V, not while off)."""
        bits = (self.alarm_bits or 0) | (self.warning_bits or 0)
        names = [name for bit, name in ALARMS.items() if bits & bit]
        volts = self.ac_out_voltage
        if volts is not None and self.charger_state != 0 and not self.off_bits:
            if volts < AC_OUT_MIN:
                names.append("low-ac-out-voltage")
            elif volts > AC_OUT_MAX:
                names.append("high-ac-out-voltage")
        return tuple(dict.fromkeys(names))

    @property
    def faults(self) -> tuple[str, ...]:
        """Catalogue keys of what ERR and OR report (power.fault.<name>, power.off.<name>)."""
        keys: list[str] = []
        if self.error_code:
            keys.append(f"power.fault.{CHARGER_ERRORS.get(self.error_code, 'charger-fault')}")
        bits = self.off_bits or 0
        keys += [f"power.off.{name}" for bit, name in OFF_REASONS.items() if bits & bit]
        return tuple(dict.fromkeys(keys))

    @property
    def charging(self) -> bool | None:
        if self.current is not None:
            return self.current > 0
        if self.charger_state is not None:
            return self.charger_state in CHARGING_STATES
        return None

    @property
    def detail(self) -> str:
        if self.charger_state is None:
            return ""
        return CHARGER_STATES.get(self.charger_state, f"cs-{self.charger_state}")


def decode(fields: Mapping[str, str]) -> Reading:
    """The reading in ``fields`` (the merged labels of a device's latest blocks)."""
    mv, ma, watts = parse_int(fields.get("V")), parse_int(fields.get("I")), parse_int(fields.get("P"))
    permille, minutes = parse_int(fields.get("SOC")), parse_int(fields.get("TTG"))
    voltage = None if mv is None else mv / 1000
    current = None if ma is None else ma / 1000
    if watts is None and voltage is not None and current is not None:
        power: float | None = round(voltage * current, 1)
    else:
        power = None if watts is None else float(watts)
    soc = None if permille is None or not 0 <= permille <= 1000 else permille / 10
    time_to_go = None if minutes is None or minutes < 0 else minutes * 60.0
    return Reading(
        voltage=voltage,
        current=current,
        power=power,
        soc=soc,
        time_to_go=time_to_go,
        charger_state=parse_int(fields.get("CS")),
        alarm_bits=parse_int(fields.get("AR")),
        warning_bits=parse_int(fields.get("WARN")),
        error_code=parse_int(fields.get("ERR")),
        off_bits=parse_int(fields.get("OR")),
        ac_out_voltage=None if (ac := parse_int(fields.get("AC_OUT_V"))) is None else ac / 100,
        fields=dict(fields),
    )
