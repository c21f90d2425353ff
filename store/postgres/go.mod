module github.com/dagflow/dagflow/store/postgres

go 1.26.0

require (
	github.com/dagflow/dagflow v0.0.0
	github.com/jackc/pgx/v5 v5.12.0
)

replace github.com/dagflow/dagflow => ../..
