"""The foundation every other part stands on: errors, ids, settings, logs and metrics. It imports
nothing else of the package."""
