package httpstep

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Deliver POSTs a webhook body to url (resolved with [Client.Resolve]),
// signed like [Client.Call] and with Idempotency-Key: key (omitted when key
// is ""). It makes up to maxAttempts requests (values below 1 mean 1) using
// go-retryablehttp's retry loop: transport errors, 5xx, 408 and 429 are
// retried after an exponential backoff with jitter between
// Options.RetryWaitMin and Options.RetryWaitMax, or after the reply's
// Retry-After when it has one (honoured as given; bound the total time with
// ctx). Each retry is signed afresh.
//
// Deliver returns nil on a 2xx reply, whatever its body. Otherwise it returns
// an [*Error] describing the last attempt; Retryable reports whether a later
// delivery may succeed. When ctx is done first, the error wraps ctx.Err().
// Deliver is safe for concurrent use.
func (c *Client) Deliver(ctx context.Context, url, key string, body []byte, maxAttempts int) error {
	u, _, err := c.resolve(url)
	if err != nil {
		return &Error{URL: redact(url), Message: "invalid URL", Err: err}
	}
	shown := redactURL(u)
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, u.String(), body)
	if err != nil {
		return &Error{URL: shown, Message: "invalid request", Err: stripURLError(err)}
	}
	c.setHeaders(ctx, req.Header, key, body)

	attempts := 0
	rc := &retryablehttp.Client{
		HTTPClient:   c.hc,
		Logger:       nil, // retryablehttp's default logger writes to stderr
		RetryWaitMin: c.waitMin,
		RetryWaitMax: c.waitMax,
		RetryMax:     max(maxAttempts, 1) - 1,
		CheckRetry: func(ctx context.Context, resp *http.Response, err error) (bool, error) {
			attempts++ // called once per attempt, on the goroutine of Do
			return checkRetry(ctx, resp, err)
		},
		Backoff:      c.backoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
		PrepareRetry: func(r *http.Request) error {
			r.Header = r.Header.Clone() // the previous attempt's request shares the map
			c.sign(r.Header, body)
			return nil
		},
	}
	resp, err := rc.Do(req)
	if err != nil {
		if resp != nil {
			closeBody(resp.Body)
		}
		e := transportError(ctx, shown, 0, err)
		e.Message = fmt.Sprintf("delivery failed after %d attempt(s): %s", attempts, e.Message)
		return e
	}
	defer closeBody(resp.Body)
	sc := resp.StatusCode
	if sc >= 200 && sc <= 299 {
		return nil
	}
	data, cut, _ := readLimited(resp.Body, min(c.maxBody, 16*maxErrorText))
	e := &Error{URL: shown, StatusCode: sc, Retryable: retryableStatus(sc),
		Message: fmt.Sprintf("delivery failed after %d attempt(s): %s", attempts, statusMessage(sc, errorText(data, cut)))}
	if e.Retryable {
		e.RetryAfter, _ = c.retryAfter(resp.Header)
	}
	return e
}

// backoff is Deliver's retryablehttp.Backoff: the reply's Retry-After when a
// retryable reply has one, else retryablehttp.DefaultBackoff's exponential
// wait (lo·2^attempt, capped at hi) with jitter, never below lo.
func (c *Client) backoff(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && retryableStatus(resp.StatusCode) {
		if d, ok := c.retryAfter(resp.Header); ok {
			return d
		}
	}
	d := retryablehttp.DefaultBackoff(lo, hi, attempt, nil)
	if d <= 1 {
		return d
	}
	return max(d/2+rand.N(d/2+1), lo)
}

var _ retryablehttp.Backoff = (*Client)(nil).backoff
