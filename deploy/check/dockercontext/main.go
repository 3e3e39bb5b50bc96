// Command dockercontext copies the build context `docker build` would send:
// every file under a folder that its .dockerignore leaves, matched with
// Docker's own pattern matcher (github.com/moby/patternmatcher). Without a
// Docker engine, scripts/check-dockerfile.sh builds in that copy, so an
// exclusion that drops something the build needs fails there.
//
//	go run ./dockercontext -src ../.. -out DIR
//
// It prints the number of files and bytes copied.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

func main() {
	src := flag.String("src", ".", "the build context folder, with its .dockerignore")
	out := flag.String("out", "", "an empty or missing folder to copy the context to")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	files, size, err := copyContext(*src, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dockercontext:", err)
		os.Exit(1)
	}
	fmt.Printf("dockercontext: %d files, %.1f MiB\n", files, float64(size)/(1<<20))
}

// copyContext copies what .dockerignore in src leaves into out; it returns
// the number of files and their total size.
func copyContext(src, out string) (files int, size int64, err error) {
	var patterns []string
	if f, err := os.Open(filepath.Join(src, ".dockerignore")); err == nil {
		patterns, err = ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return 0, 0, fmt.Errorf(".dockerignore: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return 0, 0, err
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return 0, 0, fmt.Errorf(".dockerignore: %w", err)
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return 0, 0, err
	}
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || rel == "." {
			return err
		}
		if abs, _ := filepath.Abs(path); abs == absOut {
			return filepath.SkipDir // out may sit inside src
		}
		skip, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		if skip {
			if d.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir // nothing under it can come back
			}
			return nil
		}
		dst := filepath.Join(out, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case d.Type().IsRegular():
			n, err := copyFile(path, dst)
			files++
			size += n
			return err
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			files++
			return os.Symlink(target, dst)
		}
		return nil // sockets, pipes: not sent
	})
	return files, size, err
}

func copyFile(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return 0, err
	}
	o, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(o, in)
	if cerr := o.Close(); err == nil {
		err = cerr
	}
	return n, err
}
