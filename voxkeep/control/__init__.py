"""The control channel (docs/control.md): commands from the caller's app over data packets and
RPC."""
