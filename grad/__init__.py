"""Symbolic differentiation (reverse and forward mode over the graph)."""
