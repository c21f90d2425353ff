package httpstep

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// reply is a canned HTTP reply.
type reply struct {
	status  int
	headers map[string]string
	body    string
}

func (r reply) serve(w http.ResponseWriter, _ *http.Request) {
	for k, v := range r.headers {
		w.Header().Set(k, v)
	}
	w.WriteHeader(r.status)
	io.WriteString(w, r.body)
}

var clock = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func TestCallReplies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		reply reply
		// success
		result string
		// failure
		status     int
		retryable  bool
		retryAfter time.Duration
		msg        string // substring of err.Error()
		limit      int64  // Options.MaxResponseBytes
	}{
		{name: "success", reply: reply{200, nil, `{"success":true,"result":{"id":"ch_1"}}`}, result: `{"id":"ch_1"}`},
		{name: "success 201", reply: reply{201, nil, ` {"success": true, "result": [1,2]} `}, result: `[1,2]`},
		{name: "success without result", reply: reply{200, nil, `{"success":true}`}, result: `null`},
		{name: "success with null result", reply: reply{200, nil, `{"success":true,"result":null}`}, result: `null`},
		{name: "job error", reply: reply{200, nil, `{"success":false,"error":"card declined"}`},
			status: 200, retryable: true, msg: "job failed: card declined"},
		{name: "job error without text", reply: reply{200, nil, `{"success":false}`},
			status: 200, retryable: true, msg: "job failed: (no error message)"},
		{name: "job error object", reply: reply{200, nil, `{"success":false,"error":{"code":7}}`},
			status: 200, retryable: true, msg: `job failed: {"code":7}`},
		{name: "job error with Retry-After", reply: reply{200, map[string]string{"Retry-After": "7"}, `{"success":false,"error":"busy"}`},
			status: 200, retryable: true, retryAfter: 7 * time.Second, msg: "busy"},
		{name: "not JSON", reply: reply{200, nil, `<html>hello</html>`},
			status: 200, retryable: true, msg: "reply is not the job protocol: body is not a JSON object: <html>"},
		{name: "empty body", reply: reply{200, nil, ``},
			status: 200, retryable: true, msg: "reply is not the job protocol: empty body"},
		{name: "204", reply: reply{204, nil, ``},
			status: 204, retryable: true, msg: "reply is not the job protocol: empty body"},
		{name: "no success field", reply: reply{200, nil, `{"result":1}`},
			status: 200, retryable: true, msg: `reply is not the job protocol: no "success" field`},
		{name: "success not boolean", reply: reply{200, nil, `{"success":"yes"}`},
			status: 200, retryable: true, msg: `"success" is not a boolean`},
		{name: "JSON array", reply: reply{200, nil, `[{"success":true}]`},
			status: 200, retryable: true, msg: "not a JSON object"},
		{name: "JSON null", reply: reply{200, nil, `null`},
			status: 200, retryable: true, msg: "not a JSON object"},
		{name: "bad JSON", reply: reply{200, nil, `{"success":true,`},
			status: 200, retryable: true, msg: "invalid JSON"},
		{name: "500 with error", reply: reply{500, nil, `{"success":false,"error":"db down"}`},
			status: 500, retryable: true, msg: "status 500 Internal Server Error: db down"},
		{name: "501", reply: reply{501, nil, ``}, status: 501, retryable: true, msg: "status 501 Not Implemented"},
		{name: "502 text", reply: reply{502, nil, "bad gateway\n"}, status: 502, retryable: true, msg: "status 502 Bad Gateway: bad gateway"},
		{name: "503 Retry-After seconds", reply: reply{503, map[string]string{"Retry-After": "3"}, ``},
			status: 503, retryable: true, retryAfter: 3 * time.Second},
		{name: "503 Retry-After date", reply: reply{503, map[string]string{"Retry-After": clock.Add(90 * time.Second).Format(http.TimeFormat)}, ``},
			status: 503, retryable: true, retryAfter: 90 * time.Second},
		{name: "503 Retry-After past date", reply: reply{503, map[string]string{"Retry-After": clock.Add(-time.Hour).Format(http.TimeFormat)}, ``},
			status: 503, retryable: true, retryAfter: 0},
		{name: "503 Retry-After garbage", reply: reply{503, map[string]string{"Retry-After": "soon"}, ``},
			status: 503, retryable: true, retryAfter: 0},
		{name: "408", reply: reply{408, nil, ``}, status: 408, retryable: true},
		{name: "429", reply: reply{429, map[string]string{"Retry-After": "1"}, ``}, status: 429, retryable: true, retryAfter: time.Second},
		{name: "400", reply: reply{400, nil, `{"error":"bad input"}`}, status: 400, msg: "status 400 Bad Request: bad input"},
		{name: "404", reply: reply{404, map[string]string{"Retry-After": "5"}, `not found`}, status: 404, msg: "404"},
		{name: "422 permanent", reply: reply{422, nil, `{"success":false,"error":"no such customer"}`},
			status: 422, msg: "status 422 Unprocessable Entity: no such customer"},
		{name: "long error truncated", reply: reply{500, nil, `{"success":false,"error":"` + strings.Repeat("x", 5000) + `"}`},
			status: 500, retryable: true, msg: "x…(truncated)"},
		{name: "body over limit", reply: reply{200, nil, `{"success":true,"result":"` + strings.Repeat("y", 2000) + `"}`},
			status: 200, msg: "reply body exceeds limit of 1024 bytes", limit: 1024},
		{name: "error body over limit", reply: reply{500, nil, strings.Repeat("z", 5000)},
			status: 500, retryable: true, msg: "z…(truncated)", limit: 1024},
		{name: "JSON error body over limit", reply: reply{500, nil, `{"success":false,"error":"` + strings.Repeat("x", 5000) + `"}`},
			status: 500, retryable: true, msg: `: {"success":false,"error":"xxx`, limit: 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, http.HandlerFunc(tt.reply.serve))
			c := newTestClient(t, Options{MaxResponseBytes: tt.limit, Now: func() time.Time { return clock }})
			got, err := c.Call(context.Background(), srv.URL+"/job", "wf/step", []byte(`{}`))
			if tt.status == 0 {
				if err != nil {
					t.Fatalf("Call: %v", err)
				}
				if string(got.Result) != tt.result {
					t.Errorf("Result = %s, want %s", got.Result, tt.result)
				}
				if got.StatusCode != tt.reply.status || got.Duration <= 0 {
					t.Errorf("StatusCode, Duration = %d, %v", got.StatusCode, got.Duration)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Call error = %v (%T), want *Error", err, err)
			}
			if e.StatusCode != tt.status || e.Retryable != tt.retryable || e.RetryAfter != tt.retryAfter {
				t.Errorf("StatusCode, Retryable, RetryAfter = %d, %v, %v; want %d, %v, %v",
					e.StatusCode, e.Retryable, e.RetryAfter, tt.status, tt.retryable, tt.retryAfter)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
			if !strings.HasPrefix(err.Error(), "httpstep: "+srv.URL+"/job: ") {
				t.Errorf("error %q does not name the URL", err)
			}
			if len(e.Message) > maxErrorText+100 {
				t.Errorf("Message is %d bytes long", len(e.Message))
			}
		})
	}
}

func TestCallHeaders(t *testing.T) {
	t.Parallel()
	secret := []byte("s3cret")
	body := []byte(`{"workflowId":"wf","stepId":"charge","attempt":1}`)
	tests := []struct {
		name   string
		secret []byte
		key    string
	}{
		{"signed", secret, "wf/charge"},
		{"unsigned", nil, "wf/charge"},
		{"no key", secret, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fail := func(format string, args ...any) {
					t.Errorf(format, args...)
					http.Error(w, "bad", http.StatusBadRequest)
				}
				if r.Method != http.MethodPost {
					fail("method %s", r.Method)
				}
				if got := r.Header.Get("Content-Type"); got != "application/json" {
					fail("Content-Type %q", got)
				}
				if got := r.Header.Get("User-Agent"); got != "dagflow" {
					fail("User-Agent %q", got)
				}
				if got, ok := r.Header[HeaderIdempotencyKey]; (tt.key == "" && ok) || (tt.key != "" && (len(got) != 1 || got[0] != tt.key)) {
					fail("Idempotency-Key %q, want %q", got, tt.key)
				}
				if tt.secret == nil {
					if got := r.Header.Get(HeaderSignature); got != "" {
						fail("unexpected signature %q", got)
					}
				} else if err := Verify(r, tt.secret); err != nil {
					fail("Verify: %v", err)
				}
				if got, _ := io.ReadAll(r.Body); string(got) != string(body) {
					fail("body %q", got)
				}
				io.WriteString(w, `{"success":true,"result":"ok"}`)
			}))
			c := newTestClient(t, Options{Secret: tt.secret})
			if _, err := c.Call(context.Background(), srv.URL, tt.key, body); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// blockingServer never replies; requests end when the client gives up.
func blockingServer(t *testing.T) *httptest.Server {
	release := make(chan struct{})
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	return srv
}

func TestCallContext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		ctx       func() (context.Context, context.CancelFunc)
		want      error
		retryable bool
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}, context.DeadlineExceeded, true},
		{"cancel", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(100*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := blockingServer(t)
			c := newTestClient(t, Options{})
			ctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			_, err := c.Call(ctx, srv.URL, "k", []byte(`{}`))
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Call returned after %v", d)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v is not %v", err, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.Retryable != tt.retryable || e.StatusCode != 0 {
				t.Errorf("error %#v, want *Error with Retryable %v", err, tt.retryable)
			}
		})
	}
}

func TestCallRedirects(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/job", http.StatusPermanentRedirect)
	})
	mux.HandleFunc("/job", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || Verify(r, []byte("k")) != nil {
			http.Error(w, "want a signed POST", http.StatusBadRequest)
			return
		}
		io.WriteString(w, `{"success":true,"result":1}`)
	})
	srv := newServer(t, mux)
	c := newTestClient(t, Options{Secret: []byte("k")})

	if r, err := c.Call(context.Background(), srv.URL+"/moved", "", []byte(`{}`)); err != nil || string(r.Result) != "1" {
		t.Errorf("Call(/moved) = %s, %v", r.Result, err)
	}

	_, err := c.Call(context.Background(), srv.URL+"/loop", "", []byte(`{}`))
	var e *Error
	if !errors.As(err, &e) || e.Retryable || e.StatusCode != 0 {
		t.Fatalf("Call(/loop) error %#v, want a non-retryable *Error", err)
	}
	if !strings.Contains(err.Error(), "redirect loop: stopped after 10 redirects") {
		t.Errorf("error %q does not explain the redirect loop", err)
	}
}

// closedURL returns a URL whose port nobody listens on.
func closedURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/job"
}

func TestCallUnreachable(t *testing.T) {
	t.Parallel()
	c := newTestClient(t, Options{})
	u := closedURL(t)
	_, err := c.Call(context.Background(), u, "", []byte(`{}`))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want *Error", err, err)
	}
	if !e.Retryable || e.StatusCode != 0 || e.Err == nil || e.URL != u {
		t.Errorf("error %#v, want retryable transport error", e)
	}
	if !strings.Contains(err.Error(), "request failed") {
		t.Errorf("error %q", err)
	}
}

func TestCallNoCredentialsInErrors(t *testing.T) {
	t.Parallel()
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "hunter2" {
			t.Errorf("basic auth = %q, %q, %v", u, p, ok)
		}
		http.Error(w, "nope", http.StatusServiceUnavailable)
	}))
	c := newTestClient(t, Options{})
	withCreds := func(u string) string { return strings.Replace(u, "http://", "http://user:hunter2@", 1) }
	for _, u := range []string{
		withCreds(srv.URL) + "/job",     // a reply
		withCreds(closedURL(t)),         // a transport error
		"ftp://user:hunter2@host/x",     // bad scheme
		"http://user:hunter2@host:port", // unparsable
		"//user:hunter2@host/x",         // relative, no base
	} {
		_, err := c.Call(context.Background(), u, "", nil)
		if err == nil {
			t.Fatalf("Call(%q) succeeded", u)
		}
		if s := err.Error(); strings.Contains(s, "hunter2") || strings.Contains(s, "user") {
			t.Errorf("error for %q shows credentials: %s", u, s)
		}
		var e *Error
		if !errors.As(err, &e) || strings.Contains(e.URL, "hunter2") {
			t.Errorf("Error.URL for %q shows credentials: %#v", u, err)
		}
		if err := c.Deliver(context.Background(), u, "", nil, 1); err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Deliver(%q) error %v", u, err)
		}
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	noBase := newTestClient(t, Options{})
	base := newTestClient(t, Options{BaseURL: "https://app.example/api/"})
	tests := []struct {
		c       *Client
		ref     string
		want    string
		wantErr string
	}{
		{noBase, "https://jobs.example/charge", "https://jobs.example/charge", ""},
		{noBase, "HTTP://jobs.example/charge?x=1", "HTTP://jobs.example/charge?x=1", ""},
		{noBase, "/jobs/charge", "", "Options.BaseURL is not set"},
		{noBase, "", "", "empty URL"},
		{base, "jobs/charge", "https://app.example/api/jobs/charge", ""},
		{base, "/jobs/charge", "https://app.example/jobs/charge", ""},
		{base, "../hooks/done", "https://app.example/hooks/done", ""},
		{base, "//other.example/x", "https://other.example/x", ""},
		{base, "http://other.example/x", "http://other.example/x", ""},
		{base, "ftp://files.example/x", "", `scheme "ftp" is not http or https`},
		{base, "mailto:ops@example.com", "", `scheme "mailto" is not http or https`},
		{base, "http:///nohost", "", "no host"},
		{base, "https://user:pw@host/x", "https://user:pw@host/x", ""}, // used, not printed
		{base, "ftp://user:pw@host/x", "", "scheme"},
		{base, "https://user:pw@host:port/x", "", "invalid port"},
		{base, "https://host/%zz", "", "invalid URL escape"},
	}
	for _, tt := range tests {
		got, err := tt.c.Resolve(tt.ref)
		if tt.wantErr == "" {
			if err != nil || got != tt.want {
				t.Errorf("Resolve(%q) = %q, %v; want %q", tt.ref, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Resolve(%q) error = %v, want %q", tt.ref, err, tt.wantErr)
			continue
		}
		if strings.Contains(err.Error(), "pw") {
			t.Errorf("Resolve(%q) error shows credentials: %v", tt.ref, err)
		}
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		o    Options
		want string
	}{
		{Options{BaseURL: "ftp://host/"}, "Options.BaseURL"},
		{Options{BaseURL: "/relative"}, "Options.BaseURL"},
		{Options{BaseURL: "https://"}, "Options.BaseURL"},
		{Options{BaseURL: "https://admin:pw@host:x/"}, "Options.BaseURL"},
		{Options{MaxResponseBytes: -1}, "Options.MaxResponseBytes"},
		{Options{RetryWaitMin: -time.Second}, "Options.RetryWaitMin"},
		{Options{RetryWaitMin: time.Minute, RetryWaitMax: time.Second}, "Options.RetryWaitMin"},
	}
	for _, tt := range tests {
		_, err := New(tt.o)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) error = %v, want one naming %s", tt.o, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("New error shows credentials: %v", err)
		}
	}

	c := newTestClient(t, Options{RetryWaitMin: time.Minute})
	if c.waitMin != time.Minute || c.waitMax != time.Minute || c.maxBody != 1<<20 || c.ua != "dagflow" {
		t.Errorf("defaults: %+v", c)
	}
	hc := &http.Client{}
	c = newTestClient(t, Options{HTTPClient: hc})
	if hc.CheckRedirect != nil || c.hc.CheckRedirect == nil {
		t.Error("New must not modify Options.HTTPClient but must limit redirects")
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"https://host/p?q=1":                      "https://host/p?q=REDACTED",
		"https://host/charge?apikey=KEY&b=2#frag": "https://host/charge?apikey=REDACTED&b=REDACTED#frag",
		"https://u:pw@host:bad/p?key=s3cret":      "https://xxxxx@host:bad/p?REDACTED",
		"https://user:pw@host/p":                  "https://host/p",
		"https://user@host/p":                     "https://host/p",
		"//user:pw@host/p":                        "//host/p",
		"https://user:pw@host:bad/p":              "https://xxxxx@host:bad/p",
		"https://user:p%zz@host/p":                "https://xxxxx@host/p",
		"user:pw@host":                            "xxxxx@host",
		"mailto:ops@example.com":                  "xxxxx@example.com",
		"https://host/p@x:bad%zz":                 "https://host/p@x:bad%zz",
		"/jobs/charge":                            "/jobs/charge",
	} {
		if got := redact(raw); got != want {
			t.Errorf("redact(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	t.Parallel()
	inner := errors.New("boom")
	e := &Error{URL: "http://h/x", Message: "request failed", Err: inner}
	if got, want := e.Error(), "httpstep: http://h/x: request failed: boom"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(e, inner) {
		t.Error("errors.Is does not see Err")
	}
	if got := truncate("héllo wörld", 2); got != "h…(truncated)" {
		t.Errorf("truncate cut a rune: %q", got)
	}
}
