//! The PPA assigner: a reusable pool of per-request archives (`ppa:ci-team/ppa_build_1`).
//!
//! Step 4 of the seed flow: the lander asks [`PpaAssigner::get_ppa`] for a ticket's build
//! archive and gives it back with [`PpaAssigner::release_ppa`] when the ticket ends; the
//! archive is then emptied (by a [`PpaCleaner`], [`crate::archive::Archives`] for local
//! archives) and serves the next ticket. A PPA goes
//! `free → reserved → dirty → cleaning → free`. [`sql::SqlPpaPool`] keeps the pool in the
//! ticket system's database, so it survives restarts and many processes share it; a
//! Launchpad backend would implement the same trait over Launchpad's PPAs. [`conformance`]
//! is the suite every backend runs.

pub mod conformance;
pub mod http;
pub mod sql;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The default owner of build PPAs.
pub const DEFAULT_OWNER: &str = "ci-team";

/// The name of a PPA: `ppa:<owner>/<name>`, as Launchpad writes them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PpaName {
    owner: String,
    name: String,
}

fn check_part(what: &str, part: &str) -> Result<()> {
    let ok = !part.is_empty()
        && part.len() <= 64
        && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && part
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._+-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid PPA {what} {part:?}: 1 to 64 of a-z 0-9 . _ + -, starting with a letter or digit"
        )))
    }
}

impl PpaName {
    /// The PPA `name` of `owner`.
    ///
    /// # Errors
    /// `InvalidInput` for characters other than `a-z 0-9 . _ + -`.
    pub fn new(owner: &str, name: &str) -> Result<PpaName> {
        check_part("owner", owner)?;
        check_part("name", name)?;
        Ok(PpaName {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The owner (`ci-team`).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The name within the owner (`ppa_build_1`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for PpaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ppa:{}/{}", self.owner, self.name)
    }
}

impl FromStr for PpaName {
    type Err = Error;
    fn from_str(text: &str) -> Result<PpaName> {
        let (owner, name) = text
            .strip_prefix("ppa:")
            .and_then(|rest| rest.split_once('/'))
            .ok_or_else(|| Error::invalid(format!("not a PPA name: {text:?} (ppa:OWNER/NAME)")))?;
        PpaName::new(owner, name)
    }
}

impl Serialize for PpaName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PpaName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<PpaName, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|e: Error| serde::de::Error::custom(e.message()))
    }
}

/// Where a PPA is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PpaState {
    /// Empty, ready for a ticket.
    Free,
    /// Held by a ticket.
    Reserved,
    /// Released, still holding the last ticket's packages.
    Dirty,
    /// Being emptied.
    Cleaning,
    /// Emptying it failed (its folder cannot be removed, say): set aside, lent to no
    /// ticket, tried again now and then, and reported by `ppa list` and `doctor`.
    Quarantined,
}

impl PpaState {
    /// The stored name (`free`).
    pub fn as_str(self) -> &'static str {
        match self {
            PpaState::Free => "free",
            PpaState::Reserved => "reserved",
            PpaState::Dirty => "dirty",
            PpaState::Cleaning => "cleaning",
            PpaState::Quarantined => "quarantined",
        }
    }
}

impl FromStr for PpaState {
    type Err = Error;
    fn from_str(text: &str) -> Result<PpaState> {
        match text {
            "free" => Ok(PpaState::Free),
            "reserved" => Ok(PpaState::Reserved),
            "dirty" => Ok(PpaState::Dirty),
            "cleaning" => Ok(PpaState::Cleaning),
            "quarantined" => Ok(PpaState::Quarantined),
            _ => Err(Error::invalid(format!("unknown PPA state {text:?}"))),
        }
    }
}

impl fmt::Display for PpaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A PPA of the pool and who holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ppa {
    /// `ppa:<owner>/<name>`.
    pub name: PpaName,
    /// Where it is in its cycle.
    pub state: PpaState,
    /// The ticket holding it (reserved PPAs only).
    pub ticket: Option<i64>,
    /// When an unrenewed reservation lapses and the PPA is reclaimed.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// When its state last changed.
    pub updated_at: DateTime<Utc>,
}

/// How a pool is sized and how long it waits and lends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// The owner of the pool's PPAs (`ci-team`); pools of different owners are separate.
    pub owner: String,
    /// PPAs made up front (`ppa_build_1` … `ppa_build_<size>`).
    pub size: u32,
    /// The most PPAs the pool grows to when all are busy.
    pub max: u32,
    /// How long `get_ppa` waits for one to come free.
    pub wait: Duration,
    /// How long a reservation lasts without [`PpaAssigner::renew`].
    pub lease: Duration,
}

impl Default for PoolOptions {
    fn default() -> PoolOptions {
        PoolOptions {
            owner: DEFAULT_OWNER.to_owned(),
            size: 4,
            max: 16,
            wait: Duration::from_secs(600),
            lease: Duration::from_secs(6 * 3600),
        }
    }
}

impl PoolOptions {
    /// Checks the sizes and the owner.
    ///
    /// # Errors
    /// `InvalidInput` for an empty pool, `max < size`, or a bad owner.
    pub fn validate(&self) -> Result<()> {
        check_part("owner", &self.owner)?;
        if self.size == 0 || self.max < self.size {
            return Err(Error::invalid(format!(
                "PPA pool: need 1 <= size <= max (size {}, max {})",
                self.size, self.max
            )));
        }
        if self.lease.is_zero() {
            return Err(Error::invalid("PPA pool: the lease must be longer than 0"));
        }
        Ok(())
    }
}

/// Empties a released PPA's archive so the next ticket starts clean.
#[async_trait]
pub trait PpaCleaner: Send + Sync + fmt::Debug {
    /// Removes everything published in `ppa`. Idempotent: cleaning an empty or absent
    /// archive succeeds.
    async fn clean(&self, ppa: &PpaName) -> Result<()>;
}

/// Lends PPAs to tickets.
///
/// Every PPA is held by at most one ticket at a time, and a ticket holds at most one PPA
/// of a pool. All calls are safe from many tasks and processes at once.
#[async_trait]
pub trait PpaAssigner: Send + Sync + fmt::Debug {
    /// The PPA of `ticket`: the one it already holds (idempotent; the lease is renewed), else
    /// a free one, else a new one while the pool is below its maximum, else the first to
    /// come free within the pool's wait. Reservations whose lease lapsed are reclaimed
    /// (emptied and lent again) on the way.
    ///
    /// # Errors
    /// `NotFound` for an unknown ticket; `Unavailable` (retryable) when none came free in
    /// time.
    async fn get_ppa(&self, ticket: i64) -> Result<Ppa>;

    /// Gives back `ticket`'s PPA: it turns dirty, is emptied (cleaning) and becomes free.
    /// Idempotent: a ticket holding no PPA has nothing to give back. A cleaning interrupted
    /// by a crash is finished by a later call of any process.
    ///
    /// # Errors
    /// What cleaning the archive reports (the PPA stays dirty and is cleaned again later).
    async fn release_ppa(&self, ticket: i64) -> Result<()>;

    /// Extends `ticket`'s lease by the pool's lease time, for long requests.
    ///
    /// # Errors
    /// `NotFound` when the ticket holds no PPA (never had one, released it, or its lease
    /// lapsed and the PPA was reclaimed).
    async fn renew(&self, ticket: i64) -> Result<Ppa>;

    /// Every PPA of the pool, by name.
    async fn list(&self) -> Result<Vec<Ppa>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppa_names_read_and_write_as_launchpad_does() {
        let name: PpaName = "ppa:ci-team/ppa_build_1".parse().unwrap();
        assert_eq!((name.owner(), name.name()), ("ci-team", "ppa_build_1"));
        assert_eq!(name.to_string(), "ppa:ci-team/ppa_build_1");
        assert_eq!(
            serde_json::to_string(&name).unwrap(),
            "\"ppa:ci-team/ppa_build_1\""
        );
        for bad in [
            "ci-team/ppa_build_1",
            "ppa:ci-team",
            "ppa:/x",
            "ppa:Ci/x",
            "ppa:a/../b",
            "ppa:a/b/c",
            "ppa:a/-x",
        ] {
            assert!(bad.parse::<PpaName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn pool_options_are_checked() {
        PoolOptions::default().validate().unwrap();
        for bad in [
            PoolOptions {
                size: 0,
                ..PoolOptions::default()
            },
            PoolOptions {
                size: 5,
                max: 4,
                ..PoolOptions::default()
            },
            PoolOptions {
                owner: "CI".into(),
                ..PoolOptions::default()
            },
            PoolOptions {
                lease: Duration::ZERO,
                ..PoolOptions::default()
            },
        ] {
            assert_eq!(
                bad.validate().unwrap_err().kind(),
                crate::ErrorKind::InvalidInput
            );
        }
    }
}
