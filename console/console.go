// Package console is dagflow's web console.
package console

import (
	"net/http"

	"github.com/dagflow/dagflow"
)

// Option configures the console.
type Option func(*config)

type config struct {
	actions bool
	token   string
}

// WithActions enables the retry and cancel buttons. Default false: the
// console is read-only.
func WithActions(enabled bool) Option { return func(c *config) { c.actions = enabled } }

// WithToken requires every action to carry token. Default "": no token.
func WithToken(token string) Option { return func(c *config) { c.token = token } }

// Handler returns the console as an http.Handler.
func Handler(eng *dagflow.Engine, opts ...Option) http.Handler {
	var c config
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return http.NotFoundHandler()
}
