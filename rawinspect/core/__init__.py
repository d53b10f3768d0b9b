"""The sans-IO core: Segment in, Annotation out, every state change a rule in transitions."""
