//! Versioned schema migrations, tracked in SQLite's `user_version`; a newer database is refused.

use std::time::Instant;

use rusqlite::Connection;

use super::DbError;

/// Each entry moves the schema one version up. Never edit a released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: projects, keys, pushes, commits.
    r#"
    CREATE TABLE projects (
        id              INTEGER PRIMARY KEY,
        name            TEXT NOT NULL UNIQUE,
        hook_id         TEXT NOT NULL UNIQUE,
        webhook_secret  TEXT NOT NULL,
        created_at      INTEGER NOT NULL
    );

    CREATE TABLE api_keys (
        id            INTEGER PRIMARY KEY,
        project_id    INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        key_hash      BLOB NOT NULL UNIQUE,
        prefix        TEXT NOT NULL,
        label         TEXT NOT NULL,
        created_at    INTEGER NOT NULL,
        last_used_at  INTEGER,
        revoked_at    INTEGER
    );
    CREATE INDEX api_keys_project ON api_keys(project_id);

    CREATE TABLE pushes (
        id                 INTEGER PRIMARY KEY,
        public_id          TEXT NOT NULL UNIQUE,
        project_id         INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        provider           TEXT NOT NULL,
        delivery_id        TEXT,
        repository         TEXT NOT NULL,
        git_ref            TEXT NOT NULL,
        ref_type           TEXT NOT NULL,
        branch             TEXT NOT NULL,
        before_sha         TEXT,
        after_sha          TEXT,
        created            INTEGER NOT NULL,
        deleted            INTEGER NOT NULL,
        forced             INTEGER NOT NULL,
        pusher             TEXT NOT NULL,
        commit_count       INTEGER NOT NULL,
        commits_truncated  INTEGER NOT NULL,
        compare_url        TEXT,
        pushed_at          INTEGER NOT NULL,
        received_at        INTEGER NOT NULL,
        summary            TEXT NOT NULL,
        summary_status     TEXT NOT NULL,
        summary_source     TEXT NOT NULL,
        attempts           INTEGER NOT NULL DEFAULT 0,
        next_attempt_at    INTEGER,
        last_error         TEXT,
        summarized_at      INTEGER
    );
    -- Redelivery is a no-op: one row per provider delivery id and project.
    CREATE UNIQUE INDEX pushes_delivery ON pushes(project_id, delivery_id) WHERE delivery_id IS NOT NULL;
    -- The API's pages, newest first, with and without a branch filter.
    CREATE INDEX pushes_project_time ON pushes(project_id, pushed_at DESC, id DESC);
    CREATE INDEX pushes_project_branch_time ON pushes(project_id, branch, pushed_at DESC, id DESC);
    -- The worker's queue and the owner's pending/failed counts stay small: finished rows leave them.
    CREATE INDEX pushes_queue ON pushes(next_attempt_at) WHERE summary_status = 'pending';
    CREATE INDEX pushes_unfinished ON pushes(project_id, summary_status) WHERE summary_status <> 'summarized';

    -- Totals for the API without counting a million index entries per request.
    CREATE TABLE push_counts (
        project_id  INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        branch      TEXT NOT NULL,
        n           INTEGER NOT NULL,
        PRIMARY KEY (project_id, branch)
    ) WITHOUT ROWID;
    CREATE TRIGGER pushes_count_insert AFTER INSERT ON pushes BEGIN
        INSERT INTO push_counts (project_id, branch, n) VALUES (NEW.project_id, NEW.branch, 1)
        ON CONFLICT (project_id, branch) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER pushes_count_delete AFTER DELETE ON pushes BEGIN
        UPDATE push_counts SET n = n - 1 WHERE project_id = OLD.project_id AND branch = OLD.branch;
    END;

    CREATE TABLE commits (
        id         INTEGER PRIMARY KEY,
        push_id    INTEGER NOT NULL REFERENCES pushes(id) ON DELETE CASCADE,
        position   INTEGER NOT NULL,
        sha        TEXT NOT NULL,
        message    TEXT NOT NULL,
        author     TEXT NOT NULL,
        timestamp  INTEGER,
        url        TEXT,
        added      TEXT NOT NULL,
        removed    TEXT NOT NULL,
        modified   TEXT NOT NULL
    );
    CREATE INDEX commits_push ON commits(push_id, position);
    "#,
    // 2: the owner's admin token (hash only) and dashboard sessions (hashes of their ids).
    r#"
    CREATE TABLE admin_credential (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        token_hash  BLOB NOT NULL,
        created_at  INTEGER NOT NULL
    );

    CREATE TABLE admin_sessions (
        session_hash  BLOB PRIMARY KEY,
        created_at    INTEGER NOT NULL,
        expires_at    INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 3: a push's commits as one JSON document beside it instead of one row each. Commits are
    // only ever read whole, and the ingest writer then adds one row per push instead of one row
    // and one index entry per commit. The `commits` view keeps the old shape for
    // anyone who queries the file with `sqlite3` (json_extract rather than `->>`, so a CLI older
    // than SQLite 3.38, like Ubuntu 22.04's, can still read the schema).
    r#"
    CREATE TABLE push_commits (
        push_id  INTEGER PRIMARY KEY REFERENCES pushes(id) ON DELETE CASCADE,
        commits  TEXT NOT NULL
    );
    INSERT INTO push_commits (push_id, commits)
        SELECT push_id, json_group_array(json_object(
            'sha', sha, 'message', message, 'author', author, 'timestamp', timestamp,
            'url', url, 'added', json(added), 'removed', json(removed), 'modified', json(modified)
        ) ORDER BY position)
        FROM commits GROUP BY push_id;
    DROP TABLE commits;
    CREATE VIEW commits AS
        SELECT pc.push_id AS push_id, c.key AS position,
            json_extract(c.value, '$.sha') AS sha,
            json_extract(c.value, '$.message') AS message,
            json_extract(c.value, '$.author') AS author,
            json_extract(c.value, '$.timestamp') AS timestamp,
            json_extract(c.value, '$.url') AS url,
            json_extract(c.value, '$.added') AS added,
            json_extract(c.value, '$.removed') AS removed,
            json_extract(c.value, '$.modified') AS modified
        FROM push_commits pc, json_each(pc.commits) c;
    "#,
    // 4: replays. A delivery replayed under a new delivery id is the same ref change: the
    // writer looks pushes up by (project, repository, ref, after, before) within a day.
    r#"
    CREATE INDEX pushes_ref_change
        ON pushes(project_id, repository, git_ref, after_sha, before_sha, received_at);
    "#,
    // 5: what the running server tells the command line, such as the public URL it shows.
    r#"
    CREATE TABLE server_settings (
        name   TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 6: push counts per project and UTC day, and per project, branch and day, kept by triggers
    // like `push_counts`, so a `since`/`until` total sums whole days and counts pushes only in
    // the two partial days at its edges, and a deep offset finds its day without walking the
    // pushes before it. A day is `floor(pushed_at / 86400000)` (pushed_at in Unix milliseconds);
    // rows that reach zero are deleted, so retention leaves no trail of empty days.
    r#"
    CREATE TABLE push_days (
        project_id  INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        day         INTEGER NOT NULL,
        n           INTEGER NOT NULL,
        PRIMARY KEY (project_id, day)
    ) WITHOUT ROWID;
    CREATE TABLE push_branch_days (
        project_id  INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        branch      TEXT NOT NULL,
        day         INTEGER NOT NULL,
        n           INTEGER NOT NULL,
        PRIMARY KEY (project_id, branch, day)
    ) WITHOUT ROWID;
    INSERT INTO push_days (project_id, day, n)
        SELECT project_id,
            (pushed_at - ((pushed_at % 86400000) + 86400000) % 86400000) / 86400000 AS d,
            count(*)
        FROM pushes GROUP BY project_id, d;
    INSERT INTO push_branch_days (project_id, branch, day, n)
        SELECT project_id, branch,
            (pushed_at - ((pushed_at % 86400000) + 86400000) % 86400000) / 86400000 AS d,
            count(*)
        FROM pushes GROUP BY project_id, branch, d;
    CREATE TRIGGER pushes_days_insert AFTER INSERT ON pushes BEGIN
        INSERT INTO push_days (project_id, day, n) VALUES (NEW.project_id,
            (NEW.pushed_at - ((NEW.pushed_at % 86400000) + 86400000) % 86400000) / 86400000, 1)
        ON CONFLICT (project_id, day) DO UPDATE SET n = n + 1;
        INSERT INTO push_branch_days (project_id, branch, day, n) VALUES (NEW.project_id,
            NEW.branch,
            (NEW.pushed_at - ((NEW.pushed_at % 86400000) + 86400000) % 86400000) / 86400000, 1)
        ON CONFLICT (project_id, branch, day) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER pushes_days_delete AFTER DELETE ON pushes BEGIN
        UPDATE push_days SET n = n - 1 WHERE project_id = OLD.project_id
            AND day = (OLD.pushed_at - ((OLD.pushed_at % 86400000) + 86400000) % 86400000) / 86400000;
        DELETE FROM push_days WHERE project_id = OLD.project_id
            AND day = (OLD.pushed_at - ((OLD.pushed_at % 86400000) + 86400000) % 86400000) / 86400000
            AND n <= 0;
        UPDATE push_branch_days SET n = n - 1 WHERE project_id = OLD.project_id
            AND branch = OLD.branch
            AND day = (OLD.pushed_at - ((OLD.pushed_at % 86400000) + 86400000) % 86400000) / 86400000;
        DELETE FROM push_branch_days WHERE project_id = OLD.project_id AND branch = OLD.branch
            AND day = (OLD.pushed_at - ((OLD.pushed_at % 86400000) + 86400000) % 86400000) / 86400000
            AND n <= 0;
    END;
    -- Nothing moves a push to another project, branch or time today; should anything ever do
    -- it, every counter follows.
    CREATE TRIGGER pushes_counts_move AFTER UPDATE OF project_id, branch, pushed_at ON pushes
    BEGIN
        UPDATE push_counts SET n = n - 1 WHERE project_id = OLD.project_id AND branch = OLD.branch;
        INSERT INTO push_counts (project_id, branch, n) VALUES (NEW.project_id, NEW.branch, 1)
        ON CONFLICT (project_id, branch) DO UPDATE SET n = n + 1;
        UPDATE push_days SET n = n - 1 WHERE project_id = OLD.project_id
            AND day = (OLD.pushed_at - ((OLD.pushed_at % 86400000) + 86400000) % 86400000) / 86400000;
        UPDATE push_branch_days SET n = n - 1 WHERE project_id = OLD.project_id
            AND branch = OLD.branch
            AND day = (OLD.pushed_at - ((OLD.pushed_at % 86400000) + 86400000) % 86400000) / 86400000;
        INSERT INTO push_days (project_id, day, n) VALUES (NEW.project_id,
            (NEW.pushed_at - ((NEW.pushed_at % 86400000) + 86400000) % 86400000) / 86400000, 1)
        ON CONFLICT (project_id, day) DO UPDATE SET n = n + 1;
        INSERT INTO push_branch_days (project_id, branch, day, n) VALUES (NEW.project_id,
            NEW.branch,
            (NEW.pushed_at - ((NEW.pushed_at % 86400000) + 86400000) % 86400000) / 86400000, 1)
        ON CONFLICT (project_id, branch, day) DO UPDATE SET n = n + 1;
        DELETE FROM push_days WHERE n <= 0 AND project_id = OLD.project_id;
        DELETE FROM push_branch_days WHERE n <= 0 AND project_id = OLD.project_id;
    END;
    "#,
    // The change log the live stream, the Atom feed and the ETags read: one row when a push is
    // stored and one each time what the API shows of it changes (its summary, summary source or
    // public status: `in_progress` shows as `pending`, so a claim is no change). Written by
    // triggers, so no code path that writes a push can forget it; a push's rows go with it
    // (retention, project deletion), and `push_change_floors` keeps, per project, the highest
    // seq deleted, below which a stream cursor is too old to resume from. AUTOINCREMENT: a seq
    // is never handed out twice, even after the newest rows were deleted.
    r#"
    CREATE TABLE push_changes (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        project_id  INTEGER NOT NULL,
        push_id     INTEGER NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('created', 'updated'))
    );
    CREATE INDEX push_changes_project ON push_changes(project_id, seq);
    CREATE INDEX push_changes_push ON push_changes(push_id);
    CREATE TABLE push_change_floors (
        project_id  INTEGER PRIMARY KEY,
        seq         INTEGER NOT NULL
    );
    CREATE TRIGGER pushes_change_insert AFTER INSERT ON pushes BEGIN
        INSERT INTO push_changes (project_id, push_id, kind)
            VALUES (NEW.project_id, NEW.id, 'created');
    END;
    CREATE TRIGGER pushes_change_update
        AFTER UPDATE OF summary, summary_source, summary_status ON pushes
        WHEN NEW.summary IS NOT OLD.summary
            OR NEW.summary_source IS NOT OLD.summary_source
            OR replace(NEW.summary_status, 'in_progress', 'pending')
                IS NOT replace(OLD.summary_status, 'in_progress', 'pending')
    BEGIN
        INSERT INTO push_changes (project_id, push_id, kind)
            VALUES (NEW.project_id, NEW.id, 'updated');
    END;
    CREATE TRIGGER pushes_change_delete AFTER DELETE ON pushes BEGIN
        DELETE FROM push_changes WHERE push_id = OLD.id;
    END;
    CREATE TRIGGER push_changes_floor AFTER DELETE ON push_changes BEGIN
        INSERT INTO push_change_floors (project_id, seq) VALUES (OLD.project_id, OLD.seq)
        ON CONFLICT (project_id) DO UPDATE SET seq = max(seq, excluded.seq);
    END;
    CREATE TRIGGER projects_change_floor AFTER DELETE ON projects BEGIN
        DELETE FROM push_change_floors WHERE project_id = OLD.id;
    END;
    "#,
];

/// The schema version this binary writes.
pub const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`LATEST_VERSION`], one transaction per step.
pub fn migrate(conn: &mut Connection) -> Result<(), DbError> {
    migrate_to(conn, LATEST_VERSION)
}

/// Applies migrations up to `target` (tests use this to build an old-schema database).
pub fn migrate_to(conn: &mut Connection, target: i64) -> Result<(), DbError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > LATEST_VERSION {
        return Err(DbError::NewerSchema {
            found: current,
            supported: LATEST_VERSION,
        });
    }
    if current > 0 && current < target {
        // Version 3 rewrites every commit: about 5 s for a million pushes on the project's
        // 2-core machine, long enough that a silent start would look like a hang.
        tracing::info!(
            from = current,
            to = target,
            "upgrading the database schema; on a large database this takes a few seconds"
        );
    }
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let version = index as i64 + 1;
        if version <= current || version > target {
            continue;
        }
        let started = Instant::now();
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!(version, ms, "database migrated");
    }
    Ok(())
}
