#!/usr/bin/env bash
# The companion site in CI: Debian's Chromium (the browser the site test drives; Playwright never downloads
# one), the `site` extra, then the site build and its check in the browser.
#
#   bash .ci/site.sh                      install, build (ttslab site), open every page in Chromium
#   SITE_INSTALL_ONLY=1 bash .ci/site.sh  install only: tests/test_site.py builds and checks the site later
#                                         in the same pytest run, reusing the notebooks executed before it
# Run inside the activated venv of .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

t0=$SECONDS
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium > /dev/null
fi
/usr/bin/chromium --version
python -m pip install --quiet -e ".[site]"
echo "site: install took $((SECONDS - t0)) s"

if [ "${SITE_INSTALL_ONLY:-0}" != 1 ]; then
    t0=$SECONDS
    python -m ttslab.site --check   # build/site/html, screenshots in build/site/screenshots
    echo "site: build + browser check took $((SECONDS - t0)) s"
fi
