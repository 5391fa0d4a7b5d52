"""The offline call simulator, `voxkeepctl simulate` (docs/simulate.md): the production call
driven by a scripted caller, with the local OpenAI stand-in for `--offline`."""
