// Package httpstep runs workflow steps that are HTTP job handlers, and helps
// write such handlers in Go.
//
// It speaks dagflow's HTTP job protocol, which a handler in any language can
// implement:
//
//   - The engine POSTs a JSON [Request] to the step's URL with
//     Content-Type: application/json and an Idempotency-Key header that is
//     the same on every attempt, so the handler can drop duplicates.
//   - When the engine has a secret, the request carries a Dagflow-Signature
//     header, "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>"
//     (see [Sign]), which [Verify] checks.
//   - The handler replies 2xx with {"success": true, "result": ...} when the
//     step completed, or {"success": false, "error": "..."} when the attempt
//     failed and may be retried. A 5xx, 408 or 429 reply, or a transport
//     error, also fails the attempt retryably (honouring Retry-After); any
//     other 4xx fails the step for good.
//
// # Calling job handlers
//
// A [Client] makes one HTTP request per [Client.Call]: it never retries by
// itself, because the engine counts attempts and applies the step's retry
// policy. A failed attempt is an [*Error] whose Retryable field says whether
// another attempt may help, and whose RetryAfter carries the handler's
// Retry-After. [Client.Deliver] sends webhooks, which have no attempt
// accounting of their own, and retries them with backoff using
// go-retryablehttp.
//
// Error values and messages never contain the credentials (userinfo) of a URL.
//
// # Writing job handlers in Go
//
// [Handler] turns a Go function into an http.Handler speaking the protocol:
// it verifies the signature when given [WithSecret], decodes the [Request],
// and encodes the function's result or error. Wrap an error with [Permanent]
// to fail the step for good instead of letting the engine retry it.
// Handlers written without [Handler] can call [Verify] directly.
package httpstep
