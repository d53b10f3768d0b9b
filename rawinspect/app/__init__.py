"""The command line and the pipelines that wire sources, core, views and renderers."""
