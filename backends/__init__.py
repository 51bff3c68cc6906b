"""Executors: the numpy backend (generated Python over numpy thunks)."""
