# Headless Chromium for the documentation site's browser test (tests/docs/test_site.py), which
# drives it through Playwright with executable_path=/usr/bin/chromium: Playwright's own browser
# download cannot be fetched on CI, Debian's package can. The fonts give pages readable text in
# the test's screenshots. No daemon: each test starts and ends its own browser.
need_packages chromium fonts-dejavu-core
