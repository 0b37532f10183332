"""Faust agents (discovered by the app): decode -> call atlas_stream -> send."""
