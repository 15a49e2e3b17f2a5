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
    // Asking the history: full-text search over summaries, commit messages, branch names and
    // authors (stemmed words in `push_fts`, words as written for prefixes in
    // `push_fts_prefix`), and exact author and repository filters.
    //
    // `push_search` is the one definition of what a push's search document is; the FTS5 table
    // reads it as its external content and every trigger below indexes from it, so the values a
    // `'delete'` command passes are exactly the ones indexed before (FTS5 needs that, or the
    // index goes bad). The BEFORE triggers run while the old values can still be read.
    // FTS5 cannot read a content view that calls a table-valued function (`json_each`: "no
    // such table: main.json_each"), so the commits' messages and authors are kept as text in
    // `push_text`, written by a trigger from the commits document. A push's row is written
    // before its commits document, so it is indexed twice at ingest: first without commits,
    // then again when they arrive.
    r#"
    CREATE TABLE push_text (
        push_id   INTEGER PRIMARY KEY REFERENCES pushes(id) ON DELETE CASCADE,
        messages  TEXT NOT NULL,
        authors   TEXT NOT NULL
    );
    INSERT INTO push_text (push_id, messages, authors)
        SELECT pc.push_id,
            COALESCE((SELECT group_concat(json_extract(c.value, '$.message'), char(10))
                FROM json_each(pc.commits) c), ''),
            COALESCE((SELECT group_concat(json_extract(c.value, '$.author'), char(10))
                FROM json_each(pc.commits) c), '')
        FROM push_commits pc;
    CREATE VIEW push_search AS
        SELECT p.id AS id, p.summary AS summary, COALESCE(t.messages, '') AS messages,
            p.branch AS branch, p.pusher || COALESCE(char(10) || t.authors, '') AS authors
        FROM pushes p LEFT JOIN push_text t ON t.push_id = p.id;
    CREATE VIRTUAL TABLE push_fts USING fts5(summary, messages, branch, authors,
        content='push_search', content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2');
    INSERT INTO push_fts (push_fts) VALUES ('rebuild');
    -- Prefix searches read an index of the words as written: the stemmer changes the ends of
    -- words, so `deploy*` stems to `deploi` and would miss "deployment" (indexed `deploy`).
    CREATE VIRTUAL TABLE push_fts_prefix USING fts5(summary, messages, branch, authors,
        content='push_search', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2');
    INSERT INTO push_fts_prefix (push_fts_prefix) VALUES ('rebuild');

    CREATE TRIGGER push_fts_insert AFTER INSERT ON pushes BEGIN
        INSERT INTO push_fts (rowid, summary, messages, branch, authors)
            SELECT id, summary, messages, branch, authors FROM push_search WHERE id = NEW.id;
        INSERT INTO push_fts_prefix (rowid, summary, messages, branch, authors)
            SELECT id, summary, messages, branch, authors FROM push_search WHERE id = NEW.id;
    END;
    CREATE TRIGGER push_fts_before_update BEFORE UPDATE OF summary, branch, pusher ON pushes BEGIN
        INSERT INTO push_fts (push_fts, rowid, summary, messages, branch, authors)
            SELECT 'delete', id, summary, messages, branch, authors FROM push_search
            WHERE id = OLD.id;
        INSERT INTO push_fts_prefix (push_fts_prefix, rowid, summary, messages, branch, authors)
            SELECT 'delete', id, summary, messages, branch, authors FROM push_search
            WHERE id = OLD.id;
    END;
    CREATE TRIGGER push_fts_after_update AFTER UPDATE OF summary, branch, pusher ON pushes BEGIN
        INSERT INTO push_fts (rowid, summary, messages, branch, authors)
            SELECT id, summary, messages, branch, authors FROM push_search WHERE id = NEW.id;
        INSERT INTO push_fts_prefix (rowid, summary, messages, branch, authors)
            SELECT id, summary, messages, branch, authors FROM push_search WHERE id = NEW.id;
    END;
    CREATE TRIGGER push_fts_before_delete BEFORE DELETE ON pushes BEGIN
        INSERT INTO push_fts (push_fts, rowid, summary, messages, branch, authors)
            SELECT 'delete', id, summary, messages, branch, authors FROM push_search
            WHERE id = OLD.id;
        INSERT INTO push_fts_prefix (push_fts_prefix, rowid, summary, messages, branch, authors)
            SELECT 'delete', id, summary, messages, branch, authors FROM push_search
            WHERE id = OLD.id;
    END;

    -- The commits document decides `push_text`.
    CREATE TRIGGER push_text_insert AFTER INSERT ON push_commits BEGIN
        INSERT INTO push_text (push_id, messages, authors) VALUES (NEW.push_id,
            COALESCE((SELECT group_concat(json_extract(c.value, '$.message'), char(10))
                FROM json_each(NEW.commits) c), ''),
            COALESCE((SELECT group_concat(json_extract(c.value, '$.author'), char(10))
                FROM json_each(NEW.commits) c), ''));
    END;
    CREATE TRIGGER push_text_update AFTER UPDATE OF commits ON push_commits BEGIN
        UPDATE push_text SET
            messages = COALESCE((SELECT group_concat(json_extract(c.value, '$.message'), char(10))
                FROM json_each(NEW.commits) c), ''),
            authors = COALESCE((SELECT group_concat(json_extract(c.value, '$.author'), char(10))
                FROM json_each(NEW.commits) c), '')
        WHERE push_id = NEW.push_id;
    END;
    CREATE TRIGGER push_text_delete AFTER DELETE ON push_commits BEGIN
        DELETE FROM push_text WHERE push_id = OLD.push_id;
    END;
    -- `push_text` changes what its push's document holds. When the push itself is being
    -- deleted (the cascade), its row is already gone, its entry with it, and these find nothing.
    CREATE TRIGGER push_fts_text_insert AFTER INSERT ON push_text BEGIN
        INSERT INTO push_fts (push_fts, rowid, summary, messages, branch, authors)
            SELECT 'delete', id, summary, '', branch, pusher FROM pushes WHERE id = NEW.push_id;
        INSERT INTO push_fts_prefix (push_fts_prefix, rowid, summary, messages, branch, authors)
            SELECT 'delete', id, summary, '', branch, pusher FROM pushes WHERE id = NEW.push_id;
        INSERT INTO push_fts (rowid, summary, messages, branch, authors)
            SELECT id, summary, messages, branch, authors FROM push_search WHERE id = NEW.push_id;
        INSERT INTO push_fts_prefix (rowid, summary, messages, branch, authors)
            SELECT id, summary, messages, branch, authors FROM push_search WHERE id = NEW.push_id;
    END;
    CREATE TRIGGER push_fts_text_before_update BEFORE UPDATE ON push_text BEGIN
        INSERT INTO push_fts (push_fts, rowid, summary, messages, branch, authors)
            SELECT 'delete', id, summary, messages, branch, authors FROM push_search
            WHERE id = OLD.push_id;
        INSERT INTO push_fts_prefix (push_fts_prefix, rowid, summary, messages, branch, authors)
            SELECT 'delete', id, summary, messages, branch, authors FROM push_search
            WHERE id = OLD.push_id;
    END;
    CREATE TRIGGER push_fts_text_after_update AFTER UPDATE ON push_text BEGIN
        INSERT INTO push_fts (rowid, summary, messages, branch, authors)
            SELECT id, summary, messages, branch, authors FROM push_search WHERE id = NEW.push_id;
        INSERT INTO push_fts_prefix (rowid, summary, messages, branch, authors)
            SELECT id, summary, messages, branch, authors FROM push_search WHERE id = NEW.push_id;
    END;
    CREATE TRIGGER push_fts_text_before_delete BEFORE DELETE ON push_text BEGIN
        INSERT INTO push_fts (push_fts, rowid, summary, messages, branch, authors)
            SELECT 'delete', id, summary, messages, branch, authors FROM push_search
            WHERE id = OLD.push_id;
        INSERT INTO push_fts_prefix (push_fts_prefix, rowid, summary, messages, branch, authors)
            SELECT 'delete', id, summary, messages, branch, authors FROM push_search
            WHERE id = OLD.push_id;
    END;
    CREATE TRIGGER push_fts_text_after_delete AFTER DELETE ON push_text BEGIN
        INSERT INTO push_fts (rowid, summary, messages, branch, authors)
            SELECT id, summary, messages, branch, authors FROM push_search WHERE id = OLD.push_id;
        INSERT INTO push_fts_prefix (rowid, summary, messages, branch, authors)
            SELECT id, summary, messages, branch, authors FROM push_search WHERE id = OLD.push_id;
    END;

    -- Everyone who took part in a push (its pusher and its commits' authors), once each, for
    -- the `author` filter; NOCASE because `Alice` and `alice` are one person to a reader.
    CREATE TABLE push_authors (
        push_id     INTEGER NOT NULL REFERENCES pushes(id) ON DELETE CASCADE,
        project_id  INTEGER NOT NULL,
        author      TEXT NOT NULL COLLATE NOCASE,
        PRIMARY KEY (push_id, author)
    ) WITHOUT ROWID;
    CREATE INDEX push_authors_lookup ON push_authors(project_id, author, push_id);
    INSERT OR IGNORE INTO push_authors (push_id, project_id, author)
        SELECT id, project_id, pusher FROM pushes;
    INSERT OR IGNORE INTO push_authors (push_id, project_id, author)
        SELECT p.id, p.project_id, json_extract(c.value, '$.author')
        FROM pushes p JOIN push_commits pc ON pc.push_id = p.id, json_each(pc.commits) c
        WHERE json_extract(c.value, '$.author') <> '';
    CREATE TRIGGER push_authors_insert AFTER INSERT ON pushes BEGIN
        INSERT OR IGNORE INTO push_authors (push_id, project_id, author)
            VALUES (NEW.id, NEW.project_id, NEW.pusher);
    END;
    CREATE TRIGGER push_authors_commits AFTER INSERT ON push_commits BEGIN
        INSERT OR IGNORE INTO push_authors (push_id, project_id, author)
            SELECT p.id, p.project_id, json_extract(c.value, '$.author')
            FROM pushes p, json_each(NEW.commits) c
            WHERE p.id = NEW.push_id AND json_extract(c.value, '$.author') <> '';
    END;

    -- The `repository` filter, newest first like the other page indexes.
    CREATE INDEX pushes_project_repository_time
        ON pushes(project_id, repository, pushed_at DESC, id DESC);

    -- A model's digest of a range (its filters hashed into `range_key`), valid while the
    -- range's pushes hash to `fingerprint`: a new, gone or re-summarized push changes it.
    CREATE TABLE digest_cache (
        project_id   INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        range_key    BLOB NOT NULL,
        fingerprint  BLOB NOT NULL,
        summary      TEXT NOT NULL,
        source       TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        PRIMARY KEY (project_id, range_key)
    ) WITHOUT ROWID;
    "#,
    // Notifications: where a project's summaries go, the outbox of deliveries still to make,
    // and the log of attempts. Outbox rows are written by triggers in the same transaction that
    // makes a summary final (the ingest writer's builtin summary, the worker's model summary or
    // its giving up), so a crash loses none; unique (notification, push) so a re-summary never
    // sends again. A project without notifications pays one empty index lookup per push.
    // Filters (branches, authors) are applied by the sender, which marks such rows `skipped`.
    r#"
    CREATE TABLE notifications (
        id                INTEGER PRIMARY KEY,
        project_id        INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        kind              TEXT NOT NULL,
        url               TEXT NOT NULL,
        label             TEXT NOT NULL,
        branches          TEXT NOT NULL,
        exclude_authors   TEXT NOT NULL,
        token             TEXT,
        secret            TEXT,
        enabled           INTEGER NOT NULL DEFAULT 1,
        disabled_reason   TEXT,
        failures_in_a_row INTEGER NOT NULL DEFAULT 0,
        last_delivery_at  INTEGER,
        blocked_until     INTEGER NOT NULL DEFAULT 0,
        created_at        INTEGER NOT NULL
    );
    CREATE INDEX notifications_project ON notifications(project_id) WHERE enabled = 1;

    CREATE TABLE notify_outbox (
        id               INTEGER PRIMARY KEY,
        notification_id  INTEGER NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
        push_id          INTEGER NOT NULL REFERENCES pushes(id) ON DELETE CASCADE,
        state            TEXT NOT NULL DEFAULT 'pending',
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  INTEGER NOT NULL,
        created_at       INTEGER NOT NULL,
        UNIQUE (notification_id, push_id)
    );
    CREATE INDEX notify_outbox_due ON notify_outbox(next_attempt_at) WHERE state = 'pending';
    CREATE INDEX notify_outbox_push ON notify_outbox(push_id);

    CREATE TABLE notify_attempts (
        id               INTEGER PRIMARY KEY,
        notification_id  INTEGER NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
        push_public_id   TEXT,
        attempt          INTEGER NOT NULL,
        status           INTEGER,
        error            TEXT,
        ms               INTEGER NOT NULL,
        at               INTEGER NOT NULL
    );
    CREATE INDEX notify_attempts_notification ON notify_attempts(notification_id, id);

    CREATE TRIGGER pushes_notify_insert AFTER INSERT ON pushes
    WHEN NEW.summary_status IN ('summarized', 'failed') BEGIN
        INSERT INTO notify_outbox (notification_id, push_id, next_attempt_at, created_at)
        SELECT id, NEW.id, 0, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
        FROM notifications WHERE project_id = NEW.project_id AND enabled = 1
        ON CONFLICT (notification_id, push_id) DO NOTHING;
    END;
    CREATE TRIGGER pushes_notify_final AFTER UPDATE OF summary_status ON pushes
    WHEN NEW.summary_status IN ('summarized', 'failed')
        AND OLD.summary_status NOT IN ('summarized', 'failed') BEGIN
        INSERT INTO notify_outbox (notification_id, push_id, next_attempt_at, created_at)
        SELECT id, NEW.id, 0, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
        FROM notifications WHERE project_id = NEW.project_id AND enabled = 1
        ON CONFLICT (notification_id, push_id) DO NOTHING;
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
    // 10: the same counters per hour and per block of 32 days, beside the day counters, so a
    // `since`/`until` total sums a few blocks, days and hours and counts pushes one by one only
    // within the hour at each edge, whatever the history's length. Bucket numbers are
    // `floor(pushed_at / size)`; rows that reach zero are deleted.
    r#"
    CREATE TABLE push_hours (
        project_id  INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        bucket      INTEGER NOT NULL,
        n           INTEGER NOT NULL,
        PRIMARY KEY (project_id, bucket)
    ) WITHOUT ROWID;
    CREATE TABLE push_branch_hours (
        project_id  INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        branch      TEXT NOT NULL,
        bucket      INTEGER NOT NULL,
        n           INTEGER NOT NULL,
        PRIMARY KEY (project_id, branch, bucket)
    ) WITHOUT ROWID;
    INSERT INTO push_hours (project_id, bucket, n)
        SELECT project_id, (pushed_at - ((pushed_at % 3600000) + 3600000) % 3600000) / 3600000 AS k, count(*) FROM pushes GROUP BY project_id, k;
    INSERT INTO push_branch_hours (project_id, branch, bucket, n)
        SELECT project_id, branch, (pushed_at - ((pushed_at % 3600000) + 3600000) % 3600000) / 3600000 AS k, count(*)
        FROM pushes GROUP BY project_id, branch, k;
    CREATE TABLE push_blocks (
        project_id  INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        bucket      INTEGER NOT NULL,
        n           INTEGER NOT NULL,
        PRIMARY KEY (project_id, bucket)
    ) WITHOUT ROWID;
    CREATE TABLE push_branch_blocks (
        project_id  INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        branch      TEXT NOT NULL,
        bucket      INTEGER NOT NULL,
        n           INTEGER NOT NULL,
        PRIMARY KEY (project_id, branch, bucket)
    ) WITHOUT ROWID;
    INSERT INTO push_blocks (project_id, bucket, n)
        SELECT project_id, (pushed_at - ((pushed_at % 2764800000) + 2764800000) % 2764800000) / 2764800000 AS k, count(*) FROM pushes GROUP BY project_id, k;
    INSERT INTO push_branch_blocks (project_id, branch, bucket, n)
        SELECT project_id, branch, (pushed_at - ((pushed_at % 2764800000) + 2764800000) % 2764800000) / 2764800000 AS k, count(*)
        FROM pushes GROUP BY project_id, branch, k;
    CREATE TRIGGER pushes_buckets_insert AFTER INSERT ON pushes BEGIN
        INSERT INTO push_hours (project_id, bucket, n)
            VALUES (NEW.project_id, (NEW.pushed_at - ((NEW.pushed_at % 3600000) + 3600000) % 3600000) / 3600000, 1)
        ON CONFLICT (project_id, bucket) DO UPDATE SET n = n + 1;
        INSERT INTO push_branch_hours (project_id, branch, bucket, n)
            VALUES (NEW.project_id, NEW.branch, (NEW.pushed_at - ((NEW.pushed_at % 3600000) + 3600000) % 3600000) / 3600000, 1)
        ON CONFLICT (project_id, branch, bucket) DO UPDATE SET n = n + 1;
        INSERT INTO push_blocks (project_id, bucket, n)
            VALUES (NEW.project_id, (NEW.pushed_at - ((NEW.pushed_at % 2764800000) + 2764800000) % 2764800000) / 2764800000, 1)
        ON CONFLICT (project_id, bucket) DO UPDATE SET n = n + 1;
        INSERT INTO push_branch_blocks (project_id, branch, bucket, n)
            VALUES (NEW.project_id, NEW.branch, (NEW.pushed_at - ((NEW.pushed_at % 2764800000) + 2764800000) % 2764800000) / 2764800000, 1)
        ON CONFLICT (project_id, branch, bucket) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER pushes_buckets_delete AFTER DELETE ON pushes BEGIN
        UPDATE push_hours SET n = n - 1
            WHERE project_id = OLD.project_id AND bucket = (OLD.pushed_at - ((OLD.pushed_at % 3600000) + 3600000) % 3600000) / 3600000;
        DELETE FROM push_hours
            WHERE project_id = OLD.project_id AND bucket = (OLD.pushed_at - ((OLD.pushed_at % 3600000) + 3600000) % 3600000) / 3600000 AND n <= 0;
        UPDATE push_branch_hours SET n = n - 1
            WHERE project_id = OLD.project_id AND branch = OLD.branch
            AND bucket = (OLD.pushed_at - ((OLD.pushed_at % 3600000) + 3600000) % 3600000) / 3600000;
        DELETE FROM push_branch_hours
            WHERE project_id = OLD.project_id AND branch = OLD.branch
            AND bucket = (OLD.pushed_at - ((OLD.pushed_at % 3600000) + 3600000) % 3600000) / 3600000 AND n <= 0;
        UPDATE push_blocks SET n = n - 1
            WHERE project_id = OLD.project_id AND bucket = (OLD.pushed_at - ((OLD.pushed_at % 2764800000) + 2764800000) % 2764800000) / 2764800000;
        DELETE FROM push_blocks
            WHERE project_id = OLD.project_id AND bucket = (OLD.pushed_at - ((OLD.pushed_at % 2764800000) + 2764800000) % 2764800000) / 2764800000 AND n <= 0;
        UPDATE push_branch_blocks SET n = n - 1
            WHERE project_id = OLD.project_id AND branch = OLD.branch
            AND bucket = (OLD.pushed_at - ((OLD.pushed_at % 2764800000) + 2764800000) % 2764800000) / 2764800000;
        DELETE FROM push_branch_blocks
            WHERE project_id = OLD.project_id AND branch = OLD.branch
            AND bucket = (OLD.pushed_at - ((OLD.pushed_at % 2764800000) + 2764800000) % 2764800000) / 2764800000 AND n <= 0;
    END;
    CREATE TRIGGER pushes_buckets_move AFTER UPDATE OF project_id, branch, pushed_at ON pushes
    BEGIN
        UPDATE push_hours SET n = n - 1
            WHERE project_id = OLD.project_id AND bucket = (OLD.pushed_at - ((OLD.pushed_at % 3600000) + 3600000) % 3600000) / 3600000;
        UPDATE push_branch_hours SET n = n - 1
            WHERE project_id = OLD.project_id AND branch = OLD.branch
            AND bucket = (OLD.pushed_at - ((OLD.pushed_at % 3600000) + 3600000) % 3600000) / 3600000;
        UPDATE push_blocks SET n = n - 1
            WHERE project_id = OLD.project_id AND bucket = (OLD.pushed_at - ((OLD.pushed_at % 2764800000) + 2764800000) % 2764800000) / 2764800000;
        UPDATE push_branch_blocks SET n = n - 1
            WHERE project_id = OLD.project_id AND branch = OLD.branch
            AND bucket = (OLD.pushed_at - ((OLD.pushed_at % 2764800000) + 2764800000) % 2764800000) / 2764800000;
        INSERT INTO push_hours (project_id, bucket, n)
            VALUES (NEW.project_id, (NEW.pushed_at - ((NEW.pushed_at % 3600000) + 3600000) % 3600000) / 3600000, 1)
        ON CONFLICT (project_id, bucket) DO UPDATE SET n = n + 1;
        INSERT INTO push_branch_hours (project_id, branch, bucket, n)
            VALUES (NEW.project_id, NEW.branch, (NEW.pushed_at - ((NEW.pushed_at % 3600000) + 3600000) % 3600000) / 3600000, 1)
        ON CONFLICT (project_id, branch, bucket) DO UPDATE SET n = n + 1;
        INSERT INTO push_blocks (project_id, bucket, n)
            VALUES (NEW.project_id, (NEW.pushed_at - ((NEW.pushed_at % 2764800000) + 2764800000) % 2764800000) / 2764800000, 1)
        ON CONFLICT (project_id, bucket) DO UPDATE SET n = n + 1;
        INSERT INTO push_branch_blocks (project_id, branch, bucket, n)
            VALUES (NEW.project_id, NEW.branch, (NEW.pushed_at - ((NEW.pushed_at % 2764800000) + 2764800000) % 2764800000) / 2764800000, 1)
        ON CONFLICT (project_id, branch, bucket) DO UPDATE SET n = n + 1;
        DELETE FROM push_hours WHERE n <= 0 AND project_id = OLD.project_id;
        DELETE FROM push_branch_hours WHERE n <= 0 AND project_id = OLD.project_id;
        DELETE FROM push_blocks WHERE n <= 0 AND project_id = OLD.project_id;
        DELETE FROM push_branch_blocks WHERE n <= 0 AND project_id = OLD.project_id;
    END;
    "#,
    // 11: the outbox by notification: the delivery threads claim a notification's oldest due rows
    // in one indexed range, and find the notifications with work in one probe each, where the
    // index by time alone made a thread skip every due row of the notifications already being
    // sent to (quadratic in the backlog). It replaces that index, so the trigger's insert
    // still maintains as many.
    r#"
    CREATE INDEX notify_outbox_lane ON notify_outbox(notification_id, next_attempt_at)
        WHERE state = 'pending';
    DROP INDEX notify_outbox_due;
    "#,
    // 12: a push's search entry is written once at ingest, when its commits document arrives
    // (every push now gets one, an empty one too), instead of once for the push's row and then
    // deleted and written again with the commits: a third of the index work per push. A push
    // stored before this has its entry already; its document, if any, came in the same
    // transaction as its row.
    r#"
    DROP TRIGGER push_fts_insert;
    DROP TRIGGER push_fts_text_insert;
    CREATE TRIGGER push_fts_text_insert AFTER INSERT ON push_text BEGIN
        INSERT INTO push_fts (rowid, summary, messages, branch, authors)
            SELECT id, summary, messages, branch, authors FROM push_search WHERE id = NEW.push_id;
        INSERT INTO push_fts_prefix (rowid, summary, messages, branch, authors)
            SELECT id, summary, messages, branch, authors FROM push_search WHERE id = NEW.push_id;
    END;
    "#,
    // 13: the day counters also sum the pushes' commit counts, so activity by day or week over
    // a range reads whole days from them (and only the partial days at its edges from the
    // pushes). The day triggers are replaced to keep both sums.
    r#"
    ALTER TABLE push_days ADD COLUMN commits INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE push_branch_days ADD COLUMN commits INTEGER NOT NULL DEFAULT 0;
    UPDATE push_days SET commits = COALESCE((SELECT sum(p.commit_count) FROM pushes p
        WHERE p.project_id = push_days.project_id
        AND p.pushed_at >= push_days.day * 86400000 AND p.pushed_at < (push_days.day + 1) * 86400000), 0);
    UPDATE push_branch_days SET commits = COALESCE((SELECT sum(p.commit_count) FROM pushes p
        WHERE p.project_id = push_branch_days.project_id AND p.branch = push_branch_days.branch
        AND p.pushed_at >= push_branch_days.day * 86400000
        AND p.pushed_at < (push_branch_days.day + 1) * 86400000), 0);
    DROP TRIGGER pushes_days_insert;
    DROP TRIGGER pushes_days_delete;
    CREATE TRIGGER pushes_days_insert AFTER INSERT ON pushes BEGIN
        INSERT INTO push_days (project_id, day, n, commits)
            VALUES (NEW.project_id, (NEW.pushed_at - ((NEW.pushed_at % 86400000) + 86400000) % 86400000) / 86400000, 1, NEW.commit_count)
        ON CONFLICT (project_id, day) DO UPDATE SET n = n + 1, commits = commits + excluded.commits;
        INSERT INTO push_branch_days (project_id, branch, day, n, commits)
            VALUES (NEW.project_id, NEW.branch, (NEW.pushed_at - ((NEW.pushed_at % 86400000) + 86400000) % 86400000) / 86400000, 1, NEW.commit_count)
        ON CONFLICT (project_id, branch, day)
            DO UPDATE SET n = n + 1, commits = commits + excluded.commits;
    END;
    CREATE TRIGGER pushes_days_delete AFTER DELETE ON pushes BEGIN
        UPDATE push_days SET n = n - 1, commits = commits - OLD.commit_count
            WHERE project_id = OLD.project_id AND day = (OLD.pushed_at - ((OLD.pushed_at % 86400000) + 86400000) % 86400000) / 86400000;
        DELETE FROM push_days
            WHERE project_id = OLD.project_id AND day = (OLD.pushed_at - ((OLD.pushed_at % 86400000) + 86400000) % 86400000) / 86400000 AND n <= 0;
        UPDATE push_branch_days SET n = n - 1, commits = commits - OLD.commit_count
            WHERE project_id = OLD.project_id AND branch = OLD.branch AND day = (OLD.pushed_at - ((OLD.pushed_at % 86400000) + 86400000) % 86400000) / 86400000;
        DELETE FROM push_branch_days
            WHERE project_id = OLD.project_id AND branch = OLD.branch AND day = (OLD.pushed_at - ((OLD.pushed_at % 86400000) + 86400000) % 86400000) / 86400000
            AND n <= 0;
    END;
    CREATE TRIGGER pushes_days_commits AFTER UPDATE OF commit_count ON pushes BEGIN
        UPDATE push_days SET commits = commits - OLD.commit_count + NEW.commit_count
            WHERE project_id = NEW.project_id AND day = (NEW.pushed_at - ((NEW.pushed_at % 86400000) + 86400000) % 86400000) / 86400000;
        UPDATE push_branch_days SET commits = commits - OLD.commit_count + NEW.commit_count
            WHERE project_id = NEW.project_id AND branch = NEW.branch AND day = (NEW.pushed_at - ((NEW.pushed_at % 86400000) + 86400000) % 86400000) / 86400000;
    END;
    -- Beside `pushes_counts_move` (which moves `n`): whichever runs first, the rows end with
    -- both sums right.
    CREATE TRIGGER pushes_days_commits_move AFTER UPDATE OF project_id, branch, pushed_at ON pushes
    BEGIN
        UPDATE push_days SET commits = commits - OLD.commit_count
            WHERE project_id = OLD.project_id AND day = (OLD.pushed_at - ((OLD.pushed_at % 86400000) + 86400000) % 86400000) / 86400000;
        UPDATE push_branch_days SET commits = commits - OLD.commit_count
            WHERE project_id = OLD.project_id AND branch = OLD.branch AND day = (OLD.pushed_at - ((OLD.pushed_at % 86400000) + 86400000) % 86400000) / 86400000;
        INSERT INTO push_days (project_id, day, n, commits)
            VALUES (NEW.project_id, (NEW.pushed_at - ((NEW.pushed_at % 86400000) + 86400000) % 86400000) / 86400000, 0, NEW.commit_count)
        ON CONFLICT (project_id, day) DO UPDATE SET commits = commits + excluded.commits;
        INSERT INTO push_branch_days (project_id, branch, day, n, commits)
            VALUES (NEW.project_id, NEW.branch, (NEW.pushed_at - ((NEW.pushed_at % 86400000) + 86400000) % 86400000) / 86400000, 0, NEW.commit_count)
        ON CONFLICT (project_id, branch, day) DO UPDATE SET commits = commits + excluded.commits;
    END;
    "#,
    // 14: a push's derived rows (the counters, its search entry and text, its authors, its
    // change-log row and its notifications' outbox rows) are written after the push itself, in
    // bulk: the ingest writer commits a webhook's push with one row in `push_index_queue`, and
    // writes the derived rows of every queued push in one later transaction (db/derive.rs),
    // where each push's triggers rewrote a dozen tables' pages in every small ingest commit.
    // Readers wait for that catch-up, so nothing they see is behind (see `Db::settled`).
    // A queued push has no derived rows, so the triggers that undo or change derived rows skip
    // it (the catch-up writes what it finds then); the queue has no foreign key because a
    // cascade could remove its row before those triggers look. A push's project, branch, time,
    // pusher and commit count never change, so the triggers that would move its rows are gone.
    r#"
    CREATE TABLE push_index_queue (push_id INTEGER PRIMARY KEY);
    CREATE TRIGGER pushes_index_queue AFTER INSERT ON pushes BEGIN
        INSERT OR IGNORE INTO push_index_queue (push_id) VALUES (NEW.id);
    END;
    DROP TRIGGER pushes_count_insert;
    DROP TRIGGER pushes_days_insert;
    DROP TRIGGER pushes_buckets_insert;
    DROP TRIGGER push_authors_insert;
    DROP TRIGGER push_authors_commits;
    DROP TRIGGER pushes_notify_insert;
    DROP TRIGGER pushes_change_insert;
    DROP TRIGGER push_text_insert;
    DROP TRIGGER pushes_counts_move;
    DROP TRIGGER pushes_buckets_move;
    DROP TRIGGER pushes_days_commits_move;
    DROP TRIGGER pushes_days_commits;
    CREATE TRIGGER pushes_fixed BEFORE UPDATE OF project_id, branch, pushed_at, pusher,
        commit_count ON pushes
    WHEN NEW.project_id IS NOT OLD.project_id OR NEW.branch IS NOT OLD.branch
        OR NEW.pushed_at IS NOT OLD.pushed_at OR NEW.pusher IS NOT OLD.pusher
        OR NEW.commit_count IS NOT OLD.commit_count
    BEGIN
        SELECT RAISE(ABORT, 'a stored push keeps its project, branch, time, pusher and commits');
    END;

    DROP TRIGGER pushes_count_delete;
    DROP TRIGGER pushes_days_delete;
    DROP TRIGGER pushes_buckets_delete;
    CREATE TRIGGER pushes_counters_delete AFTER DELETE ON pushes
    WHEN NOT EXISTS (SELECT 1 FROM push_index_queue WHERE push_id = OLD.id) BEGIN
        UPDATE push_counts SET n = n - 1 WHERE project_id = OLD.project_id AND branch = OLD.branch;
        UPDATE push_days SET n = n - 1, commits = commits - OLD.commit_count
            WHERE project_id = OLD.project_id AND day = (OLD.pushed_at - ((OLD.pushed_at % 86400000) + 86400000) % 86400000) / 86400000;
        DELETE FROM push_days
            WHERE project_id = OLD.project_id AND day = (OLD.pushed_at - ((OLD.pushed_at % 86400000) + 86400000) % 86400000) / 86400000 AND n <= 0;
        UPDATE push_branch_days SET n = n - 1, commits = commits - OLD.commit_count
            WHERE project_id = OLD.project_id AND branch = OLD.branch AND day = (OLD.pushed_at - ((OLD.pushed_at % 86400000) + 86400000) % 86400000) / 86400000;
        DELETE FROM push_branch_days
            WHERE project_id = OLD.project_id AND branch = OLD.branch AND day = (OLD.pushed_at - ((OLD.pushed_at % 86400000) + 86400000) % 86400000) / 86400000 AND n <= 0;
        UPDATE push_hours SET n = n - 1
            WHERE project_id = OLD.project_id AND bucket = (OLD.pushed_at - ((OLD.pushed_at % 3600000) + 3600000) % 3600000) / 3600000;
        DELETE FROM push_hours
            WHERE project_id = OLD.project_id AND bucket = (OLD.pushed_at - ((OLD.pushed_at % 3600000) + 3600000) % 3600000) / 3600000 AND n <= 0;
        UPDATE push_branch_hours SET n = n - 1
            WHERE project_id = OLD.project_id AND branch = OLD.branch AND bucket = (OLD.pushed_at - ((OLD.pushed_at % 3600000) + 3600000) % 3600000) / 3600000;
        DELETE FROM push_branch_hours
            WHERE project_id = OLD.project_id AND branch = OLD.branch AND bucket = (OLD.pushed_at - ((OLD.pushed_at % 3600000) + 3600000) % 3600000) / 3600000 AND n <= 0;
        UPDATE push_blocks SET n = n - 1
            WHERE project_id = OLD.project_id AND bucket = (OLD.pushed_at - ((OLD.pushed_at % 2764800000) + 2764800000) % 2764800000) / 2764800000;
        DELETE FROM push_blocks
            WHERE project_id = OLD.project_id AND bucket = (OLD.pushed_at - ((OLD.pushed_at % 2764800000) + 2764800000) % 2764800000) / 2764800000 AND n <= 0;
        UPDATE push_branch_blocks SET n = n - 1
            WHERE project_id = OLD.project_id AND branch = OLD.branch AND bucket = (OLD.pushed_at - ((OLD.pushed_at % 2764800000) + 2764800000) % 2764800000) / 2764800000;
        DELETE FROM push_branch_blocks
            WHERE project_id = OLD.project_id AND branch = OLD.branch AND bucket = (OLD.pushed_at - ((OLD.pushed_at % 2764800000) + 2764800000) % 2764800000) / 2764800000 AND n <= 0;
    END;

    DROP TRIGGER push_fts_before_update;
    DROP TRIGGER push_fts_after_update;
    DROP TRIGGER push_fts_before_delete;
    CREATE TRIGGER push_fts_before_update BEFORE UPDATE OF summary ON pushes
    WHEN NOT EXISTS (SELECT 1 FROM push_index_queue WHERE push_id = OLD.id) BEGIN
        INSERT INTO push_fts (push_fts, rowid, summary, messages, branch, authors)
            SELECT 'delete', id, summary, messages, branch, authors FROM push_search
            WHERE id = OLD.id;
        INSERT INTO push_fts_prefix (push_fts_prefix, rowid, summary, messages, branch, authors)
            SELECT 'delete', id, summary, messages, branch, authors FROM push_search
            WHERE id = OLD.id;
    END;
    CREATE TRIGGER push_fts_after_update AFTER UPDATE OF summary ON pushes
    WHEN NOT EXISTS (SELECT 1 FROM push_index_queue WHERE push_id = NEW.id) BEGIN
        INSERT INTO push_fts (rowid, summary, messages, branch, authors)
            SELECT id, summary, messages, branch, authors FROM push_search WHERE id = NEW.id;
        INSERT INTO push_fts_prefix (rowid, summary, messages, branch, authors)
            SELECT id, summary, messages, branch, authors FROM push_search WHERE id = NEW.id;
    END;
    CREATE TRIGGER push_fts_before_delete BEFORE DELETE ON pushes
    WHEN NOT EXISTS (SELECT 1 FROM push_index_queue WHERE push_id = OLD.id) BEGIN
        INSERT INTO push_fts (push_fts, rowid, summary, messages, branch, authors)
            SELECT 'delete', id, summary, messages, branch, authors FROM push_search
            WHERE id = OLD.id;
        INSERT INTO push_fts_prefix (push_fts_prefix, rowid, summary, messages, branch, authors)
            SELECT 'delete', id, summary, messages, branch, authors FROM push_search
            WHERE id = OLD.id;
    END;

    DROP TRIGGER pushes_notify_final;
    CREATE TRIGGER pushes_notify_final AFTER UPDATE OF summary_status ON pushes
    WHEN NEW.summary_status IN ('summarized', 'failed')
        AND OLD.summary_status NOT IN ('summarized', 'failed')
        AND NOT EXISTS (SELECT 1 FROM push_index_queue WHERE push_id = NEW.id) BEGIN
        INSERT INTO notify_outbox (notification_id, push_id, next_attempt_at, created_at)
        SELECT id, NEW.id, 0, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
        FROM notifications WHERE project_id = NEW.project_id AND enabled = 1
        ON CONFLICT (notification_id, push_id) DO NOTHING;
    END;

    DROP TRIGGER pushes_change_update;
    CREATE TRIGGER pushes_change_update
        AFTER UPDATE OF summary, summary_source, summary_status ON pushes
        WHEN (NEW.summary IS NOT OLD.summary
            OR NEW.summary_source IS NOT OLD.summary_source
            OR replace(NEW.summary_status, 'in_progress', 'pending')
                IS NOT replace(OLD.summary_status, 'in_progress', 'pending'))
            AND NOT EXISTS (SELECT 1 FROM push_index_queue WHERE push_id = NEW.id)
    BEGIN
        INSERT INTO push_changes (project_id, push_id, kind)
            VALUES (NEW.project_id, NEW.id, 'updated');
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
