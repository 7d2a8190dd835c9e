use super::{mask, secret_patterns};

#[track_caller]
fn check(secrets: &[&str], text: &str, limit: Option<usize>, expect: (&str, bool)) {
    let patterns = secret_patterns(secrets.iter().map(|s| (*s).to_owned()).collect());
    let (masked, cut) = mask(&patterns, text, limit);
    assert_eq!((masked.as_str(), cut), expect);
}

#[test]
fn secrets_are_masked_wherever_they_stand() {
    check(
        &["hunter2"],
        "pw=hunter2, again hunter2",
        None,
        ("pw=***, again ***", false),
    );
    check(&["hunter2"], "nothing here", None, ("nothing here", false));
    // The longer of two overlapping secrets is masked whole.
    check(
        &["abc", "abcdef"],
        "xabcdefx abc",
        None,
        ("x***x ***", false),
    );
}

#[test]
fn masking_comes_before_the_cut() {
    // A secret that starts before the limit is masked whole, not cut into a visible prefix.
    check(
        &["hunter2"],
        "0123456hunter2 tail",
        Some(10),
        ("0123456***", true),
    );
    // Masks shorten the line; text that stood past the limit does not move in to fill it.
    check(
        &["abcdef"],
        &format!("x{}", "abcdef".repeat(10)),
        Some(20),
        ("x************", true),
    );
    check(
        &["hunter2"],
        "0123456789hunter2",
        Some(10),
        ("0123456789", true),
    );
    check(&[], "0123456789", Some(10), ("0123456789", false));
    // A cut lands on a character boundary.
    check(&[], "aé", Some(2), ("a", true));
}

#[test]
fn each_line_of_a_multi_line_secret_is_masked_on_its_own() {
    let secret = "first-line\r\nsecond-line\nab";
    check(&[secret], "first-line", None, ("***", false));
    check(&[secret], "> second-line <", None, ("> *** <", false));
    // The whole value is masked as one; a line too short to mask alone is left alone.
    check(
        &[secret],
        "first-line\r\nsecond-line\nab!",
        None,
        ("***!", false),
    );
    check(&[secret], "ab", None, ("ab", false));
}
