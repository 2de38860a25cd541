"""One router module per resource; `drills.api.app.create_app` includes each of them."""
