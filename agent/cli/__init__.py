"""`agentctl`, the operator CLI (docs/operations.md)."""
