//! A template's schedule: a cron pattern read in an IANA time zone, and what happens to the
//! slots that pass while no server runs. Times go in and out as milliseconds since the Unix
//! epoch (the unit every stored time uses); the caller reads the clock.
//!
//! Patterns are parsed by `croner` and evaluated on `jiff`'s zoned times with the time zone
//! database compiled into the binary, so that a schedule means the same on every host whatever
//! its `/usr/share/zoneinfo` holds. Daylight-saving changes follow croner's rules (the Open
//! Cron Pattern Specification): a slot whose wall-clock time is skipped by a jump forward fires
//! at the first instant after the jump when its pattern names a fixed time of day (seconds,
//! minute and hour each one value), and not at all when it is an interval (a wildcard, a step
//! or a list in one of those fields); a wall-clock time that happens twice fires once, at its
//! first occurrence, for a fixed time of day, and twice for an interval.

use std::fmt;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Deserialize;

/// The longest pattern accepted, in bytes.
pub const MAX_SCHEDULE_LEN: usize = 200;

/// The shorthands a schedule may be written as, besides five or six fields.
pub const SCHEDULE_SHORTHANDS: &[&str] = &[
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
];

/// What happens to the slots that passed while no server ran (or while it could not keep up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// They are counted and dropped; the next job is the next slot's.
    #[default]
    Skip,
    /// One job stands for all of them, its `$ScheduledFor` the latest missed slot.
    RunOnce,
}

impl Missed {
    /// The word a template file uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Missed::Skip => "skip",
            Missed::RunOnce => "run_once",
        }
    }
}

/// A parsed schedule. Two schedules are equal when they are written the same.
#[derive(Clone)]
pub struct Schedule {
    expression: String,
    cron: Cron,
    zone: TimeZone,
    zone_name: String,
    missed: Missed,
}

/// The slots of a schedule in a span of time (see [`Schedule::due`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// How many slots fall in the span, counted up to the cap asked for.
    pub count: u64,
    /// The latest of them, if any.
    pub latest: Option<i64>,
}

impl Schedule {
    /// Parses a pattern, read in the time zone `zone` (an IANA name such as `Europe/Berlin`;
    /// `None` is UTC). The message says what is wrong, in one line.
    pub fn new(expression: &str, zone: Option<&str>, missed: Missed) -> Result<Schedule, String> {
        let expression = expression.trim();
        if expression.is_empty() {
            return Err("schedule must not be empty".into());
        }
        if expression.len() > MAX_SCHEDULE_LEN {
            return Err(format!(
                "schedule must be at most {MAX_SCHEDULE_LEN} characters long"
            ));
        }
        if expression.starts_with('@') {
            if !SCHEDULE_SHORTHANDS
                .iter()
                .any(|s| s.eq_ignore_ascii_case(expression))
            {
                return Err(format!(
                    "schedule shorthand {expression} is unknown; use one of {}",
                    SCHEDULE_SHORTHANDS.join(", ")
                ));
            }
        } else {
            let fields = expression.split_whitespace().count();
            if fields != 5 && fields != 6 {
                return Err(format!(
                    "schedule must have 5 fields (minute hour day-of-month month day-of-week), \
                     or 6 with seconds first; found {fields}"
                ));
            }
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build();
        let cron = parser
            .parse(expression)
            .map_err(|e| format!("schedule {expression:?} is not a cron pattern: {e}"))?;
        let zone_name = zone.unwrap_or("UTC").trim();
        let tz = TimeZone::get(zone_name).map_err(|_| {
            format!("schedule_timezone {zone_name:?} is not an IANA time zone name (such as Europe/Berlin)")
        })?;
        let schedule = Schedule {
            expression: expression.to_owned(),
            cron,
            zone_name: tz.iana_name().unwrap_or(zone_name).to_owned(),
            zone: tz,
            missed,
        };
        // A pattern like `0 0 30 2 *` (30 February) parses but never comes. Looked for from a
        // fixed day so that parsing does not read the clock; a leap day is within reach.
        if schedule.next_after(NEVER_CHECK_FROM_MS).is_none() {
            return Err(format!("schedule {expression:?} never fires"));
        }
        Ok(schedule)
    }

    /// The pattern as written (trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone's IANA name.
    pub fn zone(&self) -> &str {
        &self.zone_name
    }

    /// What happens to missed slots.
    pub fn missed(&self) -> Missed {
        self.missed
    }

    /// The first slot strictly after `after_ms`; `None` if there is none within croner's reach.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let zoned = Timestamp::from_millisecond(after_ms)
            .ok()?
            .to_zoned(self.zone.clone());
        let next = self.cron.find_next_occurrence(&zoned, false).ok()?;
        Some(next.timestamp().as_millisecond())
    }

    /// The latest slot at or before `at_ms`.
    pub fn latest_at_or_before(&self, at_ms: i64) -> Option<i64> {
        let zoned = Timestamp::from_millisecond(at_ms)
            .ok()?
            .to_zoned(self.zone.clone());
        let previous = self.cron.find_previous_occurrence(&zoned, true).ok()?;
        Some(previous.timestamp().as_millisecond())
    }

    /// The next `n` slots after `after_ms`.
    pub fn upcoming(&self, after_ms: i64, n: usize) -> Vec<i64> {
        let mut slots = Vec::with_capacity(n);
        let mut at = after_ms;
        while slots.len() < n {
            match self.next_after(at) {
                Some(next) => {
                    slots.push(next);
                    at = next;
                }
                None => break,
            }
        }
        slots
    }

    /// The slots after `after_ms` up to and including `until_ms`: how many (counting stops at
    /// `cap`, so a long outage of a schedule firing every second costs bounded work) and the
    /// latest.
    pub fn due(&self, after_ms: i64, until_ms: i64, cap: u64) -> Due {
        let latest = self
            .latest_at_or_before(until_ms)
            .filter(|&latest| latest > after_ms);
        let mut count = 0;
        if latest.is_some() {
            let mut at = after_ms;
            while count < cap {
                match self.next_after(at) {
                    Some(next) if next <= until_ms => {
                        count += 1;
                        at = next;
                    }
                    _ => break,
                }
            }
        }
        Due { count, latest }
    }

    /// A slot as RFC 3339 text, with the offset the schedule's time zone had then
    /// (`2026-03-29T03:00:00+02:00`): what `$ScheduledFor` holds.
    pub fn format(&self, slot_ms: i64) -> String {
        match Timestamp::from_millisecond(slot_ms) {
            Ok(ts) => {
                let offset = self.zone.to_offset(ts);
                ts.display_with_offset(offset).to_string()
            }
            // Slots come from `next_after`, which stays in range.
            Err(_) => slot_ms.to_string(),
        }
    }
}

/// 2024-01-01T00:00:00Z: where [`Schedule::new`] looks for a first slot.
const NEVER_CHECK_FROM_MS: i64 = 1_704_067_200_000;

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression
            && self.zone_name == other.zone_name
            && self.missed == other.missed
    }
}

impl Eq for Schedule {}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("expression", &self.expression)
            .field("zone", &self.zone_name)
            .field("missed", &self.missed)
            .finish()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} in {}", self.expression, self.zone_name)
    }
}

#[cfg(test)]
mod tests;
