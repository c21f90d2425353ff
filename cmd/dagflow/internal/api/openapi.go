package api

import (
	_ "embed"
	"encoding/json"
	"net/http"
)

// openAPIDoc is the OpenAPI 3.1 document of the API; a test holds it to
// routes.
//
//go:embed openapi.json
var openAPIDoc []byte

// openAPI is GET /v1/openapi.json.
func (a *API) openAPI(*http.Request, []byte) (int, any, error) {
	return http.StatusOK, json.RawMessage(openAPIDoc), nil
}
