"""Data: the `refer` layout (RefCOCO, RefCOCO+, RefCOCOg, synthetic), transforms and tokens.

Submodules are imported where they are needed; this package root imports nothing heavy so that
`sera data check` stays quick to start.
"""
