"""The command-line layer: typer only.  Parses, validates, calls the engine, reports."""
