"""`furet verify`: chunked checksums, row-level diffs and repair of a flow's copy."""
