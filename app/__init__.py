"""ipytui application: CLI entry point and the Textual app."""
