"""JCS (RFC 8785) against the RFC's published examples and the reference test data, and the strict
I-JSON parsing in front of it."""

from __future__ import annotations

import struct

import pytest

from proofline_kit.intents import canonical

# RFC 8785 Appendix B: IEEE 754 bit patterns and their canonical text.
APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "expected"), APPENDIX_B)
def test_numbers_serialise_as_ecmascript_does(bits: str, expected: str) -> None:
    value = struct.unpack(">d", bytes.fromhex(bits))[0]
    assert canonical.canonicalize([value]) == f"[{expected}]".encode()
    # The canonical text parses back to the same double and is then already canonical.
    assert canonical.canonicalize(canonical.parse(f"[{expected}]".encode())) == f"[{expected}]".encode()


@pytest.mark.parametrize("bits", ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"])
def test_nan_and_infinity_have_no_canonical_form(bits: str) -> None:
    with pytest.raises(canonical.JsonError):
        canonical.canonicalize([struct.unpack(">d", bytes.fromhex(bits))[0]])


def test_rfc_section_3_2_2_example() -> None:
    source = (
        b"{\n"
        b'  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n'
        b'  "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",\n'
        b'  "literals": [null, true, false]\n'
        b"}"
    )
    expected = (
        b'{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        b'"string":"\xe2\x82\xac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical.canonicalize(canonical.parse(source)) == expected


def test_rfc_section_3_2_3_sorts_members_by_utf16_code_units() -> None:
    source = (
        b'{"\\u20ac": "Euro Sign", "\\r": "Carriage Return", "\\ufb33": "Hebrew Letter Dalet With Dagesh",'
        b' "1": "One", "\\ud83d\\ude00": "Emoji: Grinning Face", "\\u0080": "Control",'
        b' "\\u00f6": "Latin Small Letter O With Diaeresis"}'
    )
    # The RFC's output, byte for byte: \r, 1, U+0080, U+00F6, U+20AC, U+1F600 (as UTF-16 the
    # surrogates D83D DE00), U+FB33. By code point U+FB33 would sort before U+1F600.
    expected = (
        b'{"\\r":"Carriage Return","1":"One","\xc2\x80":"Control",'
        b'"\xc3\xb6":"Latin Small Letter O With Diaeresis","\xe2\x82\xac":"Euro Sign",'
        b'"\xf0\x9f\x98\x80":"Emoji: Grinning Face","\xef\xac\xb3":"Hebrew Letter Dalet With Dagesh"}'
    )
    assert canonical.canonicalize(canonical.parse(source)) == expected


def test_reference_weird_member_names() -> None:
    source = (
        b'{\n  "\\u20ac": "Euro Sign",\n  "1": "One",\n  "\\u0080": "Control\\u007f",\n'
        b'  "\\ud83d\\ude02": "Smiley",\n  "\\u00f6": "Latin Small Letter O With Diaeresis",\n'
        b'  "\\ufb33": "Hebrew Letter Dalet With Dagesh",\n  "</script>": "Browser Challenge"\n}\n'
    )
    expected = (
        '{"1":"One","</script>":"Browser Challenge","\u0080":"Control\u007f",'
        '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign","\U0001f602":"Smiley",'
        '"\ufb33":"Hebrew Letter Dalet With Dagesh"}'
    ).encode()
    assert canonical.canonicalize(canonical.parse(source)) == expected


def test_reference_unnormalised_unicode_is_kept_as_is() -> None:
    source = b'{\n  "Unnormalized Unicode":"\\u1e0d\\u0307"\n}\n'
    assert canonical.canonicalize(canonical.parse(source)) == '{"Unnormalized Unicode":"\u1e0d\u0307"}'.encode()


def test_control_characters_use_lowercase_short_escapes() -> None:
    value = {"s": '\b\f\n\r\t\x00\x1f\x7f"\\/'}
    assert canonical.canonicalize(value) == b'{"s":"\\b\\f\\n\\r\\t\\u0000\\u001f\x7f\\"\\\\/"}'


def test_nested_structures_are_sorted_at_every_level() -> None:
    value = {"b": [{"z": 1, "a": {"y": 2, "x": None}}], "a": []}
    assert canonical.canonicalize(value) == b'{"a":[],"b":[{"a":{"x":null,"y":2},"z":1}]}'


@pytest.mark.parametrize(
    "data",
    [
        b"\xff",
        b'"\xed\xa0\x80"',  # a surrogate encoded in UTF-8 (CESU-8)
        b'{"a":1,"a":1}',
        b'{"a":1,"\\u0061":2}',
        b"NaN",
        b"[Infinity]",
        b"[-Infinity]",
        b"{",
        b"[1,]",
        b"\xef\xbb\xbf{}",
        b"1" * 5000,
    ],
)
def test_strict_parsing_refuses_what_is_not_i_json(data: bytes) -> None:
    with pytest.raises(canonical.JsonError):
        canonical.parse(data)


def test_values_without_a_canonical_form_are_refused() -> None:
    for data in [b'["\\ud800"]', b"[1e400]"]:
        with pytest.raises(canonical.JsonError):
            canonical.canonicalize(canonical.parse(data))


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(canonical.JsonError):
        canonical.canonicalize(canonical.parse(b"[" * 100_000 + b"]" * 100_000))


def test_integers_beyond_binary64_become_their_nearest_double() -> None:
    assert canonical.canonicalize(canonical.parse(b"[9007199254740993]")) == b"[9007199254740992]"
    assert canonical.canonicalize(canonical.parse(b"[1152921504606846976]")) == b"[1152921504606847000]"
    assert canonical.canonicalize(canonical.parse(b"[-0]")) == b"[0]"
