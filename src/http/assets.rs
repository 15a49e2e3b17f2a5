//! The dashboard's files (assets/), embedded at build time and served with a strict
//! Content-Security-Policy.

use poem::web::Path;
use poem::{Response, handler};
use rust_embed::RustEmbed;

use crate::error_code::ErrorCode;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// No inline or eval'd script, nothing from elsewhere, never framed.
pub const DASHBOARD_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'";

#[handler]
pub fn index() -> Response {
    serve("index.html")
}

#[handler]
pub fn asset(Path(path): Path<String>) -> Response {
    serve(&path)
}

fn serve(path: &str) -> Response {
    let clean = !path.is_empty()
        && !path.contains('\\')
        && path
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..");
    let Some(file) = clean.then(|| Assets::get(path)).flatten() else {
        return ErrorCode::NotFound.response("no such file");
    };
    Response::builder()
        .content_type(content_type(path))
        .header("Content-Security-Policy", DASHBOARD_CSP)
        .header("X-Frame-Options", "DENY")
        // Files change with the binary; revalidating keeps an upgrade from mixing versions.
        .header("Cache-Control", "no-cache")
        .body(file.data.into_owned())
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}
