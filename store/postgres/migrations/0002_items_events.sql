-- Version 2: the store seam of the redesigned engine: map items, events,
-- schedules, concurrency slots, the index of steps waiting for an event,
-- child runs and the typed cause of a stop.
--
-- Applied by postgres.Open inside a transaction with search_path set to the
-- store's schema, after version 1. Rows written under version 1 keep
-- working: every new column has a default that means what the old row
-- meant (a step is item 0, an attempt was not interrupted, a queued
-- compensation is of the step itself).

-- Runs: why a run stopped, its parent (a child run of a workflow step), its
-- concurrency key, and what observers keep with it. comp_queue keeps the
-- step indexes of store.Run.CompQueue; comp_items, when not NULL, their items
-- (same length). NULL means every entry is a step (item 0), which is what a
-- version-1 queue holds.
ALTER TABLE runs
	ADD COLUMN cause           text    NOT NULL DEFAULT '',
	ADD COLUMN parent          text    COLLATE "C" NOT NULL DEFAULT '',
	ADD COLUMN parent_index    integer NOT NULL DEFAULT 0,
	ADD COLUMN parent_item     integer NOT NULL DEFAULT 0,
	ADD COLUMN concurrency_key text    NOT NULL DEFAULT '',
	ADD COLUMN climit          integer NOT NULL DEFAULT 0,
	ADD COLUMN trace           text    NOT NULL DEFAULT '',
	ADD COLUMN comp_items      integer[];

-- Tx.Runs with RunQuery.Parent: the children of a run, newest first.
CREATE INDEX runs_parent_idx ON runs (parent, created_at DESC, id DESC) WHERE parent <> '';
-- Tx.Runs with RunQuery.EndedBefore: runs that ended, by when.
CREATE INDEX runs_ended_idx ON runs (completed_at) WHERE state IN ('completed', 'failed', 'cancelled');

-- Steps and the items of map steps share one table: item 0 is the step,
-- item n+1 its item n. So one due index serves both, and one waiting index.
-- Attempts referred to a step by (run_id, idx); an attempt of an item may be
-- recorded before (or without) the item's row, so they now refer to the run.
ALTER TABLE attempts DROP CONSTRAINT attempts_run_id_idx_fkey;
ALTER TABLE attempts ADD CONSTRAINT attempts_run_id_fkey FOREIGN KEY (run_id) REFERENCES runs (id) ON DELETE CASCADE;

ALTER TABLE steps
	ADD COLUMN item               integer NOT NULL DEFAULT 0,
	ADD COLUMN interruptions      integer NOT NULL DEFAULT 0,
	ADD COLUMN attempt_at         timestamptz,
	ADD COLUMN input              json,
	ADD COLUMN comp_interruptions integer NOT NULL DEFAULT 0,
	ADD COLUMN event              text    NOT NULL DEFAULT '',
	ADD COLUMN event_key          text    NOT NULL DEFAULT '',
	ADD COLUMN items              integer NOT NULL DEFAULT 0,
	ADD COLUMN items_done         integer NOT NULL DEFAULT 0,
	ADD COLUMN items_failed       integer NOT NULL DEFAULT 0,
	ADD COLUMN items_running      integer NOT NULL DEFAULT 0,
	ADD COLUMN items_next         integer NOT NULL DEFAULT 0;
ALTER TABLE steps DROP CONSTRAINT steps_pkey;
ALTER TABLE steps ADD PRIMARY KEY (run_id, idx, item);

-- Tx.CompletedAfter is gone from the seam, and its index with it.
DROP INDEX steps_completed_idx;

-- Tx.Waiting: steps and items waiting for an event, by its name and key.
CREATE INDEX steps_waiting_idx ON steps (event, event_key) WHERE state = 'waiting' AND event <> '';

ALTER TABLE attempts
	ADD COLUMN item        integer NOT NULL DEFAULT 0,
	ADD COLUMN interrupted boolean NOT NULL DEFAULT false;
ALTER TABLE attempts DROP CONSTRAINT attempts_pkey;
ALTER TABLE attempts ADD PRIMARY KEY (run_id, idx, item, compensation, generation, number);

-- Events sent with Engine.SendEvent, kept for the steps that start waiting
-- later. sent_at is NOT NULL (the zero time is 0001-01-01 UTC), as it
-- orders them.
CREATE TABLE events (
	name    text COLLATE "C" NOT NULL,
	key     text COLLATE "C" NOT NULL,
	id      text COLLATE "C" NOT NULL,
	payload json,
	sent_at timestamptz NOT NULL,
	PRIMARY KEY (name, key, id)
);
-- Tx.Events: by name and key, oldest first.
CREATE INDEX events_sent_idx ON events (name, key, sent_at, id);
-- Tx.DeleteEvents: the oldest first, whatever their name.
CREATE INDEX events_age_idx ON events (sent_at);

CREATE TABLE schedules (
	id         text COLLATE "C" PRIMARY KEY,
	cron       text NOT NULL DEFAULT '',
	timezone   text NOT NULL DEFAULT '',
	workflow   json,
	next_at    timestamptz,
	last_at    timestamptz,
	created_at timestamptz
);

-- The concurrency slots of a key: the runs holding one and those waiting,
-- in order. A key with neither has no row.
CREATE TABLE slots (
	key     text COLLATE "C" PRIMARY KEY,
	holders text[],
	queue   text[]
);
