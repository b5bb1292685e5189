"""Symbol names: checked before any file name, cache key or URL is built from them."""
from __future__ import annotations

import re

from core.errors import DataValidationError

MAX_SYMBOL_LENGTH = 32
_ALLOWED = re.compile(r"[A-Za-z0-9._\-^=]+")


def validate_symbol(symbol: object) -> str:
    """Return ``symbol`` unchanged if it is a safe ticker name, else raise DataValidationError.

    Allowed: letters, digits and ``. - _ ^ =`` (``BRK.B``, ``^GSPC``, ``EURUSD=X``), 1-32
    characters, not starting with a dot (so ``..`` or a hidden file name cannot be formed).
    """
    if not isinstance(symbol, str) or not symbol.strip():
        raise DataValidationError(
            f"Symbol {symbol!r} is empty. Give a ticker such as 'DEMO01' or 'AAPL'."
        )
    if len(symbol) > MAX_SYMBOL_LENGTH:
        raise DataValidationError(
            f"Symbol {symbol[:40]!r}... is {len(symbol)} characters long; "
            f"at most {MAX_SYMBOL_LENGTH} are allowed."
        )
    if not _ALLOWED.fullmatch(symbol) or symbol.startswith("."):
        raise DataValidationError(
            f"Symbol {symbol!r} contains characters that are not allowed. Use letters, digits "
            "and . - _ ^ = only (no slashes, spaces or a leading dot)."
        )
    return symbol
