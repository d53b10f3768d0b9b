"""Per-connection views over the annotation stream, each faithful to its reference."""
