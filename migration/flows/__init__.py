"""Flows as data: YAML mappings (one file per flow) and their checks."""
