"""theon's examples; ``python -m examples.mlp`` (from the repository root) runs the main one."""
