package dagflowotel_test

import (
	"context"
	"log"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/httpstep"
	dagflowotel "github.com/dagflow/dagflow/otel"
)

// An engine sending its traces and metrics to an OpenTelemetry collector over
// OTLP/HTTP (the exporters read OTEL_EXPORTER_OTLP_ENDPOINT; by default
// localhost:4318), and the trace context of each HTTP step to its job
// handler in the traceparent header.
func ExampleNew() {
	ctx := context.Background()
	res := resource.NewSchemaless(attribute.String("service.name", "orders"))

	spans, err := otlptracehttp.New(ctx)
	if err != nil {
		log.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(spans), sdktrace.WithResource(res))
	defer tp.Shutdown(ctx) // flushes the spans still batched

	measures, err := otlpmetrichttp.New(ctx)
	if err != nil {
		log.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(measures)), sdkmetric.WithResource(res))
	defer mp.Shutdown(ctx)

	eng, err := dagflow.Open(
		dagflow.WithPath("flows.db"),
		dagflowotel.New(tp, mp),
		dagflow.WithHTTP(httpstep.Options{
			BaseURL: "http://localhost:3000/api/",
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()

	// The creation span is a child of the span in ctx, if any; each
	// attempt's span links to it.
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "order-1", Steps: []dagflow.Step{
		{ID: "charge", URL: "jobs/charge"},
		{ID: "ship", URL: "jobs/ship", DependsOn: []string{"charge"}},
	}}); err != nil {
		log.Fatal(err)
	}
	if _, err := eng.Wait(ctx, "order-1"); err != nil {
		log.Fatal(err)
	}
}
