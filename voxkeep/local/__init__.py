"""The local development stack (docs/livekit.md, docs/webapp.md): a LiveKit server on loopback, the
reference web app's server and `scripts/run`, which starts them with the worker."""
