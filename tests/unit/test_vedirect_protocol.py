"""The VE.Direct text parser and decoder on bytes alone: checksums, HEX frames, garbage, chunking, and a fuzz."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.power.vedirect_protocol import (
    MAX_FIELDS,
    MAX_LABEL,
    MAX_VALUE,
    TextParser,
    checksum_byte,
    decode,
    encode_block,
)

BMV = {"PID": "0x203", "V": "12800", "I": "-3250", "P": "-42", "CE": "-12000", "SOC": "876", "TTG": "615"}
BMV_HISTORY = {"H1": "-50000", "H2": "-12000", "H4": "12"}


def feed_all(parser: TextParser, chunks: list[bytes]) -> list[dict[str, str]]:
    return [block for chunk in chunks for block in parser.feed(chunk)]


def test_valid_block_is_delivered_with_its_fields_in_order() -> None:
    parser = TextParser()
    assert parser.feed(encode_block(BMV)) == [BMV]
    assert list(parser.feed(encode_block(BMV))[0]) == list(BMV)
    assert parser.counters.blocks == 2
    assert parser.counters.bad_checksums == parser.counters.garbage == 0


def test_one_flipped_byte_is_a_bad_checksum_and_the_block_is_dropped() -> None:
    parser = TextParser()
    good = encode_block(BMV)
    bad = bytearray(good)
    bad[good.index(b"12800") + 1] ^= 0x01  # 12800 mV becomes 13800: exactly what a checksum is for
    blocks = feed_all(parser, [good, bytes(bad), good])
    assert blocks == [BMV, BMV]
    assert parser.counters.bad_checksums == 1


def test_hex_frames_between_and_inside_blocks_are_skipped_without_spoiling_the_sum() -> None:
    parser = TextParser()
    block = encode_block(BMV)
    cut = block.index(b"\r\nSOC")
    inside = block[:cut] + b":A0102000543\n" + block[cut:]
    blocks = feed_all(parser, [b":7F0ED0071\n", block, inside, b":1234\n"])
    assert blocks == [BMV, BMV]
    assert parser.counters.hex_frames == 3
    assert parser.counters.bad_checksums == 0


def padded_block_with_checksum(wanted: int) -> bytes:
    """A valid block whose checksum byte is ``wanted`` (found by varying a padding value)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    pick = random.Random(wanted)
    for _ in range(100_000):
        block = encode_block({**BMV, "PAD": "".join(pick.choices(alphabet, k=6))})
        if block[-1] == wanted:
            return block
    raise AssertionError("no padding gives that checksum")


@pytest.mark.parametrize("byte", [0x0A, 0x0D, 0x3A, 0x09, 0x00, 0xFF])
def test_checksum_byte_may_be_any_value_even_a_line_end_or_a_colon(byte: int) -> None:
    parser = TextParser()
    block = padded_block_with_checksum(byte)
    blocks = feed_all(parser, [block, encode_block(BMV_HISTORY)])
    assert len(blocks) == 2 and blocks[1] == BMV_HISTORY
    assert parser.counters.bad_checksums == 0


def test_joining_mid_block_is_counted_as_unsynced_not_as_an_error() -> None:
    parser = TextParser()
    block = encode_block(BMV)
    blocks = feed_all(parser, [block[25:], block, block])
    assert blocks == [BMV, BMV]
    assert parser.counters.unsynced == 1
    assert parser.counters.bad_checksums == 0


def test_garbage_between_blocks_is_counted_and_does_not_spoil_the_next_block() -> None:
    parser = TextParser()
    block = encode_block(BMV)
    blocks = feed_all(parser, [block, b"\x00\xffnoise", block])
    assert blocks == [BMV, BMV]
    assert parser.counters.garbage == 7


def test_an_overlong_value_drops_the_block_and_keeps_memory_bounded() -> None:
    parser = TextParser()
    huge = encode_block({"V": "1" * (MAX_VALUE * 4)})
    blocks = feed_all(parser, [encode_block(BMV), huge, encode_block(BMV)])
    assert blocks == [BMV, BMV]
    assert parser.counters.malformed == 1
    assert len(parser._value) <= MAX_VALUE


def test_too_many_fields_drop_the_block() -> None:
    parser = TextParser()
    crowded = encode_block({f"H{i}": "1" for i in range(MAX_FIELDS + 1)})
    assert feed_all(parser, [encode_block(BMV), crowded]) == [BMV]
    assert parser.counters.malformed == 1


def test_a_stream_without_checksums_never_grows_without_bound() -> None:
    parser = TextParser()
    assert parser.feed(b"\r\nV\t12800" * 5000) == []
    assert len(parser._fields) <= MAX_FIELDS
    assert parser.counters.malformed >= 1
    assert parser.feed(encode_block(BMV) + encode_block(BMV))[-1] == BMV


def test_checksum_byte_completes_the_sum() -> None:
    body = b"\r\nV\t12800\r\nChecksum\t"
    assert (sum(body) + checksum_byte(body)) % 256 == 0


# --------------------------------------------------------------------------------------------------- decoding
def test_decode_converts_units_as_the_protocol_defines_them() -> None:
    reading = decode({**BMV, "AR": "5", "CS": "3"})
    assert reading.voltage == 12.8
    assert reading.current == -3.25
    assert reading.power == -42.0
    assert reading.soc == 87.6
    assert reading.time_to_go == 615 * 60
    assert reading.alarms == ("low-voltage", "low-soc")
    assert reading.detail == "bulk"
    assert reading.charging is False  # the current says discharging, whatever the charger state says


def test_infinite_or_missing_time_to_go_and_dashes_are_none() -> None:
    assert decode({"TTG": "-1"}).time_to_go is None
    assert decode({"SOC": "---", "V": "abc"}).soc is None
    assert decode({"V": "abc"}).voltage is None
    assert decode({}).charging is None


def test_power_is_computed_when_the_device_sends_no_p_and_charging_follows_the_charger_state() -> None:
    reading = decode({"V": "13500", "CS": "5"})
    assert reading.power is None and reading.charging is True
    reading = decode({"V": "13500", "I": "10000"})
    assert reading.power == 135.0


def test_hex_values_and_unknown_charger_states_decode() -> None:
    reading = decode({"AR": "0x0100", "CS": "99"})
    assert reading.alarms == ("overload",)
    assert reading.detail == "cs-99"


# --------------------------------------------------------------------------------------------------- properties
labels = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789#_", min_size=1, max_size=8).filter(
    lambda s: s.lower() != "checksum"
)
values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters=":"), max_size=32)
blocks_strategy = st.dictionaries(labels, values, min_size=1, max_size=20)


# No deadline: a 2-core machine under load takes more than 200 ms for one example now and then (seen twice);
# timing goals live in benchmarks/, not here.
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(blocks_strategy, min_size=1, max_size=5), st.data())
def test_any_chunking_and_hex_frames_between_blocks_give_exactly_the_blocks_sent(
    blocks: list[dict[str, str]], data: st.DataObject
) -> None:
    stream = b""
    for fields in blocks:
        if data.draw(st.booleans()):
            stream += b":" + data.draw(st.binary(max_size=20)).replace(b"\n", b"") + b"\n"
        stream += encode_block(fields)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    parser = TextParser()
    assert feed_all(parser, chunks) == blocks
    assert parser.counters.bad_checksums == parser.counters.malformed == 0


@settings(max_examples=500)
@given(st.binary(max_size=4000), st.lists(st.binary(max_size=200), max_size=5))
def test_arbitrary_bytes_never_raise_and_stay_bounded(noise: bytes, more: list[bytes]) -> None:
    parser = TextParser()
    for block in feed_all(parser, [noise, *more]):
        assert len(block) <= MAX_FIELDS
        assert all(len(label) <= MAX_LABEL and len(value) <= MAX_VALUE for label, value in block.items())
        decode(block)  # whatever passed the checksum decodes without raising
    assert len(parser._label) <= MAX_LABEL and len(parser._value) <= MAX_VALUE
    assert len(parser._fields) <= MAX_FIELDS


@settings(max_examples=500)
@given(st.binary(max_size=3000))
def test_after_any_garbage_a_run_of_valid_blocks_resynchronises(noise: bytes) -> None:
    parser = TextParser()
    parser.feed(noise)
    delivered = feed_all(parser, [encode_block(BMV), encode_block(BMV_HISTORY), encode_block(BMV)])
    assert delivered[-1] == BMV


@given(st.dictionaries(st.text(max_size=10), st.text(max_size=40), max_size=30))
def test_decode_accepts_any_fields(fields: dict[str, str]) -> None:
    reading = decode(fields)
    assert reading.soc is None or 0 <= reading.soc <= 100
    assert reading.time_to_go is None or reading.time_to_go >= 0
