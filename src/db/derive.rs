//! Derived rows: what the reads need beside a push's own rows (the total, day, hour and block
//! counters, the search entry and its text, the authors, the change-log row and the outbox rows
//! of the project's notifications), written in bulk for every push in `push_index_queue`.
//!
//! Contact points: the ingest writer commits pushes (a trigger queues each one) and calls
//! [`catch_up`] after its batches; [`Progress`] tells readers whether what they are about to
//! read is caught up, and [`Db::open`](super::Db::open) catches up whatever a crash left queued.
//! Migration 14 explains why the triggers no longer do this per push.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use super::DbError;

/// `floor(pushed_at / size)` for a bucket of `size` milliseconds, pushes before 1970 included.
macro_rules! bucket {
    ($size:literal) => {
        concat!(
            "(p.pushed_at - ((p.pushed_at % ",
            $size,
            ") + ",
            $size,
            ") % ",
            $size,
            ") / ",
            $size
        )
    };
}

/// The queued pushes, with the rows a statement reads from them. CROSS JOIN keeps the queue
/// the outer loop: left to itself, the planner walks a page index of every push in the
/// database (it yields the GROUP BY's order) and looks each one up in the queue.
const QUEUED: &str = "push_index_queue q CROSS JOIN pushes p ON p.id = q.push_id";

/// The notifications' outbox rows of the queued pushes whose summary is final already.
const OUTBOX: &str =
    "INSERT INTO notify_outbox (notification_id, push_id, next_attempt_at, created_at)
    SELECT n.id, p.id, 0, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM push_index_queue q CROSS JOIN pushes p ON p.id = q.push_id
    CROSS JOIN notifications n ON n.project_id = p.project_id AND n.enabled = 1
    WHERE p.summary_status IN ('summarized', 'failed')
    ON CONFLICT (notification_id, push_id) DO NOTHING";

/// The day of a push, as the day counters number it.
const DAY: &str = bucket!("86400000");
/// The hour of a push.
const HOUR: &str = bucket!("3600000");
/// The 32-day block of a push.
const BLOCK: &str = bucket!("2764800000");

/// The counters a catch-up adds the queued pushes to: the table, the column it buckets by and
/// the bucket of a push, whether it counts per branch and whether it sums commits too.
const COUNTERS: [(&str, &str, &str, bool, bool); 6] = [
    ("push_days", "day", DAY, false, true),
    ("push_branch_days", "day", DAY, true, true),
    ("push_hours", "bucket", HOUR, false, false),
    ("push_branch_hours", "bucket", HOUR, true, false),
    ("push_blocks", "bucket", BLOCK, false, false),
    ("push_branch_blocks", "bucket", BLOCK, true, false),
];

/// Every other statement of a catch-up, in order; each reads the queue.
/// `WHERE true` keeps SQLite from reading an upsert's `ON CONFLICT` as a join constraint.
fn statements() -> &'static [String] {
    static STATEMENTS: OnceLock<Vec<String>> = OnceLock::new();
    STATEMENTS.get_or_init(|| {
        let counter = |table: &str, key: &str, expr: &str, branch: bool, commits: bool| {
            let (branch_col, branch_val) = if branch {
                ("branch, ", "p.branch, ")
            } else {
                ("", "")
            };
            let (commits_col, commits_val, commits_set) = if commits {
                (
                    ", commits",
                    ", sum(p.commit_count)",
                    ", commits = commits + excluded.commits",
                )
            } else {
                ("", "", "")
            };
            format!(
                "INSERT INTO {table} (project_id, {branch_col}{key}, n{commits_col})
                 SELECT p.project_id, {branch_val}{expr} AS k, count(*){commits_val} FROM {QUEUED}
                 WHERE true GROUP BY p.project_id, {branch_val}k
                 ON CONFLICT (project_id, {branch_col}{key})
                    DO UPDATE SET n = n + excluded.n{commits_set}"
            )
        };
        let mut statements = vec![format!(
            "INSERT INTO push_counts (project_id, branch, n)
                 SELECT p.project_id, p.branch, count(*) FROM {QUEUED}
                 WHERE true GROUP BY p.project_id, p.branch
                 ON CONFLICT (project_id, branch) DO UPDATE SET n = n + excluded.n"
        )];
        statements.extend(COUNTERS.iter().map(|&(table, key, expr, branch, commits)| {
            counter(table, key, expr, branch, commits)
        }));
        statements.extend([
            // Its trigger writes the search entries, now that the text is there.
            format!(
                "INSERT INTO push_text (push_id, messages, authors)
                 SELECT p.id,
                    COALESCE((SELECT group_concat(json_extract(c.value, '$.message'), char(10))
                        FROM json_each(pc.commits) c), ''),
                    COALESCE((SELECT group_concat(json_extract(c.value, '$.author'), char(10))
                        FROM json_each(pc.commits) c), '')
                 FROM {QUEUED} LEFT JOIN push_commits pc ON pc.push_id = p.id
                 ORDER BY p.id"
            ),
            format!(
                "INSERT OR IGNORE INTO push_authors (push_id, project_id, author)
                 SELECT p.id, p.project_id, p.pusher FROM {QUEUED}"
            ),
            format!(
                "INSERT OR IGNORE INTO push_authors (push_id, project_id, author)
                 SELECT p.id, p.project_id, json_extract(c.value, '$.author')
                 FROM {QUEUED} JOIN push_commits pc ON pc.push_id = p.id, json_each(pc.commits) c
                 WHERE json_extract(c.value, '$.author') <> ''"
            ),
            format!(
                "INSERT INTO push_changes (project_id, push_id, kind)
                 SELECT p.project_id, p.id, 'created' FROM {QUEUED} ORDER BY p.id"
            ),
        ]);
        statements
    })
}

/// What one catch-up wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaughtUp {
    /// Pushes whose derived rows were written (their change-log rows are new changes).
    pub pushes: usize,
    /// Outbox rows written: deliveries now due.
    pub deliveries: usize,
}

/// Writes the derived rows of every queued push, in one transaction of its own. An empty queue
/// is seen with a plain read, so opening the file (every CLI command does) takes no write lock.
pub fn catch_up(conn: &mut Connection) -> Result<CaughtUp, DbError> {
    let queued: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM push_index_queue)")?
        .query_row([], |r| r.get(0))?;
    if !queued {
        return Ok(CaughtUp::default());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let caught_up = catch_up_in(&tx)?;
    tx.commit()?;
    Ok(caught_up)
}

/// [`catch_up`] inside a transaction the caller commits.
pub fn catch_up_in(conn: &Connection) -> Result<CaughtUp, DbError> {
    let queued: i64 = conn
        .prepare_cached("SELECT count(*) FROM push_index_queue")?
        .query_row([], |r| r.get(0))?;
    if queued == 0 {
        return Ok(CaughtUp::default());
    }
    for sql in statements() {
        conn.prepare_cached(sql)?.execute([])?;
    }
    let deliveries = conn.prepare_cached(OUTBOX)?.execute([])?;
    conn.prepare_cached("DELETE FROM push_index_queue")?
        .execute([])?;
    Ok(CaughtUp {
        pushes: usize::try_from(queued).unwrap_or(0),
        deliveries,
    })
}

/// How far the derived rows are behind the pushes committed by this process's writer, so a
/// read can wait until what it reads is caught up: a 201 is followed by reads that count and
/// search the push it answered for.
#[derive(Default)]
pub struct Progress {
    /// Writer batches committed with new pushes, numbered from 1.
    committed: AtomicU64,
    /// The last such batch whose pushes' derived rows are committed too.
    derived: AtomicU64,
    lock: Mutex<()>,
    caught_up: Condvar,
    /// A reader waits: the writer catches up after its current batch.
    wanted: AtomicBool,
}

/// Longest a read waits for the writer to catch up before it reads what is there.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

impl Progress {
    /// The writer committed a batch with new pushes; returns the batch's number.
    pub(super) fn committed(&self) -> u64 {
        self.committed.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The writer caught up with every batch up to `batch`.
    pub(super) fn derived(&self, batch: u64) {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.derived.fetch_max(batch, Ordering::AcqRel);
        self.wanted.store(false, Ordering::Release);
        self.caught_up.notify_all();
    }

    /// True while a reader waits for the writer to catch up.
    pub(super) fn is_wanted(&self) -> bool {
        self.wanted.load(Ordering::Acquire)
    }

    /// Blocks until every push committed before the call has its derived rows (at most
    /// [`SETTLE_TIMEOUT`], then it reads what there is and says so in the log).
    pub(super) fn settle(&self) {
        let target = self.committed.load(Ordering::Acquire);
        if self.derived.load(Ordering::Acquire) >= target {
            return;
        }
        self.wanted.store(true, Ordering::Release);
        let guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let (_guard, waited) = self
            .caught_up
            .wait_timeout_while(guard, SETTLE_TIMEOUT, |_| {
                self.derived.load(Ordering::Acquire) < target
            })
            .unwrap_or_else(PoisonError::into_inner);
        if waited.timed_out() {
            tracing::warn!(
                "reading while the derived rows of recent pushes are still being written"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrate::migrate(&mut conn).unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             INSERT INTO projects (id, name, hook_id, webhook_secret, created_at)
                VALUES (1, 'app', 'h', 's', 0);
             INSERT INTO notifications (project_id, kind, url, label, branches, exclude_authors,
                created_at) VALUES (1, 'slack', 'https://hooks.slack.com/x', '', '[]', '[]', 0);",
        )
        .unwrap();
        conn
    }

    /// Stores a push the way the writer does: its row and its commits document, nothing else.
    fn store(conn: &Connection, id: i64, branch: &str, word: &str, status: &str) {
        conn.execute(
            "INSERT INTO pushes (id, public_id, project_id, provider, repository, git_ref,
                ref_type, branch, created, deleted, forced, pusher, commit_count,
                commits_truncated, pushed_at, received_at, summary, summary_status, summary_source)
             VALUES (?1, 'p' || ?1, 1, 'github', 'acme/app', 'refs/heads/' || ?2, 'branch', ?2,
                0, 0, 0, 'ada', 1, 0, ?1 * 3600000, 0, '- ' || ?3, ?4, 'builtin')",
            rusqlite::params![id, branch, word, status],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO push_commits (push_id, commits)
             VALUES (?1, json_array(json_object('message', 'fix ' || ?2, 'author', 'grace')))",
            rusqlite::params![id, word],
        )
        .unwrap();
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// Every derived table holds exactly what the pushes say.
    fn assert_derived_true(conn: &Connection) {
        assert_eq!(count(conn, "SELECT count(*) FROM push_index_queue"), 0);
        let pushes = count(conn, "SELECT count(*) FROM pushes");
        for table in ["push_counts"].into_iter().chain(COUNTERS.map(|c| c.0)) {
            let sum = count(conn, &format!("SELECT COALESCE(sum(n), 0) FROM {table}"));
            assert_eq!(sum, pushes, "{table}");
        }
        let commits = count(conn, "SELECT COALESCE(sum(commit_count), 0) FROM pushes");
        let day_commits = count(conn, "SELECT COALESCE(sum(commits), 0) FROM push_days");
        assert_eq!(day_commits, commits, "push_days.commits");
        conn.execute_batch(
            "INSERT INTO push_fts (push_fts) VALUES ('integrity-check');
             INSERT INTO push_fts_prefix (push_fts_prefix) VALUES ('integrity-check');",
        )
        .expect("the search index matches the pushes");
        assert_eq!(count(conn, "SELECT count(*) FROM push_fts_docsize"), pushes);
        assert_eq!(count(conn, "SELECT count(*) FROM push_text"), pushes);
        let created = "SELECT count(*) FROM push_changes WHERE kind = 'created'";
        assert_eq!(count(conn, created), pushes, "one created change per push");
        // The pusher and the commit's author.
        assert_eq!(count(conn, "SELECT count(*) FROM push_authors"), 2 * pushes);
    }

    #[test]
    fn a_catch_up_writes_every_derived_row_of_the_queued_pushes() {
        let mut conn = database();
        store(&conn, 1, "main", "zeppelin", "summarized");
        store(&conn, 2, "dev", "walrus", "pending");
        let caught_up = catch_up(&mut conn).unwrap();
        assert_eq!(
            caught_up,
            CaughtUp {
                pushes: 2,
                deliveries: 1
            }
        );
        assert_derived_true(&conn);
        let found = "SELECT count(*) FROM push_fts WHERE push_fts MATCH 'zeppelin'";
        assert_eq!(count(&conn, found), 1);
        // Nothing queued: nothing written.
        assert_eq!(catch_up(&mut conn).unwrap(), CaughtUp::default());
    }

    #[test]
    fn a_queued_push_resummarized_or_deleted_before_its_catch_up_leaves_every_row_true() {
        let mut conn = database();
        store(&conn, 1, "main", "zeppelin", "summarized");
        catch_up(&mut conn).unwrap();
        store(&conn, 2, "main", "walrus", "pending");
        store(&conn, 3, "dev", "quokka", "pending");
        conn.execute_batch(
            "UPDATE pushes SET summary = '- narwhal', summary_status = 'summarized' WHERE id = 2;
             DELETE FROM pushes WHERE id = 3;
             DELETE FROM pushes WHERE id = 1;",
        )
        .unwrap();
        catch_up(&mut conn).unwrap();
        assert_derived_true(&conn);
        let matches = |word: &str| {
            count(
                &conn,
                &format!("SELECT count(*) FROM push_fts WHERE push_fts MATCH '{word}'"),
            )
        };
        assert_eq!(
            [matches("narwhal"), matches("walrus"), matches("quokka")],
            [1, 1, 0]
        );
        // The re-summary before the catch-up is in its one change, and its delivery is due.
        assert_eq!(count(&conn, "SELECT count(*) FROM push_changes"), 1);
        assert_eq!(
            count(
                &conn,
                "SELECT count(*) FROM notify_outbox WHERE push_id = 2"
            ),
            1
        );
    }

    /// A catch-up costs what is queued, whatever the history's length.
    #[test]
    fn every_catch_up_statement_reads_the_queue_first_and_finds_each_push_by_its_id() {
        let conn = database();
        for sql in statements().iter().map(String::as_str).chain([OUTBOX]) {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map([], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(plan[0].starts_with("SCAN q"), "{sql}: {plan:?}");
            assert!(
                plan.iter()
                    .any(|step| step.starts_with("SEARCH p USING INTEGER PRIMARY KEY")),
                "{sql}: {plan:?}"
            );
        }
    }

    #[test]
    fn a_stored_push_keeps_its_project_branch_time_pusher_and_commit_count() {
        let mut conn = database();
        store(&conn, 1, "main", "zeppelin", "summarized");
        catch_up(&mut conn).unwrap();
        for change in [
            "branch = 'dev'",
            "pushed_at = 1",
            "pusher = 'eve'",
            "commit_count = 9",
        ] {
            let refused = conn.execute(&format!("UPDATE pushes SET {change}"), []);
            assert!(refused.is_err(), "{change}");
        }
        assert_derived_true(&conn);
    }
}
