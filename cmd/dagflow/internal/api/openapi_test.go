package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// methods are the HTTP methods an OpenAPI path item may hold.
var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// document is the part of openapi.json the tests read.
type document struct {
	OpenAPI string                                `json:"openapi"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
}

type operation struct {
	Responses map[string]struct {
		Ref     string         `json:"$ref"`
		Content map[string]any `json:"content"`
	} `json:"responses"`
}

func readDocument(t *testing.T) document {
	t.Helper()
	var doc document
	dec := json.NewDecoder(bytes.NewReader(openAPIDoc))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return doc
}

// TestOpenAPIMatchesRoutes holds openapi.json to routes: the same
// operations, each with the statuses the route answers.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := readDocument(t)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	documented := map[string][]int{}
	for path, item := range doc.Paths {
		for method, raw := range item {
			if !slices.Contains(methods, method) {
				continue
			}
			var op operation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			var codes []int
			for code, resp := range op.Responses {
				n, err := strconv.Atoi(code)
				if err != nil {
					t.Errorf("%s %s: response %q is not a status code", method, path, code)
				}
				codes = append(codes, n)
				if resp.Ref == "" && n != http.StatusNoContent && resp.Content["application/json"] == nil {
					t.Errorf("%s %s: response %s has no application/json content", method, path, code)
				}
			}
			slices.Sort(codes)
			documented[strings.ToUpper(method)+" "+path] = codes
		}
	}
	served := map[string][]int{}
	for _, rt := range routes {
		served[rt.method+" "+rt.path] = rt.responses()
	}
	if diff := cmp.Diff(served, documented); diff != "" {
		t.Errorf("routes and openapi.json differ (-routes +openapi.json):\n%s", diff)
	}
}

// TestOpenAPIRefs: every $ref of openapi.json names something in it.
func TestOpenAPIRefs(t *testing.T) {
	var doc any
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	n := 0
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				n++
				if !resolves(doc, ref) {
					t.Errorf("$ref %q names nothing", ref)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	if n == 0 {
		t.Error("no $ref found")
	}
}

// resolves reports whether ref, a "#/a/b" pointer, names a value of doc.
func resolves(doc any, ref string) bool {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	for name := range strings.SplitSeq(p, "/") {
		m, ok := doc.(map[string]any)
		if !ok {
			return false
		}
		if doc, ok = m[name]; !ok {
			return false
		}
	}
	return true
}

// TestRoutesAnswer sends each route requests good and bad through the
// handler, on an engine of its own: each answer's status is one that the
// route (and so openapi.json) lists, and a method the route table lacks gets
// 405.
func TestRoutesAnswer(t *testing.T) {
	h := newTestAPI(t)
	call := func(method, path, ct, token string, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	bodies := map[string]string{
		"/v1/workflows": `{"id": "w", "steps": [{"id": "a", "sleep": {"seconds": 60}}]}`,
		"/v1/events":    `{"name": "e", "key": "k", "payload": {"x": 1}}`,
		"/v1/schedules": `{"id": "s", "cron": "@daily", "workflow": {"steps": [{"id": "a", "sleep": {"seconds": 1}}]}}`,
	}
	for _, rt := range routes {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			path := strings.ReplaceAll(rt.path, "{id}", "no%2Fsuch%25id")
			type probe struct {
				name, ct, token string
				body            []byte
				want            int // 0: any status the route lists
			}
			probes := []probe{
				{"no token", "", "", nil, http.StatusUnauthorized},
				{"wrong token", "", "nope", nil, http.StatusUnauthorized},
				{"good", "application/json", "t0ken", []byte(bodies[rt.path]), 0},
				{"twice", "application/json", "t0ken", []byte(bodies[rt.path]), 0},
				{"unknown id", "", "t0ken", nil, 0},
			}
			if rt.body {
				probes = append(probes,
					probe{"text", "text/plain", "t0ken", []byte(bodies[rt.path]), http.StatusUnsupportedMediaType},
					probe{"no type", "", "t0ken", []byte(bodies[rt.path]), http.StatusUnsupportedMediaType},
					probe{"malformed", "application/json", "t0ken", []byte(`{"id": `), http.StatusBadRequest},
					probe{"empty", "application/json", "t0ken", nil, http.StatusBadRequest},
					probe{"too large", "application/json", "t0ken", bytes.Repeat([]byte(" "), MaxBody+1), http.StatusRequestEntityTooLarge},
				)
			}
			for _, p := range probes {
				w := call(rt.method, path, p.ct, p.token, p.body)
				if !slices.Contains(rt.responses(), w.Code) || p.want != 0 && w.Code != p.want {
					t.Errorf("%s: status %d, want %v (listed: %v)\n%s", p.name, w.Code, p.want, rt.responses(), w.Body)
				}
				if w.Code != http.StatusNoContent && w.Header().Get("Content-Type") != "application/json" {
					t.Errorf("%s: Content-Type %q", p.name, w.Header().Get("Content-Type"))
				}
				if strings.Contains(w.Body.String(), "no such path") {
					t.Errorf("%s: the route does not serve %s", p.name, path)
				}
			}
			for _, m := range methods {
				m = strings.ToUpper(m)
				if slices.ContainsFunc(routes, func(o route) bool { return o.path == rt.path && o.method == m }) {
					continue
				}
				if w := call(m, path, "", "t0ken", nil); w.Code != http.StatusMethodNotAllowed {
					t.Errorf("%s %s: status %d, want 405", m, path, w.Code)
				}
			}
		})
	}
	if w := call("GET", "/v1/openapi.json", "", "t0ken", nil); !bytes.Equal(w.Body.Bytes(), openAPIDoc) {
		t.Error("GET /v1/openapi.json does not serve openapi.json as it is")
	}
}
