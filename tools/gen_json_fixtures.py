#!/usr/bin/env python3
"""Writes tests/fixtures/json/*.json, the expected output of pelix_props_to_json().

Each file is exactly json.dumps(d, sort_keys=True, indent=4, separators=(",", ": ")) of one
dict below (no trailing newline), the format of Pelix's <pid>.config.js files.
tests/unit/test_props_json.c parses each file, writes it back and requires the same bytes; it also
builds some of these dicts in C and checks the types it reads. Keep both sides in sync.

Usage: python3 tools/gen_json_fixtures.py   (from the repository root)
"""
import json
import os

FIXTURES = {
    "empty": {},
    "strings": {
        "plain": "hello world",
        "quotes": 'say "hi"',
        "backslash": "C:\\path\\to",
        "slash": "a/b",
        "controls": "\b\f\n\r\t\x01\x1f",
        "del": "x\x7fy",
        "latin": "\u00e9t\u00e9",
        "euro": "\u20ac 5",
        "emoji": "\U0001f600",
        "mixed": "\"\\\u00e9\u20ac\U0001f600\x7f\n",
        "empty": "",
        "B": "upper",
        "a": "lower",
        "cl\u00e9": "non-ASCII key",
    },
    "floats": {
        "f01": 0.1,
        "f1": 1.0,
        "f1e16": 1e16,
        "f1e15": 1e15,
        "f15em07": 1.5e-07,
        "f00001": 0.0001,
        "f1em05": 1e-05,
        "fneg0": -0.0,
        "fzero": 0.0,
        "fbig": 123456789.123,
        "fhuge": 2.5e300,
        "fmin": 5e-324,
        "fmax": 1.7976931348623157e308,
        "fpow2": 2.0 ** -1017,
        "fneg": -1.5,
        "f100": 100.0,
        "fthird": 1.0 / 3.0,
    },
    "scalars": {
        "zero": 0,
        "one": 1,
        "minus": -1,
        "int64_min": -(2 ** 63),
        "int64_max": 2 ** 63 - 1,
        "big53": 2 ** 53 + 1,
        "yes": True,
        "no": False,
    },
    "lists": {
        "empty": [],
        "strings": ["a", "b\"c", "\u00e9"],
        "mixed": [1, 2.5, True, "x"],
        "nested": [[], [1, [2.5, ["deep"]]], ["z"]],
        "single": [False],
    },
    "config": {
        "service.pid": "mqtt.connector.main",
        "host": "127.0.0.1",
        "port": 1883,
        "keepalive": 60,
        "tls": False,
        "ratio": 0.5,
        "topics": ["pelix/#", "sensors/+/temp"],
    },
}


def main():
    out_dir = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "json")
    os.makedirs(out_dir, exist_ok=True)
    for name, data in sorted(FIXTURES.items()):
        text = json.dumps(data, sort_keys=True, indent=4, separators=(",", ": "))
        with open(os.path.join(out_dir, name + ".json"), "w", encoding="ascii") as f:
            f.write(text)


if __name__ == "__main__":
    main()
