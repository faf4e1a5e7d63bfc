"""Tools beside the product, run from the source tree: the demo (`make demo`, ``python -m
tools.demo``).
Not part of the installed package."""
