//! The documents that describe the API stay true to the router.

use std::collections::BTreeSet;
use std::path::Path;

/// Every (path, method) the OpenAPI document lists, read from its `paths:` section: a path is
/// a two-space-indented key starting with `/`, a method a four-space-indented HTTP verb.
fn openapi_routes() -> BTreeSet<(String, String)> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.yaml"))
            .unwrap();
    let section = text.split("\npaths:\n").nth(1).expect("a paths section");
    let mut routes = BTreeSet::new();
    let mut path = None;
    for line in section.lines() {
        if let Some(p) = line.strip_prefix("  /").and_then(|p| p.strip_suffix(':')) {
            path = Some(format!("/{p}"));
        } else if let Some(rest) = line.strip_prefix("    ") {
            let word = rest.trim_end_matches(':');
            if ["get", "post", "put", "delete", "patch"].contains(&word) {
                routes.insert((
                    path.clone().expect("a method under a path"),
                    word.to_uppercase(),
                ));
            }
        } else if !line.starts_with(' ') && !line.is_empty() {
            break;
        }
    }
    routes
}

#[test]
fn openapi_lists_every_route_the_router_serves() {
    let served: BTreeSet<(String, String)> = holt_http::routes()
        .into_iter()
        .flat_map(|(path, methods)| {
            methods
                .into_iter()
                .map(move |m| (path.to_owned(), m.to_owned()))
        })
        .collect();
    assert_eq!(openapi_routes(), served);
}

#[test]
fn the_api_guide_names_every_route() {
    let guide =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/api.md"))
            .unwrap();
    for (path, _) in holt_http::routes() {
        assert!(guide.contains(path), "docs/api.md does not mention {path}");
    }
}
