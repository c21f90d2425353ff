package httpstep_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"

	"github.com/dagflow/dagflow/httpstep"
)

// A job handler written in Go with Handler, called the way the engine calls it.
func ExampleHandler() {
	secret := []byte("whsec_example")

	charge, err := httpstep.Handler(func(ctx context.Context, req httpstep.Request) (any, error) {
		var order struct {
			OrderID string `json:"orderId"`
			Amount  int    `json:"amount"`
		}
		if err := json.Unmarshal(req.Context, &order); err != nil {
			return nil, httpstep.Permanent(err) // a bad context will not get better
		}
		if order.Amount <= 0 {
			return nil, httpstep.Permanent(errors.New("nothing to charge"))
		}
		return map[string]string{"chargeId": "ch_" + order.OrderID}, nil
	}, httpstep.WithSecret(secret))
	if err != nil {
		panic(err) // an empty secret, say
	}

	srv := httptest.NewServer(charge)
	defer srv.Close()

	c, err := httpstep.New(httpstep.Options{BaseURL: srv.URL, Secret: secret})
	if err != nil {
		panic(err)
	}
	defer c.CloseIdleConnections()

	for _, ctxJSON := range []string{`{"orderId":"o1","amount":500}`, `{"orderId":"o2","amount":0}`} {
		body, _ := json.Marshal(httpstep.Request{
			WorkflowID: "order-saga", StepID: "charge-payment", Attempt: 1,
			Context: json.RawMessage(ctxJSON),
		})
		reply, err := c.Call(context.Background(), "/jobs/charge-payment", "order-saga/charge-payment", body)
		var stepErr *httpstep.Error
		switch {
		case errors.As(err, &stepErr):
			fmt.Printf("failed: status %d, retryable %v, %s\n", stepErr.StatusCode, stepErr.Retryable, stepErr.Message)
		case err != nil:
			fmt.Println("error:", err)
		default:
			fmt.Printf("completed: %s\n", reply.Result)
		}
	}
	// Output:
	// completed: {"chargeId":"ch_o1"}
	// failed: status 422, retryable false, status 422 Unprocessable Entity: nothing to charge
}
