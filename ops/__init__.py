"""Every operation, each defined in one place (see ops/scalar.py for the elementwise table)."""
