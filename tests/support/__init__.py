"""What the tests and the benchmarks share: real callers on a LiveKit server, the processes around
a call, and local servers that speak model vendors' wire protocols."""
