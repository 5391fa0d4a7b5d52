"""The operator's console, `voxkeepctl serve` (docs/console.md): an HTTP API over the store."""
