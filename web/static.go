package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hitcounter/hitcounter/assets"
)

// staticFiles serves /static/ from memory. In production nginx serves the
// same folder and the app never sees these requests; this is the fallback
// for running the binary alone.
type staticFiles struct {
	files map[string]staticFile
}

type staticFile struct {
	data         []byte
	etag         string
	contentType  string
	cacheControl string
}

func loadStatic(fsys fs.FS) (*staticFiles, error) {
	st := &staticFiles{files: map[string]staticFile{}}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		ctype := mime.TypeByExtension(path.Ext(name))
		if ctype == "" {
			ctype = http.DetectContentType(data)
		}
		cc := "no-cache" // revalidate with the ETag
		if assets.Versioned(path.Base(name)) {
			cc = "public, max-age=31536000, immutable"
		}
		st.files[name] = staticFile{
			data:         data,
			etag:         `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`,
			contentType:  ctype,
			cacheControl: cc,
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load static files: %w", err)
	}
	return st, nil
}

func (st *staticFiles) has(name string) bool { _, ok := st.files[name]; return ok }

func (s *server) serveStatic(w http.ResponseWriter, r *http.Request) error {
	name := chi.URLParam(r, "*")
	f, ok := s.static.files[name]
	if !ok {
		return errorf(http.StatusNotFound, "There is no file at this address.")
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("Cache-Control", f.cacheControl)
	h.Set("ETag", f.etag)
	// ServeContent answers If-None-Match with 304 and handles Range and HEAD.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.data))
	return nil
}
