package httpstep

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestSign(t *testing.T) {
	t.Parallel()
	secret, body := []byte("whsec"), []byte(`{"a":1}`)
	ts := time.Unix(1700000000, 0)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("1700000000." + string(body)))
	want := "t=1700000000,v1=" + hex.EncodeToString(m.Sum(nil))
	if got := Sign(secret, ts, body); got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	secret := []byte("whsec_test")
	body := `{"workflowId":"wf","stepId":"a"}`
	now := time.Now()
	good := Sign(secret, now, []byte(body))
	v1 := good[strings.Index(good, "v1="):]
	other := Sign([]byte("old secret"), now, []byte(body))
	tests := []struct {
		name    string
		headers []string // Dagflow-Signature values
		body    string
		secret  []byte
		want    error // nil, a sentinel, or errAny
	}{
		{"good", []string{good}, body, secret, nil},
		{"within tolerance", []string{Sign(secret, now.Add(-4*time.Minute), []byte(body))}, body, secret, nil},
		{"rotated secrets", []string{other + "," + v1}, body, secret, nil},
		{"spaces and unknown elements", []string{" t=" + fmt.Sprint(now.Unix()) + " , v0=abc, " + v1 + " "}, body, secret, nil},
		{"tampered body", []string{good}, body + " ", secret, ErrBadSignature},
		{"wrong secret", []string{good}, body, []byte("nope"), ErrBadSignature},
		{"old", []string{Sign(secret, now.Add(-6*time.Minute), []byte(body))}, body, secret, ErrExpiredSignature},
		{"future", []string{Sign(secret, now.Add(6*time.Minute), []byte(body))}, body, secret, ErrExpiredSignature},
		{"missing", nil, body, secret, ErrNoSignature},
		{"empty", []string{" "}, body, secret, ErrNoSignature},
		{"two headers", []string{good, good}, body, secret, ErrBadSignature},
		{"garbage", []string{"garbage"}, body, secret, ErrBadSignature},
		{"no t", []string{v1}, body, secret, ErrBadSignature},
		{"no v1", []string{"t=" + fmt.Sprint(now.Unix())}, body, secret, ErrBadSignature},
		{"two t", []string{"t=1," + good}, body, secret, ErrBadSignature},
		{"negative t", []string{"t=-1," + v1}, body, secret, ErrBadSignature},
		{"huge t", []string{"t=99999999999999999999999," + v1}, body, secret, ErrBadSignature},
		{"short v1", []string{"t=1,v1=abcd"}, body, secret, ErrBadSignature},
		{"non-hex v1", []string{"t=1,v1=" + strings.Repeat("z", 64)}, body, secret, ErrBadSignature},
		{"trailing comma", []string{good + ","}, body, secret, ErrBadSignature},
		{"empty secret", []string{good}, body, nil, errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodPost, "/job", strings.NewReader(tt.body))
			for _, h := range tt.headers {
				r.Header.Add(HeaderSignature, h)
			}
			err := Verify(r, tt.secret)
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("Verify: %v", err)
			case tt.want == errAny && err == nil:
				t.Fatal("Verify succeeded")
			case tt.want != nil && tt.want != errAny && !errors.Is(err, tt.want):
				t.Fatalf("Verify error = %v, want %v", err, tt.want)
			}
			// Whether or not Verify read it, the body is there for the handler.
			if got, _ := io.ReadAll(r.Body); string(got) != tt.body {
				t.Errorf("body after Verify = %q, want %q", got, tt.body)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestVerifyLeavesBodyReadable(t *testing.T) {
	t.Parallel()
	secret, body := []byte("k"), []byte(`{"x":"y"}`)
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	r.Header.Set(HeaderSignature, Sign(secret, time.Now(), body))
	for range 2 { // a second Verify (middleware, then handler) sees the body too
		if err := Verify(r, secret); err != nil {
			t.Fatal(err)
		}
	}
	got, err := io.ReadAll(r.Body)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("body = %q, %v", got, err)
	}
}

func FuzzVerify(f *testing.F) {
	secret := []byte("fuzz")
	f.Add("t=1700000000,v1="+strings.Repeat("ab", 32), []byte(`{}`))
	f.Add(Sign(secret, time.Unix(1, 0), []byte("x")), []byte("x"))
	f.Add("t=,v1=", []byte(nil))
	f.Add(",,,=,t==1", []byte("body"))
	f.Add("v1=00,t=00000000000000000001,v1=", []byte("{"))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		r.Header.Set(HeaderSignature, header)
		err := Verify(r, secret)
		if err == nil {
			// Only a genuine, fresh signature may pass.
			s, perr := parseSignature(header)
			if perr != nil {
				t.Fatalf("Verify accepted unparsable header %q", header)
			}
			want := mac(secret, s.ts, body)
			ok := false
			for _, v := range s.v1 {
				ok = ok || hmac.Equal(v, want)
			}
			if !ok {
				t.Fatalf("Verify accepted a wrong MAC in %q", header)
			}
		} else if !isSignatureError(err) {
			t.Fatalf("Verify error %v is not a signature error", err)
		}
		if got, _ := io.ReadAll(r.Body); !bytes.Equal(got, body) {
			t.Fatalf("body after Verify = %q, want %q", got, body)
		}
	})
}
