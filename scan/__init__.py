"""Loops (``scan``): not yet implemented; see the project's issues."""
