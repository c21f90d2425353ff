module github.com/dagflow/dagflow/console

go 1.26.0

require (
	github.com/chromedp/chromedp v0.23.0
	github.com/dagflow/dagflow v0.0.0
	github.com/goccy/go-graphviz v0.2.10
	go.uber.org/goleak v1.3.0
)

require (
	github.com/chromedp/cdproto v0.159.0 // indirect
	github.com/disintegration/imaging v1.6.2 // indirect
	github.com/flopp/go-findfont v0.1.0 // indirect
	github.com/fogleman/gg v1.3.0 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	github.com/golang/freetype v0.0.0-20170609003504-e2365dfdc4a0 // indirect
	github.com/hashicorp/go-cleanhttp v0.5.2 // indirect
	github.com/hashicorp/go-retryablehttp v0.7.8 // indirect
	github.com/tetratelabs/wazero v1.10.1 // indirect
	go.etcd.io/bbolt v1.5.0 // indirect
	golang.org/x/image v0.21.0 // indirect
	golang.org/x/sync v0.25.0 // indirect
	golang.org/x/sys v0.45.0 // indirect
	golang.org/x/text v0.19.0 // indirect
)

replace github.com/dagflow/dagflow => ..
