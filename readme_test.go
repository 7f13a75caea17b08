package main

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README's map names every top-level folder of the repository (but
// those .gitignore keeps out of it) and every package under internal/: a
// folder or a package added without a line there fails here.
func TestREADMEMapHasEveryFolder(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, themap, _ := strings.Cut(string(readme), "\n## The map\n")
	themap, _, _ = strings.Cut(themap, "\n## ")
	if themap == "" {
		t.Fatal("the README has no section ## The map")
	}
	ignored := map[string]bool{".git": true}
	gi, err := os.Open(".gitignore")
	if err != nil {
		t.Fatal(err)
	}
	defer gi.Close()
	for sc := bufio.NewScanner(gi); sc.Scan(); {
		if l := sc.Text(); strings.HasPrefix(l, "/") {
			ignored[strings.Trim(l, "/")] = true
		}
	}

	var folders []string
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() && !ignored[e.Name()] {
			folders = append(folders, e.Name()+"/")
		}
	}
	err = filepath.WalkDir("internal", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		if dir := filepath.Dir(path); !strings.Contains(themap, "`"+dir+"`") {
			t.Errorf("the README's map does not name the package %s", dir)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(folders) < 8 {
		t.Fatalf("found %d top-level folders: %q", len(folders), folders)
	}
	for _, f := range folders {
		if !strings.Contains(themap, "`"+f+"`") {
			t.Errorf("the README's map does not name the folder %s", f)
		}
	}
}

// The README and docs/ back claims with the names of tests, benchmarks and
// fuzz targets (the threat model, each of its claims): each name is a
// function of a _test.go file here, so a renamed or deleted test leaves no
// claim resting on nothing.
func TestDocsNameRealTests(t *testing.T) {
	defined := map[string]bool{}
	def := regexp.MustCompile(`(?m)^func ((?:Test|Benchmark|Fuzz)\w+)\(`)
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, "_test.go") {
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range def.FindAllSubmatch(src, -1) {
				defined[string(m[1])] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	docs, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	named := regexp.MustCompile("`((?:Test|Benchmark|Fuzz)\\w+)`")
	perDoc := map[string]int{}
	for _, doc := range append(docs, "README.md") {
		text, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range named.FindAllStringSubmatch(string(text), -1) {
			perDoc[doc]++
			if !defined[m[1]] {
				t.Errorf("%s names %s, which is no test, benchmark or fuzz target here", doc, m[1])
			}
		}
	}
	if n := perDoc["docs/threat-model.md"]; n < 10 {
		t.Errorf("docs/threat-model.md names %d tests, want its claims backed by tests", n)
	}
}
