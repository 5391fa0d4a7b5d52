"""The control channel (DESIGN §6): commands from the caller's app over data packets and RPC."""
