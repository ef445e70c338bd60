//! A rotated key's hand-over to the key that replaced it: the link both
//! ways is shown to operators, and an optional idle limit ends the old key
//! once its clients have moved on. Everything here is derived from stored
//! values and the time asked about, so every process reaches the same
//! answer on its next request without a job flipping a flag.

use chrono::TimeDelta;

use super::Timestamp;

/// What rotation left on the key it replaced (all `None` on other keys).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Succession {
    /// The lookup id of the key that replaced this one.
    pub replaced_by: Option<String>,
    /// When it was replaced.
    pub replaced_at: Option<Timestamp>,
    /// `--revoke-when-idle`: the key ends once unused this long.
    pub idle_limit: Option<TimeDelta>,
    /// The last request the key was accepted for (refusals do not count).
    pub last_accepted_at: Option<Timestamp>,
}

impl Succession {
    /// When the key stops for want of use: its idle limit after its last
    /// accepted request, or after the rotation if none came since.
    pub fn idle_end(&self) -> Option<Timestamp> {
        let limit = self.idle_limit?;
        let since = match (self.replaced_at, self.last_accepted_at) {
            (Some(rotated), Some(used)) => rotated.max(used),
            (rotated, used) => rotated.or(used)?,
        };
        since.checked_add_signed(limit)
    }
}

/// What rotation does with the key it replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// Revoked in the same step.
    RevokeNow,
    /// Keeps working until revoked, or (each optional) until `grace` has
    /// passed and until it has gone unused for `idle`; then it is expired.
    Keep {
        grace: Option<TimeDelta>,
        idle: Option<TimeDelta>,
    },
}

impl Handover {
    /// Keep the old key until someone revokes it.
    pub const UNTIL_REVOKED: Handover = Handover::Keep {
        grace: None,
        idle: None,
    };

    /// Whether the old key keeps working for a while by itself.
    pub fn keeps_for_a_while(&self) -> bool {
        matches!(self, Handover::Keep { grace, idle } if grace.is_some() || idle.is_some())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn the_idle_end_runs_from_the_later_of_rotation_and_last_use() {
        let at = |m| Utc.with_ymd_and_hms(2026, 5, 1, 12, m, 0).unwrap();
        let mut s = Succession {
            replaced_at: Some(at(0)),
            idle_limit: Some(TimeDelta::minutes(30)),
            ..Succession::default()
        };
        assert_eq!(s.idle_end(), Some(at(30)), "unused since the rotation");
        s.last_accepted_at = Some(at(10));
        assert_eq!(s.idle_end(), Some(at(40)));
        // A use from before the rotation does not shorten the hand-over.
        s.last_accepted_at = Some(Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap());
        assert_eq!(s.idle_end(), Some(at(30)));
        s.idle_limit = None;
        assert_eq!(s.idle_end(), None, "no limit, no end");
    }
}
