"""todo_backend: the shared package every function depends on (models, unit of work, outbox, auth, HTTP)."""
