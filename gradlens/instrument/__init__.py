"""Instrumentation: the recorder that installs hooks on an engine, the events it emits, the session
record, and ``watch`` (decorator and context manager)."""
