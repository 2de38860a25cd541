"""Browser tests: headless Chromium (Playwright) against a real `stormdrill serve`."""
