//! One message per platform, within its limits: Slack Block Kit with a text fallback, a Discord
//! embed, a Teams Adaptive Card 1.4, Mattermost Markdown, an ntfy JSON publish and the generic
//! `push.summarized` webhook body. Text from a payload or a model is escaped for each platform
//! so it is shown and never pings; long summaries are cut with "and N more".

use chrono::{DateTime, SecondsFormat, Utc};
use poem_openapi::types::ToJSON;
use serde_json::{Value, json};

use super::{Kind, ReceiverUrl};
use crate::domain::{Push, RefKind, SummaryStatus};

/// What a message is about.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    Push(&'a Push),
    /// `notify test`: proves the receiver works, with no push behind it.
    Test {
        project: &'a str,
    },
}

/// A request ready to send: where, and the JSON body.
#[derive(Debug)]
pub struct Outgoing {
    pub url: url::Url,
    pub body: Vec<u8>,
}

// Platform limits (DESIGN.md, "Outbound platforms"), with a margin for what we add around text.
const SLACK_SECTION_CHARS: usize = 3000;
const SLACK_TEXT_CHARS: usize = 3000;
const DISCORD_TITLE_CHARS: usize = 256;
const DISCORD_DESCRIPTION_CHARS: usize = 4096;
const DISCORD_EMBED_TOTAL_CHARS: usize = 6000;
const TEAMS_TEXT_CHARS: usize = 20_000;
const MATTERMOST_TEXT_CHARS: usize = 16_000;
const NTFY_MESSAGE_BYTES: usize = 4096;

/// The facts every platform shows, before escaping.
struct Facts {
    headline: String,
    bullets: Vec<String>,
    link: Option<String>,
    note: Option<String>,
}

fn facts(event: Event<'_>) -> Facts {
    let push = match event {
        Event::Test { project } => {
            return Facts {
                headline: format!("Test message from Git Push Tracker for project {project}"),
                bullets: vec!["This notification works.".to_owned()],
                link: None,
                note: None,
            };
        }
        Event::Push(push) => push,
    };
    let what = match push.ref_kind {
        RefKind::Branch => "branch",
        RefKind::Tag => "tag",
    };
    let place = format!("{} ({})", push.repository, push.project);
    if push.deleted {
        return Facts {
            headline: format!(
                "{} deleted {what} {} in {place}",
                push.pusher, push.ref_name
            ),
            bullets: Vec::new(),
            link: None,
            note: None,
        };
    }
    let n = push.commit_count;
    let commits = if n == 1 { "commit" } else { "commits" };
    let headline = match (push.ref_kind, push.created && n == 0) {
        (RefKind::Tag, _) => format!("{} pushed tag {} in {place}", push.pusher, push.ref_name),
        (RefKind::Branch, true) => format!(
            "{} created branch {} in {place}",
            push.pusher, push.ref_name
        ),
        (RefKind::Branch, false) => format!(
            "{} pushed {n} {commits} to {} in {place}{}",
            push.pusher,
            push.ref_name,
            if push.forced { " (force-push)" } else { "" }
        ),
    };
    let bullets = push
        .summary
        .lines()
        .map(|l| l.trim().trim_start_matches("- ").trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    let note = (push.summary_status == SummaryStatus::Failed)
        .then(|| "The model's summary failed; this is the builtin summary.".to_owned());
    Facts {
        headline,
        bullets,
        link: push.compare_url.clone(),
        note,
    }
}

/// The lines that fit in `budget` (as `measure` counts them, one separator each), and a last
/// "and N more" line for the rest.
fn fit(lines: &[String], budget: usize, measure: impl Fn(&str) -> usize) -> Vec<String> {
    let mut kept = Vec::new();
    let mut used = 0;
    for (i, line) in lines.iter().enumerate() {
        let left = lines.len() - i - 1;
        let reserve = if left > 0 { 24 } else { 0 };
        let cost = measure(line) + 1;
        if used + cost + reserve > budget {
            let more = lines.len() - i;
            // A single overlong line is cut rather than dropped.
            if kept.is_empty() && budget > 40 {
                let room = budget - 24;
                kept.push(cut(line, room, &measure));
                if more > 1 {
                    kept.push(format!("and {} more", more - 1));
                }
            } else {
                kept.push(format!("and {more} more"));
            }
            return kept;
        }
        used += cost;
        kept.push(line.clone());
    }
    kept
}

/// `text` cut to `limit` (as `measure` counts), ending with an ellipsis when cut.
fn cut(text: &str, limit: usize, measure: &impl Fn(&str) -> usize) -> String {
    if measure(text) <= limit {
        return text.to_owned();
    }
    let mut out = String::new();
    for c in text.chars() {
        let mut next = out.clone();
        next.push(c);
        if measure(&next) + measure("…") > limit {
            break;
        }
        out = next;
    }
    out.push('…');
    out
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// Slack's three control characters, the only ones it asks to escape.
pub fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Mattermost (and Markdown readers) ping on `@channel`, `@all`, `@here` and `@user`: a zero
/// width joiner after `@` keeps the text visible and inert. Markdown characters are escaped,
/// and so is a list marker the text starts with (`1. `, `+ `, `- `): each text is put after a
/// bullet or alone in a block (Teams' TextBlocks render Markdown too), where one would start a
/// (nested) list.
pub fn markdown_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let rest = &s[digits..];
    // `)` is escaped wherever it is, below.
    let s = if digits > 0 && rest.starts_with(". ") {
        out.push_str(&s[..digits]);
        out.push('\\');
        rest
    } else if rest.starts_with("+ ") || rest.starts_with("- ") || rest.starts_with("= ") {
        out.push('\\');
        s
    } else {
        s
    };
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '|' | '~' | '>'
            | '<' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '@' => out.push_str("@\u{2060}"),
            c => out.push(c),
        }
    }
    out
}

fn now_iso(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The request for `event` to a receiver of `kind` at `url`.
pub fn render(kind: Kind, url: &ReceiverUrl, event: Event<'_>, now: DateTime<Utc>) -> Outgoing {
    let facts = facts(event);
    let (target, body) = match kind {
        Kind::Slack => (url.expose().clone(), slack(&facts)),
        Kind::Discord => {
            let mut target = url.expose().clone();
            let others: Vec<(String, String)> = target
                .query_pairs()
                .filter(|(k, _)| k != "wait")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            target
                .query_pairs_mut()
                .clear()
                .extend_pairs(others)
                .append_pair("wait", "true");
            (target, discord(&facts))
        }
        Kind::Teams => (url.expose().clone(), teams(&facts)),
        Kind::Mattermost => (url.expose().clone(), mattermost(&facts)),
        Kind::Ntfy => {
            let (root, topic) = url
                .ntfy_parts()
                .unwrap_or_else(|| (url.expose().clone(), String::new()));
            (root, ntfy(&facts, &topic))
        }
        Kind::Webhook => (url.expose().clone(), webhook(event, now)),
    };
    Outgoing {
        url: target,
        body: serde_json::to_vec(&body).expect("JSON values always serialize"),
    }
}

fn slack(f: &Facts) -> Value {
    let headline = cut(&slack_escape(&f.headline), SLACK_SECTION_CHARS, &chars);
    let bullets: Vec<String> = f
        .bullets
        .iter()
        .map(|b| format!("• {}", slack_escape(b)))
        .collect();
    let bullets = fit(&bullets, SLACK_SECTION_CHARS - 16, chars).join("\n");
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*{headline}*")}}),
    ];
    if !bullets.is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": bullets}}));
    }
    let mut context = Vec::new();
    if let Some(note) = &f.note {
        context.push(json!({"type": "mrkdwn", "text": slack_escape(note)}));
    }
    if let Some(link) = &f.link {
        context.push(
            json!({"type": "mrkdwn", "text": format!("<{}|Compare changes>", slack_escape(link))}),
        );
    }
    if !context.is_empty() {
        blocks.push(json!({"type": "context", "elements": context}));
    }
    let text = cut(
        &[headline.clone(), bullets].join("\n"),
        SLACK_TEXT_CHARS,
        &chars,
    );
    json!({"text": text, "blocks": blocks})
}

fn discord(f: &Facts) -> Value {
    let title = cut(&f.headline, DISCORD_TITLE_CHARS, &chars);
    let bullets: Vec<String> = f
        .bullets
        .iter()
        .map(|b| format!("• {}", markdown_escape(b)))
        .collect();
    let footer = f.note.clone().map(|n| cut(&n, 200, &chars));
    let total_left = DISCORD_EMBED_TOTAL_CHARS - chars(&title) - footer.as_deref().map_or(0, chars);
    let budget = DISCORD_DESCRIPTION_CHARS.min(total_left) - 8;
    let description = fit(&bullets, budget, chars).join("\n");
    let mut embed = json!({"title": title, "description": description});
    if let Some(link) = &f.link {
        embed["url"] = json!(link);
    }
    if let Some(footer) = footer {
        embed["footer"] = json!({"text": footer});
    }
    json!({"embeds": [embed], "allowed_mentions": {"parse": []}})
}

fn teams(f: &Facts) -> Value {
    let bullets: Vec<String> = f
        .bullets
        .iter()
        .map(|b| format!("- {}", markdown_escape(b)))
        .collect();
    let mut body = vec![
        json!({"type": "TextBlock", "text": markdown_escape(&cut(&f.headline, 1000, &chars)), "weight": "Bolder", "wrap": true}),
    ];
    if !bullets.is_empty() {
        body.push(json!({"type": "TextBlock", "text": fit(&bullets, TEAMS_TEXT_CHARS, chars).join("\n"), "wrap": true}));
    }
    if let Some(note) = &f.note {
        body.push(json!({"type": "TextBlock", "text": note, "isSubtle": true, "wrap": true}));
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    if let Some(link) = &f.link {
        card["actions"] =
            json!([{"type": "Action.OpenUrl", "title": "Compare changes", "url": link}]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }]
    })
}

fn markdown_text(f: &Facts, budget: usize, measure: fn(&str) -> usize) -> String {
    let mut head = format!("**{}**", markdown_escape(&f.headline));
    if let Some(link) = &f.link {
        head.push_str(&format!(" ([compare]({link}))"));
    }
    let mut tail = String::new();
    if let Some(note) = &f.note {
        tail = format!("\n_{}_", markdown_escape(note));
    }
    let head = cut(&head, budget / 2, &measure);
    let left = budget.saturating_sub(measure(&head) + measure(&tail) + 2);
    let bullets: Vec<String> = f
        .bullets
        .iter()
        .map(|b| format!("- {}", markdown_escape(b)))
        .collect();
    let body = fit(&bullets, left, measure).join("\n");
    if body.is_empty() {
        format!("{head}{tail}")
    } else {
        format!("{head}\n{body}{tail}")
    }
}

fn mattermost(f: &Facts) -> Value {
    json!({"text": markdown_text(f, MATTERMOST_TEXT_CHARS, chars)})
}

fn ntfy(f: &Facts, topic: &str) -> Value {
    let mut body = json!({
        "topic": topic,
        "title": cut(&f.headline, 250, &chars),
        "message": markdown_text(f, NTFY_MESSAGE_BYTES - 16, str::len),
        "markdown": true,
        "tags": ["git"],
    });
    if let Some(link) = &f.link {
        body["click"] = json!(link);
    }
    body
}

fn webhook(event: Event<'_>, now: DateTime<Utc>) -> Value {
    match event {
        Event::Push(push) => {
            let item = crate::http::api::PushItem::from(push.clone());
            json!({
                "type": "push.summarized",
                "timestamp": now_iso(now),
                "data": {"project": push.project, "push": item.to_json()},
            })
        }
        Event::Test { project } => json!({
            "type": "notification.test",
            "timestamp": now_iso(now),
            "data": {"project": project},
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_escapes_its_three_control_characters() {
        assert_eq!(
            slack_escape("<!channel> & <@U1>"),
            "&lt;!channel&gt; &amp; &lt;@U1&gt;"
        );
    }

    #[test]
    fn a_leading_list_marker_is_escaped_and_one_inside_the_text_is_left_alone() {
        assert_eq!(markdown_escape("1. first"), "1\\. first");
        assert_eq!(markdown_escape("12) twelfth"), "12\\) twelfth");
        assert_eq!(markdown_escape("+ plus"), "\\+ plus");
        assert_eq!(markdown_escape("- minus"), "\\- minus");
        assert_eq!(markdown_escape("v1. 2 - 3"), "v1. 2 - 3");
        assert_eq!(markdown_escape("2026 release"), "2026 release");
    }

    #[test]
    fn markdown_escaping_keeps_mentions_inert() {
        let e = markdown_escape("@channel **x** <b>");
        assert!(!e.contains("@channel"));
        assert!(e.contains("\\*\\*x\\*\\*"));
    }

    fn big_push() -> Push {
        let bullet =
            "- <!channel> @everyone <@123> **bold** <b>html</b> & a long line of change text";
        Push {
            id: "0190-push".into(),
            project: "web".into(),
            provider: crate::domain::Provider::GitHub,
            delivery_id: None,
            repository: "acme/app".into(),
            git_ref: "refs/heads/main".into(),
            ref_kind: RefKind::Branch,
            ref_name: "main".into(),
            before: None,
            after: None,
            created: false,
            deleted: false,
            forced: false,
            pusher: "ada".into(),
            commit_count: 300,
            commits_truncated: true,
            compare_url: Some("https://github.com/acme/app/compare/a...b".into()),
            pushed_at: Utc::now(),
            received_at: Utc::now(),
            updated_at: Utc::now(),
            summary: vec![bullet; 300].join("\n"),
            summary_status: SummaryStatus::Summarized,
            summary_source: "builtin".into(),
            attempts: 0,
            last_error: None,
        }
    }

    fn rendered(kind: Kind, url: &str, push: &Push) -> Value {
        let url = ReceiverUrl::parse(url, kind).unwrap();
        serde_json::from_slice(&render(kind, &url, Event::Push(push), Utc::now()).body).unwrap()
    }

    #[test]
    fn a_300_bullet_summary_fits_every_platform_and_says_how_many_were_left_out() {
        let push = big_push();
        let slack = rendered(Kind::Slack, "https://hooks.slack.com/services/a/b/c", &push);
        assert!(chars(slack["text"].as_str().unwrap()) <= SLACK_TEXT_CHARS);
        for block in slack["blocks"].as_array().unwrap() {
            if let Some(t) = block["text"]["text"].as_str() {
                assert!(chars(t) <= SLACK_SECTION_CHARS);
            }
        }
        assert!(slack.to_string().len() < 12_000);
        let discord = rendered(Kind::Discord, "https://discord.com/api/webhooks/1/t", &push);
        let embed = &discord["embeds"][0];
        let description = embed["description"].as_str().unwrap();
        assert!(chars(description) <= DISCORD_DESCRIPTION_CHARS);
        assert!(
            chars(embed["title"].as_str().unwrap()) + chars(description)
                <= DISCORD_EMBED_TOTAL_CHARS
        );
        let teams =
            serde_json::to_vec(&rendered(Kind::Teams, "https://x.example/wf", &push)).unwrap();
        assert!(teams.len() <= 28 * 1024, "{}", teams.len());
        let ntfy = rendered(Kind::Ntfy, "https://ntfy.sh/t", &push);
        assert!(ntfy["message"].as_str().unwrap().len() <= NTFY_MESSAGE_BYTES);
        let mattermost = rendered(Kind::Mattermost, "https://mm.example/hooks/x", &push);
        assert!(chars(mattermost["text"].as_str().unwrap()) <= MATTERMOST_TEXT_CHARS);
        for (name, text) in [
            (
                "slack",
                slack["blocks"][1]["text"]["text"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
            ("discord", description.to_owned()),
            ("ntfy", ntfy["message"].as_str().unwrap().to_owned()),
            (
                "mattermost",
                mattermost["text"].as_str().unwrap().to_owned(),
            ),
        ] {
            let last = text.lines().last().unwrap();
            assert!(
                last.contains(" more") && last.contains("and "),
                "{name}: {last}"
            );
            assert!(!text.contains("@everyone") || name == "slack", "{name}");
            assert!(!text.contains("<!channel>"), "{name}");
        }
        assert!(
            slack["text"]
                .as_str()
                .unwrap()
                .contains("pushed 300 commits")
        );
    }

    #[test]
    fn cut_lines_end_with_and_n_more_within_the_budget() {
        let lines: Vec<String> = (0..300)
            .map(|i| format!("line {i} {}", "x".repeat(40)))
            .collect();
        let kept = fit(&lines, 3000, chars);
        let text = kept.join("\n");
        assert!(chars(&text) <= 3000, "{}", chars(&text));
        let last = kept.last().unwrap();
        assert!(
            last.starts_with("and ") && last.ends_with(" more"),
            "{last}"
        );
        let shown = kept.len() - 1;
        assert_eq!(last, &format!("and {} more", 300 - shown));
    }
}
