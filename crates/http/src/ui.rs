//! The web UI: one page shell, one script and one style sheet, embedded in the binary and
//! served at the UI's stable URLs (`/`, `/jobs/TOKEN`, `/templates`, `/servers`). The script
//! renders each page from the JSON API with the admin key the operator signs in with; the
//! key stays in the browser's session storage and reaches the server only in the `X-ApiKey`
//! header of API calls. Nothing a job or a caller wrote is ever parsed as HTML: the script
//! builds the page from text nodes, and the content security policy lets no inline script run.
//!
//! With no admin key configured the UI is off: its URLs answer 404 with how to enable it,
//! rather than serving pages nobody could sign in to (or, worse, pages open to everyone).

use hyper::header::{self, HeaderValue};
use hyper::{Method, Response, StatusCode};

use crate::body::Body;
use crate::routes::{Answer, App, Refusal, text};

const SHELL: &str = include_str!("../ui/index.html");
const SCRIPT: &str = include_str!("../ui/app.js");
const STYLE: &str = include_str!("../ui/app.css");

/// What holtd says, in its log and at the UI's URLs, when no admin key is configured.
pub const UI_OFF: &str = "the web UI is off: it needs an admin key; start holtd with \
     --admin-key-file FILE (created with a random key when missing) or --admin-key-sha256 DIGEST";

/// Which part of the UI a path asks for, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Asset {
    Page,
    Script,
    Style,
}

/// The UI's asset at `path`: the page shell for every page URL (the script renders the page
/// the path names), the script and the style sheet.
pub(crate) fn asset(path: &str) -> Option<Asset> {
    match path {
        "/" | "/templates" | "/servers" => Some(Asset::Page),
        "/ui/app.js" => Some(Asset::Script),
        "/ui/app.css" => Some(Asset::Style),
        _ => {
            let token = path.strip_prefix("/jobs/")?;
            (!token.is_empty() && token.bytes().all(|b| b.is_ascii_alphanumeric()))
                .then_some(Asset::Page)
        }
    }
}

pub(crate) fn serve(app: &App, asset: Asset, method: &Method) -> Answer {
    if app.config.admin_keys.is_empty() {
        return Err(Refusal::new(StatusCode::NOT_FOUND, UI_OFF));
    }
    if method != Method::GET && method != Method::HEAD {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {method} is not allowed here"),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(response);
    }
    let (body, content_type) = match asset {
        Asset::Page => (SHELL, "text/html; charset=utf-8"),
        Asset::Script => (SCRIPT, "text/javascript; charset=utf-8"),
        Asset::Style => (STYLE, "text/css; charset=utf-8"),
    };
    let mut response = Response::new(if method == Method::HEAD {
        Body::text("")
    } else {
        Body::text(body)
    });
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Scripts and styles only from holtd itself, no inline script, no plugin, no frame
    // around the page (clickjacking), no form posting elsewhere, no referrer leaving.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The assets change with the binary: a browser asks again rather than run an old script.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// Refuses an API request a browser sent on another site's behalf (cross-site request
/// forgery): a page elsewhere may make the operator's browser send a request to holtd, by a
/// form, an image or a script, but the browser says where it came from. Requests from the UI
/// itself are `same-origin`; scripts and other programs send neither header and pass.
pub(crate) fn check_same_origin(headers: &hyper::HeaderMap) -> Result<(), Refusal> {
    let refused = || Refusal::new(StatusCode::FORBIDDEN, "cross-site request refused");
    if let Some(site) = headers.get("sec-fetch-site") {
        match site.as_bytes() {
            b"same-origin" | b"none" => {}
            _ => return Err(refused()),
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).map(HeaderValue::as_bytes);
        let authority = origin.to_str().ok().and_then(|o| {
            o.strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
        });
        match (authority, host) {
            (Some(authority), Some(host)) if authority.as_bytes() == host => {}
            _ => return Err(refused()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_paths_are_the_uis_and_no_others() {
        assert_eq!(asset("/"), Some(Asset::Page));
        assert_eq!(asset("/jobs/42"), Some(Asset::Page));
        assert_eq!(asset("/templates"), Some(Asset::Page));
        assert_eq!(asset("/servers"), Some(Asset::Page));
        assert_eq!(asset("/ui/app.js"), Some(Asset::Script));
        assert_eq!(asset("/jobs/"), None);
        assert_eq!(asset("/jobs/4/2"), None);
        assert_eq!(asset("/jobs/%3Cscript%3E"), None);
        assert_eq!(asset("/api/jobs/list"), None);
        assert_eq!(asset("/templates/x"), None);
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> hyper::HeaderMap {
        let mut map = hyper::HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_same_origin_browser_requests_pass() {
        assert!(check_same_origin(&headers(&[])).is_ok());
        assert!(check_same_origin(&headers(&[("sec-fetch-site", "same-origin")])).is_ok());
        assert!(check_same_origin(&headers(&[("sec-fetch-site", "none")])).is_ok());
        assert!(check_same_origin(&headers(&[("sec-fetch-site", "cross-site")])).is_err());
        assert!(check_same_origin(&headers(&[("sec-fetch-site", "same-site")])).is_err());
        let host = ("host", "127.0.0.1:8446");
        assert!(check_same_origin(&headers(&[host, ("origin", "http://127.0.0.1:8446")])).is_ok());
        assert!(check_same_origin(&headers(&[host, ("origin", "http://127.0.0.1:9999")])).is_err());
        assert!(check_same_origin(&headers(&[host, ("origin", "null")])).is_err());
        assert!(check_same_origin(&headers(&[("origin", "http://127.0.0.1:8446")])).is_err());
    }
}
