"""Our worker (docs/architecture.md): `python -m voxkeep`, its composition root, the user's factory,
the providers it builds from settings and our own assistant."""
