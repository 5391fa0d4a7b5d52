"""`agentctl`, the operator CLI (DESIGN §8)."""
