"""Background jobs of the worker's main process (docs/architecture.md): the sweeper and webhook
delivery. Neither is on a call's path."""
