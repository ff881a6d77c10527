#!/bin/sh
# Debian's Chromium for the web page's browser test (Playwright drives it; `playwright install` downloads its own
# browser at run time, which offline machines cannot). Needs root; without it the browser test is skipped.
command -v chromium >/dev/null && exit 0
if [ "$(id -u)" = 0 ]; then
    apt-get install -y -q chromium >/dev/null || { apt-get update -qq && apt-get install -y -q chromium >/dev/null; }
else
    echo "no Chromium and not root: sudo apt-get install chromium, or the web page's browser test is skipped"
fi
exit 0
