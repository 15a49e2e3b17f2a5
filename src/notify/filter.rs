//! Which pushes a notification is for: branch and tag glob patterns (a leading `!` excludes)
//! and the authors whose pushes are left out.

use super::InvalidField;
use crate::domain::{NewCommit, Push};

/// One glob: `*` matches any run of characters (including `/`), `?` one character.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    exclude: bool,
    glob: String,
}

/// Branch and tag patterns in order; the last one that matches a ref decides. An empty list
/// takes every ref; a list that starts with an exclusion takes every ref it does not exclude.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BranchFilter(Vec<Pattern>);

const MAX_PATTERNS: usize = 50;
const MAX_PATTERN_LEN: usize = 200;

impl BranchFilter {
    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<BranchFilter, InvalidField> {
        let patterns = parse_each(raw, "branches", "patterns", |item| {
            let (exclude, glob) = match item.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, item),
            };
            let bad = |reason: &str| InvalidField::new("branches", format!("{item:?}: {reason}"));
            if glob.is_empty() {
                return Err(bad("a pattern is empty"));
            }
            if glob.len() > MAX_PATTERN_LEN {
                return Err(bad("use at most 200 characters"));
            }
            if glob.chars().any(|c| {
                c.is_control() || c.is_whitespace() || matches!(c, '~' | '^' | ':' | '\\' | '[')
            }) {
                return Err(bad(
                    "git ref names cannot hold spaces, control characters, ~ ^ : \\ or [",
                ));
            }
            Ok(Pattern {
                exclude,
                glob: glob.to_owned(),
            })
        })?;
        Ok(BranchFilter(patterns))
    }

    /// The patterns as given, `!` included.
    pub fn patterns(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|p| {
                if p.exclude {
                    format!("!{}", p.glob)
                } else {
                    p.glob.clone()
                }
            })
            .collect()
    }

    /// Whether a branch or tag name is wanted.
    pub fn matches(&self, name: &str) -> bool {
        let Some(first) = self.0.first() else {
            return true;
        };
        let mut wanted = first.exclude;
        for p in &self.0 {
            if glob_match(p.glob.as_bytes(), name.as_bytes()) {
                wanted = !p.exclude;
            }
        }
        wanted
    }
}

/// Each of at most [`MAX_PATTERNS`] items of the list `field`, trimmed, through `parse_one`;
/// `items` names them in the refusal of a longer list.
fn parse_each<S: AsRef<str>, T>(
    raw: &[S],
    field: &'static str,
    items: &str,
    parse_one: impl Fn(&str) -> Result<T, InvalidField>,
) -> Result<Vec<T>, InvalidField> {
    if raw.len() > MAX_PATTERNS {
        return Err(InvalidField::new(
            field,
            format!("use at most {MAX_PATTERNS} {items}"),
        ));
    }
    raw.iter()
        .map(|item| parse_one(item.as_ref().trim()))
        .collect()
}

/// Iterative glob match with backtracking over the last `*`: linear in practice, never
/// exponential whatever the pattern.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// User names whose pushes are left out, compared case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorFilter(Vec<String>);

impl AuthorFilter {
    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<AuthorFilter, InvalidField> {
        let names = parse_each(raw, "excludeAuthors", "names", |name| {
            if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
                return Err(InvalidField::new(
                    "excludeAuthors",
                    format!("{name:?}: use 1 to 100 printable characters"),
                ));
            }
            Ok(name.to_owned())
        })?;
        Ok(AuthorFilter(names))
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }

    fn is_excluded(&self, name: &str) -> bool {
        self.0.iter().any(|n| n.eq_ignore_ascii_case(name.trim()))
    }

    /// Whether a push is left out: its pusher is excluded, or every one of its commits is by an
    /// excluded author (a bot's commits merged and pushed by a person still notify).
    pub fn excludes(&self, push: &Push, commits: &[NewCommit]) -> bool {
        if self.0.is_empty() {
            return false;
        }
        self.is_excluded(&push.pusher)
            || (!commits.is_empty() && commits.iter().all(|c| self.is_excluded(&c.author)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(p: &[&str]) -> BranchFilter {
        BranchFilter::parse(p).unwrap()
    }

    #[test]
    fn a_list_of_more_than_fifty_is_refused_by_its_field_name() {
        let many = vec!["a"; MAX_PATTERNS + 1];
        let refusal = BranchFilter::parse(&many).unwrap_err();
        assert_eq!(
            (refusal.field, &*refusal.reason),
            ("branches", "use at most 50 patterns")
        );
        let refusal = AuthorFilter::parse(&many).unwrap_err();
        assert_eq!(
            (refusal.field, &*refusal.reason),
            ("excludeAuthors", "use at most 50 names")
        );
        assert_eq!(AuthorFilter::parse(&many[1..]).unwrap().names().len(), 50);
    }

    #[test]
    fn no_patterns_take_every_branch_and_tag() {
        assert!(filter(&[]).matches("anything/at-all"));
    }

    #[test]
    fn a_star_with_an_exclusion_keeps_bot_branches_out() {
        let f = filter(&["*", "!dependabot/*"]);
        assert!(f.matches("main"));
        assert!(f.matches("feature/x"));
        assert!(!f.matches("dependabot/npm/lodash-4"));
    }

    #[test]
    fn exact_names_and_prefix_globs_take_only_what_they_name() {
        let f = filter(&["main", "release/*", "v*"]);
        assert!(f.matches("main"));
        assert!(f.matches("release/1.2"));
        assert!(f.matches("v1.0.0"));
        assert!(!f.matches("mainline"));
        assert!(!f.matches("feature/v2"));
    }

    #[test]
    fn a_list_of_exclusions_only_takes_everything_else() {
        let f = filter(&["!wip/*"]);
        assert!(f.matches("main"));
        assert!(!f.matches("wip/a"));
    }

    #[test]
    fn bad_patterns_name_the_branches_field() {
        for bad in ["", "!", "a b", "x~1", "[abc]"] {
            assert_eq!(BranchFilter::parse(&[bad]).unwrap_err().field, "branches");
        }
    }

    #[test]
    fn glob_matching_does_not_blow_up_on_many_stars() {
        let f = filter(&["*a*a*a*a*a*a*a*a*a*b"]);
        assert!(!f.matches(&"a".repeat(190)));
    }
}
