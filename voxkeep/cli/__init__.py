"""`voxkeepctl`, the operator CLI (docs/operations.md)."""
