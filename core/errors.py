"""One exception root for the whole workbench, with specific subclasses.

Every message names the bad value and says what to do about it, so that a page can show
``str(exc)`` as it is and a CLI can print it and exit non-zero.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class HindsightError(Exception):
    """Root of every error this project raises on purpose."""


class ValidationError(HindsightError, ValueError):
    """Input was rejected before anything was computed or stored."""


class UnknownNameError(ValidationError):
    """A name (strategy, exit rule, metric, column, symbol) that is not known."""


class UnknownStrategyError(UnknownNameError):
    """No strategy is registered under that name."""


class UnknownExitRuleError(UnknownNameError):
    """No exit rule type of that name."""


class ParamError(ValidationError):
    """A strategy or exit-rule parameter is unknown, of the wrong type or out of range."""


class RuleError(ValidationError):
    """A rule expression (entry, exit, require) could not be parsed, typed or evaluated."""


class StrategyFileError(ValidationError):
    """A strategy file is malformed: bad TOML, a missing or unknown field, a bad rule."""


class StrategyExistsError(StrategyFileError):
    """Saving a strategy would replace or shadow another one (a file, a built-in, a name)."""


class DataValidationError(ValidationError):
    """Price data is malformed (NaN, non-positive, high < low, duplicates, wrong columns, ...)."""


class FrequencyError(ValidationError):
    """Bars have no regular frequency, so bars per year cannot be read from them."""


class UnknownSymbolError(DataValidationError):
    """The data source has no such symbol."""


class DataUnavailableError(HindsightError):
    """A data source cannot be reached (offline, timed out)."""


class QueryError(ValidationError):
    """A store query (``where``/``order_by``) could not be parsed or names an unknown column."""


class GridTooLargeError(ValidationError):
    """A parameter grid has more cells than the configured cap."""


class StoreError(HindsightError):
    """The backtest store could not complete an operation."""


class StoreCorruptionError(StoreError):
    """Stored bytes failed their checksum or are missing; the damaged part is named."""


class StoreVersionError(StoreError):
    """The store was written by a newer (or unknown) format version."""


class NotFoundError(HindsightError, KeyError):
    """A backtest id (or other stored key) does not exist."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or a list of valid names."""
    options = sorted(choices)
    close = difflib.get_close_matches(str(name), options, n=1, cutoff=0.6)
    if close:
        return f" Did you mean '{close[0]}'?"
    return f" Valid names: {', '.join(options)}." if options else ""
