"""The usage engine (SPEC §3–§5, §7): exact aggregation in the database, billing periods, the event debugger."""
