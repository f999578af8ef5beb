"""Limits of every paged list of the API (SPEC §6.1: limit ≤ 100, default 50)."""

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
# A billion rows is beyond any list this service keeps; the bound keeps `offset + limit` far inside the 64-bit
# integers PostgreSQL and SQLite accept for OFFSET (2^63 answered 500 before).
MAX_OFFSET = 1_000_000_000
