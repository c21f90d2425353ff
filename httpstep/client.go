package httpstep

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"
)

const (
	defaultMaxResponseBytes = 1 << 20
	defaultUserAgent        = "dagflow"
	defaultRetryWaitMin     = time.Second
	defaultRetryWaitMax     = 30 * time.Second

	maxRedirects = 10      // like net/http's default policy
	maxErrorText = 1 << 10 // bytes of a reply's error text kept in an Error
	maxDrain     = 64 << 10
)

// errTooManyRedirects is what the Client's redirect policy returns.
var errTooManyRedirects = fmt.Errorf("stopped after %d redirects", maxRedirects)

// Options configure a [Client]. The zero value is usable: unsigned requests,
// absolute URLs only, and the defaults documented on each field.
type Options struct {
	// BaseURL is the absolute http or https URL relative step URLs resolve
	// against (RFC 3986, like a browser: with base "https://app/api/",
	// "jobs/x" is "https://app/api/jobs/x" and "/jobs/x" is
	// "https://app/jobs/x"). Default "": relative URLs are an error.
	BaseURL string

	// Secret is the HMAC-SHA256 key for the Dagflow-Signature header.
	// Default nil (or empty): requests are not signed. New copies it.
	Secret []byte

	// HTTPClient makes the requests. Its Timeout, if any, bounds each
	// request. If its CheckRedirect is nil, the Client uses a copy that
	// follows at most 10 redirects and reports more as a non-retryable
	// redirect loop. Default: a client of its own with a pooled transport
	// (go-cleanhttp), sharing no global state.
	HTTPClient *http.Client

	// MaxResponseBytes bounds the reply body the Client reads. A successful
	// reply over it fails the attempt (not retryable); the body of a failed
	// reply is only used for the error text. Default 1 MiB (1<<20); negative
	// is an error.
	MaxResponseBytes int64

	// UserAgent is sent in the User-Agent header. Default "dagflow".
	UserAgent string

	// Now is the clock used to sign requests and to read Retry-After dates.
	// Default time.Now.
	Now func() time.Time

	// RetryWaitMin and RetryWaitMax bound the exponential backoff (with
	// jitter) between the attempts of [Client.Deliver]. A Retry-After in a
	// retryable reply replaces the backoff. Defaults 1s and 30s; negative
	// values, or RetryWaitMin > RetryWaitMax, are an error. Call never waits.
	RetryWaitMin time.Duration
	RetryWaitMax time.Duration // see RetryWaitMin

	// Header, when set, adds headers to every request from the request's
	// context (a W3C traceparent, say). It runs after the Client's own
	// headers, which it must not change.
	Header func(ctx context.Context, h http.Header)
}

// Client calls HTTP job handlers and delivers webhooks. Create one with
// [New]; a Client is safe for concurrent use and does not change after New.
type Client struct {
	base    *url.URL
	secret  []byte
	hc      *http.Client
	maxBody int64
	ua      string
	now     func() time.Time
	waitMin time.Duration
	waitMax time.Duration
	header  func(context.Context, http.Header)
}

// HasBaseURL reports whether the client has a base URL for relative URLs.
func (c *Client) HasBaseURL() bool { return c.base != nil }

// Reply is the outcome of a successful [Client.Call].
type Reply struct {
	// Result is the reply's "result", JSON null when it had none.
	Result json.RawMessage
	// StatusCode is the reply's HTTP status (2xx).
	StatusCode int
	// Duration is the time from sending the request to reading the reply.
	Duration time.Duration
}

// New validates o and returns a Client. Errors name the offending field.
func New(o Options) (*Client, error) {
	c := &Client{
		maxBody: o.MaxResponseBytes,
		ua:      o.UserAgent,
		now:     o.Now,
		waitMin: o.RetryWaitMin,
		waitMax: o.RetryWaitMax,
		header:  o.Header,
	}
	if o.BaseURL != "" {
		u, err := parseAbsolute(o.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("httpstep: Options.BaseURL %q: %w", redact(o.BaseURL), err)
		}
		c.base = u
	}
	if len(o.Secret) > 0 {
		c.secret = bytes.Clone(o.Secret)
	}
	switch {
	case c.maxBody < 0:
		return nil, fmt.Errorf("httpstep: Options.MaxResponseBytes is negative (%d)", c.maxBody)
	case c.maxBody == 0:
		c.maxBody = defaultMaxResponseBytes
	}
	if c.ua == "" {
		c.ua = defaultUserAgent
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.waitMin < 0 || c.waitMax < 0 {
		return nil, errors.New("httpstep: Options.RetryWaitMin and Options.RetryWaitMax must not be negative")
	}
	if c.waitMin == 0 {
		c.waitMin = defaultRetryWaitMin
	}
	if c.waitMax == 0 {
		c.waitMax = max(defaultRetryWaitMax, c.waitMin)
	}
	if c.waitMin > c.waitMax {
		return nil, fmt.Errorf("httpstep: Options.RetryWaitMin (%s) exceeds Options.RetryWaitMax (%s)", c.waitMin, c.waitMax)
	}
	if o.HTTPClient == nil {
		c.hc = cleanhttp.DefaultPooledClient()
	} else {
		hc := *o.HTTPClient
		c.hc = &hc
	}
	if c.hc.CheckRedirect == nil {
		c.hc.CheckRedirect = checkRedirect
	}
	return c, nil
}

func checkRedirect(_ *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return errTooManyRedirects
	}
	return nil
}

// CloseIdleConnections closes the idle connections of the Client's transport.
// Call it when done with a Client whose HTTPClient it created.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Resolve returns the absolute URL a step URL refers to: an absolute http or
// https URL as is, a relative one resolved against Options.BaseURL (an error
// when there is none). Other schemes and URLs without a host are errors.
// Errors never contain the URL's credentials.
func (c *Client) Resolve(ref string) (string, error) {
	u, abs, err := c.resolve(ref)
	if err != nil {
		return "", fmt.Errorf("httpstep: resolve %q: %w", redact(ref), err)
	}
	if abs {
		return ref, nil
	}
	return u.String(), nil
}

// resolve parses ref and resolves it against the base URL; abs reports that
// ref was absolute already.
func (c *Client) resolve(ref string) (u *url.URL, abs bool, err error) {
	if strings.TrimSpace(ref) == "" {
		return nil, false, errors.New("empty URL")
	}
	u, err = url.Parse(ref)
	if err != nil {
		return nil, false, stripURLError(err)
	}
	abs = u.Scheme != ""
	if !abs {
		if c.base == nil {
			return nil, false, errors.New("relative URL but Options.BaseURL is not set")
		}
		u = c.base.ResolveReference(u)
	}
	if err := checkAbsolute(u); err != nil {
		return nil, false, err
	}
	return u, abs, nil
}

func parseAbsolute(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, stripURLError(err)
	}
	if u.Scheme == "" {
		return nil, errors.New("not an absolute URL")
	}
	return u, checkAbsolute(u)
}

func checkAbsolute(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("URL has no host")
	}
	return nil
}

// stripURLError drops the URL (which may hold credentials) from the
// *url.Error that net/url and net/http return, keeping the cause.
func stripURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// Redact returns a URL fit to show or store in an error, a log line or a
// status: its userinfo (user and password) is dropped and the value of each
// query parameter becomes "REDACTED", since URLs often carry API keys there.
// A URL that does not parse has whatever precedes an '@' in its authority,
// and everything after a '?', replaced.
func Redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Opaque == "" {
		return redactURL(u)
	}
	start := 0
	if i := strings.Index(raw, "://"); i >= 0 {
		start = i + 3
	}
	end := len(raw)
	if j := strings.IndexAny(raw[start:], "/?#"); j >= 0 {
		end = start + j
	}
	if at := strings.LastIndex(raw[start:end], "@"); at >= 0 {
		raw = raw[:start] + "xxxxx" + raw[start+at:]
	}
	if q := strings.IndexByte(raw, '?'); q >= 0 {
		raw = raw[:q+1] + "REDACTED"
	}
	return raw
}

func redact(raw string) string { return Redact(raw) }

func redactURL(u *url.URL) string {
	if u.User == nil && u.RawQuery == "" {
		return u.String()
	}
	ru := *u
	ru.User = nil
	if ru.RawQuery != "" {
		q := ru.Query()
		keys := make([]string, 0, len(q))
		for k := range q {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var b strings.Builder
		for i, k := range keys {
			if i > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(k))
			b.WriteString("=REDACTED")
		}
		ru.RawQuery = b.String()
	}
	return ru.String()
}

// Call POSTs body to the job handler at url (resolved with [Client.Resolve])
// as one attempt of a step: exactly one HTTP request, no retries, since the
// engine counts attempts. It sets Content-Type: application/json,
// Idempotency-Key: key (omitted when key is ""), and Dagflow-Signature when
// the Client has a secret.
//
// A 2xx reply with {"success": true, "result": ...} returns the result. Every
// other outcome returns an [*Error] whose Retryable field classifies it:
//
//   - 2xx {"success": false, "error": "..."}: retryable.
//   - 2xx whose body is not a JSON object with a boolean "success" (including
//     an empty body): retryable, "reply is not the job protocol: ...".
//   - 2xx over Options.MaxResponseBytes: not retryable (a retry would
//     repeat the work and produce the same oversized result).
//   - 5xx, 408, 429: retryable, with RetryAfter from Retry-After.
//   - other 4xx (and 1xx/3xx that end the exchange): not retryable.
//   - transport errors (refused, DNS, reset, timeouts): retryable,
//     StatusCode 0; except TLS certificate errors and redirect loops.
//   - ctx cancelled: not retryable; ctx deadline passed: retryable (the
//     attempt timed out). Both wrap ctx.Err().
//
// Call is safe for concurrent use. It returns when the reply is read or
// ctx is done, and it always closes the reply body.
func (c *Client) Call(ctx context.Context, url, key string, body []byte) (Reply, error) {
	u, _, err := c.resolve(url)
	if err != nil {
		return Reply{}, &Error{URL: redact(url), Message: "invalid URL", Err: err}
	}
	shown := redactURL(u)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return Reply{}, &Error{URL: shown, Message: "invalid request", Err: stripURLError(err)}
	}
	c.setHeaders(ctx, req.Header, key, body)

	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return Reply{}, transportError(ctx, shown, 0, err)
	}
	defer closeBody(resp.Body)
	data, tooBig, err := readLimited(resp.Body, c.maxBody)
	elapsed := time.Since(start)
	if err != nil {
		return Reply{}, transportError(ctx, shown, resp.StatusCode, fmt.Errorf("read reply: %w", err))
	}
	sc := resp.StatusCode
	if sc < 200 || sc > 299 {
		e := &Error{URL: shown, StatusCode: sc, Retryable: retryableStatus(sc), Message: statusMessage(sc, errorText(data, tooBig))}
		if e.Retryable {
			e.RetryAfter, _ = c.retryAfter(resp.Header)
		}
		return Reply{}, e
	}
	if tooBig {
		return Reply{}, &Error{URL: shown, StatusCode: sc,
			Message: fmt.Sprintf("reply body exceeds limit of %d bytes", c.maxBody)}
	}
	env, err := parseEnvelope(data)
	if err != nil {
		return Reply{}, &Error{URL: shown, StatusCode: sc, Retryable: true,
			Message: "reply is not the job protocol: " + err.Error()}
	}
	if !env.success {
		e := &Error{URL: shown, StatusCode: sc, Retryable: true, Message: "job failed: " + env.errText}
		e.RetryAfter, _ = c.retryAfter(resp.Header)
		return Reply{}, e
	}
	return Reply{Result: env.result, StatusCode: sc, Duration: elapsed}, nil
}

func (c *Client) setHeaders(ctx context.Context, h http.Header, key string, body []byte) {
	if c.header != nil {
		c.header(ctx, h)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json")
	h.Set("User-Agent", c.ua)
	if key != "" {
		h.Set(HeaderIdempotencyKey, key)
	}
	c.sign(h, body)
}

func (c *Client) sign(h http.Header, body []byte) {
	if len(c.secret) > 0 {
		h.Set(HeaderSignature, Sign(c.secret, c.now(), body))
	}
}

// transportError makes the Error of an exchange that ended without a
// usable reply.
func transportError(ctx context.Context, shown string, status int, err error) *Error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		e := &Error{URL: shown, StatusCode: status, Message: "attempt cancelled", Err: ctxErr}
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			e.Message, e.Retryable = "attempt timed out", true
		}
		return e
	}
	retry, _ := checkRetry(ctx, nil, err)
	msg := "request failed"
	if errors.Is(err, errTooManyRedirects) {
		msg = "redirect loop"
	}
	return &Error{URL: shown, StatusCode: status, Retryable: retry, Message: msg, Err: stripURLError(err)}
}

// checkRetry is the retry policy of the protocol, as a retryablehttp.CheckRetry:
// retry transport errors (as retryablehttp does, except redirect loops), 5xx,
// 408 and 429; stop when ctx is done.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		if errors.Is(err, errTooManyRedirects) {
			return false, err
		}
		return retryablehttp.ErrorPropagatedRetryPolicy(ctx, nil, err)
	}
	return retryableStatus(resp.StatusCode), nil
}

var _ retryablehttp.CheckRetry = checkRetry

func retryableStatus(code int) bool {
	return code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests
}

// retryAfter parses a Retry-After header: delay seconds or an HTTP date (a
// past date is 0).
func (c *Client) retryAfter(h http.Header) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if strings.Trim(v, "0123456789") == "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > math.MaxInt64/int64(time.Second) {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(c.now()), 0), true
}

// readLimited reads at most limit bytes of r; tooBig reports more were there.
func readLimited(r io.Reader, limit int64) (data []byte, tooBig bool, err error) {
	data, err = io.ReadAll(io.LimitReader(r, limit+1))
	if int64(len(data)) > limit {
		return data[:limit], true, nil
	}
	return data, false, err
}

// closeBody drains a little of body, so the connection can be reused, and
// closes it.
func closeBody(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxDrain))
	_ = body.Close()
}

type envelope struct {
	success bool
	result  json.RawMessage
	errText string
}

// parseEnvelope decodes a 2xx reply: a JSON object with a boolean "success".
func parseEnvelope(data []byte) (envelope, error) {
	var env envelope
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return env, errors.New("empty body")
	}
	if data[0] != '{' {
		return env, fmt.Errorf("body is not a JSON object: %s", truncate(string(data), 200))
	}
	var raw struct {
		Success json.RawMessage `json:"success"`
		Result  json.RawMessage `json:"result"`
		Error   json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return env, fmt.Errorf("invalid JSON: %w", err)
	}
	switch string(raw.Success) {
	case "true":
		env.success = true
	case "false":
	case "":
		return env, errors.New(`no "success" field`)
	default:
		return env, errors.New(`"success" is not a boolean`)
	}
	env.result = raw.Result
	if len(env.result) == 0 {
		env.result = json.RawMessage("null")
	}
	env.errText = jsonErrorText(raw.Error)
	if env.errText == "" {
		env.errText = "(no error message)"
	}
	return env, nil
}

// errorText is the text for a failed reply's body: its JSON "error" if it has
// one, else the body itself, truncated; cut reports that data is a prefix.
func errorText(data []byte, cut bool) string {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '{' {
		var raw struct {
			Error json.RawMessage `json:"error"`
		}
		if json.Unmarshal(data, &raw) == nil {
			if s := jsonErrorText(raw.Error); s != "" {
				return s
			}
		}
	}
	s := truncate(string(data), maxErrorText)
	if cut && !strings.HasSuffix(s, truncated) {
		s += truncated
	}
	return s
}

func jsonErrorText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return truncate(s, maxErrorText)
	}
	return truncate(string(raw), maxErrorText) // an object or other JSON: keep it as JSON
}

func statusMessage(code int, text string) string {
	msg := "status " + strconv.Itoa(code)
	if st := http.StatusText(code); st != "" {
		msg += " " + st
	}
	if text != "" {
		msg += ": " + text
	}
	return msg
}

const truncated = "…(truncated)"

// truncate cuts s to at most n bytes on a rune boundary, marking the cut,
// and replaces invalid UTF-8.
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + truncated
}
