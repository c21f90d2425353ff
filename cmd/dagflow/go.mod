module github.com/dagflow/dagflow/cmd/dagflow

go 1.26.0

require (
	github.com/dagflow/dagflow v0.0.0
	github.com/dagflow/dagflow/console v0.0.0
	github.com/dagflow/dagflow/store/postgres v0.0.0
)

replace (
	github.com/dagflow/dagflow => ../..
	github.com/dagflow/dagflow/console => ../../console
	github.com/dagflow/dagflow/store/postgres => ../../store/postgres
)
