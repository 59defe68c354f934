"""The local development stack: embedded PostgreSQL, one process per function, a gateway in front."""
