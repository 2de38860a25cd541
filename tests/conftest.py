"""Root conftest: registers the shared fixture modules (sandbox, AWS, stores)."""

pytest_plugins: list[str] = []
