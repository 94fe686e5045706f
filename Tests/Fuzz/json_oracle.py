#!/usr/bin/env python3
"""Reference oracle for JSONEntryScanner, driven by json-differential over a pipe.

Usage: python3 json_oracle.py '{"names": [...], "aliases": {"name": ["alias", ...]}}'

Protocol (all integers little-endian uint32):
  request:  count, then `count` times (length, bytes)      -- EOF or count == 0 ends the session
  response: length, then that many bytes of UTF-8 text: one line per input, in order:
    not_utf8 OFFSET | not_json | not_object                -- rejected before field checks; OFFSET is the byte
                                                             offset of the first invalid UTF-8 sequence
    CLASS MASK MISSING LEVEL SEQ HOST APP MESSAGE TIMESTAMP -- CLASS is ok, wrong_type or missing_field;
      MASK is presentRequired in decimal, MISSING the first missing required index (-1 unless missing_field),
      string fields are the hex of their UTF-8 (lone surrogates replaced by U+FFFD), SEQ is decimal,
      '-' marks an absent or wrongly typed field.
"""

import json
import struct
import sys

# Numbers are accepted however large (the scanner has no digit limit); CPython 3.11+ limits int() to 4300 digits
# by default and json.loads would raise ValueError for longer integers.
if hasattr(sys, "set_int_max_str_digits"):
    sys.set_int_max_str_digits(0)


def reject_constant(name):
    raise ValueError(name)  # NaN, Infinity, -Infinity are not JSON


def accepts(b: bytes) -> bool:
    """The acceptance rule from the design brief, kept verbatim for reference (classify() refines it)."""
    try:
        s = b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    try:
        v = json.loads(s, parse_constant=reject_constant)
    except (ValueError, RecursionError):
        return False
    return isinstance(v, dict)


class Pairs(list):
    """An object as its ordered (key, value) pairs, so the last occurrence across aliases can be found."""

    __slots__ = ()


STRING_FIELDS = ("level", "host", "app", "message", "timestamp")
KNOWN = {
    "level": "level",
    "sequence": "sequence",
    "seq": "sequence",
    "host": "host",
    "hostname": "host",
    "app": "app",
    "message": "message",
    "timestamp": "timestamp",
}
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def text_hex(s: str) -> str:
    try:
        return s.encode("utf-8").hex()
    except UnicodeEncodeError:  # lone surrogates
        return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in s).encode("utf-8").hex()


def classify(b: bytes, names, aliases) -> str:
    try:
        s = b.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"not_utf8 {error.start}"
    try:
        v = json.loads(s, parse_constant=reject_constant, object_pairs_hook=Pairs)
    except (ValueError, RecursionError):
        return "not_json"
    if not isinstance(v, Pairs):
        return "not_object"
    last = {}
    keys = set()
    for key, value in v:
        keys.add(key)
        field = KNOWN.get(key)
        if field is not None:
            last[field] = value  # the last occurrence in document order decides, across aliases
    wrong = False
    out = {}
    for field in STRING_FIELDS:
        if field in last:
            if isinstance(last[field], str):
                out[field] = text_hex(last[field])
            else:
                wrong = True
    if "sequence" in last:
        value = last["sequence"]
        if type(value) is int and INT64_MIN <= value <= INT64_MAX:
            out["sequence"] = str(value)
        else:
            wrong = True  # float, bool, huge, string, container, null
    mask = 0
    missing = -1
    for index, name in enumerate(names):
        if name in keys or any(alias in keys for alias in aliases.get(name, ())):
            mask |= 1 << index
        elif missing < 0:
            missing = index
    cls = "wrong_type" if wrong else ("missing_field" if missing >= 0 else "ok")
    if cls != "missing_field":
        missing = -1
    cols = [cls, str(mask), str(missing)]
    cols += [out.get(f, "-") for f in ("level", "sequence", "host", "app", "message", "timestamp")]
    return " ".join(cols)


def read_exact(stream, n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) != n:
        raise EOFError
    return data


def main() -> None:
    config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {"names": [], "aliases": {}}
    names = config.get("names", [])[:64]
    aliases = config.get("aliases", {})
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            (count,) = struct.unpack("<I", read_exact(stdin, 4))
        except EOFError:
            return
        if count == 0:
            return
        lines = []
        for _ in range(count):
            (length,) = struct.unpack("<I", read_exact(stdin, 4))
            lines.append(classify(read_exact(stdin, length), names, aliases))
        body = "\n".join(lines).encode("utf-8")
        stdout.write(struct.pack("<I", len(body)))
        stdout.write(body)
        stdout.flush()


if __name__ == "__main__":
    main()
