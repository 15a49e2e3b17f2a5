//! Reading the push list the way the list tests do: page by page along its cursors, and
//! queries it must refuse.

use super::app::{TestApp, push_ids};

/// Walks every page of `path` (a list's path with its query, such as
/// `/api/v1/pushes?branch=main`) by cursor, `limit` pushes at a time, and answers the pushes'
/// ids in order. On the way it checks each page: its offset is the count walked so far, its
/// total is the first page's, a cursor comes with every page but the last, and the walk ends
/// at the total.
pub fn cursor_walk(app: &TestApp, key: &str, path: &str, limit: usize) -> Vec<String> {
    let joiner = if path.contains('?') { '&' } else { '?' };
    let mut walked = Vec::new();
    let mut url = format!("{path}{joiner}limit={limit}");
    let mut first_total = None;
    loop {
        let reply = app.get(&url, Some(key));
        assert_eq!(reply.status, 200, "{url}: {}", reply.body);
        let page = reply.body;
        assert_eq!(page["pagination"]["offset"], walked.len(), "{url}");
        let total = page["pagination"]["total"].as_u64().unwrap() as usize;
        assert_eq!(
            *first_total.get_or_insert(total),
            total,
            "{url}: the total moved"
        );
        walked.extend(push_ids(&page));
        match page["pagination"]["nextCursor"].as_str() {
            Some(next) => {
                assert!(walked.len() < total, "{url}: a cursor after the last push");
                url = format!("{path}{joiner}limit={limit}&cursor={next}");
            }
            None => {
                assert_eq!(walked.len(), total, "{url}: no cursor before the end");
                return walked;
            }
        }
    }
}

/// Asserts that the push list refuses `query` from `key` with a 400 whose message names
/// `param`.
pub fn assert_list_refuses(app: &TestApp, key: &str, query: &str, param: &str) {
    let reply = app.get(&format!("/api/v1/pushes?{query}"), Some(key));
    assert_eq!(reply.status, 400, "{query}: {}", reply.body);
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(param),
        "{query}: message {message:?} should name {param}"
    );
}
