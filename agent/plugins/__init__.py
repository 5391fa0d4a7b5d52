"""Session plugins of our own: each fits a LiveKit interface or one of ours (docs/prosody.md)."""
