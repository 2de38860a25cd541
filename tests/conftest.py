"""Root conftest: registers the shared fixture modules (sandbox, AWS, stores)."""

pytest_plugins: list[str] = [
    "tests.fixtures.aws",
    "tests.fixtures.kube",
    "tests.fixtures.kube_schema",
    "tests.fixtures.stores",
]
