package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// readBody reads the JSON body of a call: 415 unless its Content-Type is
// application/json (or another JSON type, application/*+json), 413 when it
// is over MaxBody (ServeHTTP bounds r.Body), 400 when it is empty.
func readBody(r *http.Request) ([]byte, error) {
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		return nil, err
	}
	if r.ContentLength > MaxBody {
		return nil, tooLarge()
	}
	body, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, tooLarge()
	case err != nil:
		return nil, errorf(http.StatusBadRequest, "reading the body: %v", err)
	case len(bytes.TrimSpace(body)) == 0:
		return nil, errorf(http.StatusBadRequest, "the body is empty: send a JSON object")
	}
	return body, nil
}

func tooLarge() error {
	return errorf(http.StatusRequestEntityTooLarge, "the body is over %d bytes (10 MiB), the limit", MaxBody)
}

// checkContentType returns a 415 error unless ct is a JSON media type.
func checkContentType(ct string) error {
	if ct == "" {
		return errorf(http.StatusUnsupportedMediaType, "no Content-Type: send the body as application/json")
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return nil
	}
	return errorf(http.StatusUnsupportedMediaType, "Content-Type %q: send the body as application/json", ct)
}

// decodeStrict decodes one JSON value from body into v: unknown fields and
// anything after the value are errors (400).
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "malformed JSON body: %v", jsonError(body, err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(http.StatusBadRequest, "malformed JSON body: more after the JSON value")
	}
	return nil
}

// jsonError adds the line and column to a syntax error.
func jsonError(body []byte, err error) error {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return err
	}
	before := body[:min(int(se.Offset), len(body))]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - bytes.LastIndexByte(before, '\n')
	return fmt.Errorf("line %d, column %d: %w", line, col, err)
}
