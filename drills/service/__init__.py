"""The application layer: typed service functions under the CLI, the API and the runners.

Entry points parse input, call these modules (`runs`, `reports`, `catalogs`, `coverage`,
`cmdb`) and present what they return (`views`). Nothing here imports typer, rich, fastapi,
starlette, jinja2 or apscheduler. Import the modules themselves: this file re-exports nothing,
so importing the package costs nothing.
"""
