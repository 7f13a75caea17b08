package assets

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The vendored files must be exactly what SHA256SUMS records.
func TestVendoredChecksums(t *testing.T) {
	sums, err := os.ReadFile("SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(sums))
	for sc.Scan() {
		want, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("bad SHA256SUMS line %q", sc.Text())
		}
		data, err := FS.ReadFile(name)
		if err != nil {
			t.Fatalf("%s is in SHA256SUMS but not embedded: %v", name, err)
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != want {
			t.Errorf("%s: sha256 %s, SHA256SUMS says %s", name, got, want)
		}
		n++
	}
	if _, err := FS.ReadFile(HTMX); err != nil || n == 0 {
		t.Fatalf("htmx %s not embedded or not checksummed (%d sums): %v", HTMX, n, err)
	}
}

func TestVersioned(t *testing.T) {
	for name, want := range map[string]bool{
		"htmx-4.0.1.min.js": true,
		"app-1.2.3.css":     true,
		"style.css":         false,
		"favicon.svg":       false,
		"htmx.min.js":       false,
	} {
		if got := Versioned(name); got != want {
			t.Errorf("Versioned(%q) = %v, want %v", name, got, want)
		}
	}
}

// A .gz twin (for nginx's gzip_static) must hold exactly its original.
func TestGzipTwins(t *testing.T) {
	twins, _ := filepath.Glob("*.gz")
	if len(twins) == 0 {
		t.Fatal("no .gz twin: nginx's gzip_static expects one for " + HTMX)
	}
	for _, gz := range twins {
		f, err := os.Open(gz)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("%s: %v", gz, err)
		}
		got, err := io.ReadAll(zr)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", gz, err)
		}
		want, err := os.ReadFile(strings.TrimSuffix(gz, ".gz"))
		if err != nil {
			t.Fatalf("%s has no original: %v", gz, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s does not hold its original: regenerate with gzip -9 -k -n -f %s", gz, strings.TrimSuffix(gz, ".gz"))
		}
	}
}
