"""Hindsight core: data, engine, store, scanner and research jobs, usable without the UI.

Importing ``core`` is cheap: submodules are imported where they are used.
"""
__version__ = "0.1.0"
