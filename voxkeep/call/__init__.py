"""One call's life (docs/architecture.md): attaching persistence to a session (`ChatHistory`,
`Call`), capture, the current chat and switching it, resume, the rebuilt context, summaries and
what a call knows about itself (`CallState`). Public names are re-exported by `voxkeep`."""
