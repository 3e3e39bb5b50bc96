// Package bench measures symcache's serving path against a baseline measured
// in the same run. It holds Go benchmarks over loopback HTTP: the sidecar's
// handler on an L1 hit against a plain net/http handler writing the same
// bytes from memory. The load harness comparing the built sidecar with nginx
// and Varnish serving the same bytes is bench/load.sh,
// with its helper in bench/load and its reports in bench/results; see
// bench/README.md.
package bench
