"""Daily usage rollups (PostgreSQL): `read` decides which whole days the engine may answer from rollups and
writes the SQL over them; `refresh` (re)computes sealed days with the engine's own window partials."""
