package httpstep

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Protocol header names.
const (
	// HeaderSignature carries the request signature, see [Sign].
	HeaderSignature = "Dagflow-Signature"
	// HeaderIdempotencyKey carries "<workflowId>/<stepId>" (compensations:
	// "<workflowId>/<stepId>/compensation"), the same on every attempt.
	HeaderIdempotencyKey = "Idempotency-Key"
)

// SignatureTolerance is how far a signature's timestamp may lie in the past
// or the future for [Verify] to accept it.
const SignatureTolerance = 5 * time.Minute

// maxSignatures bounds the v1 elements Verify looks at in one header.
const maxSignatures = 8

// Sign returns the value of the Dagflow-Signature header for body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<unix seconds>.<body>")>".
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks r's Dagflow-Signature header against its body and secret.
// It returns nil for a genuine signature made within [SignatureTolerance] of
// now, and otherwise an error that errors.Is finds as [ErrNoSignature] (no
// header), [ErrBadSignature] (malformed header, or no v1 signature matches; the
// comparison takes constant time) or [ErrExpiredSignature] (genuine but too old
// or too far in the future). Unknown header elements are ignored, and several
// v1 elements are allowed (one matching is enough), so secrets can be rotated.
//
// Verify reads the whole body and replaces r.Body with an in-memory copy, so
// the handler can read it again. Bound the body first (http.MaxBytesReader)
// if the caller is not trusted with memory; [Handler] does. An empty secret
// is an error, never a pass.
func Verify(r *http.Request, secret []byte) error {
	if len(secret) == 0 {
		return errors.New("httpstep: Verify called with an empty secret")
	}
	values := r.Header.Values(HeaderSignature)
	if len(values) == 0 || strings.TrimSpace(values[0]) == "" {
		return ErrNoSignature
	}
	if len(values) > 1 {
		return fmt.Errorf("%w: more than one %s header", ErrBadSignature, HeaderSignature)
	}
	sig, err := parseSignature(values[0])
	if err != nil {
		return fmt.Errorf("%w: malformed header: %w", ErrBadSignature, err)
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	want := mac(secret, sig.ts, body)
	ok := 0
	for _, got := range sig.v1 {
		ok |= subtle.ConstantTimeCompare(got, want) // every element is compared
	}
	if ok == 0 {
		return ErrBadSignature
	}
	switch age := time.Since(time.Unix(sig.unix, 0)); {
	case age > SignatureTolerance:
		return fmt.Errorf("%w: timestamp more than %s in the past", ErrExpiredSignature, SignatureTolerance)
	case age < -SignatureTolerance:
		return fmt.Errorf("%w: timestamp more than %s in the future", ErrExpiredSignature, SignatureTolerance)
	}
	return nil
}

// readBody reads r.Body completely and puts an in-memory copy back.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	body, err := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("httpstep: read request body: %w", err)
	}
	return body, nil
}

type signature struct {
	ts   string // the t element as sent; it is what was MACed
	unix int64
	v1   [][]byte
}

// parseSignature parses "t=<digits>,v1=<64 hex digits>[,v1=...][,other=...]".
func parseSignature(h string) (signature, error) {
	var s signature
	seenT := false
	for i, part := range strings.Split(h, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || k == "" {
			return s, fmt.Errorf("element %d is not key=value", i)
		}
		switch k {
		case "t":
			if seenT {
				return s, errors.New("more than one t element")
			}
			seenT = true
			if v == "" || len(v) > 18 || strings.Trim(v, "0123456789") != "" {
				return s, errors.New("t is not a unix time in seconds")
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return s, errors.New("t is not a unix time in seconds")
			}
			s.ts, s.unix = v, n
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				return s, errors.New("v1 is not a hex HMAC-SHA256")
			}
			if len(s.v1) == maxSignatures {
				return s, fmt.Errorf("more than %d v1 elements", maxSignatures)
			}
			s.v1 = append(s.v1, b)
		}
	}
	if !seenT {
		return s, errors.New("no t element")
	}
	if len(s.v1) == 0 {
		return s, errors.New("no v1 element")
	}
	return s, nil
}
