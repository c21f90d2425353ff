module github.com/dagflow/dagflow/console

go 1.26.0

require (
	github.com/dagflow/dagflow v0.0.0
	github.com/goccy/go-graphviz v0.2.10
	github.com/chromedp/chromedp v0.23.0
	go.uber.org/goleak v1.3.0
)

replace github.com/dagflow/dagflow => ..
