"""A LiveKit Agents voice-agent worker with built-in persistence."""

import os

# onnxruntime (loaded by the silero VAD) reports telemetry to Microsoft unless told not to; a
# self-hosted worker connects only to what its operator configured (docs/architecture.md).
# Set before onnxruntime can be imported, and inherited by LiveKit's job processes.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
