package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The migrations are the files migrations/NNNN_name.sql, applied in order of
// NNNN, which runs 1, 2, 3, ... without gaps. A file, once released, never
// changes: a new layout is a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations are the embedded migrations in order; loadMigrations panics on a
// malformed file name, which only a change to this package can cause.
var migrations = loadMigrations(migrationFiles)

func loadMigrations(fsys fs.FS) []migration {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		panic(err)
	}
	var out []migration
	for _, name := range names {
		base := strings.TrimSuffix(path.Base(name), ".sql")
		num, label, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			panic(fmt.Sprintf("postgres: migration file %s is not named NNNN_name.sql", name))
		}
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			panic(err)
		}
		out = append(out, migration{version: v, name: label, sql: string(data)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i, m := range out {
		if m.version != i+1 {
			panic(fmt.Sprintf("postgres: migrations are not numbered 1, 2, 3, ...: found %d at position %d", m.version, i+1))
		}
	}
	return out
}

// SchemaVersion is the version of the table layout this package writes: the
// number of its migrations. Open refuses a schema whose schema_version table
// records a newer one.
func SchemaVersion() int { return len(migrations) }

// migrate creates the schema and brings its tables up to SchemaVersion, in
// one transaction that holds an advisory lock named after the schema, so that
// processes opening the store at the same time apply each migration once.
//
// It creates the schema and the schema_version table only when they are
// missing, so that a role without CREATE privileges can open a schema that
// an administrator set up.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	return migrateTo(ctx, pool, schema, len(migrations))
}

// migrateTo is migrate up to version target, for tests of the migrations.
func migrateTo(ctx context.Context, pool *pgxpool.Pool, schema string, target int) (err error) {
	q := pgx.Identifier{schema}.Sanitize()
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrating schema %q: %w", schema, err)
	}
	defer func() {
		if err != nil {
			tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	step := func(what string, err error) error {
		if err != nil {
			return fmt.Errorf("postgres: migrating schema %q: %s: %w", schema, what, err)
		}
		return nil
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "dagflow.migrate:"+schema); err != nil {
		return step("taking the migration lock", err)
	}
	var hasSchema, hasVersions bool
	err = tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1),
		to_regclass($2) IS NOT NULL`, schema, q+".schema_version").Scan(&hasSchema, &hasVersions)
	if err != nil {
		return step("looking for the schema", err)
	}
	if !hasSchema {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA "+q); err != nil {
			return step("creating the schema", err)
		}
	}
	if !hasVersions {
		_, err := tx.Exec(ctx, "CREATE TABLE "+q+`.schema_version (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`)
		if err != nil {
			return step("creating the schema_version table", err)
		}
	}
	var current int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+q+".schema_version").Scan(&current); err != nil {
		return step("reading the schema version", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("postgres: schema %q was written by a newer dagflow (schema version %d; this dagflow knows versions up to %d): upgrade dagflow",
			schema, current, len(migrations))
	}
	if current >= target {
		return step("committing", tx.Commit(ctx))
	}
	if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+q); err != nil {
		return step("setting search_path", err)
	}
	for _, m := range migrations[current:target] {
		// No arguments: pgx sends the file with the simple protocol,
		// which runs every statement in it.
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return step(fmt.Sprintf("applying migration %d (%s)", m.version, m.name), err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+q+".schema_version (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
			return step(fmt.Sprintf("recording migration %d", m.version), err)
		}
	}
	return step("committing", tx.Commit(ctx))
}
