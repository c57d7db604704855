"""The command-line interface: parses and prints; model logic lives elsewhere."""
