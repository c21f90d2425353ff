-- Version 1: the tables of store.Store.
--
-- Applied by postgres.Open inside a transaction with search_path set to the
-- store's schema. Keys are text COLLATE "C" so that they sort byte-wise, as
-- Go strings do. A zero time.Time is NULL, except runs.created_at, which sorts
-- the listing and is NOT NULL (the zero time is stored as 0001-01-01 UTC).
-- JSON values use the json type, not jsonb: it keeps the bytes exactly as
-- written and accepts \u0000, which jsonb rejects.

CREATE TABLE runs (
	id           text COLLATE "C" PRIMARY KEY,
	state        text        NOT NULL,
	phase        text        NOT NULL DEFAULT '',
	outcome      text        NOT NULL DEFAULT '',
	error        text        NOT NULL DEFAULT '',
	created_at   timestamptz NOT NULL,
	started_at   timestamptz,
	completed_at timestamptz,
	deadline     timestamptz,
	updated_at   timestamptz,
	generation   integer     NOT NULL DEFAULT 0,
	total        integer     NOT NULL DEFAULT 0,
	done         integer     NOT NULL DEFAULT 0,
	running      integer     NOT NULL DEFAULT 0,
	failed       integer     NOT NULL DEFAULT 0,
	seq          bigint      NOT NULL DEFAULT 0,
	serial       integer     NOT NULL DEFAULT -1,
	serial_queue integer[],
	comp_queue   integer[]
);

-- Tx.Runs: newest first, optionally by state.
CREATE INDEX runs_created_idx ON runs (created_at DESC, id DESC);
CREATE INDEX runs_state_created_idx ON runs (state, created_at DESC, id DESC);

CREATE TABLE specs (
	run_id text COLLATE "C" PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
	spec   json
);

CREATE TABLE steps (
	run_id          text COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	idx             integer     NOT NULL,
	id              text        NOT NULL,
	state           text        NOT NULL,
	waiting         integer     NOT NULL DEFAULT 0,
	attempts        integer     NOT NULL DEFAULT 0,
	due_at          timestamptz,
	started_at      timestamptz,
	completed_at    timestamptz,
	result          json,
	error           text        NOT NULL DEFAULT '',
	seq             bigint      NOT NULL DEFAULT 0,
	owner           text        NOT NULL DEFAULT '',
	token           bigint      NOT NULL DEFAULT 0,
	lease_until     timestamptz,
	comp            text        NOT NULL DEFAULT '',
	comp_attempts   integer     NOT NULL DEFAULT 0,
	comp_error      text        NOT NULL DEFAULT '',
	comp_started_at timestamptz,
	comp_ended_at   timestamptz,
	PRIMARY KEY (run_id, idx)
);

-- Tx.DueSteps and Tx.NextDue: only steps that are due at some time.
CREATE INDEX steps_due_idx ON steps (due_at) WHERE due_at IS NOT NULL;
-- Tx.CompletedAfter: only completed steps (Seq > 0).
CREATE INDEX steps_completed_idx ON steps (run_id, seq) WHERE seq > 0;

CREATE TABLE attempts (
	run_id       text COLLATE "C" NOT NULL,
	idx          integer     NOT NULL,
	compensation boolean     NOT NULL,
	generation   integer     NOT NULL,
	number       integer     NOT NULL,
	step_id      text        NOT NULL DEFAULT '',
	owner        text        NOT NULL DEFAULT '',
	started_at   timestamptz,
	ended_at     timestamptz,
	error        text        NOT NULL DEFAULT '',
	status_code  integer     NOT NULL DEFAULT 0,
	duration     bigint      NOT NULL DEFAULT 0, -- nanoseconds
	logs         json,                           -- []store.LogLine
	logs_cut     boolean     NOT NULL DEFAULT false,
	PRIMARY KEY (run_id, idx, compensation, generation, number),
	FOREIGN KEY (run_id, idx) REFERENCES steps (run_id, idx) ON DELETE CASCADE
);

CREATE TABLE webhooks (
	run_id       text COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	id           text COLLATE "C" NOT NULL,
	url          text        NOT NULL DEFAULT '',
	event        text        NOT NULL DEFAULT '',
	body         json,
	attempts     integer     NOT NULL DEFAULT 0,
	due_at       timestamptz,
	created_at   timestamptz,
	delivered_at timestamptz,
	last_error   text        NOT NULL DEFAULT '',
	PRIMARY KEY (run_id, id)
);

-- Tx.DueWebhooks and Tx.NextDue.
CREATE INDEX webhooks_due_idx ON webhooks (due_at) WHERE due_at IS NOT NULL;
