import json

import pytest

from common import fastjson

EVENT = {
    "specversion": "1.0",
    "id": "dgt-2026-000123",
    "source": "dgt",
    "type": "license.expiring",
    "subject": "license/B-12345678",
    "time": "2026-11-29T10:00:00Z",
    "data": {"citizen": {"id": "ES-12345678Z", "name": "Ana"}, "expires_on": "2027-01-15"},
}


@pytest.mark.parametrize(
    "wire",
    [
        EVENT,
        {"b": 'ñ\u2028\x00"\\/', "a": [1.5, 1e300, -0.0, True, None, {"z": 1, "y": "é😀"}]},
        {"big": 10**30, "": {}},
    ],
)
def test_canonical_json_writes_what_json_dumps_writes(wire):
    expected = json.dumps(wire, sort_keys=True, separators=(",", ":")).encode()
    assert fastjson.canonical_json(wire) == expected


@pytest.mark.parametrize("number", [float("nan"), float("-inf"), float("inf")])
def test_canonical_json_refuses_what_json_cannot_hold(number):
    with pytest.raises(ValueError, match="not JSON compliant"):
        fastjson.canonical_json({"n": number})


def test_the_fast_path_is_the_one_in_use_on_cpython():
    assert fastjson.uses_c_encoder()
