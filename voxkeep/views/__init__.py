"""What a chat and its messages look like outside the store, for the CLI and the console alike: JSON
views and the export formats (docs/operations.md)."""
