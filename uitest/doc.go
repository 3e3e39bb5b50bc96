// Package uitest drives the sidecar's status page in a real headless
// browser (Debian's chromium, through the DevTools protocol with chromedp).
// It is a module of its own, so that the browser driver stays out of
// symcache's go.mod; make ui-test runs it (make test too), and writes a
// screenshot of the page to uitest/artifacts/.
package uitest
