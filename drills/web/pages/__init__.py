"""One module per page (or group of pages), each with a `router` of `drills.web.routing`."""
