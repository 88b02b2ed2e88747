"""planner's version, in a leaf module every other module can import without a cycle."""

__version__ = "0.1.0"
