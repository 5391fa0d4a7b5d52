"""The prosody analyzer (docs/prosody.md): pure numpy over audio frames, and its LiveKit edge
(`stream.py`). It imports nothing of the call or the store."""
