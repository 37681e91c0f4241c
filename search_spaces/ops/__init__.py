"""Registered ops. Importing this package fills the registry (:mod:`search_spaces.registry`)."""

from search_spaces.ops import conv, ghost, hardnet, heads, mbconv, shufflenet, stems  # noqa: F401  (imported for registration)
