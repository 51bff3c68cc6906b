"""The symbolic layer: types, variables, Apply nodes, shared variables, graph walks."""
