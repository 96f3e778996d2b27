"""The base layer: the one-line user error, YAML/JSON reading and command-line plumbing (imports
nothing else of hwmodel)."""
