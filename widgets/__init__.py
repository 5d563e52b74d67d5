"""ipytui widgets: one widget per module."""
