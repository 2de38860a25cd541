"""The web pages (jinja2): views that parse, call `drills.service` and render its views.

`drills.web.app.install(app)` adds them to the app `stormdrill serve` runs (the API's
`create_app`), beside `/api/v1`: the same store, registry and settings on `app.state`. An
import-linter contract keeps this package independent of the other entry points
(`drills.commands`, `drills.api`, `drills.scheduling`): everything it shares with the API
lives in `drills.service`.
"""
