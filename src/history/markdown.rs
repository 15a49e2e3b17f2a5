//! The list and digest answers as Markdown an agent can read directly: the same content as the
//! JSON, a heading per day and one bullet list per push.

use std::fmt::Write;

use super::Digest;
use crate::http::api::PushPage;

/// Keeps stored names from turning into Markdown structure (headings, links, emphasis).
fn inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A page of pushes: a heading per UTC day, newest first, then one list per push.
pub fn page(page: &PushPage) -> String {
    let mut out = String::new();
    let p = &page.pagination;
    let _ = writeln!(out, "# Pushes of {}\n", inline(&page.project));
    let shown = page.pushes.len() as u64;
    let _ = writeln!(
        out,
        "{} pushes match; this page shows {} from number {}.",
        p.total,
        shown,
        if shown == 0 { p.offset } else { p.offset + 1 }
    );
    if let Some(next) = &p.next_cursor {
        let _ = writeln!(out, "Next page: `cursor={next}`.");
    }
    let mut day = String::new();
    for push in &page.pushes {
        let this_day = push.pushed_at.get(..10).unwrap_or("").to_owned();
        if this_day != day {
            let _ = writeln!(out, "\n## {this_day}");
            day = this_day;
        }
        let time = push.pushed_at.get(11..16).unwrap_or("");
        let _ = writeln!(
            out,
            "\n### {} {} `{}` by {} at {time} UTC",
            push.ref_type,
            inline(&push.branch),
            inline(&push.repository),
            inline(&push.author),
        );
        let _ = writeln!(
            out,
            "\nPush `{}`, {} commit{}{}{}\n",
            push.id,
            push.commit_count,
            if push.commit_count == 1 { "" } else { "s" },
            if push.forced { ", forced" } else { "" },
            match &push.compare_url {
                Some(url) => format!(", compare: <{}>", url.replace(['<', '>', ' '], "")),
                None => String::new(),
            }
        );
        bullets(&mut out, &push.summary);
    }
    out
}

fn bullets(out: &mut String, summary: &str) {
    for line in summary.lines().filter(|l| !l.trim().is_empty()) {
        let text = line.trim().trim_start_matches("- ").trim_start_matches('-');
        let _ = writeln!(out, "- {}", inline(text.trim()));
    }
}

/// A digest: its range and totals, the summary, then the counts per author, branch and
/// repository.
pub fn digest(d: &Digest) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Digest of {}, {} to {}\n",
        inline(&d.project),
        d.since,
        d.until
    );
    let _ = writeln!(
        out,
        "{} pushes, {} commits (summary: {}).\n",
        d.push_count,
        d.commit_count,
        inline(&d.summary_source)
    );
    let _ = writeln!(out, "## Summary\n");
    bullets(&mut out, &d.summary);
    let sections = [
        (
            "Authors",
            d.authors
                .iter()
                .map(|a| (a.author.as_str(), a.pushes, a.commits))
                .collect::<Vec<_>>(),
        ),
        (
            "Branches",
            d.branches
                .iter()
                .map(|a| (a.branch.as_str(), a.pushes, a.commits))
                .collect(),
        ),
        (
            "Repositories",
            d.repositories
                .iter()
                .map(|a| (a.repository.as_str(), a.pushes, a.commits))
                .collect(),
        ),
    ];
    for (title, rows) in sections {
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n## {title}\n");
        for (name, pushes, commits) in rows {
            let _ = writeln!(
                out,
                "- {}: {pushes} pushes, {commits} commits",
                inline(name)
            );
        }
    }
    out
}
