"""Data files shipped with deid (the default configuration)."""
