package httpstep

import (
	"errors"
	"strings"
	"time"
)

// Signature errors, returned (possibly wrapped; use errors.Is) by [Verify]
// and turned into 401 replies by [Handler].
var (
	// ErrNoSignature is returned when the request has no Dagflow-Signature header.
	ErrNoSignature = errors.New("httpstep: missing " + HeaderSignature + " header")

	// ErrBadSignature is returned when the Dagflow-Signature header is
	// malformed or none of its v1 signatures matches the body and timestamp.
	ErrBadSignature = errors.New("httpstep: bad signature")

	// ErrExpiredSignature is returned when the signature is genuine but its
	// timestamp is more than [SignatureTolerance] in the past (a replay) or
	// in the future.
	ErrExpiredSignature = errors.New("httpstep: signature timestamp outside tolerance")
)

// Error is the error of a failed attempt of [Client.Call] (and of a failed
// [Client.Deliver]). Use errors.As to get it.
//
// When the attempt ended because the caller's context was cancelled or its
// deadline passed, Err is ctx.Err(), so errors.Is(err, context.Canceled) and
// errors.Is(err, context.DeadlineExceeded) work.
type Error struct {
	// URL is the requested URL with its userinfo (credentials) removed.
	URL string

	// StatusCode is the HTTP status of the reply, or 0 when no reply was
	// received (transport errors, cancellation, invalid URLs).
	StatusCode int

	// Retryable reports whether another attempt may succeed: true for 5xx,
	// 408 and 429 replies, {"success": false} replies, replies that do not
	// follow the protocol, transport errors and context deadlines; false for
	// other 4xx (including 422 from [Permanent]), oversized successful
	// replies, redirect loops, invalid URLs and context cancellation.
	Retryable bool

	// RetryAfter is the wait the reply asked for in its Retry-After header
	// (seconds or HTTP date), or 0.
	RetryAfter time.Duration

	// Message describes the failure, including the status and the reply's
	// "error" text (truncated to about 1 KiB) when there was a reply.
	Message string

	// Err is the underlying error, if any: a transport error, ctx.Err(), ...
	Err error
}

// Error returns "httpstep: <URL>: <Message>[: <Err>]".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("httpstep: ")
	if e.URL != "" {
		b.WriteString(e.URL)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	if e.Err != nil {
		if e.Message != "" {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns e.Err.
func (e *Error) Unwrap() error { return e.Err }

// Permanent marks err as not worth retrying. A function given to [Handler]
// returns Permanent(err) to make the handler reply 422, which fails the step
// for good. Permanent(nil) is nil. The returned error's message is err's, and
// it unwraps to err.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err or any error it wraps was made by [Permanent].
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }
