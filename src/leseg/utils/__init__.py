"""Utilities shared by the entry points: task wrapper, config printing, atomic I/O, instantiation."""

from leseg.utils.io import atomic_write, atomic_write_json, atomic_write_text
from leseg.utils.logging import get_logger

__all__ = ["atomic_write", "atomic_write_json", "atomic_write_text", "get_logger"]
