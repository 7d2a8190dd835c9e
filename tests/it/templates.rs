//! Template files the tests share.

pub(crate) const HDARS: &str = r#"
description = "Deploy HDARS"
allow_api = true
api_key = "secure123"
plan = '''
Log-Information "Deploying to $TargetServer";
'''
[variables]
TargetServer = "HDARSV1"
"#;

pub(crate) const ABLAST: &str = r#"
allow_api = true
plan = '''
Log-Information "Deploying to $TargetServer";
Log-Information "Notifying ${SendNotification}";
'''
[variables]
TargetServer = "ABLSV0"
SendNotification = "nobody@example.com"
"#;

pub(crate) const NO_API: &str = r#"
plan = 'Log-Information "hi";'
"#;

pub(crate) const WARNS: &str = r#"
allow_api = true
plan = '''
Log-Information "before";
Log-Warning "careful";
Log-Information "after";
'''
"#;

pub(crate) const FAILS: &str = r#"
allow_api = true
plan = '''
Log-Warning "careful";
Log-Error "broken";
Log-Information "still running";
'''
"#;

/// Sleeps `$Seconds` (default 1) between two lines.
pub(crate) const SLEEPS: &str = r#"
allow_api = true
plan = '''
Log-Information "sleeping $Seconds";
Sleep $Seconds;
Log-Information "awake";
'''
[variables]
Seconds = "1"
"#;

/// Every template above, by name.
pub(crate) fn all() -> Vec<(&'static str, &'static str)> {
    vec![
        ("hdars", HDARS),
        ("ablast", ABLAST),
        ("noapi", NO_API),
        ("warns", WARNS),
        ("fails", FAILS),
        ("sleeps", SLEEPS),
    ]
}

/// A template that allows API use and runs `plan`.
pub(crate) fn with_plan(plan: &str) -> String {
    format!("allow_api = true\nplan = '''\n{plan}\n'''\n")
}
