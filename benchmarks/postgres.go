package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dagflow/dagflow/store/postgres"
)

// defaultPostgresDSN is the server the postgres contenders use when
// DAGFLOW_POSTGRES_DSN is unset: the one store/postgres's tests and CI use.
const defaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// postgresDSN names the PostgreSQL server of the postgres contenders.
func postgresDSN() string {
	if dsn := os.Getenv("DAGFLOW_POSTGRES_DSN"); dsn != "" {
		return dsn
	}
	return defaultPostgresDSN
}

// postgresServer connects to the server once and describes it for the
// report: where it is (without credentials), its version, and whether
// commits wait for the disk. It returns an error saying how to start it
// when it cannot be reached.
func postgresServer(ctx context.Context) (string, error) {
	dsn := postgresDSN()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "", fmt.Errorf("DAGFLOW_POSTGRES_DSN: %w", err)
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", fmt.Errorf("PostgreSQL at %s (DAGFLOW_POSTGRES_DSN, default %s) cannot be reached: %w", where, defaultPostgresDSN, err)
	}
	defer conn.Close(context.Background())
	var version, fsync, syncCommit string
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version'), current_setting('fsync'), current_setting('synchronous_commit')").
		Scan(&version, &fsync, &syncCommit); err != nil {
		return "", fmt.Errorf("PostgreSQL at %s: %w", where, err)
	}
	return fmt.Sprintf("PostgreSQL %s at %s (fsync %s, synchronous_commit %s)", version, where, fsync, syncCommit), nil
}

// freshSchema returns the name of a schema no one uses yet, for one
// repetition: the contender creates it, and dropSchema drops it when the
// repetition is over, so that every repetition starts from empty tables
// and runs of the harness at the same moment (a developer's and CI's) do
// not share one.
func freshSchema(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// dropSchema drops a repetition's schema and everything in it.
func dropSchema(schema string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, postgresDSN())
	if err != nil {
		return fmt.Errorf("dropping schema %s: %w", schema, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		return fmt.Errorf("dropping schema %s: %w", schema, err)
	}
	return nil
}

// openPostgresStore opens store/postgres on a fresh schema, with its
// defaults (a pool of postgres.DefaultMaxConns connections, one group
// committer of up to postgres.DefaultMaxBatch functions); the returned
// close closes the store and drops the schema.
func openPostgresStore(ctx context.Context) (*postgres.Store, func() error, error) {
	schema := freshSchema("bench_dagflow_")
	pg, err := postgres.Open(ctx, postgresDSN(), postgres.Options{Schema: schema, Logger: engineLog()})
	if err != nil {
		return nil, nil, errors.Join(err, dropSchema(schema))
	}
	return pg, func() error { return errors.Join(pg.Close(), dropSchema(schema)) }, nil
}
