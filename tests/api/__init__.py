"""Tests of the REST API (drills/api): httpx against the app, a live uvicorn where streaming."""
