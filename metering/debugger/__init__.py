"""The event debugger (SPEC §7): why one event counts or not (`explain`), and the stream of events with the status
the engine's own predicate gives them (`stream`). Plain dataclasses and querysets out, no HTTP."""
