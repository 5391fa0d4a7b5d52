"""A LiveKit Agents voice-agent worker with built-in persistence."""
