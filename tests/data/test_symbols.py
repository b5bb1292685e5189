"""validate_symbol: safe ticker names only, checked before any path is built."""
from __future__ import annotations

import pytest

from core.data.symbols import validate_symbol
from core.errors import DataValidationError


@pytest.mark.parametrize("name", ["AAPL", "BRK.B", "BRK-B", "^GSPC", "EURUSD=X", "my_data1",
                                  "DEMO01", "X" * 32])
def test_real_ticker_shapes_are_accepted(name):
    assert validate_symbol(name) == name


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (None, "empty"),
        ("X" * 33, "33 characters"),
        ("../x", "not allowed"),
        ("a/b", "not allowed"),
        ("a\\b", "not allowed"),
        ("..", "not allowed"),
        (".hidden", "not allowed"),
        ("AA PL", "not allowed"),
        ("AAPL\n", "not allowed"),
        ("C:", "not allowed"),
    ],
)
def test_unsafe_names_are_rejected_with_the_name(name, fragment):
    with pytest.raises(DataValidationError) as info:
        validate_symbol(name)
    assert fragment in str(info.value)
