"""The console's screens, one module per screen.

Each module has a `router` built with `web.GUARDS` (the CSRF check and the role guard) and an
`ACCESS` table with a row per (method, path) it serves; `main.PAGE_MODULES` lists the modules.
To add a screen: write `pages/<screen>.py` with both, add it to `PAGE_MODULES`, put its
templates under `templates/` (extending `base.html`, with `error_summary` from `macros.html` for
forms; a route claimed twice is refused at start), and run `tools/console_messages.py` for its
strings.
Handlers call the services only through `state.services` with `actor=member.email`; templates
pass any email or phone number through `mask()` (it masks them for viewers); page tests use
`tests/console/pages.check_page`, browser tests `tests/console/browser.assert_accessible`.
"""
