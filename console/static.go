package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"time"
)

//go:embed assets
var assetFS embed.FS

// asset is an embedded file with the hash that names its version.
type asset struct {
	body    []byte
	version string
	ctype   string
}

var assets, assetURLs = loadAssets()

// loadAssets reads the embedded assets and makes, for each, the relative URL
// pages link it by (static/NAME?v=HASH): a new version gets a new URL, so
// browsers may cache each for good.
func loadAssets() (map[string]asset, map[string]string) {
	files := map[string]asset{}
	urls := map[string]string{}
	entries, err := fs.ReadDir(assetFS, "assets")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		b, err := assetFS.ReadFile("assets/" + e.Name())
		if err != nil {
			panic(err)
		}
		sum := sha256.Sum256(b)
		v := hex.EncodeToString(sum[:6])
		ctype := mime.TypeByExtension(path.Ext(e.Name()))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		files[e.Name()] = asset{body: b, version: v, ctype: ctype}
		urls[e.Name()] = "static/" + e.Name() + "?v=" + v
	}
	return files, urls
}

// static serves an embedded asset.
func (c *console) static(w http.ResponseWriter, r *request) {
	a, ok := assets[r.segs[1]]
	if !ok {
		c.notFound(w, r.Request, 1)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	if r.URL.Query().Get("v") == a.version {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	h.Set("ETag", `"`+a.version+`"`)
	http.ServeContent(w, r.Request, "", time.Time{}, bytes.NewReader(a.body))
}
