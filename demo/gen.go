//go:build ignore

// gen writes recordings/<name>.gz: the gzip copies of the recorded Binance
// answers in ../testdata/binance that package demo builds into the binary.
// Run it with `go generate ./demo` after a recording there changes:
// TestRecordings_MatchTestdata fails until then.
package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
)

// names are the recordings demo serves, one per market.
var names = []string{"spot_exchangeinfo.json", "usdm_exchangeinfo.json", "coinm_exchangeinfo.json"}

func main() {
	for _, name := range names {
		if err := write(name); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
}

func write(name string) error {
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "binance", name))
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	// No name and no modification time in the header: the output depends on
	// the input (and the Go release) only.
	if _, err := zw.Write(raw); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	out := filepath.Join("recordings", name+".gz")
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Printf("%s: %d bytes, %d gzipped\n", out, len(raw), buf.Len())
	return nil
}
