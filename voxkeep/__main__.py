"""`python -m voxkeep COMMAND`: the worker (docs/operations.md); see `voxkeep.worker.main`."""

from voxkeep.worker.main import main

if __name__ == "__main__":
    raise SystemExit(main())
