use super::*;

/// Milliseconds of an RFC 3339 time.
fn ms(text: &str) -> i64 {
    text.parse::<Timestamp>().unwrap().as_millisecond()
}

fn schedule(expression: &str, zone: &str) -> Schedule {
    Schedule::new(expression, Some(zone), Missed::Skip).unwrap()
}

/// The next `n` slots after `after`, as `$ScheduledFor` shows them.
#[track_caller]
fn check(expression: &str, zone: &str, after: &str, expect: &[&str]) {
    let s = schedule(expression, zone);
    let got: Vec<String> = s
        .upcoming(ms(after), expect.len())
        .into_iter()
        .map(|slot| s.format(slot))
        .collect();
    assert_eq!(got, expect, "{expression} in {zone} after {after}");
}

#[test]
fn five_fields_shorthands_and_seconds() {
    check(
        "*/15 * * * *",
        "UTC",
        "2026-12-01T22:07:30Z",
        &[
            "2026-12-01T22:15:00+00:00",
            "2026-12-01T22:30:00+00:00",
            "2026-12-01T22:45:00+00:00",
        ],
    );
    check(
        "@hourly",
        "UTC",
        "2026-12-01T22:00:00Z",
        &["2026-12-01T23:00:00+00:00", "2026-12-02T00:00:00+00:00"],
    );
    check(
        "@daily",
        "Europe/Berlin",
        "2026-12-01T22:00:00Z",
        &["2026-12-02T00:00:00+01:00", "2026-12-03T00:00:00+01:00"],
    );
    // 2026-12-06 is a Sunday.
    check(
        "@weekly",
        "UTC",
        "2026-12-01T00:00:00Z",
        &["2026-12-06T00:00:00+00:00"],
    );
    check(
        "@MONTHLY",
        "UTC",
        "2026-12-01T00:00:00Z",
        &["2027-01-01T00:00:00+00:00"],
    );
    check(
        "* * * * * *",
        "UTC",
        "2026-12-01T22:00:00.400Z",
        &["2026-12-01T22:00:01+00:00", "2026-12-01T22:00:02+00:00"],
    );
    check(
        "30 0 9 * * MON-FRI",
        "America/New_York",
        "2026-12-04T15:00:00Z",
        &["2026-12-07T09:00:30-05:00"],
    );
}

#[test]
fn the_slot_given_is_never_its_own_next() {
    let s = schedule("0 * * * *", "UTC");
    let slot = ms("2026-12-01T22:00:00Z");
    assert_eq!(s.next_after(slot), Some(ms("2026-12-01T23:00:00Z")));
    assert_eq!(s.next_after(slot - 1), Some(slot));
    assert_eq!(s.latest_at_or_before(slot), Some(slot));
    assert_eq!(s.latest_at_or_before(slot - 1), Some(slot - 3_600_000));
}

#[test]
fn due_counts_the_slots_of_a_span_and_stops_at_the_cap() {
    let s = schedule("* * * * * *", "UTC");
    let from = ms("2026-12-01T22:00:00Z");
    let due = s.due(from, from + 10_000, 1000);
    assert_eq!(due.count, 10);
    assert_eq!(due.latest, Some(from + 10_000));
    // A week of seconds, counted to the cap only; the latest is still exact.
    let due = s.due(from, from + 7 * 86_400_000 + 500, 100);
    assert_eq!(due.count, 100);
    assert_eq!(due.latest, Some(from + 7 * 86_400_000));
    assert_eq!(
        s.due(from, from + 999, 10),
        Due {
            count: 0,
            latest: None
        }
    );
}

#[test]
fn a_fixed_time_in_the_spring_gap_runs_right_after_it() {
    // Europe/Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 never happens.
    check(
        "30 2 * * *",
        "Europe/Berlin",
        "2026-03-28T12:00:00Z",
        &["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
    );
}

#[test]
fn an_interval_skips_the_spring_gap() {
    check(
        "*/30 * * * *",
        "Europe/Berlin",
        "2026-03-29T00:45:00Z",
        &["2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00"],
    );
}

#[test]
fn a_repeated_hour_runs_a_fixed_time_once_and_an_interval_twice() {
    // Europe/Berlin, 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:00-02:59 happens twice.
    check(
        "30 2 * * *",
        "Europe/Berlin",
        "2026-10-24T12:00:00Z",
        &["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
    );
    check(
        "30 * * * *",
        "Europe/Berlin",
        "2026-10-24T23:00:00Z",
        &[
            "2026-10-25T01:30:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T02:30:00+01:00",
            "2026-10-25T03:30:00+01:00",
        ],
    );
}

#[test]
fn bad_patterns_and_zones_are_refused_in_one_line() {
    let refused = |expression: &str, zone: Option<&str>| {
        let e = Schedule::new(expression, zone, Missed::Skip).unwrap_err();
        assert!(!e.contains('\n'), "{e}");
        e
    };
    assert!(refused("", None).contains("must not be empty"));
    assert!(refused("* * * *", None).contains("found 4"));
    assert!(refused("0 0 0 * * * 2030", None).contains("found 7"));
    assert!(refused("61 * * * *", None).contains("not a cron pattern"));
    assert!(refused("@reboot", None).contains("@hourly"));
    assert!(refused("@every 5m", None).contains("unknown"));
    assert!(refused("0 0 30 2 *", None).contains("never fires"));
    assert!(refused(&"* ".repeat(200), None).contains("at most"));
    assert!(refused("@daily", Some("Mars/Olympus")).contains("IANA"));
    assert!(refused("@daily", Some("")).contains("IANA"));
    assert!(refused("@daily", Some("../../etc/passwd")).contains("IANA"));
}

#[test]
fn zones_are_shown_by_their_iana_name_and_utc_is_the_default() {
    let s = Schedule::new("@daily", None, Missed::RunOnce).unwrap();
    assert_eq!(s.zone(), "UTC");
    assert_eq!(s.missed(), Missed::RunOnce);
    assert_eq!(
        s.format(ms("2026-12-01T00:00:00Z")),
        "2026-12-01T00:00:00+00:00"
    );
    let berlin = schedule("@daily", "Europe/Berlin");
    assert_eq!(berlin.zone(), "Europe/Berlin");
    assert_eq!(
        berlin.format(ms("2026-07-01T00:00:00Z")),
        "2026-07-01T02:00:00+02:00"
    );
    assert_ne!(berlin, schedule("@daily", "UTC"));
    assert_eq!(berlin, schedule("@daily", "Europe/Berlin"));
}

#[test]
fn day_of_month_and_day_of_week_match_either_and_extensions_work() {
    // 2026-12-28 is a Monday; 2027-01-01 a Friday.
    check(
        "0 0 1 * MON",
        "UTC",
        "2026-12-27T12:00:00Z",
        &[
            "2026-12-28T00:00:00+00:00",
            "2027-01-01T00:00:00+00:00",
            "2027-01-04T00:00:00+00:00",
        ],
    );
    check(
        "0 0 L * *",
        "UTC",
        "2026-02-01T00:00:00Z",
        &["2026-02-28T00:00:00+00:00"],
    );
    check(
        "0 0 * * FRI#2",
        "UTC",
        "2026-12-01T00:00:00Z",
        &["2026-12-11T00:00:00+00:00"],
    );
}
